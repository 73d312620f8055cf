"""DARTS- and random search with weight sharing through the estimator, with both selectors."""

import pytest

from tabnas import TabNASClassifier
from tabnas.nas.strategies import DARTSMinus, RandomWS
from tests.conftest import FAST

SMALL = {**FAST, "max_search_steps": 20, "max_epochs": 2, "ensemble_size": 1}


@pytest.mark.parametrize(
    "strategy, selection",
    [
        ("darts-minus", "pt"),
        ("darts-minus-instance", "argmax"),
        ("random-ws", "argmax"),
        ("random-ws-instance", "pt"),
    ],
)
def test_new_strategies_fit_with_either_selector(cancer, strategy, selection):
    X, y = cancer
    chosen = {
        "darts-minus-instance": DARTSMinus(beta=(0.5, 0.0)),
        "random-ws-instance": RandomWS(n_samples=20, n_top=3),
    }.get(strategy, strategy)
    clf = TabNASClassifier(**SMALL, search_strategy=chosen, selection=selection).fit(
        X[:200], y[:200]
    )
    assert clf.fit_info_["alpha_shift"] > 0  # α moved: by its steps, or by the ranking
    assert clf.selected_architecture_ is not None and clf.predict(X[:5]).shape == (5,)
    kinds = {record.kind for record in clf.selection_trace_}
    assert ("op" in kinds) == (selection == "pt")
    # The history's mixing weights are the supernet's own: softmax rows, no skip branch.
    for weights in clf.history_.column("weights", phase="search"):
        assert all(sum(edge) == pytest.approx(1.0) for cell in weights for edge in cell)
