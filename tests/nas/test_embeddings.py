import pytest
import torch
from rtdl_num_embeddings import PeriodicEmbeddings, PiecewiseLinearEmbeddings

from tabnas.nas.embeddings import NUM_EMBEDDING_REGISTRY, make_num_embedding, quantile_bins


@pytest.mark.parametrize("name", sorted(NUM_EMBEDDING_REGISTRY))
def test_every_embedding_maps_features_to_vectors(name):
    x = torch.randn(64, 3)
    module = make_num_embedding(name, n_features=3, d_embedding=8, bins=quantile_bins(x))
    assert module(x).shape == (64, 3, 8)


def test_embeddings_are_the_packages_own_modules():
    x = torch.randn(64, 2)
    assert isinstance(
        make_num_embedding("periodic", n_features=2, d_embedding=8), PeriodicEmbeddings
    )
    ple = make_num_embedding("piecewise_linear", n_features=2, d_embedding=8, bins=quantile_bins(x))
    assert isinstance(ple, PiecewiseLinearEmbeddings) and ple.linear0 is not None  # version "B"


def test_piecewise_linear_needs_bins_and_unknown_names_list_the_registered():
    with pytest.raises(ValueError, match="needs bins"):
        make_num_embedding("piecewise_linear", n_features=2, d_embedding=8)
    with pytest.raises(ValueError, match="registered: .*periodic"):
        make_num_embedding("fourier", n_features=2, d_embedding=8)
    with pytest.raises(ValueError, match="bins for 1 features"):
        make_num_embedding(
            "piecewise_linear", n_features=2, d_embedding=8, bins=quantile_bins(torch.randn(9, 1))
        )


def test_quantile_bins_survive_constant_binary_and_tiny_columns():
    x = torch.stack(
        [torch.randn(100), torch.full((100,), 3.0), (torch.arange(100) % 2).float()], dim=1
    )
    bins = quantile_bins(x, n_bins=10)
    assert len(bins[0]) == 11 and bool((bins[0][1:] > bins[0][:-1]).all())
    assert bins[1].tolist() == [2.5, 3.5]  # one bin around the constant
    assert bins[2][0] == 0.0 and bins[2][-1] == 1.0  # a missing-value indicator
    tiny = quantile_bins(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    assert tiny[0].tolist() == [0.0, 2.0] and tiny[1].tolist() == [0.5, 1.5]
    module = make_num_embedding("piecewise_linear", n_features=3, d_embedding=4, bins=bins)
    assert torch.isfinite(module(x)).all()


@pytest.mark.parametrize("name", sorted(NUM_EMBEDDING_REGISTRY))
@pytest.mark.parametrize("backbone", ["cells", "tabm", "retrieval"])
def test_every_backbone_builds_and_trains_with_every_embedding(name, backbone):
    """The "best" preset trains TabM with every embedding of its space."""
    from tabnas.nas.network import DataShapes, TrainingRows, build_network
    from tabnas.nas.space import Architecture, MLPSettings, RetrievalSettings, SearchSpace

    x, x_cat = torch.randn(32, 3), torch.randint(0, 4, (32, 1))
    shapes = DataShapes(3, (4,), 2, bins=tuple(quantile_bins(x)))
    architecture = {
        "tabm": lambda: Architecture.tabm(
            MLPSettings(n_blocks=1, d_block=16, k=2), num_embedding=name
        ),
        "retrieval": lambda: Architecture.modern_nca(RetrievalSettings(dim=8), num_embedding=name),
        "cells": lambda: SearchSpace(n_cells=1).chain(["ffn", "resnet"]).with_embedding(name),
    }[backbone]()
    training_rows = TrainingRows(x, x_cat, torch.randint(0, 2, (32,)))
    network = build_network(architecture, shapes, training_rows)
    kwargs = {"rows": torch.arange(32)} if backbone == "retrieval" else {}
    out = network(x, x_cat, **kwargs)
    assert out.shape[0] == 32 and out.shape[-1] == 2
    out.sum().backward()


@pytest.mark.parametrize("backbone", ["cells", "tabm", "retrieval"])
def test_a_feature_scale_stands_in_front_of_every_backbones_embedding(backbone):
    """RealMLP's scaling layer: one learned factor per numeric feature, starting at 1, no
    weight decay; the same network without it has exactly those parameters fewer."""
    import dataclasses

    from tabnas.nas.embeddings import FeatureScale
    from tabnas.nas.network import DataShapes, TrainingRows, build_network
    from tabnas.nas.space import MLPSettings, RetrievalSettings, SearchSpace
    from tabnas.training.optim import make_parameter_groups

    x, x_cat = torch.randn(32, 3), torch.randint(0, 4, (32, 1))
    shapes = DataShapes(3, (4,), 2, bins=tuple(quantile_bins(x)))
    space = SearchSpace(
        n_cells=1, num_embeddings=("piecewise_linear",), backbones=(backbone,),
        mlp=MLPSettings(n_blocks=1, d_block=16, k=2), retrieval=RetrievalSettings(dim=8),
        feature_scale=True,
    )
    (scaled,) = space.candidates(space.chain(["ffn", "resnet"]))
    assert scaled.feature_scale and space.contains(scaled)
    plain = dataclasses.replace(scaled, feature_scale=False)
    assert not space.contains(plain)
    rows = TrainingRows(x, x_cat, torch.randint(0, 2, (32,)))
    torch.manual_seed(0)
    network = build_network(scaled, shapes, rows)
    scales = [m for m in network.modules() if isinstance(m, FeatureScale)]
    assert len(scales) == 1 and torch.equal(scales[0].scale, torch.ones(3))

    def count(net):
        return sum(p.numel() for p in net.parameters())

    assert count(network) == count(build_network(plain, shapes, rows)) + 3
    no_decay = make_parameter_groups(network, 1e-3)[1]["params"]
    assert any(p is scales[0].scale for p in no_decay)
    kwargs = {"rows": torch.arange(32)} if backbone == "retrieval" else {}
    with torch.no_grad():
        before = network.eval()(x, x_cat, **kwargs)
        scales[0].scale[1] = 0.0  # a silenced feature: the output no longer reads it
        x_changed = x.clone()
        x_changed[:, 1] = 100.0
        after = network(x, x_cat, **kwargs), network(x_changed, x_cat, **kwargs)
    assert not torch.allclose(before, after[0])
    assert torch.allclose(after[0], after[1])
