"""DARTS (Liu et al. 2019): first-order and unrolled second-order architecture steps."""

from __future__ import annotations

import torch
from torch import Tensor

from tabnas.nas.strategies.base import BatchLoss, SearchStrategy


class DARTS(SearchStrategy):
    """First-order DARTS: the gradient of the validation loss at the current weights."""

    name = "darts"

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, weight_lr: float, weight_decay: float
    ) -> float:
        alpha = self.supernet.alpha
        val_loss = loss(val_batch, self.mixing_weights())
        (grad,) = torch.autograd.grad(val_loss, [alpha])
        self.optimizer.zero_grad(set_to_none=True)
        alpha.grad = grad
        self.optimizer.step()
        return float(val_loss.detach())


class SecondOrderDARTS(SearchStrategy):
    """Second-order DARTS: differentiate through one virtual weight step.

    With ``w' = w - xi * (grad_w L_train(w, alpha) + wd * w)``, the architecture gradient is
    ``grad_alpha L_val(w', alpha) - xi * H``, where the Hessian-vector product
    ``H = grad^2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)`` is taken by central
    finite differences with ``eps = 0.01 / ||grad_w' L_val||``, as in the DARTS code. ``xi``
    is the current weight learning rate. The virtual step is plain gradient descent with
    weight decay (the weights themselves train with AdamW, whose state is not unrolled).
    """

    name = "darts2"

    def arch_gradient(
        self, loss: BatchLoss, train_batch, val_batch, *, weight_lr: float, weight_decay: float
    ) -> tuple[Tensor, float]:
        """The approximate architecture gradient and the validation loss at ``w'``."""
        supernet, alpha, xi = self.supernet, self.supernet.alpha, weight_lr
        named = [(n, p) for n, p in supernet.named_parameters() if n != "alpha" and p.requires_grad]
        names = [n for n, _ in named]
        weights = [p for _, p in named]

        def at(values: list[Tensor]) -> dict[str, Tensor]:
            return dict(zip(names, values))

        # The virtual step w' = w - xi * (grad_w L_train + wd * w), outside the graph.
        train_grads = torch.autograd.grad(
            loss(train_batch, self.mixing_weights().detach()), weights, allow_unused=True
        )
        virtual = [
            (w - xi * (_or_zero(g, w) + weight_decay * w)).detach().requires_grad_(True)
            for w, g in zip(weights, train_grads)
        ]
        val_loss = loss(val_batch, self.mixing_weights(), at(virtual))
        grads = torch.autograd.grad(val_loss, [alpha, *virtual], allow_unused=True)
        d_alpha = _or_zero(grads[0], alpha)
        d_virtual = [_or_zero(g, v) for g, v in zip(grads[1:], virtual)]
        norm = torch.cat([g.flatten() for g in d_virtual]).norm()
        if float(norm) == 0.0:
            return d_alpha, float(val_loss.detach())
        eps = 0.01 / norm

        def alpha_grad_at(sign: float) -> Tensor:
            shifted = [(w + sign * eps * d).detach() for w, d in zip(weights, d_virtual)]
            (g,) = torch.autograd.grad(
                loss(train_batch, self.mixing_weights(), at(shifted)), [alpha]
            )
            return g

        hessian_vector = (alpha_grad_at(+1.0) - alpha_grad_at(-1.0)) / (2 * eps)
        return d_alpha - xi * hessian_vector, float(val_loss.detach())

    def arch_step(
        self, loss: BatchLoss, train_batch, val_batch, *, weight_lr: float, weight_decay: float
    ) -> float:
        grad, val_loss = self.arch_gradient(
            loss, train_batch, val_batch, weight_lr=weight_lr, weight_decay=weight_decay
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.supernet.alpha.grad = grad
        self.optimizer.step()
        return val_loss


def _or_zero(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad
