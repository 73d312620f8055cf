"""The supernet trainer: faithful scoring, a search that stops when it has learnt, PT's
tuning budget, and second-order DARTS through the trainer's own loss."""

import pytest
import torch

from tabnas.devices import resolve_device
from tabnas.nas.ops import OpSettings
from tabnas.nas.space import SearchSpace
from tabnas.nas.strategies import DARTS, SecondOrderDARTS, make_strategy
from tabnas.nas.supernet import SuperNetwork
from tabnas.training.data import TensorData
from tabnas.training.history import History
from tabnas.training.loop import Deadline, Task
from tabnas.training.search import SearchConfig, SupernetTrainer

OPS = ("attention", "ffn", "resnet", "linear", "skip", "none")


def classification_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = ((x[:, 0] * x[:, 1] + x[:, 2]) > 0).long()
    return TensorData(x, torch.zeros(n, 0, dtype=torch.long), y)


def trainer(strategy="darts", seed=0, **config):
    torch.manual_seed(seed)
    settings = OpSettings(
        d_token=8, n_heads=2, resnet_d_hidden=16, resnet_dropout=0.3, ffn_dropout=0.2
    )
    space = SearchSpace(n_cells=1, n_nodes=2, node_inputs=2, ops=OPS, settings=settings)
    net = SuperNetwork(space=space, n_num_features=3, cat_cardinalities=[], d_out=2)
    defaults = dict(
        batch_size=32, lr=3e-3, weight_decay=1e-5, min_steps=10, max_steps=40, warmup_steps=0,
        patience=2,
    )
    return SupernetTrainer(
        net,
        (make_strategy(strategy) if isinstance(strategy, str) else strategy).bind(net),
        weight_data=classification_data(160, seed + 1),
        arch_data=classification_data(96, seed + 2),
        task=Task("classification", 2),
        config=SearchConfig(**{**defaults, **config}),
        device=resolve_device("cpu"),
        generator=torch.Generator().manual_seed(seed),
        history=History(),
    )


def buffers(module):
    return {name: b.clone() for name, b in module.named_buffers()}


def test_scoring_writes_no_buffer_and_ignores_what_ran_before():
    t = trainer()
    t.search(Deadline(None))
    weights = t.supernet.default_weights().detach()
    before = buffers(t.supernet)
    first = t.evaluate(weights)
    t._cache = None  # force a fresh pass
    second = t.evaluate(weights)
    assert first == second
    for name, value in buffers(t.supernet).items():
        assert torch.equal(value, before[name]), name

    # Passes that move BatchNorm's running statistics (train-mode forwards, as the
    # architecture steps make) change nothing in the scores.
    with torch.no_grad():
        t.supernet.train()
        for _ in range(5):
            t.supernet(
                torch.randn(64, 3) * 5 + 3, torch.zeros(64, 0, dtype=torch.long), weights=weights
            )
    assert any(not torch.equal(v, before[n]) for n, v in buffers(t.supernet).items())
    t._cache = None
    assert t.evaluate(weights) == first
    # Scoring runs with dropout off: the supernet ends in the mode it started in.
    assert t.supernet.training


def test_scoring_uses_every_row_of_a_small_architecture_half_and_caps_a_large_one():
    assert len(trainer().score_data) == 96
    assert len(trainer(max_score_rows=50).score_data) == 50


def test_search_runs_between_min_and_max_steps_and_stops_on_patience():
    t = trainer(min_steps=10, max_steps=400, patience=2, eval_every=5, lr=1e-2)
    steps = t.search(Deadline(None))
    rows = t.history.phase("search")
    losses = [r["val_loss"] for r in rows]
    assert 10 <= steps < 400 and steps == rows[-1]["step"]
    # Stopped exactly `patience` evaluations after the last improvement (by at least
    # 1e-4 relative), and not before: every earlier window of `patience` improved.
    best_at = [
        i
        for i in range(len(losses))
        if losses[i] < min(losses[:i], default=float("inf")) * (1 - 1e-4)
    ]
    assert len(losses) - 1 - best_at[-1] == 2
    assert len(best_at) > 1 and steps > 10  # it learnt past the first evaluation and past min_steps
    assert all(r["step"] % 5 == 0 for r in rows)

    capped = trainer(min_steps=10, max_steps=15, patience=100, eval_every=5)
    assert capped.search(Deadline(None)) == 15
    at_least_one = trainer()
    assert at_least_one.search(Deadline(0.0)) >= 1  # an expired deadline still makes a step


