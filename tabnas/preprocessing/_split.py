"""Seeded hold-out splits; stratified ones keep every class in the larger part."""

from __future__ import annotations

import numpy as np


def holdout_split(
    n: int, fraction: float, rng: np.random.Generator, *, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into ``(kept, held_out)`` with about ``fraction`` held out.

    With ``stratify`` (integer class codes), each class contributes
    ``round(fraction * n_class)`` rows to the held-out part but always leaves at least one
    row in the kept part, so a rare class is never lost from training.
    """
    if n < 2:
        raise ValueError(f"a split needs at least 2 rows, got {n}")
    if stratify is None:
        order = rng.permutation(n)
        n_out = min(max(int(round(fraction * n)), 1), n - 1)
        return np.sort(order[n_out:]), np.sort(order[:n_out])
    held: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for label in np.unique(stratify):
        members = rng.permutation(np.flatnonzero(stratify == label))
        n_out = min(int(round(fraction * len(members))), len(members) - 1)
        held.append(members[:n_out])
        kept.append(members[n_out:])
    held_out = np.concatenate(held)
    kept_rows = np.concatenate(kept)
    if held_out.size == 0:  # every class too small: move one row of the largest class
        largest = max(range(len(kept)), key=lambda i: len(kept[i]))
        held_out, kept_rows = kept[largest][:1], np.concatenate(
            [k if i != largest else k[1:] for i, k in enumerate(kept)]
        )
    return np.sort(kept_rows), np.sort(held_out)
