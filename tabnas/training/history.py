"""The per-epoch record of a fit: a list of plain dicts that tests and plots read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class History:
    """Rows of metrics, one per epoch of each phase (``search``, ``select``, ``retrain``)."""

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        self.rows: list[dict[str, Any]] = list(rows or [])

    def record(self, **row: Any) -> dict[str, Any]:
        self.rows.append(row)
        return row

    def phase(self, name: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("phase") == name]

    def column(self, key: str, *, phase: str | None = None) -> list[Any]:
        rows = self.rows if phase is None else self.phase(phase)
        return [row[key] for row in rows if key in row]

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def __repr__(self) -> str:
        phases = sorted({str(row.get("phase")) for row in self.rows})
        return f"History({len(self.rows)} rows; phases: {', '.join(phases)})"
