"""What the classifier and the regressor share: validation, preprocessing, the fit flow."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from tabnas.devices import (
    FIT_LOCK,
    DeviceConfig,
    cpu_threads,
    hardware_settings,
    resolve_device,
    seeded,
)
from tabnas.estimators._presets import (
    BAG_MAX_ROWS,
    PRESETS,
    auto_batch_size,
    device_batch_size,
)
from tabnas.nas.selection import SELECTOR_REGISTRY, Selector
from tabnas.nas.selection.base import Criterion
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.nas.strategies import STRATEGY_REGISTRY, SearchStrategy
from tabnas.preprocessing import TabularPreprocessor, holdout_split
from tabnas.preprocessing._tabular import SCALINGS, dates_message, value_kind
from tabnas.training.data import TensorData
from tabnas.training.loop import Budget, Task, predict
from tabnas.training.pipeline import FitPlan, search_select_retrain
from tabnas.training.search import SearchConfig

logger = logging.getLogger(__name__)

_NUMBER_PARAMS = (
    "time_limit", "validation_fraction", "min_search_steps", "max_search_steps",
    "ensemble_size", "bag_folds", "max_epochs", "patience", "batch_size", "label_smoothing",
    "search_width",
)
_NUMBER_EXAMPLES = {
    "time_limit": 600, "validation_fraction": 0.2, "batch_size": 256, "label_smoothing": 0.1,
    "search_width": 0.5, "bag_folds": 5,
}

MIN_SAMPLES = 4
"""Rows ``fit`` needs: train (split again in two halves) and validation must be non-empty."""


class BaseTabNAS(BaseEstimator, ABC):
    """Shared machinery of :class:`TabNASClassifier` and :class:`TabNASRegressor`."""

    _parameter_constraints: dict = {
        "preset": [StrOptions(set(PRESETS))],
        "search_strategy": [StrOptions(set(STRATEGY_REGISTRY)), SearchStrategy],
        "selection": [StrOptions(set(SELECTOR_REGISTRY)), Selector],
        "architecture": [Architecture, None],
        "space": [SearchSpace, None],
        "time_limit": [Interval(Real, 0, None, closed="neither"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "categorical_features": ["array-like", None],
        "min_search_steps": [Interval(Integral, 1, None, closed="left"), None],
        "max_search_steps": [Interval(Integral, 1, None, closed="left"), None],
        "ensemble_size": [Interval(Integral, 1, None, closed="left"), None],
        "bag_folds": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 2, None, closed="left"), None],
        "search_width": [Interval(Real, 0, 1, closed="right"), None],
        "argmax_candidate": ["boolean", None],
        "numeric_scaling": [StrOptions(set(SCALINGS))],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        preset: str = "medium",
        search_strategy: str | SearchStrategy = "darts",
        selection: str | Selector = "pt",
        architecture: Architecture | None = None,
        space: SearchSpace | None = None,
        time_limit: float | None = None,
        validation_fraction: float = 0.2,
        categorical_features=None,
        min_search_steps: int | None = None,
        max_search_steps: int | None = None,
        ensemble_size: int | None = None,
        bag_folds: int | str = "auto",
        max_epochs: int | None = None,
        patience: int | None = None,
        batch_size: int | None = None,
        search_width: float | None = None,
        argmax_candidate: bool | None = None,
        numeric_scaling: str = "quantile",
        label_smoothing: float = 0.0,
        device: str = "auto",
        random_state=None,
        verbose: int = 0,
    ):
        self.preset = preset
        self.search_strategy = search_strategy
        self.selection = selection
        self.architecture = architecture
        self.space = space
        self.time_limit = time_limit
        self.validation_fraction = validation_fraction
        self.categorical_features = categorical_features
        self.min_search_steps = min_search_steps
        self.max_search_steps = max_search_steps
        self.ensemble_size = ensemble_size
        self.bag_folds = bag_folds
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.search_width = search_width
        self.argmax_candidate = argmax_candidate
        self.numeric_scaling = numeric_scaling
        self.label_smoothing = label_smoothing
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a constructor parameter that the pickling tabnas did not have yet
        takes its default, so that ``get_params``, ``clone`` and ``save`` work on models
        pickled by an older version (the fitted model itself predicts as it did)."""
        super().__setstate__(state)
        parameters = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            if name not in self.__dict__:
                setattr(self, name, parameters[name].default)

    # ---- the task-specific hooks -----------------------------------------------------
    @abstractmethod
    def _encode_target(self, y, *, fitting: bool) -> np.ndarray:
        """Validate ``y`` (``y_val`` when not ``fitting``) and turn it into model targets
        (class codes or standardised values)."""

    @abstractmethod
    def _task(self) -> Task: ...

    @abstractmethod
    def _stratify(self, y_encoded: np.ndarray) -> np.ndarray | None: ...

    @abstractmethod
    def _selection_criterion(self) -> Criterion: ...

    # ---- fit -------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Search an architecture, select it and train it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric and categorical features; NaN allowed.
        y : array-like of shape (n_samples,)
        X_val, y_val : optional
            A validation set for early stopping and model selection. Without it,
            ``validation_fraction`` of ``X`` is held out.

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                f"This {type(self).__name__} estimator requires y to be passed,"
                " but the target y is None."
            )
        if (X_val is None) != (y_val is None):
            raise ValueError("pass both X_val and y_val, or neither")
        for name in _NUMBER_PARAMS:  # bool is an int to Python and to the constraints
            if isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is a bool, where a number is meant;"
                    f" pass a number (e.g. {name}={_NUMBER_EXAMPLES.get(name, 10)})"
                    + (" or None" if None in self._parameter_constraints[name] else "")
                )
        if self.bag_folds == 1:
            raise ValueError(
                "bag_folds=1 is not bagging; pass 0 (off), at least 2 folds, or 'auto'"
            )
        if self.label_smoothing and not is_classifier(self):
            raise ValueError(
                f"label_smoothing={self.label_smoothing!r} applies to classification only;"
                f" {type(self).__name__} takes label_smoothing=0"
            )
        # Validation and training write to a copy that shares the parameters (a
        # RandomState among them); its fitted attributes replace ours only once all went
        # well, so a failed or interrupted fit leaves the estimator exactly as it was.
        staged = copy.copy(self)
        for name in _fitted_attributes(staged):
            delattr(staged, name)
        with FIT_LOCK:  # before the time limit's clock starts: waiting is not fitting
            staged._fit(X, y, X_val, y_val)
        for name in _fitted_attributes(self):
            delattr(self, name)
        for name in _fitted_attributes(staged):
            setattr(self, name, getattr(staged, name))
        return self

    def _fit(self, X, y, X_val, y_val) -> None:
        budget = Budget(self.time_limit)  # the clock starts before preprocessing
        frame = self._validate_X(X, reset=True)
        check_consistent_length(frame, y)
        y_encoded = self._encode_target(y, fitting=True)
        rng = check_random_state(self.random_state)
        split_seed, torch_seed, noise_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=3))
        split_rng = np.random.default_rng(split_seed)

        if X_val is None:
            if len(frame) < MIN_SAMPLES:
                raise ValueError(
                    f"{type(self).__name__} needs at least {MIN_SAMPLES} samples to hold out a"
                    f" validation split and split training in two halves; got"
                    f" n_samples={len(frame)}"
                )
            train_rows, val_rows = holdout_split(
                len(frame), self.validation_fraction, split_rng, stratify=self._stratify(y_encoded)
            )
            val_frame, y_val_encoded = frame.iloc[val_rows], y_encoded[val_rows]
            frame, y_encoded = frame.iloc[train_rows], y_encoded[train_rows]
        else:
            val_frame = self._validate_X(X_val, reset=False)
            check_consistent_length(val_frame, y_val)
            y_val_encoded = self._encode_target(y_val, fitting=False)
            if len(val_frame) == 0:
                raise ValueError("X_val is empty; pass at least one validation row")
        if len(frame) < 2:
            given = (
                f"validation_fraction={self.validation_fraction} leaves {len(frame)} of"
                f" {len(frame) + len(val_frame)} rows for training; lower it or pass X_val"
                if X_val is None else f"got n_samples={len(frame)}"
            )
            raise ValueError(
                f"{type(self).__name__} needs at least 2 training rows to split them into a"
                f" weight half and an architecture half; {given}"
            )

        preprocessor = TabularPreprocessor(
            categorical=self._categorical_columns_, random_state=noise_seed,
            names=getattr(self, "feature_names_in_", None), scaling=self.numeric_scaling,
        )
        preprocessor.fit(frame)
        weight_rows, arch_rows = holdout_split(
            len(frame), 0.5, split_rng, stratify=self._stratify(y_encoded)
        )
        device = resolve_device(self.device)
        data = self._tensors(preprocessor, frame, y_encoded)
        val_data = self._tensors(preprocessor, val_frame, y_val_encoded)
        plan = self._plan(
            n_train=len(frame),
            cuda=device.is_cuda,
            bag_folds=self._bag_folds(
                n_rows=len(frame) + len(val_frame), explicit_val=X_val is not None
            ),
        )
        with hardware_settings(device), seeded(torch_seed, device):
            threads_used = cpu_threads()  # inside the settings: what the fit really uses
            result = search_select_retrain(
                plan,
                weight_data=data[torch.as_tensor(weight_rows)].to(device),
                arch_data=data[torch.as_tensor(arch_rows)].to(device),
                val_data=val_data.to(device),
                n_num_features=preprocessor.n_num_features,
                cat_cardinalities=preprocessor.cat_cardinalities,
                task=self._task(),
                device=device,
                seed=torch_seed,
                budget=budget,
            )
        self.preprocessor_ = preprocessor
        self.search_space_ = plan.space
        self.architecture_ = result.architecture
        self.selected_architecture_ = result.search_info.get("selected_architecture")
        self.argmax_architecture_ = result.search_info.get("argmax_architecture")
        self.model_ = result.model
        self.history_ = result.history
        self.selection_trace_ = result.selection_trace
        self.ensemble_ = [member.summary() for member in result.members]
        self.best_epoch_ = result.retrain.best_epoch
        self.n_parameters_ = sum(p.numel() for p in result.model.parameters())
        self.device_ = str(device.device)
        self.timings_ = {**result.timings, "fit_s": budget.elapsed()}
        self.fit_info_ = {
            "n_train": len(frame),
            "n_val": len(val_frame),
            "n_weight_half": len(weight_rows),
            "n_arch_half": len(arch_rows),
            "cpu_threads": threads_used,
            "batch_size": plan.search.batch_size,
            "retrain_batch_size": plan.retrain_batch_size,
            "retrain_lr_scale": plan.retrain_lr_scale,
            "search_width": plan.search_width,
            "argmax_candidate": plan.argmax_candidate,
            "stopped_by": result.retrain.stopped_by,
            "best_val": result.retrain.best_metrics,
            **{
                k: v for k, v in result.search_info.items()
                if k not in ("argmax_architecture", "selected_architecture")
            },
        }

    def search_space(self) -> SearchSpace:
        """The space this estimator searches: ``space`` when given, else its preset's;
        needs no fit.

        Its points (``space.chain(["attention", "ffn"])``, ``space.sample(seed)``) can be
        passed back as ``architecture=`` to train one network of the space without a search,
        and a changed copy (``dataclasses.replace(space, backbones=("cells",))``) as
        ``space=``.
        """
        if self.space is not None:
            return self.space
        preset = PRESETS[self.preset] if self.preset in PRESETS else PRESETS["medium"]
        return SearchSpace(
            n_cells=preset.n_cells,
            n_nodes=preset.n_nodes,
            node_inputs=preset.node_inputs,
            settings=preset.op_settings(),
            num_embeddings=preset.num_embeddings,
            backbones=preset.backbones,
            mlp=preset.mlp,
        )

    def _bag_folds(self, *, n_rows: int, explicit_val: bool) -> int:
        """``bag_folds`` resolved: ``"auto"`` bags small tables (at most
        :data:`BAG_MAX_ROWS` rows in all) with the preset's folds, unless a validation
        set was passed."""
        if self.bag_folds != "auto":
            return int(self.bag_folds)
        small = n_rows <= BAG_MAX_ROWS and not explicit_val
        return PRESETS[self.preset].bag_folds if small else 0

    def _plan(self, *, n_train: int, bag_folds: int = 0, cuda: bool = False) -> FitPlan:
        preset = PRESETS[self.preset]
        batch_size = self.batch_size or auto_batch_size(n_train)
        # an explicit batch_size is the user's for every phase and device
        retrain_batch, lr_scale = device_batch_size(
            batch_size, n_train, cuda=cuda and self.batch_size is None
        )
        max_steps = self.max_search_steps or preset.max_steps
        return FitPlan(
            space=self.search_space(),
            # the search draws the device's batch too, with as many passes over the data
            search=SearchConfig(
                batch_size=batch_size,
                lr=preset.lr,
                weight_decay=preset.weight_decay,
                min_steps=min(self.min_search_steps or preset.min_steps, max_steps),
                max_steps=max_steps,
                warmup_steps=min(preset.warmup_steps, max_steps // 3),
                patience=preset.search_patience,
                tune_steps=preset.tune_steps,
            ).for_device_batch(retrain_batch // batch_size),
            strategy=self.search_strategy,
            selection=self.selection,
            selection_criterion=self._selection_criterion(),
            max_epochs=self.max_epochs or preset.max_epochs,
            patience=self.patience or preset.patience,
            architecture=self.architecture,
            ensemble_size=self.ensemble_size or preset.ensemble_size,
            bag_folds=bag_folds,
            verbose=bool(self.verbose),
            retrain_batch_size=retrain_batch,
            retrain_lr_scale=lr_scale,
            search_width=self.search_width or preset.search_width,
            argmax_candidate=(
                preset.argmax_candidate if self.argmax_candidate is None
                else bool(self.argmax_candidate)
            ),
        )

    # ---- validation shared by fit and predict ----------------------------------------
    def _validate_X(self, X, *, reset: bool) -> pd.DataFrame:
        """Check ``X`` and return it as a DataFrame with positional columns.

        Sets ``n_features_in_`` / ``feature_names_in_`` when ``reset``; with ``reset=False``
        checks them (and the categorical columns found at fit).
        """
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape})"
                    " while a minimum of 1 is required."
                )
            if X.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={X.shape})"
                    " while a minimum of 1 is required."
                )
            frame = X.set_axis(range(X.shape[1]), axis=1)
            inferred = [
                j for j, dtype in enumerate(X.dtypes)
                if isinstance(dtype, pd.CategoricalDtype)
                or pd.api.types.is_object_dtype(dtype)
                or pd.api.types.is_string_dtype(dtype)
                or pd.api.types.is_bool_dtype(dtype)
            ]
        else:
            array = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
            if _strings_from_a_list(X, array):  # keep None / NaN missing, not the text 'nan'
                array = validate_data(self, X, reset=reset, dtype=object, ensure_all_finite=False)
            if array.dtype.kind in "mM":  # as objects they would become plain integers
                raise ValueError(dates_message("0", array.dtype))
            if array.dtype.kind not in "fiubO":
                array = array.astype(object)
            frame = pd.DataFrame(array)
            inferred = []
        if reset:
            self._categorical_columns_ = self._resolve_categorical(X, inferred)
            if self.categorical_features is None:
                _warn_numbers_as_categories(X, inferred)
        return frame

    def _resolve_categorical(self, X, inferred: list[int]) -> list[int]:
        spec = self.categorical_features
        n = self.n_features_in_
        if spec is None:
            return inferred
        values = np.asarray(spec)
        if values.dtype == bool:
            if values.shape != (n,):
                raise ValueError(
                    f"categorical_features as a boolean mask needs {n} entries, got {values.shape}"
                )
            return [int(j) for j in np.flatnonzero(values)]
        columns = []
        names = list(getattr(self, "feature_names_in_", []))
        for item in values.ravel().tolist():
            if isinstance(item, str):
                if item not in names:
                    raise ValueError(
                        f"categorical_features names {item!r}, which is not a column of X;"
                        f" columns: {names if names else 'X has no column names'}"
                    )
                columns.append(names.index(item))
            elif isinstance(item, int) and -n <= item < n:
                columns.append(item % n)
            else:
                raise ValueError(
                    f"categorical_features must hold column names or indices in [0, {n}),"
                    f" got {item!r}"
                )
        return sorted(set(columns))

    def _tensors(
        self, preprocessor: TabularPreprocessor, frame: pd.DataFrame, y: np.ndarray | None,
        *, check_kinds: bool = False,
    ) -> TensorData:
        x_num, x_cat = preprocessor.transform(frame, check_kinds=check_kinds)
        target = torch.zeros(len(frame)) if y is None else torch.as_tensor(y)
        return TensorData(torch.as_tensor(x_num), torch.as_tensor(x_cat), target)

    # ---- prediction ------------------------------------------------------------------
    def _raw_predict(self, X) -> torch.Tensor:
        """The ensemble's ``(n, d_out)`` outputs in fp32, computed without changing the
        estimator: on the CPU the fitted model is used as it is (eval mode, no autograd), on
        CUDA a copy moves to the device, so threads may predict at once."""
        check_is_fitted(self)
        frame = self._validate_X(X, reset=False)
        data = self._tensors(self.preprocessor_, frame, None, check_kinds=True)
        # predictions in fp32 everywhere (no bf16 autocast): a GPU's agree with the CPU's
        device = dataclasses.replace(self._prediction_device(), amp_dtype=None)
        model = self.model_ if not device.is_cuda else copy.deepcopy(self.model_).to(device.device)
        return predict(model, data.to(device), device).cpu()

    def _prediction_device(self) -> DeviceConfig:
        """The fitted device when it is still there, the CPU otherwise."""
        try:
            return resolve_device(self.device_)
        except ValueError:
            return resolve_device("cpu")

    # ---- saving and loading without pickle -------------------------------------------
    def save(self, path):
        """Write this fitted estimator to the file ``path`` and return its ``Path``.

        The file is a zip of ``weights.pt`` (the networks' tensors, read back with
        ``torch.load(..., weights_only=True)``) and ``model.json`` (everything else);
        :func:`tabnas.load` reads it without unpickling anything, so it is safe to share,
        unlike a pickle. See :mod:`tabnas.estimators._persistence` for what is kept.
        """
        from tabnas.estimators._persistence import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """The estimator :meth:`save` wrote to ``path``; a ``TypeError`` when the file holds
        another estimator class (:func:`tabnas.load` takes either)."""
        from tabnas.estimators._persistence import load

        estimator = load(path)
        if not isinstance(estimator, cls):
            raise TypeError(
                f"{str(path)!r} holds a {type(estimator).__name__}, not a {cls.__name__};"
                " tabnas.load(path) loads either"
            )
        return estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


