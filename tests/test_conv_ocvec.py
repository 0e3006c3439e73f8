"""conv2d's output-channel-vectorized forward (float32, AVX-512 or AVX2+FMA; _kernels/_ocvec.h):
the kernel against a float64 numpy reference on every variant the CPU runs, the dispatch rule,
conv2d through it (backward stays im2col), bad arrays, and its memory declaration."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv._kernels import direct as direct_kernels
from fastconv.nn.functional import conv as conv_module
import _conv_paths as cp
from fastconv.nn.functional.conv import Conv2dFunction
from test_conv_small import reference

pytestmark = pytest.mark.skipif(not direct_kernels.ocvec_available(),
                                reason="the output-channel-vectorized loops need AVX-512 or AVX2+FMA")

# variants of the loops this CPU runs: 3 AVX-512, 2 AVX2+FMA
OCVEC_VARIANTS = [v for v in direct_kernels.variants() if v >= 2]


def on_each_variant(run):
    """[(variant, run())] with the loops capped at each variant this CPU runs."""
    results = []
    for level in OCVEC_VARIANTS:
        previous = direct_kernels.set_variant_cap(level)
        try:
            results.append((level, run()))
        finally:
            direct_kernels.set_variant_cap(previous)
    return results


def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 16), w=st.integers(1, 16),
       k=st.integers(1, 70), kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 4),
       sw=st.integers(1, 4), ph=st.integers(0, 3), pw=st.integers(0, 3), dh=st.integers(1, 2),
       dw=st.integers(1, 2), bias=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 9999))
def test_ocvec_kernel_matches_reference(n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, bias, threads, seed):
    """Any stride, padding, dilation and channel count (blocks of 64, 32 or 16 channels partly
    used, pixel tiles of 4–16 cut by the row end), images split over threads or rows split
    within one image, on each variant."""
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if bias else None
    ref, _ = reference(x, wt, b, (sh, sw), (ph, pw), (dh, dw))
    scale = np.abs(x).max() * np.abs(wt).sum(axis=(1, 2, 3)).max() + 1
    for level, y in on_each_variant(lambda: direct_kernels.ocvec_forward(
            x, wt.reshape(k, -1), b, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, threads)):
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6 * scale, err_msg=f"variant {level}")


@pytest.mark.parametrize("k", [1, 9, 16])
@pytest.mark.parametrize("wo", [7, 8, 10, 12, 14, 16, 27, 32])
def test_ocvec_one_vector_blocks_on_every_tile(k, wo):
    """At most 16 output channels (AVX-512: one vector a block, tiles of 8–16 pixels): forward
    and weight gradient on every tile width, rows ending inside a tile, against the reference."""
    rng = np.random.default_rng(k * 100 + wo)
    x = rng.standard_normal((2, 3, 5, wo)).astype(np.float32)
    wt = rng.standard_normal((k, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    dy = rng.standard_normal((2, k, 5, wo)).astype(np.float32)
    ref, grads = reference(x, wt, b, (1, 1), (1, 1), (1, 1))
    ref_dw = grads(dy)[1].reshape(k, -1)
    for level, (y, dwt) in on_each_variant(lambda: (
            direct_kernels.ocvec_forward(x, wt.reshape(k, -1), b, 3, 3, 1, 1, 1, 1, 1, 1, 5, wo, 1),
            direct_kernels.ocvec_weight_grad(x, dy, 3, 3, 1, 1, 1, 1, 1, 1, 1))):
        if level == 3:
            assert direct_kernels.ocvec_block(k) == 16
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4, err_msg=f"variant {level}")
        np.testing.assert_allclose(dwt.reshape(k, -1), ref_dw, rtol=0, atol=1e-4, err_msg=f"variant {level}")


@pytest.mark.parametrize("k", [16, 32, 64, 70])
@pytest.mark.parametrize("wo", [1, 2, 3, 7, 9, 13])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("n, threads", [(2, 1), (1, 2), (3, 2)])
def test_ocvec_tiles_across_rows(k, wo, stride, n, threads):
    """Narrow outputs (7 x 7: rows of 4 + 3 pixels) run tiles of consecutive pixels across rows,
    each pixel at its own input offset, the last tile's spare lanes repeating its last pixel:
    every block width, column stride 1 and 2, one image split over threads by rows."""
    rng = np.random.default_rng(k * 1000 + wo * 10 + stride)
    h = w = (wo - 1) * stride + 1
    x = rng.standard_normal((n, 5, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    ref, _ = reference(x, wt, b, (stride, stride), (1, 1), (1, 1))
    for level, y in on_each_variant(lambda: direct_kernels.ocvec_forward(
            x, wt.reshape(k, -1), b, 3, 3, stride, stride, 1, 1, 1, 1, wo, wo, threads)):
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4, err_msg=f"variant {level}")


def test_ocvec_forward_refuses_bad_arrays():
    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.zeros((64, 2 * 9), np.float32)
    with pytest.raises(TypeError, match="ocvec_forward: expected x of dtype float32, got float64"):
        direct_kernels.ocvec_forward(x.astype(np.float64), w, None, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1)
    with pytest.raises(ValueError, match=r"ocvec_forward: expected w of shape \(64, 18\)"):
        direct_kernels.ocvec_forward(x, np.zeros((64, 17), np.float32), None, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1)
    with pytest.raises(ValueError, match="ocvec_forward: expected bias of shape"):
        direct_kernels.ocvec_forward(x, w, np.zeros(63, np.float32), 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1)
    with pytest.raises(ValueError, match="ocvec_forward: expected strides ≥ 1 and paddings ≥ 0"):
        direct_kernels.ocvec_forward(x, w, None, 3, 3, 0, 1, 1, 1, 1, 1, 8, 8, 1)
    with pytest.raises(ValueError, match="ocvec_forward: expected x as an aligned C-contiguous array"):
        direct_kernels.ocvec_forward(np.zeros((1, 2, 8, 16), np.float32)[..., ::2], w, None,
                                     3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1)


def geometry(shape, k, kernel, stride, padding):
    ho, wo = (out_size(shape[d + 2], kernel, stride, padding, 1) for d in range(2))
    return conv_module.ConvGeometry(kernel, kernel, stride, stride, padding, padding, 1, 1, 1, ho, wo)


def test_ocvec_rule():
    """Taken for whole channel blocks of im2col-path convolutions with OCVEC_MIN_TAPS (stride 1:
    OCVEC_MIN_TAPS_STRIDE1; 32-channel blocks: OCVEC_MIN_TAPS_WIDE) to OCVEC_MAX_TAPS taps; not
    for partly used blocks, 1×1 filters, few or very many taps, or rows the pixel tiles
    overshoot."""
    block = direct_kernels.ocvec_block(64)
    path = lambda shape, k, f, s, p: cp.chosen_path(shape, (k, shape[1], f, f),  # noqa: E731
                                                             geometry(shape, k, f, s, p))[0]
    assert path((8, 3, 224, 224), 64, 11, 4, 2) == "ocvec"
    assert path((2, 64, 56, 56), 2 * block, 3, 2, 1) == "ocvec"
    assert path((8, 3, 224, 224), block + 8, 11, 4, 2) != "ocvec"     # a partly used block
    assert path((4, 64, 56, 56), 64, 1, 2, 0) != "ocvec"              # 1×1: a plain GEMM
    assert path((8, 128, 28, 28), 256, 3, 2, 1) == "ocvec"           # 1152 taps
    assert path((4, 512, 14, 14), 512, 3, 2, 1) != "ocvec"            # 4608 taps
    assert path((16, 8, 32, 32), 64, 3, 2, 1) == "ocvec"             # 72 taps, strided
    assert path((8, 3, 32, 32), 64, 3, 2, 1) != "ocvec"               # 27 taps
    assert path((8, 3, 64, 64), 64, 5, 1, 2) != "ocvec"               # 75 taps, stride 1
    assert path((8, 64, 7, 7), 64, 3, 2, 0) == "ocvec"               # 3 pixels a row: tiles of 4
    assert path((8, 64, 5, 5), 64, 3, 2, 0) != "ocvec"                # 2 pixels a row: 4 computed
    if direct_kernels.ocvec_block(32) == 32:  # AVX-512 blocks of 32 channels: from 27 taps on
        assert path((32, 32, 28, 28), 32, 3, 2, 1) == "ocvec"
        assert path((8, 3, 64, 64), 32, 5, 1, 2) == "ocvec"           # 75 taps at stride 1
        assert path((8, 3, 32, 32), 32, 3, 2, 1) == "ocvec"           # 27 taps
        assert path((8, 1, 32, 32), 32, 3, 2, 1) != "ocvec"           # 9 taps


def test_conv2d_through_ocvec_matches_reference(monkeypatch):
    """conv2d with the path forced: float32 forward by the vectorized loops, its gradients by the
    im2col backward; float64 takes im2col for both."""
    cp.switch(monkeypatch, "ocvec", True)
    rng = np.random.default_rng(5)
    for dt, stride, padding in [(np.float32, 2, 1), (np.float32, 3, 2), (np.float64, 2, 1)]:
        arrays = (rng.standard_normal((2, 3, 11, 9)).astype(dt), rng.standard_normal((20, 3, 3, 3)).astype(dt),
                  rng.standard_normal(20).astype(dt))
        x, w, b = (fc.tensor(a, requires_grad=True) for a in arrays)
        g = geometry((2, 3, 11, 9), 20, 3, stride, padding)
        assert cp.chosen_path((2, 3, 11, 9), (20, 3, 3, 3), g)[0] == "ocvec"
        y = F.conv2d(x, w, b, stride=stride, padding=padding)
        y_ref, grads = reference(*arrays, (stride, stride), (padding, padding), (1, 1))
        dy = rng.standard_normal(y_ref.shape).astype(dt)
        y.backward(dy)
        tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
        for ours, ref in zip((y, x.grad, w.grad, b.grad), (y_ref, *grads(dy))):
            np.testing.assert_allclose(ours.numpy(), ref, **tol, err_msg=f"{dt} stride {stride}")


@pytest.fixture
def two_threads(monkeypatch):
    """2 threads, and the parallel schemes even on small shapes (the per-thread scratch the
    memory declarations count)."""
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    yield
    fc.set_num_threads(previous)


def traced_peak(run):
    """Peak bytes numpy allocates while ``run()`` runs (tracemalloc), and its result."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = run()
        return tracemalloc.get_traced_memory()[1] - start, result
    finally:
        tracemalloc.stop()


