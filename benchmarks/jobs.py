"""One job = one (dataset, model, seed): load, split, fit, score, and the row that records it.

:func:`run_job` is what the runner hands to joblib. By default it runs the job in a fresh
child process (``python -m benchmarks.jobs``) so that a per-job time limit is a hard kill,
the peak memory is the job's own, and a crash of a native library cannot take the worker
down; the child ends itself when its parent dies (a killed run leaves no job running).
``isolate=False`` runs it in the calling process instead.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config import DatasetSpec, ModelSpec
from benchmarks.results_io import json_default

REPO_ROOT = Path(__file__).resolve().parent.parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PARENT_VARIABLE = "TABNAS_BENCH_PARENT"  # the pid of the worker that starts a job's process


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run one job (JSON-safe)."""

    dataset: DatasetSpec
    model: ModelSpec
    seed: int
    max_train_rows: int | None = None
    time_limit: float | None = None
    threads: int = 1
    datasets_index: str | None = None
    openml_cache: str | None = None
    openml_server: str | None = None
    isolate: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dataset.name, self.model.name, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            **{
                **data,
                "dataset": DatasetSpec(**data["dataset"]),
                "model": ModelSpec(**data["model"]),
            }
        )


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` (isolated or not) and return its result row; never raises for job errors."""
    started = time.time()
    if job.isolate:
        row = _run_in_child(job)
    else:
        row = execute(job)
    row.setdefault("wall_time_s", round(time.time() - started, 3))
    return row


def load_dataset(job: Job):
    """The job's dataset as a :class:`benchmarks.datasets.LocalDataset`."""
    spec = job.dataset
    if spec.source == "local":
        from benchmarks.datasets import load_local

        return load_local(str(spec.ref), job.datasets_index)
    from benchmarks import openml_data

    kwargs = {"name": spec.name, "cache_dir": job.openml_cache, "server": job.openml_server}
    if spec.source == "openml-dataset":
        return openml_data.load_openml_dataset(int(spec.ref), **kwargs)
    if spec.source == "openml-task":
        return openml_data.load_openml_task(int(spec.ref), **kwargs)
    raise ValueError(
        f"dataset {spec.name!r}: source {spec.source!r} cannot be loaded as one dataset"
    )


def execute(job: Job) -> dict[str, Any]:
    """Run ``job`` in this process: the result row, with ``status`` ok or error."""
    row = base_row(job)
    try:
        from benchmarks.models import adapter_class

        with _job_threads(job.threads, torch_needed=adapter_class(job.model.family).uses_torch):
            row.update(_fit_and_score(job))
        row["status"] = "ok"
    except Exception as error:  # a failed job is recorded, not raised
        row["status"] = "error"
        row["error"] = f"{type(error).__name__}: {error}"
        row["traceback"] = traceback.format_exc(limit=20)
    row["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["load_average_end"] = _load_average()
    return row


def base_row(job: Job) -> dict[str, Any]:
    """The fields every row has, whatever happens to the job."""
    return {
        "dataset": job.dataset.name,
        "model": job.model.name,
        "seed": job.seed,
        "task": None,
        "status": None,
        "error": None,
        "source": job.dataset.source,
        "model_family": job.model.family,
        "model_options": job.model.options,
        "max_train_rows": job.max_train_rows,
        "time_limit": job.time_limit,
        "cpu_threads": job.threads,
        "host": platform.node(),
        "versions": versions(job.model.family),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_start": _load_average(),
        **job.extra,
    }


def _fit_and_score(job: Job) -> dict[str, Any]:
    from benchmarks.models import make_model
    from benchmarks.protocol import prepare, scores

    out: dict[str, Any] = {}
    dataset = load_dataset(job)
    out["task"] = dataset.task
    data = prepare(dataset, seed=job.seed, max_train_rows=job.max_train_rows)
    out.update(data.sizes)
    out.update(
        n_features=data.X_train.shape[1],
        n_categorical=len(data.categorical_columns),
        n_classes=data.n_classes,
        n_dropped_by_cap=data.n_dropped_by_cap,
        split_id=data.split_id,
    )

    y_train, y_val, X_val = data.y_train, data.y_val, data.X_val
    present = None
    if data.n_classes is not None:
        present = np.unique(y_train)
        if len(present) < data.n_classes:  # classes absent from train: fit on those present
            seen = np.isin(y_val, present)
            X_val, y_val = X_val[seen].reset_index(drop=True), y_val[seen]
            y_train, y_val = np.searchsorted(present, y_train), np.searchsorted(present, y_val)
    model = make_model(
        job.model.name,
        job.model.options,
        task=data.task,
        n_classes=None if present is None else len(present),
        seed=job.seed,
        threads=job.threads,
    )
    for module in model.imports:  # not on the fit clock
        importlib.import_module(module)
    started = time.perf_counter()
    model.fit(data.X_train, y_train, X_val, y_val)
    out["fit_time_s"] = round(time.perf_counter() - started, 4)

    started = time.perf_counter()
    if data.n_classes is not None:
        proba = model.predict_proba(data.X_test)
        if proba.shape[1] != data.n_classes:
            full = np.zeros((len(proba), data.n_classes))
            full[:, present] = proba
            proba = full
        out["predict_time_s"] = round(time.perf_counter() - started, 4)
        out.update(scores(data.task, data.y_test, proba=proba))
    else:
        pred = model.predict(data.X_test)
        out["predict_time_s"] = round(time.perf_counter() - started, 4)
        out.update(scores(data.task, data.y_test, pred=pred))
    if hasattr(model, "score_arms"):  # a study: every arm scored on the same test split
        out["arms"] = model.score_arms(data.X_test, data.y_test, data.task)
    info = model.info()
    out["device"] = info.pop("device", "cpu")
    out["n_parameters"] = info.pop("n_parameters", None)
    out["architecture"] = info.pop("architecture", None)
    out["model_info"] = info
    return out


def _load_average() -> float | None:
    """The machine's 1-minute load average: above the job's threads, other work competed
    with the job and its times are inflated (recorded so such rows can be spotted)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on this platform
        return None


class _ProcessThreads:
    """The process's thread settings while jobs run in it: the first job to change one
    records its value, and the last job to end puts every recorded value back (jobs may
    run in threads of one process, and these settings belong to the process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._env: dict[str, str | None] = {}
        self._torch: int | None = None

    @contextlib.contextmanager
    def limit(self, threads: int, *, torch_needed: bool) -> Iterator[None]:
        if torch_needed:
            import torch  # noqa: F401  (imported before recording: it reads its default then)
        with self._lock:
            if self._running == 0:
                self._env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
            self._running += 1
            os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
            torch = sys.modules.get("torch")
            if torch is not None:
                if self._torch is None:
                    self._torch = torch.get_num_threads()
                torch.set_num_threads(threads)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self._restore()

    def _restore(self) -> None:
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._torch is not None:
            sys.modules["torch"].set_num_threads(self._torch)
            self._torch = None


# A job run in the caller's process must not leave it with more threads than it had: two
# processes that each run torch on all the cores of a small machine slow each other down
# many times over.
_job_threads = _ProcessThreads().limit


def versions(family: str) -> dict[str, str | None]:
    """Versions of Python, the core libraries and the model's own package (no heavy imports)."""
    from benchmarks.models import adapter_class

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    out = {"python": platform.python_version()}
    for package in (
        "tabnas", "torch", "scikit-learn", "numpy", "pandas", adapter_class(family).package
    ):
        out[package] = version(package)
    return out


# ---- isolation ---------------------------------------------------------------------------
def _run_in_child(job: Job) -> dict[str, Any]:
    """Run the job in ``python -m benchmarks.jobs``; kill it (and its children) on timeout."""
    with tempfile.TemporaryDirectory(prefix="tabnas-bench-") as folder:
        job_file, result_file = Path(folder) / "job.json", Path(folder) / "result.json"
        job_file.write_text(json.dumps(job.to_dict()))
        env = {**os.environ, **{name: str(job.threads) for name in THREAD_VARIABLES}}
        env[PARENT_VARIABLE] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.jobs", str(job_file), str(result_file)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=job.time_limit)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            if result_file.is_file():  # it finished, and ran past the limit shutting down
                return json.loads(result_file.read_text())
            row = base_row(job)
            row.update(
                status="timeout", error=f"the job ran past its time limit of {job.time_limit:g} s"
            )
            return row
        if result_file.is_file():
            return json.loads(result_file.read_text())
        row = base_row(job)
        tail = stderr.decode(errors="replace")[-2000:]
        row.update(
            status="error",
            error=f"the job's process died with exit code {process.returncode}: {tail}",
        )
        return row


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exit_with_parent(parent: int, interval: float = 1.0) -> threading.Thread:
    """Kill this process, and its process group when it leads one, once ``parent`` (the pid
    of the process that started it) is no longer its parent, checking every ``interval`` s.

    A job runs in a session of its own (so that a timeout kills its children too), which
    also shields it from a kill of the runner's process group or a Ctrl-C: this watch
    keeps a killed run from leaving its jobs training on, orphaned. The parent's pid comes
    from the parent itself, so a parent that died before the watch began is noticed too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _main(argv: list[str]) -> int:
    """``python -m benchmarks.jobs JOB_JSON RESULT_JSON``: run one job in this process."""
    job_file, result_file = argv
    exit_with_parent(int(os.environ.get(PARENT_VARIABLE, os.getppid())))
    job = Job.from_dict(json.loads(Path(job_file).read_text()))
    row = execute(job)
    tmp = Path(result_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(row, default=json_default))
    tmp.replace(result_file)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
