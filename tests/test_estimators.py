"""The estimators as a user meets them: fit/predict, pandas, bad input, persistence."""

import dataclasses
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from tabnas import Architecture, TabNASClassifier, TabNASRegressor
from tabnas.estimators._presets import PRESETS
from tabnas.nas.selection import Selector

from .conftest import FAST


@pytest.fixture(scope="module")
def fitted_mixed(mixed_frame):
    X, y = mixed_frame
    return TabNASClassifier(**FAST).fit(X, y)


def test_classifier_on_pandas_with_categories_and_missing_values(fitted_mixed, mixed_frame):
    X, y = mixed_frame
    clf = fitted_mixed
    assert list(clf.classes_) == ["no", "yes"]
    assert (
        clf.n_features_in_ == 4 and list(clf.feature_names_in_) == ["num", "num2", "color", "flag"]
    )
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.score(X, y) > 0.8
    # the categorical columns were found from the dtypes
    assert clf.preprocessor_.categorical == [2, 3]


def test_fitted_attributes_describe_the_run(fitted_mixed):
    clf = fitted_mixed
    phases = {row["phase"] for row in clf.history_}
    assert phases == {"search", "select", "retrain"}
    search = clf.history_.phase("search")
    assert np.array(search[0]["weights"]).shape == (2, 3, 6)
    # Counted in weight steps: evaluated at regular steps, capped by max_search_steps=40.
    assert search[-1]["step"] == clf.fit_info_["search_steps"] == 40
    assert [r["step"] for r in search] == sorted({r["step"] for r in search})
    assert not search[0]["arch_steps"] and search[-1]["arch_steps"]  # warm-up first
    assert search[-1]["alpha_shift"] == clf.fit_info_["alpha_shift"] > 0
    assert 0.0 <= clf.fit_info_["supernet_val"]["accuracy"] <= 1.0  # the discretisation gap
    assert clf.search_space_.contains(clf.argmax_architecture_)
    ops = [r for r in clf.selection_trace_ if r.kind == "op"]
    assert len(ops) == 2 * 3  # every edge of every cell decided by PT
    assert isinstance(clf.architecture_, Architecture)
    assert clf.search_space_.contains(clf.architecture_)
    assert Architecture.from_dict(clf.architecture_.to_dict()) == clf.architecture_
    assert "cell 0" in str(clf.selected_architecture_)
    assert clf.n_parameters_ == sum(p.numel() for p in clf.model_.parameters())
    assert set(clf.timings_) >= {"search_s", "selection_s", "retrain_s", "fit_s"}
    assert clf.device_ == "cpu"
    lead = max(range(len(clf.ensemble_)), key=lambda i: clf.ensemble_[i]["weight"])
    retrain = [r for r in clf.history_.phase("retrain") if r["candidate"] == lead]
    assert retrain[clf.best_epoch_]["improved"]


def test_the_final_model_is_the_validation_ensemble_of_the_candidates(fitted_mixed, mixed_frame):
    clf = fitted_mixed
    # fast: the searched cells, the TabM point and the retrieval point, all with
    # piecewise-linear embeddings
    members = [Architecture.from_dict(m["architecture"]) for m in clf.ensemble_]
    assert members[0] == clf.selected_architecture_  # what PT selected is the first candidate
    assert [(a.backbone, a.num_embedding) for a in members] == [
        ("cells", "piecewise_linear"), ("tabm", "piecewise_linear"),
        ("retrieval", "piecewise_linear"),
    ]
    assert all(clf.search_space_.contains(a) for a in members)
    weights = [m["weight"] for m in clf.ensemble_]
    assert sum(weights) == pytest.approx(1.0)
    # each weight is a share of the picks of the kept round (at most ensemble_size = 10)
    assert any(all(w * r == pytest.approx(round(w * r)) for w in weights) for r in range(1, 11))
    lead = max(range(len(members)), key=lambda i: weights[i])
    assert clf.architecture_ == members[lead]
    assert {r["candidate"] for r in clf.history_.phase("retrain")} == {0, 1, 2}
    assert f"{weights[lead]:.2f} x" in repr(clf.model_)
    # the kept round is never worse on validation than the best candidate alone
    best_alone = min(m["best_val"]["loss"] for m in clf.ensemble_)
    assert clf.fit_info_["ensemble_val"]["loss"] <= best_alone + 1e-6
    X, _ = mixed_frame
    single = clone(clf).set_params(ensemble_size=1).fit(*mixed_frame)
    assert sorted(m["weight"] for m in single.ensemble_) == [0.0, 0.0, 1.0]
    chosen = max(single.ensemble_, key=lambda m: m["weight"])  # the lowest validation loss
    assert chosen["best_val"]["loss"] == min(m["best_val"]["loss"] for m in single.ensemble_)
    assert single.predict_proba(X).shape == (len(X), 2)


