"""Batching, the epoch loop, early stopping, history and optimizer groups."""

import pytest
import torch
from torch import nn

from tabnas.devices import resolve_device
from tabnas.training.callbacks import EarlyStopping, EpochState
from tabnas.training.data import Cycle, TensorData, batch_indices
from tabnas.training.history import History
from tabnas.training.loop import Deadline, Task, evaluate, fit_network, predict
from tabnas.training.optim import make_parameter_groups

CPU = resolve_device("cpu")


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.norm = nn.LayerNorm(1)

    def forward(self, x_num, x_cat):
        return self.linear(x_num)


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return TensorData(x, torch.zeros(n, 0, dtype=torch.long), 3 * x[:, 0] - x[:, 1])


def test_batches_cover_every_row_once_and_never_leave_one_alone():
    for n, size in [(17, 16), (33, 8), (5, 16), (1, 4)]:
        batches = batch_indices(n, size, generator=torch.Generator().manual_seed(0))
        rows = torch.cat(batches).sort().values
        assert torch.equal(rows, torch.arange(n))
        assert n == 1 or all(len(b) > 1 for b in batches)


def test_batches_are_the_same_whatever_device_they_are_moved_to():
    on_cpu = batch_indices(50, 16, generator=torch.Generator().manual_seed(3))
    moved = batch_indices(
        50, 16, generator=torch.Generator().manual_seed(3), device=torch.device("cpu")
    )
    assert all(torch.equal(a, b) for a, b in zip(on_cpu, moved, strict=True))


def test_cycle_keeps_its_place_and_reshuffles_each_pass():
    cycle = Cycle(data(8), 4, torch.Generator().manual_seed(0))
    first_pass = [next(cycle).y for _ in range(2)]
    second_pass = [next(cycle).y for _ in range(2)]
    assert torch.equal(torch.cat(first_pass).sort().values, torch.cat(second_pass).sort().values)
    assert not torch.equal(torch.cat(first_pass), torch.cat(second_pass))


def test_fit_network_restores_the_best_epoch_and_records_history():
    torch.manual_seed(0)
    model = Linear()
    task = Task(kind="regression", d_out=1)
    history = History()
    result = fit_network(
        model, train=data(64, 0), val=data(32, 1), task=task,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05), max_epochs=40, batch_size=16,
        generator=torch.Generator().manual_seed(0), config=CPU, history=history,
        deadline=Deadline(None), callbacks=[EarlyStopping(3)],
    )
    rows = history.phase("retrain")
    assert len(rows) == result.n_epochs
    best = max(range(len(rows)), key=lambda i: rows[i]["val_score"])
    assert result.best_epoch == best
    # the weights in the model are those of the best epoch
    assert abs(evaluate(model, data(32, 1), task, CPU)["rmse"] - rows[best]["val_rmse"]) < 1e-5
    assert history.column("val_rmse", phase="retrain") == [r["val_rmse"] for r in rows]


def test_a_non_finite_loss_restores_the_last_good_weights_and_lowers_the_lr():
    torch.manual_seed(0)
    model = Linear()
    task = Task(kind="regression", d_out=1)
    history = History()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e3)  # diverges at once
    with pytest.warns(
        RuntimeWarning, match=r"not finite in epoch \d+; restored the last good weights"
    ):
        result = fit_network(
            model, train=data(64, 0), val=data(32, 1), task=task, optimizer=optimizer,
            max_epochs=30, batch_size=16, generator=torch.Generator().manual_seed(0), config=CPU,
            history=history, deadline=Deadline(None), callbacks=[EarlyStopping(5)],
        )
    recovered = [r for r in history.phase("retrain") if r.get("recovered")]
    assert recovered and recovered[0]["lr"] == pytest.approx(1e2)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.stopped_by in ("early_stopping", "max_epochs", "non_finite_loss")
    assert torch.isfinite(torch.tensor(result.best_metrics["loss"]))


