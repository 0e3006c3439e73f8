"""Tensor ops: forward equals numpy, gradients pass gradcheck, on hypothesis-generated shapes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastconv as fc
from fastconv.autograd import gradcheck

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def rand_tensor(shape, seed, low=-2.0, high=2.0, requires_grad=True):
    data = np.random.default_rng(seed).uniform(low, high, size=shape)
    return fc.tensor(data, dtype=np.float64, requires_grad=requires_grad)


@st.composite
def broadcastable_pair(draw):
    shape = draw(shapes)
    other = list(shape)
    # drop some leading dims and set some dims to 1 so that numpy broadcasting kicks in
    cut = draw(st.integers(0, len(other)))
    other = other[cut:]
    other = [1 if draw(st.booleans()) else n for n in other]
    if draw(st.booleans()):
        return tuple(shape), tuple(other)
    return tuple(other), tuple(shape)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@given(pair=broadcastable_pair(), seed=st.integers(0, 2 ** 16))
def test_binary_ops_broadcast(op, pair, seed):
    a = rand_tensor(pair[0], seed)
    b = rand_tensor(pair[1], seed + 1, low=0.5, high=2.0)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    np.testing.assert_allclose(fn(a, b).numpy(), fn(a.numpy(), b.numpy()))
    assert gradcheck(fn, [a, b])


@given(shape=shapes, seed=st.integers(0, 2 ** 16), scalar=st.floats(-3, 3))
def test_scalar_operands_and_reflected(shape, seed, scalar):
    a = rand_tensor(shape, seed, low=0.5, high=2.0)
    for fn, ref in [
        (lambda x: scalar - x, lambda x: scalar - x),
        (lambda x: scalar * x + 1.0, lambda x: scalar * x + 1.0),
        (lambda x: 2.0 / x, lambda x: 2.0 / x),
        (lambda x: x ** 3, lambda x: x ** 3),
        (lambda x: 2.0 ** x, lambda x: 2.0 ** x),
        (lambda x: -x, lambda x: -x),
    ]:
        np.testing.assert_allclose(fn(a).numpy(), ref(a.numpy()))
        assert gradcheck(fn, [a])


def test_scalar_keeps_float32():
    a = fc.tensor([1.0, 2.0])
    assert a.dtype == np.float32
    assert (a * 2.5).dtype == np.float32
    assert (1.0 - a).dtype == np.float32


@given(pair=broadcastable_pair(), seed=st.integers(0, 2 ** 16))
def test_pow_tensor_exponent(pair, seed):
    a = rand_tensor(pair[0], seed, low=0.5, high=2.0)
    b = rand_tensor(pair[1], seed + 1, low=-1.5, high=1.5)
    np.testing.assert_allclose((a ** b).numpy(), a.numpy() ** b.numpy())
    assert gradcheck(lambda x, y: x ** y, [a, b])


@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["mm", "mv", "vm", "vv", "batched", "broadcast"]))
    if kind == "mm":
        return (n, k), (k, m)
    if kind == "mv":
        return (n, k), (k,)
    if kind == "vm":
        return (k,), (k, m)
    if kind == "vv":
        return (k,), (k,)
    b = draw(st.integers(1, 3))
    if kind == "batched":
        return (b, n, k), (b, k, m)
    return (b, 1, n, k), (2, k, m)


@given(sh=matmul_shapes(), seed=st.integers(0, 2 ** 16))
def test_matmul(sh, seed):
    a, b = rand_tensor(sh[0], seed), rand_tensor(sh[1], seed + 1)
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    assert gradcheck(lambda x, y: x @ y, [a, b])


def test_matmul_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        fc.ones(2, 3) @ fc.ones(4, 5)
    with pytest.raises(ValueError, match="matmul"):
        fc.ones(2, 3, 4) @ fc.ones(5, 4, 2)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu"])
@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_unary(name, shape, seed):
    positive = name in ("log", "sqrt")
    a = rand_tensor(shape, seed, low=0.3 if positive else -2.0, high=2.0)
    # keep away from the kinks of abs/relu where finite differences are meaningless
    if name in ("abs", "relu"):
        a.numpy()[np.abs(a.numpy()) < 1e-3] = 0.5
    ref = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh,
           "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0)}[name]
    fn = lambda x: getattr(x, name)()  # noqa: E731
    np.testing.assert_allclose(fn(a).numpy(), ref(a.numpy()), rtol=1e-12)
    assert gradcheck(fn, [a])


@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_clip(shape, seed):
    a = rand_tensor(shape, seed)
    a.numpy()[np.abs(np.abs(a.numpy()) - 0.5) < 1e-3] = 0.0
    np.testing.assert_allclose(a.clip(-0.5, 0.5).numpy(), np.clip(a.numpy(), -0.5, 0.5))
    assert gradcheck(lambda x: x.clip(-0.5, 0.5), [a])


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                                   unique=True).map(tuple)))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var"])
@given(sak=shape_and_axis(), seed=st.integers(0, 2 ** 16))
def test_reductions(name, sak, seed):
    shape, axis, keepdims = sak
    a = rand_tensor(shape, seed)
    extra = {"correction": 0} if name == "var" else {}  # numpy's var is the population variance

    def reduce(x):
        out = getattr(x, name)(axis=axis, keepdims=keepdims, **extra)
        return out.values if isinstance(axis, int) and name in ("max", "min") else out  # PyTorch's (values, indices)

    out = reduce(a)
    ref = getattr(np, name)(a.numpy(), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert out.shape == np.shape(ref)
    assert gradcheck(reduce, [a])


def test_var_ddof_and_torch_names():
    a = rand_tensor((3, 5), 0)
    np.testing.assert_allclose(a.var(axis=1, ddof=1).numpy(), np.var(a.numpy(), axis=1, ddof=1))
    np.testing.assert_allclose(a.sum(dim=0, keepdim=True).numpy(), a.numpy().sum(0, keepdims=True))


def test_max_ties_share_gradient():
    a = fc.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    a.max().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0, 0.5, 0.5, 0])


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), seed=st.integers(0, 2 ** 16),
       data=st.data())
def test_shape_ops(shape, seed, data):
    a = rand_tensor(shape, seed)
    perm = data.draw(st.permutations(range(len(shape))))
    np.testing.assert_array_equal(a.permute(*perm).numpy(), np.transpose(a.numpy(), perm))
    assert gradcheck(lambda x: x.permute(*perm) * 2, [a])
    assert gradcheck(lambda x: x.reshape(-1)[::2] * 3, [a])
    np.testing.assert_array_equal(a.flatten().numpy(), a.numpy().reshape(-1))
    np.testing.assert_array_equal(a.unsqueeze(0).numpy(), a.numpy()[None])
    np.testing.assert_array_equal(a.unsqueeze(-1).squeeze(-1).numpy(), a.numpy())
    np.testing.assert_array_equal(a.T.numpy(), a.numpy().T)


def test_transpose_is_a_swap_and_flatten_ranges():
    a = rand_tensor((2, 3, 4), 0)
    np.testing.assert_array_equal(a.transpose(0, 2).numpy(), np.swapaxes(a.numpy(), 0, 2))
    assert a.flatten(1).shape == (2, 12)
    assert a.flatten(0, 1).shape == (6, 4)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(5, 5)
    assert a.squeeze(0).shape == (2, 3, 4)  # a dim of another size is kept, as in PyTorch


def test_getitem_basic_and_advanced_with_repeats():
    a = rand_tensor((4, 3), 0)
    assert gradcheck(lambda x: x[1:3, ::2] * 2, [a])
    assert gradcheck(lambda x: x[..., 1], [a])
    idx = np.array([0, 2, 2, 3, 0, 0])
    out = a[idx]
    np.testing.assert_array_equal(out.numpy(), a.numpy()[idx])
    out.sum().backward()
    counts = np.bincount(idx, minlength=4).astype(float)
    np.testing.assert_allclose(a.grad.numpy(), np.repeat(counts[:, None], 3, axis=1))
    b = rand_tensor((4, 3), 1)
    assert gradcheck(lambda x: x[np.array([1, 1, 3]), np.array([0, 0, 2])], [b])
    assert gradcheck(lambda x: x[b.numpy() > 0], [b])


@given(seed=st.integers(0, 2 ** 16), axis=st.integers(0, 2), n=st.integers(1, 3))
def test_cat_stack_pad(seed, axis, n):
    rng = np.random.default_rng(seed)
    ts = []
    for i in range(n):
        shape = [2, 3, 2]
        shape[axis] = int(rng.integers(1, 4))
        ts.append(rand_tensor(tuple(shape), seed + i))
    np.testing.assert_array_equal(fc.cat(ts, axis=axis).numpy(), np.concatenate([t.numpy() for t in ts], axis))
    assert gradcheck(lambda *xs: fc.cat(xs, axis=axis) * 2, ts)
    same = [rand_tensor((2, 3), seed + 10 + i) for i in range(n)]
    np.testing.assert_array_equal(fc.stack(same, axis=axis % 3).numpy(),
                                  np.stack([t.numpy() for t in same], axis % 3))
    assert gradcheck(lambda *xs: fc.stack(xs, axis=axis % 3), same)
    widths = ((1, 0), (0, 2))
    np.testing.assert_array_equal(fc.pad(same[0], widths, value=1.5).numpy(),
                                  np.pad(same[0].numpy(), widths, constant_values=1.5))
    assert gradcheck(lambda x: fc.pad(x, widths), [same[0]])


def test_cat_stack_mismatch():
    with pytest.raises(ValueError, match="cat: tensor 1 has shape"):
        fc.cat([fc.ones(2, 3), fc.ones(3, 4)], axis=0)
    with pytest.raises(ValueError, match="stack: tensor 1 has shape"):
        fc.stack([fc.ones(2, 3), fc.ones(3, 2)])


def test_where_and_comparisons():
    a, b = rand_tensor((3, 4), 0), rand_tensor((3, 4), 1)
    cond = a > b
    assert cond.dtype == np.bool_ and not cond.requires_grad
    np.testing.assert_array_equal(fc.where(cond, a, b).numpy(), np.maximum(a.numpy(), b.numpy()))
    assert gradcheck(lambda x, y: fc.where(x.numpy() > y.numpy(), x, y), [a, b])
    assert ((a == a).numpy()).all() and not (a != a).numpy().any()


def test_creation_and_dtypes():
    assert fc.tensor([1, 2]).dtype == np.int64
    assert fc.tensor([1.0, 2]).dtype == np.float32
    assert fc.tensor(np.ones(3)).dtype == np.float64
    assert fc.tensor(np.ones(3, np.float32)).dtype == np.float32
    assert fc.zeros(2, 3).shape == (2, 3) and fc.ones((2, 3), dtype=np.float64).dtype == np.float64
    assert fc.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert fc.zeros_like(fc.ones(2, 2)).numpy().sum() == 0
    t = fc.tensor(np.arange(6.0).reshape(2, 3))
    assert t.size == 6 and t.size(1) == 3 and t.size() == (2, 3) and t.ndim == 2
    with pytest.raises(TypeError, match="only float32/float64"):
        fc.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="float16"):
        fc.tensor(np.ones(2, np.float16))
    with pytest.raises(TypeError, match="tensor"):
        fc.tensor(["a", "b"])
    with pytest.raises(TypeError, match="tensor"):
        fc.tensor({"a": 1})


def test_numpy_shares_memory_and_tensor_copies():
    arr = np.ones(3, np.float32)
    t = fc.tensor(arr)
    assert not np.shares_memory(t.numpy(), arr)
    assert t.numpy() is t._array and np.shares_memory(t.data.numpy(), t.numpy())


def test_manual_seed_reproducible():
    fc.manual_seed(7)
    a = fc.randn(3, 3).numpy().copy()
    fc.manual_seed(7)
    np.testing.assert_array_equal(fc.randn(3, 3).numpy(), a)
    assert fc.rand(100).numpy().min() >= 0


def test_ndarray_on_the_left_dispatches_to_tensor():
    a = rand_tensor((3,), 0)
    out = np.ones(3) * a
    assert isinstance(out, fc.Tensor) and out.requires_grad


def test_cast_is_differentiable():
    a = rand_tensor((3,), 0)
    out = a.float()
    assert out.dtype == np.float32
    out.sum().backward()
    assert a.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(3))


@pytest.mark.parametrize("op,fn", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                   ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
                                   ("pow", lambda a, b: a ** b)])
def test_broadcast_mismatch_names_op_and_shapes(op, fn):
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4, 5\) do not broadcast"):
        fn(fc.ones(2, 3), fc.ones(4, 5))
    with pytest.raises(ValueError, match=rf"{op}: shapes \(2,\) and \(2, 3\) do not broadcast"):
        fn(np.ones(2, np.float32), fc.ones(2, 3))  # reflected form
