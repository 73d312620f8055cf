"""Datasets from OpenML (through the ``openml`` package): by dataset, task or suite id.

- a **dataset** id gives the whole table and its default target; the harness makes the
  split (64/16/20);
- a **task** id gives the table, the task's target and its official split: the test part
  of ``task.get_train_test_split_indices(repeat=0, fold=0)`` is the test split, the rest is
  split 80/20 into train and val by the harness;
- a **suite** id (a benchmark suite such as 334-337 of Grinsztajn et al. 2022) expands to
  its task ids.

Everything goes through ``openml``'s own cache: set its folder with ``cache_dir`` (or the
``openml_cache`` key of a config). A dataset that is in the cache is read from there
without touching the network; one that is not is downloaded by ``openml``.
``server`` selects another OpenML server (e.g. :data:`TEST_SERVER`, whose cache layout is
``org/openml/test/...``). :func:`check_reachable` tells within seconds whether the server
answers (``openml`` itself has no timeout, and retries).
"""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.datasets import LocalDataset

PRODUCTION_SERVER = "https://www.openml.org/api/v1/xml"
TEST_SERVER = "https://test.openml.org/api/v1/xml"

_GET_KWARGS: dict[str, Any] = {
    "download_data": True,
    "download_qualities": False,
    "download_features_meta_data": False,
}


def configure(cache_dir: str | Path | None = None, server: str | None = None) -> None:
    """Point ``openml`` at a cache folder and a server (both optional)."""
    import openml

    if server is not None:
        openml.config.server = server
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        openml.config.set_root_cache_directory(str(path))


def check_reachable(server: str | None = None, timeout: float = 5.0) -> None:
    """Raise ``ConnectionError`` unless the OpenML ``server`` (default: ``openml``'s) answers
    a one-row dataset listing within ``timeout`` seconds; ``ImportError`` without ``openml``.

    The request runs in a daemon thread that is waited for at most ``timeout`` seconds, so an
    offline machine gets its answer at once or after ``timeout`` (a hanging name lookup
    included), never later.
    """
    import openml

    url = f"{(server or openml.config.server).rstrip('/')}/data/list/limit/1"
    failure: list[BaseException | None] = []

    def request() -> None:
        try:
            # the socket's own timeout a little after the wait's, so that a silent server
            # always reads as "no answer" (the two used to race on a loaded machine)
            with urllib.request.urlopen(url, timeout=timeout + 1.0) as response:
                response.read()
            failure.append(None)
        except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, bad URLs
            failure.append(error)

    thread = threading.Thread(target=request, name="openml-reachable", daemon=True)
    thread.start()
    thread.join(timeout)
    if not failure:
        raise ConnectionError(f"OpenML server {url}: no answer within {timeout:g} s")
    if failure[0] is not None:
        raise ConnectionError(f"OpenML server unreachable ({url}): {failure[0]}")


def load_openml_dataset(
    dataset_id: int,
    *,
    name: str | None = None,
    target: str | None = None,
    cache_dir: str | Path | None = None,
    server: str | None = None,
) -> LocalDataset:
    """The OpenML dataset ``dataset_id`` with its default target (or ``target``), no test split."""
    import openml

    configure(cache_dir, server)
    dataset = openml.datasets.get_dataset(int(dataset_id), **_GET_KWARGS)
    target = target or dataset.default_target_attribute
    if not target:
        raise ValueError(
            f"OpenML dataset {dataset_id} ({dataset.name}) has no default target; pass target="
        )
    X, y = _table(dataset, target)
    return LocalDataset(
        name=name or f"openml-dataset:{dataset_id}",
        task=_task_from_target(y),
        X=X,
        y=y,
        X_test=None,
        y_test=None,
        entry={
            "openml_id": int(dataset_id),
            "openml_name": dataset.name,
            "target": target,
            "server": openml.config.server,
        },
        source="openml",
        categorical_columns=_categorical(X),
    )


def load_openml_task(
    task_id: int,
    *,
    name: str | None = None,
    cache_dir: str | Path | None = None,
    server: str | None = None,
) -> LocalDataset:
    """The table of OpenML task ``task_id`` with its official test split (repeat 0, fold 0)."""
    import openml
    from openml.tasks import TaskType

    configure(cache_dir, server)
    task = openml.tasks.get_task(int(task_id), download_splits=True, **_GET_KWARGS)
    if task.task_type_id not in (
        TaskType.SUPERVISED_CLASSIFICATION,
        TaskType.SUPERVISED_REGRESSION,
    ):
        raise ValueError(
            f"OpenML task {task_id} is a {task.task_type!r} task; only supervised classification"
            " and regression tasks can be benchmarked"
        )
    dataset = task.get_dataset(**_GET_KWARGS)
    X, y = _table(dataset, task.target_name)
    train_rows, test_rows = task.get_train_test_split_indices(repeat=0, fold=0)
    if task.task_type_id == TaskType.SUPERVISED_REGRESSION:
        kind = "regression"
    else:
        kind = _task_from_target(y)
    return LocalDataset(
        name=name or f"openml-task:{task_id}",
        task=kind,
        X=X.iloc[train_rows].reset_index(drop=True),
        y=y.iloc[train_rows].reset_index(drop=True),
        X_test=X.iloc[test_rows].reset_index(drop=True),
        y_test=y.iloc[test_rows].reset_index(drop=True),
        entry={
            "openml_task_id": int(task_id),
            "openml_id": int(task.dataset_id),
            "openml_name": dataset.name,
            "target": task.target_name,
            "split": "repeat 0, fold 0",
            "server": openml.config.server,
        },
        source="openml",
        categorical_columns=_categorical(X),
    )


def suite_task_ids(
    suite_id: int | str, *, cache_dir: str | Path | None = None, server: str | None = None
) -> list[int]:
    """The task ids of an OpenML benchmark suite."""
    import openml

    configure(cache_dir, server)
    return [int(t) for t in openml.study.get_suite(suite_id).tasks]


def _table(dataset: Any, target: str) -> tuple[pd.DataFrame, pd.Series]:
    X, y, categorical, names = dataset.get_data(target=target, dataset_format="dataframe")
    X = pd.DataFrame(X, columns=names)
    for column, is_categorical in zip(names, categorical):
        if is_categorical or not pd.api.types.is_numeric_dtype(X[column]):
            X[column] = X[column].astype("category")
    return X, pd.Series(y, name=target)


def _categorical(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]


def _task_from_target(y: pd.Series) -> str:
    """Nominal target -> ``binclass`` / ``multiclass``; numeric -> ``regression``."""
    nominal = (
        isinstance(y.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(y.dtype)
        or pd.api.types.is_string_dtype(y.dtype)
        or pd.api.types.is_bool_dtype(y.dtype)
    )
    if not nominal:
        return "regression"
    return "binclass" if y.nunique(dropna=True) == 2 else "multiclass"
