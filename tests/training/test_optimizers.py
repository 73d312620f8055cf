"""The optimizers of the search (``training.optim``): α's Adam or SGD, the weights' AdamW or
DARTS's SGD with its cosine, PT's tuning of the same kind, SGD's virtual step for
second-order DARTS, and the dominant eigenvalue of the α-Hessian."""

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from tabnas import TabNASClassifier
from tabnas.nas.strategies import (
    DARTS,
    GDAS,
    SecondOrderDARTS,
    SmoothDARTS,
    make_strategy,
)
from tabnas.training.loop import Deadline, batch_statistics
from tabnas.training.optim import ARCH_SGD_FINAL, ARCH_SGD_LR, cosine
from tabnas.training.search import dominant_hessian_eigenvalue

from ..conftest import FAST
from ..nas.test_strategies import data, make_loss, tiny_supernet
from .test_search import poison, trainer


def test_alpha_gets_adam_or_sgd_and_either_moves_it():
    net = tiny_supernet()
    adam = DARTS().bind(net)
    assert isinstance(adam.optimizer, torch.optim.Adam)
    group = adam.optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-2, (0.5, 0.999), 1e-3)

    net = tiny_supernet()
    sgd = DARTS(optimizer="sgd").bind(net)
    assert isinstance(sgd.optimizer, torch.optim.SGD)
    group = sgd.optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (ARCH_SGD_LR, 0.9, 1e-3)
    before = net.alpha.detach().clone()
    for seed in (1, 2):
        sgd.arch_step(make_loss(net), data(16, seed), data(16, seed + 10), virtual_step=None)
    assert not torch.equal(net.alpha, before)
    assert "momentum_buffer" in sgd.optimizer.state[net.alpha]  # a real momentum step
    assert DARTS(optimizer="sgd", lr=0.3).lr == 0.3


def test_options_are_validated_shown_and_forwarded_by_wrappers():
    with pytest.raises(ValueError, match=r"unknown optimizer 'rmsprop'.*\['adam', 'sgd'\]"):
        DARTS(optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"unknown weight_optimizer 'adam'.*\['adamw', 'sgd'\]"):
        GDAS(weight_optimizer="adam")
    assert repr(DARTS()) == "DARTS(lr=0.01, betas=(0.5, 0.999), weight_decay=0.001)"
    both = DARTS(optimizer="sgd", weight_optimizer="sgd")
    assert repr(both).endswith(", optimizer='sgd', weight_optimizer='sgd')")
    assert repr(GDAS(weight_optimizer="sgd")).endswith("weight_optimizer='sgd')")
    copied = make_strategy(both)
    assert (copied.arch_optimizer, copied.weight_optimizer) == ("sgd", "sgd")

    smooth = SmoothDARTS(DARTS(optimizer="sgd", weight_optimizer="sgd"))
    assert (smooth.arch_optimizer, smooth.weight_optimizer) == ("sgd", "sgd")
    assert "weight_optimizer='sgd'" in repr(smooth)
    smooth.bind(tiny_supernet())
    assert isinstance(smooth.optimizer, torch.optim.SGD)


def lrs_of(t, n_steps):
    """The weights' and α's lr of each of the next ``n_steps`` weight steps."""
    out = []
    for _ in range(n_steps):
        t.step(arch_step=True)
        out.append((t.optimizer.param_groups[0]["lr"], t.strategy.optimizer.param_groups[0]["lr"]))
    return out


def test_sgd_weights_and_alpha_follow_their_cosines_over_min_steps_then_hold():
    # the cosines span min_steps, which every search reaches, not max_steps, which a search
    # that stops on patience rarely does
    t = trainer(DARTS(optimizer="sgd", weight_optimizer="sgd"), max_steps=30, min_steps=10)
    assert isinstance(t.optimizer, torch.optim.SGD)
    decay, plain = t.optimizer.param_groups
    assert (decay["weight_decay"], plain["weight_decay"], decay["momentum"]) == (3e-4, 0.0, 0.9)
    lrs = lrs_of(t, 14)
    alpha_final = ARCH_SGD_FINAL * ARCH_SGD_LR
    for step, (weights_lr, alpha_lr) in enumerate(lrs):
        assert weights_lr == pytest.approx(cosine(0.025, 0.001, step / 10))
        assert alpha_lr == pytest.approx(cosine(ARCH_SGD_LR, alpha_final, step / 10))
    assert lrs[0] == pytest.approx((0.025, ARCH_SGD_LR))
    assert all(lr == pytest.approx((0.001, alpha_final)) for lr in lrs[10:])  # held

    adam = trainer("darts", max_steps=10, min_steps=10)  # AdamW and Adam: constant lrs
    assert isinstance(adam.optimizer, torch.optim.AdamW)
    assert set(lrs_of(adam, 4)) == {(3e-3, 1e-2)}


