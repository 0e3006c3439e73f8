"""fastconv.vision.models against torchvision (and, for the CIFAR ResNets, a PyTorch reference
written here): the same state_dict keys in the same order with the same shapes, and the same
outputs, running statistics and gradients after loading torchvision's random weights, in eval
and train mode. Small inputs keep it fast; float64 where the model is small enough."""
import sys
import types
from functools import partial

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.vision import models


@pytest.fixture(scope="module")
def tv():
    """torchvision.models (skipped when torch or torchvision is missing)."""
    pytest.importorskip("torch")
    # its compiled ops do not load against the CPU-only torch: stub the module that registers them
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    tvm = pytest.importorskip("torchvision.models")
    return tvm


class _NoDraws:
    """Stands in for fastconv's generator while building models whose weights are then overwritten
    with torchvision's: VGG's 130 M parameters take seconds to draw from a normal distribution."""

    @staticmethod
    def _nothing(*args, **kwargs):
        return None

    normal = uniform = standard_normal = _nothing


@pytest.fixture
def cheap_init(monkeypatch):
    """Initializers that leave parameters as allocated (their values are loaded afterwards)."""
    monkeypatch.setattr("fastconv.nn.init.get_generator", lambda: _NoDraws)
    monkeypatch.setattr("fastconv.nn.init._fill", lambda tensor, values, op: tensor)


