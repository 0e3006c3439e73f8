"""conv2d's shallow-GEMM path (groups 1, C·kh·kw ≤ SMALL_DEPTH): numpy reference, gradcheck, torch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv.autograd import gradcheck
from fastconv._kernels import conv as conv_kernels
from fastconv.nn.functional import conv as conv_module
import _conv_paths as cp
from fastconv.nn.functional.conv import Conv2dFunction


@pytest.fixture(autouse=True)
def small_path_parallel_when_tiny(monkeypatch):
    """Force the shallow path, and the multi-threaded schemes even on tiny shapes."""
    cp.switch(monkeypatch, "shallow", True)
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)


def reference(x, w, b, stride, padding, dilation):
    """(y, grads(dy) -> (dx, dw, db)) of a groups-1 conv2d, in float64, tap by tap."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    taps = [(i, j, (slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)))
            for i in range(kh) for j in range(kw)]
    y = np.zeros((n, k, ho, wo)) + (0 if b is None else b.astype(np.float64)[None, :, None, None])
    for i, j, (rows, cols) in taps:
        y += np.einsum("nchw,kc->nkhw", xp[:, :, rows, cols], w[:, :, i, j].astype(np.float64))

    def grads(dy):
        dy = dy.astype(np.float64)
        dxp = np.zeros_like(xp)
        dw_ = np.zeros(w.shape)
        for i, j, (rows, cols) in taps:
            dxp[:, :, rows, cols] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j].astype(np.float64))
            dw_[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, xp[:, :, rows, cols])
        return dxp[:, :, ph:ph + h, pw:pw + wd], dw_, dy.sum(axis=(0, 2, 3))

    return y, grads


@st.composite
def configs(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 11))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 11))
    shape = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.integers(1, 3)), h, w)
    return dict(shape=shape, kernel=(draw(st.integers(1, 6)), kh, kw), stride=stride, padding=padding,
                dilation=dilation, dtype=draw(st.sampled_from([np.float32, np.float64])),
                transposed=draw(st.booleans()), bias=draw(st.booleans()))


@given(configs())
def test_small_path_matches_reference(cfg):
    rng = np.random.default_rng(7)
    n, c, h, wd = cfg["shape"]
    k, kh, kw = cfg["kernel"]
    dt = cfg["dtype"]
    if cfg["transposed"]:  # a non-contiguous input (H and W swapped in memory)
        x_np = rng.standard_normal((n, c, wd, h)).astype(dt).transpose(0, 1, 3, 2)
    else:
        x_np = rng.standard_normal((n, c, h, wd)).astype(dt)
    w_np = rng.standard_normal((k, c, kh, kw)).astype(dt)
    b_np = rng.standard_normal(k).astype(dt) if cfg["bias"] else None
    x = fc.tensor(x_np, requires_grad=True)
    w = fc.tensor(w_np, requires_grad=True)
    b = None if b_np is None else fc.tensor(b_np, requires_grad=True)
    y = F.conv2d(x, w, b, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
    assert y.grad_fn.path == "shallow" and y.dtype == dt
    y_ref, grads = reference(x_np, w_np, b_np, cfg["stride"], cfg["padding"], cfg["dilation"])
    tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), y_ref, **tol)
    dy = rng.standard_normal(y_ref.shape).astype(dt)
    y.backward(dy)
    dx_ref, dw_ref, db_ref = grads(dy)
    np.testing.assert_allclose(x.grad.numpy(), dx_ref, **tol)
    np.testing.assert_allclose(w.grad.numpy(), dw_ref, **tol)
    if b is not None:
        np.testing.assert_allclose(b.grad.numpy(), db_ref, **tol)