def test_a_tabm_architecture_trains_alone_and_predicts_its_members_mean(regression_data):
    from tabnas.nas.space import MLPSettings

    X, y = regression_data
    point = Architecture.tabm(MLPSettings(k=4, d_block=32), num_embedding="periodic")
    reg = TabNASRegressor(**{**FAST, "max_epochs": 30}, architecture=point).fit(X, y)
    assert reg.architecture_ == point and len(reg.ensemble_) == 1
    assert {row["phase"] for row in reg.history_} == {"retrain"}
    assert reg.score(X, y) > 0.5


def test_unseen_category_at_predict_works(fitted_mixed, mixed_frame):
    X, _ = mixed_frame
    new = X.iloc[:5].copy()
    new["color"] = pd.Categorical(["purple"] * 5)
    assert fitted_mixed.predict(new).shape == (5,)


def test_string_and_non_contiguous_labels_multiclass(cancer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    labels = np.array([3, 10, 42])[(X[:, 0] > -0.4).astype(int) + (X[:, 1] > 0.4).astype(int)]
    clf = TabNASClassifier(**FAST).fit(X, labels)
    assert list(clf.classes_) == [3, 10, 42]
    assert clf.predict_proba(X).shape == (240, 3)
    assert clf.score(X, labels) > 0.7


def test_regressor_predicts_in_original_units(regression_data):
    X, y = regression_data
    reg = TabNASRegressor(**FAST).fit(X, y)
    assert abs(reg.target_mean_ - y.mean()) < 1e-6
    pred = reg.predict(X)
    assert abs(pred.mean() - y.mean()) < 0.2 * y.std()
    assert reg.score(X, y) > 0.5


def test_explicit_validation_set_is_used(cancer):
    X, y = cancer
    clf = TabNASClassifier(**FAST).fit(X[:300], y[:300], X_val=X[300:400], y_val=y[300:400])
    assert clf.fit_info_["n_train"] == 300 and clf.fit_info_["n_val"] == 100
    with pytest.raises(ValueError, match="both X_val and y_val"):
        TabNASClassifier(**FAST).fit(X, y, X_val=X[:10])


@pytest.mark.slow  # about 30-60 s on 2 cores: `make test-slow` (and CI) runs it
def test_same_seed_same_predictions_and_different_seed_differs(cancer):
    X, y = cancer[0][:200], cancer[1][:200]
    a = TabNASClassifier(**FAST).fit(X, y).predict_proba(X)
    b = TabNASClassifier(**FAST).fit(X, y).predict_proba(X)
    c = TabNASClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pickle_and_joblib_round_trips(fitted_mixed, mixed_frame, tmp_path):
    X, _ = mixed_frame
    expected = fitted_mixed.predict_proba(X)
    restored = pickle.loads(pickle.dumps(fitted_mixed))
    assert np.array_equal(restored.predict_proba(X), expected)
    joblib.dump(fitted_mixed, tmp_path / "model.joblib")
    assert np.array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)


def test_clone_gives_an_unfitted_copy_with_the_same_params(fitted_mixed):
    copy = clone(fitted_mixed)
    assert copy.get_params() == fitted_mixed.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)


@pytest.mark.parametrize("n_jobs", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_grid_search_over_selection(cancer, n_jobs):
    X, y = cancer[0][:150], cancer[1][:150]
    search = GridSearchCV(
        TabNASClassifier(
            preset="fast", max_search_steps=20, max_epochs=5, device="cpu", random_state=0
        ),
        {"selection": ["pt", "argmax"]},
        cv=2,
        n_jobs=n_jobs,
    ).fit(X, y)
    assert set(search.cv_results_["param_selection"]) == {"pt", "argmax"}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.selection in {"pt", "argmax"}


def test_cross_val_score_in_a_pipeline_with_column_transformer(mixed_frame):
    X, y = mixed_frame
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("num", FunctionTransformer(lambda d: d * 2.0), ["num", "num2"]),
                ("cat", "passthrough", ["color"]),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas"),
        TabNASClassifier(
            preset="fast", max_search_steps=20, max_epochs=5, device="cpu", random_state=0
        ),
    )
    scores = cross_val_score(pipe, X, y, cv=2, n_jobs=2)
    assert scores.shape == (2,) and np.all(scores > 0.5)


