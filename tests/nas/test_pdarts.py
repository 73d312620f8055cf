"""P-DARTS: stages that deepen the supernet and shrink the op sets, skip dropout, the cap."""

import pytest
import torch
from sklearn.datasets import load_breast_cancer

from tabnas import TabNASClassifier
from tabnas.nas.ops import OpSettings
from tabnas.nas.selection import argmax_select
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.strategies import PDARTS, make_strategy
from tabnas.nas.supernet import SuperNetwork

OPS = ("attention", "ffn", "linear", "skip", "none")


def space(n_cells=3):
    settings = OpSettings(d_token=4, n_heads=1, attention_dropout=0.0, ffn_dropout=0.0)
    return SearchSpace(n_cells=n_cells, n_nodes=2, node_inputs=1, ops=OPS, settings=settings)


def supernet(space_):
    torch.manual_seed(0)
    return SuperNetwork(space=space_, n_num_features=3, cat_cardinalities=[], d_out=1)


def run_stages(strategy, space_, alpha_for_stage):
    """Walk the stages as the pipeline does; ``alpha_for_stage(s, net)`` stands for training."""
    nets = []
    for s, stage in enumerate(strategy.stages(space_)):
        net = strategy.build_supernet(stage.space, n_num_features=3, cat_cardinalities=[],
                                      d_out=1)
        strategy.bind(net)
        with torch.no_grad():
            net.alpha.copy_(alpha_for_stage(s, net))
        nets.append(net)
    return nets


def test_stages_deepen_the_supernet_and_shrink_each_edges_ops():
    strategy = PDARTS()
    assert strategy.schedule(space(3)) == ((1, 2, 3), (3, 2))  # 4 ops: ceil(4 * 5/8), ceil(4 * 3/8)

    def alpha(s, net):  # every stage prefers linear, then ffn, then skip, then attention
        return torch.tensor([0.0, 2.0, 3.0, 1.0, 5.0]).expand_as(net.alpha)

    nets = run_stages(strategy, space(3), alpha)
    assert [net.space.n_cells for net in nets] == [1, 2, 3]
    assert next(PDARTS().stages(space(3))).share == pytest.approx(1 / 3)
    kept = [net.kept[0].tolist() for net in nets]
    assert all(kept[0][e] == [True] * 5 for e in range(3))  # stage 1 offers every op
    # stage 2: the 3 strongest other than `none` (which stays until the last stage)
    assert kept[1][0] == [False, True, True, True, True]
    # stage 3: the 2 strongest, and `none` dropped
    assert kept[2][0] == [False, True, True, False, False]
    assert nets[2].kept.all(dim=0).tolist() == nets[2].kept[0].tolist()  # same in every cell
    weights = nets[2].normalized().detach()
    assert float(weights[..., 0].abs().max()) == 0.0 and float(weights[..., 4].abs().max()) == 0.0
    assert torch.allclose(weights.sum(-1), torch.ones(3, 3))


def test_sdarts_over_pdarts_walks_the_bases_stages_on_its_own_copy():
    from tabnas.nas.strategies import SmoothDARTS

    users = SmoothDARTS("pdarts")
    strategy = make_strategy(users)  # as the pipeline copies it per fit

    def alpha(s, net):
        return torch.tensor([0.0, 2.0, 3.0, 1.0, 5.0]).expand_as(net.alpha)

    nets = run_stages(strategy, space(3), alpha)  # the stages' pruning needs the bound base
    assert [net.space.n_cells for net in nets] == [1, 2, 3]
    assert nets[2].kept[0][0].tolist() == [False, True, True, False, False]
    assert strategy.base is not users.base and users.base.supernet is None  # untouched
    # the perturbation never gives weight to an op the last stage pruned
    strategy.step_started(10, 11)  # the widest radius, 0.3
    noisy = strategy.training_weights(None, None)
    offered = nets[2].kept
    assert float(noisy[~offered].abs().max()) == 0.0
    assert torch.allclose(noisy.sum(-1), torch.ones(noisy.shape[:-1]))


