"""DARTS (Liu et al. 2019), first and second order, and PT-DARTS's fixed-α supernet."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from tabnas.nas.strategies.base import BatchLoss, SearchStrategy, VirtualStep


class DARTS(SearchStrategy):
    """First-order DARTS: the gradient of the architecture-half loss at the current weights.

    The architecture optimizer is DARTS's Adam (betas (0.5, 0.999), weight decay 1e-3),
    at a learning rate of 1e-2 instead of 3e-4: a tabular search makes a few hundred
    architecture steps, not DARTS's ~20,000, and at 3e-4 α would not leave its
    initialisation (docs/algorithms.md gives the measured movement).
    """

    name = "darts"


class FixedAlpha(SearchStrategy):
    """α frozen at uniform: the weights train on every path equally and PT does all the
    choosing (darts-pt's ``blank`` mode; Wang et al. 2021, Table 4)."""

    name = "fixed-alpha"
    updates_alpha = False

    def bind(self, supernet):
        super().bind(supernet)
        with torch.no_grad():
            supernet.alpha.zero_()  # softmax(0) is uniform
        return self

    def arch_step(self, loss, train_batch, val_batch, *, virtual_step):
        return {}


class SecondOrderDARTS(SearchStrategy):
    """Second-order DARTS: differentiate the architecture loss through one virtual weight step.

    With ``w' = step(w, grad_w L_train(w, alpha))`` -- the step the weight optimizer would
    really take, whose derivative with respect to the gradient is ``-xi`` (elementwise;
    for AdamW, its per-coordinate step size) -- the architecture gradient is

        grad_alpha L_val(w', alpha)
            - grad_alpha < grad_w L_train(w, alpha), xi * grad_w' L_val(w', alpha) >.

    The second term is an exact Hessian-vector product by double backward through the
    same forward pass that gave ``grad_w L_train`` (so dropout masks are the same), not
    DARTS's finite difference.
    """

    name = "darts2"

    def arch_gradient(
        self, loss: BatchLoss, train_batch, val_batch, *, virtual_step: VirtualStep
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The architecture gradient and what it measured (losses, size of the correction)."""
        supernet, _ = self._bound()
        alpha = supernet.alpha
        named = [(n, p) for n, p in supernet.named_parameters() if n != "alpha" and p.requires_grad]
        names = [n for n, _ in named]
        weights = [p for _, p in named]

        # the fused attention kernels have no double backward: the HVP below needs one
        with sdpa_kernel(SDPBackend.MATH):
            train_loss = loss(train_batch, self.mixing_weights())
        train_grads = [
            _or_zero(g, w)
            for g, w in zip(
                torch.autograd.grad(train_loss, weights, create_graph=True, allow_unused=True),
                weights,
            )
        ]
        stepped, xi = virtual_step({n: g.detach() for n, g in zip(names, train_grads)})
        virtual = [stepped[n].detach().requires_grad_(True) for n in names]
        val_loss = loss(val_batch, self.mixing_weights(), dict(zip(names, virtual)))
        grads = torch.autograd.grad(val_loss, [alpha, *virtual], allow_unused=True)
        d_alpha = _or_zero(grads[0], alpha)
        product = cast(Tensor, sum(
            (g * (xi[n] * _or_zero(d, v)).detach()).sum()
            for n, g, d, v in zip(names, train_grads, grads[1:], virtual)
        ))
        (hessian_vector,) = torch.autograd.grad(product, [alpha], allow_unused=True)
        hessian_vector = _or_zero(hessian_vector, alpha)
        first = d_alpha.norm().detach()
        stats = {
            "arch_loss": val_loss.detach(),
            "second_order_ratio": torch.where(
                first > 0,
                hessian_vector.norm().detach() / first.clamp_min(1e-30),
                torch.zeros_like(first),
            ),
        }
        return d_alpha - hessian_vector, stats

    def arch_step(self, loss, train_batch, val_batch, *, virtual_step):
        grad, stats = self.arch_gradient(loss, train_batch, val_batch, virtual_step=virtual_step)
        self._apply(grad)
        return stats


def sgd_virtual_step(
    params: dict[str, Tensor], *, lr: float, weight_decay: float = 0.0
) -> VirtualStep:
    """DARTS's virtual step ``w - lr * (g + weight_decay * w)``, for plain-SGD weights."""

    def step(grads: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        stepped = {n: (w - lr * (grads[n] + weight_decay * w)).detach() for n, w in params.items()}
        xi = {n: torch.full((), lr, dtype=w.dtype, device=w.device) for n, w in params.items()}
        return stepped, xi

    return step


def _or_zero(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad
