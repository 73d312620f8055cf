"""DARTS- (an auxiliary skip branch outside the softmax) and random search with weight
sharing (one random discrete architecture per batch, then a ranking that sets α)."""

import dataclasses

import pytest
import torch

from tabnas.nas.selection import argmax_select
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import DARTSMinus, RandomWS, make_strategy
from tabnas.nas.supernet import SuperNetwork
from tests.nas.test_strategies import count_forward_calls, data, make_loss, tiny_supernet


def skip_one_hot(net, value):
    branch = torch.zeros_like(net.alpha)
    branch[..., net.space.ops.index("skip")] = value
    return branch


# ---- DARTS- ---------------------------------------------------------------------------------
def test_darts_minus_adds_a_decaying_skip_branch_outside_the_softmax_in_both_steps():
    net = tiny_supernet()
    strategy = make_strategy("darts-minus").bind(net)
    assert isinstance(strategy, DARTSMinus) and strategy.beta == (1.0, 0.0)
    for step, beta in ((0, 1.0), (5, 0.5), (10, 0.0)):  # linear over the search's steps
        strategy.step_started(step, 11)
        assert strategy.branch == pytest.approx(beta)
    strategy.step_started(3, 11)
    beta = 0.7
    expected = torch.softmax(net.alpha, -1) + skip_one_hot(net, beta)
    assert torch.allclose(strategy.mixing_weights(), expected)
    assert torch.allclose(strategy.training_weights(make_loss(net), data(8, 0)), expected)

    # The α step runs on the same weights: the loss it returns is the loss under them.
    seen = []

    def loss(batch, weights, params=None):
        seen.append(weights.detach())
        return make_loss(net)(batch, weights, params)

    stats = strategy.arch_step(loss, data(16, 1), data(16, 2), virtual_step=None)
    assert torch.allclose(seen[0], expected)
    with torch.no_grad():
        assert stats["arch_loss"] == pytest.approx(float(make_loss(net)(data(16, 2), expected)))


def test_darts_minus_alpha_gradient_flows_only_through_the_softmax():
    net = tiny_supernet()
    strategy = DARTSMinus(beta=(0.5, 0.5)).bind(net)
    loss, batch = make_loss(net), data(32, 3)
    (got,) = torch.autograd.grad(loss(batch, strategy.mixing_weights()), [net.alpha])
    # By hand: dL/dW at W = softmax + β·skip, then back through the softmax only.
    weights = (torch.softmax(net.alpha, -1) + skip_one_hot(net, 0.5)).detach().requires_grad_()
    (d_weights,) = torch.autograd.grad(loss(batch, weights), [weights])
    p = torch.softmax(net.alpha, -1).detach()
    expected = p * (d_weights - (p * d_weights).sum(-1, keepdim=True))
    assert torch.allclose(got, expected)
    # ... and it differs from plain DARTS's: the branch changes where dL/dW is taken.
    (plain,) = torch.autograd.grad(loss(batch, torch.softmax(net.alpha, -1)), [net.alpha])
    assert not torch.allclose(got, plain)


def test_the_skip_weight_is_exactly_an_identity_branch_beside_the_mixed_edge():
    net = tiny_supernet()
    x = torch.randn(5, 4, 4, dtype=torch.float64)
    weights = torch.softmax(net.alpha[0, 0], -1)
    active = [True] * len(net.space.ops)
    mixed = net.cells[0][0]
    with_branch = mixed(x, weights + skip_one_hot(net, 0.3)[0, 0], active)
    assert torch.allclose(with_branch, mixed(x, weights, active) + 0.3 * x)


def test_darts_minus_never_reaches_scoring_fixed_edges_or_selection():
    net = tiny_supernet()
    strategy = DARTSMinus().bind(net)
    strategy.step_started(0, 10)
    net.fix_edge(0, 1, "linear")
    weights = strategy.mixing_weights()
    assert torch.allclose(weights[0, 1], torch.softmax(net.alpha[0, 1], -1))  # fixed: no branch
    assert torch.allclose(weights[0, 0], torch.softmax(net.alpha[0, 0], -1) + skip_one_hot(
        net, 1.0)[0, 0])
    assert torch.allclose(net.default_weights()[0, 0], torch.softmax(net.alpha[0, 0], -1))
    strategy.search_finished(lambda weights: {"loss": 0.0}, seed=0)  # PT tunes without it
    assert strategy.branch == 0.0
    assert torch.equal(strategy.mixing_weights(), torch.softmax(net.alpha, -1))


def test_darts_minus_needs_a_skip_op_and_valid_betas():
    space = dataclasses.replace(tiny_supernet().space, ops=("linear", "ffn", "none"))
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1)
    with pytest.raises(ValueError, match="add 'skip' to SearchSpace"):
        DARTSMinus().bind(net)
    with pytest.raises(ValueError, match="beta must be two weights"):
        DARTSMinus(beta=(1.0, -0.1))
    assert repr(DARTSMinus(beta=(2.0, 0.0), lr=0.1)).startswith("DARTSMinus(lr=0.1")
    assert repr(DARTSMinus(beta=(2.0, 0.0))).endswith("beta=(2.0, 0.0))")


# ---- random search with weight sharing ------------------------------------------------------
def wide_supernet(node_inputs=2):
    """Three nodes, so node 3 picks 2 of its 3 incoming edges; two cells."""
    net = tiny_supernet()
    space = dataclasses.replace(net.space, n_cells=2, n_nodes=3, node_inputs=node_inputs)
    torch.manual_seed(0)
    return SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1).double()


