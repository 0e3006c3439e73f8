"""torchvision's transform classes for fastconv (same names, arguments, reprs and behaviour).

Randomness comes from fastconv's global generator (``fastconv.manual_seed``; in a DataLoader
worker, the generator the worker seeded). Each call of a random transform draws uniform doubles
``u`` from it in a fixed pattern, the transform's *random stream*:

- RandomCrop: 2 doubles (row, column offset ``floor(u·(n+1))``), none when the crop is the whole
  (padded) image, as torchvision draws none then;
- RandomHorizontalFlip / RandomVerticalFlip / RandomGrayscale / RandomApply: 1 double, flip when
  ``u < p``;
- RandomRotation: 1 double, the angle ``lo + (hi - lo)·u``;
- RandomResizedCrop: 2 doubles per attempt (area, log-ratio), 2 more when the attempt fits;
- ColorJitter: a permutation of the 4 adjustments (``Generator.permutation(4)``), then 1 double
  per enabled factor.

The batched path a DataLoader takes for uint8 datasets (``_fusion``) draws the same doubles in
the same order, so a seed gives the same augmentation whichever path runs.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Callable, List, Optional, Tuple

import numpy as np

from ...random import get_generator
from .._image import dimensions, is_pil_image
from . import functional as F
from .functional import InterpolationMode, interpolation_mode

__all__ = [
    "Compose", "ToTensor", "PILToTensor", "ConvertImageDtype", "ToPILImage", "Normalize", "Resize", "CenterCrop",
    "Pad", "Lambda", "RandomApply", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomResizedCrop",
    "ColorJitter", "RandomRotation", "Grayscale", "RandomGrayscale", "InterpolationMode",
]


def _uniform_doubles(count: int) -> np.ndarray:
    """``count`` doubles in [0, 1) from fastconv's global generator (one draw each)."""
    return get_generator().random(count)


def _randint(u: float, n: int) -> int:
    """An integer in [0, n) from one uniform double."""
    return min(int(u * n), n - 1)


def _setup_size(size, error_msg: str) -> Tuple[int, int]:
    if isinstance(size, numbers.Number) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(error_msg)
    return int(size[0]), int(size[1])


