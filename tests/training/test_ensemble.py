import math

import pytest
import torch
from torch import nn

from tabnas.training.ensemble import EnsembleModel, greedy_ensemble
from tabnas.training.loop import Task

CLS = Task("classification", 2)
REG = Task("regression", 1)


def test_one_round_is_plain_selection_of_the_best_candidate():
    y = torch.tensor([0, 1, 1, 0])
    good = torch.tensor([[2.0, -2.0], [-2.0, 2.0], [-1.0, 1.0], [1.0, -1.0]])
    selection = greedy_ensemble([-good, good], y, CLS, size=1)
    assert selection.weights == (0.0, 1.0)


def test_complementary_candidates_are_mixed_and_beat_each_alone():
    y = torch.zeros(100)
    # each is off by one, in opposite directions
    high, low = torch.ones(100, 1), -torch.ones(100, 1)
    selection = greedy_ensemble([high, low], y, REG, size=10)
    assert selection.weights == (0.5, 0.5)
    assert selection.val_loss[-1] == 0.0 < selection.val_loss[0] == 1.0
    assert math.isclose(sum(selection.weights), 1.0)


def test_rounds_never_make_the_validation_loss_worse_than_the_best_single():
    torch.manual_seed(0)
    y = torch.randn(200)
    outputs = [(y + torch.randn(200) * s).unsqueeze(-1) for s in (0.5, 0.6, 0.7)]
    selection = greedy_ensemble(outputs, y, REG, size=20)
    best_single = min(float(((o.squeeze(-1) - y) ** 2).mean()) for o in outputs)
    assert selection.val_loss[0] == pytest.approx(best_single)
    assert min(selection.val_loss) < best_single


def test_the_best_round_is_kept_when_later_rounds_only_add_noise():
    y = torch.zeros(50)
    exact, off = torch.zeros(50, 1), torch.ones(50, 1)
    selection = greedy_ensemble([off, exact], y, REG, size=5)
    assert selection.weights == (0.0, 1.0) and selection.val_loss[0] == 0.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least one candidate"):
        greedy_ensemble([], torch.zeros(3), REG, size=3)
    with pytest.raises(ValueError, match="size must be"):
        greedy_ensemble([torch.zeros(3, 1)], torch.zeros(3), REG, size=0)


class _Fixed(nn.Module):
    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, x_num, x_cat):
        return self.output


def test_the_ensemble_model_averages_probabilities_of_members_and_of_their_members():
    a = torch.tensor([[3.0, 0.0]])
    b = torch.tensor([[[0.0, 1.0], [0.0, 3.0]]])  # a TabM-like member with k = 2
    model = EnsembleModel([_Fixed(a), _Fixed(b), _Fixed(-a)], [0.25, 0.75, 0.0], task=CLS)
    assert len(model.members) == 2  # weight zero is dropped
    expected = 0.25 * a.softmax(-1) + 0.75 * b.softmax(-1).mean(dim=1)
    out = model(torch.zeros(1, 1), torch.zeros(1, 0, dtype=torch.long))
    assert torch.allclose(out.softmax(-1), expected)
    reg = EnsembleModel(
        [_Fixed(torch.tensor([[1.0]])), _Fixed(torch.tensor([[[2.0], [4.0]]]))],
        [0.5, 0.5],
        task=REG,
    )
    assert reg(None, None).tolist() == [[2.0]]
    assert "0.50 x" in repr(reg)
    with pytest.raises(ValueError, match="positive weight"):
        EnsembleModel([_Fixed(a)], [0.0], task=CLS)


def test_members_train_on_the_mean_of_their_losses_not_the_loss_of_the_mean():
    output = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])  # two members that disagree
    y = torch.tensor([0])
    members = [CLS.loss(output[:, i], y) for i in range(2)]
    assert torch.isclose(CLS.loss(output, y), (members[0] + members[1]) / 2)
    combined = CLS.combine(output)
    assert torch.allclose(combined.softmax(-1), output.softmax(-1).mean(dim=1))
    assert CLS.metrics(output, y)["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(combined, y))
    )
    assert REG.combine(torch.tensor([[[1.0], [3.0]]])).tolist() == [[2.0]]
