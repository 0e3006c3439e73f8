"""conv2d / conv_transpose2d against direct numpy references, finite differences and PyTorch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv.autograd import gradcheck
from fastconv.nn.functional.conv import Conv2dFunction, ConvTranspose2dFunction


@pytest.fixture(autouse=True, scope="module")
def parallel_even_when_tiny():
    """Run the multi-threaded schemes on these small shapes too (they would run serially)."""
    import _conv_paths as cp

    previous = cp.common.MIN_FLOPS_PER_THREAD
    cp.common.MIN_FLOPS_PER_THREAD = 0
    yield
    cp.common.MIN_FLOPS_PER_THREAD = previous


# ---- direct numpy references --------------------------------------------------------------------

def ref_padding(padding, kernel, dilation):
    """((top, bottom), (left, right)) for an int, a pair, 'same' or 'valid'."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    p = (padding, padding) if isinstance(padding, int) else padding
    return (p[0], p[0]), (p[1], p[1])


def windows(xp, kh, kw, stride, dilation, out_hw):
    """Yield (i, j, view) with view[n, c, oy, ox] = xp[n, c, oy·sh + i·dh, ox·sw + j·dw]."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))


def ref_conv2d(x, w, b, stride, padding, dilation, groups):
    """Output and a closure for (dx, dw, db) given dy, by looping over kernel taps."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (pt, pb), (pl, pr) = ref_padding(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + pl + pr - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    kg = k // groups
    y = np.zeros((n, k, ho, wo))
    taps = list(windows(xp, kh, kw, stride, dilation, (ho, wo)))
    for g in range(groups):
        cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for i, j, (sy, sx) in taps:
            y[:, ks] += np.einsum("nchw,kc->nkhw", xp[:, cs, sy, sx], w[ks, :, i, j])
    if b is not None:
        y += b[None, :, None, None]

    def grads(dy):
        dxp = np.zeros_like(xp, dtype=np.float64)
        dw = np.zeros(w.shape)
        for g in range(groups):
            cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
            for i, j, (sy, sx) in taps:
                dw[ks, :, i, j] += np.einsum("nkhw,nchw->kc", dy[:, ks], xp[:, cs, sy, sx])
                dxp[:, cs, sy, sx] += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, i, j])
        dx = dxp[:, :, pt:pt + h, pl:pl + wd]
        return dx, dw, dy.sum(axis=(0, 2, 3))

    return y, grads


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation):
    """Direct scatter: out[co, iy·s − p + i·d] += x[ci, iy] · w[ci, co, i]."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    full_h = (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + output_padding[1]
    full = np.zeros((n, cog * groups, full_h, full_w))
    cig = cin // groups
    for g in range(groups):
        cs, os_ = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
        for i, j, (sy, sx) in windows(None, kh, kw, stride, dilation, (h, wd)):
            full[:, os_, sy, sx] += np.einsum("nchw,co->nohw", x[:, cs], w[cs, :, i, j])
    ph, pw = padding
    out_h = full_h - 2 * ph
    out_w = full_w - 2 * pw
    out = full[:, :, ph:ph + out_h, pw:pw + out_w]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


# ---- hypothesis strategies -------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    cg = 1 if depthwise else draw(st.integers(1, 3))
    c = cg * groups
    k = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad_kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (1, 1) if pad_kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if pad_kind == "int":
        padding = draw(st.integers(0, 3))
    elif pad_kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    else:
        padding = pad_kind
    (pt, pb), (pl, pr) = ref_padding(padding, (kh, kw), dil)
    min_h = max(1, dil[0] * (kh - 1) + 1 - pt - pb)  # kernel ≥ input allowed when padding covers it
    min_w = max(1, dil[1] * (kw - 1) + 1 - pl - pr)
    h = draw(st.integers(min_h, min_h + 6))
    w = draw(st.integers(min_w, min_w + 6))
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bias = draw(st.booleans())
    layout = draw(st.sampled_from(["contiguous", "strided", "channels_last"]))
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=stride, padding=padding,
                dilation=dil, groups=groups, dtype=dtype, bias=bias, layout=layout)


def make_input(rng, shape, dtype, layout):
    """An array of ``shape`` that is contiguous, strided (every other column) or NHWC in memory."""
    if layout == "strided":
        big = rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)
        return big[..., ::2]
    if layout == "channels_last":
        return rng.standard_normal((shape[0], shape[2], shape[3], shape[1])).astype(dtype).transpose(0, 3, 1, 2)
    return rng.standard_normal(shape).astype(dtype)


def tolerance(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


# ---- conv2d ----------------------------------------------------------------------------------------

@given(conv_cases())
def test_conv2d_matches_reference_forward_and_backward(case):
    rng = np.random.default_rng(0)
    dt = case["dtype"]
    x = make_input(rng, (case["n"], case["c"], case["h"], case["w"]), dt, case["layout"])
    w = rng.standard_normal((case["k"], case["c"] // case["groups"], case["kh"], case["kw"])).astype(dt)
    b = rng.standard_normal(case["k"]).astype(dt) if case["bias"] else None
    X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    B = fc.tensor(b, requires_grad=True) if b is not None else None
    opts = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    y = F.conv2d(X, W, B, **opts)
    ref, ref_grads = ref_conv2d(x.astype(np.float64), w.astype(np.float64),
                                None if b is None else b.astype(np.float64),
                                case["stride"], case["padding"], case["dilation"], case["groups"])
    assert y.dtype == dt and y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, **tolerance(dt))
    dy = rng.standard_normal(ref.shape).astype(dt)
    y.backward(dy)
    dx, dw, db = ref_grads(dy.astype(np.float64))
    np.testing.assert_allclose(X.grad.numpy(), dx, **tolerance(dt))
    np.testing.assert_allclose(W.grad.numpy(), dw, **tolerance(dt))
    if B is not None:
        np.testing.assert_allclose(B.grad.numpy(), db, **tolerance(dt))


@pytest.mark.parametrize("opts", [
    dict(stride=1, padding=1),
    dict(stride=2, padding=(0, 1), dilation=(1, 2)),
    dict(padding="same", dilation=2, groups=2),
    dict(padding="same", groups=4),  # depthwise, even kernel below → asymmetric padding
])
def test_conv2d_gradcheck(rng, opts):
    kh = 2 if opts.get("groups") == 4 else 3
    x = fc.tensor(rng.standard_normal((2, 4, 5, 5)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 4 // opts.get("groups", 1), kh, 3)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **opts), (x, w, b))


def test_conv2d_batch_of_one_and_1x1_image(rng):
    x = rng.standard_normal((1, 3, 1, 1))
    w = rng.standard_normal((5, 3, 3, 3))
    y = F.conv2d(fc.tensor(x), fc.tensor(w), padding=1)
    np.testing.assert_allclose(y.numpy()[0, :, 0, 0], w[:, :, 1, 1] @ x[0, :, 0, 0], rtol=1e-12)


def test_strided_bias_and_weight_views(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    w_big = rng.standard_normal((4, 3, 3, 6))
    b_big = rng.standard_normal(8)
    ref, _ = ref_conv2d(x, w_big[..., ::2], b_big[::2], (1, 1), 1, (1, 1), 1)
    y = F.conv2d(fc.tensor(x), fc.tensor(w_big[..., ::2]), fc.tensor(b_big[::2]), padding=1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    wt = rng.standard_normal((3, 2, 3, 3))
    ref_t = ref_conv_transpose2d(x, wt, b_big[::4], (2, 2), (1, 1), (0, 0), 1, (1, 1))
    yt = F.conv_transpose2d(fc.tensor(x), fc.tensor(wt), fc.tensor(b_big[::4]), stride=2, padding=1)
    np.testing.assert_allclose(yt.numpy(), ref_t, rtol=1e-12, atol=1e-12)


def test_conv2d_unbatched_input(rng):
    x = rng.standard_normal((3, 6, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    y = F.conv2d(fc.tensor(x), fc.tensor(w), stride=2)
    ref, _ = ref_conv2d(x[None], w, None, (2, 2), 0, (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), ref[0], rtol=1e-12)


def test_conv2d_many_rows_are_blocked(rng, monkeypatch):
    """Column buffers smaller than an image: row blocks must tile the output exactly."""
    import _conv_paths as cp

    monkeypatch.setattr(cp.common, "COLUMN_BLOCK_ELEMENTS", 50)
    x = rng.standard_normal((3, 2, 9, 7))
    w = rng.standard_normal((4, 2, 3, 3))
    X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    y = F.conv2d(X, W, padding=1)
    ref, ref_grads = ref_conv2d(x, w, None, (1, 1), 1, (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(ref.shape)
    y.backward(dy)
    dx, dw, _ = ref_grads(dy)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W.grad.numpy(), dw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_thread_counts_agree(rng, threads):
    """Serial (threaded-BLAS) and parallel-over-images schemes give the same result."""
    previous = fc.get_num_threads()
    x = rng.standard_normal((3, 4, 8, 8))
    w = rng.standard_normal((6, 4, 3, 3))
    ref, ref_grads = ref_conv2d(x, w, None, (1, 1), 1, (1, 1), 1)
    try:
        fc.set_num_threads(threads)
        X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
        y = F.conv2d(X, W, padding=1)
        y.backward(np.ones(ref.shape))
    finally:
        fc.set_num_threads(previous)
    dx, dw, _ = ref_grads(np.ones(ref.shape))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W.grad.numpy(), dw, rtol=1e-10, atol=1e-12)


def test_conv2d_only_requested_grads_are_computed_and_saved(rng):
    x = fc.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)))  # frozen
    y = F.conv2d(x, w)
    assert y.grad_fn.saved_nbytes == w.numpy().nbytes  # x is not kept: no weight gradient
    y.sum().backward()
    assert x.grad is not None and w.grad is None
    with fc.no_grad():
        z = F.conv2d(x, w)
    assert z.grad_fn is None


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True)])
def test_conv2d_saved_bytes_declaration(rng, needs):
    x = fc.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=needs[0])
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=needs[1])
    b = fc.tensor(rng.standard_normal(4).astype(np.float32), requires_grad=needs[2])
    y = F.conv2d(x, w, b, stride=2, padding=1)
    ctx = y.grad_fn
    declared = Conv2dFunction.saved_bytes((x.shape, w.shape, b.shape), np.float32, needs,
                                          geometry=ctx.geometry)
    assert declared == ctx.saved_nbytes
    assert Conv2dFunction.workspace_bytes((x.shape, w.shape, b.shape), np.float32,
                                          geometry=ctx.geometry) > 0


def _agree_with_torch(torch, rng, ours, theirs, arrays, opts):
    """Outputs and the gradients of every argument equal torch's for the same float32 arrays."""
    mine = [fc.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = ours(*mine, **opts)
    ty = theirs(*ref, **opts)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for a, t in zip(mine, ref):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv2d_matches_torch(torch, rng):
    import warnings

    warnings.filterwarnings("ignore", message=".*padding=.same.*")  # torch notes its own padded copy
    for opts in (dict(stride=2, padding=1), dict(padding="same", dilation=2, groups=3),
                 dict(padding="same"), dict(padding="valid", stride=(1, 2)), dict(groups=6)):
        kh = 4 if opts.get("padding") == "same" and "dilation" not in opts else 3
        g = opts.get("groups", 1)
        x = rng.standard_normal((3, 6, 9, 8)).astype(np.float32)
        w = rng.standard_normal((12, 6 // g, kh, 3)).astype(np.float32)
        b = rng.standard_normal(12).astype(np.float32)
        _agree_with_torch(torch, rng, F.conv2d, torch.nn.functional.conv2d, (x, w, b), opts)


# ---- conv_transpose2d --------------------------------------------------------------------------------

@st.composite
def transpose_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad = []
    for size, k, s, d, op in ((h, kh, stride[0], dil[0], out_pad[0]), (w, kw, stride[1], dil[1], out_pad[1])):
        full = (size - 1) * s + d * (k - 1) + op + 1
        pad.append(draw(st.integers(0, (full - 1) // 2)))
    return dict(n=draw(st.integers(1, 3)), cin=cin, cout=cout, h=h, w=w, kh=kh, kw=kw, stride=stride,
                padding=tuple(pad), output_padding=out_pad, dilation=dil, groups=groups,
                dtype=draw(st.sampled_from([np.float32, np.float64])), bias=draw(st.booleans()))


@given(transpose_cases())
def test_conv_transpose2d_matches_reference(case):
    rng = np.random.default_rng(1)
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["cin"], case["h"], case["w"])).astype(dt)
    w = rng.standard_normal((case["cin"], case["cout"] // case["groups"], case["kh"], case["kw"])).astype(dt)
    b = rng.standard_normal(case["cout"]).astype(dt) if case["bias"] else None
    y = F.conv_transpose2d(fc.tensor(x), fc.tensor(w), None if b is None else fc.tensor(b),
                           stride=case["stride"], padding=case["padding"],
                           output_padding=case["output_padding"], groups=case["groups"],
                           dilation=case["dilation"])
    ref = ref_conv_transpose2d(x.astype(np.float64), w.astype(np.float64),
                               None if b is None else b.astype(np.float64), case["stride"],
                               case["padding"], case["output_padding"], case["groups"], case["dilation"])
    assert y.shape == ref.shape and y.dtype == dt
    np.testing.assert_allclose(y.numpy(), ref, **tolerance(dt))


@pytest.mark.parametrize("opts", [
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(1, 2), dilation=2, groups=2),
])
def test_conv_transpose2d_gradcheck(rng, opts):
    x = fc.tensor(rng.standard_normal((2, 4, 3, 4)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(3 * opts.get("groups", 1)), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **opts), (x, w, b))


def test_conv_transpose2d_matches_torch(torch, rng):
    for opts in (dict(stride=2, padding=1, output_padding=1), dict(stride=3, groups=2, dilation=2),
                 dict(padding=(1, 0), stride=(2, 1))):
        g = opts.get("groups", 1)
        x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
        w = rng.standard_normal((4, 6 // g, 3, 3)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        _agree_with_torch(torch, rng, F.conv_transpose2d, torch.nn.functional.conv_transpose2d, (x, w, b), opts)


def test_conv_transpose2d_saved_bytes_declaration(rng):
    x = fc.tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    y = F.conv_transpose2d(x, w, stride=2)
    ctx = y.grad_fn
    opts = dict(geometry=ctx.geometry, out_shape=ctx.out_shape)
    assert ConvTranspose2dFunction.saved_bytes((x.shape, w.shape, None), np.float64, (True, True, False),
                                               **opts) == ctx.saved_nbytes
    assert ConvTranspose2dFunction.workspace_bytes((x.shape, w.shape, None), np.float64, **opts) > 0


# ---- bad input ----------------------------------------------------------------------------------------

def _x(*shape, dtype=np.float32):
    return fc.tensor(np.ones(shape, dtype=dtype))


@pytest.mark.parametrize("call, error, words", [
    (lambda: F.conv2d(_x(4, 4), _x(2, 1, 3, 3)), ValueError, "4-D"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3)), ValueError, "weight"),
    (lambda: F.conv2d(_x(1, 4, 8, 8), _x(2, 3, 3, 3)), ValueError, "3 channels"),
    (lambda: F.conv2d(_x(1, 3, 2, 2), _x(2, 3, 3, 3)), ValueError, "larger than the padded input"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), stride=0), ValueError, "stride"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), stride=(1, -1)), ValueError, "stride"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), padding=-1), ValueError, "padding"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), padding="full"), ValueError, "padding"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), padding="same", stride=2), ValueError, "same"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), dilation=0), ValueError, "dilation"),
    (lambda: F.conv2d(_x(1, 3, 8, 8, dtype=np.int64), _x(2, 3, 3, 3)), TypeError, "int64"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), np.ones((2, 3, 3, 3), np.float16)), TypeError, "float16"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3, dtype=np.float64)), TypeError, "float32"),
    (lambda: F.conv2d(_x(1, 6, 8, 8), _x(4, 3, 3, 3), groups=4), ValueError, "groups"),
    (lambda: F.conv2d(_x(1, 6, 8, 8), _x(3, 2, 3, 3), groups=3.0), TypeError, "groups"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(2, 3, 3, 3), _x(3)), ValueError, "bias"),
    (lambda: F.conv2d(_x(1, 3, 8, 8), _x(0, 3, 3, 3)), ValueError, "weight"),
    (lambda: F.conv_transpose2d(_x(1, 3, 4, 4), _x(2, 3, 3, 3)), ValueError, "2 channels"),
    (lambda: F.conv_transpose2d(_x(1, 2, 4, 4), _x(2, 3, 3, 3), stride=2, output_padding=2), ValueError,
     "output_padding"),
    (lambda: F.conv_transpose2d(_x(1, 2, 1, 1), _x(2, 3, 1, 1), padding=1), ValueError, "not positive"),
    (lambda: F.conv_transpose2d(_x(1, 2, 4, 4), _x(2, 3, 3, 3), padding="same"), ValueError, "padding"),
    (lambda: F.conv_transpose2d(_x(1, 2, 4, 4), _x(2, 3, 3, 3), _x(2)), ValueError, "bias"),
    (lambda: F.conv_transpose2d(_x(1, 3, 4, 4), _x(3, 3, 3, 3), groups=2), ValueError, "groups"),
])
def test_bad_input_is_rejected_with_the_op_name(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith(("conv2d:", "conv_transpose2d:")), message
    assert words in message, message


def test_repeated_calls_are_validated_like_the_first(rng):
    """conv2d caches the geometry of a validated call: a repeated call gives the same result, and
    a call that only differs in what validation rejects (a bool option equal to the cached int,
    another dtype, another shape) is still rejected."""
    x = fc.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    first = F.conv2d(x, w, stride=1, padding=1).numpy()
    np.testing.assert_array_equal(F.conv2d(x, w, stride=1, padding=1).numpy(), first)
    with pytest.raises(TypeError, match="conv2d: expected stride as an int or a pair of ints"):
        F.conv2d(x, w, stride=True, padding=1)
    with pytest.raises(TypeError, match="conv2d: expected stride as an int or a pair of ints"):
        F.conv2d(x, w, stride=(True, 1), padding=1)
    with pytest.raises(TypeError, match="conv2d: expected input of dtype float64 like weight, got float32"):
        F.conv2d(x, fc.tensor(w.numpy().astype(np.float64)), stride=1, padding=1)
    with pytest.raises(ValueError, match="conv2d: expected input with 3 channels"):
        F.conv2d(fc.tensor(np.zeros((2, 2, 8, 8), np.float32)), w, stride=1, padding=1)
    unbatched = F.conv2d(fc.tensor(x.numpy()[0]), w, stride=1, padding=1)
    np.testing.assert_allclose(unbatched.numpy(), first[0], rtol=1e-6, atol=1e-6)


@given(n=st.integers(2, 9), c=st.integers(1, 6), h=st.integers(1, 7), w=st.integers(1, 7),
       k=st.integers(1, 9), kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), dtype=st.sampled_from([np.float32, np.float64]),
       need=st.sampled_from(["dx", "dw", "both"]), threads=st.sampled_from([1, 2, 3]),
       large_gradient=st.booleans(), seed=st.integers(0, 999))
