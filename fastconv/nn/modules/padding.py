"""Padding layers (PyTorch's names): constant, zero, reflection, replication and circular, 1-D and 2-D.

``padding`` is an int (every side) or a tuple (left, right) / (left, right, top, bottom), passed
to ``fastconv.nn.functional.pad``.
"""
from __future__ import annotations

import numbers
from typing import Tuple, Union

from ...tensor import Tensor
from .. import functional as F
from ..module import Module


def _sides(padding, count: int, layer: str) -> Tuple[int, ...]:
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * count
    values = tuple(padding) if isinstance(padding, (tuple, list)) else None
    if values is None or len(values) != count or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise ValueError(f"{layer}: expected padding as an int or a tuple of {count} ints, got {padding!r}")
    return tuple(int(v) for v in values)


class _PadNd(Module):
    _mode = "constant"
    _sides_count = 4

    def __init__(self, padding: Union[int, Tuple[int, ...]]):
        super().__init__()
        self.padding = _sides(padding, self._sides_count, type(self).__name__)

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, mode=self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Mirror the last dimension without repeating its edge (amounts < its size)."""

    _mode, _sides_count = "reflect", 2


class ReflectionPad2d(_PadNd):
    """Mirror H and W without repeating the edge (amounts < the size)."""

    _mode = "reflect"


class ReplicationPad1d(_PadNd):
    """Repeat the edge values of the last dimension."""

    _mode, _sides_count = "replicate", 2


class ReplicationPad2d(_PadNd):
    """Repeat the edge rows and columns."""

    _mode = "replicate"


class CircularPad1d(_PadNd):
    """Wrap the last dimension around (amounts ≤ its size)."""

    _mode, _sides_count = "circular", 2


class CircularPad2d(_PadNd):
    """Wrap H and W around (amounts ≤ the size)."""

    _mode = "circular"


class ConstantPad1d(_PadNd):
    """Pad the last dimension with ``value``."""

    _sides_count = 2

    def __init__(self, padding: Union[int, Tuple[int, int]], value: float):
        super().__init__(padding)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}: expected value as a real number, got {value!r}")
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad2d(ConstantPad1d):
    """Pad H and W with ``value``."""

    _sides_count = 4


class ZeroPad1d(ConstantPad1d):
    """Pad the last dimension with zeros."""

    def __init__(self, padding: Union[int, Tuple[int, int]]):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ZeroPad1d):
    """Pad H and W with zeros."""

    _sides_count = 4


__all__ = ["ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d",
           "CircularPad2d", "ConstantPad1d", "ConstantPad2d", "ZeroPad1d", "ZeroPad2d"]
