"""Adagrad, RMSprop, Adadelta and the schedulers OneCycleLR, LinearLR, ConstantLR, PolynomialLR,
MultiplicativeLR, SequentialLR, ChainedScheduler, CosineAnnealingWarmRestarts against torch.optim
(30-step sequences), numpy references of the fused kernels, state_dicts, param_groups."""
import math
import warnings

import numpy as np
import pytest

import fastconv as fc
from fastconv import optim
from fastconv.optim import lr_scheduler

SHAPES = [(3, 4), (5,)]


def _grad_fn(arrays, step):
    return [np.sin(a * (1 + i)) + 0.3 * a + 0.1 * math.cos(step + i) for i, a in enumerate(arrays)]


def _run(lib, make, dtype, steps=30, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    if lib == "ours":
        params = [fc.tensor(a.copy(), requires_grad=True) for a in init]
        value = lambda p: p.numpy()  # noqa: E731
        wrap = fc.tensor
    else:
        import torch
        params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
        value = lambda p: p.detach().numpy()  # noqa: E731
        wrap = torch.tensor
    opt = make(params)
    for k in range(steps):
        for p, g in zip(params, _grad_fn([value(p) for p in params], k)):
            p.grad = wrap(g.astype(dtype))
        opt.step()
    return [value(p).copy() for p in params], opt


OPTIMIZER_CASES = [
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(maximize=True, eps=1e-3)),
    ("RMSprop", {}),
    ("RMSprop", dict(momentum=0.9)),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(centered=True, momentum=0.5, weight_decay=0.1, alpha=0.9, lr=0.02)),
    ("RMSprop", dict(maximize=True, eps=1e-4)),
    ("Adadelta", {}),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True, eps=1e-4)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES)
def test_optimizers_match_torch_for_30_steps(torch, name, kwargs, dtype):
    ours, opt = _run("ours", lambda ps: getattr(optim, name)(ps, **kwargs), dtype)
    theirs, topt = _run("torch", lambda ps: getattr(torch.optim, name)(ps, **kwargs), dtype)
    for a, b in zip(ours, theirs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, atol=1e-6 if dtype == np.float32 else 1e-12, rtol=0)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert set(sd["state"][0]) == set(tsd["state"][0])
    assert sd["state"][0]["step"] == int(tsd["state"][0]["step"]) == 30
    for key in set(sd["state"][1]) - {"step"}:
        np.testing.assert_allclose(sd["state"][1][key], tsd["state"][1][key].numpy(),
                                   rtol=2e-6 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)


# ---- the fused kernels against the rules written as numpy operations --------------------------------
def _numpy_adagrad(p, g, st, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                   maximize=False):
    if not st:
        st.update(step=0, sum=np.full_like(p, initial_accumulator_value))
    st["step"] += 1
    d = -g if maximize else g
    if weight_decay:
        d = d + weight_decay * p
    clr = lr / (1 + (st["step"] - 1) * lr_decay)
    st["sum"] += d * d
    p -= clr * (d / (np.sqrt(st["sum"]) + eps))


def _numpy_rmsprop(p, g, st, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                   maximize=False):
    if not st:
        st.update(step=0, square_avg=np.zeros_like(p))
        if momentum > 0:
            st["momentum_buffer"] = np.zeros_like(p)
        if centered:
            st["grad_avg"] = np.zeros_like(p)
    st["step"] += 1
    d = -g if maximize else g
    if weight_decay:
        d = d + weight_decay * p
    v = st["square_avg"]
    v *= alpha
    v += (1 - alpha) * d * d
    if centered:
        a = st["grad_avg"]
        a += (1 - alpha) * (d - a)
        r = np.sqrt(v - a * a) + eps
    else:
        r = np.sqrt(v) + eps
    if momentum > 0:
        b = st["momentum_buffer"]
        b *= momentum
        b += d / r
        p -= lr * b
    else:
        p -= lr * (d / r)


