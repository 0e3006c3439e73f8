"""Regression tests of issue 19's op and layering items: max_pool2d at batch 0 and with clipped
windows, geometry values of 2**31 and above, functional batch_norm's momentum/eps, and the
module layering (no cli <-> viz cycle, an explicit process-group hook for fit)."""
import ast
import os
import sys

import numpy as np
import pytest
from _subprocess import run

import fastconv as fc
from fastconv import nn, train
from fastconv.nn import functional as F

PACKAGE = os.path.dirname(os.path.abspath(fc.__file__))


# ---- max_pool2d at batch 0 ----------------------------------------------------------------------

@pytest.mark.parametrize("pool", [
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)[0],
    lambda x: F.max_pool2d(x, 2, dilation=2, ceil_mode=True),
    lambda x: F.adaptive_max_pool2d(x, 3),
    lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2),
], ids=["max", "max-indices", "max-dilated", "adaptive-max", "unpool"])
def test_max_pool_backward_at_batch_0(pool, torch):
    x = fc.tensor(np.ones((0, 2, 4, 4), np.float32), requires_grad=True)
    y = pool(x)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 4, 4) and x.grad.dtype == np.float32
    xt = torch.ones((0, 2, 4, 4), requires_grad=True)  # torch agrees on the output shape
    TF = torch.nn.functional
    expected = {(0, 2, 2, 2): lambda t: TF.max_pool2d(t, 2), (0, 2, 4, 4): lambda t: TF.max_pool2d(t, 3, 1, 1),
                (0, 2, 3, 3): lambda t: TF.adaptive_max_pool2d(t, 3)}
    if tuple(y.shape) in expected:
        assert tuple(expected[tuple(y.shape)](xt).shape) == tuple(y.shape)


def test_max_pool_module_trains_on_an_empty_batch():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    x = fc.tensor(np.ones((0, 1, 4, 4), np.float32))
    model(x).sum().backward()
    assert all(p.grad is not None and not np.any(p.grad.numpy()) for p in model.parameters())


# ---- max_pool2d with windows clipped by huge kernels / padding ----------------------------------