def assert_backward_workspace(shape, wshape, stride, padding, seed):
    """Backward of conv2d on the ocvec path allocates its declared workspace beyond the
    gradients (after a warm-up outside the measurement)."""
    rng = np.random.default_rng(seed)
    x = fc.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    w = fc.tensor(rng.standard_normal(wshape).astype(np.float32), requires_grad=True)
    g = geometry(shape, wshape[0], wshape[2], stride, padding)
    assert cp.chosen_path(shape, wshape, g)[0] == "ocvec"
    dy = rng.standard_normal((shape[0], wshape[0], g.out_h, g.out_w)).astype(np.float32)
    F.conv2d(x, w, stride=stride, padding=padding).backward(dy)
    x.grad = w.grad = None
    y = F.conv2d(x, w, stride=stride, padding=padding)
    peak, _ = traced_peak(lambda: y.backward(dy))
    declared = Conv2dFunction.workspace_bytes((x.shape, w.shape, None), np.float32, geometry=g)
    transient = peak - x.grad.numpy().nbytes - w.grad.numpy().nbytes
    assert declared <= transient <= declared + 4096
    return g


@pytest.mark.parametrize("shape", [(1, 3, 40, 40), (3, 3, 40, 40)])
def test_ocvec_forward_workspace_matches_tracemalloc(shape, two_threads):
    """The declared transient bytes of forward are what numpy allocates beyond the output: one
    padded image per thread (or one shared by the threads of a single image) and the repacked
    weights."""
    rng = np.random.default_rng(0)
    x = fc.tensor(rng.standard_normal(shape).astype(np.float32))
    w = fc.tensor(rng.standard_normal((64, 3, 5, 5)).astype(np.float32))
    g = geometry(shape, 64, 5, 2, 2)
    assert cp.chosen_path(shape, (64, 3, 5, 5), g)[0] == "ocvec"
    with fc.no_grad():
        F.conv2d(x, w, stride=2, padding=2)  # warm up caches outside the measurement
        peak, y = traced_peak(lambda: F.conv2d(x, w, stride=2, padding=2))
    declared = Conv2dFunction.forward_workspace_bytes((x.shape, w.shape, None), np.float32,
                                                      (False,) * 3, geometry=g)
    transient = peak - y.numpy().nbytes
    assert declared <= transient <= declared + 4096


