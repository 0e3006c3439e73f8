"""conv2d's implicit-GEMM path (stride 1, groups 1, shallow): numpy reference, gradcheck, torch."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv._kernels import direct as direct_kernels
from fastconv.autograd import gradcheck
from fastconv.nn.functional import conv as conv_module
import _conv_paths as cp
from fastconv.nn.functional.conv import Conv2dFunction
from fastconv.nn.functional.conv import common as conv_common
from test_conv_small import reference


@pytest.fixture(autouse=True)
def direct_path_parallel_when_tiny(monkeypatch):
    """Force the implicit-GEMM path, and its multi-threaded scheme even on tiny shapes."""
    cp.switch(monkeypatch, "implicit", True)
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)


def same_side_paddings(kernel, dilation):
    """PyTorch's 'same' for one dimension: (top, bottom) of a total d·(k − 1)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def reference_asymmetric(x, w, b, pads, dilation):
    """reference() on an input padded explicitly by (top, bottom, left, right)."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    y, grads = reference(xp, w, b, (1, 1), (0, 0), dilation)

    def unpadded(dy):
        dxp, dw, db = grads(dy)
        return dxp[:, :, top:top + x.shape[2], left:left + x.shape[3]], dw, db

    return y, unpadded


@st.composite
def configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    same = draw(st.booleans())  # 'same' (asymmetric for even kernels) or a symmetric int pair
    if same:
        padding = "same"
        pads = (same_side_paddings(kh, dilation[0]), same_side_paddings(kw, dilation[1]))
    else:  # any padding up to dilation·(kernel − 1): the path's eligibility
        ph, pw = draw(st.integers(0, dilation[0] * (kh - 1))), draw(st.integers(0, dilation[1] * (kw - 1)))
        padding, pads = (ph, pw), ((ph, ph), (pw, pw))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - sum(pads[0])), 12))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - sum(pads[1])), 12))
    shape = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.integers(1, 4)), h, w)
    return dict(shape=shape, k=draw(st.integers(1, 7)), kernel=(kh, kw), padding=padding, pads=pads,
                dilation=dilation, dtype=draw(st.sampled_from([np.float32, np.float64])),
                needs=draw(st.sampled_from([(True, True, True), (True, False, False), (False, True, True),
                                            (False, True, False), (True, True, None)])),
                threads=draw(st.sampled_from([1, 2])))


@given(cfg=configs(), seed=st.integers(0, 2 ** 16))
def test_direct_matches_reference(cfg, seed):
    """Output and every requested gradient against the tap-by-tap float64 reference: kernels of
    1–4 taps, dilations, paddings from 0 to d·(k − 1) ('same' included), 1–3 images on 1 or 2
    threads, either dtype, with or without bias, any subset of inputs needing grad."""
    rng = np.random.default_rng(seed)
    dt = cfg["dtype"]
    x_np = rng.standard_normal(cfg["shape"]).astype(dt)
    w_np = rng.standard_normal((cfg["k"], cfg["shape"][1], *cfg["kernel"])).astype(dt)
    has_bias = cfg["needs"][2] is not None
    b_np = rng.standard_normal(cfg["k"]).astype(dt) if has_bias else None
    x = fc.tensor(x_np, requires_grad=cfg["needs"][0])
    w = fc.tensor(w_np, requires_grad=cfg["needs"][1])
    b = fc.tensor(b_np, requires_grad=bool(cfg["needs"][2])) if has_bias else None
    previous = fc.get_num_threads()
    fc.set_num_threads(cfg["threads"])
    patch = pytest.MonkeyPatch()
    try:
        # 2 threads on these small shapes for real: images in a prange, or at fewer images than
        # threads each image's columns split (where there is more than a block of them)
        patch.setattr(conv_common, "MIN_FLOPS_PER_THREAD", 0)
        y = F.conv2d(x, w, b, padding=cfg["padding"], dilation=cfg["dilation"])
        assert y.grad_fn is None or y.grad_fn.path == "implicit"
        y_ref, grads = reference_asymmetric(x_np, w_np, b_np, cfg["pads"], cfg["dilation"])
        tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(y.numpy(), y_ref, **tol)
        if y.requires_grad:
            dy = rng.standard_normal(y_ref.shape).astype(dt)
            y.backward(dy)
            for t, ref in zip((x, w, b), grads(dy)):
                if t is not None and t.requires_grad:
                    np.testing.assert_allclose(t.grad.numpy(), ref, **tol)
                elif t is not None:
                    assert t.grad is None
    finally:
        patch.undo()
        fc.set_num_threads(previous)


@pytest.mark.parametrize("level", direct_kernels.variants())
def test_every_variant_matches_reference(level):
    """Each compiled variant of the loops this CPU runs (baseline, AVX2, AVX-512), on shapes whose
    rows, taps and channel counts end mid-tile for every vector width (1, 2, 3, 4 and 5 rows in
    the forward and dX loops, odd K and depths in dW)."""
    previous = direct_kernels.set_variant_cap(level)
    try:
        rng = np.random.default_rng(level)
        for shape, k, kernel, padding in [((1, 1, 1, 1), 1, (1, 1), (0, 0)), ((2, 2, 5, 7), 3, (3, 3), (1, 1)),
                                          ((1, 3, 10, 13), 5, (3, 3), (1, 1)), ((3, 4, 9, 11), 7, (2, 3), (1, 1)),
                                          ((1, 5, 13, 10), 33, (3, 3), (2, 2)), ((2, 3, 4, 33), 16, (1, 3), (0, 1)),
                                          ((1, 3, 32, 32), 16, (3, 3), (1, 1)),
                                          # rows of 1–3 whole vectors (the narrow tiles: 8 rows and
                                          # a remainder), 1×1 on small images as MobileNet's tail
                                          ((1, 40, 4, 4), 19, (1, 1), (0, 0)), ((1, 9, 4, 8), 8, (1, 1), (0, 0)),
                                          ((2, 17, 6, 8), 27, (1, 1), (0, 0)), ((1, 6, 2, 4), 11, (1, 1), (0, 0)),
                                          ((1, 5, 4, 4), 9, (3, 3), (1, 1))]:
            for dt in (np.float32, np.float64):
                arrays = (rng.standard_normal(shape).astype(dt),
                          rng.standard_normal((k, shape[1], *kernel)).astype(dt), rng.standard_normal(k).astype(dt))
                x, w, b = (fc.tensor(a, requires_grad=True) for a in arrays)
                y = F.conv2d(x, w, b, padding=padding)
                assert y.grad_fn.path == "implicit"
                y_ref, grads = reference(*arrays, (1, 1), padding, (1, 1))
                dy = rng.standard_normal(y_ref.shape).astype(dt)
                y.backward(dy)
                tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
                for ours, ref in zip((y, x.grad, w.grad, b.grad), (y_ref, *grads(dy))):
                    np.testing.assert_allclose(ours.numpy(), ref, **tol, err_msg=f"{shape} {k} {dt}")
    finally:
        direct_kernels.set_variant_cap(previous)


@pytest.mark.parametrize("padding,dilation", [(1, 1), (0, 1), (2, 2), ("same", (2, 1))])
def test_direct_gradcheck(padding, dilation):
    rng = np.random.default_rng(3)
    x = fc.tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(4), requires_grad=True)
    f = lambda x, w, b: F.conv2d(x, w, b, padding=padding, dilation=dilation)
    assert f(x, w, b).grad_fn.path == "implicit"
    assert gradcheck(f, (x, w, b))


def test_direct_matches_torch(torch):
    """The issue's batch-1 configuration in float32 against PyTorch."""
    rng = np.random.default_rng(5)
    x_np, w_np, b_np = (rng.standard_normal(s).astype(np.float32) for s in ((1, 3, 32, 32), (16, 3, 3, 3), (16,)))
    x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = F.conv2d(x, w, b, padding=1)
    assert y.grad_fn.path == "implicit"
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((y, ty), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=2e-4)


