"""Optimizers and schedulers against torch.optim (update rules, lr sequences), state_dicts, validation."""
import math
import warnings

import numpy as np
import pytest

import fastconv as fc
from fastconv import optim
from fastconv.optim import lr_scheduler

SHAPES = [(3, 4), (5,)]


def _grad_fn(arrays, step):
    """A deterministic, parameter-dependent gradient (the same numpy function feeds both frameworks)."""
    return [np.sin(a * (1 + i)) + 0.3 * a + 0.1 * math.cos(step + i) for i, a in enumerate(arrays)]


def _initial(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run_ours(cls, groups_of, init, steps, **kwargs):
    params = [fc.tensor(a.copy(), requires_grad=True) for a in init]
    opt = cls(groups_of(params), **kwargs)
    for k in range(steps):
        for p, g in zip(params, _grad_fn([p.numpy() for p in params], k)):
            p.grad = fc.tensor(g)
        opt.step()
    return params, opt


def _run_torch(torch, cls, groups_of, init, steps, **kwargs):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = cls(groups_of(params), **kwargs)
    for k in range(steps):
        for p, g in zip(params, _grad_fn([p.detach().numpy() for p in params], k)):
            p.grad = torch.tensor(g)
        opt.step()
    return params, opt


def _single(params):
    return params


def _assert_same(ours, theirs, atol=1e-6, rtol=0.0):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), atol=atol, rtol=rtol)


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True),
    dict(lr=0.1, weight_decay=0.1, maximize=True),
]
ADAM_CASES = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99)),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.02, amsgrad=True),
    dict(lr=0.01, maximize=True, eps=1e-3),
    dict(lr=0.05, weight_decay=0.05, amsgrad=True, maximize=True),
]


@pytest.mark.parametrize("kwargs", SGD_CASES)
def test_sgd_matches_torch(torch, kwargs):
    init = _initial()
    ours, _ = _run_ours(optim.SGD, _single, init, 20, **kwargs)
    theirs, _ = _run_torch(torch, torch.optim.SGD, _single, init, 20, **kwargs)
    _assert_same(ours, theirs)
    assert not np.allclose(ours[0].numpy(), init[0])  # the parameters did move


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs", ADAM_CASES)
def test_adam_and_adamw_match_torch(torch, name, kwargs):
    init = _initial()
    ours, _ = _run_ours(getattr(optim, name), _single, init, 20, **kwargs)
    theirs, _ = _run_torch(torch, getattr(torch.optim, name), _single, init, 20, **kwargs)
    _assert_same(ours, theirs)


