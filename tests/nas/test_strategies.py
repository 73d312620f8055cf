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


def test_second_order_step_runs_through_fused_attention_kernels():
    # without dropout, attention takes torch's fused kernel (flash on the CPU, cuDNN or
    # flash on CUDA), which has no double backward: the Hessian-vector pass must avoid it
    settings = OpSettings(d_token=8, n_heads=2, attention_dropout=0.0, ffn_dropout=0.0)
    space = SearchSpace(n_cells=1, n_nodes=1, ops=("attention", "skip", "none"), settings=settings)
    torch.manual_seed(0)
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1)
    batch = data(16, 1)
    train = TensorData(batch.x_num.float(), batch.x_cat, batch.y.float())
    alpha_before = net.alpha.detach().clone()
    stats = SecondOrderDARTS().bind(net).arch_step(
        make_loss(net), train, train, virtual_step=virtual_sgd(net, 0.01)
    )
    assert stats["second_order_ratio"] > 0 and not torch.equal(net.alpha, alpha_before)


def count_forward_calls(net):
    """Forward calls per (edge, op) of the supernet's mixed ops."""
    calls = {}
    for e, mixed in enumerate(net.cells[0]):
        for name, op in mixed.ops.items():
            calls[e, name] = 0

            def hook(module, args, output, key=(e, name)):
                calls[key] += 1

            op.register_forward_hook(hook)
    return calls


def test_gdas_runs_only_the_sampled_op_of_each_edge_and_still_moves_every_alpha():
    from tabnas.nas.strategies import GDAS

    net = tiny_supernet()
    strategy = make_strategy("gdas").bind(net)
    calls = count_forward_calls(net)
    weights = strategy.mixing_weights()
    assert torch.equal((weights != 0).sum(-1), torch.ones(weights.shape[:-1], dtype=torch.long))
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=weights.dtype))
    loss = make_loss(net)(data(16, 0), weights)
    sampled = {(e, net.space.ops[int(k)]) for e, k in enumerate(weights[0].argmax(-1))}
    for key, n in calls.items():
        expected = 1 if key in sampled and key[1] != "none" else 0
        assert n == expected, (key, n)
    loss.backward()
    assert net.alpha.grad is not None
    for e, op in sampled:  # beyond the sampled op, through the softmax of its edge
        assert op == "none" or (net.alpha.grad[0, e] != 0).sum() >= 2
    assert isinstance(GDAS(tau=(5.0, 0.5)), GDAS)


@pytest.mark.parametrize("name, tau", [("gdas", (10.0, 0.1)), ("snas", (1.0, 0.03))])
def test_sampling_strategies_anneal_their_temperature_linearly(name, tau):
    strategy = make_strategy(name)
    assert strategy.tau == tau
    strategy.step_started(0, 101)
    assert strategy.temperature == pytest.approx(tau[0])
    strategy.step_started(50, 101)
    assert strategy.temperature == pytest.approx((tau[0] + tau[1]) / 2)
    strategy.step_started(100, 101)
    assert strategy.temperature == pytest.approx(tau[1])
    with pytest.raises(ValueError, match="two positive temperatures"):
        type(strategy)(tau=(1.0, 0.0))


def test_snas_weights_are_relaxed_samples_and_alpha_learns_from_the_training_batch():
    net = tiny_supernet()
    strategy = make_strategy("snas").bind(net)
    strategy.step_started(0, 10)
    first, second = strategy.mixing_weights(), strategy.mixing_weights()
    assert (first > 0).all() and not torch.equal(first, second)  # soft, and resampled
    assert torch.allclose(first.sum(-1), torch.ones(first.shape[:-1], dtype=first.dtype))
    seen = []

    def loss(batch, weights, params=None):
        seen.append(batch)
        return make_loss(net)(batch, weights, params)

    train, val = data(16, 1), data(16, 2)
    alpha = net.alpha.detach().clone()
    strategy.arch_step(loss, train, val, virtual_step=virtual_sgd(net, 0.1))
    assert seen == [train]  # single-level: the weights' own batch, never the arch half's
    assert not torch.equal(net.alpha, alpha)


