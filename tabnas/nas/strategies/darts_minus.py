"""DARTS- (Chu et al. 2021): an auxiliary skip branch outside the softmax, decayed to zero."""

from __future__ import annotations

from torch import Tensor

from tabnas.nas.strategies.base import Evaluate
from tabnas.nas.strategies.darts import DARTS
from tabnas.nas.strategies.sampling import linear_schedule
from tabnas.nas.supernet import SuperNetwork

SKIP_OP = "skip"
"""The identity op that carries the auxiliary branch."""


class DARTSMinus(DARTS):
    """DARTS- : every open edge gets an auxiliary identity branch ``beta * x`` **outside**
    the softmax, so skip connections no longer need to win α to carry the gradient;
    ``beta`` decays linearly from ``beta[0]`` to ``beta[1]`` over the search's weight steps.

    The ``skip`` op is the identity, so the branch is ``beta`` added to the skip op's
    mixing weight of every open edge: the weight step and the α step both run on
    ``softmax(alpha) + beta * one_hot(skip)``, and α's gradient reaches it only through the
    softmax. Selection never sees the branch: the supernet's own weights
    (:meth:`~tabnas.nas.supernet.SuperNetwork.default_weights`, which the search's
    evaluations, the history and PT's scores use) are ``softmax(alpha)``, and ``beta`` is
    0 from :meth:`search_finished` on (PT's tuning). The space needs the ``skip`` op.

    Defaults of the official code (Meituan-AutoML/DARTS-, ``--auxiliary_skip``): β = 1
    decayed linearly to 0 over the whole search; otherwise DARTS, whose architecture Adam
    runs here at lr 1e-2 instead of 3e-4 (see :class:`~tabnas.nas.strategies.DARTS`).
    """

    name = "darts-minus"
    smoothable = False
    smoothable_reason = "adds its auxiliary skip outside the simplex of mixing weights"

    def __init__(self, *, beta: tuple[float, float] = (1.0, 0.0), **kwargs):
        super().__init__(**kwargs)
        if not (len(beta) == 2 and beta[0] >= 0 and beta[1] >= 0):
            raise ValueError(f"beta must be two weights >= 0 (start, end), got beta={beta!r}")
        self.beta = (float(beta[0]), float(beta[1]))
        self.branch = self.beta[0]
        """The auxiliary branch's current weight."""

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, beta={self.beta!r})"

    def bind(self, supernet: SuperNetwork) -> DARTSMinus:
        if SKIP_OP not in supernet.space.ops:
            raise ValueError(
                f"DARTS- carries its auxiliary branch on the identity op {SKIP_OP!r}, which the"
                f" search space lacks (ops={supernet.space.ops}); add {SKIP_OP!r} to"
                " SearchSpace(ops=...) or choose another search_strategy"
            )
        super().bind(supernet)
        self.branch = self.beta[0]
        return self

    def step_started(self, step: int, max_steps: int) -> None:
        self.branch = linear_schedule(self.beta, step, max_steps)

    def search_finished(self, evaluate: Evaluate, seed: int) -> None:
        """From here on (PT's tuning) the supernet trains without the branch."""
        self.branch = 0.0

    def mixing_weights(self) -> Tensor:
        """``softmax(alpha)`` (or the ``normalizer``'s) plus ``beta`` on the skip op of
        every open edge."""
        supernet = self._bound()[0]
        weights = super().mixing_weights()
        if not self.branch:
            return weights
        branch = weights.new_zeros(weights.shape)
        branch[..., supernet.space.ops.index(SKIP_OP)] = self.branch
        return weights + branch * ~supernet.fixed[..., None]  # a fixed edge keeps its choice
