"""linear against an explicit-sum numpy reference, finite differences and PyTorch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv.autograd import gradcheck
from fastconv.nn.functional.linear import LinearFunction


def ref_linear(x, w, b):
    """y[..., o] = Σ_i x[..., i]·w[o, i] + b[o], written as a broadcast sum (no matmul)."""
    y = (x[..., None, :] * w).sum(axis=-1)
    return y if b is None else y + b


@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    in_features=st.integers(1, 6),
    out_features=st.integers(1, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
    bias=st.booleans(),
    transposed=st.booleans(),
)
def test_linear_matches_reference(lead, in_features, out_features, dtype, bias, transposed):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(tuple(lead) + (in_features,)).astype(dtype)
    w = (rng.standard_normal((in_features, out_features)).astype(dtype).T if transposed
         else rng.standard_normal((out_features, in_features)).astype(dtype))  # non-contiguous weight
    b = rng.standard_normal(out_features).astype(dtype) if bias else None
    X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    B = fc.tensor(b, requires_grad=True) if bias else None
    y = F.linear(X, W, B)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.shape == x.shape[:-1] + (out_features,) and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ref_linear(x.astype(np.float64), w, b), **tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(dy)
    dy2 = dy.reshape(-1, out_features).astype(np.float64)
    x2 = x.reshape(-1, in_features).astype(np.float64)
    np.testing.assert_allclose(X.grad.numpy(), (dy[..., :, None] * w).sum(axis=-2), **tol)
    np.testing.assert_allclose(W.grad.numpy(), (dy2[:, :, None] * x2[:, None, :]).sum(axis=0), **tol)
    if bias:
        np.testing.assert_allclose(B.grad.numpy(), dy2.sum(axis=0), **tol)


def test_linear_gradcheck(rng):
    x = fc.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((5, 4)), requires_grad=True)
    b = fc.tensor(rng.standard_normal(5), requires_grad=True)
    assert gradcheck(F.linear, (x, w, b))


def test_linear_matches_torch(torch, rng):
    x = rng.standard_normal((7, 3, 10)).astype(np.float32)
    w = rng.standard_normal((4, 10)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    X, W, B = (fc.tensor(a, requires_grad=True) for a in (x, w, b))
    TX, TW, TB = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.linear(X, W, B)
    ty = torch.nn.functional.linear(TX, TW, TB)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((X, TX), (W, TW), (B, TB)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_linear_saved_bytes_declaration(rng, needs):
    x = fc.tensor(rng.standard_normal((6, 8)).astype(np.float32), requires_grad=needs[0])
    w = fc.tensor(rng.standard_normal((3, 8)).astype(np.float32), requires_grad=needs[1])
    b = fc.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=needs[2])
    y = F.linear(x, w, b)
    assert LinearFunction.saved_bytes((x.shape, w.shape, b.shape), np.float32, needs) == y.grad_fn.saved_nbytes


def test_linear_frozen_weight_keeps_no_input(rng):
    x = fc.tensor(rng.standard_normal((6, 8)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((3, 8)))
    y = F.linear(x, w)
    assert y.grad_fn.saved_nbytes == w.numpy().nbytes
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.tile(w.numpy().sum(axis=0), (6, 1)), rtol=1e-12)


def _t(*shape, dtype=np.float32):
    return fc.tensor(np.ones(shape, dtype=dtype))


@pytest.mark.parametrize("call, error, words", [
    (lambda: F.linear(_t(2, 3), _t(4, 5)), ValueError, "5 features"),
    (lambda: F.linear(_t(2, 3), _t(4, 3, 1)), ValueError, "weight"),
    (lambda: F.linear(fc.tensor(np.float32(1.0)), _t(4, 1)), ValueError, "0-D"),
    (lambda: F.linear(_t(2, 3), _t(4, 3), _t(3)), ValueError, "bias"),
    (lambda: F.linear(_t(2, 3, dtype=np.int32), _t(4, 3)), TypeError, "int32"),
    (lambda: F.linear(np.ones((2, 3), np.float16), _t(4, 3)), TypeError, "float16"),
    (lambda: F.linear(_t(2, 3), _t(4, 3, dtype=np.float64)), TypeError, "float32"),
    (lambda: F.linear([[1.0, 2.0]], _t(4, 2)), TypeError, "list"),
])
def test_linear_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith("linear:") and words in str(info.value), str(info.value)
