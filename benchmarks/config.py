"""Benchmark configs: which datasets, models and seeds, read from TOML and validated.

A config (``benchmarks/configs/<name>.toml`` or any path)::

    description = "..."
    seeds = 3                  # seeds 0, 1, 2 (or an explicit list: [0, 7])
    max_train_rows = 10000     # optional cap on training rows (stratified, keeps every class)
    time_limit = 1800          # optional hard limit per job, seconds
    n_jobs = 1                 # parallel jobs (command line --n-jobs wins)
    datasets_index = "..."     # optional local index
                               # (default: benchmarks.datasets.default_index_path())
    openml_cache = "..."       # optional openml cache folder
    openml_server = "..."      # optional OpenML server

    [datasets]
    local = ["breast_w", "vehicle"]                      # names in the local index
    openml_datasets = [44, {id = 537, name = "houses"}]  # OpenML dataset ids (64/16/20 split)
    openml_tasks = [361]                                  # OpenML task ids (official test split)
    openml_suites = [334]                                 # OpenML suites: expand to their tasks

    [models.lightgbm]            # a model with its default options
    [models.tabnas]
    preset = "medium"
    [models.tabnas-argmax]       # a tabnas variant
    selection = "argmax"

Datasets are named by their local name, ``openml-dataset:<id>``, ``openml-task:<id>`` or
``openml-suite:<id>`` (a ``name`` in the table overrides it).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.models import check_model_options, model_families, model_family

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SOURCES = {
    "local": "local",
    "openml_datasets": "openml-dataset",
    "openml_tasks": "openml-task",
    "openml_suites": "openml-suite",
}
TOP_LEVEL_KEYS = {
    "description",
    "seeds",
    "max_train_rows",
    "time_limit",
    "n_jobs",
    "datasets_index",
    "openml_cache",
    "openml_server",
    "datasets",
    "models",
}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset entry: ``source`` is ``local``, ``openml-dataset``, ``openml-task`` or
    ``openml-suite``; ``ref`` the local name or the OpenML id."""

    name: str
    source: str
    ref: str | int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """A model name (``tabnas-<variant>`` for variants), its family and its options."""

    name: str
    family: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchConfig:
    """A validated config."""

    name: str
    path: Path
    description: str
    seeds: list[int]
    datasets: list[DatasetSpec]
    models: list[ModelSpec]
    max_train_rows: int | None = None
    time_limit: float | None = None
    n_jobs: int = 1
    datasets_index: Path | None = None
    openml_cache: Path | None = None
    openml_server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "seeds": self.seeds,
            "datasets": [d.to_dict() for d in self.datasets],
            "models": [m.to_dict() for m in self.models],
            "max_train_rows": self.max_train_rows,
            "time_limit": self.time_limit,
            "n_jobs": self.n_jobs,
            "datasets_index": None if self.datasets_index is None else str(self.datasets_index),
            "openml_cache": None if self.openml_cache is None else str(self.openml_cache),
            "openml_server": self.openml_server,
        }


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def resolve_config_path(config: str | Path) -> Path:
    """A config name (``smoke``) or the path of a TOML file."""
    path = Path(config)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{config}.toml"
    if named.is_file():
        return named
    raise ValueError(
        f"no config {str(config)!r}: not a file, and not one of the named configs"
        f" {available_configs()} in {CONFIG_DIR}"
    )


def load_config(
    config: str | Path, *, datasets_index: str | Path | None = None, check_local: bool = True
) -> BenchConfig:
    """Read and validate a config; ``datasets_index`` overrides the config's index.

    With ``check_local`` the local dataset names are checked against the index.
    """
    path = resolve_config_path(config)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config {path} is not valid TOML: {error}") from error
    return parse_config(data, path=path, datasets_index=datasets_index, check_local=check_local)


def parse_config(
    data: dict[str, Any],
    *,
    path: Path,
    datasets_index: str | Path | None = None,
    check_local: bool = True,
) -> BenchConfig:
    """Validate the TOML ``data`` of a config (see the module docstring for the keys)."""
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise ValueError(
            f"config {path}: unknown key(s) {unknown}; valid keys: {sorted(TOP_LEVEL_KEYS)}"
        )
    base = path.parent

    def local_path(value: Any) -> Path | None:
        if value is None:
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    index = (
        Path(datasets_index)
        if datasets_index is not None
        else local_path(data.get("datasets_index"))
    )
    cfg = BenchConfig(
        name=path.stem,
        path=path,
        description=str(data.get("description", "")),
        seeds=_seeds(data.get("seeds", 1), path),
        datasets=_datasets(data.get("datasets", {}), path),
        models=_models(data.get("models", {}), path),
        max_train_rows=_positive(data.get("max_train_rows"), "max_train_rows", path, int),
        time_limit=_positive(data.get("time_limit"), "time_limit", path, (int, float)),
        n_jobs=_positive(data.get("n_jobs", 1), "n_jobs", path, int) or 1,
        datasets_index=index,
        openml_cache=local_path(data.get("openml_cache")),
        openml_server=data.get("openml_server"),
    )
    if check_local:
        check_local_names([d.ref for d in cfg.datasets if d.source == "local"], cfg.datasets_index)
    return cfg


