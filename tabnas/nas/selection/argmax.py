"""DARTS's selection rule: strongest op per edge, strongest inputs per node."""

from __future__ import annotations

from tabnas.nas.selection.base import (
    SelectionContext,
    Selector,
    argmax_op,
    edge_strength,
    incoming_edges,
)
from tabnas.nas.selection.trace import Decision
from tabnas.nas.space import Architecture
from tabnas.nas.supernet import SuperNetwork


class ArgmaxSelector(Selector):
    name = "argmax"

    def select(
        self, supernet: SuperNetwork, context: SelectionContext
    ) -> tuple[Architecture, list[Decision]]:
        return argmax_select(supernet), []


def argmax_select(supernet: SuperNetwork) -> Architecture:
    """Fix every open edge by the DARTS rule; used alone or as PT's time-limit fallback."""
    space = supernet.space
    for c in range(space.n_cells):
        for target in range(1, space.n_nodes + 1):
            edges = [e for e in incoming_edges(supernet, c, target) if not supernet.is_fixed(c, e)]
            decided = [e for e in incoming_edges(supernet, c, target) if supernet.is_fixed(c, e)]
            free_slots = max(space.node_inputs - len(decided), 0)
            ranked = sorted(edges, key=lambda e: edge_strength(supernet, c, e), reverse=True)
            for rank, e in enumerate(ranked):
                if rank < free_slots:
                    supernet.fix_edge(c, e, argmax_op(supernet, c, e))
                else:
                    supernet.remove_edge(c, e)
            # Inputs fixed earlier (by PT) beyond the allowed number go by strength too.
            kept = sorted(decided, key=lambda e: edge_strength(supernet, c, e), reverse=True)
            for e in kept[space.node_inputs :]:
                supernet.remove_edge(c, e)
    return supernet.to_architecture()