def _fitted_attributes(estimator: BaseEstimator) -> list[str]:
    """What ``fit`` sets: the names ending in ``_`` (``classes_``, ``_categorical_columns_``)."""
    return [name for name in vars(estimator) if name.endswith("_") and not name.endswith("__")]


def check_finite_labels(y: np.ndarray, name: str = "y") -> None:
    """Refuse missing labels with a clear message (numeric NaN/inf get sklearn's);
    ``name`` is the argument's (``y`` or ``y_val``)."""
    if y.dtype.kind in "fc":
        from sklearn.utils import assert_all_finite

        assert_all_finite(y, input_name=name)
    elif y.dtype.kind == "O" and pd.isna(y).any():
        raise ValueError(
            f"{name} contains {int(pd.isna(y).sum())} missing label(s) (None/NaN); drop those rows"
            " or give them a label"
        )


def _label_kind(label: object) -> str:
    if isinstance(label, str):
        return "str"
    if isinstance(label, (bool, np.bool_)):
        return "bool"
    return "number" if isinstance(label, Real) else type(label).__name__


def check_one_label_type(y: np.ndarray) -> None:
    """Refuse labels of several types (``[1, "a"]`` in an object array), which cannot be
    ordered into ``classes_``, with the fix."""
    if y.dtype.kind != "O":
        return
    kinds: dict[str, object] = {}
    for label in pd.unique(y):
        kinds.setdefault(_label_kind(label), label)
    if len(kinds) > 1:
        examples = ", ".join(f"{label!r} ({kind})" for kind, label in sorted(kinds.items()))
        raise ValueError(
            f"y mixes label types: {examples}; give all labels one type, e.g."
            " y.astype(str) or pd.to_numeric(y)"
        )


