"""Image operations on ``(..., C, H, W)`` numpy arrays, computed as torchvision computes them on
tensors (same formulas, dtype rules and rounding), so a fastconv Tensor or HWC ndarray gives what
torchvision gives for the same tensor.

Integer images follow torchvision's casts: blends clamp to [0, max] and truncate, geometric
resampling runs in float32 and rounds; float images are in [0, 1] where a bound matters.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np


def max_value(dtype: np.dtype) -> float:
    """The largest value of an image of ``dtype``: the integer maximum, or 1 for floats."""
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def _float_dtype(img: np.ndarray) -> np.dtype:
    return img.dtype if img.dtype in (np.float32, np.float64) else np.dtype(np.float32)


# ---- geometry ---------------------------------------------------------------------------------------
def parse_padding(padding) -> List[int]:
    """torchvision's padding forms → ``[left, right, top, bottom]``."""
    if isinstance(padding, (int, np.integer)):
        p = [int(padding)] * 4
        return p
    padding = list(padding)
    if len(padding) == 1:
        return [int(padding[0])] * 4
    if len(padding) == 2:
        return [int(padding[0]), int(padding[0]), int(padding[1]), int(padding[1])]
    return [int(padding[0]), int(padding[2]), int(padding[1]), int(padding[3])]


def pad(img: np.ndarray, padding, fill=0, padding_mode: str = "constant") -> np.ndarray:
    """Pad the last two axes (negative amounts crop); modes constant/edge/reflect/symmetric."""
    left, right, top, bottom = parse_padding(padding)
    h, w = img.shape[-2:]
    img = img[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
    widths = [(0, 0)] * (img.ndim - 2) + [(max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))]
    if padding_mode == "constant":
        value = fill if fill is not None else 0
        if img.dtype.kind in "iu":
            value = int(value)  # torch casts the float fill to the integer dtype (truncation)
        return np.pad(img, widths, mode="constant", constant_values=value)
    if padding_mode == "reflect":
        for (before, after), size in zip(widths[-2:], img.shape[-2:]):
            if before >= size or after >= size:
                raise ValueError(f"pad: reflect padding ({before}, {after}) must be smaller than the "
                                 f"dimension it pads ({size})")
    return np.pad(img, widths, mode=padding_mode)


def crop(img: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``img[..., top:top+height, left:left+width]``, zero-padded where the box leaves the image."""
    h, w = img.shape[-2:]
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        padding = [max(-left + min(0, right), 0), max(-top + min(0, bottom), 0),
                   max(right - max(w, left), 0), max(bottom - max(h, top), 0)]
        return pad(img[..., max(top, 0):bottom, max(left, 0):right], padding, fill=0)
    return img[..., top:bottom, left:right]


def hflip(img: np.ndarray) -> np.ndarray:
    return img[..., ::-1]


def vflip(img: np.ndarray) -> np.ndarray:
    return img[..., ::-1, :]


# ---- affine warps (rotation) ------------------------------------------------------------------------------
def inverse_affine_matrix(center: Sequence[float], angle: float, translate: Sequence[float], scale: float,
                          shear: Sequence[float]) -> List[float]:
    """The output→input affine matrix (6 numbers) of torchvision's ``_get_inverse_affine_matrix``."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


def affine_output_size(matrix: Sequence[float], w: int, h: int) -> Tuple[int, int]:
    """Output (w, h) holding the whole warped image (``expand=True``), in float32 as torchvision."""
    f = np.float32
    pts = np.array([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0], [0.5 * w, 0.5 * h, 1.0],
                    [0.5 * w, -0.5 * h, 1.0]], dtype=f)
    theta = np.asarray(matrix, dtype=f).reshape(2, 3)
    new = pts @ theta.T
    lo = new.min(axis=0) + np.array([w * 0.5, h * 0.5], dtype=f)
    hi = new.max(axis=0) + np.array([w * 0.5, h * 0.5], dtype=f)
    tol = f(1e-4)
    cmax = np.ceil(np.trunc(hi / tol) * tol)
    cmin = np.floor(np.trunc(lo / tol) * tol)
    size = cmax - cmin
    return int(size[0]), int(size[1])