def test_pruned_ops_never_run_and_selection_ignores_them():
    net = supernet(space(1))
    kept = torch.tensor([True, False, True, True, True]).expand(3, 5)
    net.prune_ops(kept)
    calls = []
    for mixed in net.cells[0]:
        mixed.ops["ffn"].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        net.alpha[..., 1] = 10.0  # the pruned op has by far the largest logit
    net(torch.randn(8, 3), torch.zeros(8, 0, dtype=torch.long))
    assert calls == []
    architecture = argmax_select(net)
    assert "ffn" not in architecture.ops
    with pytest.raises(ValueError, match="at least one op"):
        supernet(space(1)).prune_ops(torch.zeros(3, 5, dtype=torch.bool))


def test_skip_dropout_is_held_then_decays_and_acts_in_training_only():
    strategy = PDARTS(skip_dropout=(0.5, 0.5, 0.5))
    nets = run_stages(strategy, space(1), lambda s, net: net.alpha)
    mixed = nets[-1].cells[0][0]
    strategy.step_started(10, 100)
    assert mixed.dropout["skip"] == pytest.approx(0.5)
    strategy.step_started(100, 100)
    assert mixed.dropout["skip"] == pytest.approx(0.5 * torch.e ** -3)
    strategy.step_started(0, 100)
    x = torch.ones(64, 4, 4)
    skip_only = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    active = [False, False, False, True, False]
    mixed.eval()
    assert torch.equal(mixed(x, skip_only, active), x)
    mixed.train()
    out = mixed(x, skip_only, active)
    assert 0.3 < float((out == 0).float().mean()) < 0.7  # about half the entries dropped


def test_the_cap_turns_the_weakest_extra_skips_into_the_strongest_other_op():
    strategy = PDARTS(max_skips=1)
    nets = run_stages(strategy, space(1), lambda s, net: net.alpha)
    net = nets[-1]
    with torch.no_grad():
        net.alpha.zero_()
        net.alpha[0, 0, 3] = 2.0  # edge in -> n1: a strong skip
        net.alpha[0, 2, 3] = 1.0  # edge n1 -> n2: a weaker skip, whose next best is ...
        net.alpha[0, 2, 2] = 0.5  # ... linear (still offered on that edge)
        net.alpha[0, 0, 4] = 5.0  # `none`, not offered by the last stage: it counts for nothing
    net.kept[...] = True  # as after selection, which fixes every edge
    strategy._offered = torch.tensor([True, True, True, True, False]).expand(3, 5)  # no `none`
    chosen = Architecture.chain([["skip", "skip"]], space(1).settings)
    capped = strategy.finalize(chosen)
    assert [[e.op for e in node] for node in capped.cells[0]] == [["skip"], ["linear"]]
    assert PDARTS(max_skips=None).finalize(chosen) is chosen


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="last stage"):
        PDARTS(depths=(1, 2)).schedule(space(3))
    with pytest.raises(ValueError, match="one count per stage"):
        PDARTS(depths=(1, 3), n_kept=(3, 2)).schedule(space(3))
    with pytest.raises(ValueError, match="skip_dropout"):
        PDARTS(skip_dropout=(1.5,))
    assert isinstance(make_strategy("pdarts"), PDARTS)


@pytest.mark.parametrize("selection", ["pt", "argmax"])
def test_pdarts_fits_with_either_selector(selection):
    X, y = load_breast_cancer(return_X_y=True)
    clf = TabNASClassifier(
        preset="fast", max_search_steps=30, max_epochs=2, ensemble_size=1,
        search_strategy=PDARTS(skip_dropout=(0.2,)), selection=selection, random_state=0,
    ).fit(X[:200], y[:200])
    phases = [row["phase"] for row in clf.history_]
    assert "search-stage" in phases and "search" in phases
    stages = {row["stage"] for row in clf.history_ if row["phase"] == "search-stage"}
    assert stages == {0, 1}  # three stages: the first two relabelled
    assert len(clf.selected_architecture_.cells) == 2
    assert clf.predict(X[:5]).shape == (5,)
