"""Candidate operations and their registry.

Every operation maps feature tokens ``(batch, n_tokens, d_token)`` to a tensor of the same
shape. The blocks that mix information (``attention``, ``ffn``, ``resnet``) are pre-norm
residual blocks, as in FT-Transformer and Gorishniy et al.'s ResNet, so a chain of them
is exactly those published networks.

Adding an operation is one :func:`register_op` call plus its test.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from rtdl_revisiting_models import MultiheadAttention
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class OpSettings:
    """Sizes and regularisation shared by all candidate operations of a network."""

    d_token: int = 64
    n_heads: int = 8
    attention_dropout: float = 0.1
    attention_dropout_max_tokens: int = 64
    """Above this many tokens the attention probabilities get no dropout: the fused
    kernel then never holds the ``n_tokens**2`` matrices (at 500 features and batch 256
    they take gigabytes per op)."""
    attention_kv_compression: float = 0.25
    attention_kv_compression_min_tokens: int = 65
    """From this many tokens on, attention compresses its keys and values along the
    tokens to ``attention_kv_compression`` of their number (Linformer, as
    ``rtdl_revisiting_models`` builds it, one map for keys and one for values): its cost
    then grows linearly, not quadratically, with the features. Tables of up to 63
    features (64 tokens with [CLS]) keep full attention."""
    ffn_d_hidden_multiplier: float = 4 / 3
    ffn_dropout: float = 0.05
    resnet_d_hidden: int = 256
    resnet_dropout: float = 0.15
    residual_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_token <= 0:
            raise ValueError(f"d_token must be positive, got d_token={self.d_token}")
        if self.n_heads <= 0 or self.d_token % self.n_heads:
            raise ValueError(
                f"d_token must be a multiple of n_heads, got d_token={self.d_token},"
                f" n_heads={self.n_heads}"
            )
        if self.resnet_d_hidden <= 0:
            raise ValueError(f"resnet_d_hidden must be positive, got {self.resnet_d_hidden}")
        if not 0.0 < self.attention_kv_compression < 1.0:
            raise ValueError(
                "attention_kv_compression must be in (0, 1), got"
                f" attention_kv_compression={self.attention_kv_compression}"
            )
        for name in ("attention_dropout", "ffn_dropout", "resnet_dropout", "residual_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {name}={value}")

    def at_width(self, width: float) -> OpSettings:
        """These settings with ``d_token`` and ``resnet_d_hidden`` scaled by ``width``
        (``d_token`` rounded to a multiple of ``n_heads``, at least one per head): the
        proxy network a search may run on (DARTS searches narrower networks than it
        trains)."""
        if not 0.0 < width <= 1.0:
            raise ValueError(f"width must be in (0, 1], got width={width}")
        heads = max(1, round(self.d_token * width / self.n_heads))
        d_token = heads * self.n_heads
        hidden = max(1, round(self.resnet_d_hidden * d_token / self.d_token))
        return dataclasses.replace(self, d_token=d_token, resnet_d_hidden=hidden)


OpFactory = Callable[[OpSettings, int], nn.Module]
"""Builds an operation from the settings and the number of tokens."""

OP_REGISTRY: dict[str, OpFactory] = {}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Register an operation factory under ``name``."""

    def decorator(factory: OpFactory) -> OpFactory:
        if name in OP_REGISTRY:
            raise ValueError(f"an operation named {name!r} is already registered")
        OP_REGISTRY[name] = factory
        return factory

    return decorator


def make_op(name: str, settings: OpSettings, n_tokens: int) -> nn.Module:
    """Build the registered operation ``name``."""
    try:
        factory = OP_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown operation {name!r}; registered operations: {sorted(OP_REGISTRY)}"
        ) from None
    return factory(settings, n_tokens)


class _ReGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=-1)
        return a * torch.relu(b)