def test_the_tuning_optimizer_is_of_the_searchs_kind_at_its_lower_lr():
    t = trainer(DARTS(weight_optimizer="sgd"), max_steps=20, min_steps=20, eval_every=10)
    t.search(Deadline(None))
    assert t.start_tuning(n_decisions=2) == 5
    assert isinstance(t.optimizer, torch.optim.SGD) and not t.optimizer.state  # fresh
    lrs = []
    for _ in range(2):
        t.tune()
        lrs.append(t.optimizer.param_groups[0]["lr"])
    assert lrs == sorted(lrs, reverse=True)
    assert 0.001 < lrs[0] < 0.0025 and lrs[-1] == pytest.approx(0.001, rel=0.05)  # darts-pt's


def test_a_recovery_resets_sgds_momentum_and_scales_its_cosines():
    t = trainer(
        DARTS(optimizer="sgd", weight_optimizer="sgd"), max_steps=20, min_steps=20, eval_every=5
    )
    poison(t, {12})
    with pytest.warns(RuntimeWarning, match="not finite in the search phase"):
        t.search(Deadline(None))
    assert t.recoveries == 1 and t.steps == 20
    assert all(torch.isfinite(p).all() for p in t.supernet.parameters())
    last = (t.steps - 1) / 20
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * cosine(0.025, 0.001, last))
    assert t.strategy.optimizer.param_groups[0]["lr"] == pytest.approx(
        0.1 * cosine(ARCH_SGD_LR, ARCH_SGD_FINAL * ARCH_SGD_LR, last)
    )
    assert t.optimizer.state and t.strategy.optimizer.state  # momentum buffers again
    with pytest.warns(RuntimeWarning):
        t._recover("search")
    assert not t.optimizer.state and not t.strategy.optimizer.state  # and gone with the rest


def weight_params(t):
    return {n: p for n, p in t.supernet.named_parameters() if n != "alpha"}


def momentum_buffer(t, p):
    """SGD's momentum buffer of ``p`` (zeros before its first step)."""
    return t.optimizer.state.get(p, {}).get("momentum_buffer", torch.zeros_like(p))


@pytest.mark.parametrize("moved", [False, True])
def test_sgds_virtual_step_is_the_step_sgd_really_takes(moved):
    t = trainer(DARTS(weight_optimizer="sgd"), max_steps=10, min_steps=10)
    if moved:
        t.search(Deadline(None))  # momentum buffers now
    params = weight_params(t)
    grads = {n: torch.randn_like(p) * 1e-2 for n, p in params.items()}
    lr = t.optimizer.param_groups[0]["lr"]
    stepped, xi = t.virtual_step(grads)
    # by hand: w - lr (0.9 buf + g + wd w), wd on the weight matrices only
    decayed = {id(p) for p in t.optimizer.param_groups[0]["params"]}
    for name, p in params.items():
        buffer = momentum_buffer(t, p)
        assert bool(buffer.any()) == moved
        wd = 3e-4 if id(p) in decayed else 0.0
        expected = p - lr * (0.9 * buffer + grads[name] + wd * p)
        assert torch.allclose(stepped[name], expected, rtol=1e-6, atol=1e-9), name
        assert float(xi[name]) == pytest.approx(lr)
    t.optimizer.zero_grad()
    for name, p in params.items():
        p.grad = grads[name].clone()
    t.optimizer.step()  # the real one
    for name, p in params.items():
        assert torch.allclose(p.detach(), stepped[name], rtol=1e-5, atol=1e-7), name


