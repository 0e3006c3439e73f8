"""Normalization: numpy references of the formulas, closed-form backward, gradcheck, stability at
mean 1e4 / std 1e-2 in float32, running statistics, PyTorch cross-check, saved bytes, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.autograd import gradcheck
from fastconv.nn.functional.normalization import Normalize

F = fc.nn.functional


# ---- numpy references ------------------------------------------------------------------------

def normalize_ref(x, axes, eps):
    """(x - mean)/sqrt(var + eps) over ``axes`` in float64 (biased variance)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def normalize_backward_ref(x, dxhat, axes, eps):
    """dx = (1/σ)/M·(M·dx̂ - Σdx̂ - x̂·Σ(dx̂·x̂)) over ``axes``."""
    x = x.astype(np.float64)
    m = np.prod([x.shape[a] for a in axes])
    xhat = normalize_ref(x, axes, eps)
    var = x.var(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return inv_std / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                          - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))


def channel_view(p, ndim):
    return None if p is None else p.reshape((1, -1) + (1,) * (ndim - 2))


def affine(xhat, w, b):
    out = xhat if w is None else xhat * w
    return out if b is None else out + b


def group_view(x, g):
    return x.reshape(x.shape[0], g, -1)


def reference(op, x, w, b, eps, groups=None, k=None):
    """(output, axes for the backward formula, the array shape normalized, channel-broadcast w)."""
    nd = x.ndim
    if op == "batch_norm":
        axes = (0,) + tuple(range(2, nd))
        return affine(normalize_ref(x, axes, eps), channel_view(w, nd), channel_view(b, nd))
    if op == "instance_norm":
        axes = tuple(range(2, nd))
        return affine(normalize_ref(x, axes, eps), channel_view(w, nd), channel_view(b, nd))
    if op == "group_norm":
        xhat = normalize_ref(group_view(x, groups), (2,), eps).reshape(x.shape)
        return affine(xhat, channel_view(w, nd), channel_view(b, nd))
    axes = tuple(range(nd - k, nd))
    return affine(normalize_ref(x, axes, eps), w, b)


def input_grad_reference(op, x, w, dy, eps, groups=None, k=None):
    nd = x.ndim
    if op in ("batch_norm", "instance_norm", "group_norm"):
        dxhat = dy if w is None else dy * channel_view(w, nd)
        if op == "batch_norm":
            return normalize_backward_ref(x, dxhat, (0,) + tuple(range(2, nd)), eps)
        if op == "instance_norm":
            return normalize_backward_ref(x, dxhat, tuple(range(2, nd)), eps)
        return normalize_backward_ref(group_view(x, groups), group_view(dxhat, groups), (2,), eps).reshape(x.shape)
    dxhat = dy if w is None else dy * w
    return normalize_backward_ref(x, dxhat, tuple(range(nd - k, nd)), eps)


def call(op, x, w, b, eps, groups=None, k=None):
    if op == "batch_norm":
        return F.batch_norm(x, None, None, w, b, training=True, eps=eps)
    if op == "instance_norm":
        return F.instance_norm(x, weight=w, bias=b, eps=eps)
    if op == "group_norm":
        return F.group_norm(x, groups, w, b, eps=eps)
    return F.layer_norm(x, tuple(x.shape[x.ndim - k:]), w, b, eps=eps)


# ---- hypothesis: forward and backward against the references ---------------------------------

OPS = ["batch_norm", "instance_norm", "group_norm", "layer_norm"]


@st.composite
def problems(draw):
    op = draw(st.sampled_from(OPS))
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=0 if op in ("batch_norm", "group_norm", "layer_norm")
                                  else 1, max_size=2)))
    shape = (n, c) + spatial
    if op == "instance_norm" and np.prod(spatial) < 2:
        shape = (n, c, 2) + spatial
    if op == "batch_norm" and n * int(np.prod(spatial)) < 2:
        shape = (2,) + shape[1:]
    k = draw(st.integers(1, len(shape) - 1)) if op == "layer_norm" else None
    return dict(op=op, shape=shape, groups=groups, k=k,
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])),
                with_weight=draw(st.booleans()), with_bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["contiguous", "transposed", "strided"])),
                seed=draw(st.integers(0, 2 ** 16)))


