"""Numeric feature embeddings: one axis of the search space, from ``rtdl_num_embeddings``.

Each numeric feature becomes a vector of ``d_embedding`` values (a token of the token
backbone, or one chunk of the MLP backbone's input). Gorishniy et al. (2022, "On
Embeddings for Numerical Features in Tabular Deep Learning") measured these as the
largest single gain for tabular networks:

- ``linear``: one linear map per feature (FT-Transformer's tokenizer);
- ``periodic``: PLR, ``ReLU(Linear(sin/cos(2 pi c x)))`` with learned frequencies;
- ``piecewise_linear``: PLE over quantile bins of the training rows, in the package's
  version "B" (TabM's), which starts as a linear embedding and learns the piecewise part.

Adding an embedding is one :func:`register_num_embedding` call plus its test.

Any of them may sit behind a :class:`FeatureScale`, RealMLP's learnable per-feature scale
(Holzmüller et al. 2024): ``x * s`` with ``s`` starting at 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from rtdl_num_embeddings import (
    LinearEmbeddings,
    PeriodicEmbeddings,
    PiecewiseLinearEmbeddings,
    compute_bins,
)
from torch import Tensor, nn

NumEmbeddingFactory = Callable[[int, int, Sequence[Tensor] | None], nn.Module]
"""Builds an embedding from ``(n_features, d_embedding, bins)``; ``bins`` may be None for
embeddings that need no data."""

NUM_EMBEDDING_REGISTRY: dict[str, NumEmbeddingFactory] = {}
NEEDS_BINS: set[str] = set()

N_BINS = 48
"""Quantile bins per feature for ``piecewise_linear`` (the papers' and TabM's default)."""


def register_num_embedding(name: str, *, needs_bins: bool = False):
    """Register a numeric-embedding factory under ``name``."""

    def decorator(factory: NumEmbeddingFactory) -> NumEmbeddingFactory:
        if name in NUM_EMBEDDING_REGISTRY:
            raise ValueError(f"a numeric embedding named {name!r} is already registered")
        NUM_EMBEDDING_REGISTRY[name] = factory
        if needs_bins:
            NEEDS_BINS.add(name)
        return factory

    return decorator


def check_num_embedding(name: str) -> None:
    if name not in NUM_EMBEDDING_REGISTRY:
        raise ValueError(
            f"unknown numeric embedding {name!r}; registered: {sorted(NUM_EMBEDDING_REGISTRY)}"
        )


def make_num_embedding(
    name: str, *, n_features: int, d_embedding: int, bins: Sequence[Tensor] | None = None
) -> nn.Module:
    """``(batch, n_features) -> (batch, n_features, d_embedding)``; ``bins`` reach only the
    embeddings that read them."""
    check_num_embedding(name)
    if name not in NEEDS_BINS:
        return NUM_EMBEDDING_REGISTRY[name](n_features, d_embedding, None)
    if bins is None:
        raise ValueError(
            f"the {name!r} embedding needs bins computed on the training rows"
            " (tabnas.nas.embeddings.quantile_bins)"
        )
    if len(bins) != n_features:
        raise ValueError(f"got bins for {len(bins)} features, expected n_features={n_features}")
    return NUM_EMBEDDING_REGISTRY[name](n_features, d_embedding, bins)


@register_num_embedding("linear")
def _linear(n_features: int, d_embedding: int, bins) -> nn.Module:
    return LinearEmbeddings(n_features, d_embedding)


@register_num_embedding("periodic")
def _periodic(n_features: int, d_embedding: int, bins) -> nn.Module:
    # PLR with the package's defaults (48 frequencies, sigma 0.01), as in TabM's paper.
    return PeriodicEmbeddings(n_features, d_embedding, lite=False)


@register_num_embedding("piecewise_linear", needs_bins=True)
def _piecewise_linear(n_features: int, d_embedding: int, bins) -> nn.Module:
    with warnings.catch_warnings():  # one-bin features (missing indicators) are meant so
        warnings.filterwarnings("ignore", message=".*just two bin edges.*")
        return PiecewiseLinearEmbeddings(list(bins), d_embedding, activation=False, version="B")


class FeatureScale(nn.Module):
    """A learned factor per numeric feature in front of its embedding, starting at 1
    (RealMLP's scaling layer): the network can stretch or silence a feature before the
    embedding reads it. No weight decay reaches it (its neutral value is 1, not 0).

    **Shape**: ``(batch, n_features) -> (batch, n_features)``.
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n_features))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


def with_feature_scale(embedding: nn.Module, n_features: int) -> nn.Sequential:
    """``embedding`` behind a :class:`FeatureScale`."""
    return nn.Sequential(FeatureScale(n_features), embedding)


def quantile_bins(x_num: Tensor, n_bins: int = N_BINS) -> list[Tensor]:
    """Quantile bin edges of each column of the training rows ``x_num`` (on the CPU).

    ``rtdl_num_embeddings.compute_bins`` refuses a constant column and more bins than rows;
    a constant column gets one bin around its value, and ``n_bins`` shrinks to the rows.
    Two-valued columns (missing-value indicators) get the few bins their quantiles give,
    without the package's warning about it.
    """
    x = x_num.detach().float().cpu()
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x_num must be (n_rows, n_features) with features, got {tuple(x.shape)}")
    constant = (x == x[:1]).all(dim=0) if len(x) else torch.ones(x.shape[1], dtype=torch.bool)
    bins: list[Tensor | None] = [None] * x.shape[1]
    varying = [j for j in range(x.shape[1]) if not bool(constant[j])]
    if varying and len(x) < 3:  # too few rows for quantiles: one bin over the range
        for j in varying:
            bins[j] = torch.stack([x[:, j].min(), x[:, j].max()])
    elif varying:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*just two bin edges.*")
            computed = compute_bins(x[:, varying], n_bins=max(2, min(n_bins, len(x) - 1)))
        for j, edges in zip(varying, computed):
            bins[j] = edges
    for j in range(x.shape[1]):
        if bins[j] is None:
            value = float(x[0, j]) if len(x) else 0.0
            bins[j] = torch.tensor([value - 0.5, value + 0.5])
    return bins  # type: ignore[return-value]
