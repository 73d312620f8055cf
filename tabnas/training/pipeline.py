"""Search, select, retrain: the core of one ``fit``, free of scikit-learn.

The estimators prepare tensors and a :class:`FitPlan`; :func:`search_select_retrain`
runs the phases -- :func:`search`, :func:`select`, then :func:`retrain` for each
candidate of the space (the selected cells, the TabM points), then greedy ensemble
selection on validation -- which hand each other typed values, and returns everything a
fitted estimator keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from tabnas.devices import DeviceConfig
from tabnas.nas.embeddings import NEEDS_BINS, quantile_bins
from tabnas.nas.network import DataShapes, TrainingRows, build_network
from tabnas.nas.selection import Decision, SelectionContext, Selector, argmax_select, make_selector
from tabnas.nas.selection.base import Criterion
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.strategies import SearchStrategy, make_strategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.callbacks import Callback, EarlyStopping, ProgressBar
from tabnas.training.data import TensorData, fold_assignment
from tabnas.training.ensemble import EnsembleModel, average, greedy_ensemble
from tabnas.training.history import History
from tabnas.training.loop import Budget, FitResult, Task, fit_network, predict, score_supernet
from tabnas.training.optim import make_weight_optimizer
from tabnas.training.search import SearchConfig, SupernetTrainer

logger = logging.getLogger(__name__)

# Shares of ``time_limit`` (counted from the top of ``fit``) by which search, then
# selection, must be over; retraining takes the rest.
SEARCH_SHARE = 0.35
SELECTION_SHARE = 0.55


@dataclass(frozen=True)
class FitPlan:
    """Everything the core needs to know about one fit, resolved from the estimator.

    ``architecture`` skips search and selection: that network is trained as is.
    ``ensemble_size`` is the number of greedy rounds over the trained candidates (1: the
    best candidate on validation alone). ``bag_folds`` >= 2 retrains every candidate on
    that many folds of the training and validation rows together (cross-validation
    bagging); 0 retrains it once on the training rows.
    """

    space: SearchSpace
    search: SearchConfig
    strategy: str | SearchStrategy
    selection: str | Selector
    selection_criterion: Criterion
    max_epochs: int
    patience: int
    architecture: Architecture | None = None
    ensemble_size: int = 1
    bag_folds: int = 0
    verbose: bool = False
    retrain_batch_size: int | None = None
    """Rows per retraining step; ``None``: the search's."""
    retrain_lr_scale: float = 1.0
    """Factor on the retraining learning rates (larger batches on a GPU)."""
    search_width: float = 1.0
    """The search and the selection run on ``space`` with ops this many times as wide
    (a proxy, as DARTS searches a narrower network than it trains); the selected cells
    are trained at the space's own width."""
    argmax_candidate: bool = False
    """Retrain DARTS's argmax architecture too, as one more candidate of the final
    ensemble, when it differs from the selected one: the greedy weights on validation
    decide between the two selections (and the other candidates)."""

    @property
    def search_space(self) -> SearchSpace:
        """The space the supernet is built on: :attr:`space` at :attr:`search_width`."""
        return self.space.at_width(self.search_width)

    def __post_init__(self) -> None:
        if self.bag_folds == 1 or self.bag_folds < 0:
            raise ValueError(
                f"bag_folds must be 0 (off) or at least 2, got bag_folds={self.bag_folds}"
            )


@dataclass(frozen=True)
class Recipe:
    """How a backbone is trained when it is not the plan's default."""

    lr: float
    weight_decay: float
    grad_clip: float | None = None


RECIPES: dict[str, Recipe] = {
    # The ``tabm`` package's defaults (AdamW lr 2e-3, wd 3e-4) and its paper's clipping.
    "tabm": Recipe(lr=2e-3, weight_decay=3e-4, grad_clip=1.0),
    # ModernNCA's official defaults (TALENT: AdamW lr 1e-2, wd 2e-4).
    "retrieval": Recipe(lr=1e-2, weight_decay=2e-4),
}
"""Backbones absent here (``cells``) train with the preset's lr and weight decay."""


@dataclass
class Member:
    """One trained candidate: its network, how its training went, its ensemble weight.

    Bagged, ``model`` is the equal-weight :class:`EnsembleModel` of its fold models and
    ``results`` holds one :class:`FitResult` per fold. ``held_out`` are its outputs on
    rows it never trained on (the validation split, or each row from the fold that left
    it out): the ensemble is weighted on them, and ``val_metrics`` scores them.
    """

    architecture: Architecture
    model: nn.Module
    results: list[FitResult]
    held_out: Tensor
    val_metrics: dict[str, float]
    weight: float = 0.0
    train_s: float = 0.0

    @property
    def result(self) -> FitResult:
        """The (first fold's) training: best epoch, epochs run, what stopped it."""
        return self.results[0]

    def summary(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture.to_dict(),
            "weight": self.weight,
            "best_val": self.val_metrics,
            "best_epoch": self.result.best_epoch,
            "n_epochs": self.result.n_epochs,
            "stopped_by": self.result.stopped_by,
            "n_folds": len(self.results),
            "train_s": self.train_s,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
        }