def test_gemm_backward_images_side_by_side(n, c, h, w, k, kh, kw, stride, padding, dilation, dtype,
                                           need, threads, large_gradient, seed):
    """The im2col backward of small images, several images side by side in one column buffer
    (dY gathered, one product per group of images), against the reference, for dX only, dW
    only and both (dW per image above SIDE_BY_SIDE_DW_PIXELS unless the gradient counts as large:
    the threshold lowered to 0), on 1, 2 and 3 threads (3 threads and 2 images: the images side by
    side with each product split between the threads)."""
    from fastconv.nn.functional.conv import path_gemm
    from fastconv.nn.functional.conv.geometry import ConvGeometry
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, kh, kw)).astype(dtype)
    dy = rng.standard_normal((n, k, ho, wo)).astype(dtype)
    _, ref_grads = ref_conv2d(x.astype(np.float64), wt.astype(np.float64), None, (stride, stride),
                              padding, (dilation, dilation), 1)
    ref_dx, ref_dw, _ = ref_grads(dy.astype(np.float64))
    g = ConvGeometry(kh, kw, stride, stride, padding, padding, dilation, dilation, 1, ho, wo)
    from fastconv.nn.functional.conv import common
    previous, floats, min_flops = fc.get_num_threads(), path_gemm.SIDE_BY_SIDE_DW_FLOATS, common.MIN_FLOPS_PER_THREAD
    try:
        fc.set_num_threads(threads)
        common.MIN_FLOPS_PER_THREAD = 0.0  # every thread takes part, however small the problem
        path_gemm.SIDE_BY_SIDE_DW_FLOATS = 0 if large_gradient else floats
        assert path_gemm.side_by_side_dw(g, k, c * kh * kw) == (large_gradient or ho * wo <= 8)
        plan = path_gemm.backward_plan(x.shape, k, g)
        assert plan.threads == threads
        assert plan.images > 1 or (plan.parallel and -(-n // threads) == 1)
        dx, dw2, _ = path_gemm.backward_kernel(x, wt.reshape(k, -1), dy, x.shape, (k, c * kh * kw), g,
                                               need != "dw", need != "dx")
    finally:
        fc.set_num_threads(previous)
        path_gemm.SIDE_BY_SIDE_DW_FLOATS = floats
        common.MIN_FLOPS_PER_THREAD = min_flops
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    if need != "dw":
        np.testing.assert_allclose(dx, ref_dx, **tol)
    if need != "dx":
        np.testing.assert_allclose(dw2.reshape(wt.shape), ref_dw, **tol)


@pytest.mark.parametrize("c, groups, stride", [(8, 1, 1), (8, 1, 2), (12, 3, 1), (3, 1, 1)])
@pytest.mark.parametrize("path", ["gemm", "shallow"])
def test_gemm_backward_of_one_image_on_two_threads(monkeypatch, c, groups, stride, path):
    """Batch 1 on 2 threads: the im2col backward splits one image's work inside it, the dX
    product by input channels (each thread then scatters its own channels; fewer than 2 per
    thread: by columns), against the reference, the result equal to 1 thread's bit for bit."""
    import _conv_paths as cp
    from fastconv.nn.functional.conv import common
    if path == "shallow" and groups != 1:
        return
    monkeypatch.setattr(common, "MIN_FLOPS_PER_THREAD", 0.0)  # parallel however small
    cp.switch(monkeypatch, path, True)
    rng = np.random.default_rng(c * 10 + groups + stride)
    x = rng.standard_normal((1, c, 9, 9))
    w = rng.standard_normal((6, c // groups, 3, 3))
    _, ref_grads = ref_conv2d(x, w, None, (stride, stride), 1, (1, 1), groups)
    results = []
    previous = fc.get_num_threads()
    try:
        for threads in (1, 2):
            fc.set_num_threads(threads)
            X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
            y = F.conv2d(X, W, padding=1, stride=stride, groups=groups)
            dy = np.random.default_rng(3).standard_normal(y.shape)
            y.backward(fc.tensor(dy))
            results.append((X.grad.numpy().copy(), W.grad.numpy().copy()))
    finally:
        fc.set_num_threads(previous)
    dx, dw, _ = ref_grads(dy)
    for got_dx, got_dw in results:
        np.testing.assert_allclose(got_dx, dx, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got_dw, dw, rtol=1e-10, atol=1e-10)
    assert np.array_equal(results[0][0], results[1][0])
