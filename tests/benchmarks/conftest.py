"""Shared helpers of the benchmark-harness tests: small dataset indexes in tmp_path, and the
marker of the tests that need the shared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.datasets import default_index_path

SHARED_INDEX = default_index_path()
needs_shared_datasets = pytest.mark.skipif(
    not SHARED_INDEX.is_file(),
    reason="needs the shared datasets folder (../shared/datasets or $TABNAS_DATASETS):"
    f" no {SHARED_INDEX}",
)


def write_index(folder: Path, entries: list[dict]) -> Path:
    path = folder / "index.json"
    path.write_text(json.dumps({"format": 1, "datasets": entries}))
    return path


def tiny_frame(n: int, seed: int, *, classes=("a", "b")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x1": np.round(x, 3),
            "x2": rng.integers(0, 5, n),
            "colour": rng.choice(["red", "blue", "NA"], n),
            "label": np.where(x > 0, classes[0], classes[1]),
            "y_reg": np.round(3 * x + rng.normal(size=n), 3),
        }
    )


def sklearn_index(folder: Path, tables: dict[str, str]) -> Path:
    """An index of scikit-learn's bundled tables as CSV: ``{name: "breast_cancer" (binclass)
    or "diabetes" (regression)}``."""
    from sklearn import datasets

    tasks = {"breast_cancer": "binclass", "diabetes": "regression"}
    entries = []
    for name, table in tables.items():
        getattr(datasets, f"load_{table}")(as_frame=True).frame.to_csv(
            folder / f"{name}.csv", index=False
        )
        entries.append(
            {"name": name, "file": f"{name}.csv", "target": "target", "task": tasks[table]}
        )
    return write_index(folder, entries)


@pytest.fixture
def tiny_index(tmp_path: Path) -> Path:
    """Two datasets: ``tiny_clf`` (binclass) and ``tiny_reg`` (regression), 120 rows each."""
    frame = tiny_frame(120, 0)
    frame.drop(columns=["y_reg"]).to_csv(tmp_path / "clf.csv", index=False)
    frame.drop(columns=["label"]).to_csv(tmp_path / "reg.csv", index=False)
    return write_index(
        tmp_path,
        [
            {
                "name": "tiny_clf",
                "file": "clf.csv",
                "target": "label",
                "task": "binclass",
                "categorical_columns": ["colour"],
                "drop_columns": ["id"],
                "na_values": [""],
            },
            {
                "name": "tiny_reg",
                "file": "reg.csv",
                "target": "y_reg",
                "task": "regression",
                "categorical_columns": ["colour"],
                "drop_columns": ["id"],
                "na_values": [""],
            },
        ],
    )


@pytest.fixture
def one_torch_thread():
    """One intra-op thread, as the runner gives each job on a small machine (and no
    oversubscription)."""
    torch = pytest.importorskip("torch")
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
