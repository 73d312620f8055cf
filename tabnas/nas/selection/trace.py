"""The selection trace: one typed record per decision a selector made.

``selection_trace_`` is a list of these; plots and tests read their fields, and
:func:`trace_to_dicts` turns them into JSON-safe dicts (with a ``kind`` key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from tabnas.nas.space import edge_name

Scores = dict[str, float]


@dataclass(frozen=True)
class OpDecision:
    """PT fixed edge ``edge`` (``source -> target``) of ``cell`` to the op ``kept``.

    ``scores[op]`` are the supernet's scores with ``op`` masked on that edge, ``damage[op]``
    how much worse they are than ``base`` (accuracy lost, or loss gained).
    """

    kind: ClassVar[str] = "op"
    step: int
    cell: int
    edge: int
    source: int
    target: int
    criterion: str
    base: Scores
    scores: dict[str, Scores]
    damage: dict[str, float]
    kept: str

    @property
    def edge_name(self) -> str:
        return edge_name(self.source, self.target)


@dataclass(frozen=True)
class InputDecision:
    """PT removed the input ``removed`` (a source node) of node ``target`` of ``cell``.

    ``scores`` and ``damage`` are keyed by the source node of each candidate input.
    """

    kind: ClassVar[str] = "input"
    step: int
    cell: int
    target: int
    criterion: str
    base: Scores
    scores: dict[int, Scores]
    damage: dict[int, float]
    removed: int


@dataclass(frozen=True)
class Fallback:
    """The remaining edges were decided by the argmax rule (``reason``: ``"time_limit"``)."""

    kind: ClassVar[str] = "fallback"
    step: int
    reason: str


Decision = OpDecision | InputDecision | Fallback


def trace_to_dicts(trace: list[Decision]) -> list[dict[str, Any]]:
    """The records as plain dicts with a ``kind`` key (JSON-safe keys)."""
    out = []
    for record in trace:
        row = {"kind": record.kind, **dataclasses.asdict(record)}
        for key in ("scores", "damage"):
            if key in row:
                row[key] = {str(k): v for k, v in row[key].items()}
        out.append(row)
    return out
