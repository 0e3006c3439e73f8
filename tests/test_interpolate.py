"""F.interpolate and nn.Upsample: PyTorch's sizes, index rules and weights (nearest, nearest-exact,
linear/bilinear with and without align_corners, area), textbook numpy references, gradchecks."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.autograd import gradcheck
from fastconv.nn.functional import interpolation as I

F = fc.nn.functional
nn = fc.nn


def bilinear_reference(x, out_h, out_w, align_corners):
    """Textbook bilinear resampling in float64, pixel by pixel (size-given form: scale = in/out)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, out_h, out_w))

    def source(i, in_size, out_size):
        if align_corners:
            pos = i * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        else:
            pos = max((i + 0.5) * in_size / out_size - 0.5, 0.0)
        lo = min(int(np.floor(pos)), in_size - 1)
        hi = min(lo + 1, in_size - 1)
        frac = pos - lo
        return lo, hi, frac

    for i in range(out_h):
        r0, r1, fr = source(i, h, out_h)
        for j in range(out_w):
            c0, c1, fc_ = source(j, w, out_w)
            top = x[:, :, r0, c0] * (1 - fc_) + x[:, :, r0, c1] * fc_
            bottom = x[:, :, r1, c0] * (1 - fc_) + x[:, :, r1, c1] * fc_
            out[:, :, i, j] = top * (1 - fr) + bottom * fr
    return out


def nearest_reference(x, out_h, out_w, exact):
    h, w = x.shape[-2:]

    def src(i, in_size, out_size):
        pos = (i + 0.5) * in_size / out_size if exact else i * in_size / out_size
        return min(int(np.floor(pos)), in_size - 1)

    rows = [src(i, h, out_h) for i in range(out_h)]
    cols = [src(j, w, out_w) for j in range(out_w)]
    return x[..., rows, :][..., cols]


@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 9), ow=st.integers(1, 9),
       align=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_bilinear_matches_textbook_reference_and_gradchecks(h, w, oh, ow, align, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    t = fc.tensor(x, requires_grad=True)
    out = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=align)
    np.testing.assert_allclose(out.numpy(), bilinear_reference(x, oh, ow, align), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a: F.interpolate(a, size=(oh, ow), mode="bilinear", align_corners=align), [t])


@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 13), ow=st.integers(1, 13),
       exact=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_nearest_matches_reference_and_gradchecks(h, w, oh, ow, exact, seed):
    x = np.random.default_rng(seed).standard_normal((1, 3, h, w))
    mode = "nearest-exact" if exact else "nearest"
    t = fc.tensor(x, requires_grad=True)
    out = F.interpolate(t, size=(oh, ow), mode=mode)
    np.testing.assert_array_equal(out.numpy(), nearest_reference(x, oh, ow, exact))
    assert gradcheck(lambda a: F.interpolate(a, size=(oh, ow), mode=mode), [t])


RESIZES = [dict(size=(10, 14)), dict(size=(3, 2)), dict(size=6), dict(scale_factor=2), dict(scale_factor=1.7),
           dict(scale_factor=(0.6, 2.3)), dict(scale_factor=1.7, recompute_scale_factor=True),
           dict(scale_factor=3), dict(size=(1, 1)), dict(scale_factor=7 / 3), dict(scale_factor=1.1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                                ("bilinear", True), ("area", None)])
@pytest.mark.parametrize("kwargs", RESIZES, ids=[str(r) for r in RESIZES])
def test_interpolate_matches_torch(torch, dtype, mode, align_corners, kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align_corners, **kwargs)
    ours = fc.tensor(x, requires_grad=True)
    out = F.interpolate(ours, mode=mode, align_corners=align_corners, **kwargs)
    assert out.shape == tuple(ref.shape) and out.dtype == dtype
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    ref.backward(torch.tensor(g))
    if mode.startswith("nearest"):  # a gather: exact
        np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tol)
    np.testing.assert_allclose(ours.grad.numpy(), tx.grad.numpy(), **tol)


@pytest.mark.parametrize("in_size", [2, 3, 5, 7, 10, 13])
@pytest.mark.parametrize("align_corners", [False, True])
def test_float32_linear_weights_equal_torchs_bit_for_bit(torch, in_size, align_corners):
    """One-hot rows resampled by torch give its weights; ours must be the same float32 values."""
    eye = np.eye(in_size, dtype=np.float32).reshape(1, in_size, 1, in_size)
    for kwargs, scale in [(dict(scale_factor=(1, 1.7)), 1.7), (dict(scale_factor=(1, 3)), 3.0),
                          (dict(size=(1, 11)), None), (dict(size=(1, 3 * in_size - 1)), None)]:
        theirs = torch.nn.functional.interpolate(torch.tensor(eye), mode="bilinear", align_corners=align_corners,
                                                 **kwargs).numpy()[0, :, 0, :]
        axis = I.linear_axis(in_size, theirs.shape[1], align_corners, scale, np.float32)
        ours = np.zeros_like(theirs)
        np.add.at(ours, (axis.i0, np.arange(theirs.shape[1])), axis.l0)
        np.add.at(ours, (axis.i1, np.arange(theirs.shape[1])), axis.l1)
        np.testing.assert_array_equal(ours, theirs)


