"""Value-and-index ops against PyTorch: max/min(dim) named tuples, fc.max forms, sort, topk,
argmax/argmin, gather, scatter/scatter_add, index_select, masked_fill; forward values, index
dtypes and gradients, plus float64 gradchecks on hypothesis shapes."""
import numpy as np
import pytest
from _torch_compare import compare
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastconv as fc
from fastconv.autograd import gradcheck

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


@pytest.fixture(scope="module")
def torch():
    """conftest's torch fixture, module-scoped so that hypothesis tests can use it."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def distinct(shape, seed):
    """Values without ties (so that every index is defined the same way in both libraries)."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape).astype(np.float64) / n - 0.5


@st.composite
def shape_and_dim(draw):
    shape = draw(shapes)
    return shape, draw(st.integers(-len(shape), len(shape) - 1)), draw(st.booleans())


@given(sdk=shape_and_dim(), seed=st.integers(0, 2 ** 16))
def test_max_min_with_dim_are_named_tuples_like_torch(torch, sdk, seed):
    shape, dim, keepdim = sdk
    a = distinct(shape, seed)
    for name in ("max", "min"):
        ours, theirs = compare(lambda x: getattr(x, name)(dim, keepdim), lambda x: getattr(x, name)(dim, keepdim),
                               [a], torch)
        out = getattr(fc.tensor(a), name)(dim=dim, keepdim=keepdim)
        assert type(out).__name__ == name and out._fields == ("values", "indices")
        values, indices = out                              # unpacks like torch's
        assert indices.dtype == np.int64 and not indices.requires_grad
        np.testing.assert_array_equal(out.indices.numpy(), theirs[1].numpy())
        compare(lambda x: getattr(fc, name)(x, dim, keepdim), lambda x: getattr(torch, name)(x, dim, keepdim),
                [a], torch)
        assert gradcheck(lambda x: getattr(x, name)(dim, keepdim).values, [fc.tensor(a, requires_grad=True)])


def test_max_forms_and_ties_follow_torch(torch):
    a = np.array([[1.0, 5.0, 5.0], [2.0, 2.0, 0.0]])
    compare(lambda x: x.max(), lambda x: x.max(), [a], torch)            # whole tensor: 0-d, ties share
    compare(lambda x: x.max(1), lambda x: x.max(1), [a], torch)          # first maximum gets the gradient
    compare(lambda x: x.min(0), lambda x: x.min(0), [a], torch)
    b = np.array([[0.0, 6.0, 5.0], [2.0, 1.0, 0.0]])
    compare(lambda x, y: fc.max(x, y), lambda x, y: torch.max(x, y), [a, b], torch)   # elementwise
    compare(lambda x, y: fc.min(x, y), lambda x, y: torch.min(x, y), [a, b], torch)
    compare(lambda x, y: x.max(y), lambda x, y: x.max(y), [a, b], torch)
    compare(lambda x, y: fc.maximum(x, y), lambda x, y: torch.maximum(x, y), [a, b], torch)
    compare(lambda x: x.amax((0, 1)), lambda x: x.amax((0, 1)), [a], torch)
    with_nan = np.array([[1.0, np.nan, 3.0], [4.0, 2.0, 1.0]])
    compare(lambda x: x.max(1), lambda x: x.max(1), [with_nan], torch, grad=False)
    _, pred = fc.tensor(a).max(1)                       # the classification idiom at batch 2
    assert pred.tolist() == [1, 0]


def test_max_of_a_scalar_tensor_and_empty_errors(torch):
    compare(lambda x: x.max(0), lambda x: x.max(0), [np.array(3.0)], torch)
    with pytest.raises(ValueError, match="max: reduction over an empty tensor"):
        fc.zeros(0).max()
    with pytest.raises(IndexError, match="max: dimension 2 out of range"):
        fc.zeros(2, 2).max(2)


@given(sdk=shape_and_dim(), seed=st.integers(0, 2 ** 16))
def test_argmax_argmin_with_dim_and_keepdim_like_torch(torch, sdk, seed):
    shape, dim, keepdim = sdk
    a = distinct(shape, seed)
    for name in ("argmax", "argmin"):
        compare(lambda x: getattr(x, name)(dim=dim, keepdim=keepdim),
                lambda x: getattr(x, name)(dim=dim, keepdim=keepdim), [a], torch, grad=False)
        compare(lambda x: getattr(fc, name)(x), lambda x: getattr(torch, name)(x), [a], torch, grad=False)
        compare(lambda x: getattr(x, name)(keepdim=True), lambda x: getattr(x, name)(keepdim=True), [a], torch,
                grad=False)


