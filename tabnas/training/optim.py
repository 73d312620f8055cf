"""Optimizers of the weights and of the architecture logits, built in one place."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tabnas.nas.embeddings import FeatureScale

_NO_DECAY_MODULES = (nn.LayerNorm, nn.BatchNorm1d, nn.Embedding, FeatureScale)

ArchOptimizer = Literal["adam", "sgd"]
WeightOptimizer = Literal["adamw", "sgd"]

MOMENTUM = 0.9
"""SGD's momentum, for the weights (DARTS's) and for α alike."""

ARCH_SGD_LR = 0.05
"""α's SGD learning rate when the strategy gives none: α then moves about as far as under
Adam at 1e-2 (docs/algorithms.md, "The optimizers of the search")."""

ARCH_SGD_FINAL = 0.04
"""α's SGD learning rate falls by a cosine to this fraction of its start over the search
(DARTS's weights: 0.025 -> 0.001)."""


def make_parameter_groups(
    model: nn.Module, weight_decay: float, *, exclude: Iterable[nn.Parameter] = ()
) -> list[dict]:
    """Weight decay for weight matrices only (as rtdl's ``make_parameter_groups``).

    Biases, normalisation layers, embeddings (the tokenizer, the [CLS] token) get no decay;
    ``exclude`` (the architecture logits) is left out altogether.
    """
    excluded = {id(p) for p in exclude}
    no_decay: set[int] = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if (
                isinstance(module, _NO_DECAY_MODULES)
                or name == "bias"
                or module_name.startswith("tokenizer")
            ):
                no_decay.add(id(param))
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for param in model.parameters():
        if id(param) in excluded or not param.requires_grad:
            continue
        (plain if id(param) in no_decay else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]


def make_weight_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, exclude: Iterable[nn.Parameter] = ()
) -> torch.optim.AdamW:
    """AdamW over :func:`make_parameter_groups`, fused into one kernel where torch has one.

    A network of the space holds a few hundred small tensors; AdamW's per-tensor loop
    costs 15 ms a step on 2 CPU cores for the default supernet, the fused step 3 ms
    (``benchmarks/perf.py``), with the same update.
    """
    groups = make_parameter_groups(model, weight_decay, exclude=exclude)
    params = [p for group in groups for p in group["params"]]
    return torch.optim.AdamW(groups, lr=lr, fused=_fusable(params) or None)


def make_sgd_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, exclude: Iterable[nn.Parameter] = ()
) -> torch.optim.SGD:
    """SGD with momentum :data:`MOMENTUM` over :func:`make_parameter_groups` (DARTS's weight
    optimizer; its L2 decay reaches the weight matrices only), fused where torch can."""
    groups = make_parameter_groups(model, weight_decay, exclude=exclude)
    params = [p for group in groups for p in group["params"]]
    return torch.optim.SGD(groups, lr=lr, momentum=MOMENTUM, fused=_fusable(params) or None)


@dataclass(frozen=True)
class WeightRecipe:
    """How the supernet's weights train during the search and PT's tuning.

    The search starts at ``lr`` and falls by a cosine to ``final_lr`` over the search's
    ``max_steps`` (equal: a constant lr); tuning starts afresh at a fraction of ``lr``
    (:attr:`~tabnas.training.search.SearchConfig.tune_lr_ratio`).
    """

    kind: WeightOptimizer
    lr: float
    final_lr: float
    weight_decay: float

    def build(
        self, model: nn.Module, *, lr: float, exclude: Iterable[nn.Parameter] = ()
    ) -> torch.optim.Optimizer:
        """A fresh optimizer of this kind over ``model``'s weights at ``lr``."""
        make = make_sgd_optimizer if self.kind == "sgd" else make_weight_optimizer
        return make(model, lr=lr, weight_decay=self.weight_decay, exclude=exclude)


DARTS_SGD = WeightRecipe("sgd", lr=0.025, final_lr=0.001, weight_decay=3e-4)
"""DARTS's weight optimizer (``train_search.py``), whatever the preset's lr and decay."""


def _adamw_recipe(lr: float, weight_decay: float) -> WeightRecipe:
    return WeightRecipe("adamw", lr=lr, final_lr=lr, weight_decay=weight_decay)


def _sgd_recipe(lr: float, weight_decay: float) -> WeightRecipe:
    return DARTS_SGD


WEIGHT_OPTIMIZERS: dict[str, Callable[[float, float], WeightRecipe]] = {
    "adamw": _adamw_recipe,  # the preset's lr and weight decay, constant over the search
    "sgd": _sgd_recipe,
}
"""Weight optimizers by name: the recipe for a preset's ``(lr, weight_decay)``."""


def weight_recipe(kind: str, *, lr: float, weight_decay: float) -> WeightRecipe:
    """The :data:`WEIGHT_OPTIMIZERS` recipe ``kind``, given the preset's lr and decay."""
    try:
        make = WEIGHT_OPTIMIZERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown weight optimizer {kind!r}; available: {sorted(WEIGHT_OPTIMIZERS)}"
        ) from None
    return make(lr, weight_decay)


def _adam(
    params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


def _sgd(
    params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)


ARCH_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": _adam,  # DARTS's: betas (0.5, 0.999), L2 weight decay 1e-3
    "sgd": _sgd,  # momentum 0.9, the same L2 decay; cosine-annealed by the trainer
}
"""Optimizers of the architecture logits by name."""

DEFAULT_ARCH_LR: dict[str, float] = {"adam": 1e-2, "sgd": ARCH_SGD_LR}
"""α's learning rate when the strategy gives none, by optimizer."""


def make_arch_optimizer(
    kind: str,
    params: list[nn.Parameter],
    *,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
) -> torch.optim.Optimizer:
    """The :data:`ARCH_OPTIMIZERS` entry ``kind`` over ``params`` (``betas``: Adam's only).

    SGD's groups carry their schedule, ``initial_lr`` -> ``final_lr`` (:data:`ARCH_SGD_FINAL`
    of it), which :func:`anneal_arch_lr` follows; Adam's lr stays as it is.
    """
    if kind not in ARCH_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; available: {sorted(ARCH_OPTIMIZERS)}")
    optimizer = ARCH_OPTIMIZERS[kind](params, lr, betas, weight_decay)
    if kind == "sgd":
        for group in optimizer.param_groups:
            group["initial_lr"], group["final_lr"] = lr, ARCH_SGD_FINAL * lr
    return optimizer


def cosine(start: float, end: float, progress: float) -> float:
    """From ``start`` at ``progress`` 0 to ``end`` at 1 (and after) by a half cosine."""
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """``lr`` for every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def anneal_arch_lr(optimizer: torch.optim.Optimizer, progress: float, *, scale: float) -> None:
    """α's lr at ``progress`` (0..1) of the search, for the groups that carry a schedule
    (:func:`make_arch_optimizer`'s SGD): a cosine from ``initial_lr`` to ``final_lr``, times
    ``scale`` (the recoveries'). Groups without one (Adam) are left alone."""
    for group in optimizer.param_groups:
        if "final_lr" in group:
            group["lr"] = scale * cosine(group["initial_lr"], group["final_lr"], progress)


def scale_fixed_lrs(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Multiply by ``factor`` the lr of every group of ``optimizer`` that carries no schedule
    (Adam's α; :func:`anneal_arch_lr` scales the others at each step)."""
    for group in optimizer.param_groups:
        if "final_lr" not in group:
            group["lr"] *= factor


def _fusable(params: list[nn.Parameter]) -> bool:
    return bool(params) and all(
        p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
        and p.device.type in ("cpu", "cuda")
        for p in params
    )
