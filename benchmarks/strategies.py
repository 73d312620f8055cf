"""Which search strategy works best on tabular data? The ``strategies`` study.

One job of a model ``strategy-<variant>`` searches the preset's cells (no TabM candidate,
no ensemble, no bagging: the study is about the search) with the variant's strategy,
selects with PT, retrains the selection, and retrains DARTS's rule applied to the same
search's α (the ``argmax`` arm: one search serves both selectors). Options:

- ``strategy``: a registered name (``"darts"``, ``"gdas"``, ...); ``strategy_options``: a
  table of the strategy's constructor arguments (``{weight_optimizer = "sgd",
  optimizer = "sgd"}`` for the optimizer study);
- ``preset`` (default ``"medium"``), ``min_search_steps``, ``max_search_steps``,
  ``max_epochs``;
  ``search_width`` (search and PT on a proxy supernet that many times as wide).

Each arm records its val and (through :meth:`StrategyModel.score_arms`) test scores, fit
and search time; the job records the undiscretised supernet's val score (the
discretisation gap), the search's steps, the α trajectory (the mixing weights at every
evaluation of the search), how often ``skip`` and ``none`` lead an edge's α at the end,
and the α-Hessian's dominant eigenvalue when the fit measured it. ``python -m
benchmarks.strategies DIR`` turns a run's ``results.jsonl`` into the report and plots.
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

ARMS = ("pt", "argmax")
PRIMARY = {"binclass": ("accuracy", True), "multiclass": ("accuracy", True),
           "regression": ("rmse", False)}


class StrategyModel(Adapter):
    """One strategy's search, selected by PT and by argmax; ``predict`` uses PT's."""

    family = "strategy"
    package = "tabnas"
    uses_torch = True
    variants = True
    budget_options = ("min_search_steps", "max_search_steps", "max_epochs", "search_width")
    """Options passed to every arm's estimator as they are."""
    option_names = frozenset({"strategy", "strategy_options", "preset", *budget_options})
    imports = ("tabnas",)

    def fit(self, X_train, y_train, X_val, y_val):
        from tabnas.nas.strategies import STRATEGY_REGISTRY

        name = self.options.get("strategy", "darts")
        if name not in STRATEGY_REGISTRY:
            raise ValueError(f"unknown strategy {name!r}; available: {sorted(STRATEGY_REGISTRY)}")
        strategy = STRATEGY_REGISTRY[name](**self.options.get("strategy_options", {}))
        preset = self.options.get("preset", "medium")
        cells = dataclasses.replace(
            self._estimator_class()(preset=preset).search_space(), backbones=("cells",)
        )
        self.arms_: dict[str, dict[str, Any]] = {}
        est = self._fit_arm(X_train, y_train, X_val, y_val, "pt", preset=preset, space=cells,
                            search_strategy=strategy, selection="pt")
        info = est.fit_info_
        search_s = float(est.timings_["search_s"])
        self.search_: dict[str, Any] = {
            "strategy": repr(strategy),
            "supernet_val": float(info["supernet_val"]["score"]),
            "search_steps": int(info["search_steps"]),
            "tune_steps": int(info["tune_steps"]),
            "alpha_shift": float(info["alpha_shift"]),
            "alpha_hessian_eig": info.get("dominant_hessian_eigenvalue"),
            "search_s": search_s,
            "selection_s": float(est.timings_["selection_s"]),
            **alpha_summary(est.history_, est.search_space_.ops),
        }
        self._fit_arm(X_train, y_train, X_val, y_val, "argmax", preset=preset,
                      architecture=est.argmax_architecture_)
        self.arms_["argmax"]["fit_time_s"] += search_s  # it needs the same search
        return self

    def _estimator_class(self):
        from tabnas import TabNASClassifier, TabNASRegressor

        return TabNASClassifier if self.is_classification else TabNASRegressor

    def _fit_arm(self, X_train, y_train, X_val, y_val, arm: str, **params):
        budget = {k: self.options[k] for k in self.budget_options if k in self.options}
        started = time.perf_counter()
        est = self._estimator_class()(
            random_state=self.seed, ensemble_size=1, bag_folds=0, **budget, **params
        ).fit(X_train, y_train, X_val=X_val, y_val=y_val)
        self.arms_[arm] = {
            "estimator": est,
            "fit_time_s": time.perf_counter() - started,
            "val_score": float(est.fit_info_["best_val"]["score"]),
            "ops": list(est.architecture_.ops),
            "architecture": str(est.architecture_),
        }
        return est

    def predict_proba(self, X):
        return self.arms_["pt"]["estimator"].predict_proba(X)

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return self.arms_["pt"]["estimator"].predict(X)

    def score_arms(self, X_test, y_test, task: str) -> dict[str, dict[str, Any]]:
        """Both arms' test scores beside what they recorded; the search's own figures
        under ``"search"``."""
        from benchmarks.search_value import score_arms

        return {**score_arms(self.arms_, X_test, y_test, task), "search": self.search_}

    def info(self):
        est = self.arms_["pt"]["estimator"]
        return {"device": est.device_, "n_parameters": int(est.n_parameters_),
                "architecture": est.architecture_.to_dict()}