def _affine_grid(matrix: Sequence[float], w: int, h: int, ow: int, oh: int, dtype) -> np.ndarray:
    """Normalized sampling coordinates (oh, ow, 2) of torchvision's ``_gen_affine_grid``."""
    theta = np.asarray(matrix, dtype=dtype).reshape(2, 3)
    xs = np.linspace(-ow * 0.5 + 0.5, ow * 0.5 + 0.5 - 1, ow, dtype=dtype)
    ys = np.linspace(-oh * 0.5 + 0.5, oh * 0.5 + 0.5 - 1, oh, dtype=dtype)
    base = np.empty((oh, ow, 3), dtype=dtype)
    base[..., 0] = xs[None, :]
    base[..., 1] = ys[:, None]
    base[..., 2] = 1
    rescaled = theta.T / np.array([0.5 * w, 0.5 * h], dtype=dtype)
    return base.reshape(-1, 3) @ rescaled


def _grid_sample(img: np.ndarray, grid: np.ndarray, oh: int, ow: int, mode: str) -> np.ndarray:
    """``grid_sample(padding_mode='zeros', align_corners=False)`` of (..., C, H, W) at (oh·ow, 2) points."""
    h, w = img.shape[-2:]
    dtype = img.dtype
    ix = ((grid[:, 0] + 1) * w - 1) / 2
    iy = ((grid[:, 1] + 1) * h - 1) / 2
    flat = img.reshape(img.shape[:-2] + (h * w,))
    if mode == "nearest":
        xn, yn = np.rint(ix).astype(np.int64), np.rint(iy).astype(np.int64)
        valid = (xn >= 0) & (xn < w) & (yn >= 0) & (yn < h)
        out = np.where(valid, flat[..., np.where(valid, yn * w + xn, 0)], dtype.type(0))
    else:
        x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
        fx, fy = (ix - x0).astype(dtype), (iy - y0).astype(dtype)
        out = np.zeros(img.shape[:-2] + (len(ix),), dtype=dtype)
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                xx, yy = x0 + dx, y0 + dy
                valid = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
                tap = flat[..., np.where(valid, yy * w + xx, 0)]
                out += np.where(valid, tap * (wy * wx), dtype.type(0))
    return out.reshape(img.shape[:-2] + (oh, ow))


