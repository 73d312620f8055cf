"""Turn a run's results.jsonl into DIR/report.md and PNG plots.

    python -m benchmarks.report DIR

What it computes (from the rows with status "ok"; for each (dataset, model, seed) the last
ok row counts):

- per dataset and model, the mean ± std over seeds of each metric; the **primary metric**
  is accuracy for classification and RMSE (original units) for regression;
- each model's **average rank** over the datasets it ran on (rank 1 = best mean primary
  metric on a dataset; tied means share the average rank);
- for every ``tabnas`` model, **wins / ties / losses** against each other model: a tie when
  the difference of the two means is within the larger of the two models' std over seeds
  (sample std; 0 with one seed);
- where some model ran on fewer datasets than others, the average ranks over the datasets
  every model ran on as well (the only ones that compare);
- total and median fit time per model, and the ratio of each tabnas model's median fit
  time to LightGBM's and to FT-Transformer's over the jobs (dataset, seed) both ran;
- plots: ``normalised_scores.png`` (per dataset, 0 = the dummy model, 1 = the best model)
  and ``score_vs_time.png`` (normalised score against fit time, log scale).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.run import RESULTS_FILE, read_results

PRIMARY = {"binclass": "accuracy", "multiclass": "accuracy", "regression": "rmse"}
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "log_loss": False, "rmse": False, "r2": True}
METRICS = ("accuracy", "roc_auc", "log_loss", "rmse", "r2")
BASELINE_FOR_TIME = "lightgbm"
NN_BASELINE_FOR_TIME = "ft_transformer"


def is_tabnas(model: str) -> bool:
    return model == "tabnas" or model.startswith("tabnas-")


@dataclass
class Summary:
    """Everything the report shows, as plain tables."""

    rows: pd.DataFrame  # the counted rows (last ok row per job)
    all_rows: pd.DataFrame  # every last row per job, failures included
    stats: pd.DataFrame  # dataset, model, metric -> mean, std, n
    primary: dict[str, str]  # dataset -> primary metric
    ranks: pd.DataFrame  # dataset x model rank (NaN where absent)
    average_rank: pd.Series  # model -> mean rank over its datasets
    wtl: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    times: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_time_ratio: dict[str, float] = field(default_factory=dict)
    """tabnas model -> its median fit time over LightGBM's, on the jobs both ran."""
    nn_fit_time_ratio: dict[str, float] = field(default_factory=dict)
    """tabnas model -> its median fit time over FT-Transformer's, on the jobs both ran."""

    @property
    def common_datasets(self) -> list[str]:
        """The datasets on which every model has a result."""
        if not len(self.ranks):
            return []
        return [str(d) for d in self.ranks.index[self.ranks.notna().all(axis=1)]]

    @property
    def common_rank(self) -> pd.Series:
        """model -> mean rank over :attr:`common_datasets` (empty when there are none)."""
        common = self.common_datasets
        if not common:
            return pd.Series(dtype=float)
        return self.ranks.loc[common].mean(axis=0).sort_values()

    def n_datasets(self, model: str) -> int:
        return int(self.ranks[model].notna().sum()) if model in self.ranks else 0


