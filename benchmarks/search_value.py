"""Does the search earn its cost? The ``search_value`` study: every arm on one split.

One job of the model family ``search_value`` runs, on the same train / val split and with
the same retrain protocol (early stopping on val, best weights restored), these arms:

- ``darts-pt``: the search with DARTS (first order) and PT selection;
- ``fixed-alpha-pt``: α frozen at uniform, PT does all the choosing;
- ``darts-argmax``: DARTS's own rule applied to the α of the ``darts-pt`` search, retrained;
- ``random-<i>``: uniformly random architectures of the same space, each retrained. The
  first of them that fit in a search arm's fit time form *black-box random search at
  equal time* (the best on val wins); all of them give the *median random architecture*;
- ``ft-point`` and ``resnet-point``: FT-Transformer's and a ResNet's points of the space
  (``space.chain(["attention", "ffn"])``, ``space.chain(["resnet", "skip"])``);
- ``evolution-<i>`` (with the option ``evolution_population`` P > 0): regularised evolution
  (:func:`tabnas.nas.evolution.regularized_evolution`, sample size ``evolution_sample``)
  whose initial population is ``random-0 .. random-(P-1)``, already fitted, and whose
  children are retrained like them, until the evaluations' fit times fill the slowest
  search arm's. Its first evaluations within a search arm's fit time form *evolution at
  equal time*, beside random search at equal time (the best on val wins).

The study is about the cells search, so every arm searches or trains the preset's space
restricted to the ``cells`` backbone (no TabM candidate, no ensemble).

Every arm records its fit time, its val score (what a user could select on) and, through
:meth:`SearchValueModel.score_arms`, its test scores. The search arms also record the
undiscretised supernet's val score (the discretisation gap). ``python -m
benchmarks.search_value DIR`` turns a run's ``results.jsonl`` into the study's report.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.models import Adapter
from benchmarks.results_io import read_results

SEARCH_ARMS = {"darts-pt": ("darts", "pt"), "fixed-alpha-pt": ("fixed-alpha", "pt")}
POINTS = {"ft-point": ("attention", "ffn"), "resnet-point": ("resnet", "skip")}
SELECTIONS = (*SEARCH_ARMS, "darts-argmax")
"""The arms that choose an architecture by a search: the PT arms and DARTS's argmax
(``selection="argmax"``: the darts-pt search, then its argmax retrained)."""


class SearchValueModel(Adapter):
    """All arms of the study; ``predict`` answers with ``options["default"]`` (darts-pt)."""

    family = "search_value"
    package = "tabnas"
    uses_torch = True
    option_names = frozenset({
        "preset", "n_random", "default", "max_search_steps", "max_epochs",
        "evolution_population", "evolution_sample",
    })
    imports = ("tabnas",)

    def fit(self, X_train, y_train, X_val, y_val):
        preset = self.options.get("preset", "fast")
        n_random = int(self.options.get("n_random", 6))
        self.arms_: dict[str, dict[str, Any]] = {}
        cells = dataclasses.replace(
            self._estimator_class()(preset=preset).search_space(), backbones=("cells",)
        )
        for arm, (strategy, selection) in SEARCH_ARMS.items():
            est = self._fit_one(X_train, y_train, X_val, y_val, arm, preset=preset, space=cells,
                                search_strategy=strategy, selection=selection)
            info = self.arms_[arm]
            info["supernet_val"] = est.fit_info_["supernet_val"]["score"]
            info["search_steps"] = est.fit_info_["search_steps"]
            info["tune_steps"] = est.fit_info_["tune_steps"]
            info["alpha_shift"] = est.fit_info_["alpha_shift"]
            info["timings"] = {k: round(float(v), 3) for k, v in est.timings_.items()}
            if arm == "darts-pt":
                space = est.search_space_
                argmax = est.argmax_architecture_
                search_time = est.timings_["search_s"]
        self._fit_one(X_train, y_train, X_val, y_val, "darts-argmax", preset=preset,
                      architecture=argmax)
        self.arms_["darts-argmax"]["fit_time_s"] += search_time  # it needs the darts search
        for arm, ops in POINTS.items():
            self._fit_one(X_train, y_train, X_val, y_val, arm, preset=preset,
                          architecture=space.chain(ops))
        # Random architectures: at least n_random, and enough to fill the slowest search arm's time.
        budget = max(self.arms_[arm]["fit_time_s"] for arm in SEARCH_ARMS)
        spent, i = 0.0, 0
        while i < n_random or spent < budget:
            arch = space.sample(seed=1000 * self.seed + i)
            self._fit_one(X_train, y_train, X_val, y_val, f"random-{i}", preset=preset,
                          architecture=arch)
            spent += self.arms_[f"random-{i}"]["fit_time_s"]
            i += 1
        if int(self.options.get("evolution_population", 0)):
            self._evolve(X_train, y_train, X_val, y_val, preset=preset, space=space, budget=budget)
        return self

    def _evolve(self, X_train, y_train, X_val, y_val, *, preset: str, space, budget: float):
        """Regularised evolution from the first random arms, each child retrained as they
        are, until the evaluations' fit times reach ``budget``."""
        from tabnas.nas.evolution import regularized_evolution

        population = int(self.options["evolution_population"])
        randoms = [f"random-{i}" for i in range(population)]
        if any(arm not in self.arms_ for arm in randoms):
            raise ValueError(
                f"evolution_population={population} needs as many random arms;"
                f" n_random={self.options.get('n_random', 6)}"
            )
        initial = [space.sample(seed=1000 * self.seed + i) for i in range(population)]  # as fit
        names: list[str] = []  # the arm of each evaluation, in order
        spent = [0.0]  # the clock of the evolution: the fit time of its evaluations

        def evaluate(architecture) -> float:
            arm = randoms[len(names)] if len(names) < population else (
                f"evolution-{len(names) - population}"
            )
            if arm not in self.arms_:
                self._fit_one(X_train, y_train, X_val, y_val, arm, preset=preset,
                              architecture=architecture)
            self.arms_[arm]["population"] = population  # an evaluation of the evolution
            names.append(arm)
            spent[0] += self.arms_[arm]["fit_time_s"]
            return self.arms_[arm]["val_score"]

        result = regularized_evolution(
            space, evaluate, population_size=population,
            sample_size=int(self.options.get("evolution_sample", 2)), max_seconds=budget,
            initial=initial, seed=self.seed, clock=lambda: spent[0],
        )
        for individual in result.history[population:]:
            assert individual.parent is not None  # a child of the evolution
            self.arms_[names[individual.index]]["parent"] = names[individual.parent]

    def _estimator_class(self):
        from tabnas import TabNASClassifier, TabNASRegressor

        return TabNASClassifier if self.is_classification else TabNASRegressor

    def _fit_one(self, X_train, y_train, X_val, y_val, arm: str, **params):
        cls = self._estimator_class()
        budget = {
            k: self.options[k] for k in ("max_search_steps", "max_epochs") if k in self.options
        }
        started = time.perf_counter()
        est = cls(random_state=self.seed, **budget, **params).fit(
            X_train, y_train, X_val=X_val, y_val=y_val
        )
        self.arms_[arm] = {
            "estimator": est,
            "fit_time_s": time.perf_counter() - started,
            "val_score": float(est.fit_info_["best_val"]["score"]),
            "architecture": str(est.architecture_),
            "ops": list(est.architecture_.ops),
            "n_parameters": int(est.n_parameters_),
        }
        return est

    @property
    def _default(self):
        return self.arms_[self.options.get("default", "darts-pt")]["estimator"]

    def predict_proba(self, X):
        return self._default.predict_proba(X)

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return self._default.predict(X)

    def score_arms(self, X_test, y_test, task: str) -> dict[str, dict[str, Any]]:
        """Every arm's test scores beside what it recorded at fit."""
        return score_arms(self.arms_, X_test, y_test, task)

    def info(self):
        est = self._default
        return {"device": est.device_, "n_parameters": int(est.n_parameters_),
                "architecture": est.architecture_.to_dict()}


