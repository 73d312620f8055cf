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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmarks.models import Adapter

if TYPE_CHECKING:  # torch is imported where it is used, so registering costs other jobs nothing
    import torch
    from torch import nn

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
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _TorchBaseline(Adapter):
    """The Gorishniy loop around a module built by :meth:`_build`."""

    imports = ("torch", "rtdl_revisiting_models", "tabnas.preprocessing")
    package = "rtdl_revisiting_models"
    uses_torch = True
    option_names = frozenset({"max_epochs", "device"})
    grad_clip: float | None = None

    def _build(
        self, n_num: int, cardinalities: list[int], d_out: int, x_num: torch.Tensor
    ) -> nn.Module:
        """The network; ``x_num`` holds the preprocessed numeric training features."""
        raise NotImplementedError

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        import torch

        return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def _inputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise NotImplementedError

    def _forward(self, inputs: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        return self.model_(*inputs)

    # ---- data ------------------------------------------------------------------------
    def _tensors(self, X: pd.DataFrame) -> tuple[torch.Tensor | None, ...]:
        import torch

        x_num, x_cat = self.preprocessor_.transform(X.set_axis(range(X.shape[1]), axis=1))
        inputs = self._inputs(torch.as_tensor(x_num), torch.as_tensor(x_cat))
        return tuple(None if t is None else t.to(self.device_) for t in inputs)

    # ---- fit -------------------------------------------------------------------------
    def fit(self, X_train, y_train, X_val, y_val):
        import torch

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
        x_num_train, _ = self.preprocessor_.transform(
            X_train.set_axis(range(X_train.shape[1]), axis=1)
        )
        self.model_ = self._build(
            self.preprocessor_.n_num_features, self.preprocessor_.cat_cardinalities, d_out,
            torch.as_tensor(x_num_train),
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
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model_.parameters(), self.grad_clip)
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
        from torch.nn import functional as F

        if self.task == "multiclass":
            return F.cross_entropy(out, target)
        out = out.squeeze(-1)
        if self.task == "binclass":
            return F.binary_cross_entropy_with_logits(out, target)
        return F.mse_loss(out, target)

    def _raw(self, inputs: tuple[torch.Tensor | None, ...]) -> np.ndarray:
        import torch

        self.model_.eval()
        any_input = next(t for t in inputs if t is not None)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(any_input), EVAL_BATCH_SIZE):
                part = tuple(
                    None if t is None else t[start : start + EVAL_BATCH_SIZE] for t in inputs
                )
                chunks.append(self._forward(part).float().cpu())
        return torch.cat(chunks).numpy()

    def _val_score(self, raw: np.ndarray, y_val: np.ndarray) -> float:
        if self.task == "regression":
            return -float(np.sqrt(np.mean((raw[:, 0] - (y_val - self.y_mean_) / self.y_std_) ** 2)))
        predicted = (raw[:, 0] > 0).astype(np.int64) if self.task == "binclass" else raw.argmax(1)
        return float(np.mean(predicted == y_val))

    # ---- predict ---------------------------------------------------------------------
    def predict_proba(self, X):
        import torch

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

    family = "resnet"

    def _build(self, n_num, cardinalities, d_out, x_num):
        from rtdl_revisiting_models import ResNet

        self.cardinalities_ = list(cardinalities)
        d_in = n_num + sum(cardinalities)
        return ResNet(d_in=d_in, d_out=d_out, **RESNET_KWARGS)

    def _inputs(self, x_num, x_cat):
        import torch
        from torch.nn import functional as F

        parts = [x_num] + [
            F.one_hot(x_cat[:, i], num_classes=card).float()
            for i, card in enumerate(self.cardinalities_)
        ]
        return (torch.cat(parts, dim=1),)


class FTTransformerModel(_TorchBaseline):
    """FT-Transformer with its default configuration and default optimizer."""

    family = "ft_transformer"

    def _build(self, n_num, cardinalities, d_out, x_num):
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