def test_nearest_index_rule_equals_torchs_for_many_sizes(torch):
    for w in range(1, 30):
        x = torch.arange(w, dtype=torch.float32).reshape(1, 1, 1, w)
        for out_w in range(1, 3 * w + 2):
            for mode in ("nearest", "nearest-exact"):
                ref = torch.nn.functional.interpolate(x, size=(1, out_w), mode=mode).numpy().reshape(-1)
                np.testing.assert_array_equal(I.nearest_axis(w, out_w, None, mode == "nearest-exact"), ref)
        for scale in (0.5, 0.7, 1.1, 1.5, 2.0, 2.5, 7 / 3, 3.3):
            if int(np.floor(w * scale)) >= 1:
                ref = torch.nn.functional.interpolate(x, scale_factor=(1, scale), mode="nearest").numpy().reshape(-1)
                np.testing.assert_array_equal(I.nearest_axis(w, len(ref), scale, False), ref)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("linear", False), ("linear", True)])
def test_one_dimensional_inputs_match_torch(torch, mode, align_corners):
    x = np.random.default_rng(1).standard_normal((2, 3, 6))
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.interpolate(tx, scale_factor=2.5, mode=mode, align_corners=align_corners)
    ours = fc.tensor(x, requires_grad=True)
    out = F.interpolate(ours, scale_factor=2.5, mode=mode, align_corners=align_corners)
    g = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert gradcheck(lambda a: F.interpolate(a, size=9, mode=mode, align_corners=align_corners),
                     [fc.tensor(x, requires_grad=True)])


def test_integer_label_maps_resize_with_nearest(torch):
    labels = np.random.default_rng(3).integers(0, 5, (2, 1, 4, 6)).astype(np.uint8)
    out = F.interpolate(fc.tensor(labels), size=(7, 9), mode="nearest")
    assert out.dtype == np.uint8
    ref = torch.nn.functional.interpolate(torch.from_numpy(labels), size=(7, 9), mode="nearest").numpy()
    np.testing.assert_array_equal(out.numpy(), ref)
    with pytest.raises(TypeError, match="interpolate: expected input of dtype float32 or float64"):
        F.interpolate(fc.tensor(labels), scale_factor=2, mode="bilinear")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_results_do_not_depend_on_thread_count(mode):
    x = np.random.default_rng(4).standard_normal((3, 5, 40, 50)).astype(np.float32)
    g = np.random.default_rng(5).standard_normal((3, 5, 70, 125)).astype(np.float32)
    results = []
    previous = fc.get_num_threads()
    try:
        for threads in (1, 2):
            fc.set_num_threads(threads)
            t = fc.tensor(x, requires_grad=True)
            out = F.interpolate(t, size=(70, 125), mode=mode)
            out.backward(g)
            results.append((out.numpy().copy(), t.grad.numpy().copy()))
    finally:
        fc.set_num_threads(previous)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_input():
    base = np.random.default_rng(6).standard_normal((2, 5, 4, 3))
    x = fc.tensor(base, requires_grad=True)
    view = x.permute(0, 3, 1, 2)  # (2, 3, 5, 4), not contiguous
    out = F.interpolate(view, size=(7, 6), mode="bilinear")
    np.testing.assert_allclose(out.numpy(), bilinear_reference(base.transpose(0, 3, 1, 2), 7, 6, False), rtol=1e-12)
    out.sum().backward()
    assert x.grad.shape == base.shape


def test_interpolate_saves_nothing():
    x = fc.randn(2, 3, 4, 4, requires_grad=True)
    for mode in ("nearest", "bilinear"):
        assert F.interpolate(x, scale_factor=2, mode=mode).grad_fn.saved_nbytes == 0


def test_interpolate_errors():
    x = fc.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="interpolate: expected exactly one of size or scale_factor, got both"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="got neither"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners can only be set with the interpolating modes"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="mode 'linear' needs a 3-D input"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match="mode 'bicubic' is not supported"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="expected size with 2 values"):
        F.interpolate(x, size=(2, 3, 4))
    with pytest.raises(ValueError, match="output sizes should be greater than 0"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match="expected a 3-D \\(N, C, W\\) or 4-D"):
        F.interpolate(fc.randn(4, 4), scale_factor=2)
    with pytest.raises(TypeError, match="expected size as ints"):
        F.interpolate(x, size=2.5)


# ---- modules ------------------------------------------------------------------------------------------
UPSAMPLES = [
    ("Upsample", dict(scale_factor=2)),
    ("Upsample", dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ("Upsample", dict(size=(9, 5), mode="bilinear")),
    ("Upsample", dict(scale_factor=(1.5, 2.5), mode="nearest-exact")),
    ("UpsamplingNearest2d", dict(scale_factor=3)),
    ("UpsamplingBilinear2d", dict(size=7)),
]


@pytest.mark.parametrize("name,kwargs", UPSAMPLES)
def test_upsample_modules_match_torch(torch, name, kwargs):
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 6))
    ours, ref = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    np.testing.assert_allclose(ours(fc.tensor(x)).numpy(), ref(torch.from_numpy(x)).numpy(), rtol=1e-12)
    assert repr(ours) == repr(ref)
    assert ours.state_dict() == {}


def test_upsample_in_a_decoder_trains():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"),
                          nn.Conv2d(4, 1, 3, padding=1))
    x = fc.randn(2, 1, 8, 8)
    target = fc.tensor(np.random.default_rng(8).standard_normal((2, 1, 16, 16)).astype(np.float32))
    opt = fc.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
