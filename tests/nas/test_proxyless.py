"""ProxylessNAS: one path per weight step, the two-op gate gradient, the latency term."""

import pytest
import torch

from tabnas import TabNASClassifier
from tabnas.nas.ops import OpSettings
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import ProxylessNAS, make_strategy
from tabnas.nas.supernet import SuperNetwork

from ..conftest import FAST
from .test_strategies import count_forward_calls, data, make_loss

OPS = ("linear", "ffn", "skip", "none")


def tiny_supernet(ops=OPS):
    settings = OpSettings(d_token=4, n_heads=1, attention_dropout=0.0, ffn_dropout=0.0)
    space = SearchSpace(n_cells=1, n_nodes=2, ops=ops, settings=settings)
    torch.manual_seed(0)
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1).double()
    with torch.no_grad():
        net.alpha.normal_(0, 0.5)
    return net


def test_a_weight_step_runs_one_op_per_edge_drawn_from_softmax_alpha():
    net = tiny_supernet()
    strategy = make_strategy("proxyless").bind(net)
    calls = count_forward_calls(net)
    weights = strategy.training_weights(make_loss(net), data(16, 0))
    assert torch.equal(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=weights.dtype))
    assert torch.equal((weights == 1).sum(-1), torch.ones(weights.shape[:-1], dtype=torch.long))
    make_loss(net)(data(16, 0), weights).backward()
    drawn = {(e, OPS[int(k)]) for e, k in enumerate(weights[0].argmax(-1))}
    for key, n in calls.items():
        assert n == (1 if key in drawn and key[1] != "none" else 0), (key, n)
    assert net.alpha.grad is None  # a weight step never touches α
    # the draws follow softmax(α): 1500 of them on every edge (3.8 standard deviations)
    draws = torch.stack([strategy.training_weights(None, None) for _ in range(1500)])
    assert torch.allclose(draws.mean(0), torch.softmax(net.alpha, -1).detach(), atol=0.05)


def gate_gradient_by_finite_differences(net, batch, gates, e, k, h=1e-6):
    """dL/dg for op ``k`` of edge ``e``: a nonzero gate runs its op without any forcing."""
    loss = make_loss(net)
    up, down = gates.clone(), gates.clone()
    up[0, e, k] += h
    down[0, e, k] -= h
    with torch.no_grad():
        return float((loss(batch, up) - loss(batch, down)) / (2 * h))


def test_an_arch_step_runs_two_ops_per_open_edge_and_follows_the_binaryconnect_formula():
    ops = ("linear", "ffn", "skip")
    net = tiny_supernet(ops).eval()  # deterministic forward passes for finite differences
    net.fix_edge(0, 2, "linear")
    strategy = ProxylessNAS().bind(net)
    batch = data(32, 3)
    pair = torch.tensor([[[0, 1], [2, 1], [0, 2]]])  # (cells, edges, 2)
    active = torch.tensor([[[1], [2], [0]]])  # ffn, skip, linear; edge 2 is fixed
    calls = count_forward_calls(net)
    grad, stats = strategy.arch_gradient(make_loss(net), batch, pair, active)
    # two ops per open edge ran (once each), the fixed edge's kept op only
    ran = {key for key, n in calls.items() if n}
    assert ran == {(0, "linear"), (0, "ffn"), (1, "skip"), (1, "ffn"), (2, "linear")}
    assert all(n == 1 for n in calls.values() if n)
    assert stats["arch_loss"] > 0
    # the hand computation: dL/dα_i = Σ_j dL/dg_j p_j (δ_ij − p_i) over the pair, 0 elsewhere
    gates = torch.zeros_like(net.alpha).scatter_(-1, active, 1.0).detach()
    expected = torch.zeros_like(net.alpha)
    for e in (0, 1):
        i, j = pair[0, e].tolist()
        p = torch.softmax(net.alpha.detach()[0, e, [i, j]], -1)
        g = [gate_gradient_by_finite_differences(net, batch, gates, e, k) for k in (i, j)]
        assert g[0] != 0 and g[1] != 0
        expected[0, e, i] = g[0] * p[0] * (1 - p[0]) - g[1] * p[1] * p[0]
        expected[0, e, j] = g[1] * p[1] * (1 - p[1]) - g[0] * p[0] * p[1]
    assert torch.allclose(grad, expected, rtol=1e-6, atol=1e-10), (grad, expected)
    assert grad[0, 0, 2] == 0 and grad[0, 1, 0] == 0 and (grad[0, 2] == 0).all()


