"""PT-DARTS (Wang et al. 2021): perturbation-based architecture selection.

As in the official darts-pt code: edges are decided one at a time in a seeded random
order. For each candidate op of the edge, that op's weight is zeroed (no
renormalisation) and the whole supernet is scored on the architecture half; the op whose
removal hurts most is kept and the edge is fixed to it. The supernet is tuned between
decisions. Then each node with more inputs than allowed loses, one at a time, the input
whose removal hurts least.
"""

from __future__ import annotations

from tabnas.nas.selection.argmax import argmax_select
from tabnas.nas.selection.base import (
    Criterion,
    Evaluate,
    SelectionContext,
    Selector,
    candidate_ops,
    incoming_edges,
    shuffled,
)
from tabnas.nas.selection.trace import Decision, Fallback, InputDecision, OpDecision
from tabnas.nas.space import Architecture
from tabnas.nas.supernet import SuperNetwork


class PerturbationSelector(Selector):
    """PT selection.

    Args:
        criterion: ``"accuracy"`` ranks removals by the accuracy left (ties broken by
            loss), as the official code's default; ``"loss"`` by the loss alone (the only
            choice for regression). ``None`` (the default) takes the context's: accuracy
            for classifiers, loss for regressors.
    """

    name = "pt"
    tunes = True

    def __init__(self, *, criterion: Criterion | None = None):
        if criterion not in (None, "accuracy", "loss"):
            raise ValueError(f"criterion must be 'accuracy', 'loss' or None, got {criterion!r}")
        self.criterion = criterion

    def __repr__(self) -> str:
        return f"PerturbationSelector(criterion={self.criterion!r})"

    def n_decisions(self, supernet: SuperNetwork) -> int:
        space = supernet.space
        inputs = sum(
            max(len(incoming_edges(supernet, c, t)) - space.node_inputs, 0)
            for c in range(space.n_cells)
            for t in range(1, space.n_nodes + 1)
        )
        return space.n_cells * space.n_edges + inputs

    def harm(
        self, scores: dict[str, float], criterion: Criterion | None = None
    ) -> tuple[float, ...]:
        """How bad a supernet scores; larger is worse."""
        if (criterion or self.criterion) == "accuracy":
            return (-scores["accuracy"], scores["loss"])
        return (scores["loss"],)

    def damage(
        self, base: dict[str, float], scores: dict[str, float], criterion: Criterion | None = None
    ) -> float:
        """The damage a removal did: accuracy lost, or loss gained."""
        if (criterion or self.criterion) == "accuracy":
            return base["accuracy"] - scores["accuracy"]
        return scores["loss"] - base["loss"]

    def select(
        self, supernet: SuperNetwork, context: SelectionContext
    ) -> tuple[Architecture, list[Decision]]:
        criterion = self.criterion or context.criterion
        evaluate, tune, seed, expired = (
            context.evaluate, context.tune, context.seed, context.expired
        )
        space = supernet.space
        trace: list[Decision] = []
        edges = shuffled(
            [(c, e) for c in range(space.n_cells) for e in range(space.n_edges)], seed
        )
        nodes = shuffled(
            [(c, t) for c in range(space.n_cells) for t in range(1, space.n_nodes + 1)], seed + 1
        )
        node_decisions = [
            (c, t) for c, t in nodes if len(incoming_edges(supernet, c, t)) > space.node_inputs
        ]
        n_decisions = self.n_decisions(supernet)

        def decided() -> None:
            if len(trace) < n_decisions and not expired():
                tune()

        for c, e in edges:
            if expired():
                break
            trace.append(self._decide_op(supernet, evaluate, criterion, c, e, step=len(trace)))
            decided()
        for c, target in node_decisions:
            while len(incoming_edges(supernet, c, target)) > space.node_inputs and not expired():
                trace.append(
                    self._prune_input(supernet, evaluate, criterion, c, target, step=len(trace))
                )
                decided()
        if expired():  # whatever is left goes by the DARTS rule
            trace.append(Fallback(step=len(trace), reason="time_limit"))
        return argmax_select(supernet), trace

    def _decide_op(
        self,
        supernet: SuperNetwork,
        evaluate: Evaluate,
        criterion: Criterion,
        c: int,
        e: int,
        step: int,
    ) -> OpDecision:
        base_weights = supernet.default_weights().detach()
        base = evaluate(base_weights)
        scores = {}
        for k in candidate_ops(supernet, c, e):
            weights = base_weights.clone()
            weights[c, e, k] = 0.0
            scores[supernet.space.ops[k]] = evaluate(weights)
        kept = max(scores, key=lambda op: self.harm(scores[op], criterion))
        supernet.fix_edge(c, e, kept)
        source, target = supernet.space.edges[e]
        return OpDecision(
            step=step, cell=c, edge=e, source=source, target=target, criterion=criterion,
            base=base, scores=scores,
            damage={op: self.damage(base, s, criterion) for op, s in scores.items()}, kept=kept,
        )

    def _prune_input(
        self,
        supernet: SuperNetwork,
        evaluate: Evaluate,
        criterion: Criterion,
        c: int,
        target: int,
        step: int,
    ) -> InputDecision:
        base_weights = supernet.default_weights().detach()
        base = evaluate(base_weights)
        scores = {}
        for e in incoming_edges(supernet, c, target):
            weights = base_weights.clone()
            weights[c, e] = 0.0
            scores[e] = evaluate(weights)
        removed = min(scores, key=lambda e: self.harm(scores[e], criterion))
        supernet.remove_edge(c, removed)
        source = {e: supernet.space.edges[e][0] for e in scores}
        return InputDecision(
            step=step, cell=c, target=target, criterion=criterion, base=base,
            scores={source[e]: s for e, s in scores.items()},
            damage={source[e]: self.damage(base, s, criterion) for e, s in scores.items()},
            removed=source[removed],
        )
