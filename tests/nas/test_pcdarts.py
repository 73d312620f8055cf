"""PC-DARTS: partial channels with a channel shuffle, edge normalisation by β, and the
α × β edge ranking of the argmax rule."""

import pytest
import torch
import torch.nn.functional as F

from tabnas import TabNASClassifier
from tabnas.devices import resolve_device
from tabnas.nas.ops import OpSettings
from tabnas.nas.selection import argmax_select
from tabnas.nas.selection.base import edge_strength
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import PCDARTS, PartialChannelSupernet, SmoothDARTS, make_strategy
from tabnas.nas.strategies.pcdarts import channel_shuffle, partial_settings
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.data import TensorData
from tabnas.training.history import History
from tabnas.training.loop import Deadline, Task
from tabnas.training.search import SearchConfig, SupernetTrainer

from ..conftest import FAST

SETTINGS = OpSettings(
    d_token=16, n_heads=4, resnet_d_hidden=32, attention_dropout=0.0, ffn_dropout=0.0,
    resnet_dropout=0.0,
)
OPS = ("attention", "ffn", "resnet", "linear", "skip", "none")


def supernet(cls=PartialChannelSupernet, *, n_nodes=2, node_inputs=2, seed=0, **kw):
    space = SearchSpace(
        n_cells=1, n_nodes=n_nodes, node_inputs=node_inputs, ops=OPS, settings=SETTINGS
    )
    torch.manual_seed(seed)
    return cls(space=space, n_num_features=3, cat_cardinalities=[], d_out=2, **kw).double()


def data(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=dtype)
    y = ((x[:, 0] * x[:, 1] + x[:, 2]) > 0).long()
    return TensorData(x, torch.zeros(n, 0, dtype=torch.long), y)


def batch(d):
    return d.x_num, d.x_cat


