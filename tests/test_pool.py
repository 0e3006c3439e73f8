"""Pooling: window-by-window numpy references, switch routing, gradcheck, torch cross-checks, errors."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv.autograd import gradcheck
from fastconv.nn.functional import pooling as P

F = fc.nn.functional
DTYPES = [np.float32, np.float64]
# the torch fixture is function-scoped but stateless, so sharing it across examples is fine
with_torch = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])


# ---- references (plain loops over windows, written from the definitions) ---------------------------

def window_starts(size, kernel, stride, padding, dilation, ceil_mode):
    """Start of every window: full windows only, or (ceil_mode) also a last partial window that
    starts inside the input or the left padding."""
    span = dilation * (kernel - 1) + 1
    starts = []
    o = 0
    while True:
        start = o * stride - padding
        if ceil_mode:
            fits = (o - 1) * stride + span < size + 2 * padding and o * stride < size + padding
        else:
            fits = start + span <= size + padding
        if not fits:
            break
        starts.append(start)
        o += 1
    return starts


def ref_max_pool(x, k, s, p, d, ceil_mode):
    """Maxima and switches: taps in row-major order, padding skipped, larger value or NaN wins."""
    planes = x.reshape(-1, *x.shape[-2:])
    H, W = planes.shape[1:]
    hs = window_starts(H, k[0], s[0], p[0], d[0], ceil_mode)
    ws = window_starts(W, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.empty((planes.shape[0], len(hs), len(ws)), dtype=x.dtype)
    idx = np.empty(out.shape, dtype=np.int64)
    for n, plane in enumerate(planes):
        for a, h0 in enumerate(hs):
            for b, w0 in enumerate(ws):
                taps = [(h0 + i * d[0], w0 + j * d[1]) for i in range(k[0]) for j in range(k[1])]
                taps = [(h, w) for h, w in taps if 0 <= h < H and 0 <= w < W]
                best, where = -np.inf, (taps[0][0] * W + taps[0][1] if taps else -1)
                for h, w in taps:
                    v = plane[h, w]
                    if v > best or np.isnan(v):
                        best, where = v, h * W + w
                out[n, a, b], idx[n, a, b] = best, where
    lead = x.shape[:-2]
    return out.reshape(lead + out.shape[1:]), idx.reshape(lead + out.shape[1:])


def ref_avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override):
    planes = x.reshape(-1, *x.shape[-2:]).astype(np.float64)
    H, W = planes.shape[1:]
    hs = window_starts(H, k[0], s[0], p[0], 1, ceil_mode)
    ws = window_starts(W, k[1], s[1], p[1], 1, ceil_mode)
    out = np.empty((planes.shape[0], len(hs), len(ws)))
    for a, h0 in enumerate(hs):
        for b, w0 in enumerate(ws):
            ha, hb = max(h0, 0), min(h0 + k[0], H)
            wa, wb = max(w0, 0), min(w0 + k[1], W)
            total = planes[:, ha:hb, wa:wb].sum(axis=(1, 2))
            if divisor_override:
                div = divisor_override
            elif count_include_pad:  # the window, cut where the right/bottom padding ends
                div = (min(h0 + k[0], H + p[0]) - h0) * (min(w0 + k[1], W + p[1]) - w0)
            else:
                div = (hb - ha) * (wb - wa)
            out[:, a, b] = total / div
    return out.reshape(x.shape[:-2] + out.shape[1:]).astype(x.dtype)


def adaptive_windows(size, out):
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def ref_adaptive(x, out_hw, reduce):
    planes = x.reshape(-1, *x.shape[-2:])
    H, W = planes.shape[1:]
    res = np.empty((planes.shape[0],) + tuple(out_hw), dtype=x.dtype)
    idx = np.empty(res.shape, dtype=np.int64)
    for a, (h0, h1) in enumerate(adaptive_windows(H, out_hw[0])):
        for b, (w0, w1) in enumerate(adaptive_windows(W, out_hw[1])):
            if reduce == "mean":
                res[:, a, b] = planes[:, h0:h1, w0:w1].astype(np.float64).mean(axis=(1, 2))
            else:  # one max-pool window covering exactly this region
                sub, local = ref_max_pool(planes[:, h0:h1, w0:w1], (h1 - h0, w1 - w0), (1, 1), (0, 0), (1, 1),
                                          False)
                res[:, a, b] = sub[:, 0, 0]
                local = local[:, 0, 0]
                idx[:, a, b] = (h0 + local // (w1 - w0)) * W + w0 + local % (w1 - w0)
    shape = x.shape[:-2] + tuple(out_hw)
    return res.reshape(shape), idx.reshape(shape)


def scatter_reference(g, idx, input_shape):
    """Gradient each input position receives from the windows whose switch it is (a window with
    no input element has switch -1 and routes nothing)."""
    planes = np.zeros((int(np.prod(input_shape[:-2])), input_shape[-2] * input_shape[-1]))
    for n, (gp, ip) in enumerate(zip(g.reshape(planes.shape[0], -1), idx.reshape(planes.shape[0], -1))):
        inside = ip >= 0
        np.add.at(planes[n], ip[inside], gp[inside])
    return planes.reshape(input_shape)


# ---- strategies -------------------------------------------------------------------------------------

@st.composite
def pool_configs(draw, dilation=True):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    lead = draw(st.sampled_from([(1, 1), (2, 3), (3,), (1, 2)]))
    hw = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    for i in range(2):
        assume(window_starts(hw[i], k[i], s[i], p[i], d[i], ceil_mode))
    return dict(shape=lead + hw, k=k, s=s, p=p, d=d, ceil_mode=ceil_mode)


def make_input(shape, dtype, seed, ties=False, noncontiguous=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape) if ties else rng.standard_normal(shape)
    x = x.astype(dtype)
    if noncontiguous:  # same values, transposed strides
        x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
        assert not x.flags.c_contiguous or x.shape[-1] == 1 or x.shape[-2] == 1
    return x


def distinct_input(shape, seed):
    """float64 values with gaps of 0.05 (no ties, finite differences stay inside one argmax)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.05 - 1.0