def last_rows(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(last ok row per job, last row per job) as frames."""
    if not rows:
        empty = pd.DataFrame(columns=["dataset", "model", "seed", "status", "task"])
        return empty, empty
    frame = pd.DataFrame(rows)
    frame["order"] = np.arange(len(frame))
    keys = ["dataset", "model", "seed"]
    latest = frame.sort_values("order").groupby(keys, as_index=False).tail(1)
    ok = frame[frame["status"] == "ok"].sort_values("order").groupby(keys, as_index=False).tail(1)
    return ok.reset_index(drop=True), latest.reset_index(drop=True)


def seed_std(values: pd.Series) -> float:
    """Sample std over seeds; 0 for a single seed."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> Summary:
    ok, latest = last_rows(rows)
    records = []
    for metric in METRICS:
        if metric not in ok.columns:
            continue
        part = ok.dropna(subset=[metric])
        for (dataset, model), group in part.groupby(["dataset", "model"]):
            values = group[metric].astype(float)
            records.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "metric": metric,
                    "mean": float(values.mean()),
                    "std": seed_std(values),
                    "n": len(values),
                }
            )
    stats = pd.DataFrame(records, columns=["dataset", "model", "metric", "mean", "std", "n"])
    primary = (
        {d: PRIMARY[t] for d, t in ok.groupby("dataset")["task"].first().items()} if len(ok) else {}
    )
    ranks = _ranks(stats, primary)
    average_rank = (
        ranks.mean(axis=0, skipna=True).sort_values() if len(ranks) else pd.Series(dtype=float)
    )
    summary = Summary(
        rows=ok,
        all_rows=latest,
        stats=stats,
        primary=primary,
        ranks=ranks,
        average_rank=average_rank,
    )
    summary.wtl = _wins_ties_losses(stats, primary)
    summary.times = _times(ok)
    summary.fit_time_ratio = _same_job_ratios(ok, BASELINE_FOR_TIME)
    summary.nn_fit_time_ratio = _same_job_ratios(ok, NN_BASELINE_FOR_TIME)
    return summary


def _primary_table(stats: pd.DataFrame, primary: dict[str, str]) -> pd.DataFrame:
    """dataset, model, mean, std of each dataset's primary metric."""
    if stats.empty:
        return stats
    mask = stats.apply(lambda r: primary.get(r["dataset"]) == r["metric"], axis=1)
    return stats[mask]


def _ranks(stats: pd.DataFrame, primary: dict[str, str]) -> pd.DataFrame:
    table = _primary_table(stats, primary)
    if table.empty:
        return pd.DataFrame()
    means = table.pivot(index="dataset", columns="model", values="mean")
    ranked = {}
    for dataset, row in means.iterrows():
        ascending = not HIGHER_IS_BETTER[primary[dataset]]
        ranked[dataset] = row.rank(ascending=ascending, method="average")
    return pd.DataFrame(ranked).T.reindex(columns=means.columns)


def _wins_ties_losses(
    stats: pd.DataFrame, primary: dict[str, str]
) -> dict[str, dict[str, tuple[int, int, int]]]:
    table = _primary_table(stats, primary)
    if table.empty:
        return {}
    by = {(r.dataset, r.model): (r.mean, r.std) for r in table.itertuples()}
    models = sorted(table["model"].unique())
    out: dict[str, dict[str, tuple[int, int, int]]] = {}
    for ours in filter(is_tabnas, models):
        out[ours] = {}
        for other in models:
            if other == ours:
                continue
            win = tie = loss = 0
            for dataset, metric in primary.items():
                if (dataset, ours) not in by or (dataset, other) not in by:
                    continue
                (m1, s1), (m2, s2) = by[dataset, ours], by[dataset, other]
                diff = (m1 - m2) if HIGHER_IS_BETTER[metric] else (m2 - m1)
                if abs(m1 - m2) <= max(s1, s2):
                    tie += 1
                elif diff > 0:
                    win += 1
                else:
                    loss += 1
            out[ours][other] = (win, tie, loss)
    return out


def _times(ok: pd.DataFrame) -> pd.DataFrame:
    if ok.empty:
        return pd.DataFrame()
    frame = ok.copy()
    for column in ("fit_time_s", "predict_time_s", "wall_time_s", "peak_memory_mb", "n_parameters"):
        if column not in frame:
            frame[column] = np.nan
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    grouped = frame.groupby("model")
    times = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total_fit_s": grouped["fit_time_s"].sum(),
            "total_predict_s": grouped["predict_time_s"].sum(),
            "median_fit_s": grouped["fit_time_s"].median(),
            "total_wall_s": grouped["wall_time_s"].sum(),
            "median_peak_memory_mb": grouped["peak_memory_mb"].median(),
            "median_parameters": grouped["n_parameters"].median(),
        }
    )
    return times