@given(sdk=shape_and_dim(), seed=st.integers(0, 2 ** 16), descending=st.booleans())
def test_sort_values_indices_and_gradient_like_torch(torch, sdk, seed, descending):
    shape, dim, _ = sdk
    a = distinct(shape, seed)
    compare(lambda x: fc.sort(x, dim, descending), lambda x: torch.sort(x, dim, descending), [a], torch)
    compare(lambda x: x.argsort(dim, descending), lambda x: x.argsort(dim=dim, descending=descending), [a], torch,
            grad=False)
    assert gradcheck(lambda x: x.sort(dim, descending).values, [fc.tensor(a, requires_grad=True)])


def test_sort_is_stable_and_puts_nan_where_torch_does(torch):
    a = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    for descending in (False, True):
        compare(lambda x: x.sort(descending=descending, stable=True),
                lambda x: x.sort(descending=descending, stable=True), [a], torch)
    with_nan = np.array([3.0, np.nan, 0.5, -1.0])
    for descending in (False, True):
        compare(lambda x: x.sort(descending=descending), lambda x: x.sort(descending=descending), [with_nan], torch,
                grad=False)
    assert type(fc.sort(fc.tensor(a))).__name__ == "sort"


@given(sdk=shape_and_dim(), seed=st.integers(0, 2 ** 16), largest=st.booleans(), data=st.data())
def test_topk_like_torch(torch, sdk, seed, largest, data):
    shape, dim, _ = sdk
    k = data.draw(st.integers(0, shape[dim]))
    a = distinct(shape, seed)
    compare(lambda x: x.topk(k, dim, largest), lambda x: x.topk(k, dim, largest), [a], torch)
    compare(lambda x: fc.topk(x, k, dim=dim, largest=largest), lambda x: torch.topk(x, k, dim=dim, largest=largest),
            [a], torch)
    if k:
        assert gradcheck(lambda x: x.topk(k, dim, largest).values, [fc.tensor(a, requires_grad=True)])


def test_topk_accuracy_idiom_and_errors(torch):
    """The top-k accuracy helper of the ResNet CIFAR scripts, run in both libraries."""
    out = np.random.default_rng(0).standard_normal((8, 10))
    target = np.arange(8) % 10

    def accuracy(lib, output, target, topk=(1, 5)):
        maxk = max(topk)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [correct[:k].reshape(-1).float().sum(0).mul_(100.0 / target.size(0)).item() for k in topk]

    assert accuracy(fc, fc.tensor(out), fc.tensor(target)) == accuracy(torch, torch.tensor(out), torch.tensor(target))
    with pytest.raises(ValueError, match=r"topk: k must be an int in \[0, 3\]"):
        fc.ones(3).topk(4)


@st.composite
def gather_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    dim = draw(st.integers(0, len(shape) - 1))
    ishape = tuple(draw(st.integers(1, 5)) if d == dim else draw(st.integers(1, n)) for d, n in enumerate(shape))
    index = draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, shape[dim] - 1)))
    return shape, dim, index


@given(case=gather_case(), seed=st.integers(0, 2 ** 16))
def test_gather_like_torch_with_repeated_indices(torch, case, seed):
    shape, dim, index = case
    a = np.random.default_rng(seed).standard_normal(shape)
    compare(lambda x, i: x.gather(dim, i), lambda x, i: x.gather(dim, i), [a, index], torch)
    compare(lambda x, i: fc.gather(x, dim, i), lambda x, i: torch.gather(x, dim, i), [a, index], torch)
    assert gradcheck(lambda x: x.gather(dim, fc.tensor(index)), [fc.tensor(a, requires_grad=True)])