def as_target(y, name: str = "y") -> np.ndarray:
    """``y`` (or ``y_val``: ``name``) as a 1-d array (a column vector is flattened with
    sklearn's warning)."""
    from sklearn.utils.validation import column_or_1d

    array = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=False, input_name=name)
    if _strings_from_a_list(y, array):  # a NaN label stays missing, not the class 'nan'
        array = check_array(
            y, ensure_2d=False, dtype=object, ensure_all_finite=False, input_name=name
        )
    return column_or_1d(array, warn=True)


def _strings_from_a_list(given, array: np.ndarray) -> bool:
    """Whether numpy made text of a list (or other input without a dtype): it would turn a
    missing value (``np.nan``, ``None``) into the string ``'nan'`` / ``'None'``; such input
    is read again as objects, as scikit-learn's encoders do."""
    return not hasattr(given, "dtype") and array.dtype.kind in "SU"


def _warn_numbers_as_categories(X, inferred: list[int]) -> None:
    """Warn about object columns that hold numbers only: treated as categorical (every
    value its own category, new values unseen), which is rarely what was meant."""
    for j in inferred:
        column = X.iloc[:, j]
        if not pd.api.types.is_object_dtype(column.dtype):
            continue
        try:
            values = pd.unique(column.dropna())
        except TypeError:  # unhashable values: the preprocessor's error names them
            continue
        if len(values) and all(value_kind(v) == "number" for v in values):
            warnings.warn(
                f"column {X.columns[j]!r} holds only numbers but has dtype object, so it is"
                " treated as categorical (each value a category); convert it with"
                " pd.to_numeric if it is numeric, or name it in categorical_features to"
                " keep it categorical without this warning",
                UserWarning, stacklevel=6,  # the caller of fit
            )
