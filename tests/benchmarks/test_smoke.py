"""The smoke config end to end (minutes): python -m pytest -m slow tests/benchmarks."""

from __future__ import annotations

import json

import pytest

from benchmarks import report, run

from .conftest import needs_shared_datasets


@pytest.mark.slow
@needs_shared_datasets
def test_smoke_config_end_to_end(tmp_path):
    rows = run.main(["smoke", "--out", str(tmp_path)])
    assert len(rows) == 21 and {r["status"] for r in rows} == {"ok"}, [
        (r["dataset"], r["model"], r.get("error")) for r in rows if r["status"] != "ok"
    ]
    tabnas = [r for r in rows if r["model"].startswith("tabnas")]
    assert all(r["architecture"] and r["n_parameters"] for r in tabnas)
    split_ids = {(r["dataset"], r["split_id"]) for r in rows}
    assert len(split_ids) == 3  # one split per dataset, shared by every model
    path = report.main([str(tmp_path)])
    assert "average rank" in path.read_text()
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 21
    assert all(json.loads(line)["status"] == "ok" for line in (tmp_path / "results.jsonl").open())