def make_input(shape, dtype, layout, rng):
    """An array of ``shape``: contiguous, a transposed view, or every other element of a larger array."""
    if layout == "transposed":
        return rng.standard_normal(shape[::-1]).astype(dtype).transpose()
    if layout == "strided":
        big = rng.standard_normal((shape[0] * 2,) + shape[1:]).astype(dtype)
        return big[::2]
    return rng.standard_normal(shape).astype(dtype)


@given(problems())
def test_forward_and_backward_match_the_formulas(p):
    rng = np.random.default_rng(p["seed"])
    op, shape, dtype = p["op"], p["shape"], p["dtype"]
    x_np = make_input(shape, dtype, p["layout"], rng) * 2 + 0.5
    pshape = shape[len(shape) - p["k"]:] if op == "layer_norm" else (shape[1],)
    w_np = rng.standard_normal(pshape).astype(dtype) if p["with_weight"] else None
    b_np = rng.standard_normal(pshape).astype(dtype) if p["with_bias"] else None
    x = fc.tensor(x_np, dtype=dtype, requires_grad=True)
    w = None if w_np is None else fc.tensor(w_np, requires_grad=True)
    b = None if b_np is None else fc.tensor(b_np, requires_grad=True)
    y = call(op, x, w, b, p["eps"], p["groups"], p["k"])
    assert y.dtype == dtype and y.shape == shape
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), reference(op, x_np, w_np, b_np, p["eps"], p["groups"], p["k"]), **tol)

    dy = rng.standard_normal(shape).astype(dtype)
    y.backward(dy)
    dx_ref = input_grad_reference(op, x_np, w_np, dy.astype(np.float64), p["eps"], p["groups"], p["k"])
    # dx sums terms as large as |dy·w|/σ that cancel (to exactly 0 for a one-element group, whose
    # σ² is 0 and 1/σ up to 1/√eps): float32 leaves a few ulps of those terms
    dxhat_max = np.abs(dy).max() * (1.0 if w_np is None else np.abs(w_np).max())
    dx_tol = dict(tol, atol=max(tol["atol"], 8 * np.finfo(dtype).eps * dxhat_max / np.sqrt(p["eps"])))
    np.testing.assert_allclose(x.grad.numpy(), dx_ref, **dx_tol)
    xhat = reference(op, x_np, None, None, p["eps"], p["groups"], p["k"])
    reduce_axes = tuple(range(len(shape) - p["k"])) if op == "layer_norm" else (0,) + tuple(range(2, len(shape)))
    if w is not None:
        np.testing.assert_allclose(w.grad.numpy(), (dy * xhat).sum(axis=reduce_axes), **tol)
    if b is not None:
        np.testing.assert_allclose(b.grad.numpy(), dy.astype(np.float64).sum(axis=reduce_axes), **tol)


def test_long_rows_and_many_tiles(rng):
    """Groups larger than one statistics tile, and batch-norm channels spanning many rows."""
    x_np = rng.standard_normal((3, 4, 9000)) * 3 + 1
    dy = rng.standard_normal(x_np.shape)
    for op, kw in [("batch_norm", {}), ("group_norm", {"groups": 2}), ("layer_norm", {"k": 2}),
                   ("instance_norm", {})]:
        x = fc.tensor(x_np, requires_grad=True)
        y = call(op, x, None, None, 1e-5, **kw)
        np.testing.assert_allclose(y.numpy(), reference(op, x_np, None, None, 1e-5, **kw), rtol=1e-10, atol=1e-10)
        y.backward(dy)
        np.testing.assert_allclose(x.grad.numpy(), input_grad_reference(op, x_np, None, dy, 1e-5, **kw),
                                   rtol=1e-9, atol=1e-9)
    x_np = rng.standard_normal((5000, 3))  # (N, C) batch norm: many rows per channel, tiles of rows
    np.testing.assert_allclose(F.batch_norm(fc.tensor(x_np), None, None, training=True).numpy(),
                               reference("batch_norm", x_np, None, None, 1e-5), rtol=1e-10, atol=1e-10)