def test_direct_dispatch_rule(monkeypatch):
    cp.switch(monkeypatch, "implicit", None)
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 1e6)
    z = lambda *s: fc.tensor(np.zeros(s, dtype=np.float32), requires_grad=True)
    direct = lambda x, w, **kw: F.conv2d(x, w, **kw).grad_fn.path == "implicit"
    assert direct(z(1, 3, 32, 32), z(16, 3, 3, 3), padding=1)                  # the batch-1 case
    assert direct(z(2, 8, 16, 16), z(32, 8, 3, 3), padding=1)                  # depth 72, K 32
    assert direct(z(2, 2, 9, 9), z(4, 2, 2, 2), padding="same")                # asymmetric padding
    assert not direct(z(2, 1, 16, 16), z(16, 1, 3, 3), padding=1)              # C = 1: shallow im2col
    assert not direct(z(2, 9, 16, 16), z(16, 9, 3, 3), padding=1)              # depth 81
    assert not direct(z(2, 3, 16, 16), z(33, 3, 3, 3), padding=1)              # K 33
    assert not direct(z(2, 3, 16, 16), z(16, 3, 3, 3), padding=1, stride=2)    # stride 2
    assert not direct(z(2, 4, 16, 16), z(16, 2, 3, 3), padding=1, groups=2)    # groups
    assert not direct(z(2, 3, 16, 16), z(16, 3, 3, 3), padding=3)              # padding > d·(k − 1)
    cp.switch(monkeypatch, "shallow", True)                     # a forced shallow path wins
    assert not direct(z(1, 3, 32, 32), z(16, 3, 3, 3), padding=1)
    cp.switch(monkeypatch, "shallow", None)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:  # a parallel call needs an image per thread (images are the path's only parallel axis)
        assert not direct(z(1, 3, 64, 64), z(32, 3, 3, 3), padding=1)
        assert direct(z(2, 3, 64, 64), z(32, 3, 3, 3), padding=1)
    finally:
        fc.set_num_threads(previous)
    cp.switch(monkeypatch, "implicit", False)
    assert not direct(z(1, 3, 32, 32), z(16, 3, 3, 3), padding=1)
    cp.switch(monkeypatch, "implicit", True)                          # forced: any shallowness
    assert direct(z(1, 1, 8, 8), z(64, 1, 3, 3), padding=1)
    assert not direct(z(1, 3, 16, 16), z(16, 3, 3, 3), padding=1, stride=2)    # never ineligible


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_direct_declarations(needs):
    rng = np.random.default_rng(2)
    shapes = ((2, 3, 9, 7), (6, 3, 3, 3), (6,))
    x, w, b = (fc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=r) for s, r in zip(shapes, needs))
    ctx = F.conv2d(x, w, b, padding=1).grad_fn
    assert ctx.path == "implicit"
    assert Conv2dFunction.saved_bytes(shapes, np.float32, needs, geometry=ctx.geometry) == ctx.saved_nbytes


