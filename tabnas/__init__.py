"""tabnas: differentiable neural architecture search for tabular data."""

from tabnas._version import __version__
from tabnas.estimators import TabNASClassifier, TabNASRegressor, load
from tabnas.nas.space import Architecture

__all__ = ["Architecture", "TabNASClassifier", "TabNASRegressor", "__version__", "load"]
