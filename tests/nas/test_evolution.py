"""Regularised evolution: one-decision mutations, aging, the budgets, and that it beats
random sampling on a synthetic score."""

import random
import statistics

import pytest

from tabnas.nas.evolution import mutate, regularized_evolution
from tabnas.nas.space import SearchSpace

SPACES = [
    SearchSpace(),  # 2 nodes, 1 input each
    SearchSpace(n_cells=2, n_nodes=2, node_inputs=2),  # the fast preset's shape
    SearchSpace(n_cells=1, n_nodes=3, node_inputs=1, ops=("linear", "skip", "none")),
    SearchSpace(n_cells=3, n_nodes=3, node_inputs=2),
]


def decisions(architecture):
    """(cell, node, source) -> op of every edge."""
    return {
        (c, target, edge.source): edge.op
        for c, cell in enumerate(architecture.cells)
        for target, inputs in enumerate(cell, start=1)
        for edge in inputs
    }


@pytest.mark.parametrize("space", SPACES)
def test_a_mutation_is_a_different_point_of_the_space_one_decision_away(space):
    rng = random.Random(0)
    kinds = set()
    for seed in range(100):
        parent = space.sample(seed)
        child = mutate(parent, space, rng)
        assert child != parent and space.contains(child)
        assert child.settings == parent.settings
        assert child.num_embedding == parent.num_embedding
        before, after = decisions(parent), decisions(child)
        changed_op = [k for k in before if k in after and before[k] != after[k]]
        moved = set(before) ^ set(after)
        if moved:  # an input mutation: one edge reads another node, with the same op
            assert not changed_op and len(moved) == 2
            (old,), (new,) = set(before) - set(after), set(after) - set(before)
            assert old[:2] == new[:2] and before[old] == after[new]
            assert new[1] in child.live_nodes(new[0])  # the changed node feeds the output
            kinds.add("input")
        else:  # an op mutation: one edge, a new op other than none
            assert len(changed_op) == 1 and after[changed_op[0]] != "none"
            assert changed_op[0][1] in child.live_nodes(changed_op[0][0])
            kinds.add("op")
    can_move = space.node_inputs < space.n_nodes
    assert kinds == ({"op", "input"} if can_move else {"op"})


def test_a_space_of_one_point_has_no_mutation():
    space = SearchSpace(n_cells=1, n_nodes=1, ops=("linear", "none"))
    with pytest.raises(ValueError, match="one point"):
        mutate(space.sample(0), space, random.Random(0))


def test_aging_removes_the_oldest_even_when_it_is_the_best():
    space = SearchSpace()
    evaluated = []

    def evaluate(architecture):  # each evaluation scores lower: the oldest is the best
        evaluated.append(architecture)
        return -float(len(evaluated))

    result = regularized_evolution(
        space, evaluate, population_size=4, sample_size=2, max_evaluations=12, seed=0
    )
    assert [i.index for i in result.history] == list(range(12))
    assert [i.architecture for i in result.history] == evaluated
    assert [i.index for i in result.population] == [8, 9, 10, 11]  # the youngest four
    assert result.best.index == 0
    assert all(i.parent is None for i in result.history[:4])
    for child in result.history[4:]:  # each parent was in the population of its cycle
        assert child.parent is not None and child.index - 4 <= child.parent < child.index
        parent = result.history[child.parent].architecture
        assert child.architecture != parent and space.contains(child.architecture)


def test_the_budget_in_seconds_counts_the_clock_and_always_allows_one_evaluation():
    now = [0.0]

    def evaluate(architecture):
        now[0] += 1.0  # each evaluation takes one second
        return 0.0

    result = regularized_evolution(
        SearchSpace(), evaluate, population_size=3, max_seconds=5, clock=lambda: now[0]
    )
    assert len(result.history) == 5 and all(i.seconds == 1.0 for i in result.history)
    now[0] = 0.0
    once = regularized_evolution(SearchSpace(), evaluate, max_seconds=0, clock=lambda: now[0])
    assert len(once.history) == 1


def test_the_initial_population_comes_first_then_random_points():
    space = SearchSpace()
    initial = [space.chain(["attention", "ffn"]), space.chain(["resnet", "skip"])]
    result = regularized_evolution(
        space, lambda a: 0.0, population_size=3, sample_size=2, max_evaluations=5,
        initial=initial,
    )
    assert [i.architecture for i in result.history[:2]] == initial
    assert all(space.contains(i.architecture) for i in result.history)
    with pytest.raises(ValueError, match="outside the space"):
        regularized_evolution(space, lambda a: 0.0, max_evaluations=2,
                              initial=[SearchSpace(n_nodes=3).sample(0)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_evaluations=5, sample_size=4, population_size=3), "sample_size"),
        ({}, "budget"),
        (dict(max_evaluations=0), "max_evaluations"),
        (dict(max_evaluations=5, population_size=0), "population_size"),
    ],
)
def test_bad_settings_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        regularized_evolution(SearchSpace(), lambda a: 0.0, **kwargs)


def test_evolution_finds_the_optimum_sooner_than_random_sampling():
    # 6 edges x 5 ops: the all-attention network is one point of 15,625
    space = SearchSpace(n_cells=2, n_nodes=2, node_inputs=2)
    budget, optimum = 300, 6.0

    def score(architecture):
        return float(architecture.ops.count("attention"))

    def evaluations_to_optimum(scores):
        return next((i + 1 for i, s in enumerate(scores) if s == optimum), budget + 1)

    evolution, sampling = [], []
    for seed in range(8):
        result = regularized_evolution(space, score, max_evaluations=budget, seed=seed)
        evolution.append(evaluations_to_optimum([i.score for i in result.history]))
        sampling.append(evaluations_to_optimum(
            [score(space.sample(seed=budget * seed + i)) for i in range(budget)]
        ))
    assert statistics.mean(evolution) < 0.8 * statistics.mean(sampling)
    assert sum(n <= budget for n in evolution) >= 4  # found within the budget on most seeds
