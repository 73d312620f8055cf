"""Budgets: what ``preset="fast" | "medium" | "best"`` means."""

from __future__ import annotations

from dataclasses import dataclass

from tabnas.nas.ops import OpSettings


@dataclass(frozen=True)
class Preset:
    """Width, depth, epochs and patience of one budget."""

    n_cells: int
    n_nodes: int
    node_inputs: int
    d_token: int
    n_heads: int
    resnet_d_hidden: int
    search_epochs: int
    warmup_epochs: int
    tune_epochs: int
    max_epochs: int
    patience: int
    lr: float = 1e-3
    weight_decay: float = 1e-5

    def op_settings(self) -> OpSettings:
        return OpSettings(
            d_token=self.d_token, n_heads=self.n_heads, resnet_d_hidden=self.resnet_d_hidden
        )


PRESETS: dict[str, Preset] = {
    # Seconds on small tables; what the test-suite and quick looks use.
    "fast": Preset(
        n_cells=2, n_nodes=2, node_inputs=2, d_token=32, n_heads=4, resnet_d_hidden=128,
        search_epochs=6, warmup_epochs=2, tune_epochs=1, max_epochs=100, patience=16,
    ),
    # The default: minutes on a laptop CPU for tens of thousands of rows.
    "medium": Preset(
        n_cells=3, n_nodes=2, node_inputs=2, d_token=64, n_heads=8, resnet_d_hidden=256,
        search_epochs=10, warmup_epochs=3, tune_epochs=1, max_epochs=300, patience=16,
    ),
    # A longer search with a larger cell; meant for a GPU or an overnight CPU run.
    "best": Preset(
        n_cells=3, n_nodes=3, node_inputs=2, d_token=96, n_heads=8, resnet_d_hidden=512,
        search_epochs=30, warmup_epochs=10, tune_epochs=3, max_epochs=1000, patience=16,
    ),
}


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
