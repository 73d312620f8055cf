"""Zero-cost proxies: scores of a network at initialisation, from one batch, without training.

Each proxy maps ``(model, batch, loss)`` to a float, higher meaning "predicted to train
better". ``batch`` is anything with ``x_num``, ``x_cat`` and ``y`` tensors (a
:class:`tabnas.training.data.TensorData` is one); ``loss(output, y)`` is the training loss
(:meth:`tabnas.training.loop.Task.loss`). A proxy works on a deep copy of the model, as the
official code does (``copy_net=True``): the model's weights, buffers, gradients, dtype and
mode are left exactly as they were. The copy runs with dropout off and BatchNorm
normalising with the batch's statistics (a fresh network's running ones are 0 and 1).

- ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training"): the
  binary activation pattern ``c_i`` of each row over the network's ReLU units; the
  kernel ``K[i, j] = N_A - hamming(c_i, c_j)`` (:func:`hamming_kernel`); the score is
  ``log |det K|``. The units are the inputs of every ``nn.ReLU`` / ``nn.GELU`` (the
  readout's, the ResNet block's, TabM's) and the gate half of the feed-forward block's
  ReGLU (``a * relu(b)``: the sign of ``b``); a network with none of these is coded by
  the sign of every ``nn.Linear``'s output (the pre-activation of whatever follows). A
  singular ``K`` (its rank, by SVD, below the batch's rows: the patterns cannot tell
  the rows apart) scores ``-inf``; so does every network with fewer units than the batch
  has rows less one (``rank K <= N_A + 1``): at the ``fast`` preset and 64 rows, one
  whose only ReLUs are the readout's 32.
- ``synflow`` (Tanaka et al. 2020, as in Abdelfattah et al. 2021): in float64, with every
  parameter replaced by its absolute value and the normalisation layers (BatchNorm,
  LayerNorm) skipped, ``R`` is the sum of the outputs for one all-ones row (categorical
  features take their first category); the score is ``sum |θ ⊙ ∂R/∂θ|``. It never reads
  the batch's values: only its shape.
- ``grad_norm``: ``sum ||∂L/∂θ||``, one Frobenius norm per weight.
- ``snip`` (Lee et al. 2019): ``sum |θ ⊙ ∂L/∂θ|`` (the official code's ``|∂L/∂mask|`` at
  mask 1 is the same number).

``θ`` runs over the weights of the linear maps, the official code's ``Conv2d`` and
``Linear`` weights carried over to tabular networks: every parameter named ``weight``
with at least two dimensions (``nn.Linear``, the embeddings' per-feature maps and
tables, TabM's ensemble layers); not biases, normalisation scales or TabM's adapters.

Differences from the official code (SamsungLabs/zero-cost-nas ``foresight/pruners/
measures/``; BayesWatch/nas-without-training): synflow skips LayerNorm as the official
code skips BatchNorm (``bn=False``: a normalisation subtracts a mean and divides by a
spread, so the "linearised" network would no longer be a sum over positive paths); the
absolute values are taken of the parameters only, not of buffers such as the
piecewise-linear embedding's bin edges; dropout is off in every proxy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import Tensor, nn

from tabnas.nas.ops import _ReGLU

Loss = Callable[[Tensor, Tensor], Tensor]
"""``loss(output, y)``: the scalar training loss of a batch."""


class Batch(Protocol):
    """Rows to score on: what :class:`tabnas.training.data.TensorData` holds."""

    @property
    def x_num(self) -> Tensor: ...  # (batch, n_num) float

    @property
    def x_cat(self) -> Tensor: ...  # (batch, n_cat) int64

    @property
    def y(self) -> Tensor: ...  # (batch,)


Proxy = Callable[[nn.Module, Batch, Loss], float]

_NORMALIZATIONS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)
_RELU_UNITS = (nn.ReLU, nn.GELU, _ReGLU)


def _scoring_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode (no dropout) whose BatchNorm layers use batch statistics."""
    net = copy.deepcopy(model)
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    net.zero_grad(set_to_none=True)
    return net


def _weights(net: nn.Module) -> Iterator[nn.Parameter]:
    """The weights of the linear maps: parameters named ``weight`` with >= 2 dimensions."""
    for name, parameter in net.named_parameters():
        if name.rsplit(".", 1)[-1] == "weight" and parameter.ndim >= 2:
            yield parameter


