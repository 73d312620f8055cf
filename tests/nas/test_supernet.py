import pytest
import torch

from tabnas.nas.network import DiscreteNetwork
from tabnas.nas.ops import OpSettings
from tabnas.nas.space import SearchSpace
from tabnas.nas.supernet import SuperNetwork

SETTINGS = OpSettings(
    d_token=8, n_heads=2, attention_dropout=0.0, ffn_dropout=0.0, resnet_dropout=0.0
)


def make(space=None, **kw):
    space = space or SearchSpace(n_cells=2, n_nodes=2, settings=SETTINGS)
    return SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[4], d_out=2, **kw)


def batch(n=5):
    return torch.randn(n, 3), torch.randint(0, 4, (n, 1))


def test_arch_and_weight_parameters_are_disjoint_and_complete():
    net = make()
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch.isdisjoint(weights)
    assert arch | weights == {id(p) for p in net.parameters()}
    assert "alpha" in net.state_dict() and "fixed" in net.state_dict()
    assert net.alpha.shape == (2, 3, 6)


def test_forward_shape_and_gradient_reaches_alpha():
    net = make()
    out = net(*batch())
    assert out.shape == (5, 2)
    out.sum().backward()
    assert net.alpha.grad is not None and net.alpha.grad.abs().sum() > 0


def test_fixed_edges_ignore_the_weights_passed_in():
    net = make()
    net.fix_edge(0, 1, "ffn")
    net.remove_edge(1, 0)
    projected = net.project(torch.full((2, 3, 6), 0.5))
    ffn = net.space.ops.index("ffn")
    assert projected[0, 1].tolist() == [1.0 if k == ffn else 0.0 for k in range(6)]
    assert projected[1, 0].sum() == 0
    assert projected[0, 0].tolist() == [0.5] * 6
    assert net.chosen_op(0, 1) == "ffn" and net.chosen_op(1, 0) is None


def test_fully_fixed_supernet_equals_its_discrete_network():
    space = SearchSpace(n_cells=2, n_nodes=2, settings=SETTINGS)
    net = make(space).eval()
    choices = {(0, 0): "attention", (0, 2): "ffn", (1, 0): "resnet", (1, 2): "linear"}
    for c in range(2):
        for e in range(3):
            if (c, e) in choices:
                net.fix_edge(c, e, choices[(c, e)])
            else:
                net.remove_edge(c, e)
    arch = net.to_architecture()
    assert arch.ops == ("attention", "ffn", "resnet", "linear")
    discrete = DiscreteNetwork(
        architecture=arch, n_num_features=3, cat_cardinalities=[4], d_out=2
    ).eval()
    # Copy the chosen ops' weights into the discrete network and compare outputs.
    state = {}
    for key, value in net.state_dict().items():
        state[key] = value
    mapped = {}
    for c, cell in enumerate(discrete.cells):
        for key in cell.keys():
            source, target, op = key.split("_", 2)
            e = space.edges.index((int(source), int(target)))
            prefix = f"cells.{c}.{e}.ops.{op}."
            for name, value in net.state_dict().items():
                if name.startswith(prefix):
                    mapped[f"cells.{c}.{key}.{name[len(prefix):]}"] = value
    for name, value in net.state_dict().items():
        if name.startswith(("tokenizer.", "readout.")):
            mapped[name] = value
    discrete.load_state_dict(mapped)
    x = batch(7)
    assert torch.allclose(net(*x), discrete(*x), atol=1e-6)


def test_explicit_weights_are_used_as_given_so_fixed_edges_can_be_perturbed():
    # PT's input pruning zeroes a fixed edge; the forward pass must honour that.
    net = make().eval()
    for c in range(2):
        for e in range(3):
            net.fix_edge(c, e, "ffn")
    x = batch()
    weights = net.default_weights()
    perturbed = weights.clone()
    perturbed[0, 1] = 0.0
    assert torch.equal(net(*x), net(*x, weights=weights))
    assert not torch.allclose(net(*x, weights=perturbed), net(*x))


def test_to_architecture_requires_every_edge_decided():
    with pytest.raises(RuntimeError, match="every edge"):
        make().to_architecture()


def count_op_calls(net):
    """Forward calls per op name, over every edge of the supernet."""
    calls = dict.fromkeys(net.space.ops, 0)
    for cell in net.cells:
        for mixed in cell:
            for name, op in mixed.ops.items():
                op.register_forward_hook(
                    lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
                )
    return calls


def test_ops_with_zero_weight_are_not_run():
    net = make()
    calls = count_op_calls(net)
    weights = torch.zeros(2, 3, 6)
    weights[..., net.space.ops.index("ffn")] = 1.0  # a one-path mixture: only ffn weighs
    weights[0, 0, net.space.ops.index("attention")] = 0.5
    net(*batch(), weights=weights)
    assert calls["ffn"] == 6 and calls["attention"] == 1
    assert calls["resnet"] == calls["linear"] == calls["skip"] == 0


def test_trial_decisions_are_undone():
    net = make()
    with net.trial_decisions():
        net.fix_edge(0, 1, "ffn")
        net.remove_edge(1, 0)
        assert net.is_fixed(0, 1)
    assert not net.fixed.any() and net.kept.all()


def test_forced_ops_run_at_zero_weight_and_carry_its_gradient():
    net = make()
    net.fix_edge(0, 1, "ffn")
    calls = count_op_calls(net)
    linear, resnet = net.space.ops.index("linear"), net.space.ops.index("resnet")
    weights = torch.zeros(2, 3, 6)
    weights[..., linear] = 1.0
    weights.requires_grad_(True)
    forced = torch.zeros(2, 3, 6, dtype=torch.bool)
    forced[..., resnet] = True
    forced[..., net.space.ops.index("none")] = True  # `none` never runs
    with net.forced_ops(forced):
        net(*batch(), weights=net.project(weights)).sum().backward()
    # every edge but the fixed one runs linear and resnet; the fixed edge its ffn only
    assert calls["linear"] == calls["resnet"] == 5 and calls["ffn"] == 1
    assert weights.grad[0, 0, resnet] != 0 and weights.grad[0, 1, resnet] == 0
    net(*batch(), weights=weights.detach())  # outside the block: zero weights skip again
    assert calls["resnet"] == 5
    with pytest.raises(ValueError, match="shape"):
        with net.forced_ops(forced[0]):
            pass


def test_a_scaled_space_gives_a_scaled_supernet_and_choice():
    from tabnas.nas.embeddings import FeatureScale
    from tabnas.nas.selection import argmax_select

    net = make(SearchSpace(n_cells=1, n_nodes=2, settings=SETTINGS, feature_scale=True))
    assert any(isinstance(m, FeatureScale) for m in net.tokenizer.modules())
    assert argmax_select(net).feature_scale
    assert not any(isinstance(m, FeatureScale) for m in make().modules())