def y_geometry(x, wt, stride, pads, dilation):
    """The ConvGeometry conv2d builds for these operands (top/left padding, output size)."""
    (kh, kw), (h, w) = wt.shape[2:], x.shape[2:]
    ho = (h + sum(pads[0]) - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + sum(pads[1]) - dilation * (kw - 1) - 1) // stride + 1
    return conv_module.ConvGeometry(kh, kw, stride, stride, pads[0][0], pads[1][0], dilation, dilation, 1, ho, wo)


@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12),
       k=st.integers(1, 20), kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), padding=st.sampled_from([0, 1, 2, "same"]), strided=st.booleans(),
       seed=st.integers(0, 9999))
def test_conv2d_forced_ocvec_any_geometry(n, c, h, w, k, kh, kw, stride, dilation, padding, strided, seed):
    """conv2d's forward with the path forced, through the public API: 'same' (asymmetric for
    even kernels), strides, dilations and a non-contiguous input, against a float64 reference on
    the explicitly padded input."""
    if padding == "same":
        stride = 1  # PyTorch allows 'same' only at stride 1
        pads = [(d * (f - 1) // 2, d * (f - 1) - d * (f - 1) // 2) for f, d in ((kh, dilation), (kw, dilation))]
    else:
        pads = [(padding, padding)] * 2
    if h + sum(pads[0]) < dilation * (kh - 1) + 1 or w + sum(pads[1]) < dilation * (kw - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((n, c, h, 2 * w if strided else w)).astype(np.float32)
    x_np = x_np[..., ::2] if strided else x_np
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    xp = np.pad(x_np, ((0, 0), (0, 0), pads[0], pads[1]))
    ref, _ = reference(xp, wt, b, (stride, stride), (0, 0), (dilation, dilation))
    with pytest.MonkeyPatch.context() as mp:
        cp.switch(mp, "ocvec", True)
        with fc.no_grad():
            y = F.conv2d(fc.tensor(x_np), fc.tensor(wt), fc.tensor(b), stride=stride, padding=padding,
                         dilation=dilation)
        assert cp.chosen_path(x_np.shape, wt.shape, y_geometry(x_np, wt, stride, pads, dilation))[0] == "ocvec"
    scale = np.abs(x_np).max() * np.abs(wt).sum(axis=(1, 2, 3)).max() + 1
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=1e-6 * scale)


@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 14), w=st.integers(1, 14),
       k=st.integers(1, 70), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2),
       dw=st.integers(1, 2), threads=st.sampled_from([1, 2]), seed=st.integers(0, 9999))
