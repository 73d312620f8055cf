"""Reading datasets described by an index file in the format of ``shared/datasets/index.json``.

Each entry names a CSV ``file`` and its ``target`` column, the ``task`` (``binclass``,
``multiclass`` or ``regression``) and optionally:

- ``test_file``: a second CSV holding the dataset's predefined test split;
- ``na_values``: the tokens read as missing (pandas' default NA tokens are switched off,
  so ``"NA"`` or ``"None"`` stay values unless listed here; default ``[""]``);
- ``drop_columns``: columns that are not features (ids, leaks);
- ``categorical_columns``: the non-numeric feature columns (read as pandas ``category``);
- ``label_map_test``: a mapping applied to the test file's labels (e.g. ``">50K." -> ">50K"``).

Every column that is neither the target nor dropped is a feature.

``python -m benchmarks.datasets copy NAME [NAME ...] --to DIR [--index PATH]`` copies
datasets (their files and entries) into a self-contained folder with its own
``index.json``: what a machine without the shared folder (a GPU host) needs, passed on
as ``--datasets-index DIR/index.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ENV_VAR = "TABNAS_DATASETS"
TASKS = ("binclass", "multiclass", "regression")


def default_index_path() -> Path:
    """``$TABNAS_DATASETS/index.json``, else ``../shared/datasets/index.json`` beside the repo."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]) / "index.json"
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "datasets" / "index.json"


@dataclass
class LocalDataset:
    """One dataset: features, target, and a predefined test split if any.

    ``source`` says where it came from (``"local"`` for an index entry, ``"openml"``);
    ``entry`` keeps the index entry (or the OpenML metadata) for the record.
    """

    name: str
    task: str
    X: pd.DataFrame
    y: pd.Series
    X_test: pd.DataFrame | None
    y_test: pd.Series | None
    entry: dict[str, Any]
    source: str = "local"
    categorical_columns: list[str] = field(default_factory=list)

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"


def read_index(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The entries of an index file by name (each with ``_root``, the index's folder)."""
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
    if entry.get("task") not in TASKS:
        raise ValueError(
            f"dataset {name!r} has task {entry.get('task')!r}; valid tasks: {list(TASKS)}"
        )
    root = Path(entry["_root"])
    categorical = list(entry.get("categorical_columns", []))

    def read(file: str) -> tuple[pd.DataFrame, pd.Series]:
        frame = pd.read_csv(
            root / file, keep_default_na=False, na_values=entry.get("na_values", [""])
        )
        named = [entry["target"], *entry.get("drop_columns", []), *categorical]
        missing = [c for c in named if c not in frame.columns]
        if missing:
            raise ValueError(
                f"dataset {name!r}: {file} has no column(s) {missing};"
                f" columns: {list(frame.columns)}"
            )
        y = frame.pop(entry["target"])
        frame = frame.drop(columns=entry.get("drop_columns", []))
        for column in categorical:
            frame[column] = frame[column].astype("category")
        return frame, y

    X, y = read(entry["file"])
    X_test = y_test = None
    if entry.get("test_file"):
        X_test, y_test = read(entry["test_file"])
        if list(X_test.columns) != list(X.columns):
            raise ValueError(
                f"dataset {name!r}: the columns of {entry['test_file']} differ from {entry['file']}"
            )
        if entry.get("label_map_test"):
            y_test = y_test.replace(entry["label_map_test"])
    return LocalDataset(
        name=name,
        task=entry["task"],
        X=X,
        y=y,
        X_test=X_test,
        y_test=y_test,
        entry=entry,
        source="local",
        categorical_columns=categorical,
    )


def copy_datasets(
    names: list[str], to: str | Path, index_path: str | Path | None = None
) -> Path:
    """Copy the files and entries of ``names`` into ``to``; returns its new ``index.json``.

    Entries already in ``to``'s index stay (the copied ones replace those of the same
    name), so a folder can be filled in several calls.
    """
    index = read_index(index_path)
    unknown = [n for n in names if n not in index]
    if unknown:
        raise KeyError(f"dataset(s) {unknown} not in the index; available: {sorted(index)}")
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    target = to / "index.json"
    kept = json.loads(target.read_text())["datasets"] if target.is_file() else []
    copied = []
    for name in names:
        entry = {k: v for k, v in index[name].items() if k != "_root"}
        for key in ("file", "test_file"):
            if entry.get(key):
                shutil.copyfile(Path(index[name]["_root"]) / entry[key], to / entry[key])
        copied.append(entry)
    entries = [e for e in kept if e["name"] not in names] + copied
    target.write_text(json.dumps({"format": 1, "datasets": entries}, indent=1) + "\n")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datasets")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="copy datasets into a self-contained folder")
    copy.add_argument("names", nargs="+")
    copy.add_argument("--to", required=True)
    copy.add_argument("--index", default=None, help="the source index (default: the shared one)")
    args = parser.parse_args(argv)
    print(copy_datasets(args.names, args.to, args.index))


if __name__ == "__main__":
    main()
