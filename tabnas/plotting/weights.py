"""How the architecture weights moved during search and selection."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from tabnas.nas.ops import NONE_OP
from tabnas.nas.space import edge_name
from tabnas.plotting._common import (
    SEARCH_PHASES,
    check_fitted,
    color,
    figure_class,
    op_colors,
    phase_patches,
    save,
    shade_phases,
)
from tabnas.plotting._common import epochs as epochs_of
from tabnas.plotting._common import marker as marker_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def final_ops(estimator: Any) -> dict[tuple[int, int, int], str]:
    """``(cell, source, target) -> op`` of the cells PT selected, when there are some."""
    architecture = getattr(estimator, "selected_architecture_", None) or getattr(
        estimator, "architecture_", None
    )
    if architecture is None:
        return {}
    return {
        (c, edge.source, target): edge.op
        for c, cell in enumerate(architecture.cells)
        for target, inputs in enumerate(cell, start=1)
        for edge in inputs
    }



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
    Figure = figure_class()
    from matplotlib.lines import Line2D

    check_fitted(estimator)
    space = estimator.search_space_
    rows = [
        row for row in estimator.history_ if row.get("phase") in SEARCH_PHASES and "weights" in row
    ]
    if not rows:
        raise ValueError(
            "the history holds no architecture weights: the search ran no epoch (was"
            " time_limit too short?)"
        )
    # shape: (epochs, cells, edges, ops)
    weights = np.asarray([row["weights"] for row in rows], dtype=float)
    expected = (space.n_cells, space.n_edges, len(space.ops))
    if weights.shape[1:] != expected:
        raise ValueError(
            f"recorded weights have shape {weights.shape[1:]}, but the search space has"
            f" (n_cells, n_edges, n_ops) = {expected}"
        )
    # Which edges PT had fixed or removed at each evaluation, as the history recorded it.
    fixed = np.asarray([row["fixed"] for row in rows], dtype=bool)  # (epochs, cells, edges)
    removed = np.asarray([row["removed"] for row in rows], dtype=bool)
    epochs = epochs_of(rows)
    colors = op_colors(space.ops)
    final = final_ops(estimator)
    marker = marker_for(len(rows))

    fig = Figure(
        figsize=(0.8 + 2.9 * space.n_edges, 1.2 + 2.2 * space.n_cells), layout="constrained"
    )
    axes = fig.subplots(space.n_cells, space.n_edges, sharex=True, sharey=True, squeeze=False)
    for c in range(space.n_cells):
        for e, (source, target) in enumerate(space.edges):
            ax = axes[c, e]
            shade_phases(ax, rows)
            ax.axhline(1.0 / len(space.ops), color="0.4", ls=":", lw=1, zorder=1)
            for k, op in enumerate(space.ops):
                curve = np.where(fixed[:, c, e], np.nan, weights[:, c, e, k])
                ax.plot(
                    epochs, curve, color=color(colors, op), marker=marker, markersize=3,
                    lw=1.5, ls="--" if op == NONE_OP else "-", zorder=2,
                )
            if fixed[:, c, e].any():
                first = int(np.argmax(fixed[:, c, e]))
                if not removed[first, c, e]:
                    kept = space.ops[int(np.argmax(weights[first, c, e]))]
                    ax.axvline(epochs[first], color=color(colors, kept), lw=2.5, zorder=3)
            if removed[:, c, e].any():
                gone = epochs[int(np.argmax(removed[:, c, e]))]
                ax.axvline(gone, color="black", ls="--", lw=1.5, zorder=3)
            title = f"cell {c}: {edge_name(source, target)}"
            if final:
                title += f"  [{final.get((c, source, target), 'removed')}]"
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.ticklabel_format(axis="y", useOffset=False)
            if c == space.n_cells - 1:
                ax.set_xlabel("evaluation")
            if e == 0:
                ax.set_ylabel("softmax weight")
    handles = [
        Line2D([], [], color=color(colors, op), ls="--" if op == NONE_OP else "-", lw=1.5, label=op)
        for op in space.ops
    ]
    handles.append(Line2D([], [], color="0.4", ls=":", label=f"uniform (1/{len(space.ops)})"))
    if fixed.any():
        handles.append(
            Line2D([], [], color="0.3", lw=2.5, label="PT fixed the edge (kept op's colour)")
        )
    if removed.any():
        handles.append(Line2D([], [], color="black", ls="--", lw=1.5, label="PT removed the input"))
    handles += phase_patches(rows)
    fig.legend(
        handles=handles, loc="outside lower center", ncol=int(np.ceil(len(handles) / 2)),
        fontsize=8, frameon=False,
    )
    fig.suptitle(
        f"Architecture weights during search and selection ([op] = final choice;"
        f" {space.search_embedding} embeddings)",
        fontsize=11,
    )
    save(fig, path, dpi)
    return fig