# ---- max_pool2d ---------------------------------------------------------------------------------------

@given(cfg=pool_configs(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2 ** 16),
       ties=st.booleans(), noncontiguous=st.booleans())
def test_max_pool2d_matches_reference(cfg, dtype, seed, ties, noncontiguous):
    x = make_input(cfg["shape"], dtype, seed, ties, noncontiguous)
    out, idx = F.max_pool2d(fc.tensor(x), cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"],
                            return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"])
    assert out.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(out.numpy(), ref_out)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    plain = F.max_pool2d(fc.tensor(x), cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"])
    np.testing.assert_array_equal(plain.numpy(), ref_out)


@given(cfg=pool_configs(), seed=st.integers(0, 2 ** 16), ties=st.booleans())
@example(cfg={"shape": (1, 1, 1, 1), "k": (1, 2), "s": (1, 1), "p": (0, 1), "d": (1, 2), "ceil_mode": False},
         seed=0, ties=False)  # the only window covers no input element: no gradient anywhere
def test_max_pool2d_gradient_goes_exactly_to_the_switches(cfg, seed, ties):
    x = make_input(cfg["shape"], np.float64, seed, ties)
    xt = fc.tensor(x, requires_grad=True)
    out = F.max_pool2d(xt, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"])
    g = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(g)
    _, ref_idx = ref_max_pool(x, cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"])
    np.testing.assert_allclose(xt.grad.numpy(), scatter_reference(g, ref_idx, x.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding", [(2, 0), (1, 0), (2, 1), (3, 1)])
@pytest.mark.parametrize("width", [3, 14, 37])
def test_max_pool2d_2x2_float32_path_matches_reference(stride, padding, width):
    """2x2 windows in float32 take a branch-free register loop: values, int64 indices and the
    gradient routed through int32 switches agree with the reference, with ties (±0 included),
    NaNs (several in one window: the last wins), -inf and wide rows (vector body and tail)."""
    rng = np.random.default_rng(width * 10 + stride)
    x = rng.integers(-2, 3, size=(2, 3, 9, width)).astype(np.float32)
    x[x == 0] = rng.choice(np.array([0.0, -0.0], dtype=np.float32), size=int((x == 0).sum()))
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 12, replace=False)] = np.nan
    flat[rng.choice(flat.size, 12, replace=False)] = -np.inf
    x[0, 0, 0, :2] = x[0, 0, 1, :2] = np.nan  # a window of NaNs only
    out, idx = F.max_pool2d(fc.tensor(x), 2, stride, padding, return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, (2, 2), (stride, stride), (padding, padding), (1, 1), False)
    np.testing.assert_array_equal(out.numpy(), ref_out)
    np.testing.assert_array_equal(np.signbit(out.numpy()), np.signbit(ref_out))
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    xt = fc.tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, 2, stride, padding)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    # overlapping windows add float32 gradients (the reference adds in float64)
    np.testing.assert_allclose(xt.grad.numpy(), scatter_reference(g, ref_idx, x.shape), rtol=1e-6, atol=1e-6)


def test_overlapping_windows_and_ties_route_to_first_maximum():
    # 3x3 windows with stride 2 share a row/column; the shared maximum gets both gradients
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 5.0            # inside all four windows
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = -1.0
    xt = fc.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(xt, 3, 2, return_indices=True)
    assert idx.numpy().ravel().tolist() == [12, 12, 12, 12]
    out.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((5, 5))
    expected[2, 2] = 10.0
    np.testing.assert_array_equal(xt.grad.numpy()[0, 0], expected)
    # all-equal window: the first element in row-major order wins
    y, idx = F.max_pool2d(fc.tensor(np.ones((1, 1, 4, 4))), 2, 2, return_indices=True)
    assert idx.numpy().ravel().tolist() == [0, 2, 8, 10]
    # padding is -inf: an all-negative border window still picks a real element
    y, idx = F.max_pool2d(fc.tensor(-np.ones((1, 1, 2, 2))), 2, 1, padding=1, return_indices=True)
    assert (y.numpy() == -1).all() and idx.numpy().min() >= 0 and idx.numpy().max() < 4


def test_max_pool2d_nan_propagates_like_torch(torch):
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[1, 1, 5, 5] = np.nan
    out, idx = F.max_pool2d(fc.tensor(x), 3, 2, padding=1, return_indices=True)
    t_out, t_idx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), t_out.numpy())
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())


