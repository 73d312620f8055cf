"""Run a benchmark: every (dataset, model, seed) of a config is one job.

    python -m benchmarks.run smoke --out results/smoke
    python -m benchmarks.run standard --out results/standard --n-jobs 2
    python -m benchmarks.run gorishniy --out runs/g --backend dask --scheduler tcp://host:8786
    python -m benchmarks.run path/to/my.toml --out DIR \\
        --datasets adult,churn --models tabnas,lightgbm

Each finished job is appended at once to DIR/results.jsonl (one JSON object per line). A
rerun skips the jobs that already have a row with status "ok", so an interrupted run
loses nothing; failed and timed-out jobs are tried again. Jobs run through joblib: local
processes by default (loky), any registered joblib backend by name, or a Dask cluster.
Each job runs in a child process of its worker, killed when it passes the time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.config import BenchConfig, load_config, select
from benchmarks.jobs import Job, run_job
from benchmarks.results_io import append_row, json_default, read_results

RESULTS_FILE = "results.jsonl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "config",
        help="a config name (smoke, standard, gorishniy, grinsztajn: "
        "benchmarks/configs/NAME.toml) or the path of a TOML config",
    )
    parser.add_argument(
        "--out", required=True, help="output folder; results go to OUT/results.jsonl"
    )
    parser.add_argument(
        "--datasets-index",
        default=None,
        help="local dataset index (index.json format); default: the config's, else "
        "$TABNAS_DATASETS/index.json, else ../shared/datasets/index.json",
    )
    parser.add_argument(
        "--datasets",
        default=None,
        help="comma-separated datasets to run instead of the config's: config names, "
        "local index names, openml-dataset:ID, openml-task:ID, openml-suite:ID",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated models to run instead of the config's: config names "
        "(e.g. tabnas-fast) or model families with default options",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="run seeds 0..N-1 instead of the config's seeds"
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="jobs at once (default: the config's n_jobs, else 1); each job gets "
        "cpu_count // n_jobs threads unless --threads is given",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per job (default: cpu_count // n_jobs, at least 1)",
    )
    parser.add_argument(
        "--backend",
        default="loky",
        help="joblib backend: loky (default, local processes), multiprocessing, "
        "threading, sequential, dask (see --scheduler), ray, or any registered name",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address (e.g. tcp://host:8786) for --backend dask; "
        "without it a local Dask cluster with n_jobs workers is started",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="hard limit per job in seconds (default: the config's time_limit); a job "
        "past it is killed and recorded with status timeout",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run jobs inside the joblib workers instead of a child process each "
        "(no hard time limit; peak memory is the worker's)",
    )
    parser.add_argument(
        "--retry",
        choices=sorted(RETRY),
        default="all",
        help="which jobs of --out that did not finish to run again: all (default: errors and"
        " timeouts), errors (a job that timed out would time out again), none",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the config and list the jobs without loading data or training",
    )
    return parser


def make_jobs(
    cfg: BenchConfig, *, threads: int, isolate: bool = True, expand_suites: bool = True
) -> list[Job]:
    """The config's jobs, dataset by dataset; OpenML suites expand to their tasks."""
    from benchmarks.config import DatasetSpec

    datasets: list[DatasetSpec] = []
    for spec in cfg.datasets:
        if spec.source == "openml-suite" and expand_suites:
            from benchmarks.openml_data import suite_task_ids

            for task_id in suite_task_ids(
                int(spec.ref), cache_dir=cfg.openml_cache, server=cfg.openml_server
            ):
                datasets.append(
                    DatasetSpec(
                        name=f"openml-task:{task_id}",
                        source="openml-task",
                        ref=task_id,
                        note=f"from suite {spec.ref}",
                    )
                )
        else:
            datasets.append(spec)
    unique: dict[tuple[str, str], DatasetSpec] = {}
    for spec in datasets:  # a task listed twice (by its suite and alone) runs once
        unique.setdefault((spec.source, str(spec.ref)), spec)
    datasets = list(unique.values())
    return [
        Job(
            dataset=dataset,
            model=model,
            seed=seed,
            max_train_rows=cfg.max_train_rows,
            time_limit=cfg.time_limit,
            threads=threads,
            datasets_index=None if cfg.datasets_index is None else str(cfg.datasets_index),
            openml_cache=None if cfg.openml_cache is None else str(cfg.openml_cache),
            openml_server=cfg.openml_server,
            isolate=isolate,
            extra={"config": cfg.name},
        )
        for dataset in datasets
        for model in cfg.models
        for seed in cfg.seeds
    ]


