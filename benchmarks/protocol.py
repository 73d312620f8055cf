"""The one split protocol and the scores every model is judged by.

- **Splits** (Gorishniy et al. 2021): seeded train / val / test of 64 / 16 / 20 % of the rows;
  when the dataset has a predefined test split, that is the test split and the rest is
  split 80 / 20 into train and val. Classification splits are stratified.
- **Cap**: optionally at most ``max_train_rows`` training rows, drawn stratified so that
  every class of the training split keeps at least one row (a plain random cap can drop a
  class of 10 rows out of 58,000). Val and test are never capped.
- **Labels**: classes are encoded on *all* rows of the dataset (train and test), so a label
  that only occurs in val or test is still known.
- The split depends on the dataset's labels, the seed and the cap only: every model of a
  (dataset, seed) gets the same rows.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.datasets import LocalDataset

TEST_FRACTION = 0.2
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """Row positions (into the dataset's rows, predefined test rows last) of each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def fingerprint(self) -> str:
        """A short hash of the three row sets: equal for equal splits."""
        digest = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            digest.update(np.asarray(part, np.int64).tobytes())
            digest.update(b"|")
        return digest.hexdigest()[:16]


@dataclass
class PreparedData:
    """A dataset split for one seed, ready for a model's ``fit(X_train, y_train, X_val, y_val)``.

    ``y_*`` are class codes ``0..n_classes-1`` (classification) or floats in the original
    units (regression). ``classes`` are the original labels, as text.
    """

    name: str
    task: str
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    classes: list[str] | None
    categorical_columns: list[str]
    n_dropped_by_cap: int = 0

    split_id: str = ""

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    @property
    def sizes(self) -> dict[str, int]:
        return {"n_train": len(self.X_train), "n_val": len(self.X_val), "n_test": len(self.X_test)}


def encode_labels(y: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes ``0..k-1`` for the labels of ``y`` (sorted) and the labels as text."""
    codes, uniques = pd.factorize(y.astype(str), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _apportion(
    counts: np.ndarray, total: int, low: np.ndarray, high: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``counts`` with ``low <= share <= high``.

    Largest-remainder rounding; ties are broken at random (seeded by ``rng``).
    """
    if not low.sum() <= total <= high.sum():
        raise ValueError(
            f"cannot place {total} rows within the per-class bounds {low.tolist()}..{high.tolist()}"
        )
    quota = total * counts / max(counts.sum(), 1)
    share = np.clip(np.floor(quota).astype(np.int64), low, high)
    tiebreak = rng.permutation(len(counts))
    while (gap := total - int(share.sum())) != 0:
        remainder = quota - share
        if gap > 0:
            candidates = np.flatnonzero(share < high)
            order = candidates[np.lexsort((tiebreak[candidates], -remainder[candidates]))]
            share[order[:gap]] += 1
        else:
            candidates = np.flatnonzero(share > low)
            order = candidates[np.lexsort((tiebreak[candidates], remainder[candidates]))]
            share[order[:-gap]] -= 1
    return share


def holdout(
    rows: np.ndarray, fraction: float, rng: np.random.Generator, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (kept, held out) with ``round(fraction * n)`` rows held out.

    With ``labels`` (the labels of ``rows``) the split is stratified, and every class keeps
    at least one row on the kept side.
    """
    n_held = round(fraction * len(rows))
    if labels is None:
        order = rng.permutation(len(rows))
        return np.sort(rows[order[n_held:]]), np.sort(rows[order[:n_held]])
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    high = np.maximum(counts - 1, 0)
    n_held = min(n_held, int(high.sum()))
    shares = _apportion(counts, n_held, np.zeros_like(counts), high, rng)
    kept, held = [], []
    for c in range(len(classes)):
        members = rows[inverse == c]
        members = members[rng.permutation(len(members))]
        held.append(members[: shares[c]])
        kept.append(members[shares[c] :])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def cap_rows(
    rows: np.ndarray, cap: int, rng: np.random.Generator, labels: np.ndarray | None = None
) -> np.ndarray:
    """At most ``cap`` of ``rows``; with ``labels``, stratified and keeping every class."""
    if cap < 1:
        raise ValueError(f"max_train_rows must be at least 1, got {cap}")
    if len(rows) <= cap:
        return rows
    if labels is None:
        return np.sort(rng.choice(rows, size=cap, replace=False))
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) > cap:
        raise ValueError(
            f"max_train_rows={cap} is smaller than the number of classes ({len(classes)});"
            " every class must keep a training row"
        )
    shares = _apportion(counts, cap, np.ones_like(counts), counts, rng)
    kept = [
        rng.choice(rows[inverse == c], size=shares[c], replace=False) for c in range(len(classes))
    ]
    return np.sort(np.concatenate(kept))


def make_split(
    n_rows: int,
    *,
    seed: int,
    labels: np.ndarray | None = None,
    n_test_predefined: int = 0,
    max_train_rows: int | None = None,
) -> Split:
    """The protocol's split of ``n_rows`` rows (the last ``n_test_predefined`` are the
    test split)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(n_rows)
    if n_test_predefined:
        rest, test = rows[: n_rows - n_test_predefined], rows[n_rows - n_test_predefined :]
    else:
        rest, test = holdout(rows, TEST_FRACTION, rng, labels)
    train, val = holdout(rest, VAL_FRACTION, rng, None if labels is None else labels[rest])
    if max_train_rows is not None:
        train = cap_rows(train, max_train_rows, rng, None if labels is None else labels[train])
    return Split(train=train, val=val, test=test)


def _unify_columns(X: pd.DataFrame, categorical: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Categorical and text columns as ``category`` with one category set for all rows."""
    X = X.copy()
    categorical = list(categorical)
    for column in X.columns:
        dtype = X[column].dtype
        if column in categorical or not (
            pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        ):
            values = (
                X[column].astype(object) if isinstance(dtype, pd.CategoricalDtype) else X[column]
            )
            X[column] = values.astype("category")
            if column not in categorical:
                categorical.append(column)
    return X, categorical


def prepare(dataset: LocalDataset, *, seed: int, max_train_rows: int | None = None) -> PreparedData:
    """Split ``dataset`` by the protocol for ``seed``; rows with a missing target are dropped."""
    if dataset.X_test is not None:
        X = pd.concat([dataset.X, dataset.X_test], ignore_index=True)
        y = pd.concat([dataset.y, dataset.y_test], ignore_index=True)
        is_test = np.r_[np.zeros(len(dataset.X), bool), np.ones(len(dataset.X_test), bool)]
    else:
        X, y = dataset.X.reset_index(drop=True), dataset.y.reset_index(drop=True)
        is_test = np.zeros(len(X), bool)
    known = y.notna().to_numpy()
    X, y, is_test = X[known].reset_index(drop=True), y[known].reset_index(drop=True), is_test[known]
    X, categorical = _unify_columns(X, dataset.categorical_columns)

    classification = dataset.task != "regression"
    classes = None
    if classification:
        target, classes = encode_labels(y)
    else:
        target = pd.to_numeric(y).to_numpy(np.float64)
    split = make_split(
        len(X),
        seed=seed,
        labels=target if classification else None,
        n_test_predefined=int(is_test.sum()),
        max_train_rows=max_train_rows,
    )
    n_dropped = len(X) - len(split.test) - len(split.train) - len(split.val)

    def part(rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        return X.iloc[rows].reset_index(drop=True), target[rows]

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = map(
        part, (split.train, split.val, split.test)
    )
    return PreparedData(
        name=dataset.name,
        task=dataset.task,
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=y_test,
        classes=classes,
        categorical_columns=categorical,
        n_dropped_by_cap=n_dropped,
        split_id=split.fingerprint(),
    )


def scores(
    task: str,
    y_true: np.ndarray,
    *,
    proba: np.ndarray | None = None,
    pred: np.ndarray | None = None,
) -> dict[str, float | None]:
    """``accuracy``, ``roc_auc`` (binary), ``log_loss`` from class probabilities;
    ``rmse``, ``r2`` from regression predictions (in the target's units)."""
    from sklearn.metrics import accuracy_score, log_loss, r2_score, roc_auc_score

    if task == "regression":
        if pred is None:
            raise ValueError("regression scores need pred")
        residual = np.asarray(y_true, np.float64) - np.asarray(pred, np.float64)
        return {"rmse": float(math.sqrt(np.mean(residual**2))), "r2": float(r2_score(y_true, pred))}
    if proba is None:
        raise ValueError("classification scores need proba")
    proba = np.clip(np.asarray(proba, np.float64), 1e-15, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    out: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y_true, proba.argmax(axis=1))),
        "log_loss": float(log_loss(y_true, proba, labels=np.arange(proba.shape[1]))),
    }
    if task == "binclass":
        out["roc_auc"] = (
            float(roc_auc_score(y_true, proba[:, 1])) if len(np.unique(y_true)) == 2 else None
        )
    return out
