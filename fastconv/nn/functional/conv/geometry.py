"""What a convolution call is, independent of how it runs: its geometry and its problem key."""
from __future__ import annotations

from typing import NamedTuple, Tuple


class ConvGeometry(NamedTuple):
    """Everything the kernels need besides the arrays (padding is top/left; the output size
    already accounts for any extra bottom/right padding)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int
    out_h: int
    out_w: int


class ConvProblem(NamedTuple):
    """One conv2d call as the planner sees it: shapes, geometry and dtype (a plan-cache key;
    the thread count is added by the planner)."""

    image_shape: Tuple[int, int, int, int]
    weight_shape: Tuple[int, int, int, int]
    geometry: ConvGeometry
    dtype: str

    @property
    def batch(self) -> int:
        return self.image_shape[0]

    @property
    def in_channels(self) -> int:
        return self.image_shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight_shape[0]

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 8

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        g = self.geometry
        return (self.image_shape[0], self.weight_shape[0], g.out_h, g.out_w)

    @property
    def weight_matrix_shape(self) -> Tuple[int, int]:
        """The weight as the (K, C/groups·kh·kw) matrix the GEMM paths multiply by."""
        k, c, kh, kw = self.weight_shape
        return (k, c * kh * kw)

    @property
    def flops(self) -> float:
        """Multiply-adds × 2 of the direct convolution (one pass)."""
        n, c = self.image_shape[0], self.image_shape[1]
        g = self.geometry
        return 2.0 * n * self.weight_shape[0] * (c // g.groups) * g.kh * g.kw * g.out_h * g.out_w


def problem_from_shapes(image_shape, weight_shape, geometry: ConvGeometry, dtype) -> ConvProblem:
    """The ConvProblem of shapes given as any sequences and a numpy dtype or its name."""
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", str(dtype))
    if name not in ("float32", "float64"):
        import numpy as np
        name = np.dtype(dtype).name
    return ConvProblem(tuple(int(s) for s in image_shape), tuple(int(s) for s in weight_shape),
                       geometry, name)
