"""Turning a table into model inputs, as Gorishniy et al. (2021) do.

Numeric columns: NaN -> the training mean plus a 0/1 missing indicator (for columns that
had missing values in training); then ``QuantileTransformer(output_distribution="normal")``
fitted on a copy of the training rows with small seeded Gaussian noise (``scaling=
"quantile"``, the default), or RealMLP's robust scaling with smooth clipping
(``scaling="robust"``, Holzmüller et al. 2024): centred on the median, divided by the
interquartile range, then ``x / sqrt(1 + (x / 3)**2)``.
Categorical columns: ordinal codes ``1..k`` of the training categories; ``0`` is the slot
for missing values and for categories never seen in training.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import QuantileTransformer

NOISE = 1e-3
SCALINGS = ("quantile", "robust")
"""The numeric transforms of :class:`TabularPreprocessor` (``scaling=``)."""
SMOOTH_CLIP = 3.0
"""RealMLP's smooth clip: robust-scaled values stay inside ``(-3, 3)``."""


def n_quantiles_for(n_train: int) -> int:
    """Gorishniy et al.'s rule, capped by the number of rows."""
    return min(max(min(n_train // 30, 1000), 10), n_train)


def to_float_column(values: Any, name: str) -> np.ndarray:
    """A column as float64; a clear ``ValueError`` for text, dates or durations."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    if array.dtype.kind == "c":  # opens as scikit-learn's message for complex arrays does
        raise ValueError(
            f"Complex data not supported: column {name} holds complex numbers; pass the real"
            " and imaginary parts as two columns (values.real, values.imag)"
        )
    if array.dtype.kind in "mM":
        raise ValueError(dates_message(name, array.dtype))
    array = array.astype(object)
    array[pd.isna(array)] = np.nan
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as error:
        bad = next(v for v in array if not _is_number(v))
        if isinstance(bad, DATE_TYPES):  # Python / pandas datetimes, tz-aware ones included
            raise ValueError(dates_message(name, type(bad).__name__)) from None
        if isinstance(bad, pd.Interval):
            raise ValueError(
                f"column {name} holds intervals such as {bad}; convert it first, e.g. to their"
                " midpoints with df[col].array.mid, or to categories with df[col].astype(str)"
            ) from None
        if isinstance(error, TypeError):  # objects that are no numbers: scikit-learn's TypeError
            raise
        raise ValueError(
            f"column {name} is numeric but holds the non-numeric value {bad!r}; list it in"
            " categorical_features (or give it a pandas 'category' or 'object' dtype) to treat"
            " it as categorical, or clean the values"
        ) from None


DATE_TYPES = (
    datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64, pd.Period
)


def dates_message(name: str, kind: Any) -> str:
    return (
        f"column {name} holds dates or durations ({kind}); tabnas takes numbers and"
        " categories: convert it first, e.g. to seconds with"
        " (df[col] - df[col].min()).dt.total_seconds(), or to categories such as the month"
        " or weekday"
    )


def check_hashable(values: pd.Series, name: str) -> None:
    """Categories must be hashable: a clear error for lists, dicts and sets (called only
    once pandas has failed on the column, so the normal path scans nothing)."""
    for value in values:
        try:
            hash(value)
        except TypeError:
            raise ValueError(
                f"column {name} is categorical but holds {type(value).__name__} values such as"
                f" {value!r}, which cannot be categories; turn each into a string or a number"
                " (e.g. df[col].astype(str)), or split it into columns"
            ) from None


def quantile_transform(quantile: QuantileTransformer, numeric: np.ndarray) -> np.ndarray:
    """``quantile.transform(numeric)``, with the NaN it can give for values at the extreme
    ends of a column whose quantiles span many orders of magnitude (its two-sided
    interpolation cancels to a value just below 0 or above 1, whose normal quantile is NaN)
    replaced by the end the value lies at."""
    out = quantile.transform(numeric)
    broken = np.isnan(out) & ~np.isnan(numeric)
    if broken.any():
        middle = quantile.quantiles_[len(quantile.quantiles_) // 2]
        ends = quantile.transform(quantile.quantiles_[[0, -1]])  # each column's two ends
        out = np.where(broken, np.where(numeric < middle, ends[0], ends[1]), out)
    return out


def value_kind(value: Any) -> str:
    """``"bool"``, ``"number"`` or ``"text"``, else the value's type name: what a
    categorical column's values are, for telling a column read as another type."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.number)):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _category_values(values: pd.Series) -> list:
    observed = pd.unique(values[values.notna()])
    try:
        return sorted(observed)
    except TypeError:  # mixed types: order by text, deterministically
        return sorted(observed, key=lambda v: (type(v).__name__, str(v)))


def robust_scale(numeric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RealMLP's robust scaling, fitted: each column's median and the factor that divides
    it by its interquartile range; by half its range where the quartiles coincide; 0 for a
    constant column (pytabkit's ``RobustScaleSmoothClipTransform``)."""
    median = np.median(numeric, axis=0)
    spread = np.quantile(numeric, 0.75, axis=0) - np.quantile(numeric, 0.25, axis=0)
    flat = spread == 0.0
    spread[flat] = 0.5 * (numeric.max(axis=0) - numeric.min(axis=0))[flat]
    with np.errstate(divide="ignore", over="ignore"):
        factor = np.where(spread > 0.0, 1.0 / np.where(spread > 0.0, spread, 1.0), 0.0)
    return median, factor


def smooth_clip(x: np.ndarray) -> np.ndarray:
    """``x / sqrt(1 + (x / 3)**2)``: about ``x`` near 0, never beyond ±3 (computed without
    overflow for values near the float64 limit)."""
    t = np.clip(x / SMOOTH_CLIP, -1e300, 1e300)  # an overflow to inf would give nan below
    return SMOOTH_CLIP * t / np.hypot(1.0, t)


class TabularPreprocessor:
    """Fitted on the training rows; turns any rows into ``(x_num, x_cat)`` arrays.

    Args:
        categorical: positions of the categorical columns.
        random_state: seeds the quantile noise.
        names: the columns' names, for messages (``'income'`` rather than ``column 1``).
        scaling: ``"quantile"`` (Gorishniy et al.) or ``"robust"`` (RealMLP's robust
            scaling and smooth clipping).
    """

    def __init__(
        self,
        *,
        categorical: Sequence[int],
        random_state: int,
        names: Sequence[str] | None = None,
        scaling: str = "quantile",
    ):
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        self.categorical = list(categorical)
        self.random_state = random_state
        self.names = None if names is None else [str(n) for n in names]
        self.scaling = scaling

    def fit(self, frame: pd.DataFrame) -> TabularPreprocessor:
        """``frame`` has positional columns; its rows are the training rows."""
        self.n_columns_ = frame.shape[1]
        self.numeric_ = [j for j in range(self.n_columns_) if j not in set(self.categorical)]
        self.names_ = [str(c) for c in frame.columns]
        numeric = self._numeric(frame)
        missing = np.isnan(numeric)
        self.indicator_columns_ = [j for j in range(numeric.shape[1]) if missing[:, j].any()]
        # A column of NaN only has no mean (imputed with 0); values near the float64 limit
        # overflow the moments (the mean becomes the largest float, the noise 0).
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(numeric, axis=0) if numeric.size else np.zeros(0)
            self.means_ = np.nan_to_num(means, nan=0.0)
            numeric = np.where(missing, self.means_, numeric)
            stds = np.std(numeric, axis=0, keepdims=True)
        self.quantile_: QuantileTransformer | None = None
        self.robust_: np.ndarray | None = None
        if numeric.shape[1] and self.scaling == "robust":
            self.robust_ = np.stack(robust_scale(numeric))  # rows: median, factor
        elif numeric.shape[1]:
            noise_std = NOISE / np.maximum(stds, NOISE)
            rng = np.random.default_rng(self.random_state)
            noisy = numeric + noise_std * rng.standard_normal(numeric.shape)
            self.quantile_ = QuantileTransformer(
                output_distribution="normal",
                n_quantiles=n_quantiles_for(numeric.shape[0]),
                subsample=10**9,
                random_state=self.random_state,
            ).fit(noisy)
        self.categories_ = [
            pd.Index(self._categorical(frame, j, _category_values)) for j in self.categorical
        ]
        for j, categories in zip(self.categorical, self.categories_):
            dates = [value for value in categories if isinstance(value, DATE_TYPES)]
            if dates:  # a category per date would mean nothing for new dates
                raise ValueError(dates_message(self._name(frame, j), type(dates[0]).__name__))
        return self

    @property
    def n_num_features(self) -> int:
        return len(self.numeric_) + len(self.indicator_columns_)

    @property
    def cat_cardinalities(self) -> list[int]:
        return [len(categories) + 1 for categories in self.categories_]

    def transform(
        self, frame: pd.DataFrame, *, check_kinds: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(numeric inputs, categorical codes)`` of ``frame``'s rows. ``check_kinds``
        (new rows at predict): warn about a categorical column whose values are all unseen
        and of another type than at fit (:meth:`_check_kinds`)."""
        numeric = self._numeric(frame)
        missing = np.isnan(numeric)
        numeric = np.where(missing, self.means_, numeric)
        if self.quantile_ is not None:
            numeric = quantile_transform(self.quantile_, numeric)
        robust = getattr(self, "robust_", None)  # absent in tabnas 0.1's pickles
        if robust is not None:
            median, factor = robust
            with np.errstate(over="ignore", invalid="ignore"):
                numeric = smooth_clip(np.nan_to_num(factor * (numeric - median)))
        indicators = missing[:, self.indicator_columns_].astype(np.float64)
        x_num = np.concatenate([numeric, indicators], axis=1).astype(np.float32)
        x_cat = np.zeros((frame.shape[0], len(self.categorical)), dtype=np.int64)
        for i, (j, categories) in enumerate(zip(self.categorical, self.categories_)):
            codes = self._categorical(
                frame, j, lambda v, cats=categories: cats.get_indexer(v.astype(object))
            )
            if check_kinds:
                self._check_kinds(frame, j, categories, codes)
            x_cat[:, i] = codes + 1  # unknown and missing (-1) -> 0
        return x_num, x_cat

    def _check_kinds(
        self, frame: pd.DataFrame, j: int, categories: pd.Index, codes: np.ndarray
    ) -> None:
        """Warn when none of a categorical column's values is a training category and they
        are of another kind (text, number, bool) than the categories: codes read as numbers
        where they were text at fit, for instance, would otherwise all fall into the
        "unseen" slot without a word."""
        present = frame.iloc[:, j].notna().to_numpy()
        if not present.any() or (codes[present] >= 0).any():
            return
        fitted = {value_kind(c) for c in categories}
        # hashable (get_indexer read them): the distinct values only
        now = {value_kind(v) for v in pd.unique(frame.iloc[:, j][present].astype(object))}
        if fitted and not fitted & now:
            warnings.warn(
                f"categorical column {self._name(frame, j)} held {' and '.join(sorted(fitted))}"
                f" values at fit and holds {' and '.join(sorted(now))} values now, none of them"
                " a category seen at fit, so every row gets the unseen-category code; give the"
                " column the type it had at fit (for example .astype(str) for codes that were"
                " text)",
                UserWarning, stacklevel=2,
            )

    def _numeric(self, frame: pd.DataFrame) -> np.ndarray:
        columns = [to_float_column(frame.iloc[:, j], self._name(frame, j)) for j in self.numeric_]
        if not columns:
            return np.zeros((frame.shape[0], 0))
        numeric = np.stack(columns, axis=1)
        if np.isinf(numeric).any():
            j = self.numeric_[int(np.isinf(numeric).any(axis=0).argmax())]
            raise ValueError(
                f"X contains infinity in column {self._name(frame, j)}; replace infinite"
                " values by finite ones or by NaN (NaN is imputed)"
            )
        return numeric

    def _categorical(self, frame: pd.DataFrame, j: int, read):
        """``read(column j)``; unhashable values (lists, dicts) get an error naming them."""
        try:
            return read(frame.iloc[:, j])
        except TypeError:
            check_hashable(frame.iloc[:, j], self._name(frame, j))
            raise

    def _name(self, frame: pd.DataFrame, j: int) -> str:
        names = getattr(self, "names", None)  # absent in preprocessors pickled by tabnas 0.1
        name = names[j] if names is not None and j < len(names) else frame.columns[j]
        return repr(name) if isinstance(name, str) else f"{j}"
