"""Saving a fitted estimator without pickle: the networks' tensors, and the rest as JSON.

``est.save(path)`` writes one zip file holding two members:

- ``model.json``: the format and its version, the estimator's class and constructor
  parameters, the preprocessor's fitted state (categories, means, the quantile
  transformer's arrays), the structure of ``model_`` (each member network's
  :class:`~tabnas.nas.space.Architecture`, the ensemble weights, the data shapes it was
  built for) and the other fitted attributes;
- ``weights.pt``: ``model_.state_dict()`` written by :func:`torch.save`, read back with
  ``torch.load(..., weights_only=True)``, which rebuilds tensors and nothing else.

:func:`load` builds the networks again from their architectures and gives them the
saved tensors with ``load_state_dict(strict=True)``; nothing is unpickled.

JSON has no type for some values; those are written as ``{"__tabnas__": tag, ...}``:
tuples, dicts with keys other than strings, non-finite floats, numpy scalars and arrays
(with their dtype), pandas indexes (with theirs), and the package's own plain-data
classes (:class:`Architecture`, :class:`SearchSpace` and its settings, the selection
records, :class:`History`). A file can name those classes only; any other value is
refused when saving.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import reprlib
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rtdl_num_embeddings import PiecewiseLinearEmbeddings
from sklearn.preprocessing import QuantileTransformer
from sklearn.utils.validation import check_is_fitted
from torch import nn

from tabnas._version import __version__
from tabnas.estimators._base import BaseTabNAS
from tabnas.estimators._classifier import TabNASClassifier
from tabnas.estimators._regressor import TabNASRegressor
from tabnas.nas.network import NETWORK_BUILDERS, DataShapes, build_network
from tabnas.nas.ops import OpSettings
from tabnas.nas.selection.trace import Fallback, InputDecision, OpDecision
from tabnas.nas.space import Architecture, MLPSettings, RetrievalSettings, SearchSpace
from tabnas.preprocessing import TabularPreprocessor
from tabnas.training.ensemble import EnsembleModel
from tabnas.training.history import History
from tabnas.training.loop import Task

FORMAT = "tabnas.model"
FORMAT_VERSION = 1
"""Raised when the layout changes; :func:`load` refuses versions above its own."""

JSON_NAME = "model.json"
WEIGHTS_NAME = "weights.pt"
TAG = "__tabnas__"

ESTIMATORS: dict[str, type[BaseTabNAS]] = {
    cls.__name__: cls for cls in (TabNASClassifier, TabNASRegressor)
}

PREDICTION_ATTRIBUTES = frozenset(
    {
        "classes_", "target_mean_", "target_std_", "n_features_in_", "feature_names_in_",
        "_categorical_columns_", "device_",
    }
)
"""Fitted attributes that prediction reads: ``save`` refuses when one of them has no JSON
form, where it leaves out (with a warning) a descriptive one such as ``history_``."""

_DATACLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        SearchSpace, OpSettings, MLPSettings, RetrievalSettings, OpDecision, InputDecision,
        Fallback,
    )
}
_NUMPY_KINDS = "biufU"


class Unrepresentable(TypeError):
    """A value the JSON format has no form for."""

    def __init__(self, value: Any):
        self.value = value
        super().__init__(f"{type(value).__qualname__} value {reprlib.repr(value)}")


# ---- values <-> JSON -------------------------------------------------------------------
def to_json(value: Any) -> Any:
    """``value`` as JSON data that :func:`from_json` turns back into an equal value of the
    same type; :class:`Unrepresentable` for a value (or part) it has no form for."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if kind is list:
        return [to_json(v) for v in value]
    if kind is tuple:
        return {TAG: "tuple", "items": [to_json(v) for v in value]}
    if kind is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: to_json(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, np.generic) and value.dtype.kind in _NUMPY_KINDS:
        return {TAG: "numpy", "dtype": value.dtype.str, "value": to_json(value.item())}
    if kind is np.ndarray and value.dtype.kind in _NUMPY_KINDS + "O":
        return {
            TAG: "ndarray", "dtype": value.dtype.str, "shape": list(value.shape),
            "values": [to_json(v) for v in value.ravel().tolist()],
        }
    if kind is pd.Index and pd.api.types.pandas_dtype(str(value.dtype)) == value.dtype:
        return {TAG: "index", "dtype": str(value.dtype), "values": to_json(value.tolist())}
    if kind is Architecture:
        return {TAG: "Architecture", "value": value.to_dict()}
    if kind is History:
        return {TAG: "History", "rows": to_json(value.rows)}
    if _DATACLASSES.get(kind.__name__) is kind:
        fields = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TAG: kind.__name__, "fields": fields}
    raise Unrepresentable(value)