RETRY = {  # --retry: the statuses of earlier rows whose jobs are not run again
    "all": frozenset({"ok"}),
    "errors": frozenset({"ok", "timeout"}),
    "none": frozenset({"ok", "timeout", "error"}),
}


def completed_keys(
    path: Path, statuses: frozenset[str] = RETRY["all"]
) -> set[tuple[str, str, int]]:
    """(dataset, model, seed) of the jobs with a row of one of ``statuses`` (default: ok)."""
    return {
        (r["dataset"], r["model"], int(r["seed"]))
        for r in read_results(path)
        if r.get("status") in statuses
    }


def refuse_stale_rows(
    path: Path, jobs: list[Job], statuses: frozenset[str] = RETRY["all"]
) -> None:
    """Stop, naming them, when rows in ``path`` that count as done (``statuses``) would
    stand for ``jobs`` that run with other model options or another row cap: a resumed
    run would mix the two.

    Rows copied from another config with the same options (a shared base) still count.
    """
    wanted = {
        job.key: (_as_json(job.model.options), job.max_train_rows) for job in jobs
    }
    stale = []
    for row in read_results(path):
        key = (row.get("dataset"), row.get("model"), int(row.get("seed", -1)))
        if row.get("status") not in statuses or key not in wanted:
            continue
        stored = (row.get("model_options"), row.get("max_train_rows"))
        if stored != wanted[key]:
            stale.append(f"  {key}: stored {stored}, this run {wanted[key]}")
    if stale:
        raise SystemExit(
            f"{path} already holds {len(stale)} finished job(s) of this run with other model"
            " options or max_train_rows (shown as (options, max_train_rows)):\n"
            + "\n".join(stale[:10]) + ("\n  ..." if len(stale) > 10 else "")
            + "\nUse another --out, give the changed model another name in the config, or"
            " delete those rows to run them again."
        )


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from a results row (tuples become lists, and so on)."""
    return json.loads(json.dumps(value, default=json_default))


def _threads_per_job(n_jobs: int, threads: int | None) -> int:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        return threads
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))


def execute_jobs(
    jobs: list[Job], *, n_jobs: int, backend: str, scheduler: str | None, progress: bool = True
) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` through joblib and yield each result row as soon as it is done."""
    import joblib

    if backend == "dask":
        yield from _execute_dask(jobs, n_jobs=n_jobs, scheduler=scheduler, progress=progress)
        return
    if backend == "ray":  # registers joblib's "ray" backend
        from ray.util.joblib import register_ray

        register_ray()
    with joblib.parallel_config(backend=backend, n_jobs=n_jobs):
        yield from _progress(
            joblib.Parallel(return_as="generator_unordered")(
                joblib.delayed(run_job)(j) for j in jobs
            ),
            total=len(jobs),
            enabled=progress,
        )


