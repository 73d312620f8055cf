"""The core bar's script saves each measurement as it finishes."""

import json

import pytest

from benchmarks import core_bar


def _row(model, score, **extra):
    return {"dataset": "d", "model": model, "metric": "m", "score": score, "fit_time_s": 1.0,
            **extra}


def test_an_interrupted_core_bar_keeps_the_fits_that_finished(tmp_path, monkeypatch):
    def california(index_path, out, *, with_ft_transformer):
        yield _row("lightgbm", 0.45)
        raise KeyboardInterrupt  # stopped during the tabnas fit

    monkeypatch.setattr(core_bar, "breast_cancer", lambda: _row("tabnas fast", 0.96))
    monkeypatch.setattr(core_bar, "california", california)
    with pytest.raises(KeyboardInterrupt):
        core_bar.main(["--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["tabnas fast", "lightgbm"]
    assert saved["complete"] is False and not list(tmp_path.glob(".*.tmp"))


def test_a_finished_core_bar_says_so_and_prints_the_ratio(tmp_path, monkeypatch, capsys):
    def california(index_path, out, *, with_ft_transformer):
        yield _row("lightgbm", 0.45)
        yield _row("tabnas medium", 0.4275, peak_rss_mb=900.0, architecture="cells")

    monkeypatch.setattr(core_bar, "breast_cancer", lambda: _row("tabnas fast", 0.96))
    monkeypatch.setattr(core_bar, "california", california)
    report = core_bar.main(["--out", str(tmp_path)])
    assert json.loads((tmp_path / "results.json").read_text()) == report
    assert report["complete"] is True and len(report["rows"]) == 3
    assert "tabnas / LightGBM RMSE: 0.950" in capsys.readouterr().out
