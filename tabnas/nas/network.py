"""Feature tokens, the readout, and the networks built from an Architecture."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import tabm
import torch
from rtdl_num_embeddings import LinearReLUEmbeddings
from rtdl_revisiting_models import CategoricalEmbeddings
from torch import Tensor, nn

from tabnas.nas.embeddings import make_num_embedding
from tabnas.nas.ops import TOKEN_MIXING_OPS, make_op
from tabnas.nas.space import BACKBONES, Architecture


@dataclass(frozen=True)
class DataShapes:
    """The data-dependent sizes every network of a fit is built for.

    ``bins`` are the quantile bin edges of each numeric feature on the training rows
    (:func:`tabnas.nas.embeddings.quantile_bins`), needed by piecewise-linear embeddings.
    """

    n_num_features: int
    cat_cardinalities: tuple[int, ...]
    d_out: int
    bins: tuple[Tensor, ...] | None = None

    def kwargs(self) -> dict[str, Any]:
        return dict(
            n_num_features=self.n_num_features,
            cat_cardinalities=list(self.cat_cardinalities),
            d_out=self.d_out,
            bins=self.bins,
        )


class FeatureTokenizer(nn.Module):
    """FT-Transformer's tokenizer: one token per feature plus a learned [CLS] token first.

    **Shape**: ``x_num (batch, n_num_features)``, ``x_cat (batch, n_cat_features)`` ->
    ``(batch, 1 + n_num_features + n_cat_features, d_token)``.
    """

    def __init__(
        self,
        *,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_token: int,
        num_embedding: str = "linear",
        bins: Sequence[Tensor] | None = None,
    ):
        super().__init__()
        _check_features(n_num_features, cat_cardinalities)
        self.cls = nn.Parameter(torch.empty(d_token))
        nn.init.uniform_(self.cls, -(d_token**-0.5), d_token**-0.5)
        self.num_embeddings = _num_embedding(num_embedding, n_num_features, d_token, bins)
        self.cat_embeddings = (
            CategoricalEmbeddings(list(cat_cardinalities), d_token, bias=True)
            if cat_cardinalities
            else None
        )
        self.n_tokens = 1 + n_num_features + len(cat_cardinalities)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        batch_size = x_num.shape[0]
        tokens = [self.cls.expand(batch_size, 1, -1)]  # (batch, 1, d_token)
        if self.num_embeddings is not None:
            tokens.append(self.num_embeddings(x_num))  # (batch, n_num, d_token)
        if self.cat_embeddings is not None:
            tokens.append(self.cat_embeddings(x_cat))  # (batch, n_cat, d_token)
        return torch.cat(tokens, dim=1)


class Readout(nn.Module):
    """The [CLS] token -> LayerNorm -> ReLU -> Linear (FT-Transformer's head).

    With ``pool = "mean"`` the head reads the mean of all tokens instead: for networks in
    which no op mixes the tokens, where the [CLS] token would never see a feature.
    """

    pool = "cls"

    def __init__(self, *, d_token: int, d_out: int):
        super().__init__()
        self.head = nn.Sequential(
            OrderedDict(
                normalization=nn.LayerNorm(d_token),
                activation=nn.ReLU(),
                linear=nn.Linear(d_token, d_out),
            )
        )

    @property
    def linear(self) -> nn.Linear:
        return cast(nn.Linear, self.head.linear)

    def forward(self, tokens: Tensor) -> Tensor:
        with full_precision(tokens):  # under bf16 autocast too, the outputs are fp32 sums
            # (batch, d_out), in the weights' own dtype (fp32 unless the net was cast)
            summary = tokens.mean(dim=1) if self.pool == "mean" else tokens[:, 0]
            return self.head(summary.to(self.linear.weight.dtype))


def full_precision(x: Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: the layer inside computes in float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class FP32LinearEnsemble(tabm.LinearEnsemble):
    """tabm's output layer (the k members' heads), computed in float32 under autocast."""

    def forward(self, x: Tensor) -> Tensor:
        with full_precision(x):
            return super().forward(x.to(self.weight.dtype))


def _num_embedding(
    name: str, n_num_features: int, d_embedding: int, bins: Sequence[Tensor] | None
) -> nn.Module | None:
    """The numeric features' embedding, or None without numeric features."""
    if n_num_features == 0:
        return None
    return make_num_embedding(name, n_features=n_num_features, d_embedding=d_embedding, bins=bins)


def _check_features(n_num_features: int, cat_cardinalities: Sequence[int]) -> None:
    if n_num_features < 0:
        raise ValueError(f"n_num_features must be non-negative, got {n_num_features}")
    if n_num_features == 0 and not cat_cardinalities:
        raise ValueError("a network needs at least one numeric or categorical feature")


class TokenNetwork(nn.Module):
    """Tokenizer -> body -> readout. Subclasses supply the body through :meth:`body`."""

    def __init__(
        self,
        *,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_token: int,
        d_out: int,
        num_embedding: str = "linear",
        bins: Sequence[Tensor] | None = None,
    ):
        super().__init__()
        if d_out <= 0:
            raise ValueError(f"d_out must be positive, got d_out={d_out}")
        self.tokenizer = FeatureTokenizer(
            n_num_features=n_num_features, cat_cardinalities=cat_cardinalities, d_token=d_token,
            num_embedding=num_embedding, bins=bins,
        )
        self.readout = Readout(d_token=d_token, d_out=d_out)

    def body(self, tokens: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, x_num: Tensor, x_cat: Tensor, **body_kwargs) -> Tensor:
        """``(batch, n_num), (batch, n_cat) -> (batch, d_out)``."""
        return self.readout(self.body(self.tokenizer(x_num, x_cat), **body_kwargs))


