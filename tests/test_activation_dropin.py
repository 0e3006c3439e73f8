"""ReLU6, Hardtanh, GELU, SiLU, Hardswish, Hardsigmoid, Mish, Softplus, PReLU: numpy references, gradchecks,
PyTorch cross-checks (float32 and float64, boundaries included), kernels' thread independence."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import erf

import fastconv as fc
from fastconv.autograd import gradcheck
from fastconv.nn.functional import activation as A

F = fc.nn.functional
nn = fc.nn
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
KINKS = {"relu6": (0.0, 6.0), "hardtanh": (-2.5, 1.5), "hardswish": (-3.0, 3.0), "hardsigmoid": (-3.0, 3.0),
         "softplus": (2.5,)}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


# name: (ours, numpy reference, torch reference)
CASES = {
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6), lambda t, x: t.nn.functional.relu6(x)),
    "hardtanh": (lambda x: F.hardtanh(x, -2.5, 1.5), lambda x: np.clip(x, -2.5, 1.5),
                 lambda t, x: t.nn.functional.hardtanh(x, -2.5, 1.5)),
    "silu": (F.silu, lambda x: x * _sigmoid(x), lambda t, x: t.nn.functional.silu(x)),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))), lambda t, x: t.nn.functional.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                  lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, lambda t, x: t.nn.functional.hardswish(x)),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x + 3, 0, 6) / 6,
                    lambda t, x: t.nn.functional.hardsigmoid(x)),
    "mish": (F.mish, lambda x: x * np.tanh(_softplus(x)), lambda t, x: t.nn.functional.mish(x)),
    "softplus": (lambda x: F.softplus(x, beta=2.0, threshold=5.0),
                 lambda x: np.where(2 * x > 5, x, _softplus(2 * x) / 2),
                 lambda t, x: t.nn.functional.softplus(x, beta=2.0, threshold=5.0)),
}


def away_from_kinks(name, shape, seed, scale=4.0):
    x = np.random.default_rng(seed).uniform(-scale, scale, size=shape)
    for k in KINKS.get(name.split("_")[0], ()):
        x[np.abs(x - k) < 1e-2] = k + 0.5
    return x


@pytest.mark.parametrize("name", sorted(CASES))
@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_matches_numpy_reference_and_gradchecks(name, shape, seed):
    fn, ref, _ = CASES[name]
    x = fc.tensor(away_from_kinks(name, shape, seed), requires_grad=True)
    np.testing.assert_allclose(fn(x).numpy(), ref(x.numpy()), rtol=1e-12, atol=1e-14)
    assert gradcheck(fn, [x])


def _edge_values(dtype):
    """Random values plus the boundaries where the formulas switch branches and extreme inputs."""
    special = [0.0, -0.0, 6.0, -3.0, 3.0, 2.5, -2.5, 1.5, 1e-30, -1e-30, 40.0, -40.0, 90.0, -90.0, 1e4, -1e4]
    x = np.concatenate([np.random.default_rng(3).standard_normal(300) * 4, special])
    return x.astype(dtype)


# float32: PyTorch's own erf is off by up to 1.5e-7 (Abramowitz-Stegun), so GELU differs by ~6e-7
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-12, 1e-14), (np.float32, 2e-6, 1e-6)])
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward_match_torch(torch, name, dtype, rtol, atol):
    fn, _, tfn = CASES[name]
    x = _edge_values(dtype)
    g = np.random.default_rng(4).standard_normal(x.shape).astype(dtype)
    ours = fc.tensor(x, requires_grad=True)
    out = fn(ours)
    out.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tout = tfn(torch, tx)
    tout.backward(torch.tensor(g))
    assert out.dtype == dtype and ours.grad.dtype == dtype
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    # PyTorch's hardsigmoid slope is the float32 1.0f/6.0f even in float64 (ours is 1/6 in the dtype)
    grad_rtol = max(rtol, 5e-8) if name == "hardsigmoid" else rtol
    np.testing.assert_allclose(ours.grad.numpy(), tx.grad.numpy(), rtol=grad_rtol, atol=atol * 3)


@pytest.mark.parametrize("name", ["silu", "gelu", "gelu_tanh", "hardswish", "mish"])
def test_float32_kernels_are_accurate(name):
    """float32 results within a few ulp of the float64 formula (the kernels' exp/erf approximations)."""
    fn, ref, _ = CASES[name]
    x = np.linspace(-12, 12, 20001).astype(np.float32)
    exact = ref(x.astype(np.float64))
    np.testing.assert_allclose(fn(fc.tensor(x)).numpy(), exact, rtol=4e-7, atol=2e-7)


# float32 GELU: PyTorch's vectorized erf gives NaN at +inf; its float64 path (std::erf) gives inf, as ours
@pytest.mark.parametrize("name,dtype", [("relu6", np.float32), ("hardtanh", np.float32), ("hardswish", np.float32),
                                        ("hardsigmoid", np.float32), ("silu", np.float32), ("gelu", np.float64),
                                        ("gelu_tanh", np.float32), ("gelu_tanh", np.float64)])
def test_nan_and_infinity_like_torch(torch, name, dtype):
    fn, _, tfn = CASES[name]
    x = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=dtype)
    ours = fc.tensor(x, requires_grad=True)
    out = fn(ours)
    out.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tout = tfn(torch, tx)
    tout.sum().backward()
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    if name in ("relu6", "hardtanh", "hardswish", "hardsigmoid"):  # the gradient's branch at NaN and ±inf
        np.testing.assert_array_equal(ours.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("name", ["relu6", "silu", "gelu", "gelu_tanh", "hardswish"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_do_not_depend_on_thread_count(name, dtype):
    fn = CASES[name][0]
    n = 3 * A.PARALLEL_MIN_ELEMENTS + 17  # several parallel blocks and a partial one
    x = np.random.default_rng(5).standard_normal(n).astype(dtype) * 5
    g = np.random.default_rng(6).standard_normal(n).astype(dtype)
    results = []
    previous = fc.get_num_threads()
    try:
        for threads in (1, 2):
            fc.set_num_threads(threads)
            t = fc.tensor(x, requires_grad=True)
            out = fn(t)
            out.backward(g)
            results.append((out.numpy().copy(), t.grad.numpy().copy()))
    finally:
        fc.set_num_threads(previous)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("name", ["relu6", "silu", "gelu", "hardswish", "mish"])
def test_non_contiguous_input_and_grad(name):
    fn, ref, _ = CASES[name]
    base = np.random.default_rng(7).standard_normal((6, 8)) * 4
    x = fc.tensor(base, requires_grad=True)
    out = fn(x.T)  # a transposed view
    np.testing.assert_allclose(out.numpy(), ref(base.T), rtol=1e-12, atol=1e-14)
    out.sum().backward()
    assert x.grad.shape == (6, 8)
    assert gradcheck(lambda t: fn(t.T), [fc.tensor(away_from_kinks(name, (6, 8), 1), requires_grad=True)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_bytes_declarations(name):
    fn = CASES[name][0]
    x = fc.tensor(np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32), requires_grad=True)
    out = fn(x)
    node = out.grad_fn
    assert node.saved_nbytes == node.function.saved_bytes([x.shape], x.dtype, (True,))
    with fc.no_grad():
        assert fn(x).grad_fn is None


def test_relu6_saves_one_byte_per_element_and_nothing_without_grad():
    x = fc.randn(4, 5, requires_grad=True)
    assert F.relu6(x).grad_fn.saved_nbytes == 20
    assert A.ReLU6.saved_bytes([(4, 5)], np.float32, (False,)) == 0


# ---- PReLU --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,num", [((4, 3, 5, 5), 3), ((4, 3, 5, 5), 1), ((6, 3), 3), ((7,), 1), ((), 1),
                                       ((2, 3, 4), 3)])
def test_prelu_matches_torch_and_gradchecks(torch, shape, num):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    w = rng.uniform(-0.5, 0.5, num)
    g = rng.standard_normal(shape)
    ours, ow = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    out = F.prelu(ours, ow)
    out.backward(g)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tout = torch.nn.functional.prelu(tx, tw)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ow.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
    xs = np.where(np.abs(x) < 1e-2, 0.5, x)
    assert gradcheck(F.prelu, [fc.tensor(xs, requires_grad=True), fc.tensor(w, requires_grad=True)])


def test_prelu_module_state_dict_and_training_like_torch(torch):
    ours = nn.PReLU(3, init=0.1).double()
    ref = torch.nn.PReLU(3, init=0.1).double()
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight"]
    np.testing.assert_array_equal(ours.state_dict()["weight"], ref.state_dict()["weight"].numpy())
    assert repr(ours) == repr(ref)
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 4))
    opt, topt = fc.optim.SGD(ours.parameters(), lr=0.5), torch.optim.SGD(ref.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        y = ours(fc.tensor(x))
        (y * y).sum().backward()
        (ref(torch.from_numpy(x)) ** 2).sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), rtol=1e-10)
    assert nn.PReLU().weight.numpy().tolist() == [0.25]
    assert nn.PReLU(dtype=np.float64).weight.dtype == np.float64


