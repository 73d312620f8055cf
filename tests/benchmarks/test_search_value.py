"""The search-value study: every arm on one split, random search at equal time, the report."""

from __future__ import annotations

import json

import pytest

from benchmarks.config import DatasetSpec, ModelSpec
from benchmarks.jobs import Job, execute
from benchmarks.search_value import POINTS, SEARCH_ARMS, SearchValueModel, report, summarise_job

TINY = {"preset": "fast", "n_random": 2, "max_search_steps": 6, "max_epochs": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEARCH = {"supernet_val": 0.5, "search_steps": 10, "alpha_shift": 0.0}
"""What a search arm records beside an arm's own figures."""


def arm(time, val, test, **extra):
    """One arm's row as a job records it (a binary task's accuracy)."""
    return {
        "fit_time_s": time, "val_score": val, "test": {"accuracy": test}, "ops": ["ffn"], **extra
    }


@pytest.mark.parametrize("dataset", ["tiny_clf", "tiny_reg"])
def test_one_job_scores_every_arm_on_the_same_test_split(tiny_index, tmp_path, dataset):
    job = Job(
        DatasetSpec(dataset, "local", dataset), ModelSpec("search_value", "search_value", TINY),
        seed=1, datasets_index=str(tiny_index), isolate=False,
    )
    row = execute(job)
    assert row["status"] == "ok", row.get("traceback")
    arms = row["arms"]
    randoms = [a for a in arms if a.startswith("random-")]
    assert set(arms) == {*SEARCH_ARMS, "darts-argmax", *POINTS, *randoms} and len(randoms) >= 2
    metric = "rmse" if row["task"] == "regression" else "accuracy"
    # the row's own score is the default arm's
    assert row[metric] == arms["darts-pt"]["test"][metric]
    assert arms["ft-point"]["ops"] == ["attention", "ffn"] * 2
    assert arms["resnet-point"]["ops"] == ["resnet", "skip"] * 2
    assert arms["fixed-alpha-pt"]["alpha_shift"] == 0.0 < arms["darts-pt"]["alpha_shift"]
    assert len({tuple(arms[a]["ops"]) for a in randoms}) == len(randoms)  # distinct samples
    assert all(arms[a]["fit_time_s"] > 0 for a in arms)

    (tmp_path / "results.jsonl").write_text(json.dumps(row, default=str) + "\n")
    text = report(tmp_path / "results.jsonl")
    assert (
        f"| {dataset} |" in text
        and "Discretisation gap" in text
        and "decided on validation" in text
    )


def test_random_search_at_equal_time_takes_the_best_on_val_within_the_budget():
    arms = {
        "darts-pt": arm(10.0, 0.8, 0.80, **SEARCH),
        "fixed-alpha-pt": arm(4.0, 0.7, 0.70, **SEARCH),
        "darts-argmax": arm(5.0, 0.6, 0.60),
        "ft-point": arm(1.0, 0.6, 0.60),
        "resnet-point": arm(1.0, 0.6, 0.60),
        "random-0": arm(3.0, 0.60, 0.61),
        "random-1": arm(3.0, 0.90, 0.62),  # best on val, within both budgets
        "random-2": arm(3.0, 0.95, 0.63),  # within darts-pt's 10 s only
        "random-3": arm(3.0, 0.99, 0.99),  # past every budget
    }
    summary = summarise_job(arms, "binclass", "darts-pt")
    assert summary["test:random-search@darts-pt"] == 0.63 and summary["n_random@darts-pt"] == 3
    assert (
        summary["test:random-search@fixed-alpha-pt"] == 0.61
        and summary["n_random@fixed-alpha-pt"] == 1
    )
    assert summary["test:random-median"] == pytest.approx(0.625)
    assert summary["gap:darts-pt"] == pytest.approx(0.3)
    # argmax, selection of the darts-pt search: random search in its own 5 s, its gap
    # against the darts-pt supernet
    assert summary["test:random-search@darts-argmax"] == 0.61
    assert summary["n_random@darts-argmax"] == 1
    assert summary["gap:darts-argmax"] == pytest.approx(0.1)


def test_the_report_decides_the_selection_on_validation(tmp_path):
    arms = {
        "darts-pt": arm(10.0, 0.8, 0.80, **SEARCH),
        "fixed-alpha-pt": arm(4.0, 0.7, 0.70, **SEARCH),
        "darts-argmax": arm(5.0, 0.9, 0.60),  # better on val, worse on test
        "ft-point": arm(1.0, 0.6, 0.60),
        "resnet-point": arm(1.0, 0.6, 0.60),
        **{f"random-{i}": arm(3.0, 0.6, 0.65) for i in range(3)},
    }
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(
        {"status": "ok", "dataset": "toy", "task": "binclass", "arms": arms}
    ) + "\n")
    text = report(results)
    assert "| toy | 0.8000 | 0.9000 | darts-argmax |" in text
    assert "darts-pt 0, darts-argmax 1, tie 0" in text
    assert "| darts-argmax | 0/0/1 | 0/0/1 | – |" in text  # its test loses to random arms