@pytest.mark.parametrize("bag_folds", [0, 3])
def test_time_limit_cuts_every_phase_at_an_epoch_boundary(cancer, bag_folds):
    X, y = cancer
    # A limit that has passed before the first epoch ends: each phase runs one epoch (or
    # one decision) and hands over; selection falls back to argmax for the rest; the
    # first candidate is still trained (one epoch per fold, so bagging stays complete).
    clf = TabNASClassifier(
        preset="medium", time_limit=1e-3, bag_folds=bag_folds, device="cpu", random_state=0
    ).fit(X, y)
    assert len(clf.history_.phase("search")) == 1 < 10
    assert clf.selection_trace_ and clf.selection_trace_[-1].kind == "fallback"
    assert len(clf.history_.phase("select")) == 0
    retrain = clf.history_.phase("retrain")
    assert len(retrain) == max(bag_folds, 1) and clf.fit_info_["stopped_by"] == "time_limit"
    assert sorted(r["fold"] for r in retrain) == list(range(max(bag_folds, 1)))
    assert len(clf.ensemble_) == 1  # the other candidates were skipped
    assert clf.predict(X[:3]).shape == (3,)


# ---- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_y, match",
    [
        (
            lambda y: np.where(np.arange(len(y)) == 3, np.nan, y.astype(float)),
            "Input y contains NaN",
        ),
        (
            lambda y: np.where(np.arange(len(y)) == 3, np.inf, y.astype(float)),
            "Input y contains infinity",
        ),
    ],
)
def test_regressor_refuses_nan_or_inf_targets(cancer, make_y, match):
    X, y = cancer
    with pytest.raises(ValueError, match=match):
        TabNASRegressor(**FAST).fit(X[:50], make_y(y[:50]))


def test_classifier_refuses_missing_labels():
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.array(["a", "b"] * 9 + [None, "a"], dtype=object)
    with pytest.raises(ValueError, match="missing label"):
        TabNASClassifier(**FAST).fit(X, y)


def test_infinity_in_X_is_refused():
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match="infinity in column 1"):
        TabNASRegressor(**FAST).fit(X, np.arange(20.0))


def test_wrong_number_of_features_at_predict(fitted_mixed):
    with pytest.raises(ValueError, match="features"):
        fitted_mixed.predict(np.zeros((3, 2)))


def test_empty_X():
    with pytest.raises(ValueError, match="0 sample"):
        TabNASRegressor(**FAST).fit(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="0 sample"):
        TabNASRegressor(**FAST).fit(pd.DataFrame({"a": []}), [])


def test_single_class():
    with pytest.raises(ValueError, match="only one class"):
        TabNASClassifier(**FAST).fit(np.zeros((10, 2)), ["a"] * 10)


