"""scikit-learn's own estimator checks, on both estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from tabnas import TabNASClassifier, TabNASRegressor

# Small budgets: the checks fit dozens of times on tiny data.
CHECK_PARAMS = dict(preset="fast", max_search_steps=10, max_epochs=30, device="cpu", random_state=0)


def expected_failed_checks(estimator):
    return {
        # Predictions of a subset equal those of the full batch only to float32 precision:
        # a matrix product over fewer rows may round the last bit differently (seen:
        # relative 2.5e-7 on one of 80 values with one thread; the check asks for 1e-7).
        # Whether it shows depends on the CPU and thread count, so the check may also pass
        # (reported as XPASS).
        "check_methods_subset_invariance": (
            "float32 matrix products are not bitwise invariant to the batch size"
        ),
    }


@parametrize_with_checks(
    [TabNASClassifier(**CHECK_PARAMS), TabNASRegressor(**CHECK_PARAMS)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
