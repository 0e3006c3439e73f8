"""Sizes affine in the batch size: what the memory profiler's traces and the compiled predictor's
graph fit from two forwards at different batches, then evaluate at any batch."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Affine:
    """const + slope·batch: a size that grows linearly with the batch."""

    const: int
    slope: int

    def at(self, batch: int) -> int:
        return self.const + self.slope * batch
