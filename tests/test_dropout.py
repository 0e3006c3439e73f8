"""Dropout: mask statistics, scaling, seeding, eval identity, gradients, in-place rules, errors."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.autograd import gradcheck

F = fc.nn.functional
D = importlib.import_module("fastconv.nn.functional.dropout")  # F.dropout is the function of that name


def nonzero_input(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1, 1], shape)  # |x| >= 0.5: zero means dropped
    return fc.tensor(x.astype(dtype), requires_grad=True)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_statistics_and_scaling(p, dtype):
    fc.manual_seed(123)
    x = nonzero_input((400, 500), dtype)
    y = F.dropout(x, p).numpy()
    dropped = y == 0
    n = dropped.size
    # fraction dropped within 5 standard deviations of Binomial(n, p)
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    kept = ~dropped
    expected = x.numpy()[kept].astype(np.float64) / (1 - p)
    np.testing.assert_allclose(y[kept], expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert y.dtype == dtype
    # independence: neighbouring elements are not correlated
    a, b = dropped[:, :-1].ravel(), dropped[:, 1:].ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), p=st.floats(0.05, 0.95),
       seed=st.integers(0, 2 ** 16))
def test_dropout_gradient_is_mask_times_scale(shape, p, seed):
    fc.manual_seed(seed)
    x = nonzero_input(tuple(shape), np.float64, seed)
    y = F.dropout(x, p)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(g)
    kept = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, g / (1 - p), 0.0), rtol=1e-14)


def test_seeding_makes_masks_reproducible():
    x = fc.ones(64, 64)
    fc.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    fc.manual_seed(7)
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)  # consecutive calls draw fresh masks
    fc.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(fc.ones(64, 64, dtype=np.float64), 0.5).numpy() != 0, a != 0)


def test_eval_and_p_zero_are_identity_and_p_one_gives_zeros():
    x = nonzero_input((5, 7))
    assert F.dropout(x, 0.7, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout2d(fc.randn(2, 3, 4, 4), 0.5, training=False).shape == (2, 3, 4, 4)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), np.zeros((5, 7)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((5, 7)))
    assert np.isfinite(F.dropout2d(fc.randn(2, 3, 4, 4), 1.0).numpy()).all()


@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_gradcheck_with_fixed_seed(fn):
    x = nonzero_input((2, 4, 3, 3), np.float64)

    def f(t):
        fc.manual_seed(0)  # same mask on every evaluation
        return fn(t, 0.4)

    assert gradcheck(f, [x])


@pytest.mark.parametrize("shape", [(6, 8, 5, 5), (8, 5, 5)])
def test_dropout2d_zeroes_whole_channels(shape):
    fc.manual_seed(3)
    x = nonzero_input(shape)
    y = F.dropout2d(x, 0.5).numpy()
    planes = y.reshape(-1, 25)
    zero = (planes == 0).all(axis=1)
    scaled = np.isclose(planes, x.numpy().reshape(-1, 25) * 2.0, rtol=1e-6).all(axis=1)
    assert (zero | scaled).all()          # each channel is dropped or kept entirely
    assert 0 < zero.sum() < zero.size     # and both happen
    y_t = F.dropout2d(x, 0.5)
    y_t.sum().backward()
    kept = y_t.numpy().reshape(-1, 25)[:, 0] != 0
    np.testing.assert_allclose(x.grad.numpy().reshape(-1, 25), np.where(kept[:, None], 2.0, 0.0) * np.ones(25))


def test_dropout2d_channel_statistics():
    fc.manual_seed(11)
    y = F.dropout2d(fc.ones(200, 100, 2, 2), 0.3).numpy()
    dropped = (y[:, :, 0, 0] == 0)
    assert abs(dropped.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / dropped.size)


def test_saved_bytes_match_saved_arrays():
    x = fc.randn(3, 5, 7, 9, requires_grad=True)
    y = F.dropout(x, 0.3)
    assert y.grad_fn.saved_nbytes == D.Dropout.saved_bytes(((3, 5, 7, 9),), np.float32, (True,), p=0.3,
                                                           inplace=False)
    assert y.grad_fn.saved_nbytes == (3 * 5 * 7 * 9 + 7) // 8  # one bit per element
    z = F.dropout2d(x, 0.3)
    assert z.grad_fn.saved_nbytes == D.Dropout2d.saved_bytes(((3, 5, 7, 9),), np.float32, (True,), p=0.3,
                                                             inplace=False) == 15
    assert D.Dropout.saved_bytes(((3, 5),), np.float32, (False,), p=0.3, inplace=False) == 0


def test_inplace_overwrites_and_keeps_gradients_right():
    fc.manual_seed(5)
    x = nonzero_input((4, 6, 3, 3), np.float64)
    h = x * 3.0                      # non-leaf whose producer saves nothing aliasing h
    buf = h.numpy()
    out = F.dropout(h, 0.5, inplace=True)
    assert out is h and h.numpy() is buf
    kept = h.numpy() != 0
    np.testing.assert_allclose(h.numpy()[kept], x.numpy()[kept] * 6.0)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 6.0, 0.0))
    # without autograd, in place simply rewrites the buffer
    plain = fc.ones(10, 10)
    assert F.dropout(plain, 0.5, inplace=True) is plain
    assert set(np.unique(plain.numpy())) <= {0.0, 2.0}


def test_inplace_refuses_to_corrupt_the_graph():
    x = fc.randn(4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="dropout: a leaf Variable that requires grad is being used in an in-place"):
        F.dropout(x, 0.5, inplace=True)
    s = F.sigmoid(x)                 # sigmoid saves its output for backward
    F.dropout2d(s.reshape(1, 4, 2, 2), 0.5, inplace=True)   # a view of s: allowed, as in PyTorch...
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        s.sum().backward()           # ...but backward refuses the overwritten output
    with fc.no_grad():
        F.dropout(x, 0.5, inplace=True)  # allowed without autograd, as in PyTorch


def test_errors_name_the_op():
    with pytest.raises(ValueError, match=r"dropout: dropout probability has to be between 0 and 1, got p=1.5"):
        F.dropout(fc.ones(3), 1.5)
    with pytest.raises(ValueError, match=r"dropout2d: dropout probability has to be between 0 and 1, got p=-0.1"):
        F.dropout2d(fc.ones(1, 2, 3, 3), -0.1)
    with pytest.raises(TypeError, match=r"dropout: expected p as a float in \[0, 1\], got True"):
        F.dropout(fc.ones(3), True)
    with pytest.raises(TypeError, match=r"dropout: expected input of dtype float32 or float64, got int64"):
        F.dropout(fc.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=r"dropout2d: expected input of dtype float32 or float64, got float16"):
        F.dropout2d(fc.tensor(np.ones((1, 2, 2, 2)), dtype=np.float16))
    with pytest.raises(TypeError, match=r"dropout: expected input of dtype float32 or float64, got int32"):
        F.dropout(np.ones(3, np.int32))
    with pytest.raises(ValueError, match=r"dropout2d: expected 3-D or 4-D .* got input of shape \(4, 5\)"):
        F.dropout2d(fc.ones(4, 5))


def test_matches_torch_semantics(torch):
    x = np.random.default_rng(0).uniform(1, 2, (50, 40)).astype(np.float32)
    for p in (0.25, 0.6):
        ours = F.dropout(fc.tensor(x), p).numpy()
        theirs = torch.nn.functional.dropout(torch.tensor(x), p).numpy()
        # masks differ (different generators), but both scale every kept element by 1/(1-p)
        np.testing.assert_allclose(ours[ours != 0] / x[ours != 0], 1 / (1 - p), rtol=1e-6)
        np.testing.assert_allclose(theirs[theirs != 0] / x[theirs != 0], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_array_equal(F.dropout(fc.tensor(x), 1.0).numpy(),
                                  torch.nn.functional.dropout(torch.tensor(x), 1.0).numpy())
    np.testing.assert_array_equal(F.dropout(fc.tensor(x), 0.3, training=False).numpy(),
                                  torch.nn.functional.dropout(torch.tensor(x), 0.3, training=False).numpy())
    y4 = F.dropout2d(fc.tensor(np.ones((8, 16, 3, 3), np.float32)), 0.5).numpy()
    t4 = torch.nn.functional.dropout2d(torch.ones(8, 16, 3, 3), 0.5).numpy()
    assert set(np.unique(y4)) == set(np.unique(t4)) == {0.0, 2.0}