def test_prelu_errors():
    with pytest.raises(ValueError, match=r"prelu: expected weight with 1 or 3 elements"):
        F.prelu(fc.randn(2, 3, 4), fc.randn(4))
    with pytest.raises(ValueError, match="prelu: expected weight as a scalar or 1-D"):
        F.prelu(fc.randn(2, 3), fc.randn(3, 1))
    with pytest.raises(TypeError, match="prelu: expected weight of the input's dtype float32, got float64"):
        F.prelu(fc.randn(2, 3), fc.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="PReLU: expected num_parameters as a positive int"):
        nn.PReLU(0)


# ---- modules and errors -------------------------------------------------------------------------------
MODULES = [
    ("ReLU6", lambda m: m.ReLU6(), (3, 8)),
    ("ReLU6-inplace", lambda m: m.ReLU6(inplace=True), (3, 8)),
    ("GELU", lambda m: m.GELU(), (3, 8)),
    ("GELU-tanh", lambda m: m.GELU(approximate="tanh"), (3, 8)),
    ("SiLU", lambda m: m.SiLU(), (2, 3, 4)),
    ("Hardswish", lambda m: m.Hardswish(), (2, 3, 4)),
    ("Hardsigmoid", lambda m: m.Hardsigmoid(), (2, 3, 4)),
    ("Mish", lambda m: m.Mish(), (2, 3, 4)),
    ("Softplus", lambda m: m.Softplus(beta=0.5, threshold=3.0), (2, 3, 4)),
]