def _randomize_norms(torch, model, seed=0):
    """Non-trivial BN/GN affine parameters and running statistics (torchvision initializes them to 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _assert_same_keys(fc_model, torch_model):
    fc_sd, t_sd = fc_model.state_dict(keep_vars=True), torch_model.state_dict()
    assert list(fc_sd) == list(t_sd)
    for k, v in t_sd.items():
        assert tuple(fc_sd[k].shape) == tuple(v.shape), k


def _close(a, b, dtype, what):
    a, b = np.asarray(a), np.asarray(b)
    if a.size > 1 << 22:  # VGG/AlexNet classifier weights: a fixed sample of 2^16 entries
        pick = np.random.default_rng(0).integers(0, a.size, 1 << 16)
        a, b = a.reshape(-1)[pick], b.reshape(-1)[pick]
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    tol = 1e-7 if dtype == np.float64 else 2e-4  # float64: BN over few values per channel amplifies rounding
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, err_msg=what)


def check_against_torch(torch, fc_model, torch_model, input_shape, dtype=np.float64, batch=2, seed=0,
                        train=True):
    """Keys and shapes; then, with torch's weights loaded, eval outputs, train outputs, updated
    running statistics and all gradients (input and parameters) of a random projection of the output."""
    _assert_same_keys(fc_model, torch_model)
    _randomize_norms(torch, torch_model, seed)
    fc_model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})
    if dtype == np.float64:
        fc_model.double()
        torch_model.double()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(dtype)

    fc_model.eval()
    torch_model.eval()
    with fc.no_grad():
        y_fc = fc_model(fc.tensor(x)).numpy()
    with torch.no_grad():
        y_t = torch_model(torch.from_numpy(x)).numpy()
    _close(y_fc, y_t, dtype, "eval output")
    if not train:
        return

    fc_model.train()
    torch_model.train()
    xf = fc.tensor(x, requires_grad=True)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out_fc, out_t = fc_model(xf), torch_model(xt)
    _close(out_fc.numpy(), out_t.detach().numpy(), dtype, "train output")
    proj = rng.standard_normal(out_t.shape).astype(dtype)
    (out_fc * fc.tensor(proj)).sum().backward()
    (out_t * torch.from_numpy(proj)).sum().backward()
    _close(xf.grad.numpy(), xt.grad.numpy(), dtype, "input gradient")
    t_params = dict(torch_model.named_parameters())
    for name, p in fc_model.named_parameters():
        assert p.grad is not None, name
        _close(p.grad.numpy(), t_params[name].grad.numpy(), dtype, f"gradient of {name}")
    t_bufs = dict(torch_model.named_buffers())
    for name, b in fc_model.named_buffers():
        _close(b.numpy(), t_bufs[name].numpy(), dtype, f"buffer {name} after a training forward")


# ---- torchvision models ----------------------------------------------------------------------------

# (builder, kwargs, input CxHxW, dtype, batch)
TORCHVISION_CASES = [
    ("resnet18", {}, (3, 64, 64), np.float64, 2),
    ("resnet34", {"num_classes": 7}, (3, 32, 32), np.float64, 2),
    ("resnet50", {"num_classes": 5}, (3, 64, 64), np.float64, 2),
    ("resnet50", {"num_classes": 3, "replace_stride_with_dilation": [False, True, True]}, (3, 32, 32),
     np.float64, 2),
    ("resnext50_32x4d", {"num_classes": 4}, (3, 64, 64), np.float64, 2),
    ("mobilenet_v2", {"num_classes": 10, "dropout": 0.0}, (3, 64, 64), np.float64, 2),
    ("mobilenet_v2", {"num_classes": 10, "dropout": 0.0, "width_mult": 0.5}, (3, 32, 32), np.float64, 2),
    ("squeezenet1_1", {"num_classes": 10, "dropout": 0.0}, (3, 64, 64), np.float64, 2),
    ("squeezenet1_0", {"num_classes": 10, "dropout": 0.0}, (3, 64, 64), np.float64, 1),
    ("vgg11_bn", {"num_classes": 10, "dropout": 0.0}, (3, 32, 32), np.float32, 2),
    ("vgg16_bn", {"num_classes": 10, "dropout": 0.0}, (3, 32, 32), np.float32, 2),
    ("alexnet", {"num_classes": 10, "dropout": 0.0}, (3, 64, 64), np.float32, 2),
]


@pytest.mark.parametrize("name, kwargs, shape, dtype, batch", TORCHVISION_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCHVISION_CASES)])
def test_matches_torchvision(tv, torch, cheap_init, name, kwargs, shape, dtype, batch):
    torch.manual_seed(0)
    torch_model = getattr(tv, name)(weights=None, **kwargs)
    fc_model = getattr(models, name)(weights=None, **kwargs)
    check_against_torch(torch, fc_model, torch_model, shape, dtype=dtype, batch=batch)


@pytest.mark.parametrize("name", ["resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d",
                                  "wide_resnet50_2", "wide_resnet101_2", "vgg11", "vgg13", "vgg13_bn",
                                  "vgg16", "vgg19", "vgg19_bn", "squeezenet1_0"])
def test_state_dict_keys_match_torchvision(tv, torch, cheap_init, name):
    """The remaining builders: same keys and shapes (built on torch's meta device: no memory)."""
    with torch.device("meta"):
        torch_model = getattr(tv, name)(weights=None, num_classes=10)
    fc_model = getattr(models, name)(weights=None, num_classes=10)
    _assert_same_keys(fc_model, torch_model)


def test_norm_layer_and_zero_init_residual(tv, torch):
    """A custom norm_layer (GroupNorm: the unfused path) and zero_init_residual, against torchvision."""
    torch.manual_seed(1)
    torch_model = tv.resnet18(num_classes=6, norm_layer=lambda c: torch.nn.GroupNorm(8, c))
    fc_model = models.resnet18(num_classes=6, norm_layer=partial(nn.GroupNorm, 8))
    check_against_torch(torch, fc_model, torch_model, (3, 32, 32))
    zero = models.resnet34(zero_init_residual=True)
    for block in zero.layer3:
        assert np.all(block.bn2.weight.numpy() == 0)
        assert np.all(block.bn1.weight.numpy() == 1)
    bottleneck = models.resnet50(zero_init_residual=True, num_classes=2)
    assert all(np.all(b.bn3.weight.numpy() == 0) for b in bottleneck.layer1)


def test_parameter_counts(cheap_init):
    """torchvision's documented parameter counts at 1000 classes (the CIFAR ones: the paper's)."""
    counts = {"resnet18": 11689512, "resnet50": 25557032, "mobilenet_v2": 3504872, "squeezenet1_1": 1235496,
              "squeezenet1_0": 1248424, "alexnet": 61100840}
    for name, n in counts.items():
        assert sum(p.numel() for p in models.get_model(name).parameters()) == n, name
    assert sum(p.numel() for p in models.resnet20().parameters()) == 269722
    assert sum(p.numel() for p in models.resnet56().parameters()) == 853018


# ---- CIFAR ResNets against a PyTorch reference -------------------------------------------------------

def _torch_cifar_resnet(torch, n, option, num_classes=10):
    """He et al. 2016's CIFAR ResNet in PyTorch, module names as akamaster/pytorch_resnet_cifar10."""
    tnn, F = torch.nn, torch.nn.functional

    class Pad(tnn.Module):
        def __init__(self, planes):
            super().__init__()
            self.planes = planes

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4), "constant", 0)

    class Block(tnn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.shortcut = tnn.Sequential()
            if stride != 1 or cin != planes:
                self.shortcut = Pad(planes) if option == "A" else tnn.Sequential(
                    tnn.Conv2d(cin, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            cin, stages = 16, []
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for s in [stride] + [1] * (n - 1):
                    blocks.append(Block(cin, planes, s))
                    cin = planes
                stages.append(tnn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.linear = tnn.Linear(64, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.linear(F.avg_pool2d(out, out.size()[3]).flatten(1))

    return Net()


@pytest.mark.parametrize("name, n, option", [("resnet20", 3, "A"), ("resnet20", 3, "B"), ("resnet56", 9, "A")])
def test_cifar_resnets_match_reference(torch, name, n, option):
    torch.manual_seed(0)
    torch_model = _torch_cifar_resnet(torch, n, option)
    fc_model = getattr(models, name)(shortcut=option)
    check_against_torch(torch, fc_model, torch_model, (3, 32, 32) if n == 3 else (3, 16, 16))


def test_cifar_resnet_layout():
    model = models.resnet20(num_classes=100)
    assert model.linear.out_features == 100
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 6n + 1 convolutions + the linear layer = 20 weight layers
    assert [m.out_channels for m in (model.layer1[0].conv1, model.layer2[0].conv1, model.layer3[0].conv1)] == \
        [16, 32, 64]
    assert not list(model.layer2[0].shortcut.parameters())          # option A: parameter-free
    b = models.resnet20(shortcut="B")
    assert [k for k in b.state_dict() if k.startswith("layer2.0.shortcut")] == [
        "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.weight", "layer2.0.shortcut.1.bias",
        "layer2.0.shortcut.1.running_mean", "layer2.0.shortcut.1.running_var",
        "layer2.0.shortcut.1.num_batches_tracked"]
    with fc.no_grad():
        assert model(fc.randn(2, 3, 32, 32)).shape == (2, 100)
    with pytest.raises(ValueError, match="shortcut"):
        models.resnet20(shortcut="C")


# ---- LeNet (the README demo network) -----------------------------------------------------------------

def test_lenet_is_the_demo_blueprint(torch):
    from fastconv._runs import build_model
    from fastconv.cli import DEMO_ARCH

    demo = build_model(DEMO_ARCH, (1, 28, 28), 10)
    model = models.lenet()
    assert [(k, v.shape) for k, v in model.state_dict().items()] == \
        [(k, v.shape) for k, v in demo.state_dict().items()]
    model.load_state_dict(demo.state_dict())
    x = fc.randn(3, 1, 28, 28)
    with fc.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), demo(x).numpy())
    tnn = torch.nn
    twin = tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(32, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(1568, 128), tnn.ReLU(), tnn.Linear(128, 10))
    check_against_torch(torch, models.lenet(), twin, (1, 28, 28))
    rgb = models.lenet(num_classes=3, in_channels=3, image_size=(32, 20))
    assert rgb[7].in_features == 32 * 8 * 5
    with fc.no_grad():
        assert rgb(fc.randn(1, 3, 32, 20)).shape == (1, 3)


# ---- builder arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11_bn", "alexnet", "squeezenet1_1",
                                  "resnet20", "lenet"])
def test_weights_other_than_none_are_refused(name):
    builder = getattr(models, name)
    for weights in ("DEFAULT", "IMAGENET1K_V1"):
        with pytest.raises(ValueError, match=rf"{name}: weights=.*offline.*load_state_dict"):
            builder(weights=weights)
    with pytest.raises(ValueError, match="offline"):
        builder(pretrained=True)


def test_builder_arguments(cheap_init):
    assert models.resnet18(progress=False, pretrained=False, num_classes=3).fc.out_features == 3
    assert models.get_model("ResNet18", num_classes=4).fc.out_features == 4
    assert "resnet20" in models.list_models() and "mobilenet_v2" in models.list_models()
    assert [models.default_input_shape(n) for n in ("resnet18", "resnet56", "lenet", "vgg11_bn")] == \
        [(3, 224, 224), (3, 32, 32), (1, 28, 28), (3, 224, 224)]
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        models.get_model("resnet9")
    with pytest.raises(ValueError, match="groups"):
        models.resnext50_32x4d(groups=8)
    with pytest.raises(ValueError, match="BasicBlock"):
        models.ResNet(models.BasicBlock, [2, 2, 2, 2], groups=2)
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        models.resnet50(replace_stride_with_dilation=[True])
    with pytest.raises(ValueError, match="inverted_residual_setting"):
        models.mobilenet_v2(inverted_residual_setting=[[1, 16, 1]])
    with pytest.raises(ValueError, match="version"):
        models.SqueezeNet("2_0")
    m = models.mobilenet_v2(width_mult=0.35)
    assert m.last_channel == 1280 and m.features[0][0].out_channels == 16
    assert models.mobilenet_v2(width_mult=1.4).last_channel == 1792


def test_vision_namespace(cheap_init):
    import fastconv.vision as vision

    assert vision.models is models
    assert isinstance(models.resnet18(), models.ResNet)
    assert isinstance(models.resnet18().layer1[0], models.BasicBlock)
    assert isinstance(models.resnet50().layer1[0], models.Bottleneck)
