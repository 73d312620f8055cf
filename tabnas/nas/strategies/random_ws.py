"""Random search with weight sharing (Li & Talwalkar 2019): the supernet trains one random
discrete architecture per batch; sampled architectures are then ranked with those weights."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from tabnas.nas.ops import NONE_OP
from tabnas.nas.space import Architecture
from tabnas.nas.strategies.base import BatchLoss, Evaluate
from tabnas.nas.strategies.darts import FixedAlpha
from tabnas.nas.supernet import SuperNetwork

logger = logging.getLogger(__name__)

RANK_DECAY = 1 / 3
"""Rank ``r`` of the top architectures (0 the best) counts ``RANK_DECAY ** r`` in α, so the
best counts more than all the others together (they sum to less than 1/2)."""

SMOOTHING = 0.1
"""Pseudo-count of every op of every edge in α: no logit is ``-inf``."""


class RandomWS(FixedAlpha):
    """Random search with weight sharing: each weight step of the search trains the supernet
    on a uniformly random discrete architecture of the space (:meth:`SearchSpace.sample`:
    each node keeps ``node_inputs`` distinct incoming edges, each with a random op other
    than ``none``), as one-hot mixing weights, so ``MixedOp`` runs only the sampled ops. α
    is never stepped (no architecture batches are drawn) and stays uniform during the search.

    After the search (:meth:`search_finished`), ``n_samples`` random architectures are
    scored with the shared weights on the architecture half and ranked (accuracy, then loss,
    for classification; loss for regression); the ``n_top`` best are kept in ``ranking``.
    α becomes the log of their rank-weighted op frequencies (:func:`ranked_alpha`), so
    ``selection="argmax"`` returns the best-ranked architecture and ``selection="pt"``
    starts from a supernet leaning towards the top of the ranking. PT's tuning then trains
    the supernet under that mixture, the one PT scores.

    Official code (liamcli/randomNAS_release): 1,000 architectures ranked on 10 validation
    minibatches each, the best 10 re-scored on the whole validation split, a round per
    10,000 training minibatches. Here every candidate is scored like the official
    re-scoring, on the whole architecture half (up to 4,096 rows); 100 candidates keep the
    ranking at about the official share of the search's time, a third.
    """

    name = "random-ws"
    smoothable = False
    smoothable_reason = "trains one random architecture at each weight step"

    def __init__(self, *, n_samples: int = 100, n_top: int = 10, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= n_top <= n_samples:
            raise ValueError(
                f"need 1 <= n_top <= n_samples, got n_top={n_top!r}, n_samples={n_samples!r}"
            )
        self.n_samples, self.n_top = n_samples, n_top
        self.searching = True
        self.ranking: list[tuple[Architecture, dict[str, float]]] = []
        """The best architectures after the search, best first, with their scores."""

    def __repr__(self) -> str:
        return f"RandomWS(n_samples={self.n_samples!r}, n_top={self.n_top!r})"

    def bind(self, supernet: SuperNetwork) -> RandomWS:
        super().bind(supernet)
        self.searching, self.ranking = True, []
        return self

    def training_weights(self, loss: BatchLoss, batch) -> Tensor:
        """A fresh random architecture's one-hot weights during the search (drawn from the
        global torch generator); the mixture :meth:`mixing_weights` afterwards (PT's tuning)."""
        if not self.searching:
            return self.mixing_weights()
        supernet = self._bound()[0]
        seed = int(torch.randint(2**31 - 1, ()))
        return supernet.architecture_weights(supernet.space.sample(seed))

    def search_finished(self, evaluate: Evaluate, seed: int) -> None:
        """Rank ``n_samples`` random architectures (drawn from ``seed``) with ``evaluate``
        and set α from the best ``n_top``."""
        supernet = self._bound()[0]
        self.searching = False
        started = time.perf_counter()
        rng = random.Random(seed)
        drawn = (supernet.space.sample(rng.getrandbits(32)) for _ in range(self.n_samples))
        candidates = list(dict.fromkeys(drawn))  # distinct, in the order drawn
        scored = [(arch, evaluate(supernet.architecture_weights(arch))) for arch in candidates]
        scored.sort(key=lambda item: rank_key(item[1]))
        self.ranking = scored[: self.n_top]
        logger.info(
            "random-ws: ranked %d architectures in %.1f s; the best scored %s",
            len(scored), time.perf_counter() - started, self.ranking[0][1],
        )
        with torch.no_grad():
            supernet.alpha.copy_(ranked_alpha(supernet, [arch for arch, _ in self.ranking]))


def rank_key(scores: dict[str, float]) -> tuple[float, float]:
    """Sorts best first: highest accuracy (when scored), then lowest loss; NaN last."""
    loss = scores["loss"] if math.isfinite(scores["loss"]) else math.inf
    return -scores.get("accuracy", 0.0), loss


def ranked_alpha(supernet: SuperNetwork, ranked: Sequence[Architecture]) -> Tensor:
    """``log(SMOOTHING + f)``, ``f`` the op frequencies of each edge among ``ranked`` (best
    first), rank ``r`` counting ``RANK_DECAY ** r``.

    An architecture without an edge counts for that edge's ``none`` op (spread over all ops
    when the space has no ``none``), so every edge sums to the same total and the best
    architecture's edges and ops have the largest non-``none`` softmax weights: the argmax
    rule returns it.
    """
    ops = supernet.space.ops
    counts = torch.full_like(supernet.alpha, SMOOTHING, requires_grad=False)
    absent = torch.zeros(len(ops), dtype=counts.dtype, device=counts.device)
    if NONE_OP in ops:
        absent[ops.index(NONE_OP)] = 1.0
    else:
        absent += 1.0 / len(ops)
    for r, architecture in enumerate(ranked):
        weights = supernet.architecture_weights(architecture)
        missing = weights.sum(-1, keepdim=True) == 0  # (n_cells, n_edges, 1)
        counts += RANK_DECAY**r * torch.where(missing, absent, weights)
    return counts.log()