def test_alpha_learns_under_darts_and_stays_uniform_under_fixed_alpha():
    darts = trainer("darts", max_steps=60, min_steps=60)
    darts.search(Deadline(None))
    assert darts.history.phase("search")[-1]["alpha_shift"] > 0.1
    fixed = trainer("fixed-alpha", max_steps=60, min_steps=60)
    fixed.search(Deadline(None))
    row = fixed.history.phase("search")[-1]
    assert row["alpha_shift"] == 0.0 and not row["arch_steps"]
    assert torch.allclose(torch.tensor(row["weights"]), torch.full((1, 3, len(OPS)), 1 / len(OPS)))


def test_tuning_is_counted_in_steps_capped_by_the_search_and_anneals_the_lr():
    t = trainer(min_steps=40, max_steps=40, tune_steps=30, max_tune_share=0.5)
    t.search(Deadline(None))
    assert t.start_tuning(n_decisions=4) == 5  # 0.5 * 40 steps / 4 decisions
    steps = t.steps
    lrs = []
    for _ in range(4):
        t.tune()
        lrs.append(t.optimizer.param_groups[0]["lr"])
    assert t.steps - steps == 20
    assert lrs == sorted(lrs, reverse=True)
    assert lrs[0] < 3e-3 * 0.1 and lrs[-1] == pytest.approx(3e-3 * 0.04, rel=0.05)
    assert len(t.history.phase("select")) == 4


def test_a_device_batch_search_makes_as_many_passes_at_sqrt_scaled_learning_rates():
    config = SearchConfig(
        batch_size=256, lr=1e-3, weight_decay=0.0, min_steps=200, max_steps=1000,
        warmup_steps=60, tune_steps=100,
    )
    assert config.for_device_batch(1) is config
    big = config.for_device_batch(4)
    assert (big.batch_size, big.min_steps, big.max_steps, big.warmup_steps, big.tune_steps) == (
        1024, 50, 250, 15, 25,
    )
    assert big.lr_scale == 2.0 and big.lr == config.lr and big.patience == config.patience
    tiny = SearchConfig(batch_size=8, lr=1e-3, weight_decay=0.0, min_steps=3, max_steps=3)
    assert (tiny.for_device_batch(4).min_steps, tiny.for_device_batch(4).max_steps) == (1, 1)

    # the weights' and α's learning rates both follow lr_scale, for Adam's α and SGD's
    for optimizer in ("adam", "sgd"):
        plain = trainer(DARTS(optimizer=optimizer), min_steps=1, max_steps=1)
        scaled = trainer(
            DARTS(optimizer=optimizer), min_steps=1, max_steps=1, lr_scale=4.0
        )
        for t in (plain, scaled):
            t.step(arch_step=True)
        weight_lrs = [t.optimizer.param_groups[0]["lr"] for t in (plain, scaled)]
        alpha_lrs = [t.strategy.optimizer.param_groups[0]["lr"] for t in (plain, scaled)]
        assert weight_lrs[1] == pytest.approx(4 * weight_lrs[0])
        assert alpha_lrs[1] == pytest.approx(4 * alpha_lrs[0])


def test_virtual_step_is_the_step_adamw_really_takes():
    t = trainer()
    t.search(Deadline(None))  # AdamW has moments now
    params = {n: p for n, p in t.supernet.named_parameters() if n != "alpha"}
    grads = {n: torch.randn_like(p) * 1e-2 for n, p in params.items()}
    stepped, xi = t.virtual_step(grads)
    t.optimizer.zero_grad()
    for name, p in params.items():
        p.grad = grads[name].clone()
    t.optimizer.step()
    for name, p in params.items():
        assert torch.allclose(p.detach(), stepped[name], rtol=1e-5, atol=1e-7), name
        assert xi[name].shape == p.shape and bool((xi[name] > 0).all())


def test_second_order_darts_through_the_trainers_own_loss_with_dropout_on():
    t = trainer("darts2", lr=0.05)
    t.search(Deadline(None))
    strategy = t.strategy
    assert isinstance(strategy, SecondOrderDARTS)
    net, alpha = t.supernet, t.supernet.alpha
    train, val = t.weight_data[torch.arange(48)], t.arch_data[torch.arange(48)]
    net.train()  # dropout on, as in the search

    torch.manual_seed(123)
    approx, stats = strategy.arch_gradient(t.loss, train, val, virtual_step=t.virtual_step)

    # The exact derivative of L_val(w'(alpha), alpha), w' = the AdamW step for
    # grad_w L_train(w, alpha), with the same dropout masks (same seed, same order).
    torch.manual_seed(123)
    named = [(n, p) for n, p in net.named_parameters() if n != "alpha"]
    names, weights = [n for n, _ in named], [p for _, p in named]
    train_loss = t.loss(train, torch.softmax(alpha, -1))
    grads = torch.autograd.grad(train_loss, weights, create_graph=True, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]
    _, xi = t.virtual_step({n: g.detach() for n, g in zip(names, grads)})
    stepped, _ = t.virtual_step({n: g.detach() for n, g in zip(names, grads)})
    # w' as a differentiable function of the gradient, with slope -xi.
    virtual = {n: stepped[n] - xi[n] * (g - g.detach()) for n, g in zip(names, grads)}
    val_loss = t.loss(val, torch.softmax(alpha, -1), virtual)
    (exact,) = torch.autograd.grad(val_loss, [alpha])

    torch.manual_seed(124)
    other_masks, _ = strategy.arch_gradient(t.loss, train, val, virtual_step=t.virtual_step)
    assert not torch.allclose(other_masks, approx)  # dropout is really on
    assert torch.allclose(approx, exact, rtol=1e-4, atol=1e-7), (
        (approx - exact).norm() / exact.norm()
    )
    assert stats["second_order_ratio"] > 0


