"""The PT-DARTS decisions: how much removing each candidate hurt the supernet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabnas.nas.selection.trace import Fallback, InputDecision, OpDecision
from tabnas.nas.space import edge_name, node_name
from tabnas.plotting._common import check_fitted, color, figure_class, op_colors, save

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _criterion_label(rows: Sequence[OpDecision | InputDecision]) -> str:
    criteria = {row.criterion for row in rows}
    if criteria == {"accuracy"}:
        return "accuracy lost when removed"
    if criteria == {"loss"}:
        return "loss gained when removed"
    return "damage when removed"


def plot_selection_trace(
    estimator: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    dpi: float = 120,
) -> Figure:
    """Plot the PT-DARTS decisions: how much removing each candidate hurt the supernet.

    The top panel has one group of bars per edge decision, in the order PT made them
    (the tick ``"3. cell 1 / in->n2"`` is the third decision of the whole selection).
    Each bar is the damage of masking one op on that edge: the accuracy lost
    (classification) or the loss gained (regression) on the architecture half. PT keeps
    the op whose removal hurts most; its bar is outlined and starred. When nodes had more
    inputs than allowed, a second panel shows the input-pruning decisions: the damage of
    removing each incoming edge, with the removed one (the least harmful) hatched in red.

    Parameters
    ----------
    estimator : TabNASClassifier or TabNASRegressor
        An estimator fitted with ``selection="pt"``.
    path : str or path-like, default=None
        Where to save the figure; the format follows the suffix (PNG without one).
    dpi : float, default=120
        Resolution of the saved image.

    Returns
    -------
    matplotlib.figure.Figure
        The figure: one axes for the op decisions, plus one for the input decisions when
        there were any.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If the estimator has no PT decisions: it was fitted with ``selection="argmax"``,
        or the time limit ran out before PT decided anything.
    """
    Figure = figure_class()
    check_fitted(estimator)
    trace = list(estimator.selection_trace_)
    if not trace:
        selection = getattr(estimator, "selection", None)
        raise ValueError(
            f"{type(estimator).__name__} has an empty selection trace (selection={selection!r});"
            " only PT-DARTS selection records one: fit with selection=\"pt\" to plot it"
        )
    op_rows = [row for row in trace if isinstance(row, OpDecision)]
    input_rows = [row for row in trace if isinstance(row, InputDecision)]
    fallback = [row for row in trace if isinstance(row, Fallback)]
    if not op_rows and not input_rows:
        raise ValueError(
            "the selection trace holds no PT decision: the time limit ran out before PT"
            " decided an edge, and every edge was chosen by argmax; raise time_limit"
        )
    space = estimator.search_space_
    colors = op_colors(space.ops)
    n_groups = max(len(op_rows), len(input_rows), 1)
    n_panels = int(bool(op_rows)) + int(bool(input_rows))
    fig = Figure(
        figsize=(max(7.0, 1.5 + 1.0 * n_groups), 0.9 + 3.3 * n_panels), layout="constrained"
    )
    axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
    panel = iter(axes)
    if op_rows:
        _draw_op_decisions(fig, next(panel), op_rows, space.ops, colors)
    if input_rows:
        _draw_input_decisions(fig, next(panel), input_rows)
    title = (
        f"PT-DARTS selection: {len(op_rows)} edge decision(s),"
        f" {len(input_rows)} input pruning(s)"
    )
    if fallback:
        title += "\n(time limit reached: the remaining edges were decided by argmax)"
    fig.suptitle(title, fontsize=11)
    save(fig, path, dpi)
    return fig


def _draw_op_decisions(
    fig: Figure, ax: Axes, rows: list[OpDecision], ops: Sequence[str], colors: dict[str, Any]
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import offset_copy

    above = offset_copy(ax.transData, fig=fig, y=5, units="points")
    candidates = [op for op in ops if any(op in row.damage for row in rows)]
    candidates += sorted({op for row in rows for op in row.damage} - set(candidates))
    width = 0.8 / len(candidates)
    for i, row in enumerate(rows):
        for j, op in enumerate(candidates):
            if op not in row.damage:
                continue
            x = i - 0.4 + width * (j + 0.5)
            value = float(row.damage[op])
            kept = op == row.kept
            ax.bar(
                x, value, width=width * 0.92, color=color(colors, op),
                edgecolor="black" if kept else "none", linewidth=1.6 if kept else 0,
                alpha=1.0 if kept else 0.75, zorder=2,
            )
            # A dot on every bar, so that a zero damage still shows.
            ax.plot(x, value, marker="o", markersize=3.5, color=color(colors, op), zorder=3)
            if kept:
                ax.plot(
                    x, max(value, 0.0), marker="*", markersize=11, color="black",
                    transform=above, clip_on=False, zorder=3,
                )
    _finish_decision_axes(
        ax,
        rows,
        [row.edge_name for row in rows],
        title="Edge decisions, in order: damage of removing each op",
        y_margin=0.15,
    )
    handles: list[Patch | Line2D] = [Patch(color=color(colors, op), label=op) for op in candidates]
    handles.append(
        Line2D(
            [], [], marker="*", color="black", ls="none", markersize=10, label="kept (most damage)"
        )
    )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
    )


def _draw_input_decisions(fig: Figure, ax: Axes, rows: list[InputDecision]) -> None:
    from matplotlib.patches import Patch
    from matplotlib.transforms import offset_copy

    above = offset_copy(ax.transData, fig=fig, y=3, units="points")
    most = max(len(row.damage) for row in rows)
    width = 0.8 / most
    for i, row in enumerate(rows):
        sources = list(row.damage)
        for j, source in enumerate(sources):
            x = i - width * len(sources) / 2 + width * (j + 0.5)
            value = float(row.damage[source])
            removed = source == row.removed
            color = "tab:red" if removed else "tab:blue"
            ax.bar(
                x, value, width=width * 0.92, color=color,
                alpha=0.55 if removed else 0.8, hatch="//" if removed else None,
                edgecolor="tab:red" if removed else "none", zorder=2,
            )
            ax.plot(x, value, marker="o", markersize=3.5, color=color, zorder=3)
            ax.text(
                x, max(value, 0.0), edge_name(source, row.target), transform=above, ha="center",
                va="bottom", fontsize=7, rotation=90 if most > 3 else 0, zorder=3, color=color,
                fontweight="bold" if removed else "normal",
            )
    _finish_decision_axes(
        ax,
        rows,
        [f"inputs of {node_name(row.target)}" for row in rows],
        title="Input pruning, in order: damage of removing each incoming edge",
        y_margin=0.25,
    )
    handles = [
        Patch(facecolor="tab:blue", alpha=0.8, label="kept input"),
        Patch(
            facecolor="tab:red", alpha=0.55, hatch="//", edgecolor="tab:red",
            label="removed (least damage)",
        ),
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
    )


def _finish_decision_axes(
    ax: Axes,
    rows: Sequence[OpDecision | InputDecision],
    what: list[str],
    *,
    title: str,
    y_margin: float,
) -> None:
    """Zero line, one tick per decision ("<step>. cell <c>" over ``what``), grid, labels."""
    ax.axhline(0.0, color="black", lw=0.8, zorder=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(
        [
            f"{row.step + 1}. cell {row.cell}\n{label}"
            for row, label in zip(rows, what)
        ],
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.margins(y=y_margin)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_ylabel(_criterion_label(rows))
    ax.set_title(title, fontsize=10)
