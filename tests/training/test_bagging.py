"""Cross-validation bagging of the final candidates."""

import pytest
import torch

from tabnas.devices import resolve_device
from tabnas.nas.space import Architecture, MLPSettings, SearchSpace
from tabnas.training.data import TensorData, fold_assignment
from tabnas.training.ensemble import EnsembleModel
from tabnas.training.loop import Budget, Task, predict
from tabnas.training.pipeline import FitPlan, search_select_retrain
from tabnas.training.search import SearchConfig


def test_folds_partition_the_rows_evenly_and_keep_class_proportions():
    y = torch.tensor([0] * 30 + [1] * 12 + [2] * 5)
    folds = fold_assignment(y, 4, generator=torch.Generator().manual_seed(0), stratify=True)
    assert folds.shape == y.shape and set(folds.tolist()) == {0, 1, 2, 3}
    sizes = torch.bincount(folds)
    assert int(sizes.max() - sizes.min()) <= 1
    for label in (0, 1, 2):
        per_fold = torch.bincount(folds[y == label], minlength=4)
        assert int(per_fold.max() - per_fold.min()) <= 1  # each class dealt evenly
    again = fold_assignment(y, 4, generator=torch.Generator().manual_seed(0), stratify=True)
    assert torch.equal(folds, again)
    plain = fold_assignment(
        torch.randn(10), 3, generator=torch.Generator().manual_seed(1), stratify=False
    )
    assert sorted(torch.bincount(plain).tolist()) == [3, 3, 4]


@pytest.mark.parametrize("n_folds", [1, 11])
def test_impossible_fold_counts_are_refused(n_folds):
    with pytest.raises(ValueError, match="n_folds"):
        fold_assignment(torch.zeros(10), n_folds, generator=torch.Generator(), stratify=False)


def test_plan_refuses_one_fold():
    with pytest.raises(ValueError, match="bag_folds"):
        FitPlan(
            space=SearchSpace(), search=SearchConfig(batch_size=8, lr=1e-3, weight_decay=0.0),
            strategy="darts", selection="pt", selection_criterion="score", max_epochs=1, patience=1,
            bag_folds=1,
        )


def test_bagged_candidates_are_weighted_on_out_of_fold_outputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 3, generator=g)
    y = x[:, 0] - 0.5 * x[:, 1]
    data = TensorData(x, torch.zeros(90, 0, dtype=torch.long), y)
    architecture = Architecture.tabm(
        MLPSettings(n_blocks=1, d_block=16, k=2), num_embedding="linear"
    )
    plan = FitPlan(
        space=SearchSpace(), search=SearchConfig(batch_size=16, lr=1e-3, weight_decay=0.0),
        strategy="darts", selection="pt", selection_criterion="score", max_epochs=3, patience=2,
        architecture=architecture, bag_folds=3,
    )
    task = Task("regression", 1)
    device = resolve_device("cpu")
    result = search_select_retrain(
        plan, weight_data=data[:35], arch_data=data[35:70], val_data=data[70:],
        n_num_features=3, cat_cardinalities=[], task=task, device=device, seed=0,
        budget=Budget(None),
    )
    (member,) = result.members
    assert result.search_info["bag_folds"] == 3 and len(member.results) == 3
    bag = member.model
    assert isinstance(bag, EnsembleModel) and len(bag.members) == 3 and bag.weights == (1 / 3,) * 3
    assert {r["fold"] for r in result.history.phase("retrain")} == {0, 1, 2}
    # the held-out outputs cover train + val, each row predicted by one fold model: the
    # one whose fold it is (30 rows each)
    pool_y = torch.cat([data[:70].y, data[70:].y])
    predictions = torch.stack([predict(m, data, device) for m in bag.members])  # (3, 90, k, 1)
    matches = (predictions - member.held_out).abs().flatten(2).amax(-1) < 1e-6  # (3, 90)
    assert matches.sum(0).eq(1).all() and matches.sum(1).tolist() == [30, 30, 30]
    assert member.val_metrics == task.metrics(member.held_out, pool_y)
    assert result.search_info["ensemble_val"] == pytest.approx(member.val_metrics)
