"""Does every search strategy clear the bars? One fit per strategy on the core bar's data.

    python -m benchmarks.strategy_check --out DIR [--strategies darts gdas ...]
        [--datasets breast_cancer california] [--datasets-index PATH]

- ``breast_cancer``: ``TabNASClassifier(preset="fast", search_strategy=name,
  random_state=0)`` on scikit-learn's breast cancer data, 25 % held out (stratified,
  seed 0); the bar is a test accuracy of at least 0.93.
- ``california``: ``TabNASRegressor(search_strategy=name, random_state=0)`` at the default
  preset on the core bar's California split, beside LightGBM (defaults, early stopping)
  on the same split; the bar is a test RMSE within 15 % of LightGBM's.

Each finished fit is appended to ``DIR/results.jsonl`` at once; a rerun skips what is
there, so an interrupted run loses nothing that finished. The table goes to
``DIR/strategy_check.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import tabnas
from benchmarks.core_bar import california_split, fit_lightgbm, rmse
from benchmarks.datasets import default_index_path
from benchmarks.results_io import append_row, read_results
from tabnas import TabNASClassifier, TabNASRegressor
from tabnas.nas.strategies import STRATEGY_REGISTRY

DATASETS = ("breast_cancer", "california")
BARS = {"breast_cancer": "accuracy ≥ 0.93", "california": "RMSE ≤ 1.15 × LightGBM's"}


def fit_breast_cancer(strategy: str) -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    started = time.perf_counter()
    clf = TabNASClassifier(preset="fast", search_strategy=strategy, random_state=0)
    clf.fit(X_train, y_train)
    score = float(clf.score(X_test, y_test))
    return {"score": score, "metric": "accuracy", "passes": score >= 0.93,
            **_fit_figures(clf, time.perf_counter() - started)}


def fit_california(strategy: str, index_path: Path, reference: dict[str, Any]) -> dict[str, Any]:
    X_train, X_val, X_test, y_train, y_val, y_test = california_split(index_path)
    started = time.perf_counter()
    reg = TabNASRegressor(search_strategy=strategy, random_state=0)
    reg.fit(X_train, y_train, X_val=X_val, y_val=y_val)
    score = rmse(reg.predict(X_test), y_test)
    return {"score": score, "metric": "rmse ($100k)", "lightgbm": reference["score"],
            "ratio": score / reference["score"], "passes": score <= 1.15 * reference["score"],
            **_fit_figures(reg, time.perf_counter() - started)}


def lightgbm_reference(index_path: Path) -> dict[str, Any]:
    X_train, X_val, X_test, y_train, y_val, y_test = california_split(index_path)
    started = time.perf_counter()
    gbm = fit_lightgbm(X_train, y_train, X_val, y_val)
    return {"score": rmse(gbm.predict(X_test), y_test),
            "fit_time_s": time.perf_counter() - started}


def _fit_figures(est, fit_s: float) -> dict[str, Any]:
    return {
        "fit_time_s": fit_s,
        "search_s": float(est.timings_["search_s"]),
        "search_steps": int(est.fit_info_["search_steps"]),
        "selected": str(est.selected_architecture_),
        "weights": {
            f"{m['architecture']['backbone']}": round(m["weight"], 3) for m in est.ensemble_
        },
    }


def load(results: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["strategy"], r["dataset"]): r for r in read_results(results)}


def table(done: dict[tuple[str, str], dict[str, Any]]) -> str:
    lines = [
        "| strategy | dataset | score | bar | passes | fit (s) | search (s) | search steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (strategy, dataset), r in sorted(done.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        score = f"{r['score']:.4f}" + (
            f" ({r['ratio']:.3f} × LightGBM {r['lightgbm']:.4f})" if "ratio" in r else ""
        )
        lines.append(
            f"| {strategy} | {dataset} | {score} | {BARS[dataset]} | "
            f"{'yes' if r['passes'] else '**no**'} | {r['fit_time_s']:.1f} | "
            f"{r['search_s']:.1f} | {r['search_steps']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategies", nargs="+", default=sorted(STRATEGY_REGISTRY),
                        choices=sorted(STRATEGY_REGISTRY))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--datasets-index", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = load(results)
    index_path = args.datasets_index or default_index_path()
    reference = None
    for dataset in args.datasets:
        for strategy in args.strategies:
            if (strategy, dataset) in done:
                continue
            if dataset == "california":
                reference = reference or lightgbm_reference(index_path)
                row = fit_california(strategy, index_path, reference)
            else:
                row = fit_breast_cancer(strategy)
            row = {"strategy": strategy, "dataset": dataset, **row,
                   "torch_threads": torch.get_num_threads(), "tabnas": tabnas.__version__,
                   "machine": platform.processor() or platform.machine(),
                   "date": time.strftime("%Y-%m-%d")}
            append_row(results, row)
            done[(strategy, dataset)] = row
            print(f"{strategy} {dataset}: {row['score']:.4f} in {row['fit_time_s']:.1f} s",
                  flush=True)
    text = table(done)
    (args.out / "strategy_check.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
