"""The bi-level search loop and the supernet services a selector needs."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from tabnas.devices import DeviceConfig
from tabnas.nas.strategies.base import SearchStrategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.callbacks import Callback, EpochState
from tabnas.training.data import Cycle, TensorData
from tabnas.training.history import History
from tabnas.training.loop import (
    MAX_RECOVERIES,
    SCORE_CHUNK_ROWS,
    Deadline,
    Task,
    batch_statistics,
    halve_batch,
    recover,
    score_supernet,
)
from tabnas.training.optim import (
    anneal_arch_lr,
    cosine,
    scale_fixed_lrs,
    set_lr,
    weight_recipe,
)

HESSIAN_ROWS = 256
"""Rows of the architecture half (the first of the scoring rows) in the fixed batch of
:meth:`SupernetTrainer.alpha_hessian_eigenvalue`."""


@dataclass(frozen=True)
class SearchConfig:
    """Budgets (in weight steps) and optimiser settings of the search and of PT's tuning.

    The search runs at least ``min_steps`` and at most ``max_steps`` weight steps and stops
    once the architecture-half loss has not improved for ``patience`` evaluations; it is
    evaluated every ``eval_every`` steps (``None``: one pass over the weight half, kept
    within 5..50 steps). The first ``warmup_steps`` train the weights only.
    """

    batch_size: int
    lr: float
    weight_decay: float
    min_steps: int = 100
    max_steps: int = 400
    warmup_steps: int = 30
    patience: int = 6
    eval_every: int | None = None
    tune_steps: int = 50
    """Weight steps between two selection decisions (capped by :attr:`max_tune_share`)."""
    max_tune_share: float = 0.5
    """All tuning together takes at most this share of the search's own steps."""
    tune_lr_ratio: tuple[float, float] = (0.1, 0.04)
    """Tuning lr, as fractions of the search's starting lr (``lr`` for AdamW, 0.025 for
    SGD): cosine from the first to the second (darts-pt's 0.0025 -> 0.001 for SGD)."""
    grad_clip: float = 5.0
    lr_scale: float = 1.0
    """A factor on every learning rate of the search and the tuning, the weights' and α's
    (:meth:`for_device_batch`'s square-root rule; 1 on the CPU)."""
    max_score_rows: int = 4096
    """Rows of the architecture half that selection scores on (all of them below this)."""

    def scaled(self, share: float) -> SearchConfig:
        """The budget of a search stage that gets ``share`` of the steps (at least one)."""
        if share == 1.0:
            return self
        max_steps = max(1, round(self.max_steps * share))
        return dataclasses.replace(
            self, max_steps=max_steps, min_steps=min(max(1, round(self.min_steps * share)),
                                                     max_steps),
            warmup_steps=round(self.warmup_steps * share),
        )

    def for_device_batch(self, factor: int) -> SearchConfig:
        """The same search in batches ``factor`` times larger: the step budgets (minimum,
        maximum, warm-up, tuning per decision) divided by ``factor``, so that the search
        makes as many passes over the data, and every learning rate times √factor, the
        square-root rule for Adam-type optimizers (Malladi et al. 2022) that retraining's
        device batch follows too. Patience counts evaluations, which come once per pass."""
        if factor == 1:
            return self
        def fewer(steps: int) -> int:
            return max(1, math.ceil(steps / factor))

        max_steps = fewer(self.max_steps)
        return dataclasses.replace(
            self, batch_size=self.batch_size * factor, lr_scale=self.lr_scale * math.sqrt(factor),
            max_steps=max_steps, min_steps=min(fewer(self.min_steps), max_steps),
            warmup_steps=self.warmup_steps // factor,
            tune_steps=math.ceil(self.tune_steps / factor),
            eval_every=None if self.eval_every is None else fewer(self.eval_every),
        )

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(
                f"need 1 <= min_steps <= max_steps, got min_steps={self.min_steps},"
                f" max_steps={self.max_steps}"
            )
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got patience={self.patience}")
        if self.tune_steps < 0:
            raise ValueError(f"tune_steps must be >= 0, got tune_steps={self.tune_steps}")


