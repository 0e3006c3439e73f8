"""Constructor-argument checks shared by the layer modules (each names the layer and the value got)."""
from __future__ import annotations

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def positive_int(value, layer: str, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: expected {name} as a positive int, got {value!r}")
    return int(value)


def probability(value, layer: str, name: str = "p") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{layer}: expected {name} as a probability in [0, 1], got {value!r}")
    return float(value)


def float_dtype(dtype, layer: str) -> np.dtype:
    """Parameter dtype: float32 by default, float64 allowed."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: unknown dtype {dtype!r}") from None
    if dt not in _FLOATS:
        raise TypeError(f"{layer}: expected dtype float32 or float64, got {dt}")
    return dt


def cpu_device(device, layer: str) -> None:
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{layer}: fastconv runs on the CPU only, got device={device!r}")
