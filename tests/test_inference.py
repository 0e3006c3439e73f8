"""fastconv.inference: compiled predictors against the eager forward.

Every comparison is against the same model run eagerly under no_grad (float32), with the error
measured relative to the output's largest magnitude (BN folding and fused epilogues round
differently from the unfused ops)."""
import math
import os
import sys
import threading
import time

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.inference import GraphError
from fastconv.vision import models
from _subprocess import run as run_child

F = nn.functional
RTOL = 1e-5


def randomize_norms(model, seed=0):
    """Batch-norm statistics and affine parameters away from their identity initialization (else
    folding them would be checked against an identity)."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.normalization._BatchNorm):
            c = m.running_mean.shape[0]
            m.running_mean.numpy()[...] = rng.normal(0, 0.2, c)
            m.running_var.numpy()[...] = rng.uniform(0.5, 2.0, c)
            if m.weight is not None:
                m.weight.numpy()[...] = rng.uniform(0.5, 1.5, c)
                m.bias.numpy()[...] = rng.normal(0, 0.2, c)
    return model


def _arrays(out):
    return tuple(_arrays(o) for o in out) if isinstance(out, (tuple, list)) else out.numpy()


def eager(model, *xs):
    with fc.no_grad():
        return _arrays(model(*[fc.tensor(x) for x in xs]))


def assert_close(got, want, rtol=RTOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == np.float32
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want))) / scale if want.size else 0.0
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def check(model, shape, batches=(2, 1, 3), rtol=RTOL, seed=0):
    rng = np.random.default_rng(seed)
    model.eval()
    example = rng.standard_normal((batches[0],) + shape).astype(np.float32)
    pred = fc.inference.compile(model, example)
    for b in batches:
        x = rng.standard_normal((b,) + shape).astype(np.float32)
        assert_close(pred(x), eager(model, x), rtol)
    return pred


# ---- the model zoo and the demo networks ---------------------------------------------------------

ZOO = [("lenet", (1, 28, 28), {}), ("resnet20", (3, 32, 32), {}), ("resnet56", (3, 8, 8), {}),
       ("resnet18", (3, 64, 64), {}), ("resnet34", (3, 32, 32), {}), ("resnet50", (3, 32, 32), {}),
       ("mobilenet_v2", (3, 48, 48), {}), ("vgg11_bn", (3, 32, 32), {}), ("vgg16_bn", (3, 32, 32), {}),
       ("alexnet", (3, 64, 64), {}), ("squeezenet1_1", (3, 48, 48), {})]


@pytest.mark.parametrize("name,shape,kwargs", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_matches_eager(name, shape, kwargs):
    fc.manual_seed(0)
    model = randomize_norms(getattr(models, name)(num_classes=10, **kwargs))
    pred = check(model, shape, batches=(2, 1))
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        assert pred.info["batch_norm_folded"] > 0


def test_demo_blueprint_and_cifar_mobilenet():
    from fastconv._runs import build_model
    from fastconv.cli import DEMO_ARCH

    fc.manual_seed(0)
    check(build_model(DEMO_ARCH, (1, 28, 28), 10), (1, 28, 28), batches=(4, 1, 7))
    check(randomize_norms(models.mobilenet_v2(num_classes=10)), (3, 32, 32), batches=(2, 5))


def test_fusion_counts_on_a_resnet_block():
    model = randomize_norms(models.resnet18(num_classes=10))
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    pred = fc.inference.compile(model.eval(), x)
    ops = [n.op for n in pred._graph.nodes]
    # every batch norm folded, every ReLU and residual add in a producer's epilogue
    assert "channel_affine" not in ops and "act" not in ops and "binary" not in ops
    assert pred.info["batch_norm_folded"] == 20
    fused_adds = [n for n in pred._graph.nodes if n.residual is not None]
    assert len(fused_adds) == 8 and all(n.act == ("clamp", 0.0, math.inf) for n in fused_adds)


# ---- operations ------------------------------------------------------------------------------------

class Everything(nn.Module):
    """One of every kind of operation the predictor compiles."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
        self.grouped = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
        self.pw = nn.Conv2d(32, 24, 1, stride=2)
        self.big = nn.Conv2d(24, 16, 5, padding=2)
        self.up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.bn2 = nn.BatchNorm2d(8)
        self.ln = nn.LayerNorm(8)
        self.fc1 = nn.Linear(8, 12)
        self.fc2 = nn.Linear(12 * 4, 5)

    def forward(self, x):
        y = F.relu(self.bn1(self.c1(x)))
        y = F.leaky_relu(self.dw(y), 0.1) + y * 0.5
        y = F.elu(self.grouped(y))
        y = self.pw(y)
        y = F.max_pool2d(y, 3, stride=1, padding=1)
        y = F.tanh(self.big(y))
        y = self.up(y)                                    # transposed convolution
        y = self.bn2(self.inorm(self.gn(y)) + y)           # norms, a batch norm after an add (not folded)
        y = y * F.sigmoid(y)                                # SiLU as x·sigmoid(x)
        a = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
        b = F.adaptive_max_pool2d(y, (3, 3))
        s = fc.cat([a[:, :4], a[:, 4:] - 1.0], 1)           # slicing, scalar arithmetic, cat
        s = F.adaptive_avg_pool2d(s, (2, 2)) + b.mean((2, 3), keepdims=True)
        t = s.permute(0, 2, 3, 1)                            # (N, 2, 2, 8): channels last
        t = self.ln(t)
        t = self.fc1(t).reshape(t.shape[0], -1)              # linear over a 3-d input, flatten
        t = F.pad(t, (1, 1))                                 # (N, 50)
        out = self.fc2(t[:, 1:-1])
        return F.log_softmax(out, 1), F.softmax(out * 2, -1)


