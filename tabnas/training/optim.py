"""Optimizer parameter groups, built in one place."""

from __future__ import annotations

from typing import Iterable

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
    decay, plain = [], []
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
    return torch.optim.AdamW(make_parameter_groups(model, weight_decay, exclude=exclude), lr=lr)
