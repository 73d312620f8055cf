"""Loss, evaluation and the epoch loops shared by search, selection and retraining."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tabnas.devices import DeviceConfig
from tabnas.training.callbacks import Callback, EpochState
from tabnas.training.data import TensorData, batch_indices
from tabnas.training.history import History


@dataclass(frozen=True)
class Task:
    """What is predicted: ``regression`` (standardised target) or ``classification``.

    A network may answer with one prediction per row, ``(batch, d_out)``, or with one per
    member of an ensemble, ``(batch, k, d_out)`` (TabM). Members train on the mean of
    their own losses and predict together through :meth:`combine`.
    """

    kind: Literal["regression", "classification"]
    d_out: int
    label_smoothing: float = 0.0
    """Classification: the share of each training target spread over all classes
    (Szegedy et al. 2016; RealMLP's 0.1). Only :meth:`train_loss` reads it: scores,
    early stopping and selection see the plain log loss."""

    def __post_init__(self) -> None:
        if self.label_smoothing and self.kind != "classification":
            raise ValueError("label_smoothing applies to classification only; pass 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """The plain loss (MSE, log loss) of the members: what is measured."""
        return self._loss(output, y, smoothing=0.0)

    def train_loss(self, output: Tensor, y: Tensor) -> Tensor:
        """What the weights are trained on: :meth:`loss` with the label smoothing."""
        return self._loss(output, y, smoothing=self.label_smoothing)

    def _loss(self, output: Tensor, y: Tensor, *, smoothing: float) -> Tensor:
        if output.ndim == 3:  # (batch, k, d_out) -> (batch * k, d_out): the members' mean loss
            y = y.repeat_interleave(output.shape[1])
            output = output.flatten(0, 1)
        if self.kind == "regression":
            return F.mse_loss(output.squeeze(-1).float(), y)
        return F.cross_entropy(output.float(), y, label_smoothing=smoothing)

    def combine(self, output: Tensor) -> Tensor:
        """One ``(batch, d_out)`` prediction: the members' mean value (regression) or the
        log of their mean probability (classification); a 2-d output as it is."""
        if output.ndim == 2:
            return output
        if self.kind == "regression":
            return output.float().mean(dim=1)
        log_proba = torch.log_softmax(output.float(), dim=-1)
        return torch.logsumexp(log_proba, dim=1) - math.log(output.shape[1])

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        """Loss plus the early-stopping ``score`` (higher is better), of the combined
        prediction."""
        output = self.combine(output)
        loss = float(self.loss(output, y))
        if self.kind == "regression":
            rmse = math.sqrt(loss)
            return {"loss": loss, "rmse": rmse, "score": -rmse}
        accuracy = float((output.argmax(-1) == y).float().mean())
        return {"loss": loss, "accuracy": accuracy, "score": accuracy}


logger = logging.getLogger(__name__)

MAX_RECOVERIES = 3
"""Non-finite losses a phase survives (each time: last good weights, lr / 10); after that
the phase stops with its last good weights."""

Clock = Callable[[], float]


class Deadline:
    """A point in time after which a phase stops at its next epoch boundary."""

    def __init__(self, seconds: float | None, *, clock: Clock = time.monotonic):
        self.clock = clock
        self.end = None if seconds is None else clock() + seconds

    def expired(self) -> bool:
        return self.end is not None and self.clock() >= self.end

    def remaining(self) -> float:
        return math.inf if self.end is None else max(0.0, self.end - self.clock())


class Budget:
    """One ``time_limit`` shared by the phases of a fit, started at the top of ``fit``.

    Each phase gets a :class:`Deadline` at a share of the limit counted from the start, so
    time a phase leaves unused passes to the next. A phase always makes at least one step
    (one weight step, one PT decision or its fallback, one epoch), even when its deadline
    has already passed: a phase checks its deadline only after doing work.
    """

    def __init__(self, time_limit: float | None, *, clock: Clock = time.monotonic):
        self.time_limit = time_limit
        self.clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def until(self, share: float) -> Deadline:
        """The deadline at ``share`` of the limit after the start (never, without a limit)."""
        if self.time_limit is None:
            return Deadline(None, clock=self.clock)
        return Deadline(share * self.time_limit - self.elapsed(), clock=self.clock)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's out-of-memory error, or the CPU allocator's."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def halve_batch(batch_size: int, error: BaseException, *, where: str, minimum: int = 1) -> int:
    """The batch size to retry with after ``error``, with a warning that says so; raises
    ``error`` again when it is not out of memory or the batch cannot shrink any more."""
    smaller = batch_size // 2
    if not is_out_of_memory(error) or smaller < minimum:
        raise error
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    message = f"out of memory on a batch of {batch_size} rows in {where}; retrying with {smaller}"
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return smaller


_EVAL_BATCH: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()
"""The evaluation batch size of a model that ran out of memory at the device's default."""


@torch.inference_mode()
def predict(model: nn.Module, data: TensorData, config: DeviceConfig, **forward_kwargs) -> Tensor:
    """Raw outputs for every row of ``data`` (eval mode, large batches, no autograd); a
    batch that runs out of memory is retried in halves."""
    with _eval_mode(model):
        outputs: list[Tensor] = []
        start, batch_size = 0, _EVAL_BATCH.get(model, config.eval_batch_size)
        while start < len(data) or not outputs:
            rows = torch.arange(start, min(start + batch_size, len(data)), device=data.y.device)
            batch = data[rows]
            try:
                with config.autocast():
                    outputs.append(model(batch.x_num, batch.x_cat, **forward_kwargs).float())
            except RuntimeError as error:
                batch_size = halve_batch(batch_size, error, where="a prediction pass")
                _EVAL_BATCH[model] = batch_size  # later passes start where this one fitted
                continue
            start += len(rows)
        return torch.cat(outputs)


def evaluate(
    model: nn.Module, data: TensorData, task: Task, config: DeviceConfig, **forward_kwargs
) -> dict[str, float]:
    return task.metrics(predict(model, data, config, **forward_kwargs), data.y)


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout), except that BatchNorm normalises with the batch's statistics
    and writes none of its buffers.

    This is how darts-pt scores a supernet ("disable running stats for projection"): the
    running statistics of a supernet are an average over mixtures that keep changing, and
    the passes of the architecture steps move them too.
    """
    was_training = model.training
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in norms]
    model.eval()
    for module in norms:
        module.train()
        module.track_running_stats = False  # F.batch_norm then gets no running buffers
    try:
        yield
    finally:
        for module, track in zip(norms, tracked):
            module.track_running_stats = track
        model.train(was_training)


SCORE_CHUNK_ROWS = 2048
"""Rows per forward pass when scoring a supernet; fixed, so scores never depend on the device."""


@torch.inference_mode()
def score_supernet(
    model: nn.Module, data: TensorData, task: Task, *, chunk_rows: int = SCORE_CHUNK_ROWS,
    **forward_kwargs,
) -> dict[str, float]:
    """Faithful scores of a supernet on ``data``: batch statistics, no dropout, fp32.

    The rows go through in a fixed order, in equal chunks of at most ``chunk_rows``, so
    the same weights give the same scores whatever passes ran before. A single row has no
    batch statistics; it is scored with the running ones.
    """
    context = batch_statistics(model) if len(data) > 1 else _eval_mode(model)
    n_chunks = max(1, math.ceil(len(data) / chunk_rows))
    with context:
        row_chunks = torch.arange(len(data), device=data.y.device).tensor_split(n_chunks)
        outputs = [
            model(chunk.x_num, chunk.x_cat, **forward_kwargs).float()
            for chunk in (data[rows] for rows in row_chunks)
        ]
    return task.metrics(torch.cat(outputs), data.y)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def train_epoch(
    model: nn.Module,
    data: TensorData,
    *,
    task: Task,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    config: DeviceConfig,
    before_step: Callable[[TensorData], None] | None = None,
    forward_kwargs: Callable[[], dict] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
) -> float:
    """One pass over ``data``; returns the mean training loss.

    ``before_step`` runs before each weight step with the batch (DARTS puts its
    architecture step there); ``forward_kwargs`` supplies extra forward arguments per step.
    A model that declares ``reads_training_rows`` (retrieval) gets each batch's positions
    in ``data`` as ``rows=``.
    """
    model.train()
    reads_rows = getattr(model, "reads_training_rows", False)  # retrieval: batch positions
    total, count = torch.zeros((), device=data.y.device), 0  # summed on the device: no sync
    for index in batch_indices(len(data), batch_size, generator=generator, device=data.y.device):
        batch = data[index]
        if len(batch) < 2:  # BatchNorm cannot train on one row
            continue
        if before_step is not None:
            before_step(batch)
        optimizer.zero_grad(set_to_none=True)
        kwargs = forward_kwargs() if forward_kwargs else {}
        if reads_rows:
            kwargs["rows"] = index
        with config.autocast():
            output = model(batch.x_num, batch.x_cat, **kwargs)
        loss = task.train_loss(output, batch.y)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(
                [p for group in optimizer.param_groups for p in group["params"]], grad_clip
            )
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach().float() * len(batch)
        count += len(batch)
    return float(total) / max(count, 1)


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    n_epochs: int
    stopped_by: str


def fit_network(
    model: nn.Module,
    *,
    train: TensorData,
    val: TensorData,
    task: Task,
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    batch_size: int,
    generator: torch.Generator,
    config: DeviceConfig,
    history: History,
    deadline: Deadline,
    callbacks: Sequence[Callback] = (),
    grad_clip: float | None = None,
    record: dict | None = None,
) -> FitResult:
    """Train with early stopping on ``val`` and restore the best weights (Gorishniy et al.).

    ``record`` adds fixed fields (such as the candidate's index) to every history row.
    """
    best_state = copy.deepcopy(model.state_dict())
    best_metrics: dict[str, float] = evaluate(model, val, task, config)
    best_epoch, stopped_by, epoch = -1, "max_epochs", -1
    recoveries = 0
    for epoch in range(max_epochs):
        started = time.perf_counter()
        while True:
            try:
                train_loss = train_epoch(
                    model, train, task=task, optimizer=optimizer, batch_size=batch_size,
                    generator=generator, config=config, grad_clip=grad_clip,
                )
                break
            except RuntimeError as error:  # out of memory: the epoch again, in smaller batches
                batch_size = halve_batch(batch_size, error, where=f"epoch {epoch}", minimum=2)
        if not math.isfinite(train_loss):
            recoveries += 1
            recover(model, best_state, [optimizer], where=f"epoch {epoch}", attempt=recoveries)
            history.record(
                phase="retrain", epoch=epoch, train_loss=train_loss, improved=False,
                recovered=True, lr=optimizer.param_groups[0]["lr"],
                time_s=time.perf_counter() - started, **(record or {}),
            )
            if recoveries > MAX_RECOVERIES:
                stopped_by = "non_finite_loss"
                break
            continue
        metrics = evaluate(model, val, task, config)
        improved = best_epoch < 0 or _ranks_above(metrics, best_metrics)
        if improved:
            best_state = copy.deepcopy(model.state_dict())
            best_metrics, best_epoch = metrics, epoch
        row = history.record(
            phase="retrain",
            epoch=epoch,
            train_loss=train_loss,
            **{f"val_{k}": v for k, v in metrics.items()},
            improved=improved,
            time_s=time.perf_counter() - started,
            **(record or {}),
        )
        state = EpochState(epoch=epoch, row=row, best_epoch=best_epoch)
        for callback in callbacks:
            callback.on_epoch_end(state)
        if state.stop:
            stopped_by = state.stop_reason
            break
        if deadline.expired():
            stopped_by = "time_limit"
            break
    model.load_state_dict(best_state)
    return FitResult(
        best_epoch=best_epoch, best_metrics=best_metrics, n_epochs=epoch + 1, stopped_by=stopped_by
    )


def recover(
    model: nn.Module,
    good_state: dict[str, Tensor],
    optimizers: list[torch.optim.Optimizer],
    *,
    where: str,
    attempt: int,
) -> None:
    """After a NaN or infinite loss: the last good weights (the entries of ``good_state``;
    other buffers are left as they are), fresh optimizer moments, every lr / 10, and a
    warning that says so."""
    model.load_state_dict(good_state, strict=False)
    for optimizer in optimizers:
        optimizer.state.clear()
        for group in optimizer.param_groups:
            group["lr"] *= 0.1
    message = (
        f"the training loss was not finite in {where}; restored the last good weights"
        f" and lowered the learning rate to {optimizers[0].param_groups[0]['lr']:.3g}"
        f" (recovery {attempt} of at most {MAX_RECOVERIES})"
    )
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _ranks_above(metrics: dict[str, float], best: dict[str, float]) -> bool:
    """A higher score wins; an equal score (accuracy often ties) wins with a lower loss."""
    return (metrics["score"], -metrics["loss"]) > (best["score"], -best["loss"])
