"""The per-strategy bar check: one line per finished fit, a rerun resumes, the table flags."""

from __future__ import annotations

import json

from benchmarks import strategy_check


def test_a_rerun_fits_only_what_is_missing_and_the_table_flags_misses(tmp_path, monkeypatch):
    fitted = []

    def fake_fit(strategy):
        fitted.append(strategy)
        score = 0.95 if strategy == "darts" else 0.90
        return {"score": score, "metric": "accuracy", "passes": score >= 0.93,
                "fit_time_s": 1.0, "search_s": 0.5, "search_steps": 10, "selected": "",
                "weights": {}}

    monkeypatch.setattr(strategy_check, "fit_breast_cancer", fake_fit)
    args = ["--out", str(tmp_path), "--datasets", "breast_cancer", "--strategies", "darts"]
    strategy_check.main(args)
    text = strategy_check.main([*args[:-1], "darts", "gdas"])
    assert fitted == ["darts", "gdas"]  # darts was not fitted twice
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["strategy"] for r in rows] == ["darts", "gdas"]
    assert "| darts | breast_cancer | 0.9500 | accuracy ≥ 0.93 | yes |" in text
    assert "| gdas | breast_cancer | 0.9000 | accuracy ≥ 0.93 | **no** |" in text
    assert (tmp_path / "strategy_check.md").read_text() == text
