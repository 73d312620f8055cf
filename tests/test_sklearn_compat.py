"""scikit-learn's own estimator checks, on both estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from tabnas import TabNASClassifier, TabNASRegressor

# Small budgets: the checks fit dozens of times on tiny data.
CHECK_PARAMS = dict(preset="fast", max_epochs=30, device="cpu", random_state=0)


def expected_failed_checks(estimator):
    return {}


@parametrize_with_checks(
    [TabNASClassifier(**CHECK_PARAMS), TabNASRegressor(**CHECK_PARAMS)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