def test_every_operation_matches_eager():
    fc.manual_seed(1)
    model = randomize_norms(Everything())
    check(model, (3, 16, 16), batches=(2, 1, 3))


@pytest.mark.parametrize("threads", [1, 2])
def test_activations_and_broadcasting(threads):
    class Acts(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(fc.randn(1, 4, 1, 1).numpy())

        def forward(self, x):
            outs = [F.relu6(x), F.silu(x), F.gelu(x),
                    F.gelu(x, approximate="tanh"), F.hardswish(x), F.hardsigmoid(x), F.softplus(x, 2.0, 5.0),
                    F.mish(x), F.leaky_relu(x, 0.2), F.elu(x, 0.5), x.clip(-0.5, 0.25), F.hardtanh(x, -0.3, 0.7), x.abs().sqrt(),
                    (x * x + 1).log(), (-x).exp(), x ** 2, 2.0 / (x.abs() + 1), x / 3 - 1, 1 - x, x * self.bias,
                    x - x.mean(1, keepdim=True), x.max(3, keepdim=True).values + x, x.amax(2, keepdim=True) * x,
                    fc.maximum(x, self.bias), x * self.bias.expand(1, 4, 6, 5), x[:, :1].expand(-1, 3, 6, 5) + 1,
                    *x.split([1, 3], 1), *x.chunk(2, 1)]
            return fc.cat(outs, 1)

    fc.set_num_threads(threads)
    try:
        check(Acts(), (4, 6, 5), batches=(2, 3))
    finally:
        fc.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("mode,kw", [("nearest", {"scale_factor": 2}), ("nearest", {"size": (5, 7)}),
                                     ("bilinear", {"scale_factor": 1.5, "align_corners": False}),
                                     ("bilinear", {"size": (9, 4), "align_corners": True})])
def test_interpolate(mode, kw):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))

    class Up(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, x):
            return F.interpolate(self.body(x), mode=mode, **kw)

    check(Up(), (3, 6, 6))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_modes(mode):
    class P(nn.Module):
        def forward(self, x):
            return F.pad(x, (2, 1, -1, 2), mode=mode) if mode == "constant" else F.pad(x, (2, 1, 1, 2), mode=mode)

    check(P(), (2, 5, 6))


def test_prelu_and_max_pool_indices_unused():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.PReLU(4), nn.MaxPool2d(2, ceil_mode=True))
    check(model, (2, 9, 9))


# ---- calling ----------------------------------------------------------------------------------------

def test_tensor_in_tensor_out_numpy_in_numpy_out():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = np.ones((2, 3, 4), np.float32)
    pred = fc.inference.compile(model, x)
    y = pred(x)
    assert isinstance(y, np.ndarray) and y.shape == (2, 3)
    t = pred(fc.tensor(x))
    assert isinstance(t, fc.Tensor) and not t.requires_grad
    np.testing.assert_array_equal(t.numpy(), y)


def test_inputs_are_checked():
    pred = fc.inference.compile(nn.Sequential(nn.Conv2d(3, 2, 3)), np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float32"):
        pred(np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="float32"):
        pred(np.zeros((1, 3, 8, 8), np.int32))
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\)"):
        pred(np.zeros((1, 3, 9, 8), np.float32))
    with pytest.raises(ValueError, match="4 dimensions"):
        pred(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="1 input"):
        pred(np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="at least one sample"):
        pred(np.zeros((0, 3, 8, 8), np.float32))
    # a non-contiguous input is read as its values
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 16)).astype(np.float32)[..., ::2]
    np.testing.assert_array_equal(pred(x), pred(np.ascontiguousarray(x)))