def _numpy_adadelta(p, g, st, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    if not st:
        st.update(step=0, square_avg=np.zeros_like(p), acc_delta=np.zeros_like(p))
    st["step"] += 1
    d = -g if maximize else g
    if weight_decay:
        d = d + weight_decay * p
    v, a = st["square_avg"], st["acc_delta"]
    v *= rho
    v += (1 - rho) * d * d
    u = np.sqrt(a + eps) / np.sqrt(v + eps) * d
    a *= rho
    a += (1 - rho) * u * u
    p -= lr * u


REFERENCES = {"Adagrad": _numpy_adagrad, "RMSprop": _numpy_rmsprop, "Adadelta": _numpy_adadelta}


def _compare_with_numpy(name, kwargs, dtype, shapes, steps=5, threads=1, transpose=False):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    if transpose:
        init = [a.T for a in init]
    params = [fc.Tensor(a.copy(order="K"), requires_grad=True) for a in init]
    refs, states = [a.copy() for a in init], [{} for _ in init]
    opt = getattr(optim, name)(params, **kwargs)
    previous = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        for _ in range(steps):
            grads = [rng.standard_normal(a.shape).astype(dtype) for a in init]
            for p, g in zip(params, grads):
                p.grad = fc.tensor(g)
            opt.step()
            for r, g, st in zip(refs, grads, states):
                REFERENCES[name](r, g, st, **kwargs)
    finally:
        fc.set_num_threads(previous)
    for p, r, st in zip(params, refs, states):
        np.testing.assert_array_equal(p.numpy(), r)
        for key, value in st.items():
            np.testing.assert_array_equal(opt.state[p][key], value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES)
def test_kernels_match_numpy_rules_bit_for_bit(name, kwargs, dtype):
    _compare_with_numpy(name, kwargs, dtype, [(3, 4), (5,), (7, 2, 3)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name,kwargs", [("Adagrad", dict(lr_decay=0.1, weight_decay=0.01)),
                                         ("RMSprop", dict(centered=True, momentum=0.9, weight_decay=0.01)),
                                         ("Adadelta", dict(weight_decay=0.01, maximize=True))])
def test_large_and_non_contiguous_parameters(name, kwargs, threads):
    from fastconv.optim.optimizer import PARALLEL_MIN_ELEMENTS

    _compare_with_numpy(name, kwargs, np.float32, [(PARALLEL_MIN_ELEMENTS + 4099,), (6,)], steps=3,
                        threads=threads)
    _compare_with_numpy(name, kwargs, np.float64, [(3, 5), (4, 2)], steps=3, transpose=True)


# ---- param_groups, state_dicts, construction -------------------------------------------------------------
ALL = [("SGD", dict(lr=0.1)), ("Adam", {}), ("AdamW", {}), ("Adagrad", {}), ("RMSprop", {}), ("Adadelta", {})]


@pytest.mark.parametrize("name,kwargs", ALL)
def test_param_group_keys_and_values_match_torch(torch, name, kwargs):
    ours = getattr(optim, name)([fc.tensor(np.ones(2), requires_grad=True)], **kwargs)
    theirs = getattr(torch.optim, name)([torch.ones(2, requires_grad=True)], **kwargs)
    group, tgroup = ours.param_groups[0], theirs.param_groups[0]
    assert set(group) == set(tgroup)
    for key in set(tgroup) - {"params"}:
        assert group[key] == tgroup[key], key
    assert set(ours.state_dict()["param_groups"][0]) == set(theirs.state_dict()["param_groups"][0])


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adagrad", "RMSprop"])
def test_named_parameters_are_accepted_like_torch(torch, name):
    model = fc.nn.Linear(3, 2)
    tmodel = torch.nn.Linear(3, 2)
    kwargs = dict(lr=0.1)
    ours = getattr(optim, name)(model.named_parameters(), **kwargs)
    theirs = getattr(torch.optim, name)(tmodel.named_parameters(), **kwargs)
    assert ours.param_groups[0]["param_names"] == theirs.param_groups[0]["param_names"] == ["weight", "bias"]
    assert ours.param_groups[0]["params"][0] is model.weight
    assert ours.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]
    with pytest.raises(ValueError, match="all optimizer params should be with/without names"):
        getattr(optim, name)([("weight", model.weight), model.bias], lr=0.1)


def test_adagrad_creates_its_state_at_construction_like_torch(torch):
    ours = optim.Adagrad([fc.tensor(np.ones(3, np.float32), requires_grad=True)], initial_accumulator_value=0.3)
    theirs = torch.optim.Adagrad([torch.ones(3, requires_grad=True)], initial_accumulator_value=0.3)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert set(sd["state"]) == set(tsd["state"]) == {0}
    assert sd["state"][0]["step"] == 0
    np.testing.assert_array_equal(sd["state"][0]["sum"], tsd["state"][0]["sum"].numpy())


@pytest.mark.parametrize("name,kwargs", [("Adagrad", dict(lr_decay=0.05)), ("RMSprop", dict(momentum=0.9,
                                                                                             centered=True)),
                                         ("Adadelta", dict(rho=0.8))])
