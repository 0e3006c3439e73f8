"""conv2d on the Winograd F(2×2, 3×3) path against a direct numpy convolution, finite differences
and PyTorch; the automatic dispatch rule; the path's memory declarations.

Float32 accuracy: the transforms only add, subtract and halve (G's entries are 0, ±1/2, 1; Bᵀ's
and Aᵀ's 0, ±1), so each output is a sum over 16·C products of transformed values whose
magnitudes are at most a few times those of the direct convolution's terms. The rounding error is
therefore O(ε·Σ|terms|) like the direct sum, a small constant factor larger (measured below as
max |error| / (ε · max Σ|x·w|) over the products of each output; the bound checked is 16).
"""
import contextlib
import itertools
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv._kernels import winograd as winograd_kernels
from fastconv.autograd import gradcheck
from fastconv.nn.functional import conv as conv_module
import _conv_paths as cp
from fastconv.nn.functional.conv import Conv2dFunction, path_winograd


@pytest.fixture
def winograd(monkeypatch):
    """Force the Winograd path (and the parallel schemes even on tiny shapes)."""
    cp.switch(monkeypatch, "winograd", True)
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)


# ---- direct numpy reference -----------------------------------------------------------------------

def pads(padding):
    """((top, bottom), (left, right)) for an int, a pair or 'same' with a 3×3 kernel."""
    if padding == "same":
        return (1, 1), (1, 1)
    p = (padding, padding) if isinstance(padding, int) else padding
    return (p[0], p[0]), (p[1], p[1])


def ref_conv3x3(x, w, b, padding):
    """y and a closure dy -> (dx, dw, db), in float64, looping over the 9 taps."""
    (pt, pb), (pl, pr) = pads(padding)
    n, c, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    w = w.astype(np.float64)
    ho, wo = h + pt + pb - 2, wd + pl + pr - 2
    y = np.zeros((n, w.shape[0], ho, wo))
    for i in range(3):
        for j in range(3):
            y += np.einsum("nchw,kc->nkhw", xp[:, :, i:i + ho, j:j + wo], w[:, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]

    def grads(dy):
        dy = dy.astype(np.float64)
        dxp = np.zeros_like(xp)
        dw = np.zeros(w.shape)
        for i in range(3):
            for j in range(3):
                dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, xp[:, :, i:i + ho, j:j + wo])
                dxp[:, :, i:i + ho, j:j + wo] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j])
        return dxp[:, :, pt:pt + h, pl:pl + wd], dw, dy.sum(axis=(0, 2, 3))

    return y, grads


def abs_terms(x, w, padding):
    """Per output, Σ|x|·|w| over its products: the scale of float32 rounding in any summation order."""
    y, _ = ref_conv3x3(np.abs(x), np.abs(w), None, padding)
    return y


def make_input(rng, shape, dtype, layout):
    if layout == "strided":
        return rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(dtype)[..., ::2]
    if layout == "channels_last":
        return rng.standard_normal((shape[0], shape[2], shape[3], shape[1])).astype(dtype).transpose(0, 3, 1, 2)
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def cases(draw):
    padding = draw(st.sampled_from([0, 1, 2, "same", (0, 2), (2, 1)]))
    (pt, pb), (pl, pr) = pads(padding)
    h = draw(st.integers(max(1, 3 - pt - pb), 9))
    w = draw(st.integers(max(1, 3 - pl - pr), 9))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 5)), k=draw(st.integers(1, 5)), h=h, w=w,
                padding=padding, dtype=draw(st.sampled_from([np.float32, np.float64])),
                bias=draw(st.booleans()), layout=draw(st.sampled_from(["contiguous", "strided", "channels_last"])),
                threads=draw(st.sampled_from([1, 2])), block=draw(st.sampled_from([None, 1, 40])))


# ---- correctness -------------------------------------------------------------------------------------

