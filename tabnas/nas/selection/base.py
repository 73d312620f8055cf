"""The selector interface: a trained supernet in, an Architecture out."""

from __future__ import annotations

import copy
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from tabnas.nas.ops import NONE_OP
from tabnas.nas.selection.trace import Decision
from tabnas.nas.space import Architecture
from tabnas.nas.supernet import SuperNetwork

Evaluate = Callable[[Tensor], dict[str, float]]
"""Scores of the whole supernet on the architecture half under the given mixing weights:
``{"loss": ...}`` plus ``"accuracy"`` for classification."""

Tune = Callable[[], None]
"""Trains the supernet a little between two decisions."""

Criterion = Literal["accuracy", "loss"]


@dataclass(frozen=True)
class SelectionContext:
    """What a selector may use, and nothing else.

    Attributes:
        evaluate: faithful scores of the supernet on the architecture half.
        tune: trains the supernet between two decisions (only for selectors that tune).
        seed: for any random order the selector draws.
        expired: whether the selection's share of the time limit is over.
        criterion: ``"accuracy"`` (classification) or ``"loss"``: what "hurts" means.
    """

    evaluate: Evaluate
    tune: Tune = lambda: None
    seed: int = 0
    expired: Callable[[], bool] = lambda: False
    criterion: Criterion = "loss"


SELECTOR_REGISTRY: dict[str, type[Selector]] = {}


class Selector(ABC):
    """Turns a trained supernet into an :class:`Architecture`, recording why.

    ``tunes`` declares whether the selector calls ``context.tune`` between decisions, so
    the pipeline prepares tuning only for those that do.
    """

    name: ClassVar[str]
    tunes: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SELECTOR_REGISTRY[cls.name] = cls

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def n_decisions(self, supernet: SuperNetwork) -> int:
        """How many decisions (hence tuning intervals) :meth:`select` will make."""
        return 0

    @abstractmethod
    def select(
        self, supernet: SuperNetwork, context: SelectionContext
    ) -> tuple[Architecture, list[Decision]]:
        """Fix every edge of ``supernet``; return the architecture and the per-decision trace."""


def make_selector(selection: str | Selector) -> Selector:
    """A selector from a registered name, or a copy of a configured instance."""
    if isinstance(selection, Selector):
        return copy.deepcopy(selection)
    try:
        cls = SELECTOR_REGISTRY[selection]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown selection {selection!r}; available: {sorted(SELECTOR_REGISTRY)}"
            " or a Selector instance"
        ) from None
    return cls()


# ---- helpers shared by the selectors ------------------------------------------------------
def candidate_ops(supernet: SuperNetwork, cell: int, edge: int) -> list[int]:
    """Indices of the ops edge ``edge`` of ``cell`` may keep: every op but ``none`` that
    the search did not prune from it."""
    return [
        k for k, op in enumerate(supernet.space.ops)
        if op != NONE_OP and supernet.op_kept(cell, edge, k)
    ]


def op_weights(supernet: SuperNetwork, cell: int, edge: int) -> Tensor:
    """The softmax of the edge's architecture logits over the ops it still has."""
    alpha = supernet.alpha.detach()[cell, edge]
    kept = supernet.kept[cell, edge] | supernet.fixed[cell, edge]
    return torch.softmax(alpha.masked_fill(~kept, -1e4), dim=-1)


def argmax_op(supernet: SuperNetwork, cell: int, edge: int) -> str:
    """The DARTS rule: the strongest non-``none`` op by architecture weight."""
    weights = op_weights(supernet, cell, edge)
    ops = candidate_ops(supernet, cell, edge)
    return supernet.space.ops[max(ops, key=lambda k: float(weights[k]))]


def incoming_edges(supernet: SuperNetwork, cell: int, target: int) -> list[int]:
    """Edges into ``target`` that are still there."""
    return [
        e
        for e, (_, t) in enumerate(supernet.space.edges)
        if t == target and bool(supernet.kept[cell, e].any())
    ]


def edge_strength(supernet: SuperNetwork, cell: int, edge: int) -> float:
    """How strongly the search trusted an edge: its best non-``none`` softmax weight, times
    the supernet's weight of the whole edge where it has one (PC-DARTS's β; 1 otherwise)."""
    weights = op_weights(supernet, cell, edge)
    with torch.no_grad():
        edge_weights = supernet.edge_weights()
    factor = 1.0 if edge_weights is None else float(edge_weights[cell, edge])
    return factor * max(float(weights[k]) for k in candidate_ops(supernet, cell, edge))


def shuffled(items: list, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items