def test_too_few_rows():
    with pytest.raises(ValueError, match="at least 4 samples.*n_samples=3"):
        TabNASRegressor(**FAST).fit(np.zeros((3, 2)), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2 training rows.*n_samples=1"):
        TabNASRegressor(**FAST).fit(
            np.zeros((1, 2)), [1.0], X_val=np.zeros((2, 2)), y_val=[1.0, 2.0]
        )


def test_non_numeric_strings_in_a_numeric_column():
    X = np.array([[1.0, "2"], [3.0, "x"], [5.0, "6"], [7.0, "8"]] * 3, dtype=object)
    with pytest.raises(ValueError, match="non-numeric value 'x'.*categorical_features"):
        TabNASRegressor(**FAST).fit(X, np.arange(12.0))
    # declared categorical, the same column is fine
    TabNASRegressor(**{**FAST, "max_epochs": 2}, categorical_features=[1]).fit(X, np.arange(12.0))


def test_bad_categorical_features_names_the_columns(mixed_frame):
    X, y = mixed_frame
    with pytest.raises(ValueError, match="not a column of X"):
        TabNASClassifier(**FAST, categorical_features=["colour"]).fit(X, y)


@pytest.mark.parametrize("param", ["time_limit", "max_epochs", "ensemble_size", "bag_folds"])
def test_bools_are_refused_where_numbers_are_meant(param, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match=f"{param}=True is a bool.*pass a number"):
        TabNASClassifier(**{**FAST, param: True}).fit(X[:40], y[:40])


def test_validation_data_are_keyword_only(cancer):
    X, y = cancer
    with pytest.raises(TypeError, match="positional"):
        TabNASClassifier(**FAST).fit(X[:40], y[:40], X[40:50], y[40:50])


def test_bad_params_are_reported_at_fit():
    with pytest.raises(ValueError, match="preset"):
        TabNASClassifier(preset="huge").fit(np.zeros((10, 2)), [0, 1] * 5)
    with pytest.raises(ValueError, match="search_strategy"):
        TabNASClassifier(search_strategy="enas").fit(np.zeros((10, 2)), [0, 1] * 5)


def test_failed_fit_leaves_no_half_fitted_estimator(fitted_mixed, mixed_frame):
    X, y = mixed_frame
    fresh = TabNASClassifier(**FAST)
    with pytest.raises(ValueError):
        fresh.fit(X.iloc[:3], y[:3])
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    assert not [k for k in vars(fresh) if k.endswith("_")]
    # a fitted estimator keeps its previous fit when a refit fails
    before = fitted_mixed.predict_proba(X)
    with pytest.raises(ValueError):
        fitted_mixed.fit(X.assign(num=np.inf), y)
    assert fitted_mixed.n_features_in_ == 4
    assert np.array_equal(fitted_mixed.predict_proba(X), before)


def test_verbose_shows_progress_bars_and_the_library_never_prints(cancer, capsys, caplog):
    X, y = cancer[0][:120], cancer[1][:120]
    with caplog.at_level("INFO", logger="tabnas"):
        TabNASClassifier(**{**FAST, "max_epochs": 3}, verbose=1).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "search" in captured.err and "retrain" in captured.err
    assert any("selected in" in record.getMessage() for record in caplog.records)
    TabNASClassifier(**{**FAST, "max_epochs": 3}).fit(X, y)
    assert capsys.readouterr().err == ""


def test_a_given_architecture_is_trained_without_a_search(cancer):
    X, y = cancer
    space = TabNASClassifier(preset="fast").search_space()
    point = space.chain(["attention", "ffn"])
    clf = TabNASClassifier(**{**FAST, "max_epochs": 5}, architecture=point).fit(X[:200], y[:200])
    assert clf.architecture_ == point and clf.argmax_architecture_ is None
    assert clf.selected_architecture_ is None
    assert {row["phase"] for row in clf.history_} == {"retrain"}
    assert clf.timings_["search_s"] == clf.timings_["selection_s"] == 0.0
    assert clf.selection_trace_ == []


def test_strategy_and_selector_instances_are_parameters(cancer):
    from tabnas.nas.selection import PerturbationSelector
    from tabnas.nas.strategies import DARTS

    X, y = cancer
    strategy, selector = DARTS(lr=0.05), PerturbationSelector(criterion="loss")
    clf = TabNASClassifier(
        **{**FAST, "max_epochs": 3}, search_strategy=strategy, selection=selector
    )
    clf.fit(X[:200], y[:200])
    assert strategy.supernet is None  # the instance was copied, not used
    assert {r.criterion for r in clf.selection_trace_ if r.kind == "op"} == {"loss"}
    assert clf.fit_info_["alpha_shift"] > 0.1  # lr 0.05 moved alpha
    copy = clone(clf)
    assert copy.search_strategy is not strategy and copy.search_strategy.lr == 0.05
    assert "DARTS(lr=0.05" in repr(clf)
    with pytest.raises(ValueError, match="search_strategy"):
        TabNASClassifier(search_strategy=object()).fit(X[:50], y[:50])


@pytest.mark.parametrize(
    "strategy, selection", [("gdas", "pt"), ("snas", "argmax"), ("gdas-instance", "argmax")]
)
def test_sampling_strategies_fit_with_either_selector(cancer, strategy, selection):
    from tabnas.nas.strategies import GDAS

    X, y = cancer
    chosen = GDAS(tau=(5.0, 0.5)) if strategy == "gdas-instance" else strategy
    clf = TabNASClassifier(
        **{**FAST, "max_search_steps": 20, "max_epochs": 2, "ensemble_size": 1},
        search_strategy=chosen, selection=selection,
    ).fit(X[:200], y[:200])
    assert clf.fit_info_["alpha_shift"] > 0  # α moved
    assert clf.selected_architecture_ is not None and clf.predict(X[:5]).shape == (5,)
    kinds = {record.kind for record in clf.selection_trace_}
    assert ("op" in kinds) == (selection == "pt")


def test_column_names_reach_the_messages(mixed_frame):
    X, y = mixed_frame
    bad = X.assign(num2=np.where(np.arange(len(X)) % 7 == 0, "n/a", X["num2"]).astype(object))
    with pytest.raises(
        ValueError, match="column 'num2' is numeric but holds the non-numeric value 'n/a'"
    ):
        TabNASClassifier(**FAST, categorical_features=["color", "flag"]).fit(bad, y)


def test_huge_regression_targets_stay_finite_or_are_refused():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    reg = TabNASRegressor(**{**FAST, "max_epochs": 2}).fit(X, rng.normal(size=40) * 1e200)
    assert np.isfinite(reg.target_std_) and np.isfinite(reg.predict(X)).all()
    with pytest.raises(ValueError, match="too large for predictions.*divide y"):
        TabNASRegressor(**FAST).fit(X, rng.normal(size=40) * 1e300)


def test_an_interrupted_fit_leaves_the_previous_model(fitted_mixed, mixed_frame, monkeypatch):
    import tabnas.estimators._base as base

    X, y = mixed_frame
    before = fitted_mixed.predict_proba(X)
    state = dict(fitted_mixed.__dict__)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "search_select_retrain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted_mixed.fit(X[:100], y[:100])
    assert fitted_mixed.__dict__.keys() == state.keys()
    assert all(fitted_mixed.__dict__[k] is v for k, v in state.items())
    np.testing.assert_array_equal(fitted_mixed.predict_proba(X), before)


def test_a_failed_fit_writes_no_fitted_attribute_and_a_refit_drops_stale_ones(mixed_frame):
    X, y = mixed_frame
    clf = TabNASClassifier(**FAST)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])  # fails after the columns were read
    assert [name for name in vars(clf) if name.endswith("_")] == []
    clf.set_params(max_search_steps=4, max_epochs=1, ensemble_size=1)
    clf.fit(X, y)
    assert list(clf.feature_names_in_) == list(X.columns)
    clf.fit(X[["num", "num2"]].to_numpy(), y)  # no names this time: none may survive
    assert not hasattr(clf, "feature_names_in_") and clf.n_features_in_ == 2


def test_predict_changes_nothing_and_threads_may_predict_at_once(fitted_mixed, mixed_frame):
    from concurrent.futures import ThreadPoolExecutor

    X, _ = mixed_frame
    state = dict(fitted_mixed.__dict__)
    weights = {k: v.clone() for k, v in fitted_mixed.model_.state_dict().items()}
    serial = fitted_mixed.predict_proba(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: fitted_mixed.predict_proba(X), range(8)))
    for result in results:
        np.testing.assert_allclose(result, serial, rtol=1e-6, atol=1e-7)
    assert all(fitted_mixed.__dict__[k] is v for k, v in state.items())
    assert all(torch.equal(v, weights[k]) for k, v in fitted_mixed.model_.state_dict().items())
    assert fitted_mixed.fit_info_["cpu_threads"] >= 1


def test_fits_started_from_threads_are_reproducible_and_restore_the_global_state(cancer):
    from concurrent.futures import ThreadPoolExecutor

    X, y = cancer
    params = dict(FAST, max_search_steps=6, max_epochs=2, ensemble_size=1)
    serial = TabNASClassifier(**params).fit(X[:120], y[:120]).predict_proba(X[:50])
    before = torch.random.get_rng_state()
    with ThreadPoolExecutor(max_workers=2) as pool:
        fitted = list(pool.map(
            lambda _: TabNASClassifier(**params).fit(X[:120], y[:120]), range(2)))
    for model in fitted:  # the fits took turns: each drew from its own seeded stream
        np.testing.assert_allclose(model.predict_proba(X[:50]), serial, rtol=1e-5, atol=1e-6)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.slow  # about 30-60 s on 2 cores: `make test-slow` (and CI) runs it