@given(cases())
def test_winograd_matches_direct_convolution(case):
    rng = np.random.default_rng(0)
    dt = case["dtype"]
    x = make_input(rng, (case["n"], case["c"], case["h"], case["w"]), dt, case["layout"])
    w = rng.standard_normal((case["k"], case["c"], 3, 3)).astype(dt)
    b = rng.standard_normal(case["k"]).astype(dt) if case["bias"] else None
    saved = (cp.planner.settings.forced, cp.common.MIN_FLOPS_PER_THREAD, cp.common.WINOGRAD_BLOCK_ELEMENTS)
    previous_threads = fc.get_num_threads()
    cp.planner.settings.forced = {p: "winograd" for p in cp.PASSES}
    cp.common.MIN_FLOPS_PER_THREAD = 0
    if case["block"] is not None:  # blocks of 1 tile, or a few tiles ending mid-row
        cp.common.WINOGRAD_BLOCK_ELEMENTS = case["block"] * 16 * (case["c"] + case["k"])
    try:
        fc.set_num_threads(case["threads"])
        X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
        B = fc.tensor(b, requires_grad=True) if b is not None else None
        y = F.conv2d(X, W, B, padding=case["padding"])
        assert y.grad_fn.path == "winograd"
        dy = rng.standard_normal(y.shape).astype(dt)
        y.backward(dy)
    finally:
        fc.set_num_threads(previous_threads)
        cp.planner.settings.forced, cp.common.MIN_FLOPS_PER_THREAD, cp.common.WINOGRAD_BLOCK_ELEMENTS = saved
    ref, ref_grads = ref_conv3x3(x, w, b, case["padding"])
    dx, dw, db = ref_grads(dy)
    assert y.dtype == dt and y.shape == ref.shape
    eps = np.finfo(dt).eps
    # errors relative to the sum of |terms| of each result (see the module docstring)
    scale_y = abs_terms(x, w, case["padding"]).max() + 1
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=16 * eps * scale_y)
    scale_dx = np.abs(dy).max() * np.abs(w).sum(axis=(0, 2, 3)).max() + 1  # ≥ Σ|dy·w| of any dx
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=0, atol=16 * eps * scale_dx)
    scale_dw = np.abs(dy).sum() * np.abs(x).max() + 1
    np.testing.assert_allclose(W.grad.numpy(), dw, rtol=0, atol=16 * eps * scale_dw)
    if B is not None:
        np.testing.assert_allclose(B.grad.numpy(), db, rtol=1e-5 if dt == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("padding", [1, 0, 2, "same", (0, 2)])
def test_winograd_gradcheck(rng, winograd, padding):
    x = fc.tensor(rng.standard_normal((2, 3, 5, 6)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=padding), (x, w, b))
    assert F.conv2d(x, w, b, padding=padding).grad_fn.path == "winograd"


def test_winograd_float32_error_is_like_direct_convolution(rng, monkeypatch):
    """Float32 error vs a float64 direct conv, in units of ε·max Σ|terms|, both paths.

    Measured: Winograd ≈ 0.6, im2col + GEMM ≈ 1.0 on this case (C = 64)."""
    x = rng.standard_normal((4, 64, 12, 12)).astype(np.float32)
    w = (rng.standard_normal((32, 64, 3, 3)) / 24).astype(np.float32)
    ref, _ = ref_conv3x3(x, w, None, 1)
    unit = np.finfo(np.float32).eps * abs_terms(x, w, 1).max()
    errors = {}
    for path in (True, False):
        cp.switch(monkeypatch, "winograd", path)
        errors[path] = np.abs(F.conv2d(fc.tensor(x), fc.tensor(w), padding=1).numpy() - ref).max() / unit
    assert errors[True] < 2.0 and errors[True] < 2 * errors[False] + 0.5


@pytest.mark.parametrize("padding", [1, "same", 0])
def test_winograd_matches_torch(torch, rng, winograd, padding):
    x = rng.standard_normal((3, 16, 13, 10)).astype(np.float32)
    w = (rng.standard_normal((24, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    X, W, B = (fc.tensor(a, requires_grad=True) for a in (x, w, b))
    TX, TW, TB = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(X, W, B, padding=padding)
    ty = torch.nn.functional.conv2d(TX, TW, TB, padding=padding)
    assert y.grad_fn.path == "winograd"
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((X, TX), (W, TW), (B, TB)):
        ref = theirs.grad.numpy()
        np.testing.assert_allclose(ours.grad.numpy(), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_winograd_only_requested_grads(rng, winograd):
    x = fc.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)))  # frozen: x not kept
    y = F.conv2d(x, w, padding=1)
    assert y.grad_fn.path == "winograd" and y.grad_fn.saved_nbytes == w.numpy().nbytes
    y.sum().backward()
    ref, grads = ref_conv3x3(x.numpy(), w.numpy(), None, 1)
    np.testing.assert_allclose(x.grad.numpy(), grads(np.ones(ref.shape))[0], rtol=1e-12, atol=1e-12)
    assert w.grad is None


# ---- dispatch and declarations ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape, weight, opts, expected", [
    ((1, 32, 28, 28), (32, 32, 3, 3), dict(padding=1), True),       # 196 tiles, C·K = 1024
    ((1, 32, 28, 28), (32, 32, 3, 3), dict(padding="same"), True),
    ((2, 32, 14, 14), (32, 32, 3, 3), dict(padding=1), True),       # 98 tiles
    ((1, 32, 14, 14), (32, 32, 3, 3), dict(padding=1), False),      # 49 tiles: too few
    ((1, 128, 14, 14), (256, 128, 3, 3), dict(padding=1), False),   # 49 tiles, however wide
    ((8, 128, 7, 7), (256, 128, 3, 3), dict(padding=1), True),      # 128 tiles
    ((8, 16, 14, 14), (32, 16, 3, 3), dict(padding=1), False),      # C·K = 512 on a small image
    ((1, 16, 56, 56), (32, 16, 3, 3), dict(padding=1), True),       # ... on a large one
    ((2, 1, 12, 12), (16, 1, 3, 3), dict(padding=1), False),        # C = 1: too thin for 16 GEMMs
    ((8, 16, 12, 12), (8, 16, 3, 3), dict(padding=1), False),       # K = 8
    ((2, 16, 7, 7), (16, 16, 3, 3), dict(padding=1), False),        # 32 tiles
    ((2, 16, 8, 8), (16, 16, 3, 3), dict(stride=2), False),         # not eligible
    ((2, 16, 8, 8), (16, 16, 3, 3), dict(dilation=2), False),
    ((2, 16, 8, 8), (16, 8, 3, 3), dict(groups=2), False),
    ((2, 16, 8, 8), (16, 16, 5, 5), dict(padding=2), False),
])
def test_automatic_dispatch_rule(rng, shape, weight, opts, expected):
    y = F.conv2d(fc.tensor(np.ones(shape, np.float32), requires_grad=True),
                 fc.tensor(np.ones(weight, np.float32)), **opts)
    assert (y.grad_fn.path == "winograd") == expected


