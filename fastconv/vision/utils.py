"""torchvision's ``utils.make_grid`` and ``utils.save_image`` for fastconv Tensors.

``make_grid`` tiles a batch ``(B, C, H, W)`` (or a list of CHW images) into one CHW image, as
torchvision does (same layout, padding, normalization). ``save_image`` writes that grid as an image
file through Pillow (``fastconv[vision]``), or matplotlib (``fastconv[viz]``) when Pillow is
absent; a path is written atomically (``fastconv._atomic``).
"""
from __future__ import annotations

import math
import os
from typing import BinaryIO, Optional, Tuple, Union

import numpy as np

from .._atomic import atomic_write
from ..tensor import Tensor
from ._image import VISION_EXTRA, pil_available

__all__ = ["make_grid", "save_image"]


def _as_batch(tensor) -> np.ndarray:
    if isinstance(tensor, list):
        for t in tensor:
            if not isinstance(t, Tensor):
                raise TypeError(f"make_grid: tensor or list of tensors expected, got a list containing {type(t)}")
        shapes = {t.shape for t in tensor}
        if len(shapes) != 1:
            raise ValueError(f"make_grid: the images of a list must share one shape, got {sorted(shapes)}")
        return np.stack([t.numpy() for t in tensor])
    if not isinstance(tensor, Tensor):
        raise TypeError(f"make_grid: tensor or list of tensors expected, got {type(tensor)}")
    return tensor.numpy()


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: Optional[Tuple[float, float]] = None, scale_each: bool = False,
              pad_value: float = 0.0) -> Tensor:
    """A CHW Tensor tiling the images ``nrow`` per row, ``padding`` pixels apart (``pad_value``).

    One-channel images become three-channel; ``normalize`` maps ``value_range`` (default: the min
    and max, per image with ``scale_each``) to [0, 1].
    """
    for name, value in (("nrow", nrow), ("padding", padding)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (1 if name == "nrow" else 0):
            raise ValueError(f"make_grid: expected {name} as an int >= {1 if name == 'nrow' else 0}, got {value!r}")
    x = _as_batch(tensor)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        if x.shape[0] == 1:
            x = np.concatenate((x, x, x), axis=0)
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected a (B, C, H, W) batch or CHW/HW images, got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.concatenate((x, x, x), axis=1)
    if normalize is True:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        x = x.copy()
        if x.dtype.kind != "f":
            raise TypeError(f"make_grid: normalize needs a float tensor, got {x.dtype}")
        parts = x if scale_each is True else x[None]
        for part in parts:
            low, high = value_range if value_range is not None else (float(part.min()), float(part.max()))
            np.clip(part, low, high, out=part)
            part -= part.dtype.type(low)
            part /= part.dtype.type(max(high - low, 1e-5))
    if x.shape[0] == 1:
        return Tensor._wrap(np.ascontiguousarray(x[0]))
    nmaps = x.shape[0]
    xmaps = min(int(nrow), nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = x.shape[2] + padding, x.shape[3] + padding
    grid = np.full((x.shape[1], height * ymaps + padding, width * xmaps + padding), pad_value, dtype=x.dtype)
    for k in range(nmaps):
        row, col = divmod(k, xmaps)
        top, left = row * height + padding, col * width + padding
        grid[:, top:top + height - padding, left:left + width - padding] = x[k]
    return Tensor._wrap(grid)


def _to_bytes(grid: np.ndarray) -> np.ndarray:
    """torchvision's ``grid.mul(255).add_(0.5).clamp_(0, 255)`` as uint8 HWC."""
    scaled = grid.astype(np.float32) * np.float32(255) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def _encode(image: np.ndarray, fp, format: Optional[str]) -> None:
    if pil_available():
        from PIL import Image
        pil = Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[2] == 1 else image))
        pil.save(fp, format=format)
        return
    try:
        from matplotlib import image as mpimage
    except ImportError as exc:
        raise ImportError(f"save_image needs Pillow ({VISION_EXTRA}) or matplotlib "
                          '(pip install "fastconv[viz]")') from exc
    mpimage.imsave(fp, np.ascontiguousarray(image[..., 0] if image.shape[2] == 1 else image),
               format=format or "png", cmap="gray" if image.shape[2] == 1 else None)


def save_image(tensor, fp: Union[str, "os.PathLike[str]", BinaryIO], format: Optional[str] = None, **kwargs) -> None:
    """Save ``make_grid(tensor, **kwargs)`` as an image (format from ``format`` or the file name)."""
    grid = make_grid(tensor, **kwargs).numpy()
    image = _to_bytes(grid)
    if isinstance(fp, (str, os.PathLike)):
        path = os.fspath(fp)
        if format is None:
            extension = os.path.splitext(path)[1].lower().lstrip(".")
            if not extension:
                raise ValueError(f"save_image: cannot tell the image format of {path!r}: give format= or an extension")
            format = {"jpg": "jpeg", "tif": "tiff"}.get(extension, extension)
        with atomic_write(path) as f:
            _encode(image, f, format)
    else:
        _encode(image, fp, format)
