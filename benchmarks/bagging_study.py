"""Does cross-validation bagging of the final candidates pay, and below what size?

    python -m benchmarks.bagging_study --out docs/benchmarks/bagging [--preset fast]
        [--datasets credit_g diabetes ...] [--seeds 0 1 2]

On the harness's split of each dataset (``benchmarks.protocol.prepare``), tabnas is fitted
on the training rows alone, once with ``bag_folds=0`` and once with ``bag_folds=5``
(holding out its own validation rows either way), and both are scored on the harness's
validation rows, which neither fit sees: the choice of ``bag_folds="auto"`` is made on
them. Test scores are recorded for the report, not for the choice.

Writes ``results.jsonl`` (one row per dataset, seed and arm, appended as each finishes,
so an interrupted run keeps what it finished) and ``bagging.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks.datasets import load_local
from benchmarks.protocol import prepare, scores
from benchmarks.results_io import append_row, read_results

DATASETS = ("diabetes", "credit_g", "vehicle", "banknote", "wine_quality_red", "segment", "phoneme")
ARMS = {"no bagging": 0, "5-fold bagging": 5}
MAX_TRAIN_ROWS = 3_000


def fit_and_score(data, *, preset: str, seed: int, bag_folds: int) -> dict:
    from tabnas import TabNASClassifier, TabNASRegressor

    cls = TabNASRegressor if data.task == "regression" else TabNASClassifier
    model = cls(preset=preset, random_state=seed, bag_folds=bag_folds)
    started = time.perf_counter()
    model.fit(data.X_train, data.y_train)
    fit_s = time.perf_counter() - started
    out = {
        "fit_s": fit_s, "n_train": len(data.X_train),
        "ensemble_val": model.fit_info_["ensemble_val"],
    }
    for split in ("val", "test"):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if data.task == "regression":
            out[split] = scores(data.task, y, pred=model.predict(X))
        else:
            out[split] = scores(data.task, y, proba=model.predict_proba(X))
    return out


def primary(task: str, result: dict, split: str) -> float:
    """Higher is better: accuracy, or -RMSE."""
    return -result[split]["rmse"] if task == "regression" else result[split]["accuracy"]


def report(rows: list[dict]) -> str:
    lines = [
        "| dataset | train rows | task | score | no bagging (val) | 5-fold bagging (val) | Δ val"
        " | Δ val log loss | no bagging (test) | 5-fold bagging (test) | fit s (no / 5-fold) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    datasets = sorted(
        {r["dataset"] for r in rows},
        key=lambda d: min(r["n_train"] for r in rows if r["dataset"] == d),
    )
    for name in datasets:
        by_arm = {
            arm: [r for r in rows if r["dataset"] == name and r["arm"] == arm] for arm in ARMS
        }
        if not all(by_arm.values()):
            continue
        task = by_arm["no bagging"][0]["task"]
        metric = "rmse" if task == "regression" else "accuracy"

        def mean(arm, split, by_arm=by_arm, metric=metric):
            if split == "val_log_loss":
                return statistics.mean(r["val"]["log_loss"] for r in by_arm[arm])
            return statistics.mean(r[split][metric] for r in by_arm[arm])

        val = {arm: statistics.mean(primary(task, r, "val") for r in by_arm[arm]) for arm in ARMS}
        delta = val["5-fold bagging"] - val["no bagging"]
        wins += delta > 0
        log_loss = (
            f"{mean('5-fold bagging', 'val_log_loss') - mean('no bagging', 'val_log_loss'):+.4f}"
            if task != "regression" else ""
        )
        fit = " / ".join(f"{statistics.mean(r['fit_s'] for r in by_arm[arm]):.0f}" for arm in ARMS)
        lines.append(
            f"| {name} | {by_arm['no bagging'][0]['n_train']} | {task} | {metric}"
            f" | {mean('no bagging', 'val'):.4f} | {mean('5-fold bagging', 'val'):.4f}"
            f" | {delta:+.4f} | {log_loss} | {mean('no bagging', 'test'):.4f}"
            f" | {mean('5-fold bagging', 'test'):.4f} | {fit} |"
        )
    lines.append("")
    lines.append(
        "Bagging better on validation (mean over seeds; Δ is accuracy or -RMSE)"
        f" on {wins} of {len(datasets)} datasets."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bagging_study", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--datasets-index", default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.jsonl"
    rows = [r for r in read_results(path) if r.get("preset") == args.preset]
    done = {(r["dataset"], r["seed"], r["arm"]) for r in rows}
    for name in args.datasets:
        dataset = load_local(name, args.datasets_index)
        for seed in args.seeds:
            data = prepare(dataset, seed=seed, max_train_rows=MAX_TRAIN_ROWS)
            for arm, folds in ARMS.items():
                if (name, seed, arm) in done:
                    continue
                result = fit_and_score(data, preset=args.preset, seed=seed, bag_folds=folds)
                row = {"dataset": name, "task": data.task, "seed": seed, "arm": arm,
                       "preset": args.preset, "load_average": os.getloadavg()[0], **result}
                rows.append(row)
                append_row(path, row)
                print(
                    f"{name} seed {seed} {arm}: val {row['val']} ({row['fit_s']:.0f} s)",
                    flush=True,
                )
    markdown = report(rows)
    (args.out / "bagging.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
