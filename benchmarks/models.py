"""The models of the benchmark, each behind one adapter interface.

Every adapter is built for one task (``binclass``, ``multiclass`` or ``regression``) and
seed, then ``fit(X_train, y_train, X_val, y_val)`` trains on train and uses val only for
early stopping; ``predict_proba`` (classification) and ``predict`` score the test split.
``X`` frames hold numbers and pandas ``category`` columns; ``y`` holds class codes
``0..n_classes-1`` (all present in ``y_train``) or regression targets in original units.

Models: ``dummy`` (majority class / mean), ``xgboost``, ``lightgbm``, ``catboost`` (default
parameters, 4000 trees, early stopping 50 on val, native categorical support),
``resnet`` and ``ft_transformer`` (Gorishniy et al. 2021), ``tabm`` (TabM with
piecewise-linear embeddings) and ``realmlp`` (RealMLP-TD, ``pytabkit``) in
:mod:`benchmarks.nn_baselines`, and ``tabnas`` plus named variants ``tabnas-<variant>``
(options of the estimator); ``search_value`` runs the arms of the search-value study
(:mod:`benchmarks.search_value`).

Each model is one adapter class that registers itself under its ``family`` with what the
harness needs to know about it (the package whose version is recorded, whether it uses
torch, the options a config may set): no table elsewhere names the models.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

N_ESTIMATORS = 4000
EARLY_STOPPING_ROUNDS = 50


MODEL_REGISTRY: dict[str, type[Adapter]] = {}
"""Model family -> its adapter class, filled by the adapters themselves."""


def model_families() -> tuple[str, ...]:
    return tuple(MODEL_REGISTRY)


def adapter_class(family: str) -> type[Adapter]:
    return MODEL_REGISTRY[model_family(family)]


def model_family(name: str) -> str:
    """``"tabnas-fast"`` -> ``"tabnas"`` (the families whose adapters take ``variants``);
    a ``ValueError`` listing valid names for others."""
    if name in MODEL_REGISTRY:
        return name
    family, _, variant = name.partition("-")
    if variant and family in MODEL_REGISTRY and MODEL_REGISTRY[family].variants:
        return family
    with_variants = [f"{f}-<variant>" for f, cls in MODEL_REGISTRY.items() if cls.variants]
    raise ValueError(
        f"unknown model {name!r}; valid models: {', '.join(MODEL_REGISTRY)},"
        f" or {' / '.join(with_variants)}"
    )


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """A clear ``ValueError`` for options the model does not take."""
    allowed = adapter_class(name).options()
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"model {name!r} does not take the option(s) {unknown}; valid options:"
            f" {sorted(allowed) if allowed else 'none'}"
        )
    if "params" in options and not isinstance(options["params"], dict):
        raise ValueError(f"model {name!r}: params must be a table, got {options['params']!r}")
    for key in (
        "max_epochs", "patience", "batch_size", "ensemble_size", "k", "d_block", "n_blocks"
    ):
        if key in options and not (isinstance(options[key], int) and options[key] >= 1):
            raise ValueError(
                f"model {name!r}: {key} must be a positive integer, got {options[key]!r}"
            )
    if "time_limit" in options and not (
        isinstance(options["time_limit"], (int, float)) and options["time_limit"] > 0
    ):
        raise ValueError(
            f"model {name!r}: time_limit must be positive seconds, got {options['time_limit']!r}"
        )


class Adapter(ABC):
    """One model for one task and seed; ``info()`` adds what to record beside the scores.

    A concrete adapter names its ``family`` and registers itself; ``package`` is the
    package whose version is recorded with its results, ``uses_torch`` whether the job
    must set torch's threads, ``option_names`` what a config may set. ``imports`` lists the
    modules ``fit`` needs; the runner imports them before it starts the fit clock, so that
    fit times do not include a library's import.
    """

    family: ClassVar[str]
    package: ClassVar[str] = "scikit-learn"
    uses_torch: ClassVar[bool] = False
    option_names: ClassVar[frozenset[str]] = frozenset()
    imports: tuple[str, ...] = ()
    variants: ClassVar[bool] = False
    """Whether a config may name ``<family>-<variant>`` models with their own options."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            known = MODEL_REGISTRY.get(cls.family)
            # a module run as a script (``python -m benchmarks.search_value``) is imported
            # once more under its own name: the same class again, not a clash
            again = known is not None and known.__qualname__ == cls.__qualname__ and (
                "__main__" in (known.__module__, cls.__module__)
            )
            if known is not None and not again:
                raise ValueError(f"a benchmark model named {cls.family!r} is already registered")
            if known is None or cls.__module__ != "__main__":
                MODEL_REGISTRY[cls.family] = cls

    @classmethod
    def options(cls) -> frozenset[str]:
        """The options a config may set for this model."""
        return cls.option_names

    def __init__(
        self,
        *,
        task: str,
        n_classes: int | None,
        seed: int,
        threads: int,
        options: dict[str, Any] | None = None,
    ):
        self.task = task
        self.n_classes = n_classes
        self.seed = seed
        self.threads = threads
        self.options = dict(options or {})

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @abstractmethod
    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> Adapter: ...

    @abstractmethod
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities of shape ``(n, n_classes)`` (classification only)."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class codes (argmax of the probabilities) or regression values."""
        return self.predict_proba(X).argmax(axis=1)

    def info(self) -> dict[str, Any]:
        return {"device": "cpu"}