@dataclass
class SearchOutcome:
    """A trained supernet, with its trainer (the selector's services) and what it measured."""

    supernet: SuperNetwork
    trainer: SupernetTrainer
    strategy: SearchStrategy
    argmax_architecture: Architecture
    """DARTS's own choice from the trained α, before any selection (the baseline), at the
    space's own width."""
    supernet_val: dict[str, float]
    """The undiscretised supernet's scores on the validation split (the discretisation gap)."""
    steps: int
    alpha_shift: float
    """The largest change of any architecture logit over the search."""
    dominant_hessian_eigenvalue: float | None
    """The dominant eigenvalue of the Hessian of the architecture-half loss with respect to
    α at the end of the search (its sharpness); ``None`` when the strategy never moves α or
    when a time limit's search share is spent."""


@dataclass
class NASResult:
    """``architecture`` and ``retrain`` are those of the member of largest weight; ``model``
    is the ensemble of all members of positive weight."""

    architecture: Architecture
    model: nn.Module
    history: History
    selection_trace: list[Decision]
    retrain: FitResult
    members: list[Member] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    search_info: dict[str, Any] = field(default_factory=dict)


def search(
    plan: FitPlan,
    *,
    weight_data: TensorData,
    arch_data: TensorData,
    val_data: TensorData,
    shapes: DataShapes,
    task: Task,
    device: DeviceConfig,
    generator: torch.Generator,
    history: History,
    budget: Budget,
    callbacks: Sequence[Callback] = (),
) -> SearchOutcome:
    """Train the supernet until the architecture-half loss stops improving."""
    strategy = make_strategy(plan.strategy)
    steps, done_share = 0, 0.0
    for stage, step in enumerate(strategy.stages(plan.search_space)):
        if stage:  # earlier stages' rows stay in the history, out of the search's plots
            for row in history.phase("search"):
                row.update(phase="search-stage", stage=stage - 1)
        supernet = strategy.build_supernet(step.space, **shapes.kwargs()).to(device.device)
        strategy.bind(supernet)
        trainer = SupernetTrainer(
            supernet, strategy, weight_data=weight_data, arch_data=arch_data, task=task,
            config=plan.search.scaled(step.share), device=device, generator=generator,
            history=history, callbacks=list(callbacks),
        )
        done_share += step.share
        steps += trainer.search(budget.until(SEARCH_SHARE * min(done_share, 1.0)))
    if supernet.space != plan.search_space:
        raise RuntimeError(f"{strategy!r}'s last search stage is not the plan's space")
    # a diagnostic (about a second): never on time that a time limit gave the later phases
    eigenvalue = (
        None if budget.until(SEARCH_SHARE).expired() else trainer.alpha_hessian_eigenvalue()
    )
    strategy.search_finished(trainer.evaluate, generator.initial_seed())
    with supernet.trial_decisions():
        argmax_architecture = strategy.finalize(argmax_select(supernet)).with_settings(
            plan.space.settings
        )
    supernet_val = score_supernet(
        supernet, val_data, task, weights=supernet.default_weights().detach()
    )
    return SearchOutcome(
        supernet=supernet, trainer=trainer, strategy=strategy,
        argmax_architecture=argmax_architecture,
        supernet_val=supernet_val, steps=steps,
        alpha_shift=trainer.alpha_shift(), dominant_hessian_eigenvalue=eigenvalue,
    )


def select(
    plan: FitPlan, outcome: SearchOutcome, *, seed: int, budget: Budget,
    callbacks: Sequence[Callback] = (),
) -> tuple[Architecture, list[Decision]]:
    """Turn the trained supernet into an :class:`Architecture` with the plan's selector."""
    selector = make_selector(plan.selection)
    trainer = outcome.trainer
    if selector.tunes:
        trainer.start_tuning(selector.n_decisions(outcome.supernet))
        trainer.callbacks = list(callbacks)
    context = SelectionContext(
        evaluate=trainer.evaluate, tune=trainer.tune, seed=seed,
        expired=budget.until(SELECTION_SHARE).expired, criterion=plan.selection_criterion,
    )
    architecture, trace = selector.select(outcome.supernet, context)
    return outcome.strategy.finalize(architecture).with_settings(plan.space.settings), trace


