"""Optimizer parameter groups, built in one place."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_NO_DECAY_MODULES = (nn.LayerNorm, nn.BatchNorm1d, nn.Embedding)


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


def _fusable(params: list[nn.Parameter]) -> bool:
    return bool(params) and all(
        p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
        and p.device.type in ("cpu", "cuda")
        for p in params
    )