def window_max_reference(x, k, s, p):
    """Naive max pool with -inf padding (kernel, stride, padding per axis), with flat argmax indices."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = max(i * s[0] - p[0], 0), max(j * s[1] - p[1], 0)
            r1, c1 = min(i * s[0] - p[0] + k[0], h), min(j * s[1] - p[1] + k[1], w)
            win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
            arg = win.argmax(-1)
            out[:, :, i, j] = win.max(-1)
            idx[:, :, i, j] = (r0 + arg // (c1 - c0)) * w + c0 + arg % (c1 - c0)
    return out, idx


@pytest.mark.parametrize("k,s,p", [
    (2 ** 27, 2 ** 27, 2 ** 26), (2 ** 31 - 1, 2 ** 31 - 1, 2 ** 30 - 1), ((3, 2 ** 28), (1, 2 ** 20), (1, 2 ** 27)),
    ((2 ** 29, 5), 1, (2 ** 28, 2)),
])
def test_clipped_windows_match_the_reference(k, s, p):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 7)).astype(np.float32)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    expected, expected_idx = window_max_reference(x, pair(k), pair(s), pair(p))
    xt = fc.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(xt, k, stride=s, padding=p, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), expected)
    np.testing.assert_array_equal(idx.numpy(), expected_idx)
    y.sum().backward()
    grad = np.zeros(x.size // 6 * 6, np.float32).reshape(6, -1)
    np.add.at(grad, (np.arange(6)[:, None], expected_idx.reshape(6, -1)), 1.0)
    np.testing.assert_array_equal(xt.grad.numpy(), grad.reshape(x.shape))


def test_clipped_windows_cost_is_bounded_by_input_and_output():
    """Before the fix a 2**31-1 kernel looped over every (clipped) tap: minutes for an 8x8 input."""
    code = ("import numpy as np, fastconv as fc; F = fc.nn.functional; x = np.ones((2, 3, 8, 8), np.float32)\n"
            "for k in (2 ** 27, 2 ** 31 - 1):\n"
            "    assert F.max_pool2d(x, k, stride=k, padding=k // 2).shape == (2, 3, 1, 1)\n"
            "    assert F.max_pool2d(x, (k, 3), stride=(1, 2), padding=(k // 2, 1)).shape == (2, 3, 9 - k % 2, 4)\n"
            "print('ok')")
    proc = run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---- geometry values of 2**31 and above ----------------------------------------------------------

X = np.ones((1, 1, 4, 4), np.float32)
W = np.ones((1, 1, 2, 2), np.float32)


@pytest.mark.parametrize("call,name", [
    (lambda v: F.conv2d(X, W, stride=v), "stride"),
    (lambda v: F.conv2d(X, W, padding=v), "padding"),
    (lambda v: F.conv2d(X, W, padding=(1, v)), "padding"),
    (lambda v: F.conv2d(X, W, dilation=v), "dilation"),
    (lambda v: F.conv_transpose2d(X, W, stride=v), "stride"),
    (lambda v: F.conv_transpose2d(X, W, padding=v), "padding"),
    (lambda v: F.conv_transpose2d(X, W, stride=(v, 1), output_padding=(v - 1, 0)), "stride"),
    (lambda v: F.max_pool2d(X, 2, stride=v), "stride"),
    (lambda v: F.avg_pool2d(X, v), "kernel_size"),
    (lambda v: nn.Conv2d(1, 1, 2, stride=v), "stride"),
    (lambda v: nn.ConvTranspose2d(1, 1, 2, stride=v), "stride"),
], ids=["conv-stride", "conv-padding", "conv-padding-w", "conv-dilation", "convT-stride", "convT-padding",
        "convT-output_padding", "maxpool-stride", "avgpool-kernel", "Conv2d", "ConvTranspose2d"])
@pytest.mark.parametrize("value", [2 ** 31, 2 ** 32 + 1, 2 ** 63, 2 ** 70])
def test_geometry_of_2_31_and_above_is_the_ops_value_error(call, name, value):
    with pytest.raises(ValueError, match=rf"expected {name} below 2\*\*31, got {value}"):
        call(value)


def test_geometry_just_below_the_limit_still_computes():
    y = F.conv2d(X, W, stride=2 ** 31 - 1)
    np.testing.assert_array_equal(y.numpy(), [[[[4.0]]]])
    assert F.max_pool2d(X, 2, stride=2 ** 31 - 1).shape == (1, 1, 1, 1)


def test_set_num_threads_limit():
    before = fc.get_num_threads()
    with pytest.raises(ValueError,
                       match=r"set_num_threads: expected n \(the thread count\) below 2\*\*31, got 2147483648"):
        fc.set_num_threads(2 ** 31)
    assert fc.get_num_threads() == before


# ---- functional batch_norm's momentum and eps --------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,needle", [
    ({"momentum": float("nan")}, ValueError, "expected momentum in"),
    ({"momentum": float("inf")}, ValueError, "expected momentum in"),
    ({"momentum": -0.1}, ValueError, r"expected momentum in \[0, 1\], got -0.1"),
    ({"momentum": 1.5}, ValueError, "expected momentum in"),
    ({"momentum": "0.1"}, TypeError, "expected momentum as a float"),
    ({"eps": float("nan")}, ValueError, "expected eps as a finite float >= 0"),
    ({"eps": float("inf")}, ValueError, "expected eps as a finite float >= 0"),
    ({"eps": -1e-5}, ValueError, "expected eps as a finite float >= 0"),
    ({"eps": None}, TypeError, "expected eps as a float"),
])
def test_batch_norm_checks_momentum_and_eps_before_touching_running_stats(kwargs, error, needle):
    rng = np.random.default_rng(0)
    x = fc.tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32))
    mean, var = fc.zeros(3), fc.ones(3)
    with pytest.raises(error, match=f"batch_norm: {needle}"):
        F.batch_norm(x, mean, var, training=True, **kwargs)
    np.testing.assert_array_equal(mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(var.numpy(), np.ones(3))


def test_batch_norm_momentum_bounds_match_torch(torch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    for momentum in (0.0, 1.0):
        mean, var = fc.zeros(3), fc.ones(3)
        tmean, tvar = torch.zeros(3), torch.ones(3)
        F.batch_norm(fc.tensor(x), mean, var, training=True, momentum=momentum, eps=0.0 + 1e-5)
        torch.nn.functional.batch_norm(torch.from_numpy(x), tmean, tvar, training=True, momentum=momentum)
        np.testing.assert_allclose(mean.numpy(), tmean.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(var.numpy(), tvar.numpy(), rtol=1e-5, atol=1e-7)


def test_instance_norm_checks_momentum_too():
    x = fc.tensor(np.ones((2, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="instance_norm: expected momentum in"):
        F.instance_norm(x, fc.zeros(3), fc.ones(3), momentum=float("nan"))


# ---- layering ------------------------------------------------------------------------------------

def imported_modules(relative_path):
    """Absolute names of the fastconv modules a package file imports (at any depth)."""
    path = os.path.join(PACKAGE, relative_path)
    package = "fastconv." + os.path.dirname(relative_path).replace(os.sep, ".")
    package = package.rstrip(".")
    names = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_viz_command_does_not_import_the_cli():
    assert not any(n == "fastconv.cli" or n.startswith("fastconv.cli.") for n in imported_modules("viz/command.py"))
    proc = run([sys.executable, "-c", "import sys, fastconv.viz.command; print('fastconv.cli' in sys.modules)"])
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_run_loading_lives_in_one_module_both_use():
    from fastconv import _runs, cli
    from fastconv.viz import command

    assert "fastconv._runs" in imported_modules("cli.py") and "fastconv._runs" in imported_modules("viz/command.py")
    assert not hasattr(cli, "_load_run") and not hasattr(cli, "_datasets") and not hasattr(cli, "MNIST_MEAN")
    assert command.load_run is _runs.load_run and command.datasets is _runs.datasets


def test_train_has_no_sys_modules_lookup():
    tree = ast.parse(open(os.path.join(PACKAGE, "train.py"), encoding="utf-8").read())
    lookups = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "modules"
               and isinstance(n.value, ast.Name) and n.value.id == "sys"]
    assert lookups == []


def test_fastconv_distributed_installs_its_process_group():
    import fastconv.distributed

    assert train._process_group is fastconv.distributed._comm


class FakeGroup:
    """Rank 1 of 2: fit must not write checkpoints and must reduce its epoch sums through the group."""

    def __init__(self):
        self.reduced = []

    def is_main(self):
        return False

    def world_size(self):
        return 2

    def all_reduce(self, array, op="sum"):
        self.reduced.append(array.copy())
        return array * 2


def test_fit_asks_the_installed_process_group(tmp_path):
    group = FakeGroup()
    previous = train.set_process_group(group)
    try:
        fc.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        rng = np.random.default_rng(0)
        loader = fc.data.DataLoader(fc.data.TensorDataset(rng.standard_normal((8, 1, 2, 2)).astype(np.float32),
                                                          rng.integers(0, 2, 8)), batch_size=4)
        history = train.fit(model, loader, F.cross_entropy, fc.optim.SGD(model.parameters(), lr=0.1), 1,
                            checkpoint_dir=str(tmp_path), verbose=False)
    finally:
        assert train.set_process_group(previous) is group
    assert os.listdir(tmp_path) == []  # only the main rank writes checkpoints
    assert len(group.reduced) == 1 and group.reduced[0][2] == 8  # loss sum, correct, count of this rank
    assert history[0]["train_loss"] == pytest.approx(group.reduced[0][0] / group.reduced[0][2])


def test_set_process_group_checks_its_argument():
    with pytest.raises(TypeError, match="without world_size"):
        train.set_process_group(type("Partial", (), {"is_main": lambda self: True})())
