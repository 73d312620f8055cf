"""The search space and the discrete :class:`Architecture` values it contains.

A network is a numeric embedding, a backbone and a head. The ``cells`` backbone is a
feature tokenizer, a stack of cells and a readout. A cell is a small DAG: node 0 is the
cell's input, nodes ``1..n_nodes`` each sum an operation applied to every earlier node,
and the last node is the cell's output. The edges are derived from ``n_nodes``; nothing
lists them by hand. The ``tabm`` backbone is TabM (Gorishniy et al. 2024): an MLP over
the concatenated feature embeddings whose layers hold ``k`` BatchEnsemble members. The
``retrieval`` backbone is ModernNCA (Ye et al. 2025): a row predicts from the labels of
the training rows nearest to it in a learned embedding.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tabnas.nas.embeddings import check_num_embedding
from tabnas.nas.ops import NONE_OP, OP_REGISTRY, OpSettings, op_parameters

BACKBONES: tuple[str, ...] = ("cells", "tabm", "retrieval")
"""``cells``: tokens through searched cells; ``tabm``: an MLP of BatchEnsemble members;
``retrieval``: soft nearest neighbours among the training rows (ModernNCA)."""

TABM_ARCH_TYPES: tuple[str, ...] = ("tabm", "tabm-mini")


@dataclass(frozen=True)
class MLPSettings:
    """The ``tabm`` backbone: ``n_blocks`` x ``d_block`` MLP over the concatenated feature
    embeddings (``d_embedding`` values per numeric feature, one-hot categories), with ``k``
    members sharing their weights.

    ``arch_type="tabm"`` makes every linear layer a BatchEnsemble layer; ``"tabm-mini"``
    only adapts the input. The defaults are the ``tabm`` package's with piecewise-linear
    embeddings at a CPU-sized width (k = 16, 2 x 256; the package defaults to k = 32,
    2 x 512).
    """

    n_blocks: int = 2
    d_block: int = 256
    dropout: float = 0.1
    k: int = 16
    arch_type: str = "tabm"
    d_embedding: int = 16

    def __post_init__(self) -> None:
        for name in ("n_blocks", "d_block", "k", "d_embedding"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {name}={getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout}")
        if self.arch_type not in TABM_ARCH_TYPES:
            raise ValueError(f"arch_type must be one of {TABM_ARCH_TYPES}, got {self.arch_type!r}")


@dataclass(frozen=True)
class RetrievalSettings:
    """The ``retrieval`` backbone (ModernNCA, Ye et al. 2025): feature embeddings (one-hot
    categories) -> ``Linear(., dim)`` -> ``n_blocks`` MLP blocks -> a point in ``dim``
    dimensions; a row's prediction is the softmax(-distance / ``temperature``)-weighted
    mean of the training rows' labels. Each training step compares a batch with a random
    ``sample_rate`` share of the training rows (the cost stays linear in the rows).

    The defaults are the official code's (TALENT ``configs/default/modernNCA.json``: dim
    128, no blocks, d_block 512, dropout 0.1, temperature 1, sample rate 0.5), with the
    space's numeric embedding at ``d_embedding`` (TALENT: PLR-lite, 34).
    """

    dim: int = 128
    n_blocks: int = 0
    d_block: int = 512
    dropout: float = 0.1
    temperature: float = 1.0
    sample_rate: float = 0.5
    d_embedding: int = 16

    def __post_init__(self) -> None:
        for name in ("dim", "d_block", "d_embedding"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {name}={getattr(self, name)}")
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be non-negative, got n_blocks={self.n_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got temperature={self.temperature}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got sample_rate={self.sample_rate}")


NO_COMPRESSION = 2**31 - 1
"""``attention_kv_compression_min_tokens`` of settings saved before the option existed."""


def cell_edges(n_nodes: int) -> tuple[tuple[int, int], ...]:
    """All ``(source, target)`` pairs of a cell with ``n_nodes`` intermediate nodes.

    Targets run ``1..n_nodes``; each takes every earlier node (0 is the cell input).
    """
    return tuple((source, target) for target in range(1, n_nodes + 1) for source in range(target))


@dataclass(frozen=True)
class SearchSpace:
    """What the supernet can express.

    Attributes:
        n_cells: cells stacked one after another.
        n_nodes: intermediate nodes per cell.
        node_inputs: how many incoming edges each node keeps in a final architecture.
        ops: candidate operation names (keys of the op registry).
        settings: sizes and dropouts shared by the operations.
        num_embeddings: the numeric embeddings the final choice may use; the supernet
            is searched with the first.
        backbones: ``"cells"`` (searched), ``"tabm"`` (:class:`MLPSettings`) and
            ``"retrieval"`` (:class:`RetrievalSettings`), any non-empty subset.
        mlp: the size of the ``tabm`` backbone.
        retrieval: the settings of the ``retrieval`` backbone.
        feature_scale: every network of the space puts a learned per-feature scale in
            front of its numeric embedding (RealMLP's; :class:`~tabnas.nas.embeddings.
            FeatureScale`).
    """

    n_cells: int = 2
    n_nodes: int = 2
    node_inputs: int = 1
    ops: tuple[str, ...] = ("attention", "ffn", "resnet", "linear", "skip", "none")
    settings: OpSettings = field(default_factory=OpSettings)
    num_embeddings: tuple[str, ...] = ("linear",)
    backbones: tuple[str, ...] = ("cells",)
    mlp: MLPSettings = field(default_factory=MLPSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    feature_scale: bool = False

    def __post_init__(self) -> None:
        if not self.num_embeddings:
            raise ValueError("num_embeddings needs at least one embedding")
        for name in self.num_embeddings:
            check_num_embedding(name)
        if not self.backbones or any(b not in BACKBONES for b in self.backbones):
            raise ValueError(
                f"backbones must be a non-empty subset of {BACKBONES}, got {self.backbones}"
            )
        if self.n_cells <= 0:
            raise ValueError(f"n_cells must be positive, got n_cells={self.n_cells}")
        if self.n_nodes <= 0:
            raise ValueError(f"n_nodes must be positive, got n_nodes={self.n_nodes}")
        if self.node_inputs <= 0:
            raise ValueError(f"node_inputs must be positive, got node_inputs={self.node_inputs}")
        unknown = [op for op in self.ops if op not in OP_REGISTRY]
        if unknown:
            raise ValueError(f"unknown operations {unknown}; registered: {sorted(OP_REGISTRY)}")
        if len(set(self.ops)) != len(self.ops):
            raise ValueError(f"ops must not repeat, got {self.ops}")
        if not [op for op in self.ops if op != NONE_OP]:
            raise ValueError(f"ops needs at least one operation other than 'none', got {self.ops}")

    @property
    def search_embedding(self) -> str:
        """The numeric embedding the supernet is searched with: the first of the axis."""
        return self.num_embeddings[0]

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        return cell_edges(self.n_nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def contains(self, architecture: Architecture) -> bool:
        """Whether ``architecture`` is a point of this space."""
        if architecture.num_embedding not in self.num_embeddings:
            return False
        if architecture.feature_scale != self.feature_scale:
            return False
        if architecture.backbone not in self.backbones:
            return False
        if architecture.backbone == "tabm":
            return architecture.mlp == self.mlp
        if architecture.backbone == "retrieval":
            return architecture.retrieval == self.retrieval
        if len(architecture.cells) != self.n_cells:
            return False
        for cell in architecture.cells:
            if len(cell) != self.n_nodes:
                return False
            for target, inputs in enumerate(cell, start=1):
                if not 0 < len(inputs) <= self.node_inputs:
                    return False
                if any(e.source >= target or e.op not in self.ops for e in inputs):
                    return False
        return True

    def sample(self, seed: int) -> Architecture:
        """A uniformly random point of the space (Li & Talwalkar 2019's random search).

        Each node draws ``min(node_inputs, target)`` distinct inputs, each with an op drawn
        uniformly from the ops other than ``none``.
        """
        rng = random.Random(seed)
        ops = [op for op in self.ops if op != NONE_OP]
        cells = []
        for _ in range(self.n_cells):
            nodes = []
            for target in range(1, self.n_nodes + 1):
                sources = sorted(rng.sample(range(target), min(self.node_inputs, target)))
                nodes.append(tuple(Edge(source=s, op=rng.choice(ops)) for s in sources))
            cells.append(tuple(nodes))
        return Architecture(
            cells=tuple(cells), settings=self.settings, num_embedding=self.search_embedding,
            feature_scale=self.feature_scale,
        )

    def tabm(self, num_embedding: str | None = None) -> Architecture:
        """The space's ``tabm`` point with ``num_embedding`` (default: the searched one)."""
        return Architecture.tabm(
            self.mlp, num_embedding=num_embedding or self.search_embedding,
            feature_scale=self.feature_scale,
        )

    def modern_nca(self, num_embedding: str | None = None) -> Architecture:
        """The space's ``retrieval`` point with ``num_embedding`` (default: the searched one)."""
        return Architecture.modern_nca(
            self.retrieval, num_embedding=num_embedding or self.search_embedding,
            feature_scale=self.feature_scale,
        )

    def candidates(self, selected: Architecture | None = None) -> list[Architecture]:
        """What a fit trains: ``selected`` (the ``cells`` a search selected, when ``cells``
        is a backbone of the space), then the ``tabm`` point with each embedding of the
        space, then the ``retrieval`` point with the searched embedding. The final model
        is the validation ensemble of these (:mod:`tabnas.training.ensemble`), so a
        candidate that does not help on validation gets no weight."""
        out = [selected] if selected is not None and "cells" in self.backbones else []
        if "tabm" in self.backbones:
            out += [self.tabm(name) for name in self.num_embeddings]
        if "retrieval" in self.backbones:
            out.append(self.modern_nca())
        return out

    def chain(self, ops: Sequence[str]) -> Architecture:
        """The point of this space whose every cell chains ``ops`` (one per node).

        ``space.chain(["attention", "ffn"])`` is FT-Transformer at this space's sizes,
        ``space.chain(["resnet", "skip"])`` a ResNet.
        """
        if len(ops) != self.n_nodes:
            raise ValueError(f"a cell of this space has {self.n_nodes} nodes, got ops={list(ops)}")
        return dataclasses.replace(
            Architecture.chain([list(ops)] * self.n_cells, self.settings),
            num_embedding=self.search_embedding, feature_scale=self.feature_scale,
        )

    def op_parameters(self, n_tokens: int) -> dict[str, int]:
        """Trainable parameters of each candidate op for ``n_tokens`` feature tokens."""
        return op_parameters(self.ops, self.settings, n_tokens)

    def at_width(self, width: float) -> SearchSpace:
        """The same space with its ops ``width`` times as wide (:meth:`OpSettings.at_width`):
        a proxy to search on; its points come back to full width with
        ``architecture.with_settings(space.settings)``."""
        if width == 1.0:
            return self
        return dataclasses.replace(self, settings=self.settings.at_width(width))


@dataclass(frozen=True)
class Edge:
    """One input of a node: the operation ``op`` applied to node ``source``."""

    source: int
    op: str


Node = tuple[Edge, ...]
Cell = tuple[Node, ...]


@dataclass(frozen=True)
class Architecture:
    """A discrete network of the search space: plain data, JSON-safe.

    ``num_embedding`` names the numeric embedding; ``backbone`` is ``"cells"``,
    ``"tabm"`` or ``"retrieval"``. For ``cells``, ``cells[c][k]`` lists the incoming
    edges of node ``k + 1`` of cell ``c`` (the last node of a cell is its output) and
    ``settings`` sizes the ops; for ``tabm``, ``cells`` is empty and ``mlp`` sizes the
    backbone; for ``retrieval``, ``cells`` is empty and ``retrieval`` sets it.
    ``feature_scale`` puts a learned per-feature scale in front of the numeric embedding.

    Examples:
        >>> arch = Architecture.chain([["attention", "ffn"]] * 3)  # FT-Transformer's body
        >>> Architecture.from_dict(arch.to_dict()) == arch
        True
        >>> Architecture.tabm(num_embedding="piecewise_linear").backbone
        'tabm'
    """

    cells: tuple[Cell, ...]
    settings: OpSettings = field(default_factory=OpSettings)
    num_embedding: str = "linear"
    backbone: str = "cells"
    mlp: MLPSettings | None = None
    retrieval: RetrievalSettings | None = None
    feature_scale: bool = False

    def __post_init__(self) -> None:
        check_num_embedding(self.num_embedding)
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; available: {BACKBONES}")
        for backbone, name in (("tabm", "mlp"), ("retrieval", "retrieval")):
            if self.backbone == backbone and getattr(self, name) is None:
                raise ValueError(
                    f"a {backbone!r} Architecture has no cells and needs {name} settings"
                )
            if self.backbone != backbone and getattr(self, name) is not None:
                raise ValueError(f"{name} settings belong to the {backbone!r} backbone only")
        if self.backbone != "cells":
            if self.cells:
                raise ValueError(f"a {self.backbone!r} Architecture has no cells")
            return
        if not self.cells:
            raise ValueError("an Architecture needs at least one cell")
        for c, cell in enumerate(self.cells):
            if not cell:
                raise ValueError(f"cell {c} has no nodes")
            for target, inputs in enumerate(cell, start=1):
                if not inputs:
                    raise ValueError(f"node {target} of cell {c} has no inputs")
                for edge in inputs:
                    if not 0 <= edge.source < target:
                        raise ValueError(
                            f"node {target} of cell {c} reads node {edge.source};"
                            f" a node reads only earlier nodes 0..{target - 1}"
                        )
                    if edge.op not in OP_REGISTRY:
                        raise ValueError(
                            f"unknown operation {edge.op!r} in cell {c};"
                            f" registered: {sorted(OP_REGISTRY)}"
                        )

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def chain(
        cls, cells: Sequence[Sequence[str]], settings: OpSettings | None = None
    ) -> Architecture:
        """Cells in which node ``k`` applies the ``k``-th op to node ``k - 1``."""
        return cls(
            cells=tuple(
                tuple((Edge(source=k, op=op),) for k, op in enumerate(ops)) for ops in cells
            ),
            settings=settings or OpSettings(),
        )

    @classmethod
    def ft_transformer(cls, n_blocks: int = 3) -> Architecture:
        """FT-Transformer with Gorishniy et al.'s default sizes, one cell per block."""
        if not 1 <= n_blocks <= 6:
            raise ValueError(f"n_blocks must be in 1..6, got n_blocks={n_blocks}")
        settings = OpSettings(
            d_token=(96, 128, 192, 256, 320, 384)[n_blocks - 1],
            n_heads=8,
            attention_dropout=(0.1, 0.15, 0.2, 0.25, 0.3, 0.35)[n_blocks - 1],
            ffn_d_hidden_multiplier=4 / 3,
            ffn_dropout=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25)[n_blocks - 1],
            residual_dropout=0.0,
        )
        return cls.chain([["attention", "ffn"]] * n_blocks, settings)

    @classmethod
    def resnet(
        cls, n_blocks: int = 2, *, d_token: int = 8, d_hidden: int = 384, dropout: float = 0.15
    ) -> Architecture:
        """A ResNet: ``n_blocks`` ResNet blocks over the flattened tokens, one cell per block."""
        settings = OpSettings(
            d_token=d_token, n_heads=1, resnet_d_hidden=d_hidden, resnet_dropout=dropout
        )
        return cls.chain([["resnet"]] * n_blocks, settings)

    @classmethod
    def tabm(
        cls,
        mlp: MLPSettings | None = None,
        *,
        num_embedding: str = "piecewise_linear",
        feature_scale: bool = False,
    ) -> Architecture:
        """TabM: ``mlp`` (default :class:`MLPSettings`) over ``num_embedding`` embeddings."""
        return cls(
            cells=(), num_embedding=num_embedding, backbone="tabm", mlp=mlp or MLPSettings(),
            feature_scale=feature_scale,
        )

    @classmethod
    def modern_nca(
        cls,
        settings: RetrievalSettings | None = None,
        *,
        num_embedding: str = "piecewise_linear",
        feature_scale: bool = False,
    ) -> Architecture:
        """ModernNCA: ``settings`` (default :class:`RetrievalSettings`) over
        ``num_embedding`` embeddings."""
        return cls(
            cells=(), num_embedding=num_embedding, backbone="retrieval",
            retrieval=settings or RetrievalSettings(), feature_scale=feature_scale,
        )

    def with_embedding(self, num_embedding: str) -> Architecture:
        """The same network with another numeric embedding."""
        return dataclasses.replace(self, num_embedding=num_embedding)

    def with_settings(self, settings: OpSettings) -> Architecture:
        """The same cells with ops sized by ``settings`` (a search's proxy width back to
        the training width); other backbones have no ops and come back unchanged."""
        if self.backbone != "cells":
            return self
        return dataclasses.replace(self, settings=settings)

    # ---- inspection -------------------------------------------------------------------
    def live_nodes(self, cell: int) -> frozenset[int]:
        """The nodes of ``cell`` that the cell's output depends on (0 is the input)."""
        nodes = self.cells[cell]
        live = {len(nodes)}
        for target in range(len(nodes), 0, -1):
            if target in live:
                live.update(e.source for e in nodes[target - 1] if e.op != NONE_OP)
        return frozenset(live)

    @property
    def ops(self) -> tuple[str, ...]:
        """The operations of the live edges, in order."""
        return tuple(
            edge.op
            for c, cell in enumerate(self.cells)
            for target, inputs in enumerate(cell, start=1)
            if target in self.live_nodes(c)
            for edge in inputs
        )

    def op_parameters(self, n_tokens: int) -> dict[str, int]:
        """Trainable parameters of each op of this architecture's size, for ``n_tokens`` tokens."""
        return op_parameters(sorted(set(self.ops)), self.settings, n_tokens)

    # ---- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "cells": [
                [[[edge.source, edge.op] for edge in inputs] for inputs in cell]
                for cell in self.cells
            ],
            "settings": dataclasses.asdict(self.settings),
            "num_embedding": self.num_embedding,
            "backbone": self.backbone,
            "mlp": None if self.mlp is None else dataclasses.asdict(self.mlp),
            "retrieval": None if self.retrieval is None else dataclasses.asdict(self.retrieval),
            "feature_scale": self.feature_scale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        """The inverse of :meth:`to_dict`; dicts without the embedding and backbone keys
        (tabnas 0.1) are linear-embedding ``cells`` architectures, and settings without
        attention compression had none."""
        try:
            cells = tuple(
                tuple(tuple(Edge(source=int(s), op=str(op)) for s, op in inputs) for inputs in cell)
                for cell in data["cells"]
            )
            fields = dict(data.get("settings", {}))
            if fields:  # saved before attention compressed many tokens: it never did
                fields.setdefault("attention_kv_compression_min_tokens", NO_COMPRESSION)
            settings = OpSettings(**fields)
            mlp = None if data.get("mlp") is None else MLPSettings(**data["mlp"])
            retrieval = (
                None if data.get("retrieval") is None else RetrievalSettings(**data["retrieval"])
            )
            return cls(
                cells=cells, settings=settings, num_embedding=data.get("num_embedding", "linear"),
                backbone=data.get("backbone", "cells"), mlp=mlp, retrieval=retrieval,
                feature_scale=bool(data.get("feature_scale", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an Architecture dict: {error}") from error

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @property
    def _embedding_text(self) -> str:
        scale = " behind a learned feature scale" if self.feature_scale else ""
        return f"{self.num_embedding} embeddings{scale}"

    def __str__(self) -> str:
        if self.backbone == "tabm":
            m = self.mlp
            assert m is not None  # __post_init__: a tabm Architecture has mlp settings
            return (
                f"Architecture: TabM ({m.arch_type}, k={m.k}, {m.n_blocks} x {m.d_block},"
                f" dropout={m.dropout}), {self._embedding_text} (d={m.d_embedding})"
            )
        if self.backbone == "retrieval":
            r = self.retrieval
            assert r is not None  # __post_init__: a retrieval Architecture has its settings
            return (
                f"Architecture: ModernNCA (dim={r.dim}, {r.n_blocks} block(s),"
                f" temperature={r.temperature}, sample_rate={r.sample_rate}),"
                f" {self._embedding_text} (d={r.d_embedding})"
            )
        s = self.settings
        lines = [
            f"Architecture: {len(self.cells)} cell(s), d_token={s.d_token},"
            f" {self._embedding_text}"
        ]
        for c, cell in enumerate(self.cells):
            live = self.live_nodes(c)
            terms = []
            for target, inputs in enumerate(cell, start=1):
                if target not in live:
                    continue
                rhs = " + ".join(f"{e.op}({node_name(e.source)})" for e in inputs)
                terms.append(f"{node_name(target)} = {rhs}")
            lines.append(f"  cell {c}: " + "; ".join(terms))
        return "\n".join(lines)


def node_name(index: int) -> str:
    """Node 0 of a cell is its input ``in``; node ``k`` is ``nk``."""
    return "in" if index == 0 else f"n{index}"


def edge_name(source: int, target: int) -> str:
    """``edge_name(0, 2) == "in->n2"``."""
    return f"{node_name(source)}->{node_name(target)}"