# ---- gradcheck (float64) ---------------------------------------------------------------------

def params(rng, shape, requires_grad=True):
    return [fc.tensor(rng.standard_normal(shape), requires_grad=requires_grad) for _ in range(2)]


def test_gradcheck_batch_norm(rng):
    x = fc.tensor(rng.standard_normal((3, 4, 2, 3)), requires_grad=True)
    w, b = params(rng, (4,))
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    rm, rv = fc.tensor(rng.standard_normal(4)), fc.tensor(rng.uniform(0.5, 2, 4))
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])
    x2 = fc.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x2])


def test_gradcheck_layer_norm(rng):
    x = fc.tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    w, b = params(rng, (4, 5))
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (4, 5), w, b), [x, w, b])
    w1, b1 = params(rng, (5,))
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 5, w, b, eps=1e-3), [x, w1, b1])


def test_gradcheck_instance_norm(rng):
    x = fc.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)
    w, b = params(rng, (3,))
    assert gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [x, w, b])
    rm, rv = fc.tensor(rng.standard_normal(3)), fc.tensor(rng.uniform(0.5, 2, 3))
    assert gradcheck(lambda x, w, b: F.instance_norm(x, rm, rv, w, b, use_input_stats=False), [x, w, b])


def test_gradcheck_group_norm(rng):
    x = fc.tensor(rng.standard_normal((2, 6, 2, 2)), requires_grad=True)
    w, b = params(rng, (6,))
    assert gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b), [x, w, b])
    assert gradcheck(lambda x: F.group_norm(x, 2), [fc.tensor(rng.standard_normal((3, 4, 3)), requires_grad=True)])


def test_partial_gradients_only_bias_or_only_weight(rng):
    """Frozen input (and weight): gradients of what requires grad are still exact."""
    x_np = rng.standard_normal((3, 4, 5))
    dy = rng.standard_normal(x_np.shape)
    xhat = reference("group_norm", x_np, None, None, 1e-5, groups=2)
    w, b = fc.tensor(rng.standard_normal(4)), fc.tensor(rng.standard_normal(4), requires_grad=True)
    F.group_norm(fc.tensor(x_np), 2, w, b).backward(dy)
    np.testing.assert_allclose(b.grad.numpy(), dy.sum(axis=(0, 2)), rtol=1e-12)
    w.requires_grad_(True)
    b2 = fc.tensor(rng.standard_normal(4))
    F.group_norm(fc.tensor(x_np), 2, w, b2).backward(dy)
    np.testing.assert_allclose(w.grad.numpy(), (dy * xhat).sum(axis=(0, 2)), rtol=1e-12)
    wl = fc.tensor(rng.standard_normal(5), requires_grad=True)
    F.layer_norm(fc.tensor(x_np), 5, wl).backward(dy)
    xhat_l = reference("layer_norm", x_np, None, None, 1e-5, k=1)
    np.testing.assert_allclose(wl.grad.numpy(), (dy * xhat_l).sum(axis=(0, 1)), rtol=1e-12)


# ---- numerical stability ---------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_float32_mean_1e4_std_1e_2_matches_float64(op, rng):
    x32 = (1e4 + 1e-2 * rng.standard_normal((4, 6, 20, 20))).astype(np.float32)
    x64 = x32.astype(np.float64)  # the same numbers: the reference normalizes exactly these
    kw = {"groups": 3} if op == "group_norm" else {"k": 3} if op == "layer_norm" else {}
    x = fc.tensor(x32, requires_grad=True)
    y = call(op, x, None, None, 1e-8, **kw)
    ref = reference(op, x64, None, None, 1e-8, **kw)
    assert np.abs(ref).max() > 1  # really normalized to unit scale, not collapsed
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=2e-5)
    dy = rng.standard_normal(x32.shape).astype(np.float32)
    y.backward(dy)
    dx_ref = input_grad_reference(op, x64, None, dy.astype(np.float64), 1e-8, **kw)
    scale = np.abs(dx_ref).max()
    np.testing.assert_allclose(x.grad.numpy(), dx_ref, rtol=0, atol=1e-5 * scale)