@pytest.mark.parametrize("level", conv_kernels.shallow_variants())
def test_every_shallow_variant_matches_reference(level):
    """Each compiled variant of the shallow loops this CPU runs (baseline, AVX2, AVX-512), on
    shapes whose rows, columns and depths end mid-block for every vector width (L = 1..130,
    odd K, depth not a multiple of 4)."""
    previous = conv_kernels.set_shallow_variant_cap(level)
    try:
        rng = np.random.default_rng(level)
        for shape, k, kernel, padding in [((1, 1, 1, 1), 1, (1, 1), 0), ((2, 1, 5, 7), 3, (3, 3), 1),
                                          ((1, 3, 10, 13), 5, (3, 3), 1), ((3, 2, 9, 11), 7, (2, 3), 0),
                                          ((1, 1, 13, 10), 33, (3, 3), 1), ((2, 3, 4, 33), 16, (1, 3), 1)]:
            for dt in (np.float32, np.float64):
                x_np = rng.standard_normal(shape).astype(dt)
                w_np = rng.standard_normal((k, shape[1], *kernel)).astype(dt)
                b_np = rng.standard_normal(k).astype(dt)
                x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
                y = F.conv2d(x, w, b, padding=padding)
                assert y.grad_fn.path == "shallow"
                y_ref, grads = reference(x_np, w_np, b_np, (1, 1), (padding, padding), (1, 1))
                dy = rng.standard_normal(y_ref.shape).astype(dt)
                y.backward(dy)
                tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
                for ours, ref in zip((y, x.grad, w.grad, b.grad), (y_ref, *grads(dy))):
                    np.testing.assert_allclose(ours.numpy(), ref, **tol, err_msg=f"{shape} {k} {dt}")
    finally:
        conv_kernels.set_shallow_variant_cap(previous)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_small_path_gradcheck(stride, padding, dilation):
    rng = np.random.default_rng(3)
    x = fc.tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(4), requires_grad=True)
    f = lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert f(x, w, b).grad_fn.path == "shallow"
    assert gradcheck(f, (x, w, b))


@pytest.mark.parametrize("shape,k", [((5, 1, 28, 28), 32), ((1, 3, 32, 32), 16), ((2, 2, 9, 70), 3)])
def test_small_path_matches_torch(torch, shape, k):
    rng = np.random.default_rng(5)
    x_np = rng.standard_normal(shape).astype(np.float32)
    w_np = (rng.standard_normal((k, shape[1], 3, 3)) * 0.3).astype(np.float32)
    b_np = rng.standard_normal(k).astype(np.float32)
    x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = F.conv2d(x, w, b, padding=1)
    assert y.grad_fn.path == "shallow"
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((y, ty), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=2e-4)


def test_dispatch_rule(monkeypatch):
    cp.switch(monkeypatch, "shallow", None)
    z = lambda *s: fc.tensor(np.zeros(s, dtype=np.float32), requires_grad=True)
    assert F.conv2d(z(2, 1, 8, 8), z(4, 1, 3, 3), padding=1).grad_fn.path == "shallow"       # depth 9
    assert F.conv2d(z(1, 1, 9, 9), z(4, 1, 3, 3), stride=2, dilation=2).grad_fn.path == "shallow"
    assert F.conv2d(z(1, 3, 8, 8), z(4, 3, 1, 3), stride=2).grad_fn.path == "shallow"        # depth 9
    assert F.conv2d(z(1, 1, 8, 8), z(64, 1, 3, 3)).grad_fn.path == "shallow"                 # any K
    monkeypatch.setattr(cp.path_gemm, "PACKED_SGEMM", False)                            # BLAS sgemm:
    assert F.conv2d(z(1, 3, 8, 8), z(32, 3, 3, 3), stride=2).grad_fn.path == "shallow"       # 27, K 32
    assert F.conv2d(z(1, 3, 9, 9), z(33, 3, 3, 3), dilation=2).grad_fn.path != "shallow" # 27, K 33
    monkeypatch.setattr(cp.path_gemm, "PACKED_SGEMM", True)                             # packed sgemm:
    assert F.conv2d(z(1, 3, 9, 9), z(32, 3, 3, 3), dilation=2).grad_fn.path != "shallow" # depth 9 only
    assert F.conv2d(z(1, 4, 9, 9), z(4, 4, 3, 3), dilation=2).grad_fn.path != "shallow"  # depth 36
    assert F.conv2d(z(1, 3, 16, 16), z(4, 3, 5, 5)).grad_fn.path != "shallow"            # depth 75
    # float32 3×3 forward on ≤ 4 channels, stride ≤ 2, dilation 1: the plane loops
    assert F.conv2d(z(1, 3, 8, 8), z(32, 3, 3, 3), stride=2).grad_fn.path == "shallow"
    assert F.conv2d(z(1, 4, 8, 8), z(64, 4, 3, 3), padding=1).grad_fn.path == "shallow"
    assert F.conv2d(z(1, 5, 8, 8), z(4, 5, 3, 3)).grad_fn.path != "shallow"              # 5 channels
    assert F.conv2d(z(1, 3, 9, 9), z(4, 3, 3, 3), stride=3).grad_fn.path != "shallow"    # stride 3
    z64 = lambda *s: fc.tensor(np.zeros(s), requires_grad=True)  # noqa: E731
    assert F.conv2d(z64(1, 3, 8, 8), z64(32, 3, 3, 3)).grad_fn.path != "shallow"        # float64
    assert F.conv2d(z(1, 2, 8, 8), z(4, 1, 3, 3), groups=2).grad_fn.path != "shallow"    # groups
    cp.switch(monkeypatch, "shallow", False)
    assert F.conv2d(z(2, 1, 8, 8), z(4, 1, 3, 3)).grad_fn.path != "shallow"
    cp.switch(monkeypatch, "shallow", True)
    assert F.conv2d(z(1, 8, 8, 8), z(4, 8, 3, 3)).grad_fn.path == "shallow"
    assert F.conv2d(z(1, 2, 8, 8), z(4, 1, 3, 3), groups=2).grad_fn.path != "shallow"    # never groups > 1