class FusedMultiheadAttention(MultiheadAttention):
    """``rtdl_revisiting_models``'s multi-head attention -- the same parameters, the same
    function -- computed by :func:`torch.nn.functional.scaled_dot_product_attention`.

    That is a fused kernel on CUDA, and on the CPU a flash kernel whenever no dropout is
    drawn (evaluation, scoring, prediction): 2.5x faster and a quarter of the memory at
    500 tokens (``benchmarks/perf.py``). Built with Linformer compression, keys and
    values are compressed along the tokens first, as rtdl's forward does.
    """

    def forward(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        batch_size, n_q_tokens, d = x_q.shape
        k, v = self.W_k(x_kv), self.W_v(x_kv)
        if self.key_compression is not None:  # (batch, n_tokens, d) -> (batch, m, d)
            # rtdl's Linear over the tokens, as one matmul whose result is contiguous:
            # the fused kernels need a unit stride in the last dimension
            compress_v = (
                self.key_compression if self.value_compression is None else self.value_compression
            )
            k = torch.matmul(self.key_compression.weight, k)
            v = torch.matmul(compress_v.weight, v)
        q, k, v = (
            t.reshape(batch_size, -1, self._n_heads, d // self._n_heads).transpose(1, 2)
            for t in (self.W_q(x_q), k, v)
        )  # (batch, n_heads, n_tokens, d_head)
        p = self.dropout.p if self.dropout is not None and self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        x = x.transpose(1, 2).reshape(batch_size, n_q_tokens, d)
        return x if self.W_out is None else self.W_out(x)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over the feature tokens, with a residual."""

    def __init__(
        self,
        *,
        d_token: int,
        n_heads: int,
        dropout: float,
        residual_dropout: float,
        n_tokens: int | None = None,
        kv_compression: float | None = None,
    ):
        super().__init__()
        self.normalization = nn.LayerNorm(d_token)
        self.attention = FusedMultiheadAttention(
            d_embedding=d_token, n_heads=n_heads, dropout=dropout,
            **(
                {} if kv_compression is None else dict(
                    n_tokens=n_tokens, linformer_kv_compression_ratio=kv_compression,
                    linformer_kv_compression_sharing="headwise",
                )
            ),
        )
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: Tensor) -> Tensor:
        z = self.normalization(x)
        return x + self.residual_dropout(self.attention(z, z))


class FeedForwardBlock(nn.Module):
    """Pre-norm token-wise ReGLU feed-forward block (FT-Transformer's), with a residual."""

    def __init__(self, *, d_token: int, d_hidden: int, dropout: float, residual_dropout: float):
        super().__init__()
        self.normalization = nn.LayerNorm(d_token)
        self.ffn = nn.Sequential(
            OrderedDict(
                linear1=nn.Linear(d_token, 2 * d_hidden),
                activation=_ReGLU(),
                dropout=nn.Dropout(dropout),
                linear2=nn.Linear(d_hidden, d_token),
            )
        )
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual_dropout(self.ffn(self.normalization(x)))


class ResNetBlock(nn.Module):
    """Gorishniy et al.'s ResNet block over all feature tokens at once.

    The tokens are flattened into one vector of ``n_tokens * d_token`` values, so the block
    mixes every feature with every other: BatchNorm -> Linear -> ReLU -> Dropout -> Linear
    -> Dropout, added to its input.
    """

    def __init__(
        self, *, n_tokens: int, d_token: int, d_hidden: int, dropout: float, residual_dropout: float
    ):
        super().__init__()
        d_block = n_tokens * d_token
        self.block = nn.Sequential(
            OrderedDict(
                normalization=nn.BatchNorm1d(d_block),
                linear1=nn.Linear(d_block, d_hidden),
                activation=nn.ReLU(),
                dropout1=nn.Dropout(dropout),
                linear2=nn.Linear(d_hidden, d_block),
                dropout2=nn.Dropout(residual_dropout),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)  # (batch, n_tokens * d_token)
        return x + self.block(flat).view_as(x)  # (batch, n_tokens, d_token)


class Zero(nn.Module):
    """The ``none`` operation: the edge contributes nothing."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


@register_op("attention")
def _attention(settings: OpSettings, n_tokens: int) -> nn.Module:
    return AttentionBlock(
        d_token=settings.d_token,
        n_heads=settings.n_heads,
        dropout=(
            settings.attention_dropout if n_tokens <= settings.attention_dropout_max_tokens else 0.0
        ),
        residual_dropout=settings.residual_dropout,
        n_tokens=n_tokens,
        kv_compression=(
            settings.attention_kv_compression
            if n_tokens >= settings.attention_kv_compression_min_tokens
            else None
        ),
    )


@register_op("ffn")
def _ffn(settings: OpSettings, n_tokens: int) -> nn.Module:
    return FeedForwardBlock(
        d_token=settings.d_token,
        d_hidden=int(settings.d_token * settings.ffn_d_hidden_multiplier),
        dropout=settings.ffn_dropout,
        residual_dropout=settings.residual_dropout,
    )


@register_op("resnet")
def _resnet(settings: OpSettings, n_tokens: int) -> nn.Module:
    return ResNetBlock(
        n_tokens=n_tokens,
        d_token=settings.d_token,
        d_hidden=settings.resnet_d_hidden,
        dropout=settings.resnet_dropout,
        residual_dropout=settings.residual_dropout,
    )


@register_op("linear")
def _linear(settings: OpSettings, n_tokens: int) -> nn.Module:
    return nn.Linear(settings.d_token, settings.d_token)


@register_op("skip")
def _skip(settings: OpSettings, n_tokens: int) -> nn.Module:
    return nn.Identity()


@register_op("none")
def _none(settings: OpSettings, n_tokens: int) -> nn.Module:
    return Zero()


def op_parameters(names, settings: OpSettings, n_tokens: int) -> dict[str, int]:
    """Trainable parameters of each named op, built at ``settings`` for ``n_tokens`` tokens."""
    return {
        name: sum(
            p.numel() for p in make_op(name, settings, n_tokens).parameters() if p.requires_grad
        )
        for name in names
    }


NONE_OP = "none"
DEFAULT_OPS: tuple[str, ...] = ("attention", "ffn", "resnet", "linear", "skip", "none")
TOKEN_MIXING_OPS = frozenset({"attention", "resnet"})
"""The ops through which one token sees the others; the rest act on each token alone."""