def score_arms(
    arms: dict[str, dict[str, Any]], X_test, y_test, task: str
) -> dict[str, dict[str, Any]]:
    """Each arm's test scores (its ``"estimator"`` on the test split) beside what it
    recorded at fit; the estimator itself is left out."""
    from benchmarks.protocol import scores

    out = {}
    for arm, info in arms.items():
        est = info["estimator"]
        if task == "regression":
            metrics = scores(task, y_test, pred=est.predict(X_test))
        else:
            metrics = scores(task, y_test, proba=est.predict_proba(X_test))
        out[arm] = {
            **{k: v for k, v in info.items() if k != "estimator"},
            "fit_time_s": round(info["fit_time_s"], 3),
            "test": metrics,
        }
    return out


# ---- the report ----------------------------------------------------------------------------
PRIMARY = {
    "binclass": ("accuracy", True),
    "multiclass": ("accuracy", True),
    "regression": ("rmse", False),
}


def summarise_job(arms: dict[str, dict[str, Any]], task: str, default: str) -> dict[str, Any]:
    """One job's figures: each named arm's test score, and random search at equal time."""
    metric, higher = PRIMARY[task]
    test = {arm: info["test"][metric] for arm, info in arms.items()}
    randoms = sorted(
        (a for a in arms if a.startswith("random-")), key=lambda a: int(a.split("-")[1])
    )
    out: dict[str, Any] = {f"test:{a}": test[a] for a in (*SEARCH_ARMS, "darts-argmax", *POINTS)}
    out["test:random-median"] = statistics.median(test[a] for a in randoms)
    for arm in SELECTIONS:  # black-box random search in this arm's fit time (at least one)
        chosen = _within(randoms, arms, arms[arm]["fit_time_s"])
        best = max(chosen, key=lambda a: arms[a]["val_score"])
        out[f"test:random-search@{arm}"] = test[best]
        out[f"n_random@{arm}"] = len(chosen)
        out[f"val:{arm}"] = arms[arm]["val_score"]
    # argmax discretises the darts-pt search's supernet
    supernet = {**{a: a for a in SEARCH_ARMS}, "darts-argmax": "darts-pt"}
    for arm in SELECTIONS:
        out[f"gap:{arm}"] = arms[arm]["val_score"] - arms[supernet[arm]]["supernet_val"]
    for arm in SEARCH_ARMS:
        out[f"time:{arm}"] = arms[arm]["fit_time_s"]
        out[f"steps:{arm}"] = arms[arm]["search_steps"]
        out[f"alpha_shift:{arm}"] = arms[arm]["alpha_shift"]
    out["time:random-each"] = statistics.mean(arms[a]["fit_time_s"] for a in randoms)
    out["time:darts-argmax"] = arms["darts-argmax"]["fit_time_s"]
    for arm in POINTS:
        out[f"time:{arm}"] = arms[arm]["fit_time_s"]
    population = max((info.get("population", 0) for info in arms.values()), default=0)
    if population:  # evolution at equal time: its initial random arms, then its children
        evolution = sorted(
            (a for a in arms if a.startswith("evolution-")), key=lambda a: int(a.split("-")[1])
        )
        sequence = randoms[:population] + evolution
        for arm in SELECTIONS:
            chosen = _within(sequence, arms, arms[arm]["fit_time_s"])
            best = max(chosen, key=lambda a: arms[a]["val_score"])
            out[f"test:evolution@{arm}"] = test[best]
            out[f"n_evolution@{arm}"] = len(chosen)
    for arm in SELECTIONS:
        out[f"ops:{arm}"] = arms[arm]["ops"]
    out["metric"], out["higher_is_better"] = metric, higher
    return out