# ---- fused kernels against the numpy formulation of the rules ---------------------------------
def _numpy_sgd(p, grad, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               maximize=False):
    """The rule as numpy operations on arrays of the parameter's dtype (the kernel must match bit for bit)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.copy()
        else:
            buf *= momentum
            buf += grad if dampening == 0 else (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    p -= lr * grad


def _numpy_adam(p, grad, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                maximize=False, decoupled=False):
    beta1, beta2 = betas
    if maximize:
        grad = -grad
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    step = state["step"]
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * p
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg += (1 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    second = exp_avg_sq
    if amsgrad:
        np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        second = state["max_exp_avg_sq"]
    denom = np.sqrt(second) / math.sqrt(1 - beta2 ** step) + eps
    p -= lr / (1 - beta1 ** step) * (exp_avg / denom)


def _compare_with_numpy(cls, reference, kwargs, dtype, shapes, steps=6, threads=1, transpose=False):
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    if transpose:  # parameters that are non-contiguous views
        init = [a.T for a in init]
    params = [fc.Tensor(a.copy(order="K"), requires_grad=True) for a in init]
    assert all(p.numpy().flags.c_contiguous != transpose for p in params)
    refs = [a.copy() for a in init]
    states = [{} for _ in init]
    ref_kwargs = {("decoupled" if k == "decoupled_weight_decay" else k): v for k, v in kwargs.items()}
    if cls is optim.AdamW:
        ref_kwargs["decoupled"] = True
        ref_kwargs.setdefault("weight_decay", 1e-2)
    opt = cls(params, **kwargs)
    previous = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        for _ in range(steps):
            grads = [rng.standard_normal(a.shape).astype(dtype) for a in init]
            for p, g in zip(params, grads):
                p.grad = fc.tensor(g)
            opt.step()
            for r, g, st in zip(refs, grads, states):
                reference(r, g, st, **ref_kwargs)
    finally:
        fc.set_num_threads(previous)
    for p, r, st in zip(params, refs, states):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p.numpy(), r)
        for key, value in st.items():
            np.testing.assert_array_equal(opt.state[p][key], value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", SGD_CASES + [dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.2)])
def test_sgd_kernel_matches_numpy_rule_bit_for_bit(kwargs, dtype):
    _compare_with_numpy(optim.SGD, _numpy_sgd, kwargs, dtype, [(3, 4), (5,), (7, 2, 3)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs", ADAM_CASES)
def test_adam_kernel_matches_numpy_rule_bit_for_bit(name, kwargs, dtype):
    _compare_with_numpy(getattr(optim, name), _numpy_adam, kwargs, dtype, [(3, 4), (5,), (7, 2, 3)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cls,reference,kwargs", [
    (optim.SGD, _numpy_sgd, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, _numpy_adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
])
def test_fused_update_of_large_and_non_contiguous_params(cls, reference, kwargs, threads):
    """Parameters above the parallel threshold (split into blocks over threads) and transposed views."""
    from fastconv.optim.optimizer import PARALLEL_MIN_ELEMENTS

    _compare_with_numpy(cls, reference, kwargs, np.float32, [(PARALLEL_MIN_ELEMENTS + 4099,), (6,)],
                        steps=3, threads=threads)
    _compare_with_numpy(cls, reference, kwargs, np.float64, [(3, 5), (4, 2)], steps=3, transpose=True)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
                                         ("AdamW", dict(lr=0.01, amsgrad=True))])
def test_large_float32_params_match_torch_on_two_threads(torch, name, kwargs):
    """A parameter above the parallel threshold, updated in blocks by two threads, against torch."""
    from fastconv.optim.optimizer import PARALLEL_MIN_ELEMENTS

    rng = np.random.default_rng(8)
    init = rng.standard_normal(PARALLEL_MIN_ELEMENTS + 1000).astype(np.float32)
    grads = [rng.standard_normal(init.shape).astype(np.float32) for _ in range(5)]
    ours = fc.tensor(init.copy(), requires_grad=True)
    theirs = torch.tensor(init.copy(), requires_grad=True)
    opt, topt = getattr(optim, name)([ours], **kwargs), getattr(torch.optim, name)([theirs], **kwargs)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        for g in grads:
            ours.grad, theirs.grad = fc.tensor(g), torch.tensor(g)
            opt.step()
            topt.step()
    finally:
        fc.set_num_threads(previous)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.numpy(), init)


def test_fused_update_takes_the_gradient_in_the_parameter_dtype_and_checks_its_shape():
    p = fc.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    p.grad = fc.tensor(np.array([1.0, 2.0, 4.0]))  # float64 gradient of a float32 parameter
    opt.step()
    assert p.dtype == np.float32 and opt.state[p]["momentum_buffer"].dtype == np.float32
    np.testing.assert_array_equal(p.numpy(), np.array([0.5, 0.0, -1.0], dtype=np.float32))
    p.grad = fc.tensor(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"SGD: gradient of shape \(4,\) does not match its parameter of shape \(3,\)"):
        opt.step()


def test_amsgrad_max_keeps_nan_like_numpy():
    """A NaN gradient makes v̂ NaN (np.maximum propagates NaN) in the kernel too."""
    p = fc.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([p], lr=0.1, amsgrad=True)
    p.grad = fc.tensor(np.array([np.nan, 1.0]))
    opt.step()
    p.grad = fc.tensor(np.array([1.0, 1.0]))
    opt.step()
    assert np.isnan(opt.state[p]["max_exp_avg_sq"][0]) and np.isfinite(opt.state[p]["max_exp_avg_sq"][1])


def test_state_loaded_in_another_layout_continues_identically():
    """A Fortran-ordered loaded buffer is taken as a C-contiguous copy with the same values."""
    init = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    a = fc.tensor(init.copy(), requires_grad=True)
    b = fc.tensor(init.copy(), requires_grad=True)
    opt_a, opt_b = optim.SGD([a], lr=0.1, momentum=0.9), optim.SGD([b], lr=0.1, momentum=0.9)
    a.grad = fc.tensor(np.cos(init))
    opt_a.step()
    sd = opt_a.state_dict()
    sd["state"][0]["momentum_buffer"] = np.asfortranarray(sd["state"][0]["momentum_buffer"])
    b.numpy()[...] = a.numpy()
    opt_b.load_state_dict(sd)
    assert opt_b.state[b]["momentum_buffer"].flags.c_contiguous
    for opt, p in ((opt_a, a), (opt_b, b)):
        p.grad = fc.tensor(np.sin(init))
        opt.step()
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def _fine_tuning_groups(params):
    """A pretrained backbone with a small lr and a new head with the default (large) lr."""
    return [{"params": [params[0]], "lr": 1e-3, "momentum": 0.5}, {"params": [params[1]]}]


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05)),
                                         ("AdamW", dict(lr=0.05, weight_decay=0.1))])
def test_param_groups_with_different_lrs_match_torch(torch, name, kwargs):
    init = _initial(1)
    if name != "SGD":  # Adam has no momentum option; give its backbone group different betas instead
        def groups(params):
            return [{"params": [params[0]], "lr": 1e-3, "betas": (0.5, 0.9)}, {"params": [params[1]]}]
    else:
        groups = _fine_tuning_groups
    ours, opt = _run_ours(getattr(optim, name), groups, init, 20, **kwargs)
    theirs, _ = _run_torch(torch, getattr(torch.optim, name), groups, init, 20, **kwargs)
    _assert_same(ours, theirs)
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[1]["lr"] == kwargs["lr"]


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1,
                                                      maximize=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True))])
def test_float32_params_stay_float32_and_match_torch(torch, name, kwargs):
    init = _initial(2, np.float32)
    ours, opt = _run_ours(getattr(optim, name), _single, init, 20, **kwargs)
    theirs, _ = _run_torch(torch, getattr(torch.optim, name), _single, init, 20, **kwargs)
    assert all(p.dtype == np.float32 for p in ours)
    assert all(v.dtype == np.float32 for st in opt.state_dict()["state"].values()
               for v in st.values() if isinstance(v, np.ndarray))
    _assert_same(ours, theirs, atol=1e-5)


def test_sgd_through_autograd_minimizes_a_loss():
    """End to end with the tape: a least-squares fit converges to the numpy solution."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.25
    w = fc.tensor(np.zeros(3), requires_grad=True)
    b = fc.tensor(np.zeros(1), requires_grad=True)
    opt = optim.SGD([w, b], lr=0.1, momentum=0.9)
    for _ in range(500):
        opt.zero_grad()
        loss = fc.nn.functional.mse_loss(fc.tensor(x) @ w + b, y)
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), [1.0, -2.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(b.numpy(), [0.25], atol=1e-6)


def test_params_without_grad_are_skipped():
    a = fc.tensor(np.ones(3), requires_grad=True)
    frozen = fc.tensor(np.ones(3), requires_grad=True)
    for opt in (optim.SGD([a, frozen], lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam([a, frozen])):
        a.grad = fc.tensor(np.ones(3))
        opt.step()
        np.testing.assert_array_equal(frozen.numpy(), np.ones(3))
        assert frozen not in opt.state and a in opt.state


def test_zero_grad_modes():
    p = fc.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = fc.tensor(np.array([1.0, 2.0]))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_step_closure_returns_loss():
    p = fc.tensor(np.array([2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.numpy(), [2.0 - 0.25 * 4.0])


def test_add_param_group_fills_defaults():
    a = fc.tensor(np.ones(2), requires_grad=True)
    b = fc.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.8, 0.9)
    assert opt.param_groups[1]["params"][0] is b
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


# ---- state_dict ---------------------------------------------------------------------------------
def _plain_only(obj):
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and _plain_only(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain_only(v) for v in obj)
    return obj is None or isinstance(obj, (np.ndarray, bool, int, float, str))  # None: torch's foreach/fused


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("AdamW", dict(lr=0.01, betas=(0.8, 0.95)))])
def test_state_dict_round_trip_continues_identically(name, kwargs, tmp_path):
    cls = getattr(optim, name)
    init = _initial(4)
    params, opt = _run_ours(cls, _fine_tuning_groups if name == "SGD" else _single, init, 10, **kwargs)
    sd = opt.state_dict()
    assert _plain_only(sd)
    assert [g["params"] for g in sd["param_groups"]] in ([[0], [1]], [[0, 1]])
    snapshot = {k: {n: v.copy() if isinstance(v, np.ndarray) else v for n, v in s.items()}
                for k, s in sd["state"].items()}

    clones = [fc.tensor(p.numpy().copy(), requires_grad=True) for p in params]
    other = cls(_fine_tuning_groups(clones) if name == "SGD" else clones, lr=123.0)
    fc.save(sd, tmp_path / "opt.npz")  # through the pickle-free checkpoint format
    other.load_state_dict(fc.load(tmp_path / "opt.npz"))
    for k in range(10, 20):
        for group in (params, clones):
            for p, g in zip(group, _grad_fn([p.numpy() for p in group], k)):
                p.grad = fc.tensor(g)
        opt.step()
        other.step()
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # the saved dict was a snapshot: later steps did not change it
    for k, s in sd["state"].items():
        for n, v in s.items():
            np.testing.assert_array_equal(v, snapshot[k][n])


@pytest.mark.parametrize("name,kwargs,keys", [
    ("SGD", dict(lr=0.1, momentum=0.9), {"momentum_buffer"}),
    ("Adam", dict(amsgrad=True), {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
])
def test_state_dict_layout_matches_torch(torch, name, kwargs, keys):
    init = _initial(5)
    _, ours = _run_ours(getattr(optim, name), _single, init, 3, **kwargs)
    _, theirs = _run_torch(torch, getattr(torch.optim, name), _single, init, 3, **kwargs)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert set(sd["state"]) == set(tsd["state"]) == {0, 1}
    assert set(sd["state"][0]) == set(tsd["state"][0]) == keys
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"]
    for key, value in sd["param_groups"][0].items():
        expected = tsd["param_groups"][0][key]
        assert value == (list(expected) if isinstance(expected, tuple) else expected)
    for k in keys - {"step"}:
        np.testing.assert_allclose(sd["state"][1][k], tsd["state"][1][k].numpy(), atol=1e-12)
    if "step" in keys:
        assert sd["state"][0]["step"] == int(tsd["state"][0]["step"])


def test_load_state_dict_rejects_mismatches():
    a = fc.tensor(np.ones(3), requires_grad=True)
    b = fc.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = fc.tensor(np.ones(3)), fc.tensor(np.ones(2))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="SGD: loaded state dict has a parameter group 0 of size 2, .* has 1"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="SGD: loaded state dict has 1 parameter groups, the optimizer has 2"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(3,\), .* \(2,\)"):
        optim.SGD([b, a], lr=0.1).load_state_dict(sd)


def test_optimizer_validation():
    p = fc.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="SGD: expected lr >= 0.0, got -0.1"):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="SGD: nesterov momentum requires momentum > 0 and zero dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: expected betas\[1\] >= 0.0 and < 1.0, got 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="AdamW: expected eps >= 0.0, got -1"):
        optim.AdamW([p], eps=-1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got a Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="same parameter more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64 parameters, got .* int64"):
        optim.SGD([fc.tensor(np.ones(2, dtype=np.int64))], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="SGD: expected momentum >= 0.0, got -1"):
        optim.SGD([{"params": [p], "momentum": -1}], lr=0.1)


# ---- schedulers ---------------------------------------------------------------------------------
def _two_group_optimizers(torch):
    ours = optim.SGD([{"params": [fc.tensor(np.ones(2), requires_grad=True)], "lr": 0.1},
                      {"params": [fc.tensor(np.ones(2), requires_grad=True)], "lr": 0.01}], lr=1.0)
    theirs = torch.optim.SGD([{"params": [torch.ones(2, requires_grad=True)], "lr": 0.1},
                              {"params": [torch.ones(2, requires_grad=True)], "lr": 0.01}], lr=1.0)
    return ours, theirs


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e / (1 + (e % 4)))),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULERS)
def test_schedulers_match_torch_lr_sequences(torch, name, kwargs):
    ours_opt, torch_opt = _two_group_optimizers(torch)
    ours = getattr(lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
    for epoch in range(30):
        ours_opt.step()
        torch_opt.step()
        if epoch == 12:  # a hand-made change carries on (chainable schedulers) in both
            ours_opt.param_groups[0]["lr"] *= 0.5
            torch_opt.param_groups[0]["lr"] *= 0.5
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose([g["lr"] for g in ours_opt.param_groups],
                                   [g["lr"] for g in torch_opt.param_groups], rtol=1e-9, atol=1e-15)


def test_lambda_lr_one_function_per_group(torch):
    lambdas = [lambda e: 1 / (e + 1), lambda e: 0.5 ** e]
    ours_opt, torch_opt = _two_group_optimizers(torch)
    ours, theirs = lr_scheduler.LambdaLR(ours_opt, lambdas), torch.optim.lr_scheduler.LambdaLR(torch_opt, lambdas)
    for _ in range(6):
        ours_opt.step(), torch_opt.step(), ours.step(), theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)


