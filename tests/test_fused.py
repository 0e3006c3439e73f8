"""Fused element-wise paths: the elementwise kernels against numpy, F.batch_norm_relu and F.add_relu
(float64 gradchecks, PyTorch cross-checks, equality with the unfused ops), the fusion of
Sequential and model blocks (which Functions run, hooks keep their meaning) and the memory
profiler on fused networks (declarations equal the tape, estimate within 10 % of tracemalloc)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv import nn
from fastconv._kernels import elementwise as ew
from fastconv.autograd import gradcheck
from fastconv.autograd.function import add_observer, remove_observer
from fastconv.nn.functional.fused import AddActivation, BatchNormActivation
from fastconv.nn.functional.normalization import Normalize


def functions_run(fn):
    """The Function classes ``fn()`` calls, in order."""
    seen = []

    def observe(cls, ctx, args, kwargs, outputs):
        seen.append(cls)

    add_observer(observe)
    try:
        fn()
    finally:
        remove_observer(observe)
    return seen


# ---- kernels -------------------------------------------------------------------------------------

SPECIAL = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1e-45, -1e-45, 6.0, 5.999, 7.0, -3.0])


@given(n=st.integers(0, 70000), dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from([1, 2]))
def test_flat_kernels_match_numpy(n, dtype, threads):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    x[:min(n, SPECIAL.size)] = SPECIAL[:min(n, SPECIAL.size)]
    y, mask = np.empty_like(x), np.empty(n, np.uint8)
    ew.relu(x, y, mask, threads)
    np.testing.assert_array_equal(y, np.where(np.isnan(x), x, np.maximum(x, 0)))
    np.testing.assert_array_equal(mask, x > 0)
    dx = np.empty_like(x)
    ew.mask_grad(b, mask, dx, threads)
    np.testing.assert_array_equal(dx, np.where(x > 0, b, 0))
    for hi in (np.inf, 6.0):
        clamped = np.clip(x, 0, hi)
        ew.clamp_grad(b, clamped, hi, dx, threads)
        np.testing.assert_array_equal(dx, np.where((clamped > 0) & (clamped < hi), b, 0))
        ew.add(x, b, y, True, hi, threads)
        np.testing.assert_array_equal(y, np.clip(x + b, 0, hi))
    ew.add(x, b, y, False, 0.0, threads)
    np.testing.assert_array_equal(y, x + b)
    ew.mul(x, b, y, threads)
    np.testing.assert_array_equal(y, x * b)


@given(n=st.integers(1, 5), c=st.integers(1, 9), s=st.integers(1, 3000),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from([1, 2]),
       residual=st.booleans(), act=st.sampled_from([None, np.inf, 6.0]), affine=st.booleans())
def test_batch_norm_act_matches_normalize(n, c, s, dtype, threads, residual, act, affine):
    """The fused kernel's 1/σ and (x - mean)·scale + shift equal numpy's and norm.pyx's normalize bit
    for bit, then it adds and clamps as numpy does."""
    from fastconv._kernels import norm

    rng = np.random.default_rng(n * 1000 + c * 10 + s)
    x = (rng.standard_normal((n, c, s)) * 3 + 1e3).astype(dtype)
    r = rng.standard_normal((n, c, s)).astype(dtype)
    mean = x.mean(axis=(0, 2), dtype=np.float64)
    var = x.var(axis=(0, 2), dtype=np.float64)
    rstd_ref = 1 / np.sqrt(var + 1e-5)
    w, bias = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    ref = np.empty_like(x)
    norm.normalize(x, mean, rstd_ref, w, bias, affine, affine, 1, c, False, ref)
    if residual:
        ref = ref + r
    if act is not None:
        ref = np.clip(ref, 0, act)
    y, rstd = np.empty_like(x), np.empty(c)
    none = np.empty(0, dtype)
    ew.batch_norm_act(x, r if residual else np.empty((0, 0, 0), dtype), y, mean, var, 1e-5,
                      w if affine else none, bias if affine else none, rstd, act is not None,
                      0.0 if act is None else act, threads)
    np.testing.assert_array_equal(rstd, rstd_ref)
    np.testing.assert_array_equal(y, ref)


@given(p=st.integers(1, 300), s=st.integers(0, 700), dtype=st.sampled_from([np.float32, np.float64]),
       threads=st.sampled_from([1, 2]))
def test_plane_mean(p, s, dtype, threads):
    rng = np.random.default_rng(p * s)
    x = (rng.standard_normal((p, s)) + 100).astype(dtype)
    out = np.empty(p, dtype)
    ew.plane_mean(x, out, threads)
    expect = x.astype(np.float64).mean(axis=1) if s else np.zeros(p)
    np.testing.assert_allclose(out, expect, rtol=1e-6 if dtype == np.float32 else 1e-13)
    g = rng.standard_normal(p).astype(dtype)
    dx = np.empty((p, s), dtype)
    ew.plane_mean_backward(g, dx, threads)
    np.testing.assert_array_equal(dx, np.repeat((g / dtype(max(s, 1)))[:, None], s, axis=1))


def test_relu_and_global_pool_functions(torch):
    """The rewired ReLU and 1x1 adaptive average pool: gradcheck and PyTorch."""
    x = fc.tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 4)), requires_grad=True)
    assert gradcheck(lambda t: F.relu(t) * 2.0, [x])
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, 1), [x])
    assert gradcheck(lambda t: F.global_avg_pool2d(t), [x])
    xt = torch.tensor(x.numpy(), requires_grad=True)
    for f, tf in ((lambda t: F.adaptive_avg_pool2d(t, (1, 1)), lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1)),
                  (F.relu, torch.relu)):
        x.grad, xt.grad = None, None
        g = np.random.default_rng(1).standard_normal(f(x).shape)
        (f(x) * fc.tensor(g)).sum().backward()
        (tf(xt) * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(f(x).numpy(), tf(xt).detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


# ---- F.batch_norm_relu and F.add_relu -----------------------------------------------------------------

def _bn_inputs(rng, shape=(3, 4, 5, 5), dtype=np.float64):
    c = shape[1]
    x = fc.tensor((rng.standard_normal(shape) * 2 + 0.5).astype(dtype), requires_grad=True)
    w = fc.tensor((rng.random(c) + 0.5).astype(dtype), requires_grad=True)
    b = fc.tensor((rng.standard_normal(c) * 0.3).astype(dtype), requires_grad=True)
    r = fc.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
    rm, rv = (rng.standard_normal(c) * 0.3), (rng.random(c) + 0.5)
    return x, w, b, r, rm, rv


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("max_value", [None, 6.0])
def test_batch_norm_relu_gradcheck(training, residual, max_value):
    rng = np.random.default_rng(3)
    x, w, b, r, rm, rv = _bn_inputs(rng)
    if max_value is not None:  # put values on both sides of 6 (away from the kinks)
        x = fc.tensor(x.numpy() * 6, requires_grad=True)
    inputs = [x, w, b] + ([r] if residual else [])

    def fn(x, w, b, r=None):
        return F.batch_norm_relu(x, rm.copy(), rv.copy(), w, b, training=training, residual=r,
                                 max_value=max_value)

    assert gradcheck(fn, inputs)


def test_batch_norm_relu_without_affine_and_frozen_inputs():
    rng = np.random.default_rng(4)
    x, w, b, r, rm, rv = _bn_inputs(rng, shape=(4, 3, 6))
    assert gradcheck(lambda x, r: F.batch_norm_relu(x, None, None, training=True, residual=r), [x, r])
    # only the residual or only the affine parameters need a gradient
    frozen = fc.tensor(x.numpy())
    assert gradcheck(lambda r: F.batch_norm_relu(frozen, None, None, w.detach(), b.detach(), training=True,
                                                 residual=r), [r])
    assert gradcheck(lambda w, b: F.batch_norm_relu(frozen, rm, rv, w, b), [w, b])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_equals_unfused(dtype, training):
    """Same output, running statistics and gradients as batch_norm → add → relu (bit for bit forward
    at batch > 1, where both read the statistics of the same kernel)."""
    rng = np.random.default_rng(5)
    x, w, b, r, rm, rv = _bn_inputs(rng, (4, 8, 7, 9), dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for fused in (True, False):
        for t in (x, w, b, r):
            t.grad = None
        rm_, rv_ = rm.copy(), rv.copy()
        if fused:
            y = F.batch_norm_relu(x, rm_, rv_, w, b, training=training, residual=r)
        else:
            y = F.relu(F.batch_norm(x, rm_, rv_, w, b, training=training) + r)
        (y * fc.tensor(g)).sum().backward()
        results.append([y.numpy(), rm_, rv_] + [t.grad.numpy() for t in (x, w, b, r)])
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, e in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, e, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("max_value", [None, 6.0])
def test_batch_norm_relu_against_torch(torch, training, max_value):
    rng = np.random.default_rng(6)
    x, w, b, r, rm, rv = _bn_inputs(rng, (5, 6, 4, 3), np.float32)
    xt, wt, bt, rt = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b, r))
    rm_fc, rv_fc = rm.astype(np.float32), rv.astype(np.float32)
    rm_t, rv_t = torch.tensor(rm_fc), torch.tensor(rv_fc)
    y = F.batch_norm_relu(x * 4, rm_fc, rv_fc, w, b, training=training, momentum=0.3, residual=r,
                          max_value=max_value)
    z = torch.nn.functional.batch_norm(xt * 4, rm_t, rv_t, wt, bt, training=training, momentum=0.3) + rt
    yt = torch.relu(z) if max_value is None else torch.nn.functional.relu6(z)
    g = rng.standard_normal(y.shape).astype(np.float32)
    (y * fc.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm_fc, rm_t.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv_fc, rv_t.numpy(), rtol=1e-6, atol=1e-7)
    for a, t in zip((x, w, b, r), (xt, wt, bt, rt)):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_add_relu(torch):
    rng = np.random.default_rng(7)
    a = fc.tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    b = fc.tensor(rng.standard_normal((3, 4, 5)), requires_grad=True)
    assert gradcheck(lambda a, b: F.add_relu(a, b), [a, b])
    assert gradcheck(lambda a, b: F.add_relu(a * 5, b, max_value=6), [a, b])
    at, bt = (torch.tensor(t.numpy(), requires_grad=True) for t in (a, b))
    g = rng.standard_normal(a.shape)
    a.grad = b.grad = None
    (F.add_relu(a, b) * fc.tensor(g)).sum().backward()
    (torch.relu(at + bt) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(F.add_relu(a, b).numpy(), torch.relu(at + bt).detach().numpy())
    np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), bt.grad.numpy())


def test_fused_argument_errors():
    x = fc.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"batch_norm_relu: expected residual of the input's shape \(2, 3, 4, 4\)"):
        F.batch_norm_relu(x, None, None, training=True, residual=fc.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="batch_norm_relu: expected residual .* dtype float32"):
        F.batch_norm_relu(x, None, None, training=True, residual=fc.randn(2, 3, 4, 4, dtype=np.float64))
    with pytest.raises(ValueError, match="batch_norm_relu: expected max_value as a number > 0"):
        F.batch_norm_relu(x, None, None, training=True, max_value=0)
    with pytest.raises(ValueError, match="batch_norm_relu: expected weight of shape \\(3,\\)"):
        F.batch_norm_relu(x, None, None, fc.ones(4), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm_relu(fc.randn(1, 3), None, None, training=True)
    with pytest.raises(TypeError, match="batch_norm_relu: expected input of dtype float32 or float64"):
        F.batch_norm_relu(np.zeros((2, 3), np.int64), None, None)
    with pytest.raises(ValueError, match="add_relu: expected other of the input's shape"):
        F.add_relu(x, fc.randn(3, 4, 4))


# ---- fusion in Sequential and blocks --------------------------------------------------------------

def _block():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def test_sequential_fuses_batch_norm_and_relu():
    fc.manual_seed(0)
    model, x = _block(), fc.randn(2, 3, 6, 6)
    ran = functions_run(lambda: model(x))
    assert ran.count(BatchNormActivation) == 2 and Normalize not in ran
    model.eval()
    assert functions_run(lambda: model(x)).count(BatchNormActivation) == 2


@pytest.mark.parametrize("train", [True, False])
def test_hooks_keep_their_meaning_and_results_match(train):
    """A hook on the BN sees the normalized tensor (not the ReLU's), a hook on the ReLU its output;
    hooked pairs run unfused with the same results, running statistics and gradients."""
    fc.manual_seed(0)
    fused, plain = _block(), _block()
    plain.load_state_dict(fused.state_dict())
    fused.train(train)
    plain.train(train)
    seen = {}
    plain[1].register_forward_hook(lambda m, a, out: seen.__setitem__("bn", out.numpy().copy()))
    plain[5].register_forward_hook(lambda m, a, out: seen.__setitem__("relu", out.numpy().copy()))
    x = fc.randn(3, 3, 6, 6)
    outs = []
    for model in (fused, plain):
        xx = fc.tensor(x.numpy(), requires_grad=True)
        y = model(xx)
        y.sum().backward()
        outs.append((y.numpy(), xx.grad.numpy(), [p.grad.numpy() for p in model.parameters()],
                     [b.numpy() for b in model.buffers()]))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5)
    for a, b in zip(outs[0][2] + outs[0][3], outs[1][2] + outs[1][3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert (seen["bn"] < 0).any() and (seen["relu"] >= 0).all()
    assert BatchNormActivation not in functions_run(lambda: plain(x))
    assert BatchNormActivation in functions_run(lambda: fused(x))


def test_only_the_library_classes_fuse():
    class LoudReLU(nn.ReLU):
        def forward(self, input):
            return F.relu(input) * 2.0

    class MyBN(nn.BatchNorm2d):
        def forward(self, input):
            return super().forward(input) + 1.0

    x = fc.randn(2, 4, 3, 3)
    for model in (nn.Sequential(nn.BatchNorm2d(4), LoudReLU()), nn.Sequential(MyBN(4), nn.ReLU()),
                  nn.Sequential(nn.GroupNorm(2, 4), nn.ReLU())):
        ran = functions_run(lambda: model(x))
        assert BatchNormActivation not in ran
    y = nn.Sequential(nn.BatchNorm2d(4), LoudReLU())(x).numpy()
    assert y.max() > 0 and np.allclose(y, 2 * np.maximum(F.batch_norm(x, None, None, training=True).numpy(), 0),
                                       atol=1e-6)


def test_resnet_blocks_fuse_their_tails():
    from fastconv.vision import models

    model = models.resnet20()
    ran = functions_run(lambda: model(fc.randn(2, 3, 16, 16)))
    assert ran.count(BatchNormActivation) == 19 and Normalize not in ran  # stem + 2 per block
    assert AddActivation not in ran
    gn = models.resnet20(norm_layer=lambda c: nn.GroupNorm(4, c))
    ran = functions_run(lambda: gn(fc.randn(2, 3, 16, 16)))
    assert ran.count(AddActivation) == 9 and BatchNormActivation not in ran
    # MobileNetV2: every BN + ReLU6 of a Conv2dNormActivation fuses; the linear projections' BNs do not
    ran = functions_run(lambda: models.mobilenet_v2(num_classes=3)(fc.randn(2, 3, 32, 32)))
    assert ran.count(BatchNormActivation) == 35 and ran.count(Normalize) == 17


# ---- memory profiler on fused networks ------------------------------------------------------------

@pytest.mark.parametrize("name, shape, batch", [("resnet20", (3, 32, 32), 16), ("mobilenet_v2", (3, 32, 32), 4),
                                                ("resnet18", (3, 64, 64), 2), ("squeezenet1_1", (3, 64, 64), 2),
                                                ("lenet", (1, 28, 28), 16)])
def test_profiler_exact_on_zoo_models(name, shape, batch):
    """Estimate within 5 % of tracemalloc (a residual block holds its input until it returns: the
    trace's ``holds``), and the tape's bytes exactly."""
    from fastconv.profile import measure_step, memory_summary
    from fastconv.vision import models

    fc.manual_seed(0)
    model = models.get_model(name, num_classes=10)
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    est = memory_summary(model, shape, batch, optimizer="sgd-momentum").to_dict()["totals"]
    measure_step(model, x, y, F.cross_entropy, opt)
    train = measure_step(model, x, y, F.cross_entropy, opt)
    assert est["tape_bytes"] == train.model_tape_bytes
    assert est["train_peak_bytes"] == pytest.approx(train.peak_bytes, rel=0.05)
    infer = measure_step(model, x, y, F.cross_entropy, opt, mode="eval")
    assert est["eval_peak_bytes"] == pytest.approx(infer.peak_bytes, rel=0.05)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tensor_add_mul_on_kernels(dtype):
    """Large same-shape operands run on the kernels: results and gradients equal numpy's, at any
    thread count; broadcasting and small operands keep numpy's path."""
    rng = np.random.default_rng(8)
    a_np, b_np = (rng.standard_normal((4, 64, 70)).astype(dtype) for _ in range(2))
    g_np = rng.standard_normal(a_np.shape).astype(dtype)
    before = fc.get_num_threads()
    for threads in (1, 2):
        fc.set_num_threads(threads)
        try:
            a, b = fc.tensor(a_np, requires_grad=True), fc.tensor(b_np, requires_grad=True)
            y = a * b + a
            y.backward(fc.tensor(g_np))
            np.testing.assert_array_equal(y.numpy(), a_np * b_np + a_np)
            np.testing.assert_array_equal(a.grad.numpy(), g_np * b_np + g_np)
            np.testing.assert_array_equal(b.grad.numpy(), g_np * a_np)
        finally:
            fc.set_num_threads(before)
    c = fc.tensor(rng.standard_normal((1, 64, 1)).astype(dtype), requires_grad=True)
    a = fc.tensor(a_np, requires_grad=True)
    (a * c + c).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), (a_np + 1).sum(axis=(0, 2), keepdims=True), rtol=1e-5)
