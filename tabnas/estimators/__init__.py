"""The scikit-learn estimators: the only place that imports scikit-learn's estimator machinery."""

from tabnas.estimators._classifier import TabNASClassifier
from tabnas.estimators._regressor import TabNASRegressor

__all__ = ["TabNASClassifier", "TabNASRegressor"]
