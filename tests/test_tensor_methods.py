"""Tensor methods and fc.* functions against PyTorch: values, dtypes, shapes and gradients (through
torch's autograd), float64 gradchecks on hypothesis shapes for the differentiable ones."""
import copy
import pickle

import numpy as np
import pytest
from _torch_compare import compare
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastconv as fc
from fastconv.autograd import gradcheck

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@pytest.fixture(scope="module")
def torch():
    """conftest's torch fixture, module-scoped so that hypothesis tests can use it."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def data(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def leaf(a):
    return fc.tensor(a, requires_grad=True)


@st.composite
def shape_and_dims(draw):
    shape = draw(shapes)
    dims = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                                   unique=True).map(tuple)))
    return shape, dims, draw(st.booleans())


@given(sdk=shape_and_dims(), seed=st.integers(0, 2 ** 16))
def test_var_std_default_to_unbiased_like_torch(torch, sdk, seed):
    shape, dims, keepdim = sdk
    a = data(shape, seed)
    n = a.size if dims is None else int(np.prod([shape[d] for d in np.atleast_1d(dims)]))
    for name in ("var", "std"):
        if n > 1:
            compare(lambda x: getattr(x, name)(dims, keepdim=keepdim),
                    lambda x: getattr(x, name)(dims, keepdim=keepdim), [a], torch, rtol=1e-9)
            compare(lambda x: getattr(fc, name)(x, dims, keepdim=keepdim),
                    lambda x: getattr(torch, name)(x, dims, keepdim=keepdim), [a], torch, rtol=1e-9)
        for kw in ({"unbiased": False}, {"correction": 0}):
            compare(lambda x: getattr(x, name)(dims, keepdim=keepdim, **kw),
                    lambda x: getattr(x, name)(dims, keepdim=keepdim, **kw), [a], torch, rtol=1e-9)
        assert gradcheck(lambda x: getattr(x, name)(dims, keepdim=keepdim, correction=0) + 1.0, [leaf(a)])
    assert float(fc.tensor(a).var(False)) == pytest.approx(float(torch.tensor(a).var(False)))
    np.testing.assert_allclose(np.std(fc.tensor(a)), np.std(a))   # numpy functions still see the array


def test_var_single_element_is_nan_like_torch(torch):
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert np.isnan(torch.ones(1).var().item())
    assert np.isnan(fc.ones(1).var().item())


@given(sdk=shape_and_dims(), seed=st.integers(0, 2 ** 16), p=st.sampled_from([2, 1, 3, 0.5, np.inf, -np.inf, "fro"]))
def test_norm_like_torch(torch, sdk, seed, p):
    shape, dims, keepdim = sdk
    a = data(shape, seed, 0.2, 2.0) * np.sign(data(shape, seed + 1))   # away from 0 (kink of |x|)
    if p == "fro" and dims is not None and not isinstance(dims, tuple):
        dims = (dims,)
    compare(lambda x: x.norm(p, dims, keepdim), lambda x: x.norm(p, dims, keepdim), [a], torch, rtol=1e-9)
    compare(lambda x: fc.norm(x, p, dims), lambda x: torch.norm(x, p, dims), [a], torch, rtol=1e-9)
    if p not in (np.inf, -np.inf):   # max/min of |x| are kinks under ties of finite differences
        assert gradcheck(lambda x: x.norm(p, dims, keepdim), [leaf(a)])


def test_norm_of_zeros_has_zero_gradient_like_torch(torch):
    compare(lambda x: x.norm(), lambda x: x.norm(), [np.zeros(3)], torch)
    with pytest.raises(ValueError, match="norm: unsupported p='nuc'"):
        fc.ones(2, 2).norm("nuc")


@given(pair=st.tuples(shapes, st.integers(0, 2 ** 16)))
def test_pow_forms_like_torch(torch, pair):
    shape, seed = pair
    a, b = data(shape, seed, 0.5, 2.0), data(shape, seed + 1, -1.5, 1.5)
    compare(lambda x: x.pow(3), lambda x: x.pow(3), [a], torch)
    compare(lambda x: x.pow(0.5), lambda x: x.pow(0.5), [a], torch)
    compare(lambda x, y: x.pow(y), lambda x, y: x.pow(y), [a, b], torch)
    compare(lambda x: fc.pow(x, 2), lambda x: torch.pow(x, 2), [a], torch)
    compare(lambda x: fc.pow(2.0, x), lambda x: torch.pow(2.0, x), [a], torch)
    compare(lambda x: x.square(), lambda x: x.square(), [a], torch)
    x = fc.tensor([1, 2, 3])
    assert x.pow(2).dtype == np.int64 and x.pow(2).tolist() == [1, 4, 9]


def test_softmax_methods_and_functions_like_torch(torch):
    a = data((3, 5), 0, -5, 5)
    for dim in (0, 1, -1):
        compare(lambda x: x.softmax(dim), lambda x: x.softmax(dim), [a], torch)
        compare(lambda x: x.log_softmax(dim), lambda x: x.log_softmax(dim), [a], torch)
        compare(lambda x: fc.softmax(x, dim), lambda x: torch.softmax(x, dim), [a], torch)
        compare(lambda x: fc.log_softmax(x, dim=dim), lambda x: torch.log_softmax(x, dim=dim), [a], torch)
    f32 = fc.tensor(a.astype(np.float32))
    assert f32.softmax(1, dtype=fc.float64).dtype == np.float64


@given(shape=shapes, seed=st.integers(0, 2 ** 16), data_=st.data())
def test_expand_repeat_like_torch(torch, shape, seed, data_):
    a = data(shape, seed)
    ones = tuple(1 for _ in shape)
    small = a[tuple(slice(0, 1) if data_.draw(st.booleans()) else slice(None) for _ in shape)]
    sizes = (2,) + tuple(3 if n == 1 else -1 for n in small.shape)
    compare(lambda x: x.expand(*sizes), lambda x: x.expand(*sizes), [small], torch)
    compare(lambda x: x.expand(sizes), lambda x: x.expand(sizes), [small], torch)
    reps = tuple(data_.draw(st.integers(1, 3)) for _ in range(len(shape) + data_.draw(st.integers(0, 1))))
    compare(lambda x: x.repeat(*reps), lambda x: x.repeat(*reps), [a], torch)
    assert gradcheck(lambda x: x.repeat(*reps), [leaf(a)])
    assert gradcheck(lambda x: x.expand(*sizes) * 1.0, [leaf(small)])
    other = fc.zeros(*(2,) + tuple(n if n > 1 else 3 for n in small.shape))
    assert fc.tensor(small).expand_as(other).shape == other.shape
    assert fc.tensor(a).repeat(*ones).shape == a.shape


def test_expand_and_repeat_errors():
    with pytest.raises(ValueError, match="expand: the expanded size 4 must match the existing size 3"):
        fc.ones(2, 3).expand(2, 4)
    with pytest.raises(ValueError, match="repeat: the number of repeats"):
        fc.ones(2, 3).repeat(2)
    with pytest.raises(ValueError, match="read-only"):
        fc.ones(1, 3).expand(2, 3).add_(1)


@given(n=st.integers(0, 9), chunks=st.integers(1, 5), size=st.integers(1, 4), seed=st.integers(0, 99))
def test_chunk_split_like_torch(torch, n, chunks, size, seed):
    a = data((n, 2), seed)
    for ours_fn, theirs_fn in [(lambda x: x.chunk(chunks), lambda x: x.chunk(chunks)),
                               (lambda x: fc.chunk(x, chunks, 0), lambda x: torch.chunk(x, chunks, 0)),
                               (lambda x: x.split(size), lambda x: x.split(size)),
                               (lambda x: fc.split(x, size, dim=0), lambda x: torch.split(x, size, dim=0))]:
        compare(lambda x: tuple(ours_fn(x)), lambda x: tuple(theirs_fn(x)), [a], torch)
    if n:
        cut = np.random.default_rng(seed).integers(0, n + 1)
        compare(lambda x: tuple(x.split([cut, n - cut])), lambda x: tuple(x.split([int(cut), int(n - cut)])),
                [a], torch)
        assert gradcheck(lambda x: x.chunk(chunks)[-1] * 2.0, [leaf(a)])


def test_chunk_pieces_are_views(torch):
    x = fc.arange(6.0)
    first, second = x.chunk(2)
    first.fill_(7.0)
    assert x.tolist() == [7.0, 7.0, 7.0, 3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="split: sizes"):
        x.split([2, 2])


@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_reductions_to_bool_and_predicates_like_torch(torch, shape, seed):
    a = np.round(data(shape, seed), 0)
    a.reshape(-1)[0] = np.nan if seed % 3 == 0 else a.reshape(-1)[0]
    for name in ("isnan", "isinf", "isfinite"):
        compare(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), [a], torch, grad=False)
        compare(lambda x: getattr(fc, name)(x), lambda x: getattr(torch, name)(x), [a], torch, grad=False)
    b = a > 0
    for name in ("any", "all"):
        compare(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), [b], torch, grad=False)
        compare(lambda x: getattr(x, name)(dim=-1, keepdim=True), lambda x: getattr(x, name)(dim=-1, keepdim=True),
                [b], torch, grad=False)
        compare(lambda x: getattr(fc, name)(x), lambda x: getattr(torch, name)(x), [b], torch, grad=False)


@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_clamp_clip_scalar_and_tensor_bounds_like_torch(torch, shape, seed):
    a = data(shape, seed)
    a[np.abs(np.abs(a) - 0.5) < 1e-3] = 0.0
    for name in ("clamp", "clip"):
        compare(lambda x: getattr(x, name)(-0.5, 0.5), lambda x: getattr(x, name)(-0.5, 0.5), [a], torch)
        compare(lambda x: getattr(x, name)(min=-0.5), lambda x: getattr(x, name)(min=-0.5), [a], torch)
        compare(lambda x: getattr(x, name)(max=0.5), lambda x: getattr(x, name)(max=0.5), [a], torch)
        compare(lambda x: getattr(fc, name)(x, -1.0, 1.0), lambda x: getattr(torch, name)(x, -1.0, 1.0), [a], torch)
    lo, hi = data(shape[-1:], seed + 1, -1.0, -0.1), data(shape[-1:], seed + 2, 0.1, 1.0)
    compare(lambda x, l, h: x.clamp(l, h), lambda x, l, h: x.clamp(l, h), [a, lo, hi], torch)
    compare(lambda x, l: x.clamp(min=l), lambda x, l: x.clamp(min=l), [a, lo], torch)
    assert gradcheck(lambda x: x.clamp(-0.5, 0.5), [leaf(a)])
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        fc.tensor(a).clamp()


def test_shape_methods_like_torch(torch):
    a = data((2, 3, 4), 0)
    cases = [
        (lambda x: x.flatten(), lambda x: x.flatten()), (lambda x: x.flatten(1), lambda x: x.flatten(1)),
        (lambda x: x.flatten(0, 1), lambda x: x.flatten(0, 1)), (lambda x: fc.flatten(x, 1), lambda x: torch.flatten(x, 1)),
        (lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(0)), (lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
        (lambda x: x.unsqueeze(1).squeeze(1), lambda x: x.unsqueeze(1).squeeze(1)),
        (lambda x: x.squeeze(0), lambda x: x.squeeze(0)), (lambda x: x[:1].squeeze(), lambda x: x[:1].squeeze()),
        (lambda x: x[:1, :, :1].squeeze((0, 2)), lambda x: x[:1, :, :1].squeeze((0, 2))),
        (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)), (lambda x: x.permute((1, 2, 0)), lambda x: x.permute((1, 2, 0))),
        (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)), (lambda x: x.transpose(-1, 1), lambda x: x.transpose(-1, 1)),
        (lambda x: fc.transpose(x, 0, 1), lambda x: torch.transpose(x, 0, 1)),
        (lambda x: fc.permute(x, (2, 1, 0)), lambda x: torch.permute(x, (2, 1, 0))),
        (lambda x: x[0].t(), lambda x: x[0].t()), (lambda x: x.transpose(0, 1).contiguous(), lambda x: x.transpose(0, 1).contiguous()),
        (lambda x: x.view(6, 4), lambda x: x.view(6, 4)), (lambda x: x.view(-1), lambda x: x.view(-1)),
        (lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)), (lambda x: x.view(3, 8), lambda x: x.view(3, 8)),
        (lambda x: x.unbind(1), lambda x: x.unbind(1)), (lambda x: x.narrow(2, 1, 2), lambda x: x.narrow(2, 1, 2)),
        (lambda x: x.select(1, 2), lambda x: x.select(1, 2)),
        (lambda x: x.detach(), lambda x: x.detach()), (lambda x: x.clone(), lambda x: x.clone()),
        (lambda x: fc.clone(x), lambda x: torch.clone(x)),
    ]
    for ours, theirs in cases:
        compare(ours, theirs, [a], torch)
    b = fc.tensor(a)
    assert b.view_as(fc.zeros(6, 4)).shape == (6, 4)
    assert b.transpose(0, 1).is_contiguous() is False and b.transpose(0, 1).contiguous().is_contiguous()
    with pytest.raises(RuntimeError, match="view: size .* not compatible"):
        b.transpose(0, 1).view(-1)
    assert b.transpose(0, 1).reshape(-1).shape == (24,)


def test_detach_and_clone_semantics_like_torch(torch):
    x = fc.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.numpy(), x.numpy())
    c = x.clone()
    assert c.requires_grad and c.grad_fn is not None and not np.shares_memory(c.numpy(), x.numpy())
    (c * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


@pytest.mark.parametrize("method,dtype", [("float", "float32"), ("double", "float64"), ("long", "int64"),
                                          ("int", "int32"), ("bool", "bool"), ("short", "int16"), ("byte", "uint8")])
def test_casts_like_torch(torch, method, dtype):
    a = np.array([-1.7, 0.0, 0.4, 2.9])
    ours, theirs = getattr(fc.tensor(a), method)(), getattr(torch.tensor(a), method)()
    assert str(ours.dtype) == dtype == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert fc.tensor(a).type(getattr(fc, dtype if dtype != "bool" else "bool_")).dtype == ours.dtype
    assert fc.tensor(a).type_as(ours).dtype == ours.dtype


def test_type_names_and_float_cast_gradient(torch):
    assert fc.ones(1).type() == torch.ones(1).type() == "torch.FloatTensor"
    assert fc.ones(1, dtype=fc.long).type() == torch.ones(1, dtype=torch.long).type()
    compare(lambda x: x.float() * 3, lambda x: x.float() * 3, [np.array([1.5, 2.5])], torch, rtol=1e-6)
    with pytest.raises(TypeError, match="float16"):
        fc.ones(2).half()


def test_sizes_counts_and_python_values_like_torch(torch):
    a = data((2, 3, 4), 1)
    ours, theirs = fc.tensor(a), torch.tensor(a)
    assert ours.size() == tuple(theirs.size()) and ours.size(1) == theirs.size(1) and ours.size(-1) == theirs.size(-1)
    assert ours.shape == tuple(theirs.shape) and ours.shape[0] == 2
    assert ours.numel() == theirs.numel() == fc.numel(ours) and ours.dim() == theirs.dim() == ours.ndim
    assert ours.tolist() == theirs.tolist()
    assert ours[1, 2, 3].item() == theirs[1, 2, 3].item() and isinstance(ours[0, 0, 0].item(), float)
    assert fc.tensor([[1, 2]]).tolist() == [[1, 2]] and isinstance(fc.tensor(3).item(), int)
    assert f"{fc.tensor(2.5):.3f}" == f"{torch.tensor(2.5):.3f}" == "2.500"
    assert "{:.1f}".format(fc.tensor(1.25)) == "1.2"
    classes = ("a", "b", "c")
    assert classes[fc.tensor(2)] == "c" and list(range(5))[fc.tensor([3])] == 3   # __index__
    with pytest.raises(IndexError, match="size: dimension 3 out of range"):
        ours.size(3)
    with pytest.raises(ValueError, match="item: only one-element tensors"):
        ours.item()
    with pytest.raises(TypeError):
        classes[fc.tensor(1.0)]


@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_comparisons_methods_operators_and_functions_like_torch(torch, shape, seed):
    a, b = np.round(data(shape, seed), 1), np.round(data(shape, seed + 1), 1)
    b.reshape(-1)[0] = a.reshape(-1)[0]
    for name, op in (("eq", "__eq__"), ("ne", "__ne__"), ("lt", "__lt__"), ("le", "__le__"), ("gt", "__gt__"),
                     ("ge", "__ge__")):
        compare(lambda x, y: getattr(x, name)(y), lambda x, y: getattr(x, name)(y), [a, b], torch, grad=False)
        compare(lambda x, y: getattr(x, op)(y), lambda x, y: getattr(x, op)(y), [a, b], torch, grad=False)
        compare(lambda x, y: getattr(fc, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b], torch, grad=False)
        compare(lambda x: getattr(x, name)(0.1), lambda x: getattr(x, name)(0.1), [a], torch, grad=False)
    assert fc.equal(fc.tensor(a), fc.tensor(a)) and not fc.tensor(a).equal(fc.tensor(a + 1))
    assert fc.allclose(fc.tensor(a), fc.tensor(a + 1e-9))


def test_accuracy_idioms_of_the_example_scripts(torch):
    logits = data((6, 4), 3)
    target = np.array([0, 1, 2, 3, 0, 1])
    out, t = fc.tensor(logits), fc.tensor(target)
    tout, tt = torch.tensor(logits), torch.tensor(target)
    pred = out.argmax(dim=1, keepdim=True)                        # official MNIST example
    assert pred.eq(t.view_as(pred)).sum().item() == tout.argmax(dim=1, keepdim=True).eq(
        tt.view_as(tout.argmax(dim=1, keepdim=True))).sum().item()
    _, predicted = fc.max(out.data, 1)                            # 60-minute blitz
    assert (predicted == t).sum().item() == (torch.max(tout.data, 1)[1] == tt).sum().item()
    _, predicted = out.max(1)                                     # ResNet CIFAR scripts
    assert predicted.eq(t).sum().item() == tout.max(1)[1].eq(tt).sum().item()
    assert fc.sum(predicted == t).double().item() / 6 == torch.sum(tout.max(1)[1] == tt).double().item() / 6


def test_module_level_math_functions_like_torch(torch):
    a, b = data((3, 4), 5, 0.5, 2.0), data((3, 4), 6)
    for name in ("exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "neg", "square"):
        compare(lambda x: getattr(fc, name)(x), lambda x: getattr(torch, name)(x), [a], torch, rtol=1e-9)
    for name in ("mean", "sum", "amax", "amin"):
        compare(lambda x: getattr(fc, name)(x), lambda x: getattr(torch, name)(x), [a], torch)
        compare(lambda x: getattr(fc, name)(x, 1, keepdim=True), lambda x: getattr(torch, name)(x, 1, keepdim=True),
                [a], torch)
    for name in ("add", "sub", "mul", "div", "maximum", "minimum"):
        compare(lambda x, y: getattr(fc, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b], torch)
    compare(lambda x, y: fc.add(x, y, alpha=2), lambda x, y: torch.add(x, y, alpha=2), [a, b], torch)
    compare(lambda x, y: x.sub(y, alpha=0.5), lambda x, y: x.sub(y, alpha=0.5), [a, b], torch)
    compare(lambda x, y: fc.cat([x, y], 1), lambda x, y: torch.cat([x, y], 1), [a, b], torch)
    compare(lambda x, y: fc.cat((x, y), dim=0), lambda x, y: torch.cat((x, y), dim=0), [a, b], torch)
    compare(lambda x, y: fc.stack([x, y], 1), lambda x, y: torch.stack([x, y], 1), [a, b], torch)
    compare(lambda x: fc.squeeze(fc.unsqueeze(x, 0)), lambda x: torch.squeeze(torch.unsqueeze(x, 0)), [a], torch)
    compare(lambda x: fc.reshape(x, (2, 6)), lambda x: torch.reshape(x, (2, 6)), [a], torch)
    compare(lambda x: fc.where(x > 1, x, 0.0), lambda x: torch.where(x > 1, x, 0.0), [a], torch)
    compare(lambda x: fc.sum(x > 1), lambda x: torch.sum(x > 1), [a], torch, grad=False)   # bool sum is int64
    compare(lambda x: fc.mean(x, dim=(0, 1)), lambda x: torch.mean(x, dim=(0, 1)), [a], torch)
    assert fc.mean(fc.tensor(a.astype(np.float32)), dtype=fc.float64).dtype == np.float64
    assert [t.tolist() for t in fc.where(fc.tensor([[0, 1], [1, 0]]))] == [[0, 1], [1, 0]]


def test_copy_pickle_and_deepcopy_of_tensors_and_modules():
    x = fc.tensor([1.0, 2.0], requires_grad=True)
    x.grad = fc.tensor([0.5, 0.5])
    y = copy.deepcopy(x)
    assert y is not x and y.requires_grad and y.is_leaf and not np.shares_memory(x.numpy(), y.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 0.5])
    z = pickle.loads(pickle.dumps(x))
    assert z.requires_grad and z.tolist() == [1.0, 2.0]
    model = fc.nn.Linear(2, 3)
    clone = copy.deepcopy(model)
    assert isinstance(clone.weight, fc.nn.Parameter)
    clone.weight.data.fill_(0.0)
    assert model.weight.abs().sum().item() > 0
    state = copy.deepcopy(model.state_dict())
    model.weight.data.fill_(1.0)
    assert not np.all(state["weight"] == 1.0)
    with pytest.raises(RuntimeError, match="deepcopy: only tensors created explicitly by the user"):
        copy.deepcopy(x * 2)


# ---- bincount ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, minlength", [([0, 2, 2, 5], 0), ([3, 1], 8), ([], 0), ([], 3), ([7], 2)])
def test_bincount_counts_like_numpy(values, minlength):
    x = fc.tensor(values, dtype=fc.int64)
    want = np.bincount(np.array(values, dtype=np.int64), minlength=minlength)
    for got in (fc.bincount(x, minlength=minlength), x.bincount(minlength=minlength)):
        assert got.dtype == fc.int64
        np.testing.assert_array_equal(got.numpy(), want)


def test_bincount_weights_and_torch(torch):
    values = np.array([4, 0, 4, 1, 2], dtype=np.int64)
    weights = np.array([0.5, 1.0, 2.0, -1.0, 3.0], dtype=np.float32)
    got = fc.bincount(fc.tensor(values), weights=fc.tensor(weights), minlength=6)
    want = torch.bincount(torch.tensor(values), weights=torch.tensor(weights), minlength=6)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.numpy(), want.numpy())
    np.testing.assert_array_equal(fc.bincount(fc.tensor(values)).numpy(), torch.bincount(torch.tensor(values)).numpy())


@pytest.mark.parametrize("bad, match", [(fc.tensor([[1, 2]]), "1-D integer"), (fc.tensor([1.0, 2.0]), "1-D integer"),
                                        (fc.tensor([1, -2]), "non-negative")])
def test_bincount_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=f"bincount: .*{match}"):
        fc.bincount(bad)
    with pytest.raises(ValueError, match="minlength"):
        fc.bincount(fc.tensor([1]), minlength=-1)


# ---- diag ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (3, 5), (5, 3), (1,), (2, 2)])
@pytest.mark.parametrize("k", [0, 1, -2, 4])
def test_diag_matches_numpy_and_torch(shape, k, torch):
    a = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_array_equal(fc.diag(fc.tensor(a), k).numpy(), np.diag(a, k))
    np.testing.assert_array_equal(fc.tensor(a).diag(k).numpy(), torch.tensor(a).diag(k).numpy())


@pytest.mark.parametrize("shape, k", [((3,), 1), ((3, 4), -1), ((4, 3), 0)])
def test_diag_gradcheck(shape, k):
    x = fc.tensor(np.random.default_rng(1).standard_normal(shape), dtype=fc.float64, requires_grad=True)
    assert gradcheck(lambda t: t.diag(k), (x,))


def test_diag_rejects_bad_input():
    with pytest.raises(ValueError, match="diag: expected a 1-D or 2-D tensor"):
        fc.diag(fc.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="diag: diagonal must be an int"):
        fc.diag(fc.zeros(2), 0.5)