def _same_job_ratios(ok: pd.DataFrame, base: str) -> dict[str, float]:
    """tabnas model -> median fit time over ``base``'s, both over the (dataset, seed) jobs
    that both ran."""
    if ok.empty or "fit_time_s" not in ok:
        return {}
    fit = ok.assign(fit_time_s=pd.to_numeric(ok["fit_time_s"], errors="coerce"))
    by_model = {
        model: group.set_index(["dataset", "seed"])["fit_time_s"].dropna()
        for model, group in fit.groupby("model")
    }
    if base not in by_model:
        return {}
    ratios = {}
    for model, times in by_model.items():
        if not is_tabnas(model):
            continue
        common = times.index.intersection(by_model[base].index)
        reference = by_model[base].loc[common].median() if len(common) else 0.0
        if reference > 0:
            ratios[model] = float(times.loc[common].median() / reference)
    return ratios


# ---- normalised scores ------------------------------------------------------------------
def normalised_scores(summary: Summary) -> pd.DataFrame:
    """dataset x model: 0 = the dummy model (else the worst model), 1 = the best model."""
    table = _primary_table(summary.stats, summary.primary)
    if table.empty:
        return pd.DataFrame()
    means = table.pivot(index="dataset", columns="model", values="mean")
    out = {}
    for dataset, row in means.iterrows():
        sign = 1.0 if HIGHER_IS_BETTER[summary.primary[dataset]] else -1.0
        signed = sign * row
        zero = signed.get("dummy", np.nan)
        if not np.isfinite(zero):
            zero = signed.min()
        best = signed.max()
        span = best - zero
        out[dataset] = (signed - zero) / span if span > 0 else signed * 0 + 1.0
    return pd.DataFrame(out).T.reindex(columns=means.columns)


# ---- markdown ---------------------------------------------------------------------------
def _fmt(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e4 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}" if magnitude < 10 else f"{value:.1f}"


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def headline(summary: Summary) -> str:
    """One paragraph: each tabnas model's rank, record against the others and time ratio."""
    if summary.average_rank.empty:
        return "No successful jobs yet."
    n_models = len(summary.average_rank)
    n_datasets = len(summary.primary)
    common = summary.common_datasets
    partial = len(common) < n_datasets
    common_rank = summary.common_rank
    parts = []
    for model in [m for m in summary.average_rank.index if is_tabnas(m)]:
        n_own = summary.n_datasets(model)
        text = (
            f"**{model}**: average rank {summary.average_rank[model]:.2f} of {n_models} models"
            + (f" on {n_own} of {n_datasets} datasets" if n_own < n_datasets
               else f" on {n_datasets} dataset(s)")
        )
        if partial and common:
            text += (
                f" ({common_rank[model]:.2f} over the {len(common)} datasets every"
                " model ran on)"
            )
        records = summary.wtl.get(model, {})
        if records:
            text += "; wins/ties/losses " + ", ".join(
                f"vs {other} {w}/{t}/{losses}"
                for other, (w, t, losses) in records.items()
                if not is_tabnas(other)
            )
        ratios = [
            f"{ratio[model]:{spec}}× {name}'s"
            for ratio, spec, name in (
                (summary.fit_time_ratio, ".1f", "LightGBM"),
                (summary.nn_fit_time_ratio, ".2f", "FT-Transformer"),
            )
            if model in ratio
        ]
        if ratios:
            text += "; median fit time " + ", ".join(ratios) + " (same jobs)"
        parts.append(text + ".")
    if partial and common:
        parts.append(
            f"Best average rank over the {len(common)} datasets every model ran on:"
            f" **{common_rank.index[0]}** ({common_rank.iloc[0]:.2f})."
        )
    else:
        best = summary.average_rank.index[0]
        parts.append(f"Best average rank: **{best}** ({summary.average_rank.iloc[0]:.2f}).")
    return " ".join(parts)


