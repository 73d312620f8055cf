"""OpenML loading through the real openml code path, from the test server's cache files.

The cache (shared/datasets/openml-cache/, copied from openml-python's test files) holds
test-server datasets 1 and 2 (anneal) and tasks 1 and 1882. Sockets are blocked: nothing
may be downloaded.
"""

from __future__ import annotations

import shutil
import socket

import pytest

from benchmarks.datasets import default_index_path
from benchmarks.protocol import prepare

CACHE = default_index_path().parent / "openml-cache"

pytestmark = pytest.mark.skipif(
    not (CACHE / "org" / "openml" / "test").is_dir(),
    reason="needs the shared datasets folder with its OpenML cache (../shared/datasets or"
    f" $TABNAS_DATASETS): no {CACHE / 'org' / 'openml' / 'test'}",
)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """A writable copy of the cache (openml writes parquet files beside the ARFF); no network."""
    pytest.importorskip("openml")
    import openml

    copy = tmp_path / "openml-cache"
    shutil.copytree(CACHE, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    def refuse(*args, **kwargs):
        raise AssertionError("the OpenML loader tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    saved = openml.config.get_config_as_dict()
    yield copy
    openml.config.server = saved["server"]
    openml.config.set_root_cache_directory(str(saved["cachedir"]))


def test_dataset_from_cache(offline_cache):
    from benchmarks.openml_data import TEST_SERVER, load_openml_dataset

    data = load_openml_dataset(2, cache_dir=offline_cache, server=TEST_SERVER)
    assert data.name == "openml-dataset:2" and data.entry["openml_name"] == "anneal"
    assert data.X.shape == (898, 38) and data.task == "multiclass" and data.X_test is None
    assert len(data.categorical_columns) > 0
    prepared = prepare(data, seed=0)
    assert sum(prepared.sizes.values()) == 898


def test_task_from_cache_uses_the_official_split(offline_cache):
    import openml

    from benchmarks.openml_data import TEST_SERVER, load_openml_task

    data = load_openml_task(1882, cache_dir=offline_cache, server=TEST_SERVER)
    train, test = openml.tasks.get_task(1882).get_train_test_split_indices(repeat=0, fold=0)
    assert len(data.X) == len(train) and len(data.X_test) == len(test) == 90
    assert data.entry["openml_id"] == 2 and data.task == "multiclass"
    prepared = prepare(data, seed=0)
    assert prepared.sizes["n_test"] == 90
    assert prepared.sizes["n_train"] + prepared.sizes["n_val"] == len(train)
