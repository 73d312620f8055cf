"""TabNASRegressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array

from tabnas.estimators._base import BaseTabNAS, as_target
from tabnas.nas.selection.base import Criterion
from tabnas.training.loop import Task

MAX_TARGET_SCALE = 1e250
"""Beyond this, ``prediction * std + mean`` can overflow float64."""


class TabNASRegressor(RegressorMixin, BaseTabNAS):
    """A regressor whose network is found by differentiable architecture search.

    The target is standardised with the training mean and standard deviation for
    training; predictions come back in the original units. See
    :class:`~tabnas.TabNASClassifier` for the parameters and the fitted attributes
    (all but ``classes_``; ``label_smoothing`` must stay 0 here); ``target_mean_`` and
    ``target_std_`` are added.

    Examples
    --------
    >>> import numpy as np
    >>> from tabnas import TabNASRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = X[:, 0] * 3 + 1
    >>> reg = TabNASRegressor(
    ...     preset="fast", max_search_steps=40, max_epochs=5, random_state=0
    ... ).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    def _encode_target(self, y, *, fitting: bool) -> np.ndarray:
        name = "y" if fitting else "y_val"
        y = check_array(as_target(y, name), ensure_2d=False, dtype=np.float64, input_name=name)
        if fitting:
            scale = float(np.max(np.abs(y))) if y.size else 0.0
            if scale > MAX_TARGET_SCALE:
                raise ValueError(
                    f"y holds values up to {scale:.3g}, too large for predictions in float64 to"
                    " stay finite; divide y by a constant (e.g. y / 1e100) and multiply the"
                    " predictions back"
                )
            scale = scale or 1.0  # computed on y / scale, so the moments never overflow
            std = float(np.std(y / scale)) * scale
            self.target_mean_ = float(np.mean(y / scale)) * scale
            self.target_std_ = std if std > 0 else 1.0
        return ((y - self.target_mean_) / self.target_std_).astype(np.float32)

    def _task(self) -> Task:
        return Task(kind="regression", d_out=1)

    def _stratify(self, y_encoded: np.ndarray) -> None:
        return None

    def _selection_criterion(self) -> Criterion:
        return "loss"

    def predict(self, X) -> np.ndarray:
        output = self._raw_predict(X)[:, 0].numpy().astype(np.float64)
        return output * self.target_std_ + self.target_mean_