def retrain(
    plan: FitPlan,
    architecture: Architecture,
    *,
    train: TensorData,
    val_data: TensorData,
    shapes: DataShapes,
    task: Task,
    device: DeviceConfig,
    generator: torch.Generator,
    history: History,
    budget: Budget,
    until: float = 1.0,
    candidate: int = 0,
    fold: int = 0,
    callbacks: Sequence[Callback] = (),
) -> tuple[nn.Module, FitResult]:
    """Train ``architecture`` from scratch, early-stopped on val, best weights restored,
    within ``until`` of the time limit."""
    model = build_network(
        architecture, shapes, TrainingRows(train.x_num, train.x_cat, train.y)
    ).to(device.device)
    recipe = RECIPES.get(architecture.backbone, Recipe(plan.search.lr, plan.search.weight_decay))
    optimizer = make_weight_optimizer(
        model, lr=recipe.lr * plan.retrain_lr_scale, weight_decay=recipe.weight_decay
    )
    result = fit_network(
        model, train=train, val=val_data, task=task, optimizer=optimizer,
        max_epochs=plan.max_epochs, batch_size=plan.retrain_batch_size or plan.search.batch_size,
        generator=generator,
        config=device, history=history, deadline=budget.until(until),
        callbacks=[EarlyStopping(plan.patience), *callbacks], grad_clip=recipe.grad_clip,
        record={"candidate": candidate, "fold": fold},
    )
    return model, result


def train_candidate(
    plan: FitPlan,
    architecture: Architecture,
    *,
    folds: Sequence[tuple[TensorData, TensorData, Tensor | None]],
    held_out_y: Tensor,
    shapes: DataShapes,
    task: Task,
    device: DeviceConfig,
    generator: torch.Generator,
    history: History,
    budget: Budget,
    shares: list[float],
    candidate: int,
    callbacks: Sequence[Callback] = (),
) -> Member:
    """Retrain ``architecture`` once per ``(train, val, val_rows)`` fold, fold ``f`` within
    ``shares[f]`` of the time limit; ``val_rows`` place each fold's held-out outputs among
    the rows whose targets are ``held_out_y`` (``None``: the one validation split)."""
    models, results = [], []
    held_out = None
    for f, (train, val, val_rows) in enumerate(folds):
        model, result = retrain(
            plan, architecture, train=train, val_data=val, shapes=shapes, task=task,
            device=device, generator=generator, history=history, budget=budget,
            until=shares[f], candidate=candidate, callbacks=callbacks, fold=f,
        )
        output = predict(model, val, device)
        if held_out is None:
            held_out = output.new_zeros((len(held_out_y), *output.shape[1:]))
        held_out[slice(None) if val_rows is None else val_rows] = output
        models.append(model)
        results.append(result)
    if len(models) == 1:
        model = models[0]
    else:
        model = EnsembleModel(models, [1.0] * len(models), task=task)
        model.architecture = architecture  # what the final ensemble's repr shows
    assert held_out is not None  # set by the first fold; an empty ``folds`` raised above
    return Member(
        architecture, model, results, held_out=held_out,
        val_metrics=task.metrics(held_out, held_out_y),
    )


def ensemble(
    members: list[Member], *, y: Tensor, task: Task, size: int
) -> tuple[nn.Module, dict[str, float]]:
    """Weight ``members`` by greedy selection on their held-out outputs (targets ``y``);
    the weighted ensemble and its held-out scores."""
    outputs = [m.held_out for m in members]
    selection = greedy_ensemble(outputs, y, task, size=size)
    for member, weight in zip(members, selection.weights):
        member.weight = weight
    model = EnsembleModel([m.model for m in members], selection.weights, task=task)
    return model, task.metrics(average(outputs, selection.weights, task), y)


