"""The tape: accumulation, retain_graph, no_grad, deep graphs, pruning, hooks, gradcheck itself."""
import numpy as np
import pytest

import fastconv as fc
from fastconv.autograd import Function, GradcheckError, gradcheck


def leaf(values, dtype=np.float64):
    return fc.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_gradient_accumulates_across_uses_and_calls():
    x = leaf([1.0, 2.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0]) + 1)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0]) + 1 + 3)


def test_diamond_graph_counts_each_path_once():
    x = leaf(2.0)
    y = x * 3
    z = y * y + y  # y used twice: dz/dx = (2y + 1) * 3
    z.backward()
    assert x.grad.item() == pytest.approx((2 * 6 + 1) * 3)


def test_grads_of_shared_leaf_do_not_alias():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad.numpy()[0] = 100.0
    assert b.grad.numpy()[0] == 1.0


def test_retain_graph_and_second_backward_error():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.exp([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_saved_arrays_released_after_backward():
    x = leaf(np.ones((10, 10)))
    y = x.exp()
    node = y.grad_fn
    assert node.saved_nbytes == 800
    y.sum().backward()
    assert node.saved_nbytes == 0


def test_backward_on_non_scalar_needs_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_no_grad_records_nothing_and_saves_nothing():
    x = leaf([1.0, 2.0])
    with fc.no_grad():
        y = x.exp()
        with fc.enable_grad():
            z = x.exp()
    assert y.grad_fn is None and not y.requires_grad
    assert z.requires_grad

    @fc.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert fc.is_grad_enabled()


def test_branch_without_grad_is_pruned():
    calls = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * 2

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g * 2

    frozen = fc.tensor(np.ones(3))
    trained = leaf(np.ones(3))
    out = Spy.apply(frozen)
    assert out.grad_fn is None  # nothing recorded, nothing saved
    (out * trained).sum().backward()
    assert calls == []
    np.testing.assert_allclose(trained.grad.numpy(), 2 * np.ones(3))


def test_mul_saves_only_what_the_grad_needs():
    frozen = fc.tensor(np.ones(1000))
    w = leaf(np.ones(1000))
    y = frozen * w
    # only `frozen` is needed (for dw); w itself is not saved
    assert y.grad_fn.saved_nbytes == 8000


def test_deep_chain_has_no_recursion_limit():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_hooks_and_retain_grad():
    x = leaf([1.0, 2.0])
    seen = []
    h = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    post = []
    x.register_post_accumulate_grad_hook(lambda t: post.append(t.grad.numpy().copy()))
    y = x * 3
    y.retain_grad()
    y.register_hook(lambda g: g * 10)  # replaces the gradient flowing into x
    y.sum().backward()
    # like PyTorch, .grad of a retained non-leaf is filled after its hooks ran
    np.testing.assert_allclose(y.grad.numpy(), [10.0, 10.0])
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])
    np.testing.assert_allclose(seen[0], [30.0, 30.0])
    np.testing.assert_allclose(post[0], [30.0, 30.0])
    h.remove()
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_multi_output_function_with_unused_output():
    class Split(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2, a * 3

        @staticmethod
        def backward(ctx, g1, g2):
            return g1 * 2 + g2 * 3

    x = leaf([1.0, 2.0])
    first, _ = Split.apply(x)
    first.sum().backward()  # the second output gets zeros
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_wrong_backward_shape_is_reported():
    class Bad(Function):
        @staticmethod
        def forward(ctx, a):
            return a.sum()

        @staticmethod
        def backward(ctx, g):
            return np.ones(7)

    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(7,\)"):
        Bad.apply(leaf([1.0, 2.0])).backward()


def test_detach_and_requires_grad_rules():
    x = leaf([1.0])
    y = x * 2
    d = y.detach()
    assert d.grad_fn is None and not d.requires_grad
    assert np.shares_memory(d.numpy(), y.numpy())
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        fc.tensor([1.0]).backward()


def test_gradcheck_catches_a_wrong_backward():
    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * a  # should be 2 * a * g

    x = leaf(np.random.default_rng(0).standard_normal((3, 2)))
    with pytest.raises(GradcheckError, match=r"input 0 .*analytical .*numerical"):
        gradcheck(WrongSquare.apply, [x])
    assert gradcheck(WrongSquare.apply, [x], raise_exception=False) is False
    assert gradcheck(lambda a: a * a, [x])


def test_gradcheck_runs_in_float64_and_needs_a_grad_input():
    x = fc.tensor(np.ones(3, np.float32), requires_grad=True)
    assert gradcheck(lambda a: (a * a).sum(), [x])
    with pytest.raises(ValueError, match="requires grad"):
        gradcheck(lambda a: a * 2, [fc.tensor(np.ones(2))])


def test_queued_callback_runs_once_after_backward():
    from fastconv.autograd.engine import queue_callback

    x = leaf([1.0, 2.0])
    order = []

    def hook(t):
        order.append("grad")
        queue_callback(lambda: order.append(("done", t.grad.numpy().sum())))

    x.register_post_accumulate_grad_hook(hook)
    (x * 2).sum().backward()
    assert order == ["grad", ("done", 4.0)]
    (x * 1).sum().backward()
    assert order[-1] == ("done", 6.0) and len(order) == 4


def test_observer_sees_every_call_with_its_saved_bytes():
    from fastconv.autograd.function import add_observer, remove_observer

    seen = []

    def obs(cls, ctx, args, kwargs, outputs):
        seen.append((cls.__name__, ctx.saved_nbytes, tuple(o.shape for o in outputs)))

    add_observer(obs)
    try:
        x = leaf(np.ones((2, 3)))
        (x.exp() * 2).sum()
        with fc.no_grad():
            x.exp()
    finally:
        remove_observer(obs)
    x.exp()
    assert seen == [("Exp", 48, ((2, 3),)), ("Mul", 0, ((2, 3),)), ("Sum", 0, ((),)), ("Exp", 0, ((2, 3),))]


def test_leaf_grads_never_alias_each_other_or_intermediate_arrays():
    """Gradients are kept without a copy only when nothing else can hold the array."""
    a, b, c = leaf([1.0, 2.0]), leaf([3.0, 4.0]), leaf([5.0, 6.0])
    y = (a + b) * 1.0 + c.reshape(2)          # pass-through grads for a, b; a view for c
    y.sum().backward()
    grads = [a.grad.numpy(), b.grad.numpy(), c.grad.numpy()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.shares_memory(grads[i], grads[j])
    a.grad.numpy()[:] = 100.0
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(c.grad.numpy(), [1.0, 1.0])

    d = leaf([1.0, 2.0])
    out = d.exp()                               # backward makes a fresh array: kept as d.grad
    out.sum().backward()
    np.testing.assert_allclose(d.grad.numpy(), np.exp([1.0, 2.0]))
    (d * 2).sum().backward()                    # accumulation does not write into an old array
    np.testing.assert_allclose(d.grad.numpy(), np.exp([1.0, 2.0]) + 2)


def test_grad_mode_is_per_thread():
    """no_grad in one thread leaves other threads recording; a new thread starts with grad on."""
    import threading

    seen = []
    with fc.no_grad():
        assert not fc.is_grad_enabled()
        worker = threading.Thread(target=lambda: seen.append(fc.is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True] and fc.is_grad_enabled()
    fc.set_grad_enabled(False)
    try:
        worker = threading.Thread(target=lambda: seen.append(fc.is_grad_enabled()))
        worker.start()
        worker.join()
        assert seen == [True, True] and not fc.is_grad_enabled()
    finally:
        fc.set_grad_enabled(True)
