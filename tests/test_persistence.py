"""Saving and loading: pickle for a GPU-fitted model, and ``save`` / ``load``, which store
the tensors and JSON and unpickle nothing."""

import copy
import dataclasses
import io
import json
import os
import pickle
import pickletools
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import tabnas
from tabnas import TabNASClassifier, TabNASRegressor
from tabnas.estimators._persistence import (
    FORMAT_VERSION,
    JSON_NAME,
    WEIGHTS_NAME,
    bin_counts,
    from_json,
    preprocessor_from_json,
    preprocessor_to_json,
    to_json,
)
from tabnas.nas.strategies import STRATEGY_REGISTRY
from tabnas.preprocessing import TabularPreprocessor
from tabnas.training.ensemble import EnsembleModel

from .conftest import FAST

TINY = {**FAST, "max_epochs": 3}


@pytest.fixture(scope="module")
def classifier(mixed_frame):
    X, y = mixed_frame
    return TabNASClassifier(**TINY).fit(X, y)


@pytest.fixture(scope="module")
def saved(classifier, tmp_path_factory):
    return classifier.save(tmp_path_factory.mktemp("saved") / "classifier.zip")


def test_classifier_loads_predicting_the_same(classifier, saved, mixed_frame):
    X, _ = mixed_frame
    restored = tabnas.load(saved)
    assert type(restored) is TabNASClassifier
    assert restored.get_params() == classifier.get_params()
    # Piecewise-linear embeddings whose features have different numbers of bins (the
    # missing indicator has fewer): their modules are built again from the counts.
    assert len(set(bin_counts(classifier.model_))) > 1
    assert np.array_equal(restored.predict(X), classifier.predict(X))
    np.testing.assert_allclose(restored.predict_proba(X), classifier.predict_proba(X), atol=1e-6)
    # The fitted attributes come back with their types and values.
    assert restored.classes_.dtype == classifier.classes_.dtype
    assert np.array_equal(restored.classes_, classifier.classes_)
    assert np.array_equal(restored.feature_names_in_, classifier.feature_names_in_)
    assert restored.feature_names_in_.dtype == classifier.feature_names_in_.dtype
    assert restored.n_features_in_ == classifier.n_features_in_
    for name in (
        "architecture_", "selected_architecture_", "argmax_architecture_", "search_space_",
        "selection_trace_", "ensemble_", "fit_info_", "timings_", "best_epoch_",
        "n_parameters_", "device_", "_categorical_columns_",
    ):
        assert getattr(restored, name) == getattr(classifier, name), name
    assert restored.history_.rows == classifier.history_.rows
    assert repr(restored.model_) == repr(classifier.model_)
    assert not restored.model_.training
    # The same modules, with the same tensors.
    expected = classifier.model_.state_dict()
    state = restored.model_.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    # The class's own load returns it; the other class refuses the file.
    assert np.array_equal(TabNASClassifier.load(saved).predict(X), classifier.predict(X))
    with pytest.raises(TypeError, match="holds a TabNASClassifier, not a TabNASRegressor"):
        TabNASRegressor.load(saved)


def test_preprocessor_transforms_the_same_after_loading(classifier, saved, mixed_frame):
    X, _ = mixed_frame
    original = classifier.preprocessor_
    restored = tabnas.load(saved).preprocessor_
    assert len(restored.categories_) == len(original.categories_) == 2
    for ours, theirs in zip(restored.categories_, original.categories_):
        pd.testing.assert_index_equal(ours, theirs, exact=True)
    assert np.array_equal(restored.means_, original.means_)
    unseen = X.assign(color=X["color"].astype(object).where(X.index % 7 != 0, "purple"))
    for frame in (X, unseen):
        for ours, theirs in zip(restored.transform(frame), original.transform(frame)):
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


def test_quantile_transformer_is_rebuilt_from_its_arrays(regression_data):
    X, _ = regression_data
    fitted = TabularPreprocessor(categorical=[], random_state=0).fit(pd.DataFrame(X))
    restored = preprocessor_from_json(json.loads(json.dumps(preprocessor_to_json(fitted))))
    original, rebuilt = fitted.quantile_, restored.quantile_
    assert rebuilt is not original and rebuilt.get_params() == original.get_params()
    assert rebuilt.n_quantiles_ == original.n_quantiles_
    assert np.array_equal(rebuilt.quantiles_, original.quantiles_)
    assert np.array_equal(rebuilt.references_, original.references_)
    # Inside, outside and at the edges of the training range, and on the rows themselves.
    probe = np.concatenate([X, 10 * np.random.default_rng(1).normal(size=(50, 4)), X * 0])
    assert np.array_equal(rebuilt.transform(probe), original.transform(probe))


