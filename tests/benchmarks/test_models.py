"""Every model adapter fits and predicts on a tiny table with categories and missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.config import DatasetSpec, ModelSpec
from benchmarks.jobs import Job, execute
from benchmarks.models import make_model, model_family

from .conftest import write_index

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = {
    "resnet": {"max_epochs": 2},
    "ft_transformer": {"max_epochs": 2},
    "tabm": {"max_epochs": 2, "k": 4, "d_block": 32},
    "tabnas-fast": {"preset": "fast", "max_search_steps": 10, "max_epochs": 2},
}


def tiny_data(task: str, n: int = 160, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.1, np.nan, x),
            "z": rng.normal(size=n),
            "c": pd.Categorical(rng.choice(["u", "v", None], n)),
        }
    )
    if task == "regression":
        y = 2 * x + 0.1 * rng.normal(size=n)
    elif task == "binclass":
        y = (x > 0).astype(np.int64)
    else:
        y = np.digitize(x, [-0.5, 0.5]).astype(np.int64)
    return (
        X[:100],
        y[:100],
        X[100:130].reset_index(drop=True),
        y[100:130],
        X[130:].reset_index(drop=True),
    )


@pytest.mark.parametrize(
    "name",
    ["dummy", "xgboost", "lightgbm", "catboost", "resnet", "ft_transformer", "tabm", "realmlp"],
)
@pytest.mark.parametrize("task", ["binclass", "multiclass", "regression"])
def test_baselines(name, task):
    from benchmarks.models import adapter_class

    pytest.importorskip(adapter_class(name).package.replace("scikit-learn", "sklearn"))
    X, y, X_val, y_val, X_test = tiny_data(task)
    n_classes = None if task == "regression" else int(y.max()) + 1
    model = make_model(name, FAST.get(name), task=task, n_classes=n_classes, seed=0).fit(
        X, y, X_val, y_val
    )
    pred = model.predict(X_test)
    assert pred.shape == (len(X_test),) and np.isfinite(pred).all()
    if task != "regression":
        proba = model.predict_proba(X_test)
        assert proba.shape == (len(X_test), n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    info = model.info()
    if name in ("resnet", "ft_transformer", "tabm"):
        assert info["n_parameters"] > 0 and info["epochs"] == 2


def test_tabnas_variant_records_its_architecture():
    X, y, X_val, y_val, X_test = tiny_data("binclass")
    model = make_model("tabnas-fast", FAST["tabnas-fast"], task="binclass", n_classes=2, seed=0)
    model.fit(X, y, X_val, y_val)
    assert model.predict_proba(X_test).shape == (len(X_test), 2)
    info = model.info()
    assert info["n_parameters"] > 0 and "cells" in info["architecture"]
    assert 0.0 <= info["ensemble_val"]["accuracy"] <= 1.0  # what a variant is chosen on


def test_own_validation_fits_on_the_training_rows_and_scores_the_unseen_validation_rows():
    X, y, X_val, y_val, _ = tiny_data("binclass")
    options = {**FAST["tabnas-fast"], "own_validation": True}
    model = make_model("tabnas-own", options, task="binclass", n_classes=2, seed=0)
    model.fit(X, y, X_val, y_val)
    est = model.model_
    assert est.fit_info_["n_train"] + est.fit_info_["n_val"] == len(X)  # its own split
    heldout = model.info()["heldout"]
    assert heldout["accuracy"] == np.mean(model.predict(X_val) == y_val)
    assert heldout["log_loss"] > 0
    plain = make_model("tabnas-fast", FAST["tabnas-fast"], task="binclass", n_classes=2, seed=0)
    assert plain.fit(X, y, X_val, y_val).info()["heldout"] is None


def test_a_tabnas_variant_changes_fields_of_its_presets_space():
    X, y, X_val, y_val, _ = tiny_data("regression")
    options = {**FAST["tabnas-fast"], "space": {"backbones": ["tabm", "retrieval"]}}
    model = make_model(
        "tabnas-x", options, task="regression", n_classes=None, seed=0
    ).fit(X, y, X_val, y_val)
    assert model.model_.space.backbones == ("tabm", "retrieval")
    assert model.model_.space.mlp == model.model_.search_space().mlp  # the rest: the preset's
    assert [m["backbone"] for m in model.info()["ensemble"]] == ["tabm", "retrieval"]
    bad = make_model("tabnas-x", {"space": {"depth": 3}}, task="regression", n_classes=None, seed=0)
    with pytest.raises(ValueError, match="no field"):
        bad.fit(X, y, X_val, y_val)


def test_tabm_members_train_on_their_own_losses_and_predict_their_mean():
    import torch

    X, y, X_val, y_val, X_test = tiny_data("multiclass")
    model = make_model("tabm", FAST["tabm"], task="multiclass", n_classes=3, seed=0).fit(
        X, y, X_val, y_val
    )
    assert model.model_.k == 4
    inputs = model._tensors(X_test)
    model.model_.eval()
    with torch.inference_mode():
        members = model.model_(*inputs).softmax(-1)  # (batch, k, classes)
    np.testing.assert_allclose(
        model.predict_proba(X_test), members.mean(dim=1).double().numpy(), rtol=1e-4, atol=1e-6
    )


def test_every_model_registers_what_the_harness_needs():
    from benchmarks.models import MODEL_REGISTRY, adapter_class, check_model_options

    assert {"dummy", "xgboost", "lightgbm", "catboost", "resnet", "ft_transformer", "tabm",
            "realmlp", "tabnas", "search_value"} <= set(MODEL_REGISTRY)
    for family, cls in MODEL_REGISTRY.items():
        assert (
            cls.family == family
            and isinstance(cls.package, str)
            and isinstance(cls.options(), frozenset)
        )
    assert adapter_class("tabnas-fast").uses_torch and not adapter_class("lightgbm").uses_torch
    # tabnas takes exactly its estimator's parameters, less what the harness sets
    from tabnas import TabNASRegressor

    assert adapter_class("tabnas").options() == (
        set(TabNASRegressor().get_params()) - {"random_state", "verbose", "categorical_features"}
    ) | {"own_validation"}  # and the harness's own switch
    check_model_options("tabnas-small", {"ensemble_size": 3, "preset": "fast"})
    with pytest.raises(ValueError, match="valid options: .*'d_block'"):
        check_model_options("tabm", {"width": 3})


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'svm'; valid models: dummy, xgboost"):
        model_family("svm")


def test_a_class_seen_only_in_the_test_split(tmp_path):
    """Labels are encoded on all rows; a model trained without a class still scores all."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=60), "label": rng.choice(["a", "b"], 60)})
    test = pd.DataFrame({"x": rng.normal(size=10), "label": ["a", "b"] * 4 + ["rare", "rare"]})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    index = write_index(
        tmp_path,
        [
            {
                "name": "d",
                "file": "train.csv",
                "test_file": "test.csv",
                "target": "label",
                "task": "multiclass",
            }
        ],
    )
    job = Job(
        DatasetSpec("d", "local", "d"),
        ModelSpec("lightgbm", "lightgbm"),
        seed=0,
        datasets_index=str(index),
        isolate=False,
    )
    row = execute(job)
    assert row["status"] == "ok", row.get("traceback")
    assert row["n_classes"] == 3 and row["n_test"] == 10 and np.isfinite(row["log_loss"])


def test_a_module_with_a_model_runs_as_a_script():
    """``python -m benchmarks.search_value`` imports its own module twice (as ``__main__``
    and by name): its model must register once, not clash with itself."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_value", "--help"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "results_dir" in result.stdout