@pytest.mark.parametrize("threads, batch, k, h, w", [(1, 4, 5, 11, 9), (2, 4, 5, 11, 9), (2, 1, 5, 11, 9),
                                                    (2, 1, 17, 6, 6)])
def test_direct_workspace_matches_tracemalloc(threads, batch, k, h, w, monkeypatch):
    """The declared transient bytes of forward and backward are what numpy allocates beyond the
    output and the gradients (at batch 1 on 2 threads: the forward's split columns, or on a small
    image its split output channels, a scratch row per thread; the backward's split channels)."""
    monkeypatch.setattr(conv_common, "MIN_FLOPS_PER_THREAD", 0)
    rng = np.random.default_rng(7)
    shapes = ((batch, 3, h, w), (k, 3, 3, 3), (k,))
    x, w, b = (fc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes)
    dy = rng.standard_normal((batch, k, h, shapes[0][3])).astype(np.float32)
    previous = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        F.conv2d(x, w, b, padding=1).backward(dy)  # warm up caches outside the measurement
        geometry = F.conv2d(x, w, b, padding=1).grad_fn.geometry
        with fc.no_grad():
            tracemalloc.start()
            try:
                start = tracemalloc.get_traced_memory()[0]
                y = F.conv2d(x, w, b, padding=1)
                forward_peak = tracemalloc.get_traced_memory()[1] - start
            finally:
                tracemalloc.stop()
        ctx = F.conv2d(x, w, b, padding=1).grad_fn
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            grads = Conv2dFunction.backward(ctx, dy)
            backward_peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
        declared_fwd = Conv2dFunction.forward_workspace_bytes(shapes, np.float32, (False,) * 3, geometry=geometry)
        declared_bwd = Conv2dFunction.workspace_bytes(shapes, np.float32, geometry=geometry)
        assert declared_fwd <= forward_peak - y.numpy().nbytes <= declared_fwd + 4096
        gradient_bytes = sum(g.nbytes for g in grads)
        assert declared_bwd <= backward_peak - gradient_bytes <= declared_bwd + 4096
    finally:
        fc.set_num_threads(previous)


