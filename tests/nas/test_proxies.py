"""Zero-cost proxies: each against its defining formula on hand-made networks, and that
scoring changes nothing in the scored model."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tabnas.nas.embeddings import quantile_bins
from tabnas.nas.network import DataShapes, build_network
from tabnas.nas.ops import OpSettings, _ReGLU
from tabnas.nas.proxies import PROXIES, grad_norm, hamming_kernel, naswot, score, snip, synflow
from tabnas.nas.space import Architecture, SearchSpace
from tabnas.training.data import TensorData


class OnNumeric(nn.Module):
    """A network of the ``forward(x_num, x_cat)`` form around a plain module of ``x_num``."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x_num, x_cat):
        return self.body(x_num)


def mse(output, y):
    return F.mse_loss(output.squeeze(-1), y)


def rows(x_num, y=None):
    x_num = torch.as_tensor(x_num, dtype=torch.float64)
    y = torch.zeros(len(x_num), dtype=torch.float64) if y is None else y
    return TensorData(x_num, torch.zeros(len(x_num), 0, dtype=torch.long), y)


# rows a = 1 0 1, b = 1 1 0, c = 0 0 0 as activation patterns: every pair differs in two units
PATTERN_ROWS = [[1.0, -1.0, 2.0], [0.5, 3.0, -1.0], [-1.0, -2.0, -0.5]]
PATTERN_KERNEL = [[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]]  # det 20


def test_the_hamming_kernel_counts_the_units_on_which_two_rows_agree():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    assert hamming_kernel(codes).tolist() == PATTERN_KERNEL


def test_naswot_is_the_log_determinant_of_the_relu_patterns_kernel():
    model = OnNumeric(nn.ReLU(), nn.Linear(3, 1)).double()  # units: the ReLU's inputs, x
    assert naswot(model, rows(PATTERN_ROWS)) == pytest.approx(math.log(20))
    # a ReGLU a * relu(b) codes its gate b only (here b = x, a = a constant block)
    gated = OnNumeric(GateOf(), _ReGLU(), nn.Linear(3, 1)).double()
    assert naswot(gated, rows(PATTERN_ROWS)) == pytest.approx(math.log(20))
    # two rows with the same pattern: K is singular
    assert naswot(model, rows([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])) == -math.inf
    # five distinct patterns of three units: K (rank <= 4) is singular all the same
    distinct = [[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0],
                [-1.0, -1.0, -1.0]]
    assert naswot(model, rows(distinct)) == -math.inf


class GateOf(nn.Module):
    """``x -> [-1 ... -1, x]``: a ReGLU input whose value half is negative, gate half x."""

    def forward(self, x):
        return torch.cat([-torch.ones_like(x), x], dim=-1)


def test_naswot_without_relu_codes_the_signs_of_the_linear_outputs():
    linear = nn.Linear(3, 3).double()
    with torch.no_grad():
        linear.weight.copy_(torch.eye(3))
        linear.bias.zero_()
    model = OnNumeric(linear, nn.Tanh())
    assert naswot(model, rows(PATTERN_ROWS)) == pytest.approx(math.log(20))


def one_layer(seed=0):
    torch.manual_seed(seed)
    return OnNumeric(nn.Linear(3, 1)).double()


def regression_rows(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return rows(x, x[:, 0] - 2 * x[:, 1] + 0.1 * torch.randn(n, generator=g, dtype=torch.float64))


def test_snip_and_grad_norm_follow_the_hand_gradient_of_a_one_layer_net():
    model, batch = one_layer(), regression_rows()
    w, b = model.body[0].weight.detach()[0], model.body[0].bias.detach()
    residual = batch.x_num @ w + b - batch.y  # (n,)
    gradient = 2 * residual @ batch.x_num / len(batch)  # dL/dw of the mean squared error
    assert snip(model, batch, mse) == pytest.approx(float((w * gradient).abs().sum()), rel=1e-12)
    assert grad_norm(model, batch, mse) == pytest.approx(float(gradient.norm()), rel=1e-12)


def test_synflow_is_the_path_sum_of_the_positive_network_without_its_normalisation():
    torch.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 1)
    model = OnNumeric(first, nn.LayerNorm(4), nn.ReLU(), second).double()
    w1, b1, w2 = (p.detach().abs() for p in (first.weight, first.bias, second.weight))
    hidden = w1.sum(dim=1) + b1  # the positive network's hidden values for a row of ones
    expected = float((w1 * w2[0][:, None]).sum() + (w2[0] * hidden).sum())
    assert synflow(model, regression_rows(), None) == pytest.approx(expected, rel=1e-12)
    # data-independent: only the batch's shape is read
    other = rows(torch.full((5, 3), -7.0))
    assert synflow(model, other, None) == synflow(model, regression_rows(seed=1), None)


def network(architecture, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(64, 4, generator=g)
    batch = TensorData(
        x_num, torch.randint(0, 3, (64, 1), generator=g), torch.randint(0, 2, (64,), generator=g)
    )
    shapes = DataShapes(4, (3,), 2, bins=tuple(quantile_bins(x_num)))
    torch.manual_seed(seed)
    return build_network(architecture, shapes), batch


def cross_entropy(output, y):
    if output.ndim == 3:  # TabM: (batch, k, d_out), the members' mean loss
        return F.cross_entropy(output.flatten(0, 1), y.repeat_interleave(output.shape[1]))
    return F.cross_entropy(output, y)


SETTINGS = OpSettings(d_token=8, n_heads=2, resnet_d_hidden=16)
ARCHITECTURES = [
    Architecture.chain([["resnet", "attention"], ["ffn", "linear"]], SETTINGS).with_embedding(
        "piecewise_linear"
    ),
    SearchSpace(settings=SETTINGS).tabm("periodic"),
]


@pytest.mark.parametrize("name", sorted(PROXIES))
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=["cells", "tabm"])
def test_scoring_changes_nothing_in_the_model(name, architecture):
    model, batch = network(architecture)
    model.train()
    model(batch.x_num, batch.x_cat)  # running statistics that differ from a fresh BatchNorm
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    value = score(name, model, batch, cross_entropy)
    assert isinstance(value, float) and not math.isnan(value)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.dtype == torch.float32 for p in model.parameters())
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert value == score(name, model, batch, cross_entropy)  # and scores again the same


def test_proxies_tell_architectures_apart_and_unknown_names_list_the_known_ones():
    resnet, batch = network(ARCHITECTURES[0])
    linear, _ = network(Architecture.chain([["linear"]], SETTINGS))
    for name in PROXIES:
        assert score(name, resnet, batch, cross_entropy) != score(
            name, linear, batch, cross_entropy
        )
    with pytest.raises(ValueError, match="available"):
        score("jacob_cov", resnet, batch, cross_entropy)