def test_the_strategy_hears_every_search_step():
    t = trainer(min_steps=8, max_steps=12, patience=100, eval_every=4)
    heard = []
    t.strategy.step_started = lambda step, max_steps: heard.append((step, max_steps))
    t.search(Deadline(None))
    # schedules span min_steps (every search reaches them), whatever the search's length
    assert heard == [(step, 8) for step in range(12)]


def poison(t, calls):
    """Make the trainer's loss NaN on the given calls (counted from 1): its gradients then
    turn every weight they reach into NaN, as a real divergence would."""
    loss, count = t.loss, [0]

    def poisoned(*args, **kwargs):
        count[0] += 1
        value = loss(*args, **kwargs)
        return value * float("nan") if count[0] in calls else value

    t.loss = poisoned


def all_finite(module):
    return all(torch.isfinite(p).all() for p in module.parameters())


def test_a_non_finite_search_loss_goes_back_to_the_last_good_weights_and_goes_on():
    t = trainer("fixed-alpha", max_steps=40, min_steps=40)
    poison(t, {12})
    with pytest.warns(RuntimeWarning, match="not finite in the search phase"):
        t.search(Deadline(None))
    recovered = [row for row in t.history.phase("search") if row.get("recovered")]
    assert len(recovered) == 1 and t.recoveries == 1
    assert t.steps == 40  # the search went on after the recovery
    assert all_finite(t.supernet)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)  # lr / 10
    assert all(row["val_loss"] == row["val_loss"] for row in t.history.phase("search")[-2:])


def test_a_search_that_keeps_diverging_stops_with_its_last_good_weights():
    t = trainer("darts", max_steps=400, min_steps=400)
    start = {name: p.detach().clone() for name, p in t.supernet.named_parameters()}
    poison(t, set(range(1, 10_000)))
    with pytest.warns(RuntimeWarning):
        t.search(Deadline(None))
    assert t.diverged and t.steps < 400
    for name, p in t.supernet.named_parameters():
        assert torch.equal(p, start[name]), name  # never a good interval: the start's weights


def test_a_recovery_during_selection_keeps_the_decisions_made():
    t = trainer("darts")
    t.search(Deadline(None))
    t.start_tuning(n_decisions=3)
    t.supernet.fix_edge(0, 0, "ffn")
    decisions = (t.supernet.fixed.clone(), t.supernet.kept.clone())
    poison(t, {1})
    with pytest.warns(RuntimeWarning, match="not finite in the select phase"):
        t.tune()
    assert t.history.rows[-1]["recovered"] and all_finite(t.supernet)
    assert (
        torch.equal(t.supernet.fixed, decisions[0]) and torch.equal(t.supernet.kept, decisions[1])
    )
    assert t.lr_scale == pytest.approx(0.1)
    t.tune()  # the next tuning interval runs at a tenth of the planned lr
    assert t.optimizer.param_groups[0]["lr"] < 0.1 * t.config.lr * t.config.tune_lr_ratio[0]


def limit_memory(t, rows):
    """The supernet runs out of memory on more than ``rows`` rows at once."""
    forward = t.supernet.forward

    def limited(x_num, x_cat, **kwargs):
        if len(x_num) > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(x_num, x_cat, **kwargs)

    t.supernet.forward = limited


def test_search_steps_and_scoring_that_run_out_of_memory_go_on_in_smaller_batches():
    t = trainer("darts", max_steps=20, min_steps=20)
    limit_memory(t, 20)
    with pytest.warns(RuntimeWarning, match="out of memory") as caught:
        t.search(Deadline(None))
    messages = [str(w.message) for w in caught]
    assert any("batch of 32 rows in the supernet's training" in m for m in messages)
    assert any("scoring the supernet" in m for m in messages)
    assert t.steps == 20 and t.weight_batches.batch_size == 16
    assert t.score_chunk_rows <= 20
    assert all(row["val_loss"] == row["val_loss"] for row in t.history.phase("search"))