def test_switch_forces_either_path(rng, monkeypatch):
    x = fc.tensor(rng.standard_normal((2, 16, 8, 8)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((16, 16, 3, 3)))
    cp.switch(monkeypatch, "winograd", False)
    direct = F.conv2d(x, w, padding=1)
    assert direct.grad_fn.path != "winograd"
    cp.switch(monkeypatch, "winograd", True)
    wino = F.conv2d(x, w, padding=1)
    assert wino.grad_fn.path == "winograd"
    assert F.conv2d(x, w, stride=2).grad_fn.path != "winograd"  # forcing never takes an ineligible config
    np.testing.assert_allclose(wino.numpy(), direct.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_winograd_declarations(rng, winograd, needs):
    shapes = ((2, 8, 9, 7), (12, 8, 3, 3), (12,))
    x, w, b = (fc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=r) for s, r in zip(shapes, needs))
    y = F.conv2d(x, w, b, padding=1)
    ctx = y.grad_fn
    assert ctx.path == "winograd"
    assert Conv2dFunction.saved_bytes(shapes, np.float32, needs, geometry=ctx.geometry) == ctx.saved_nbytes
    fwd, bwd = Conv2dFunction.macs(shapes, needs, geometry=ctx.geometry)
    assert fwd == 2 * 12 * 9 * 7 * 8 * 9 and bwd == fwd * (needs[0] + needs[1])  # direct-conv counts
    assert Conv2dFunction.workspace_bytes(shapes, np.float32, geometry=ctx.geometry) > 0


def test_winograd_forward_workspace_matches_tracemalloc(rng, winograd):
    """The declared transient bytes of forward are what numpy allocates beyond the output."""
    x = fc.tensor(rng.standard_normal((2, 8, 9, 7)).astype(np.float32))
    w = fc.tensor(rng.standard_normal((12, 8, 3, 3)).astype(np.float32))
    with fc.no_grad():
        F.conv2d(x, w, padding=1)  # warm up caches outside the measurement
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            y = F.conv2d(x, w, padding=1)
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
    geometry = conv_module.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 1, 9, 7)
    declared = Conv2dFunction.forward_workspace_bytes((x.shape, w.shape, None), np.float32, (False,) * 3,
                                                      geometry=geometry)
    transient = peak - y.numpy().nbytes
    assert declared <= transient <= declared + 4096  # + small Python objects


# ---- block layouts and GEMM shapes ------------------------------------------------------------------

