"""Where a fit's time goes: the engine against references, as ratios measured in one run.

    python -m benchmarks.perf --out docs/benchmarks/perf [--device auto|cpu|cuda]
        [--sections supernet strategies discrete predict rows features fit small batch]
        [--preset medium]

Every section runs in its own process (so its peak RSS is its own) and times ours and
the reference side by side, on the same device and the same batches:

- ``supernet``: one training step of the preset's supernet (forward, backward, clipping,
  AdamW) against the sum of its parts run alone: the tokenizer and readout, plus each
  candidate op on its own once per edge. Also DARTS's architecture step.
- ``strategies``: one search step (architecture step + weight step, through the
  trainer) of each search strategy, against DARTS's on the same supernet and batches.
- ``discrete``: a training step of the FT-Transformer and ResNet points of the space
  against ``rtdl_revisiting_models``'s FTTransformer and ResNet of the same sizes.
- ``predict``: rows per second of a fitted estimator's ``predict`` (preprocessing
  included) and of its network alone, against rtdl's default FT-Transformer alone and
  behind the quantile transform it is trained with.
- ``rows``: the cost of one epoch per 1,000 rows from 1k to 100k rows (synthetic, and
  California resampled when the shared datasets are there): preprocessing, bins, the
  supernet's training epoch, a scoring pass.
- ``features``: the supernet's step per feature from 10 to 500 features.
- ``fit`` (long: about half an hour on 2 CPU cores): the default fit on a dataset split
  by phase, beside the harness's FT-Transformer training on the same split.
- ``small``: the fast preset on tables of 491 to 3,458 training rows, on the device and
  on the same machine's CPU.
- ``batch``: the ``--preset`` fit on ``--dataset``, both on the device: the default
  (search and retraining in the device's batches) against the search in the CPU's batch
  with retraining in the device's (the CUDA default before the search drew the device
  batch): time, phases, validation and test scores.

Writes ``perf.json`` and ``perf.md`` to ``--out`` after each section. A rerun into the
same ``--out`` replaces the sections it runs and keeps the others (each section records
when it finished), and refuses a folder that holds a run of another setting (GPU or CPU
device, number of CPU cores, torch version, preset).
Timings are medians of repeated blocks; the load average is recorded with them (timings
beside another heavy job are not comparable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import torch
from torch import nn

from tabnas.devices import DeviceConfig, resolve_device
from tabnas.estimators._presets import PRESETS, auto_batch_size
from tabnas.nas.embeddings import quantile_bins
from tabnas.nas.network import DataShapes, build_network
from tabnas.nas.ops import NONE_OP, make_op
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import make_strategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.data import TensorData
from tabnas.training.loop import Task
from tabnas.training.optim import make_weight_optimizer
from tabnas.training.search import SearchConfig

SECTIONS = (
    "supernet", "strategies", "discrete", "predict", "rows", "features", "fit", "small", "batch"
)
QUICK = ("supernet", "strategies", "discrete", "predict", "rows", "features")
STRATEGIES = (
    "darts", "darts2", "fixed-alpha", "gdas", "snas", "sdarts-rs", "sdarts-adv", "pdarts",
    "pcdarts", "proxyless", "darts-minus", "random-ws",
)
BATCH = 256
GRAD_CLIP = 5.0


# ---- timing ---------------------------------------------------------------------------
def timed(
    step: Callable[[int], Any], device: DeviceConfig, *, n: int, warmup: int = 3, repeats: int = 3
) -> float:
    """Median seconds of one call of ``step(i)`` over ``repeats`` blocks of ``n`` calls."""
    for i in range(warmup):
        step(i)
    blocks = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        for i in range(n):
            step(i)
        _sync(device)
        blocks.append((time.perf_counter() - started) / n)
    return statistics.median(blocks)


def timed_interleaved(
    steps: dict[str, Callable[[int], Any]], device: DeviceConfig, *, n: int, warmup: int = 3,
    repeats: int = 5,
) -> dict[str, list[float]]:
    """Seconds per call of each ``steps[name](i)``, one block of ``n`` calls per name and
    round, the names in turn in each of ``repeats`` rounds (after ``warmup`` calls each)."""
    for step in steps.values():
        for i in range(warmup):
            step(i)
    blocks: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(repeats):
        for name, step in steps.items():
            _sync(device)
            started = time.perf_counter()
            for i in range(n):
                step(warmup + r * n + i)
            _sync(device)
            blocks[name].append((time.perf_counter() - started) / n)
    return blocks


def _sync(device: DeviceConfig) -> None:
    if device.is_cuda:
        torch.cuda.synchronize(device.device)


def _peak_memory(device: DeviceConfig) -> dict[str, float]:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.is_cuda:
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device.device) / 2**20
    return out


# ---- the networks ---------------------------------------------------------------------
def preset_space(preset: str) -> SearchSpace:
    p = PRESETS[preset]
    return SearchSpace(
        n_cells=p.n_cells, n_nodes=p.n_nodes, node_inputs=p.node_inputs,
        settings=p.op_settings(), num_embeddings=p.num_embeddings,
    )


def synthetic(n_rows: int, n_features: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_rows, n_features, generator=generator)
    y = x[:, : min(4, n_features)].sum(1) + 0.1 * torch.randn(n_rows, generator=generator)
    return x, y


class _Stepper:
    """A regression training step of ``model`` on batches of (x, y), as the trainer runs it."""

    def __init__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: DeviceConfig, *,
        batch_size: int = BATCH, seed: int = 0,
    ):
        self.model = model.to(device.device).train()
        self.x, self.y = x.to(device.device), y.to(device.device)
        self.x_cat = torch.zeros(len(x), 0, dtype=torch.long, device=device.device)
        self.optimizer = make_weight_optimizer(
            model, lr=1e-4, weight_decay=1e-5,
            exclude=model.arch_parameters() if isinstance(model, SuperNetwork) else (),
        )
        generator = torch.Generator().manual_seed(seed)
        self.batches = [
            torch.randint(0, len(x), (batch_size,), generator=generator).to(device.device)
            for _ in range(64)
        ]
        self.device = device

    def output(self, rows: torch.Tensor, **kwargs) -> torch.Tensor:
        with self.device.autocast():
            return self.model(self.x[rows], self.x_cat[rows], **kwargs)

    def __call__(self, i: int, **kwargs) -> None:
        rows = self.batches[i % len(self.batches)]
        self.optimizer.zero_grad(set_to_none=True)
        output = self.output(rows, **kwargs).float().reshape(len(rows), -1).mean(1)
        loss = nn.functional.mse_loss(output, self.y[rows])
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        self.optimizer.step()


def _supernet(space: SearchSpace, x: torch.Tensor) -> SuperNetwork:
    shapes = DataShapes(x.shape[1], (), 1, bins=tuple(quantile_bins(x)))
    return SuperNetwork(space=space, **shapes.kwargs())


# ---- sections -------------------------------------------------------------------------
def section_supernet(device: DeviceConfig, preset: str) -> dict[str, Any]:
    space = preset_space(preset)
    x, y = synthetic(8192, 8)
    supernet = _supernet(space, x)
    step = _Stepper(supernet, x, y, device)
    n = 20
    full = timed(step, device, n=n)

    ops = [op for op in space.ops if op != NONE_OP]
    shell_weights = torch.zeros_like(supernet.alpha)
    shell_weights[..., space.ops.index("skip")] = 1.0
    shell_weights = shell_weights.to(device.device)
    shell = timed(lambda i: step(i, weights=shell_weights), device, n=n)  # tokenizer + readout

    n_tokens = supernet.tokenizer.n_tokens
    tokens = torch.randn(BATCH, n_tokens, space.settings.d_token, device=device.device)
    alone = {}
    for op in ops:
        module = make_op(op, space.settings, n_tokens).to(device.device).train()
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4) if params else None

        def op_step(i: int, module=module, optimizer=optimizer) -> None:
            inputs = tokens.clone().requires_grad_(True)
            with device.autocast():
                out = module(inputs)
            out.float().mean().backward()
            if optimizer is not None:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        alone[op] = timed(op_step, device, n=n)
    n_edges = space.n_cells * space.n_edges
    parts = shell + n_edges * sum(alone.values())

    strategy = make_strategy("darts").bind(supernet)
    task = Task("regression", 1)

    def loss(batch: TensorData, weights: torch.Tensor, params=None) -> torch.Tensor:
        with device.autocast():
            return task.loss(
                supernet(batch.x_num, batch.x_cat, weights=supernet.project(weights)), batch.y
            )

    def arch_step(i: int) -> None:
        rows = step.batches[(i + 7) % len(step.batches)]
        batch = TensorData(step.x[rows], step.x_cat[rows], step.y[rows])
        strategy.arch_step(loss, batch, batch, virtual_step=None)

    arch = timed(arch_step, device, n=n)
    return {
        "preset": preset, "n_tokens": n_tokens, "n_edges": n_edges, "batch": BATCH,
        "supernet_step_ms": 1e3 * full,
        "shell_step_ms": 1e3 * shell,
        "op_alone_step_ms": {op: 1e3 * t for op, t in alone.items()},
        "sum_of_parts_ms": 1e3 * parts,
        "supernet_over_parts": full / parts,
        "arch_step_ms": 1e3 * arch,
        "arch_over_weight_step": arch / full,
    }


def section_strategies(device: DeviceConfig, preset: str) -> dict[str, Any]:
    """One search step (the strategy's architecture step, then the weight step) of each
    strategy on the same supernet shape and batches, through the trainer itself.

    The strategies are timed in interleaved rounds (a block of steps of each in turn,
    ``repeats`` times), and each one's speed-up over DARTS is the median over the rounds
    of the two blocks' ratio: a change in the machine's load then reaches both sides of a
    ratio alike.
    """
    from tabnas.training.history import History
    from tabnas.training.search import SearchConfig, SupernetTrainer

    space = preset_space(preset)
    x, y = synthetic(8192, 8)
    data = TensorData(x, torch.zeros(len(x), 0, dtype=torch.long), y).to(device)
    config = SearchConfig(batch_size=BATCH, lr=1e-3, weight_decay=1e-5)
    shapes = DataShapes(x.shape[1], (), 1, bins=tuple(quantile_bins(x)))
    steps = {}
    for name in STRATEGIES:
        torch.manual_seed(0)
        strategy = make_strategy(name)
        supernet = strategy.build_supernet(space, **shapes.kwargs()).to(device.device)
        trainer = SupernetTrainer(
            supernet, strategy.bind(supernet), weight_data=data[: len(x) // 2],
            arch_data=data[len(x) // 2 :], task=Task("regression", 1), config=config,
            device=device, generator=torch.Generator().manual_seed(0), history=History(),
        )

        def search_step(i: int, trainer=trainer) -> None:
            trainer.strategy.step_started(i, 400)
            trainer.step(arch_step=True)

        steps[name] = search_step
    blocks = timed_interleaved(steps, device, n=10, repeats=5)
    return {
        "preset": preset, "batch": BATCH,
        "search_step_ms": {name: 1e3 * statistics.median(b) for name, b in blocks.items()},
        "darts_over": {
            name: statistics.median(d / t for d, t in zip(blocks["darts"], b))
            for name, b in blocks.items()
        },
    }


def section_discrete(device: DeviceConfig, preset: str) -> dict[str, Any]:
    import rtdl_revisiting_models as rtdl

    space = preset_space(preset)
    s = space.settings
    x, y = synthetic(8192, 8)
    shapes = DataShapes(x.shape[1], (), 1)
    n_tokens = 1 + x.shape[1]
    out: dict[str, Any] = {"preset": preset, "n_blocks": space.n_cells, "d_token": s.d_token}

    ours_ft = build_network(space.chain(["attention", "ffn"]).with_embedding("linear"), shapes)
    ref_ft = rtdl.FTTransformer(
        n_cont_features=x.shape[1], cat_cardinalities=[], d_out=1, n_blocks=space.n_cells,
        d_block=s.d_token, attention_n_heads=s.n_heads, attention_dropout=s.attention_dropout,
        ffn_d_hidden=None, ffn_d_hidden_multiplier=s.ffn_d_hidden_multiplier,
        ffn_dropout=s.ffn_dropout, residual_dropout=s.residual_dropout,
    )
    ours_res = build_network(space.chain(["resnet", "skip"]).with_embedding("linear"), shapes)
    ref_res = rtdl.ResNet(
        d_in=x.shape[1], d_out=1, n_blocks=space.n_cells, d_block=n_tokens * s.d_token,
        d_hidden=s.resnet_d_hidden, d_hidden_multiplier=None, dropout1=s.resnet_dropout,
        dropout2=s.residual_dropout,
    )
    pairs = {
        "ft_transformer": (ours_ft, _RTDLInputs(ref_ft, "ft")),
        "resnet": (ours_res, _RTDLInputs(ref_res, "mlp")),
    }
    for name, (ours, ref) in pairs.items():
        t_ours = timed(_Stepper(ours, x, y, device), device, n=20)
        t_ref = timed(_Stepper(ref, x, y, device), device, n=20)
        out[name] = {
            "ours_step_ms": 1e3 * t_ours, "rtdl_step_ms": 1e3 * t_ref,
            "ours_over_rtdl": t_ours / t_ref,
            "ours_parameters": _count(ours), "rtdl_parameters": _count(ref),
        }
    return out


class _RTDLInputs(nn.Module):
    """An rtdl model behind the ``(x_num, x_cat)`` call our networks take."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.model(x_num, None) if self.kind == "ft" else self.model(x_num)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def section_predict(device: DeviceConfig, preset: str) -> dict[str, Any]:
    import pandas as pd
    import rtdl_revisiting_models as rtdl
    from sklearn.preprocessing import QuantileTransformer

    from tabnas import TabNASRegressor
    from tabnas.training.loop import predict

    n_fit, n_predict, n_features = 3000, 100_000, 8
    x, y = synthetic(n_fit + n_predict, n_features)
    frame = pd.DataFrame(x.numpy(), columns=[f"x{i}" for i in range(n_features)])
    model = TabNASRegressor(
        preset="fast", random_state=0, device=str(device.device), time_limit=120
    )
    model.fit(frame.iloc[:n_fit], y[:n_fit].numpy())
    rows = frame.iloc[n_fit:]
    estimator_s = timed(lambda i: model.predict(rows), device, n=1, warmup=1)
    data = TensorData(
        x[n_fit:], torch.zeros(n_predict, 0, dtype=torch.long), torch.zeros(n_predict)
    ).to(device)
    network = model.model_.to(device.device)
    network_s = timed(lambda i: predict(network, data, device), device, n=1, warmup=1)

    reference = rtdl.FTTransformer(
        n_cont_features=n_features, cat_cardinalities=[], d_out=1,
        **rtdl.FTTransformer.get_default_kwargs(),
    )
    reference = _RTDLInputs(reference, "ft").to(device.device)
    reference_s = timed(lambda i: predict(reference, data, device), device, n=1, warmup=1)
    # the reference as a user runs it: Gorishniy et al.'s quantile transform, then the net
    quantiles = QuantileTransformer(
        n_quantiles=min(1000, n_fit), output_distribution="normal", subsample=None,
        random_state=0,
    ).fit(frame.iloc[:n_fit].to_numpy())
    empty, zeros = torch.zeros(n_predict, 0, dtype=torch.long), torch.zeros(n_predict)

    def reference_pipeline(i: int) -> None:
        x_ref = torch.as_tensor(quantiles.transform(rows.to_numpy()), dtype=torch.float32)
        predict(reference, TensorData(x_ref, empty, zeros).to(device), device)

    pipeline_s = timed(reference_pipeline, device, n=1, warmup=1)
    return {
        "rows": n_predict, "fitted": "TabNASRegressor(preset='fast') on 3,000 synthetic rows",
        "model": repr(model.model_)[:400],
        "estimator_rows_per_s": n_predict / estimator_s,
        "network_rows_per_s": n_predict / network_s,
        "rtdl_ft_default_rows_per_s": n_predict / reference_s,
        "estimator_over_rtdl_speed": reference_s / estimator_s,
        "network_over_rtdl_speed": reference_s / network_s,
        "rtdl_ft_with_quantile_transform_rows_per_s": n_predict / pipeline_s,
        "estimator_over_rtdl_pipeline_speed": pipeline_s / estimator_s,
    }


def section_rows(device: DeviceConfig, preset: str, index_path: str | None) -> dict[str, Any]:
    import pandas as pd

    from tabnas.preprocessing import TabularPreprocessor
    from tabnas.training.loop import score_supernet

    sources: dict[str, Callable[[int], tuple[pd.DataFrame, np.ndarray]]] = {}

    def synth(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        x, y = synthetic(n, 8)
        return pd.DataFrame(x.numpy()), y.numpy()

    sources["synthetic (8 features)"] = synth
    california = _california(index_path)
    if california is not None:
        X_all, y_all = california

        def resampled(n: int) -> tuple[pd.DataFrame, np.ndarray]:
            rows = np.random.default_rng(0).integers(0, len(X_all), n)
            return X_all.iloc[rows].reset_index(drop=True), y_all[rows]

        sources["california_housing resampled"] = resampled

    space = preset_space(preset)
    task = Task("regression", 1)
    out: dict[str, Any] = {}
    for source, make in sources.items():
        results = []
        for n in (1_000, 10_000, 100_000):
            X, y = make(n)
            started = time.perf_counter()
            X = X.set_axis(range(X.shape[1]), axis=1)
            x_num, x_cat = TabularPreprocessor(categorical=[], random_state=0).fit(X).transform(X)
            prep_s = time.perf_counter() - started
            x = torch.as_tensor(x_num)
            started = time.perf_counter()
            supernet = _supernet(space, x)
            bins_s = time.perf_counter() - started
            target = torch.as_tensor((y - y.mean()) / (y.std() + 1e-12), dtype=torch.float32)
            batch_size = auto_batch_size(n)
            step = _Stepper(supernet, x, target, device, batch_size=batch_size)
            step_s = timed(step, device, n=10, repeats=2)
            data = TensorData(x, torch.as_tensor(x_cat), target).to(device)
            started = time.perf_counter()
            score_supernet(supernet, data, task)
            _sync(device)
            score_s = time.perf_counter() - started
            epoch_s = -(-n // batch_size) * step_s
            results.append({
                "rows": n, "batch_size": batch_size, "preprocess_s": prep_s,
                "bins_and_build_s": bins_s, "train_epoch_s": epoch_s, "score_pass_s": score_s,
                "total_per_1k_rows_s": 1e3 * (prep_s + bins_s + epoch_s + score_s) / n,
            })
        base = results[1]["total_per_1k_rows_s"]
        for r in results:
            r["per_row_over_10k"] = r["total_per_1k_rows_s"] / base
        out[source] = results
    out["note"] = "train_epoch_s = steps per epoch x the timed step, at the fit's batch size"

    return out


def section_features(device: DeviceConfig, preset: str) -> dict[str, Any]:
    space = preset_space(preset)
    results = []
    for f in (10, 50, 100, 500):
        x, y = synthetic(4096, f)
        step = _Stepper(_supernet(space, x), x, y, device)
        step_s = timed(step, device, n=3 if f >= 500 else 8, repeats=2)
        results.append({"features": f, "step_ms": 1e3 * step_s, "per_feature_ms": 1e3 * step_s / f})
    by_f = {r["features"]: r for r in results}
    return {
        "preset": preset, "batch": BATCH, "steps": results,
        "per_feature_500_over_50": by_f[500]["per_feature_ms"] / by_f[50]["per_feature_ms"],
    }


def _fit_adapter(data, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Fit the harness's adapter ``name`` on a prepared split: wall time, test scores, info
    (and, for tabnas, the fitted estimator's ``fit_info_``)."""
    from benchmarks.models import adapter_class
    from benchmarks.protocol import scores

    adapter = adapter_class(name)(
        task=data.task, n_classes=data.n_classes, seed=0, threads=torch.get_num_threads(),
        options=options,
    )
    started = time.perf_counter()
    adapter.fit(data.X_train, data.y_train, data.X_val, data.y_val)
    fit_s = time.perf_counter() - started
    test = (
        scores(data.task, data.y_test, pred=adapter.predict(data.X_test))
        if data.task == "regression"
        else scores(data.task, data.y_test, proba=adapter.predict_proba(data.X_test))
    )
    out = {"fit_s": fit_s, "test": test, "info": adapter.info()}
    fit_info = getattr(getattr(adapter, "model_", None), "fit_info_", None)
    if name == "tabnas" and fit_info is not None:
        out["fit_info"] = {
            k: fit_info.get(k)
            for k in ("batch_size", "retrain_batch_size", "retrain_lr_scale", "ensemble_val",
                      "best_val", "n_train", "search_steps", "alpha_shift")
        }
    return out


def section_fit(
    device: DeviceConfig, preset: str, index_path: str | None, dataset: str,
    tabnas_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """tabnas's fit at ``preset`` (with ``tabnas_options``, estimator parameters) against
    FT-Transformer's default training, on the harness's split (seed 0) of ``dataset``."""
    from benchmarks.datasets import load_local
    from benchmarks.protocol import prepare

    data = prepare(load_local(dataset, index_path), seed=0)
    _warm_up(device)
    tabnas = {"preset": preset, **(tabnas_options or {})}
    out: dict[str, Any] = {"dataset": dataset, "sizes": data.sizes, "tabnas_options": tabnas}
    for name, options in (("tabnas", tabnas), ("ft_transformer", {})):
        out[name] = _fit_adapter(data, name, {**options, "device": str(device.device)})
    out["tabnas_over_ft_transformer"] = out["tabnas"]["fit_s"] / out["ft_transformer"]["fit_s"]
    return out


SMALL_TABLES = ("diabetes", "credit_g", "phoneme")
"""Tables of 768, 1,000 and 5,404 rows for the ``small`` section (those in the index)."""


def section_small(device: DeviceConfig, index_path: str | None) -> dict[str, Any]:
    """The fast preset's fit on small tables, on ``device`` and on the CPU of the same
    machine."""
    from benchmarks.datasets import load_local
    from benchmarks.protocol import prepare

    tables: dict[str, Any] = {}
    for name in SMALL_TABLES:
        try:
            data = prepare(load_local(name, index_path), seed=0)
        except (FileNotFoundError, KeyError, ValueError):
            continue
        n_train = len(data.X_train)
        runs = {
            str(d): _fit_adapter(data, "tabnas", {"preset": "fast", "device": str(d)})
            for d in dict.fromkeys([torch.device("cpu"), device.device])
        }
        cpu_s = runs["cpu"]["fit_s"]
        tables[name] = {
            "n_train": n_train,
            "fit_s": {d: r["fit_s"] for d, r in runs.items()},
            "test": {d: r["test"] for d, r in runs.items()},
            "device_over_cpu": runs[str(device.device)]["fit_s"] / cpu_s,
        }
    return {"preset": "fast", "device": str(device.device), "tables": tables}


@contextlib.contextmanager
def _search_in_cpu_batches():
    """The search in the CPU's batches while retraining keeps the device's: the CUDA
    default before the search drew the device batch, for the ``batch`` section's A/B."""
    for_device_batch = SearchConfig.for_device_batch
    SearchConfig.for_device_batch = lambda self, factor: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        SearchConfig.for_device_batch = for_device_batch  # type: ignore[method-assign]


def _warm_up(device: DeviceConfig) -> None:
    """A tiny fit, so that the first timed fit on CUDA does not pay for the context, the
    kernels' first loads and cuDNN's autotuning."""
    if not device.is_cuda:
        return
    from tabnas import TabNASRegressor

    generator = np.random.default_rng(0)
    X = generator.normal(size=(600, 8))
    TabNASRegressor(
        preset="fast", max_search_steps=4, max_epochs=2, device=str(device.device),
        random_state=0,
    ).fit(X, X[:, 0] + generator.normal(size=600))


def section_batch(
    device: DeviceConfig, preset: str, index_path: str | None, dataset: str
) -> dict[str, Any]:
    """``preset`` on ``dataset``, all on ``device``: the default (the search in the
    device's batches) against the search in the CPU's batch (retraining in the device's)."""
    from benchmarks.datasets import load_local
    from benchmarks.protocol import prepare

    data = prepare(load_local(dataset, index_path), seed=0)
    _warm_up(device)
    base = {"preset": preset, "device": str(device.device)}
    runs = {"device_batch": _fit_adapter(data, "tabnas", base)}
    with _search_in_cpu_batches():
        runs["cpu_search_batch"] = _fit_adapter(data, "tabnas", base)
    return {
        "dataset": dataset, "preset": preset, "device": str(device.device), **runs,
        "over_device_batch": {
            name: run["fit_s"] / runs["device_batch"]["fit_s"] for name, run in runs.items()
        },
    }


def _california(index_path: str | None):
    from benchmarks.datasets import load_local

    try:
        dataset = load_local("california_housing", index_path)
    except (FileNotFoundError, KeyError, ValueError):
        return None
    categorical = set(dataset.categorical_columns)
    X = dataset.X[[c for c in dataset.X.columns if c not in categorical]]
    return X, np.asarray(dataset.y, dtype=np.float64)


# ---- driver ---------------------------------------------------------------------------
RUNNERS: dict[str, Callable[[DeviceConfig, dict[str, Any]], dict[str, Any]]] = {
    "supernet": lambda device, a: section_supernet(device, a["preset"]),
    "strategies": lambda device, a: section_strategies(device, a["preset"]),
    "discrete": lambda device, a: section_discrete(device, a["preset"]),
    "predict": lambda device, a: section_predict(device, a["preset"]),
    "rows": lambda device, a: section_rows(device, a["preset"], a["index"]),
    "features": lambda device, a: section_features(device, a["preset"]),
    "fit": lambda device, a: section_fit(
        device, a["preset"], a["index"], a["dataset"], a.get("tabnas_options")
    ),
    "small": lambda device, a: section_small(device, a["index"]),
    "batch": lambda device, a: section_batch(device, a["preset"], a["index"], a["dataset"]),
}
assert set(RUNNERS) == set(SECTIONS)


def _run_section(name: str, args: dict[str, Any], queue) -> None:
    torch.manual_seed(0)
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = resolve_device(args["device"])
    started = time.perf_counter()
    try:
        result = RUNNERS[name](device, args)
        result.update(_peak_memory(device))
    except Exception as error:  # a section that fails is reported, the others still run
        result = {"error": f"{type(error).__name__}: {error}"}
    result["section_s"] = time.perf_counter() - started
    queue.put(result)


def run(
    sections, *, device: str, preset: str, index: str | None, dataset: str, threads: int | None,
    out: Path | None = None, tabnas_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``sections`` one process each; with ``out``, the report is saved after each
    section (an interrupted run keeps what finished) and merged into the ``perf.json``
    already there: a rerun replaces the sections it runs and keeps the others."""
    context = multiprocessing.get_context("spawn")
    report: dict[str, Any] = {"machine": machine(device), "preset": preset, "sections": {}}
    if out is not None:
        report["sections"] = _earlier_sections(out / "perf.json", report)
    args = {
        "device": device, "preset": preset, "index": index, "dataset": dataset, "threads": threads,
        "tabnas_options": tabnas_options or {},
    }
    for name in sections:
        result = _section_in_process(context, name, args)
        result["load_average"] = os.getloadavg()[0]
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        report["sections"][name] = result
        print(f"\n## {name}\n" + json.dumps(result, indent=1, default=str)[:3000], flush=True)
        if out is not None:
            save(report, out)
    return report


def _section_in_process(
    context, name: str, args: dict[str, Any], target: Callable[..., None] | None = None
) -> dict[str, Any]:
    """One section in a process of its own; a process that dies without a result (killed
    for memory, a crash in native code) is reported as the section's error, not waited on."""
    queue = context.Queue()
    process = context.Process(target=target or _run_section, args=(name, args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                process.join()
                with contextlib.suppress(Empty):  # a result put just before it exited
                    return queue.get(timeout=1)
                return {"error": f"the section's process died with exit code {process.exitcode}"}
    process.join()
    return result


def _earlier_sections(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The sections of an earlier run saved at ``path``, when it ran on the same kind of
    device at the same preset; any other earlier run is refused rather than mixed in."""
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(
            f"{path} is not a perf report ({error}); move it away or use another --out"
        ) from None
    ran_on, runs_on = _setting(earlier), _setting(report)
    if ran_on != runs_on:
        raise SystemExit(
            f"{path} holds a run of another setting ({ran_on}), this one is {runs_on}: use"
            " another --out, so that the two are not mixed in one table"
        )
    date = earlier.get("machine", {}).get("date", "–")  # sections saved before they had a date
    return {name: {"finished_at": date, **section}
            for name, section in earlier.get("sections", {}).items()}


def _setting(report: dict[str, Any]) -> str:
    """What a section's figures depend on beside the code: device, CPU cores, torch, preset."""
    m = report.get("machine", {})
    device = m.get("gpu") or str(m.get("device", "?")).split(":")[0]
    return f"{device}, {m.get('cpu_count')} CPU cores, torch {m.get('torch')}, preset " + repr(
        report.get("preset")
    )


def save(report: dict[str, Any], out: Path) -> str:
    """Write ``perf.json`` and ``perf.md`` to ``out`` (each replaced whole, never left
    half-written); returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    for name, text in (("perf.json", json.dumps(report, indent=1, default=str) + "\n"),
                       ("perf.md", markdown)):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    return markdown


def machine(device: str) -> dict[str, Any]:
    resolved = resolve_device(device)
    info = {
        "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(), "device": str(resolved.device),
    }
    if resolved.is_cuda:
        info["gpu"] = torch.cuda.get_device_name(resolved.device)
    return info


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Engine cost, measured as ratios (`python -m benchmarks.perf`)", "",
        f"{m['date']}, device {m['device']}{' (' + m['gpu'] + ')' if 'gpu' in m else ''}, "
        f"{m['cpu_count']} CPU cores, torch {m['torch']}, preset `{report['preset']}`.", "",
        "| section | measure | ours | reference | ratio | peak RSS MB | load avg | finished |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["sections"].items():
        mem = f"{r.get('peak_rss_mb', float('nan')):.0f}"
        load = f"{r.get('load_average', float('nan')):.2f}"
        finished = r.get("finished_at", "–")[:16].replace("T", " ")
        for row in _rows(name, r):
            lines.append(f"| {name} | " + " | ".join(row) + f" | {mem} | {load} | {finished} |")
    return "\n".join(lines) + "\n"


def _rows(name: str, r: dict[str, Any]) -> list[list[str]]:
    if "error" in r:
        return [["error", r["error"], "", ""]]
    if name == "supernet":
        return [
            [
                "training step vs its parts alone (ms)",
                f"{r['supernet_step_ms']:.1f}",
                f"{r['sum_of_parts_ms']:.1f}",
                f"{r['supernet_over_parts']:.2f}",
            ],
            [
                "DARTS arch step vs weight step (ms)",
                f"{r['arch_step_ms']:.1f}",
                f"{r['supernet_step_ms']:.1f}",
                f"{r['arch_over_weight_step']:.2f}",
            ],
        ]
    if name == "strategies":
        return [
            [
                f"search step, {strategy} vs darts (ms; darts / {strategy} = speed-up,"
                " median over interleaved rounds)",
                f"{r['search_step_ms'][strategy]:.1f}",
                f"{r['search_step_ms']['darts']:.1f}",
                f"{r['darts_over'][strategy]:.2f}x speed",
            ]
            for strategy in STRATEGIES
            if strategy != "darts"
        ]
    if name == "discrete":
        return [
            [
                f"{k} point step vs rtdl"
                f" (ms; params {r[k]['ours_parameters']:,} / {r[k]['rtdl_parameters']:,})",
                f"{r[k]['ours_step_ms']:.1f}",
                f"{r[k]['rtdl_step_ms']:.1f}",
                f"{r[k]['ours_over_rtdl']:.2f}",
            ]
            for k in ("ft_transformer", "resnet")
        ]
    if name == "predict":
        return [
            [
                "estimator.predict rows/s vs rtdl FT-T default",
                f"{r['estimator_rows_per_s']:,.0f}",
                f"{r['rtdl_ft_default_rows_per_s']:,.0f}",
                f"{r['estimator_over_rtdl_speed']:.2f}x speed",
            ],
            [
                "network alone rows/s vs rtdl FT-T default",
                f"{r['network_rows_per_s']:,.0f}",
                f"{r['rtdl_ft_default_rows_per_s']:,.0f}",
                f"{r['network_over_rtdl_speed']:.2f}x speed",
            ],
        ] + ([
            [
                "estimator.predict rows/s vs quantile transform + rtdl FT-T default",
                f"{r['estimator_rows_per_s']:,.0f}",
                f"{r['rtdl_ft_with_quantile_transform_rows_per_s']:,.0f}",
                f"{r['estimator_over_rtdl_pipeline_speed']:.2f}x speed",
            ]
        ] if "estimator_over_rtdl_pipeline_speed" in r else [])
    if name == "rows":
        return [
            [
                f"{source}: s per 1k rows at {row['rows']:,} rows",
                f"{row['total_per_1k_rows_s']:.3f}",
                "at 10k rows",
                f"{row['per_row_over_10k']:.2f}",
            ]
            for source, rows in r.items() if isinstance(rows, list) for row in rows
        ]
    if name == "features":
        return [
            [
                f"step ms per feature at {s['features']} features",
                f"{s['per_feature_ms']:.2f}",
                "",
                "",
            ]
            for s in r["steps"]
        ] + [
            [
                "per-feature cost, 500 vs 50 features",
                "",
                "",
                f"{r['per_feature_500_over_50']:.2f}",
            ]
        ]
    if name == "fit":
        phases = r["tabnas"]["info"].get("timings", {})
        extra = {k: v for k, v in r.get("tabnas_options", {}).items() if k != "preset"}
        fit = (
            "fit with " + ", ".join(f"{k}={v}" for k, v in extra.items()) if extra
            else "default fit"
        )
        return [
            [
                f"{r['dataset']}: {fit} vs FT-Transformer training (s)",
                f"{r['tabnas']['fit_s']:.0f}",
                f"{r['ft_transformer']['fit_s']:.0f}",
                f"{r['tabnas_over_ft_transformer']:.2f}",
            ],
            ["phases (s)", ", ".join(f"{k} {v:.0f}" for k, v in phases.items()), "", ""],
            [
                "test scores (the harness's split, seed 0)",
                _scores(r["tabnas"]["test"]),
                _scores(r["ft_transformer"]["test"]),
                "",
            ],
        ]
    if name == "small":
        return [
            [
                f"{table} ({t['n_train']:,} training rows):"
                f" fast fit on {r['device']} vs on the CPU (s)",
                f"{t['fit_s'][r['device']]:.1f}",
                f"{t['fit_s']['cpu']:.1f}",
                f"{t['device_over_cpu']:.2f}",
            ]
            for table, t in r["tables"].items()
        ]
    if name == "batch":
        labels = {
            "device_batch": "default (search and retraining in the device's batches)",
            "cpu_search_batch": "search in the CPU's batch, retraining in the device's",
            "cpu_batch": "every phase in the CPU's batch",
        }
        rows = []
        for variant in labels:
            if variant not in r:  # reports of other versions measured other variants
                continue
            run = r[variant]
            info = run.get("fit_info") or {}
            phases = run["info"].get("timings", {})
            rows.append([
                f"{r['dataset']}, {r.get('preset', 'fast')} on {r['device']}: {labels[variant]}"
                f" (batches {info.get('batch_size')} / {info.get('retrain_batch_size')}; s)",
                f"{run['fit_s']:.1f} ({', '.join(f'{k} {v:.0f}' for k, v in phases.items())})",
                f"{r['device_batch']['fit_s']:.1f}",
                f"{run['fit_s'] / r['device_batch']['fit_s']:.2f}",
            ])
            rows.append([
                "validation (ensemble) / test scores",
                f"{_scores(info.get('ensemble_val') or {})}; test {_scores(run['test'])}",
                "", "",
            ])
        return rows
    return []


def _scores(test: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in test.items() if v is not None)


def parse_options(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``["search_width=0.5", "argmax_candidate=true"]`` -> ``{"search_width": 0.5, ...}``:
    each value as JSON, else as a string; names checked against the estimator's."""
    from tabnas import TabNASClassifier

    known = set(TabNASClassifier().get_params())
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in known:
            parser.error(
                f"--tabnas-option {pair!r}: expected NAME=VALUE with NAME one of"
                f" {sorted(known)}"
            )
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(QUICK),
        help=f"default: {' '.join(QUICK)} ('fit' takes about half an hour on 2 CPU cores)",
    )
    parser.add_argument("--preset", default="medium", choices=sorted(PRESETS))
    parser.add_argument("--dataset", default="california_housing", help="the fit section's dataset")
    parser.add_argument("--datasets-index", default=None, help="index.json of the shared datasets")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument(
        "--tabnas-option", action="append", default=[], metavar="NAME=VALUE",
        help="an estimator parameter for the fit section's tabnas (repeatable; VALUE is read "
        "as JSON, else as a string): --tabnas-option search_width=0.5",
    )
    args = parser.parse_args(argv)
    report = run(args.sections, device=args.device, preset=args.preset, index=args.datasets_index,
                 dataset=args.dataset, threads=args.threads, out=args.out,
                 tabnas_options=parse_options(args.tabnas_option, parser))
    print("\n" + save(report, args.out))
    return report


if __name__ == "__main__":
    main()
