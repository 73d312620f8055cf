"""Training and validation curves of the search and of the retraining."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import is_classifier

from tabnas.plotting._common import (
    SEARCH_PHASES,
    check_fitted,
    column,
    figure_class,
    phase_patches,
    save,
    shade_phases,
)
from tabnas.plotting._common import epochs as epochs_of
from tabnas.plotting._common import marker as marker_for

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _score_key(estimator: Any, rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The validation metric to draw and its label: accuracy, RMSE, or the raw score."""
    keys = {key for row in rows for key in row}
    if is_classifier(estimator) and "val_accuracy" in keys:
        return "val_accuracy", "accuracy"
    if "val_rmse" in keys:
        return "val_rmse", "RMSE (standardised y)"
    return "val_score", "score (higher is better)"


def _by_candidate(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each candidate's retraining rows; a bagged candidate's first fold."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if int(row.get("fold", 0)) == 0:
            groups.setdefault(int(row.get("candidate", 0)), []).append(row)
    return groups


def _candidate_label(estimator: Any, candidate: int) -> str:
    """``"tabm · piecewise_linear · w 0.6"`` from ``ensemble_``."""
    members = getattr(estimator, "ensemble_", None) or []
    if candidate >= len(members):
        return f"candidate {candidate}"
    member = members[candidate]
    arch = member["architecture"]
    return (
        f"{arch.get('backbone', 'cells')} · {arch.get('num_embedding', 'linear')}"
        f" · w {member['weight']:.1f}"
    )


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
    is every candidate retrained from scratch (the selected cells, the TabM points),
    labelled with its backbone, numeric embedding and weight in the final ensemble (a
    bagged candidate by its first fold):
    training loss and loss and score on the validation set, with the epoch whose weights
    it keeps circled. The top row is the loss (cross-entropy, or MSE on the
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
    Figure = figure_class()
    from matplotlib.ticker import MaxNLocator

    check_fitted(estimator)
    history = estimator.history_
    search = [row for row in history if row.get("phase") in SEARCH_PHASES]
    retrain = [row for row in history if row.get("phase") == "retrain"]
    score_key, score_label = _score_key(estimator, search + retrain)
    loss_label = "cross-entropy" if is_classifier(estimator) else "MSE (standardised y)"

    fig = Figure(figsize=(11.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex="col")
    (search_loss, retrain_loss), (search_score, retrain_score) = axes

    if search:
        epochs, marker = epochs_of(search), marker_for(len(search))
        for ax in (search_loss, search_score):
            shade_phases(ax, search)
        search_loss.plot(
            epochs, column(search, "train_loss"), marker=marker, ms=3, label="train (weight half)"
        )
        search_loss.plot(
            epochs, column(search, "val_loss"), marker=marker, ms=3, label="val (architecture half)"
        )
        search_score.plot(
            epochs, column(search, score_key), marker=marker, ms=3, color="tab:orange",
            label="val (architecture half)",
        )
        handles, labels = search_loss.get_legend_handles_labels()
        patches = phase_patches(search)
        search_loss.legend(
            handles + patches, labels + [p.get_label() for p in patches], fontsize=8, loc="best"
        )
    else:
        for ax in (search_loss, search_score):
            _empty(ax, "no search epoch recorded")

    if retrain:
        for candidate, rows in _by_candidate(retrain).items():
            label = _candidate_label(estimator, candidate)
            epochs, marker = epochs_of(rows), marker_for(len(rows))
            line, = retrain_loss.plot(
                epochs, column(rows, "val_loss"), marker=marker, ms=3, label=f"{label}: val"
            )
            retrain_loss.plot(
                epochs, column(rows, "train_loss"), ls="--", lw=1, color=line.get_color(),
                label=f"{label}: train",
            )
            retrain_score.plot(
                epochs, column(rows, score_key), marker=marker, ms=3, color=line.get_color(),
                label=label,
            )
            best_rows = [row for row in rows if row.get("improved")]
            if best_rows:  # the epoch whose weights this candidate keeps
                best = best_rows[-1]
                for ax, key in ((retrain_loss, "val_loss"), (retrain_score, score_key)):
                    ax.plot(
                        best["epoch"], best.get(key, np.nan), marker="o", ms=8, mfc="none",
                        mec=line.get_color(), mew=2,
                    )
        retrain_loss.legend(fontsize=7)
    else:
        for ax in (retrain_loss, retrain_score):
            _empty(ax, "no retraining epoch recorded")

    search_loss.set_title("Search + PT selection (supernet)", fontsize=10)
    retrain_loss.set_title("Retraining: each candidate (circle: epoch kept)", fontsize=10)
    for ax in (search_loss, retrain_loss):
        ax.set_ylabel(f"loss ({loss_label})")
    for ax in (search_score, retrain_score):
        ax.set_ylabel(f"validation {score_label}")
    search_score.set_xlabel("evaluation (every eval_every weight steps)")
    retrain_score.set_xlabel("epoch")
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{type(estimator).__name__} learning curves", fontsize=11)
    save(fig, path, dpi)
    return fig