def from_json(data: Any) -> Any:
    """The value :func:`to_json` wrote."""
    if isinstance(data, list):
        return [from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    if TAG not in data:
        return {k: from_json(v) for k, v in data.items()}
    tag = data[TAG]
    if tag == "float":
        return float(data["value"])
    if tag == "tuple":
        return tuple(from_json(v) for v in data["items"])
    if tag == "dict":
        return {from_json(k): from_json(v) for k, v in data["items"]}
    if tag == "numpy":
        return np.dtype(data["dtype"]).type(from_json(data["value"]))
    if tag == "ndarray":
        values = [from_json(v) for v in data["values"]]
        return _array(np.dtype(data["dtype"]), values, data["shape"])
    if tag == "index":
        return pd.Index(from_json(data["values"]), dtype=data["dtype"])
    if tag == "Architecture":
        return Architecture.from_dict(data["value"])
    if tag == "History":
        return History(from_json(data["rows"]))
    if tag in _DATACLASSES:
        return _DATACLASSES[tag](**{k: from_json(v) for k, v in data["fields"].items()})
    raise ValueError(f"unknown value tag {tag!r} in {JSON_NAME}")


def _array(dtype: np.dtype, values: list, shape: list[int]) -> np.ndarray:
    if dtype.kind != "O":
        return np.array(values, dtype=dtype).reshape(shape)
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # item by item: lists stay objects, not dimensions
        array[i] = value
    return array.reshape(shape)


# ---- the preprocessor ------------------------------------------------------------------
def preprocessor_to_json(preprocessor: TabularPreprocessor) -> dict[str, Any]:
    """The fitted state of ``preprocessor``; a ``ValueError`` naming the column whose
    categories JSON cannot hold."""
    state = dict(vars(preprocessor))
    quantile = state.pop("quantile_", None)
    categories = state.pop("categories_", [])
    out = {name: _required(value, f"preprocessor_.{name}") for name, value in state.items()}
    out["categories_"] = [
        _categories_to_json(preprocessor, j, index)
        for j, index in zip(preprocessor.categorical, categories)
    ]
    out["quantile_"] = None if quantile is None else {
        "params": _required(quantile.get_params(), "the QuantileTransformer's parameters"),
        "fitted": {
            name: _required(value, f"QuantileTransformer.{name}")
            for name, value in vars(quantile).items()
            if name.endswith("_") and not name.startswith("_")
        },
    }
    return out


def preprocessor_from_json(data: dict[str, Any]) -> TabularPreprocessor:
    """The preprocessor :func:`preprocessor_to_json` described, fitted as it was."""
    preprocessor = TabularPreprocessor.__new__(TabularPreprocessor)
    for name, value in data.items():
        if name != "quantile_":
            setattr(preprocessor, name, from_json(value))
    preprocessor.quantile_ = None
    if data.get("quantile_") is not None:
        quantile = QuantileTransformer(**from_json(data["quantile_"]["params"]))
        for name, value in data["quantile_"]["fitted"].items():
            setattr(quantile, name, from_json(value))
        preprocessor.quantile_ = quantile
    return preprocessor


def _categories_to_json(preprocessor: TabularPreprocessor, j: int, index: pd.Index) -> Any:
    try:
        return to_json(index)
    except Unrepresentable as error:
        names = getattr(preprocessor, "names", None)
        column = repr(names[j]) if names is not None and j < len(names) else f"{j}"
        raise ValueError(
            f"column {column} has categories of a type the JSON format cannot store"
            f" ({error}; it stores strings, integers, floats and booleans); save this"
            " estimator with pickle or joblib instead (and load such files only from"
            " sources you trust), or turn the column into strings before fit"
        ) from None


def _required(value: Any, what: str) -> Any:
    try:
        return to_json(value)
    except Unrepresentable as error:
        raise ValueError(
            f"{what} holds a {error}, which the JSON format cannot store; save this estimator"
            " with pickle or joblib instead (and load such files only from sources you trust)"
        ) from None


# ---- the networks ----------------------------------------------------------------------
def module_to_json(module: nn.Module) -> dict[str, Any]:
    """How ``module`` (an :class:`EnsembleModel` of networks, nested when bagged, or one
    network) is built again: the architectures and the ensemble weights."""
    architecture = getattr(module, "architecture", None)
    if type(module) is EnsembleModel:
        return {
            "type": "ensemble",
            "task": {"kind": module.task.kind, "d_out": module.task.d_out},
            "weights": [to_json(float(w)) for w in module.weights],
            "architecture": None if architecture is None else architecture.to_dict(),
            "members": [module_to_json(member) for member in module.members],
        }
    if (
        isinstance(architecture, Architecture)
        and type(module) is NETWORK_BUILDERS.get(architecture.backbone)
    ):
        return {"type": "network", "architecture": architecture.to_dict()}
    raise ValueError(
        f"model_ holds a {type(module).__name__}, which save cannot build again; save this"
        " estimator with pickle or joblib instead (and load such files only from sources"
        " you trust)"
    )


def module_from_json(spec: dict[str, Any], shapes: DataShapes) -> nn.Module:
    """The module :func:`module_to_json` described, freshly initialised."""
    if spec["type"] == "network":
        return build_network(Architecture.from_dict(spec["architecture"]), shapes)
    if spec["type"] != "ensemble":
        raise ValueError(f"unknown module type {spec['type']!r} in {JSON_NAME}")
    weights = [float(from_json(w)) for w in spec["weights"]]
    members = [module_from_json(member, shapes) for member in spec["members"]]
    model = EnsembleModel(members, weights, task=Task(**spec["task"]))
    model.weights = tuple(weights)  # the saved ones, not normalised a second time
    if spec["architecture"] is not None:
        model.architecture = Architecture.from_dict(spec["architecture"])
    return model


def bin_counts(model: nn.Module) -> list[int] | None:
    """Bins per numeric feature of the piecewise-linear embeddings in ``model`` (None when
    it has none). Their edges are buffers of the state dict; only the counts shape it."""
    counts = None
    for module in model.modules():
        if isinstance(module, PiecewiseLinearEmbeddings):
            impl = module.impl
            n_features, max_bins = impl.weight.shape
            found = [max_bins] * n_features if impl.mask is None else impl.mask.sum(1).tolist()
            if counts is not None and found != counts:
                raise ValueError("model_'s networks were built on different bins")
            counts = found
    return counts


def _placeholder_bins(counts: list[int] | None) -> tuple[torch.Tensor, ...] | None:
    """Edges with ``counts`` bins: what builds the same modules; the saved buffers replace
    them."""
    if counts is None:
        return None
    return tuple(torch.arange(n + 1, dtype=torch.float32) for n in counts)


# ---- the estimator ---------------------------------------------------------------------
def save(estimator: BaseTabNAS, path: str | os.PathLike) -> Path:
    """Write the fitted ``estimator`` to ``path`` (one zip file: ``model.json`` and
    ``weights.pt``) and return the path.

    Refuses an unfitted estimator, a subclass, and fitted state JSON cannot hold (naming
    what); constructor parameters and descriptive attributes without a JSON form are left
    out with a warning.
    """
    check_is_fitted(estimator)
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise TypeError(
            f"save writes {' and '.join(ESTIMATORS)} only, got {type(estimator).__qualname__};"
            " save it with pickle or joblib instead"
        )
    params, left_out_params = _lenient(estimator.get_params(deep=False))
    fitted = {
        key: value for key, value in vars(estimator).items()
        if key.endswith("_") and not key.startswith("__") and key not in ("model_", "preprocessor_")
    }
    attributes, left_out = _lenient(fitted, required=PREDICTION_ATTRIBUTES)
    notes = [
        f"{what} {', '.join(names)} ({then})"
        for what, names, then in (
            ("parameters", left_out_params, "they load with their defaults"),
            ("attributes", left_out, "absent after load"),
        )
        if names
    ]
    if notes:
        warnings.warn(
            f"{name}.save leaves out what has no JSON form, which prediction does not read: "
            + "; ".join(notes),
            UserWarning,
            stacklevel=3,
        )
    model = estimator.model_
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tabnas_version": __version__,
        "torch_version": torch.__version__,
        "estimator": name,
        "params": params,
        "left_out_params": left_out_params,
        "attributes": attributes,
        "left_out_attributes": left_out,
        "preprocessor": preprocessor_to_json(estimator.preprocessor_),
        "model": {
            "shapes": {
                "n_num_features": estimator.preprocessor_.n_num_features,
                "cat_cardinalities": list(estimator.preprocessor_.cat_cardinalities),
                "d_out": estimator._task().d_out,
                "bin_counts": bin_counts(model),
            },
            "module": module_to_json(model),
        },
    }
    text = json.dumps(document, allow_nan=False, indent=1)
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    members = {JSON_NAME: text.encode("utf-8"), WEIGHTS_NAME: weights.getvalue()}
    return _write_zip(Path(path), members)


