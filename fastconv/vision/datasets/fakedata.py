"""``FakeData``: random images and labels, the same for the same index (torchvision's signature).

Image ``i`` and its label come from a numpy generator seeded with ``i + random_offset``: uniform
bytes of shape ``image_size`` (C, H, W), returned as a PIL image (an HWC ndarray without Pillow),
and a label in ``[0, num_classes)``. The values differ from torchvision's (another generator);
shapes, types and determinism per index are the same.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from .._image import pil_available, pil_from_array
from .vision import VisionDataset

__all__ = ["FakeData"]

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class FakeData(VisionDataset):
    """``size`` random samples of ``image_size`` (C, H, W) with ``num_classes`` classes."""

    def __init__(self, size: int = 1000, image_size: Sequence[int] = (3, 224, 224), num_classes: int = 10,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 random_offset: int = 0) -> None:
        super().__init__(transform=transform, target_transform=target_transform)
        for name, value in (("size", size), ("num_classes", num_classes), ("random_offset", random_offset)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"FakeData: expected {name} as a non-negative int, got {value!r}")
        image_size = tuple(image_size)
        if (len(image_size) != 3 or image_size[0] not in _MODES
                or not all(isinstance(d, (int, np.integer)) and d > 0 for d in image_size)):
            raise ValueError(f"FakeData: expected image_size (C, H, W) with C in {sorted(_MODES)}, got {image_size}")
        if num_classes < 1:
            raise ValueError(f"FakeData: expected num_classes >= 1, got {num_classes}")
        self.size = int(size)
        self.num_classes = int(num_classes)
        self.image_size = image_size
        self.random_offset = int(random_offset)

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"FakeData: expected an integer index, got {type(index).__name__}")
        if index >= len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        rng = np.random.default_rng(int(index) + self.random_offset)
        chw = rng.integers(0, 256, size=self.image_size, dtype=np.uint8)
        target = int(rng.integers(0, self.num_classes))
        hwc = chw.transpose(1, 2, 0)
        img = pil_from_array(hwc[..., 0] if hwc.shape[2] == 1 else hwc, _MODES[hwc.shape[2]], "FakeData") \
            if pil_available() else np.ascontiguousarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return self.size