@pytest.mark.parametrize("k,s,p,d,ceil_mode", [(2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False),
                                               ((2, 3), (1, 2), (1, 0), (2, 1), True)])
def test_max_pool2d_gradcheck(k, s, p, d, ceil_mode):
    x = fc.tensor(distinct_input((2, 2, 7, 6), 3), requires_grad=True)
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode), [x])


@with_torch
@given(cfg=pool_configs(), seed=st.integers(0, 2 ** 16), ties=st.booleans())
def test_max_pool2d_matches_torch(torch, cfg, seed, ties):
    x = make_input(cfg["shape"], np.float64, seed, ties)
    args = (cfg["k"], cfg["s"], cfg["p"], cfg["d"], cfg["ceil_mode"])
    # windows without any input element: torch's switch points outside the plane and its backward
    # writes out of bounds (crashes); fastconv's -1 switch is tested separately
    assume(ref_max_pool(x, *args)[1].min() >= 0)
    xt = fc.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(xt, *args, return_indices=True)
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_idx = torch.nn.functional.max_pool2d(tx, *args, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), t_out.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_empty_window_gets_minus_inf_and_no_gradient(torch):
    # width 1, padding 1, dilation 3, ceil_mode: the only column window's taps (-1, 2) miss the input
    x = fc.tensor(np.array([[[[1.0], [2.0]]]]), requires_grad=True)
    args = ((1, 2), (1, 3), (0, 1), (1, 3), True)
    out, idx = F.max_pool2d(x, *args, return_indices=True)
    t = torch.nn.functional.max_pool2d(torch.tensor(x.numpy()), *args)
    np.testing.assert_array_equal(out.numpy(), t.numpy())
    assert out.numpy().ravel().tolist() == [-np.inf, -np.inf]
    assert idx.numpy().ravel().tolist() == [-1, -1]
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 2, 1)))


