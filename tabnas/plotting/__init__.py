"""Figures of a fitted TabNAS estimator: architecture weights, PT decisions, learning curves.

Each function takes a fitted :class:`~tabnas.TabNASClassifier` or
:class:`~tabnas.TabNASRegressor`, returns a :class:`matplotlib.figure.Figure` and, when
``path`` is given, saves it there (PNG unless the file name's suffix says otherwise).

matplotlib is an optional dependency (``pip install tabnas[plot]``). It is imported only
when a function is called; the figures are built without :mod:`matplotlib.pyplot`, so
calling them neither opens windows nor changes the global backend. To show a figure in a
notebook, return it as the last expression of a cell.

Examples
--------
>>> from tabnas.plotting import plot_learning_curves
>>> fig = plot_learning_curves(clf, "curves.png")  # doctest: +SKIP
"""

from tabnas.plotting.curves import plot_learning_curves
from tabnas.plotting.trace import plot_selection_trace
from tabnas.plotting.weights import plot_architecture_weights

__all__ = ["plot_architecture_weights", "plot_learning_curves", "plot_selection_trace"]
