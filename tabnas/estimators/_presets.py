"""Budgets: what ``preset="fast" | "medium" | "best"`` means."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tabnas.nas.ops import OpSettings
from tabnas.nas.space import MLPSettings


@dataclass(frozen=True)
class Preset:
    """Width, depth, search budget (in weight steps) and patience of one budget.

    ``resnet_d_hidden`` is ``2 * d_token``: the flattened ResNet block then costs about
    as many multiply-adds per row as the attention and feed-forward blocks
    (``4 * n_tokens * d_token**2`` each), so PT does not favour it for its size alone
    (docs/algorithms.md, "Capacity-fair candidates").
    """

    n_cells: int
    n_nodes: int
    node_inputs: int
    d_token: int
    n_heads: int
    min_steps: int
    max_steps: int
    warmup_steps: int
    search_patience: int
    tune_steps: int
    max_epochs: int
    patience: int
    num_embeddings: tuple[str, ...] = ("linear",)
    backbones: tuple[str, ...] = ("cells",)
    mlp: MLPSettings = MLPSettings()
    ensemble_size: int = 1
    bag_folds: int = 0
    """Folds of ``bag_folds="auto"`` on small tables (:data:`BAG_MAX_ROWS`); 0: never."""
    lr: float = 1e-3
    weight_decay: float = 1e-5
    search_width: float = 1.0
    """The search and PT run on ops this many times as wide as the retrained cells."""
    argmax_candidate: bool = False
    """Also retrain DARTS's argmax architecture as a candidate of the final ensemble."""

    def op_settings(self) -> OpSettings:
        return OpSettings(
            d_token=self.d_token, n_heads=self.n_heads, resnet_d_hidden=2 * self.d_token
        )


PRESETS: dict[str, Preset] = {
    # Every preset's candidates: the searched cells, TabM and the retrieval network
    # (ModernNCA); the retrieval candidate made the validation score better on 7 of 7
    # datasets at "fast" (docs/benchmarks/retrieval) for 1.17x the fit time.
    # Seconds to a minute on small tables; what the test-suite and quick looks use.
    "fast": Preset(
        n_cells=2, n_nodes=2, node_inputs=2, d_token=32, n_heads=4,
        min_steps=100, max_steps=400, warmup_steps=30, search_patience=6, tune_steps=50,
        max_epochs=100, patience=16,
        num_embeddings=("piecewise_linear",), backbones=("cells", "tabm", "retrieval"),
        mlp=MLPSettings(k=8, d_block=128), ensemble_size=10,  # no bagging: quick looks stay quick
    ),
    # The default: minutes on a laptop CPU for tens of thousands of rows.
    "medium": Preset(
        n_cells=3, n_nodes=2, node_inputs=2, d_token=64, n_heads=8,
        min_steps=200, max_steps=1000, warmup_steps=60, search_patience=8, tune_steps=100,
        max_epochs=300, patience=16,
        num_embeddings=("piecewise_linear",), backbones=("cells", "tabm", "retrieval"),
        ensemble_size=10, bag_folds=5,
        # Search and PT on a half-width proxy (d_token 32): PT's validation score tied the
        # full-width search (3 of 6 datasets, docs/benchmarks/strategies) and the
        # California default fit took 683 s instead of 1,003 s (ensemble val RMSE +0.4 %).
        search_width=0.5,
    ),
    # A longer search with a larger cell; meant for a GPU or an overnight CPU run.
    "best": Preset(
        n_cells=3, n_nodes=3, node_inputs=2, d_token=96, n_heads=8,
        min_steps=500, max_steps=5000, warmup_steps=150, search_patience=10, tune_steps=300,
        max_epochs=1000, patience=16,
        num_embeddings=("piecewise_linear", "periodic", "linear"),
        backbones=("cells", "tabm", "retrieval"),
        mlp=MLPSettings(k=32, d_block=512), ensemble_size=20, bag_folds=5,
    ),
}


BAG_MAX_ROWS = 3_000
"""``bag_folds="auto"`` bags tables of at most this many rows (training and validation
together), where one validation split is too noisy to early-stop and weight on. The
bagging study (docs/benchmarks/bagging) measured a lower validation log loss or RMSE on
all 7 tables it ran, up to 3,000 rows; larger tables were not measured."""


def auto_batch_size(n_train: int) -> int:
    """Gorishniy et al.'s batch sizes by training-set size, smaller for small tables.

    Below about 2,500 rows a batch of 256 leaves too few steps per epoch, so the batch
    shrinks to give about ten steps (never under 16 rows).
    """
    if n_train < 2_560:
        return max(16, n_train // 10)
    if n_train <= 50_000:
        return 256
    if n_train <= 110_000:
        return 512
    return 1024


CUDA_BATCH_FACTOR = 4
"""On CUDA a training step costs about the same at 4× the CPU's rows (its kernels are
launch-bound at these widths), so retraining draws up to 4× larger batches there."""

MIN_STEPS_PER_EPOCH = 10


def device_batch_size(batch_size: int, n_train: int, *, cuda: bool) -> tuple[int, float]:
    """The retraining batch for the device, and the factor its learning rates scale by.

    On CUDA the batch grows by the largest power of two up to :data:`CUDA_BATCH_FACTOR`
    that still leaves :data:`MIN_STEPS_PER_EPOCH` steps per epoch (small tables keep
    theirs), and the learning rates by the square root of that growth, the scaling rule
    for Adam-type optimizers (Malladi et al. 2022). Early stopping keeps its meaning:
    patience counts passes over the data. On the CPU nothing changes.
    """
    factor = 1
    while (
        cuda
        and factor < CUDA_BATCH_FACTOR
        and n_train // (2 * factor * batch_size) >= MIN_STEPS_PER_EPOCH
    ):
        factor *= 2
    return factor * batch_size, math.sqrt(factor)
