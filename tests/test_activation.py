"""Activations: numpy references, gradcheck, stability at extreme logits, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastconv as fc
from fastconv.autograd import gradcheck

F = fc.nn.functional
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)


def away_from_zero(shape, seed):
    x = np.random.default_rng(seed).uniform(-3, 3, size=shape)
    x[np.abs(x) < 1e-2] = 0.5
    return fc.tensor(x, requires_grad=True)


REFS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1))),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
}


@pytest.mark.parametrize("name", sorted(REFS))
@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_pointwise(name, shape, seed):
    fn, ref = REFS[name]
    x = away_from_zero(shape, seed)
    np.testing.assert_allclose(fn(x).numpy(), ref(x.numpy()), rtol=1e-12, atol=1e-15)
    assert gradcheck(fn, [x])


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@given(shape=shapes, seed=st.integers(0, 2 ** 16), data=st.data())
def test_softmax_and_log_softmax(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = away_from_zero(shape, seed)
    np.testing.assert_allclose(F.softmax(x, dim=dim).numpy(), softmax_ref(x.numpy(), dim), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, dim=dim).numpy(), np.log(softmax_ref(x.numpy(), dim)),
                               rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda t: F.softmax(t, dim=dim), [x])
    assert gradcheck(lambda t: F.log_softmax(t, dim=dim), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_do_not_overflow(dtype):
    x = fc.tensor(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        ls = F.log_softmax(x, dim=1)
        sm = F.softmax(x, dim=1)
        sg = F.sigmoid(x)
        (ls.sum() + sm.sum() + sg.sum()).backward()
    assert np.isfinite(ls.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(ls.numpy()[0], [0.0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_allclose(ls.numpy()[1], np.log([1 / 3] * 3), rtol=1e-5)
    np.testing.assert_allclose(sg.numpy()[0], [1.0, 0.0, 0.5])


def test_activation_errors_name_the_op():
    with pytest.raises(TypeError, match="relu: expected input of dtype float32 or float64, got int64"):
        F.relu(fc.tensor([1, 2]))
    with pytest.raises(TypeError, match="softmax"):
        F.softmax(fc.tensor(np.ones(3), dtype=np.float16))
    with pytest.raises(ValueError, match="log_softmax: dim 3 out of range"):
        F.log_softmax(fc.ones(2, 3), dim=3)


def test_cross_check_with_torch(torch):
    x = np.random.default_rng(0).standard_normal((4, 6))
    for name, (fn, _) in REFS.items():
        tx = torch.tensor(x, requires_grad=True)
        tref = {"relu": torch.relu, "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.2),
                "elu": lambda t: torch.nn.functional.elu(t, 1.5), "sigmoid": torch.sigmoid,
                "tanh": torch.tanh}[name](tx)
        tref.sum().backward()
        fx = fc.tensor(x, requires_grad=True)
        out = fn(fx)
        out.sum().backward()
        np.testing.assert_allclose(out.numpy(), tref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(fx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