def test_evolution_starts_from_the_random_arms_and_fills_the_budget(monkeypatch):
    from tabnas import TabNASClassifier
    from tabnas.nas.space import SearchSpace

    space = SearchSpace()
    model = SearchValueModel(
        task="binclass", n_classes=2, seed=3, threads=1,
        options={"evolution_population": 3, "evolution_sample": 2},
    )
    fitted = []

    def fit_one(self, X_train, y_train, X_val, y_val, arm, **params):
        architecture = params["architecture"]
        fitted.append(arm)
        self.arms_[arm] = {  # attention pays: the evolution should find it
            "fit_time_s": 2.0, "val_score": architecture.ops.count("attention") / 4,
            "ops": list(architecture.ops), "estimator": TabNASClassifier(),
        }

    monkeypatch.setattr(SearchValueModel, "_fit_one", fit_one)
    model.arms_ = {}
    for i in range(4):  # the random arms, as fit() samples them
        model._fit_one(None, None, None, None, f"random-{i}",
                       architecture=space.sample(seed=1000 * model.seed + i))
    fitted.clear()
    model._evolve(None, None, None, None, preset="fast", space=space, budget=15.0)
    # 3 random arms reused (6 s), then children of 2 s each until the clock reaches 15 s
    assert fitted == [f"evolution-{i}" for i in range(5)]
    assert model.arms_["random-2"]["population"] == 3 and "population" not in model.arms_[
        "random-3"
    ]
    for i in range(5):
        arm = model.arms_[f"evolution-{i}"]
        assert arm["population"] == 3
        assert arm["parent"] in {f"random-{j}" for j in range(3)} | {
            f"evolution-{j}" for j in range(i)
        }


def test_evolution_at_equal_time_continues_the_random_arms_it_started_from(tmp_path):
    arms = {
        "darts-pt": arm(10.0, 0.8, 0.80, **SEARCH),
        "fixed-alpha-pt": arm(4.0, 0.7, 0.70, **SEARCH),
        "darts-argmax": arm(5.0, 0.6, 0.60),
        "ft-point": arm(1.0, 0.6, 0.60),
        "resnet-point": arm(1.0, 0.6, 0.60),
        "random-0": arm(3.0, 0.60, 0.61),
        "random-1": arm(3.0, 0.50, 0.62),
        "random-2": arm(3.0, 0.95, 0.63),  # not in the population of 2
        "evolution-0": arm(3.0, 0.90, 0.70, population=2, parent="random-0"),
        "evolution-1": arm(3.0, 0.99, 0.99, population=2, parent="evolution-0"),  # too late
    }
    summary = summarise_job(arms, "binclass", "darts-pt")
    assert summary["test:evolution@darts-pt"] == 0.70 and summary["n_evolution@darts-pt"] == 3
    assert summary["test:evolution@fixed-alpha-pt"] == 0.61
    assert summary["test:random-search@darts-pt"] == 0.63  # random-2 in its place
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(
        {"status": "ok", "dataset": "toy", "task": "binclass", "arms": arms}
    ) + "\n")
    text = report(results)
    assert "| evolution = darts-pt time | evolution = fixed-α time |" in text
    assert "Evolution vs random search at equal time" in text and "n_evolution@darts-pt" in text


def test_a_job_with_the_evolution_arm_reports_it(tiny_index, tmp_path):
    options = {**TINY, "evolution_population": 2, "evolution_sample": 2}
    job = Job(
        DatasetSpec("tiny_clf", "local", "tiny_clf"),
        ModelSpec("search_value", "search_value", options),
        seed=1, datasets_index=str(tiny_index), isolate=False,
    )
    row = execute(job)
    assert row["status"] == "ok", row.get("traceback")
    children = [a for a in row["arms"] if a.startswith("evolution-")]
    assert children, "the budget of the slowest search arm leaves room for children"
    for child in children:
        info = row["arms"][child]
        assert info["population"] == 2 and "accuracy" in info["test"]
        assert info["parent"] in {"random-0", "random-1", *children}
    (tmp_path / "results.jsonl").write_text(json.dumps(row, default=str) + "\n")
    assert "| evolution = darts-pt time |" in report(tmp_path / "results.jsonl")


def test_paired_by_seed_counts_seeds_and_turns_rmse_so_that_positive_is_better(tmp_path):
    from benchmarks.search_value import paired

    accuracy = [{"higher_is_better": True, "test:a": a, "test:b": b}
                for a, b in ((0.80, 0.70), (0.75, 0.75), (0.90, 0.80))]
    counts, mean, se = paired(accuracy, "test:a", "test:b")
    assert counts == [2, 1, 0] and mean == pytest.approx(0.2 / 3)
    assert se == pytest.approx(0.057735 / 3**0.5, rel=1e-4)
    rmse = [{"higher_is_better": False, "test:a": a, "test:b": b}
            for a, b in ((0.40, 0.50), (0.41, 0.50), (0.42, 0.50))]
    counts, mean, se = paired(rmse, "test:a", "test:b")
    assert counts == [3, 0, 0] and mean == pytest.approx(0.09) and mean > 2 * se

    # in the report: a win on every seed by a steady margin is outside the spread
    def job(seed, own):
        arms = {
            "darts-pt": arm(10.0, 0.8, own, **SEARCH),
            "fixed-alpha-pt": arm(4.0, 0.7, 0.70, **SEARCH),
            "darts-argmax": arm(5.0, 0.9, 0.60),
            "ft-point": arm(1.0, 0.6, 0.60),
            "resnet-point": arm(1.0, 0.6, 0.60),
            **{f"random-{i}": arm(3.0, 0.6, 0.65) for i in range(3)},
        }
        return {"status": "ok", "dataset": "toy", "task": "binclass", "seed": seed, "arms": arms}

    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(job(s, own)) + "\n"
                               for s, own in enumerate((0.80, 0.81, 0.79))))
    text = report(results)
    assert "| toy | darts-pt | **3/0/0: +0.1500 ± 0.0058** |" in text
    assert "darts-pt 1 against the median random architecture, 1 against random search" in text
    assert "darts-argmax 0 against the median random" in text  # it loses