def test_bagging_auto_follows_the_preset_the_table_size_and_an_explicit_validation_set(cancer):
    from tabnas.estimators._presets import BAG_MAX_ROWS

    X, y = cancer
    base = dict(max_search_steps=4, max_epochs=2, ensemble_size=2, device="cpu", random_state=0)
    assert (
        PRESETS["medium"].bag_folds == 5 and PRESETS["fast"].bag_folds == 0 and 200 <= BAG_MAX_ROWS
    )
    auto = TabNASClassifier(preset="medium", **base).fit(X[:200], y[:200])
    assert auto.fit_info_["bag_folds"] == 5
    assert all(m["n_folds"] == 5 for m in auto.ensemble_)
    assert TabNASClassifier(preset="fast", **base).fit(X[:200], y[:200]).fit_info_["bag_folds"] == 0
    given = TabNASClassifier(preset="medium", **base).fit(
        X[:150], y[:150], X_val=X[150:200], y_val=y[150:200]
    )
    assert given.fit_info_["bag_folds"] == 0  # the user's validation set is what selects
    forced = TabNASClassifier(preset="fast", bag_folds=2, **base).fit(
        X[:150], y[:150], X_val=X[150:200], y_val=y[150:200]
    )
    assert forced.fit_info_["bag_folds"] == 2 and forced.predict_proba(X[:5]).shape == (5, 2)


def test_one_bagging_fold_is_refused_with_the_fix(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="bag_folds=1 is not bagging"):
        TabNASClassifier(bag_folds=1).fit(X, y)


