"""The split protocol: 64/16/20, stratified, a cap that keeps rare classes, same rows for
every model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.datasets import LocalDataset
from benchmarks.protocol import cap_rows, encode_labels, make_split, prepare, scores

SHUTTLE_COUNTS = [45586, 50, 171, 8903, 3267, 10, 13]  # 58,000 rows; classes of 10 and 13


def shuttle_like() -> np.ndarray:
    return np.repeat(np.arange(len(SHUTTLE_COUNTS)), SHUTTLE_COUNTS)


def test_sizes_are_64_16_20_and_disjoint():
    split = make_split(1000, seed=3)
    assert (len(split.train), len(split.val), len(split.test)) == (640, 160, 200)
    union = np.concatenate([split.train, split.val, split.test])
    assert len(np.unique(union)) == 1000


def test_stratified():
    labels = np.repeat([0, 1, 2], [700, 250, 50])
    split = make_split(len(labels), seed=0, labels=labels)
    for part, size in ((split.train, 640), (split.val, 160), (split.test, 200)):
        assert len(part) == size
        share = np.bincount(labels[part], minlength=3) / len(part)
        np.testing.assert_allclose(share, [0.70, 0.25, 0.05], atol=0.01)


def test_cap_keeps_every_class_of_a_shuttle_like_target():
    labels = shuttle_like()
    split = make_split(len(labels), seed=0, labels=labels, max_train_rows=1000)
    assert len(split.train) == 1000
    counts = np.bincount(labels[split.train], minlength=7)
    assert (counts >= 1).all(), counts
    # a plain random cap of 1000 rows usually drops the rare classes; this one is stratified
    np.testing.assert_allclose(counts / 1000, np.array(SHUTTLE_COUNTS) / 58000, atol=0.01)
    # val and test are not capped
    assert len(split.test) == 11600 and len(split.val) == 9280


def test_cap_rejects_fewer_rows_than_classes():
    with pytest.raises(ValueError, match="smaller than the number of classes"):
        cap_rows(np.arange(20), 2, np.random.default_rng(0), labels=np.arange(20) % 4)


def test_every_split_keeps_a_training_row_per_class():
    labels = np.r_[np.zeros(100, int), [1], [2, 2]]
    split = make_split(len(labels), seed=1, labels=labels)
    assert set(labels[split.train]) == {0, 1, 2}


def test_identical_splits_for_every_model_and_seed_dependence():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "c": pd.Categorical(rng.choice(list("xyz"), 300))})
    y = pd.Series(rng.choice(["p", "q", "r"], 300))
    dataset = LocalDataset("d", "multiclass", X, y, None, None, {}, categorical_columns=["c"])
    one, two = (
        prepare(dataset, seed=4, max_train_rows=100),
        prepare(dataset, seed=4, max_train_rows=100),
    )
    other = prepare(dataset, seed=5, max_train_rows=100)
    assert one.split_id == two.split_id != other.split_id
    pd.testing.assert_frame_equal(one.X_test, two.X_test)
    assert one.sizes == {"n_train": 100, "n_val": 48, "n_test": 60}


def test_predefined_test_split_is_kept_and_rest_split_80_20():
    X = pd.DataFrame({"a": np.arange(100.0)})
    dataset = LocalDataset(
        "d",
        "regression",
        X[:80],
        pd.Series(np.arange(80.0)),
        X[80:],
        pd.Series(np.arange(80.0, 100.0)),
        {},
    )
    prepared = prepare(dataset, seed=0)
    assert prepared.sizes == {"n_train": 64, "n_val": 16, "n_test": 20}
    assert sorted(prepared.X_test["a"]) == list(np.arange(80.0, 100.0))


def test_labels_and_scores():
    codes, classes = encode_labels(pd.Series(["b", "a", "c", "a"]))
    assert classes == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]
    s = scores(
        "binclass", np.array([0, 1, 1]), proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    )
    assert s["accuracy"] == pytest.approx(2 / 3) and s["roc_auc"] == 1.0 and s["log_loss"] > 0
    r = scores("regression", np.array([1.0, 2.0, 3.0]), pred=np.array([1.0, 2.0, 5.0]))
    assert r["rmse"] == pytest.approx(np.sqrt(4 / 3)) and r["r2"] == pytest.approx(-1.0)
