"""``Upsample`` and its fixed-mode forms ``UpsamplingNearest2d`` / ``UpsamplingBilinear2d`` (PyTorch's names)."""
from __future__ import annotations

from typing import Optional, Tuple, Union

from ...tensor import Tensor
from .. import functional as F
from ..functional.interpolation import MODES
from ..module import Module

Size = Union[int, Tuple[int, ...]]
Scale = Union[float, Tuple[float, ...]]


def _float_scales(scale_factor):
    """PyTorch stores scale factors as floats (a tuple stays a tuple)."""
    if scale_factor is None:
        return None
    if isinstance(scale_factor, (tuple, list)):
        return tuple(float(s) for s in scale_factor)
    return float(scale_factor)


class Upsample(Module):
    """Resize by ``F.interpolate`` with fixed arguments: ``size`` or ``scale_factor``, ``mode``
    ('nearest', 'nearest-exact', 'linear', 'bilinear', 'area'), ``align_corners``,
    ``recompute_scale_factor``. No parameters."""

    def __init__(self, size: Optional[Size] = None, scale_factor: Optional[Scale] = None, mode: str = "nearest",
                 align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None):
        super().__init__()
        name = type(self).__name__
        if mode not in MODES:
            raise ValueError(f"{name}: mode {mode!r} is not supported; expected one of "
                             f"{', '.join(repr(m) for m in MODES)}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: expected exactly one of size or scale_factor")
        self.name = name
        self.size = tuple(size) if isinstance(size, list) else size
        self.scale_factor = _float_scales(scale_factor)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(mode='nearest')``."""

    def __init__(self, size: Optional[Size] = None, scale_factor: Optional[Scale] = None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(mode='bilinear', align_corners=True)``."""

    def __init__(self, size: Optional[Size] = None, scale_factor: Optional[Scale] = None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]