def test_ocvec_weight_grad_matches_reference(n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, threads, seed):
    """The vectorized weight gradient on each variant: any stride, padding, dilation, channel
    count (blocks partly used), pixel chunks cut by the image end, images split over threads."""
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    dy = rng.standard_normal((n, k, ho, wo)).astype(np.float32)
    _, grads = reference(x, np.zeros((k, c, kh, kw), np.float32), None, (sh, sw), (ph, pw), (dh, dw))
    ref = grads(dy)[1].reshape(k, -1)
    scale = np.abs(x).max() * np.abs(dy).sum(axis=(0, 2, 3)).max() + 1
    for level, dwt in on_each_variant(lambda: direct_kernels.ocvec_weight_grad(
            x, dy, kh, kw, sh, sw, ph, pw, dh, dw, threads)):
        assert dwt.shape == (k, c, kh, kw)
        np.testing.assert_allclose(dwt.reshape(k, -1), ref, rtol=0, atol=1e-6 * scale, err_msg=f"variant {level}")


def test_ocvec_weight_grad_refuses_bad_arrays():
    x = np.zeros((2, 3, 9, 9), np.float32)
    dy = np.zeros((2, 32, 4, 4), np.float32)
    with pytest.raises(TypeError, match="ocvec_weight_grad: expected dy of dtype float32, got float64"):
        direct_kernels.ocvec_weight_grad(x, dy.astype(np.float64), 3, 3, 2, 2, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"ocvec_weight_grad: expected dy of shape \(2, 32, 4, 4\)"):
        direct_kernels.ocvec_weight_grad(x, dy[:1], 3, 3, 2, 2, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="ocvec_weight_grad: expected strides ≥ 1 and paddings ≥ 0"):
        direct_kernels.ocvec_weight_grad(x, dy, 3, 3, 2, 2, -1, 1, 1, 1, 1)


