"""AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower form ("One weird trick",
Krizhevsky 2014): ``features``, ``avgpool`` (adaptive 6×6; inputs of at least 63×63) and
``classifier``, with torchvision's state_dict keys."""
from __future__ import annotations

from typing import Any

from ... import nn
from ._utils import check_builder_args, torch_default_init_

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """torchvision's AlexNet; ``dropout`` is the classifier's dropout probability. Initialized as
    torchvision leaves it: PyTorch's default layer initialization."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))
        torch_default_init_(self)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(*, weights=None, **kwargs: Any) -> AlexNet:
    """AlexNet (61.1 M parameters at 1000 classes); kwargs go to ``AlexNet``."""
    check_builder_args("alexnet", weights, kwargs)
    return AlexNet(**kwargs)