@pytest.mark.parametrize("name,kwargs", [("StepLR", dict(step_size=3, gamma=0.5)),
                                         ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001))])
def test_step_with_explicit_epoch_uses_closed_form(torch, name, kwargs):
    ours_opt, torch_opt = _two_group_optimizers(torch)
    ours = getattr(lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates the epoch argument
        for epoch in (4, 9, 2):
            ours_opt.step(), torch_opt.step()
            ours.step(epoch)
            theirs.step(epoch)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)


PLATEAU_METRICS = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.85, 0.85, 0.86, 0.87, 0.88, 0.8, 0.8, 0.8, 0.8,
                   0.8, 0.7999, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]

PLATEAU_CASES = [
    dict(patience=2),
    dict(mode="min", factor=0.5, patience=1, cooldown=2, min_lr=0.002),
    dict(mode="max", factor=0.5, patience=0, threshold=0.05, threshold_mode="abs", min_lr=[0.02, 0.0]),
    dict(mode="min", factor=0.9, patience=0, threshold=0.01, eps=0.006),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES)
def test_reduce_lr_on_plateau_matches_torch(torch, kwargs):
    ours_opt, torch_opt = _two_group_optimizers(torch)
    ours = lr_scheduler.ReduceLROnPlateau(ours_opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, **kwargs)
    changes = 0
    previous = ours.get_last_lr()
    for metric in PLATEAU_METRICS:
        ours.step(metric)
        theirs.step(metric)
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
        changes += ours.get_last_lr() != previous
        previous = ours.get_last_lr()
    assert changes > 0  # the script does trigger reductions


