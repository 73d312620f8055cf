"""A real run killed with SIGKILL loses nothing: its rows stay readable, the rerun skips them.

The runner is a subprocess of its own session (its joblib workers share its process group);
each job runs in a session of its own and ends itself when its worker dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.jobs import REPO_ROOT

from .conftest import sklearn_index

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="reads process states from Linux's /proc"
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids_mentioning(text: str) -> list[int]:
    """The live processes whose command line contains ``text``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # ended meanwhile
            continue
    return [pid for pid in pids if pid != os.getpid() and _alive(pid)]


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_killed_run_loses_nothing_and_resumes(tmp_path):
    index = sklearn_index(tmp_path, {"cancer": "breast_cancer", "diabetes": "diabetes"})
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'datasets_index = "{index}"\nseeds = 3\n'
        '[datasets]\nlocal = ["cancer", "diabetes"]\n[models.lightgbm]\n'
    )
    out = tmp_path / "out"
    results = out / run.RESULTS_FILE
    command = [sys.executable, "-m", "benchmarks.run", str(config), "--out", str(out)]
    command += ["--n-jobs", "2", "--threads", "1"]
    job_tmp = tmp_path / "jobs"  # the jobs' temporary folders: their command lines name it
    job_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(job_tmp)}

    with (tmp_path / "first.log").open("w") as log:
        runner = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )

        def first_row_or_exit() -> bool:
            return runner.poll() is not None or (
                results.is_file() and b"\n" in results.read_bytes()
            )

        try:
            assert _wait_until(first_row_or_exit, seconds=90)
            assert runner.poll() is None, (tmp_path / "first.log").read_text()
        finally:
            os.killpg(runner.pid, signal.SIGKILL)  # the runner and its joblib workers
            runner.wait()
    assert runner.returncode == -signal.SIGKILL
    # the job processes of the killed run end themselves (their worker died)
    assert _wait_until(lambda: not _pids_mentioning(str(job_tmp)), seconds=15)

    # every complete line is a row; a torn last line (a kill mid-write) is no row
    *complete, torn = results.read_text().split("\n")
    before = [json.loads(line) for line in complete]
    assert run.read_results(results) == before
    assert 1 <= len(before) < 6, "the kill came after the run had finished"
    assert {r["status"] for r in before} == {"ok"}

    rerun = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 jobs, {len(before)} already done, {6 - len(before)} to run" in rerun.stderr
    rows = run.read_results(results)
    keys = [(r["dataset"], r["model"], r["seed"]) for r in rows]
    assert sorted(keys) == sorted(
        (dataset, "lightgbm", seed) for dataset in ("cancer", "diabetes") for seed in range(3)
    )  # every job once: none lost, none run twice
    assert {r["status"] for r in rows} == {"ok"}
    assert rows[: len(before)] == before  # the finished rows kept as they were, not rerun
    by_key = {(r["dataset"], r["model"], r["seed"]): r for r in rows}
    for row in before:
        again = by_key[(row["dataset"], row["model"], row["seed"])]
        assert (again["started_at"], again["fit_time_s"]) == (row["started_at"], row["fit_time_s"])
    assert len(results.read_text().splitlines()) == len(rows) + bool(torn)


def test_a_job_process_ends_when_its_parent_dies():
    # the watched process sleeps for a minute unless the watch kills it
    watched = (
        "import sys, time\n"
        "from benchmarks.jobs import exit_with_parent\n"
        "exit_with_parent(int(sys.argv[1]), interval=0.1)\n"
        "time.sleep(60)\n"
    )
    parent_code = (
        "import os, subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {watched!r}, str(os.getpid())],"
        " start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_until(lambda: not _alive(child), seconds=20)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
        parent.stdout.close()