@contextlib.contextmanager
def sgemm_variant(variant):
    """Run the Winograd module's packed sgemm and panel transforms as ``variant`` (AVX2 ones too
    on an AVX-512 CPU)."""
    previous = winograd_kernels.set_sgemm_variant(variant)
    try:
        yield
    finally:
        winograd_kernels.set_sgemm_variant(previous)


@pytest.mark.parametrize("n, c, k, h, w, block", [
    (3, 4, 5, 9, 15, 5),      # 8-tile rows, 5-tile blocks: pieces end mid-row and span images
    (2, 3, 13, 11, 7, 1),     # one tile per block, 13 kernels: a 12-row panel and a 1-row tail
    (2, 3, 20, 6, 40, 7),     # rows of 20 tiles wider than a block; 20 = 12 + 8 rows
    (1, 2, 3, 12, 12, 36),    # whole-row blocks of 6 tiles, one image
    (1, 5, 30, 10, 80, 40),   # 40-tile blocks = 32 + 8: an 8-wide last half (AVX2 12 x 8 tiles), K = 12 + 12 + 6
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_kernels_any_block(rng, n, c, k, h, w, block, dtype):
    """The kernels directly, with blocks that do not follow the plan's whole-row choice, on each
    packed sgemm variant the CPU runs (float32)."""
    from fastconv._kernels import winograd as kernels
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    dy = rng.standard_normal((n, k, h, w)).astype(dtype)
    ref, grads = ref_conv3x3(x, wt, b, 1)
    _, ref_dw, _ = grads(dy)
    eps = np.finfo(dtype).eps
    variants = winograd_kernels.sgemm_variants() if dtype == np.float32 else []
    for threads, variant in itertools.product((1, 2), variants or [None]):
        with sgemm_variant(variant) if variant else contextlib.nullcontext():
            check_winograd_kernels(kernels, x, wt, b, dy, ref, ref_dw, block, threads, eps)


def check_winograd_kernels(kernels, x, wt, b, dy, ref, ref_dw, block, threads, eps):
    """Forward and weight gradient in both layouts (the panel one where the dtype and CPU allow)."""
    (n, c, h, w), k, dtype = x.shape, wt.shape[0], x.dtype
    for panels in {False, kernels.panel_layout(dtype == np.float32)}:
        u = np.empty(kernels.filter_elements(c, k, panels), dtype)
        kernels.winograd_filter(wt, u, False, kernels.PANEL_ROWS if panels else 1, threads)
        v_el, m_el = kernels.work_elements(c, k, h, w, block, panels)
        vwork, mwork = np.empty((threads, v_el), dtype), np.empty((threads, m_el), dtype)
        y = np.empty((n, k, h, w), dtype)
        kernels.winograd_forward(x, u, b, True, y, vwork, mwork, 1, 1, block, panels, threads > 1, threads)
        np.testing.assert_allclose(y, ref, rtol=0, atol=64 * eps * (abs_terms(x, wt, 1).max() + 1))
    for panels in {False, kernels.panel_layout(dtype == np.float32)}:
        if panels:  # dU_ξ transposed (C×K), from the transforms' own sgemm panels
            v_el, m_el = kernels.weight_grad_elements(c, k, h, w, block)
        else:
            v_el, m_el = kernels.work_elements(c, k, h, w, block, False)
        du = np.zeros((threads, 16 * k * c), dtype)
        kernels.winograd_weight_grad(x, dy, du, np.full((threads, v_el), np.nan, dtype),
                                     np.full((threads, m_el), np.nan, dtype), 1, 1, block, threads > 1,
                                     threads, panels)
        dw = np.empty_like(wt)
        kernels.winograd_filter_grad(du.sum(axis=0).reshape((16, c, k) if panels else (16, k, c)), dw,
                                     threads, panels)
        np.testing.assert_allclose(dw, ref_dw, rtol=0, atol=64 * eps * (np.abs(dy).sum() * np.abs(x).max() + 1))


@given(n=st.integers(1, 3), c=st.integers(1, 40), k=st.integers(1, 70), h=st.integers(1, 13),
   w=st.integers(1, 13), ph=st.integers(-1, 3), pw=st.integers(-1, 3), block=st.integers(1, 60),
   threads=st.sampled_from([1, 2]), parts=st.integers(1, 8), seed=st.integers(0, 10_000))
@pytest.mark.skipif(not winograd_kernels.sgemm_variants(), reason="no packed sgemm on this CPU")
def test_winograd_panels_any_geometry(n, c, k, h, w, ph, pw, block, threads, parts, seed):
    """The panel layout's forward (vector transforms of ``_winograd_fwd.h``) and weight gradient
    (``_winograd_dw.h``), on every sgemm variant the CPU runs, against float64 direct ones for
    any image, padding (negative: a crop), channel counts off the 16/12/32 steps and blocks
    cutting rows and images; NaN-filled buffers show that every output is written and no
    scratch entry is used before it is written. With 2 threads the forward also splits the
    output channels into 1–8 parts (more parts than 12-row panels leave some empty)."""
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    dy = rng.standard_normal((n, k, ho, wo)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (max(ph, 0),) * 2, (max(pw, 0),) * 2))
    xp = xp[:, :, max(-ph, 0):, max(-pw, 0):]
    wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    ref = np.zeros((k, c, 3, 3))
    ref_y = np.zeros((n, k, ho, wo)) + bias[None, :, None, None]
    for i in range(3):
        for j in range(3):
            ref[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, xp[:, :, i:i + ho, j:j + wo])
            ref_y += np.einsum("nchw,kc->nkhw", xp[:, :, i:i + ho, j:j + wo], wt[:, :, i, j])
    abs_y = sum(np.einsum("nchw,kc->nkhw", np.abs(xp[:, :, i:i + ho, j:j + wo]), np.abs(wt[:, :, i, j]))
                for i in range(3) for j in range(3))
    v_el, m_el = winograd_kernels.weight_grad_elements(c, k, ho, wo, block)
    fv_el, fm_el = winograd_kernels.work_elements(c, k, ho, wo, block, True)
    eps = np.finfo(np.float32).eps
    for variant in winograd_kernels.sgemm_variants():
        with sgemm_variant(variant):
            u = np.empty(winograd_kernels.filter_elements(c, k, True), np.float32)
            winograd_kernels.winograd_filter(wt, u, False, winograd_kernels.PANEL_ROWS, threads)
            y = np.full((n, k, ho, wo), np.nan, np.float32)
            winograd_kernels.winograd_forward(x, u, bias, True, y, np.full((threads, fv_el), np.nan, np.float32),
                                              np.full((threads, fm_el), np.nan, np.float32), ph, pw, block,
                                              True, threads > 1, threads, parts if threads > 1 else 1)
        np.testing.assert_allclose(y, ref_y, rtol=0, atol=64 * eps * (abs_y.max() + np.abs(bias).max() + 1),
                                   err_msg=f"forward, sgemm variant {variant}")
        du = np.zeros((threads, 16 * k * c), np.float32)
        with sgemm_variant(variant):
            winograd_kernels.winograd_weight_grad(x, dy, du, np.full((threads, v_el), np.nan, np.float32),
                                                  np.full((threads, m_el), np.nan, np.float32), ph, pw, block,
                                                  threads > 1, threads, True)
        dw = np.empty((k, c, 3, 3), np.float32)
        winograd_kernels.winograd_filter_grad(du.sum(axis=0).reshape(16, c, k), dw, threads, True)
        np.testing.assert_allclose(dw, ref, rtol=0, atol=64 * eps * (np.abs(dy).sum() * np.abs(x).max() + 1),
                                   err_msg=f"sgemm variant {variant}")


@pytest.mark.skipif(not winograd_kernels.panel_layout(True), reason="no packed sgemm on this CPU")
@pytest.mark.parametrize("n, c, k, size", [(1, 40, 64, 6), (1, 24, 50, 9), (2, 16, 96, 4)])
def test_winograd_channel_split_same_bits(rng, winograd, monkeypatch, n, c, k, size):
    """At 2 threads a forward over few tile blocks splits the output channels between the threads
    (the rule picks it for these shapes): the same bits as splitting the blocks, and as 1 thread,
    with the bias, padding 1 and K off the 12-row panels (50)."""
    x = fc.tensor(rng.standard_normal((n, c, size, size)).astype(np.float32))
    w = fc.tensor(rng.standard_normal((k, c, 3, 3)).astype(np.float32))
    b = fc.tensor(rng.standard_normal(k).astype(np.float32))
    previous = fc.get_num_threads()
    try:
        outputs = {}
        for threads, split in ((1, True), (2, False), (2, True)):
            fc.set_num_threads(threads)
            monkeypatch.setattr(cp.common, "WINOGRAD_SPLIT_CHANNELS", split)
            plan = path_winograd.winograd_plan(n, c, k, size, size, 4)
            assert plan.channel_parts == (2 if threads == 2 and split else 1)
            with fc.no_grad():
                y = F.conv2d(x, w, b, padding=1)
            outputs[threads, split] = y.numpy()
    finally:
        fc.set_num_threads(previous)
    ref, _ = ref_conv3x3(x.numpy(), w.numpy(), b.numpy(), 1)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(outputs[2, True], ref, rtol=0, atol=16 * eps * (abs_terms(x.numpy(), w.numpy(), 1).max() + 8))
    assert np.array_equal(outputs[2, True], outputs[2, False])
    assert np.array_equal(outputs[2, True], outputs[1, True])


def test_winograd_deep_channels_float32(rng, winograd):
    """C = 300 > the sgemm's 256-deep packed blocks: the prepacked GEMM accumulates two depth blocks
    (forward, K = 300 for dX), and the 4- and 8-row tail panels (K = 16 = 12 + 4, C = 300 = 25·12)."""
    x = rng.standard_normal((2, 300, 6, 5)).astype(np.float32)
    w = (rng.standard_normal((16, 300, 3, 3)) / 40).astype(np.float32)
    X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    y = F.conv2d(X, W, padding=1)
    assert y.grad_fn.path == "winograd"
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(dy)
    ref, grads = ref_conv3x3(x, w, None, 1)
    dx, dw, _ = grads(dy)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=16 * eps * (abs_terms(x, w, 1).max() + 1))
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=0,
                               atol=16 * eps * (np.abs(dy).max() * np.abs(w).sum(axis=(0, 2, 3)).max() + 1))
    np.testing.assert_allclose(W.grad.numpy(), dw, rtol=0, atol=16 * eps * (np.abs(dy).sum() * np.abs(x).max() + 1))