@pytest.mark.parametrize("shape", [(1, 3, 40, 40), (3, 3, 40, 40)])
def test_ocvec_backward_workspace_matches_tracemalloc(shape, two_threads):
    """The declared transient bytes of backward on the ocvec path are what numpy allocates beyond
    the gradients: the larger of the dX pass (im2col's Wᵀ·dY buffers) and the dW pass."""
    g = assert_backward_workspace(shape, (64, 3, 5, 5), 2, 2, seed=1)
    assert not cp.dx_as_conv(shape, 64, g)


@pytest.mark.parametrize("kernel, padding, dilation", [(3, 1, 1), (4, "same", 1), (3, 2, 2), (5, 0, 1)])
def test_ocvec_dx_as_convolution(kernel, padding, dilation, monkeypatch):
    """Stride 1 with C a multiple of the channel block: dX is the vectorized forward of dY with
    the rotated, transposed filter ('same' with an even kernel pads asymmetrically)."""
    cp.switch(monkeypatch, "ocvec", True)
    cp.switch(monkeypatch, "winograd", False)
    cp.switch(monkeypatch, "implicit", False)
    rng = np.random.default_rng(kernel)
    c, k = 32, 20
    arrays = (rng.standard_normal((2, c, 9, 8)).astype(np.float32),
              rng.standard_normal((k, c, kernel, kernel)).astype(np.float32), rng.standard_normal(k).astype(np.float32))
    x, w, b = (fc.tensor(a, requires_grad=True) for a in arrays)
    y = F.conv2d(x, w, b, padding=padding, dilation=dilation)
    assert y.grad_fn.path == "ocvec"
    assert cp.dx_as_conv(x.shape, k, y.grad_fn.geometry)
    if padding == "same":
        total = dilation * (kernel - 1)
        pads = ((total // 2, total - total // 2),) * 2
    else:
        pads = ((padding, padding),) * 2
    xp = np.pad(arrays[0], ((0, 0), (0, 0), pads[0], pads[1]))
    y_ref, grads = reference(xp, arrays[1], arrays[2], (1, 1), (0, 0), (dilation, dilation))
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    y.backward(dy)
    dxp, dw_ref, db_ref = grads(dy)
    dx_ref = dxp[:, :, pads[0][0]:pads[0][0] + 9, pads[1][0]:pads[1][0] + 8]
    for ours, ref in zip((y, x.grad, w.grad, b.grad), (y_ref, dx_ref, dw_ref, db_ref)):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_ocvec_dx_as_convolution_workspace_matches_tracemalloc(two_threads):
    """The declared backward workspace when dX runs as a convolution: the larger of that pass
    (rotated filter, padded dY per thread, repacked weights) and the dW pass."""
    g = assert_backward_workspace((3, 64, 20, 20), (64, 64, 5, 5), 1, 2, seed=2)
    assert cp.dx_as_conv((3, 64, 20, 20), 64, g)
