"""The search-strategy interface and its registry."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol, cast

import torch
from torch import Tensor

from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.supernet import NORMALIZERS, SuperNetwork
from tabnas.training.optim import (
    ARCH_OPTIMIZERS,
    DEFAULT_ARCH_LR,
    WEIGHT_OPTIMIZERS,
    ArchOptimizer,
    WeightOptimizer,
    make_arch_optimizer,
)


class BatchLoss(Protocol):
    """The loss of the supernet on a batch under mixing ``weights``.

    ``params`` (name -> tensor) replaces the supernet's weights for this call only, as
    :func:`torch.func.functional_call` does; ``None`` uses the module's own.
    """

    def __call__(
        self, batch, weights: Tensor, params: dict[str, Tensor] | None = None
    ) -> Tensor: ...


Evaluate = Callable[[Tensor], dict[str, float]]
"""Faithful scores of the supernet on the architecture half under the given mixing weights
(``{"loss": ...}``, plus ``"accuracy"`` for classification)."""

VirtualStep = Callable[[dict[str, Tensor]], tuple[dict[str, Tensor], dict[str, Tensor]]]
"""The weight step the trainer would take for the given gradients (name -> gradient).

Returns the stepped weights ``w'`` (detached) and ``xi``, the step's derivative with
respect to the gradient (a tensor per weight, elementwise): ``dw'/dg = -xi``. For plain
SGD ``xi`` is the learning rate; for AdamW it is its per-coordinate step size.
"""

STRATEGY_REGISTRY: dict[str, type[SearchStrategy]] = {}


@dataclass(frozen=True)
class SearchStage:
    """One supernet to train: its space and its share of the search's steps and time."""

    space: SearchSpace
    share: float = 1.0


