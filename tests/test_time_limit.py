"""``time_limit`` on a fake clock: the clock starts at the top of ``fit`` (preprocessing
included) and each phase stops at its share of the limit within one step of its own
(an interval of the search, a PT decision, a retraining epoch)."""

import functools

import pytest

from tabnas import TabNASClassifier
from tabnas.estimators import _base
from tabnas.preprocessing import TabularPreprocessor
from tabnas.training import loop
from tabnas.training.history import History
from tabnas.training.loop import Budget
from tabnas.training.pipeline import SEARCH_SHARE, SELECTION_SHARE
from tabnas.training.search import SupernetTrainer

LIMIT = 100.0
COST = {"preprocessing": 5.0, "weight_step": 1.0, "scoring": 1.0, "epoch": 2.0}
"""Fake seconds each unit of work takes."""


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def costs(clock, name, method):
    @functools.wraps(method)
    def timed(*args, **kwargs):
        clock.now += COST[name]
        return method(*args, **kwargs)

    return timed


@pytest.fixture(scope="module")
def timed_fit(cancer):
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "Budget", functools.partial(Budget, clock=clock))
        patch.setattr(
            TabularPreprocessor, "fit", costs(clock, "preprocessing", TabularPreprocessor.fit)
        )
        patch.setattr(SupernetTrainer, "step", costs(clock, "weight_step", SupernetTrainer.step))
        patch.setattr(
            SupernetTrainer, "evaluate", costs(clock, "scoring", SupernetTrainer.evaluate)
        )
        patch.setattr(loop, "train_epoch", costs(clock, "epoch", loop.train_epoch))
        record = History.record
        patch.setattr(History, "record", lambda self, **row: record(self, **row, clock=clock.now))
        X, y = cancer
        clf = TabNASClassifier(
            preset="fast", time_limit=LIMIT, max_search_steps=1000, bag_folds=0, device="cpu",
            random_state=0,
        ).fit(X[:300], y[:300])
    return clf, clock


def test_the_search_stops_at_its_share_counted_from_the_top_of_fit(timed_fit):
    clf, _ = timed_fit
    times = [row["clock"] for row in clf.history_.phase("search")]
    deadline = SEARCH_SHARE * LIMIT  # 35 s, of which preprocessing took the first 5
    assert times[-2] < deadline <= times[-1]
    assert times[-1] <= deadline + COST["weight_step"] + COST["scoring"]  # within one step
    assert clf.fit_info_["search_steps"] < 35 - COST["preprocessing"]


def test_selection_stops_at_its_share_within_one_decision(timed_fit):
    clf, _ = timed_fit
    retrain = clf.history_.phase("retrain")
    selection_end = retrain[0]["clock"] - COST["epoch"]  # the first epoch follows selection
    deadline = SELECTION_SHARE * LIMIT
    decision = clf.fit_info_["tune_steps"] * COST["weight_step"] + (
        len(clf.search_space_.ops) + 2
    ) * COST["scoring"]
    assert deadline <= selection_end <= deadline + decision
    assert clf.selection_trace_[-1].reason == "time_limit"  # the rest went by the DARTS rule


def test_retraining_ends_within_one_epoch_of_the_limit(timed_fit):
    clf, clock = timed_fit
    assert LIMIT <= clock.now <= LIMIT + COST["epoch"]
    assert clf.timings_["fit_s"] == clock.now  # the fit's own account uses the same clock
    per_candidate = {}
    for row in clf.history_.phase("retrain"):
        per_candidate.setdefault(row["candidate"], []).append(row)
    assert len(per_candidate) >= 2  # the limit was shared among candidates, each got epochs
    assert clf.fit_info_["stopped_by"] == "time_limit"
