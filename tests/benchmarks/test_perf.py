"""The performance instrument runs, and reports ratios of ours against a reference."""

import json

import pytest

from benchmarks import perf


@pytest.mark.slow  # about a minute: two sections, each in its own process
def test_perf_reports_the_supernet_against_its_parts_and_the_points_against_rtdl(tmp_path):
    report = perf.main(
        ["--out", str(tmp_path), "--sections", "supernet", "discrete", "--preset", "fast"]
    )
    supernet = report["sections"]["supernet"]
    assert "error" not in supernet, supernet
    parts = (
        supernet["shell_step_ms"] + supernet["n_edges"] * sum(supernet["op_alone_step_ms"].values())
    )
    assert supernet["sum_of_parts_ms"] == pytest.approx(parts)
    assert supernet["supernet_over_parts"] == pytest.approx(
        supernet["supernet_step_ms"] / supernet["sum_of_parts_ms"]
    )
    assert supernet["peak_rss_mb"] > 0 and "load_average" in supernet
    discrete = report["sections"]["discrete"]
    # the FT-Transformer point has rtdl's parameters up to the [CLS] readout's own norm
    ft = discrete["ft_transformer"]
    assert abs(ft["ours_parameters"] - ft["rtdl_parameters"]) / ft["rtdl_parameters"] < 0.01
    saved = json.loads((tmp_path / "perf.json").read_text())
    assert set(saved["sections"]) == {"supernet", "discrete"}
    table = (tmp_path / "perf.md").read_text()
    assert (
        "training step vs its parts alone" in table and "ft_transformer point step vs rtdl" in table
    )



def test_interleaved_timing_runs_the_names_in_turn_round_after_round():
    from tabnas.devices import resolve_device

    calls = []
    steps = {name: (lambda i, name=name: calls.append((name, i))) for name in ("a", "b")}
    blocks = perf.timed_interleaved(steps, resolve_device("cpu"), n=2, warmup=1, repeats=3)
    assert calls[:2] == [("a", 0), ("b", 0)]  # the warm-up
    assert [name for name, _ in calls[2:]] == ["a", "a", "b", "b"] * 3
    assert [i for name, i in calls[2:] if name == "a"] == [1, 2, 3, 4, 5, 6]
    assert {name: len(b) for name, b in blocks.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for b in blocks.values() for t in b)


def test_the_fit_sections_tabnas_takes_estimator_parameters():
    import argparse

    parser = argparse.ArgumentParser()
    options = perf.parse_options(
        ["search_width=0.5", "argmax_candidate=true", "selection=argmax"], parser
    )
    assert options == {"search_width": 0.5, "argmax_candidate": True, "selection": "argmax"}
    with pytest.raises(SystemExit):
        perf.parse_options(["widht=0.5"], parser)  # not a parameter of the estimator
    with pytest.raises(SystemExit):
        perf.parse_options(["search_width"], parser)  # no value
    row = perf._rows("fit", {
        "dataset": "d", "tabnas_options": {"preset": "medium", "search_width": 0.5},
        "tabnas": {"fit_s": 10.0, "info": {}, "test": {"rmse": 1.0}},
        "ft_transformer": {"fit_s": 20.0, "test": {"rmse": 2.0}},
        "tabnas_over_ft_transformer": 0.5,
    })[0]
    assert row[0] == "d: fit with search_width=0.5 vs FT-Transformer training (s)"


def test_the_batch_sections_middle_variant_is_the_search_in_cpu_batches_and_is_undone():
    from tabnas import TabNASRegressor

    def plan():
        return TabNASRegressor()._plan(n_train=13_209, cuda=True)

    cpu_search = TabNASRegressor()._plan(n_train=13_209, cuda=False).search
    with perf._search_in_cpu_batches():
        inside = plan()
    assert inside.search == cpu_search and inside.retrain_batch_size == 1024
    assert plan().search.batch_size == 1024  # the default is back
    run = {"fit_s": 10.0, "info": {"timings": {"search": 4.0}}, "test": {"rmse": 1.0},
           "fit_info": {"batch_size": 1024, "retrain_batch_size": 1024, "ensemble_val": {}}}
    rows = perf._rows("batch", {
        "dataset": "d", "preset": "medium", "device": "cuda:0", "device_batch": run,
        "cpu_search_batch": {**run, "fit_s": 15.0}, "cpu_batch": {**run, "fit_s": 20.0},
    })
    assert [row[3] for row in rows[::2]] == ["1.00", "1.50", "2.00"]  # older reports: cpu_batch
    assert "search in the CPU's batch" in rows[2][0] and "search 4" in rows[0][1]

def _dies_without_a_result(name, args, queue):  # a section killed for memory, say
    import os

    os._exit(3)


def test_a_section_whose_process_dies_is_reported_as_its_error_not_waited_on():
    import multiprocessing

    result = perf._section_in_process(
        multiprocessing.get_context("spawn"), "supernet", {}, target=_dies_without_a_result
    )
    assert result == {"error": "the section's process died with exit code 3"}


def test_a_rerun_keeps_the_sections_it_does_not_run_and_refuses_to_mix_presets(
    tmp_path, monkeypatch
):
    runs = []

    def fake_section(context, name, args):
        runs.append(name)
        return {"error": f"stand-in for {name} #{len(runs)}"}

    monkeypatch.setattr(perf, "_section_in_process", fake_section)
    options = dict(device="cpu", index=None, dataset="california", threads=1, out=tmp_path)
    perf.run(["supernet", "discrete"], preset="fast", **options)
    report = perf.run(["discrete"], preset="fast", **options)  # e.g. after an interruption
    saved = json.loads((tmp_path / "perf.json").read_text())
    assert saved == json.loads(json.dumps(report, default=str))
    assert saved["sections"]["supernet"]["error"] == "stand-in for supernet #1"  # kept
    assert saved["sections"]["discrete"]["error"] == "stand-in for discrete #3"  # rerun
    assert all("finished_at" in section for section in saved["sections"].values())
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, through a temporary file
    with pytest.raises(SystemExit, match="preset 'fast'.*this one is .*preset 'medium'"):
        perf.run(["supernet"], preset="medium", **options)
    assert json.loads((tmp_path / "perf.json").read_text()) == saved  # untouched