def _execute_dask(
    jobs: list[Job], *, n_jobs: int, scheduler: str | None, progress: bool
) -> Iterator[dict[str, Any]]:
    import joblib
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_jobs, threads_per_worker=1)
        scheduler = cluster.scheduler_address
    client = Client(scheduler)
    try:
        with joblib.parallel_config(backend="dask", n_jobs=-1):
            yield from _progress(
                joblib.Parallel(return_as="generator_unordered")(
                    joblib.delayed(run_job)(j) for j in jobs
                ),
                total=len(jobs),
                enabled=progress,
            )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(
    rows: Iterable[dict[str, Any]], *, total: int, enabled: bool
) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm

    with tqdm(total=total, unit="job", disable=not enabled, file=sys.stderr) as bar:
        for row in rows:
            bar.set_postfix_str(f"{row['dataset']} {row['model']} {row['seed']}: {row['status']}")
            bar.update()
            yield row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; return the rows written by this run."""
    args = build_parser().parse_args(argv)
    # with --datasets, the chosen names (not the config's) are checked against the index
    cfg = load_config(
        args.config, datasets_index=args.datasets_index, check_local=not args.datasets
    )
    cfg = select(
        cfg,
        datasets=args.datasets.split(",") if args.datasets else None,
        models=args.models.split(",") if args.models else None,
    )
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit(f"--seeds must be at least 1, got {args.seeds}")
        cfg.seeds = list(range(args.seeds))
    if args.time_limit is not None:
        cfg.time_limit = args.time_limit
    n_jobs = args.n_jobs or cfg.n_jobs
    threads = _threads_per_job(n_jobs, args.threads)
    out = Path(args.out)
    results = out / RESULTS_FILE
    statuses = RETRY[args.retry]
    done = completed_keys(results, statuses)

    if args.dry_run:
        jobs = make_jobs(cfg, threads=threads, expand_suites=False)
        refuse_stale_rows(results, jobs, statuses)
        _print_plan(cfg, jobs, done, n_jobs=n_jobs, threads=threads, backend=args.backend)
        return []

    jobs = make_jobs(cfg, threads=threads, isolate=not args.in_process)
    refuse_stale_rows(results, jobs, statuses)
    todo = [j for j in jobs if j.key not in done]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps(
            {
                **cfg.to_dict(),
                "n_jobs": n_jobs,
                "threads_per_job": threads,
                "backend": args.backend,
                "scheduler": args.scheduler,
                "machine": platform.platform(),
                "cpu_count": os.cpu_count(),
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(
        f"{cfg.name}: {len(jobs)} jobs, {len(jobs) - len(todo)} already done"
        + ("" if args.retry == "all" else f" or not retried (--retry {args.retry})")
        + f", {len(todo)} to run"
        f" ({n_jobs} at once, {threads} thread(s) each, backend {args.backend})",
        file=sys.stderr,
    )
    written = []
    for row in execute_jobs(todo, n_jobs=n_jobs, backend=args.backend, scheduler=args.scheduler):
        append_row(results, row)
        written.append(row)
        if row["status"] != "ok":
            print(
                f"  {row['dataset']} / {row['model']} / seed {row['seed']}: {row['status']}:"
                f" {str(row.get('error'))[:300]}",
                file=sys.stderr,
            )
    failed = sum(r["status"] != "ok" for r in written)
    print(
        f"done: {len(written) - failed} ok, {failed} failed or timed out; results in {results}",
        file=sys.stderr,
    )
    return written


def _print_plan(
    cfg: BenchConfig, jobs: list[Job], done: set, *, n_jobs: int, threads: int, backend: str
) -> None:
    print(f"config {cfg.name} ({cfg.path}): {cfg.description}".rstrip(": "))
    print(
        f"seeds {cfg.seeds}; max_train_rows {cfg.max_train_rows}; time_limit {cfg.time_limit};"
        f" {n_jobs} job(s) at once, {threads} thread(s) each; backend {backend}"
    )
    for spec in cfg.datasets:
        if spec.source == "openml-suite":
            print(f"  {spec.name}: an OpenML suite, expanded to its tasks when the run starts")
    todo = 0
    for job in jobs:
        state = "done" if job.key in done else "todo"
        todo += state == "todo"
        print(f"  [{state}] {job.dataset.name}  {job.model.name}  seed {job.seed}")
    print(f"{len(jobs)} jobs, {todo} to run (dry run: nothing loaded or trained)")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
