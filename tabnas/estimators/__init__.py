"""The scikit-learn estimators: the only place that imports scikit-learn's estimator machinery."""

from tabnas.estimators._classifier import TabNASClassifier
from tabnas.estimators._persistence import load
from tabnas.estimators._regressor import TabNASRegressor

__all__ = ["TabNASClassifier", "TabNASRegressor", "load"]