def test_running_variance_stable_at_large_mean(rng):
    x32 = (1e4 + 1e-2 * rng.standard_normal((64, 3, 8, 8))).astype(np.float32)
    rm, rv = fc.zeros(3), fc.ones(3)
    F.batch_norm(fc.tensor(x32), rm, rv, training=True, momentum=1.0)
    x64 = x32.astype(np.float64)
    np.testing.assert_allclose(rv.numpy(), x64.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
    np.testing.assert_allclose(rm.numpy(), x64.mean(axis=(0, 2, 3)), rtol=1e-7)


# ---- running statistics, modes, batch of one -------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_running_stats_use_unbiased_variance(dtype, rng):
    x_np = rng.standard_normal((5, 3, 4)).astype(dtype) * 2 + 1
    rm0, rv0 = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    rm, rv = fc.tensor(rm0.copy()), fc.tensor(rv0.copy())
    with fc.no_grad():  # running statistics are updated whatever the grad mode
        F.batch_norm(fc.tensor(x_np), rm, rv, training=True, momentum=0.3)
    x64 = x_np.astype(np.float64)
    np.testing.assert_allclose(rm.numpy(), 0.7 * rm0 + 0.3 * x64.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(rv.numpy(), 0.7 * rv0 + 0.3 * x64.var(axis=(0, 2), ddof=1), rtol=1e-6)
    assert rm.dtype == dtype
    # eval uses them: y = (x - rm)/sqrt(rv + eps)
    y = F.batch_norm(fc.tensor(x_np), rm, rv, training=False)
    expect = (x64 - rm.numpy()[None, :, None]) / np.sqrt(rv.numpy()[None, :, None].astype(np.float64) + 1e-5)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-5, atol=1e-6)


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval(rng):
    x_np = rng.standard_normal((4, 3, 5))
    y = F.batch_norm(fc.tensor(x_np), None, None, training=False)
    np.testing.assert_allclose(y.numpy(), normalize_ref(x_np, (0, 2), 1e-5), rtol=1e-10)


def test_instance_norm_running_stats(rng):
    x_np = rng.standard_normal((4, 3, 5, 2))
    rm, rv = fc.zeros(3, dtype=np.float64), fc.ones(3, dtype=np.float64)
    F.instance_norm(fc.tensor(x_np), rm, rv, momentum=0.5)
    np.testing.assert_allclose(rm.numpy(), 0.5 * x_np.mean(axis=(2, 3)).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.5 + 0.5 * x_np.var(axis=(2, 3), ddof=1).mean(axis=0), rtol=1e-12)
    y = F.instance_norm(fc.tensor(x_np), rm, rv, use_input_stats=False)
    expect = (x_np - rm.numpy()[:, None, None]) / np.sqrt(rv.numpy()[:, None, None] + 1e-5)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-12)


def test_batch_of_one(rng):
    with pytest.raises(ValueError, match="batch_norm: Expected more than 1 value per channel when training"):
        F.batch_norm(fc.tensor(rng.standard_normal((1, 4))), fc.zeros(4), fc.ones(4), training=True)
    with pytest.raises(ValueError, match="instance_norm: Expected more than 1 spatial element"):
        F.instance_norm(fc.tensor(rng.standard_normal((2, 4, 1))))
    x_np = rng.standard_normal((1, 4, 3, 3))
    np.testing.assert_allclose(F.batch_norm(fc.tensor(x_np), None, None, training=True).numpy(),
                               normalize_ref(x_np, (0, 2, 3), 1e-5), rtol=1e-10)
    np.testing.assert_allclose(F.group_norm(fc.tensor(x_np), 2).numpy(),
                               normalize_ref(x_np.reshape(1, 2, -1), (2,), 1e-5).reshape(x_np.shape), rtol=1e-10)
    # eval mode with one value per channel is fine (running statistics)
    y = F.batch_norm(fc.tensor(rng.standard_normal((1, 4))), fc.zeros(4), fc.ones(4), training=False)
    assert y.shape == (1, 4)


