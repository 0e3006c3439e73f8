"""The README's demo network, ``INPUT -> [CONV(32, 3, same) -> RELU -> POOL]*2 -> FC(128) -> RELU -> FC``,
as a model: the same layers and state_dict keys (``0.weight``, ``3.weight``, ``7.weight``,
``9.weight``) as ``fastconv.nn.blueprint`` builds from that spec, so ``fastconv demo`` and
``fastconv train`` checkpoints load into it."""
from __future__ import annotations

from typing import Any, Tuple, Union

from ... import nn
from ._utils import check_builder_args

__all__ = ["LeNet", "lenet"]


class LeNet(nn.Sequential):
    """Two 3×3 'same' convolutions of 32 channels, each followed by ReLU and a 2×2 max pool, then
    FC(128), ReLU and the classifier. ``image_size`` (an int or (H, W)) fixes the first fully
    connected layer's width: 32·⌊H/4⌋·⌊W/4⌋."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: Union[int, Tuple[int, int]] = 28):
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if h < 4 or w < 4:
            raise ValueError(f"LeNet: expected an image_size of at least 4x4 (two 2x2 pools), got {image_size!r}")
        super().__init__(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, num_classes))


def lenet(*, weights=None, **kwargs: Any) -> LeNet:
    """The demo LeNet (MNIST-sized by default: 1×28×28, 10 classes); kwargs go to ``LeNet``."""
    check_builder_args("lenet", weights, kwargs)
    return LeNet(**kwargs)