def warp_affine(img: np.ndarray, matrix: Sequence[float], mode: str, fill: Optional[Sequence[float]],
                output_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Sample ``img`` through the output→input ``matrix`` (torchvision's tensor ``rotate``/``affine``)."""
    h, w = img.shape[-2:]
    ow, oh = output_size if output_size is not None else (w, h)
    compute = _float_dtype(img)
    grid = _affine_grid(matrix, w, h, ow, oh, compute)
    x = img.astype(compute, copy=False)
    if fill is not None:
        ones = np.ones(x.shape[:-3] + (1,) + x.shape[-2:], dtype=compute)
        x = np.concatenate([x, ones], axis=-3)
    out = _grid_sample(x, grid, oh, ow, mode)
    if fill is not None:
        mask, out = out[..., -1:, :, :], out[..., :-1, :, :]
        values = np.asarray(fill, dtype=compute).reshape(-1, 1, 1)
        if mode == "nearest":
            out = np.where(mask < 0.5, np.broadcast_to(values, out.shape), out)
        else:
            out = out * mask + (1.0 - mask) * values
    if compute != img.dtype:
        out = np.round(out)
        if img.dtype.kind in "iu":
            info = np.iinfo(img.dtype)
            out = np.clip(out, info.min, info.max)
        out = out.astype(img.dtype)
    return out


# ---- color ----------------------------------------------------------------------------------------------
def blend(img1: np.ndarray, img2: np.ndarray, ratio: float) -> np.ndarray:
    """``(ratio·img1 + (1-ratio)·img2)`` clamped to [0, max] and cast to img1's dtype (truncating)."""
    compute = _float_dtype(img1)
    out = compute.type(ratio) * img1.astype(compute) + compute.type(1.0 - ratio) * np.asarray(img2).astype(compute)
    out = np.clip(out, 0, max_value(img1.dtype))
    return out.astype(img1.dtype)


def rgb_to_grayscale(img: np.ndarray, num_output_channels: int = 1) -> np.ndarray:
    """ITU-R 601-2 luma (0.2989 R + 0.587 G + 0.114 B) in the image's dtype."""
    if img.shape[-3] == 3:
        compute = _float_dtype(img)
        r, g, b = (img[..., k, :, :].astype(compute) for k in range(3))
        lum = (compute.type(0.2989) * r + compute.type(0.587) * g + compute.type(0.114) * b).astype(img.dtype)
        lum = lum[..., None, :, :]
    else:
        lum = img.copy()
    if num_output_channels == 3:
        return np.broadcast_to(lum, lum.shape[:-3] + (3,) + lum.shape[-2:]).copy()
    return lum


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    return blend(img, np.zeros_like(img), factor)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    compute = _float_dtype(img)
    source = rgb_to_grayscale(img) if img.shape[-3] == 3 else img
    mean = source.astype(compute).mean(axis=(-3, -2, -1), keepdims=True, dtype=compute)
    return blend(img, mean, factor)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    if img.shape[-3] == 1:
        return img
    return blend(img, rgb_to_grayscale(img), factor)


def to_float01(img: np.ndarray) -> np.ndarray:
    """torchvision's ``convert_image_dtype(img, float32)``: integers scaled by their maximum."""
    if img.dtype.kind == "f":
        return img.astype(np.float32)
    return img.astype(np.float32) / np.float32(max_value(img.dtype))


def from_float01(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """torchvision's ``convert_image_dtype(float → dtype)``: integers as ``x·(max + 1 - 1e-3)``, truncated."""
    if dtype.kind == "f":
        return img.astype(dtype)
    return (img * np.float32(max_value(dtype) + 1.0 - 1e-3)).astype(dtype)


def _rgb2hsv(img: np.ndarray) -> np.ndarray:
    r, g, b = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    maxc = img.max(axis=-3)
    minc = img.min(axis=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = np.ones_like(maxc)
    s = cr / np.where(eqc, ones, maxc)
    divisor = np.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return np.stack((h, s, maxc), axis=-3).astype(img.dtype)


def _hsv2rgb(img: np.ndarray) -> np.ndarray:
    h, s, v = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int32) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    r = np.choose(i, (v, q, p, p, t, v))
    g = np.choose(i, (t, v, v, q, p, p))
    b = np.choose(i, (p, p, t, v, v, q))
    return np.stack((r, g, b), axis=-3).astype(img.dtype)


def adjust_hue(img: np.ndarray, factor: float) -> np.ndarray:
    if img.shape[-3] == 1:
        return img
    x = to_float01(img)
    hsv = _rgb2hsv(x)
    hsv[..., 0, :, :] = np.mod(hsv[..., 0, :, :] + np.float32(factor), np.float32(1.0))
    return from_float01(_hsv2rgb(hsv), img.dtype)


def normalize(img: np.ndarray, mean, std) -> np.ndarray:
    """``(img - mean[c]) / std[c]`` in the image's float dtype (a new array)."""
    mean = np.asarray(mean, dtype=img.dtype)
    std = np.asarray(std, dtype=img.dtype)
    if mean.ndim == 1:
        mean = mean.reshape(-1, 1, 1)
    if std.ndim == 1:
        std = std.reshape(-1, 1, 1)
    return (img - mean) / std
