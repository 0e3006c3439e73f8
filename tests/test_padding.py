"""F.pad (constant, reflect, replicate, circular; negative amounts crop), padding layers and
Conv2d(padding_mode=...): numpy references, gradchecks, PyTorch cross-checks."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.autograd import gradcheck
from fastconv.nn.functional.padding import Pad

F = fc.nn.functional
nn = fc.nn
MODES = ["constant", "reflect", "replicate", "circular"]
NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def numpy_pad(x, pad, mode, value=0.0):
    """Reference: crop negative amounts, then np.pad (numpy's pad_width is first-axis first)."""
    k = len(pad) // 2
    pairs = [(0, 0)] * (x.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
    x = x[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pairs, x.shape))]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if mode == "constant":
        return np.pad(x, widths, constant_values=value)
    return np.pad(x, widths, mode=NUMPY_MODE[mode])


@st.composite
def pad_problems(draw):
    mode = draw(st.sampled_from(MODES))
    k = draw(st.integers(1, 3)) if mode != "constant" else draw(st.integers(1, 4))
    batched = draw(st.booleans())
    extra = (1 if mode != "constant" else draw(st.integers(0, 1))) + int(batched)
    shape = tuple(draw(st.integers(1, 3)) for _ in range(extra)) + tuple(draw(st.integers(2, 5)) for _ in range(k))
    pad = []
    for axis in reversed(range(len(shape) - k, len(shape))):
        n = shape[axis]
        lo_crop = draw(st.integers(0, 1)) if draw(st.booleans()) else 0
        hi_crop = 0 if lo_crop else draw(st.integers(0, 1))
        inner = n - lo_crop - hi_crop
        widest = {"reflect": inner - 1, "circular": inner}.get(mode, 4)
        lo = -lo_crop if lo_crop else draw(st.integers(0, widest))
        hi = -hi_crop if hi_crop else draw(st.integers(0, widest))
        pad += [lo, hi]
    return shape, tuple(pad), mode, draw(st.integers(0, 2 ** 16))


@given(pad_problems())
def test_pad_matches_numpy_and_gradchecks(problem):
    shape, pad, mode, seed = problem
    x = np.random.default_rng(seed).standard_normal(shape)
    t = fc.tensor(x, requires_grad=True)
    np.testing.assert_array_equal(F.pad(t, pad, mode=mode).numpy(), numpy_pad(x, pad, mode))
    assert gradcheck(lambda a: F.pad(a, pad, mode=mode), [t])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,pad", [((2, 3, 5, 6), (2, 1, 3, 0)), ((2, 3, 5, 6), (-1, 2, 1, -2)),
                                       ((2, 3, 5, 6), (4, 5, 4, 4)), ((3, 7), (-2, 3)), ((3, 7), (6, 6)),
                                       ((2, 3, 4, 5, 6), (1, 1, 2, 0, 3, 2)), ((3, 4, 5), (1, 2, 0, 1))])
