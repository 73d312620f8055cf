"""Strategies that sample the mixing weights: GDAS (hard, one op per edge) and SNAS (soft
concrete relaxation, single-level)."""

from __future__ import annotations

import torch
from torch import Tensor

from tabnas.nas.strategies.base import BatchLoss, SearchStrategy, VirtualStep


def gumbel_softmax(alpha: Tensor, tau: float) -> Tensor:
    """``softmax((log_softmax(alpha) + g) / tau)`` over the last dimension, ``g`` Gumbel(0, 1)
    noise; redrawn in the (very rare) case the noise is infinite, as GDAS's code does."""
    while True:
        gumbels = -torch.empty_like(alpha).exponential_().log()
        probs = torch.softmax((alpha.log_softmax(dim=-1) + gumbels) / tau, dim=-1)
        if torch.isfinite(gumbels).all() and torch.isfinite(probs).all():
            return probs


def linear_schedule(bounds: tuple[float, float], step: int, max_steps: int) -> float:
    """From ``bounds[0]`` at step 0 to ``bounds[1]`` at the last step, linearly."""
    start, end = bounds
    return start + (end - start) * min(step / max(max_steps - 1, 1), 1.0)


class Annealed(SearchStrategy):
    """A strategy with a temperature annealed linearly from ``tau[0]`` to ``tau[1]`` over
    the search's weight steps (``temperature`` is the current one)."""

    def __init__(self, *, tau: tuple[float, float], **kwargs):
        super().__init__(**kwargs)
        if not (len(tau) == 2 and tau[0] > 0 and tau[1] > 0):
            raise ValueError(f"tau must be two positive temperatures (start, end), got {tau!r}")
        self.tau = (float(tau[0]), float(tau[1]))
        self.temperature = self.tau[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau!r}, lr={self.lr!r}{self._options_repr()})"

    def step_started(self, step: int, max_steps: int) -> None:
        self.temperature = linear_schedule(self.tau, step, max_steps)


class GDAS(Annealed):
    """GDAS (Dong & Yang 2019): per edge, one op sampled by Gumbel-max on
    ``log_softmax(alpha) + g``, divided by a temperature annealed linearly from ``tau[0]``
    to ``tau[1]`` over the search.

    The forward pass runs only the sampled op of each edge, scaled by the straight-through
    weight ``one_hot - p.detach() + p`` (``p`` the relaxed probabilities): its value is
    exactly 1 for the sampled op and 0 for the others, so ``MixedOp`` skips them, while
    its gradient reaches every ``alpha`` of the edge through ``p``. The α step is
    first-order on an architecture batch, with a fresh sample.

    Defaults of the official code (AutoDL-Projects, ``GDAS.config``): τ 10 → 0.1; the
    architecture Adam (betas (0.5, 0.999), weight decay 1e-3) runs at lr 1e-2 instead of
    3e-4 for the same reason as :class:`~tabnas.nas.strategies.DARTS` (a few hundred α
    steps, not tens of thousands).
    """

    name = "gdas"
    smoothable = False
    smoothable_reason = "trains one sampled op per edge at each weight step"

    def __init__(self, *, tau: tuple[float, float] = (10.0, 0.1), **kwargs):
        super().__init__(tau=tau, **kwargs)

    def mixing_weights(self) -> Tensor:
        probs = gumbel_softmax(self._bound()[0].alpha, self.temperature)
        one_hot = torch.zeros_like(probs).scatter_(-1, probs.argmax(dim=-1, keepdim=True), 1.0)
        return one_hot - probs.detach() + probs


class SNAS(Annealed):
    """SNAS (Xie et al. 2019): soft concrete weights ``softmax((log_softmax(alpha) + g) /
    tau)`` with τ annealed linearly from ``tau[0]`` to ``tau[1]``, and a **single-level**
    search: α follows the gradient of the same training loss the weights learn from (a
    weight-half batch), not the architecture half's.

    Defaults of the official code (SNAS-Series): τ 1 → 0.03; α's Adam at lr 1e-2 (see
    :class:`GDAS`). The resource penalty of the paper is not included.
    """

    name = "snas"

    def __init__(self, *, tau: tuple[float, float] = (1.0, 0.03), **kwargs):
        super().__init__(tau=tau, **kwargs)

    def mixing_weights(self) -> Tensor:
        return gumbel_softmax(self._bound()[0].alpha, self.temperature)

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> dict[str, Tensor]:
        """The gradient of the training batch's loss (single-level); ``val_batch`` unused."""
        return super().arch_step(loss, train_batch, train_batch, virtual_step=virtual_step)
