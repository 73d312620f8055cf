"""The report on a small synthetic results.jsonl, against numbers computed by hand."""

from __future__ import annotations

import json

import pytest

from benchmarks import report

# dataset "c" (binclass, accuracy ↑) and "r" (regression, RMSE ↓); two seeds each
SCORES = {
    ("c", "tabnas"): [0.80, 0.82],  # mean 0.81, std 0.0141
    ("c", "lightgbm"): [0.85, 0.85],  # mean 0.85, std 0      -> tabnas loses (0.04 > 0.0141)
    ("c", "xgboost"): [0.80, 0.84],  # mean 0.82, std 0.0283 -> tie (0.01 <= 0.0283)
    ("c", "dummy"): [0.50, 0.50],
    ("r", "tabnas"): [1.0, 1.0],  # mean 1.0, std 0
    ("r", "lightgbm"): [1.2, 1.4],  # mean 1.3, std 0.1414  -> tabnas wins (0.3 > 0.1414)
    ("r", "xgboost"): [1.0, 1.0],  # equal means           -> tie, shared rank 1.5
    ("r", "dummy"): [2.0, 2.0],
}
FIT = {"tabnas": [10, 20, 30, 40], "lightgbm": [1, 1, 2, 3], "xgboost": [1] * 4, "dummy": [0.1] * 4}


def synthetic_rows() -> list[dict]:
    rows = [  # superseded or failed rows that must not count
        {
            "dataset": "c",
            "model": "xgboost",
            "seed": 0,
            "task": "binclass",
            "status": "ok",
            "accuracy": 0.10,
            "fit_time_s": 99.0,
        },
        {
            "dataset": "r",
            "model": "lightgbm",
            "seed": 0,
            "task": "regression",
            "status": "error",
            "error": "boom",
        },
    ]
    for (dataset, model), values in SCORES.items():
        task, metric = ("binclass", "accuracy") if dataset == "c" else ("regression", "rmse")
        for seed, value in enumerate(values):
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "seed": seed,
                    "task": task,
                    "status": "ok",
                    metric: value,
                    "fit_time_s": FIT[model][2 * (dataset == "r") + seed],
                    "predict_time_s": 0.01,
                    "wall_time_s": 1.0,
                    "peak_memory_mb": 100.0,
                }
            )
    rows.append(
        {
            "dataset": "c",
            "model": "tabnas",
            "seed": 2,
            "task": "binclass",
            "status": "timeout",
            "error": "the job ran past its time limit",
        }
    )
    return rows


def test_summary_numbers():
    summary = report.summarise(synthetic_rows())
    assert summary.primary == {"c": "accuracy", "r": "rmse"}
    assert summary.average_rank.to_dict() == pytest.approx(
        {"xgboost": 1.75, "lightgbm": 2.0, "tabnas": 2.25, "dummy": 4.0}
    )
    assert summary.ranks.loc["r", "tabnas"] == summary.ranks.loc["r", "xgboost"] == 1.5
    assert summary.wtl["tabnas"] == {
        "lightgbm": (1, 0, 1),
        "xgboost": (0, 2, 0),
        "dummy": (2, 0, 0),
    }
    assert summary.fit_time_ratio == pytest.approx({"tabnas": 25 / 1.5})
    stats = summary.stats.set_index(["dataset", "model", "metric"])
    assert stats.loc[("c", "xgboost", "accuracy"), "mean"] == pytest.approx(
        0.82
    )  # last ok row counts
    assert stats.loc[("c", "tabnas", "accuracy"), "n"] == 2  # timeout ignored
    normalised = report.normalised_scores(summary)
    assert normalised.loc["c", "tabnas"] == pytest.approx(0.31 / 0.35)
    assert normalised.loc["r", "tabnas"] == pytest.approx(1.0)
    assert normalised.loc["c", "dummy"] == 0.0


def test_report_files(tmp_path):
    (tmp_path / "results.jsonl").write_text(
        "\n".join(json.dumps(r) for r in synthetic_rows()) + "\n"
    )
    path = report.main([str(tmp_path)])
    text = path.read_text()
    assert "average rank 2.25 of 4 models" in text
    assert "vs lightgbm 1/0/1" in text and "vs xgboost 0/2/0" in text
    assert "16.7× LightGBM's" in text
    assert "timeout" in text and "## Failed and timed-out jobs" in text
    for png in ("normalised_scores.png", "score_vs_time.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.jsonl"):
        report.write_report(tmp_path)


def test_a_model_run_on_fewer_datasets_is_ranked_on_the_common_ones_too():
    rows = [r for r in synthetic_rows() if not (r["model"] == "tabnas" and r["dataset"] == "r")]
    for seed, (fit, value) in enumerate([(5.0, 0.84), (7.0, 0.86)]):  # FT-T on "c" only
        rows.append({"dataset": "c", "model": "ft_transformer", "seed": seed,
                     "task": "binclass", "status": "ok", "accuracy": value, "fit_time_s": fit})
    summary = report.summarise(rows)
    assert summary.common_datasets == ["c"]
    assert summary.n_datasets("tabnas") == 1 and summary.n_datasets("xgboost") == 2
    # on "c": lightgbm 0.85 and ft_transformer 0.85 tie for 1.5, xgboost 3, tabnas 4, dummy 5
    assert summary.common_rank.to_dict() == pytest.approx(
        {"lightgbm": 1.5, "ft_transformer": 1.5, "xgboost": 3.0, "tabnas": 4.0, "dummy": 5.0}
    )
    # fit times over the jobs both ran: tabnas (10, 20) on "c" against lightgbm (1, 1) and
    # against ft_transformer (5, 7); lightgbm's "r" jobs do not count
    assert summary.fit_time_ratio == pytest.approx({"tabnas": 15 / 1})
    assert summary.nn_fit_time_ratio == pytest.approx({"tabnas": 15 / 6})
    text = report.headline(summary)
    assert "**tabnas**: average rank 4.00 of 5 models on 1 of 2 datasets" in text
    assert "(4.00 over the 1 datasets every model ran on)" in text
    assert "15.0× LightGBM's, 2.50× FT-Transformer's (same jobs)" in text
    assert "Best average rank over the 1 datasets every model ran on: **" in text
    table = report.render(summary)
    assert "| model | average rank | datasets | over the 1 datasets every model ran on |" in table
    assert "| tabnas | 4.00 | 1 | 4.00 |" in table and "| xgboost | 2.00 | 2 | 3.00 |" in table