def search_select_retrain(
    plan: FitPlan,
    *,
    weight_data: TensorData,
    arch_data: TensorData,
    val_data: TensorData,
    n_num_features: int,
    cat_cardinalities: Sequence[int],
    task: Task,
    device: DeviceConfig,
    seed: int,
    budget: Budget,
) -> NASResult:
    """Run the phases; ``weight_data`` + ``arch_data`` form the training part."""
    history = History()
    timings: dict[str, float] = {}
    generator = torch.Generator().manual_seed(seed)
    train = _concat(weight_data, arch_data)
    shapes = DataShapes(
        n_num_features, tuple(cat_cardinalities), task.d_out,
        bins=tuple(quantile_bins(train.x_num)) if _needs_bins(plan, n_num_features) else None,
    )
    bars: list[ProgressBar] = []
    trace: list[Decision] = []
    info: dict[str, Any] = {}

    mark = budget.elapsed()
    if plan.architecture is not None:
        candidates = [plan.architecture]
    elif "cells" not in plan.space.backbones:
        candidates = plan.space.candidates()
    else:
        outcome = search(
            plan, weight_data=weight_data, arch_data=arch_data, val_data=val_data, shapes=shapes,
            task=task, device=device, generator=generator, history=history, budget=budget,
            callbacks=_bar(plan, None, "search", bars),
        )
        timings["search_s"] = budget.elapsed() - mark
        logger.info("search: %d steps in %.1f s", outcome.steps, timings["search_s"])

        mark = budget.elapsed()
        selected, trace = select(
            plan, outcome, seed=seed, budget=budget, callbacks=_bar(plan, None, "select", bars)
        )
        timings["selection_s"] = budget.elapsed() - mark
        logger.info("selected in %.1f s:\n%s", timings["selection_s"], selected)
        info = {
            "search_steps": outcome.steps,
            "tune_steps": outcome.trainer.tune_steps if trace else 0,
            "selected_architecture": selected,
            "argmax_architecture": outcome.argmax_architecture,
            "supernet_val": outcome.supernet_val,
            "alpha_shift": outcome.alpha_shift,
            "dominant_hessian_eigenvalue": outcome.dominant_hessian_eigenvalue,
        }
        argmax = outcome.argmax_architecture
        del outcome
        candidates = plan.space.candidates(selected)
        if plan.argmax_candidate and argmax != selected:
            candidates.insert(1, argmax)  # after the selection: ties in weight go to it
    timings.setdefault("search_s", 0.0)
    timings.setdefault("selection_s", 0.0)

    mark = budget.elapsed()
    folds: list[tuple[TensorData, TensorData, Tensor | None]]  # val_rows: None, one split
    if plan.bag_folds:
        pool = _concat(train, val_data)
        fold_of = fold_assignment(
            pool.y, min(plan.bag_folds, len(pool)), generator=generator,
            stratify=task.kind == "classification",
        ).to(pool.y.device)
        folds = [
            (pool[fold_of != f], pool[fold_of == f], fold_of == f)
            for f in range(int(fold_of.max()) + 1)
        ]
        held_out_y = pool.y
    else:
        folds, held_out_y = [(train, val_data, None)], val_data.y
    members: list[Member] = []
    start_share = min(budget.elapsed() / budget.time_limit, 1.0) if budget.time_limit else 0.0
    n_trainings = len(candidates) * len(folds)
    for i, architecture in enumerate(candidates):
        if members and budget.until(1.0).expired():
            logger.info("time limit reached: %d of %d candidates trained", i, len(candidates))
            break
        started = budget.elapsed()
        member = train_candidate(
            plan, architecture, folds=folds, held_out_y=held_out_y, shapes=shapes, task=task,
            device=device, generator=generator, history=history, budget=budget,
            shares=[
                start_share + (1.0 - start_share) * (i * len(folds) + f + 1) / n_trainings
                for f in range(len(folds))
            ],
            candidate=i, callbacks=_bar(plan, plan.max_epochs, f"retrain {i}", bars),
        )
        member.train_s = budget.elapsed() - started
        members.append(member)
        logger.info(
            "candidate %d retrained on %d fold(s) in %.1f s, held-out %s",
            i, len(folds), member.train_s, member.val_metrics,
        )
    for bar in bars:
        bar.close()
    timings["retrain_s"] = budget.elapsed() - mark
    mark = budget.elapsed()
    model, info["ensemble_val"] = ensemble(
        members, y=held_out_y, task=task, size=plan.ensemble_size
    )
    info["bag_folds"] = len(folds) if plan.bag_folds else 0
    timings["ensemble_s"] = budget.elapsed() - mark
    lead = max(members, key=lambda m: m.weight)  # ties go to the earlier candidate
    return NASResult(
        architecture=lead.architecture, model=model.cpu().eval(), history=history,
        selection_trace=trace, retrain=lead.result, members=members, timings=timings,
        search_info=info,
    )


def _concat(a: TensorData, b: TensorData) -> TensorData:
    return TensorData(
        *(torch.cat(pair) for pair in zip((a.x_num, a.x_cat, a.y), (b.x_num, b.x_cat, b.y)))
    )


def _needs_bins(plan: FitPlan, n_num_features: int) -> bool:
    if n_num_features == 0:
        return False
    embeddings = (
        {plan.architecture.num_embedding} if plan.architecture is not None
        else set(plan.space.num_embeddings)
    )
    return bool(embeddings & NEEDS_BINS)


def _bar(plan: FitPlan, total: int | None, name: str, bars: list[ProgressBar]) -> list[Callback]:
    if not plan.verbose:
        return []
    bar = ProgressBar(total=total, description=name)
    bars.append(bar)
    return [bar]