def test_max_pool2d_saves_only_switches_and_only_when_needed():
    x = fc.randn(2, 3, 9, 9, requires_grad=True)
    shapes = ((2, 3, 9, 9),)
    for k, s, p, d, ceil_mode, return_indices in [(3, 2, 1, 1, True, False), (2, 2, 0, 1, False, True),
                                                  (2, 1, 1, 3, False, False)]:
        out = F.max_pool2d(x, k, s, p, d, ceil_mode, return_indices)
        out = out[0] if return_indices else out
        opts = dict(kernel_size=(k, k), stride=(s, s), padding=(p, p), dilation=(d, d), ceil_mode=ceil_mode,
                    return_indices=return_indices)
        assert out.grad_fn.saved_nbytes == P.MaxPool2d.saved_bytes(shapes, np.float32, (True,), **opts)
        # one switch per output, nothing else: int64 when returned to the caller, else int32
        assert out.grad_fn.saved_nbytes == out.numel() * (8 if return_indices else 4)
        assert P.MaxPool2d.saved_bytes(shapes, np.float32, (False,), **opts) == 0
    with fc.no_grad():
        assert F.max_pool2d(x, 2).grad_fn is None


def test_three_d_input_and_batch_of_one():
    x = np.random.default_rng(1).standard_normal((3, 6, 5))
    out, idx = F.max_pool2d(fc.tensor(x), 2, return_indices=True)
    ref_out, ref_idx = ref_max_pool(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert out.shape == (3, 3, 2)
    np.testing.assert_array_equal(out.numpy(), ref_out)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    one = F.max_pool2d(fc.tensor(x[None, :1, :1, :1]), 1)
    assert one.shape == (1, 1, 1, 1) and one.item() == x[0, 0, 0]


# ---- max_unpool2d -----------------------------------------------------------------------------------

@given(k=st.integers(1, 3), s=st.integers(1, 3), seed=st.integers(0, 2 ** 16), dtype=st.sampled_from(DTYPES))
def test_max_unpool2d_places_values_at_switches(k, s, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 7, 6)).astype(dtype)
    y, idx = F.max_pool2d(fc.tensor(x), k, s, return_indices=True)
    un = F.max_unpool2d(y, idx, k, s, output_size=x.shape)
    expected = np.zeros_like(x)
    for n in range(2):
        for c in range(2):
            plane = expected[n, c].reshape(-1)
            for v, i in zip(y.numpy()[n, c].ravel(), idx.numpy()[n, c].ravel()):
                plane[i] = v
    np.testing.assert_array_equal(un.numpy(), expected)
    # every kept value is the input's value at that position
    kept = un.numpy() != 0
    np.testing.assert_array_equal(un.numpy()[kept], x[kept])


def test_max_unpool2d_round_trip_matches_torch(torch):
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 7))
    for k, s, p in [(2, 2, 0), (3, 2, 1), (2, 1, 0)]:
        y, idx = F.max_pool2d(fc.tensor(x, requires_grad=True), k, s, p, return_indices=True)
        ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
        yt = fc.tensor(y.numpy(), requires_grad=True)
        un = F.max_unpool2d(yt, idx, k, s, p, output_size=(8, 7))
        tyy = ty.detach().clone().requires_grad_(True)
        tun = torch.nn.functional.max_unpool2d(tyy, tidx, k, s, p, output_size=(8, 7))
        if s >= k:  # overlapping windows may repeat an index; torch's pick among duplicates is unspecified
            np.testing.assert_array_equal(un.numpy(), tun.detach().numpy())
        g = np.random.default_rng(k).standard_normal(un.shape)
        un.backward(g)
        tun.backward(torch.tensor(g))
        np.testing.assert_array_equal(yt.grad.numpy(), tyy.grad.numpy())
    # default output size (H-1)*stride - 2*padding + kernel
    y, idx = F.max_pool2d(fc.tensor(x[..., :6]), 2, return_indices=True)
    un = F.max_unpool2d(y, idx, 2)
    assert un.shape == (2, 3, 8, 6)
    t_y, t_idx = torch.nn.functional.max_pool2d(torch.tensor(x[..., :6]), 2, return_indices=True)
    np.testing.assert_array_equal(un.numpy(), torch.nn.functional.max_unpool2d(t_y, t_idx, 2).numpy())


