"""The search-strategy interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from tabnas.nas.supernet import SuperNetwork


class BatchLoss(Protocol):
    """The loss of the supernet on a batch under mixing ``weights``.

    ``params`` (name -> tensor) replaces the supernet's weights for this call only, as
    :func:`torch.func.functional_call` does; ``None`` uses the module's own.
    """

    def __call__(self, batch, weights: Tensor, params: dict[str, Tensor] | None = None) -> Tensor: ...


STRATEGY_REGISTRY: dict[str, type[SearchStrategy]] = {}


class SearchStrategy(ABC):
    """How architecture weights are formed and updated during the bi-level search.

    A strategy owns its own optimizer over ``supernet.arch_parameters()``, never the
    weights'. Subclasses override :meth:`mixing_weights` (how ``alpha`` becomes the weights
    of a forward pass) and/or :meth:`arch_step` (how ``alpha`` is updated).
    """

    name: ClassVar[str]

    def __init__(
        self,
        supernet: SuperNetwork,
        *,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-3,
    ):
        self.supernet = supernet
        self.optimizer = torch.optim.Adam(
            supernet.arch_parameters(), lr=lr, betas=betas, weight_decay=weight_decay
        )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            STRATEGY_REGISTRY[cls.name] = cls

    def mixing_weights(self) -> Tensor:
        """The weights of the next forward pass; the DARTS rule is softmax(alpha)."""
        return torch.softmax(self.supernet.alpha, dim=-1)

    def epoch_started(self, epoch: int, n_epochs: int) -> None:
        """Hook for schedules (temperatures, perturbation radii); no-op by default."""

    @abstractmethod
    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, weight_lr: float, weight_decay: float
    ) -> float:
        """Update ``alpha`` once; returns the validation loss it saw."""


def make_strategy(name: str, supernet: SuperNetwork, **kwargs) -> SearchStrategy:
    try:
        cls = STRATEGY_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown search strategy {name!r}; available: {sorted(STRATEGY_REGISTRY)}"
        ) from None
    return cls(supernet, **kwargs)