def test_state_dict_round_trip_through_save_continues_identically(name, kwargs, tmp_path):
    make = lambda ps: getattr(optim, name)(ps, **kwargs)  # noqa: E731
    full, _ = _run("ours", make, np.float64, steps=12)
    params = [fc.tensor(a, requires_grad=True) for a in _run("ours", make, np.float64, steps=0)[0]]
    opt = make(params)
    for k in range(6):
        for p, g in zip(params, _grad_fn([p.numpy() for p in params], k)):
            p.grad = fc.tensor(g)
        opt.step()
    fc.save({"opt": opt.state_dict(), "params": [p.numpy() for p in params]}, tmp_path / "ckpt.npz")
    loaded = fc.load(tmp_path / "ckpt.npz")
    params2 = [fc.tensor(a, requires_grad=True) for a in loaded["params"]]
    opt2 = make(params2)
    opt2.load_state_dict(loaded["opt"])
    for k in range(6, 12):
        for p, g in zip(params2, _grad_fn([p.numpy() for p in params2], k)):
            p.grad = fc.tensor(g)
        opt2.step()
    for a, p in zip(full, params2):
        np.testing.assert_array_equal(a, p.numpy())


def test_new_optimizer_validation():
    p = [fc.tensor(np.ones(2), requires_grad=True)]
    with pytest.raises(ValueError, match="Adagrad: expected lr_decay >= 0.0, got -1"):
        optim.Adagrad(p, lr_decay=-1)
    with pytest.raises(ValueError, match="RMSprop: expected alpha >= 0.0, got -0.5"):
        optim.RMSprop(p, alpha=-0.5)
    with pytest.raises(ValueError, match="Adadelta: expected rho >= 0.0 and <= 1.0, got 1.5"):
        optim.Adadelta(p, rho=1.5)
    with pytest.raises(ValueError, match="SGD: differentiable=True .* is not supported"):
        optim.SGD(p, lr=0.1, differentiable=True)
    optim.AdamW(p, fused=True, foreach=False)  # accepted: every update is one fused kernel call already
    with pytest.raises(TypeError, match="Adam: expected fused as None or a bool"):
        optim.Adam(p, fused="yes")


# ---- schedulers ----------------------------------------------------------------------------------------
def _two_groups(torch, cls="SGD", **kwargs):
    ours = getattr(optim, cls)([{"params": [fc.tensor(np.ones(2), requires_grad=True)], "lr": 0.1},
                                {"params": [fc.tensor(np.ones(2), requires_grad=True)], "lr": 0.01}], **kwargs)
    theirs = getattr(torch.optim, cls)([{"params": [torch.ones(2, requires_grad=True)], "lr": 0.1},
                                        {"params": [torch.ones(2, requires_grad=True)], "lr": 0.01}], **kwargs)
    return ours, theirs


SCHEDULERS = [
    ("LinearLR", dict(start_factor=0.25, total_iters=8)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=20)),
    ("ConstantLR", dict(factor=0.5, total_iters=4)),
    ("PolynomialLR", dict(total_iters=12, power=2.0)),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9 if e % 3 else 1.1)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingWarmRestarts", dict(T_0=5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
]