class DiscreteNetwork(TokenNetwork):
    """The network of one :class:`Architecture`; only edges that reach a cell output exist."""

    def __init__(
        self,
        *,
        architecture: Architecture,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_out: int,
        bins: Sequence[Tensor] | None = None,
    ):
        if architecture.backbone != "cells":
            raise ValueError(
                "DiscreteNetwork builds 'cells' architectures,"
                f" got backbone={architecture.backbone!r}; use build_network"
            )
        super().__init__(
            n_num_features=n_num_features,
            cat_cardinalities=cat_cardinalities,
            d_token=architecture.settings.d_token,
            d_out=d_out,
            num_embedding=architecture.num_embedding,
            bins=bins,
        )
        self.architecture = architecture
        n_tokens = self.tokenizer.n_tokens
        self.cells = nn.ModuleList()
        self._wiring: list[list[tuple[int, int, str]]] = []  # per cell: (source, target, key)
        live_ops: set[str] = set()
        for c, cell in enumerate(architecture.cells):
            live = architecture.live_nodes(c)
            modules = nn.ModuleDict()
            wiring = []
            for target, inputs in enumerate(cell, start=1):
                if target not in live:
                    continue
                for edge in inputs:
                    if edge.op == "none":
                        continue
                    key = f"{edge.source}_{target}_{edge.op}"
                    modules[key] = make_op(edge.op, architecture.settings, n_tokens)
                    wiring.append((edge.source, target, key))
                    live_ops.add(edge.op)
            self.cells.append(modules)
            self._wiring.append(wiring)
        if not live_ops & TOKEN_MIXING_OPS:  # token-wise ops only: [CLS] would stay constant
            self.readout.pool = "mean"

    def body(self, tokens: Tensor) -> Tensor:
        for modules, wiring, cell in zip(self.cells, self._wiring, self.architecture.cells):
            states: dict[int, Tensor] = {0: tokens}
            for source, target, key in wiring:
                source_state = states.get(source)  # absent when all its inputs are 'none'
                if source_state is None:
                    source_state = torch.zeros_like(tokens)
                out = cast(nn.ModuleDict, modules)[key](source_state)
                states[target] = out if target not in states else states[target] + out
            tokens = states.get(len(cell), torch.zeros_like(tokens))
        return tokens


class TabMNetwork(nn.Module):
    """The ``tabm`` backbone: ``tabm.TabM`` over this package's numeric embeddings.

    **Shape**: ``x_num (batch, n_num)``, ``x_cat (batch, n_cat)`` -> ``(batch, k, d_out)``,
    one prediction per member. Training takes the mean of the members' losses and
    prediction the mean of their probabilities or values (:class:`tabnas.training.loop.Task`),
    as the package's authors do.
    """

    def __init__(
        self,
        *,
        architecture: Architecture,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_out: int,
        bins: Sequence[Tensor] | None = None,
    ):
        super().__init__()
        if architecture.backbone != "tabm" or architecture.mlp is None:
            raise ValueError(
                f"TabMNetwork builds 'tabm' architectures, got {architecture.backbone!r}"
            )
        if d_out <= 0:
            raise ValueError(f"d_out must be positive, got d_out={d_out}")
        _check_features(n_num_features, cat_cardinalities)
        self.architecture = architecture
        mlp = architecture.mlp
        if architecture.num_embedding == "linear" and n_num_features:
            # tabm takes its own linear form only: Linear + ReLU per feature (its paper's)
            embedding = LinearReLUEmbeddings(n_num_features, mlp.d_embedding)
        else:
            embedding = _num_embedding(
                architecture.num_embedding, n_num_features, mlp.d_embedding, bins
            )
        self.has_num, self.has_cat = n_num_features > 0, bool(cat_cardinalities)
        self.tabm = tabm.TabM.make(
            n_num_features=n_num_features,
            cat_cardinalities=list(cat_cardinalities),
            d_out=d_out,
            num_embeddings=embedding,
            n_blocks=mlp.n_blocks,
            d_block=mlp.d_block,
            dropout=mlp.dropout,
            k=mlp.k,
            arch_type=mlp.arch_type,
        )
        if type(self.tabm.output) is tabm.LinearEnsemble:
            # the same parameters, computed in fp32: no new module, so no random draw
            self.tabm.output.__class__ = FP32LinearEnsemble

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        return self.tabm(x_num if self.has_num else None, x_cat if self.has_cat else None)


NetworkBuilder = Callable[..., nn.Module]

NETWORK_BUILDERS: dict[str, NetworkBuilder] = {"cells": DiscreteNetwork, "tabm": TabMNetwork}
assert set(NETWORK_BUILDERS) == set(BACKBONES), "every backbone of the space has a builder"


def build_network(architecture: Architecture, shapes: DataShapes) -> nn.Module:
    """The trainable network of ``architecture`` for data of ``shapes``."""
    return NETWORK_BUILDERS[architecture.backbone](architecture=architecture, **shapes.kwargs())