class DummyModel(Adapter):
    """The majority class (prior probabilities) or the training mean."""

    family = "dummy"

    imports = ("sklearn.dummy",)

    def fit(self, X_train, y_train, X_val, y_val):
        from sklearn.dummy import DummyClassifier, DummyRegressor

        self.model_ = (
            DummyClassifier(strategy="prior") if self.is_classification else DummyRegressor()
        ).fit(X_train, y_train)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


class _GBDT(Adapter):
    """Shared fit / predict of the three boosting libraries' scikit-learn interfaces.

    ``params`` are extra constructor arguments (e.g. ``device = "cuda"`` for XGBoost on a
    GPU).
    """

    option_names = frozenset({"params"})

    def predict_proba(self, X):
        return self.model_.predict_proba(self._frame(X))

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return self.model_.predict(self._frame(X))

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        return X


class XGBoostModel(_GBDT):
    """XGBoost defaults, ``tree_method="hist"``, categories via ``enable_categorical``."""

    family = package = "xgboost"
    imports = ("xgboost",)

    def fit(self, X_train, y_train, X_val, y_val):
        import xgboost as xgb

        cls = xgb.XGBClassifier if self.is_classification else xgb.XGBRegressor
        self.model_ = cls(
            n_estimators=N_ESTIMATORS,
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            tree_method="hist",
            enable_categorical=True,
            random_state=self.seed,
            n_jobs=self.threads,
            **self.options.get("params", {}),
        )
        self.model_.fit(X_train, y_train, eval_set=[(X_val, y_val)], verbose=False)
        return self

    def info(self):
        device = str(self.options.get("params", {}).get("device", "cpu"))
        return {"device": device, "best_iteration": int(self.model_.best_iteration)}


class LightGBMModel(_GBDT):
    """LightGBM defaults; pandas ``category`` columns are its categorical features."""

    family = package = "lightgbm"
    imports = ("lightgbm",)

    def fit(self, X_train, y_train, X_val, y_val):
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if self.is_classification else lgb.LGBMRegressor
        self.model_ = cls(
            n_estimators=N_ESTIMATORS,
            random_state=self.seed,
            n_jobs=self.threads,
            verbose=-1,
            **self.options.get("params", {}),
        )
        with warnings.catch_warnings():  # newer LightGBM renames eval_set; both work
            warnings.filterwarnings("ignore", message=".*eval_set.*")
            self.model_.fit(
                X_train,
                y_train,
                eval_set=[(X_val, y_val)],
                callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            )
        return self

    def info(self):
        return {"device": "cpu", "best_iteration": int(self.model_.best_iteration_)}


class CatBoostModel(_GBDT):
    """CatBoost defaults; categorical columns passed as ``cat_features`` (as text)."""

    family = package = "catboost"
    imports = ("catboost",)

    MISSING = "__missing__"

    def fit(self, X_train, y_train, X_val, y_val):
        import catboost

        self.cat_features_ = [
            c for c in X_train.columns if isinstance(X_train[c].dtype, pd.CategoricalDtype)
        ]
        cls = catboost.CatBoostClassifier if self.is_classification else catboost.CatBoostRegressor
        self.model_ = cls(
            iterations=N_ESTIMATORS,
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            random_seed=self.seed,
            thread_count=self.threads,
            verbose=False,
            allow_writing_files=False,
            cat_features=self.cat_features_,
            **self.options.get("params", {}),
        )
        self.model_.fit(self._frame(X_train), y_train, eval_set=(self._frame(X_val), y_val))
        return self

    def _frame(self, X):
        if not self.cat_features_:
            return X
        X = X.copy()
        for column in self.cat_features_:
            X[column] = X[column].astype(object).where(X[column].notna(), self.MISSING).astype(str)
        return X

    def info(self):
        task_type = str(self.options.get("params", {}).get("task_type", "CPU")).lower()
        return {
            "device": "cuda" if task_type == "gpu" else "cpu",
            "best_iteration": int(self.model_.get_best_iteration() or 0),
        }


