"""The CIFAR ResNets of He et al. 2016 (section 4.2): a 3×3 stem of 16 channels, three stages of
n BasicBlocks with 16, 32 and 64 channels (strides 1, 2, 2), global average pooling and a linear
layer: 6n + 2 layers (ResNet-20: n = 3, 0.27 M parameters; ResNet-56: n = 9, 0.85 M).

Module names follow the popular akamaster/pytorch_resnet_cifar10 (``conv1``, ``bn1``,
``layer1.0.conv1``, ``linear``), so its checkpoints load once their DataParallel ``module.`` prefix
is stripped. Shortcuts where the shape changes:

* ``shortcut="A"`` (default, the paper's CIFAR choice and akamaster's): parameter-free, the input
  subsampled by 2 and zero-padded with planes // 4 channels on each side;
* ``shortcut="B"``: a 1×1 strided convolution and batch norm (keys ``shortcut.0.weight``,
  ``shortcut.1.running_mean``, ...), as in akamaster's option B.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence


from ... import nn
from ...nn import fusion
from ...tensor import Tensor, pad
from ._utils import check_builder_args, torch_default_init_

__all__ = ["CifarResNet", "CifarBasicBlock", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


class PadShortcut(nn.Module):
    """Option A: x[:, :, ::stride, ::stride] with ``pad`` zero channels before and after."""

    def __init__(self, pad: int, stride: int = 2):
        super().__init__()
        self.pad = pad
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        sub = x[:, :, ::self.stride, ::self.stride]
        return pad(sub, ((0, 0), (self.pad, self.pad), (0, 0), (0, 0)))

    def extra_repr(self) -> str:
        return f"pad={self.pad}, stride={self.stride}"


class CifarBasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm; the shortcut is the identity, or (shape change)
    option A (``PadShortcut``) or B (1×1 conv + BN)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "A",
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                if planes != 2 * in_planes or stride != 2:
                    raise ValueError(f"CifarBasicBlock: option A doubles the channels at stride 2, got "
                                     f"{in_planes} -> {planes} channels at stride {stride}")
                self.shortcut = PadShortcut(planes // 4, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), norm_layer(planes))

    def forward(self, x):
        out = fusion.norm_activation(self.bn1, self.relu, self.conv1(x))
        out = self.conv2(out)
        return fusion.norm_activation(self.bn2, self.relu, out, residual=self.shortcut(x))


class CifarResNet(nn.Module):
    """6n + 2 layer ResNet for 32×32 inputs (any size works: the head pools globally).

    ``num_blocks``: blocks per stage (n, n, n); ``shortcut``: "A" or "B" (module docstring);
    ``norm_layer`` builds every normalization (default BatchNorm2d). Initialization as akamaster's:
    kaiming_normal_ (fan_in) for convolutions and the linear weight, PyTorch's default linear bias.
    """

    def __init__(self, num_blocks: Sequence[int], num_classes: int = 10, shortcut: str = "A",
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: expected shortcut 'A' (zero-padding) or 'B' (1x1 conv + BN), "
                             f"got {shortcut!r}")
        if len(num_blocks) != 3:
            raise ValueError(f"CifarResNet: expected 3 stage depths in num_blocks, got {list(num_blocks)!r}")
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.shortcut_option = shortcut
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, num_blocks[0], 1, norm_layer)
        self.layer2 = self._make_layer(32, num_blocks[1], 2, norm_layer)
        self.layer3 = self._make_layer(64, num_blocks[2], 2, norm_layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(64, num_classes)
        torch_default_init_(self.linear)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int, norm_layer) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(CifarBasicBlock(self.in_planes, planes, s, self.shortcut_option, norm_layer))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = fusion.norm_activation(self.bn1, self.relu, self.conv1(x))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.avgpool(out).flatten(1))


def _cifar(builder: str, n: int, weights, kwargs: dict) -> CifarResNet:
    check_builder_args(builder, weights, kwargs)
    return CifarResNet([n, n, n], **kwargs)


def resnet20(*, weights=None, **kwargs: Any) -> CifarResNet:
    """ResNet-20 for CIFAR (n = 3, 0.27 M parameters); kwargs: num_classes=10, shortcut='A', norm_layer."""
    return _cifar("resnet20", 3, weights, kwargs)


def resnet32(*, weights=None, **kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (n = 5)."""
    return _cifar("resnet32", 5, weights, kwargs)


def resnet44(*, weights=None, **kwargs: Any) -> CifarResNet:
    """ResNet-44 for CIFAR (n = 7)."""
    return _cifar("resnet44", 7, weights, kwargs)


def resnet56(*, weights=None, **kwargs: Any) -> CifarResNet:
    """ResNet-56 for CIFAR (n = 9, 0.85 M parameters)."""
    return _cifar("resnet56", 9, weights, kwargs)


def resnet110(*, weights=None, **kwargs: Any) -> CifarResNet:
    """ResNet-110 for CIFAR (n = 18, 1.7 M parameters)."""
    return _cifar("resnet110", 18, weights, kwargs)
