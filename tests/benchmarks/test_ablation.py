"""The ablation report on a synthetic results.jsonl, against numbers worked out by hand."""

from __future__ import annotations

import json

import pytest

from benchmarks import ablation


def row(dataset, model, seed, *, val, test, time, weights=(("cells", 1.0),)):
    task, metric = ("binclass", "accuracy") if dataset == "c" else ("regression", "rmse")
    return {
        "dataset": dataset, "model": model, "seed": seed, "task": task, "status": "ok",
        metric: test, "fit_time_s": time,
        "model_info": {
            "ensemble_val": {"score": val, "loss": -val},
            "ensemble": [{"backbone": b, "weight": w} for b, w in weights],
        },
    }


ROWS = [
    # classification: the variant is better on val, its test gain (0.03) beats the spread
    row("c", "tabnas", 0, val=0.80, test=0.80, time=10),
    row("c", "tabnas", 1, val=0.80, test=0.80, time=20),
    row("c", "tabnas-x", 0, val=0.82, test=0.83, time=15, weights=(("cells", 0.5), ("x", 0.5))),
    row("c", "tabnas-x", 1, val=0.82, test=0.83, time=30, weights=(("cells", 1.0), ("x", 0.0))),
    # regression: worse on val (-0.5 < -0.4), test RMSE within the spread (tie)
    row("r", "tabnas", 0, val=-0.4, test=1.0, time=10),
    row("r", "tabnas", 1, val=-0.4, test=1.2, time=10),
    row("r", "tabnas-x", 0, val=-0.5, test=1.1, time=40),
    row("r", "tabnas-x", 1, val=-0.5, test=1.1, time=40),
    {"dataset": "r", "model": "lightgbm", "seed": 0, "task": "regression", "status": "ok",
     "rmse": 0.9, "fit_time_s": 1.0},  # not a tabnas variant: left out
]


def test_variants_are_decided_on_validation_with_test_and_time_beside(tmp_path):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path, verdicts = ablation.write_report(tmp_path, base="tabnas")
    (verdict,) = verdicts.to_dict("records")
    assert verdict["variant"] == "tabnas-x"
    assert verdict["val (better/equal/worse)"] == "1/0/1"
    assert verdict["val loss (better/equal/worse)"] == "1/0/1"
    assert verdict["test (W/T/L)"] == "1/1/0"
    assert verdict["median fit-time ratio"] == pytest.approx(2.75)  # 1.5, 1.5, 4, 4
    text = path.read_text()
    assert "lightgbm" not in text and "weight:x" in text
    jobs = ablation.job_frame(ROWS)
    means = ablation.compare(jobs, "tabnas")[0].set_index(["dataset", "model"])
    assert means.loc[("c", "tabnas-x"), "weight:x"] == pytest.approx(0.25)


def test_the_title_names_the_runs_config(tmp_path):
    run = tmp_path / "medium"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path, _ = ablation.write_report(run)
    assert path.read_text().startswith("# Ablation: medium\n")  # no config.json: the folder
    (run / "config.json").write_text(json.dumps({"name": "selection_medium"}))
    path, _ = ablation.write_report(run)
    assert path.read_text().startswith("# Ablation: selection_medium\n")


def test_a_missing_base_is_a_clear_error(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps(ROWS[2]) + "\n")
    with pytest.raises(ValueError, match="base variant 'tabnas'"):
        ablation.write_report(tmp_path)


def test_scores_on_unseen_validation_rows_are_preferred_to_the_ensembles_own():
    fitted_on_val = {"score": 0.99, "loss": 0.01}
    info = {"ensemble_val": fitted_on_val, "heldout": {"accuracy": 0.7, "log_loss": 0.6}}
    assert ablation._validation(info, "accuracy") == {
        "val": 0.7, "val_loss": 0.6, "val_source": "heldout"
    }
    info = {"ensemble_val": fitted_on_val, "heldout": {"rmse": 2.0, "r2": 0.5}}
    assert ablation._validation(info, "rmse")["val"] == -2.0
    assert ablation._validation({"ensemble_val": fitted_on_val}, "rmse")["val_source"] == "ensemble"
