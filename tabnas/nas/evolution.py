"""Regularised (aging) evolution over the architectures of a :class:`SearchSpace`.

Real et al. 2019, "Regularized Evolution for Image Classifier Architecture Search",
Algorithm 1, as in the authors' reference notebook (google-research
``evolution/regularized_evolution_algorithm``): a population of ``population_size``
architectures starts from random points of the space; each cycle draws
``sample_size`` members at random (with replacement), mutates the best of them on
validation into a child, evaluates the child, adds it and removes the **oldest** member,
whatever its score. Every architecture is evaluated by a callable (architecture ->
validation score, higher is better), which may train it briefly.

A mutation changes one decision of the parent (:func:`mutate`). The budget is a number of
evaluations, a number of seconds, or both; the result is the history of every evaluation
in order, and its best member is the search's answer.

Defaults: ``population_size=10``, ``sample_size=3``, the NAS-Bench-201 setting of the
AutoDL-Projects ``R_EA.py`` scripts (the reference notebook's 100 / 10 is sized for a
thousand evaluations; a tabular search that trains each candidate affords tens).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tabnas.nas.ops import NONE_OP
from tabnas.nas.space import Architecture, Edge, SearchSpace

logger = logging.getLogger(__name__)

Evaluate = Callable[[Architecture], float]
"""Architecture -> validation score, higher is better."""


@dataclass(frozen=True)
class Individual:
    """One evaluation: ``index`` is its place in the evaluation order (its age), ``parent``
    the index it was mutated from (None for the random initial population)."""

    architecture: Architecture
    score: float
    index: int
    parent: int | None
    seconds: float


@dataclass(frozen=True)
class EvolutionResult:
    """Every evaluation in order (``history``) and the population at the end, oldest first."""

    history: tuple[Individual, ...]
    population: tuple[Individual, ...]

    @property
    def best(self) -> Individual:
        """The best-scoring evaluation; ties go to the earlier one."""
        return max(self.history, key=lambda individual: individual.score)


def mutate(architecture: Architecture, space: SearchSpace, rng: random.Random) -> Architecture:
    """A child of ``architecture`` that differs from it in exactly one decision.

    The kind of mutation is drawn first, uniformly among those possible (as Real et al.
    draw between their op and hidden-state mutations), then the place, then the new value:

    - **op**: one edge takes another op (never ``none``, as :meth:`SearchSpace.sample`);
    - **input**: one edge reads another earlier node of its cell, one the node does not
      read yet (a node keeps its number of inputs).

    Only the live part of a cell changes (the nodes its output depends on), so a child
    never differs from its parent in dead code alone. The child is a point of ``space``.
    """
    if architecture.backbone != "cells" or not space.contains(architecture):
        raise ValueError(f"mutate needs a 'cells' architecture of the space, got {architecture}")
    ops = [op for op in space.ops if op != NONE_OP]
    op_sites: list[tuple[int, int, int]] = []  # (cell, target node, input position)
    input_sites: list[tuple[int, int, int]] = []
    for c, cell in enumerate(architecture.cells):
        live = architecture.live_nodes(c)
        for target, inputs in enumerate(cell, start=1):
            if target not in live:
                continue
            free = len({e.source for e in inputs}) < target  # an earlier node not read yet
            for k, edge in enumerate(inputs):
                if any(op != edge.op for op in ops):
                    op_sites.append((c, target, k))
                if free:
                    input_sites.append((c, target, k))
    kinds = [sites for sites in (op_sites, input_sites) if sites]
    if not kinds:
        raise ValueError(f"no mutation changes {architecture}: the space has one point")
    sites = rng.choice(kinds)
    c, target, k = rng.choice(sites)
    edges = list(architecture.cells[c][target - 1])
    edge = edges[k]
    if sites is op_sites:
        edges[k] = Edge(source=edge.source, op=rng.choice([op for op in ops if op != edge.op]))
    else:
        used = {e.source for e in edges}
        free_sources = [s for s in range(target) if s not in used]
        edges[k] = Edge(source=rng.choice(free_sources), op=edge.op)
    node = tuple(sorted(edges, key=lambda e: e.source))
    cells = [list(cell) for cell in architecture.cells]
    cells[c][target - 1] = node
    return dataclasses.replace(architecture, cells=tuple(tuple(cell) for cell in cells))


def regularized_evolution(
    space: SearchSpace,
    evaluate: Evaluate,
    *,
    population_size: int = 10,
    sample_size: int = 3,
    max_evaluations: int | None = None,
    max_seconds: float | None = None,
    initial: Sequence[Architecture] = (),
    seed: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> EvolutionResult:
    """Aging evolution on ``space`` until ``max_evaluations`` evaluations or ``max_seconds``
    seconds (of ``clock``, counted from the call) have passed; at least one evaluation.

    The population starts with ``initial`` (points of ``space``, in order), filled up with
    random points of the space (:meth:`SearchSpace.sample`). A budget that ends before the
    population is full leaves random search. An architecture met again is evaluated
    again, as in the reference code (a brief training is a noisy measurement).
    """
    if population_size < 1:
        raise ValueError(f"population_size must be positive, got {population_size}")
    if not 1 <= sample_size <= population_size:
        raise ValueError(
            f"sample_size must be in 1..population_size={population_size}, got {sample_size}"
        )
    if max_evaluations is None and max_seconds is None:
        raise ValueError("give a budget: max_evaluations, max_seconds or both")
    if max_evaluations is not None and max_evaluations < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evaluations}")
    if len(initial) > population_size:
        raise ValueError(
            f"initial holds {len(initial)} architectures, more than population_size="
            f"{population_size}"
        )
    outside = [a for a in initial if not space.contains(a)]
    if outside:
        raise ValueError(f"initial architectures outside the space: {outside[0]}")
    if "cells" not in space.backbones:
        raise ValueError(f"evolution mutates 'cells' architectures; backbones={space.backbones}")

    rng = random.Random(seed)
    started = clock()
    history: list[Individual] = []
    population: deque[Individual] = deque()

    def exhausted() -> bool:
        if not history:
            return False
        if max_evaluations is not None and len(history) >= max_evaluations:
            return True
        return max_seconds is not None and clock() - started >= max_seconds

    def add(architecture: Architecture, parent: int | None) -> None:
        mark = clock()
        score = float(evaluate(architecture))
        individual = Individual(architecture, score, len(history), parent, clock() - mark)
        history.append(individual)
        population.append(individual)
        logger.debug("evaluation %d (parent %s): %.4g", individual.index, parent, score)

    for architecture in initial:
        if exhausted():
            break
        add(architecture, None)
    while len(population) < population_size and not exhausted():
        add(space.sample(seed=rng.randrange(2**31)), None)
    while not exhausted():
        sample = [rng.choice(population) for _ in range(sample_size)]
        parent = max(sample, key=lambda individual: individual.score)
        add(mutate(parent.architecture, space, rng), parent.index)
        population.popleft()  # the oldest goes, whatever its score
    return EvolutionResult(history=tuple(history), population=tuple(population))