def check_local_names(names: list[Any], index_path: Path | None) -> None:
    """A ``ValueError`` listing the index's names when one of ``names`` is not in it."""
    if not names:
        return
    from benchmarks.datasets import default_index_path, read_index

    index = read_index(index_path)
    unknown = [n for n in names if n not in index]
    if unknown:
        where = index_path if index_path is not None else default_index_path()
        raise ValueError(
            f"unknown dataset(s) {unknown}; datasets in the index {where}: {sorted(index)}"
        )


def _positive(value: Any, key: str, path: Path, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"config {path}: {key} must be a positive number, got {value!r}")
    return value


def _seeds(value: Any, path: Path) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and s >= 0 for s in value):
        return list(dict.fromkeys(value))
    raise ValueError(
        f"config {path}: seeds must be a count >= 1 or a list of seeds >= 0, got {value!r}"
    )


def _datasets(table: Any, path: Path) -> list[DatasetSpec]:
    if not isinstance(table, dict) or not table:
        raise ValueError(
            f"config {path}: a [datasets] table with at least one of {sorted(SOURCES)} is required"
        )
    unknown = sorted(set(table) - set(SOURCES))
    if unknown:
        raise ValueError(
            f"config {path}: unknown [datasets] key(s) {unknown}; valid keys: {sorted(SOURCES)}"
        )
    specs: list[DatasetSpec] = []
    for key, source in SOURCES.items():
        for item in table.get(key, []):
            specs.append(_dataset_spec(item, source, path))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"config {path}: dataset name(s) {duplicates} appear more than once")
    if not specs:
        raise ValueError(f"config {path}: [datasets] lists no dataset")
    return specs


def _dataset_spec(item: Any, source: str, path: Path) -> DatasetSpec:
    if source == "local":
        if not isinstance(item, str):
            raise ValueError(f"config {path}: local datasets are names, got {item!r}")
        return DatasetSpec(name=item, source=source, ref=item)
    if isinstance(item, int) and not isinstance(item, bool):
        return DatasetSpec(name=f"{source}:{item}", source=source, ref=item)
    if isinstance(item, dict) and isinstance(item.get("id"), int):
        extra = sorted(set(item) - {"id", "name", "note"})
        if extra:
            raise ValueError(
                f"config {path}: {source} entry {item!r} has unknown key(s) {extra};"
                " valid: id, name, note"
            )
        return DatasetSpec(
            name=str(item.get("name", f"{source}:{item['id']}")),
            source=source,
            ref=item["id"],
            note=str(item.get("note", "")),
        )
    raise ValueError(
        f"config {path}: {source} entries are ids or {{id = ..., name = ...}} tables, got {item!r}"
    )


def _models(table: Any, path: Path) -> list[ModelSpec]:
    if not isinstance(table, dict) or not table:
        raise ValueError(
            f"config {path}: a [models] table naming at least one of {list(model_families())}"
            " is required"
        )
    specs = []
    for name, options in table.items():
        if not isinstance(options, dict):
            raise ValueError(
                f"config {path}: [models.{name}] must be a table of options, got {options!r}"
            )
        family = model_family(name)
        check_model_options(name, options)
        specs.append(ModelSpec(name=name, family=family, options=dict(options)))
    return specs


def select(
    cfg: BenchConfig, *, datasets: list[str] | None = None, models: list[str] | None = None
) -> BenchConfig:
    """The config with the named datasets and models instead of its own.

    A dataset name is one of the config's names, a name of the local index, or
    ``openml-dataset:<id>`` / ``openml-task:<id>`` / ``openml-suite:<id>``; the local ones,
    the config's included, are checked against ``cfg.datasets_index`` (so a config's protocol
    runs on the datasets of any index). A model name is one of the config's models, or a
    model family with its default options.
    """
    out = replace(cfg)
    if datasets:
        by_name = {d.name: d for d in cfg.datasets}
        chosen = []
        for name in datasets:
            if name in by_name:
                chosen.append(by_name[name])
            elif ":" in name and name.split(":", 1)[0] in SOURCES.values():
                source, ref = name.split(":", 1)
                if not ref.isdigit():
                    raise ValueError(f"dataset {name!r}: the OpenML id must be a number")
                chosen.append(DatasetSpec(name=name, source=source, ref=int(ref)))
            else:
                chosen.append(DatasetSpec(name=name, source="local", ref=name))
        local = [d.ref for d in chosen if d.source == "local"]
        try:
            check_local_names(local, cfg.datasets_index)
        except (ValueError, FileNotFoundError) as error:
            openml = sorted(d.name for d in cfg.datasets if d.source != "local")
            raise ValueError(
                f"{error}\n(OpenML datasets are written openml-dataset:<id>, openml-task:<id>,"
                " openml-suite:<id>"
                + (f"; config {cfg.name} also names {openml}" if openml else "")
                + ")"
            ) from None
        out.datasets = list(dict.fromkeys(chosen))
    if models:
        by_name = {m.name: m for m in cfg.models}
        chosen_models = []
        for name in models:
            if name in by_name:
                chosen_models.append(by_name[name])
            elif name in model_families():
                chosen_models.append(ModelSpec(name=name, family=name))
            else:
                raise ValueError(
                    f"unknown model {name!r}; valid models: config {cfg.name}'s {sorted(by_name)}"
                    f" or any of {list(model_families())}"
                )
        out.models = list({m.name: m for m in chosen_models}.values())
    return out
