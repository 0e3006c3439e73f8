"""fastconv.profile: static estimates checked by hand and against tracemalloc measurements."""
import warnings

import numpy as np
import pytest

import fastconv as fc
import fastconv.nn.functional as F
from fastconv import nn
from fastconv.autograd import Function
from fastconv.autograd.function import add_observer, remove_observer
from fastconv.profile import compare, format_bytes, max_batch_size, measure_step, memory_summary, parse_bytes

F32 = 4


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def vgg():
    """[[CONV -> RELU]*2 -> POOL]*3 -> FC on 3x32x32."""
    layers, c = [], 3
    for k in (16, 32, 64):
        layers += [nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.Conv2d(k, k, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c = k
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 10))


def bn_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def mixed_net():
    """Strided conv, leaky ReLU, transposed conv, dropout, tanh, sigmoid, average pools."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.1), nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1),
        nn.Dropout(0.3), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.Sigmoid(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def first_layer_11x11():
    """An 11×11/4 first layer (its backward needs dW only), then 5×5 and a global pool: the
    estimate must count only the gradient passes that run."""
    return nn.Sequential(nn.Conv2d(3, 48, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(48, 64, 5),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def depthwise_separable():
    """Depthwise and pointwise paths with batch norm, as in MobileNet."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 64, 1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mlp():
    """Parameters dominate at a small batch: the peak is in the optimizer step."""
    return nn.Sequential(nn.Flatten(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def _optimizer(name, model):
    if name == "sgd":
        return fc.optim.SGD(model.parameters(), lr=0.01)
    if name == "sgd-momentum":
        return fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return fc.optim.Adam(model.parameters(), lr=1e-3)


# ---- estimate vs measurement ------------------------------------------------------------------

@pytest.mark.parametrize("build, shape, batch, opt", [
    (lenet, (1, 32, 32), 32, "sgd-momentum"),
    (vgg, (3, 32, 32), 16, "adam"),
    (bn_net, (3, 32, 32), 32, "sgd"),
    (mixed_net, (3, 32, 32), 16, "sgd-momentum"),
    (mlp, (1, 32, 32), 4, "adam"),
    (first_layer_11x11, (3, 128, 128), 8, "sgd"),
    (depthwise_separable, (3, 32, 32), 16, "sgd-momentum"),
])
def test_estimate_matches_measured_peaks(build, shape, batch, opt):
    fc.manual_seed(0)
    model = build()
    optimizer = _optimizer(opt, model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    target = rng.integers(0, 10, batch)
    est = memory_summary(model, shape, batch, optimizer=opt).to_dict()["totals"]
    measure_step(model, x, target, F.cross_entropy, optimizer)  # steady state: optimizer state exists
    train = measure_step(model, x, target, F.cross_entropy, optimizer)
    infer = measure_step(model, x, target, F.cross_entropy, optimizer, mode="eval")
    assert est["train_peak_bytes"] == pytest.approx(train.peak_bytes, rel=0.10)
    assert est["eval_peak_bytes"] == pytest.approx(infer.peak_bytes, rel=0.10)
    # what the tape holds at the end of forward is exact, not approximate
    assert est["tape_bytes"] == train.model_tape_bytes
    assert train.tape_bytes > train.model_tape_bytes  # the loss saves its log-probabilities too
    # inference keeps nothing for backward, so it needs less than a training step
    assert infer.peak_bytes < train.peak_bytes


def test_declared_saved_bytes_equal_tape_at_other_batch():
    """The estimate evaluates the Functions' declarations at batch 7, a batch never traced."""
    model, batch = bn_net(), 7
    est = memory_summary(model, (3, 32, 32), batch)
    seen = []

    def observe(cls, ctx, args, kwargs, outputs):
        seen.append(ctx.saved_nbytes)

    add_observer(observe)
    try:
        model(fc.randn(batch, 3, 32, 32))
    finally:
        remove_observer(observe)
    assert est.totals["tape_bytes"] == sum(seen) > 0


# ---- hand computation -----------------------------------------------------------------------

LENET_PARAMS = (1 * 25 * 6 + 6) + (6 * 25 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)


@pytest.mark.parametrize("opt, copies", [(None, 0), ("sgd", 0), ("sgd-momentum", 1), ("adam", 2)])
def test_lenet_parameters_gradients_optimizer_state_by_hand(opt, copies):
    s = memory_summary(lenet(), (1, 32, 32), 8, optimizer=opt).to_dict()["totals"]
    assert s["params"] == s["trainable_params"] == 61706 == LENET_PARAMS
    assert s["param_bytes"] == s["grad_bytes"] == 61706 * F32
    assert s["optimizer_state_bytes"] == copies * 61706 * F32


def test_lenet_rows_by_hand():
    b = 16
    rows = memory_summary(lenet(), (1, 32, 32), b, optimizer="sgd-momentum").to_dict()["rows"]
    by_name = {r["name"]: r for r in rows}
    shapes = {"0": (b, 6, 28, 28), "1": (b, 6, 28, 28), "2": (b, 6, 14, 14), "3": (b, 16, 10, 10),
              "5": (b, 16, 5, 5), "6": (b, 400), "7": (b, 120), "11": (b, 10)}
    for name, shape in shapes.items():
        assert by_name[name]["output_shape"] == shape
    saved = {
        "0": b * 1 * 32 * 32 * F32,   # conv1 keeps its input for dW (its weight costs nothing extra)
        "1": b * 6 * 28 * 28,         # ReLU mask, one byte per element
        "2": b * 6 * 14 * 14 * 4,     # max-pool switches, int32 (only backward reads them)
        "3": b * 6 * 14 * 14 * F32,
        "4": b * 16 * 10 * 10,
        "5": b * 16 * 5 * 5 * 4,
        "6": 0,                       # flatten is a view
        "7": b * 400 * F32, "8": b * 120, "9": b * 120 * F32, "10": b * 84, "11": b * 84 * F32,
    }
    for name, nbytes in saved.items():
        assert by_name[name]["saved_bytes"] == nbytes, name
    assert by_name["7"]["params"] == 400 * 120 + 120
    assert by_name["7"]["optimizer_state_bytes"] == by_name["7"]["grad_bytes"] == (400 * 120 + 120) * F32
    conv1 = b * 6 * 28 * 28 * 25
    conv2 = b * 16 * 10 * 10 * 150
    fcs = b * (400 * 120 + 120 * 84 + 84 * 10)
    assert by_name["0"]["macs_forward"] == conv1
    assert by_name["0"]["macs_forward_backward"] == 2 * conv1  # the data needs no gradient: dW only
    assert by_name["3"]["macs_forward_backward"] == 3 * conv2  # dX and dW
    totals = memory_summary(lenet(), (1, 32, 32), b).to_dict()["totals"]
    assert totals["macs_forward"] == conv1 + conv2 + fcs
    assert totals["macs_forward_backward"] == 2 * conv1 + 3 * conv2 + 3 * fcs
    assert totals["saved_activation_bytes"] == sum(saved.values())


def test_data_batch_and_augmentation_copies():
    b = 10
    plain = memory_summary(lenet(), (1, 32, 32), b).totals
    aug = memory_summary(lenet(), (1, 32, 32), b, augment_copies=2).totals
    one_batch = b * 32 * 32 * F32
    assert plain["data_bytes"] == one_batch and aug["data_bytes"] == 3 * one_batch
    assert aug["train_peak_bytes"] - plain["train_peak_bytes"] == 2 * one_batch
    assert aug["eval_peak_bytes"] - plain["eval_peak_bytes"] == 2 * one_batch


def test_eval_mode_has_no_saved_arrays_gradients_or_state():
    s = memory_summary(vgg(), (3, 32, 32), 8, optimizer="adam", mode="eval").to_dict()
    assert all(r["saved_bytes"] == r["grad_bytes"] == r["optimizer_state_bytes"] == 0 for r in s["rows"])
    t = s["totals"]
    assert t["peak_bytes"] == t["eval_peak_bytes"] < t["train_peak_bytes"]
    assert t["grad_bytes"] == t["optimizer_state_bytes"] == t["saved_activation_bytes"] == 0


def test_float64_doubles_parameters_and_leaves_model_alone():
    model = lenet()
    s32 = memory_summary(model, (1, 32, 32), 4).totals
    s64 = memory_summary(model, (1, 32, 32), 4, dtype="float64").totals
    assert s64["param_bytes"] == 2 * s32["param_bytes"]
    assert s64["data_bytes"] == 2 * s32["data_bytes"]
    assert all(p.numpy().dtype == np.float32 for p in model.parameters())


def test_estimate_has_no_side_effects():
    model = bn_net().eval()
    bn = model[1]
    before = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    state = fc.get_rng_state()
    memory_summary(model, (3, 32, 32), 4)
    assert not any(m.training for m in model.modules())
    np.testing.assert_array_equal(bn.running_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.running_var.numpy(), before[1])
    assert fc.get_rng_state() == state


def test_summary_text_and_dict():
    s = memory_summary(lenet(), (1, 32, 32), 32, optimizer="sgd-momentum")
    text = str(s)
    assert "Conv2d" in text and "MaxPool2d" in text and "KiB" in text
    assert "Peak, training step" in text and "Peak, inference" in text
    d = s.to_dict()
    assert {"rows", "totals"} <= set(d)
    for key in ("peak_bytes", "train_peak_bytes", "eval_peak_bytes", "macs_forward", "macs_forward_backward",
                "data_bytes", "param_bytes", "grad_bytes", "optimizer_state_bytes", "saved_activation_bytes",
                "workspace_bytes"):
        assert isinstance(d["totals"][key], int), key
    assert d["totals"]["workspace_bytes"] > 0  # the convolutions' column buffers
    assert d["totals"]["peak_bytes"] == d["totals"]["train_peak_bytes"]


def test_input_shape_as_string():
    a = memory_summary(lenet(), "1x32x32", 4).totals
    b = memory_summary(lenet(), (1, 32, 32), 4).totals
    assert a == b


# ---- declarations: wrong ones are caught, missing ones are extrapolated ------------------------

class _SaveInput(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.copy())
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class _WrongDeclaration(_SaveInput):
    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad, **options):
        return 1


class _Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.fn.apply(self.conv(x))


def test_wrong_declaration_is_an_error():
    with pytest.raises(RuntimeError, match="_WrongDeclaration.saved_bytes"):
        memory_summary(_Apply(_WrongDeclaration), (1, 8, 8), 4)


def test_undeclared_function_is_extrapolated_exactly():
    s = memory_summary(_Apply(_SaveInput), (1, 8, 8), 11)
    row = [r for r in s.rows if r["type"] == "_Apply"][0]
    assert row["saved_bytes"] == 11 * 2 * 6 * 6 * F32


class _BatchDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        return F.relu(y) if x.shape[0] > 2 else y


def test_batch_dependent_control_flow_is_rejected():
    with pytest.raises(ValueError, match="memory_summary: .*batch"):
        memory_summary(_BatchDependent(), (1, 8, 8), 4)


# ---- argument errors --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "batch_size >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size as an int"),
    (dict(mode="test"), ValueError, "mode"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer"),
    (dict(dtype="float16"), TypeError, "float32 or float64"),
    (dict(input_shape=(1, 0, 32)), ValueError, "positive sizes"),
    (dict(input_shape="1x32xA"), ValueError, "3x224x224"),
    (dict(augment_copies=-1), ValueError, "augment_copies"),
    (dict(input_shape=(3, 32, 32)), ValueError, "memory_summary: the model rejects"),
])
def test_memory_summary_argument_errors(kwargs, error, match):
    args = dict(input_shape=(1, 32, 32), batch_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        memory_summary(lenet(), **args)


def test_memory_summary_rejects_non_module():
    with pytest.raises(TypeError, match="memory_summary: expected a fastconv.nn.Module"):
        memory_summary("not a model", (1, 32, 32), 4)


def test_measure_step_errors():
    with pytest.raises(TypeError, match="measure_step: a training step needs a callable loss_fn"):
        measure_step(lenet(), np.zeros((2, 1, 32, 32), np.float32), np.zeros(2, int), None)
    with pytest.raises(ValueError, match="measure_step: expected mode"):
        measure_step(lenet(), np.zeros((2, 1, 32, 32), np.float32), np.zeros(2, int), F.cross_entropy, mode="x")


def test_measure_step_trains_and_reports():
    model = lenet()
    opt = fc.optim.SGD(model.parameters(), lr=0.1)
    before = model[0].weight.numpy().copy()
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    m = measure_step(model, x, np.arange(4), F.cross_entropy, opt)
    assert not np.array_equal(before, model[0].weight.numpy())  # a real step was taken
    assert m.peak_bytes >= m.backward_peak_bytes > m.baseline_bytes
    assert m.baseline_bytes >= LENET_PARAMS * F32 + x.nbytes
    assert "peak held by arrays" in str(m)


# ---- budgets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("512MB", 512 * 10**6), ("2GB", 2 * 10**9), ("1.5GiB", int(1.5 * 2**30)), ("64 KiB", 64 * 1024),
    ("1000", 1000), (4096, 4096),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (150 * 1024, "150 KiB"),
                                     (3 * 2**20 // 2, "1.5 MiB"), (5 * 2**30, "5 GiB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("bad, error", [("abc", ValueError), ("12XB", ValueError), (-5, ValueError),
                                        ("0MB", ValueError), (True, TypeError), ([1], TypeError)])
def test_parse_bytes_errors(bad, error):
    with pytest.raises(error, match="max_batch_size"):
        parse_bytes(bad, "max_batch_size")


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_max_batch_size_is_the_largest_batch_that_fits(mode):
    model, shape = vgg(), (3, 32, 32)
    peaks = {b: memory_summary(model, shape, b, optimizer="sgd-momentum", mode=mode).totals["peak_bytes"]
             for b in range(1, 41)}
    for budget in (peaks[17], peaks[24] - 1, peaks[24], (peaks[30] + peaks[31]) // 2):
        expected = max(b for b, p in peaks.items() if p <= budget)
        assert expected < 40
        assert max_batch_size(model, shape, budget, mode=mode, optimizer="sgd-momentum") == expected


def test_max_batch_size_budget_too_small():
    with pytest.raises(ValueError, match="max_batch_size: even batch 1 needs"):
        max_batch_size(vgg(), (3, 32, 32), "10kB")


# ---- comparisons --------------------------------------------------------------------------------

def test_alexnet_first_layer_saves_activation_memory():
    """11x11 stride 4 vs 3x3 stride 1 on 3x227x227: the stride-4 layer's feature map is
    55x55 instead of 227x227, so its activations cost (227/55)^2 ≈ 17x less."""
    specs = ["INPUT -> CONV(96, k=11, s=4, p=0) -> RELU -> GAP -> FC(10)",
             "INPUT -> CONV(96, k=3, s=1) -> RELU -> GAP -> FC(10)"]
    b = 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = compare(specs, (3, 227, 227), b, names=["11x11/4", "3x3/1"], num_classes=10, optimizer="sgd-momentum")
    big, small = c.totals
    relu_mask = {"11x11/4": b * 96 * 55 * 55, "3x3/1": b * 96 * 227 * 227}
    data = b * 3 * 227 * 227 * F32
    # saved: conv's input (the data), ReLU's mask, and GAP / FC's small inputs
    assert big["saved_activation_bytes"] - data - relu_mask["11x11/4"] < 0.01 * relu_mask["11x11/4"] + 1e5
    assert small["saved_activation_bytes"] - data >= relu_mask["3x3/1"]
    assert small["train_peak_bytes"] > 10 * big["train_peak_bytes"]
    assert small["eval_peak_bytes"] > 10 * big["eval_peak_bytes"]
    head = 96 * 10  # the FC after global average pooling
    assert big["macs_forward"] == b * (96 * 55 * 55 * 11 * 11 * 3 + head)
    assert small["macs_forward"] == b * (96 * 227 * 227 * 3 * 3 * 3 + head)
    text = str(c)
    assert "11x11/4" in text and "3x3/1" in text and "Peak, training step" in text


def test_compare_accepts_models_and_specs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = compare([lenet(), "INPUT -> CONV(6, k=5, p=0) -> RELU -> POOL -> FC(10)"], (1, 32, 32), 4,
                    num_classes=10)
    assert c.names == ["(1)", "(2)"] and "Sequential" in str(c) and "CONV(6" in str(c)
    assert c.totals[0]["params"] == LENET_PARAMS
    with pytest.raises(TypeError, match="compare: expected a list"):
        compare(lenet(), (1, 32, 32), 4)
    with pytest.raises(ValueError, match="compare: got 1 names for 2 models"):
        compare([lenet(), lenet()], (1, 32, 32), 4, names=["a"])