@pytest.mark.parametrize("shape, k, kernel, padding", [((1, 40, 4, 4), 19, 1, 0), ((1, 9, 8, 8), 33, 3, 1),
                                                      ((1, 5, 3, 5), 16, 3, 1), ((2, 12, 4, 4), 24, 1, 0)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_forward_splits_output_channels_on_small_images(shape, k, kernel, padding, dt):
    """Fewer images than threads and at most one block of columns: the threads split the output
    channels in whole 8-row tiles. Same bits as one thread, and the reference's values."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dt)
    w = rng.standard_normal((k, shape[1], kernel, kernel)).astype(dt)
    b = rng.standard_normal(k).astype(dt)
    ho, wo = shape[2] + 2 * padding - kernel + 1, shape[3] + 2 * padding - kernel + 1
    args = (x, w.reshape(k, -1), b, kernel, kernel, padding, padding, 1, 1, ho, wo, False)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        assert direct_kernels.forward_buffers(k, ho, wo, 2, False) == 2
        one, two = direct_kernels.direct_forward(*args, 1), direct_kernels.direct_forward(*args, 2)
    finally:
        fc.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)
    y_ref, _ = reference(x, w, b, (1, 1), (padding, padding), (1, 1))
    tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(two, y_ref, **tol)


def test_kernels_check_their_arrays():
    """The kernels take plain ndarrays and check them themselves (dtype, rank, shape, layout):
    a wrong array is an error naming the kernel, never an out-of-bounds read or write."""
    x = np.zeros((1, 3, 8, 8), np.float32)
    w = np.zeros((4, 27), np.float32)
    dy = np.zeros((1, 4, 8, 8), np.float32)
    fwd = direct_kernels.direct_forward
    bwd = direct_kernels.direct_backward
    geometry = (3, 3, 1, 1, 1, 1)
    assert fwd(x, w, None, *geometry, 8, 8, False, 1).shape == (1, 4, 8, 8)
    bad_forward = [
        ((x.astype(np.float16), w, None), TypeError, "expected x of dtype float32 or float64, got float16"),
        ((x, w.astype(np.float64), None), TypeError, "expected w of dtype float32, got float64"),
        ((x, w[:, :26], None), ValueError, r"expected w of shape \(4, 27\), got \(4, 26\)"),
        ((x, w, np.zeros(5, np.float32)), ValueError, r"expected bias of shape \(4,\)"),
        ((x[:, :, :, ::2], np.zeros((4, 27), np.float32), None), ValueError, "expected x as an aligned C-contiguous array"),
        ((x[0], w, None), ValueError, "expected a 4-d x"),
        ((list(x), w, None), TypeError, "expected x as a numpy array, got list"),
    ]
    for args, error, message in bad_forward:
        with pytest.raises(error, match="direct_forward: " + message):
            fwd(*args, *geometry, 8, 8, False, 1)
    with pytest.raises(ValueError, match="direct_forward: expected kernel, dilation and output sizes"):
        fwd(x, w, None, *geometry, 0, 8, False, 1)
    dx, dw, db = bwd(x, w, dy, 3, 8, 8, *geometry, True, True, True, False, 1)
    assert (dx.shape, dw.shape, db.shape) == ((1, 3, 8, 8), (4, 3, 3, 3), (4,))
    bad_backward = [
        ((x[:, :2], w, dy), ValueError, r"expected x of shape \(1, 3, 8, 8\)"),
        ((x, w.T.copy(), dy), ValueError, r"expected w of shape \(4, 27\)"),
        ((x, w, dy.astype(np.int32)), TypeError, "expected dy of dtype float32 or float64"),
        ((x, None, dy), TypeError, "expected w as a numpy array, got NoneType"),
    ]
    for args, error, message in bad_backward:
        with pytest.raises(error, match="direct_backward: " + message):
            bwd(*args, 3, 8, 8, *geometry, True, True, True, False, 1)
    with pytest.raises(ValueError, match=r"direct_backward: dX needs every padding ≤ dilation·\(kernel − 1\)"):
        bwd(x, w, np.zeros((1, 4, 12, 12), np.float32), 3, 8, 8, 3, 3, 3, 3, 1, 1, True, False, False, False, 1)
    # gradients not asked for are not read: None stands in for their operands
    dx, dw, db = bwd(None, w, dy, 3, 8, 8, *geometry, True, False, True, False, 1)
    assert dw is None and db is None and dx.shape == x.shape
    dx, dw, db = bwd(x, None, dy, 3, 8, 8, *geometry, False, True, False, False, 1)
    assert dx is None and db is None and dw.shape == (4, 3, 3, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, taps, columns", [(1, 1, 1), (2, 5, 17), (3, 7, 64), (5, 27, 100), (7, 10, 50), (16, 9, 33), (4, 144, 130)])
def test_shallow_product_matches_numpy(dtype, m, taps, columns):
    """The loops alone (what bench/bench_gemm_phase.py times): NN and NT against numpy on rows at
    arbitrary offsets, with row, tap and column counts that end mid-tile."""
    rng = np.random.default_rng(m * taps + columns)
    b = rng.standard_normal(3 * columns + 300).astype(dtype)
    offsets = np.sort(rng.integers(0, b.size - columns + 1, taps)).astype(np.intp)
    rows = np.stack([b[o:o + columns] for o in offsets])
    a = rng.standard_normal((m, taps)).astype(dtype)
    c = np.full((m, columns), np.nan, dtype=dtype)
    direct_kernels.shallow_product(a, b, offsets, c, False)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, a @ rows, **tol)
    a2 = rng.standard_normal((m, columns)).astype(dtype)
    c2 = np.ones((m, taps), dtype=dtype)  # NT accumulates
    direct_kernels.shallow_product(a2, b, offsets, c2, True)
    np.testing.assert_allclose(c2, 1 + a2 @ rows.T, **tol)


def test_shallow_product_checks_its_rows():
    b = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="shallow_product: row 1 .* lies outside b of 100 elements"):
        direct_kernels.shallow_product(np.zeros((2, 2), np.float32), b, np.array([0, 40], np.intp),
                                       np.zeros((2, 61), np.float32), False)
    with pytest.raises(ValueError, match="shallow_product: expected a and c with 2 rows and 2 taps"):
        direct_kernels.shallow_product(np.zeros((2, 3), np.float32), b, np.array([0, 1], np.intp),
                                       np.zeros((2, 8), np.float32), False)
