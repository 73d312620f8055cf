"""PC-DARTS (Xu et al. 2020): partial channels and edge normalisation.

Only ``1 / k`` of each token's ``d_token`` features go through an edge's mixed op; the
rest bypass it, and a channel shuffle interleaves the two. Each edge also carries a
weight ``beta``; a node sums its incoming edges weighted by the softmax of their ``beta``.
The discrete network retrained afterwards is the ordinary full-width one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tabnas.nas.ops import OpSettings, make_op
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies.base import BatchLoss, SearchStrategy, VirtualStep
from tabnas.nas.supernet import MixedOp, SuperNetwork


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """PC-DARTS's ``channel_shuffle`` over the last dimension: feature ``g * d / groups + j``
    moves to ``j * groups + g``, so the features an op saw are spread across the token."""
    d = x.shape[-1]
    # (..., groups, d // groups) -> (..., d // groups, groups) -> (..., d)
    return x.unflatten(-1, (groups, d // groups)).transpose(-1, -2).flatten(-2)


def partial_settings(settings: OpSettings, k: int) -> OpSettings:
    """The op settings at ``1 / k`` of the width: ``d_token`` and ResNet's hidden width
    divided by ``k`` (the official code builds every op at ``C / k`` channels); attention
    keeps its heads' width, hence ``n_heads // k`` heads (at least one; the largest count up
    to that which divides the new width)."""
    if k < 1 or settings.d_token % k:
        raise ValueError(
            f"d_token must be a multiple of k, got d_token={settings.d_token}, k={k}"
        )
    d_token = settings.d_token // k
    n_heads = max(h for h in range(1, max(settings.n_heads // k, 1) + 1) if d_token % h == 0)
    return dataclasses.replace(
        settings, d_token=d_token, n_heads=n_heads,
        resnet_d_hidden=max(settings.resnet_d_hidden // k, 1),
    )


class PartialMixedOp(MixedOp):
    """A :class:`MixedOp` over the first ``1 / k`` of the features, whose ops are built at
    that width; the other features pass unchanged, then :func:`channel_shuffle` with ``k``
    groups."""

    def __init__(self, ops: nn.ModuleDict, *, k: int):
        super().__init__(ops)
        self.k = k

    def forward(self, x: Tensor, weights: Tensor, active: Sequence[bool]) -> Tensor:
        d_partial = x.shape[-1] // self.k
        mixed = super().forward(x[..., :d_partial], weights, active)  # (batch, n_tokens, d / k)
        # (batch, n_tokens, d_token), the bypassed features after the op's
        return channel_shuffle(torch.cat([mixed, x[..., d_partial:]], dim=-1), self.k)


class PartialChannelSupernet(SuperNetwork):
    """The supernet of PC-DARTS: :class:`PartialMixedOp` edges and edge normalisation.

    ``beta`` (shape ``(n_cells, n_edges)``, an ``nn.Parameter`` next to ``alpha``) weights
    whole edges: each node's input is ``sum_e softmax(beta over the node's incoming
    edges)_e * edge_e(x)``. A node with one incoming edge (node 1) gives it weight 1.
    """

    def __init__(self, *, space: SearchSpace, k: int = 4, **shapes):
        self.k = k  # before the base class builds the mixed ops
        self.partial_settings = partial_settings(space.settings, k)
        super().__init__(space=space, **shapes)
        self.beta = nn.Parameter(1e-3 * torch.randn(space.n_cells, space.n_edges))
        self._node_edges = [
            [e for e, (_, t) in enumerate(space.edges) if t == target]
            for target in range(1, space.n_nodes + 1)
        ]

    def make_mixed_op(self, n_tokens: int) -> nn.Module:
        ops = nn.ModuleDict(
            {op: make_op(op, self.partial_settings, n_tokens) for op in self.space.ops}
        )
        return PartialMixedOp(ops, k=self.k)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def edge_weights(self) -> Tensor:
        """``softmax(beta)`` over the incoming edges of each node, ``(n_cells, n_edges)``."""
        weights = torch.zeros_like(self.beta)
        for edges in self._node_edges:
            weights[:, edges] = torch.softmax(self.beta[:, edges], dim=-1)
        return weights


class PCDARTS(SearchStrategy):
    """PC-DARTS (Xu et al. 2020): DARTS's first-order step on a
    :class:`PartialChannelSupernet`, stepping ``alpha`` and ``beta`` together.

    Only ``1 / k`` of each token's features enter the ops of an edge (``k = 4`` as in the
    official code); ``beta`` normalises the edges into each node, and the argmax rule
    ranks edges by ``softmax(alpha) * softmax(beta)``. The architecture steps start after
    the trainer's ``warmup_steps`` (the official code: from epoch 15 of 50).

    Differences from the official code (``yuhuixu1993/PC-DARTS``): the architecture Adam
    (betas (0.5, 0.999), weight decay 1e-3) runs at lr 1e-2 instead of 6e-4, for the same
    reason as :class:`~tabnas.nas.strategies.DARTS`; the warm-up is the search's own
    (30 of at most 400 weight steps at ``preset="fast"``), not 30 % of a fixed length.
    """

    name = "pcdarts"

    def __init__(self, *, k: int = 4, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive integer, got k={k!r}")
        self.k = k

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k!r}, {super().__repr__().split('(', 1)[1]}"

    def build_supernet(self, space: SearchSpace, **shapes) -> PartialChannelSupernet:
        return PartialChannelSupernet(space=space, k=self.k, **shapes)

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> dict[str, Tensor]:
        """The first-order step of :class:`SearchStrategy` on every architecture parameter
        (``alpha`` and ``beta``; ``alpha`` alone on a plain supernet, as DARTS)."""
        supernet, optimizer = self._bound()
        val_loss = loss(val_batch, self.mixing_weights())
        params = supernet.arch_parameters()
        grads = torch.autograd.grad(val_loss + self.penalty(), params, allow_unused=True)
        optimizer.zero_grad(set_to_none=True)
        for param, grad in zip(params, grads):
            param.grad = grad
        optimizer.step()
        return {"arch_loss": val_loss.detach()}