def test_several_inputs_and_nested_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)
            self.b = nn.Linear(5, 3)

        def forward(self, x, y):
            s = self.a(x) + self.b(y)
            return s, (F.relu(s), x)

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((3, n)).astype(np.float32) for n in (4, 5))
    model = Two()
    pred = fc.inference.compile(model, (x, y))
    got, want = pred(x, y), eager(model, x, y)
    assert isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], tuple)
    assert_close(got[0], want[0])
    assert_close(got[1][0], want[1][0])
    np.testing.assert_array_equal(got[1][1], x)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_and_micro_batches_agree(threads):
    from fastconv.inference.predictor import _Runner

    fc.manual_seed(2)
    model = randomize_norms(models.resnet20(num_classes=10)).eval()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 32, 32)).astype(np.float32)
    pred = fc.inference.compile(model, x[:2])
    want = eager(model, x)
    fc.set_num_threads(threads)
    try:
        assert_close(pred(x), want)
        assert pred.runner(5).split  # sample-wise: each thread its share, in micro-batches
        for micro in (1, 2, 3):
            runner = _Runner(pred, 5, threads, micro=micro)
            assert runner.micro == min(micro, -(-5 // threads) if threads > 1 else 5)
            assert_close(runner.run([x])[0], want)
    finally:
        fc.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("slow", ["small", "large", None])
def test_micro_batch_is_the_measured_faster_candidate(slow, monkeypatch):
    """Two micro-batch candidates (the L3- and the L2-sized): measuring, the runner keeps the
    one whose timed runs were faster (a delay injected into the other's runs); not measuring,
    the larger. Outputs equal eager either way."""
    from fastconv.inference import predictor as predictor_module
    from fastconv.nn.functional.conv import planner

    fc.manual_seed(5)
    model = randomize_norms(models.resnet20(num_classes=10)).eval()
    x = np.random.default_rng(6).standard_normal((6, 3, 32, 32)).astype(np.float32)
    pred = fc.inference.compile(model, x[:1])
    sample = pred._sample_bytes
    monkeypatch.setattr(predictor_module, "MICROBATCH_BYTES", 6 * sample)     # candidate 6
    monkeypatch.setattr(predictor_module, "L2_MICROBATCH_BYTES", 2 * sample)  # candidate 2
    monkeypatch.setattr(planner.settings, "benchmark", slow is not None)
    real = predictor_module._infer

    class Delayed:
        """The executor, slower for the jobs of the candidate named ``slow``."""
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def run_jobs(jobs):
            parts = sum(len(work) for work in jobs)
            if (slow == "small") == (parts > 1):
                time.sleep(0.02)
            return real.run_jobs(jobs)

    monkeypatch.setattr(predictor_module, "_infer", Delayed())
    previous = fc.get_num_threads()
    fc.set_num_threads(1)
    try:
        runner = predictor_module._Runner(pred, 6, 1)
        assert runner.micro == {"small": 6, "large": 2, None: 6}[slow]
        assert_close(runner.run([x])[0], eager(model, x))
    finally:
        fc.set_num_threads(previous)


@pytest.mark.parametrize("pick", [0, 1])
def test_batch_below_the_thread_count_is_timed_with_one_thread_kernels(pick, monkeypatch):
    """With fewer samples than threads the whole batch runs as one program; measuring, the runner
    times it with threaded kernels against one-thread kernels and keeps the faster (here: the
    one picked), outputs equal eager either way. Not measuring, the threaded one is kept."""
    from fastconv.inference import predictor as predictor_module
    from fastconv.nn.functional.conv import planner

    fc.manual_seed(5)
    model = randomize_norms(models.resnet20(num_classes=10)).eval()
    x = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    pred = fc.inference.compile(model, x)
    offered = []
    real_fastest = predictor_module._Runner._fastest

    def choose(self, options, predictor, batch):
        offered.append([[plan.threads for plan, _, _ in work] for jobs in options for work in jobs])
        real_fastest(self, options, predictor, batch)  # the real timing runs too
        return options[pick]

    monkeypatch.setattr(predictor_module._Runner, "_fastest", choose)
    monkeypatch.setattr(planner.settings, "benchmark", True)
    runner = predictor_module._Runner(pred, 1, 2)
    assert offered == [[[2], [1]]]
    assert runner._whole.threads == (2, 1)[pick]
    assert_close(runner.run([x])[0], eager(model, x))
    monkeypatch.setattr(predictor_module._Runner, "_fastest", real_fastest)
    monkeypatch.setattr(planner.settings, "benchmark", False)
    assert predictor_module._Runner(pred, 1, 2)._whole.threads == 2


def test_four_python_threads_give_the_serial_outputs():
    fc.manual_seed(3)
    model = randomize_norms(models.resnet20(num_classes=10)).eval()
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((b, 3, 32, 32)).astype(np.float32) for b in (1, 3, 1, 2, 3, 1, 2, 1)]
    pred = fc.inference.compile(model, inputs[0])
    serial = [pred(x) for x in inputs]
    results = [[None] * len(inputs) for _ in range(4)]
    errors = []
    start = threading.Barrier(4)

    def work(t):
        try:
            start.wait()
            for rep in range(3):
                for i in range(len(inputs)):
                    k = (i + t) % len(inputs)  # threads interleave different batch sizes
                    results[t][k] = pred(inputs[k])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for t in range(4):
        for got, want in zip(results[t], serial):
            np.testing.assert_array_equal(got, want)


def test_samples_mixing_models_do_not_split():
    class Centered(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(6, 4)

        def forward(self, x):
            y = self.l(x)
            return y - y.mean(0, keepdims=True)

    model = Centered()
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    pred = fc.inference.compile(model, x)
    fc.set_num_threads(2)
    try:
        assert not pred.runner(5).split
        assert_close(pred(x), eager(model, x))
    finally:
        fc.set_num_threads(os.cpu_count() or 1)


# ---- errors -----------------------------------------------------------------------------------------

def test_unsupported_operation_is_named_with_its_module():
    class Unpool(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x):
            y, idx = self.pool(x)
            return self.unpool(y, idx)

    with pytest.raises(GraphError, match=r"indices|MaxUnpool2d.*'unpool'"):
        fc.inference.compile(Unpool(), np.zeros((1, 2, 4, 4), np.float32))

    class Where(nn.Module):
        def forward(self, x):
            return fc.where(x > 0, x, x * 2)

    with pytest.raises(GraphError, match="Where is not supported"):
        fc.inference.compile(Where(), np.zeros((1, 3), np.float32))


def test_values_from_outside_the_tape_are_refused():
    class Leak(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(3, 3)

        def forward(self, x):
            y = self.l(x)
            return y + y.numpy()[:, :1]  # a view of a computed array, not through a fastconv operation

    with pytest.raises(GraphError, match="did not come through a fastconv operation"):
        fc.inference.compile(Leak(), np.ones((2, 3), np.float32))

    class Copied(Leak):
        def forward(self, x):
            y = self.l(x)
            return y + fc.tensor(y.numpy()[:, :1])  # a copy: a constant that changes with the batch

    with pytest.raises(GraphError, match="changes with the batch size"):
        fc.inference.compile(Copied(), np.ones((2, 3), np.float32))


def test_float64_inputs_and_models_are_refused():
    with pytest.raises(TypeError, match="runs float32"):
        fc.inference.compile(nn.Linear(3, 2), np.ones((1, 3)))
    m64 = nn.Linear(3, 2)
    m64.weight = nn.Parameter(np.ones((2, 3)))
    m64.bias = nn.Parameter(np.ones(2))

    class Cast(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = m64

        def forward(self, x):
            return self.l(x.astype(np.float64))

    with pytest.raises(GraphError, match="float32"):
        fc.inference.compile(Cast(), np.ones((1, 3), np.float32))


def test_compile_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    model.train()
    fc.inference.compile(model, np.zeros((2, 1, 5, 5), np.float32))
    assert all(m.training for m in model.modules())


# ---- files ------------------------------------------------------------------------------------------

def test_save_and_load_without_the_model_class(tmp_path):
    fc.manual_seed(5)
    model = randomize_norms(Everything()).eval()  # a class only this test module defines
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16)).astype(np.float32)
    pred = fc.inference.compile(model, x)
    path = tmp_path / "everything.fcp"
    pred.save(path)
    loaded = fc.inference.load(path)
    for a, b in zip(loaded(x), pred(x)):
        np.testing.assert_array_equal(a, b)
    x3 = np.concatenate([x, x[:1]])
    np.save(tmp_path / "x.npy", x3)
    np.save(tmp_path / "y.npy", pred(x3)[0])
    # a fresh interpreter that never sees the model's class, at a batch size never planned before
    code = ("import numpy as np, fastconv as fc\n"
            f"p = fc.inference.load({str(path)!r}); x = np.load({str(tmp_path / 'x.npy')!r})\n"
            f"np.testing.assert_allclose(p(x)[0], np.load({str(tmp_path / 'y.npy')!r}), rtol=1e-6, atol=1e-6)\n")
    done = run_child([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("threads", [1, 2])
def test_small_winograd_filters_are_kept_transformed(threads, tmp_path, monkeypatch):
    """A Winograd layer whose transformed filter is small keeps it from the first plan on (no
    transform per call) and stays on Winograd at every batch; a large one is transformed per call.
    Outputs equal eager at 1 and 2 threads and after save/load, whose file holds the original
    weights exactly."""
    from fastconv.inference import program
    from fastconv.nn.functional.conv import planner

    if not program.keeps_winograd_filter(program.ConvProblem((1, 16, 8, 8), (16, 16, 3, 3), None, "float32")):
        pytest.skip("no packed sgemm here: Winograd filters are transformed per call")
    monkeypatch.setattr(planner.settings, "benchmark", True)
    fc.manual_seed(3)
    model = randomize_norms(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),          # kept: 16·24·16 floats
        nn.Conv2d(24, 80, 3, padding=1), nn.ReLU(),          # kept: 16·84·24
        nn.Conv2d(80, 88, 3, padding=1))).eval()             # transformed per call: 16·96·80 > 2¹⁶
    fc.set_num_threads(threads)
    try:
        with fc.backends.conv.force("winograd"):
            pred = check(model, (3, 9, 10), batches=(2, 1, 5))
        weights = {v.shape: v.data for v in pred._graph.values.values() if v.is_const and len(v.shape) == 4}
        kept = {shape for shape, data in weights.items() if isinstance(data, program.PackedWeight)}
        assert kept == {(16, 3, 3, 3), (24, 16, 3, 3), (80, 24, 3, 3)}  # the first one with its norm folded in
        assert [path for _, path in pred.conv_paths(1)] == ["winograd"] * 4
        path = tmp_path / "winograd.fcp"
        pred.save(path)
        loaded = fc.inference.load(path)
        x = np.random.default_rng(1).standard_normal((3, 3, 9, 10)).astype(np.float32)
        assert_close(loaded(x), eager(model, x))
        for name in ("3.weight", "5.weight", "7.weight"):  # the convolutions without a norm to fold
            param = model.state_dict()[name]
            assert np.array_equal(np.asarray(weights[tuple(param.shape)]), np.asarray(param)), name
    finally:
        fc.set_num_threads(os.cpu_count() or 1)
        planner.clear_plans()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", ["gemm", "shallow", "depthwise_planes"])
def test_clamps_fused_into_the_kernels_equal_eager(path, threads, monkeypatch):
    """ReLU, ReLU6 and hardtanh after a convolution on the paths whose kernels clamp their own
    outputs (im2col GEMM, the shallow loops and their 3×3 plane loops, the depthwise planes): no
    second pass, the same outputs as eager; a residual keeps the separate epilogue."""
    from fastconv.nn.functional.conv import planner

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.b = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.c = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            y = nn.functional.relu6(self.a(x))
            y = nn.functional.relu(self.dw(y))
            y = fc.clamp(self.b(y), -0.5, 0.5)
            return nn.functional.relu(self.c(y) + y)  # residual: the epilogue pass

    monkeypatch.setattr(planner.settings, "benchmark", True)
    fc.manual_seed(9)
    model = Net().eval()
    for p in model.parameters():
        p.data = p.data * 4  # outputs well past the clamps
    fc.set_num_threads(threads)
    try:
        with fc.backends.conv.force(path):
            pred = check(model, (3, 11, 13), batches=(2, 1, 3))
        paths = dict(pred.conv_paths(2))
        assert paths["dw"] == path if path == "depthwise_planes" else paths["a"] == path
    finally:
        fc.set_num_threads(os.cpu_count() or 1)
        planner.clear_plans()


def test_load_refuses_other_files(tmp_path):
    other = tmp_path / "weights.npz"
    fc.save({"a": np.ones(3, np.float32)}, other)
    with pytest.raises(ValueError, match="not a valid fastconv predictor file"):
        fc.inference.load(other)
    bad = tmp_path / "bad.npz"
    fc.save({"format": "fastconv-predictor", "version": 1, "graph": "{not json", "constants": {}}, bad)
    with pytest.raises(ValueError, match="unreadable graph"):
        fc.inference.load(bad)
    wrong = tmp_path / "wrong.npz"
    fc.save({"format": "fastconv-predictor", "version": 1, "constants": {},
             "graph": '{"values": [{"id": 0, "shape": [1], "const": false}], "nodes": [{"op": "rm -rf", '
                      '"inputs": [], "output": 0, "attrs": {"map": []}, "scope": "", "act": null, "residual": null}],'
                      ' "inputs": [0], "outputs": [0], "output_structure": "tensor"}'}, wrong)
    with pytest.raises(ValueError, match="unknown operation"):
        fc.inference.load(wrong)


# ---- memory -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape,batch", [("resnet20", (3, 32, 32), 16), ("mobilenet_v2", (3, 64, 64), 4),
                                              ("lenet", (1, 28, 28), 64), ("lenet", (1, 28, 28), 1)])