def test_pad_matches_torch(torch, mode, shape, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    t = torch.tensor(x, requires_grad=True)
    try:
        ref = torch.nn.functional.pad(t, pad, mode=mode)
    except (RuntimeError, NotImplementedError):
        with pytest.raises(ValueError, match="pad: "):
            F.pad(fc.tensor(x), pad, mode=mode)
        return
    ours = fc.tensor(x, requires_grad=True)
    out = F.pad(ours, pad, mode=mode)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    np.testing.assert_allclose(ours.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_constant_value_dtypes_and_integer_input(torch):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = F.pad(fc.tensor(x), (1, 2), value=-1.5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), torch.nn.functional.pad(torch.tensor(x), (1, 2), value=-1.5).numpy())
    ints = F.pad(fc.tensor(np.arange(3)), (1, 1), value=7)
    assert ints.dtype == np.int64 and ints.numpy().tolist() == [7, 0, 1, 2, 7]
    assert F.pad(fc.tensor(x), (0, 0)).numpy().base is None  # a copy, not a view of the input


def test_pad_saves_nothing():
    t = fc.randn(2, 3, 4, 4, requires_grad=True)
    out = F.pad(t, (1, 1, 1, 1), mode="reflect")
    assert out.grad_fn.saved_nbytes == 0 == Pad.saved_bytes([t.shape], t.dtype, (True,))


def test_pad_errors_match_torch_conditions():
    x = fc.randn(1, 3, 4)
    with pytest.raises(ValueError, match="pad: padding length must be divisible by 2"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match="pad: padding length 8 pads more than the input's 3 dimensions"):
        F.pad(x, (1,) * 8)
    with pytest.raises(ValueError, match="pad: reflect padding must be smaller than the dimension"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match="pad: circular padding must not exceed the dimension"):
        F.pad(x, (5, 0), mode="circular")
    with pytest.raises(ValueError, match="pad: mode 'reflect' pads the last 1, 2 or 3 dimensions"):
        F.pad(fc.randn(12), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="pad: expected mode 'constant', 'reflect', 'replicate' or 'circular'"):
        F.pad(x, (1, 1), mode="foo")
    with pytest.raises(ValueError, match="pad: mode 'reflect' takes no value argument"):
        F.pad(x, (1, 1), mode="reflect", value=3)
    with pytest.raises(TypeError, match="pad: expected pad as a tuple of ints"):
        F.pad(x, (1.5, 1))
    with pytest.raises(ValueError, match="pad: negative padding"):
        F.pad(x, (-3, -2))


# ---- layers -------------------------------------------------------------------------------------------
LAYERS = [("ReflectionPad2d", (1, 2, 0, 3)), ("ReplicationPad2d", 2), ("CircularPad2d", (1, 0, 2, 1)),
          ("ZeroPad2d", (1, 1, 2, 0)), ("ReflectionPad1d", 2), ("ReplicationPad1d", (0, 3)),
          ("CircularPad1d", 1), ("ZeroPad1d", (2, 1))]


@pytest.mark.parametrize("name,padding", LAYERS)
def test_padding_layers_match_torch(torch, name, padding):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5) if name.endswith("2d") else (2, 3, 5))
    ours, ref = getattr(nn, name)(padding), getattr(torch.nn, name)(padding)
    np.testing.assert_array_equal(ours(fc.tensor(x)).numpy(), ref(torch.from_numpy(x)).numpy())
    assert repr(ours) == repr(ref)


def test_constant_pad_layers(torch):
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    for ours, ref in [(nn.ConstantPad1d(2, 3.5), torch.nn.ConstantPad1d(2, 3.5)),
                      (nn.ConstantPad2d((1, 0, 2, 1), -1.0), torch.nn.ConstantPad2d((1, 0, 2, 1), -1.0))]:
        np.testing.assert_array_equal(ours(fc.tensor(x)).numpy(), ref(torch.from_numpy(x)).numpy())
        assert repr(ours) == repr(ref)
    with pytest.raises(ValueError, match="ReflectionPad2d: expected padding as an int or a tuple of 4 ints"):
        nn.ReflectionPad2d((1, 2))


# ---- Conv2d(padding_mode=...) -------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, padding=1), dict(kernel_size=(3, 5), padding=(2, 1), stride=2),
                                    dict(kernel_size=4, padding="same"), dict(kernel_size=3, padding="same", dilation=2),
                                    dict(kernel_size=3, padding="valid")])
def test_conv2d_padding_modes_match_torch(torch, mode, kwargs):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 4, padding_mode=mode, **kwargs).double()
    ours = nn.Conv2d(3, 4, padding_mode=mode, **kwargs).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert repr(ours) == repr(ref)
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 8))
    xt = fc.tensor(x, requires_grad=True)
    out = ours(xt)
    g = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tout = ref(tx)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv2d_padding_mode_gradcheck_and_errors():
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect").double()
    x = fc.tensor(np.random.default_rng(5).standard_normal((1, 2, 4, 5)), requires_grad=True)
    assert gradcheck(lambda t, w: fc.nn.functional.conv2d(F.pad(t, (1, 1, 1, 1), mode="reflect"), w), [x, conv.weight])
    np.testing.assert_allclose(conv(x).numpy(), F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight,
                                                         conv.bias).numpy())
    with pytest.raises(ValueError, match="Conv2d: expected padding_mode 'zeros', 'reflect', 'replicate', 'circular'"):
        nn.Conv2d(2, 3, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="ConvTranspose2d: expected padding_mode 'zeros', got 'reflect'"):
        nn.ConvTranspose2d(2, 3, 3, padding_mode="reflect")
