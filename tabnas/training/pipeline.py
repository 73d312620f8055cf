"""Search, select, retrain: the core of one ``fit``, free of scikit-learn.

The estimators prepare tensors and a :class:`FitPlan`; :func:`search_select_retrain`
returns everything a fitted estimator keeps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from tabnas.devices import DeviceConfig
from tabnas.nas.network import DiscreteNetwork
from tabnas.nas.selection import PerturbationSelector, make_selector
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.strategies import make_strategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.callbacks import Callback, EarlyStopping, ProgressBar
from tabnas.training.data import TensorData
from tabnas.training.history import History
from tabnas.training.loop import Deadline, FitResult, Task, fit_network
from tabnas.training.optim import make_weight_optimizer
from tabnas.training.search import SearchConfig, SupernetTrainer

logger = logging.getLogger(__name__)

# Shares of ``time_limit`` by which search, then selection, must be over.
SEARCH_SHARE = 0.35
SELECTION_SHARE = 0.55


@dataclass(frozen=True)
class FitPlan:
    """Everything the core needs to know about one fit, resolved from the estimator."""

    space: SearchSpace
    search: SearchConfig
    strategy: str
    selection: str
    selection_criterion: str
    max_epochs: int
    patience: int
    time_limit: float | None = None
    verbose: bool = False


@dataclass
class NASResult:
    architecture: Architecture
    model: nn.Module
    history: History
    selection_trace: list[dict[str, Any]]
    retrain: FitResult
    timings: dict[str, float] = field(default_factory=dict)


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
) -> NASResult:
    """Run the three phases; ``weight_data`` + ``arch_data`` form the training part."""
    started = time.monotonic()
    limit = plan.time_limit
    history = History()
    timings: dict[str, float] = {}
    generator = torch.Generator().manual_seed(seed)
    shapes = dict(n_num_features=n_num_features, cat_cardinalities=list(cat_cardinalities), d_out=task.d_out)

    # ---- search ----------------------------------------------------------------------
    supernet = SuperNetwork(space=plan.space, **shapes).to(device.device)
    strategy = make_strategy(plan.strategy, supernet)
    bars: list[ProgressBar] = []
    search_bar = _bar(plan, plan.search.epochs, "search", bars)
    trainer = SupernetTrainer(
        supernet, strategy, weight_data=weight_data, arch_data=arch_data, task=task,
        config=plan.search, device=device, generator=generator, history=history,
        callbacks=search_bar,
    )
    trainer.search(Deadline(None if limit is None else SEARCH_SHARE * limit))
    timings["search_s"] = time.monotonic() - started
    logger.info("search finished in %.1f s", timings["search_s"])

    # ---- selection -------------------------------------------------------------------
    mark = time.monotonic()
    selection_deadline = Deadline(
        None if limit is None else SELECTION_SHARE * limit - (mark - started)
    )
    kwargs = {"criterion": plan.selection_criterion} if plan.selection == "pt" else {}
    selector = make_selector(plan.selection, **kwargs)
    if isinstance(selector, PerturbationSelector):
        trainer.start_tuning()
        trainer.callbacks = _bar(plan, None, "select", bars)
    architecture, trace = selector.select(
        supernet, evaluate=trainer.evaluate, tune=trainer.tune, seed=seed,
        expired=selection_deadline.expired,
    )
    timings["selection_s"] = time.monotonic() - mark
    logger.info("selected in %.1f s:\n%s", timings["selection_s"], architecture)
    del supernet, trainer, strategy

    # ---- retrain from scratch --------------------------------------------------------
    mark = time.monotonic()
    model = DiscreteNetwork(architecture=architecture, **shapes).to(device.device)
    optimizer = make_weight_optimizer(model, lr=plan.search.lr, weight_decay=plan.search.weight_decay)
    train = TensorData(*(torch.cat(pair) for pair in zip(
        (weight_data.x_num, weight_data.x_cat, weight_data.y),
        (arch_data.x_num, arch_data.x_cat, arch_data.y),
    )))
    callbacks: list[Callback] = [EarlyStopping(plan.patience), *_bar(plan, plan.max_epochs, "retrain", bars)]
    result = fit_network(
        model, train=train, val=val_data, task=task, optimizer=optimizer,
        max_epochs=plan.max_epochs, batch_size=plan.search.batch_size, generator=generator,
        config=device, history=history,
        deadline=Deadline(None if limit is None else limit - (mark - started)),
        callbacks=callbacks,
    )
    for bar in bars:
        bar.close()
    timings["retrain_s"] = time.monotonic() - mark
    timings["total_s"] = time.monotonic() - started
    logger.info(
        "retrained for %d epochs (best %d, stopped by %s) in %.1f s",
        result.n_epochs, result.best_epoch, result.stopped_by, timings["retrain_s"],
    )
    return NASResult(
        architecture=architecture, model=model.cpu().eval(), history=history,
        selection_trace=trace, retrain=result, timings=timings,
    )


def _bar(plan: FitPlan, total: int | None, name: str, bars: list[ProgressBar]) -> list[Callback]:
    if not plan.verbose:
        return []
    bar = ProgressBar(total=total, description=name)
    bars.append(bar)
    return [bar]