def test_categories_keep_their_types():
    frame = pd.DataFrame(
        {
            "text": ["b", "a", None, "c", "a", "b"],
            "ints": [3, 1, 2, 3, 1, 2],
            "floats": [0.5, 1.5, np.nan, 0.5, -2.0, 1.5],
            "flags": [True, False, True, True, False, False],
            "mixed": pd.Series(["x", 2, 2.5, False, "x", 2], dtype=object),
            "numbers": np.arange(6.0),
        }
    )
    fitted = TabularPreprocessor(
        categorical=[0, 1, 2, 3, 4], random_state=0, names=list(frame.columns)
    ).fit(frame.set_axis(range(6), axis=1))
    restored = preprocessor_from_json(json.loads(json.dumps(preprocessor_to_json(fitted))))
    assert len(restored.categories_) == 5
    for ours, theirs in zip(restored.categories_, fitted.categories_):
        pd.testing.assert_index_equal(ours, theirs, exact=True)
        assert [type(v) for v in ours] == [type(v) for v in theirs]
    assert [type(v) for v in restored.categories_[4]] == [bool, float, int, str]
    # Unseen values (an int where a float was, True where False was) map to code 0 alike.
    unseen = pd.DataFrame([["d", 4, 2.5, None, True, 1.0]]).astype(object)
    for rows in (frame.set_axis(range(6), axis=1), unseen):
        for ours, theirs in zip(restored.transform(rows), fitted.transform(rows)):
            assert np.array_equal(ours, theirs)


@pytest.mark.parametrize(
    "value",
    [
        None, True, 3, -0.0, float("nan"), float("-inf"), "é", (1, "a"), [1, (2.5,)],
        {1: "a", "b": 2}, {"__tabnas__": 1}, np.int32(7), np.bool_(True), np.float32(0.25),
        np.array([[1, 2]], dtype=np.uint8), np.array(["ab", "c"]),
        np.array([1, "a", None, [2]], dtype=object), pd.Index([2.5, np.inf]),
    ],
    ids=repr,
)
def test_values_round_trip_through_json_with_their_types(value):
    text = json.dumps(to_json(value), allow_nan=False)
    restored = from_json(json.loads(text))
    assert type(restored) is type(value)
    if isinstance(value, np.ndarray):
        assert restored.dtype == value.dtype and restored.shape == value.shape
        assert restored.tolist() == value.tolist()
    elif isinstance(value, pd.Index):
        pd.testing.assert_index_equal(restored, value, exact=True)
    elif isinstance(value, float):
        assert str(restored) == str(value)  # nan, -inf and -0.0 included
    else:
        assert restored == value and repr(restored) == repr(value)


@pytest.fixture(scope="module")
def regressor(regression_data):
    """TabM alone (no search), bagged: each member is the ensemble of its fold models."""
    X, y = regression_data
    space = dataclasses.replace(TabNASRegressor(**TINY).search_space(), backbones=("tabm",))
    return TabNASRegressor(**TINY, space=space, bag_folds=2).fit(X, y)


def test_a_model_whose_fit_device_is_gone_predicts_on_the_cpu(regressor, regression_data):
    X, _ = regression_data
    reg = copy.copy(regressor)
    expected = reg.predict(X)
    reg.device_ = "cuda:7"  # a device this machine does not have
    assert all(p.device.type == "cpu" for p in reg.model_.parameters())  # stored on the CPU
    restored = pickle.loads(pickle.dumps(reg))
    assert np.array_equal(restored.predict(X), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_fitted_on_cuda_predicts_the_same_on_a_cpu_only_machine(
    regression_data, tmp_path
):
    X, y = regression_data
    reg = TabNASRegressor(**{**FAST, "device": "cuda", "max_epochs": 3}).fit(X, y)
    assert reg.device_.startswith("cuda")
    on_gpu = reg.predict(X)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(reg))
    np.save(tmp_path / "X.npy", X)
    files = [str(tmp_path / name) for name in ("model.pkl", "X.npy", "p.npy")]
    script = (
        "import pickle, sys, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        "reg = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "np.save(sys.argv[3], reg.predict(np.load(sys.argv[2])))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, *files],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=True,
    )
    on_cpu = np.load(tmp_path / "p.npy")
    # fp32 on both sides (no autocast at predict): agreement to fp32 rounding
    np.testing.assert_allclose(on_cpu, on_gpu, rtol=1e-4, atol=1e-5 * np.std(y))


