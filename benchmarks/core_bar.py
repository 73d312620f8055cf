"""The two reference measurements of the estimators, side by side with LightGBM.

    python -m benchmarks.core_bar --out results/core-bar [--datasets-index PATH]

1. ``TabNASClassifier(preset="fast", random_state=0)`` on scikit-learn's breast cancer
   data, 25 % held out (stratified, seed 0): test accuracy and fit time.
2. ``TabNASRegressor`` at the default preset on ``california_housing`` (20 % test, then
   20 % of the rest for validation, seed 0), beside LightGBM with default parameters and
   early stopping (50 rounds) on the same validation split: test RMSE in $100,000 and fit
   time of each, in one run.

With ``--with-ft-transformer`` (meant for a GPU: about 20 minutes on 2 CPU cores) the
harness's FT-Transformer (Gorishniy defaults and loop) is fitted on the same California
split too, so the estimator's fit time can be read beside it.

Prints a markdown table and writes ``results.json`` and the plots of the California fit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import tabnas
from benchmarks.datasets import default_index_path, load_local
from tabnas import TabNASClassifier, TabNASRegressor


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def breast_cancer() -> dict:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    started = time.perf_counter()
    clf = TabNASClassifier(preset="fast", random_state=0).fit(X_train, y_train)
    fit_s = time.perf_counter() - started
    return {
        "dataset": "breast_cancer (sklearn)", "model": "tabnas fast", "metric": "accuracy",
        "score": float(clf.score(X_test, y_test)), "fit_time_s": fit_s,
        "architecture": str(clf.architecture_), "timings": clf.timings_,
        "peak_rss_mb": peak_rss_mb(),
    }


def california_split(index_path) -> tuple:
    """The core bar's California split: ``X_train, X_val, X_test, y_train, y_val, y_test``
    (20 % test, then 20 % of the rest for validation, seed 0; targets in $100,000)."""
    data = load_local("california_housing", index_path)
    y = data.y / 100_000
    X_rest, X_test, y_rest, y_test = train_test_split(data.X, y, test_size=0.2, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.2, random_state=0)
    return X_train, X_val, X_test, y_train, y_val, y_test


def fit_lightgbm(X_train, y_train, X_val, y_val):
    """LightGBM with default parameters and early stopping (50 rounds) on the val split."""
    import lightgbm as lgb

    with warnings.catch_warnings():  # newer LightGBM renames eval_set; both work
        warnings.filterwarnings("ignore", message=".*eval_set.*")
        return lgb.LGBMRegressor(n_estimators=4000, verbose=-1, random_state=0).fit(
            X_train, y_train, eval_set=[(X_val, y_val)],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )


def california(index_path, out: Path, *, with_ft_transformer: bool = False) -> Iterator[dict]:
    """The California rows, each yielded as soon as its model is fitted and scored."""
    X_train, X_val, X_test, y_train, y_val, y_test = california_split(index_path)
    started = time.perf_counter()
    gbm = fit_lightgbm(X_train, y_train, X_val, y_val)
    yield {
        "dataset": "california_housing", "model": "lightgbm (defaults, early stopping 50)",
        "metric": "rmse ($100k)", "fit_time_s": time.perf_counter() - started,
        "score": rmse(gbm.predict(X_test), y_test), "n_train": len(X_train),
    }
    started = time.perf_counter()
    reg = TabNASRegressor(random_state=0).fit(X_train, y_train, X_val=X_val, y_val=y_val)
    reg_s = time.perf_counter() - started
    try:
        from tabnas import plotting

        plotting.plot_architecture_weights(reg, out / "architecture_weights.png")
        plotting.plot_selection_trace(reg, out / "selection_trace.png")
        plotting.plot_learning_curves(reg, out / "learning_curves.png")
    except ImportError:
        pass
    yield {
        "dataset": "california_housing", "model": "tabnas medium (default)",
        "metric": "rmse ($100k)", "score": rmse(reg.predict(X_test), y_test),
        "fit_time_s": reg_s, "n_train": len(X_train), "architecture": str(reg.architecture_),
        "n_parameters": reg.n_parameters_, "timings": reg.timings_,
        "peak_rss_mb": peak_rss_mb(), "device": reg.device_,
        "fit_info": {k: v for k, v in reg.fit_info_.items() if k != "best_val"},
        "ensemble": [ensemble_row(member) for member in reg.ensemble_],
    }
    if with_ft_transformer:
        from benchmarks.nn_baselines import FTTransformerModel

        started = time.perf_counter()
        ft = FTTransformerModel(
            task="regression", n_classes=None, seed=0, threads=torch.get_num_threads()
        )
        ft.fit(X_train, y_train.to_numpy(), X_val, y_val.to_numpy())
        yield {
            "dataset": "california_housing", "model": "FT-Transformer (rtdl, Gorishniy defaults)",
            "metric": "rmse ($100k)", "score": rmse(ft.predict(X_test), y_test),
            "fit_time_s": time.perf_counter() - started, "n_train": len(X_train), **ft.info(),
        }


def ensemble_row(member: dict) -> dict:
    """One trained candidate of a fit, as the report shows it."""
    from tabnas.nas.space import Architecture

    return {
        "architecture": str(Architecture.from_dict(member["architecture"])),
        **{k: member[k] for k in ("weight", "best_val", "best_epoch", "train_s", "n_parameters")},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="results/core-bar",
                        help="folder for results.json and plots")
    parser.add_argument("--datasets-index", default=None,
                        help=f"dataset index (default: {default_index_path()})")
    parser.add_argument("--with-ft-transformer", action="store_true",
                        help="also fit FT-Transformer on the California split (slow on a CPU)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    report: dict = {"rows": rows, "complete": False}

    def save() -> None:  # after each fit: an interrupted run keeps what finished
        report.update(
            machine={
                "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                "tabnas": tabnas.__version__, "torch": torch.__version__,
                "sklearn": sklearn.__version__,
                "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "load_average": os.getloadavg()[0],
            },
            date=time.strftime("%Y-%m-%d"),
        )
        tmp = out / ".results.json.tmp"
        tmp.write_text(json.dumps(report, indent=2, default=str))
        tmp.replace(out / "results.json")

    rows.append(breast_cancer())
    save()
    for row in california(args.datasets_index, out, with_ft_transformer=args.with_ft_transformer):
        rows.append(row)
        save()
    report["complete"] = True
    save()
    print("| dataset | model | metric | score | fit time (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['metric']} | {r['score']:.4f}"
              f" | {r['fit_time_s']:.1f} |")
    gbm, ours = rows[1], rows[2]
    print(f"\ntabnas / LightGBM RMSE: {ours['score'] / gbm['score']:.3f};"
          f" fit time ratio: {ours['fit_time_s'] / gbm['fit_time_s']:.0f}x;"
          f" peak RSS {ours['peak_rss_mb']:.0f} MB")
    for r in rows:
        if "architecture" in r:
            print(f"\n{r['dataset']}:\n{r['architecture']}")
    return report


if __name__ == "__main__":
    main()
