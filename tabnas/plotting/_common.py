"""What the figures share: matplotlib on demand, the fitted check, colours, phase shading."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from tabnas.nas.ops import NONE_OP

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FITTED = ["history_", "search_space_", "selection_trace_", "best_epoch_"]
SEARCH_PHASES = ("search", "select")


def figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tabnas.plotting needs matplotlib; install it with `pip install matplotlib`"
            " or `pip install tabnas[plot]`"
        ) from error
    return Figure


def check_fitted(estimator: Any) -> None:
    check_is_fitted(estimator, attributes=FITTED)


def save(fig: Figure, path: str | os.PathLike[str] | None, dpi: float) -> None:
    if path is not None:
        fig.savefig(path, dpi=dpi)


def op_colors(ops: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per op (``none`` is grey), shared by every figure of the package."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    colors: dict[str, Any] = {}
    k = 0
    for op in ops:
        if op == NONE_OP:
            colors[op] = "0.55"
        else:
            colors[op] = palette(k % 10)
            k += 1
    return colors


def color(colors: dict[str, Any], op: str) -> Any:
    return colors.get(op, "0.3")


def epochs(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([row["epoch"] for row in rows], dtype=float)


def column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([row.get(key, np.nan) for row in rows], dtype=float)


def marker(n_points: int) -> str | None:
    """Dots on short curves, so that a one-epoch run still shows a point."""
    return "o" if n_points <= 30 else None


def shade_phases(ax: Axes, rows: list[dict[str, Any]]) -> None:
    """Shade the warm-up (weights only) and the PT tuning (``select``) evaluations."""
    points = epochs(rows)
    warmup = [
        e for e, row in zip(points, rows)
        if row.get("phase") == "search" and not row.get("arch_steps", True)
    ]
    select = [e for e, row in zip(points, rows) if row.get("phase") == "select"]
    if warmup:
        ax.axvspan(min(warmup) - 0.5, max(warmup) + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0)
    if select:
        ax.axvspan(
            min(select) - 0.5, max(select) + 0.5, color="tab:olive", alpha=0.12, lw=0, zorder=0
        )


def phase_patches(rows: list[dict[str, Any]]) -> list[Any]:
    from matplotlib.patches import Patch

    patches = []
    if any(row.get("phase") == "search" and not row.get("arch_steps", True) for row in rows):
        patches.append(Patch(color="0.85", alpha=0.6, label="warm-up (weights only)"))
    if any(row.get("phase") == "select" for row in rows):
        patches.append(Patch(color="tab:olive", alpha=0.12, label="PT selection (tuning)"))
    return patches
