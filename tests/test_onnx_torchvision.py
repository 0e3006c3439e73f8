"""torchvision / PyTorch -> ONNX (torch.onnx.export, TorchScript exporter) -> fastconv: the imported
modules give torch's outputs (1e-5 relative) and torch's gradients."""
import sys
import types
import warnings

import numpy as np
import pytest

import fastconv as fc

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def torchvision():
    pytest.importorskip("torch")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("torchvision")


def assert_close(got, ref):
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))


def torch_export(torch, model, x, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          **kwargs)


def _narrow_classifier(torch, net):
    """VGG's and AlexNet's classifiers hold 120-400 MB of weights; the same layers (Dropout, Linear,
    ReLU) at width 64 give the same graph structure in a file small enough for a unit test."""
    layers = list(net.classifier)
    linears = [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Linear)]
    for k, i in enumerate(linears):
        layers[i] = torch.nn.Linear(layers[i].in_features if k == 0 else 64, 10 if k == len(linears) - 1 else 64)
    net.classifier = torch.nn.Sequential(*layers)
    return net


@pytest.mark.parametrize("name,size,folding", [
    ("resnet18", 64, True), ("resnet18", 64, False), ("mobilenet_v2", 64, True), ("mobilenet_v2", 64, False),
    ("vgg11_bn", 224, True), ("alexnet", 224, True), ("squeezenet1_1", 64, True),
])
def test_torchvision_models_through_onnx(torch, torchvision, tmp_path, name, size, folding):
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=10)
    if name in ("vgg11_bn", "alexnet"):
        net = _narrow_classifier(torch, net)
    net.eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    path = tmp_path / f"{name}.onnx"
    torch_export(torch, net, x, path, do_constant_folding=folding)
    module = fc.onnx.load(path)
    batch = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(batch).numpy()
    with fc.no_grad():
        got = module(fc.tensor(batch.numpy())).numpy()
    assert_close(got, ref)


def test_gradients_of_an_imported_torch_network_equal_torch_gradients(torch, tmp_path):
    tnn = torch.nn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = tnn.Conv2d(8, 8, 3, padding=1, groups=2)
            self.pool = tnn.MaxPool2d(2)
            self.head = tnn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            y = torch.relu(self.conv1(x))
            y = self.pool(y + torch.nn.functional.leaky_relu(self.conv2(y), 0.1))
            return self.head(torch.flatten(y, 1)).log_softmax(dim=1)

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 3, 8, 8)
    torch_export(torch, net, x, tmp_path / "net.onnx")
    module = fc.onnx.load(tmp_path / "net.onnx")
    assert set(module.state_dict()) == set(net.state_dict())
    weights = torch.randn(3, 5)
    (net(x) * weights).sum().backward()
    (module(fc.tensor(x.numpy())) * fc.tensor(weights.numpy())).sum().backward()
    grads = dict(net.named_parameters())
    for name, p in module.named_parameters():
        assert_close(p.grad.numpy(), grads[name].grad.numpy())


def test_torch_state_dict_loads_into_an_imported_module(torch, torchvision, tmp_path):
    """Initializer names are torch's state_dict keys, so a torch checkpoint fits the imported module."""
    from fastconv._torch_checkpoint import load_torch_checkpoint

    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(num_classes=4).eval()
    x = torch.randn(1, 3, 64, 64)
    torch_export(torch, net, x, tmp_path / "squeezenet.onnx")
    module = fc.onnx.load(tmp_path / "squeezenet.onnx")
    torch.manual_seed(1)
    other = torchvision.models.squeezenet1_1(num_classes=4).eval()
    torch.save(other.state_dict(), tmp_path / "other.pth")
    module.load_state_dict(load_torch_checkpoint(tmp_path / "other.pth"))
    with torch.no_grad():
        ref = other(x).numpy()
    assert_close(module(fc.tensor(x.numpy())).numpy(), ref)


@pytest.mark.parametrize("kwargs", [dict(scale_factor=2, mode="nearest"), dict(size=(9, 7), mode="nearest"),
                                    dict(scale_factor=2, mode="bilinear", align_corners=False),
                                    dict(scale_factor=1.5, mode="bilinear", align_corners=True)])
def test_torch_upsampling_through_onnx(torch, tmp_path, kwargs):
    """A small segmentation-style decoder: torch's Resize nodes run as fastconv gathers."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Upsample(**kwargs),
                              torch.nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 3, 5, 6)
    torch_export(torch, net, x, tmp_path / "up.onnx")
    module = fc.onnx.load(tmp_path / "up.onnx")
    with torch.no_grad():
        ref = net(x).numpy()
    assert_close(module(fc.tensor(x.numpy())).numpy(), ref)