class MemoryLimited(nn.Module):
    """Runs out of memory on batches of more than ``limit`` rows, as a device would."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, x_num, x_cat):
        self.sizes.append(len(x_num))
        if len(x_num) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.inner(x_num, x_cat)


def test_a_prediction_pass_that_runs_out_of_memory_goes_on_in_smaller_batches():
    inner = Linear()
    expected = predict(inner, data(100), CPU)
    model = MemoryLimited(inner, limit=30)
    with pytest.warns(RuntimeWarning, match="out of memory on a batch of 4096 rows"):
        outputs = predict(model, data(100), CPU)
    assert torch.allclose(outputs, expected)
    assert max(size for size in model.sizes if size <= 30) == 16  # 4096 halved until it fits
    assert sum(size for size in model.sizes if size <= 30) == 100  # every row once
    model.sizes.clear()
    assert torch.allclose(predict(model, data(100), CPU), expected)
    assert max(model.sizes) == 16  # the next pass starts at the size that fitted


def test_an_epoch_that_runs_out_of_memory_is_trained_again_in_smaller_batches():
    model = MemoryLimited(Linear(), limit=8)
    with pytest.warns(RuntimeWarning, match="out of memory on a batch of 16 rows in epoch 0"):
        result = fit_network(
            model, train=data(64, 0), val=data(32, 1), task=Task(kind="regression", d_out=1),
            optimizer=torch.optim.SGD(model.parameters(), lr=0.05), max_epochs=3, batch_size=16,
            generator=torch.Generator().manual_seed(0), config=CPU, history=History(),
            deadline=Deadline(None),
        )
    assert result.n_epochs == 3
    train_sizes = [size for size in model.sizes[1:] if size <= 8]
    assert train_sizes and max(train_sizes) == 8


def test_an_error_that_is_not_out_of_memory_is_raised_as_it_is():
    class Broken(nn.Module):
        def forward(self, x_num, x_cat):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        predict(Broken(), data(10), CPU)


def test_early_stopping_waits_for_patience():
    stopper = EarlyStopping(patience=2)
    state = EpochState(epoch=3, row={}, best_epoch=2)
    stopper.on_epoch_end(state)
    assert not state.stop
    state = EpochState(epoch=4, row={}, best_epoch=2)
    stopper.on_epoch_end(state)
    assert state.stop and state.stop_reason == "early_stopping"


def test_expired_deadline_stops_after_one_epoch():
    model = Linear()
    result = fit_network(
        model, train=data(), val=data(16, 1), task=Task(kind="regression", d_out=1),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01), max_epochs=50, batch_size=16,
        generator=torch.Generator().manual_seed(0), config=CPU, history=History(),
        deadline=Deadline(0.0),
    )
    assert result.n_epochs == 1 and result.stopped_by == "time_limit"


def test_classification_metrics():
    task = Task(kind="classification", d_out=3)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    metrics = task.metrics(logits, torch.tensor([0, 1, 2, 2]))
    assert metrics["accuracy"] == 0.75 and metrics["score"] == 0.75 and metrics["loss"] > 0


def test_parameter_groups_skip_decay_for_biases_norms_and_excluded():
    model = Linear()
    extra = nn.Parameter(torch.zeros(3))
    model.alpha = extra
    decay, plain = make_parameter_groups(model, 0.1, exclude=[extra])
    assert [p.shape for p in decay["params"]] == [torch.Size([1, 2])]
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert len(plain["params"]) == 3  # linear bias, norm weight and bias
    assert all(p is not extra for group in (decay, plain) for p in group["params"])


def test_budget_gives_each_phase_a_deadline_counted_from_the_start():
    from tabnas.training.loop import Budget

    now = [100.0]
    budget = Budget(10.0, clock=lambda: now[0])
    now[0] = 102.0  # preprocessing took 2 s of the budget
    search = budget.until(0.35)
    assert search.remaining() == 1.5 and not search.expired()
    now[0] = 103.6
    assert search.expired()
    selection = budget.until(0.55)
    assert selection.remaining() == pytest.approx(1.9)
    now[0] = 111.0
    assert budget.until(1.0).expired() and budget.elapsed() == 11.0
    assert not Budget(None, clock=lambda: now[0]).until(0.35).expired()


def test_label_smoothing_changes_the_training_loss_only():
    logits = torch.tensor([[4.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    y = torch.tensor([0, 1])
    smooth = Task(kind="classification", d_out=3, label_smoothing=0.1)
    plain = Task(kind="classification", d_out=3)
    log_p = torch.log_softmax(logits, dim=-1)
    target = torch.full((2, 3), 0.1 / 3) + 0.9 * torch.nn.functional.one_hot(y, 3)
    expected = -(target * log_p).sum(-1).mean()
    assert torch.allclose(smooth.train_loss(logits, y), expected)
    assert torch.allclose(smooth.loss(logits, y), plain.loss(logits, y))  # what is measured
    assert smooth.metrics(logits, y) == plain.metrics(logits, y)
    members = logits[:, None].expand(2, 4, 3)  # (batch, k, d_out): each member's loss
    assert torch.allclose(smooth.train_loss(members, y), expected)


def test_label_smoothing_is_refused_for_regression_and_out_of_range():
    with pytest.raises(ValueError, match="classification only"):
        Task(kind="regression", d_out=1, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        Task(kind="classification", d_out=2, label_smoothing=1.0)


def test_the_epoch_trains_on_the_smoothed_loss(monkeypatch):
    seen = []
    original = Task.train_loss

    def spy(self, output, y):
        seen.append(self.label_smoothing)
        return original(self, output, y)

    monkeypatch.setattr(Task, "train_loss", spy)
    x = torch.randn(32, 2)
    train = TensorData(x, torch.zeros(32, 0, dtype=torch.long), (x[:, 0] > 0).long())
    model = _TwoInputs(nn.Linear(2, 2))
    fit_network(
        model, train=train, val=train,
        task=Task(kind="classification", d_out=2, label_smoothing=0.2),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), max_epochs=1,
        batch_size=16, generator=torch.Generator().manual_seed(0), config=CPU,
        history=History(), deadline=Deadline(None), callbacks=[],
    )
    assert seen == [0.2, 0.2]  # both batches of the epoch


class _TwoInputs(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x_num, x_cat):
        return self.inner(x_num)
