"""The issue's round trips on the model zoo, each within 1e-5 relative:
torchvision -> .pth -> fastconv, fastconv -> ONNX -> ONNX Runtime, fastconv -> safetensors -> fastconv
(torchvision -> ONNX -> fastconv is in test_onnx_torchvision.py)."""
import functools
import sys
import types

import numpy as np
import pytest

import fastconv as fc
from fastconv.vision import models

# (name, input side): the zoo models of the issue at small inputs (the adaptive pools take any size)
ZOO = [("resnet18", 64), ("resnet34", 32), ("resnet50", 32), ("mobilenet_v2", 32), ("vgg11_bn", 32),
       ("vgg16_bn", 32), ("alexnet", 64), ("squeezenet1_1", 64), ("resnet20", 32), ("resnet56", 32), ("lenet", 28)]
TORCHVISION = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "vgg11_bn", "vgg16_bn", "alexnet", "squeezenet1_1"]


def assert_close(got, ref):
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


@functools.lru_cache(maxsize=None)
def build(name):
    """The zoo model, built once per test session (VGG's classifier alone takes seconds to initialise)."""
    fc.manual_seed(0)
    kwargs = {} if name in ("lenet",) else {"num_classes": 10}
    model = getattr(models, name)(**kwargs)
    # move the batch-norm statistics away from (0, 1) so that a wrong running-stat mapping shows
    model.train()
    with fc.no_grad():
        model(fc.randn(4, *_input_shape(name)) * 2 + 0.5)
    return model.eval()


def _input_shape(name):
    side = dict(ZOO)[name]
    return (1, side, side) if name == "lenet" else (3, side, side)


def batch(name, n=2, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + _input_shape(name)).astype(np.float32)


@pytest.mark.parametrize("name", [n for n, _ in ZOO])
def test_safetensors_round_trip(tmp_path, name):
    model = build(name)
    x = fc.tensor(batch(name))
    with fc.no_grad():
        ref = model(x).numpy()
    path = tmp_path / f"{name}.safetensors"
    fc.save(model.state_dict(), path)
    with fc.no_grad():  # scramble every parameter and buffer, then read them back from the file
        for t in model.state_dict(keep_vars=True).values():
            t.numpy()[...] = 0
    model.load_state_dict(fc.load(path))
    with fc.no_grad():
        assert_close(model(x).numpy(), ref)


@pytest.mark.parametrize("name", [n for n, _ in ZOO])
def test_onnx_runtime_runs_the_exported_zoo(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = build(name)
    path = tmp_path / f"{name}.onnx"
    fc.onnx.export(model, batch(name, 1), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = batch(name, 3, seed=2)
    with fc.no_grad():
        ref = model(fc.tensor(x)).numpy()
    assert_close(session.run(None, {"input": x})[0], ref)


@pytest.fixture(scope="module")
def torchvision():
    pytest.importorskip("torch")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("torchvision")


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_checkpoint_loads_into_the_zoo(torch, torchvision, tmp_path, name):
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=10)
    net.train()
    with torch.no_grad():  # non-trivial running statistics
        net(torch.randn(4, *_input_shape(name)) * 2 + 0.5)
    net.eval()
    path = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), path)
    model = build(name)
    model.load_state_dict(fc.load(path))
    x = batch(name)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with fc.no_grad():
        assert_close(model(fc.tensor(x)).numpy(), ref)
