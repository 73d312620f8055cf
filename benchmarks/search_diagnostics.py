"""How far α moves, and what second-order DARTS adds, at each preset.

    python -m benchmarks.search_diagnostics --out docs/benchmarks/search_diagnostics \\
        [--dataset wine_quality_red]

For each preset and for ``darts`` / ``darts2``, one search on the same split (the
estimator with ``selection="argmax"`` and one retrain epoch, so the search is what is
timed). Prints and saves, per run: search steps and seconds per step, the largest change
of any architecture logit, how far the mixing weights are from uniform (the median over
edges of the largest weight, beside ``1 / n_ops``), the share of edges whose strongest op
has at least twice the uniform weight, and for ``darts2`` the mean of
``||xi * H v|| / ||grad_alpha L_val||`` (how much the second-order term changes α's
gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.datasets import default_index_path, load_local
from benchmarks.protocol import prepare


def run(
    dataset: str, index_path, preset: str, strategy: str, max_steps: int | None, seed: int = 0
) -> dict:
    from tabnas import TabNASClassifier, TabNASRegressor

    data = prepare(load_local(dataset, index_path), seed=seed, max_train_rows=3000)
    cls = TabNASRegressor if data.task == "regression" else TabNASClassifier
    est = cls(preset=preset, search_strategy=strategy, selection="argmax", max_epochs=1,
              max_search_steps=max_steps, random_state=seed)
    est.fit(data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val)
    rows = est.history_.phase("search")
    weights = np.array(rows[-1]["weights"])  # (n_cells, n_edges, n_ops)
    strongest = weights.max(-1).ravel()
    uniform = 1.0 / weights.shape[-1]
    ratios = [r["second_order_ratio"] for r in rows if "second_order_ratio" in r]
    return {
        "dataset": dataset, "preset": preset, "strategy": strategy, "n_train": len(data.X_train),
        "search_steps": est.fit_info_["search_steps"],
        "search_s": est.timings_["search_s"],
        "s_per_step": est.timings_["search_s"] / est.fit_info_["search_steps"],
        "alpha_shift": est.fit_info_["alpha_shift"],
        "uniform_weight": uniform,
        "median_strongest_weight": float(np.median(strongest)),
        "share_edges_2x_uniform": float(np.mean(strongest >= 2 * uniform)),
        "second_order_ratio": float(np.mean(ratios)) if ratios else None,
        "arch_loss_curve": [(r["step"], round(r["val_loss"], 4)) for r in rows],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="results/search-diagnostics")
    parser.add_argument("--dataset", default="wine_quality_red")
    parser.add_argument("--datasets-index", default=None,
                        help=f"dataset index (default: {default_index_path()})")
    parser.add_argument("--presets", default="fast,medium,best")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every search at this many steps (default: each preset's own)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for preset in args.presets.split(","):
        for strategy in ("darts", "darts2"):
            results.append(run(args.dataset, args.datasets_index, preset, strategy, args.max_steps))
            r = results[-1]
            second_order = (
                f"  |xi*Hv|/|grad| {r['second_order_ratio']:.3g}"
                if r["second_order_ratio"] is not None else ""
            )
            print(f"{preset:6s} {strategy:6s} steps {r['search_steps']:5d}"
                  f"  {r['s_per_step'] * 1000:6.1f} ms/step"
                  f"  alpha shift {r['alpha_shift']:.3f}"
                  f"  median strongest weight {r['median_strongest_weight']:.3f}"
                  f" (uniform {r['uniform_weight']:.3f})"
                  f"  edges >= 2x uniform {r['share_edges_2x_uniform']:.0%}"
                  + second_order,
                  flush=True)
    report = {
        "results": results,
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average": os.getloadavg()[0]},
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.search_diagnostics " + " ".join(argv or []),
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    return results


if __name__ == "__main__":
    main()