def test_max_unpool2d_gradcheck_and_saved_bytes():
    x = distinct_input((1, 2, 6, 6), 7)
    y, idx = F.max_pool2d(fc.tensor(x), 2, return_indices=True)
    yt = fc.tensor(y.numpy(), requires_grad=True)
    assert gradcheck(lambda t: F.max_unpool2d(t, idx, 2), [yt])
    un = F.max_unpool2d(yt, idx, 2)
    assert un.grad_fn.saved_nbytes == P.MaxUnpool2d.saved_bytes(((1, 2, 3, 3), (1, 2, 3, 3)), np.float64,
                                                                 (True, False), output_hw=(6, 6)) == 18 * 8


# ---- avg_pool2d -----------------------------------------------------------------------------------------

@given(cfg=pool_configs(dilation=False), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2 ** 16),
       count_include_pad=st.booleans(), divisor=st.sampled_from([None, None, 3, -2]),
       noncontiguous=st.booleans())
def test_avg_pool2d_matches_reference(cfg, dtype, seed, count_include_pad, divisor, noncontiguous):
    x = make_input(cfg["shape"], dtype, seed, noncontiguous=noncontiguous)
    out = F.avg_pool2d(fc.tensor(x), cfg["k"], cfg["s"], cfg["p"], cfg["ceil_mode"], count_include_pad, divisor)
    ref = ref_avg_pool(x, cfg["k"], cfg["s"], cfg["p"], cfg["ceil_mode"], count_include_pad, divisor)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


@with_torch
@given(cfg=pool_configs(dilation=False), seed=st.integers(0, 2 ** 16), count_include_pad=st.booleans(),
       divisor=st.sampled_from([None, 5]))
def test_avg_pool2d_matches_torch(torch, cfg, seed, count_include_pad, divisor):
    x = make_input(cfg["shape"], np.float64, seed)
    args = (cfg["k"], cfg["s"], cfg["p"], cfg["ceil_mode"], count_include_pad, divisor)
    xt = fc.tensor(x, requires_grad=True)
    out = F.avg_pool2d(xt, *args)
    tx = torch.tensor(x, requires_grad=True)
    t_out = torch.nn.functional.avg_pool2d(tx, *args)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,s,p,ceil_mode,cip,div", [
    (2, 2, 0, False, True, None), (3, 2, 1, True, False, None), (3, 1, 1, False, True, 4),
    ((3, 2), (2, 1), (1, 1), True, True, None),
    # disjoint windows (stride ≥ kernel: each input gets at most one share), with gaps and padding
    (2, 3, 1, True, True, None), ((1, 2), (2, 3), (0, 1), True, False, None), (2, 2, 1, False, False, 3)])
def test_avg_pool2d_gradcheck(k, s, p, ceil_mode, cip, div):
    x = fc.tensor(np.random.default_rng(0).standard_normal((2, 2, 6, 5)), requires_grad=True)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode, cip, div), [x])
    assert F.avg_pool2d(x, k, s, p, ceil_mode, cip, div).grad_fn.saved_nbytes == 0


# ---- adaptive and global pools ------------------------------------------------------------------------------

adaptive_sizes = st.tuples(st.integers(1, 7), st.integers(1, 7))


@given(hw=adaptive_sizes, out_hw=adaptive_sizes, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2 ** 16),
       ties=st.booleans())