# ---- PyTorch cross-check ---------------------------------------------------------------------

TORCH_CASES = [
    ("batch_norm", (4, 6, 5, 3), (6,)),
    ("batch_norm", (7, 6), (6,)),
    ("batch_norm", (3, 6, 8), (6,)),
    ("instance_norm", (3, 6, 5, 4), (6,)),
    ("group_norm", (3, 6, 5, 4), (6,)),
    ("layer_norm", (3, 6, 5, 4), (5, 4)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,shape,pshape", TORCH_CASES)
def test_matches_torch(op, shape, pshape, dtype, torch, rng):
    tf = torch.nn.functional
    x_np = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w_np, b_np = rng.standard_normal(pshape).astype(dtype), rng.standard_normal(pshape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm_np, rv_np = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2, shape[1]).astype(dtype)
    x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    rm, rv = fc.tensor(rm_np.copy()), fc.tensor(rv_np.copy())
    trm, trv = torch.tensor(rm_np.copy()), torch.tensor(rv_np.copy())
    if op == "batch_norm":
        y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-4)
        ty = tf.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.2, eps=1e-4)
    elif op == "instance_norm":
        y = F.instance_norm(x, rm, rv, w, b, momentum=0.2)
        ty = tf.instance_norm(tx, trm, trv, tw, tb, momentum=0.2)
    elif op == "group_norm":
        y, ty = F.group_norm(x, 3, w, b), tf.group_norm(tx, 3, tw, tb)
    else:
        y, ty = F.layer_norm(x, pshape, w, b), tf.layer_norm(tx, pshape, tw, tb)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), **tol)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), **tol)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), **tol)


def test_eval_mode_matches_torch(torch, rng):
    x_np = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    w_np, b_np = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    rm_np, rv_np = rng.standard_normal(5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32)
    x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    y = F.batch_norm(x, fc.tensor(rm_np), fc.tensor(rv_np), w, b, training=False)
    ty = torch.nn.functional.batch_norm(tx, torch.tensor(rm_np), torch.tensor(rv_np), tw, tb, training=False)
    dy = rng.standard_normal(x_np.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for mine, theirs in ((y, ty), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
        np.testing.assert_allclose(mine.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


# ---- saved bytes -----------------------------------------------------------------------------

SAVED_CASES = [
    (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (4, 3, 5), (3,)),
    (lambda x, w, b: F.batch_norm(x, fc.zeros(3), fc.ones(3), w, b, training=False), (4, 3, 5), (3,)),
    (lambda x, w, b: F.layer_norm(x, (3, 5), w, b), (4, 3, 5), (3, 5)),
    (lambda x, w, b: F.instance_norm(x, weight=w, bias=b), (4, 3, 5), (3,)),
    (lambda x, w, b: F.group_norm(x, 3, w, b), (4, 6, 5), (6,)),
]


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, False),
                                   (False, False, True), (True, True, False)])
