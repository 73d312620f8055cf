"""Figures of a fitted TabNAS estimator: architecture weights, PT decisions, learning curves.

Each function takes a fitted :class:`~tabnas.TabNASClassifier` or
:class:`~tabnas.TabNASRegressor`, returns a :class:`matplotlib.figure.Figure` and, when
``path`` is given, saves it there (PNG unless the file name's suffix says otherwise).

matplotlib is an optional dependency (``pip install tabnas[plot]``). It is imported only
when a function is called; the figures are built without :mod:`matplotlib.pyplot`, so
calling them neither opens windows nor changes the global backend. To show a figure in a
notebook, return it as the last expression of a cell.

Examples
--------
>>> from tabnas.plotting import plot_learning_curves
>>> fig = plot_learning_curves(clf, "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_architecture_weights", "plot_learning_curves", "plot_selection_trace"]

_FITTED = ["history_", "search_space_", "selection_trace_", "best_epoch_"]
_SEARCH_PHASES = ("search", "select")
_NONE_OP = "none"


# ---- helpers ----------------------------------------------------------------------------
def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tabnas.plotting needs matplotlib; install it with `pip install matplotlib`"
            " or `pip install tabnas[plot]`"
        ) from error
    return Figure


def _check_fitted(estimator: Any) -> None:
    check_is_fitted(estimator, attributes=_FITTED)


def _save(fig: Figure, path: str | os.PathLike[str] | None, dpi: float) -> None:
    if path is not None:
        fig.savefig(path, dpi=dpi)


def _node(index: int) -> str:
    """Node 0 of a cell is its input ``in``; node ``k`` is ``nk``."""
    return "in" if index == 0 else f"n{index}"


def _edge_label(source: int, target: int) -> str:
    return f"{_node(source)}->{_node(target)}"


def _op_colors(ops: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per op (``none`` is grey), shared by every figure of this module."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    colors, k = {}, 0
    for op in ops:
        if op == _NONE_OP:
            colors[op] = "0.55"
        else:
            colors[op] = palette(k % 10)
            k += 1
    return colors


def _color(colors: dict[str, Any], op: str) -> Any:
    return colors.get(op, "0.3")


def _epochs(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([row["epoch"] for row in rows], dtype=float)


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([row.get(key, np.nan) for row in rows], dtype=float)


def _marker(n_points: int) -> str | None:
    """Dots on short curves, so that a one-epoch run still shows a point."""
    return "o" if n_points <= 30 else None


def _shade_phases(ax: Axes, rows: list[dict[str, Any]]) -> None:
    """Shade the warm-up (weights only) and the PT tuning (``select``) epochs."""
    epochs = _epochs(rows)
    warmup = [
        e for e, row in zip(epochs, rows)
        if row.get("phase") == "search" and not row.get("arch_steps", True)
    ]
    select = [e for e, row in zip(epochs, rows) if row.get("phase") == "select"]
    if warmup:
        ax.axvspan(min(warmup) - 0.5, max(warmup) + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0)
    if select:
        ax.axvspan(min(select) - 0.5, max(select) + 0.5, color="tab:olive", alpha=0.12, lw=0, zorder=0)


def _phase_patches(rows: list[dict[str, Any]]) -> list[Any]:
    from matplotlib.patches import Patch

    patches = []
    if any(row.get("phase") == "search" and not row.get("arch_steps", True) for row in rows):
        patches.append(Patch(color="0.85", alpha=0.6, label="warm-up (weights only)"))
    if any(row.get("phase") == "select" for row in rows):
        patches.append(Patch(color="tab:olive", alpha=0.12, label="PT selection (tuning)"))
    return patches


def _final_ops(estimator: Any) -> dict[tuple[int, int, int], str]:
    """``(cell, source, target) -> op`` of the selected architecture, when there is one."""
    architecture = getattr(estimator, "architecture_", None)
    if architecture is None:
        return {}
    return {
        (c, edge.source, target): edge.op
        for c, cell in enumerate(architecture.cells)
        for target, inputs in enumerate(cell, start=1)
        for edge in inputs
    }


# ---- architecture weights ---------------------------------------------------------------
def plot_architecture_weights(
    estimator: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    dpi: float = 120,
) -> Figure:
    """Plot how the softmax architecture weights moved during search and selection.

    One row of panels per cell and one panel per edge (titled like ``"cell 0: in->n1"``;
    node 0 is the cell input ``in``, node ``k`` is ``nk``). Each panel draws one line per
    operation: its softmax weight after every ``search`` and ``select`` epoch, on a
    y-axis shared by all panels and scaled to the weights (the dotted line is the uniform
    weight ``1 / n_ops`` the search starts from). The warm-up epochs (no architecture
    steps) are shaded grey and the PT selection epochs olive. When PT fixes an edge its
    lines stop and a vertical line in the kept op's colour marks the first epoch with
    the edge fixed; a dashed black line marks an input PT removed. The title ends with
    the edge's op in the final architecture, or "removed"; it also covers the last
    decision, which no epoch follows.

    Parameters
    ----------
    estimator : TabNASClassifier or TabNASRegressor
        A fitted estimator.
    path : str or path-like, default=None
        Where to save the figure; the format follows the suffix (PNG without one).
    dpi : float, default=120
        Resolution of the saved image.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with ``n_cells * n_edges`` axes (one row per cell).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If the history holds no architecture weights (the search ran no epoch).
    """
    Figure = _figure_class()
    from matplotlib.lines import Line2D

    _check_fitted(estimator)
    space = estimator.search_space_
    rows = [row for row in estimator.history_ if row.get("phase") in _SEARCH_PHASES and "weights" in row]
    if not rows:
        raise ValueError(
            "the history holds no architecture weights: the search ran no epoch (was"
            " time_limit too short?)"
        )
    weights = np.asarray([row["weights"] for row in rows], dtype=float)  # (epochs, cells, edges, ops)
    expected = (space.n_cells, space.n_edges, len(space.ops))
    if weights.shape[1:] != expected:
        raise ValueError(
            f"recorded weights have shape {weights.shape[1:]}, but the search space has"
            f" (n_cells, n_edges, n_ops) = {expected}"
        )
    # PT's projection writes exact zeros and ones; a softmax never does.
    fixed = np.all((weights == 0.0) | (weights == 1.0), axis=-1)  # (epochs, cells, edges)
    removed = np.all(weights == 0.0, axis=-1)
    epochs = _epochs(rows)
    colors = _op_colors(space.ops)
    final = _final_ops(estimator)
    marker = _marker(len(rows))

    fig = Figure(
        figsize=(0.8 + 2.9 * space.n_edges, 1.2 + 2.2 * space.n_cells), layout="constrained"
    )
    axes = fig.subplots(space.n_cells, space.n_edges, sharex=True, sharey=True, squeeze=False)
    for c in range(space.n_cells):
        for e, (source, target) in enumerate(space.edges):
            ax = axes[c, e]
            _shade_phases(ax, rows)
            ax.axhline(1.0 / len(space.ops), color="0.4", ls=":", lw=1, zorder=1)
            for k, op in enumerate(space.ops):
                curve = np.where(fixed[:, c, e], np.nan, weights[:, c, e, k])
                ax.plot(
                    epochs, curve, color=_color(colors, op), marker=marker, markersize=3,
                    lw=1.5, ls="--" if op == _NONE_OP else "-", zorder=2,
                )
            if fixed[:, c, e].any():
                first = int(np.argmax(fixed[:, c, e]))
                if not removed[first, c, e]:
                    kept = space.ops[int(np.argmax(weights[first, c, e]))]
                    ax.axvline(epochs[first], color=_color(colors, kept), lw=2.5, zorder=3)
            if removed[:, c, e].any():
                gone = epochs[int(np.argmax(removed[:, c, e]))]
                ax.axvline(gone, color="black", ls="--", lw=1.5, zorder=3)
            title = f"cell {c}: {_edge_label(source, target)}"
            if final:
                title += f"  [{final.get((c, source, target), 'removed')}]"
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.ticklabel_format(axis="y", useOffset=False)
            if c == space.n_cells - 1:
                ax.set_xlabel("epoch")
            if e == 0:
                ax.set_ylabel("softmax weight")
    handles = [
        Line2D([], [], color=_color(colors, op), ls="--" if op == _NONE_OP else "-", lw=1.5, label=op)
        for op in space.ops
    ]
    handles.append(Line2D([], [], color="0.4", ls=":", label=f"uniform (1/{len(space.ops)})"))
    if fixed.any():
        handles.append(Line2D([], [], color="0.3", lw=2.5, label="PT fixed the edge (kept op's colour)"))
    if removed.any():
        handles.append(Line2D([], [], color="black", ls="--", lw=1.5, label="PT removed the input"))
    handles += _phase_patches(rows)
    fig.legend(
        handles=handles, loc="outside lower center", ncol=int(np.ceil(len(handles) / 2)),
        fontsize=8, frameon=False,
    )
    fig.suptitle("Architecture weights during search and selection ([op] = final choice)", fontsize=11)
    _save(fig, path, dpi)
    return fig


# ---- selection trace --------------------------------------------------------------------
def _criterion_label(rows: list[dict[str, Any]]) -> str:
    criteria = {row.get("criterion") for row in rows}
    if criteria == {"accuracy"}:
        return "accuracy lost when removed"
    if criteria == {"loss"}:
        return "loss gained when removed"
    return "damage when removed"


def _input_label(key: str) -> str:
    """``"0->2"`` (as the trace writes it) -> ``"in->n2"``."""
    try:
        source, target = (int(part) for part in key.split("->"))
    except ValueError:
        return key
    return _edge_label(source, target)


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
    Figure = _figure_class()
    _check_fitted(estimator)
    trace = list(estimator.selection_trace_)
    if not trace:
        selection = getattr(estimator, "selection", None)
        raise ValueError(
            f"{type(estimator).__name__} has an empty selection trace (selection={selection!r});"
            " only PT-DARTS selection records one: fit with selection=\"pt\" to plot it"
        )
    op_rows = [row for row in trace if row.get("kind") == "op"]
    input_rows = [row for row in trace if row.get("kind") == "input"]
    fallback = [row for row in trace if row.get("kind") == "fallback"]
    if not op_rows and not input_rows:
        raise ValueError(
            "the selection trace holds no PT decision: the time limit ran out before PT"
            " decided an edge, and every edge was chosen by argmax; raise time_limit"
        )
    space = estimator.search_space_
    colors = _op_colors(space.ops)
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
    title = f"PT-DARTS selection: {len(op_rows)} edge decision(s), {len(input_rows)} input pruning(s)"
    if fallback:
        title += "\n(time limit reached: the remaining edges were decided by argmax)"
    fig.suptitle(title, fontsize=11)
    _save(fig, path, dpi)
    return fig


def _draw_op_decisions(
    fig: Figure, ax: Axes, rows: list[dict[str, Any]], ops: Sequence[str], colors: dict[str, Any]
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import offset_copy

    above = offset_copy(ax.transData, fig=fig, y=5, units="points")
    candidates = [op for op in ops if any(op in row["damage"] for row in rows)]
    candidates += sorted({op for row in rows for op in row["damage"]} - set(candidates))
    width = 0.8 / len(candidates)
    for i, row in enumerate(rows):
        for j, op in enumerate(candidates):
            if op not in row["damage"]:
                continue
            x = i - 0.4 + width * (j + 0.5)
            value = float(row["damage"][op])
            kept = op == row["kept"]
            ax.bar(
                x, value, width=width * 0.92, color=_color(colors, op),
                edgecolor="black" if kept else "none", linewidth=1.6 if kept else 0,
                alpha=1.0 if kept else 0.75, zorder=2,
            )
            # A dot on every bar, so that a zero damage still shows.
            ax.plot(x, value, marker="o", markersize=3.5, color=_color(colors, op), zorder=3)
            if kept:
                ax.plot(
                    x, max(value, 0.0), marker="*", markersize=11, color="black",
                    transform=above, clip_on=False, zorder=3,
                )
    _finish_decision_axes(
        ax,
        rows,
        [_edge_label(row["source"], row["target"]) for row in rows],
        title="Edge decisions, in order: damage of removing each op",
        y_margin=0.15,
    )
    handles = [Patch(color=_color(colors, op), label=op) for op in candidates]
    handles.append(
        Line2D([], [], marker="*", color="black", ls="none", markersize=10, label="kept (most damage)")
    )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _draw_input_decisions(fig: Figure, ax: Axes, rows: list[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch
    from matplotlib.transforms import offset_copy

    above = offset_copy(ax.transData, fig=fig, y=3, units="points")
    most = max(len(row["damage"]) for row in rows)
    width = 0.8 / most
    for i, row in enumerate(rows):
        keys = list(row["damage"])
        for j, key in enumerate(keys):
            x = i - width * len(keys) / 2 + width * (j + 0.5)
            value = float(row["damage"][key])
            removed = key == row.get("removed")
            color = "tab:red" if removed else "tab:blue"
            ax.bar(
                x, value, width=width * 0.92, color=color,
                alpha=0.55 if removed else 0.8, hatch="//" if removed else None,
                edgecolor="tab:red" if removed else "none", zorder=2,
            )
            ax.plot(x, value, marker="o", markersize=3.5, color=color, zorder=3)
            ax.text(
                x, max(value, 0.0), _input_label(key), transform=above, ha="center",
                va="bottom", fontsize=7, rotation=90 if most > 3 else 0, zorder=3, color=color,
                fontweight="bold" if removed else "normal",
            )
    _finish_decision_axes(
        ax,
        rows,
        [f"inputs of {_node(row['target'])}" for row in rows],
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
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _finish_decision_axes(
    ax: Axes, rows: list[dict[str, Any]], what: list[str], *, title: str, y_margin: float
) -> None:
    """Zero line, one tick per decision ("<step>. cell <c>" over ``what``), grid, labels."""
    ax.axhline(0.0, color="black", lw=0.8, zorder=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(
        [
            f"{row.get('step', i) + 1}. cell {row['cell']}\n{label}"
            for i, (row, label) in enumerate(zip(rows, what))
        ],
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.margins(y=y_margin)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_ylabel(_criterion_label(rows))
    ax.set_title(title, fontsize=10)


# ---- learning curves --------------------------------------------------------------------
def _score_key(estimator: Any, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The validation metric to draw and its label: accuracy, RMSE, or the raw score."""
    keys = {key for row in rows for key in row}
    if is_classifier(estimator) and "val_accuracy" in keys:
        return "val_accuracy", "accuracy"
    if "val_rmse" in keys:
        return "val_rmse", "RMSE (standardised y)"
    return "val_score", "score (higher is better)"


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def plot_learning_curves(
    estimator: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    dpi: float = 120,
) -> Figure:
    """Plot training and validation curves of the search and of the retraining.

    The left column is the supernet: its training loss on the weight half and its loss
    and score on the architecture half (the "validation" of the bi-level search) per
    ``search`` epoch, followed by PT's tuning epochs (``select``, shaded). The right column
    is the selected architecture retrained from scratch: training loss and loss and
    score on the validation set, with the best epoch (``best_epoch_``, whose weights the
    estimator keeps) marked. The top row is the loss (cross-entropy, or MSE on the
    standardised target), the bottom row the validation accuracy (classification) or
    RMSE (regression).

    Parameters
    ----------
    estimator : TabNASClassifier or TabNASRegressor
        A fitted estimator.
    path : str or path-like, default=None
        Where to save the figure; the format follows the suffix (PNG without one).
    dpi : float, default=120
        Resolution of the saved image.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with four axes: ``[[search loss, retrain loss], [search score,
        retrain score]]``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    """
    Figure = _figure_class()
    from matplotlib.ticker import MaxNLocator

    _check_fitted(estimator)
    history = estimator.history_
    search = [row for row in history if row.get("phase") in _SEARCH_PHASES]
    retrain = [row for row in history if row.get("phase") == "retrain"]
    score_key, score_label = _score_key(estimator, search + retrain)
    loss_label = "cross-entropy" if is_classifier(estimator) else "MSE (standardised y)"
    best = int(estimator.best_epoch_)

    fig = Figure(figsize=(11.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex="col")
    (search_loss, retrain_loss), (search_score, retrain_score) = axes

    if search:
        epochs, marker = _epochs(search), _marker(len(search))
        for ax in (search_loss, search_score):
            _shade_phases(ax, search)
        search_loss.plot(
            epochs, _column(search, "train_loss"), marker=marker, ms=3, label="train (weight half)"
        )
        search_loss.plot(
            epochs, _column(search, "val_loss"), marker=marker, ms=3, label="val (architecture half)"
        )
        search_score.plot(
            epochs, _column(search, score_key), marker=marker, ms=3, color="tab:orange",
            label="val (architecture half)",
        )
        handles, labels = search_loss.get_legend_handles_labels()
        patches = _phase_patches(search)
        search_loss.legend(
            handles + patches, labels + [p.get_label() for p in patches], fontsize=8, loc="best"
        )
    else:
        for ax in (search_loss, search_score):
            _empty(ax, "no search epoch recorded")

    if retrain:
        epochs, marker = _epochs(retrain), _marker(len(retrain))
        retrain_loss.plot(epochs, _column(retrain, "train_loss"), marker=marker, ms=3, label="train")
        retrain_loss.plot(epochs, _column(retrain, "val_loss"), marker=marker, ms=3, label="validation")
        retrain_score.plot(
            epochs, _column(retrain, score_key), marker=marker, ms=3, color="tab:orange",
            label="validation",
        )
        at_best = [row for row in retrain if row["epoch"] == best]
        if at_best:
            for ax, key in ((retrain_loss, "val_loss"), (retrain_score, score_key)):
                ax.axvline(best, color="tab:green", ls=":", lw=1.5, label=f"best epoch ({best})")
                ax.plot(
                    best, at_best[0].get(key, np.nan), marker="o", ms=8, mfc="none",
                    mec="tab:green", mew=2,
                )
        retrain_loss.legend(fontsize=8)
    else:
        for ax in (retrain_loss, retrain_score):
            _empty(ax, "no retraining epoch recorded")

    search_loss.set_title("Search + PT selection (supernet)", fontsize=10)
    retrain_loss.set_title("Retraining (selected architecture)", fontsize=10)
    for ax in (search_loss, retrain_loss):
        ax.set_ylabel(f"loss ({loss_label})")
    for ax in (search_score, retrain_score):
        ax.set_ylabel(f"validation {score_label}")
        ax.set_xlabel("epoch")
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{type(estimator).__name__} learning curves", fontsize=11)
    _save(fig, path, dpi)
    return fig
