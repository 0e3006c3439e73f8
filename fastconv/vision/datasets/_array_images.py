"""Datasets whose images are the rows of one uint8 array (MNIST-style HW, CIFAR-style HWC).

``ds[i]`` is torchvision's sample: a PIL image (mode ``L`` or ``RGB``) through ``transform``, and
the label (an int) through ``target_transform``. Without Pillow the image reaches the transform
as an HWC uint8 ndarray, which every ``fastconv.vision.transforms`` transform accepts.

``ds.__getitems__(indices)`` (what the DataLoader calls for a batch) takes the batched path when
``transform`` is a pipeline ``fastconv.vision.transforms`` can fuse (see ``_fusion``): one kernel
pass over the uint8 batch instead of a PIL round trip per image, with the same random draws in
the same order and bit-identical results. Otherwise, or when a subclass overrides
``__getitem__``, it is ``[ds[i] for i in indices]``.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

from ...random import get_generator
from ...tensor import Tensor
from ...utils.data.collate import PrestackedBatch
from .._image import pil_available, pil_from_array
from ..transforms import _fusion
from .vision import VisionDataset


def as_numpy(value) -> np.ndarray:
    """``data``/``targets`` as an ndarray whether they are Tensors, ndarrays or lists."""
    if isinstance(value, Tensor):
        return value.numpy()
    return np.asarray(value)


class ArrayImageDataset(VisionDataset):
    """Base of MNIST-like and CIFAR-like datasets: ``data`` (N, H, W) or (N, H, W, 3) uint8 and
    ``targets`` (ints); subclasses load them."""

    def _image(self, index):
        img = as_numpy(self.data)[index]
        if pil_available():
            return pil_from_array(img, "L" if img.ndim == 2 else "RGB", type(self).__name__)
        return np.array(img)  # a copy: a transform editing it in place leaves the dataset alone

    def _target(self, index) -> int:
        return int(self.targets[index])

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        img, target = self._image(index), self._target(index)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: List[int]) -> List[Tuple[Any, Any]]:
        pipeline = self._batch_pipeline()
        if pipeline is None:
            return [self[i] for i in indices]
        images = as_numpy(self.data)[np.asarray(indices, dtype=np.intp)]
        batch = pipeline(images if images.ndim == 4 else images[..., None], get_generator())
        targets = [self._target(i) for i in indices]
        if self.target_transform is not None:
            targets = [self.target_transform(t) for t in targets]
        samples = [(Tensor._wrap(batch[k]), t) for k, t in enumerate(targets)]
        return PrestackedBatch(samples, {0: batch})

    def _batch_pipeline(self):
        """The fused pipeline of ``transform`` for this data, or None (per-sample path)."""
        if self.transform is None or type(self).__getitem__ is not ArrayImageDataset.__getitem__:
            return None
        if type(self)._image is not ArrayImageDataset._image:
            return None
        data = self.data
        if not isinstance(data, (np.ndarray, Tensor)) or data.dtype != np.uint8 or data.ndim not in (3, 4):
            return None
        shape = tuple(data.shape[1:]) if data.ndim == 4 else tuple(data.shape[1:]) + (1,)
        if shape[2] not in (1, 3):
            return None
        return _fusion.plan(self.transform, height=shape[0], width=shape[1], channels=shape[2])