def test_an_arch_step_moves_only_the_pair_and_keeps_the_other_ops_probabilities():
    net = tiny_supernet()
    strategy = ProxylessNAS().bind(net)
    pair, active = strategy.sample_pairs()
    assert (pair[..., 0] != pair[..., 1]).all()
    assert ((active == pair[..., :1]) | (active == pair[..., 1:])).all()
    strategy.sample_pairs = lambda: (pair, active)  # the draw the test looks at
    before = net.alpha.detach().clone()
    strategy.arch_step(make_loss(net), data(16, 1), data(16, 2), virtual_step=None)
    in_pair = torch.zeros_like(before, dtype=torch.bool).scatter_(-1, pair, True)
    assert torch.equal(net.alpha[~in_pair], before[~in_pair])  # Adam's β1 = 0: no momentum
    assert not torch.equal(net.alpha[in_pair], before[in_pair])
    # the official rescaling: each pair's logsumexp, so every other probability, is kept
    assert torch.allclose(net.alpha.logsumexp(-1), before.logsumexp(-1), atol=1e-12)
    assert torch.allclose(
        torch.softmax(net.alpha, -1)[~in_pair], torch.softmax(before, -1)[~in_pair], atol=1e-12
    )


def flat_loss(batch, weights, params=None):
    return (0 * weights).sum() + 1.0  # the same for every architecture


def test_the_latency_term_moves_alpha_towards_the_cheaper_op_when_the_loss_is_flat():
    costs = {"linear": 1.0, "ffn": 4.0, "skip": 0.1}
    ops = tuple(costs)
    net = tiny_supernet(ops)
    strategy = ProxylessNAS(lr=0.05, latency=0.1, op_costs=costs).bind(net)
    start = torch.softmax(net.alpha, -1).detach()
    ratios = [
        float(strategy.arch_step(flat_loss, None, data(8, 0), virtual_step=None)["latency_ratio"])
        for _ in range(100)
    ]
    probs = torch.softmax(net.alpha, -1).detach()
    skip, ffn = ops.index("skip"), ops.index("ffn")
    assert (probs[..., skip] > start[..., skip]).all() and (probs[..., ffn] < start[..., ffn]).all()
    assert (probs.argmax(-1) == skip).all()
    assert sum(ratios[-10:]) < sum(ratios[:10])  # expected latency falls
    # without the term a flat loss leaves α where it was
    net = tiny_supernet(ops)
    before = net.alpha.detach().clone()
    ProxylessNAS(op_costs=costs).bind(net).arch_step(flat_loss, None, data(8, 0), virtual_step=None)
    assert torch.allclose(net.alpha, before, atol=1e-12)


def test_op_costs_are_measured_on_the_device_when_not_given():
    net = tiny_supernet(("ffn", "linear", "skip", "none"))
    strategy = ProxylessNAS(latency=0.1).bind(net)
    assert strategy.latencies is None
    stats = strategy.arch_step(make_loss(net), None, data(64, 0), virtual_step=None)
    latencies = dict(zip(net.space.ops, strategy.latencies.tolist()))
    assert latencies["none"] == 0.0 and all(t > 0 for op, t in latencies.items() if op != "none")
    assert latencies["ffn"] > latencies["skip"]  # two linear layers against an identity
    assert 0 <= stats["latency_ratio"] <= len(net.space.ops)


def test_options_are_checked_and_shown():
    assert "latency=0.1" in repr(ProxylessNAS(latency=0.1))
    with pytest.raises(ValueError, match="latency"):
        ProxylessNAS(latency=-1.0)
    with pytest.raises(ValueError, match="op_costs"):
        ProxylessNAS(op_costs={"ffn": -1.0})
    with pytest.raises(ValueError, match=r"lacks the ops \['skip'\]"):
        ProxylessNAS(op_costs={"linear": 1.0, "ffn": 2.0}).bind(tiny_supernet())
    strategy = make_strategy("proxyless").bind(tiny_supernet())
    assert strategy.optimizer.defaults["betas"] == (0.0, 0.999)
    assert strategy.optimizer.defaults["weight_decay"] == 0.0


@pytest.mark.parametrize("strategy, selection", [("proxyless", "pt"), ("instance", "argmax")])
def test_proxyless_fits_with_either_selector(cancer, strategy, selection):
    X, y = cancer
    chosen = ProxylessNAS(latency=0.1) if strategy == "instance" else strategy
    clf = TabNASClassifier(
        **{**FAST, "max_search_steps": 20, "max_epochs": 2, "ensemble_size": 1},
        search_strategy=chosen, selection=selection,
    ).fit(X[:200], y[:200])
    assert clf.fit_info_["alpha_shift"] > 0  # α moved
    assert clf.selected_architecture_ is not None and clf.predict(X[:5]).shape == (5,)
    kinds = {record.kind for record in clf.selection_trace_}
    assert ("op" in kinds) == (selection == "pt")
    if strategy == "instance":  # measured op costs, the expected latency in the history
        assert clf.history_.column("latency_ratio", phase="search")