def test_second_order_darts_is_exact_through_sgds_virtual_step():
    t = trainer(SecondOrderDARTS(weight_optimizer="sgd"), max_steps=10, min_steps=10)
    t.search(Deadline(None))
    strategy, net, alpha = t.strategy, t.supernet, t.supernet.alpha
    assert isinstance(strategy, SecondOrderDARTS)
    train, val = t.weight_data[torch.arange(48)], t.arch_data[torch.arange(48)]
    net.train()
    torch.manual_seed(7)
    approx, stats = strategy.arch_gradient(t.loss, train, val, virtual_step=t.virtual_step)

    # exact: d/dalpha L_val(w - lr (0.9 buf + grad_w L_train(w, alpha) + wd w), alpha)
    torch.manual_seed(7)  # the same dropout masks
    params = weight_params(t)
    names, weights = list(params), list(params.values())
    grads = torch.autograd.grad(
        t.loss(train, torch.softmax(alpha, -1)), weights, create_graph=True, allow_unused=True
    )
    after_train = torch.get_rng_state()
    lr = t.optimizer.param_groups[0]["lr"]
    wd = {id(p): g["weight_decay"] for g in t.optimizer.param_groups for p in g["params"]}

    def exact(momentum):
        virtual = {
            n: w - lr * (
                momentum * momentum_buffer(t, w)
                + (torch.zeros_like(w) if g is None else g) + wd[id(w)] * w.detach()
            )
            for n, w, g in zip(names, weights, grads)
        }
        torch.set_rng_state(after_train)  # the val pass's dropout masks, every time
        loss = t.loss(val, torch.softmax(alpha, -1), virtual)
        return torch.autograd.grad(loss, [alpha], retain_graph=True)[0]

    with_momentum = exact(0.9)
    assert torch.allclose(approx, with_momentum, rtol=1e-4, atol=1e-7), (
        (approx - with_momentum).norm() / with_momentum.norm()
    )
    assert not torch.allclose(approx, exact(0.0), rtol=1e-4, atol=1e-7)  # momentum matters
    assert stats["second_order_ratio"] > 0


def explicit_top_eigenvalue(f, alpha):
    """The eigenvalue of largest magnitude of the explicitly built Hessian of ``f`` at ``alpha``."""
    hessian = torch.autograd.functional.hessian(f, alpha.detach().clone())
    values = torch.linalg.eigvalsh(hessian.reshape(alpha.numel(), alpha.numel()))
    return float(values[values.abs().argmax()])


def test_power_iteration_finds_the_top_eigenvalue_of_the_explicit_hessian():
    net = tiny_supernet()  # float64
    loss, batch = make_loss(net), data(32, 1)
    exact = explicit_top_eigenvalue(lambda a: loss(batch, torch.softmax(a, -1)), net.alpha)
    converged = dominant_hessian_eigenvalue(
        loss(batch, torch.softmax(net.alpha, -1)), net.alpha, iterations=50, tolerance=0.0
    )
    assert converged == pytest.approx(exact, rel=1e-9)
    default = dominant_hessian_eigenvalue(loss(batch, torch.softmax(net.alpha, -1)), net.alpha)
    assert default == pytest.approx(exact, rel=1e-4)  # stopped once it moved < 1e-4
    # a loss linear in the parameter has no curvature
    assert dominant_hessian_eigenvalue((net.alpha * 2).sum(), net.alpha) == 0.0


def test_the_trainers_eigenvalue_is_the_architecture_halfs_and_changes_nothing():
    t = trainer("darts", max_steps=10, min_steps=10)
    t.search(Deadline(None))
    net = t.supernet
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    estimate = t.alpha_hessian_eigenvalue(iterations=100)
    assert torch.equal(torch.get_rng_state(), rng)  # the global random state is untouched
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())

    batch = t.score_data  # 96 rows, fewer than HESSIAN_ROWS: all of them

    def f(alpha):
        with batch_statistics(net), sdpa_kernel(SDPBackend.MATH):
            weights = torch.softmax(alpha, -1)
            return t.task.loss(net(batch.x_num, batch.x_cat, weights=weights), batch.y)

    exact = explicit_top_eigenvalue(f, net.alpha)
    assert estimate == pytest.approx(exact, rel=1e-3)
    assert t.alpha_hessian_eigenvalue() == pytest.approx(exact, rel=0.05)  # 20 iterations
    assert trainer("fixed-alpha").alpha_hessian_eigenvalue() is None


@pytest.mark.parametrize(
    "weights, alpha, selection",
    [("sgd", "sgd", "pt"), ("sgd", "adam", "argmax"), ("adamw", "sgd", "argmax"),
     ("adamw", "adam", "pt")],
)
def test_every_combination_of_optimizers_fits(cancer, weights, alpha, selection):
    X, y = cancer
    strategy = DARTS(optimizer=alpha, weight_optimizer=weights)
    clf = TabNASClassifier(
        **{**FAST, "max_search_steps": 20, "max_epochs": 2, "ensemble_size": 1, "bag_folds": 0},
        search_strategy=strategy, selection=selection,
    ).fit(X[:200], y[:200])
    info = clf.fit_info_
    assert info["alpha_shift"] > 0
    assert math.isfinite(info["dominant_hessian_eigenvalue"])
    assert clf.predict(X[:5]).shape == (5,)
    kinds = {record.kind for record in clf.selection_trace_}
    assert ("op" in kinds) == (selection == "pt")