def test_adaptive_pools_match_reference(hw, out_hw, dtype, seed, ties):
    x = make_input((2, 3) + hw, dtype, seed, ties)
    avg = F.adaptive_avg_pool2d(fc.tensor(x), out_hw)
    ref_avg, _ = ref_adaptive(x, out_hw, "mean")
    np.testing.assert_allclose(avg.numpy(), ref_avg, rtol=1e-6 if dtype == np.float32 else 1e-12)
    mx, idx = F.adaptive_max_pool2d(fc.tensor(x), out_hw, return_indices=True)
    ref_mx, ref_idx = ref_adaptive(x, out_hw, "max")
    np.testing.assert_array_equal(mx.numpy(), ref_mx)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)


@with_torch
@given(hw=adaptive_sizes, out_hw=adaptive_sizes, seed=st.integers(0, 2 ** 16), ties=st.booleans())
def test_adaptive_pools_match_torch(torch, hw, out_hw, seed, ties):
    x = make_input((1, 2) + hw, np.float64, seed, ties)
    g = np.random.default_rng(seed).standard_normal((1, 2) + out_hw)
    for ours, theirs in [(F.adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d),
                         (F.adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d)]:
        xt = fc.tensor(x, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        out, t_out = ours(xt, out_hw), theirs(tx, out_hw)
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12)
        out.backward(g)
        t_out.backward(torch.tensor(g))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    _, idx = F.adaptive_max_pool2d(fc.tensor(x), out_hw, return_indices=True)
    _, t_idx = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), out_hw, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())


def test_adaptive_output_size_forms():
    x = fc.randn(2, 3, 7, 5)
    assert F.adaptive_avg_pool2d(x, 3).shape == (2, 3, 3, 3)
    assert F.adaptive_avg_pool2d(x, (None, 2)).shape == (2, 3, 7, 2)
    assert F.adaptive_max_pool2d(x, [4, None]).shape == (2, 3, 4, 5)
    assert F.adaptive_avg_pool2d(fc.randn(3, 7, 5), (2, 2)).shape == (3, 2, 2)


@pytest.mark.parametrize("fn", ["avg", "max"])
def test_adaptive_and_global_gradcheck(fn):
    x = fc.tensor(distinct_input((2, 2, 5, 7), 11), requires_grad=True)
    adaptive = F.adaptive_avg_pool2d if fn == "avg" else F.adaptive_max_pool2d
    glob = F.global_avg_pool2d if fn == "avg" else F.global_max_pool2d
    assert gradcheck(lambda t: adaptive(t, (3, 4)), [x])
    assert gradcheck(lambda t: adaptive(t, (6, 9)), [x])  # more outputs than inputs: windows repeat
    assert gradcheck(glob, [x])


