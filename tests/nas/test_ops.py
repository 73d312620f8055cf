import pytest
import torch

from tabnas.nas.ops import DEFAULT_OPS, OP_REGISTRY, OpSettings, make_op, register_op


@pytest.mark.parametrize("name", DEFAULT_OPS)
def test_every_op_keeps_the_token_shape(name):
    op = make_op(name, OpSettings(d_token=16, n_heads=4), n_tokens=5)
    x = torch.randn(3, 5, 16)
    assert op(x).shape == x.shape


def test_none_is_zero_and_skip_is_identity():
    settings = OpSettings(d_token=8, n_heads=2)
    x = torch.randn(2, 3, 8)
    assert torch.equal(make_op("none", settings, 3)(x), torch.zeros_like(x))
    assert torch.equal(make_op("skip", settings, 3)(x), x)


def test_resnet_mixes_features_and_attention_mixes_tokens():
    settings = OpSettings(d_token=8, n_heads=2, resnet_dropout=0.0, attention_dropout=0.0)
    for name in ("resnet", "attention"):
        op = make_op(name, settings, n_tokens=4).eval()
        x = torch.randn(2, 4, 8)
        y = x.clone()
        y[:, 3] += 1.0  # change only the last token
        changed = (op(x) - op(y))[:, 0].abs().sum()
        assert changed > 0, f"{name} should let token 3 influence token 0"
    ffn = make_op("ffn", settings, n_tokens=4).eval()
    x = torch.randn(2, 4, 8)
    y = x.clone()
    y[:, 3] += 1.0
    assert torch.allclose(ffn(x)[:, 0], ffn(y)[:, 0]), "ffn is token-wise"


def test_unknown_op_lists_the_registered_ones():
    with pytest.raises(ValueError, match="registered operations"):
        make_op("conv", OpSettings(), 3)


def test_registering_twice_is_refused_and_new_ops_build():
    @register_op("test_double")
    def _double(settings, n_tokens):
        return torch.nn.Identity()

    try:
        assert isinstance(make_op("test_double", OpSettings(), 2), torch.nn.Identity)
        with pytest.raises(ValueError, match="already registered"):
            register_op("test_double")(_double)
    finally:
        del OP_REGISTRY["test_double"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_token": 10, "n_heads": 4}, "multiple of n_heads"),
        ({"ffn_dropout": 1.5}, "ffn_dropout"),
        ({"attention_kv_compression": 1.0}, "attention_kv_compression"),
    ],
)
def test_settings_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OpSettings(**kwargs)


def test_fused_attention_is_rtdls_attention():
    """Same parameters, same function: outputs and gradients match rtdl's module (no
    dropout drawn), and dropout is drawn only in training."""
    from rtdl_revisiting_models import MultiheadAttention

    from tabnas.nas.ops import FusedMultiheadAttention

    torch.manual_seed(0)
    ours = FusedMultiheadAttention(d_embedding=16, n_heads=4, dropout=0.5)
    reference = MultiheadAttention(d_embedding=16, n_heads=4, dropout=0.5)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(5, 7, 16, requires_grad=True)
    ours.eval(), reference.eval()
    a, b = ours(x, x), reference(x, x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)
    ours.train()
    assert not torch.allclose(ours(x, x), a)  # dropout on the attention probabilities


def test_attention_over_many_tokens_is_rtdls_linformer_attention():
    """From ``attention_kv_compression_min_tokens`` on, keys and values are compressed
    along the tokens exactly as rtdl's Linformer option does; below, full attention."""
    from rtdl_revisiting_models import MultiheadAttention

    settings = OpSettings(d_token=16, n_heads=4, attention_kv_compression_min_tokens=20)
    wide = make_op("attention", settings, n_tokens=20).attention
    assert wide.key_compression.weight.shape == (5, 20)  # 20 tokens -> a quarter
    assert make_op("attention", settings, n_tokens=19).attention.key_compression is None
    reference = MultiheadAttention(
        d_embedding=16, n_heads=4, dropout=0.0, n_tokens=20,
        linformer_kv_compression_ratio=0.25, linformer_kv_compression_sharing="headwise",
    )
    reference.load_state_dict(wide.state_dict())
    x = torch.randn(3, 20, 16)
    wide.eval()
    torch.testing.assert_close(wide(x, x), reference(x, x), rtol=1e-5, atol=1e-6)
    # the compressed keys and values stay fit for the fused kernel (unit last stride)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        wide(x, x).sum().backward()


def test_architectures_saved_before_compression_load_without_it():
    from tabnas.nas.space import Architecture

    old = Architecture.ft_transformer(1).to_dict()
    for key in ("attention_kv_compression", "attention_kv_compression_min_tokens"):
        del old["settings"][key]
    settings = Architecture.from_dict(old).settings
    assert make_op("attention", settings, n_tokens=600).attention.key_compression is None
    new = Architecture.ft_transformer(1)
    assert Architecture.from_dict(new.to_dict()) == new  # today's dicts keep theirs


def test_a_proxy_width_scales_the_token_and_hidden_sizes_and_keeps_the_heads():
    settings = OpSettings(d_token=64, n_heads=8, resnet_d_hidden=128)
    half = settings.at_width(0.5)
    assert (half.d_token, half.n_heads, half.resnet_d_hidden) == (32, 8, 64)
    assert half.ffn_dropout == settings.ffn_dropout and settings.at_width(1.0) == settings
    assert settings.at_width(0.01).d_token == 8  # one dimension per head at least
    with pytest.raises(ValueError, match=r"width must be in \(0, 1\]"):
        settings.at_width(1.5)
