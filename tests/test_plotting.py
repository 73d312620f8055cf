"""tabnas.plotting: each figure draws from a fitted estimator and saves a real PNG."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from tabnas import TabNASClassifier, TabNASRegressor
from tabnas.nas.selection import Fallback, InputDecision, OpDecision
from tabnas.nas.space import SearchSpace
from tabnas.training.history import History

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from tabnas.plotting import (  # noqa: E402
    plot_architecture_weights,
    plot_learning_curves,
    plot_selection_trace,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = dict(preset="fast", max_search_steps=20, max_epochs=5, device="cpu", random_state=0)
PLOTS = [plot_architecture_weights, plot_selection_trace, plot_learning_curves]


def subsample(cancer, n):
    X, y = cancer
    rows = np.random.default_rng(0).choice(len(X), size=n, replace=False)
    return X[rows], y[rows]


@pytest.fixture(scope="module")
def fitted(cancer):
    """One PT fit shared by the module: a few seconds on 200 rows."""
    return TabNASClassifier(**TINY).fit(*subsample(cancer, 200))


@pytest.fixture(scope="module")
def fitted_argmax(cancer):
    argmax = TabNASClassifier(**{**TINY, "max_epochs": 1}, selection="argmax")
    return argmax.fit(*subsample(cancer, 80))


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE)
    assert data.startswith(PNG_SIGNATURE)


def test_architecture_weights(fitted, tmp_path):
    path = tmp_path / "weights.png"
    fig = plot_architecture_weights(fitted, path)
    assert isinstance(fig, Figure)
    assert_png(path)
    space = fitted.search_space_
    assert len(fig.axes) == space.n_cells * space.n_edges  # a row of edge panels per cell
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("cell 0: in->n1")
    assert any("n1->n2" in title for title in titles)
    # one line per op in every panel, with a point per search and select epoch
    n_epochs = len(fitted.history_.phase("search")) + len(fitted.history_.phase("select"))
    curves = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == n_epochs]
    assert len(curves) == len(space.ops)


def test_selection_trace(fitted, tmp_path):
    path = tmp_path / "trace.png"
    fig = plot_selection_trace(fitted, path)
    assert_png(path)
    trace = fitted.selection_trace_
    op_rows = [row for row in trace if row.kind == "op"]
    input_rows = [row for row in trace if row.kind == "input"]
    assert len(op_rows) == fitted.search_space_.n_cells * fitted.search_space_.n_edges
    # fast keeps both inputs of its two nodes, so there is no input pruning to draw
    assert not input_rows
    assert len(fig.axes) == 1
    (op_ax,) = fig.axes
    assert len(op_ax.get_xticks()) == len(op_rows)
    assert op_ax.get_ylabel() == "accuracy lost when removed"


def test_learning_curves(fitted, tmp_path):
    path = tmp_path / "curves.png"
    fig = plot_learning_curves(fitted, path)
    assert_png(path)
    assert len(fig.axes) == 4
    legend = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    for member in fitted.ensemble_:  # one curve per candidate, named by its axes and weight
        arch = member["architecture"]
        assert (
            f"{arch['backbone']} · {arch['num_embedding']}"
            f" · w {member['weight']:.1f}: val" in legend
        )
    assert fig.axes[2].get_ylabel() == "validation accuracy"


def test_without_path_nothing_is_written(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    for plot in PLOTS:
        assert isinstance(plot(fitted), Figure)
    assert list(tmp_path.iterdir()) == []
    if not pyplot_loaded:  # figures are built without pyplot's global state
        assert "matplotlib.pyplot" not in sys.modules


def test_argmax_has_no_trace(fitted_argmax, tmp_path):
    assert fitted_argmax.selection_trace_ == []
    with pytest.raises(ValueError, match='selection="pt"'):
        plot_selection_trace(fitted_argmax)
    # the other two figures need no trace
    plot_architecture_weights(fitted_argmax, tmp_path / "weights.png")
    plot_learning_curves(fitted_argmax, tmp_path / "curves.png")
    assert_png(tmp_path / "weights.png")
    assert_png(tmp_path / "curves.png")


@pytest.mark.parametrize("plot", PLOTS)
def test_unfitted(plot, tmp_path):
    with pytest.raises(NotFittedError):
        plot(TabNASClassifier(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---- a regressor with a hand-written history: no fit needed -----------------------------
def synthetic_regressor(trace):
    space = SearchSpace(n_cells=1, n_nodes=2)
    rng = np.random.default_rng(0)
    history = History()
    for epoch in range(4):
        weights = rng.dirichlet(np.ones(len(space.ops)), size=(1, space.n_edges))
        fixed = np.zeros((1, space.n_edges), dtype=bool)
        if epoch == 3:  # PT fixed edge 0 to its first op
            weights[0, 0] = np.eye(len(space.ops))[0]
            fixed[0, 0] = True
        history.record(
            phase="search" if epoch < 3 else "select", epoch=epoch, train_loss=1.0 / (epoch + 1),
            val_loss=1.2 / (epoch + 1), val_rmse=1.1 / (epoch + 1), val_score=-1.1 / (epoch + 1),
            arch_steps=epoch > 0, weights=weights.tolist(), fixed=fixed.tolist(),
            removed=np.zeros_like(fixed).tolist(),
        )
    for epoch in range(3):
        history.record(
            phase="retrain", epoch=epoch, train_loss=0.5 - 0.1 * epoch, val_loss=0.6 - 0.1 * epoch,
            val_rmse=0.7 - 0.1 * epoch, val_score=-0.7 + 0.1 * epoch, improved=True,
        )
    est = TabNASRegressor()
    est.history_, est.search_space_ = history, space
    est.selection_trace_, est.best_epoch_ = trace, 2
    return est


def test_regressor_labels(tmp_path):
    base = {"loss": 1.0}
    trace = [
        OpDecision(step=0, cell=0, edge=0, source=0, target=1, criterion="loss", base=base,
                   scores={}, damage={"attention": 0.3, "ffn": -0.1, "skip": 0.0},
                   kept="attention"),
        InputDecision(step=1, cell=0, target=2, criterion="loss", base=base, scores={},
                      damage={0: 0.01, 1: 0.2}, removed=0),
        Fallback(step=2, reason="time_limit"),
    ]
    est = synthetic_regressor(trace)
    curves = plot_learning_curves(est, tmp_path / "curves.png")
    assert curves.axes[2].get_ylabel() == "validation RMSE (standardised y)"
    selection = plot_selection_trace(est, tmp_path / "trace.png")
    assert selection.axes[0].get_ylabel() == "loss gained when removed"
    assert len(selection.axes) == 2 and len(selection.axes[1].get_xticks()) == 1  # input pruning
    assert "argmax" in selection._suptitle.get_text()
    weights = plot_architecture_weights(est, tmp_path / "weights.png")
    assert len(weights.axes) == est.search_space_.n_edges
    for name in ("curves.png", "trace.png", "weights.png"):
        assert_png(tmp_path / name)


def test_trace_without_decisions():
    est = synthetic_regressor([Fallback(step=0, reason="time_limit")])
    with pytest.raises(ValueError, match="time limit"):
        plot_selection_trace(est)


def test_plotting_modules_import_the_op_and_node_vocabulary_from_nas():
    import tabnas.plotting

    package = Path(tabnas.plotting.__file__).parent
    sources = {path.name: path.read_text() for path in package.glob("*.py")}
    assert {"weights.py", "trace.py", "curves.py", "_common.py"} <= set(sources)
    for name, text in sources.items():
        tree = ast.parse(text)
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert not defined & {"node_name", "edge_name", "_node", "_edge_label"}, name
        assert "NONE_OP =" not in text, f"{name} defines its own name for the none op"
    assert "from tabnas.nas.space import edge_name" in sources["weights.py"]
    assert "from tabnas.nas.selection.trace import" in sources["trace.py"]