def _loss_gradients(model: nn.Module, batch: Batch, loss: Loss) -> nn.Module:
    """A scoring copy of ``model`` whose weights hold ``∂ loss / ∂ weight`` on ``batch``."""
    net = _scoring_copy(model)
    loss(net(batch.x_num, batch.x_cat), batch.y).backward()
    return net


def hamming_kernel(codes: Tensor) -> Tensor:
    """``K[i, j] = n_units - hamming(codes[i], codes[j])`` for binary ``codes`` of shape
    ``(batch, n_units)``: the number of units on which rows ``i`` and ``j`` agree."""
    codes = codes.double()
    return codes @ codes.T + (1 - codes) @ (1 - codes).T  # (batch, batch)


def naswot(model: nn.Module, batch: Batch, loss: Loss | None = None) -> float:
    """``log |det K_H|`` of the activation patterns of ``batch`` (Mellor et al. 2021)."""
    net = _scoring_copy(model)
    units: tuple[type[nn.Module], ...] = _RELU_UNITS
    if not any(isinstance(m, units) for m in net.modules()):
        units = (nn.Linear,)
    codes: list[Tensor] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if isinstance(module, _ReGLU):
            pre = inputs[0].chunk(2, dim=-1)[1]  # the gate b of a * relu(b)
        elif isinstance(module, nn.Linear):
            pre = output
        else:
            pre = inputs[0]
        codes.append((pre > 0).flatten(1))  # (batch, units of this layer)

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, units)]
    with torch.no_grad():
        net(batch.x_num, batch.x_cat)
    for hook in hooks:
        hook.remove()
    if not codes:
        raise ValueError("naswot found no unit to code: the network has no ReLU and no Linear")
    kernel = hamming_kernel(torch.cat(codes, dim=1))
    if int(torch.linalg.matrix_rank(kernel)) < len(kernel):
        return -math.inf  # det K = 0, which a rounded determinant would not say
    return float(torch.linalg.slogdet(kernel).logabsdet)


def synflow(model: nn.Module, batch: Batch, loss: Loss | None = None) -> float:
    """``sum |θ ⊙ ∂R/∂θ|`` of the positive, normalisation-free network in float64, where
    ``R`` sums its outputs for one all-ones row; data-independent."""
    net = _scoring_copy(model)
    for name, module in list(net.named_modules()):
        if isinstance(module, _NORMALIZATIONS):
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, nn.Identity())
    net.double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.abs_()
    x_num = torch.ones((1, batch.x_num.shape[1]), dtype=torch.float64, device=batch.x_num.device)
    x_cat = torch.zeros((1, batch.x_cat.shape[1]), dtype=torch.long, device=batch.x_cat.device)
    net(x_num, x_cat).sum().backward()
    return _sum(w.grad.mul(w).abs().sum() for w in _weights(net) if w.grad is not None)


def grad_norm(model: nn.Module, batch: Batch, loss: Loss) -> float:
    """``sum ||∂L/∂θ||`` over the weights, on one batch."""
    net = _loss_gradients(model, batch, loss)
    return _sum(w.grad.norm() for w in _weights(net) if w.grad is not None)


def snip(model: nn.Module, batch: Batch, loss: Loss) -> float:
    """``sum |θ ⊙ ∂L/∂θ|`` over the weights, on one batch (Lee et al. 2019)."""
    net = _loss_gradients(model, batch, loss)
    return _sum(w.grad.mul(w).abs().sum() for w in _weights(net) if w.grad is not None)


def _sum(terms: Iterator[Tensor]) -> float:
    return math.fsum(float(t.detach()) for t in terms)


PROXIES: dict[str, Proxy] = {
    "naswot": naswot,
    "synflow": synflow,
    "grad_norm": grad_norm,
    "snip": snip,
}
"""Every zero-cost proxy by name."""


def score(name: str, model: nn.Module, batch: Batch, loss: Loss) -> float:
    """The proxy ``name`` of ``model`` on ``batch``."""
    try:
        proxy = PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; available: {sorted(PROXIES)}") from None
    return proxy(model, batch, loss)
