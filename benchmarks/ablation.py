"""Variants of tabnas against a base variant, decided on validation: DIR/ablation.md.

    python -m benchmarks.ablation DIR [--base tabnas]

For runs whose models are tabnas variants on the same splits (a config such as
``retrieval``: the default with and without one ingredient). Per dataset and variant:
the mean over seeds of the validation score, the test primary metric (mean ± std) and
the fit time; per variant against the base: datasets better / equal / worse on
validation (the decision), wins / ties / losses on test (a tie within the larger std
over seeds, as in the harness's report) and the median fit-time ratio over the jobs
both ran; and the mean ensemble weight of each backbone.

The validation score is, where the run recorded it (``own_validation = true``), the
score on the harness's validation rows, which the fit never saw (``model_info.heldout``:
accuracy and log loss, or RMSE); otherwise the fitted ensemble's score on the
validation rows it was weighted on (``model_info.ensemble_val``), which favours variants
with more candidates. ``val_loss`` is log loss or RMSE (lower is better).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import HIGHER_IS_BETTER, PRIMARY, is_tabnas, last_rows, seed_std
from benchmarks.run import RESULTS_FILE, read_results

REPORT_FILE = "ablation.md"


def job_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per ok tabnas job: dataset, model, seed, val score, test metric, fit time,
    and the ensemble weight per backbone."""
    ok, _ = last_rows(rows)
    records = []
    for row in ok.to_dict("records"):
        if not is_tabnas(row["model"]):
            continue
        info = row.get("model_info") or {}
        metric = PRIMARY[row["task"]]
        weights: dict[str, float] = {}
        for member in info.get("ensemble", []):
            key = f"weight:{member['backbone']}"
            weights[key] = weights.get(key, 0.0) + float(member["weight"])
        records.append({
            "dataset": row["dataset"], "model": row["model"], "seed": row["seed"],
            "metric": metric, "test": row[metric], **_validation(info, metric),
            "fit_time_s": row["fit_time_s"], **weights,
        })
    return pd.DataFrame(records)


def _validation(info: dict[str, Any], metric: str) -> dict[str, Any]:
    """``val`` (higher is better), ``val_loss`` (lower is better) and where they come from."""
    heldout = info.get("heldout")
    if heldout:
        if metric == "rmse":
            return {"val": -heldout["rmse"], "val_loss": heldout["rmse"], "val_source": "heldout"}
        return {
            "val": heldout["accuracy"], "val_loss": heldout["log_loss"], "val_source": "heldout"
        }
    ensemble = info.get("ensemble_val") or {}
    return {
        "val": ensemble.get("score", np.nan), "val_loss": ensemble.get("loss", np.nan),
        "val_source": "ensemble",
    }


def compare(jobs: pd.DataFrame, base: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per dataset x model means, per variant verdicts against ``base``)."""
    weight_columns = sorted(c for c in jobs.columns if c.startswith("weight:"))
    per_dataset = (
        jobs.groupby(["dataset", "model"])
        .agg(
            metric=("metric", "first"), seeds=("seed", "count"), val=("val", "mean"),
            val_loss=("val_loss", "mean"), val_source=("val_source", "first"),
            test=("test", "mean"), test_std=("test", seed_std),
            fit_time_s=("fit_time_s", "mean"),
            **{c: (c, "mean") for c in weight_columns},
        )
        .reset_index()
    )
    verdicts = []
    for variant in sorted(set(jobs["model"]) - {base}):
        val_wtl, loss_wtl, test_wtl = [0, 0, 0], [0, 0, 0], [0, 0, 0]
        for _, pair in per_dataset[per_dataset["model"].isin([base, variant])].groupby("dataset"):
            if len(pair) != 2:
                continue
            b, v = (pair[pair["model"] == name].iloc[0] for name in (base, variant))
            val_wtl[_outcome(v["val"] - b["val"], 0.0)] += 1
            loss_wtl[_outcome(b["val_loss"] - v["val_loss"], 0.0)] += 1
            sign = 1 if HIGHER_IS_BETTER[b["metric"]] else -1
            spread = max(b["test_std"], v["test_std"])
            test_wtl[_outcome(sign * (v["test"] - b["test"]), spread)] += 1
        paired = jobs[jobs["model"].isin([base, variant])].pivot_table(
            index=["dataset", "seed"], columns="model", values="fit_time_s"
        ).dropna()
        ratio = (
            float((paired[variant] / paired[base]).median()) if len(paired) else float("nan")
        )
        verdicts.append({
            "variant": variant, "val (better/equal/worse)": "/".join(map(str, val_wtl)),
            "val loss (better/equal/worse)": "/".join(map(str, loss_wtl)),
            "test (W/T/L)": "/".join(map(str, test_wtl)), "median fit-time ratio": ratio,
            "jobs compared": len(paired),
        })
    return per_dataset, pd.DataFrame(verdicts)


def _outcome(gain: float, tie_within: float) -> int:
    """0 better, 1 equal (within ``tie_within``), 2 worse."""
    if abs(gain) <= tie_within:
        return 1
    return 0 if gain > 0 else 2


def render(per_dataset: pd.DataFrame, verdicts: pd.DataFrame, *, base: str, title: str) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.4g}"
        return str(value)

    def table(frame: pd.DataFrame) -> list[str]:
        header = list(frame.columns)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(False)]
        return lines

    out = [f"# {title}", "", f"Base: `{base}`. Validation decides; test is reported.", ""]
    out += ["## Each variant against the base", ""] + table(verdicts) + [""]
    out += [
        "## Per dataset (means over seeds)", "",
        "val: accuracy, or -RMSE (in the target's units where `val_source` is `heldout`,"
        " standardised where it is `ensemble`); val_loss: log loss or RMSE.", "",
    ]
    out += table(per_dataset) + [""]
    return "\n".join(out)


def _name(folder: Path) -> str:
    """The run's config name (its config.json, which the harness writes), else the folder's."""
    try:
        return str(json.loads((folder / "config.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


def write_report(folder: str | Path, base: str = "tabnas") -> tuple[Path, pd.DataFrame]:
    folder = Path(folder)
    results = folder / RESULTS_FILE
    if not results.is_file():
        raise FileNotFoundError(
            f"no {RESULTS_FILE} in {folder}; run python -m benchmarks.run first"
        )
    jobs = job_frame(read_results(results))
    if jobs.empty or base not in set(jobs["model"]):
        raise ValueError(f"no finished jobs of the base variant {base!r} in {results}")
    per_dataset, verdicts = compare(jobs, base)
    path = folder / REPORT_FILE
    path.write_text(render(per_dataset, verdicts, base=base, title=f"Ablation: {_name(folder)}"))
    return path, verdicts


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", help="a run's output folder (holding results.jsonl)")
    parser.add_argument("--base", default="tabnas", help="the variant the others are compared with")
    args = parser.parse_args(argv)
    path, verdicts = write_report(args.dir, args.base)
    print(verdicts.to_string(index=False))
    print(f"report: {path}")
    return path


if __name__ == "__main__":
    main()