def _within(sequence: list[str], arms: dict[str, dict[str, Any]], budget: float) -> list[str]:
    """The first arms of ``sequence`` whose fit times add up to at most ``budget`` (at
    least one)."""
    spent, chosen = 0.0, []
    for a in sequence:
        spent += arms[a]["fit_time_s"]
        if chosen and spent > budget:
            break
        chosen.append(a)
    return chosen


COLUMNS = [
    ("darts-pt", "test:darts-pt"),
    ("fixed-α PT", "test:fixed-alpha-pt"),
    ("darts argmax", "test:darts-argmax"),
    ("random search = darts-pt time", "test:random-search@darts-pt"),
    ("random search = fixed-α time", "test:random-search@fixed-alpha-pt"),
    ("random search = argmax time", "test:random-search@darts-argmax"),
    ("median random", "test:random-median"),
    ("FT-T point", "test:ft-point"),
    ("ResNet point", "test:resnet-point"),
]
EVOLUTION_COLUMNS = [
    ("evolution = darts-pt time", "test:evolution@darts-pt"),
    ("evolution = fixed-α time", "test:evolution@fixed-alpha-pt"),
    ("evolution = argmax time", "test:evolution@darts-argmax"),
]


def report(results: Path, default: str = "darts-pt") -> str:
    rows = [r for r in read_results(results) if r.get("status") == "ok" and r.get("arms")]
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_dataset.setdefault(row["dataset"], []).append(
            {**summarise_job(row["arms"], row["task"], default), "task": row["task"],
             "n_train": row.get("n_train")}
        )
    # the evolution arm's figures, when every job ran it
    evolution = all("test:evolution@darts-pt" in j for js in by_dataset.values() for j in js)
    columns = COLUMNS + (EVOLUTION_COLUMNS if evolution else [])
    lines = [
        "| dataset | task (metric) | seeds | " + " | ".join(name for name, _ in columns) + " |",
        "|---" * (3 + len(columns)) + "|",
    ]
    tally: dict[str, dict[str, list[int]]] = {
        "median": {}, "random-search": {}, "argmax": {}, "ft": {}, "resnet": {}
    }
    if evolution:
        tally["evolution"] = {}
    evolution_vs_random = [0, 0, 0]
    gaps, times = [], []
    for dataset, jobs in sorted(by_dataset.items()):
        metric, higher = jobs[0]["metric"], jobs[0]["higher_is_better"]
        mean = {key: float(np.mean([j[key] for j in jobs])) for _, key in columns}
        std = {key: float(np.std([j[key] for j in jobs])) for _, key in columns}
        best = max(mean.values()) if higher else min(mean.values())
        cells = []
        for _, key in columns:
            text = f"{mean[key]:.4g} ± {std[key]:.2g}"
            cells.append(f"**{text}**" if mean[key] == best else text)
        lines.append(
            f"| {dataset} | {jobs[0]['task']} ({metric}) | {len(jobs)} | "
            + " | ".join(cells)
            + " |"
        )
        for arm in SELECTIONS:
            sign = 1 if higher else -1
            own = mean[f"test:{arm}"]
            for name, key in (
                ("median", "test:random-median"),
                ("random-search", f"test:random-search@{arm}"),
                ("argmax", "test:darts-argmax"),
                ("ft", "test:ft-point"),
                ("resnet", "test:resnet-point"),
                ("evolution", f"test:evolution@{arm}"),
            ):
                if name not in tally or key == f"test:{arm}":
                    continue
                tally[name].setdefault(arm, [0, 0, 0])
                diff = sign * (own - mean[key])
                tally[name][arm][0 if diff > 0 else 1 if diff == 0 else 2] += 1
            if evolution:
                diff = sign * (mean[f"test:evolution@{arm}"] - mean[f"test:random-search@{arm}"])
                evolution_vs_random[0 if diff > 0 else 1 if diff == 0 else 2] += 1
            gaps.append((dataset, arm, float(np.mean([j[f"gap:{arm}"] for j in jobs]))))
        times.append((
            dataset,
            {k: float(np.mean([j[k] for j in jobs])) for k in jobs[0] if k.startswith("time:")},
            {
                k: float(np.mean([j[k] for j in jobs]))
                for k in jobs[0]
                if k.startswith(("n_random@", "steps:", "alpha_shift:"))
                or (evolution and k.startswith("n_evolution@"))
            },
        ))
    out = ["## Test scores (mean ± std over seeds; best of the row in bold)", "", *lines, ""]
    out += ["## The default strategy, decided on validation", "",
            "Mean validation score of the retrained selection (accuracy, or −RMSE in"
            " standardised units); the test split plays no part in this choice.", "",
            "| dataset | " + " | ".join(SEARCH_ARMS) + " | better on val | mean fit time (s) |",
            "|---" * (3 + len(SEARCH_ARMS)) + "|"]
    val_wins = dict.fromkeys(SEARCH_ARMS, 0)
    for dataset, jobs in sorted(by_dataset.items()):
        val = {arm: float(np.mean([j[f"val:{arm}"] for j in jobs])) for arm in SEARCH_ARMS}
        best_arm = max(val, key=val.get)
        val_wins[best_arm] += 1
        fit = " / ".join(f"{np.mean([j[f'time:{arm}'] for j in jobs]):.1f}" for arm in SEARCH_ARMS)
        out.append(f"| {dataset} | " + " | ".join(f"{val[a]:.4f}" for a in SEARCH_ARMS)
                   + f" | {best_arm} | {fit} |")
    out += [
        "", "Datasets won on validation: " + ", ".join(f"{a} {n}" for a, n in val_wins.items()), ""
    ]
    out += ["## The selection, decided on validation: PT against DARTS's argmax", "",
            "The same darts search; mean validation score of each retrained choice.", "",
            "| dataset | darts-pt | darts-argmax | better on val |", "|---|---|---|---|"]
    selection_wins = {"darts-pt": 0, "darts-argmax": 0, "tie": 0}
    for dataset, jobs in sorted(by_dataset.items()):
        pt, am = (
            float(np.mean([j[f"val:{a}"] for j in jobs])) for a in ("darts-pt", "darts-argmax")
        )
        better = "tie" if pt == am else "darts-pt" if pt > am else "darts-argmax"
        selection_wins[better] += 1
        out.append(f"| {dataset} | {pt:.4f} | {am:.4f} | {better} |")
    out += ["", "Datasets won on validation: "
            + ", ".join(f"{a} {n}" for a, n in selection_wins.items()), ""]
    out += ["## Wins / ties / losses of each search arm (by mean test score per dataset)", "",
            "| search arm | vs median random | vs random search at equal time | vs darts argmax"
            " | vs FT-T point | vs ResNet point |"
            + (" vs evolution at equal time |" if evolution else ""),
            "|---" * (1 + len(tally)) + "|"]
    for arm in SELECTIONS:
        out.append(
            f"| {arm} | "
            + " | ".join(
                "{}/{}/{}".format(*tally[name][arm]) if arm in tally[name] else "–"
                for name in tally
            )
            + " |"
        )
    out += _paired_section(by_dataset)
    if evolution:
        out += ["", "Evolution vs random search at equal time (each search arm's time, each"
                " dataset): {}/{}/{} wins / ties / losses.".format(*evolution_vs_random)]
    out += ["", "## Discretisation gap (val score of the retrained selection minus the supernet's; "
            "score = accuracy, or −RMSE in standardised units for regression)", "",
            "| dataset | arm | gap |", "|---|---|---|"]
    out += [f"| {d} | {a} | {g:+.4f} |" for d, a, g in gaps]
    out += ["", "## Time (mean seconds per fit, 2 CPU cores) and search figures", "",
            "| dataset | " + " | ".join(sorted(times[0][1])) + " | "
            + " | ".join(sorted(times[0][2])) + " |",
            "|---" * (1 + len(times[0][1]) + len(times[0][2])) + "|"]
    for dataset, t, extra in times:
        out.append(f"| {dataset} | " + " | ".join(f"{t[k]:.1f}" for k in sorted(t)) + " | "
                   + " | ".join(f"{extra[k]:.3g}" for k in sorted(extra)) + " |")
    op_counts: dict[str, dict[str, int]] = {}
    for jobs in by_dataset.values():
        for j in jobs:
            for arm in SELECTIONS:
                for op in j[f"ops:{arm}"]:
                    op_counts.setdefault(arm, {}).setdefault(op, 0)
                    op_counts[arm][op] += 1
    out += ["", "## Ops kept by each search arm (all datasets and seeds)", ""]
    out += [
        f"- {arm}: "
        + ", ".join(f"{op} {n}" for op, n in sorted(c.items(), key=lambda x: -x[1]))
        for arm, c in op_counts.items()
    ]
    return "\n".join(out) + "\n"


