"""The supernet: every edge of every cell carries a mixture of all candidate operations."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import cast

import entmax
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tabnas.nas.network import TokenNetwork
from tabnas.nas.ops import NONE_OP, make_op
from tabnas.nas.space import Architecture, Edge, SearchSpace


def _softmax(alpha: Tensor, dim: int = -1) -> Tensor:
    return torch.softmax(alpha, dim=dim)


NORMALIZERS: dict[str, Callable[..., Tensor]] = {
    "softmax": _softmax,
    "sparsemax": entmax.sparsemax,  # exact zeros: MixedOp then skips those ops
    "entmax15": entmax.entmax15,
}
"""How architecture logits become mixing weights (over the last dimension)."""


class MixedOp(nn.Module):
    """The weighted sum of the candidate operations of one edge.

    Ops whose weight is exactly zero are not run at all, so a masked op (PT's scoring),
    a fixed edge or a one-path strategy costs only the ops it really uses.
    """

    def __init__(self, ops: nn.ModuleDict):
        super().__init__()
        self.ops = ops
        self.dropout: dict[str, float] = {}
        """Dropout on the output of the named ops, in training only (P-DARTS's on ``skip``)."""

    def forward(self, x: Tensor, weights: Tensor, active: Sequence[bool]) -> Tensor:
        """``weights``: ``(n_ops,)``; ``active[k]`` False skips op ``k`` (its weight is 0)."""
        out = None
        for k, (name, op) in enumerate(self.ops.items()):
            if not active[k] or name == NONE_OP:
                continue
            y = op(x)
            if self.training and self.dropout.get(name):
                y = F.dropout(y, self.dropout[name])
            term = weights[k] * y
            out = term if out is None else out + term
        return torch.zeros_like(x) if out is None else out


class SuperNetwork(TokenNetwork):
    """All architectures of a :class:`SearchSpace` at once.

    The architecture logits ``alpha`` (shape ``(n_cells, n_edges, n_ops)``) are an
    ``nn.Parameter``, so they live in ``state_dict`` and move with the module; the rest are
    the weights. Selection fixes edges through :meth:`fix_edge` / :meth:`remove_edge`; a
    fixed edge uses its one-hot choice whatever the weights passed in.
    """

    fixed: Tensor  # buffers, registered in __init__
    kept: Tensor

    def __init__(
        self,
        *,
        space: SearchSpace,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_out: int,
        bins: Sequence[Tensor] | None = None,
    ):
        super().__init__(
            n_num_features=n_num_features,
            cat_cardinalities=cat_cardinalities,
            d_token=space.settings.d_token,
            d_out=d_out,
            num_embedding=space.search_embedding,
            bins=bins,
            feature_scale=space.feature_scale,
        )
        self.space = space
        n_tokens = self.tokenizer.n_tokens
        self.cells = nn.ModuleList(
            nn.ModuleList(self.make_mixed_op(n_tokens) for _ in space.edges)
            for _ in range(space.n_cells)
        )
        shape = (space.n_cells, space.n_edges, len(space.ops))
        self.alpha = nn.Parameter(1e-3 * torch.randn(shape))
        self.register_buffer("fixed", torch.zeros(shape[:2], dtype=torch.bool))
        self.register_buffer("kept", torch.ones(shape, dtype=torch.bool))
        self._active: list[list[list[bool]]] | None = None
        self._pruned = False  # whether some open edge lost ops (prune_ops)
        self._forced: Tensor | None = None

    def make_mixed_op(self, n_tokens: int) -> nn.Module:
        """The mixture of one edge: every op of the space at full width. Called once per
        edge by ``__init__``; a variant supernet overrides it (PC-DARTS's partial channels)."""
        ops = {op: make_op(op, self.space.settings, n_tokens) for op in self.space.ops}
        return MixedOp(nn.ModuleDict(ops))

    # ---- parameters -------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # ---- mixing weights ---------------------------------------------------------------
    def project(self, weights: Tensor) -> Tensor:
        """Replace the weights of fixed edges by their one-hot choice (or zeros if removed)."""
        return torch.where(self.fixed[..., None], self.kept.to(weights.dtype), weights)

    normalizer = "softmax"
    """The :data:`NORMALIZERS` entry of :meth:`default_weights`; set by the strategy."""

    def normalized(self, alpha: Tensor | None = None) -> Tensor:
        """``alpha`` (default: the supernet's) normalised over the ops each edge still has
        (softmax unless the strategy chose another): ops pruned from an open edge
        (:meth:`prune_ops`) get weight 0."""
        alpha = self.alpha if alpha is None else alpha
        if not self._pruned:
            return NORMALIZERS[self.normalizer](alpha, dim=-1)
        pruned = ~self.kept & ~self.fixed[..., None]
        # a large finite logit, not -inf: sparsemax and entmax sort and sum the logits
        return NORMALIZERS[self.normalizer](alpha.masked_fill(pruned, -1e4), dim=-1)

    def default_weights(self) -> Tensor:
        """``alpha`` normalised (:meth:`normalized`) with the fixed edges applied: the
        current supernet."""
        return self.project(self.normalized())

    def edge_weights(self) -> Tensor | None:
        """Factors on whole edges, ``(n_cells, n_edges)``, that the forward pass multiplies
        each edge's output by and the argmax rule multiplies each edge's strength by
        (PC-DARTS's edge normalisation); ``None``: every edge counts fully."""
        return None

    # ---- selection state --------------------------------------------------------------
    def prune_ops(self, kept: Tensor) -> None:
        """Leave each open edge only the ops where ``kept`` (``(n_edges, n_ops)``, the same
        for every cell, or ``(n_cells, n_edges, n_ops)``) is True: the others neither run
        nor count in :meth:`normalized` (P-DARTS's shrinking op sets)."""
        kept = kept.to(self.kept.device, torch.bool).expand_as(self.kept)
        if not bool(kept.any(-1).all()):
            raise ValueError("prune_ops must leave every edge at least one op")
        self.kept.copy_(torch.where(self.fixed[..., None], self.kept, kept))
        self._pruned = not bool(self.kept[~self.fixed].all())
        self._active = None

    def set_op_dropout(self, rates: dict[str, float]) -> None:
        """Dropout at ``rates[op]`` on the output of each named op, in training only."""
        for cell in self.cells:
            for mixed in cast(nn.ModuleList, cell):
                cast(MixedOp, mixed).dropout = dict(rates)

    def op_kept(self, cell: int, edge: int, op: int) -> bool:
        """Whether op index ``op`` is still a candidate of the edge."""
        return bool(self.kept[cell, edge, op])

    def fix_edge(self, cell: int, edge: int, op: str) -> None:
        """Make edge ``edge`` of ``cell`` use only ``op`` from now on."""
        k = self.space.ops.index(op)
        self.kept[cell, edge] = False
        self.kept[cell, edge, k] = True
        self.fixed[cell, edge] = True
        self._active = None

    def remove_edge(self, cell: int, edge: int) -> None:
        """Delete edge ``edge`` of ``cell`` (its weights become zero for good)."""
        self.kept[cell, edge] = False
        self.fixed[cell, edge] = True
        self._active = None

    @contextlib.contextmanager
    def trial_decisions(self) -> Iterator[None]:
        """Edges fixed or removed inside the block are open again after it."""
        fixed, kept = self.fixed.clone(), self.kept.clone()
        try:
            yield
        finally:
            self.fixed.copy_(fixed)
            self.kept.copy_(kept)
            self._active = None

    @contextlib.contextmanager
    def forced_ops(self, mask: Tensor) -> Iterator[None]:
        """Inside the block, the ops where ``mask`` (bool, ``(n_cells, n_edges, n_ops)``) is
        True run even where their mixing weight is exactly 0, so the gradient with respect
        to that weight exists (ProxylessNAS's unchosen gate). Ops a fixed edge did not keep,
        and ``none``, still never run."""
        if mask.shape != self.alpha.shape:
            raise ValueError(
                f"mask must have shape {tuple(self.alpha.shape)}, got {tuple(mask.shape)}"
            )
        self._forced = mask.bool()
        try:
            yield
        finally:
            self._forced = None

    def is_fixed(self, cell: int, edge: int) -> bool:
        return bool(self.fixed[cell, edge])

    def chosen_op(self, cell: int, edge: int) -> str | None:
        """The op a fixed edge kept, or None for a removed or undecided edge."""
        if not self.is_fixed(cell, edge) or not bool(self.kept[cell, edge].any()):
            return None
        return self.space.ops[int(self.kept[cell, edge].int().argmax())]

    def _active_ops(self) -> list[list[list[bool]]]:
        if self._active is None:
            self._active = self.kept.tolist()
        return self._active

    def to_architecture(self) -> Architecture:
        """The architecture of a supernet whose edges are all fixed."""
        if not bool(self.fixed.all()):
            raise RuntimeError("to_architecture needs every edge fixed or removed")
        cells = []
        for c in range(self.space.n_cells):
            nodes: list[list[Edge]] = [[] for _ in range(self.space.n_nodes)]
            for e, (source, target) in enumerate(self.space.edges):
                op = self.chosen_op(c, e)
                if op is not None:
                    nodes[target - 1].append(Edge(source=source, op=op))
            cells.append(tuple(tuple(inputs) for inputs in nodes))
        return Architecture(
            cells=tuple(cells), settings=self.space.settings,
            num_embedding=self.space.search_embedding, feature_scale=self.space.feature_scale,
        )

    def architecture_weights(self, architecture: Architecture) -> Tensor:
        """The mixing weights under which the supernet computes exactly ``architecture``, a
        ``cells`` point of its space: one-hot on the edges it has, zero rows elsewhere
        (shape ``(n_cells, n_edges, n_ops)``, on ``alpha``'s device, no gradient)."""
        space = self.space
        if architecture.backbone != "cells" or not space.contains(architecture):
            raise ValueError(
                "architecture_weights needs a 'cells' architecture of this supernet's space"
                f" (n_cells={space.n_cells}, n_nodes={space.n_nodes}, node_inputs="
                f"{space.node_inputs}, ops={space.ops}), got {architecture.to_dict()['cells']}"
            )
        index = {edge: e for e, edge in enumerate(space.edges)}
        weights = [[[0.0] * len(space.ops) for _ in space.edges] for _ in range(space.n_cells)]
        for c, cell in enumerate(architecture.cells):
            for target, inputs in enumerate(cell, start=1):
                for edge in inputs:
                    weights[c][index[edge.source, target]][space.ops.index(edge.op)] = 1.0
        return torch.tensor(weights, dtype=self.alpha.dtype, device=self.alpha.device)

    # ---- forward: TokenNetwork.forward(x_num, x_cat, weights=...) -------------------------
    def body(self, tokens: Tensor, weights: Tensor | None = None) -> Tensor:
        """``weights`` (``(n_cells, n_edges, n_ops)``) default to :meth:`default_weights`.

        Weights passed in are used as given, so selection can perturb fixed edges too;
        training passes ``project(strategy weights)``.
        """
        if weights is None:
            weights = self.default_weights()
        kept = self._active_ops()
        run = weights != 0 if self._forced is None else (weights != 0) | self._forced
        nonzero = run.tolist()  # one host sync per forward, not one per op
        active = [
            [
                [k and n for k, n in zip(kept_e, nonzero_e)]
                for kept_e, nonzero_e in zip(kept_c, nonzero_c)
            ]
            for kept_c, nonzero_c in zip(kept, nonzero)
        ]
        edge_weights = self.edge_weights()
        for c, cell in enumerate(self.cells):
            states = [tokens]
            for target in range(1, self.space.n_nodes + 1):
                node = None
                for e, (source, edge_target) in enumerate(self.space.edges):
                    if edge_target != target or not any(active[c][e]):
                        continue
                    out = cast(nn.ModuleList, cell)[e](states[source], weights[c, e], active[c][e])
                    if edge_weights is not None:
                        out = edge_weights[c, e] * out
                    node = out if node is None else node + out
                states.append(torch.zeros_like(tokens) if node is None else node)
            tokens = states[-1]
        return tokens