def test_global_pools_are_plane_reductions():
    x = np.random.default_rng(4).standard_normal((3, 4, 5, 6)).astype(np.float32)
    avg = F.global_avg_pool2d(fc.tensor(x))
    mx = F.global_max_pool2d(fc.tensor(x))
    assert avg.shape == mx.shape == (3, 4, 1, 1)
    np.testing.assert_allclose(avg.numpy(), x.astype(np.float64).mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(mx.numpy(), x.max(axis=(2, 3), keepdims=True))
    xt = fc.tensor(x, requires_grad=True)
    F.global_max_pool2d(xt).sum().backward()
    flat = x.reshape(12, -1)
    expected = np.zeros_like(flat)
    expected[np.arange(12), flat.argmax(axis=1)] = 1
    np.testing.assert_array_equal(xt.grad.numpy().reshape(12, -1), expected)


def test_adaptive_max_saved_bytes():
    x = fc.randn(2, 3, 8, 8, requires_grad=True)
    out = F.adaptive_max_pool2d(x, (3, 2))
    assert out.grad_fn.saved_nbytes == P.AdaptiveMaxPool2d.saved_bytes(
        ((2, 3, 8, 8),), np.float32, (True,), output_size=(3, 2), return_indices=False) == 2 * 3 * 3 * 2 * 4
    assert F.adaptive_avg_pool2d(x, 3).grad_fn.saved_nbytes == 0


# ---- bad input ------------------------------------------------------------------------------------------------

def test_errors_name_the_op_and_both_sides():
    x = fc.randn(2, 3, 6, 6)
    with pytest.raises(ValueError,
                       match=r"max_pool2d: expected 3-D or 4-D .*\(N, C, H, W\).*got input of shape \(8, 32\)"):
        F.max_pool2d(fc.randn(8, 32), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected 3-D or 4-D"):
        F.avg_pool2d(fc.randn(1, 1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(7, 7\).*does not fit the input \(6, 6\)"):
        F.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel_size \(4, 4\).*input \(3, 3\) with padding \(0, 0\)"):
        F.avg_pool2d(fc.randn(1, 1, 3, 3), 4)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(3, 3\) with dilation \(3, 3\)"):
        F.max_pool2d(x, 3, dilation=3)
    for bad in (0, -1, (1, 0)):
        with pytest.raises(ValueError, match=r"max_pool2d: expected stride >= 1"):
            F.max_pool2d(x, 2, stride=bad)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected kernel_size >= 1, got 0"):
        F.avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"max_pool2d: expected padding <= kernel_size / 2, got padding \(2, 2\) "
                                         r"for kernel_size \(3, 3\)"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: expected dilation >= 1"):
        F.max_pool2d(x, 2, dilation=0)
    with pytest.raises(TypeError, match=r"max_pool2d: expected kernel_size as an int or a pair"):
        F.max_pool2d(x, 2.5)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected a non-zero divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected output_size >= 1"):
        F.adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(TypeError, match=r"max_pool2d: expected input of dtype float32 or float64, got float16"):
        F.max_pool2d(np.ones((1, 1, 4, 4), np.float16), 2)  # a plain ndarray is checked the same way
    with pytest.raises(ValueError, match=r"max_pool2d: expected non-empty .* got input of shape \(2, 3, 0, 6\)"):
        F.max_pool2d(fc.zeros(2, 3, 0, 6), 1)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
                                "global_avg_pool2d", "global_max_pool2d"])
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.int32])
def test_integer_and_half_inputs_are_type_errors(op, dtype):
    x = fc.tensor(np.ones((1, 1, 4, 4)), dtype=dtype)
    args = {"max_pool2d": (2,), "avg_pool2d": (2,), "adaptive_avg_pool2d": (2,), "adaptive_max_pool2d": (2,)}
    with pytest.raises(TypeError, match=rf"{op}: expected input of dtype float32 or float64, got {np.dtype(dtype)}"):
        getattr(F, op)(x, *args.get(op, ()))


def test_max_unpool2d_rejects_bad_indices_and_sizes():
    y, idx = F.max_pool2d(fc.randn(1, 2, 4, 4), 2, return_indices=True)
    bad = idx.numpy().copy()
    bad[0, 1, 1, 1] = 16
    with pytest.raises(ValueError, match=r"max_unpool2d: expected indices in \[0, 16\) .* got index 16"):
        F.max_unpool2d(y, bad, 2)
    bad[0, 1, 1, 1] = -1
    with pytest.raises(ValueError, match=r"max_unpool2d: expected indices in \[0, 16\).*got index -1"):
        F.max_unpool2d(y, bad, 2)
    with pytest.raises(TypeError, match=r"max_unpool2d: expected integer indices"):
        F.max_unpool2d(y, idx.numpy().astype(np.float32), 2)
    with pytest.raises(ValueError, match=r"max_unpool2d: expected indices of the input's shape \(1, 2, 2, 2\), "
                                         r"got indices of shape \(2, 2, 2\)"):
        F.max_unpool2d(y, idx.numpy()[0], 2)
    with pytest.raises(ValueError, match=r"max_unpool2d: invalid output_size \(9, 4\): dimension 0 must be between"):
        F.max_unpool2d(y, idx, 2, output_size=(9, 4))
    with pytest.raises(TypeError, match=r"max_unpool2d: expected input of dtype float32 or float64"):
        F.max_unpool2d(fc.tensor(y.numpy(), dtype=np.float16), idx, 2)
    # a larger explicit output accepts indices that fit its plane
    assert F.max_unpool2d(y, idx, 2, output_size=(5, 5)).shape == (1, 2, 5, 5)
