"""torchvision's ``transforms.functional`` for fastconv: the same functions and arguments.

Every function takes a PIL image (handled by Pillow as torchvision does), a fastconv Tensor
``(..., C, H, W)`` or an ndarray in HWC (or HW) layout, and returns the same kind. Tensors and
ndarrays follow torchvision's tensor arithmetic (``_array``), so a Tensor gives the values
torchvision gives for the same torch tensor. Results are new data (never recorded for autograd).
"""
from __future__ import annotations

import numbers
import sys
import warnings
from enum import Enum
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...tensor import Tensor
from .._image import as_chw, dimensions, from_chw, kind_of, pil_from_array, require_pil
from . import _array, _pil, _resample

__all__ = [
    "InterpolationMode", "get_dimensions", "get_image_size", "get_image_num_channels", "to_tensor", "pil_to_tensor",
    "to_pil_image", "normalize", "resize", "pad", "crop", "center_crop", "resized_crop", "hflip", "vflip", "rotate",
    "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_grayscale", "to_grayscale",
    "five_crop", "ten_crop", "convert_image_dtype",
]


class InterpolationMode(Enum):
    """Interpolation methods (torchvision's names and values)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_FROM_PIL_INT = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC,
                 4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING, 1: InterpolationMode.LANCZOS}
_TO_PIL_INT = {InterpolationMode.NEAREST: 0, InterpolationMode.BILINEAR: 2, InterpolationMode.BICUBIC: 3,
               InterpolationMode.NEAREST_EXACT: 0, InterpolationMode.BOX: 4, InterpolationMode.HAMMING: 5,
               InterpolationMode.LANCZOS: 1}


def interpolation_mode(value, op: str) -> InterpolationMode:
    """An InterpolationMode from the enum or a Pillow integer constant."""
    if isinstance(value, InterpolationMode):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) in _FROM_PIL_INT:
        return _FROM_PIL_INT[int(value)]
    raise TypeError(f"{op}: expected interpolation as an InterpolationMode or a Pillow integer constant, "
                    f"got {value!r}")


def _check_array_mode(mode: InterpolationMode, allowed: Sequence[str], op: str) -> None:
    if mode.value not in allowed:
        raise ValueError(f"{op}: interpolation mode '{mode.value}' is unsupported with Tensor/ndarray input; "
                         f"expected one of {list(allowed)}")


# ---- sizes -----------------------------------------------------------------------------------------
def get_dimensions(img) -> List[int]:
    """``[channels, height, width]``."""
    return dimensions(img, "get_dimensions")


def get_image_size(img) -> List[int]:
    """``[width, height]``."""
    _, h, w = dimensions(img, "get_image_size")
    return [w, h]


def get_image_num_channels(img) -> int:
    return dimensions(img, "get_image_num_channels")[0]


# ---- conversions ---------------------------------------------------------------------------------------
def to_tensor(pic) -> Tensor:
    """PIL image or HWC ndarray → CHW Tensor; uint8 data scaled to float32 in [0, 1], other dtypes kept."""
    kind = kind_of(pic, "to_tensor")
    if kind == "tensor":
        raise TypeError(f"to_tensor: pic should be PIL Image or ndarray. Got {type(pic).__name__}")
    if kind == "ndarray":
        array = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        mode_dtypes = {"I": np.int32, "I;16" if sys.byteorder == "little" else "I;16B": np.int16, "F": np.float32}
        array = np.array(pic, mode_dtypes.get(pic.mode, np.uint8), copy=True)
        if pic.mode == "1":
            array = 255 * array
        array = array.reshape(pic.size[1], pic.size[0], len(pic.getbands()))
    chw = np.ascontiguousarray(array.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        chw = chw.astype(np.float32) / np.float32(255)
    return Tensor._wrap(chw)


def pil_to_tensor(pic) -> Tensor:
    """PIL image → CHW Tensor of the image's own dtype (no scaling)."""
    if kind_of(pic, "pil_to_tensor") != "pil":
        raise TypeError(f"pil_to_tensor: pic should be PIL Image. Got {type(pic).__name__}")
    array = np.array(pic, copy=True).reshape(pic.size[1], pic.size[0], len(pic.getbands()))
    return Tensor._wrap(np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_pil_image(pic, mode: Optional[str] = None):
    """CHW Tensor or HWC ndarray → PIL image (float data scaled by 255; mode inferred as torchvision)."""
    require_pil("to_pil_image")
    if isinstance(pic, Tensor):
        array = pic.numpy()
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
    elif isinstance(pic, np.ndarray):
        array = pic
    else:
        raise TypeError(f"to_pil_image: pic should be Tensor or ndarray. Got {type(pic).__name__}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"to_pil_image: pic should be 2/3 dimensional. Got {array.ndim} dimensions.")
    if array.shape[-1] > 4:
        raise ValueError(f"to_pil_image: pic should not have > 4 channels. Got {array.shape[-1]} channels.")
    if np.issubdtype(array.dtype, np.floating) and mode != "F":
        array = (array * 255).astype(np.uint8)
    channels = array.shape[2]
    if channels == 1:
        array = array[:, :, 0]
        expected = {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16" if sys.byteorder == "little" else "I;16B",
                    np.dtype(np.int32): "I", np.dtype(np.float32): "F"}.get(array.dtype)
        if mode is not None and mode != expected:
            raise ValueError(f"to_pil_image: incorrect mode ({mode}) supplied for input type {array.dtype}. "
                             f"Should be {expected}")
        mode = expected
    else:
        permitted = {2: ["LA"], 3: ["RGB", "YCbCr", "HSV"], 4: ["RGBA", "CMYK", "RGBX"]}[channels]
        if mode is not None and mode not in permitted:
            raise ValueError(f"to_pil_image: only modes {permitted} are supported for {channels}-channel inputs")
        if mode is None and array.dtype == np.uint8:
            mode = permitted[0]
    if mode is None:
        raise TypeError(f"to_pil_image: input type {array.dtype} is not supported")
    return pil_from_array(array, mode, "to_pil_image")


def convert_image_dtype(image: Tensor, dtype=np.float32) -> Tensor:
    """Tensor image to ``dtype``, rescaling between integer ranges and [0, 1] floats."""
    if not isinstance(image, Tensor):
        raise TypeError("convert_image_dtype: input img should be Tensor Image")
    a = image.numpy()
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return image
    if a.dtype.kind == "f":
        if dtype.kind == "f":
            return Tensor._wrap(a.astype(dtype))
        return Tensor._wrap(_array.from_float01(a, dtype))
    if dtype.kind == "f":
        return Tensor._wrap((a.astype(dtype) / dtype.type(_array.max_value(a.dtype))))
    in_max, out_max = _array.max_value(a.dtype), _array.max_value(dtype)
    if in_max > out_max:
        factor = int((in_max + 1) // (out_max + 1))
        return Tensor._wrap((a // factor).astype(dtype))
    factor = int((out_max + 1) // (in_max + 1))
    return Tensor._wrap(a.astype(dtype) * dtype.type(factor))


def normalize(tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
    """``(x - mean[c]) / std[c]`` of a float Tensor (..., C, H, W) (or HWC ndarray)."""
    kind = kind_of(tensor, "normalize")
    if kind == "pil":
        raise TypeError("normalize: img should be Tensor Image. Got a PIL Image (apply ToTensor first)")
    a = as_chw(tensor, kind)
    if a.dtype.kind != "f":
        raise TypeError(f"normalize: input tensor should be a float tensor. Got {a.dtype}.")
    if a.ndim < 3:
        raise ValueError(f"normalize: expected tensor to be a tensor image of size (..., C, H, W). Got "
                         f"tensor.size() = {tuple(a.shape)}")
    std_array = np.asarray(std, dtype=a.dtype)
    if np.any(std_array == 0):
        raise ValueError(f"normalize: std evaluated to zero after conversion to {a.dtype}, leading to division by zero.")
    channels = a.shape[-3]
    for label, v in (("mean", np.asarray(mean)), ("std", std_array)):
        if v.ndim == 1 and len(v) not in (1, channels):
            raise ValueError(f"normalize: {label} has {len(v)} values, the image has {channels} channels")
    out = _array.normalize(a, mean, std)
    if inplace:
        a[...] = out
        return tensor
    return from_chw(out, kind)


# ---- geometry ------------------------------------------------------------------------------------------
def _output_size(height: int, width: int, size, max_size: Optional[int]) -> List[int]:
    """torchvision's ``_compute_resized_output_size``: [new_h, new_w]."""
    if len(size) == 1:
        short, long = (width, height) if width <= height else (height, width)
        requested = size[0]
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the requested size for the "
                                 f"smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        return [new_h, new_w]
    return [size[0], size[1]]


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size: Optional[int] = None,
           antialias: Optional[bool] = True):
    """Resize to ``size`` (h, w), or the smaller edge to ``size`` when it is an int (or 1-sequence)."""
    mode = interpolation_mode(interpolation, "resize")
    if isinstance(size, (list, tuple)):
        if len(size) not in (1, 2):
            raise ValueError(f"resize: size must be an int or a 1 or 2 element tuple/list, not a {len(size)} "
                             "element tuple/list")
        if max_size is not None and len(size) != 1:
            raise ValueError("resize: max_size should only be passed if size specifies the length of the smaller "
                             "edge, i.e. size should be an int or a sequence of length 1")
    elif not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"resize: size should be int or sequence. Got {type(size).__name__}")
    kind = kind_of(img, "resize")
    _, height, width = dimensions(img, "resize")
    sizes = [int(size)] if not isinstance(size, (list, tuple)) else [int(s) for s in size]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"resize: expected positive sizes, got {size!r}")
    output = _output_size(height, width, sizes, max_size)
    if [height, width] == output:
        return img
    if kind == "pil":
        if antialias is False:
            warnings.warn("Anti-alias option is always applied for PIL Image input. Argument antialias is ignored.")
        return _pil.resize(img, output, _TO_PIL_INT[mode])
    _check_array_mode(mode, _resample.MODES, "resize")
    return from_chw(_resample.resize(as_chw(img, kind), output, mode.value, bool(antialias)), kind)


def _check_padding(padding, fill, padding_mode: str, op: str) -> None:
    if not isinstance(padding, (numbers.Number, tuple, list)):
        raise TypeError(f"{op}: got inappropriate padding arg {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) not in (1, 2, 4):
        raise ValueError(f"{op}: padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} "
                         "element tuple")
    if fill is not None and not isinstance(fill, (numbers.Number, tuple, list)):
        raise TypeError(f"{op}: got inappropriate fill arg {fill!r}")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(f"{op}: padding mode should be either constant, edge, reflect or symmetric, "
                         f"got {padding_mode!r}")


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad all sides: ``padding`` int, (lr, tb) or (l, t, r, b); modes constant/edge/reflect/symmetric."""
    _check_padding(padding, fill, padding_mode, "pad")
    kind = kind_of(img, "pad")
    if kind == "pil":
        return _pil.pad(img, padding, fill, padding_mode)
    if isinstance(fill, (tuple, list)):
        if len(set(fill)) > 1:
            raise TypeError("pad: only a number fill is supported for Tensor/ndarray images")
        fill = fill[0]
    return from_chw(_array.pad(as_chw(img, kind), padding, fill, padding_mode), kind)


def crop(img, top: int, left: int, height: int, width: int):
    """The box at (top, left) of size (height, width); zero-padded where it leaves the image."""
    kind = kind_of(img, "crop")
    if kind == "pil":
        return _pil.crop(img, top, left, height, width)
    return from_chw(_array.crop(as_chw(img, kind), int(top), int(left), int(height), int(width)), kind)


def _pair(size, op: str) -> Tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{op}: please provide only two dimensions (h, w) for size, got {size!r}")


def center_crop(img, output_size):
    """The centered box of ``output_size``; the image is zero-padded first when smaller."""
    crop_h, crop_w = _pair(output_size, "center_crop")
    _, height, width = dimensions(img, "center_crop")
    if crop_w > width or crop_h > height:
        padding = [(crop_w - width) // 2 if crop_w > width else 0, (crop_h - height) // 2 if crop_h > height else 0,
                   (crop_w - width + 1) // 2 if crop_w > width else 0,
                   (crop_h - height + 1) // 2 if crop_h > height else 0]
        img = pad(img, padding, fill=0)
        _, height, width = dimensions(img, "center_crop")
        if crop_w == width and crop_h == height:
            return img
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return crop(img, top, left, crop_h, crop_w)


def resized_crop(img, top: int, left: int, height: int, width: int, size,
                 interpolation=InterpolationMode.BILINEAR, antialias: Optional[bool] = True):
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def hflip(img):
    kind = kind_of(img, "hflip")
    if kind == "pil":
        return _pil.hflip(img)
    return from_chw(_array.hflip(as_chw(img, kind)), kind)


def vflip(img):
    kind = kind_of(img, "vflip")
    if kind == "pil":
        return _pil.vflip(img)
    return from_chw(_array.vflip(as_chw(img, kind)), kind)


def five_crop(img, size):
    """The four corner crops and the center crop of ``size``."""
    crop_h, crop_w = _pair(size, "five_crop")
    _, height, width = dimensions(img, "five_crop")
    if crop_w > width or crop_h > height:
        raise ValueError(f"five_crop: requested crop size {(crop_h, crop_w)} is bigger than input size "
                         f"{(height, width)}")
    return (crop(img, 0, 0, crop_h, crop_w), crop(img, 0, width - crop_w, crop_h, crop_w),
            crop(img, height - crop_h, 0, crop_h, crop_w), crop(img, height - crop_h, width - crop_w, crop_h, crop_w),
            center_crop(img, [crop_h, crop_w]))


def ten_crop(img, size, vertical_flip: bool = False):
    """``five_crop`` of the image and of its (horizontal, or vertical) flip."""
    first = five_crop(img, size)
    return first + five_crop(vflip(img) if vertical_flip else hflip(img), size)


def rotate(img, angle: float, interpolation=InterpolationMode.NEAREST, expand: bool = False,
           center: Optional[Sequence[int]] = None, fill: Optional[Sequence[float]] = None):
    """Rotate counter-clockwise by ``angle`` degrees about ``center`` (default: the image center)."""
    mode = interpolation_mode(interpolation, "rotate")
    if isinstance(angle, bool) or not isinstance(angle, (int, float, np.integer, np.floating)):
        raise TypeError(f"rotate: argument angle should be int or float, got {type(angle).__name__}")
    if center is not None and not isinstance(center, (list, tuple)):
        raise TypeError("rotate: argument center should be a sequence")
    kind = kind_of(img, "rotate")
    if kind == "pil":
        return _pil.rotate(img, float(angle), _TO_PIL_INT[mode], expand, center, fill)
    _check_array_mode(mode, ("nearest", "bilinear"), "rotate")
    channels, height, width = dimensions(img, "rotate")
    center_f = [0.0, 0.0]
    if center is not None:
        center_f = [1.0 * (c - s * 0.5) for c, s in zip(center, [width, height])]
    matrix = _array.inverse_affine_matrix(center_f, -float(angle), [0.0, 0.0], 1.0, [0.0, 0.0])
    if fill is not None:
        fill = [float(fill)] if isinstance(fill, numbers.Number) else [float(f) for f in fill]
        if len(fill) not in (1, channels):
            raise ValueError(f"rotate: the number of elements in 'fill' cannot broadcast to match the number of "
                             f"channels of the image ({len(fill)} != {channels})")
    a = as_chw(img, kind)
    squeeze = a.ndim == 2
    if squeeze:
        a = a[None]
    size = _array.affine_output_size(matrix, width, height) if expand else None
    out = _array.warp_affine(a, matrix, mode.value, fill, size)
    return from_chw(out[0] if squeeze else out, kind)


# ---- color -----------------------------------------------------------------------------------------------
def _color_input(img, op: str):
    kind = kind_of(img, op)
    if kind == "pil":
        return kind, None
    a = as_chw(img, kind)
    if a.ndim == 2:
        a = a[None]
    if a.shape[-3] not in (1, 3):
        raise TypeError(f"{op}: input image permitted channel values are [1, 3], but found {a.shape[-3]}")
    return kind, a


def _color_output(out: np.ndarray, img, kind: str):
    if as_chw(img, kind).ndim == 2:  # an (H, W) image stays 2-D
        out = out[0]
    return from_chw(out, kind)


def _non_negative(value: float, name: str, op: str) -> None:
    if value < 0:
        raise ValueError(f"{op}: {name} ({value}) is not non-negative.")


def adjust_brightness(img, brightness_factor: float):
    _non_negative(brightness_factor, "brightness_factor", "adjust_brightness")
    kind, a = _color_input(img, "adjust_brightness")
    if kind == "pil":
        return _pil.adjust_brightness(img, brightness_factor)
    return _color_output(_array.adjust_brightness(a, brightness_factor), img, kind)


def adjust_contrast(img, contrast_factor: float):
    _non_negative(contrast_factor, "contrast_factor", "adjust_contrast")
    kind, a = _color_input(img, "adjust_contrast")
    if kind == "pil":
        return _pil.adjust_contrast(img, contrast_factor)
    return _color_output(_array.adjust_contrast(a, contrast_factor), img, kind)


def adjust_saturation(img, saturation_factor: float):
    _non_negative(saturation_factor, "saturation_factor", "adjust_saturation")
    kind, a = _color_input(img, "adjust_saturation")
    if kind == "pil":
        return _pil.adjust_saturation(img, saturation_factor)
    return _color_output(_array.adjust_saturation(a, saturation_factor), img, kind)


def adjust_hue(img, hue_factor: float):
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    kind, a = _color_input(img, "adjust_hue")
    if kind == "pil":
        return _pil.adjust_hue(img, hue_factor)
    return _color_output(_array.adjust_hue(a, hue_factor), img, kind)


def rgb_to_grayscale(img, num_output_channels: int = 1):
    if num_output_channels not in (1, 3):
        raise ValueError("rgb_to_grayscale: num_output_channels should be either 1 or 3")
    kind, a = _color_input(img, "rgb_to_grayscale")
    if kind == "pil":
        return _pil.to_grayscale(img, num_output_channels)
    return from_chw(_array.rgb_to_grayscale(a, num_output_channels), kind)


to_grayscale = rgb_to_grayscale