def _probability(p, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: expected a probability p in [0, 1], got {p!r}")
    return float(p)


class Transform:
    """Base of the transforms: ``t(img)`` calls ``forward(img)`` (torchvision's are Modules)."""

    def __call__(self, img):
        return self.forward(img)

    def forward(self, img):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: expected callables, got {type(t).__name__} at position {i}")
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("] + [f"    {t}" for t in self.transforms] + [")"]
        return "\n".join(lines)


class ToTensor(Transform):
    """PIL image or HWC ndarray → CHW float Tensor in [0, 1] (uint8 data divided by 255)."""

    def forward(self, pic):
        return F.to_tensor(pic)


class PILToTensor(Transform):
    """PIL image → CHW Tensor of its own dtype (no scaling)."""

    def forward(self, pic):
        return F.pil_to_tensor(pic)


class ConvertImageDtype(Transform):
    """Tensor image → ``dtype``, rescaled (uint8 ↔ float [0, 1])."""

    def __init__(self, dtype) -> None:
        self.dtype = dtype

    def forward(self, image):
        return F.convert_image_dtype(image, self.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={np.dtype(self.dtype).name})"


class ToPILImage:
    """CHW Tensor or HWC ndarray → PIL image (``mode`` inferred when None)."""

    def __init__(self, mode: Optional[str] = None) -> None:
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + (f"mode={self.mode}" if self.mode is not None else "") + ")"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` of a float Tensor image (out of place unless ``inplace``)."""

    def __init__(self, mean, std, inplace: bool = False) -> None:
        for label, v in (("mean", mean), ("std", std)):
            try:
                values = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"Normalize: expected numeric {label}, got {v!r}") from None
            if values.ndim > 1 or not np.all(np.isfinite(values)):
                raise ValueError(f"Normalize: expected {label} as a finite number or sequence, got {v!r}")
        if np.any(np.asarray(std, dtype=np.float64) == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {std!r}")
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def forward(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Resize(Transform):
    """Resize to ``size`` (h, w), or the smaller edge to ``size`` (an int) keeping the aspect ratio."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, Sequence)):
            raise TypeError(f"Resize: size should be int or sequence. Got {type(size)}")
        if isinstance(size, Sequence) and len(size) not in (1, 2):
            raise ValueError("Resize: if size is a sequence, it should have 1 or 2 values")
        self.size = size
        self.max_size = max_size
        self.interpolation = interpolation_mode(interpolation, "Resize")
        self.antialias = antialias

    def forward(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class CenterCrop(Transform):
    """Crop the center ``size`` (zero-padding an image that is smaller)."""

    def __init__(self, size) -> None:
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")

    def forward(self, img):
        return F.center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class Pad(Transform):
    """Pad every side (``padding``: int, (lr, tb) or (l, t, r, b)) with ``fill`` or by ``padding_mode``."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant") -> None:
        if isinstance(padding, bool) or not isinstance(padding, (numbers.Number, tuple, list)):
            raise TypeError(f"Pad: got inappropriate padding arg {padding!r}")
        if isinstance(fill, bool) or not isinstance(fill, (numbers.Number, tuple, list)):
            raise TypeError(f"Pad: got inappropriate fill arg {fill!r}")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Pad: padding mode should be either constant, edge, reflect or symmetric")
        if isinstance(padding, Sequence) and len(padding) not in (1, 2, 4):
            raise ValueError(f"Pad: padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} "
                             "element tuple")
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode

    def forward(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class Lambda:
    """A user function as a transform."""

    def __init__(self, lambd: Callable) -> None:
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {repr(type(lambd).__name__)}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomApply(Transform):
    """Apply the list of ``transforms`` with probability ``p`` (1 draw)."""

    def __init__(self, transforms, p: float = 0.5) -> None:
        self.transforms = list(transforms)
        self.p = _probability(p, "RandomApply")

    def forward(self, img):
        if self.p < _uniform_doubles(1)[0]:
            return img
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}(", f"    p={self.p}"] + [f"    {t}" for t in self.transforms] + [")"]
        return "\n".join(lines)


class RandomCrop(Transform):
    """Crop ``size`` at a random place, after optional ``padding`` (and ``pad_if_needed``)."""

    @staticmethod
    def get_params(img, output_size) -> Tuple[int, int, int, int]:
        """(top, left, height, width) of a random crop of ``output_size`` (2 draws unless it is the
        whole image)."""
        _, h, w = dimensions(img, "RandomCrop")
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        u = _uniform_doubles(2)
        return _randint(u[0], h - th + 1), _randint(u[1], w - tw + 1), th, tw

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0, padding_mode: str = "constant"):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        if padding is not None:
            F._check_padding(padding, fill, padding_mode, "RandomCrop")
        elif padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("RandomCrop: padding mode should be either constant, edge, reflect or symmetric")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode

    def forward(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, height, width = dimensions(img, "RandomCrop")
        if self.pad_if_needed and width < self.size[1]:
            img = F.pad(img, [self.size[1] - width, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and height < self.size[0]:
            img = F.pad(img, [0, self.size[0] - height], self.fill, self.padding_mode)
        i, j, h, w = self.get_params(img, self.size)
        return F.crop(img, i, j, h, w)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability ``p`` (1 draw per call)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _probability(p, type(self).__name__)

    def forward(self, img):
        if _uniform_doubles(1)[0] < self.p:
            return F.hflip(img)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability ``p`` (1 draw per call)."""

    def forward(self, img):
        if _uniform_doubles(1)[0] < self.p:
            return F.vflip(img)
        return img


class RandomResizedCrop(Transform):
    """Crop a random area (``scale`` of the image) and aspect ``ratio``, then resize to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias: Optional[bool] = True) -> None:
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        if not isinstance(scale, Sequence) or len(scale) != 2:
            raise TypeError(f"RandomResizedCrop: scale should be a sequence of 2 numbers, got {scale!r}")
        if not isinstance(ratio, Sequence) or len(ratio) != 2:
            raise TypeError(f"RandomResizedCrop: ratio should be a sequence of 2 numbers, got {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn("Scale and ratio should be of kind (min, max)")
        if ratio[0] <= 0:
            raise ValueError(f"RandomResizedCrop: ratio must be positive, got {ratio!r}")
        self.interpolation = interpolation_mode(interpolation, "RandomResizedCrop")
        self.antialias = antialias
        self.scale = scale
        self.ratio = ratio

    @staticmethod
    def get_params(img, scale, ratio) -> Tuple[int, int, int, int]:
        """(top, left, height, width): up to 10 random tries, else a centered crop (torchvision's)."""
        _, height, width = dimensions(img, "RandomResizedCrop")
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            u = _uniform_doubles(2)
            target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
            aspect_ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                v = _uniform_doubles(2)
                return _randint(v[0], height - h + 1), _randint(v[1], width - w + 1), h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w = width
            h = int(round(w / min(ratio)))
        elif in_ratio > max(ratio):
            h = height
            w = int(round(h * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def forward(self, img):
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, i, j, h, w, self.size, self.interpolation, antialias=self.antialias)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, scale={tuple(round(s, 4) for s in self.scale)}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)}, interpolation={self.interpolation.value}, "
                f"antialias={self.antialias})")


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue changes, applied in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0) -> None:
        self.brightness = self._check_input(brightness, "brightness")
        self.contrast = self._check_input(contrast, "contrast")
        self.saturation = self._check_input(saturation, "saturation")
        self.hue = self._check_input(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def _check_input(value, name, center=1, bound=(0, float("inf")), clip_first_on_zero=True):
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"If {name} is a single number, it must be non negative.")
            value = [center - float(value), center + float(value)]
            if clip_first_on_zero:
                value[0] = max(value[0], 0.0)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            value = [float(value[0]), float(value[1])]
        else:
            raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
        if not bound[0] <= value[0] <= value[1] <= bound[1]:
            raise ValueError(f"{name} values should be between {bound}, but got {value}.")
        if value[0] == value[1] == center:
            return None
        return tuple(value)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        """(order of the 4 adjustments, brightness, contrast, saturation, hue factors or None)."""
        fn_idx = get_generator().permutation(4)
        factors = []
        for bounds in (brightness, contrast, saturation, hue):
            if bounds is None:
                factors.append(None)
            else:
                factors.append(float(bounds[0] + (bounds[1] - bounds[0]) * _uniform_doubles(1)[0]))
        return (fn_idx, *factors)

    def forward(self, img):
        fn_idx, b, c, s, h = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        for fn_id in fn_idx:
            if fn_id == 0 and b is not None:
                img = F.adjust_brightness(img, b)
            elif fn_id == 1 and c is not None:
                img = F.adjust_contrast(img, c)
            elif fn_id == 2 and s is not None:
                img = F.adjust_saturation(img, s)
            elif fn_id == 3 and h is not None:
                img = F.adjust_hue(img, h)
        return img

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class RandomRotation(Transform):
    """Rotate by a random angle in ``degrees`` ((-d, d) for a number)."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand: bool = False, center=None, fill=0):
        self.interpolation = interpolation_mode(interpolation, "RandomRotation")
        if isinstance(degrees, numbers.Number) and not isinstance(degrees, bool):
            if degrees < 0:
                raise ValueError("If degrees is a single number, it must be positive.")
            degrees = [-degrees, degrees]
        elif not isinstance(degrees, Sequence) or len(degrees) != 2:
            raise ValueError(f"degrees should be a sequence of length 2, got {degrees!r}")
        self.degrees = [float(d) for d in degrees]
        if center is not None and (not isinstance(center, Sequence) or len(center) != 2):
            raise ValueError(f"center should be a sequence of length 2, got {center!r}")
        self.center = center
        self.expand = expand
        if fill is None:
            fill = 0
        elif isinstance(fill, bool) or not isinstance(fill, (Sequence, numbers.Number)):
            raise TypeError("Fill should be either a sequence or a number.")
        self.fill = fill

    @staticmethod
    def get_params(degrees: List[float]) -> float:
        """A uniform angle in [degrees[0], degrees[1]] (1 draw)."""
        return float(degrees[0] + (degrees[1] - degrees[0]) * _uniform_doubles(1)[0])

    def forward(self, img):
        fill = self.fill
        if not is_pil_image(img):
            channels = dimensions(img, "RandomRotation")[0]
            fill = [float(fill)] * channels if isinstance(fill, numbers.Number) else [float(f) for f in fill]
        angle = self.get_params(self.degrees)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, fill)

    def __repr__(self) -> str:
        text = (f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation.value}, "
                f"expand={self.expand}")
        if self.center is not None:
            text += f", center={self.center}"
        if self.fill is not None:
            text += f", fill={self.fill}"
        return text + ")"


class Grayscale(Transform):
    """Convert to grayscale with 1 or 3 output channels."""

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3):
            raise ValueError("Grayscale: num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def forward(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"


class RandomGrayscale(Transform):
    """Grayscale (keeping the channel count) with probability ``p`` (1 draw)."""

    def __init__(self, p: float = 0.1) -> None:
        self.p = _probability(p, "RandomGrayscale")

    def forward(self, img):
        channels = dimensions(img, "RandomGrayscale")[0]
        if _uniform_doubles(1)[0] < self.p:
            return F.rgb_to_grayscale(img, num_output_channels=channels)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"