def test_channel_shuffle_is_the_official_fixed_permutation():
    d, k = 12, 4
    order = channel_shuffle(torch.arange(d), k)
    # feature g * d / k + j lands at j * k + g: each op's output spread across the token
    assert order.tolist() == [g * (d // k) + j for j in range(d // k) for g in range(k)]
    x = torch.randn(5, 7, d)
    assert torch.equal(channel_shuffle(x, k), x[..., order])  # the same for every input
    assert torch.equal(channel_shuffle(channel_shuffle(x, k), d // k), x)  # and invertible


def test_partial_settings_divide_the_widths_and_keep_the_heads_width():
    settings = partial_settings(OpSettings(d_token=64, n_heads=8, resnet_d_hidden=128), 4)
    assert (settings.d_token, settings.n_heads, settings.resnet_d_hidden) == (16, 2, 32)
    fast = partial_settings(OpSettings(d_token=32, n_heads=4), 4)
    assert (fast.d_token, fast.n_heads) == (8, 1)
    assert partial_settings(OpSettings(d_token=24, n_heads=8), 2).n_heads == 4  # 12 % 4 == 0
    with pytest.raises(ValueError, match="d_token must be a multiple of k, got d_token=16, k=3"):
        supernet(k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        PCDARTS(k=0)


def test_only_a_kth_of_the_features_enter_each_op_and_the_rest_pass_unchanged():
    net, k, d = supernet(k=4), 4, SETTINGS.d_token
    seen = []
    for mixed in net.cells[0]:
        for op in mixed.ops.values():
            op.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    net.eval()
    tokens = torch.randn(6, 4, d, dtype=torch.float64)
    mixed = net.cells[0][0]
    weights = torch.softmax(torch.randn(len(OPS), dtype=torch.float64), -1)
    out = mixed(tokens, weights, [True] * len(OPS))
    assert seen and set(seen) == {d // k}
    unshuffled = out[..., torch.argsort(channel_shuffle(torch.arange(d), k))]
    assert torch.equal(unshuffled[..., d // k :], tokens[..., d // k :])
    expected = sum(
        w * op(tokens[..., : d // k])
        for w, (name, op) in zip(weights, mixed.ops.items())
        if name != "none"
    )
    assert torch.allclose(unshuffled[..., : d // k], expected)
    seen.clear()
    net(*batch(data(6, 0)))
    assert set(seen) == {d // k}  # every op of the whole supernet, too


def test_beta_softmax_weights_the_edges_into_each_node():
    net = supernet()
    net.eval()
    with torch.no_grad():
        net.beta.copy_(torch.tensor([[0.7, -0.4, 1.1]], dtype=torch.float64))
    edge_weights = net.edge_weights()
    assert edge_weights[0, 0] == 1.0  # node 1 has one input
    assert torch.allclose(edge_weights[0, 1:], torch.softmax(net.beta[0, 1:], -1))

    tokens = torch.randn(5, 4, SETTINGS.d_token, dtype=torch.float64)
    weights = net.default_weights()
    every = [True] * len(OPS)
    edges = net.cells[0]
    node1 = edges[0](tokens, weights[0, 0], every)
    b = torch.softmax(net.beta[0, 1:], -1)  # edges 0 -> 2 and 1 -> 2
    node2 = (
        b[0] * edges[1](tokens, weights[0, 1], every)
        + b[1] * edges[2](node1, weights[0, 2], every)
    )
    assert torch.allclose(net.body(tokens, weights), node2)
    # β is learnt through the forward pass
    net(*batch(data(5, 1))).sum().backward()
    assert net.beta.grad is not None and net.beta.grad[0, 1:].abs().sum() > 0


def test_argmax_ranks_the_inputs_of_a_node_by_alpha_weight_times_beta_weight():
    alpha = torch.zeros(1, 3, len(OPS), dtype=torch.float64)
    alpha[0, 1, OPS.index("ffn")] = 2.0  # edge 0 -> 2: the stronger op weight
    alpha[0, 2, OPS.index("linear")] = 1.0  # edge 1 -> 2
    chosen = {}
    for cls in (SuperNetwork, PartialChannelSupernet):
        net = supernet(cls, node_inputs=1)
        with torch.no_grad():
            net.alpha.copy_(alpha)
            if cls is PartialChannelSupernet:
                net.beta.copy_(torch.tensor([[0.0, -1.0, 1.0]]))  # β prefers edge 1 -> 2
                op_weight = torch.softmax(alpha[0, 2], -1)[OPS.index("linear")]
                beta_weight = torch.softmax(torch.tensor([-1.0, 1.0]), -1)[1]
                assert edge_strength(net, 0, 2) == pytest.approx(float(op_weight * beta_weight))
        architecture = argmax_select(net)
        chosen[cls] = architecture.cells[0][1]
    # α alone keeps the ffn edge from node 0; α × β keeps the linear edge from node 1
    assert [(e.source, e.op) for e in chosen[SuperNetwork]] == [(0, "ffn")]
    assert [(e.source, e.op) for e in chosen[PartialChannelSupernet]] == [(1, "linear")]


def test_the_strategy_builds_its_supernet_and_steps_alpha_and_beta_only():
    strategy = make_strategy(PCDARTS(k=2, lr=0.05))
    assert repr(strategy).startswith("PCDARTS(k=2, lr=0.05")
    space = SearchSpace(n_cells=1, n_nodes=2, ops=OPS, settings=SETTINGS)
    net = strategy.build_supernet(space, n_num_features=3, cat_cardinalities=[], d_out=2)
    assert isinstance(net, PartialChannelSupernet) and net.k == 2
    shapes = dict(n_num_features=3, cat_cardinalities=[], d_out=2)
    smoothed = SmoothDARTS("pcdarts").build_supernet(space, **shapes)  # SDARTS over PC-DARTS
    assert isinstance(smoothed, PartialChannelSupernet)
    net = net.double()
    strategy.bind(net)
    arch = {id(p) for p in net.arch_parameters()}
    assert arch == {id(net.alpha), id(net.beta)} and "beta" in net.state_dict()
    assert arch.isdisjoint(id(p) for p in net.weight_parameters())
    assert {id(p) for p in strategy.optimizer.param_groups[0]["params"]} == arch
    before = {name: p.detach().clone() for name, p in net.named_parameters()}

    def loss(batch, weights, params=None):
        return F.cross_entropy(net(batch.x_num, batch.x_cat, weights=weights), batch.y)

    stats = strategy.arch_step(loss, data(16, 1), data(16, 2), virtual_step=None)
    assert stats["arch_loss"] > 0
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]) != (name in ("alpha", "beta")), name


def test_the_trainer_warms_up_then_steps_beta_and_keeps_it_out_of_the_weight_optimizer():
    torch.manual_seed(0)
    space = SearchSpace(n_cells=1, n_nodes=2, node_inputs=2, ops=OPS, settings=SETTINGS)
    strategy = make_strategy("pcdarts")
    net = strategy.build_supernet(space, n_num_features=3, cat_cardinalities=[], d_out=2)
    config = SearchConfig(
        batch_size=32, lr=3e-3, weight_decay=1e-5, min_steps=10, max_steps=10, warmup_steps=5
    )
    t = SupernetTrainer(
        net, strategy.bind(net), weight_data=data(160, 1, torch.float32),
        arch_data=data(96, 2, torch.float32),
        task=Task("classification", 2), config=config, device=resolve_device("cpu"),
        generator=torch.Generator().manual_seed(0), history=History(),
    )
    weight_ids = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert id(net.beta) not in weight_ids and id(net.alpha) not in weight_ids
    assert "beta" in t._good_state  # a recovery restores β with the weights
    beta = net.beta.detach().clone()
    t.run_interval(phase="search", n_steps=5)
    assert torch.equal(net.beta, beta) and t.alpha_shift() == 0  # warm-up: weights only
    t.run_interval(phase="search", n_steps=5, deadline=Deadline(None))
    assert not torch.equal(net.beta, beta) and t.alpha_shift() > 0


@pytest.mark.parametrize("strategy, selection", [("pcdarts", "pt"), ("instance", "argmax")])
def test_pcdarts_fits_with_either_selector(cancer, strategy, selection):
    X, y = cancer
    chosen = PCDARTS(k=2) if strategy == "instance" else strategy
    clf = TabNASClassifier(
        **{**FAST, "max_search_steps": 20, "max_epochs": 2, "ensemble_size": 1},
        search_strategy=chosen, selection=selection,
    ).fit(X[:200], y[:200])
    assert clf.fit_info_["alpha_shift"] > 0  # α moved after the warm-up
    assert clf.selected_architecture_ is not None and clf.predict(X[:5]).shape == (5,)
    assert clf.selected_architecture_.settings.d_token == 32  # retrained at full width
    kinds = {record.kind for record in clf.selection_trace_}
    assert ("op" in kinds) == (selection == "pt")