def alpha_summary(history, ops: tuple[str, ...]) -> dict[str, Any]:
    """The search's mixing weights at every evaluation (the α trajectory, averaged over
    the cells' edges per op), and the share of edges whose largest final weight is
    ``skip`` or ``none``."""
    rows = [row for row in history if row.get("phase") == "search" and "weights" in row]
    if not rows:
        return {"ops": list(ops), "alpha_trajectory": [], "lead_share": {}}
    trajectory = [
        [round(float(w), 4) for w in np.asarray(row["weights"]).reshape(-1, len(ops)).mean(0)]
        for row in rows
    ]
    final = np.asarray(rows[-1]["weights"]).reshape(-1, len(ops))
    leaders = final.argmax(axis=1)
    return {
        "ops": list(ops),
        "alpha_trajectory": trajectory,
        "lead_share": {op: float(np.mean(leaders == k)) for k, op in enumerate(ops)
                       if op in ("skip", "none")},
    }


# ---- the report ----------------------------------------------------------------------------
def load_jobs(results: Path) -> list[dict[str, Any]]:
    """The finished jobs of a run, one dict per (model, dataset, seed)."""
    return [r for r in read_results(results) if r.get("status") == "ok" and r.get("arms")]


def entries(jobs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``(variant/arm, dataset)`` -> one figure dict per seed."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for job in jobs:
        metric, higher = PRIMARY[job["task"]]
        search = job["arms"]["search"]
        for arm in ARMS:
            info = job["arms"][arm]
            out.setdefault((f"{job['model']}/{arm}", job["dataset"]), []).append({
                "test": info["test"][metric], "higher": higher, "metric": metric,
                "val": info["val_score"], "gap": info["val_score"] - search["supernet_val"],
                "fit_s": info["fit_time_s"], "search_s": search["search_s"],
                "select_s": search["search_s"] + search["selection_s"],
                "steps": search["search_steps"], "ops": info["ops"],
                "lead": search["lead_share"], "eig": search.get("alpha_hessian_eig"),
                "supernet": search["supernet_val"],
            })
    return out


def average_ranks(
    table: dict[tuple[str, str], list[dict[str, Any]]], key: str = "test"
) -> dict[str, float]:
    """Each variant/arm's rank by mean ``key`` score per dataset (1 = best; ties share),
    averaged over the datasets where it ran. ``"val"`` (the validation score: accuracy or
    −RMSE, higher is better) is what a choice may rest on; ``"test"`` is for the record."""
    datasets = sorted({d for _, d in table})
    ranks: dict[str, list[float]] = {}
    for dataset in datasets:
        scores = {v: statistics.mean(e[key] for e in table[(v, d)])
                  for v, d in table if d == dataset}
        higher = key == "val" or next(iter(table[(next(iter(scores)), dataset)]))["higher"]
        for v, s in scores.items():
            better = sum(1 for o in scores.values() if (o > s if higher else o < s))
            equal = sum(1 for o in scores.values() if o == s) - 1
            ranks.setdefault(v, []).append(1 + better + equal / 2)
    return {v: statistics.mean(r) for v, r in ranks.items()}


def report(results: Path) -> str:
    table = entries(load_jobs(results))
    if not table:
        return "No finished jobs.\n"
    datasets = sorted({d for _, d in table})
    ranks = average_ranks(table, "val")
    test_ranks = average_ranks(table, "test")
    variants = sorted(ranks, key=ranks.get)
    coverage = {v: sum((v, d) in table for d in datasets) for v in variants}
    # only a pair that ran on every dataset of the report can rank first
    complete = [v for v in variants if coverage[v] == len(datasets)] or variants
    first, best_test = complete[0], min(complete, key=test_ranks.get)

    def mean(v: str, key: str) -> float:
        values = [e[key] for d in datasets for e in table.get((v, d), []) if e[key] is not None]
        return statistics.mean(values) if values else float("nan")

    def share(v: str, op: str) -> float:
        return mean_of([e["ops"].count(op) / max(len(e["ops"]), 1)
                        for d in datasets for e in table.get((v, d), [])])

    out = [
        f"Datasets: {', '.join(datasets)}; {len(variants)} strategy / selection pairs.",
        "", f"**Ranks first on validation: {first}** (average validation rank"
        f" {ranks[first]:.2f}; test rank {test_ranks[first]:.2f}). Best test rank, for the"
        f" record: {best_test} ({test_ranks[best_test]:.2f}). Only pairs that ran on all"
        f" {len(datasets)} datasets compete for first; ranks are among the pairs that ran"
        " on each dataset.", "",
        "## Per strategy (average over datasets and seeds)", "",
        "| strategy / selection | datasets | val rank | test rank | val score | discretisation"
        " gap | search (s) | fit (s) | search steps | skip share of the selection "
        "| α leader skip / none | α-Hessian abs(λmax) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        lead_skip = mean_of([e["lead"].get("skip", 0.0) for d in datasets
                             for e in table.get((v, d), [])])
        lead_none = mean_of([e["lead"].get("none", 0.0) for d in datasets
                             for e in table.get((v, d), [])])
        eig = mean_of([abs(e["eig"]) for d in datasets for e in table.get((v, d), [])
                       if e["eig"] is not None])
        out.append(
            f"| {v} | {coverage[v]} | {ranks[v]:.2f} | {test_ranks[v]:.2f} | {mean(v, 'val'):.4f}"
            f" | {mean(v, 'gap'):+.4f} "
            f"| {mean(v, 'search_s'):.1f} | {mean(v, 'fit_s'):.1f} | {mean(v, 'steps'):.0f} "
            f"| {share(v, 'skip'):.2f} | {lead_skip:.2f} / {lead_none:.2f} "
            f"| {'–' if np.isnan(eig) else f'{eig:.3g}'} |"
        )
    out += ["", "## Test score per dataset (mean over seeds)", "",
            "| strategy / selection | " + " | ".join(datasets) + " |",
            "|---" * (1 + len(datasets)) + "|"]
    for v in variants:
        cells = []
        for d in datasets:
            e = table.get((v, d))
            cells.append("–" if not e else f"{statistics.mean(x['test'] for x in e):.4g}")
        out.append(f"| {v} | " + " | ".join(cells) + " |")
    out += against_default(table, datasets)
    out += optimizer_pairs(table, datasets)
    metrics = {d: table[next(k for k in table if k[1] == d)][0]["metric"] for d in datasets}
    out += ["", "Metrics: " + ", ".join(f"{d} {m}" for d, m in metrics.items())
            + ". Discretisation gap: val score of the retrained selection minus the"
            " supernet's (accuracy, or −RMSE in standardised units)."]
    return "\n".join(out) + "\n"