def test_peak_memory_within_the_eager_inference_peak(name, shape, batch):
    import tracemalloc

    model = getattr(models, name)(num_classes=10).eval()
    x = np.random.default_rng(0).standard_normal((batch,) + shape).astype(np.float32)
    pred = fc.inference.compile(model, x)
    eager_peak = fc.profile.memory_summary(model, shape, batch, mode="eval").totals["eval_peak_bytes"]
    declared = pred.memory_bytes(batch)["total"]
    assert declared <= eager_peak, (declared, eager_peak)
    pred(x)  # plans built; a second call allocates only its arena (taken from the pool) and output
    tracemalloc.start()
    try:
        pred._runners.clear()
        pred(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    params = sum(v.data.nbytes for v in pred._graph.values.values() if v.is_const)
    assert params + peak <= eager_peak, (params, peak, eager_peak)


def test_arena_reuses_memory():
    model = models.resnet20(num_classes=10).eval()
    x = np.zeros((8, 3, 32, 32), np.float32)
    pred = fc.inference.compile(model, x)
    plan = pred.plan(8, 1)[0]
    activations = sum(int(np.prod(v.shape_at(8))) for v in pred._graph.values.values() if not v.is_const)
    assert plan.arena_elements < activations / 2  # without reuse: every value and workspace side by side


def test_arena_offsets_never_overlap_live_buffers():
    from fastconv.inference.memory import assign_offsets

    rng = np.random.default_rng(0)
    for _ in range(50):
        buffers = []
        for _ in range(rng.integers(1, 30)):
            first = int(rng.integers(0, 20))
            buffers.append((int(rng.integers(1, 1000)), first, first + int(rng.integers(0, 8))))
        offsets, total = assign_offsets(buffers)
        for i, (si, fi, li) in enumerate(buffers):
            assert offsets[i] % 16 == 0 and offsets[i] + si <= total
            for j, (sj, fj, lj) in enumerate(buffers[:i]):
                if fi <= lj and fj <= li:
                    assert offsets[i] + si <= offsets[j] or offsets[j] + sj <= offsets[i]


# ---- command line -----------------------------------------------------------------------------------

def test_cli_export_and_serve(tmp_path, capsys):
    from fastconv.cli import main

    fc.manual_seed(0)
    model = models.lenet()
    fc.save(model.state_dict(), tmp_path / "lenet.npz")
    out = tmp_path / "lenet.fcp"
    assert main(["export", "--model", "lenet", "--weights", str(tmp_path / "lenet.npz"), "--out", str(out),
                 "--batches", "1", "3", "--seconds", "0.05", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "batch norms folded" in text and "images/s" in text
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["serve", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
                 "--batch-size", "2"]) == 0
    assert_close(np.load(tmp_path / "y.npy"), eager(model.eval(), x))
    assert main(["serve", str(out), "--batches", "2", "--seconds", "0.05"]) == 0
    assert "latency ms" in capsys.readouterr().out
    # errors are one line
    assert main(["serve", str(tmp_path / "x.npy")]) == 2
    assert main(["export", "--out", str(out)]) == 2
    assert "one of --checkpoint" in capsys.readouterr().err


def test_in_place_operations_in_the_forward():
    class TorchStyleBlock(nn.Module):
        """PyTorch's BasicBlock idiom: out += identity; relu(inplace=True)."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            identity = x
            out = self.bn(self.conv(x))
            out += identity
            F.relu(out, inplace=True)
            y = out * 2
            out.mul_(0.5)  # out changes after y was computed from it
            return y + out

    check(randomize_norms(TorchStyleBlock()), (4, 6, 6))

    class ViewWrite(nn.Module):
        def forward(self, x):
            y = x * 1
            y[:, :2] += 1  # an in-place write into a view: not compiled
            return y

    with pytest.raises(GraphError, match="is not supported"):
        fc.inference.compile(ViewWrite(), np.zeros((1, 4), np.float32))


class _SeparableChains(nn.Module):
    """1×1 → depthwise → 1×1 chains as MobileNet builds them, plus the cases that must keep NCHW:
    a depthwise fed by a 3×3 conv, a 1×1 whose output is also read elsewhere, a depthwise with a
    channel count that leaves vector padding, a 1×1 between two depthwise layers."""

    def __init__(self, width=32, odd=20):
        super().__init__()
        bn_relu6 = lambda c: [nn.BatchNorm2d(c), nn.ReLU6()]  # noqa: E731
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), *bn_relu6(width))
        self.dw0 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), *bn_relu6(width))
        self.expand = nn.Sequential(nn.Conv2d(width, 2 * width, 1, bias=False), *bn_relu6(2 * width))
        self.dw1 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, groups=2 * width),
                                 *bn_relu6(2 * width))
        self.mid = nn.Conv2d(2 * width, 2 * width, 1)
        self.dw2 = nn.Conv2d(2 * width, 2 * width, 5, padding=2, groups=2 * width, bias=False)
        self.project = nn.Sequential(nn.Conv2d(2 * width, width, 1, bias=False), nn.BatchNorm2d(width))
        self.shared = nn.Conv2d(width, width, 1)
        self.dw3 = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.to_odd = nn.Conv2d(width, odd, 1)
        self.dw_odd = nn.Conv2d(odd, odd, 3, padding=1, groups=odd)
        self.head = nn.Conv2d(odd, 8, 1)

    def forward(self, x):
        x = self.dw0(self.stem(x))
        y = self.project(self.dw2(self.mid(self.dw1(self.expand(x)))))
        y = y + nn.functional.avg_pool2d(x, 2)
        s = self.shared(y)
        z = self.dw3(s) + s  # s is read twice: stays NCHW
        return self.head(self.dw_odd(self.to_odd(z)))


@pytest.mark.parametrize("threads,measure,size", [(1, False, 16), (2, False, 16), (1, True, 16), (1, False, 64),
                                                (2, False, 64)])
def test_depthwise_chains_keep_channel_minor_layouts(threads, measure, size, monkeypatch):
    """Values between a channel-vectorized depthwise step and its 1×1 neighbours stay channel-minor
    (no transposes); outputs equal eager at any batch and thread count, and the layers that must
    keep NCHW do. Measuring, the layouts are the fastest measured ones: outputs still equal.
    64×64 images: the 1×1 steps with one NCHW side run a GEMM per image (PW_PER_IMAGE_PIXELS)."""
    from fastconv._kernels import depthwise as dw
    from fastconv.inference import program
    from fastconv.nn.functional.conv import planner

    if size == 64:
        assert 32 * 32 >= program.PW_PER_IMAGE_PIXELS > 16 * 16  # both branches reached
    monkeypatch.setattr(planner.settings, "benchmark", measure)
    fc.manual_seed(4)
    model = randomize_norms(_SeparableChains()).eval()
    fc.set_num_threads(threads)
    try:
        pred = check(model, (3, size, size), batches=(3, 1, 8, 2) if size == 16 else (2, 1, 3))
        paths = dict(pred.conv_paths(3))
    finally:
        fc.set_num_threads(os.cpu_count() or 1)
        if measure:
            planner.clear_plans()  # measured plans would outlive the switch
    if measure:
        return
    if dw.channel_width() == 0 or paths["dw1.0"] != "depthwise":
        pytest.skip("no channel-vectorized depthwise path here")
    minor = {name for name, path in paths.items() if path.startswith("pointwise") and "channel-minor" in path}
    assert {"expand.0", "mid", "project.0"} <= minor
    assert not minor & {"shared", "to_odd", "head", "stem.0"}


def test_depthwise_losing_alone_is_timed_in_its_chain(monkeypatch):
    """When the planner's standalone pick for a depthwise layer is another path, the first plan
    times the depthwise path with channel-minor neighbours against it; a chain that wins (forced
    here by the timing) runs the depthwise path and keeps its layouts, outputs equal eager."""
    from fastconv._kernels import depthwise as dw
    from fastconv.inference import program
    from fastconv.nn.functional.conv import planner

    if dw.channel_width() == 0:
        pytest.skip("no channel-vectorized depthwise path here")
    monkeypatch.setattr(planner.settings, "benchmark", True)
    real_choose = program.choose_path

    def standalone(problem, weight, bias, allow_packed):
        name = real_choose(problem, weight, bias, allow_packed)
        return "depthwise_planes" if name == "depthwise" else name

    tried = []

    def trial_fastest(runs):
        tried.extend(runs)
        return next((option for option in runs if option[0] == "depthwise" and option[1]), next(iter(runs)))

    monkeypatch.setattr(program, "choose_path", standalone)
    monkeypatch.setattr(program, "_fastest_option", trial_fastest)
    fc.manual_seed(4)
    model = randomize_norms(_SeparableChains()).eval()
    try:
        pred = check(model, (3, 16, 16), batches=(3, 1, 2))
        paths = dict(pred.conv_paths(3))
    finally:
        planner.clear_plans()
    assert (None, frozenset(), None) in tried  # the standalone pick was timed against the chain
    assert paths["dw1.0"] == paths["dw2"] == "depthwise"
    assert any("channel-minor" in paths[name] for name in ("expand.0", "mid", "project.0"))


@pytest.mark.parametrize("forced", ["depthwise_planes", "depthwise"])
def test_forced_depthwise_path_reaches_the_predictor(forced, monkeypatch):
    """``fc.backends.conv.force`` binds the predictor's depthwise layers too, measuring or not: the
    chain trial does not replace a forced path. Outputs equal eager."""
    from fastconv._kernels import depthwise as dw
    from fastconv.nn.functional.conv import planner

    if forced == "depthwise" and dw.channel_width() == 0:
        pytest.skip("no channel-vectorized depthwise path here")
    monkeypatch.setattr(planner.settings, "benchmark", True)
    fc.manual_seed(4)
    model = randomize_norms(_SeparableChains()).eval()
    try:
        with fc.backends.conv.force(forced):
            pred = check(model, (3, 16, 16), batches=(3, 1))
            paths = dict(pred.conv_paths(3))
    finally:
        planner.clear_plans()
    assert {paths[name] for name in ("dw0.0", "dw1.0", "dw2", "dw3", "dw_odd")} == {forced}


class _InvertedResiduals(nn.Module):
    """MobileNetV2's inverted residual blocks in the forms a band chain takes: stride 1 with the
    residual add, stride 2 on an odd size, a 5×5 depthwise, and a last block on so few pixels that
    its values stay NCHW (no chain)."""

    def __init__(self):
        super().__init__()

        def block(cin, cout, stride, k):
            hidden = 6 * cin
            return nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, hidden, k, stride, k // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU6())
        self.b1, self.b2 = block(16, 16, 1, 3), block(16, 24, 2, 3)
        self.b3, self.b4 = block(24, 24, 1, 5), block(24, 32, 2, 3)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.b1(x)
        x = self.b2(x)
        x = x + self.b3(x)
        return self.b4(x)


def _chains(pred, batch):
    return sum(plan.program.ops().count("band_chain") for plan in pred.plan(batch))


@pytest.mark.parametrize("panels", [True, False])
@pytest.mark.parametrize("threads,band_floats", [(1, 1), (1, 1 << 30), (2, 1), (2, 1 << 12), (3, 1)])
def test_band_chains_equal_their_steps_and_eager(threads, band_floats, panels, monkeypatch):
    """expand → depthwise → project run band by band (one output row per band up to the whole
    image) give the outputs of the same steps run whole, and eager's, at 1 to 3 threads: batch 1
    splits each image's rows between the threads (rows read by two parts computed once), larger
    batches give each thread whole images. The 1×1 steps on prepacked panels and on the weights."""
    from fastconv._kernels import depthwise as dw
    from fastconv.inference import bands, program
    from fastconv.nn.functional.conv import planner

    if dw.channel_width() == 0:
        pytest.skip("no channel-vectorized depthwise path here")
    if not panels:
        monkeypatch.setattr(program, "PANEL_MIN_CHANNELS", 1 << 30)
    monkeypatch.setattr(planner.settings, "benchmark", False)
    monkeypatch.setattr(bands, "CHAIN_BAND_FLOATS", (band_floats,))
    fc.manual_seed(7)
    model = randomize_norms(_InvertedResiduals()).eval()
    rng = np.random.default_rng(1)
    fc.set_num_threads(threads)
    try:
        monkeypatch.setattr(bands, "CHAIN_MIN_FLOATS", 0)
        chained = fc.inference.compile(model, np.zeros((1, 3, 19, 19), np.float32))
        monkeypatch.setattr(bands, "CHAIN_MIN_FLOATS", 1 << 40)
        apart = fc.inference.compile(model, np.zeros((1, 3, 19, 19), np.float32))
        for batch in (1, 3, 4):
            x = rng.standard_normal((batch, 3, 19, 19)).astype(np.float32)
            got = chained(x)
            assert_close(got, apart(x), rtol=1e-6)
            assert_close(got, eager(model, x))
        assert _chains(chained, 1) == 3 and _chains(apart, 1) == 0
    finally:
        fc.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("choice", [1, None])
def test_band_chains_are_measured(choice, monkeypatch):
    """Measuring, a chain's layouts are timed with the chain among the options, and the chain
    itself against its steps for each band length; the measured choice is what runs."""
    from fastconv._kernels import depthwise as dw
    from fastconv.inference import program, timing
    from fastconv.nn.functional.conv import planner

    if dw.channel_width() == 0:
        pytest.skip("no channel-vectorized depthwise path here")
    monkeypatch.setattr(planner.settings, "benchmark", True)
    tried, picks = [], []

    def chain_fastest(runs):
        tried.extend(runs)
        return next((option for option in runs if option[2] is not None), next(iter(runs)))

    def pick(runs, repeats):
        picks.append(list(runs))
        return choice

    monkeypatch.setattr(program, "_fastest_option", chain_fastest)
    monkeypatch.setattr(timing, "fastest", pick)
    fc.manual_seed(7)
    model = randomize_norms(_InvertedResiduals()).eval()
    try:
        pred = check(model, (3, 19, 19), batches=(1, 2))
    finally:
        planner.clear_plans()
    assert any(option[2] is not None for option in tried)
    assert picks and all(keys == [0, 1, None] for keys in picks)
    # every block chains when the timing says so, the last too (measured layouts have no pixel floor)
    assert _chains(pred, 1) == (4 if choice is not None else 0)


def test_only_expand_depthwise_project_steps_form_a_chain():
    """The executor runs a chain's three steps on their layout without checking it, so the plan
    builder accepts only a channel-minor 1×1 → pure channel-minor depthwise → 1×1 over the same
    values (a 3×3 producer, a padded channel count or a value between them is refused)."""
    from fastconv.inference import bands
    from fastconv.inference.program import _Step

    def step(op, src, dst, x_minor, y_minor, groups=1, channels=32, padded=32):
        ints = [1, channels, padded] + [0] * 13 + [groups] + [0] * 7 + [x_minor, y_minor, 1]
        return _Step(op, 1, [("v", src, 0)], ("v", dst, 0), ints=ints)

    good = [step("conv_pw_layout", 1, 2, 0, 1), step("conv_channel", 2, 3, 1, 1), step("conv_pw_layout", 3, 4, 1, 0)]
    assert bands.is_chain(good, 0) and not bands.is_chain(good, 1)
    for k, bad in [(0, step("conv_gemm", 1, 2, 0, 1)), (1, step("conv_channel", 2, 3, 1, 1, groups=2)),
                   (1, step("conv_channel", 2, 3, 1, 1, padded=48)), (1, step("conv_channel", 2, 3, 0, 1)),
                   (2, step("conv_pw_layout", 9, 4, 1, 0)), (0, step("conv_pw_layout", 1, 2, 0, 0))]:
        steps = list(good)
        steps[k] = bad
        assert not bands.is_chain(steps, 0), (k, bad.op)


# ---- 1×1 and linear layers on prepacked weight panels ------------------------------------------

class _Pointwise(nn.Module):
    """1×1 convolutions on small NCHW images in every epilogue form (bias, none, ReLU, residual add
    + ReLU; output counts of whole and partial 32-column panels and below one panel), one on a
    one-pixel image, and linear layers above and below a panel's width."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 3, padding=1)
        self.up = nn.Sequential(nn.Conv2d(24, 40, 1), nn.ReLU())
        self.same = nn.Conv2d(40, 40, 1, bias=False)
        self.wide = nn.Sequential(nn.Conv2d(40, 72, 1), nn.BatchNorm2d(72), nn.ReLU6())
        self.narrow = nn.Conv2d(72, 20, 1)
        self.pixel = nn.Conv2d(20, 48, 1)
        self.fc1 = nn.Linear(48, 36)
        self.fc2 = nn.Linear(36, 10)

    def forward(self, x):
        x = self.up(self.stem(x))
        x = nn.functional.relu(self.same(x) + x)
        x = self.narrow(self.wide(x))
        x = self.pixel(nn.functional.adaptive_avg_pool2d(x, 1))
        return self.fc2(nn.functional.relu(self.fc1(x.flatten(1))))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_prepacked_pointwise_and_linear_layers_equal_eager(threads, tmp_path):
    """Prepacked 1×1 steps (NCHW in and out through the transposed scratch block, every epilogue,
    column parts when blocks are fewer than threads) and linear layers equal eager at 1–3 threads
    and batches 1–5; the predictor holds the panels in place of the weights, and a saved file
    gives back the original weights exactly."""
    from fastconv._kernels import gemm
    from fastconv.inference import program

    if not gemm.packed_sgemm_available():
        pytest.skip("fastconv's packed sgemm does not run here")
    fc.manual_seed(11)
    model = randomize_norms(_Pointwise()).eval()
    fc.set_num_threads(threads)
    try:
        pred = check(model, (3, 6, 5), batches=(2, 1, 5, 3))
        paths = dict(pred.conv_paths(2))
    finally:
        fc.set_num_threads(os.cpu_count() or 1)
    assert {paths["up.0"], paths["same"], paths["wide.0"], paths["pixel"]} == {"pointwise (prepacked)"}
    assert paths["narrow"] != "pointwise (prepacked)"  # 20 outputs: below one panel
    packed = [v.data for v in pred._graph.values.values() if isinstance(v.data, program.PackedWeight)
              and v.data.path == "panels"]
    assert len(packed) == 5  # four 1×1 weights and fc1's
    weights = {tuple(m.weight.shape): m.weight.numpy() for m in (model.up[0], model.same, model.pixel, model.fc1)}
    for p in packed:
        if p.shape in weights:
            np.testing.assert_array_equal(np.asarray(p), weights[p.shape])
    path = tmp_path / "pointwise.fcp"
    pred.save(path)
    x = np.random.default_rng(2).standard_normal((4, 3, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(fc.inference.load(path)(x), pred(x))


_PANELS_UNDER_CAP = """
import numpy as np, fastconv as fc
from fastconv.vision import models
fc.manual_seed(3)
for name, shape in (("mobilenet_v2", (3, 32, 32)), ("lenet", (1, 28, 28))):
    model = models.__dict__[name](num_classes=10).eval()
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32)
    pred = fc.inference.compile(model, x)
    with fc.no_grad():
        want = model(fc.tensor(x)).numpy()
    err = np.abs(pred(x) - want).max() / np.abs(want).max()
    assert err < 1e-5, (name, err)
    panels = [v for v in pred._graph.values.values() if getattr(v.data, "path", None) == "panels"]
    assert bool(panels) == {expect_panels}, (name, len(panels))
print("ok")
"""


@pytest.mark.parametrize("isa,expect_panels", [("avx2", True), ("blas", False)])
def test_prepacked_layers_under_a_capped_sgemm(isa, expect_panels):
    """The AVX2 kernels run the prepacked steps too; without fastconv's sgemm (BLAS), the 1×1 and
    linear layers keep their weights and their previous steps."""
    from fastconv._kernels import gemm
    from _subprocess import child_env

    if gemm.packed_sgemm_variant() is None:
        pytest.skip("fastconv's packed sgemm does not run here")
    done = run_child([sys.executable, "-c", _PANELS_UNDER_CAP.format(expect_panels=expect_panels)],
                     env=child_env(FASTCONV_SGEMM_ISA=isa))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr


@pytest.mark.parametrize("size", [2, 3, 5, 8, 9, 14, 16, 17, 33])
def test_max_pool_2x2_planes_of_every_width(size):
    """The executor's 2×2/2 max pooling: narrow planes two output rows a vector (odd row counts
    end with one row), wider ones a row at a time, against eager's (PyTorch's) rule with ties and
    NaNs, including a window of NaNs only."""
    rng = np.random.default_rng(size)
    x = rng.integers(-2, 3, size=(3, 4, size, size)).astype(np.float32)
    x.reshape(-1)[rng.choice(x.size, max(2, x.size // 20), replace=False)] = np.nan
    x[0, 0, :2, :2] = np.nan
    predictor = fc.inference.compile(nn.Sequential(nn.MaxPool2d(2)), x)
    expected = F.max_pool2d(fc.tensor(x), 2).numpy()
    np.testing.assert_array_equal(predictor(x), expected)
