"""The selector interface: a trained supernet in, an Architecture out."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from tabnas.nas.ops import NONE_OP
from tabnas.nas.space import Architecture
from tabnas.nas.supernet import SuperNetwork

Evaluate = Callable[[Tensor], dict[str, float]]
"""Scores of the whole supernet on the architecture half under the given mixing weights:
``{"loss": ...}`` plus ``"accuracy"`` for classification."""

Tune = Callable[[], None]
"""Trains the supernet a little between two decisions."""

SELECTOR_REGISTRY: dict[str, type[Selector]] = {}


class Selector(ABC):
    """Turns a trained supernet into an :class:`Architecture`, recording why."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SELECTOR_REGISTRY[cls.name] = cls

    @abstractmethod
    def select(
        self,
        supernet: SuperNetwork,
        *,
        evaluate: Evaluate,
        tune: Tune,
        seed: int,
        expired: Callable[[], bool] = lambda: False,
    ) -> tuple[Architecture, list[dict[str, Any]]]:
        """Fix every edge of ``supernet``; return the architecture and the per-decision trace."""


def make_selector(name: str, **kwargs) -> Selector:
    try:
        cls = SELECTOR_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown selection {name!r}; available: {sorted(SELECTOR_REGISTRY)}") from None
    return cls(**kwargs)


# ---- helpers shared by the selectors ------------------------------------------------------
def candidate_ops(supernet: SuperNetwork) -> list[int]:
    """Indices of the ops an edge may keep (every op but ``none``)."""
    return [k for k, op in enumerate(supernet.space.ops) if op != NONE_OP]


def argmax_op(supernet: SuperNetwork, cell: int, edge: int) -> str:
    """The DARTS rule: the strongest non-``none`` op by architecture weight."""
    ops = candidate_ops(supernet)
    weights = torch.softmax(supernet.alpha.detach()[cell, edge], dim=-1)
    return supernet.space.ops[max(ops, key=lambda k: float(weights[k]))]


def incoming_edges(supernet: SuperNetwork, cell: int, target: int) -> list[int]:
    """Edges into ``target`` that are still there."""
    return [
        e
        for e, (_, t) in enumerate(supernet.space.edges)
        if t == target and bool(supernet.kept[cell, e].any())
    ]


def edge_strength(supernet: SuperNetwork, cell: int, edge: int) -> float:
    """How strongly the search trusted an edge: its best non-``none`` softmax weight."""
    weights = torch.softmax(supernet.alpha.detach()[cell, edge], dim=-1)
    return max(float(weights[k]) for k in candidate_ops(supernet))


def shuffled(items: list, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items
