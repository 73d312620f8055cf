"""The strategies study: one job searches once and scores both selectors; the report ranks."""

from __future__ import annotations

import json

import pytest

from benchmarks.config import DatasetSpec, ModelSpec, load_config
from benchmarks.jobs import Job, execute
from benchmarks.models import model_family
from benchmarks.strategies import average_ranks, plot_trajectories, report
from tabnas.estimators._presets import PRESETS

TINY = {"preset": "fast", "max_search_steps": 6, "max_epochs": 2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_variants_of_the_strategy_family_are_models():
    assert model_family("strategy-gdas") == "strategy"
    with pytest.raises(ValueError, match="strategy-<variant>"):
        model_family("svm-fast")
    config = load_config("strategies", check_local=False)  # names only: no data needed
    assert {m.family for m in config.models} == {"strategy"}
    assert {m.options["strategy"] for m in config.models} >= {"darts", "gdas", "pdarts"}


@pytest.mark.parametrize("dataset", ["tiny_clf", "tiny_reg"])
def test_one_job_scores_pt_and_argmax_of_one_search(tiny_index, tmp_path, dataset):
    options = {**TINY, "strategy": "darts", "strategy_options": {"lr": 0.05}}
    job = Job(
        DatasetSpec(dataset, "local", dataset), ModelSpec("strategy-darts", "strategy", options),
        seed=1, datasets_index=str(tiny_index), isolate=False,
    )
    row = execute(job)
    assert row["status"] == "ok", row.get("traceback")
    arms = row["arms"]
    assert set(arms) == {"pt", "argmax", "search"}
    search = arms["search"]
    assert search["strategy"].startswith("DARTS(lr=0.05")
    assert search["alpha_shift"] > 0 and len(search["alpha_trajectory"]) >= 1
    assert len(search["alpha_trajectory"][0]) == len(search["ops"])
    assert set(search["lead_share"]) <= {"skip", "none"}
    # the argmax arm is charged the search it needs
    assert arms["argmax"]["fit_time_s"] > search["search_s"]
    metric = "rmse" if row["task"] == "regression" else "accuracy"
    assert row[metric] == arms["pt"]["test"][metric]

    (tmp_path / "results.jsonl").write_text(json.dumps(row, default=str) + "\n")
    text = report(tmp_path / "results.jsonl")
    assert "strategy-darts/pt" in text and "Ranks first on validation" in text
    assert plot_trajectories(tmp_path / "results.jsonl", tmp_path / "alpha.png").stat().st_size


def test_average_ranks_share_ties_and_follow_the_metric_direction():
    def entry(test, higher=True):
        return [{"test": test, "higher": higher, "val": -test}]

    table = {
        ("a", "clf"): entry(0.9), ("b", "clf"): entry(0.8), ("c", "clf"): entry(0.9),
        ("a", "reg"): entry(2.0, False), ("b", "reg"): entry(1.0, False),
        ("c", "reg"): entry(3.0, False),
    }
    ranks = average_ranks(table)
    assert ranks == {"a": (1.5 + 2) / 2, "b": (3 + 1) / 2, "c": (1.5 + 3) / 2}
    # validation scores are higher-is-better on every task (accuracy, -RMSE)
    assert average_ranks(table, "val") == {"a": (2.5 + 2) / 2, "b": 1.0, "c": (2.5 + 3) / 2}


def test_only_a_pair_that_ran_on_every_dataset_can_rank_first(tmp_path):
    def job(model, dataset, val):
        arm = {"test": {"accuracy": 0.5}, "val_score": val, "fit_time_s": 1.0, "ops": ["ffn"]}
        search = {"supernet_val": 0.5, "search_s": 1.0, "selection_s": 1.0, "search_steps": 10,
                  "lead_share": {}}
        return {"status": "ok", "task": "binclass", "model": model, "dataset": dataset,
                "arms": {"search": search, "pt": arm, "argmax": arm}}

    rows = [job("partial", "a", 0.9), job("full", "a", 0.6), job("full", "b", 0.6)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report(path)
    # "partial" has the best validation rank, but on one of the two datasets only
    assert "Ranks first on validation: full/" in text
    assert "| partial/pt | 1 | 1.50 |" in text  # tied with its argmax arm


def test_each_strategy_is_compared_with_the_default_on_the_datasets_both_ran(tmp_path):
    def job(model, dataset, val, seconds):
        arm = {"test": {"accuracy": 0.5}, "val_score": val, "fit_time_s": 1.0, "ops": ["ffn"]}
        search = {"supernet_val": 0.5, "search_s": seconds / 2, "selection_s": seconds / 2,
                  "search_steps": 10, "lead_share": {}}
        return {"status": "ok", "task": "binclass", "model": model, "dataset": dataset,
                "arms": {"search": search, "pt": arm, "argmax": arm}}

    rows = [
        job("strategy-darts", "a", 0.80, 10.0), job("strategy-darts", "b", 0.70, 20.0),
        job("strategy-darts", "c", 0.60, 10.0),
        job("strategy-gdas", "a", 0.85, 5.0), job("strategy-gdas", "b", 0.70004, 4.0),
        job("strategy-gdas", "c", 0.50, 30.0), job("strategy-gdas", "d", 0.99, 1.0),
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report(path)
    assert "## Against the default (strategy-darts), the same selection" in text
    # a better, b equal to 4 decimals, c worse; d has no default row; time 0.2x-3x
    assert "| strategy-gdas/pt | 3 | 1 / 1 / 1 | 0.20–3.00 |" in text
    assert "| strategy-gdas/argmax | 3 | 1 / 1 / 1 | 0.20–3.00 |" in text
    assert "| strategy-darts/" not in text.split("## Against the default")[1]


def test_the_study_searches_at_the_presets_width_but_one_variant():
    config = load_config("strategies", check_local=False)
    widths = {m.name: m.options.get("search_width") for m in config.models}
    lengths = {m.name: m.options.get("min_search_steps") for m in config.models}
    # and at the preset's search length but one
    assert lengths.pop("strategy-darts-short") == 60 < PRESETS["medium"].min_steps
    assert set(lengths.values()) == {None}
    # every variant follows the preset ("medium": a half-width proxy) but one
    assert widths.pop("strategy-darts-full-width") == 1.0
    assert set(widths.values()) == {None}
    assert PRESETS["medium"].search_width == 0.5


def test_a_proxy_search_retrains_its_selections_at_full_width(tiny_index):
    options = {**TINY, "strategy": "darts", "search_width": 0.5}
    job = Job(
        DatasetSpec("tiny_clf", "local", "tiny_clf"),
        ModelSpec("strategy-darts", "strategy", options),
        seed=0, datasets_index=str(tiny_index), isolate=False,
    )
    row = execute(job)
    assert row["status"] == "ok", row.get("traceback")
    assert "d_token=32" in row["arms"]["pt"]["architecture"]  # the fast preset's full width
    assert "d_token=32" in row["arms"]["argmax"]["architecture"]


def test_the_optimizer_study_compares_each_pair_with_the_default(tmp_path):
    def job(model, dataset, val, supernet, eig):
        arm = {"test": {"accuracy": 0.5}, "val_score": val, "fit_time_s": 1.0, "ops": ["ffn"]}
        search = {"supernet_val": supernet, "search_s": 1.0, "selection_s": 1.0,
                  "search_steps": 10, "lead_share": {}, "alpha_hessian_eig": eig}
        return {"status": "ok", "task": "binclass", "model": model, "dataset": dataset,
                "arms": {"search": search, "pt": arm, "argmax": arm}}

    rows = [
        job("strategy-darts", "a", 0.80, 0.70, 0.2), job("strategy-darts", "b", 0.70, 0.60, -0.4),
        job("strategy-darts-sgd-sgd", "a", 0.75, 0.72, -0.1),
        job("strategy-darts-sgd-sgd", "b", 0.70, 0.50, 0.2),
        job("strategy-darts-sgd-sgd", "c", 0.99, 0.99, 9.0),  # no default row: left out
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report(path).split("## The optimizer study")[1]
    # supernet better on a, worse on b; selections worse on a, equal on b; the
    # eigenvalues' magnitudes (not their signs) are compared: 0.1/0.2 and 0.2/0.4
    assert "| SGD, SGD | 2 | 1 / 0 / 1 | 0 / 1 / 1 | 0 / 1 / 1 | 0.50–0.50 |" in text
    assert "| AdamW, Adam | 0.2 | 0.4 | – |" in text
    assert "SGD, Adam" not in text  # a pair that has not run has no row
    # without any pair beside the default the section is left out
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert "## The optimizer study" not in report(path)
