"""Do zero-cost proxies rank the architectures of the space as brief training does?

    python -m benchmarks.zero_cost --out DIR [--dataset diabetes] [--n-archs 12] \\
        [--max-epochs 10] [--preset fast] [--seed 0]

On one split of one shared dataset (the protocol's, training rows capped at 3,000),
``--n-archs`` uniformly random architectures of the preset's ``cells`` space are each

1. built at initialisation (``build_network``, torch seeded with ``--seed``) and scored
   by every proxy of :data:`tabnas.nas.proxies.PROXIES` on one batch of ``--batch-rows``
   training rows (each proxy timed), and beside them by its parameter count, the
   baseline Abdelfattah et al. compare against;
2. trained briefly: the estimator with ``architecture=`` that point, ``--max-epochs``
   epochs with early stopping on the val split, whose best val score (accuracy, or
   −RMSE in standardised units) is the architecture's trained score.

It prints and saves (``zero_cost.md``, ``results.json``) the Spearman and Kendall rank
correlations of each proxy with the trained val score (and with the negated val loss,
finer than a small split's accuracy), and the proxies' time.
``rows.jsonl`` gets one line per architecture as it finishes; a rerun with the same
settings continues where the last one stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from benchmarks.datasets import default_index_path, load_local
from benchmarks.protocol import PreparedData, prepare
from benchmarks.results_io import append_row, read_results

BASELINES = ("n_parameters",)


def proxy_batch(data: PreparedData, *, seed: int, batch_rows: int):
    """The preprocessed training rows (as the estimator preprocesses them), their data
    shapes' ingredients, the task and one batch of ``batch_rows`` of them."""
    from tabnas.preprocessing import TabularPreprocessor
    from tabnas.training.data import TensorData
    from tabnas.training.loop import Task

    frame = data.X_train.set_axis(range(data.X_train.shape[1]), axis=1)
    categorical = [
        j for j, c in enumerate(data.X_train.columns) if c in set(data.categorical_columns)
    ]
    preprocessor = TabularPreprocessor(categorical=categorical, random_state=seed).fit(frame)
    x_num, x_cat = (torch.as_tensor(a) for a in preprocessor.transform(frame))
    if data.task == "regression":
        y = torch.as_tensor(data.y_train, dtype=torch.float32)
        y = (y - y.mean()) / y.std().clamp_min(1e-12)  # the estimator's standardised target
        task = Task("regression", 1)
    else:
        y = torch.as_tensor(data.y_train, dtype=torch.long)
        task = Task("classification", int(data.n_classes or 2))
    rows = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:batch_rows]
    train = TensorData(x_num, x_cat, y)
    return train, preprocessor.cat_cardinalities, task, train[rows]


def score_at_init(
    architecture, *, train, cat_cardinalities, task, batch, seed: int
) -> dict[str, Any]:
    """Every proxy (and the parameter count) of ``architecture``'s network at init."""
    from tabnas.nas.embeddings import NEEDS_BINS, quantile_bins
    from tabnas.nas.network import DataShapes, build_network
    from tabnas.nas.proxies import PROXIES

    needs_bins = architecture.num_embedding in NEEDS_BINS and train.x_num.shape[1] > 0
    shapes = DataShapes(
        train.x_num.shape[1], tuple(cat_cardinalities), task.d_out,
        bins=tuple(quantile_bins(train.x_num)) if needs_bins else None,
    )
    torch.manual_seed(seed)
    model = build_network(architecture, shapes)
    out: dict[str, Any] = {"proxies": {}, "proxy_s": {}}
    for name, proxy in PROXIES.items():
        started = time.perf_counter()
        out["proxies"][name] = proxy(model, batch, task.loss)
        out["proxy_s"][name] = time.perf_counter() - started
    out["proxies"]["n_parameters"] = float(sum(p.numel() for p in model.parameters()))
    return out


def train_briefly(architecture, data: PreparedData, *, preset: str, max_epochs: int, seed: int):
    from tabnas import TabNASClassifier, TabNASRegressor

    cls = TabNASRegressor if data.task == "regression" else TabNASClassifier
    started = time.perf_counter()
    est = cls(preset=preset, architecture=architecture, max_epochs=max_epochs, random_state=seed)
    est.fit(data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val)
    return {
        "val_score": float(est.fit_info_["best_val"]["score"]),
        "val_loss": float(est.fit_info_["best_val"]["loss"]),
        "train_s": time.perf_counter() - started,
    }


