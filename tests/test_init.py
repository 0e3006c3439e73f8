"""nn.init: gains, fan computation, empirical statistics, in-place filling from the seeded generator."""
import math

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.nn import init


@pytest.mark.parametrize("name,param,expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75),
])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_matches_torch(torch):
    for name, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.3), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def _empirical_std(t):
    return float(np.std(t.numpy().astype(np.float64)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal_std_over_a_large_conv(mode):
    fc.manual_seed(0)
    w = fc.zeros(256, 128, 3, 3)
    out = init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
    assert out is w
    fan = 128 * 9 if mode == "fan_in" else 256 * 9
    std = math.sqrt(2) / math.sqrt(fan)
    assert _empirical_std(w) == pytest.approx(std, rel=0.02)
    assert abs(float(w.numpy().mean())) < 0.05 * std


def test_kaiming_uniform_bounds_and_std():
    fc.manual_seed(1)
    w = fc.zeros(512, 400)
    init.kaiming_uniform_(w, a=0.1, nonlinearity="leaky_relu")
    std = init.calculate_gain("leaky_relu", 0.1) / math.sqrt(400)
    assert _empirical_std(w) == pytest.approx(std, rel=0.02)
    assert np.abs(w.numpy()).max() <= math.sqrt(3) * std + 1e-7


def test_xavier_std():
    fc.manual_seed(2)
    w = fc.zeros(300, 500)
    init.xavier_normal_(w, gain=2.0)
    assert _empirical_std(w) == pytest.approx(2.0 * math.sqrt(2 / 800), rel=0.02)
    init.xavier_uniform_(w)
    bound = math.sqrt(6 / 800)
    assert np.abs(w.numpy()).max() <= bound + 1e-7
    assert _empirical_std(w) == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_default_layers_use_he_init():
    fc.manual_seed(3)
    conv = nn.Conv2d(64, 256, 5)
    assert _empirical_std(conv.weight) == pytest.approx(math.sqrt(2 / (64 * 25)), rel=0.02)
    assert np.all(conv.bias.numpy() == 0)
    lin = nn.Linear(1000, 500)
    assert _empirical_std(lin.weight) == pytest.approx(math.sqrt(2 / 1000), rel=0.02)
    assert np.all(lin.bias.numpy() == 0)


def test_simple_fills_and_dtype_kept():
    t = fc.zeros(3, 4, dtype=np.float64)
    assert init.constant_(t, 2.5) is t and np.all(t.numpy() == 2.5) and t.dtype == np.float64
    init.ones_(t)
    assert np.all(t.numpy() == 1)
    init.zeros_(t)
    assert np.all(t.numpy() == 0)
    fc.manual_seed(4)
    big = fc.zeros(200000)
    init.uniform_(big, -2.0, 3.0)
    assert big.numpy().min() >= -2 and big.numpy().max() < 3 and big.numpy().mean() == pytest.approx(0.5, abs=0.02)
    init.normal_(big, mean=1.0, std=0.5)
    assert big.numpy().mean() == pytest.approx(1.0, abs=0.01) and big.numpy().std() == pytest.approx(0.5, rel=0.02)
    init.trunc_normal_(big, std=1.0, a=-1.0, b=1.0)
    assert np.abs(big.numpy()).max() <= 1.0


def test_orthogonal_rows_are_orthonormal():
    fc.manual_seed(5)
    w = fc.zeros(6, 3, 2, 2)
    init.orthogonal_(w)
    flat = w.numpy().reshape(6, 12).astype(np.float64)
    np.testing.assert_allclose(flat @ flat.T, np.eye(6), atol=1e-5)


def test_init_is_reproducible_with_manual_seed_and_records_nothing():
    p = nn.Parameter(np.zeros((4, 5), dtype=np.float32))
    fc.manual_seed(7)
    init.kaiming_normal_(p)
    first = p.numpy().copy()
    fc.manual_seed(7)
    init.kaiming_normal_(p)
    np.testing.assert_array_equal(first, p.numpy())
    assert p.grad_fn is None and p.requires_grad


def test_init_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal_(fc.zeros(5))
    with pytest.raises(ValueError, match="expected mode 'fan_in' or 'fan_out', got 'fan'"):
        init.kaiming_normal_(fc.zeros(2, 2), mode="fan")
    with pytest.raises(TypeError, match="expected a float32 or float64 tensor"):
        init.normal_(fc.tensor([1, 2]))
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.zeros_(np.zeros(2))
