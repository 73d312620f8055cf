"""The search space, Architecture values, and the published networks as points of it."""

import json

import pytest
import rtdl_revisiting_models as rtdl
import torch

from tabnas.nas.network import DiscreteNetwork
from tabnas.nas.ops import OpSettings
from tabnas.nas.space import Architecture, Edge, SearchSpace, cell_edges


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_edges_are_derived_from_the_node_count():
    assert cell_edges(1) == ((0, 1),)
    assert cell_edges(3) == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert SearchSpace(n_nodes=4).n_edges == 10


def test_space_rejects_unknown_ops_with_the_registered_names():
    with pytest.raises(ValueError, match="registered"):
        SearchSpace(ops=("attention", "conv3x3"))
    with pytest.raises(ValueError, match="other than 'none'"):
        SearchSpace(ops=("none",))


def test_architecture_json_round_trip_and_text():
    arch = Architecture(
        cells=(((Edge(0, "attention"),), (Edge(0, "skip"), Edge(1, "ffn"))),),
        settings=OpSettings(d_token=16, n_heads=4),
    )
    restored = Architecture.from_dict(json.loads(json.dumps(arch.to_dict())))
    assert restored == arch
    text = str(arch)
    assert "n1 = attention(in)" in text and "n2 = skip(in) + ffn(n1)" in text
    assert "d_token=16" in text


def test_invalid_architectures_are_refused():
    with pytest.raises(ValueError, match="reads only earlier nodes"):
        Architecture(cells=(((Edge(1, "ffn"),),),))
    with pytest.raises(ValueError, match="unknown operation"):
        Architecture(cells=(((Edge(0, "conv"),),),))
    with pytest.raises(ValueError, match="not an Architecture dict"):
        Architecture.from_dict({"cell": []})


def test_dead_nodes_are_not_built():
    # n2 reads the input directly, so n1 feeds nothing and costs nothing.
    arch = Architecture(
        cells=(((Edge(0, "resnet"),), (Edge(0, "ffn"),)),),
        settings=OpSettings(d_token=8, n_heads=2),
    )
    assert arch.live_nodes(0) == frozenset({0, 2})
    assert arch.ops == ("ffn",)
    net = DiscreteNetwork(architecture=arch, n_num_features=3, cat_cardinalities=[], d_out=1)
    assert list(net.cells[0].keys()) == ["0_2_ffn"]


def test_ft_transformer_is_a_point_of_the_space_with_rtdl_parameter_count():
    arch = Architecture.ft_transformer(n_blocks=3)
    space = SearchSpace(n_cells=3, n_nodes=2, settings=arch.settings)
    assert space.contains(arch)
    net = DiscreteNetwork(architecture=arch, n_num_features=5, cat_cardinalities=[3, 7], d_out=4)
    reference = rtdl.FTTransformer(
        n_cont_features=5, cat_cardinalities=[3, 7], d_out=4,
        **rtdl.FTTransformer.get_default_kwargs(3),
    )
    # rtdl drops the first block's attention LayerNorm; our attention op always has it.
    d = arch.settings.d_token
    assert n_params(net) == n_params(reference) + 2 * d
    blocks = arch.op_parameters(n_tokens=net.tokenizer.n_tokens)
    body = sum(n_params(cell) for cell in net.cells)
    assert body == 3 * (blocks["attention"] + blocks["ffn"])
    x_num, x_cat = torch.randn(6, 5), torch.randint(0, 3, (6, 2))
    assert net(x_num, x_cat).shape == (6, 4)
    tokens = net.tokenizer(x_num, x_cat)
    assert tokens.shape == (6, 1 + 5 + 2, d)


def test_resnet_is_a_point_of_the_space_with_rtdl_block_sizes():
    arch = Architecture.resnet(n_blocks=2, d_token=8, d_hidden=96)
    space = SearchSpace(
        n_cells=2, n_nodes=1, ops=("resnet", "skip", "none"), settings=arch.settings
    )
    assert space.contains(arch)
    net = DiscreteNetwork(architecture=arch, n_num_features=6, cat_cardinalities=[], d_out=1)
    n_tokens = 1 + 6
    d_block = n_tokens * 8
    reference = rtdl.ResNet(
        d_in=d_block, d_out=None, n_blocks=2, d_block=d_block, d_hidden=96,
        d_hidden_multiplier=None, dropout1=0.1, dropout2=0.0,
    )
    ours = sum(n_params(cell) for cell in net.cells)
    assert ours == sum(n_params(block) for block in reference.blocks)
    assert net(torch.randn(5, 6), torch.zeros(5, 0, dtype=torch.long)).shape == (5, 1)


