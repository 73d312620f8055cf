"""Search strategies: the registry contract, fixed alpha, and DARTS's second-order gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from tabnas.nas.ops import OpSettings
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import (
    DARTS,
    STRATEGY_REGISTRY,
    SecondOrderDARTS,
    make_strategy,
    sgd_virtual_step,
)
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.data import TensorData


def tiny_supernet():
    settings = OpSettings(d_token=4, n_heads=1, attention_dropout=0.0, ffn_dropout=0.0)
    space = SearchSpace(
        n_cells=1, n_nodes=2, ops=("linear", "ffn", "skip", "none"), settings=settings
    )
    torch.manual_seed(0)
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1).double()
    with torch.no_grad():
        net.alpha.normal_(0, 0.5)
    return net


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    return TensorData(x, torch.zeros(n, 0, dtype=torch.long), y)


def make_loss(net):
    def loss(batch, weights, params=None):
        args = (batch.x_num, batch.x_cat)
        if params is None:
            out = net(*args, weights=weights)
        else:
            out = functional_call(net, params, args, {"weights": weights})
        return F.mse_loss(out.squeeze(-1), batch.y)

    return loss


def virtual_sgd(net, lr, weight_decay=0.0):
    params = {n: p for n, p in net.named_parameters() if n != "alpha"}
    return sgd_virtual_step(params, lr=lr, weight_decay=weight_decay)


def test_unknown_strategy_lists_the_available_ones():
    with pytest.raises(ValueError, match="available"):
        make_strategy("enas")


def test_a_configured_instance_is_copied_and_keeps_its_settings():
    configured = DARTS(lr=0.05)
    made = make_strategy(configured).bind(tiny_supernet())
    assert made is not configured and configured.supernet is None
    assert made.optimizer.param_groups[0]["lr"] == 0.05
    assert repr(configured).startswith("DARTS(lr=0.05")
    with pytest.raises(ValueError, match="lr"):
        DARTS(lr=0)


@pytest.mark.parametrize("name", sorted(STRATEGY_REGISTRY))
def test_every_strategy_moves_only_alpha(name):
    net = tiny_supernet()
    strategy = make_strategy(name).bind(net)
    weights_before = [p.detach().clone() for p in net.weight_parameters()]
    alpha_before = net.alpha.detach().clone()
    stats = strategy.arch_step(
        make_loss(net), data(16, 1), data(16, 2), virtual_step=virtual_sgd(net, 0.01)
    )
    if strategy.updates_alpha:
        assert stats["arch_loss"] > 0
        assert not torch.equal(net.alpha, alpha_before)
    else:  # fixed-alpha: uniform mixing weights, never moved
        assert stats == {}
        assert torch.equal(net.alpha, torch.zeros_like(net.alpha))
        assert torch.allclose(
            strategy.mixing_weights(), torch.full_like(net.alpha, 0.25, dtype=torch.float64)
        )
    for before, after in zip(weights_before, net.weight_parameters()):
        assert torch.equal(before, after)
    assert strategy.mixing_weights().shape == net.alpha.shape


def test_second_order_gradient_matches_exact_autograd():
    net = tiny_supernet()
    loss = make_loss(net)
    train, val = data(32, 1), data(32, 2)
    xi, wd = 0.5, 1e-3
    strategy = SecondOrderDARTS().bind(net)
    approx, stats = strategy.arch_gradient(loss, train, val, virtual_step=virtual_sgd(net, xi, wd))

    # Exact: differentiate L_val(w - xi * (grad_w L_train(w, alpha) + wd * w), alpha).
    named = [(n, p) for n, p in net.named_parameters() if n != "alpha"]
    names, weights = [n for n, _ in named], [p for _, p in named]
    mixing = torch.softmax(net.alpha, dim=-1)
    grads = torch.autograd.grad(loss(train, mixing), weights, create_graph=True, allow_unused=True)
    virtual = [
        w - xi * ((g if g is not None else torch.zeros_like(w)) + wd * w)
        for w, g in zip(weights, grads)
    ]
    val_loss = loss(val, torch.softmax(net.alpha, dim=-1), dict(zip(names, virtual)))
    (exact,) = torch.autograd.grad(val_loss, [net.alpha])

    (first_order,) = torch.autograd.grad(
        loss(
            val, torch.softmax(net.alpha, dim=-1), dict(zip(names, [v.detach() for v in virtual]))
        ),
        [net.alpha],
    )
    # The second-order term matters here, so matching it is a real check.
    assert (exact - first_order).norm() > 0.05 * exact.norm()
    # The Hessian-vector product is exact (double backward), not a finite difference.
    error = (approx - exact).norm() / exact.norm()
    assert error < 1e-9, error
    assert stats["second_order_ratio"] > 0.05