def render(
    summary: Summary, *, title: str = "Benchmark report", plots: list[str] | None = None
) -> str:
    out = [f"# {title}", ""]
    status = summary.all_rows["status"].value_counts().to_dict() if len(summary.all_rows) else {}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
    out.append(
        f"Jobs: {sum(status.values())} ({counts}). Mean ± std over seeds (the mean alone for one"
        " seed); best mean in bold. Primary metric: accuracy ↑ (classification), RMSE ↓ in the"
        " target's units (regression)."
    )
    out += ["", "## Headline", "", headline(summary), ""]

    models = list(summary.average_rank.index)
    for metric in METRICS:
        part = summary.stats[summary.stats["metric"] == metric]
        if part.empty:
            continue
        arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
        is_primary = any(m == metric for m in summary.primary.values())
        out += [f"## {metric} {arrow}{' (primary)' if is_primary else ''}", ""]
        body = []
        for dataset, group in part.groupby("dataset"):
            cells = {r.model: r for r in group.itertuples()}
            best = (max if HIGHER_IS_BETTER[metric] else min)(r.mean for r in cells.values())
            row = [str(dataset)]
            for model in models:
                if model not in cells:
                    row.append("–")
                    continue
                r = cells[model]
                text = f"{_fmt(r.mean)} ± {_fmt(r.std)}" if r.n > 1 else _fmt(r.mean)
                row.append(f"**{text}**" if r.mean == best else text)
            body.append(row)
        out += [_markdown_table(["dataset", *models], body), ""]

    out += ["## Average rank (primary metric, 1 = best)", ""]
    common = summary.common_datasets
    header = ["model", "average rank", "datasets"]
    body = [
        [m, f"{r:.2f}", str(summary.n_datasets(m))] for m, r in summary.average_rank.items()
    ]
    if common and len(common) < len(summary.primary):  # coverage differs: the fair column
        header.append(f"over the {len(common)} datasets every model ran on")
        common_rank = summary.common_rank
        for row in body:
            row.append(f"{common_rank[row[0]]:.2f}")
    out += [_markdown_table(header, body), ""]

    if summary.wtl:
        out += [
            "## tabnas against each model (wins / ties / losses)",
            "",
            "A tie when the difference of means is within the larger of the two std over seeds.",
            "",
        ]
        others = sorted({o for rec in summary.wtl.values() for o in rec})
        body = [
            [
                m,
                *(
                    "{}/{}/{}".format(*summary.wtl[m][o]) if o in summary.wtl[m] else "–"
                    for o in others
                ),
            ]
            for m in summary.wtl
        ]
        out += [_markdown_table(["model", *others], body), ""]

    if len(summary.times):
        out += ["## Time and size", ""]
        body = []
        for model, r in summary.times.iterrows():
            body.append(
                [
                    model,
                    str(int(r.jobs)),
                    f"{r.total_fit_s:.1f}",
                    f"{r.total_predict_s:.2f}",
                    f"{r.median_fit_s:.2f}",
                    f"{r.total_wall_s:.1f}",
                    f"{r.median_peak_memory_mb:.0f}",
                    "–" if not np.isfinite(r.median_parameters) else f"{r.median_parameters:,.0f}",
                ]
            )
        out += [
            _markdown_table(
                [
                    "model",
                    "jobs",
                    "total fit s",
                    "total predict s",
                    "median fit s",
                    "total job wall s",
                    "median peak MB",
                    "median parameters",
                ],
                body,
            ),
            "",
        ]
        for ratios, base in (
            (summary.fit_time_ratio, BASELINE_FOR_TIME),
            (summary.nn_fit_time_ratio, NN_BASELINE_FOR_TIME),
        ):
            for model, ratio in ratios.items():
                out.append(
                    f"- median fit time of {model} / {base}, over the jobs both ran:"
                    f" **{ratio:.2f}×**"
                )
        out.append("")

    failures = summary.all_rows[summary.all_rows["status"] != "ok"] if len(summary.all_rows) else []
    if len(failures):
        out += ["## Failed and timed-out jobs", ""]
        body = [
            [
                str(r.dataset),
                str(r.model),
                str(r.seed),
                str(r.status),
                str(getattr(r, "error", "") or "").replace("|", "/").replace("\n", " ")[:200],
            ]
            for r in failures.itertuples()
        ]
        out += [_markdown_table(["dataset", "model", "seed", "status", "error"], body), ""]

    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(out)


