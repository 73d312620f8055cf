"""The local index loader honours every field of the index format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks.datasets import load_local
from benchmarks.protocol import prepare

from .conftest import write_index


@pytest.fixture
def full_index(tmp_path):
    train = pd.DataFrame(
        {
            "row_id": range(8),
            "size": ["1.5", "?", "2.5", "3.0", "NA", "4.5", "5.0", "6.0"],
            "colour": ["red", "NA", "", "blue", "red", "blue", "red", "None"],
            "target": ["yes", "no", "yes", "no", "yes", "no", "yes", "no"],
        }
    )
    test = pd.DataFrame(
        {
            "row_id": [8, 9, 10],
            "size": ["7.0", "?", "1.0"],
            "colour": ["green", "red", "?"],
            "target": ["yes.", "no.", "maybe"],
        }
    )
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return write_index(
        tmp_path,
        [
            {
                "name": "every_field",
                "file": "train.csv",
                "test_file": "test.csv",
                "target": "target",
                "task": "multiclass",
                "na_values": ["?", "NA"],
                "drop_columns": ["row_id"],
                "categorical_columns": ["colour"],
                "label_map_test": {"yes.": "yes", "no.": "no"},
            }
        ],
    )


def test_every_index_field(full_index):
    data = load_local("every_field", full_index)
    assert list(data.X.columns) == ["size", "colour"]  # drop_columns
    assert data.X["size"].dtype.kind == "f" and data.X["size"].isna().sum() == 2  # na_values
    assert isinstance(data.X["colour"].dtype, pd.CategoricalDtype)  # categorical_columns
    # keep_default_na=False: "None" and "" stay values, only the listed tokens are missing
    assert data.X["colour"].isna().sum() == 1
    assert "None" in set(data.X["colour"].dropna())
    assert len(data.X_test) == 3 and data.X_test["size"].isna().sum() == 1  # test_file
    assert list(data.y_test) == ["yes", "no", "maybe"]  # label_map_test
    assert data.X_test["colour"].isna().sum() == 1


def test_prepare_uses_the_predefined_test_split(full_index):
    prepared = prepare(load_local("every_field", full_index), seed=0)
    assert prepared.sizes == {"n_train": 6, "n_val": 2, "n_test": 3}
    # labels are encoded on all rows: "maybe" (test only) is a known class
    assert prepared.classes == ["maybe", "no", "yes"]
    assert sorted(prepared.y_test.tolist()) == [0, 1, 2]
    # one category set for train and test ("green" only in test)
    assert list(prepared.X_train["colour"].cat.categories) == list(
        prepared.X_test["colour"].cat.categories
    )
    assert "green" in set(prepared.X_test["colour"].cat.categories)


def test_unknown_name_and_bad_columns(tmp_path, full_index):
    with pytest.raises(KeyError, match="available: \\['every_field'\\]"):
        load_local("missing", full_index)
    bad = write_index(
        tmp_path, [{"name": "bad", "file": "train.csv", "target": "nope", "task": "binclass"}]
    )
    with pytest.raises(ValueError, match="no column\\(s\\) \\['nope'\\]"):
        load_local("bad", bad)


def test_copied_datasets_load_the_same_from_their_own_folder(tmp_path, full_index):
    from benchmarks.datasets import copy_datasets, main

    folder = tmp_path / "bundle"
    index = copy_datasets(["every_field"], folder, full_index)
    assert sorted(p.name for p in folder.iterdir()) == ["index.json", "test.csv", "train.csv"]
    original, copied = load_local("every_field", full_index), load_local("every_field", index)
    pd.testing.assert_frame_equal(original.X, copied.X)
    pd.testing.assert_frame_equal(original.X_test, copied.X_test)
    assert list(original.y_test) == list(copied.y_test)
    main(["copy", "every_field", "--to", str(folder), "--index", str(full_index)])  # again
    assert [e["name"] for e in json.loads(index.read_text())["datasets"]] == ["every_field"]
    with pytest.raises(KeyError, match="not in the index"):
        copy_datasets(["nope"], folder, full_index)