def test_sdarts_rs_trains_the_weights_on_noisy_simplex_weights_and_steps_alpha_as_its_base():
    from tabnas.nas.strategies import SmoothDARTS

    net = tiny_supernet()
    strategy = make_strategy("sdarts-rs").bind(net)
    assert repr(strategy).startswith("SmoothDARTS(DARTS(") and strategy.updates_alpha
    strategy.step_started(0, 11)
    assert strategy.radius == pytest.approx(0.03)
    strategy.step_started(10, 11)
    assert strategy.radius == pytest.approx(0.3)
    clean = strategy.mixing_weights()
    noisy = strategy.training_weights(make_loss(net), data(8, 0))
    assert torch.allclose(noisy.sum(-1), torch.ones_like(noisy.sum(-1)))
    assert (noisy >= 0).all() and (noisy <= 1).all() and not torch.allclose(noisy, clean)
    still = SmoothDARTS(epsilon=(0.0, 0.0)).bind(net)
    assert torch.allclose(still.training_weights(make_loss(net), data(8, 0)), clean)
    # the α step is the base's own, unperturbed: the same update as plain DARTS
    twin = tiny_supernet()
    darts = make_strategy("darts").bind(twin)
    for s, n in ((strategy, net), (darts, twin)):
        s.arch_step(make_loss(n), data(16, 1), data(16, 2), virtual_step=None)
    assert torch.allclose(net.alpha, twin.alpha)
    assert not SmoothDARTS("fixed-alpha").bind(tiny_supernet()).updates_alpha


@pytest.mark.parametrize("base", ["gdas", "proxyless", "random-ws", "darts-minus"])
def test_sdarts_refuses_a_base_whose_weights_do_not_train_on_the_mixture(base):
    from tabnas.nas.strategies import AdversarialSmoothDARTS, SmoothDARTS

    for wrapper in (SmoothDARTS, AdversarialSmoothDARTS):
        with pytest.raises(ValueError, match=rf"'{base}' (trains|adds).*choose a base"):
            wrapper(base)


def test_sdarts_adv_keeps_a_perturbation_only_when_it_raises_the_loss():
    net = tiny_supernet()
    strategy = make_strategy("sdarts-adv").bind(net)
    strategy.step_started(10, 11)  # the widest radius, 0.3
    loss, batch = make_loss(net), data(32, 3)
    clean = strategy.mixing_weights().detach()
    adversarial = strategy.training_weights(loss, batch)
    assert torch.allclose(adversarial.sum(-1), torch.ones_like(adversarial.sum(-1)))
    with torch.no_grad():
        assert loss(batch, adversarial) >= loss(batch, clean)
    assert not torch.equal(adversarial, clean)  # 7 ascent steps at radius 0.3 found a worse point
    with pytest.raises(ValueError, match="pgd_steps"):
        type(strategy)(pgd_steps=0)


def test_sparsemax_and_entmax_give_exact_zeros_that_the_supernet_and_scoring_share():
    net = tiny_supernet()
    with torch.no_grad():
        net.alpha.copy_(torch.tensor([2.0, 1.8, -1.0, -2.0], dtype=net.alpha.dtype))
    for normalizer in ("sparsemax", "entmax15"):
        strategy = DARTS(normalizer=normalizer).bind(net)
        weights = strategy.mixing_weights()
        assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)))
        assert (weights == 0).any() and torch.equal(net.default_weights(), weights)
        assert f"normalizer={normalizer!r}" in repr(strategy)
    assert torch.equal(DARTS().bind(net).mixing_weights(), torch.softmax(net.alpha, -1))
    with pytest.raises(ValueError, match="unknown normalizer 'relu'"):
        DARTS(normalizer="relu")


def test_the_lp_penalty_pushes_each_edge_towards_one_op():
    from tabnas.nas.strategies import SecondOrderDARTS

    batches = (data(16, 1), data(16, 2))
    for cls in (DARTS, SecondOrderDARTS):
        entropies = []
        for sparsity in (0.0, 5.0):
            net = tiny_supernet()
            strategy = cls(sparsity=sparsity, lr=0.05).bind(net)
            for _ in range(20):
                strategy.arch_step(
                    make_loss(net), *batches, virtual_step=virtual_sgd(net, 0.01)
                )
            w = strategy.mixing_weights().detach()
            entropies.append(float(-(w * w.log()).sum()))
        assert entropies[1] < entropies[0], cls  # sharper edges with the penalty
    with pytest.raises(ValueError, match="sparsity_p"):
        DARTS(sparsity=1.0, sparsity_p=1.5)