@pytest.mark.skipif(not winograd_kernels.panel_layout(True), reason="no packed sgemm on this CPU")
@pytest.mark.parametrize("m, n, k", [(64, 224, 32), (13, 33, 5), (1, 1, 300), (25, 70, 257)])
def test_packed_product_matches_numpy(m, n, k):
    """The benchmarks' entry to the pre-packed product: 12-row A panels (rows past m zero) and
    32-column B panels against numpy, edges of both tile sizes and depths past one block."""
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    rows, cols = -(-m // 12) * 12, -(-n // 32) * 32
    a_pad = np.zeros((rows, k), np.float32)
    a_pad[:m] = a
    b_pad = np.zeros((k, cols), np.float32)
    b_pad[:, :n] = b

    def aligned(values):
        raw = np.empty(values.size + 16, np.float32)
        start = (-raw.ctypes.data // 4) % 16
        raw[start:start + values.size] = values
        return raw[start:start + values.size]

    a_panels = aligned(a_pad.reshape(rows // 12, 12, k).transpose(0, 2, 1).ravel())
    b_panels = aligned(b_pad.reshape(k, cols // 32, 32).transpose(1, 0, 2).ravel())
    c = np.full((m, n), np.nan, np.float32)
    winograd_kernels.packed_product(a_panels, b_panels, c, k)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="packed_product: expected panels of at least"):
        winograd_kernels.packed_product(a_panels[:-1], b_panels, c, k)


def test_winograd_panels_refuse_float64():
    """The panel layouts are float32 only: asking for them with float64 arrays is refused before
    any kernel runs."""
    x = np.zeros((1, 2, 6, 6))
    dy = np.zeros((1, 3, 6, 6))
    v_el, m_el = winograd_kernels.work_elements(2, 3, 6, 6, 9, False)
    with pytest.raises(ValueError, match="winograd_weight_grad: the panel layout needs float32"):
        winograd_kernels.winograd_weight_grad(x, dy, np.zeros((1, 16 * 6)), np.empty((1, v_el)),
                                              np.empty((1, m_el)), 1, 1, 9, False, 1, True)
    u = np.zeros(winograd_kernels.filter_elements(2, 3, False))
    with pytest.raises(ValueError, match="winograd_forward: the panel layout needs float32"):
        winograd_kernels.winograd_forward(x, u, np.zeros(3), False, np.empty((1, 3, 6, 6)),
                                          np.empty((1, v_el)), np.empty((1, m_el)), 1, 1, 9, True, False, 1)
    with pytest.raises(ValueError, match="winograd_forward: expected channel_parts 1, or more with parallel"):
        winograd_kernels.winograd_forward(x, u, np.zeros(3), False, np.empty((1, 3, 6, 6)),
                                          np.empty((1, v_el)), np.empty((1, m_el)), 1, 1, 9, False, False, 1, 2)
