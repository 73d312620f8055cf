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
        {"name": "california_housing", "file": "reg.csv", "target": "y_reg", "task": "regression", **common},
    ])
    out = tmp_path / "demo"
    rows = demo.main(["--out", str(out), "--datasets-index", str(index)])
    saved = json.loads((out / "results.json").read_text())
    assert saved == rows and {r["model"] for r in rows} >= {"tabnas-fast"}
    tabnas = [r for r in rows if r["model"] == "tabnas-fast"]
    assert 0.5 <= tabnas[0]["accuracy"] <= 1.0 and tabnas[1]["rmse"] > 0
    assert sum(m["weight"] for m in tabnas[0]["ensemble"]) == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "EnsembleModel(" in printed and "| credit_g | tabnas-fast |" in printed
    assert (out / "credit_g" / "learning_curves.png").stat().st_size > 0
