"""Feature tokens, the readout, and the networks built from an Architecture."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import tabm
import torch
import torch.nn.functional as F
from rtdl_num_embeddings import LinearReLUEmbeddings
from rtdl_revisiting_models import CategoricalEmbeddings
from torch import Tensor, nn

from tabnas.nas.embeddings import FeatureScale, make_num_embedding, with_feature_scale
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
        feature_scale: bool = False,
    ):
        super().__init__()
        _check_features(n_num_features, cat_cardinalities)
        self.cls = nn.Parameter(torch.empty(d_token))
        nn.init.uniform_(self.cls, -(d_token**-0.5), d_token**-0.5)
        self.num_embeddings = _num_embedding(
            num_embedding, n_num_features, d_token, bins, feature_scale=feature_scale
        )
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
    name: str,
    n_num_features: int,
    d_embedding: int,
    bins: Sequence[Tensor] | None,
    *,
    feature_scale: bool = False,
) -> nn.Module | None:
    """The numeric features' embedding (behind a learned per-feature scale with
    ``feature_scale``), or None without numeric features."""
    if n_num_features == 0:
        return None
    embedding = make_num_embedding(
        name, n_features=n_num_features, d_embedding=d_embedding, bins=bins
    )
    return with_feature_scale(embedding, n_num_features) if feature_scale else embedding


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
        feature_scale: bool = False,
    ):
        super().__init__()
        if d_out <= 0:
            raise ValueError(f"d_out must be positive, got d_out={d_out}")
        self.tokenizer = FeatureTokenizer(
            n_num_features=n_num_features, cat_cardinalities=cat_cardinalities, d_token=d_token,
            num_embedding=num_embedding, bins=bins, feature_scale=feature_scale,
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
            feature_scale=architecture.feature_scale,
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
        # tabm takes its own linear form only: Linear + ReLU per feature (its paper's)
        embedding = _numeric_embedding(
            architecture.num_embedding, n_num_features, mlp.d_embedding, bins
        )
        self.has_num, self.has_cat = n_num_features > 0, bool(cat_cardinalities)
        # tabm takes only its own embedding types, so the scale stands in front of TabM
        self.feature_scale = (
            FeatureScale(n_num_features) if architecture.feature_scale and self.has_num else None
        )
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
        if self.feature_scale is not None:
            x_num = self.feature_scale(x_num)
        return self.tabm(x_num if self.has_num else None, x_cat if self.has_cat else None)


def _numeric_embedding(
    num_embedding: str,
    n_num_features: int,
    d_embedding: int,
    bins: Sequence[Tensor] | None,
    *,
    feature_scale: bool = False,
) -> nn.Module | None:
    """The MLP-style backbones' numeric embedding: ``linear`` is TabM's Linear + ReLU form."""
    if num_embedding == "linear" and n_num_features:
        embedding = LinearReLUEmbeddings(n_num_features, d_embedding)
        return with_feature_scale(embedding, n_num_features) if feature_scale else embedding
    return _num_embedding(
        num_embedding, n_num_features, d_embedding, bins, feature_scale=feature_scale
    )


class TrainingRows(NamedTuple):
    """The rows a retrieval network retrieves from: its training split, on its device."""

    x_num: Tensor  # (n, n_num) float32
    x_cat: Tensor  # (n, n_cat) int64
    y: Tensor  # (n,) int64 classes, or float32 standardised targets


class RetrievalNetwork(nn.Module):
    """The ``retrieval`` backbone: ModernNCA (Ye et al. 2025, "Revisiting Nearest
    Neighbor for Tabular Data"), as its official code (TALENT) runs it.

    Rows are embedded (numeric embedding, one-hot categories, ``Linear(., dim)``, then
    ``n_blocks`` MLP blocks and a BatchNorm when there are blocks); a row's prediction is
    the mean of the training rows' labels weighted by ``softmax(-distance / T)``
    (Euclidean distance): the log of that class distribution for classification, the
    weighted mean target for regression (``d_out == 1``). The training rows live in the
    network as buffers (they are part of the fitted model, as a k-NN model's are).

    In training each batch is compared with a random ``sample_rate`` share of the other
    training rows plus the batch itself, never a row with itself; the training loop passes
    the batch's positions among the training rows as ``rows`` (the network declares
    :attr:`reads_training_rows`). In evaluation every training row is a candidate.

    **Shape**: ``x_num (batch, n_num)``, ``x_cat (batch, n_cat)`` -> ``(batch, d_out)``.
    """

    reads_training_rows = True
    train_x_num: Tensor  # buffers: the training rows
    train_x_cat: Tensor
    train_y: Tensor
    EVAL_CHUNK_ROWS = 1024
    """Query rows compared with the training rows at once in evaluation (memory bound)."""

    def __init__(
        self,
        *,
        architecture: Architecture,
        n_num_features: int,
        cat_cardinalities: Sequence[int],
        d_out: int,
        bins: Sequence[Tensor] | None = None,
        training_rows: TrainingRows | None = None,
    ):
        super().__init__()
        settings = architecture.retrieval
        if architecture.backbone != "retrieval" or settings is None:
            raise ValueError(
                f"RetrievalNetwork builds 'retrieval' architectures, got {architecture.backbone!r}"
            )
        if d_out <= 0:
            raise ValueError(f"d_out must be positive, got d_out={d_out}")
        _check_features(n_num_features, cat_cardinalities)
        self.architecture = architecture
        self.settings = settings
        self.d_out = d_out
        self.cat_cardinalities = tuple(int(c) for c in cat_cardinalities)
        self.num_embeddings = _numeric_embedding(
            architecture.num_embedding, n_num_features, settings.d_embedding, bins,
            feature_scale=architecture.feature_scale,
        )
        d_in = n_num_features * settings.d_embedding + sum(self.cat_cardinalities)
        self.encoder = nn.Linear(d_in, settings.dim)
        blocks: list[nn.Module] = [
            nn.Sequential(
                nn.BatchNorm1d(settings.dim),
                nn.Linear(settings.dim, settings.d_block),
                nn.ReLU(),
                nn.Dropout(settings.dropout),
                nn.Linear(settings.d_block, settings.dim),
            )
            for _ in range(settings.n_blocks)
        ]
        self.post_encoder = (
            nn.Sequential(*blocks, nn.BatchNorm1d(settings.dim)) if blocks else nn.Identity()
        )
        rows = training_rows or TrainingRows(
            torch.zeros(0, n_num_features),
            torch.zeros(0, len(self.cat_cardinalities), dtype=torch.long),
            torch.zeros(0, dtype=torch.float32 if d_out == 1 else torch.long),
        )
        self.register_buffer("train_x_num", rows.x_num.detach().clone())
        self.register_buffer("train_x_cat", rows.x_cat.detach().clone())
        self.register_buffer("train_y", rows.y.detach().clone())
        # no parameter's shape depends on d_out, so the state records it
        self.register_buffer("n_outputs", torch.tensor(d_out))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs,
    ):
        saved_outputs = state_dict.get(prefix + "n_outputs")
        if saved_outputs is not None and int(saved_outputs) != self.d_out:
            error_msgs.append(
                f"{prefix or 'the network'} was saved with {int(saved_outputs)} outputs,"
                f" this one has {self.d_out}"
            )
            return
        # a saved network's training rows give its buffers their size
        for name in ("train_x_num", "train_x_cat", "train_y"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def embed(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        """``(n, n_num), (n, n_cat) -> (n, dim)``: the space distances are measured in."""
        parts = []
        if self.num_embeddings is not None:
            parts.append(self.num_embeddings(x_num).flatten(1))
        parts += [
            F.one_hot(x_cat[:, j], cardinality).to(self.encoder.weight.dtype)
            for j, cardinality in enumerate(self.cat_cardinalities)
        ]
        return self.post_encoder(self.encoder(torch.cat(parts, dim=1)))

    def forward(self, x_num: Tensor, x_cat: Tensor, rows: Tensor | None = None) -> Tensor:
        if self.training:
            if rows is None:
                raise ValueError(
                    "a retrieval network trains on batches of its training rows: pass their"
                    " positions as rows="
                )
            return self._train_forward(x_num, x_cat, rows)
        candidates = self.embed(self.train_x_num, self.train_x_cat)
        return torch.cat([
            self._predict(self.embed(x_num[i : i + self.EVAL_CHUNK_ROWS],
                                     x_cat[i : i + self.EVAL_CHUNK_ROWS]),
                          candidates, self.train_y)
            for i in range(0, max(len(x_num), 1), self.EVAL_CHUNK_ROWS)
        ])

    def _train_forward(self, x_num: Tensor, x_cat: Tensor, rows: Tensor) -> Tensor:
        n_train = len(self.train_y)
        others = torch.ones(n_train, dtype=torch.bool, device=self.train_y.device)
        others[rows] = False
        others = others.nonzero().squeeze(1)
        n_sampled = int(len(others) * self.settings.sample_rate)
        sampled = others[torch.randperm(len(others), device=others.device)[:n_sampled]]
        queries = self.embed(x_num, x_cat)
        candidates = torch.cat([queries, self.embed(self.train_x_num[sampled],
                                                    self.train_x_cat[sampled])])
        labels = torch.cat([self.train_y[rows], self.train_y[sampled]])
        return self._predict(queries, candidates, labels, exclude_self=True)

    def _predict(
        self, queries: Tensor, candidates: Tensor, labels: Tensor, *, exclude_self: bool = False
    ) -> Tensor:
        """Soft nearest neighbours of ``queries`` among ``candidates`` (whose first rows are
        the queries themselves when ``exclude_self``)."""
        with full_precision(queries):
            distances = torch.cdist(queries.float(), candidates.float()) / self.settings.temperature
            if exclude_self:
                distances.diagonal().fill_(torch.inf)  # the first len(queries) columns
            weights = torch.softmax(-distances, dim=-1)  # (batch, n_candidates)
            if self.d_out == 1:
                return weights @ labels.float().unsqueeze(-1)  # (batch, 1)
            proba = weights @ F.one_hot(labels, self.d_out).float()  # (batch, d_out)
            return torch.log(proba + 1e-7)  # log-probabilities: what softmax turns back


NetworkBuilder = Callable[..., nn.Module]

NETWORK_BUILDERS: dict[str, NetworkBuilder] = {
    "cells": DiscreteNetwork, "tabm": TabMNetwork, "retrieval": RetrievalNetwork,
}
assert set(NETWORK_BUILDERS) == set(BACKBONES), "every backbone of the space has a builder"


def build_network(
    architecture: Architecture, shapes: DataShapes, training_rows: TrainingRows | None = None
) -> nn.Module:
    """The trainable network of ``architecture`` for data of ``shapes``; a network that
    reads its training rows (``reads_training_rows``) gets ``training_rows``, the others
    ignore them. Without them a retrieval network is an empty shell for saved weights."""
    builder = NETWORK_BUILDERS[architecture.backbone]
    kwargs = shapes.kwargs()
    if getattr(builder, "reads_training_rows", False) and training_rows is not None:
        kwargs["training_rows"] = training_rows
    return builder(architecture=architecture, **kwargs)