@given(case=gather_case(), seed=st.integers(0, 2 ** 16))
def test_scatter_add_like_torch(torch, case, seed):
    shape, dim, index = case
    rng = np.random.default_rng(seed)
    a, src = rng.standard_normal(shape), rng.standard_normal(index.shape)
    compare(lambda x, i, s: x.scatter_add(dim, i, s), lambda x, i, s: x.scatter_add(dim, i, s), [a, index, src], torch)
    compare(lambda x, i, s: fc.scatter_add(x, dim, i, s), lambda x, i, s: torch.scatter_add(x, dim, i, s),
            [a, index, src], torch, grad=False)
    # src may be larger than index (only its leading part is used); torch's backward rejects that
    # case, so it is checked against finite differences only
    larger = rng.standard_normal(tuple(n + 1 for n in index.shape))
    assert gradcheck(lambda x, s: x.scatter_add(dim, fc.tensor(index), s),
                     [fc.tensor(a, requires_grad=True), fc.tensor(larger, requires_grad=True)])


def test_scatter_with_distinct_indices_and_values_like_torch(torch):
    a = np.random.default_rng(1).standard_normal((3, 5))
    index = np.array([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]])        # distinct per column along dim 0
    src = np.random.default_rng(2).standard_normal((2, 5))
    compare(lambda x, i, s: x.scatter(0, i, s), lambda x, i, s: x.scatter(0, i, s), [a, index, src], torch)
    compare(lambda x, i: x.scatter(0, i, 2.5), lambda x, i: x.scatter(0, i, 2.5), [a, index], torch)
    compare(lambda x, i: fc.scatter(x, 0, i, value=-1.0), lambda x, i: torch.scatter(x, 0, i, value=-1.0),
            [a, index], torch)
    assert gradcheck(lambda x, s: x.scatter(0, fc.tensor(index), s),
                     [fc.tensor(a, requires_grad=True), fc.tensor(src, requires_grad=True)])
    labels = np.array([2, 0, 1])                                # the one-hot idiom, in place
    ours = fc.zeros(3, 4).scatter_(1, fc.tensor(labels).unsqueeze(1), 1.0)
    theirs = torch.zeros(3, 4).scatter_(1, torch.tensor(labels).unsqueeze(1), 1.0)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_scatter_gather_errors_name_the_op():
    x = fc.zeros(3, 4)
    with pytest.raises(IndexError, match="gather: index 4 is out of bounds for dimension 1 with size 4"):
        x.gather(1, fc.tensor([[4]]))
    with pytest.raises(IndexError, match="scatter_add: index -1 is out of bounds"):
        x.scatter_add(0, fc.tensor([[-1]]), fc.ones(1, 1))
    with pytest.raises(TypeError, match="gather: expected an integer index tensor, got dtype float32"):
        x.gather(0, fc.ones(1, 1))
    with pytest.raises(ValueError, match="gather: index must have as many dimensions as input"):
        x.gather(0, fc.tensor([0]))
    with pytest.raises(ValueError, match="scatter: index of shape"):
        x.scatter(0, fc.tensor([[0, 1, 2]]), fc.ones(1, 2))


@given(shape=shapes, seed=st.integers(0, 2 ** 16), data=st.data())
def test_index_select_like_torch(torch, shape, seed, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    index = np.array(data.draw(st.lists(st.integers(0, shape[dim] - 1), min_size=1, max_size=6)), dtype=np.int64)
    a = np.random.default_rng(seed).standard_normal(shape)
    compare(lambda x, i: x.index_select(dim, i), lambda x, i: x.index_select(dim, i), [a, index], torch)
    compare(lambda x, i: fc.index_select(x, dim, i), lambda x, i: torch.index_select(x, dim, i), [a, index], torch)
    assert gradcheck(lambda x: x.index_select(dim, fc.tensor(index)), [fc.tensor(a, requires_grad=True)])


@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_masked_fill_like_torch(torch, shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    mask = rng.random(shape[-1:]) > 0.5                         # broadcasts over the leading dims
    compare(lambda x, m: x.masked_fill(m, -3.0), lambda x, m: x.masked_fill(m, -3.0), [a, mask], torch)
    compare(lambda x, m, v: x.masked_fill(m, v), lambda x, m, v: x.masked_fill(m, v), [a, mask, np.array(0.25)],
            torch)                                              # a 0-d value tensor gets its gradient
    compare(lambda x, m: fc.masked_fill(x, m, 1.0), lambda x, m: torch.masked_fill(x, m, 1.0), [a, mask], torch)
    assert gradcheck(lambda x: x.masked_fill(fc.tensor(mask), 2.0), [fc.tensor(a, requires_grad=True)])
    with pytest.raises(TypeError, match="masked_fill: expected a bool mask"):
        fc.tensor(a).masked_fill(fc.tensor(mask.astype(np.int64)), 0.0)