def correlations(values: list[float], scores: list[float]) -> dict[str, float | int]:
    """Spearman's ρ and Kendall's τ of ``values`` with ``scores``, on the pairs whose value
    is not NaN; ±inf (NASWOT's singular kernel) ranks as the extreme it is."""
    pairs = [(v, s) for v, s in zip(values, scores) if not np.isnan(v)]
    if len(pairs) < 3:
        return {"spearman": float("nan"), "kendall": float("nan"), "n": len(pairs)}
    ranks = stats.rankdata([v for v, _ in pairs])
    score_ranks = stats.rankdata([s for _, s in pairs])
    return {
        "spearman": float(stats.spearmanr(ranks, score_ranks).statistic),
        "kendall": float(stats.kendalltau(ranks, score_ranks).statistic),
        "n": len(pairs),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Per proxy (and baseline): the rank correlations with the val score and with the
    negated val loss (finer than the accuracy of a small val split), and the mean seconds
    per network."""
    scores = [r["val_score"] for r in rows]
    neg_losses = [-r["val_loss"] for r in rows]
    out = {}
    for name in rows[0]["proxies"]:
        values = [r["proxies"][name] for r in rows]
        by_loss = correlations(values, neg_losses)
        out[name] = {
            **correlations(values, scores),
            "spearman_loss": by_loss["spearman"],
            "kendall_loss": by_loss["kendall"],
            "mean_s": float(np.mean([r["proxy_s"].get(name, 0.0) for r in rows])),
        }
    return out


def table(summary: dict[str, dict[str, float | int]], rows: list[dict[str, Any]]) -> str:
    lines = [
        "| proxy | Spearman ρ | Kendall τ | ρ with −val loss | τ with −val loss"
        " | architectures | seconds per network |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['spearman']:+.3f} | {s['kendall']:+.3f} | {s['spearman_loss']:+.3f}"
            f" | {s['kendall_loss']:+.3f} | {s['n']} | {s['mean_s']:.3f} |"
        )
    train_s = float(np.mean([r["train_s"] for r in rows]))
    scores = [r["val_score"] for r in rows]
    lines += [
        "",
        f"Trained val score: {min(scores):.4f} .. {max(scores):.4f} over {len(rows)}"
        f" architectures; {train_s:.1f} s per brief training.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", default="diabetes")
    parser.add_argument("--datasets-index", default=None,
                        help=f"dataset index (default: {default_index_path()})")
    parser.add_argument("--n-archs", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--batch-rows", type=int, default=64,
                        help="rows of the proxies' batch (zero-cost-nas: 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from tabnas import TabNASClassifier

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("dataset", "max_epochs", "preset", "batch_rows",
                                               "seed")}
    data = prepare(load_local(args.dataset, args.datasets_index), seed=args.seed,
                   max_train_rows=3000)
    space = dataclasses.replace(
        TabNASClassifier(preset=args.preset).search_space(), backbones=("cells",)
    )
    train, cat_cardinalities, task, batch = proxy_batch(
        data, seed=args.seed, batch_rows=args.batch_rows
    )
    log = out / "rows.jsonl"
    done = {}
    for row in read_results(log):
        if row["settings"] == settings:
            done[row["index"]] = row
    for i in range(args.n_archs):
        if i in done:
            continue
        architecture = space.sample(seed=1000 * args.seed + i)
        row = {
            "index": i, "settings": settings, "architecture": str(architecture),
            "ops": list(architecture.ops),
            **score_at_init(architecture, train=train, cat_cardinalities=cat_cardinalities,
                            task=task, batch=batch, seed=args.seed),
            **train_briefly(architecture, data, preset=args.preset, max_epochs=args.max_epochs,
                            seed=args.seed),
        }
        append_row(log, row)
        done[i] = row
        print(f"{i:3d} val {row['val_score']:.4f}  train {row['train_s']:5.1f} s  "
              + "  ".join(f"{k} {v:.4g}" for k, v in row["proxies"].items()), flush=True)
    rows = [done[i] for i in range(args.n_archs)]
    summary = summarise(rows)
    text = table(summary, rows)
    print(text)
    (out / "zero_cost.md").write_text(text)
    report = {
        "settings": {**settings, "n_archs": args.n_archs, "n_train": len(data.X_train),
                     "n_val": len(data.X_val), "task": data.task},
        "correlations": summary,
        "rows": rows,
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average": os.getloadavg()[0]},
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.zero_cost "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    (out / "results.json").write_text(json.dumps(report, indent=2, default=float))
    return report


if __name__ == "__main__":
    main()
