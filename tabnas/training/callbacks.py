"""Callbacks see a small state object after each epoch, never the estimator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EpochState:
    """What a callback sees after an epoch; setting ``stop`` ends training."""

    epoch: int
    row: dict[str, Any]
    best_epoch: int
    stop: bool = False
    stop_reason: str = ""


class Callback:
    """Base class with no-op hooks."""

    def on_epoch_end(self, state: EpochState) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when the validation score has not improved for ``patience`` epochs."""

    def __init__(self, patience: int):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got patience={patience}")
        self.patience = patience

    def on_epoch_end(self, state: EpochState) -> None:
        if state.epoch - state.best_epoch >= self.patience:
            state.stop = True
            state.stop_reason = "early_stopping"


class ProgressBar(Callback):
    """Shows a tqdm bar with the latest validation figures."""

    def __init__(self, total: int | None, description: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=description, leave=False)

    def on_epoch_end(self, state: EpochState) -> None:
        self.bar.update(1)
        shown = {
            k: round(v, 4)
            for k, v in state.row.items()
            if k.startswith("val_") and isinstance(v, float)
        }
        self.bar.set_postfix(shown)

    def close(self) -> None:
        self.bar.close()
