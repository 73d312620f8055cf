"""Jobs driven by a Dask cluster through joblib's dask backend."""

from __future__ import annotations

import json

import pytest

from benchmarks import run


def test_dask_local_cluster_runs_two_dummy_jobs(tmp_path, tiny_index):
    distributed = pytest.importorskip("distributed")
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'datasets_index = "{tiny_index}"\n[datasets]\nlocal = ["tiny_clf", "tiny_reg"]\n'
        "[models.dummy]\n"
    )
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        rows = run.main(
            [
                str(config),
                "--out",
                str(tmp_path / "out"),
                "--backend",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
            ]
        )
    assert sorted(r["dataset"] for r in rows) == ["tiny_clf", "tiny_reg"]
    assert {r["status"] for r in rows} == {"ok"}
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["model"] == "dummy" for line in lines)