@pytest.mark.parametrize("name,factory,shape", MODULES, ids=[m[0] for m in MODULES])
def test_modules_match_torch(torch, name, factory, shape):
    ours, ref = factory(nn), factory(torch.nn)
    x = np.random.default_rng(10).standard_normal(shape) * 4
    np.testing.assert_allclose(ours(fc.tensor(x)).numpy(), ref(torch.from_numpy(x.copy())).numpy(), rtol=1e-12,
                               atol=1e-14)
    assert repr(ours) == repr(ref)
    assert ours.state_dict() == {} and len(ref.state_dict()) == 0


def test_activation_argument_errors():
    with pytest.raises(ValueError, match="gelu: expected approximate 'none' or 'tanh', got 'fast'"):
        F.gelu(fc.randn(3), approximate="fast")
    with pytest.raises(ValueError, match="GELU: expected approximate"):
        nn.GELU("erf")
    with pytest.raises(TypeError, match="silu: expected input of dtype float32 or float64, got int64"):
        F.silu(fc.tensor([1, 2]))
    with pytest.raises(TypeError, match="hardswish: expected input as a Tensor or ndarray, got list"):
        F.hardswish([1.0, 2.0])
    with pytest.raises(ValueError, match="softplus: expected a non-zero beta"):
        F.softplus(fc.randn(3), beta=0)
    with pytest.raises(TypeError, match="Softplus: expected threshold as a real number"):
        nn.Softplus(threshold="20")


def test_softplus_never_overflows_where_the_linear_branch_is_off():
    x = fc.tensor(np.array([1e4, -1e4, 0.0]), requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        out = F.softplus(x, threshold=1e6)
        out.sum().backward()
    np.testing.assert_allclose(out.numpy(), [1e4, 0.0, np.log(2)])
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.0, 0.5])


def test_hardtanh_module_and_bad_bounds():
    layer = nn.Hardtanh(-0.5, 2.0)
    assert repr(layer) == "Hardtanh(min_val=-0.5, max_val=2.0)"
    np.testing.assert_array_equal(layer(fc.tensor(np.array([-1.0, 0.3, 3.0]))).numpy(), [-0.5, 0.3, 2.0])
    with pytest.raises(ValueError, match="Hardtanh: expected min_val <= max_val, got min_val 1 and max_val 0"):
        nn.Hardtanh(1, 0)
    with pytest.raises(ValueError, match="hardtanh: expected min_val <= max_val"):
        F.hardtanh(fc.tensor(np.ones(2)), 2.0, 1.0)
    with pytest.raises(TypeError, match="hardtanh: expected min_val as a number, got str"):
        F.hardtanh(fc.tensor(np.ones(2)), "a", 1.0)