def paired(jobs: list[dict[str, Any]], key: str, other: str) -> tuple[list[int], float, float]:
    """``key`` against ``other`` seed by seed (same split): seeds won / tied / lost, and the
    mean paired difference (positive: ``key`` better) with its standard error."""
    sign = 1 if jobs[0]["higher_is_better"] else -1
    diffs = [sign * (j[key] - j[other]) for j in jobs]
    counts = [sum(d > 0 for d in diffs), sum(d == 0 for d in diffs), sum(d < 0 for d in diffs)]
    se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")
    return counts, float(np.mean(diffs)), se


def _paired_section(by_dataset: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each selection against the median random architecture and random search at equal
    time, paired by seed, with how many datasets it wins by more than two standard errors
    of the paired difference (the seeds' spread, not only the sign of the means)."""
    out = ["", "## Paired by seed: wins outside the seeds' spread", "",
           "Per dataset, seeds won / tied / lost on test and the mean paired difference"
           " ± its standard error (accuracy, or RMSE with the sign turned so that positive"
           " is better); **bold** where the mean exceeds two standard errors (a screen"
           " against the seeds' noise, not a significance test at 3 to 6 seeds).", "",
           "| dataset | arm | vs median random | vs random search at equal time |",
           "|---|---|---|---|"]
    clear = {arm: [0, 0] for arm in SELECTIONS}
    for dataset, jobs in sorted(by_dataset.items()):
        for arm in SELECTIONS:
            cells = []
            for i, other in enumerate(("test:random-median", f"test:random-search@{arm}")):
                counts, mean, se = paired(jobs, f"test:{arm}", other)
                text = "{}/{}/{}: {:+.4f} ± {:.4f}".format(*counts, mean, se)
                outside = mean > 2 * se
                clear[arm][i] += outside
                cells.append(f"**{text}**" if outside else text)
            out.append(f"| {dataset} | {arm} | " + " | ".join(cells) + " |")
    out += ["", f"Datasets won outside the seeds' spread, of {len(by_dataset)}: "
            + "; ".join(f"{arm} {c[0]} against the median random architecture, {c[1]} against"
                        " random search at equal time" for arm, c in clear.items())]
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="the --out folder of a search_value run")
    args = parser.parse_args(argv)
    text = report(args.results_dir / "results.jsonl")
    (args.results_dir / "search_value.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