def test_retraining_batches_grow_on_cuda_only_where_an_epoch_keeps_its_steps():
    from tabnas.estimators._presets import MIN_STEPS_PER_EPOCH, device_batch_size

    assert device_batch_size(256, 13_209, cuda=False) == (256, 1.0)
    assert device_batch_size(256, 13_209, cuda=True) == (1024, 2.0)  # California's training rows
    assert device_batch_size(256, 6_000, cuda=True) == (512, 2**0.5)
    assert device_batch_size(36, 364, cuda=True) == (36, 1.0)  # a small table keeps its batch
    for n in (500, 3_000, 13_209, 100_000):
        batch, _ = device_batch_size(256, n, cuda=True)
        assert batch == 256 or n // batch >= MIN_STEPS_PER_EPOCH

    cpu = TabNASRegressor()._plan(n_train=13_209, cuda=False)
    auto = TabNASRegressor()._plan(n_train=13_209, cuda=True)
    assert (auto.search.batch_size, auto.retrain_batch_size, auto.retrain_lr_scale) == (
        1024, 1024, 2.0,
    )
    # the search keeps its passes over the data: a quarter of the steps, lr x 2
    assert auto.search == cpu.search.for_device_batch(4)
    assert (auto.search.max_steps, auto.search.lr_scale) == (cpu.search.max_steps // 4, 2.0)
    given = TabNASRegressor(batch_size=256)._plan(n_train=13_209, cuda=True)
    assert (given.retrain_batch_size, given.retrain_lr_scale) == (256, 1.0)  # the user's choice
    assert given.search == cpu.search


def test_the_search_length_overrides_reach_the_search_and_stay_ordered():
    preset = PRESETS["medium"]
    plan = TabNASClassifier()._plan(n_train=1_000).search
    assert (plan.min_steps, plan.max_steps) == (preset.min_steps, preset.max_steps)
    plan = TabNASClassifier(min_search_steps=60)._plan(n_train=1_000).search
    assert (plan.min_steps, plan.max_steps) == (60, preset.max_steps)
    # the minimum never exceeds the maximum, whichever of the two the user set
    plan = TabNASClassifier(min_search_steps=500, max_search_steps=80)._plan(n_train=1_000).search
    assert (plan.min_steps, plan.max_steps) == (80, 80)
    with pytest.raises(ValueError, match="min_search_steps"):
        TabNASClassifier(min_search_steps=0).fit(np.zeros((8, 2)), [0, 1] * 4)


@pytest.mark.slow  # about 30-60 s on 2 cores: `make test-slow` (and CI) runs it
def test_a_search_stops_once_past_its_minimum_without_improvement(cancer):
    X, y = cancer
    X, y = X[:200], y[:200]
    budget = {**FAST, "max_search_steps": 150, "max_epochs": 1, "ensemble_size": 1}
    full = TabNASClassifier(**budget, min_search_steps=150).fit(X, y)
    short = TabNASClassifier(**budget, min_search_steps=1).fit(X, y)
    assert full.fit_info_["search_steps"] == 150
    rows = short.history_.phase("search")
    assert short.fit_info_["search_steps"] == rows[-1]["step"] < 150
    # it stopped because the architecture half's loss had not improved for `patience` evaluations
    best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    assert len(rows) - 1 - best >= PRESETS["fast"].search_patience


@pytest.mark.slow  # about 30-60 s on 2 cores: `make test-slow` (and CI) runs it
def test_recipe_options_reach_the_fit(cancer):
    X, y = cancer
    model = TabNASClassifier(**FAST, numeric_scaling="robust", label_smoothing=0.1)
    model.fit(X[:120], y[:120])
    assert model.preprocessor_.scaling == "robust" and model.preprocessor_.quantile_ is None
    assert np.abs(model.preprocessor_.transform(pd.DataFrame(X))[0]).max() < 3
    assert model._task().label_smoothing == 0.1
    assert model.predict_proba(X[:5]).shape == (5, 2)


def test_label_smoothing_is_refused_by_the_regressor_before_any_work(cancer):
    X, y = cancer
    model = TabNASRegressor(label_smoothing=0.1)
    with pytest.raises(ValueError, match="classification only.*label_smoothing=0"):
        model.fit(X, y.astype(float))
    assert not hasattr(model, "preprocessor_")


def test_a_proxy_width_search_selects_at_full_width(cancer, monkeypatch):
    from tabnas.training import search as search_module

    widths = []
    original = search_module.SupernetTrainer.__init__

    def spy(self, supernet, *args, **kwargs):
        widths.append(supernet.space.settings.d_token)
        original(self, supernet, *args, **kwargs)

    monkeypatch.setattr(search_module.SupernetTrainer, "__init__", spy)
    X, y = cancer
    model = TabNASClassifier(**FAST, search_width=0.5, ensemble_size=1)
    model.set_params(space=dataclasses.replace(model.search_space(), backbones=("cells",)))
    model.fit(X[:150], y[:150])
    full = model.search_space().settings
    assert widths == [full.d_token // 2]  # the supernet was the proxy
    assert model.architecture_.settings == full  # the selection is trained at full width
    assert model.argmax_architecture_.settings == full
    assert model.fit_info_["search_width"] == 0.5


class _ChainSelector(Selector):
    """Selects a chain of ``ffn`` blocks (one input per node), which DARTS's argmax, with
    two inputs per node, never is."""

    def select(self, supernet, context):
        return supernet.space.chain(["ffn", "ffn"]), []


def test_the_argmax_candidate_joins_the_ensemble_when_it_differs(cancer):
    X, y = cancer
    space = dataclasses.replace(TabNASClassifier(**FAST).search_space(), backbones=("cells",))
    common = dict(**FAST, space=space, selection=_ChainSelector(), ensemble_size=3)
    without = TabNASClassifier(**common).fit(X[:150], y[:150])
    model = TabNASClassifier(**common, argmax_candidate=True).fit(X[:150], y[:150])

    assert [m["architecture"] for m in without.ensemble_] == [
        without.selected_architecture_.to_dict()
    ]
    members = [Architecture.from_dict(m["architecture"]) for m in model.ensemble_]
    assert members == [model.selected_architecture_, model.argmax_architecture_]
    assert members[0] != members[1]
    assert model.argmax_architecture_ == without.argmax_architecture_  # the same search
    assert sum(m["weight"] for m in model.ensemble_) == pytest.approx(1.0)
    assert model.fit_info_["argmax_candidate"] is True
    assert without.fit_info_["argmax_candidate"] is False  # off at every preset
    assert model.predict_proba(X[150:160]).shape == (10, 2)


def test_the_argmax_candidate_is_not_trained_twice(cancer):
    X, y = cancer
    space = dataclasses.replace(TabNASClassifier(**FAST).search_space(), backbones=("cells",))
    model = TabNASClassifier(
        **FAST, space=space, selection="argmax", argmax_candidate=True
    ).fit(X[:150], y[:150])
    assert len(model.ensemble_) == 1
    assert model.architecture_ == model.argmax_architecture_
