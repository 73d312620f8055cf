"""ProxylessNAS (Cai et al. 2019): binarised paths, one op per edge in a weight step, and the
BinaryConnect-style gate gradient of two sampled ops in an α step."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from tabnas.devices import synchronize
from tabnas.nas.ops import NONE_OP
from tabnas.nas.strategies.base import BatchLoss, SearchStrategy, VirtualStep
from tabnas.nas.supernet import MixedOp, SuperNetwork

LATENCY_REPEATS = 5
"""Timed forward calls per op (after one untimed call); the cost is their median."""


class ProxylessNAS(SearchStrategy):
    """ProxylessNAS with the official code's ``two`` gradient mode.

    **Weight step**: per open edge, one op drawn from ``softmax(alpha)``; its mixing weight
    (binary gate) is 1 and the others' 0, so only that op runs (a step costs one path).

    **α step**: per open edge, two distinct ops drawn from ``softmax(alpha)`` without
    replacement; ``p`` is the softmax of their two logits, one of them is drawn from ``p``
    and gated 1, the other 0. Both run (:meth:`SuperNetwork.forced_ops`), which gives the
    gate gradients ``dL/dg_j`` of both, and

        dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)        (i, j over the two)

    is 0 for the ops not drawn. After the optimizer step the two logits are shifted by one
    offset so that their ``logsumexp`` is unchanged: the other ops' probabilities stay as
    they were (the official ``rescale_updated_arch_param``).

    **Latency** (``latency=λ > 0``; the official ``add#linear`` loss): the α step's loss
    gets ``λ (E / E_ref - 1)``, where ``E = sum over open edges of sum_i p_i lat_i`` is the
    expected latency under the drawn pairs' ``p`` (as the official ``two`` mode uses them)
    and ``E_ref`` the same sum at uniform probabilities over all ops (the official code
    divides by a target latency of the device instead). ``lat_i`` is ``op_costs[op]``
    where given, else measured on the running device at the first α step
    (:func:`measure_op_costs`); ``none`` costs 0 (it never runs).

    Defaults of the official code (``search/imagenet_arch_search.py``): the architecture
    Adam with betas (0, 0.999), eps 1e-8 and no weight decay, whose β1 = 0 keeps the ops
    not drawn still, at lr 1e-2 instead of 1e-3 (a few hundred α steps, not ~115,000:
    :class:`~tabnas.nas.strategies.DARTS`); λ as the official ``add#linear``
    0.1 once switched on. The α step follows every weight step (the official code: every
    5th), and the weights' warm-up is the trainer's.
    """

    name = "proxyless"
    smoothable = False
    smoothable_reason = "trains one sampled op per edge at each weight step"

    def __init__(
        self,
        *,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.0, 0.999),
        weight_decay: float = 0.0,
        latency: float = 0.0,
        op_costs: Mapping[str, float] | None = None,
        sparsity: float = 0.0,
        sparsity_p: float = 0.5,
    ):
        super().__init__(
            lr=lr, betas=betas, weight_decay=weight_decay, sparsity=sparsity, sparsity_p=sparsity_p
        )
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0, got latency={latency!r}")
        if op_costs is not None and not all(cost >= 0 for cost in op_costs.values()):
            raise ValueError(f"op_costs must be >= 0, got op_costs={dict(op_costs)!r}")
        self.latency = latency
        self.op_costs = None if op_costs is None else dict(op_costs)
        self.latencies: Tensor | None = None
        """Cost of each op of the space, ``(n_ops,)``: given, measured, or not yet known."""

    def __repr__(self) -> str:
        extra = f", latency={self.latency!r}" if self.latency else ""
        if self.op_costs is not None:
            extra += f", op_costs={self.op_costs!r}"
        return f"{type(self).__name__}(lr={self.lr!r}, betas={self.betas!r}{extra})"

    def bind(self, supernet: SuperNetwork) -> ProxylessNAS:
        super().bind(supernet)
        self.latencies = None
        if self.op_costs is not None:
            ops = supernet.space.ops
            missing = sorted(set(ops) - set(self.op_costs) - {NONE_OP})
            if missing:
                raise ValueError(f"op_costs lacks the ops {missing}; the space has {list(ops)}")
            self.latencies = supernet.alpha.new_tensor(
                [0.0 if op == NONE_OP else float(self.op_costs[op]) for op in ops]
            )
        return self

    # ---- binary gates ------------------------------------------------------------------
    def training_weights(self, loss: BatchLoss, batch) -> Tensor:
        """One-hot gates, one op per edge drawn from ``softmax(alpha)``."""
        probs = self.mixing_weights().detach()
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1)  # (cells * edges, 1)
        return torch.zeros_like(probs).scatter_(-1, drawn.view(*probs.shape[:-1], 1), 1.0)

    def sample_pairs(self) -> tuple[Tensor, Tensor]:
        """Two distinct ops per edge from ``softmax(alpha)`` and which of them is active.

        Returns ``pair`` (``(n_cells, n_edges, 2)``, op indices) and ``active``
        (``(n_cells, n_edges, 1)``, op indices): one of the pair, drawn from the softmax of
        the pair's two logits.
        """
        alpha = self._bound()[0].alpha.detach()
        n_ops = alpha.shape[-1]
        pair = torch.multinomial(alpha.softmax(-1).reshape(-1, n_ops), 2)  # (cells * edges, 2)
        pair = pair.view(*alpha.shape[:-1], 2)
        probs = alpha.gather(-1, pair).softmax(-1)
        chosen = torch.multinomial(probs.reshape(-1, 2), 1).view(*alpha.shape[:-1], 1)
        return pair, pair.gather(-1, chosen)

    # ---- the α step --------------------------------------------------------------------
    def arch_gradient(
        self, loss: BatchLoss, batch, pair: Tensor, active: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The gradient on ``alpha`` for the drawn ``pair`` and ``active`` op of each edge
        (:meth:`sample_pairs`), on ``batch``; and what it measured."""
        supernet = self._bound()[0]
        alpha = supernet.alpha
        open_edges = ~supernet.fixed[..., None]  # (cells, edges, 1)
        gates = torch.zeros_like(alpha).scatter_(-1, active, 1.0).requires_grad_(True)
        involved = torch.zeros_like(alpha, dtype=torch.bool).scatter_(-1, pair, True)
        with supernet.forced_ops(involved & open_edges):
            arch_loss = loss(batch, gates)
        (gate_grad,) = torch.autograd.grad(arch_loss, [gates], allow_unused=True)
        if gate_grad is None:  # no edge ran (every one removed)
            gate_grad = torch.zeros_like(gates)
        probs = alpha.detach().gather(-1, pair).softmax(-1)  # (cells, edges, 2)
        weighted = gate_grad.gather(-1, pair) * probs  # dL/dg_j p_j
        pair_grad = weighted - probs * weighted.sum(-1, keepdim=True)
        grad = torch.zeros_like(alpha).scatter_(-1, pair, pair_grad) * open_edges
        stats = {"arch_loss": arch_loss.detach()}
        if self.latency:
            ratio = self.latency_ratio(pair, batch)
            (latency_grad,) = torch.autograd.grad(
                self.latency * (ratio - 1), [alpha], allow_unused=True
            )
            if latency_grad is not None:  # None when no edge is open
                grad = grad + latency_grad
            stats["latency_ratio"] = ratio.detach()
        return grad, stats

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> dict[str, Tensor]:
        """Draw the pairs, step ``alpha`` on the architecture batch, and restore each pair's
        ``logsumexp``; ``train_batch`` and ``virtual_step`` are unused."""
        supernet = self._bound()[0]
        alpha = supernet.alpha
        pair, active = self.sample_pairs()
        grad, stats = self.arch_gradient(loss, val_batch, pair, active)
        before = alpha.detach().gather(-1, pair).logsumexp(-1, keepdim=True)
        self._apply(grad)
        with torch.no_grad():
            after = alpha.gather(-1, pair)
            offset = after.logsumexp(-1, keepdim=True) - before  # (cells, edges, 1)
            alpha.scatter_(-1, pair, after - offset * ~supernet.fixed[..., None])
        return stats

    # ---- latency -----------------------------------------------------------------------
    def latency_ratio(self, pair: Tensor, batch) -> Tensor:
        """``E / E_ref`` of the class docstring: differentiable in ``alpha``, 0 when no edge
        is open."""
        supernet = self._bound()[0]
        if self.latencies is None:
            self.latencies = measure_op_costs(supernet, len(batch))
        probs = supernet.alpha.gather(-1, pair).softmax(-1)  # (cells, edges, 2)
        open_edges = ~supernet.fixed
        expected = (probs * self.latencies[pair]).sum(-1)[open_edges].sum()
        reference = self.latencies.mean() * open_edges.sum()
        return expected / reference.clamp_min(1e-12)


@torch.no_grad()
def measure_op_costs(supernet: SuperNetwork, batch_size: int) -> Tensor:
    """Seconds per inference call of each op of the space (``(n_ops,)``): a copy of the
    first edge's ops in eval mode and full precision, on the supernet's device, on a random
    ``(batch_size, n_tokens, d_token)`` token tensor drawn from its own generator (the
    supernet and the global random state are left alone); ``none`` costs 0."""
    alpha = supernet.alpha
    first_edge = cast(MixedOp, cast(nn.ModuleList, supernet.cells[0])[0])
    ops = copy.deepcopy(first_edge.ops).eval()
    shape = (max(batch_size, 2), supernet.tokenizer.n_tokens, supernet.space.settings.d_token)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(shape, generator=generator).to(alpha)  # (batch, n_tokens, d_token)
    costs = []
    for name, op in ops.items():
        if name == NONE_OP:
            costs.append(0.0)
            continue
        op(tokens)  # untimed: lazy initialisation, caches
        times = []
        for _ in range(LATENCY_REPEATS):
            synchronize(alpha.device)
            started = time.perf_counter()
            op(tokens)
            synchronize(alpha.device)
            times.append(time.perf_counter() - started)
        costs.append(statistics.median(times))
    return alpha.new_tensor(costs)
