"""Search, select, retrain: the core of one ``fit``, free of scikit-learn.

The estimators prepare tensors and a :class:`FitPlan`; :func:`search_select_retrain`
runs the three phases -- :func:`search`, :func:`select`, :func:`retrain` -- which hand
each other typed values, and returns everything a fitted estimator keeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from tabnas.devices import DeviceConfig
from tabnas.nas.network import DiscreteNetwork
from tabnas.nas.selection import Decision, SelectionContext, Selector, argmax_select, make_selector
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.strategies import SearchStrategy, make_strategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.callbacks import Callback, EarlyStopping, ProgressBar
from tabnas.training.data import TensorData
from tabnas.training.history import History
from tabnas.training.loop import Budget, FitResult, Task, fit_network, score_supernet
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
    """

    space: SearchSpace
    search: SearchConfig
    strategy: str | SearchStrategy
    selection: str | Selector
    selection_criterion: str
    max_epochs: int
    patience: int
    architecture: Architecture | None = None
    verbose: bool = False


@dataclass(frozen=True)
class Shapes:
    """The data-dependent sizes every network of the fit is built for."""

    n_num_features: int
    cat_cardinalities: tuple[int, ...]
    d_out: int

    def kwargs(self) -> dict[str, Any]:
        return dict(
            n_num_features=self.n_num_features,
            cat_cardinalities=list(self.cat_cardinalities),
            d_out=self.d_out,
        )


@dataclass
class SearchOutcome:
    """A trained supernet, with its trainer (the selector's services) and what it measured."""

    supernet: SuperNetwork
    trainer: SupernetTrainer
    argmax_architecture: Architecture
    """DARTS's own choice from the trained α, before any selection: the baseline."""
    supernet_val: dict[str, float]
    """The undiscretised supernet's scores on the validation split (the discretisation gap)."""
    steps: int
    alpha_shift: float
    """The largest change of any architecture logit over the search."""


@dataclass
class NASResult:
    architecture: Architecture
    model: nn.Module
    history: History
    selection_trace: list[Decision]
    retrain: FitResult
    timings: dict[str, float] = field(default_factory=dict)
    search_info: dict[str, Any] = field(default_factory=dict)


def search(
    plan: FitPlan,
    *,
    weight_data: TensorData,
    arch_data: TensorData,
    val_data: TensorData,
    shapes: Shapes,
    task: Task,
    device: DeviceConfig,
    generator: torch.Generator,
    history: History,
    budget: Budget,
    callbacks: list[Callback] = (),
) -> SearchOutcome:
    """Train the supernet until the architecture-half loss stops improving."""
    supernet = SuperNetwork(space=plan.space, **shapes.kwargs()).to(device.device)
    strategy = make_strategy(plan.strategy).bind(supernet)
    trainer = SupernetTrainer(
        supernet, strategy, weight_data=weight_data, arch_data=arch_data, task=task,
        config=plan.search, device=device, generator=generator, history=history,
        callbacks=list(callbacks),
    )
    steps = trainer.search(budget.until(SEARCH_SHARE))
    with supernet.trial_decisions():
        argmax_architecture = argmax_select(supernet)
    supernet_val = score_supernet(supernet, val_data, task, weights=supernet.default_weights().detach())
    return SearchOutcome(
        supernet=supernet, trainer=trainer, argmax_architecture=argmax_architecture,
        supernet_val=supernet_val, steps=steps,
        alpha_shift=trainer.alpha_shift(),
    )


def select(
    plan: FitPlan, outcome: SearchOutcome, *, seed: int, budget: Budget,
    callbacks: list[Callback] = (),
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
    return selector.select(outcome.supernet, context)


def retrain(
    plan: FitPlan,
    architecture: Architecture,
    *,
    train: TensorData,
    val_data: TensorData,
    shapes: Shapes,
    task: Task,
    device: DeviceConfig,
    generator: torch.Generator,
    history: History,
    budget: Budget,
    callbacks: list[Callback] = (),
) -> tuple[nn.Module, FitResult]:
    """Train ``architecture`` from scratch, early-stopped on val, best weights restored."""
    model = DiscreteNetwork(architecture=architecture, **shapes.kwargs()).to(device.device)
    optimizer = make_weight_optimizer(model, lr=plan.search.lr, weight_decay=plan.search.weight_decay)
    result = fit_network(
        model, train=train, val=val_data, task=task, optimizer=optimizer,
        max_epochs=plan.max_epochs, batch_size=plan.search.batch_size, generator=generator,
        config=device, history=history, deadline=budget.until(1.0),
        callbacks=[EarlyStopping(plan.patience), *callbacks],
    )
    return model, result


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
    """Run the three phases; ``weight_data`` + ``arch_data`` form the training part."""
    history = History()
    timings: dict[str, float] = {}
    generator = torch.Generator().manual_seed(seed)
    shapes = Shapes(n_num_features, tuple(cat_cardinalities), task.d_out)
    bars: list[ProgressBar] = []
    trace: list[Decision] = []
    info: dict[str, Any] = {}

    mark = budget.elapsed()
    if plan.architecture is None:
        outcome = search(
            plan, weight_data=weight_data, arch_data=arch_data, val_data=val_data, shapes=shapes,
            task=task, device=device, generator=generator, history=history, budget=budget,
            callbacks=_bar(plan, None, "search", bars),
        )
        timings["search_s"] = budget.elapsed() - mark
        logger.info("search: %d steps in %.1f s", outcome.steps, timings["search_s"])

        mark = budget.elapsed()
        architecture, trace = select(
            plan, outcome, seed=seed, budget=budget, callbacks=_bar(plan, None, "select", bars)
        )
        timings["selection_s"] = budget.elapsed() - mark
        logger.info("selected in %.1f s:\n%s", timings["selection_s"], architecture)
        info = {
            "search_steps": outcome.steps,
            "tune_steps": outcome.trainer.tune_steps if trace else 0,
            "argmax_architecture": outcome.argmax_architecture,
            "supernet_val": outcome.supernet_val,
            "alpha_shift": outcome.alpha_shift,
        }
        del outcome
    else:
        architecture = plan.architecture
        timings["search_s"] = timings["selection_s"] = 0.0

    mark = budget.elapsed()
    train = TensorData(*(torch.cat(pair) for pair in zip(
        (weight_data.x_num, weight_data.x_cat, weight_data.y),
        (arch_data.x_num, arch_data.x_cat, arch_data.y),
    )))
    model, result = retrain(
        plan, architecture, train=train, val_data=val_data, shapes=shapes, task=task,
        device=device, generator=generator, history=history, budget=budget,
        callbacks=_bar(plan, plan.max_epochs, "retrain", bars),
    )
    for bar in bars:
        bar.close()
    timings["retrain_s"] = budget.elapsed() - mark
    logger.info(
        "retrained for %d epochs (best %d, stopped by %s) in %.1f s",
        result.n_epochs, result.best_epoch, result.stopped_by, timings["retrain_s"],
    )
    return NASResult(
        architecture=architecture, model=model.cpu().eval(), history=history,
        selection_trace=trace, retrain=result, timings=timings, search_info=info,
    )


def _bar(plan: FitPlan, total: int | None, name: str, bars: list[ProgressBar]) -> list[Callback]:
    if not plan.verbose:
        return []
    bar = ProgressBar(total=total, description=name)
    bars.append(bar)
    return [bar]