# ---- plots ------------------------------------------------------------------------------
def plot_normalised(summary: Summary, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    scores = normalised_scores(summary)
    if scores.empty:
        return None
    models = [m for m in summary.average_rank.index if m != "dummy"]  # dummy is the 0 line
    scores = scores.reindex(columns=models)
    n_data, n_models = scores.shape
    fig = Figure(
        figsize=(min(24.0, max(7.0, 0.25 * n_data * max(1, n_models) + 2.5)), 4.8),
        layout="constrained",
    )
    ax = fig.subplots()
    width = 0.8 / max(n_models, 1)
    x = np.arange(n_data)
    colors = _colors(models)
    for i, model in enumerate(models):
        values = scores[model].to_numpy(float)
        ax.bar(
            x + (i - (n_models - 1) / 2) * width,
            np.nan_to_num(values, nan=0.0),
            width,
            label=model,
            color=colors[model],
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.6, linestyle="--")
    ax.set_xticks(x, [str(d) for d in scores.index], rotation=30, ha="right")
    ax.set_ylabel("normalised score (0 = dummy, 1 = best)")
    ax.set_ylim(min(-0.1, float(np.nanmin(scores.to_numpy())) - 0.05), 1.1)
    ax.set_title("Normalised primary score per dataset")
    fig.legend(loc="outside right upper", fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def plot_score_vs_time(summary: Summary, path: Path) -> Path | None:
    from matplotlib.figure import Figure

    scores = normalised_scores(summary)
    if scores.empty or "fit_time_s" not in summary.rows:
        return None
    fit = summary.rows.assign(fit_time_s=pd.to_numeric(summary.rows["fit_time_s"], errors="coerce"))
    times = fit.groupby(["dataset", "model"])["fit_time_s"].mean().unstack()
    models = list(summary.average_rank.index)
    colors = _colors(models)
    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    ax = fig.subplots()
    for model in models:
        if model not in scores or model not in times:
            continue
        s = scores[model]
        t = times[model].reindex(s.index).clip(lower=1e-4)
        ax.scatter(t, s, s=18, alpha=0.45, color=colors[model])
        ax.scatter(
            [math.exp(np.log(t.dropna()).mean())],
            [s.mean()],
            s=110,
            marker="D",
            edgecolor="black",
            color=colors[model],
            label=model,
        )
    ax.set_xscale("log")
    ax.set_xlabel("fit time (s, log scale)")
    ax.set_ylabel("normalised score (0 = dummy, 1 = best)")
    ax.set_title("Score against fit time (dots: datasets; diamonds: model means)")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120)
    return path


def _colors(models: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(models)}


def write_report(folder: str | Path) -> tuple[Path, Summary]:
    folder = Path(folder)
    results = folder / RESULTS_FILE
    if not results.is_file():
        raise FileNotFoundError(
            f"no {RESULTS_FILE} in {folder}; run python -m benchmarks.run first"
        )
    summary = summarise(read_results(results))
    plots = []
    for name, draw in (
        ("normalised_scores.png", plot_normalised),
        ("score_vs_time.png", plot_score_vs_time),
    ):
        try:
            if draw(summary, folder / name) is not None:
                plots.append(name)
        except ImportError:  # matplotlib missing: tables only
            break
    path = folder / "report.md"
    path.write_text(render(summary, title=f"Benchmark report: {folder.name}", plots=plots))
    return path, summary


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dir",
        help="a run's output folder (holding results.jsonl); report.md and "
        "the PNG plots are written there",
    )
    args = parser.parse_args(argv)
    path, summary = write_report(args.dir)
    print(headline(summary))
    print(f"report: {path}")
    return path


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