def test_reduce_lr_on_plateau_accepts_tensor_metric_and_validates():
    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    sched.step(fc.tensor(np.array(1.0)))
    sched.step(np.float64(2.0))
    assert sched.get_last_lr() == [0.1]
    with pytest.raises(ValueError, match="ReduceLROnPlateau: expected factor >= 0.0 and < 1.0, got 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="expected mode 'min' or 'max', got 'up'"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="expected 1 min_lrs"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])


@pytest.mark.parametrize("make", [
    lambda o: lr_scheduler.StepLR(o, 2, 0.5),
    lambda o: lr_scheduler.MultiStepLR(o, [1, 3, 3], 0.5),
    lambda o: lr_scheduler.CosineAnnealingLR(o, 5, 0.01),
    lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1, cooldown=1),
])
def test_scheduler_state_dict_round_trip_through_save(make, tmp_path):
    """Optimizer and scheduler state go through fastconv.save/load (no pickle) and resume identically."""
    metrics = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]

    def advance(opt, sched, values):
        out = []
        for m in values:
            opt.step()
            sched.step(m) if isinstance(sched, lr_scheduler.ReduceLROnPlateau) else sched.step()
            out.append(sched.get_last_lr())
        return out

    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0, momentum=0.9)
    sched = make(opt)
    advance(opt, sched, metrics[:6])
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    assert _plain_only(sched_sd) and _plain_only(opt_sd)
    expected = advance(opt, sched, metrics[6:])

    fc.save({"optimizer": opt_sd, "scheduler": sched_sd}, tmp_path / "ckpt.npz")
    loaded = fc.load(tmp_path / "ckpt.npz")
    opt2 = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0, momentum=0.9)
    opt2.load_state_dict(loaded["optimizer"])
    sched2 = make(opt2)
    sched2.load_state_dict(loaded["scheduler"])
    assert advance(opt2, sched2, metrics[6:]) == expected


def test_scheduler_validation_and_resume_requirements():
    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="StepLR: expected step_size >= 1, got 0"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(TypeError, match="CosineAnnealingLR: expected T_max as an int, got 2.5"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=2.5)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="expected a fastconv.optim.Optimizer"):
        lr_scheduler.ExponentialLR([1.0], gamma=0.5)
    with pytest.raises(ValueError, match="LambdaLR: expected 1 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0])
