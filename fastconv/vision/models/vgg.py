"""VGG (Simonyan & Zisserman 2015), with and without batch norm, as torchvision builds it:
``features`` (3×3 convolutions with bias, [BatchNorm2d,] ReLU, 2×2 max pools), ``avgpool``
(adaptive to 7×7, so any input of at least 32×32 works) and ``classifier``; torchvision's
state_dict keys (``features.0.weight``, ``features.1.running_var``, ``classifier.6.bias``) load
unchanged."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

from ... import nn
from ._utils import check_builder_args

__all__ = ["VGG", "make_layers", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
           "vgg19_bn"]

CFGS: Dict[str, List[Union[str, int]]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """torchvision's VGG head on a given ``features`` Sequential (512 output channels).

    ``init_weights``: torchvision's scheme (convolutions kaiming_normal_(fan_out, relu), batch norm
    1/0, linear N(0, 0.01), biases 0); ``dropout``: the classifier's dropout probability.
    """

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes))
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def make_layers(cfg: Sequence[Union[str, int]], batch_norm: bool = False) -> nn.Sequential:
    """The ``features`` of a VGG configuration: channel counts and "M" for a 2×2 max pool."""
    layers: List[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            in_channels = int(v)
    return nn.Sequential(*layers)


def _vgg(builder: str, cfg: str, batch_norm: bool, weights, kwargs: dict) -> VGG:
    check_builder_args(builder, weights, kwargs)
    return VGG(make_layers(CFGS[cfg], batch_norm=batch_norm), **kwargs)


def vgg11(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A); kwargs go to ``VGG``."""
    return _vgg("vgg11", "A", False, weights, kwargs)


def vgg11_bn(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-11 with batch norm; kwargs go to ``VGG``."""
    return _vgg("vgg11_bn", "A", True, weights, kwargs)


def vgg13(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-13 (configuration B)."""
    return _vgg("vgg13", "B", False, weights, kwargs)


def vgg13_bn(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-13 with batch norm."""
    return _vgg("vgg13_bn", "B", True, weights, kwargs)


def vgg16(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg("vgg16", "D", False, weights, kwargs)


def vgg16_bn(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-16 with batch norm."""
    return _vgg("vgg16_bn", "D", True, weights, kwargs)


def vgg19(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-19 (configuration E)."""
    return _vgg("vgg19", "E", False, weights, kwargs)


def vgg19_bn(*, weights=None, **kwargs: Any) -> VGG:
    """VGG-19 with batch norm."""
    return _vgg("vgg19_bn", "E", True, weights, kwargs)