def assert_valid_one_hot(net, weights):
    """One-hot rows for live edges, zero rows otherwise; each node min(node_inputs, target)
    live inputs; never ``none``."""
    space = net.space
    assert set(weights.unique().tolist()) <= {0.0, 1.0}
    assert (weights.sum(-1) <= 1).all()
    assert not weights[..., space.ops.index("none")].any()
    live = weights.sum(-1)  # (n_cells, n_edges)
    for target in range(1, space.n_nodes + 1):
        into = [e for e, (_, t) in enumerate(space.edges) if t == target]
        assert (live[:, into].sum(-1) == min(space.node_inputs, target)).all()


def test_random_ws_trains_every_batch_on_a_fresh_valid_discrete_architecture():
    net = wide_supernet()
    strategy = make_strategy("random-ws").bind(net)
    assert not strategy.updates_alpha and torch.equal(net.alpha, torch.zeros_like(net.alpha))
    torch.manual_seed(1)
    draws = [strategy.training_weights(make_loss(net), data(8, 0)) for _ in range(20)]
    for weights in draws:
        assert_valid_one_hot(net, weights)
    assert len({tuple(w.flatten().tolist()) for w in draws}) >= 15  # redrawn every batch
    # MixedOp runs only the sampled ops: one forward call per live edge of cell 0.
    calls = count_forward_calls(net)
    make_loss(net)(data(8, 0), draws[0]).backward()
    ran = {key for key, n in calls.items() if n}
    live = {(e, net.space.ops[int(k)]) for e, k in enumerate(draws[0][0].argmax(-1))
            if draws[0][0, e].any()}
    assert ran == live and all(n <= 1 for n in calls.values())
    assert strategy.arch_step(make_loss(net), data(8, 1), data(8, 2), virtual_step=None) == {}


def test_architecture_weights_are_the_inverse_of_to_architecture():
    net = wide_supernet()
    for seed in range(5):
        architecture = net.space.sample(seed)
        weights = net.architecture_weights(architecture)
        with net.trial_decisions():
            for c in range(net.space.n_cells):
                for e in range(net.space.n_edges):
                    if weights[c, e].any():
                        net.fix_edge(c, e, net.space.ops[int(weights[c, e].argmax())])
                    else:
                        net.remove_edge(c, e)
            assert net.to_architecture() == architecture
    other = SearchSpace(n_cells=1, n_nodes=2, ops=("linear",)).sample(0)
    with pytest.raises(ValueError, match="architecture_weights needs"):
        net.architecture_weights(other)


def stub_evaluate(net, best_ops):
    """Scores an architecture by how many of its edges use the op ``best_ops`` names for
    that edge: a known optimum for the ranking to find."""
    calls = []

    def evaluate(weights):
        calls.append(weights)
        hits = sum(
            float(weights[c, e, net.space.ops.index(op)]) for (c, e), op in best_ops.items()
        )
        return {"loss": 10.0 - hits, "accuracy": 0.5 + 0.01 * hits}

    return evaluate, calls


def test_random_ws_ranks_with_evaluate_and_argmax_returns_the_best_ranked():
    net = wide_supernet()
    strategy = RandomWS(n_samples=60, n_top=5).bind(net)
    best_ops = {(0, 0): "linear", (0, 3): "ffn", (1, 1): "skip", (1, 5): "linear"}
    evaluate, calls = stub_evaluate(net, best_ops)
    strategy.search_finished(evaluate, seed=3)
    assert not strategy.searching
    assert 50 <= len(calls) <= 60  # every distinct sample, scored on one-hot weights
    for weights in calls:
        assert_valid_one_hot(net, weights)
    scores = [s for _, s in strategy.ranking]
    assert len(scores) == 5 and scores == sorted(scores, key=lambda s: (-s["accuracy"], s["loss"]))
    scored = [evaluate(w) for w in list(calls)]
    assert strategy.ranking[0][1] == max(scored, key=lambda s: (s["accuracy"], -s["loss"]))
    with net.trial_decisions():
        assert argmax_select(net) == strategy.ranking[0][0]
    # α leans towards the top: softmax puts the best's op first on every edge it has.
    probs = torch.softmax(net.alpha, -1)
    chosen = net.architecture_weights(strategy.ranking[0][0]).bool()
    for c, e in chosen.any(-1).nonzero().tolist():
        assert probs[c, e].argmax() == chosen[c, e].int().argmax()
    # The search is over: the weights tune under the mixture that PT scores.
    assert torch.equal(strategy.training_weights(make_loss(net), data(8, 0)), probs)


@pytest.mark.parametrize("ops", [("linear", "ffn", "skip", "none"), ("linear", "ffn")])
def test_the_best_ranked_architecture_wins_argmax_against_any_runners_up(ops):
    space = dataclasses.replace(wide_supernet().space, ops=ops)
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=1)
    for seed in range(20):
        strategy = RandomWS(n_samples=30, n_top=10).bind(net)
        order = {}

        def evaluate(weights, order=order):  # an arbitrary but fixed ranking
            order.setdefault(tuple(weights.flatten().tolist()), float(len(order) * 7 % 31))
            return {"loss": order[tuple(weights.flatten().tolist())]}

        strategy.search_finished(evaluate, seed=seed)
        with net.trial_decisions():
            assert argmax_select(net) == strategy.ranking[0][0]


def test_random_ws_options_are_checked():
    with pytest.raises(ValueError, match="n_top <= n_samples"):
        RandomWS(n_samples=5, n_top=10)
    assert repr(RandomWS(n_samples=50)) == "RandomWS(n_samples=50, n_top=10)"
