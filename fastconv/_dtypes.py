"""dtypes under PyTorch's names (numpy dtypes underneath) and the one conversion of a dtype argument."""
from __future__ import annotations

import numpy as np

float32 = np.float32
float64 = np.float64
float16 = np.float16
int64 = np.int64
int32 = np.int32
int16 = np.int16
int8 = np.int8
uint8 = np.uint8
bool_ = np.bool_
double = float64
half = float16
long = int64
short = int16

# PyTorch's aliases (fastconv.float is float32 as torch.float is; the builtins stay untouched here)
ALIASES = {
    "float": float32, "double": float64, "half": float16, "long": int64, "int": int32, "short": int16,
    "bool": bool_,
}

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_FLOAT = np.dtype(np.float32)


def resolve_dtype(dtype, op: str = "tensor"):
    """A numpy dtype from a dtype argument (numpy type, dtype, string; the builtins float, int and
    bool mean float64, int64 and bool as in PyTorch), or None for None."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{op}: unknown dtype {dtype!r}") from exc