def _compare_steps(ours_opt, torch_opt, ours, theirs, steps=30, metric_keys=()):
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
    for _ in range(steps):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-9, atol=1e-15)
        for g, tg in zip(ours_opt.param_groups, torch_opt.param_groups):
            np.testing.assert_allclose(g["lr"], tg["lr"], rtol=1e-9, atol=1e-15)
            for key in metric_keys:
                np.testing.assert_allclose(g[key], tg[key], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name,kwargs", SCHEDULERS)
def test_schedulers_match_torch(torch, name, kwargs):
    ours_opt, torch_opt = _two_groups(torch)
    ours = getattr(lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    _compare_steps(ours_opt, torch_opt, ours, theirs)


@pytest.mark.parametrize("name,kwargs", [("LinearLR", dict(start_factor=0.25, total_iters=8)),
                                         ("ConstantLR", dict(factor=0.5, total_iters=4)),
                                         ("PolynomialLR", dict(total_iters=12, power=2.0))])
def test_explicit_epochs_use_the_closed_form(torch, name, kwargs):
    ours_opt, torch_opt = _two_groups(torch)
    ours = getattr(lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    for epoch in (3, 9, 1, 15):
        with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)`"):
            ours.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.step(epoch)
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)


def test_cosine_warm_restarts_with_fractional_epochs(torch):
    ours_opt, torch_opt = _two_groups(torch)
    ours = lr_scheduler.CosineAnnealingWarmRestarts(ours_opt, T_0=2, T_mult=2, eta_min=1e-4)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(torch_opt, T_0=2, T_mult=2, eta_min=1e-4)
    iters = 4
    for epoch in range(8):
        for i in range(iters):
            ours.step(epoch + i / iters)
            theirs.step(epoch + i / iters)
            np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
    assert ours.T_i == theirs.T_i and ours.T_cur == pytest.approx(theirs.T_cur)
    with pytest.raises(ValueError, match="expected a non-negative epoch"):
        ours.step(-1)


ONE_CYCLE = [
    ("SGD", dict(momentum=0.9), dict(max_lr=1.0, total_steps=30)),
    ("SGD", dict(momentum=0.9), dict(max_lr=[1.0, 0.5], total_steps=30, anneal_strategy="linear")),
    ("SGD", dict(momentum=0.9), dict(max_lr=0.3, epochs=3, steps_per_epoch=10, three_phase=True, pct_start=0.25)),
    ("SGD", dict(), dict(max_lr=0.3, total_steps=30, cycle_momentum=False, div_factor=10.0, final_div_factor=100.0)),
    ("Adam", dict(), dict(max_lr=0.01, total_steps=30, base_momentum=0.8, max_momentum=0.9)),
    ("AdamW", dict(), dict(max_lr=0.01, total_steps=30, three_phase=True, anneal_strategy="linear")),
    ("RMSprop", dict(momentum=0.5), dict(max_lr=0.05, total_steps=30)),
]


@pytest.mark.parametrize("cls,opt_kwargs,kwargs", ONE_CYCLE)
def test_one_cycle_matches_torch_including_momentum(torch, cls, opt_kwargs, kwargs):
    ours_opt, torch_opt = _two_groups(torch, cls, **opt_kwargs)
    ours = lr_scheduler.OneCycleLR(ours_opt, **kwargs)
    theirs = torch.optim.lr_scheduler.OneCycleLR(torch_opt, **kwargs)
    keys = () if not kwargs.get("cycle_momentum", True) else (("betas",) if "Adam" in cls else ("momentum",))
    _compare_steps(ours_opt, torch_opt, ours, theirs, steps=29, metric_keys=keys)
    for key in ("initial_lr", "max_lr", "min_lr"):
        assert [g[key] for g in ours_opt.param_groups] == pytest.approx([g[key] for g in torch_opt.param_groups])
    ours_opt.step()
    ours.step()  # step 30 of 30 is allowed
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 31 times; the specified number of total steps"):
        ours.step()


def test_one_cycle_validation():
    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="you must define either total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="expected pct_start as a float between 0 and 1"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=1)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear'"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length as optimizer.param_groups"):
        lr_scheduler.OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Adagrad([fc.tensor(np.ones(1), requires_grad=True)]), max_lr=1.0,
                                total_steps=10)


@pytest.mark.parametrize("make", [
    lambda lib, o: lib.SequentialLR(o, [lib.LinearLR(o, start_factor=0.1, total_iters=5),
                                        lib.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
    lambda lib, o: lib.SequentialLR(o, [lib.ConstantLR(o, factor=0.1, total_iters=3), lib.ExponentialLR(o, 0.9),
                                        lib.StepLR(o, 4, 0.5)], milestones=[6, 15]),
    lambda lib, o: lib.ChainedScheduler([lib.ConstantLR(o, factor=0.1, total_iters=4), lib.ExponentialLR(o, 0.9)]),
    lambda lib, o: lib.ChainedScheduler([lib.LinearLR(o, start_factor=0.5, total_iters=6),
                                         lib.MultiStepLR(o, [8, 12], 0.3)], optimizer=o),
])
def test_composed_schedulers_match_torch(torch, make):
    ours_opt, torch_opt = _two_groups(torch)
    ours = make(lr_scheduler, ours_opt)
    theirs = make(torch.optim.lr_scheduler, torch_opt)
    _compare_steps(ours_opt, torch_opt, ours, theirs)


def test_composed_scheduler_state_round_trips_through_save(tmp_path):
    def make(o):
        return lr_scheduler.SequentialLR(o, [lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
                                             lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)],
                                         milestones=[4])

    def advance(opt, sched, n):
        out = []
        for _ in range(n):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr())
        return out

    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched = make(opt)
    advance(opt, sched, 7)
    fc.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.npz")
    expected = advance(opt, sched, 10)
    loaded = fc.load(tmp_path / "s.npz")
    opt2 = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    opt2.load_state_dict(loaded["opt"])
    sched2 = make(opt2)
    sched2.load_state_dict(loaded["sched"])
    assert advance(opt2, sched2, 10) == expected


@pytest.mark.parametrize("name,kwargs", [("ExponentialLR", dict(gamma=0.9)),
                                         ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01)),
                                         ("LinearLR", dict(start_factor=0.2, total_iters=10)),
                                         ("StepLR", dict(step_size=3, gamma=0.5))])
def test_resuming_with_last_epoch_matches_torch(torch, name, kwargs):
    """A scheduler built with last_epoch (after loading the optimizer) keeps the current lrs at its
    initial step, as torch 2.13 does, then continues."""
    ours_opt, torch_opt = _two_groups(torch)
    for opt in (ours_opt, torch_opt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
            group["lr"] *= 0.5
    ours = getattr(lr_scheduler, name)(ours_opt, last_epoch=4, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, last_epoch=4, **kwargs)
    _compare_steps(ours_opt, torch_opt, ours, theirs, steps=12)


def test_every_scheduler_has_get_last_lr():
    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0, momentum=0.9)
    made = [lr_scheduler.LambdaLR(opt, lambda e: 1.0), lr_scheduler.MultiplicativeLR(opt, lambda e: 1.0),
            lr_scheduler.StepLR(opt, 2), lr_scheduler.MultiStepLR(opt, [2]), lr_scheduler.ConstantLR(opt),
            lr_scheduler.LinearLR(opt), lr_scheduler.ExponentialLR(opt, 0.9), lr_scheduler.PolynomialLR(opt),
            lr_scheduler.CosineAnnealingLR(opt, 5), lr_scheduler.CosineAnnealingWarmRestarts(opt, 5),
            lr_scheduler.OneCycleLR(opt, 1.0, total_steps=10), lr_scheduler.ReduceLROnPlateau(opt)]
    made += [lr_scheduler.SequentialLR(opt, [lr_scheduler.ConstantLR(opt), lr_scheduler.ExponentialLR(opt, 0.9)],
                                       [3]),
             lr_scheduler.ChainedScheduler([lr_scheduler.StepLR(opt, 2)])]
    assert {type(s).__name__ for s in made} == set(lr_scheduler.__all__) - {"LRScheduler"}
    for s in made:
        lrs = s.get_last_lr()
        assert isinstance(lrs, list) and len(lrs) == 1 and isinstance(lrs[0], float)


def test_scheduler_argument_errors():
    opt = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="LinearLR: expected start_factor in \\(0, 1\\], got 0"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="ConstantLR: expected factor in \\[0, 1\\], got 2"):
        lr_scheduler.ConstantLR(opt, factor=2)
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: expected T_0 >= 1, got 0"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(TypeError, match="CosineAnnealingWarmRestarts: expected T_mult as an int"):
        lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=1.5)
    with pytest.raises(ValueError, match="SequentialLR: expected one milestone fewer than schedulers"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ConstantLR(opt)], milestones=[2])
    with pytest.raises(ValueError, match="ReduceLROnPlateau \\(at index 0\\) is not supported"):
        lr_scheduler.ChainedScheduler([lr_scheduler.ReduceLROnPlateau(opt)])
    other = optim.SGD([fc.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="expected all schedulers to belong to the same optimizer"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ConstantLR(opt), lr_scheduler.ConstantLR(other)], [2])


@pytest.mark.parametrize("name,cls", [("adagrad", optim.Adagrad), ("rmsprop", optim.RMSprop),
                                      ("adadelta", optim.Adadelta), ("adamw", optim.AdamW)])
def test_memory_profile_knows_the_optimizers_state(name, cls):
    """The profiler's optimizer-state estimate equals the arrays the optimizer actually keeps."""
    model = fc.nn.Sequential(fc.nn.Linear(6, 5), fc.nn.ReLU(), fc.nn.Linear(5, 2))
    summary = fc.profile.memory_summary(model, (6,), batch_size=3, optimizer=name)
    opt = cls(model.parameters())
    out = model(fc.randn(3, 6))
    out.sum().backward()
    opt.step()
    kept = sum(v.nbytes for _, st in opt.state.items() for v in st.values() if isinstance(v, np.ndarray))
    assert summary.totals["optimizer_state_bytes"] == kept