class TabMModel(_TorchBaseline):
    """TabM with piecewise-linear embeddings (TabM†), the ``tabm`` package's defaults.

    ``TabM.make`` defaults (k = 32 members, 2 blocks of 512, dropout 0.1, arch "tabm"),
    ``PiecewiseLinearEmbeddings`` over 48 quantile bins, ``d_embedding`` 16, version "B";
    AdamW lr 2e-3, weight decay 3e-4, gradient clipping 1.0 (the package's README and
    paper). Trained on the mean of the members' losses; predicts the mean of their
    probabilities or values; early stopping as the loop above, on the members' mean.
    Options ``k``, ``d_block`` and ``n_blocks`` size it down for a CPU (``k = 16``,
    ``d_block = 256``: the configuration measured in ``../shared/reference``).
    """

    family = "tabm"
    package = "tabm"
    imports = ("torch", "tabm", "rtdl_num_embeddings", "tabnas.preprocessing")
    option_names = frozenset({"max_epochs", "device", "k", "d_block", "n_blocks"})
    grad_clip = 1.0

    def _build(self, n_num, cardinalities, d_out, x_num):
        import tabm
        from rtdl_num_embeddings import PiecewiseLinearEmbeddings

        from tabnas.nas.embeddings import quantile_bins

        self.has_num_, self.has_cat_ = n_num > 0, len(cardinalities) > 0
        embeddings = (
            PiecewiseLinearEmbeddings(quantile_bins(x_num), 16, activation=False, version="B")
            if n_num > 0 else None
        )
        sizes = {
            key: int(self.options[key])
            for key in ("k", "d_block", "n_blocks")
            if key in self.options
        }
        return tabm.TabM.make(
            n_num_features=n_num, cat_cardinalities=list(cardinalities), d_out=d_out,
            num_embeddings=embeddings, **sizes,
        )

    def _optimizer(self, model):
        import torch

        return torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=3e-4)

    def _inputs(self, x_num, x_cat):
        return (x_num if self.has_num_ else None, x_cat if self.has_cat_ else None)

    def _forward(self, inputs):
        """``(batch, k, d_out)`` while training; the members' mean as one output otherwise
        (the logit of the mean probability, the log of the mean softmax, or the mean)."""
        import torch

        out = self.model_(*inputs).float()
        if self.model_.training:
            return out
        if self.task == "binclass":
            p = torch.sigmoid(out[..., 0]).mean(dim=1).clamp(1e-7, 1 - 1e-7)
            return torch.logit(p).unsqueeze(-1)
        if self.task == "multiclass":
            return torch.log_softmax(out, dim=-1).logsumexp(dim=1) - math.log(out.shape[1])
        return out.mean(dim=1)

    def _loss(self, out, target):
        # (batch, k, d_out): every member on its own loss, averaged (not the loss of the mean)
        k = out.shape[1]
        return super()._loss(out.flatten(0, 1), target.repeat_interleave(k))


class RealMLPModel(Adapter):
    """RealMLP-TD, ``pytabkit``'s tuned defaults, through its scikit-learn interface.

    It gets the frame with its own preprocessing left to it (robust scaling, smooth
    clipping, one-hot encoding; pandas ``category`` columns are its categorical features)
    and the validation split for its best-epoch selection. It refuses missing numbers, so
    a numeric column with missing values in training gets the training mean and a 0/1
    missing indicator, as the other networks' inputs do.
    """

    family = "realmlp"
    package = "pytabkit"
    uses_torch = True
    imports = ("pytabkit",)
    option_names = frozenset({"device"})

    def fit(self, X_train, y_train, X_val, y_val):
        from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

        cls = RealMLP_TD_Classifier if self.is_classification else RealMLP_TD_Regressor
        self.device_ = str(self.options.get("device", "cpu"))
        numeric = [
            c for c in X_train.columns if not isinstance(X_train[c].dtype, pd.CategoricalDtype)
        ]
        self.fill_ = {c: float(X_train[c].mean()) for c in numeric}
        self.flagged_ = [c for c in numeric if X_train[c].isna().any()]
        self.model_ = cls(
            random_state=self.seed, n_threads=self.threads, device=self.device_, verbosity=0
        )
        self.model_.fit(self._frame(X_train), y_train, X_val=self._frame(X_val), y_val=y_val)
        return self

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        flags = {f"{c}__missing": X[c].isna().astype(np.float64) for c in self.flagged_}
        return X.fillna(self.fill_).assign(**flags)

    def predict_proba(self, X):
        return self.model_.predict_proba(self._frame(X))

    def predict(self, X):
        if self.is_classification:
            return self.predict_proba(X).argmax(axis=1)
        return np.asarray(self.model_.predict(self._frame(X)), dtype=np.float64)

    def info(self):
        return {"device": self.device_}
