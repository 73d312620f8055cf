"""The demo: both estimators on real data, beside LightGBM, on the same split.

    python -m benchmarks.demo --out demo-output [--preset fast] [--datasets-index PATH]
                              [--time-limit SECONDS]

The data: credit-g (classification) and California housing (regression) from the shared
datasets (``--datasets-index``, else ``$TABNAS_DATASETS/index.json``, else
``../shared/datasets/index.json``); without that index, the same two from OpenML when its
server answers within seconds; else scikit-learn's bundled breast cancer (classification)
and diabetes (regression) tables, so the demo runs on any machine.

Prints the data's source, scores, fit times and the chosen architectures, and writes
``results.json`` (each row names its ``source``) plus the plots of each tabnas fit into
``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split

from benchmarks.datasets import LocalDataset, default_index_path, load_local
from tabnas import TabNASClassifier, TabNASRegressor

DEMO_DATASETS = {"credit_g": "classification", "california_housing": "regression"}
OPENML_IDS = {"credit_g": 31, "california_housing": 537}  # the shared files' OpenML ids
BUNDLED = {"classification": "breast_cancer", "regression": "diabetes"}  # scikit-learn's
OPENML_TIMEOUT = 5.0  # seconds for the OpenML server to answer before the bundled fallback


def load_demo_data(
    index_path: str | Path | None = None, *, openml_timeout: float = OPENML_TIMEOUT
) -> tuple[str, list[tuple[str, LocalDataset]]]:
    """The demo's (task, dataset) pairs and the name of their source, the first of: the
    shared datasets' index, OpenML (when its server answers within ``openml_timeout`` s),
    scikit-learn's bundled tables. Fails neither for want of the index nor of a network."""
    index = Path(index_path) if index_path is not None else default_index_path()
    if index.is_file():
        pairs = [(task, load_local(name, index)) for name, task in DEMO_DATASETS.items()]
        return f"shared datasets ({index})", pairs
    print(f"no dataset index at {index}: trying OpenML")
    try:
        from benchmarks import openml_data

        openml_data.check_reachable(timeout=openml_timeout)
        pairs = [
            (task, openml_data.load_openml_dataset(OPENML_IDS[name], name=name))
            for name, task in DEMO_DATASETS.items()
        ]
        return f"OpenML (datasets {', '.join(map(str, OPENML_IDS.values()))})", pairs
    except Exception as error:  # offline, no openml package, a server error: fall back
        print(f"OpenML unavailable ({type(error).__name__}: {error})")
    pairs = [(task, bundled_dataset(task)) for task in BUNDLED]
    return "scikit-learn's bundled datasets (breast_cancer, diabetes)", pairs


def bundled_dataset(task: str) -> LocalDataset:
    """scikit-learn's breast cancer (``classification``) or diabetes (``regression``) table."""
    from sklearn import datasets

    name = BUNDLED[task]
    X = getattr(datasets, f"load_{name}")(as_frame=True).frame
    y = X.pop("target")
    return LocalDataset(
        name=name,
        task="binclass" if task == "classification" else "regression",
        X=X,
        y=y,
        X_test=None,
        y_test=None,
        entry={"loader": f"sklearn.datasets.load_{name}"},
        source="scikit-learn",
    )


def split(X, y, *, seed: int, stratify: bool):
    """64/16/20 train/val/test, stratified for classification."""
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y if stratify else None
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.2, random_state=seed, stratify=y_rest if stratify else None
    )
    return X_train, X_val, X_test, y_train, y_val, y_test


def scores(task: str, model, X_test, y_test) -> dict[str, float]:
    if task == "classification":
        proba = model.predict_proba(X_test)
        out = {"accuracy": accuracy_score(y_test, model.classes_[proba.argmax(1)])}
        if proba.shape[1] == 2:
            out["roc_auc"] = roc_auc_score(y_test == model.classes_[1], proba[:, 1])
        return out
    return {"rmse": float(np.sqrt(mean_squared_error(y_test, model.predict(X_test))))}


