"""Selectors: PT-DARTS finds the op a supernet cannot do without; argmax follows alpha."""

import pytest
import torch

from tabnas.nas.ops import OpSettings
from tabnas.nas.selection import (
    ArgmaxSelector,
    Fallback,
    PerturbationSelector,
    SelectionContext,
    make_selector,
    trace_to_dicts,
)
from tabnas.nas.space import SearchSpace
from tabnas.nas.supernet import SuperNetwork

OPS = ("attention", "ffn", "resnet", "linear", "skip", "none")


def supernet(n_cells=2, n_nodes=2, node_inputs=1):
    space = SearchSpace(
        n_cells=n_cells, n_nodes=n_nodes, node_inputs=node_inputs, ops=OPS,
        settings=OpSettings(d_token=8, n_heads=2),
    )
    net = SuperNetwork(space=space, n_num_features=2, cat_cardinalities=[], d_out=1)
    with torch.no_grad():  # the search trusts 'skip' everywhere (DARTS's failure mode)
        net.alpha.zero_()
        net.alpha[..., OPS.index("skip")] = 3.0
    return net


def planted(needed: dict, needed_inputs: dict | None = None):
    """A supernet score in which each edge (c, e) needs op needed[(c, e)].

    The loss grows when the needed op's weight shrinks; removing 'skip' barely matters.
    ``needed_inputs[(c, target)]`` is the source edge whose removal hurts.
    """
    calls = []

    def evaluate(weights):
        calls.append(weights.clone())
        loss = 1.0
        for (c, e), op in needed.items():
            loss += 10.0 * (1.0 - float(weights[c, e, OPS.index(op)] > 0))
            loss += 0.1 * float(weights[c, e].sum() < 1e-9)
        for (c, e) in (needed_inputs or {}).values():
            loss += 5.0 * float(weights[c, e].sum() < 1e-9)
        loss += 0.01 * float(weights[..., OPS.index("skip")].sum())
        return {"loss": loss, "accuracy": 1.0 / loss}

    return evaluate, calls


def test_pt_keeps_the_necessary_op_where_argmax_keeps_skip():
    net = supernet()
    edges = net.space.edges  # ((0,1), (0,2), (1,2))
    needed = {
        (0, 0): "ffn", (0, 1): "resnet", (0, 2): "attention",
        (1, 0): "linear", (1, 1): "ffn", (1, 2): "resnet",
    }
    # Node 2 keeps one input: keep 1->2 in cell 0, 0->2 in cell 1.
    needed_inputs = {(0, 2): (0, edges.index((1, 2))), (1, 2): (1, edges.index((0, 2)))}
    evaluate, calls = planted(needed, needed_inputs)
    tunes = []
    selector = PerturbationSelector(criterion="loss")
    assert selector.tunes and selector.n_decisions(net) == 6 + 2
    arch, trace = selector.select(
        net, SelectionContext(evaluate=evaluate, tune=lambda: tunes.append(1), seed=0)
    )
    op_rows = [r for r in trace if r.kind == "op"]
    assert len(op_rows) == 6
    for row in op_rows:
        assert row.kept == needed[(row.cell, row.edge)]
        assert max(row.damage, key=row.damage.get) == row.kept
        assert "none" not in row.scores  # masking 'none' changes nothing
    input_rows = [r for r in trace if r.kind == "input"]
    assert {(r.cell, r.removed) for r in input_rows} == {(0, 0), (1, 1)}  # source nodes removed
    assert arch.cells[0][1][0].source == 1 and arch.cells[0][1][0].op == "attention"
    assert arch.cells[1][1][0].source == 0 and arch.cells[1][1][0].op == "ffn"
    assert "cell 1: n2 = ffn(in)" in str(arch)  # n1 of cell 1 is dead and not shown
    # Tuning happens between decisions, not after the last one.
    assert len(tunes) == len(trace) - 1
    # Each op decision scores the base supernet and every non-'none' op.
    assert len(calls) == 6 * 6 + 2 * 3

    argmax_arch, argmax_trace = ArgmaxSelector().select(
        supernet(), SelectionContext(evaluate=evaluate)
    )
    assert set(argmax_arch.ops) == {"skip"} and argmax_trace == []


def test_pt_edge_order_is_random_but_seeded():
    orders = []
    for seed in (0, 0, 1):
        evaluate, _ = planted({})
        _, trace = PerturbationSelector().select(
            supernet(), SelectionContext(evaluate=evaluate, seed=seed)
        )
        orders.append([(r.cell, r.edge) for r in trace if r.kind == "op"])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    assert sorted(orders[0]) == sorted(orders[2])


def test_accuracy_criterion_breaks_ties_by_loss():
    harm = PerturbationSelector(criterion="accuracy").harm
    assert harm({"accuracy": 0.5, "loss": 2.0}) > harm({"accuracy": 0.5, "loss": 1.0})
    assert harm({"accuracy": 0.4, "loss": 0.1}) > harm({"accuracy": 0.5, "loss": 9.0})


def test_time_limit_falls_back_to_argmax_for_the_rest():
    evaluate, _ = planted({})
    count = {"n": 0}

    def expired():
        count["n"] += 1
        return count["n"] > 2

    arch, trace = PerturbationSelector().select(
        supernet(), SelectionContext(evaluate=evaluate, expired=expired)
    )
    assert isinstance(trace[-1], Fallback) and trace[-1].reason == "time_limit"
    assert 1 <= len([r for r in trace if r.kind == "op"]) < 6
    assert len(arch.cells) == 2


def test_criterion_comes_from_the_context_unless_the_selector_sets_it():
    calls = []

    def evaluate(weights):  # accuracy says keep 'ffn' on every edge, loss says 'linear'
        calls.append(1)
        acc = 0.5 + 0.1 * float(weights[..., OPS.index("ffn")].sum())
        loss = 1.0 + float(weights[..., OPS.index("linear")].sum())
        return {"accuracy": acc, "loss": 1.0 / loss}

    by_context, _ = PerturbationSelector().select(
        supernet(), SelectionContext(evaluate=evaluate, criterion="accuracy")
    )
    by_loss, _ = PerturbationSelector().select(
        supernet(), SelectionContext(evaluate=evaluate, criterion="loss")
    )
    overridden, _ = PerturbationSelector(criterion="loss").select(
        supernet(), SelectionContext(evaluate=evaluate, criterion="accuracy")
    )
    assert set(by_context.ops) == {"ffn"}
    assert set(by_loss.ops) == set(overridden.ops) == {"linear"}


def test_unknown_selector_and_criterion():
    with pytest.raises(ValueError, match="available"):
        make_selector("random")
    with pytest.raises(ValueError, match="criterion"):
        PerturbationSelector(criterion="auc")
    configured = PerturbationSelector(criterion="accuracy")
    made = make_selector(configured)
    assert made is not configured and made.criterion == "accuracy"
    assert repr(made) == "PerturbationSelector(criterion='accuracy')"


def test_trace_records_become_json_safe_dicts():
    import json

    evaluate, _ = planted({(0, 0): "ffn"}, {})
    _, trace = PerturbationSelector(criterion="loss").select(
        supernet(), SelectionContext(evaluate=evaluate)
    )
    rows = trace_to_dicts(trace)
    assert [row["kind"] for row in rows] == [r.kind for r in trace]
    first = next(
        row for row in rows if row["kind"] == "op" and row["cell"] == 0 and row["edge"] == 0
    )
    assert (
        first["kept"] == "ffn"
        and set(first["damage"]) == {"attention", "ffn", "resnet", "linear", "skip"}
    )
    json.dumps(rows)