def test_contains_rejects_points_outside_the_space():
    space = SearchSpace(n_cells=1, n_nodes=2, node_inputs=1)
    two_inputs = Architecture(cells=(((Edge(0, "ffn"),), (Edge(0, "skip"), Edge(1, "ffn"))),))
    assert not space.contains(two_inputs)
    assert not space.contains(Architecture.ft_transformer(2))


def test_random_points_and_chains_are_points_of_the_space():
    space = SearchSpace(n_cells=2, n_nodes=3, node_inputs=2)
    samples = [space.sample(seed) for seed in range(20)]
    assert all(space.contains(arch) for arch in samples)
    assert samples[0] == space.sample(0)
    assert len({arch.to_json() for arch in samples}) > 15  # really random
    assert all("none" not in arch.ops for arch in samples)
    assert all(len(arch.cells[0][2]) == 2 for arch in samples)  # node 3 keeps two inputs
    ft = space.chain(["attention", "ffn", "skip"])
    assert space.contains(ft) and ft.ops == ("attention", "ffn", "skip") * 2
    with pytest.raises(ValueError, match="3 nodes"):
        space.chain(["resnet"])


def test_op_parameters_report_each_candidate():
    space = SearchSpace(settings=OpSettings(d_token=32, n_heads=4, resnet_d_hidden=64))
    sizes = space.op_parameters(n_tokens=9)
    assert set(sizes) == set(space.ops)
    assert sizes["skip"] == sizes["none"] == 0
    assert sizes["linear"] == 32 * 32 + 32
    # The flattened ResNet block: BatchNorm + two linear maps over 9 * 32 values.
    assert sizes["resnet"] == 2 * 288 + 288 * 64 + 64 + 64 * 288 + 288


def test_tabm_is_a_point_of_the_space_with_the_tabm_packages_parameter_count():
    import tabm
    from rtdl_num_embeddings import PiecewiseLinearEmbeddings

    from tabnas.nas.embeddings import quantile_bins
    from tabnas.nas.network import DataShapes, TabMNetwork, build_network
    from tabnas.nas.space import MLPSettings

    x = torch.randn(200, 4)
    bins = quantile_bins(x)
    mlp = MLPSettings(n_blocks=2, d_block=64, k=8, d_embedding=12)
    arch = Architecture.tabm(mlp, num_embedding="piecewise_linear")
    space = SearchSpace(num_embeddings=("piecewise_linear",), backbones=("cells", "tabm"), mlp=mlp)
    assert space.contains(arch) and not SearchSpace().contains(arch)
    network = build_network(arch, DataShapes(4, (3, 5), 2, bins=tuple(bins)))
    assert isinstance(network, TabMNetwork)
    reference = tabm.TabM.make(
        n_num_features=4, cat_cardinalities=[3, 5], d_out=2,
        num_embeddings=PiecewiseLinearEmbeddings(bins, 12, activation=False, version="B"),
        n_blocks=2, d_block=64, k=8,
    )
    assert n_params(network) == n_params(reference)
    out = network(x[:10], torch.zeros(10, 2, dtype=torch.long))
    assert out.shape == (10, 8, 2)  # one prediction per member


def test_tabm_architectures_round_trip_and_old_dicts_still_load():
    from tabnas.nas.space import MLPSettings

    arch = Architecture.tabm(MLPSettings(k=4), num_embedding="periodic")
    assert Architecture.from_dict(json.loads(arch.to_json())) == arch
    assert "TabM" in str(arch) and "periodic" in str(arch)
    old = Architecture.chain([["attention", "ffn"]]).to_dict()
    for key in ("num_embedding", "backbone", "mlp"):
        del old[key]
    assert Architecture.from_dict(old) == Architecture.chain([["attention", "ffn"]])
    with pytest.raises(ValueError, match="no cells"):
        Architecture(cells=Architecture.chain([["ffn"]]).cells, backbone="tabm", mlp=MLPSettings())
    with pytest.raises(ValueError, match="mlp settings belong"):
        Architecture(cells=Architecture.chain([["ffn"]]).cells, mlp=MLPSettings())
    with pytest.raises(ValueError, match="unknown numeric embedding"):
        Architecture.tabm(num_embedding="fourier")
    with pytest.raises(ValueError, match="arch_type"):
        MLPSettings(arch_type="tabm-packed-x")