DEFAULT = "strategy-darts"
"""The default search, which every other strategy is compared with pair by pair."""


def against_default(
    table: dict[tuple[str, str], list[dict[str, Any]]], datasets: list[str]
) -> list[str]:
    """Each strategy against :data:`DEFAULT` with the same selection, on the datasets both
    ran: on how many its mean validation score is better / equal (to 4 decimals) / worse,
    and its median search + selection time as a multiple of the default's (lowest-highest
    over the datasets; medians, since one slow seed would move a mean of three)."""
    strategies = sorted({v.rsplit("/", 1)[0] for v, _ in table} - {DEFAULT})
    rows = []
    for strategy in strategies:
        for arm in ARMS:
            mine, base = f"{strategy}/{arm}", f"{DEFAULT}/{arm}"
            shared = [d for d in datasets if (mine, d) in table and (base, d) in table]
            if not shared:
                continue
            ratios = [statistics.median(e["select_s"] for e in table[(mine, d)])
                      / statistics.median(e["select_s"] for e in table[(base, d)])
                      for d in shared]
            rows.append(f"| {mine} | {len(shared)} | {tally(table, mine, base, shared)} "
                        f"| {min(ratios):.2f}–{max(ratios):.2f} |")
    if not rows:
        return []
    return ["", f"## Against the default ({DEFAULT}), the same selection", "",
            "| strategy / selection | datasets | val better / equal / worse | median search"
            " + selection time × the default's |", "|---|---|---|---|", *rows]


def tally(
    table: dict[tuple[str, str], list[dict[str, Any]]], mine: str, base: str,
    datasets: list[str], key: str = "val",
) -> str:
    """``"better / equal / worse"``: on how many of ``datasets`` the mean ``key`` score
    (higher is better) of ``mine`` is above, equal to (to 4 decimals) or below ``base``'s."""
    counts = [0, 0, 0]
    for d in datasets:
        ours, theirs = (round(statistics.mean(e[key] for e in table[(v, d)]), 4)
                        for v in (mine, base))
        counts[0 if ours > theirs else 1 if ours == theirs else 2] += 1
    return " / ".join(map(str, counts))


