"""P-DARTS (Chen et al. 2019): a search in stages that deepen the supernet while each
edge's op set shrinks, with dropout on skip connections and a cap on them at the end."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from tabnas.nas.ops import NONE_OP
from tabnas.nas.space import Architecture, Edge, SearchSpace
from tabnas.nas.strategies.base import SearchStage, SearchStrategy
from tabnas.nas.supernet import NORMALIZERS, SuperNetwork

SKIP_OP = "skip"


class PDARTS(SearchStrategy):
    """Progressive DARTS.

    The search trains ``len(depths)`` supernets one after another, each with fresh weights
    and α, on an equal share of the search's steps and time: stage ``s`` has
    ``depths[s]`` cells, the last the space's own depth. After each stage every edge keeps
    its ``n_kept[s]`` strongest ops other than ``none`` -- strength being the edge's
    softmax weight averaged over the stage's cells, since a P-DARTS cell is shared along
    the depth -- and the next stage offers only those on that edge of every cell; the
    last stage also drops ``none``. Within stage ``s`` the ``skip`` op's output has
    dropout ``skip_dropout[s]``, held for the first 40% of the stage (the official 10
    weight-only epochs of 25) and then decayed as ``exp(-0.2 * epochs)`` with 25 epochs
    per stage, i.e. ``exp(-5 * (fraction - 0.4))``. Finally a selected cell with more
    than ``max_skips`` skip edges has its weakest ones (by their last-stage softmax
    weight) turned into the edge's strongest other op.

    Defaults of the official code (chenxin061/pdarts), adapted: three stages, the op sets
    shrinking in the official proportions (8 -> 5 -> 3 ops: ``ceil(n * 5/8)`` then
    ``ceil(n * 3/8)`` of the space's ``n`` ops other than ``none``); the depths grow
    evenly from 1 cell to the space's depth (5 -> 11 -> 17 cells of the official 20
    bridge a depth gap that a tabnas supernet does not have: it is searched at the depth
    it is retrained at); skip dropout 0.1, 0.4, 0.7 (the README's command); at most one
    skip per cell (the paper's M = 2 of a DARTS cell's 8 ops; a tabnas cell has 4 to 6).
    The architecture optimizer is the DARTS one's (:class:`~tabnas.nas.strategies.DARTS`).
    """

    name = "pdarts"

    def __init__(
        self,
        *,
        depths: Sequence[int] | None = None,
        n_kept: Sequence[int] | None = None,
        skip_dropout: Sequence[float] = (0.1, 0.4, 0.7),
        max_skips: int | None = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depths is not None and (not depths or any(d < 1 for d in depths)):
            raise ValueError(f"depths must be positive cell counts, got {depths!r}")
        if n_kept is not None and any(n < 1 for n in n_kept):
            raise ValueError(f"n_kept must be positive op counts, got {n_kept!r}")
        if any(not 0 <= p < 1 for p in skip_dropout):
            raise ValueError(f"skip_dropout rates must lie in [0, 1), got {skip_dropout!r}")
        if max_skips is not None and max_skips < 0:
            raise ValueError(f"max_skips must be >= 0 or None, got {max_skips!r}")
        self.depths = None if depths is None else tuple(int(d) for d in depths)
        self.n_kept = None if n_kept is None else tuple(int(n) for n in n_kept)
        self.skip_dropout = tuple(float(p) for p in skip_dropout)
        self.max_skips = max_skips
        self._stage = 0
        self._n_stages = 1
        self._kept: Tensor | None = None  # (n_edges, n_ops): left by the last pruning
        self._offered: Tensor | None = None  # (n_edges, n_ops): the bound stage's ops

    def __repr__(self) -> str:
        return (
            f"PDARTS(depths={self.depths!r}, n_kept={self.n_kept!r},"
            f" skip_dropout={self.skip_dropout!r}, max_skips={self.max_skips!r}, lr={self.lr!r})"
        )

    # ---- the stages --------------------------------------------------------------------
    def schedule(self, space: SearchSpace) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The depth of each stage, and the ops other than ``none`` each edge keeps after
        each stage but the last."""
        n_ops = len([op for op in space.ops if op != NONE_OP])
        depths = self.depths or tuple(
            round(1 + (space.n_cells - 1) * s / 2) for s in range(3)
        )
        if depths[-1] != space.n_cells:
            raise ValueError(
                f"the last stage must have the space's {space.n_cells} cells, got depths={depths}"
            )
        n_kept = self.n_kept or tuple(
            max(1, math.ceil(n_ops * f)) for f in (5 / 8, 3 / 8)[: len(depths) - 1]
        )
        if len(n_kept) != len(depths) - 1:
            raise ValueError(
                f"n_kept needs one count per stage but the last ({len(depths) - 1}),"
                f" got n_kept={n_kept}"
            )
        return depths, n_kept

    def stages(self, space: SearchSpace) -> Iterator[SearchStage]:
        depths, n_kept = self.schedule(space)
        self._n_stages, self._kept = len(depths), None
        for stage, depth in enumerate(depths):
            self._stage = stage
            yield SearchStage(dataclasses.replace(space, n_cells=depth), share=1 / len(depths))
            if stage < len(depths) - 1:
                self._kept = self.prune(self._bound()[0], n_kept[stage])

    @staticmethod
    def prune(supernet: SuperNetwork, n_kept: int) -> Tensor:
        """Per edge, the ``n_kept`` strongest ops other than ``none`` by the stage's softmax
        weights averaged over its cells (``none`` stays until the last stage)."""
        ops = supernet.space.ops
        strength = supernet.normalized().detach().mean(dim=0)  # (n_edges, n_ops)
        is_none = torch.tensor([op == NONE_OP for op in ops], device=strength.device)
        strength = strength.masked_fill(is_none, -1.0)  # never among the strongest
        kept = torch.zeros_like(strength, dtype=torch.bool)
        top = strength.topk(min(n_kept, len(ops) - int(is_none.sum())), dim=-1).indices
        kept.scatter_(-1, top, True)
        return kept | is_none

    def bind(self, supernet: SuperNetwork) -> PDARTS:
        super().bind(supernet)
        kept = self._kept
        if self._stage == self._n_stages - 1:  # the last stage drops `none`
            device = supernet.kept.device
            if kept is None:
                kept = torch.ones(supernet.kept.shape[1:], dtype=torch.bool, device=device)
            not_none = torch.tensor([op != NONE_OP for op in supernet.space.ops], device=device)
            kept = kept.to(device) & not_none
        if kept is not None:
            supernet.prune_ops(kept)
        self._offered = kept
        self._set_skip_dropout(self._rate())
        return self

    def _rate(self) -> float:
        """The stage's skip dropout before its decay (the last rate for further stages)."""
        if not self.skip_dropout:
            return 0.0
        return self.skip_dropout[min(self._stage, len(self.skip_dropout) - 1)]

    def _set_skip_dropout(self, rate: float) -> None:
        supernet = self._bound()[0]
        if SKIP_OP in supernet.space.ops:
            supernet.set_op_dropout({SKIP_OP: rate})

    def step_started(self, step: int, max_steps: int) -> None:
        fraction = step / max(max_steps, 1)
        self._set_skip_dropout(self._rate() * math.exp(-5 * max(0.0, fraction - 0.4)))

    # ---- the final cap on skips ----------------------------------------------------------
    def finalize(self, architecture: Architecture) -> Architecture:
        """At most ``max_skips`` skip edges per cell: the weakest extra ones take the edge's
        strongest other op (by the last stage's weights)."""
        supernet = self.supernet
        if self.max_skips is None or supernet is None or architecture.backbone != "cells":
            return architecture
        space = supernet.space
        ops = space.ops
        # the last stage's weights: its own ops only (selection has fixed every edge by
        # now, so the supernet's normalisation no longer masks the pruned ones)
        offered = torch.ones_like(supernet.alpha[0], dtype=torch.bool)
        if self._offered is not None:
            offered = self._offered.to(offered.device)
        alpha = supernet.alpha.detach().masked_fill(~offered, -1e4)
        weights = NORMALIZERS[supernet.normalizer](alpha, dim=-1)
        index = {edge: e for e, edge in enumerate(space.edges)}
        cells = []
        for c, cell in enumerate(architecture.cells):
            skips = [
                (float(weights[c, index[(edge.source, target)], ops.index(SKIP_OP)]), target, i)
                for target, inputs in enumerate(cell, start=1)
                for i, edge in enumerate(inputs)
                if edge.op == SKIP_OP
            ]
            nodes = [list(inputs) for inputs in cell]
            for _, target, i in sorted(skips)[: max(len(skips) - self.max_skips, 0)]:
                edge = nodes[target - 1][i]
                e = index[(edge.source, target)]
                others = [
                    k for k, op in enumerate(ops)
                    if op not in (SKIP_OP, NONE_OP) and bool(offered[e, k])
                ]
                if others:
                    best = max(others, key=lambda k: float(weights[c, e, k]))
                    nodes[target - 1][i] = Edge(source=edge.source, op=ops[best])
            cells.append(tuple(tuple(inputs) for inputs in nodes))
        return dataclasses.replace(architecture, cells=tuple(cells))