def test_small_path_equals_blas_path(monkeypatch):
    rng = np.random.default_rng(11)
    x_np, w_np, b_np = rng.standard_normal((3, 2, 13, 10)), rng.standard_normal((5, 2, 3, 3)), rng.standard_normal(5)
    dy = rng.standard_normal((3, 5, 7, 3))
    results = []
    for small in (True, False):
        cp.switch(monkeypatch, "shallow", small)
        x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
        y = F.conv2d(x, w, b, stride=(2, 2), padding=(1, 0), dilation=(1, 2))
        assert (y.grad_fn.path == "shallow") == small
        y.backward(dy)
        results.append([y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_small_path_declarations(needs):
    rng = np.random.default_rng(2)
    shapes = ((2, 3, 9, 7), (6, 3, 3, 3), (6,))
    x, w, b = (fc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=r) for s, r in zip(shapes, needs))
    ctx = F.conv2d(x, w, b, padding=1).grad_fn
    assert ctx.path == "shallow"
    assert Conv2dFunction.saved_bytes(shapes, np.float32, needs, geometry=ctx.geometry) == ctx.saved_nbytes


@pytest.mark.parametrize("needs", [(True, False, True), (False, False, True), (True, True, False), (False, True, True)])
def test_small_path_partial_gradients(needs):
    """db fused into the dW pass (weight and bias need grad) or summed separately (otherwise)."""
    rng = np.random.default_rng(4)
    arrays = (rng.standard_normal((3, 1, 7, 6)), rng.standard_normal((5, 1, 3, 3)), rng.standard_normal(5))
    x, w, b = (fc.tensor(a, requires_grad=r) for a, r in zip(arrays, needs))
    y = F.conv2d(x, w, b, padding=1)
    assert y.grad_fn.path == "shallow"
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    refs = reference(*arrays, (1, 1), (1, 1), (1, 1))[1](dy)
    for t, r, ref in zip((x, w, b), needs, refs):
        if r:
            np.testing.assert_allclose(t.grad.numpy(), ref, rtol=1e-10, atol=1e-10)
        else:
            assert t.grad is None


def test_small_path_workspace_declares_db_partials():
    shapes = ((4, 1, 16, 16), (8, 1, 3, 3), (8,))
    ctx = F.conv2d(*(fc.tensor(np.zeros(s, np.float32), requires_grad=True) for s in shapes), padding=1).grad_fn
    plan = cp.path_gemm.backward_plan(shapes[0], 8, ctx.geometry)
    columns = cp.path_gemm.backward_workspace(shapes[0], 8, ctx.geometry, 4)
    partials = plan.buffers * 8 * 4 if plan.buffers > 1 else 0
    assert Conv2dFunction.workspace_bytes(shapes, np.float32, geometry=ctx.geometry) == columns + partials
    assert Conv2dFunction.workspace_bytes(shapes[:2] + (None,), np.float32, geometry=ctx.geometry) == columns


@pytest.mark.parametrize("small", [True, False])
@pytest.mark.parametrize("k", [1, 5])
def test_batch_one_backward_split_over_threads(monkeypatch, small, k):
    """Fewer images than threads: dW split over output channels, dX over columns (both paths)."""
    cp.switch(monkeypatch, "shallow", small)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        rng = np.random.default_rng(9)
        arrays = (rng.standard_normal((1, 2, 9, 11)), rng.standard_normal((k, 2, 3, 3)), rng.standard_normal(k))
        x, w, b = (fc.tensor(a, requires_grad=True) for a in arrays)
        y = F.conv2d(x, w, b, stride=(1, 2), padding=1)
        assert (y.grad_fn.path == "shallow") == small
        dy = rng.standard_normal(y.shape)
        y.backward(dy)
        y_ref, grads = reference(*arrays, (1, 2), (1, 1), (1, 1))
        np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-10, atol=1e-10)
        for t, ref in zip((x, w, b), grads(dy)):
            np.testing.assert_allclose(t.grad.numpy(), ref, rtol=1e-10, atol=1e-10)
    finally:
        fc.set_num_threads(previous)
