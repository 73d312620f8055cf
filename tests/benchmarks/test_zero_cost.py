"""The zero-cost study: proxies at init beside brief training, rank correlations, resuming."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import zero_cost
from benchmarks.datasets import load_local
from benchmarks.protocol import prepare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rank_correlations_rank_infinities_last_and_skip_nan():
    assert zero_cost.correlations([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4]) == {
        "spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "n": 4
    }
    reversed_ = zero_cost.correlations([4.0, 3.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.4])
    assert reversed_["spearman"] == pytest.approx(-1.0)
    assert reversed_["kendall"] == pytest.approx(-1.0)
    # NASWOT's singular kernels (-inf) rank lowest; a NaN pair is left out
    ranked = zero_cost.correlations([-math.inf, 1.0, math.nan, 2.0], [0.0, 0.5, 0.9, 1.0])
    assert ranked["spearman"] == pytest.approx(1.0) and ranked["n"] == 3
    assert math.isnan(zero_cost.correlations([1.0, 2.0], [1.0, 2.0])["spearman"])


def test_every_proxy_scores_a_regression_network_at_init(tiny_index):
    from tabnas import TabNASRegressor
    from tabnas.nas.proxies import PROXIES

    data = prepare(load_local("tiny_reg", tiny_index), seed=0)
    train, cats, task, batch = zero_cost.proxy_batch(data, seed=0, batch_rows=16)
    assert len(batch) == 16 and task.kind == "regression"
    assert abs(float(train.y.mean())) < 1e-5  # the standardised target
    architecture = TabNASRegressor(preset="fast").search_space().sample(seed=0)
    first = zero_cost.score_at_init(
        architecture, train=train, cat_cardinalities=cats, task=task, batch=batch, seed=0
    )
    assert set(first["proxies"]) == {*PROXIES, "n_parameters"} and set(first["proxy_s"]) == set(
        PROXIES
    )
    again = zero_cost.score_at_init(
        architecture, train=train, cat_cardinalities=cats, task=task, batch=batch, seed=0
    )
    assert again["proxies"] == first["proxies"]  # the same seed, the same network


def test_the_study_writes_each_architecture_as_it_finishes_and_resumes(
    tiny_index, tmp_path, monkeypatch
):
    trained = []
    train_briefly = zero_cost.train_briefly

    def counting(architecture, data, **kwargs):
        trained.append(architecture)
        return train_briefly(architecture, data, **kwargs)

    monkeypatch.setattr(zero_cost, "train_briefly", counting)
    args = ["--out", str(tmp_path), "--dataset", "tiny_clf", "--datasets-index",
            str(tiny_index), "--max-epochs", "1", "--batch-rows", "16"]
    zero_cost.main([*args, "--n-archs", "3"])
    first = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(first) == 3 and len(trained) == 3

    report = zero_cost.main([*args, "--n-archs", "4"])
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert lines[:3] == first and len(lines) == 4 and len(trained) == 4  # one more fit only
    assert [r["index"] for r in report["rows"]] == [0, 1, 2, 3]
    assert len({json.dumps(r["ops"]) + r["architecture"] for r in report["rows"]}) == 4
    assert set(report["correlations"]) == {"naswot", "synflow", "grad_norm", "snip",
                                           "n_parameters"}
    assert all(c["n"] == 4 for c in report["correlations"].values())
    text = (tmp_path / "zero_cost.md").read_text()
    assert "| synflow |" in text and "Spearman" in text and "−val loss" in text
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["n_archs"] == 4
