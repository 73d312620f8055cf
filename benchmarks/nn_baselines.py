"""ResNet and FT-Transformer (``rtdl_revisiting_models``) trained as Gorishniy et al. (2021) do.

- inputs: :class:`tabnas.preprocessing.TabularPreprocessor` (numeric NaN -> train mean plus
  a missing flag, quantile transform to a normal with seeded noise; categories -> codes
  with 0 for missing / unknown); ResNet gets the categories one-hot, FT-Transformer as codes;
- regression targets standardised with the train mean and std (scores in original units);
- AdamW, constant learning rate; batch 256 (512 above 50,000 training rows); the val score
  (accuracy, or -RMSE) after every epoch; stop after 16 epochs without improvement and
  restore the best weights. No epoch cap unless ``max_epochs`` is set (smoke tests only).

Models: FT-Transformer default (``FTTransformer.get_default_kwargs()``,
``make_default_optimizer()``: AdamW lr 1e-4, weight decay 1e-5, none on embeddings,
normalisation and biases); ResNet with the package README's configuration (2 blocks of
width 192, hidden ×2, dropout 0.15 / 0.0) and AdamW lr 1e-4, weight decay 1e-5.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.models import Adapter

PATIENCE = 16
EVAL_BATCH_SIZE = 8192
RESNET_KWARGS = {
    "n_blocks": 2,
    "d_block": 192,
    "d_hidden_multiplier": 2.0,
    "dropout1": 0.15,
    "dropout2": 0.0,
}
LR, WEIGHT_DECAY = 1e-4, 1e-5


def batch_size_for(n_train: int) -> int:
    return 512 if n_train > 50_000 else 256


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _TorchBaseline(Adapter):
    """The Gorishniy loop around a module built by :meth:`_build`."""

    imports = ("rtdl_revisiting_models", "tabnas.preprocessing")

    def _build(self, n_num: int, cardinalities: list[int], d_out: int) -> nn.Module:
        raise NotImplementedError

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def _inputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise NotImplementedError

    def _forward(self, inputs: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        return self.model_(*inputs)

    # ---- data ------------------------------------------------------------------------
    def _tensors(self, X: pd.DataFrame) -> tuple[torch.Tensor | None, ...]:
        x_num, x_cat = self.preprocessor_.transform(X.set_axis(range(X.shape[1]), axis=1))
        inputs = self._inputs(torch.as_tensor(x_num), torch.as_tensor(x_cat))
        return tuple(None if t is None else t.to(self.device_) for t in inputs)

    # ---- fit -------------------------------------------------------------------------
    def fit(self, X_train, y_train, X_val, y_val):
        from tabnas.preprocessing import TabularPreprocessor

        torch.manual_seed(self.seed)
        self.device_ = _resolve_device(str(self.options.get("device", "auto")))
        categorical = [
            j
            for j, c in enumerate(X_train.columns)
            if isinstance(X_train[c].dtype, pd.CategoricalDtype)
        ]
        self.preprocessor_ = TabularPreprocessor(
            categorical=categorical, random_state=self.seed
        ).fit(X_train.set_axis(range(X_train.shape[1]), axis=1))
        if self.is_classification:
            d_out = 1 if self.task == "binclass" else int(self.n_classes)
            y_tr = torch.as_tensor(y_train, dtype=torch.float32 if d_out == 1 else torch.long)
        else:
            d_out = 1
            self.y_mean_, self.y_std_ = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
            y_tr = torch.as_tensor((y_train - self.y_mean_) / self.y_std_, dtype=torch.float32)
        self.model_ = self._build(
            self.preprocessor_.n_num_features, self.preprocessor_.cat_cardinalities, d_out
        ).to(self.device_)
        optimizer = self._optimizer(self.model_)
        train, val = self._tensors(X_train), self._tensors(X_val)
        y_tr = y_tr.to(self.device_)
        n = len(y_tr)
        batch_size = self.batch_size_ = batch_size_for(n)
        max_epochs = int(self.options.get("max_epochs", 0)) or math.inf
        generator = torch.Generator().manual_seed(self.seed)

        best_score, best_state, bad_epochs, epoch = -math.inf, None, 0, 0
        self.best_epoch_ = 0
        while epoch < max_epochs:
            epoch += 1
            self.model_.train()
            order = torch.randperm(n, generator=generator).to(self.device_)
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                if len(rows) < 2:  # BatchNorm cannot train on a batch of one row
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss = self._loss(
                    self._forward(tuple(None if t is None else t[rows] for t in train)), y_tr[rows]
                )
                loss.backward()
                optimizer.step()
            score = self._val_score(self._raw(val), y_val)
            if score > best_score:
                best_score, best_state, bad_epochs = (
                    score,
                    copy.deepcopy(self.model_.state_dict()),
                    0,
                )
                self.best_epoch_ = epoch
            else:
                bad_epochs += 1
                if bad_epochs > PATIENCE:  # as Gorishniy's ProgressTracker.fail
                    break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.epochs_ = epoch
        self.best_val_score_ = best_score
        return self

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "multiclass":
            return F.cross_entropy(out, target)
        out = out.squeeze(-1)
        if self.task == "binclass":
            return F.binary_cross_entropy_with_logits(out, target)
        return F.mse_loss(out, target)

    @torch.inference_mode()
    def _raw(self, inputs: tuple[torch.Tensor | None, ...]) -> np.ndarray:
        self.model_.eval()
        any_input = next(t for t in inputs if t is not None)
        chunks = []
        for start in range(0, len(any_input), EVAL_BATCH_SIZE):
            part = tuple(None if t is None else t[start : start + EVAL_BATCH_SIZE] for t in inputs)
            chunks.append(self._forward(part).float().cpu())
        return torch.cat(chunks).numpy()

    def _val_score(self, raw: np.ndarray, y_val: np.ndarray) -> float:
        if self.task == "regression":
            return -float(np.sqrt(np.mean((raw[:, 0] - (y_val - self.y_mean_) / self.y_std_) ** 2)))
        predicted = (raw[:, 0] > 0).astype(np.int64) if self.task == "binclass" else raw.argmax(1)
        return float(np.mean(predicted == y_val))

    # ---- predict ---------------------------------------------------------------------
    def predict_proba(self, X):
        raw = self._raw(self._tensors(X))
        if self.task == "binclass":
            p = 1 / (1 + np.exp(-raw[:, 0].astype(np.float64)))
            return np.stack([1 - p, p], axis=1)
        return torch.softmax(torch.as_tensor(raw, dtype=torch.float64), dim=1).numpy()

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return self._raw(self._tensors(X))[:, 0].astype(np.float64) * self.y_std_ + self.y_mean_

    def info(self) -> dict[str, Any]:
        return {
            "device": str(self.device_),
            "n_parameters": int(sum(p.numel() for p in self.model_.parameters())),
            "epochs": int(self.epochs_),
            "best_epoch": int(self.best_epoch_),
            "batch_size": int(self.batch_size_),
        }


class ResNetModel(_TorchBaseline):
    """ResNet (README configuration) on numeric features plus one-hot categories."""

    def _build(self, n_num, cardinalities, d_out):
        from rtdl_revisiting_models import ResNet

        self.cardinalities_ = list(cardinalities)
        d_in = n_num + sum(cardinalities)
        return ResNet(d_in=d_in, d_out=d_out, **RESNET_KWARGS)

    def _inputs(self, x_num, x_cat):
        parts = [x_num] + [
            F.one_hot(x_cat[:, i], num_classes=card).float()
            for i, card in enumerate(self.cardinalities_)
        ]
        return (torch.cat(parts, dim=1),)


class FTTransformerModel(_TorchBaseline):
    """FT-Transformer with its default configuration and default optimizer."""

    def _build(self, n_num, cardinalities, d_out):
        from rtdl_revisiting_models import FTTransformer

        self.has_num_, self.has_cat_ = n_num > 0, len(cardinalities) > 0
        return FTTransformer(
            n_cont_features=n_num,
            cat_cardinalities=list(cardinalities),
            d_out=d_out,
            **FTTransformer.get_default_kwargs(),
        )

    def _optimizer(self, model):
        return model.make_default_optimizer()

    def _inputs(self, x_num, x_cat):
        return (x_num if self.has_num_ else None, x_cat if self.has_cat_ else None)