def run_lightgbm(task, X_train, y_train, X_val, y_val):
    import lightgbm as lgb
    import torch

    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    # as many CPU threads as the tabnas fit had (torch's): a like-for-like comparison
    model = cls(n_estimators=4000, verbose=-1, random_state=0, n_jobs=torch.get_num_threads())
    with warnings.catch_warnings():  # newer LightGBM renames eval_set; both work
        warnings.filterwarnings("ignore", message=".*eval_set.*")
        model.fit(
            X_train, y_train, eval_set=[(X_val, y_val)],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
    return model


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo-output", help="folder for results.json and plots")
    parser.add_argument(
        "--preset", default="fast", choices=["fast", "medium", "best"], help="tabnas budget"
    )
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    parser.add_argument(
        "--time-limit", type=float, default=None,
        help="seconds per tabnas fit (default: none, the preset's own budget)",
    )
    parser.add_argument(
        "--datasets-index", default=None,
        help=f"dataset index file (default: {default_index_path()}); without one the demo"
        " loads its data from OpenML, else from scikit-learn's bundled datasets",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    source, pairs = load_demo_data(args.datasets_index)
    print(f"data: {source}")
    results = []
    for task, data in pairs:
        name = data.name
        y = data.y / 100_000 if name == "california_housing" else data.y  # RMSE in $100k
        X_train, X_val, X_test, y_train, y_val, y_test = split(
            data.X, y, seed=args.seed, stratify=task == "classification"
        )
        estimator_cls = TabNASClassifier if task == "classification" else TabNASRegressor
        started = time.perf_counter()
        model = estimator_cls(
            preset=args.preset, time_limit=args.time_limit, random_state=args.seed
        ).fit(X_train, y_train, X_val=X_val, y_val=y_val)
        fit_s = time.perf_counter() - started
        row = {
            "dataset": name, "source": source, "model": f"tabnas-{args.preset}", "task": task,
            "n_train": len(X_train), "fit_time_s": round(fit_s, 2),
            "time_limit": args.time_limit,
            **scores(task, model, X_test, y_test),
            "n_parameters": model.n_parameters_,
            "architecture": model.architecture_.to_dict(),
            "ensemble": [
                {
                    "architecture": m["architecture"], "weight": m["weight"],
                    "best_val": m["best_val"],
                }
                for m in model.ensemble_
            ],
        }
        results.append(row)
        print(f"\n== {name} ({task}, {len(X_train)} training rows) ==")
        print(model.model_)  # the ensemble's members and their weights
        _save_plots(model, out / name)
        try:
            started = time.perf_counter()
            gbm = run_lightgbm(task, X_train, y_train, X_val, y_val)
            results.append({
                "dataset": name, "source": source, "model": "lightgbm", "task": task,
                "n_train": len(X_train),
                "fit_time_s": round(time.perf_counter() - started, 2),
                **scores(task, gbm, X_test, y_test),
            })
        except ImportError:
            print("(lightgbm is not installed: no reference row)")

    print("\n| dataset | model | accuracy | roc_auc | rmse | fit time (s) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = [f"{r[k]:.4f}" if k in r else "" for k in ("accuracy", "roc_auc", "rmse")]
        print(f"| {r['dataset']} | {r['model']} | " + " | ".join(cells) + f" | {r['fit_time_s']} |")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults and plots written to {out}/ (data: {source})")
    return results


def _save_plots(model, folder: Path) -> None:
    try:
        from tabnas import plotting
    except ImportError:  # matplotlib missing
        return
    folder.mkdir(parents=True, exist_ok=True)
    for plot in ("architecture_weights", "selection_trace", "learning_curves"):
        try:
            getattr(plotting, f"plot_{plot}")(model, folder / f"{plot}.png")
        except ValueError as error:  # nothing to draw, e.g. a --time-limit cut the search short
            print(f"(no {plot}.png: {error})")


if __name__ == "__main__":
    main()