class TabNASModel(Adapter):
    """``TabNASClassifier`` / ``TabNASRegressor`` with the variant's options."""

    family = package = "tabnas"
    uses_torch = True
    imports = ("tabnas",)
    variants = True

    @classmethod
    def options(cls) -> frozenset[str]:
        """The estimator's own parameters (``get_params``), less what the harness sets:
        the seed, the categorical columns (the frame's dtypes) and the verbosity."""
        from tabnas import TabNASClassifier

        return (
            frozenset(TabNASClassifier().get_params())
            - {"random_state", "verbose", "categorical_features"}
        ) | {"own_validation"}

    def fit(self, X_train, y_train, X_val, y_val):
        """With ``own_validation = true`` the estimator gets the training rows only (it
        holds out its own validation rows, as a user's ``fit(X, y)`` does) and the
        harness's validation rows, which no part of the fit saw, are scored as
        ``model_info.heldout``: an unbiased score to decide variants on, where the
        ensemble's own validation score is fitted to its validation rows."""
        from benchmarks.protocol import scores
        from tabnas import TabNASClassifier, TabNASRegressor

        cls = TabNASClassifier if self.is_classification else TabNASRegressor
        options = dict(self.options)
        own_validation = bool(options.pop("own_validation", False))
        if isinstance(options.get("space"), dict):  # a config changes fields of the preset's
            options["space"] = self._space(cls(**options | {"space": None}), options["space"])
        self.model_ = cls(random_state=self.seed, **options)
        self.heldout_ = None
        if own_validation:
            self.model_.fit(X_train, y_train)
            self.heldout_ = (
                scores(self.task, y_val, proba=self.predict_proba(X_val))
                if self.is_classification
                else scores(self.task, y_val, pred=self.predict(X_val))
            )
        else:
            self.model_.fit(X_train, y_train, X_val=X_val, y_val=y_val)
        return self

    @staticmethod
    def _space(estimator, changes: dict[str, Any]):
        """The estimator's space with ``changes`` (TOML lists become tuples):
        ``space = {backbones = ["cells", "tabm", "retrieval"]}`` in a config."""
        import dataclasses

        base = estimator.search_space()
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(base)})
        if unknown:
            raise ValueError(f"space has no field(s) {unknown}")
        return dataclasses.replace(
            base, **{k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        )

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return self.model_.predict(X)

    def info(self):
        est = self.model_
        return {
            "device": est.device_,
            "n_parameters": int(est.n_parameters_),
            "architecture": est.architecture_.to_dict(),
            "selected_architecture": (
                None if est.selected_architecture_ is None else est.selected_architecture_.to_dict()
            ),
            "ensemble": [
                {k: m[k] for k in ("weight", "best_val", "train_s", "n_parameters")}
                | {
                    "backbone": m["architecture"]["backbone"],
                    "num_embedding": m["architecture"]["num_embedding"],
                }
                for m in est.ensemble_
            ],
            "best_epoch": int(est.best_epoch_),
            "ensemble_val": est.fit_info_["ensemble_val"],
            "heldout": self.heldout_,
            "timings": {k: round(float(v), 3) for k, v in est.timings_.items()},
            "options": {
                "preset": est.preset,
                "search_strategy": est.search_strategy,
                "selection": est.selection,
                **self.options,
            },
        }


def make_model(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    task: str,
    n_classes: int | None,
    seed: int,
    threads: int = 1,
) -> Adapter:
    """The adapter of model ``name`` (a family name or ``tabnas-<variant>``)."""
    options = dict(options or {})
    check_model_options(name, options)
    return adapter_class(name)(
        task=task, n_classes=n_classes, seed=seed, threads=threads, options=options
    )


# The adapters of these modules register themselves; they import torch only when used.
from benchmarks import nn_baselines, search_value, strategies  # noqa: E402, F401
