"""Image operations on PIL images, done with Pillow exactly as torchvision does them."""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from .._image import pil_from_array, require_pil


def _modules(op: str):
    require_pil(op)
    from PIL import Image, ImageEnhance, ImageOps
    return Image, ImageEnhance, ImageOps


def hflip(img):
    Image, _, _ = _modules("hflip")
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def vflip(img):
    Image, _, _ = _modules("vflip")
    return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def crop(img, top: int, left: int, height: int, width: int):
    return img.crop((left, top, left + width, top + height))


def resize(img, size: Sequence[int], interpolation: int):
    """``size`` is (h, w); ``interpolation`` a Pillow resampling constant."""
    return img.resize((int(size[1]), int(size[0])), interpolation)


def parse_fill(fill, img, name: str = "fillcolor") -> dict:
    """torchvision's fill rules for Pillow: one value per band, ints unless the mode is F."""
    channels = len(img.getbands())
    if fill is None:
        fill = 0
    if isinstance(fill, (int, float)) and channels > 1:
        fill = tuple([fill] * channels)
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = tuple(fill) * channels
        elif len(fill) != channels:
            raise ValueError(f"The number of elements in 'fill' does not match the number of channels of the "
                             f"image ({len(fill)} != {channels})")
        fill = tuple(fill)
    if img.mode != "F":
        fill = tuple(int(x) for x in fill) if isinstance(fill, tuple) else int(fill)
    return {name: fill}


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Constant padding through ``ImageOps.expand``; other modes through ``numpy.pad``."""
    Image, _, ImageOps = _modules("pad")
    if isinstance(padding, list):
        padding = tuple(padding)
    if isinstance(padding, tuple) and len(padding) == 1:
        padding = padding[0]
    if padding_mode == "constant":
        opts = parse_fill(fill, img, name="fill")
        if img.mode == "P":
            palette = img.getpalette()
            image = ImageOps.expand(img, border=padding, **opts)
            image.putpalette(palette)
            return image
        return ImageOps.expand(img, border=padding, **opts)
    if isinstance(padding, numbers.Integral):
        p = [int(padding)] * 4
    elif len(padding) == 2:
        p = [padding[0], padding[1], padding[0], padding[1]]
    else:
        p = list(padding)
    crop_l, crop_t, crop_r, crop_b = (-np.minimum(p, 0)).tolist()
    if crop_l or crop_t or crop_r or crop_b:
        img = img.crop((crop_l, crop_t, img.width - crop_r, img.height - crop_b))
    pad_l, pad_t, pad_r, pad_b = np.maximum(p, 0).tolist()
    palette = img.getpalette() if img.mode == "P" else None
    array = np.asarray(img)
    widths = ((pad_t, pad_b), (pad_l, pad_r)) + (((0, 0),) if array.ndim == 3 else ())
    out = Image.fromarray(np.pad(array, widths, mode=padding_mode))
    if palette is not None:
        out.putpalette(palette)
    return out


def rotate(img, angle: float, interpolation: int, expand: bool, center, fill):
    return img.rotate(angle, interpolation, expand, center, **parse_fill(fill, img))


def adjust_brightness(img, factor: float):
    _, ImageEnhance, _ = _modules("adjust_brightness")
    return ImageEnhance.Brightness(img).enhance(factor)


def adjust_contrast(img, factor: float):
    _, ImageEnhance, _ = _modules("adjust_contrast")
    return ImageEnhance.Contrast(img).enhance(factor)


def adjust_saturation(img, factor: float):
    _, ImageEnhance, _ = _modules("adjust_saturation")
    return ImageEnhance.Color(img).enhance(factor)


def adjust_hue(img, factor: float):
    Image, _, _ = _modules("adjust_hue")
    mode = img.mode
    if mode in {"L", "1", "I", "F"}:
        return img
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.int32(factor * 255).astype(np.uint8)
    h = pil_from_array(np_h, "L", "adjust_hue")
    return Image.merge("HSV", (h, s, v)).convert(mode)


def to_grayscale(img, num_output_channels: int):
    img = img.convert("L")
    if num_output_channels == 3:
        array = np.array(img, dtype=np.uint8)
        return pil_from_array(np.dstack([array, array, array]), "RGB", "to_grayscale")
    return img


def num_channels(img) -> int:
    return len(img.getbands())