OPTIMIZER_PAIRS = {
    DEFAULT: "AdamW, Adam",
    "strategy-darts-sgd-sgd": "SGD, SGD",
    "strategy-darts-sgd-adam": "SGD, Adam",
    "strategy-darts-adam-sgd": "AdamW, SGD",
}
"""The optimizer study's (weights, α) optimizers, by model name: DARTS with each pair."""


def optimizer_pairs(
    table: dict[tuple[str, str], list[dict[str, Any]]], datasets: list[str]
) -> list[str]:
    """The optimizer study: each (weights, α) pair of :data:`OPTIMIZER_PAIRS` against the
    default's, on the datasets both ran: on how many the undiscretised supernet's mean
    validation score, and each selection's, is better / equal (to 4 decimals) / worse,
    and the α-Hessian's dominant eigenvalue in magnitude (median over seeds) as a multiple
    of the default's (lowest–highest over the datasets); then that magnitude per dataset.
    The sign of the eigenvalue of largest magnitude is kept in the rows; sharpness is its
    magnitude."""
    base = f"{DEFAULT}/pt"  # the search's figures are the same in both arms' entries
    present = [m for m in OPTIMIZER_PAIRS if m != DEFAULT and any(
        (f"{m}/pt", d) in table for d in datasets)]
    if not present:
        return []

    def sharpness(variant: str, d: str) -> float | None:
        eigs = [abs(e["eig"]) for e in table[(variant, d)] if e["eig"] is not None]
        return statistics.median(eigs) if eigs else None

    rows = []
    for model in present:
        shared = [d for d in datasets if (f"{model}/pt", d) in table and (base, d) in table]
        cells = [tally(table, f"{model}/{arm}", f"{DEFAULT}/{arm}", shared, key)
                 for key, arm in (("supernet", "pt"), ("val", "pt"), ("val", "argmax"))]
        ratios = [a / b for d in shared
                  if (a := sharpness(f"{model}/pt", d)) is not None
                  and (b := sharpness(base, d)) is not None and b != 0.0]
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "–"
        rows.append(f"| {OPTIMIZER_PAIRS[model]} | {len(shared)} | {' | '.join(cells)} "
                    f"| {spread} |")
    per_dataset = []
    for model in [DEFAULT, *present]:
        figures = [sharpness(f"{model}/pt", d) if (f"{model}/pt", d) in table else None
                   for d in datasets]
        per_dataset.append(f"| {OPTIMIZER_PAIRS[model]} | " + " | ".join(
            "–" if f is None else f"{f:.3g}" for f in figures) + " |")
    return [
        "", f"## The optimizer study: (weights, α) against the default's "
        f"({OPTIMIZER_PAIRS[DEFAULT]})", "",
        "| (weights, α) | datasets | supernet val better / equal / worse | PT val b / e / w "
        "| argmax val b / e / w | α-Hessian abs(λmax) × the default's |",
        "|---|---|---|---|---|---|", *rows,
        "", "abs(λmax), the α-Hessian's dominant eigenvalue in magnitude at the end of the"
        " search (median over seeds):", "",
        "| (weights, α) | " + " | ".join(datasets) + " |", "|---" * (1 + len(datasets)) + "|",
        *per_dataset,
    ]


def mean_of(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def plot_trajectories(results: Path, path: Path) -> Path:
    """Mean mixing weight of each op over the search, one panel per strategy (the first
    job of each), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first: dict[str, dict[str, Any]] = {}
    for job in load_jobs(results):
        if job["arms"]["search"]["alpha_trajectory"]:
            first.setdefault(job["model"], job)
    if not first:
        raise ValueError(f"{results} holds no job with an α trajectory")
    n = len(first)
    cols = min(4, n)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((n + 3) // 4)),
                             squeeze=False)
    for ax, (model, job) in zip(axes.flat, sorted(first.items())):
        trajectory = np.asarray(job["arms"]["search"]["alpha_trajectory"])
        for k, op in enumerate(job["arms"]["search"]["ops"]):
            ax.plot(trajectory[:, k], label=op)
        ax.set_title(f"{model} ({job['dataset']})", fontsize=9)
        ax.set_xlabel("evaluation")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].set_ylabel("mean mixing weight")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="the --out folder of a strategies run")
    args = parser.parse_args(argv)
    text = report(args.results_dir / "results.jsonl")
    (args.results_dir / "strategies.md").write_text(text)
    plot_trajectories(args.results_dir / "results.jsonl", args.results_dir / "alpha.png")
    print(text)
    return text


if __name__ == "__main__":
    main()