def test_regressor_with_bagged_tabm_loads_predicting_the_same(regressor, regression_data, tmp_path):
    X, _ = regression_data
    reg = regressor
    assert all(isinstance(member, EnsembleModel) for member in reg.model_.members)
    assert {type(net).__name__ for m in reg.model_.members for net in m.members} == {"TabMNetwork"}
    restored = tabnas.load(reg.save(tmp_path / "regressor.zip"))
    assert type(restored) is TabNASRegressor
    assert restored.get_params() == reg.get_params()
    assert restored.search_space() == reg.space
    assert np.array_equal(restored.predict(X), reg.predict(X))
    assert (restored.target_mean_, restored.target_std_) == (reg.target_mean_, reg.target_std_)
    assert restored.model_.weights == reg.model_.weights
    assert repr(restored.model_) == repr(reg.model_)


def test_the_file_holds_json_and_tensors_only(classifier, saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == [JSON_NAME, WEIGHTS_NAME]
        text = archive.read(JSON_NAME).decode("utf-8")
        weights = archive.read(WEIGHTS_NAME)

    def no_constants(name):
        raise AssertionError(f"{JSON_NAME} holds {name}, which is not JSON")

    document = json.loads(text, parse_constant=no_constants)
    assert document["format_version"] == FORMAT_VERSION
    assert document["estimator"] == "TabNASClassifier"
    assert document["left_out_params"] == [] and document["left_out_attributes"] == []
    state = torch.load(io.BytesIO(weights), weights_only=True)
    assert list(state) == list(classifier.model_.state_dict())
    assert all(isinstance(tensor, torch.Tensor) for tensor in state.values())
    # The tensor container's pickle names nothing but torch's storages and tensor rebuilder.
    with zipfile.ZipFile(io.BytesIO(weights)) as archive:
        (data,) = [archive.read(n) for n in archive.namelist() if n.endswith("/data.pkl")]
    names = {
        arg for op, arg, _ in pickletools.genops(data)
        if "GLOBAL" in op.name or op.name in ("INST", "OBJ")
    }
    assert names and {name.split()[0] for name in names} <= {"torch", "torch._utils", "collections"}
    assert names <= {
        "collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch FloatStorage",
        "torch LongStorage", "torch BoolStorage",
    }


def test_loading_never_unpickles(saved, mixed_frame, classifier, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    X, _ = mixed_frame
    assert np.array_equal(tabnas.load(saved).predict(X), classifier.predict(X))


def test_loading_keeps_the_global_seed(saved):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tabnas.load(saved)
    assert torch.equal(torch.rand(3), expected)


def test_saving_an_unfitted_estimator_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        TabNASClassifier().save(tmp_path / "model.zip")
    assert list(tmp_path.iterdir()) == []


def test_loading_a_missing_path_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved tabnas model at .*nothing.zip"):
        tabnas.load(tmp_path / "nothing.zip")


def _rewrite(saved, target, change):
    with zipfile.ZipFile(saved) as archive:
        document = json.loads(archive.read(JSON_NAME))
        weights = archive.read(WEIGHTS_NAME)
    change(document)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(JSON_NAME, json.dumps(document))
        archive.writestr(WEIGHTS_NAME, weights)
    return target


def test_a_newer_or_unknown_format_is_refused(saved, tmp_path):
    newer = _rewrite(
        saved, tmp_path / "newer.zip", lambda d: d.update(format_version=FORMAT_VERSION + 1)
    )
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1} .*upgrade tabnas"):
        tabnas.load(newer)
    odd = _rewrite(saved, tmp_path / "odd.zip", lambda d: d.update(format_version="1"))
    with pytest.raises(ValueError, match="unknown format version '1'"):
        tabnas.load(odd)
    other = _rewrite(saved, tmp_path / "other.zip", lambda d: d.update(format="sklearn"))
    with pytest.raises(ValueError, match="is not a tabnas model file"):
        tabnas.load(other)
    unknown = _rewrite(saved, tmp_path / "unknown.zip", lambda d: d.update(estimator="SVC"))
    with pytest.raises(ValueError, match="holds a 'SVC', which this tabnas does not know"):
        tabnas.load(unknown)
    text = tmp_path / "model.zip"
    text.write_text("not a zip")
    for path in (text, tmp_path):
        with pytest.raises(ValueError, match="is not a tabnas model file"):
            tabnas.load(path)


def test_a_file_with_parameters_this_version_lacks_is_refused_naming_them(saved, tmp_path):
    future = _rewrite(
        saved, tmp_path / "future.zip", lambda d: d["params"].update(future_option=1)
    )
    with pytest.raises(ValueError, match="does not have: future_option; upgrade tabnas"):
        tabnas.load(future)


def test_a_pickle_from_before_a_parameter_existed_gets_its_default(classifier, mixed_frame,
                                                                   tmp_path):
    state = pickle.loads(pickle.dumps(classifier)).__dict__
    for name in ("numeric_scaling", "label_smoothing", "argmax_candidate"):
        del state[name]  # parameters added after tabnas 0.1
    old = TabNASClassifier.__new__(TabNASClassifier)
    old.__setstate__(state)
    assert old.get_params()["numeric_scaling"] == "quantile"
    assert old.label_smoothing == 0.0 and old.argmax_candidate is None
    assert "TabNASClassifier(" in repr(old)
    assert clone(old).get_params() == classifier.get_params()  # it used the defaults
    loaded = tabnas.load(old.save(tmp_path / "old.zip"))
    X, _ = mixed_frame
    np.testing.assert_allclose(loaded.predict_proba(X), classifier.predict_proba(X), atol=1e-6)


def test_weights_that_do_not_fit_are_refused(saved, tmp_path):
    def shrink(document):
        document["model"]["shapes"]["d_out"] = 3

    with pytest.raises(ValueError, match="does not fit the networks"):
        tabnas.load(_rewrite(saved, tmp_path / "shrunk.zip", shrink))


def test_categories_json_cannot_hold_are_refused_naming_the_column(classifier, tmp_path):
    class Code:  # hashable, so a category; but no JSON form
        def __repr__(self):
            return "Code()"

    frame = pd.DataFrame({0: [1.0, 2.0, 3.0], 1: [Code(), Code(), Code()]})
    broken = copy.copy(classifier)
    broken.preprocessor_ = TabularPreprocessor(
        categorical=[1], random_state=0, names=["x", "when"]
    ).fit(frame)
    with pytest.raises(ValueError, match="column 'when' has categories .*Code.* pickle or joblib"):
        broken.save(tmp_path / "model.zip")
    assert list(tmp_path.iterdir()) == []  # no half-written file


def test_parameters_without_json_form_are_left_out_with_a_warning(
    classifier, tmp_path, mixed_frame
):
    custom = copy.copy(classifier).set_params(
        search_strategy=STRATEGY_REGISTRY["darts"](lr=3e-3),
        random_state=np.random.RandomState(0),
    )
    left_out = "parameters random_state, search_strategy .they load with their defaults"
    with pytest.warns(UserWarning, match=left_out):
        path = custom.save(tmp_path / "model.zip")
    restored = tabnas.load(path)
    assert restored.get_params()["search_strategy"] == "darts"
    assert restored.get_params()["random_state"] is None
    X, _ = mixed_frame
    assert np.array_equal(restored.predict(X), classifier.predict(X))


def test_robust_scaling_is_rebuilt_from_its_arrays(regression_data):
    X, _ = regression_data
    fitted = TabularPreprocessor(categorical=[], random_state=0, scaling="robust").fit(
        pd.DataFrame(X)
    )
    restored = preprocessor_from_json(json.loads(json.dumps(preprocessor_to_json(fitted))))
    assert restored.scaling == "robust" and restored.quantile_ is None
    probe = pd.DataFrame(np.concatenate([X, 10 * np.random.default_rng(1).normal(size=(50, 4))]))
    assert np.array_equal(restored.transform(probe)[0], fitted.transform(probe)[0])
