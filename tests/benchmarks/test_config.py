"""Config validation: clear errors naming the bad value and the valid ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.config import available_configs, load_config, parse_config, select
from benchmarks.datasets import default_index_path

from .conftest import needs_shared_datasets


def _parse(text: str, tmp_path: Path, index: Path | None = None):
    import tomllib

    return parse_config(tomllib.loads(text), path=tmp_path / "c.toml", datasets_index=index)


def test_shipped_configs_validate():
    assert {"smoke", "standard", "gorishniy", "grinsztajn"} <= set(available_configs())
    for name in ("gorishniy", "grinsztajn"):
        cfg = load_config(name)
        assert cfg.models and cfg.datasets


@needs_shared_datasets  # its dataset names are checked against the index
def test_standard_config_covers_the_brief():
    cfg = load_config("standard")
    assert cfg.max_train_rows == 10_000 and len(cfg.seeds) == 3
    index = json.loads(default_index_path().read_text())
    assert {d.name for d in cfg.datasets} == {d["name"] for d in index["datasets"]}  # all 21
    tabnas = next(m for m in cfg.models if m.name == "tabnas")
    assert tabnas.options.get("preset", "medium") == "medium"
    assert {m.family for m in cfg.models} >= {
        "dummy",
        "xgboost",
        "lightgbm",
        "catboost",
        "resnet",
        "ft_transformer",
        "tabm",
        "realmlp",
        "tabnas",
    }


@pytest.mark.parametrize("name", ["gorishniy", "grinsztajn"])
def test_paper_configs_dry_run_without_network(name, tmp_path, capsys):
    run.main([name, "--out", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert "dry run" in out and "seed 0" in out
    assert not (tmp_path / "results.jsonl").exists()


def test_unknown_model_lists_valid_ones(tmp_path, tiny_index):
    with pytest.raises(ValueError, match=r"unknown model 'xgb'.*lightgbm.*ft_transformer"):
        _parse('[datasets]\nlocal = ["tiny_clf"]\n[models.xgb]\n', tmp_path, tiny_index)


def test_unknown_dataset_lists_valid_ones(tmp_path, tiny_index):
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['nope'\].*tiny_clf.*tiny_reg"):
        _parse('[datasets]\nlocal = ["nope"]\n[models.dummy]\n', tmp_path, tiny_index)


def test_bad_options_and_keys(tmp_path, tiny_index):
    with pytest.raises(ValueError, match=r"does not take the option\(s\) \['depth'\]"):
        _parse(
            '[datasets]\nlocal = ["tiny_clf"]\n[models.resnet]\ndepth = 3\n', tmp_path, tiny_index
        )
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['seed'\]"):
        _parse('seed = 3\n[datasets]\nlocal = ["tiny_clf"]\n[models.dummy]\n', tmp_path, tiny_index)
    with pytest.raises(ValueError, match="seeds must be"):
        _parse(
            'seeds = 0\n[datasets]\nlocal = ["tiny_clf"]\n[models.dummy]\n', tmp_path, tiny_index
        )
    with pytest.raises(ValueError, match="no config 'nonexistent'.*smoke"):
        load_config("nonexistent")


def test_variants_and_openml_entries(tmp_path, tiny_index):
    cfg = _parse(
        'seeds = [0, 5]\n[datasets]\nlocal = ["tiny_clf"]\n'
        'openml_datasets = [31, {id = 537, name = "houses"}]\n'
        "openml_tasks = [361]\nopenml_suites = [334]\n"
        '[models.tabnas-argmax]\npreset = "fast"\nselection = "argmax"\n[models.dummy]\n',
        tmp_path,
        tiny_index,
    )
    assert cfg.seeds == [0, 5]
    assert [d.name for d in cfg.datasets] == [
        "tiny_clf",
        "openml-dataset:31",
        "houses",
        "openml-task:361",
        "openml-suite:334",
    ]
    assert cfg.models[0].family == "tabnas" and cfg.models[0].options["selection"] == "argmax"

    picked = select(
        cfg, datasets=["houses", "tiny_reg", "openml-task:9"], models=["dummy", "lightgbm"]
    )
    assert [d.name for d in picked.datasets] == ["houses", "tiny_reg", "openml-task:9"]
    assert [m.name for m in picked.models] == ["dummy", "lightgbm"]
    with pytest.raises(ValueError, match="unknown model 'tabnas-x'"):
        select(cfg, models=["tabnas-x"])
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['nope'\]"):
        select(cfg, datasets=["nope"])


def test_the_retrieval_config_differs_from_its_base_by_the_candidate_only():
    cfg = load_config("retrieval", check_local=False)  # names only: no data needed
    models = {m.name: m for m in cfg.models}
    base, variant = models["tabnas"], models["tabnas-retrieval"]
    assert base.options == {"preset": "fast", "own_validation": True}
    assert variant.options == base.options | {
        "space": {"backbones": ["cells", "tabm", "retrieval"]}
    }
    assert len(cfg.datasets) >= 6 and len(cfg.seeds) == 3


def test_each_recipe_variant_differs_from_the_base_by_one_ingredient():
    cfg = load_config("recipe", check_local=False)
    models = {m.name: m.options for m in cfg.models}
    base = models.pop("tabnas")
    assert base == {"preset": "fast", "own_validation": True}
    assert sorted(models) == ["tabnas-robust", "tabnas-scale", "tabnas-smoothing"]
    for options in models.values():
        assert len(set(options) - set(base)) == 1 and options.items() >= base.items()


@pytest.mark.parametrize(
    ("name", "variant", "change"),
    [
        ("argmax_candidate", "tabnas-argmax", {"argmax_candidate": True}),
        ("cells_value", "tabnas-no-cells", {"space": {"backbones": ["tabm", "retrieval"]}}),
    ],
)
def test_ablations_share_the_recipe_base_and_splits(name, variant, change):
    cfg = load_config(name, check_local=False)
    recipe = load_config("recipe", check_local=False)
    models = {m.name: m.options for m in cfg.models}
    # the base is the recipe ablation's base, on the same datasets, seeds and cap, so the
    # recipe's base rows can be reused and only the variant runs
    assert sorted(models) == sorted(["tabnas", variant])
    assert models["tabnas"] == {m.name: m.options for m in recipe.models}["tabnas"]
    assert models[variant] == models["tabnas"] | change
    assert [d.name for d in cfg.datasets] == [d.name for d in recipe.datasets]
    assert (cfg.seeds, cfg.max_train_rows) == (recipe.seeds, recipe.max_train_rows)
