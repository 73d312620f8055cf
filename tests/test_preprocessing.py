"""Gorishniy-style preprocessing and the seeded splits."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import QuantileTransformer

from tabnas.preprocessing import TabularPreprocessor, holdout_split, n_quantiles_for


def frame():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=300),
            "b": rng.exponential(size=300),
            "c": rng.choice(["x", "y", "z"], size=300),
        }
    )
    X.loc[:9, "a"] = np.nan
    X.loc[5:7, "c"] = None
    return X.set_axis(range(3), axis=1)


def test_n_quantiles_rule():
    assert n_quantiles_for(300) == 10
    assert n_quantiles_for(3000) == 100
    assert n_quantiles_for(10**6) == 1000
    assert n_quantiles_for(5) == 5  # never more quantiles than rows


def test_numeric_imputation_indicator_and_quantiles():
    X = frame()
    prep = TabularPreprocessor(categorical=[2], random_state=0).fit(X)
    x_num, x_cat = prep.transform(X)
    assert x_num.dtype == np.float32 and x_cat.dtype == np.int64
    # a, b quantile-normalised, then the missing indicator of a
    assert prep.n_num_features == 3 and x_num.shape == (300, 3)
    assert x_num[:10, 2].tolist() == [1.0] * 10 and x_num[10:, 2].sum() == 0
    assert abs(x_num[10:, 1].mean()) < 0.2 and 0.7 < x_num[:, 1].std() < 1.3
    # the imputed value is the train mean of 'a', transformed like any other value
    expected = prep.quantile_.transform(np.array([[np.nanmean(X[0]), 0.0]]))[0, 0]
    assert np.allclose(x_num[:10, 0], expected, atol=1e-5)


def test_quantiles_are_fitted_on_noisy_train_copy_as_gorishniy():
    X = frame()
    prep = TabularPreprocessor(categorical=[2], random_state=0).fit(X)
    numeric = np.stack([X[0].fillna(np.nanmean(X[0])), X[1]], axis=1)
    stds = numeric.std(axis=0, keepdims=True)
    noise = np.random.default_rng(0).standard_normal(numeric.shape)
    noisy = numeric + 1e-3 / np.maximum(stds, 1e-3) * noise
    reference = QuantileTransformer(
        output_distribution="normal", n_quantiles=10, subsample=10**9, random_state=0
    ).fit(noisy)
    assert np.allclose(prep.quantile_.quantiles_, reference.quantiles_)
    assert not np.allclose(prep.quantile_.quantiles_, reference.fit(numeric).quantiles_)


def test_categorical_codes_reserve_zero_for_missing_and_unseen():
    X = frame()
    prep = TabularPreprocessor(categorical=[2], random_state=0).fit(X)
    assert prep.cat_cardinalities == [4]
    _, x_cat = prep.transform(X)
    assert set(x_cat[5:8, 0]) == {0}
    assert set(x_cat[10:, 0]) <= {1, 2, 3}
    new = X.iloc[:3].copy()
    new[2] = ["w", "x", None]
    _, codes = prep.transform(new)
    assert codes[:, 0].tolist() == [0, 1, 0]


def test_non_numeric_text_in_a_numeric_column_is_named():
    X = frame()
    X[1] = X[1].astype(object)
    X.loc[3, 1] = "n/a"
    with pytest.raises(
        ValueError, match="column 1 is numeric but holds the non-numeric value 'n/a'"
    ):
        TabularPreprocessor(categorical=[2], random_state=0).fit(X)


def test_infinity_is_refused_with_the_column():
    X = frame()
    X.loc[4, 1] = np.inf
    with pytest.raises(ValueError, match="infinity in column 1"):
        TabularPreprocessor(categorical=[2], random_state=0).fit(X)


def test_stratified_holdout_keeps_rare_classes_in_the_larger_part():
    y = np.array([0] * 50 + [1] * 30 + [2] * 1 + [3] * 2)
    kept, held = holdout_split(len(y), 0.2, np.random.default_rng(0), stratify=y)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(y)
    assert set(y[kept]) == {0, 1, 2, 3}
    assert np.bincount(y[held]).tolist()[:2] == [10, 6]
    again = holdout_split(len(y), 0.2, np.random.default_rng(0), stratify=y)
    assert np.array_equal(again[1], held)


def test_plain_holdout_and_minimum_size():
    kept, held = holdout_split(10, 0.2, np.random.default_rng(1))
    assert len(held) == 2 and len(kept) == 8
    assert len(holdout_split(2, 0.01, np.random.default_rng(1))[1]) == 1
    with pytest.raises(ValueError, match="at least 2 rows"):
        holdout_split(1, 0.5, np.random.default_rng(0))


@pytest.mark.parametrize(
    "column",
    [
        pd.date_range("2020-01-01", periods=6),
        pd.date_range("2020-01-01", periods=6, tz="UTC"),
        pd.to_timedelta(np.arange(6), unit="h"),
        pd.Series(np.array(["2020-01-01"] * 6, dtype="datetime64[D]")).astype(object),
    ],
)
def test_dates_and_durations_are_refused_with_the_column_name_and_a_fix(column):
    frame = pd.DataFrame({0: np.arange(6.0), 1: column})
    pre = TabularPreprocessor(categorical=[], random_state=0, names=["size", "when"])
    with pytest.raises(ValueError, match=r"column 'when' holds dates or durations.*total_seconds"):
        pre.fit(frame)


def test_unhashable_categories_are_refused_with_the_column_name():
    frame = pd.DataFrame({0: [[1], [2], [1]], 1: [1.0, 2.0, 3.0]})
    pre = TabularPreprocessor(categorical=[0], random_state=0, names=["tags", "x"])
    with pytest.raises(
        ValueError, match=r"column 'tags' is categorical but holds list values.*astype\(str\)"
    ):
        pre.fit(frame)
    ok = TabularPreprocessor(categorical=[0], random_state=0).fit(
        pd.DataFrame({0: ["a", "b"], 1: [1.0, 2.0]})
    )
    with pytest.raises(ValueError, match="holds dict values"):
        ok.transform(pd.DataFrame({0: [{"a": 1}, "b"], 1: [1.0, 2.0]}))


def test_messages_use_the_names_given():
    frame = pd.DataFrame({0: [1.0, np.inf], 1: [1.0, 2.0]})
    with pytest.raises(ValueError, match="infinity in column 'income'"):
        TabularPreprocessor(categorical=[], random_state=0, names=["income", "age"]).fit(frame)


def test_robust_scaling_is_realmlps_median_iqr_and_smooth_clip():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({0: rng.exponential(size=400), 1: np.r_[np.zeros(390), np.arange(10.0)]})
    pre = TabularPreprocessor(categorical=[], random_state=0, scaling="robust").fit(X)
    x_num, _ = pre.transform(X)
    a = X[0].to_numpy()
    scaled = (a - np.median(a)) / (np.quantile(a, 0.75) - np.quantile(a, 0.25))
    np.testing.assert_allclose(x_num[:, 0], scaled / np.sqrt(1 + (scaled / 3) ** 2), rtol=1e-5)
    # quartiles equal (mostly zeros): scaled by half the range instead
    b = X[1].to_numpy()
    np.testing.assert_allclose(x_num[:, 1], (b / 4.5) / np.sqrt(1 + (b / 13.5) ** 2), rtol=1e-5)
    assert pre.quantile_ is None and np.abs(x_num).max() < 3


def test_robust_scaling_keeps_extremes_and_constants_finite():
    X = pd.DataFrame({0: [0.0, 1.0, 2.0, 3.0], 1: [5.0] * 4})
    pre = TabularPreprocessor(categorical=[], random_state=0, scaling="robust").fit(X)
    probe = pd.DataFrame({0: [1e308, -1e308, np.nan, 1.5], 1: [5.0, 7.0, 1e308, 5.0]})
    x_num, _ = pre.transform(probe)
    np.testing.assert_allclose(x_num[:2, 0], [3.0, -3.0], rtol=1e-6)  # the clip's limits
    assert np.array_equal(x_num[:, 1], np.zeros(4))  # a constant column stays constant (0)
    assert np.isfinite(x_num).all()


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="scaling must be one of"):
        TabularPreprocessor(categorical=[], random_state=0, scaling="minmax")


def test_a_categorical_column_read_as_another_type_gets_a_warning_naming_it():
    fit_frame = pd.DataFrame({0: ["a", "b", "a", "b"], 1: [True, False, True, False]})
    pre = TabularPreprocessor(categorical=[0, 1], random_state=0, names=["city", "flag"])
    pre.fit(fit_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # unseen values of the kind seen at fit go to the "unseen" slot, as always
        unseen = pd.DataFrame({0: ["c", "d"], 1: [True, None]}, dtype=object)
        assert pre.transform(unseen, check_kinds=True)[1][:, 0].tolist() == [0, 0]
        # one value still matching a training category: no warning
        mixed = pd.DataFrame({0: ["a", "a"], 1: ["True", True]}, dtype=object)
        codes = pre.transform(mixed, check_kinds=True)[1][:, 1]
        assert codes[0] == 0 and codes[1] > 0
        # without check_kinds (the fit's own rows) nothing is checked
        pre.transform(pd.DataFrame({0: [1, 2], 1: [True, False]}))
    # booleans at fit, their text at predict: every row falls into that slot
    as_text = pd.DataFrame({0: ["a", "b"], 1: ["True", None]})
    with pytest.warns(UserWarning, match="column 'flag' held bool values at fit and holds text"):
        assert pre.transform(as_text, check_kinds=True)[1][:, 1].tolist() == [0, 0]
    with pytest.warns(UserWarning, match="column 'city' held text values at fit and holds num"):
        pre.transform(pd.DataFrame({0: [1, 2], 1: [True, False]}), check_kinds=True)


def test_values_at_the_ends_of_a_column_spanning_many_magnitudes_stay_finite():
    # found by the reliability catalogue's generated tables: the quantile transform's
    # two-sided interpolation cancelled to just below 0 for 1.0, whose normal quantile is NaN
    column = [0.0, 1.0] + [np.nan] * 5 + [5.361928e18] + [np.nan] * 3
    train = pd.DataFrame({0: column, 1: ["x"] * 11})
    pre = TabularPreprocessor(categorical=[1], random_state=0).fit(train)
    x_num, _ = pre.transform(train)
    assert np.isfinite(x_num).all()
    assert x_num[1, 0] == x_num[0, 0] == x_num[:, 0].min()  # the low end, as 0.0 is
