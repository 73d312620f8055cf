"""The reliability catalogue: every kind of awkward input the estimators are tried with,
and what each gets (a fit that works, or an error that names the problem and the fix).

``docs/reliability.md`` is written from this catalogue, with the messages the estimators
really give: ``python -m tests.test_reliability > docs/reliability.md``.
"""

from __future__ import annotations

import datetime
import functools
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from sklearn.exceptions import NotFittedError

from tabnas import TabNASClassifier, TabNASRegressor
from tabnas.preprocessing import TabularPreprocessor

TINY = dict(
    preset="fast", max_search_steps=4, max_epochs=1, ensemble_size=1, bag_folds=0, device="cpu",
    random_state=0,
)
N = 40
RNG = np.random.default_rng(0)
NUM = RNG.normal(size=(N, 2))
LABELS = np.array([0, 1] * (N // 2))
TARGET = NUM[:, 0] * 2.0 + 1.0


def clf(**params) -> TabNASClassifier:
    return TabNASClassifier(**{**TINY, **params})


def reg(**params) -> TabNASRegressor:
    return TabNASRegressor(**{**TINY, **params})


def frame(**columns) -> pd.DataFrame:
    """Two numeric columns ``a`` and ``b`` plus the given ones."""
    return pd.DataFrame({"a": NUM[:, 0], "b": NUM[:, 1], **columns})


@functools.cache
def fitted_on_frame() -> TabNASClassifier:
    X = frame(color=pd.Categorical(RNG.choice(["red", "green"], size=N)))
    return clf().fit(X, LABELS)


@functools.cache
def fitted_on_codes() -> TabNASClassifier:
    return clf().fit(frame(zip=np.array(["10001", "10002"] * (N // 2))), LABELS)


@functools.cache
def fitted_on_array() -> TabNASClassifier:
    return clf().fit(NUM, LABELS)


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    run: Callable[[], object]
    error: type[BaseException] | None = None
    """``None``: the input is handled (``run`` returns, ``check`` holds)."""
    message: str = ""
    """A regex the error's message must match: it names the problem and the fix."""
    check: Callable[[object], bool] = lambda result: True

    @property
    def outcome(self) -> str:
        return "handled" if self.error is None else "clear error"


def fits(result) -> bool:
    return hasattr(result, "model_")


def predicts(result) -> bool:
    return isinstance(result, np.ndarray) and len(result) > 0


def warned(run: Callable[[], object]) -> list[str]:
    """The messages of the warnings ``run()`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught]


def days(n):
    return pd.date_range("2024-01-01", periods=n, freq="D")


CASES = [
    # ---- shapes and sizes --------------------------------------------------------------
    Case("shape", "no rows", lambda: clf().fit(np.zeros((0, 2)), []), ValueError, "0 sample"),
    Case(
        "shape", "no columns",
        lambda: clf().fit(np.zeros((N, 0)), LABELS),
        ValueError, "0 feature",
    ),
    Case("shape", "one row", lambda: reg().fit(NUM[:1], [0.5]), ValueError, "at least 4 samples"),
    Case(
        "shape", "three rows",
        lambda: clf().fit(NUM[:3], [0, 1, 0]),
        ValueError, "at least 4 samples",
    ),
    Case("shape", "the minimum of four rows", lambda: clf().fit(NUM[:4], [0, 1, 0, 1]), check=fits),
    Case(
        "shape", "six rows, four classes",
        lambda: clf().fit(NUM[:6], [0, 1, 2, 3, 0, 1]),
        check=fits,
    ),
    Case(
        "shape", "three training rows with X_val",
        lambda: clf().fit(NUM[:3], [0, 1, 0], X_val=NUM[3:6], y_val=[1, 0, 1]), check=fits,
    ),
    Case(
        "shape", "1-d X",
        lambda: clf().fit(NUM[:, 0], LABELS),
        ValueError, "Expected 2D array.*reshape",
    ),
    Case("shape", "3-d X", lambda: clf().fit(NUM[:, :, None], LABELS), ValueError, "3"),
    Case(
        "shape", "X and y of different lengths",
        lambda: clf().fit(NUM, LABELS[:-1]),
        ValueError, "inconsistent numbers of samples",
    ),
    Case("shape", "a list of lists", lambda: clf().fit(NUM.tolist(), LABELS.tolist()), check=fits),
    Case(
        "shape", "a sparse matrix",
        lambda: clf().fit(scipy.sparse.csr_matrix(NUM), LABELS),
        TypeError, "dense data is required.*toarray",
    ),
    Case(
        "shape", "validation_fraction leaving one training row",
        lambda: reg(validation_fraction=0.9).fit(NUM[:4], TARGET[:4]),
        ValueError, "validation_fraction=0.9 leaves 1 of 4 rows for training.*pass X_val",
    ),
    Case(
        "shape", "50 classes on 100 rows",
        lambda: clf().fit(RNG.normal(size=(100, 2)), np.arange(100) % 50),
        check=fits,
    ),
    # ---- numeric values ----------------------------------------------------------------
    Case(
        "values", "NaN in a numeric column",
        lambda: clf().fit(np.where(NUM > 1, np.nan, NUM), LABELS),
        check=fits,
    ),
    Case(
        "values", "a column of NaN only",
        lambda: clf().fit(np.c_[NUM, np.full(N, np.nan)], LABELS),
        check=fits,
    ),
    Case(
        "values", "+inf in a column",
        lambda: clf().fit(frame(c=np.r_[np.inf, NUM[1:, 0]]), LABELS),
        ValueError, "infinity in column 'c'.*replace",
    ),
    Case(
        "values", "-inf in a column",
        lambda: clf().fit(np.c_[NUM, np.r_[-np.inf, NUM[1:, 0]]], LABELS),
        ValueError, "infinity in column 2",
    ),
    Case(
        "values", "a constant column",
        lambda: clf().fit(np.c_[NUM, np.ones(N)], LABELS),
        check=fits,
    ),
    Case("values", "values near 1e300", lambda: clf().fit(NUM * 1e300, LABELS), check=fits),
    Case("values", "values near 1e-300", lambda: clf().fit(NUM * 1e-300, LABELS), check=fits),
    Case("values", "integers", lambda: clf().fit((NUM * 10).astype(int), LABELS), check=fits),
    Case("values", "a boolean array", lambda: clf().fit(NUM > 0, LABELS), check=fits),
    Case("values", "float16", lambda: clf().fit(NUM.astype(np.float16), LABELS), check=fits),
    Case(
        "values", "complex numbers",
        lambda: clf().fit(NUM + 1j, LABELS),
        ValueError, "Complex data not supported",
    ),
    Case(
        "values", "a complex column in a frame",
        lambda: clf().fit(frame(z=NUM[:, 0] + 1j), LABELS),
        ValueError, "Complex data not supported: column 'z' holds complex.*two columns",
    ),
    Case(
        "values", "numbers written as text",
        lambda: clf().fit(NUM.astype(str), LABELS),
        check=fits,
    ),
    Case(
        "values", "text in an array without categorical_features",
        lambda: clf().fit(np.c_[NUM, np.where(LABELS, "x", "y")], LABELS), ValueError,
        "column 2 is numeric but holds the non-numeric value.*categorical_features",
    ),
    Case(
        "values", "pandas nullable Int64 with NA",
        lambda: clf().fit(frame(c=pd.array([1, None] * (N // 2), dtype="Int64")), LABELS),
        check=fits,
    ),
    Case(
        "values", "pandas Float64 with NA",
        lambda: clf().fit(frame(c=pd.array([1.5, None] * (N // 2), dtype="Float64")), LABELS),
        check=fits,
    ),
    # ---- dates, times and odd objects ------------------------------------------------
    Case(
        "dates", "a datetime64 column",
        lambda: clf().fit(frame(when=days(N)), LABELS),
        ValueError, "column 'when' holds dates.*total_seconds",
    ),
    Case(
        "dates", "a timezone-aware column",
        lambda: clf().fit(frame(when=days(N).tz_localize("UTC")), LABELS),
        ValueError, "column 'when' holds dates",
    ),
    Case(
        "dates", "a timedelta column",
        lambda: clf().fit(frame(took=pd.to_timedelta(np.arange(N), unit="s")), LABELS),
        ValueError, "column 'took' holds dates or durations",
    ),
    Case(
        "dates", "a numpy datetime64 array",
        lambda: clf().fit(np.array(days(N), dtype="datetime64[ns]")[:, None], LABELS),
        ValueError, "column 0 holds dates",
    ),
    Case(
        "dates", "Python datetime objects",
        lambda: clf().fit(
            frame(when=pd.Series(list(days(N).to_pydatetime()), dtype=object)), LABELS
        ),
        ValueError, "column 'when' holds dates",
    ),
    Case(
        "dates", "Python date objects",
        lambda: clf().fit(
            frame(when=[datetime.date(2024, 1, 1 + i % 28) for i in range(N)]), LABELS
        ),
        ValueError, "column 'when' holds dates",
    ),
    Case(
        "dates", "a pandas Period column",
        lambda: clf().fit(frame(month=pd.period_range("2024-01", periods=N, freq="M")), LABELS),
        ValueError, "column 'month' holds dates",
    ),
    Case(
        "objects", "lists in a column",
        lambda: clf().fit(frame(tags=[[1, 2]] * N), LABELS),
        ValueError, "column 'tags' is categorical but holds list values.*astype\\(str\\)",
    ),
    Case(
        "objects", "dicts in a column",
        lambda: clf().fit(frame(meta=[{"k": 1}] * N), LABELS),
        ValueError, "column 'meta' is categorical but holds dict values",
    ),
    Case(
        "objects", "an interval column",
        lambda: clf().fit(frame(span=pd.Series(pd.interval_range(0, N))), LABELS),
        ValueError, "column 'span' holds intervals.*mid.*astype\\(str\\)",
    ),
    Case(
        "objects", "sets in a column",
        lambda: clf().fit(frame(s=[{1}] * N), LABELS),
        ValueError, "column 's' is categorical but holds set values",
    ),
    # ---- categorical columns ---------------------------------------------------------
    Case(
        "categorical", "a category column with missing values",
        lambda: clf().fit(frame(c=pd.Categorical(["x", None] * (N // 2))), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "unused categories in the dtype",
        lambda: clf().fit(frame(c=pd.Categorical(["x"] * N, categories=["x", "y", "z"])), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "an object column of mixed types",
        lambda: clf().fit(frame(c=pd.Series([1, "a"] * (N // 2), dtype=object)), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "a string column with NA",
        lambda: clf().fit(frame(c=pd.array(["x", None] * (N // 2), dtype="string")), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "a boolean column with NA",
        lambda: clf().fit(frame(c=pd.array([True, None] * (N // 2), dtype="boolean")), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "every value a new category",
        lambda: clf().fit(frame(c=[f"id{i}" for i in range(N)]), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "categorical_features by name",
        lambda: clf(categorical_features=["b"]).fit(frame(), LABELS),
        check=fits,
    ),
    Case(
        "categorical", "categorical_features as a mask",
        lambda: clf(categorical_features=[False, True]).fit(NUM, LABELS),
        check=fits,
    ),
    Case(
        "categorical", "an unknown name in categorical_features",
        lambda: clf(categorical_features=["z"]).fit(frame(), LABELS),
        ValueError, "names 'z', which is not a column of X",
    ),
    Case(
        "categorical", "an index out of range",
        lambda: clf(categorical_features=[5]).fit(NUM, LABELS),
        ValueError, "column names or indices in \\[0, 2\\)",
    ),
    Case(
        "categorical", "a mask of the wrong length",
        lambda: clf(categorical_features=[True]).fit(NUM, LABELS),
        ValueError, "boolean mask needs 2 entries",
    ),
    Case(
        "categorical", "a category never seen in training, at predict",
        lambda: fitted_on_frame().predict(frame(color=pd.Categorical(["blue"] * N))),
        check=predicts,
    ),
    Case(
        "categorical", "a column of codes that were text at fit, read as numbers at predict",
        lambda: warned(
            lambda: fitted_on_codes().predict(frame(zip=np.array([10001, 10002] * (N // 2))))
        ),
        check=lambda messages: any(
            re.search("column 'zip' held text values at fit and holds number values now.*astype",
                      m, re.S) for m in messages
        ),
    ),
    Case(
        "categorical", "missing values at predict only",
        lambda: fitted_on_frame().predict(
            frame(color=pd.Categorical([None] * N, categories=["red"]))
        ),
        check=predicts,
    ),
    Case(
        "categorical", "NaN among text in a list of lists",
        lambda: clf(categorical_features=[1]).fit(
            [[x, np.nan if i % 5 == 0 else "ab"[i % 2]] for i, x in enumerate(NUM[:, 0])],
            LABELS,
        ),
        check=lambda est: list(est.preprocessor_.categories_[0]) == ["a", "b"],
    ),
    # ---- column names --------------------------------------------------------------------
    Case("names", "integer column names", lambda: clf().fit(pd.DataFrame(NUM), LABELS), check=fits),
    Case(
        "names", "names of mixed types",
        lambda: clf().fit(pd.DataFrame(NUM, columns=["a", 1]), LABELS),
        TypeError, "all input features have string names.*astype\\(str\\)",
    ),
    Case(
        "names", "columns reordered at predict",
        lambda: fitted_on_frame().predict(fitted_on_frame_input()[["b", "a", "color"]]),
        ValueError, "same order",
    ),
    Case(
        "names", "a column missing at predict",
        lambda: fitted_on_frame().predict(fitted_on_frame_input()[["a", "b"]]),
        ValueError, "Feature names seen at fit time, yet now missing",
    ),
    Case(
        "names", "a different number of columns at predict",
        lambda: fitted_on_array().predict(NUM[:, :1]),
        ValueError, "has 1 features, but TabNASClassifier is expecting 2",
    ),
    Case(
        "names", "predict before fit",
        lambda: clf().predict(NUM),
        NotFittedError, "not fitted yet.*Call 'fit'",
    ),
    # ---- classification labels -------------------------------------------------------
    Case(
        "labels", "string labels",
        lambda: clf().fit(NUM, np.where(LABELS, "yes", "no")),
        check=fits,
    ),
    Case("labels", "boolean labels", lambda: clf().fit(NUM, LABELS.astype(bool)), check=fits),
    Case(
        "labels", "pandas Categorical labels",
        lambda: clf().fit(NUM, pd.Categorical(np.where(LABELS, "a", "b"))),
        check=fits,
    ),
    Case("labels", "a column vector y", lambda: clf().fit(NUM, LABELS[:, None]), check=fits),
    Case(
        "labels", "one class only",
        lambda: clf().fit(NUM, np.zeros(N)),
        ValueError, "only one class.*at least 2 classes",
    ),
    Case(
        "labels", "a class with a single row",
        lambda: clf().fit(NUM, np.r_[LABELS[:-1], 2]),
        check=fits,
    ),
    Case(
        "labels", "continuous values as labels",
        lambda: clf().fit(NUM, TARGET),
        ValueError, "Unknown label type: continuous.*regression target",
    ),
    Case(
        "labels", "one-hot labels",
        lambda: clf().fit(NUM, np.eye(2)[LABELS]),
        ValueError, "y should be a 1d array",
    ),
    Case(
        "labels", "NaN among float labels",
        lambda: clf().fit(NUM, np.r_[np.nan, LABELS[1:]].astype(float)),
        ValueError, "Input y contains NaN",
    ),
    Case(
        "labels", "None among object labels",
        lambda: clf().fit(NUM, np.array([None, *["a", "b"] * (N // 2 - 1), "a"], dtype=object)),
        ValueError, "1 missing label.*drop those rows",
    ),
    Case(
        "labels", "NaN among text labels in a list",
        lambda: clf().fit(NUM, ["a", "b"] * (N // 2 - 1) + ["a", np.nan]),
        ValueError, "y contains 1 missing label.*drop those rows",
    ),
    Case(
        "labels", "a missing label in y_val",
        lambda: clf().fit(
            NUM, LABELS, X_val=NUM[:4], y_val=np.array([0, 1, None, 1], dtype=object)
        ),
        ValueError, "y_val contains 1 missing label",
    ),
    Case(
        "labels", "labels of mixed types in an object array",
        lambda: clf().fit(NUM, np.array([1, "a"] * (N // 2), dtype=object)),
        ValueError, "mixes label types.*one type",
    ),
    Case(
        "labels", "y_val with a label not in y",
        lambda: clf().fit(NUM, LABELS, X_val=NUM[:4], y_val=[0, 1, 2, 0]),
        ValueError, "y_val holds labels not present in y: \\[2\\]",
    ),
    Case(
        "labels", "y is None",
        lambda: clf().fit(NUM, None),
        ValueError, "requires y to be passed",
    ),
    # ---- regression targets ------------------------------------------------------------
    Case(
        "targets", "NaN in the target",
        lambda: reg().fit(NUM, np.r_[np.nan, TARGET[1:]]),
        ValueError, "Input y contains NaN",
    ),
    Case(
        "targets", "inf in the target",
        lambda: reg().fit(NUM, np.r_[np.inf, TARGET[1:]]),
        ValueError, "Input y contains infinity",
    ),
    Case(
        "targets", "text as the target",
        lambda: reg().fit(NUM, np.where(LABELS, "a", "b")),
        ValueError, "could not convert string to float",
    ),
    Case(
        "targets", "a constant target",
        lambda: reg().fit(NUM, np.ones(N)).predict(NUM),
        check=lambda p: np.allclose(p, 1.0, atol=0.1),
    ),
    Case(
        "targets", "a target near 1e200",
        lambda: reg().fit(NUM, TARGET * 1e200).predict(NUM),
        check=lambda p: np.isfinite(p).all(),
    ),
    Case(
        "targets", "a target near 1e300",
        lambda: reg().fit(NUM, TARGET * 1e300),
        ValueError, "too large for predictions.*divide y",
    ),
    Case(
        "targets", "a two-column target",
        lambda: reg().fit(NUM, np.c_[TARGET, TARGET]),
        ValueError, "y should be a 1d array",
    ),
    Case(
        "targets", "an integer target",
        lambda: reg().fit(NUM, (TARGET * 10).astype(int)),
        check=fits,
    ),
    Case(
        "targets", "NaN in y_val",
        lambda: reg().fit(NUM, TARGET, X_val=NUM[:4], y_val=[np.nan, 1.0, 2.0, 3.0]),
        ValueError, "Input y_val contains NaN",
    ),
    # ---- parameters and arguments ----------------------------------------------------
    Case(
        "parameters", "time_limit=True",
        lambda: clf(time_limit=True).fit(NUM, LABELS),
        ValueError, "time_limit=True is a bool.*pass a number",
    ),
    Case(
        "parameters", "a negative time_limit",
        lambda: clf(time_limit=-1).fit(NUM, LABELS),
        ValueError, "'time_limit' parameter.*must be",
    ),
    Case(
        "parameters", "validation_fraction=1.5",
        lambda: clf(validation_fraction=1.5).fit(NUM, LABELS),
        ValueError, "'validation_fraction' parameter",
    ),
    Case(
        "parameters", "bag_folds=1",
        lambda: clf(bag_folds=1).fit(NUM, LABELS),
        ValueError, "bag_folds=1 is not bagging; pass 0",
    ),
    Case(
        "parameters", "an unknown preset",
        lambda: clf(preset="huge").fit(NUM, LABELS),
        ValueError, "'preset' parameter.*'fast'",
    ),
    Case(
        "parameters", "an unknown search strategy",
        lambda: clf(search_strategy="enas").fit(NUM, LABELS),
        ValueError, "'search_strategy' parameter",
    ),
    Case(
        "parameters", "an unknown device",
        lambda: clf(device="tpu").fit(NUM, LABELS),
        ValueError, "device must be 'auto', 'cpu', 'cuda'",
    ),
    Case(
        "parameters", "max_epochs=0",
        lambda: clf(max_epochs=0).fit(NUM, LABELS),
        ValueError, "'max_epochs' parameter",
    ),
    Case(
        "parameters", "batch_size=1",
        lambda: clf(batch_size=1).fit(NUM, LABELS),
        ValueError, "'batch_size' parameter",
    ),
    Case(
        "parameters", "sample_weight passed positionally",
        lambda: clf().fit(NUM, LABELS, np.ones(N)),
        TypeError, "takes 3 positional arguments",
    ),
    Case(
        "parameters", "X_val without y_val",
        lambda: clf().fit(NUM, LABELS, X_val=NUM),
        ValueError, "pass both X_val and y_val",
    ),
    Case(
        "parameters", "an empty X_val",
        lambda: clf().fit(NUM, LABELS, X_val=pd.DataFrame(columns=range(2)), y_val=[]),
        ValueError, "0 sample",
    ),
    Case(
        "parameters", "X_val with other columns",
        lambda: clf().fit(NUM, LABELS, X_val=NUM[:5, :1], y_val=LABELS[:5]),
        ValueError, "has 1 features.*expecting 2",
    ),
]


def fitted_on_frame_input() -> pd.DataFrame:
    return frame(color=pd.Categorical(["red"] * N))


def case_id(case: Case) -> str:
    return f"{case.group}: {case.name}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_catalogue(case: Case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.error is None:
            assert case.check(case.run()), case.name
        else:
            with pytest.raises(case.error, match=re.compile(case.message, re.S)):
                case.run()


def test_an_object_column_of_numbers_is_categorical_with_a_warning():
    X = frame(price=pd.Series([1.5, 2.5, None, 4.0] * (N // 4), dtype=object))
    with pytest.warns(UserWarning, match="column 'price' holds only numbers.*pd.to_numeric"):
        model = clf().fit(X, LABELS)
    assert model._categorical_columns_ == [2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf(categorical_features=["price"]).fit(X, LABELS)  # said on purpose
        clf().fit(frame(zip=np.array(["10001", "10002"] * (N // 2))), LABELS)  # text codes
    assert not [w for w in caught if "holds only numbers" in str(w.message)]


def test_the_catalogue_is_large_and_its_page_lists_every_case():
    assert len(CASES) >= 60
    assert len({case_id(c) for c in CASES}) == len(CASES)
    page = (Path(__file__).parents[1] / "docs" / "reliability.md").read_text()
    for case in CASES:
        assert f"| {case.name} |" in page, f"docs/reliability.md lacks {case.name!r}: rewrite it"


# ---- generated tables (hypothesis) ------------------------------------------------------
HUGE = st.one_of(st.just(np.nan), st.floats(min_value=-1e300, max_value=1e300))
TEXT = st.one_of(
    st.none(),
    st.sampled_from(["red", "green", "blue", ""]),
    st.text(max_size=3),
    st.integers(-2, 2),
)
GENERATED = settings(  # derandomized: the same examples on every run, so CI is not a lottery
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def tables(min_rows: int):
    return data_frames(
        [
            column("a", elements=HUGE, dtype=float),
            column("b", elements=HUGE, dtype=float),
            column("c", elements=TEXT, dtype=object),
            column("flag", elements=st.booleans(), dtype=bool),
        ],
        index=range_indexes(min_size=min_rows, max_size=40),
    )


def positional(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_axis(range(table.shape[1]), axis=1)


@GENERATED
@given(train=tables(2), new=tables(1))
def test_preprocessing_gives_finite_inputs_and_valid_codes_for_any_table(train, new):
    pre = TabularPreprocessor(categorical=[2, 3], random_state=0).fit(positional(train))
    for table in (train, new):
        x_num, x_cat = pre.transform(positional(table))
        assert x_num.shape == (len(table), pre.n_num_features) and np.isfinite(x_num).all()
        for i, cardinality in enumerate(pre.cat_cardinalities):
            assert ((x_cat[:, i] >= 0) & (x_cat[:, i] < cardinality)).all()


@GENERATED
@given(st.lists(st.floats(min_value=-1e250, max_value=1e250), min_size=4, max_size=40))
def test_regression_targets_up_to_1e250_scale_and_come_back_finite(values):
    estimator = TabNASRegressor()
    z = estimator._encode_target(np.array(values), fitting=True)
    assert np.isfinite(z).all() and np.isfinite(estimator.target_std_) and estimator.target_std_ > 0
    assert np.isfinite(z.astype(np.float64) * estimator.target_std_ + estimator.target_mean_).all()


@GENERATED
@given(st.integers(0, 3), st.integers(0, N - 1), st.sampled_from([np.inf, -np.inf]))
def test_an_infinity_anywhere_is_refused_naming_its_column(col, row, value):
    X = frame(c=NUM[:, 0] ** 2, d=NUM[:, 1] - 1)
    X.iloc[row, col] = value
    with pytest.raises(ValueError, match=f"infinity in column '{X.columns[col]}'"):
        clf().fit(X, LABELS)


@GENERATED
@given(
    data_frames(
        [
            column("a", elements=HUGE, dtype=float),
            column("b", elements=HUGE, dtype=float),
            column("color", elements=TEXT, dtype=object),
        ],
        index=range_indexes(min_size=1, max_size=30),
    )
)
def test_any_table_at_predict_gets_probabilities(X):
    proba = fitted_on_frame().predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


# ---- the page -----------------------------------------------------------------------------
def outcome_of(case: Case) -> tuple[str, str]:
    """What ``case`` really gets, and how that compares with the catalogue's expectation:
    ``"as expected"``, ``"unclear error"`` (another error or message) or ``"silent"`` (no
    error where one is due, or a check that fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = case.run()
        except Exception as error:  # noqa: BLE001 - reported on the page as it is
            text = " ".join(str(error).split())
            expected = case.error is not None and isinstance(error, case.error) and bool(
                re.search(case.message, str(error), re.S)
            )
            if len(text) > 260:  # keep the start (the problem) and the end (the fix)
                text = f"{text[:120]} … {text[-130:]}"
            answer = f"`{type(error).__name__}`: {text}"
            return answer, "as expected" if expected else "unclear error"
    if case.error is None and case.check(result):
        if isinstance(result, list):  # the messages of the warnings it gave (``warned``)
            return "predicts, with a warning: " + "; ".join(
                " ".join(m.split()) for m in result), "as expected"
        return "fits and predicts", "as expected"
    return "**no error**" if case.error else "**check failed**", "silent"


def markdown() -> str:
    lines = [
        "# Reliability: what each kind of input gets",
        "",
        "Every row is a test of `tests/test_reliability.py` (the catalogue), run on every",
        "`make test`; the outcome column is what the estimators really answered when this",
        "page was written (`python -m tests.test_reliability > docs/reliability.md`).",
        "An error names the column or argument at fault and what to do; \"handled\" inputs fit",
        "and predict. Property-based tests (`hypothesis`) add generated tables at the end.",
        "",
    ]
    counts = {"handled": 0, "clear error": 0, "as expected": 0, "unclear error": 0, "silent": 0}
    group = None
    for case in CASES:
        if case.group != group:
            group = case.group
            lines += ["", f"## {group}", "", "| input | outcome | answer |", "| --- | --- | --- |"]
        answer, verdict = outcome_of(case)
        counts[case.outcome] += 1
        counts[verdict] += 1
        outcome = case.outcome if verdict == "as expected" else verdict
        escaped = answer.replace("|", "\\|")
        lines.append(f"| {case.name} | {outcome} | {escaped} |")
    lines[8:8] = [
        f"**{len(CASES)} kinds of input**: {counts['handled']} handled,"
        f" {counts['clear error']} refused with a clear error; {counts['unclear error']}"
        f" unclear errors, {counts['silent']} silent wrong answers.",
        "",
    ]
    lines += [
        "",
        "## Generated tables (`hypothesis`)",
        "",
        "Each property is tried on 40 generated examples, the same ones on every run",
        "(derandomized, so that a run's verdict does not depend on its luck).",
        "",
        "- Random frames of numeric columns (NaN, values up to ±1e300), categorical columns",
        "  (text, None, mixed) and booleans: the preprocessing gives finite inputs and codes",
        "  within each column's cardinality, for the training rows and for new rows.",
        "- Random regression targets up to ±1e250: finite standardised targets and",
        "  predictions; larger ones are refused.",
        "- An infinity put in a random column of a valid frame: the error names that column.",
        "- Random frames at predict (NaN, unseen categories, extreme values): probabilities",
        "  finite, each row summing to 1.",
        "",
        "## Faults, and the test that makes each happen",
        "",
        "| fault | what happens | test |",
        "| --- | --- | --- |",
        "| NaN or infinite loss in the search | last good weights, α and BatchNorm statistics"
        " back, optimizers at lr / 10, a `RuntimeWarning`, the row marked `recovered`; the"
        " search goes on (stops after 3 recoveries with its last good weights) |"
        " `tests/training/test_search.py::test_a_non_finite_search_loss_*`,"
        " `test_a_search_that_keeps_diverging_*` |",
        "| the same during PT's tuning | as above; PT's decisions are kept |"
        " `test_a_recovery_during_selection_keeps_the_decisions_made` |",
        "| the same while a network is retrained | best weights back, lr / 10, at most 3"
        " times | `tests/training/test_loop.py::test_a_non_finite_loss_*` |",
        "| out of memory on a prediction or scoring batch | the pass goes on in halved"
        " batches; the next pass starts at the size that fitted |"
        " `test_a_prediction_pass_that_runs_out_of_memory_*`,"
        " `test_search_steps_and_scoring_that_run_out_of_memory_*` |",
        "| out of memory in a training step | the epoch (or the search step) again in halved"
        " batches | `test_an_epoch_that_runs_out_of_memory_*` |",
        "| any other error in the engine | raised as it is |"
        " `test_an_error_that_is_not_out_of_memory_is_raised_as_it_is` |",
        "| `KeyboardInterrupt` or an error during `fit` | the estimator stays as it was"
        " (fit works on a copy) | `tests/test_estimators.py::test_an_interrupted_fit_*`,"
        " `test_a_failed_fit_writes_no_fitted_attribute_*` |",
        "| `time_limit` reached | each phase stops at its share, within one of its steps,"
        " counted from the top of `fit` | `tests/test_time_limit.py` (a fake clock) |",
        "| a benchmark job that crashes or times out | recorded with its error; the run goes"
        " on | `tests/benchmarks/test_run.py` |",
        "| a benchmark run killed with SIGKILL | `results.jsonl` stays readable; the rerun"
        " skips every finished job | `tests/benchmarks/test_kill.py` (kills a real run) |",
        "| two threads predicting at once | same answers, nothing on the estimator changes |"
        " `test_predict_changes_nothing_and_threads_may_predict_at_once` |",
        "| a model fitted on a GPU, used without one | predicts on the CPU (fp32 on both) |"
        " `tests/test_persistence.py` (the CUDA test runs where CUDA is) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown())
