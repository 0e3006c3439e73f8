"""What an image is to ``fastconv.vision``: a PIL image, an HWC ndarray or a CHW Tensor.

Pillow is optional (``pip install "fastconv[vision]"``): it is imported only by the code that
needs it, and ``is_pil_image`` answers without importing it.
"""
from __future__ import annotations

import sys

import numpy as np

from ..tensor import Tensor

VISION_EXTRA = 'pip install "fastconv[vision]"'


def require_pil(op: str):
    """The ``PIL.Image`` module, or an ImportError naming the extra that provides Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(f"{op} needs Pillow (optional): {VISION_EXTRA}") from exc
    return Image


def pil_available() -> bool:
    """Whether Pillow can be imported."""
    try:
        import PIL.Image  # noqa: F401 (availability check)
    except ImportError:
        return False
    return True


def is_pil_image(obj) -> bool:
    """True for a ``PIL.Image.Image`` (checked only if Pillow was imported: else nothing is one)."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def kind_of(img, op: str) -> str:
    """``'pil'``, ``'tensor'`` (CHW, ``(..., C, H, W)``) or ``'ndarray'`` (HWC), else a TypeError."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise TypeError(f"{op}: expected an image tensor with at least 2 dimensions (..., H, W), "
                            f"got shape {tuple(img.shape)}")
        return "tensor"
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise TypeError(f"{op}: expected an HWC (or HW) ndarray image, got shape {img.shape}")
        return "ndarray"
    if is_pil_image(img):
        return "pil"
    raise TypeError(f"{op}: expected a PIL Image, an HWC ndarray or a CHW Tensor, got {type(img).__name__}")


def as_chw(img, kind: str) -> np.ndarray:
    """The image as a ``(..., C, H, W)`` array view (a 2-D image keeps its 2 dimensions)."""
    if kind == "tensor":
        return img.numpy()
    if img.ndim == 2:
        return img
    return img.transpose(2, 0, 1)


def from_chw(array: np.ndarray, kind: str):
    """Undo ``as_chw``: a Tensor for tensors, a contiguous HWC ndarray for ndarrays."""
    if kind == "tensor":
        return Tensor._wrap(np.ascontiguousarray(array))
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def dimensions(img, op: str):
    """``[channels, height, width]`` of any supported image (torchvision's ``get_dimensions``)."""
    kind = kind_of(img, op)
    if kind == "pil":
        width, height = img.size
        return [len(img.getbands()), height, width]
    a = as_chw(img, kind)
    channels = 1 if a.ndim == 2 else a.shape[-3]
    return [channels, a.shape[-2], a.shape[-1]]


def pil_from_array(array: np.ndarray, mode: str, op: str):
    """A PIL image of ``array`` (HW or HWC) read in ``mode`` (Pillow ≥ 11.3 no longer takes a mode
    in ``fromarray``: when the mode differs from the one it infers, the bytes go through
    ``frombuffer`` with that mode, which is what ``fromarray(array, mode)`` did)."""
    Image = require_pil(op)
    array = np.ascontiguousarray(array)
    inferred = Image.fromarray(array)
    if inferred.mode == mode:
        return inferred
    height, width = array.shape[:2]
    return Image.frombuffer(mode, (width, height), array.tobytes(), "raw", mode, 0, 1)
