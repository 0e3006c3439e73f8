"""Losses against torch (forward and grads), numpy formulas, gradcheck, stability and validation."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastconv as fc
from fastconv.nn.functional import loss as L

F = fc.nn.functional
# the torch fixture is a module handle with no per-example state
_torch_ok = settings(suppress_health_check=list(settings.default.suppress_health_check)
                     + [HealthCheck.function_scoped_fixture])


def _torch_grads(torch, fn, arrays, cotangent):
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(cotangent))
    return out.detach().numpy(), [t.grad.numpy() if t.grad is not None else None for t in ts]


@st.composite
def class_problems(draw):
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 5))
    spatial = draw(st.sampled_from([(), (3,), (2, 3)]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + spatial) * 3
    t = rng.integers(0, c, (n,) + spatial)
    if draw(st.booleans()):
        t[rng.random(t.shape) < 0.3] = -100
    weight = rng.random(c) + 0.1 if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return x, t, weight, reduction, rng


@_torch_ok
@given(class_problems(), st.sampled_from([0.0, 0.25]))
def test_cross_entropy_matches_torch(torch, problem, label_smoothing):
    x, t, weight, reduction, rng = problem
    a = fc.tensor(x, requires_grad=True)
    out = F.cross_entropy(a, t, weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    assert out.grad_fn.saved_nbytes == L.CrossEntropy.saved_bytes(
        (x.shape, t.shape), x.dtype, (True, False), weight=weight)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    w = None if weight is None else torch.tensor(weight)
    ref, (gx, _) = _torch_grads(torch, lambda xx, tt: torch.nn.functional.cross_entropy(
        xx, tt, weight=w, reduction=reduction, label_smoothing=label_smoothing), [x, t], g)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-10, atol=1e-12)


@_torch_ok
@given(class_problems())
def test_nll_loss_matches_torch(torch, problem):
    x, t, weight, reduction, rng = problem
    a = fc.tensor(x, requires_grad=True)
    out = F.nll_loss(a, t, weight=weight, reduction=reduction)
    assert out.grad_fn.saved_nbytes == L.NLLLoss.saved_bytes((x.shape, t.shape), x.dtype, (True, False),
                                                             weight=weight)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    w = None if weight is None else torch.tensor(weight)
    ref, (gx, _) = _torch_grads(torch, lambda xx, tt: torch.nn.functional.nll_loss(
        xx, tt, weight=w, reduction=reduction), [x, t], g)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2), (5,)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_weight", [False, True])
def test_cross_entropy_probability_targets_match_torch(torch, rng, shape, label_smoothing, with_weight):
    x = rng.standard_normal(shape)
    classes = shape[0] if len(shape) == 1 else shape[1]
    p = rng.random(shape)
    p /= p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    weight = rng.random(classes) + 0.5 if with_weight else None
    a = fc.tensor(x, requires_grad=True)
    tp = fc.tensor(p, requires_grad=True)
    out = F.cross_entropy(a, tp, weight=weight, label_smoothing=label_smoothing)
    assert out.grad_fn.saved_nbytes == L.CrossEntropy.saved_bytes(
        (x.shape, p.shape), x.dtype, (True, True), weight=weight)
    out.backward()
    w = None if weight is None else torch.tensor(weight)
    ref, (gx, gp) = _torch_grads(torch, lambda xx, pp: torch.nn.functional.cross_entropy(
        xx, pp, weight=w, label_smoothing=label_smoothing), [x, p], np.array(1.0))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tp.grad.numpy(), gp, rtol=1e-10, atol=1e-12)


def test_cross_entropy_numpy_formula_and_unbatched(rng):
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    expected = -logp[np.arange(6), t].mean()
    np.testing.assert_allclose(F.cross_entropy(fc.tensor(x), t).item(), expected, rtol=1e-12)
    # unbatched (C,) logits with a scalar target, target also given as a Tensor
    single = F.cross_entropy(fc.tensor(x[2]), fc.tensor(np.int64(t[2])), reduction="none")
    assert single.shape == ()
    np.testing.assert_allclose(single.item(), -logp[2, t[2]], rtol=1e-12)


def test_cross_entropy_dense_fcn_targets_equal_per_pixel_rows(rng):
    """(N,C,H,W) logits with (N,H,W) targets equal the loss over the flattened pixels."""
    x = rng.standard_normal((2, 5, 3, 4))
    t = rng.integers(0, 5, (2, 3, 4))
    rows = np.moveaxis(x, 1, -1).reshape(-1, 5)
    dense = F.cross_entropy(fc.tensor(x), t, reduction="none")
    assert dense.shape == (2, 3, 4)
    flat = F.cross_entropy(fc.tensor(rows), t.reshape(-1), reduction="none")
    np.testing.assert_allclose(dense.numpy().reshape(-1), flat.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(5, 4), (1, 10), (2, 4, 3, 2), (4,)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_plain_indices_path_equals_the_weighted_path(rng, shape, reduction):
    """Class indices without weight, smoothing or ignored rows take a shortcut; a weight of ones
    takes the general path: loss and gradient agree bit for bit (float32)."""
    x = rng.standard_normal(shape).astype(np.float32)
    t = rng.integers(0, shape[0] if len(shape) == 1 else shape[1], () if len(shape) == 1 else (shape[0],) + shape[2:])
    results = []
    for weight in (None, np.ones(x.shape[0] if x.ndim == 1 else x.shape[1], dtype=np.float32)):
        a = fc.tensor(x, requires_grad=True)
        out = F.cross_entropy(a, t, weight=weight, reduction=reduction)
        out.backward(np.linspace(0.5, 2.0, out.numpy().size).astype(np.float32).reshape(out.shape))
        results.append((out.numpy(), a.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][1].dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_at_large_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    a = fc.tensor(x, requires_grad=True)
    out = F.cross_entropy(a, np.array([1, 0]), reduction="none")
    assert out.dtype == dtype
    # row 0: log-sum-exp is 1e4, the target logit -1e4; row 1: lse = 1e4 + log 2, target -1e4
    np.testing.assert_allclose(out.numpy(), [2e4, 2e4 + np.log(2)], rtol=1e-6)
    out.sum().backward()
    expected = np.array([[1.0, -1.0, 0.0], [-1.0, 0.5, 0.5]])
    np.testing.assert_allclose(a.grad.numpy(), expected, atol=1e-6)
    assert np.isfinite(a.grad.numpy()).all()


@pytest.mark.parametrize("name,kwargs", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}),
                                         ("nll_loss", {})])
def test_all_targets_ignored_mean_like_torch(torch, name, kwargs):
    """Mean over zero kept targets is nan; the ignored rows still get a zero gradient."""
    x = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    t = np.array([-100, -100])
    a = fc.tensor(x, requires_grad=True)
    ours = getattr(F, name)(a, t, **kwargs)
    ours.backward()
    ref, (gx, _) = _torch_grads(torch, lambda xx, tt: getattr(torch.nn.functional, name)(xx, tt, **kwargs),
                                [x, t], np.array(1.0))
    assert np.isnan(ours.item()) and np.isnan(ref)
    np.testing.assert_array_equal(a.grad.numpy(), gx)


def test_cross_entropy_float32_keeps_dtype_and_custom_ignore_index(torch, rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    t = np.array([0, 2, 7, 1, 7])
    out = F.cross_entropy(fc.tensor(x), t, ignore_index=7)
    assert out.dtype == np.float32
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=7)
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-6)


def test_cross_entropy_gradcheck(rng):
    x = fc.tensor(rng.standard_normal((3, 4, 2)), requires_grad=True)
    t = np.array([[0, 3], [-100, 1], [2, 2]])
    w = rng.random(4) + 0.5
    assert fc.autograd.gradcheck(lambda a: F.cross_entropy(a, t, weight=w, label_smoothing=0.2), [x])
    p = rng.random((3, 4))
    probs = fc.tensor(p / p.sum(1, keepdims=True), requires_grad=True)
    logits = fc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert fc.autograd.gradcheck(lambda a, b: F.cross_entropy(a, b, reduction="none"), [logits, probs])


def test_nll_loss_gradcheck(rng):
    x = fc.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    assert fc.autograd.gradcheck(lambda a: F.nll_loss(a, np.array([0, 2, -100, 1]), weight=[1.0, 2.0, 3.0]), [x])


# ---- elementwise losses -------------------------------------------------------------------------
_PAIRWISE = [
    ("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {"delta": 0.7}),
]


@pytest.mark.parametrize("name,kwargs", _PAIRWISE)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pairwise_losses_match_torch(torch, rng, name, kwargs, reduction):
    x = rng.standard_normal((3, 4, 2))
    y = rng.standard_normal((3, 4, 2))
    a = fc.tensor(x, requires_grad=True)
    b = fc.tensor(y, requires_grad=True)
    out = getattr(F, name)(a, b, reduction=reduction, **kwargs)
    fn_class = out.grad_fn.function
    assert out.grad_fn.saved_nbytes == fn_class.saved_bytes((x.shape, y.shape), x.dtype, (True, True),
                                                            reduction=reduction, **kwargs)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tfn = getattr(torch.nn.functional, name)
    ref, (gx, gy) = _torch_grads(torch, lambda p, q: tfn(p, q, reduction=reduction, **kwargs), [x, y], g)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), gy, rtol=1e-12, atol=1e-14)


def test_mse_numpy_formula_and_float32(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    y = rng.standard_normal((4, 5)).astype(np.float32)
    out = F.mse_loss(fc.tensor(x), y)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.item(), np.mean((x.astype(np.float64) - y) ** 2), rtol=1e-6)


@pytest.mark.parametrize("name,kwargs", _PAIRWISE)
def test_pairwise_losses_gradcheck(rng, name, kwargs):
    # values kept away from the kinks at |d| = beta/delta and 0
    x = fc.tensor(rng.choice([-1, 1], (3, 4)) * rng.uniform(0.05, 2.0, (3, 4)), requires_grad=True)
    y = fc.tensor(np.zeros((3, 4)), requires_grad=True)
    assert fc.autograd.gradcheck(lambda a, b: getattr(F, name)(a, b, **kwargs), [x, y], eps=1e-7)


# ---- binary cross entropy -----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight,with_pos", [(False, False), (True, False), (False, True), (True, True)])
def test_bce_with_logits_matches_torch(torch, rng, reduction, with_weight, with_pos):
    x = rng.standard_normal((4, 3)) * 4
    t = rng.random((4, 3))
    weight = rng.random((4, 1)) + 0.5 if with_weight else None
    pos = rng.random(3) * 3 + 0.1 if with_pos else None
    a = fc.tensor(x, requires_grad=True)
    b = fc.tensor(t, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(a, b, weight=weight, reduction=reduction, pos_weight=pos)
    assert out.grad_fn.saved_nbytes == L.BinaryCrossEntropyWithLogits.saved_bytes(
        (x.shape, t.shape), x.dtype, (True, True), weight=weight, pos_weight=pos, reduction=reduction)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tw = None if weight is None else torch.tensor(weight)
    tp = None if pos is None else torch.tensor(pos)
    ref, (gx, gt) = _torch_grads(torch, lambda p, q: torch.nn.functional.binary_cross_entropy_with_logits(
        p, q, weight=tw, reduction=reduction, pos_weight=tp), [x, t], g)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), gt, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_stable_at_large_logits(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    a = fc.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(a, t, reduction="none")
    np.testing.assert_allclose(out.numpy(), [0.0, 0.0, 1e4, 1e4], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.0, 0.0, 1.0, -1.0], atol=1e-6)


@pytest.mark.parametrize("with_weight", [False, True])
def test_bce_matches_torch(torch, rng, with_weight):
    x = rng.uniform(0.02, 0.98, (5, 2))
    x[0, 0] = 0.0  # log clamp at -100 like PyTorch
    t = rng.random((5, 2))
    weight = rng.random((5, 2)) + 0.5 if with_weight else None
    a = fc.tensor(x, requires_grad=True)
    b = fc.tensor(t, requires_grad=True)
    out = F.binary_cross_entropy(a, b, weight=weight, reduction="sum")
    assert out.grad_fn.saved_nbytes == L.BinaryCrossEntropy.saved_bytes(
        (x.shape, t.shape), x.dtype, (True, True), weight=weight, reduction="sum")
    out.backward()
    tw = None if weight is None else torch.tensor(weight)
    ref, (gx, gt) = _torch_grads(torch, lambda p, q: torch.nn.functional.binary_cross_entropy(
        p, q, weight=tw, reduction="sum"), [x, t], np.array(1.0))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(a.grad.numpy(), gx, rtol=1e-8)
    # torch differentiates the unclamped log there (inf); the clamped loss −(t·(−100) + (1−t)·log 1)
    # has slope 100 in t, times the weight
    w00 = 1.0 if weight is None else weight[0, 0]
    assert np.isinf(gt[0, 0]) and b.grad.numpy()[0, 0] == pytest.approx(100 * w00)
    np.testing.assert_allclose(b.grad.numpy().reshape(-1)[1:], gt.reshape(-1)[1:], rtol=1e-10)


def test_bce_gradchecks(rng):
    x = fc.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    t = fc.tensor(rng.random((3, 4)), requires_grad=True)
    pos = rng.random(4) + 0.5
    weight = rng.random((3, 1)) + 0.5
    assert fc.autograd.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=weight), [x, t])
    assert fc.autograd.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=pos), [x, t])
    p = fc.tensor(rng.uniform(0.1, 0.9, (3, 4)), requires_grad=True)
    assert fc.autograd.gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"), [p, t])


def test_no_saved_arrays_without_grad(rng):
    x = rng.standard_normal((4, 3))
    out = F.cross_entropy(fc.tensor(x), np.array([0, 1, 2, 0]))
    assert out.grad_fn is None
    assert L.CrossEntropy.saved_bytes((x.shape, (4,)), x.dtype, (False, False)) == 0


# ---- validation ---------------------------------------------------------------------------------
def test_cross_entropy_rejects_bad_targets():
    x = fc.tensor(np.zeros((8, 10)))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(8,\) for input of shape "
                                         r"\(8, 10\), got \(8, 1\)"):
        F.cross_entropy(x, np.zeros((8, 1), dtype=np.int64))
    with pytest.raises(TypeError, match="cross_entropy: expected integer class indices.*float32"):
        F.cross_entropy(x, np.zeros(8, dtype=np.float32))
    with pytest.raises(TypeError, match="cross_entropy.*bool"):
        F.cross_entropy(x, np.zeros(8, dtype=bool))
    bad = np.zeros(8, dtype=np.int64)
    bad[3] = 10
    with pytest.raises(ValueError, match=r"cross_entropy: target value 10 is out of range for 10 classes"):
        F.cross_entropy(x, bad)
    bad[3] = -1
    with pytest.raises(ValueError, match=r"target value -1 is out of range"):
        F.cross_entropy(x, bad)
    with pytest.raises(ValueError, match=r"nll_loss: target value 12"):
        F.nll_loss(x, np.full(8, 12))


def test_cross_entropy_rejects_bad_arguments():
    x = fc.tensor(np.zeros((4, 3)))
    t = np.zeros(4, dtype=np.int64)
    with pytest.raises(TypeError, match="cross_entropy: expected input of dtype float32 or float64, got int64"):
        F.cross_entropy(np.zeros((4, 3), dtype=np.int64), t)
    with pytest.raises(ValueError, match=r"cross_entropy: expected weight of shape \(3,\).*got \(4,\)"):
        F.cross_entropy(x, t, weight=np.ones(4))
    with pytest.raises(ValueError, match="cross_entropy: expected reduction 'none', 'mean' or 'sum', got 'avg'"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing in \\[0, 1\\], got 1.5"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="cross_entropy: expected input of shape"):
        F.cross_entropy(fc.tensor(np.float64(1.0)), np.int64(0))


def test_pairwise_losses_reject_mismatches():
    with pytest.raises(ValueError, match=r"mse_loss: expected target of the input's shape \(4, 1\), got \(4,\)"):
        F.mse_loss(fc.tensor(np.zeros((4, 1))), np.zeros(4))
    with pytest.raises(TypeError, match="l1_loss: expected target of dtype float32 or float64, got int64"):
        F.l1_loss(fc.tensor(np.zeros(4)), np.zeros(4, dtype=np.int64))
    with pytest.raises(TypeError, match="mse_loss: expected target of dtype float64 like input, got float32"):
        F.mse_loss(fc.tensor(np.zeros(4)), np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: expected input values in \[0, 1\].*1.5"):
        F.binary_cross_entropy(fc.tensor(np.array([0.5, 1.5])), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"pos_weight broadcastable to the input's shape \(2, 3\), got \(2,\)"):
        F.binary_cross_entropy_with_logits(fc.tensor(np.zeros((2, 3))), np.zeros((2, 3)), pos_weight=np.ones(2))
