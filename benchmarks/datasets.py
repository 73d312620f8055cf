"""Reading datasets described by an index file in the format of ``shared/datasets/index.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ENV_VAR = "TABNAS_DATASETS"


def default_index_path() -> Path:
    """``$TABNAS_DATASETS/index.json``, else ``../shared/datasets/index.json`` beside the repo."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]) / "index.json"
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "datasets" / "index.json"


@dataclass
class LocalDataset:
    """One dataset of an index: features, target, and a predefined test split if any."""

    name: str
    task: str
    X: pd.DataFrame
    y: pd.Series
    X_test: pd.DataFrame | None
    y_test: pd.Series | None
    entry: dict[str, Any]


def read_index(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    path = Path(path) if path is not None else default_index_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"no dataset index at {path}; pass its path (--datasets-index) or set {ENV_VAR}"
        )
    entries = json.loads(path.read_text())["datasets"]
    return {e["name"]: {**e, "_root": str(path.parent)} for e in entries}


def load_local(name: str, index_path: str | Path | None = None) -> LocalDataset:
    """Load ``name`` honouring ``na_values``, ``drop_columns``, ``categorical_columns``,
    ``test_file`` and ``label_map_test``."""
    index = read_index(index_path)
    if name not in index:
        raise KeyError(f"dataset {name!r} is not in the index; available: {sorted(index)}")
    entry = index[name]
    root = Path(entry["_root"])

    def read(file: str) -> tuple[pd.DataFrame, pd.Series]:
        frame = pd.read_csv(root / file, keep_default_na=False, na_values=entry.get("na_values", [""]))
        y = frame.pop(entry["target"])
        frame = frame.drop(columns=entry.get("drop_columns", []))
        for column in entry.get("categorical_columns", []):
            frame[column] = frame[column].astype("category")
        return frame, y

    X, y = read(entry["file"])
    X_test = y_test = None
    if entry.get("test_file"):
        X_test, y_test = read(entry["test_file"])
        if entry.get("label_map_test"):
            y_test = y_test.replace(entry["label_map_test"])
    return LocalDataset(name=name, task=entry["task"], X=X, y=y, X_test=X_test, y_test=y_test, entry=entry)