@pytest.mark.parametrize("case", range(len(SAVED_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saved_bytes_equals_saved_nbytes(case, needs, dtype, monkeypatch, rng):
    fn, shape, pshape = SAVED_CASES[case]
    calls = []
    original = Normalize.apply.__func__

    def recording_apply(cls, *args, **kwargs):
        calls.append((args, kwargs))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Normalize, "apply", classmethod(recording_apply))
    x = fc.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=needs[0])
    w = fc.tensor(rng.standard_normal(pshape).astype(dtype), requires_grad=needs[1])
    b = fc.tensor(rng.standard_normal(pshape).astype(dtype), requires_grad=needs[2])
    out = fn(x, w, b)
    (args, kwargs), = calls
    shapes = tuple(None if a is None else a.shape for a in args)
    declared = Normalize.saved_bytes(shapes, dtype, needs, **kwargs)
    assert declared == out.grad_fn.saved_nbytes
    assert declared > 0 or needs == (False, False, True)


# ---- bad input -------------------------------------------------------------------------------

def test_errors_name_the_op(rng):
    x = fc.tensor(rng.standard_normal((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"batch_norm: expected 2-D or 3-D or 4-D or 5-D \(N, C, \*\) input"):
        F.batch_norm(fc.tensor(rng.standard_normal(4)), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: expected running_mean of shape \(4,\) for input with 4 "
                                         r"channels, got \(3,\)"):
        F.batch_norm(x, fc.zeros(3, dtype=np.float64), fc.ones(4, dtype=np.float64))
    with pytest.raises(ValueError, match=r"batch_norm: expected weight of shape \(4,\)"):
        F.batch_norm(x, None, None, fc.ones(5, dtype=np.float64), training=True)
    with pytest.raises(ValueError, match="batch_norm: expected running_mean and running_var both"):
        F.batch_norm(x, fc.zeros(4, dtype=np.float64), None)
    with pytest.raises(TypeError, match="batch_norm: momentum=None"):
        F.batch_norm(x, None, None, training=True, momentum=None)
    with pytest.raises(TypeError, match="batch_norm: expected input of dtype float32 or float64, got int64"):
        F.batch_norm(fc.tensor(np.ones((2, 3), dtype=np.int64)), None, None, training=True)
    with pytest.raises(TypeError, match="layer_norm: expected input of dtype float32 or float64, got float16"):
        F.layer_norm(np.ones((2, 3), dtype=np.float16), 3)
    with pytest.raises(TypeError, match="group_norm: expected input of dtype float32 like weight, got float64"):
        F.group_norm(x, 2, fc.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"group_norm: expected num_groups >= 1 dividing the 4 channels"):
        F.group_norm(x, 3)
    with pytest.raises(ValueError, match="group_norm: expected num_groups >= 1"):
        F.group_norm(x, 0)
    with pytest.raises(ValueError, match=r"layer_norm: expected input with trailing shape \(4, 4\)"):
        F.layer_norm(x, (4, 4))
    with pytest.raises(ValueError, match=r"layer_norm: expected weight of shape \(3, 3\) for normalized_shape"):
        F.layer_norm(x, (3, 3), fc.ones(3, dtype=np.float64))
    with pytest.raises(ValueError, match=r"instance_norm: expected 3-D or 4-D or 5-D"):
        F.instance_norm(fc.tensor(rng.standard_normal((2, 4))))
    with pytest.raises(ValueError, match="instance_norm: expected running_mean and running_var when "
                                         "use_input_stats=False"):
        F.instance_norm(x, use_input_stats=False)
    with pytest.raises(TypeError, match="layer_norm: expected normalized_shape as an int or a sequence of ints"):
        F.layer_norm(x, (3.0,))
    with pytest.raises(ValueError, match="layer_norm: expected eps as a finite float >= 0"):
        F.layer_norm(x, (3,), eps=-1.0)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_fused_and_tiled_paths_agree_with_reference(cache_bytes, monkeypatch, rng):
    """Groups that fit in cache take the fused one-read kernels; others the tiled ones: both exact."""
    from fastconv.nn.functional import normalization

    monkeypatch.setattr(normalization, "_GROUP_CACHE_BYTES", cache_bytes)
    x_np = rng.standard_normal((4, 6, 7, 5)) * 2 + 3
    w_np, b_np = rng.standard_normal(6), rng.standard_normal(6)
    dy = rng.standard_normal(x_np.shape)
    for op, kw in [("group_norm", {"groups": 3}), ("instance_norm", {}), ("layer_norm", {"k": 2})]:
        affine_shape = x_np.shape[2:] if op == "layer_norm" else (6,)
        w_a = rng.standard_normal(affine_shape) if op == "layer_norm" else w_np
        b_a = rng.standard_normal(affine_shape) if op == "layer_norm" else b_np
        x, w, b = (fc.tensor(a, requires_grad=True) for a in (x_np, w_a, b_a))
        y = call(op, x, w, b, 1e-5, **kw)
        np.testing.assert_allclose(y.numpy(), reference(op, x_np, w_a if op == "layer_norm" else w_np,
                                                        b_a if op == "layer_norm" else b_np, 1e-5, **kw),
                                   rtol=1e-10, atol=1e-10)
        y.backward(dy)
        np.testing.assert_allclose(x.grad.numpy(), input_grad_reference(op, x_np, w_a, dy, 1e-5, **kw),
                                   rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("band_bytes", [2 * 2 * 60 * 8, 3 * 2 * 60 * 8, 1 << 30])
def test_layer_norm_row_bands_match_reference(band_bytes, threads, monkeypatch, rng):
    """Layer norm's banded backward (rows in cache, per-thread column sums): bands of 2, 3 and
    64 rows, an odd number of rows per thread, more rows than one flush of the column sums,
    frozen or absent affine parameters; float64 reference and gradcheck."""
    from fastconv.nn.functional import normalization

    monkeypatch.setattr(normalization, "_BAND_CACHE_BYTES", band_bytes)
    calls = []
    kernel = normalization._norm.backward_rows
    monkeypatch.setattr(normalization._norm, "backward_rows", lambda *a: calls.append(a[6]) or kernel(*a))
    before = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        for shape, k in [((7, 3, 4, 5), 3), ((2, 150, 6, 10), 2)]:
            x_np = rng.standard_normal(shape) * 2 + 3
            pshape = shape[len(shape) - k:]
            dy = rng.standard_normal(shape)
            for with_w, with_b, grad_w in [(True, True, True), (True, True, False), (False, True, True),
                                           (False, False, False)]:
                w_np = rng.standard_normal(pshape) if with_w else None
                b_np = rng.standard_normal(pshape) if with_b else None
                for dtype, tol in [(np.float64, 1e-9), (np.float32, 2e-4)]:
                    x = fc.tensor(x_np.astype(dtype), requires_grad=True)
                    w = None if w_np is None else fc.tensor(w_np.astype(dtype), requires_grad=grad_w)
                    b = None if b_np is None else fc.tensor(b_np.astype(dtype), requires_grad=grad_w)
                    y = call("layer_norm", x, w, b, 1e-5, k=k)
                    y.backward(dy.astype(dtype))
                    x64 = x_np.astype(dtype).astype(np.float64)
                    np.testing.assert_allclose(x.grad.numpy(), input_grad_reference(
                        "layer_norm", x64, None if w is None else w.numpy().astype(np.float64), dy, 1e-5, k=k),
                        rtol=tol, atol=tol)
                    xhat = reference("layer_norm", x64, None, None, 1e-5, k=k)
                    axes = tuple(range(len(shape) - k))
                    if w is not None and grad_w:
                        np.testing.assert_allclose(w.grad.numpy(), (dy * xhat).sum(axis=axes), rtol=tol, atol=tol)
                    if b is not None and grad_w:
                        np.testing.assert_allclose(b.grad.numpy(), dy.sum(axis=axes), rtol=tol, atol=tol)
        xs = fc.tensor(rng.standard_normal((2, 5, 3, 4)), requires_grad=True)
        ws, bs = (fc.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(2))
        assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), [xs, ws, bs])
    finally:
        fc.set_num_threads(before)
    expected = min(band_bytes // (2 * 60 * 8), 64)
    assert calls and expected in calls


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_memory_profiler_accepts_the_declarations(mode):
    """The profiler traces two batch sizes, scales the options and checks saved_bytes against the tape."""
    nn = fc.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GroupNorm(2, 8),
                          nn.InstanceNorm2d(8, affine=True, track_running_stats=True), nn.LayerNorm((8, 6, 6)))
    summary = fc.profile.memory_summary(model, (3, 6, 6), batch_size=16, mode=mode)
    assert "BatchNorm2d" in str(summary)