def load(path: str | os.PathLike) -> BaseTabNAS:
    """The estimator :func:`save` wrote to ``path``, ready to predict; nothing in the file
    is unpickled (the tensors are read with ``torch.load(..., weights_only=True)``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved tabnas model at {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{str(path)!r} is not a tabnas model file (a zip of {JSON_NAME} and"
            f" {WEIGHTS_NAME} written by est.save)"
        )
    with zipfile.ZipFile(path) as archive:
        missing = {JSON_NAME, WEIGHTS_NAME} - set(archive.namelist())
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a tabnas model file: it lacks {', '.join(sorted(missing))}"
            )
        document = json.loads(archive.read(JSON_NAME).decode("utf-8"))
        weights = archive.read(WEIGHTS_NAME)
    _check_format(document, path)
    cls = ESTIMATORS.get(document.get("estimator"))
    if cls is None:
        raise ValueError(
            f"{str(path)!r} holds a {document.get('estimator')!r}, which this tabnas does not know;"
            f" known: {sorted(ESTIMATORS)}"
        )
    params = from_json(document["params"])
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(
            f"{str(path)!r} was saved by tabnas {document.get('tabnas_version')} with"
            f" parameters this tabnas ({__version__}) does not have: {', '.join(unknown)};"
            " upgrade tabnas to load it"
        )
    estimator = cls(**params)
    for key, value in document["attributes"].items():
        setattr(estimator, key, from_json(value))
    estimator.preprocessor_ = preprocessor_from_json(document["preprocessor"])
    estimator.model_ = _model_from_json(document["model"], weights, path)
    return estimator


def _model_from_json(data: dict[str, Any], weights: bytes, path: Path) -> nn.Module:
    shapes = data["shapes"]
    data_shapes = DataShapes(
        n_num_features=shapes["n_num_features"],
        cat_cardinalities=tuple(shapes["cat_cardinalities"]),
        d_out=shapes["d_out"],
        bins=_placeholder_bins(shapes["bin_counts"]),
    )
    with torch.random.fork_rng(devices=[]):  # building initialises: keep the caller's seed
        model = module_from_json(data["module"], data_shapes)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{WEIGHTS_NAME} of {str(path)!r} does not fit the networks {JSON_NAME} describes:"
            f" {error}"
        ) from None
    return model.eval()


def _check_format(document: Any, path: Path) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a tabnas model file ({JSON_NAME} has no format)")
    version = document.get("format_version")
    if type(version) is not int or version < 1:
        raise ValueError(f"{str(path)!r} has an unknown format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} was written in format version {version} (by tabnas"
            f" {document.get('tabnas_version')}); this tabnas ({__version__}) reads format"
            f" versions up to {FORMAT_VERSION}: upgrade tabnas to load it"
        )


def _lenient(
    values: dict[str, Any], *, required: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """``values`` in JSON form, and the names left out for having none (a ``ValueError``
    for those in ``required``)."""
    out, left_out = {}, []
    for key, value in values.items():
        if key in required:
            out[key] = _required(value, key)
            continue
        try:
            out[key] = to_json(value)
        except Unrepresentable:
            left_out.append(key)
    return out, left_out


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """Write ``members`` to ``path`` through a temporary file: a failed write leaves no
    half file, and an earlier one at ``path`` stays until the new one is complete."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {str(path)!r}: its folder does not exist")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with zipfile.ZipFile(temporary, "x") as archive:  # the usual permissions, unlike mkstemp
            for name, data in members.items():
                archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