class SupernetTrainer:
    """Trains a supernet on the weight half with architecture steps on the other half.

    The weights' optimizer is the strategy's ``weight_optimizer``
    (:func:`~tabnas.training.optim.weight_recipe`: AdamW at ``config.lr``, or DARTS's SGD
    with its cosine over ``min_steps``, then its end); α's is the strategy's own, whose SGD lr the
    trainer anneals over the search too.

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
        callbacks: Sequence[Callback] = (),
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
        self.weight_batches = Cycle(weight_data, config.batch_size, generator)
        self.arch_batches = Cycle(arch_data, config.batch_size, generator)
        n_score = min(len(arch_data), config.max_score_rows)
        score_rows = torch.randperm(len(arch_data), generator=generator)[:n_score].sort().values
        self.score_data = arch_data[score_rows.to(arch_data.y.device)]
        self.recipe = weight_recipe(
            strategy.weight_optimizer, lr=config.lr, weight_decay=config.weight_decay
        )
        self.optimizer = self.recipe.build(
            supernet, lr=self.recipe.lr, exclude=supernet.arch_parameters()
        )
        self._names = {id(p): n for n, p in supernet.named_parameters()}
        self.alpha_start = supernet.alpha.detach().clone()
        self.steps = 0
        self.evaluations = 0
        self._version = 0  # bumped by every weight step; keys the score cache
        self._cache: tuple[int, Tensor, dict[str, float]] | None = None
        self._schedule: tuple[int, int] | None = None  # (tuning steps done, planned)
        self.tune_steps = config.tune_steps
        self._good_state = self._weights_snapshot()  # restored after a non-finite loss
        self.recoveries = 0
        # the device batch's factor; every recovery divides it by 10
        self.lr_scale = config.lr_scale
        if strategy.optimizer is not None:  # SGD's α lr follows lr_scale in _set_lrs
            scale_fixed_lrs(strategy.optimizer, config.lr_scale)
        self.score_chunk_rows = SCORE_CHUNK_ROWS  # halved if scoring runs out of memory

    @property
    def eval_every(self) -> int:
        if self.config.eval_every is not None:
            return self.config.eval_every
        return min(max(math.ceil(len(self.weight_data) / self.config.batch_size), 5), 50)

    # ---- one step ----------------------------------------------------------------------
    def loss(
        self, batch: TensorData, weights: Tensor, params: dict[str, Tensor] | None = None
    ) -> Tensor:
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

    def step(self, *, arch_step: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """One architecture step (when asked and the strategy moves alpha), then one weight
        step; returns the weight batch's loss (a tensor: no host sync) and the arch stats."""
        self.supernet.train()
        self._set_lrs()  # before the arch step: a virtual step uses the real step's lr
        batch = next(self.weight_batches)
        stats: dict[str, Tensor] = {}
        if arch_step and self.strategy.updates_alpha:
            arch_batch = next(self.arch_batches)
            if len(arch_batch) > 1 and len(batch) > 1:  # BatchNorm trains on two rows or more
                stats = self.strategy.arch_step(
                    self.loss, batch, arch_batch, virtual_step=self.virtual_step
                )
        self.steps += 1
        self._version += 1
        if len(batch) < 2:  # only with a one-row weight half
            return torch.zeros(()), stats
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch, self.strategy.training_weights(self.loss, batch))
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        return loss.detach(), stats

    def virtual_step(self, grads: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The step the weight optimizer would take for ``grads`` (second-order DARTS):
        :meth:`_adamw_virtual_step` or :meth:`_sgd_virtual_step`."""
        if self.recipe.kind == "sgd":
            return self._sgd_virtual_step(grads)
        return self._adamw_virtual_step(grads)

    def _adamw_virtual_step(
        self, grads: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """AdamW's step. Moments are updated as AdamW would; ``xi`` is the step's derivative
        with respect to the gradient through the first moment, ``lr (1 - beta1) / (1 -
        beta1^t) / (sqrt(v_hat) + eps)``, with the second moment held fixed.
        """
        stepped, xi = {}, {}
        for group in self.optimizer.param_groups:
            lr, decay, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                name = self._names[id(p)]
                g = grads[name]
                state = self.optimizer.state.get(p)
                if state:  # AdamW's moments after its first step
                    t = float(state["step"]) + 1
                    m = beta1 * state["exp_avg"] + (1 - beta1) * g
                    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
                else:
                    t, m, v = 1.0, (1 - beta1) * g, (1 - beta2) * g * g
                correction1 = 1 - beta1**t
                denominator = (v / (1 - beta2**t)).sqrt() + eps
                stepped[name] = (
                    p.detach() * (1 - lr * decay) - lr * (m / correction1) / denominator
                ).detach()
                xi[name] = lr * (1 - beta1) / correction1 / denominator
        return stepped, xi

    def _sgd_virtual_step(
        self, grads: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """SGD with momentum, as DARTS's ``_compute_unrolled_model``: ``w' = w - lr
        (momentum * buf + g + wd * w)`` with ``buf`` the momentum buffer (none before the
        first step); ``xi = lr``."""
        stepped, xi = {}, {}
        for group in self.optimizer.param_groups:
            lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                name = self._names[id(p)]
                direction = grads[name] + decay * p.detach()
                buffer = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    direction = direction + momentum * buffer
                stepped[name] = (p.detach() - lr * direction).detach()
                xi[name] = torch.full((), lr, dtype=p.dtype, device=p.device)
        return stepped, xi

    # ---- the search ----------------------------------------------------------------------
    def search(self, deadline: Deadline) -> int:
        """Train until the architecture-half loss stops improving; returns the steps run.

        Always makes at least one step; stops at ``max_steps``, at the deadline, or after
        ``min_steps`` once ``patience`` evaluations in a row brought no improvement.
        """
        config = self.config
        best, since_best = math.inf, 0
        while True:
            row = self.run_interval(phase="search", n_steps=self.eval_every, deadline=deadline)
            if row.get("recovered"):
                pass  # the weights went back to the last good interval: nothing to compare
            elif math.isinf(best) or row["val_loss"] < best - 1e-4 * abs(best):
                best, since_best = row["val_loss"], 0
            else:
                since_best += 1
            if (
                self.diverged
                or self.steps >= config.max_steps
                or deadline.expired()
                or (self.steps >= config.min_steps and since_best >= config.patience)
            ):
                return self.steps

    def run_interval(self, *, phase: str, n_steps: int, deadline: Deadline | None = None) -> dict:
        """``n_steps`` steps (fewer at ``max_steps`` or the deadline), then one history row."""
        started = time.perf_counter()
        losses: list[Tensor] = []
        stats: list[dict[str, Tensor]] = []
        while len(losses) < n_steps:
            if phase == "search":
                # schedules span the length every search reaches, then hold their end
                self.strategy.step_started(self.steps, self.config.min_steps)
            arch_step = phase == "select" or self.steps >= self.config.warmup_steps
            try:
                loss, step_stats = self.step(arch_step=arch_step)
            except RuntimeError as error:  # out of memory: this step again, in smaller batches
                self._shrink_batches(error)
                continue
            losses.append(loss)
            if step_stats:
                stats.append(step_stats)
            if phase == "search" and (
                self.steps >= self.config.max_steps
                or (deadline is not None and deadline.expired())
            ):
                break
        weights = self.supernet.default_weights().detach()
        metrics = self.evaluate(weights)
        train_loss = float(torch.stack(losses).float().mean())
        finite = math.isfinite(train_loss) and math.isfinite(metrics["loss"])
        if finite:
            self._keep_good_state()
        else:
            self._recover(phase)
        arch_stats = {
            key: float(torch.stack([s[key] for s in stats]).float().mean())
            for key in (stats[0] if stats else {})
        }
        row = self.history.record(
            phase=phase,
            epoch=self.evaluations,
            step=self.steps,
            train_loss=train_loss,
            **{f"val_{k}": v for k, v in metrics.items()},
            arch_steps=bool(stats),
            **arch_stats,
            alpha_shift=self.alpha_shift(),
            weights=weights.cpu().tolist(),
            fixed=self.supernet.fixed.cpu().tolist(),
            removed=(self.supernet.fixed & ~self.supernet.kept.any(-1)).cpu().tolist(),
            time_s=time.perf_counter() - started,
            **({} if finite else {"recovered": True}),
        )
        for callback in self.callbacks:
            callback.on_epoch_end(
                EpochState(epoch=self.evaluations, row=row, best_epoch=self.evaluations)
            )
        self.evaluations += 1
        return row

    # ---- non-finite losses -------------------------------------------------------------
    @property
    def diverged(self) -> bool:
        """More non-finite intervals than :data:`MAX_RECOVERIES`: the search stops and PT
        tunes no more, both with the last good weights."""
        return self.recoveries > MAX_RECOVERIES

    def _weights_snapshot(self) -> dict[str, Tensor]:
        """Weights, ``alpha`` and BatchNorm statistics; not the selection's decisions
        (``fixed``, ``kept``), which a recovery must not undo."""
        return {
            name: value.detach().clone()
            for name, value in self.supernet.state_dict().items()
            if name not in ("fixed", "kept")
        }

    def _keep_good_state(self) -> None:
        """The current weights into the snapshot's own tensors (no new allocation)."""
        for name, value in self.supernet.state_dict().items():
            if name in self._good_state:
                self._good_state[name].copy_(value)

    def _recover(self, phase: str) -> None:
        self.recoveries += 1
        optimizers: list[torch.optim.Optimizer] = [self.optimizer]
        if self.strategy.optimizer is not None:
            optimizers.append(self.strategy.optimizer)
        recover(
            self.supernet, self._good_state, optimizers,
            where=f"the {phase} phase (weight step {self.steps})", attempt=self.recoveries,
        )
        self.lr_scale *= 0.1
        self._version += 1  # the cached scores belong to the diverged weights

    def _shrink_batches(self, error: RuntimeError) -> None:
        """Half-size weight and architecture batches from now on (``error`` again when it
        is not out of memory or the batches are down to two rows)."""
        size = halve_batch(
            self.weight_batches.batch_size, error, where="the supernet's training", minimum=2
        )
        self.weight_batches = Cycle(self.weight_data, size, self.generator)
        self.arch_batches = Cycle(self.arch_data, size, self.generator)

    def alpha_shift(self) -> float:
        """The largest change of any architecture logit since the trainer was built."""
        return float((self.supernet.alpha.detach() - self.alpha_start).abs().max())

    # ---- services for the selectors --------------------------------------------------
    def evaluate(self, weights: Tensor) -> dict[str, float]:
        """Faithful scores of the supernet on (up to ``max_score_rows`` of) the architecture half.

        Batch statistics, no dropout, fp32; the result of the last call is reused while
        the weights and the mixing weights are unchanged.
        """
        cache = self._cache
        if cache is not None and cache[0] == self._version and torch.equal(cache[1], weights):
            return dict(cache[2])
        while True:
            try:
                scores = score_supernet(
                    self.supernet, self.score_data, self.task, weights=weights,
                    chunk_rows=self.score_chunk_rows,
                )
                break
            except RuntimeError as error:
                self.score_chunk_rows = halve_batch(
                    self.score_chunk_rows, error, where="scoring the supernet", minimum=2
                )
        self._cache = (self._version, weights.clone(), scores)
        return dict(scores)

    def start_tuning(self, n_decisions: int) -> int:
        """Prepare PT's tuning: a fresh weight optimizer of the search's kind whose lr falls
        by a cosine from a tenth of the search's starting lr over all planned tuning steps.
        Returns the steps per decision, capped so that tuning takes at most
        ``max_tune_share`` of the search's steps."""
        config = self.config
        per_decision = config.tune_steps
        if n_decisions > 0:
            per_decision = min(per_decision, int(config.max_tune_share * self.steps / n_decisions))
        per_decision = max(per_decision, 1 if config.tune_steps else 0)
        self.tune_steps = per_decision
        self.optimizer = self.recipe.build(
            self.supernet,
            lr=self.recipe.lr * config.tune_lr_ratio[0] * self.lr_scale,
            exclude=self.supernet.arch_parameters(),
        )
        self._schedule = (0, max(per_decision * n_decisions, 1))
        return per_decision

    def _set_lrs(self) -> None:
        """The learning rates of the next step, each times ``lr_scale``: in the search, the
        weights' cosine over ``min_steps`` (constant for AdamW) and α's (SGD only); in the
        tuning, the weights' cosine over the planned tuning steps."""
        recipe = self.recipe
        if self._schedule is None:
            # every schedule spans min_steps, which a search reaches (SearchStrategy.step_started)
            progress = self.steps / self.config.min_steps  # cosine() holds its end after 1
            set_lr(self.optimizer, self.lr_scale * cosine(recipe.lr, recipe.final_lr, progress))
            if self.strategy.optimizer is not None:
                anneal_arch_lr(self.strategy.optimizer, progress, scale=self.lr_scale)
            return
        done, planned = self._schedule
        high, low = (recipe.lr * ratio for ratio in self.config.tune_lr_ratio)
        set_lr(self.optimizer, self.lr_scale * cosine(high, low, done / planned))
        self._schedule = (done + 1, planned)

    def alpha_hessian_eigenvalue(self, *, iterations: int = 20) -> float | None:
        """The dominant eigenvalue of the Hessian of the architecture-half loss with
        respect to ``alpha`` (:func:`dominant_hessian_eigenvalue`), on a fixed batch of up
        to :data:`HESSIAN_ROWS` scoring rows under the current mixing weights, scored as
        :meth:`evaluate` scores (batch statistics, no dropout, fp32). ``None`` when the
        strategy never moves ``alpha`` or the architecture half has a single row."""
        if not self.strategy.updates_alpha or len(self.score_data) < 2:
            return None
        data = self.score_data
        batch = data[torch.arange(min(len(data), HESSIAN_ROWS), device=data.y.device)]
        # the math kernel: the fused attention kernels have no double backward
        with batch_statistics(self.supernet), sdpa_kernel(SDPBackend.MATH):
            output = self.supernet(
                batch.x_num, batch.x_cat, weights=self.supernet.default_weights()
            )
            loss = self.task.loss(output.float(), batch.y)
            return dominant_hessian_eigenvalue(loss, self.supernet.alpha, iterations=iterations)

    def tune(self) -> None:
        """The weight steps (and arch steps, when the strategy has them) between two decisions."""
        if self.tune_steps and not self.diverged:
            self.run_interval(phase="select", n_steps=self.tune_steps)


def dominant_hessian_eigenvalue(
    loss: Tensor, param: Tensor, *, iterations: int = 20, tolerance: float = 1e-4, seed: int = 0
) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``loss`` (a scalar, with its
    graph) with respect to ``param``, by power iteration.

    Each Hessian-vector product is exact: a backward pass through the graph of the
    gradient, built once (double backward). The iteration starts from a normal vector
    drawn with ``seed`` (its own generator: the global random state is not touched) and
    stops after ``iterations`` products, or once the Rayleigh quotient changes by less than
    ``tolerance`` of itself.
    """
    (grad,) = torch.autograd.grad(loss, [param], create_graph=True, allow_unused=True)
    if grad is None or not grad.requires_grad:  # the loss is constant or linear in param
        return 0.0
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(param.shape, generator=generator, dtype=param.dtype).to(param.device)
    vector = vector / vector.norm()
    estimate = math.nan
    for _ in range(iterations):
        (product,) = torch.autograd.grad(
            grad, [param], grad_outputs=vector, retain_graph=True, allow_unused=True
        )
        if product is None:
            return 0.0
        previous, estimate = estimate, float((vector * product).sum())
        norm = product.norm()
        if not norm > 0:
            return estimate
        vector = product / norm
        if abs(estimate - previous) <= tolerance * abs(estimate):
            break
    return estimate
