"""The bi-level search loop and the supernet services a selector needs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call

from tabnas.devices import DeviceConfig
from tabnas.nas.strategies.base import SearchStrategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.callbacks import Callback, EpochState
from tabnas.training.data import Cycle, TensorData
from tabnas.training.history import History
from tabnas.training.loop import Deadline, Task, evaluate, train_epoch
from tabnas.training.optim import make_weight_optimizer


@dataclass(frozen=True)
class SearchConfig:
    """Budgets and optimiser settings of the search and of PT's tuning."""

    epochs: int
    warmup_epochs: int
    tune_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float = 5.0
    max_score_rows: int = 4096
    """Rows of the architecture half that selection scores on (a fixed seeded subset)."""


class SupernetTrainer:
    """Trains a supernet on the weight half with architecture steps on the other half.

    Args:
        weight_data: the rows the weights learn from ("w-train").
        arch_data: the rows the architecture learns from and selection scores on.
    """

    def __init__(
        self,
        supernet: SuperNetwork,
        strategy: SearchStrategy,
        *,
        weight_data: TensorData,
        arch_data: TensorData,
        task: Task,
        config: SearchConfig,
        device: DeviceConfig,
        generator: torch.Generator,
        history: History,
        callbacks: list[Callback] = (),
    ):
        self.supernet = supernet
        self.strategy = strategy
        self.weight_data = weight_data
        self.arch_data = arch_data
        self.task = task
        self.config = config
        self.device = device
        self.generator = generator
        self.history = history
        self.callbacks = list(callbacks)
        self.arch_batches = Cycle(arch_data, config.batch_size, generator)
        n_score = min(len(arch_data), config.max_score_rows)
        score_rows = torch.randperm(len(arch_data), generator=generator)[:n_score].sort().values
        self.score_data = arch_data[score_rows.to(arch_data.y.device)]
        self.optimizer = make_weight_optimizer(
            supernet, lr=config.lr, weight_decay=config.weight_decay, exclude=supernet.arch_parameters()
        )
        self.epoch = 0

    def loss(self, batch: TensorData, weights: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """The :class:`~tabnas.nas.strategies.base.BatchLoss` the strategies call.

        Fixed edges keep their one-hot choice whatever weights the strategy proposes.
        """
        weights = self.supernet.project(weights)
        with self.device.autocast():
            if params is None:
                output = self.supernet(batch.x_num, batch.x_cat, weights=weights)
            else:
                output = functional_call(
                    self.supernet, params, (batch.x_num, batch.x_cat), {"weights": weights}
                )
        return self.task.loss(output, batch.y)

    def _arch_step(self, batch: TensorData) -> None:
        self.strategy.arch_step(
            self.loss,
            batch,
            next(self.arch_batches),
            weight_lr=self.optimizer.param_groups[0]["lr"],
            weight_decay=self.config.weight_decay,
        )

    def run_epoch(self, *, phase: str, arch_steps: bool) -> dict:
        started = time.perf_counter()
        self.strategy.epoch_started(self.epoch, self.config.epochs)
        train_loss = train_epoch(
            self.supernet,
            self.weight_data,
            task=self.task,
            optimizer=self.optimizer,
            batch_size=self.config.batch_size,
            generator=self.generator,
            config=self.device,
            before_step=self._arch_step if arch_steps else None,
            forward_kwargs=lambda: {"weights": self.supernet.project(self.strategy.mixing_weights())},
            grad_clip=self.config.grad_clip,
        )
        metrics = self.evaluate(self.supernet.default_weights().detach())
        row = self.history.record(
            phase=phase,
            epoch=self.epoch,
            train_loss=train_loss,
            **{f"val_{k}": v for k, v in metrics.items()},
            arch_steps=arch_steps,
            weights=self.supernet.default_weights().detach().cpu().tolist(),
            time_s=time.perf_counter() - started,
        )
        for callback in self.callbacks:
            callback.on_epoch_end(EpochState(epoch=self.epoch, row=row, best_epoch=self.epoch))
        self.epoch += 1
        return row

    def search(self, deadline: Deadline) -> int:
        """Warm-up (weights only), then alternating steps; returns the epochs run."""
        for epoch in range(self.config.epochs):
            if deadline.expired():
                return epoch
            self.run_epoch(phase="search", arch_steps=epoch >= self.config.warmup_epochs)
        return self.config.epochs

    # ---- services for the selectors --------------------------------------------------
    def evaluate(self, weights: Tensor) -> dict[str, float]:
        """Scores of the whole supernet on (up to ``max_score_rows`` of) the architecture half."""
        return evaluate(self.supernet, self.score_data, self.task, self.device, weights=weights)

    def start_tuning(self) -> None:
        """PT tunes with a fresh weight optimizer at a tenth of the search learning rate."""
        self.optimizer = make_weight_optimizer(
            self.supernet,
            lr=self.config.lr / 10,
            weight_decay=self.config.weight_decay,
            exclude=self.supernet.arch_parameters(),
        )

    def tune(self) -> None:
        for _ in range(self.config.tune_epochs):
            self.run_epoch(phase="select", arch_steps=True)