class SearchStrategy:
    """How architecture weights are formed and updated during the bi-level search.

    A strategy is built with its own settings only (``DARTS(lr=1e-2)``); :meth:`bind`
    attaches it to a supernet and creates its optimizer over ``supernet.arch_parameters()``,
    never the weights'. Subclasses override :meth:`mixing_weights` (how ``alpha`` becomes
    the weights of a forward pass) and/or :meth:`arch_step` (how ``alpha`` is updated).

    ``updates_alpha = False`` marks a strategy whose ``alpha`` never moves: the trainer
    then draws no architecture batches at all. ``smoothable = False`` marks one whose
    weight step does not train on a point of the simplex of mixing weights (one sampled
    path, or weight outside the simplex), which SDARTS therefore refuses to perturb;
    ``smoothable_reason`` says why, completing "<name> ...".

    Every strategy chooses its optimizers (``training.optim``): ``optimizer`` for ``alpha``,
    ``"adam"`` (DARTS's: betas (0.5, 0.999), weight decay 1e-3) or ``"sgd"`` (momentum 0.9,
    the same decay, its lr annealed by a cosine over the search); ``lr`` defaults to 1e-2
    for Adam and 0.05 for SGD, which move α about as far. ``weight_optimizer`` is the one the
    trainer builds for the supernet's weights during the search and PT's tuning:
    ``"adamw"`` (the preset's) or ``"sgd"`` (DARTS's: momentum 0.9, lr 0.025 -> 0.001 by a
    cosine, weight decay 3e-4).
    """

    name: ClassVar[str]
    updates_alpha: ClassVar[bool] = True
    smoothable: ClassVar[bool] = True
    smoothable_reason: ClassVar[str] = ""

    def __init__(
        self,
        *,
        lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-3,
        normalizer: str = "softmax",
        sparsity: float = 0.0,
        sparsity_p: float = 0.5,
        optimizer: ArchOptimizer = "adam",
        weight_optimizer: WeightOptimizer = "adamw",
    ):
        if optimizer not in ARCH_OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {optimizer!r} for alpha; available: {sorted(ARCH_OPTIMIZERS)}"
            )
        if weight_optimizer not in WEIGHT_OPTIMIZERS:
            raise ValueError(
                f"unknown weight_optimizer {weight_optimizer!r}; available:"
                f" {sorted(WEIGHT_OPTIMIZERS)}"
            )
        if lr is None:
            lr = DEFAULT_ARCH_LR[optimizer]
        if not lr > 0:
            raise ValueError(f"lr must be positive, got lr={lr!r}")
        if normalizer not in NORMALIZERS:
            raise ValueError(
                f"unknown normalizer {normalizer!r}; available: {sorted(NORMALIZERS)}"
            )
        if sparsity < 0 or not 0 < sparsity_p < 1:
            raise ValueError(
                f"need sparsity >= 0 and 0 < sparsity_p < 1, got sparsity={sparsity!r},"
                f" sparsity_p={sparsity_p!r}"
            )
        self.normalizer = normalizer
        self.sparsity, self.sparsity_p = sparsity, sparsity_p
        self.lr = lr
        self.betas = cast(tuple[float, float], tuple(betas))
        self.weight_decay = weight_decay
        self._arch_optimizer: ArchOptimizer = optimizer
        self._weight_optimizer: WeightOptimizer = weight_optimizer
        self.supernet: SuperNetwork | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            STRATEGY_REGISTRY[cls.name] = cls

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self.lr!r}, betas={self.betas!r},"
            f" weight_decay={self.weight_decay!r}{self._options_repr()})"
        )

    def _options_repr(self) -> str:
        """The base options that differ from their defaults, as ``", name=value"`` (for
        the subclasses' reprs)."""
        extra = "" if self.normalizer == "softmax" else f", normalizer={self.normalizer!r}"
        if self.sparsity:
            extra += f", sparsity={self.sparsity!r}, sparsity_p={self.sparsity_p!r}"
        if self.arch_optimizer != "adam":
            extra += f", optimizer={self.arch_optimizer!r}"
        if self.weight_optimizer != "adamw":
            extra += f", weight_optimizer={self.weight_optimizer!r}"
        return extra

    @property
    def arch_optimizer(self) -> ArchOptimizer:
        """The ``optimizer`` option: the name of α's optimizer (``self.optimizer`` is the
        optimizer itself, once bound)."""
        return self._arch_optimizer

    @property
    def weight_optimizer(self) -> WeightOptimizer:
        """The name of the optimizer the trainer builds for the supernet's weights."""
        return self._weight_optimizer

    def stages(self, space: SearchSpace) -> Iterator[SearchStage]:
        """The supernets the search trains, one after another: ``space``'s alone by default.

        The pipeline binds the strategy to each stage's supernet and trains it before it
        draws the next stage, so a stage may depend on what the previous one learnt
        (P-DARTS prunes ops between stages). The last stage's space must be ``space``.
        """
        yield SearchStage(space)

    def finalize(self, architecture: Architecture) -> Architecture:
        """The selected architecture, possibly edited by a rule of the strategy (P-DARTS's
        cap on skip connections); ``architecture`` itself by default."""
        return architecture

    def build_supernet(self, space: SearchSpace, **shapes) -> SuperNetwork:
        """The supernet this strategy searches ``space`` with (``shapes``: the data's
        :meth:`~tabnas.nas.network.DataShapes.kwargs`); a plain :class:`SuperNetwork`
        unless the strategy changes the supernet itself (PC-DARTS's partial channels)."""
        return SuperNetwork(space=space, **shapes)

    def bind(self, supernet: SuperNetwork) -> SearchStrategy:
        """Attach to ``supernet`` and create the architecture optimizer; returns ``self``."""
        self.supernet = supernet
        supernet.normalizer = self.normalizer  # scoring and selection see the same weights
        self.optimizer = make_arch_optimizer(
            self.arch_optimizer, supernet.arch_parameters(), lr=self.lr, betas=self.betas,
            weight_decay=self.weight_decay,
        )
        return self

    def _bound(self) -> tuple[SuperNetwork, torch.optim.Optimizer]:
        """The supernet and optimizer of :meth:`bind`."""
        if self.supernet is None or self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} is not bound; call bind(supernet) first")
        return self.supernet, self.optimizer

    def mixing_weights(self) -> Tensor:
        """The weights of the next forward pass; the DARTS rule is softmax(alpha) (or the
        strategy's ``normalizer``: sparsemax, 1.5-entmax)."""
        return self._bound()[0].normalized()

    def penalty(self) -> Tensor:
        """``sparsity * sum(w ** p)`` over the open edges' normalised ``alpha`` (``p < 1``:
        an L_p penalty that pushes each edge towards one op); 0 when ``sparsity`` is 0.
        Every α step adds its gradient (:meth:`_apply`), whatever the strategy."""
        supernet = self._bound()[0]
        if not self.sparsity:
            return supernet.alpha.new_zeros(())
        weights = supernet.normalized()
        open_edges = ~supernet.fixed[..., None].expand_as(weights)
        return self.sparsity * (weights[open_edges].clamp_min(1e-8) ** self.sparsity_p).sum()

    def training_weights(self, loss: BatchLoss, batch) -> Tensor:
        """The mixing weights of the weight step on ``batch`` (``loss`` scores a choice of
        them on it); :meth:`mixing_weights` unless a strategy perturbs them (SDARTS)."""
        return self.mixing_weights()

    def step_started(self, step: int, max_steps: int) -> None:
        """Hook for schedules (temperatures, perturbation radii) before each weight step of
        the search; no-op by default. ``max_steps`` is the length a schedule spans: the
        search's ``min_steps``, which every search reaches (it stops on patience only
        after them), so a schedule always runs to its end and later steps hold it."""

    def search_finished(self, evaluate: Evaluate, seed: int) -> None:
        """Hook after the search, before any selection: a strategy may set ``alpha`` from
        what it measured (random search with weight sharing ranks sampled architectures
        with ``evaluate``); ``seed`` seeds any draw. No-op by default."""

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> dict[str, Tensor]:
        """Update ``alpha`` once; returns what it measured (at least ``arch_loss``), as
        detached 0-d tensors: the trainer averages them per evaluation, so the step itself
        never waits for the device.

        The default is DARTS's first-order step: the gradient of the loss on the
        architecture batch at the current weights.
        """
        alpha = self._bound()[0].alpha
        val_loss = loss(val_batch, self.mixing_weights())
        # None when no sampled path touched α (e.g. GDAS drew `none` on every open edge)
        (grad,) = torch.autograd.grad(val_loss, [alpha], allow_unused=True)
        if grad is not None:
            self._apply(grad)
        return {"arch_loss": val_loss.detach()}

    def _apply(self, grad: Tensor) -> None:
        """One optimizer step on ``alpha`` with ``grad`` plus the penalty's gradient."""
        supernet, optimizer = self._bound()
        if self.sparsity:
            (penalty_grad,) = torch.autograd.grad(self.penalty(), [supernet.alpha])
            grad = grad + penalty_grad
        optimizer.zero_grad(set_to_none=True)
        supernet.alpha.grad = grad
        optimizer.step()


def make_strategy(strategy: str | SearchStrategy) -> SearchStrategy:
    """A fresh, unbound strategy from a registered name or a configured instance.

    An instance is copied, so the caller's object (an estimator parameter) never changes.
    """
    if isinstance(strategy, SearchStrategy):
        fresh = copy.copy(strategy)
        fresh.supernet, fresh.optimizer = None, None
        return fresh
    try:
        cls = STRATEGY_REGISTRY[strategy]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown search strategy {strategy!r}; available: {sorted(STRATEGY_REGISTRY)}"
            " or a SearchStrategy instance"
        ) from None
    return cls()
