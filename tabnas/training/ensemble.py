"""Greedy ensemble selection (Caruana et al. 2004) over the networks a fit trained.

Rounds add, with replacement, the candidate whose addition gives the lowest validation
loss of the running average; the ensemble of the round with the lowest loss is kept,
and a candidate's weight is its share of that round's picks. The loss (cross-entropy of
the averaged probabilities, or squared error of the averaged values) is the criterion
rather than accuracy: on small validation splits one row is a large step of accuracy,
and the loss ranks ensembles that accuracy ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tabnas.training.loop import Task

if TYPE_CHECKING:
    from tabnas.nas.space import Architecture


def _as_mean(task: Task, output: Tensor) -> Tensor:
    """What the ensemble averages: probabilities (classification) or values."""
    combined = task.combine(output).float()
    return combined.softmax(-1) if task.kind == "classification" else combined.squeeze(-1)


def _loss_of_mean(task: Task, mean: Tensor, y: Tensor) -> float:
    if task.kind == "classification":
        return float(F.nll_loss(mean.clamp_min(1e-12).log(), y))
    return float(F.mse_loss(mean, y))


def average(outputs: Sequence[Tensor], weights: Sequence[float], task: Task) -> Tensor:
    """The weighted average of raw outputs as one ``(batch, d_out)`` output: the log of the
    averaged probabilities (so a softmax gives them back), or the averaged values."""
    mean = cast(
        Tensor, sum(w * _as_mean(task, output) for w, output in zip(weights, outputs) if w > 0)
    )
    if task.kind == "classification":
        return mean.clamp_min(1e-12).log()
    return mean.unsqueeze(-1)


@dataclass(frozen=True)
class EnsembleSelection:
    """The weights greedy selection gave each candidate (summing to one) and what the
    averaged prediction scored on validation, round by round."""

    weights: tuple[float, ...]
    val_loss: tuple[float, ...]
    """The validation loss after each round."""


def greedy_ensemble(
    val_outputs: Sequence[Tensor], y: Tensor, task: Task, *, size: int
) -> EnsembleSelection:
    """Caruana et al.'s selection with replacement over ``size`` rounds.

    ``val_outputs[i]`` is candidate ``i``'s raw output on the validation rows. The first
    round picks the best single candidate, so ``size=1`` is plain model selection; ties go
    to the earlier candidate.
    """
    if not val_outputs:
        raise ValueError("greedy_ensemble needs at least one candidate")
    if size < 1:
        raise ValueError(f"size must be at least 1, got size={size}")
    means = [_as_mean(task, output) for output in val_outputs]
    counts = [0] * len(means)
    total = torch.zeros_like(means[0])
    history: list[float] = []
    kept = counts
    for round_ in range(1, size + 1):
        losses = [_loss_of_mean(task, (total + m) / round_, y) for m in means]
        best = min(range(len(means)), key=lambda i: (losses[i], i))
        counts = [c + (i == best) for i, c in enumerate(counts)]
        total = total + means[best]
        if not history or losses[best] < min(history):
            kept = counts  # the ensemble of the best round so far
        history.append(losses[best])
    return EnsembleSelection(
        weights=tuple(c / sum(kept) for c in kept), val_loss=tuple(history)
    )


class EnsembleModel(nn.Module):
    """The weighted average of trained networks, answering as one network would.

    **Shape**: ``(batch, n_num), (batch, n_cat) -> (batch, d_out)``: log of the averaged
    probabilities for classification (so a softmax gives them back), averaged values for
    regression. Members of weight zero are not kept.
    """

    architecture: Architecture  # set only on a bagged candidate's ensemble of its folds

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], *, task: Task):
        super().__init__()
        kept = [(m, float(w)) for m, w in zip(members, weights) if w > 0]
        if not kept:
            raise ValueError("an ensemble needs at least one member of positive weight")
        total = sum(w for _, w in kept)
        self.members = nn.ModuleList(m for m, _ in kept)
        self.weights = tuple(w / total for _, w in kept)  # plain floats: no device sync
        self.task = task

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        outputs = [member(x_num, x_cat) for member in self.members]
        return average(outputs, self.weights, self.task)  # (batch, d_out)

    def __repr__(self) -> str:
        """The members and their weights; ``self.members[i]`` shows a member's layers."""
        lines = [
            f"  {float(w):.2f} x "
            + str(getattr(m, "architecture", type(m).__name__)).replace("\n", "\n    ")
            for w, m in zip(self.weights, self.members)
        ]
        return "EnsembleModel(\n" + "\n".join(lines) + "\n)"
