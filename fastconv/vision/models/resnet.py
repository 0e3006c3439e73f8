"""ResNet (He et al. 2016) for ImageNet-sized inputs, as torchvision builds it: same module names,
so torchvision's state_dict keys (``layer1.0.conv1.weight``, ``layer2.0.downsample.1.running_mean``,
``fc.weight``) and shapes load unchanged. Bottleneck puts the stride on its 3×3 convolution
(torchvision's "ResNet V1.5").

The blocks run BatchNorm → ReLU and BatchNorm → residual add → ReLU through
``fastconv.nn.fusion`` (one fused call each when the layers carry no hooks).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Type, Union

from ... import nn
from ...nn import fusion
from ._utils import check_builder_args, torch_default_init_

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding = dilation, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a shortcut (ResNet-18/34)."""

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock: only groups=1 and base_width=64 are supported, got groups={groups}, "
                             f"base_width={base_width}")
        if dilation > 1:
            raise NotImplementedError(f"BasicBlock: dilation > 1 is not supported, got dilation={dilation}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = fusion.norm_activation(self.bn1, self.relu, self.conv1(x))
        out = self.conv2(out)
        identity = x if self.downsample is None else self.downsample(x)
        return fusion.norm_activation(self.bn2, self.relu, out, residual=identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided, grouped, dilated), 1×1 expand ×4, with batch norm and a shortcut
    (ResNet-50 and deeper, ResNeXt, Wide ResNet)."""

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = fusion.norm_activation(self.bn1, self.relu, self.conv1(x))
        out = fusion.norm_activation(self.bn2, self.relu, self.conv2(out))
        out = self.conv3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return fusion.norm_activation(self.bn3, self.relu, out, residual=identity)


class ResNet(nn.Module):
    """torchvision's ResNet: 7×7/2 stem, 3×3/2 max pool, four stages, global average pool, fc.

    ``zero_init_residual`` zeroes the last BN weight of every residual branch (Goyal et al. 2017);
    ``groups``/``width_per_group`` make ResNeXt and Wide ResNet; ``replace_stride_with_dilation``
    (three bools, stages 2–4) keeps the resolution with dilated convolutions instead of strides;
    ``norm_layer`` builds every normalization (default BatchNorm2d).
    """

    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
                 replace_stride_with_dilation: Optional[Sequence[bool]] = None,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(f"ResNet: replace_stride_with_dilation should be None or a 3-element tuple, got "
                             f"{replace_stride_with_dilation!r}")
        if len(layers) != 4:
            raise ValueError(f"ResNet: expected 4 stage depths in layers, got {list(layers)!r}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _resnet_init_(self, zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers: List[nn.Module] = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                                         previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = fusion.norm_activation(self.bn1, self.relu, self.conv1(x))
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        return self.fc(x.flatten(1))


def _resnet_init_(model: nn.Module, zero_init_residual: bool) -> None:
    """torchvision's scheme: convolutions kaiming_normal_(fan_out, relu), norms weight 1 / bias 0,
    optionally the last BN of each residual branch zeroed; the fc keeps PyTorch's default init."""
    torch_default_init_(model.fc)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                nn.init.constant_(m.bn2.weight, 0)


def _resnet(builder: str, block, layers: Sequence[int], weights, kwargs: dict, **fixed: Any) -> ResNet:
    check_builder_args(builder, weights, kwargs)
    for name, value in fixed.items():
        if name in kwargs and kwargs[name] != value:
            raise ValueError(f"{builder}: the parameter '{name}' expected value {value} but got {kwargs[name]} "
                             "instead")
        kwargs[name] = value
    return ResNet(block, layers, **kwargs)


def resnet18(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNet-18 (11.7 M parameters at 1000 classes); kwargs go to ``ResNet``."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], weights, kwargs)


def resnet34(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNet-34; kwargs go to ``ResNet``."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], weights, kwargs)


def resnet50(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck blocks, 25.6 M parameters); kwargs go to ``ResNet``."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], weights, kwargs)


def resnet101(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNet-101; kwargs go to ``ResNet``."""
    return _resnet("resnet101", Bottleneck, [3, 4, 23, 3], weights, kwargs)


def resnet152(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNet-152; kwargs go to ``ResNet``."""
    return _resnet("resnet152", Bottleneck, [3, 8, 36, 3], weights, kwargs)


def resnext50_32x4d(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNeXt-50 32×4d (Xie et al. 2017): groups 32, width per group 4."""
    return _resnet("resnext50_32x4d", Bottleneck, [3, 4, 6, 3], weights, kwargs, groups=32, width_per_group=4)


def resnext101_32x8d(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNeXt-101 32×8d."""
    return _resnet("resnext101_32x8d", Bottleneck, [3, 4, 23, 3], weights, kwargs, groups=32, width_per_group=8)


def resnext101_64x4d(*, weights=None, **kwargs: Any) -> ResNet:
    """ResNeXt-101 64×4d."""
    return _resnet("resnext101_64x4d", Bottleneck, [3, 4, 23, 3], weights, kwargs, groups=64, width_per_group=4)


def wide_resnet50_2(*, weights=None, **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): bottlenecks twice as wide."""
    return _resnet("wide_resnet50_2", Bottleneck, [3, 4, 6, 3], weights, kwargs, width_per_group=128)


def wide_resnet101_2(*, weights=None, **kwargs: Any) -> ResNet:
    """Wide ResNet-101-2."""
    return _resnet("wide_resnet101_2", Bottleneck, [3, 4, 23, 3], weights, kwargs, width_per_group=128)
