"""SDARTS (Chen & Hsieh 2020): the weights train on a perturbed architecture, to smooth the
loss landscape in α; a wrapper over a base strategy whose weights train on the mixture."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tabnas.nas.strategies.base import (
    STRATEGY_REGISTRY,
    BatchLoss,
    SearchStrategy,
    VirtualStep,
    make_strategy,
)
from tabnas.nas.strategies.sampling import linear_schedule
from tabnas.training.optim import ArchOptimizer, WeightOptimizer


def clip_to_simplex(weights: Tensor, offered: Tensor | None = None) -> Tensor:
    """Clamp to [0, 1] and renormalise each edge to sum 1 (SmoothDARTS's ``clip``), over
    the ``offered`` ops only (bool, as ``weights``; the others get 0: P-DARTS's pruned ops,
    which never run)."""
    weights = weights.clamp(0.0, 1.0)
    if offered is not None:
        weights = weights * offered
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)


class SmoothDARTS(SearchStrategy):
    """SDARTS-RS: before each weight step, ``softmax(alpha)`` of the base strategy's
    supernet gets uniform noise in ``[-epsilon, epsilon]`` and is clipped back to the
    simplex; the weights train on those mixing weights. The architecture step is the base
    strategy's own, unperturbed. ``epsilon`` ramps linearly from ``epsilon[0]`` to
    ``epsilon[1]`` over the search (the official SmoothDARTS code: 0.03 -> 0.3).

    ``base`` is a strategy whose weight step trains on a point of the simplex of mixing
    weights, by name or instance (``SmoothDARTS("pcdarts")``): its optimizers (α's and
    the weights'), stages, schedule and α step are used as they are. Strategies that
    train one sampled path per step (``gdas``, ``proxyless``, ``random-ws``) or add weight
    outside the simplex (``darts-minus``) leave nothing for the perturbation to smooth
    and are refused (:attr:`~tabnas.nas.strategies.SearchStrategy.smoothable`).
    """

    name = "sdarts-rs"

    def __init__(
        self, base: str | SearchStrategy = "darts", *, epsilon: tuple[float, float] = (0.03, 0.3)
    ):
        super().__init__()
        if not (len(epsilon) == 2 and 0 <= epsilon[0] and 0 <= epsilon[1]):
            raise ValueError(f"epsilon must be two radii >= 0 (start, end), got {epsilon!r}")
        self.base = make_strategy(base)
        if not self.base.smoothable:
            bases = sorted(
                name for name, cls in STRATEGY_REGISTRY.items()
                if cls.smoothable and not issubclass(cls, SmoothDARTS)
            )
            raise ValueError(
                f"{type(self).__name__} perturbs the mixture of ops that the weights train"
                f" on, but {self.base.name!r} {self.base.smoothable_reason}; choose a base"
                f" whose weights train on the whole mixture: {bases}"
            )
        self.epsilon = (float(epsilon[0]), float(epsilon[1]))
        self.radius = self.epsilon[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base!r}, epsilon={self.epsilon!r})"

    @property
    def updates_alpha(self) -> bool:  # type: ignore[override]  # the base's, per instance
        return self.base.updates_alpha

    def stages(self, space):
        return self.base.stages(space)

    def finalize(self, architecture):
        return self.base.finalize(architecture)

    @property
    def arch_optimizer(self) -> ArchOptimizer:
        return self.base.arch_optimizer

    @property
    def weight_optimizer(self) -> WeightOptimizer:
        return self.base.weight_optimizer

    def build_supernet(self, space, **shapes):
        return self.base.build_supernet(space, **shapes)

    def search_finished(self, evaluate, seed: int) -> None:
        self.base.search_finished(evaluate, seed)

    def __copy__(self) -> SmoothDARTS:
        """A copy with its own copy of the base (:func:`make_strategy` copies a strategy
        per fit, and the base's stages and binding must not reach the caller's)."""
        fresh = object.__new__(type(self))
        fresh.__dict__.update(self.__dict__)
        fresh.base = make_strategy(self.base)
        fresh.supernet, fresh.optimizer = None, None  # unbound, as its base
        return fresh

    def bind(self, supernet) -> SmoothDARTS:
        self.base.bind(supernet)  # the base whose stages() runs, so its stage state holds
        self.supernet, self.optimizer = self.base.supernet, self.base.optimizer
        return self

    def step_started(self, step: int, max_steps: int) -> None:
        self.base.step_started(step, max_steps)
        self.radius = linear_schedule(self.epsilon, step, max_steps)

    def mixing_weights(self) -> Tensor:
        return self.base.mixing_weights()

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> dict[str, Tensor]:
        return self.base.arch_step(loss, train_batch, val_batch, virtual_step=virtual_step)

    def offered(self) -> Tensor:
        """The ops each edge still offers (bool, ``(n_cells, n_edges, n_ops)``): noise
        never gives weight to an op pruned from its edge."""
        return self._bound()[0].kept

    def training_weights(self, loss: BatchLoss, batch: Any) -> Tensor:
        weights = self.base.mixing_weights().detach()
        noise = torch.empty_like(weights).uniform_(-self.radius, self.radius)
        return clip_to_simplex(weights + noise, self.offered())


class AdversarialSmoothDARTS(SmoothDARTS):
    """SDARTS-ADV: the perturbation of ``softmax(alpha)`` is adversarial, a
    ``pgd_steps``-step L∞ projected gradient ascent on the weight batch's loss (step
    ``2 epsilon / pgd_steps``, random start), kept only if it raised the loss, as the
    official code's ``Linf_PGD_alpha`` does."""

    name = "sdarts-adv"

    def __init__(
        self, base: str | SearchStrategy = "darts", *, epsilon: tuple[float, float] = (0.03, 0.3),
        pgd_steps: int = 7,
    ):
        super().__init__(base, epsilon=epsilon)
        if pgd_steps < 1:
            raise ValueError(f"pgd_steps must be >= 1, got {pgd_steps}")
        self.pgd_steps = pgd_steps

    def training_weights(self, loss: BatchLoss, batch: Any) -> Tensor:
        start = self.base.mixing_weights().detach()
        radius, step = self.radius, 2 * self.radius / self.pgd_steps
        with torch.no_grad():
            before = loss(batch, start)
        offered = self.offered()
        noise = torch.empty_like(start).uniform_(-radius, radius)
        weights = clip_to_simplex(start + noise, offered)
        for _ in range(self.pgd_steps):
            weights.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(batch, weights), [weights])
            moved = (weights.detach() + step * grad.sign() - start).clamp(-radius, radius)
            weights = clip_to_simplex(start + moved, offered)
        with torch.no_grad():
            after = loss(batch, weights)
        return start if bool(before > after) else weights
