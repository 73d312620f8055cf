"""The runner: results appended per job, resume, failures and timeouts recorded."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks import run

from .conftest import sklearn_index, write_index


def _config(tmp_path, index, datasets='["tiny_clf", "tiny_reg"]', extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'datasets_index = "{index}"\n{extra}\n[datasets]\nlocal = {datasets}\n[models.dummy]\n'
    )
    return str(path)


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_resume_skips_finished_jobs_and_records_failures(tmp_path, tiny_index):
    # a third dataset whose file is missing: its job fails, the others do not
    entries = json.loads(tiny_index.read_text())["datasets"]
    entries.append({"name": "broken", "file": "absent.csv", "target": "label", "task": "binclass"})
    write_index(tiny_index.parent, entries)
    config = _config(tmp_path, tiny_index, '["tiny_clf", "tiny_reg", "broken"]')
    out = tmp_path / "out"

    first = run.main([config, "--out", str(out), "--n-jobs", "2"])
    rows = _rows(out)
    assert len(first) == len(rows) == 3
    by = {r["dataset"]: r for r in rows}
    assert by["tiny_clf"]["status"] == by["tiny_reg"]["status"] == "ok"
    assert by["broken"]["status"] == "error" and "absent.csv" in by["broken"]["error"]
    clf, reg = by["tiny_clf"], by["tiny_reg"]
    assert (
        clf["task"] == "binclass"
        and 0 <= clf["accuracy"] <= 1
        and "log_loss" in clf
        and "roc_auc" in clf
    )
    assert reg["task"] == "regression" and reg["rmse"] > 0 and "r2" in reg
    for row in (clf, reg):
        assert (row["n_train"], row["n_val"], row["n_test"]) == (77, 19, 24)
        assert row["fit_time_s"] >= 0 and row["predict_time_s"] >= 0 and row["peak_memory_mb"] > 0
        assert row["versions"]["scikit-learn"] and row["versions"]["tabnas"] and "device" in row
        assert row["cpu_threads"] >= 1 and row["seed"] == 0 and row["model"] == "dummy"
        assert row["load_average_start"] >= 0 and row["load_average_end"] >= 0

    second = run.main([config, "--out", str(out)])
    assert [r["dataset"] for r in second] == ["broken"]  # only the failed job is tried again
    assert len(_rows(out)) == 4

    run.main([config, "--out", str(out), "--datasets", "tiny_clf,tiny_reg"])
    assert len(_rows(out)) == 4  # nothing redone


def test_time_limit_kills_and_records_timeout(tmp_path, tiny_index):
    config = _config(tmp_path, tiny_index, '["tiny_clf"]')
    rows = run.main(
        [config, "--out", str(tmp_path / "out"), "--time-limit", "0.05", "--backend", "sequential"]
    )
    assert [r["status"] for r in rows] == ["timeout"]
    assert "time limit" in rows[0]["error"]


def test_in_process_and_dry_run(tmp_path, tiny_index, capsys, monkeypatch, one_torch_thread):
    import torch

    # Jobs run in this process take two threads each, then hand back what the process had.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = _config(tmp_path, tiny_index, extra="seeds = 2")
    run.main([config, "--out", str(tmp_path / "out"), "--dry-run"])
    assert "4 jobs, 4 to run" in capsys.readouterr().out
    assert not (tmp_path / "out" / "results.jsonl").exists()
    rows = run.main(
        [
            config,
            "--out",
            str(tmp_path / "out"),
            "--in-process",
            "--backend",
            "threading",
            "--datasets",
            "tiny_clf",
            "--seeds",
            "2",
            "--threads",
            "2",
            "--n-jobs",
            "2",
        ]
    )
    assert sorted(r["seed"] for r in rows) == [0, 1] and {r["status"] for r in rows} == {"ok"}
    assert rows[0]["split_id"] != rows[1]["split_id"]
    assert {r["cpu_threads"] for r in rows} == {2}
    assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS" not in os.environ


def test_append_row_writes_whole_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    for i in range(3):
        run.append_row(path, {"dataset": "d", "model": "m", "seed": i, "status": "ok"})
    with path.open("a") as f:
        f.write('{"torn": ')  # a crash mid-line is skipped on reading
    assert run.completed_keys(path) == {("d", "m", 0), ("d", "m", 1), ("d", "m", 2)}


def test_append_row_is_one_write_of_the_whole_line_then_fsync(tmp_path, monkeypatch):
    calls = []
    write, fsync = os.write, os.fsync
    monkeypatch.setattr(os, "write", lambda fd, data: calls.append(bytes(data)) or write(fd, data))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or fsync(fd))
    path = tmp_path / "r.jsonl"
    row = {"dataset": "d", "model": "m", "seed": 0, "status": "ok", "score": np.float32(0.5)}
    run.append_row(path, row)
    assert calls == [(json.dumps({**row, "score": 0.5}) + "\n").encode(), "fsync"]


def test_a_row_appended_after_a_torn_line_is_not_glued_to_it(tmp_path):
    path = tmp_path / "r.jsonl"
    run.append_row(path, {"dataset": "d", "model": "m", "seed": 0, "status": "ok"})
    with path.open("a") as f:
        f.write('{"dataset": "d", "model": "m", "seed": 1, "sta')  # killed mid-write
    run.append_row(path, {"dataset": "d", "model": "m", "seed": 1, "status": "ok"})
    run.append_row(path, {"dataset": "d", "model": "m", "seed": 2, "status": "ok"})
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[1].endswith('"sta') and path.read_text().endswith("}\n")
    assert [r["seed"] for r in run.read_results(path)] == [0, 1, 2]
    assert run.completed_keys(path) == {("d", "m", 0), ("d", "m", 1), ("d", "m", 2)}


def test_a_configs_protocol_on_the_users_own_index(tmp_path):
    index = sklearn_index(tmp_path, {"mine": "breast_cancer"})
    out = tmp_path / "out"
    own = ["standard", "--out", str(out), "--datasets-index", str(index)]
    cheap = ["--models", "lightgbm", "--seeds", "1", "--threads", "1"]
    rows = run.main([*own, "--datasets", "mine", *cheap, "--in-process", "--backend", "sequential"])
    assert [(r["dataset"], r["model"], r["seed"], r["status"]) for r in rows] == [
        ("mine", "lightgbm", 0, "ok")
    ]
    assert rows[0]["task"] == "binclass" and rows[0]["accuracy"] > 0.85
    assert rows[0]["config"] == "standard" and rows[0]["max_train_rows"] == 10_000
    assert run.read_results(out / "results.jsonl") == rows
    saved = json.loads((out / "config.json").read_text())
    assert saved["datasets_index"] == str(index) and saved["datasets"][0]["name"] == "mine"

    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['nope'\]") as error:
        run.main([*own, "--datasets", "mine,nope", *cheap, "--dry-run"])
    message = str(error.value)
    assert f"datasets in the index {index}: ['mine']" in message
    assert "breast_w" not in message  # the config's own datasets are not the choices
    # without --datasets, the config's datasets are checked against the given index
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['breast_w'.*\['mine'\]"):
        run.main([*own, "--dry-run"])


def test_a_resumed_run_refuses_rows_made_with_other_options(tmp_path, tiny_index):
    out = tmp_path / "out"
    run.main([_config(tmp_path, tiny_index, '["tiny_clf"]'), "--out", str(out)])
    before = (out / "results.jsonl").read_text()
    changed = _config(tmp_path, tiny_index, '["tiny_clf"]', extra="max_train_rows = 50")
    with pytest.raises(SystemExit, match=r"(?s)1 finished job.*tiny_clf.*stored \(\{\}, None\),"
                       r" this run \(\{\}, 50\).*Use another --out"):
        run.main([changed, "--out", str(out)])
    with pytest.raises(SystemExit, match="other model options"):
        run.main([changed, "--out", str(out), "--dry-run"])
    assert (out / "results.jsonl").read_text() == before  # nothing run, nothing written
    # the same options, e.g. rows copied from another config with the same base: resumed
    assert run.main([_config(tmp_path, tiny_index, '["tiny_clf"]'), "--out", str(out)]) == []


def test_a_task_named_by_its_suite_and_alone_runs_once(tmp_path, monkeypatch):
    from benchmarks import openml_data
    from benchmarks.config import load_config

    monkeypatch.setattr(openml_data, "suite_task_ids", lambda suite, **kwargs: [31, 37])
    path = tmp_path / "suite.toml"
    path.write_text(
        '[datasets]\nopenml_suites = [99]\nopenml_tasks = [{id = 37, name = "blood"}]\n'
        "[models.dummy]\n"
    )
    jobs = run.make_jobs(load_config(str(path), check_local=False), threads=1)
    assert sorted(job.dataset.name for job in jobs) == ["blood", "openml-task:31"]


def test_the_studies_read_past_a_line_torn_by_a_kill(tmp_path):
    from benchmarks import strategies, strategy_check

    path = tmp_path / "results.jsonl"
    row = {"strategy": "gdas", "dataset": "california", "status": "ok", "arms": {"a": 1}}
    run.append_row(path, row)
    with path.open("a") as f:
        f.write('{"strategy": "snas", "data')  # killed in the middle of a write
    assert strategy_check.load(path) == {("gdas", "california"): row}
    assert strategies.load_jobs(path) == [row]
    strategy_check_row = {"strategy": "snas", "dataset": "california", "status": "ok"}
    run.append_row(path, strategy_check_row)  # the resumed run's next row stands alone
    assert set(strategy_check.load(path)) == {("gdas", "california"), ("snas", "california")}


def test_retry_chooses_which_unfinished_jobs_run_again(tmp_path, tiny_index):
    config = _config(tmp_path, tiny_index, '["tiny_clf"]')
    out = str(tmp_path / "out")
    first = run.main([config, "--out", out, "--time-limit", "0.05", "--backend", "sequential"])
    assert [r["status"] for r in first] == ["timeout"]
    assert run.main([config, "--out", out, "--retry", "none"]) == []
    assert run.main([config, "--out", out, "--retry", "errors"]) == []  # a timeout is kept
    again = run.main([config, "--out", out])  # the default tries it again
    assert [r["status"] for r in again] == ["ok"]
