"""``make demo`` (the README's first command) on a tiny index of the same dataset names."""

from __future__ import annotations

import json

import pytest

from .conftest import tiny_frame, write_index

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_demo_prints_and_saves_real_results(tmp_path, capsys):
    from benchmarks import demo

    frame = tiny_frame(120, 0)
    frame.drop(columns=["y_reg"]).to_csv(tmp_path / "clf.csv", index=False)
    frame.drop(columns=["label"]).to_csv(tmp_path / "reg.csv", index=False)
    common = {"categorical_columns": ["colour"], "drop_columns": ["id"], "na_values": [""]}
    index = write_index(tmp_path, [
        {"name": "credit_g", "file": "clf.csv", "target": "label", "task": "binclass", **common},
        {"name": "california_housing", "file": "reg.csv", "target": "y_reg",
         "task": "regression", **common},
    ])
    out = tmp_path / "demo"
    rows = demo.main(["--out", str(out), "--datasets-index", str(index)])
    saved = json.loads((out / "results.json").read_text())
    assert saved == rows and {r["model"] for r in rows} >= {"tabnas-fast"}
    assert {r["source"] for r in rows} == {f"shared datasets ({index})"}
    tabnas = [r for r in rows if r["model"] == "tabnas-fast"]
    assert 0.5 <= tabnas[0]["accuracy"] <= 1.0 and tabnas[1]["rmse"] > 0
    assert sum(m["weight"] for m in tabnas[0]["ensemble"]) == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "EnsembleModel(" in printed and "| credit_g | tabnas-fast |" in printed
    assert (out / "credit_g" / "learning_curves.png").stat().st_size > 0


def _offline(*args, **kwargs):
    raise ConnectionError("no network in this test")


def test_demo_without_the_shared_folder_or_openml_runs_on_bundled_data(
    tmp_path, monkeypatch, capsys
):
    from benchmarks import demo, openml_data

    monkeypatch.setenv("TABNAS_DATASETS", str(tmp_path / "absent"))
    tried = []
    monkeypatch.setattr(openml_data, "check_reachable", lambda **kwargs: None)
    monkeypatch.setattr(
        openml_data, "load_openml_dataset", lambda *a, **k: tried.append(a) or _offline()
    )
    out = tmp_path / "demo"
    rows = demo.main(["--out", str(out), "--time-limit", "2"])
    printed = capsys.readouterr().out
    assert f"no dataset index at {tmp_path / 'absent' / 'index.json'}" in printed
    assert tried and "OpenML unavailable (ConnectionError: no network in this test)" in printed
    source = "scikit-learn's bundled datasets (breast_cancer, diabetes)"
    assert f"data: {source}" in printed and "| breast_cancer | tabnas-fast |" in printed
    assert json.loads((out / "results.json").read_text()) == rows
    assert {r["source"] for r in rows} == {source}
    tabnas = {r["dataset"]: r for r in rows if r["model"] == "tabnas-fast"}
    cancer, diabetes = tabnas["breast_cancer"], tabnas["diabetes"]
    assert cancer["task"] == "classification" and cancer["n_train"] == 364
    assert cancer["accuracy"] > 0.85 and cancer["time_limit"] == 2
    assert diabetes["task"] == "regression" and diabetes["n_train"] == 282
    assert 0 < diabetes["rmse"] < 100  # the target's standard deviation is 77
    assert (out / "breast_cancer" / "learning_curves.png").stat().st_size > 0


def test_demo_data_sources_in_order(tmp_path, monkeypatch, capsys):
    from benchmarks import demo, openml_data
    from benchmarks.datasets import LocalDataset

    absent = tmp_path / "absent" / "index.json"
    monkeypatch.setattr(openml_data, "check_reachable", _offline)
    source, pairs = demo.load_demo_data(absent)
    assert source.startswith("scikit-learn's bundled")
    assert [(task, data.name, data.source) for task, data in pairs] == [
        ("classification", "breast_cancer", "scikit-learn"),
        ("regression", "diabetes", "scikit-learn"),
    ]
    assert pairs[0][1].X.shape == (569, 30) and set(pairs[0][1].y) == {0, 1}

    def from_openml(dataset_id, *, name):
        X = tiny_frame(20, dataset_id)
        y = X.pop("label")
        return LocalDataset(name, "binclass", X, y, None, None, {"openml_id": dataset_id}, "openml")

    monkeypatch.setattr(openml_data, "check_reachable", lambda **kwargs: None)
    monkeypatch.setattr(openml_data, "load_openml_dataset", from_openml)
    source, pairs = demo.load_demo_data(absent)
    assert source == "OpenML (datasets 31, 537)"
    assert [(task, data.name) for task, data in pairs] == [
        ("classification", "credit_g"),
        ("regression", "california_housing"),
    ]
    assert "no dataset index at" in capsys.readouterr().out


def test_openml_reachability_check_fails_fast(tmp_path):
    pytest.importorskip("openml")
    import socket
    import time

    from benchmarks.openml_data import check_reachable

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="no answer within 0.5 s"):
            check_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/api", timeout=0.5)
        assert time.monotonic() - started < 2
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(ConnectionError, match="unreachable"):
            check_reachable(f"http://127.0.0.1:{port}/api", timeout=5)