def test_candidates_are_the_selected_cells_and_a_tabm_point_per_embedding():
    space = SearchSpace(
        num_embeddings=("piecewise_linear", "periodic"), backbones=("cells", "tabm")
    )
    selected = space.chain(["attention", "ffn"])
    assert selected.num_embedding == "piecewise_linear"  # the supernet's embedding
    candidates = space.candidates(selected)
    assert candidates[0] == selected
    assert [(c.backbone, c.num_embedding) for c in candidates[1:]] == [
        ("tabm", "piecewise_linear"), ("tabm", "periodic")
    ]
    assert all(space.contains(c) for c in candidates)
    assert SearchSpace().candidates(selected) == [selected]


def test_cells_with_other_embeddings_keep_one_token_per_feature():
    from tabnas.nas.embeddings import quantile_bins

    x = torch.randn(50, 3)
    for name in ("linear", "periodic", "piecewise_linear"):
        arch = Architecture.ft_transformer(1).with_embedding(name)
        net = DiscreteNetwork(architecture=arch, n_num_features=3, cat_cardinalities=[4], d_out=1,
                              bins=quantile_bins(x))
        assert net.tokenizer(x, torch.zeros(50, 1, dtype=torch.long)).shape == (50, 5, 96)


def test_heads_compute_in_fp32_under_bf16_autocast():
    from tabnas.nas.network import DataShapes, build_network
    from tabnas.nas.space import MLPSettings

    shapes = DataShapes(3, (4,), 2)
    x_num, x_cat = torch.randn(16, 3), torch.randint(0, 4, (16, 1))
    for arch in (
        SearchSpace().chain(["attention", "ffn"]),
        Architecture.tabm(MLPSettings(n_blocks=1, d_block=32, k=4), num_embedding="linear"),
    ):
        network = build_network(arch, shapes).eval()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            output = network(x_num, x_cat)
        assert output.dtype == torch.float32, arch.backbone  # bf16 inside, fp32 logits
        assert torch.allclose(output, network(x_num, x_cat), rtol=0.1, atol=0.1)


def test_a_network_whose_ops_never_mix_tokens_reads_all_tokens_and_sees_the_features():
    from tabnas.nas.network import DataShapes, build_network
    from tabnas.nas.space import Edge

    settings = OpSettings(d_token=8, n_heads=2)
    token_wise = Architecture(
        cells=(
            ((Edge(source=0, op="ffn"),), (Edge(source=0, op="linear"), Edge(source=1, op="skip"))),
        ),
        settings=settings,
    )
    mixing = SearchSpace(n_cells=1, n_nodes=2, settings=settings).chain(["attention", "ffn"])
    x = torch.randn(32, 3)
    for arch, pool in ((token_wise, "mean"), (mixing, "cls")):
        network = build_network(arch, DataShapes(3, (), 1)).eval()
        assert network.readout.pool == pool
        with torch.no_grad():
            out = network(x, torch.zeros(32, 0, dtype=torch.long))
        assert out.std() > 1e-4  # the prediction depends on the row (the [CLS] alone: constant)


def test_the_feature_scale_is_recorded_shown_and_absent_from_older_dicts():
    import dataclasses

    scaled = dataclasses.replace(Architecture.tabm(), feature_scale=True)
    assert Architecture.from_dict(scaled.to_dict()) == scaled
    assert "behind a learned feature scale" in str(scaled)
    older = {k: v for k, v in scaled.to_dict().items() if k != "feature_scale"}
    assert Architecture.from_dict(older) == Architecture.tabm()  # saved before: no scale
    space = SearchSpace(n_cells=1, feature_scale=True)
    assert space.sample(0).feature_scale and space.chain(["ffn", "skip"]).feature_scale
