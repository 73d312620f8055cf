"""Tensors on the device, and the batches drawn from them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from tabnas.devices import DeviceConfig


@dataclass(frozen=True)
class TensorData:
    """Numeric features, categorical codes and targets of one split, row-aligned."""

    x_num: Tensor  # (n, n_num) float32
    x_cat: Tensor  # (n, n_cat) int64
    y: Tensor  # (n,) int64 for classes, float32 for regression

    def __len__(self) -> int:
        return self.y.shape[0]

    def __getitem__(self, index: Tensor | slice) -> TensorData:
        return TensorData(self.x_num[index], self.x_cat[index], self.y[index])

    def to(self, config: DeviceConfig) -> TensorData:
        return TensorData(*(config.to_device(t) for t in (self.x_num, self.x_cat, self.y)))


def batch_indices(
    n: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    device: torch.device | None = None,
) -> list[Tensor]:
    """Row indices of each batch of one pass; never leaves a lone trailing row.

    A trailing batch of one row is merged into the previous one, because BatchNorm cannot
    train on a single row. The order is drawn on the CPU (the same for every device) and
    moved to ``device`` in one copy per pass, not one per batch.
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if device is not None:
        order = order.to(device)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


class Cycle:
    """An endless stream of shuffled batches over one dataset, kept across steps.

    DARTS draws one architecture batch per weight step; building a fresh iterator every
    step would always return the same first batch.
    """

    def __init__(self, data: TensorData, batch_size: int, generator: torch.Generator):
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self._pending: Iterator[Tensor] = iter(())

    def __next__(self) -> TensorData:
        index = next(self._pending, None)
        if index is None:
            self._pending = iter(
                batch_indices(
                    len(self.data), self.batch_size, generator=self.generator,
                    device=self.data.y.device,
                )
            )
            index = next(self._pending)
        return self.data[index]

    def __iter__(self) -> Cycle:
        return self


def fold_assignment(
    y: Tensor, n_folds: int, *, generator: torch.Generator, stratify: bool
) -> Tensor:
    """The fold (``0..n_folds-1``) of each row: a seeded shuffle dealt round-robin, within
    each class when ``stratify`` (so every fold keeps the class proportions)."""
    n = len(y)
    if not 2 <= n_folds <= n:
        raise ValueError(f"need 2 <= n_folds <= {n} rows, got n_folds={n_folds}")
    order = torch.randperm(n, generator=generator)
    folds = torch.empty(n, dtype=torch.long)
    if not stratify:
        folds[order] = torch.arange(n) % n_folds
        return folds
    labels = y.cpu()[order]
    offset = 0  # each class starts where the previous one stopped: fold sizes stay equal
    for label in labels.unique():
        rows = order[labels == label]
        folds[rows] = (torch.arange(len(rows)) + offset) % n_folds
        offset += len(rows)
    return folds
