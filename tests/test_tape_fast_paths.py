"""The tape's shortcuts give what the general path gives: one-pass argument unpacking in
Function.apply, the leaf delivery that skips ``_check_grad`` for a right-shaped ndarray, the
ownership scan done only for a first gradient, and the cheaper BLAS thread check."""
import numpy as np
import pytest

import fastconv as fc
from fastconv.autograd import Function
from fastconv.autograd.engine import run_backward


def leaf(values, dtype=np.float64):
    return fc.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def returning(make_grads):
    """A Function of (a, b) whose forward is a + b and whose backward returns ``make_grads(dy)``."""

    class Op(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, dy):
            return make_grads(dy)

    return Op


def test_apply_records_edges_and_needs_for_mixed_arguments():
    a, frozen = leaf([1.0, 2.0]), fc.tensor(np.array([3.0, 4.0]))
    h = a * 2.0

    class Three(Function):
        @staticmethod
        def forward(ctx, x, y, z, scale):
            return (x + y + z) * scale

        @staticmethod
        def backward(ctx, dy):
            return dy, dy, dy, None

    out = Three.apply(a, frozen, h, 3.0)
    ctx = out.grad_fn
    assert ctx.needs_input_grad == (True, False, True, False)
    assert ctx.next_edges[0] is a and ctx.next_edges[1] is None and ctx.next_edges[3] is None
    assert ctx.next_edges[2] == (h.grad_fn, 0)
    assert ctx.recording
    with fc.no_grad():
        off = Three.apply(a, frozen, h, 3.0)
    assert off.grad_fn is None and not off.requires_grad
    frozen_only = Three.apply(frozen, frozen, frozen, 1.0)
    assert frozen_only.grad_fn is None
    np.testing.assert_array_equal(frozen_only.numpy(), [9.0, 12.0])


def test_wrong_shape_leaf_gradient_still_raises():
    Op = returning(lambda dy: (np.ones(3), dy.copy()))
    with pytest.raises(RuntimeError, match=r"Op.backward returned a gradient of shape \(3,\) for input 0, "
                                           r"expected \(2,\)"):
        Op.apply(leaf([1.0, 2.0]), leaf([1.0, 2.0])).sum().backward()


def test_leaf_gradient_of_other_dtype_or_type_is_converted_and_copied():
    a, b = leaf([1.0, 2.0], np.float32), leaf([1.0, 2.0], np.float32)
    fresh64 = np.array([5.0, 6.0])
    Op = returning(lambda dy: (fresh64, [7.0, 8.0]))
    Op.apply(a, b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float32
    np.testing.assert_array_equal(a.grad.numpy(), [5.0, 6.0])
    np.testing.assert_array_equal(b.grad.numpy(), [7.0, 8.0])


def test_fresh_gradient_kept_everything_else_copied():
    fresh = {}

    def grads(dy):
        fresh["a"] = np.full(2, 3.0)
        fresh["b"] = np.full(4, 4.0)[:2]
        return fresh["a"], fresh["b"]

    a, b = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    returning(grads).apply(a, b).sum().backward()
    assert a.grad.numpy() is fresh["a"]                  # made by backward, given to a only: kept
    assert not np.shares_memory(b.grad.numpy(), fresh["b"])   # a view: copied

    both = np.full(2, 5.0)
    c = leaf([1.0, 2.0])
    returning(lambda dy: (both, both)).apply(c, c).sum().backward()   # same array for two inputs
    assert not np.shares_memory(c.grad.numpy(), both)
    np.testing.assert_array_equal(c.grad.numpy(), [10.0, 10.0])

    d, e = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([1.0, 1.0])
    returning(lambda dy: (dy, dy[:])).apply(d, e).backward(g)   # the incoming gradient, a view of it
    assert not np.shares_memory(d.grad.numpy(), g) and not np.shares_memory(e.grad.numpy(), g)


def test_second_accumulation_adds_into_a_new_array():
    made = []

    def grads(dy):
        made.append(np.full(2, 2.0))
        return made[-1], None

    a, b = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    Op = returning(grads)
    Op.apply(a, b).sum().backward()
    first = a.grad.numpy()
    assert first is made[0]
    Op.apply(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4.0, 4.0])
    np.testing.assert_array_equal(first, [2.0, 2.0])
    assert not np.shares_memory(a.grad.numpy(), made[1])
    assert b.grad is None


def test_leaf_hooks_and_post_hooks_with_fresh_gradients():
    seen, replacement, after = [], np.array([9.0, 9.0]), []
    a, b = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    a.register_hook(lambda g: seen.append(g.numpy().copy()))
    b.register_hook(lambda g: replacement)
    b.register_post_accumulate_grad_hook(lambda t: after.append(t.grad.numpy().copy()))
    returning(lambda dy: (np.full(2, 3.0), np.full(2, 4.0))).apply(a, b).sum().backward()
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(b.grad.numpy(), [9.0, 9.0])
    assert not np.shares_memory(b.grad.numpy(), replacement)  # a hook's array is copied
    np.testing.assert_array_equal(after[0], [9.0, 9.0])


def test_ndarray_subclass_gradient_is_accepted():
    class Sub(np.ndarray):
        pass

    a, b = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    returning(lambda dy: (np.full(2, 3.0).view(Sub), None)).apply(a, b).sum().backward()
    np.testing.assert_array_equal(np.asarray(a.grad.numpy()), [3.0, 3.0])


def test_root_that_is_also_below_another_root():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    z = y * 2.0
    run_backward([z, y], [np.ones(2), np.ones(2)], retain_graph=True)   # y: 1 from the caller, 2 from z
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 9.0])
    x.grad = None
    run_backward([y, z], [np.ones(2), np.ones(2)], retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 9.0])
    x.grad = None
    run_backward([x, y], [np.ones(2), np.ones(2)])      # a leaf among the roots
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])


def test_backward_grad_argument_conversion():
    x = leaf([1.0, 2.0], np.float32)
    (x * 2.0).backward(np.array([1.0, 1.0]))          # float64 grad for a float32 output: cast
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    x.grad = None
    (x * 2.0).backward([1.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    with pytest.raises(ValueError, match=r"backward: grad of shape \(3,\) does not match"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        fc.tensor([1.0]).backward()


def test_kernel_blas_repinned_after_a_users_threadpoolctl_limit():
    """A user's threadpoolctl limit on the kernels' BLAS is undone before the next kernel runs
    (the thread count is re-read on every call, through the cheaper getter)."""
    from threadpoolctl import threadpool_limits

    from fastconv import _config

    pinned, _ = _config._kernel_blas or _config._find_kernel_blas()
    if not pinned:
        pytest.skip("numpy and scipy share one BLAS: it is limited around each call instead")
    before = fc.get_num_threads()
    try:
        fc.set_num_threads(1)
        for get_threads, lib in _config._pinned_checks:
            assert get_threads() == lib.get_num_threads() == 1
        with threadpool_limits(limits=2, user_api="blas"):
            inside = _config.run_with_kernel_blas(lambda: [lib.get_num_threads() for lib in pinned])
        assert inside == [1] * len(pinned)
    finally:
        fc.set_num_threads(before)
