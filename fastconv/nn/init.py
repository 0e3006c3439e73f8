"""Weight initialization (``fastconv.nn.init``), PyTorch's names and formulas.

Every function fills the tensor's array in place with draws from fastconv's seeded generator
(``fastconv.manual_seed``), keeps its dtype, records nothing on the tape (as PyTorch's, which run
under no_grad; a Parameter or its ``.data`` may be passed) and returns the tensor.
He initialization (He et al. 2015, "Delving deep into rectifiers"): std = gain / sqrt(fan), so that
the variance of activations (fan_in) or of gradients (fan_out) is preserved through ReLU layers.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..random import get_generator
from ..tensor import Tensor

_LINEAR_LIKE = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended scale for ``nonlinearity``: 1 (linear, conv, sigmoid), 5/3 (tanh), sqrt(2) (relu),
    sqrt(2 / (1 + slope^2)) (leaky_relu, slope ``param``, default 0.01), 3/4 (selu)."""
    if not isinstance(nonlinearity, str):
        raise TypeError(f"calculate_gain: expected nonlinearity as a str, got {type(nonlinearity).__name__}")
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _array(tensor, op: str) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor (e.g. a Parameter), got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float32 or float64 tensor, got {tensor.dtype}")
    if not tensor.numpy().flags.writeable:
        tensor.data = tensor.numpy().copy()
    return tensor.numpy()


def _calculate_fan_in_and_fan_out(tensor: Tensor, op: str = "init") -> Tuple[int, int]:
    """fan_in = size(1)·receptive field, fan_out = size(0)·receptive field (PyTorch's convention).

    For a Linear weight (out, in) that is (in, out); for a Conv2d weight (out, in/groups, kh, kw)
    it is (in/groups·kh·kw, out·kh·kw).
    """
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"{op}: fan in and fan out need a tensor with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Tensor, mode: str, op: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: expected mode 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, op)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{op}: cannot initialize a tensor with zero elements (shape {tensor.shape})")
    return fan


def _fill(tensor: Tensor, values: np.ndarray, op: str) -> Tensor:
    arr = _array(tensor, op)
    arr[...] = values.astype(arr.dtype, copy=False)
    tensor._bump_version()  # an in-place change, as under PyTorch's no_grad
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill(tensor, get_generator().uniform(a, b, size=tensor.shape), "uniform_")


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_: expected std >= 0, got {std}")
    return _fill(tensor, get_generator().normal(mean, std, size=tensor.shape), "normal_")


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Fill with N(mean, std²) restricted to [a, b] (rejection sampling, redrawing values outside)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: expected std > 0, got {std}")
    gen = get_generator()
    values = gen.normal(mean, std, size=tensor.shape)
    for _ in range(1000):
        bad = (values < a) | (values > b)
        if not bad.any():
            break
        values[bad] = gen.normal(mean, std, size=int(bad.sum()))
    else:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] is too far from N({mean}, {std}²) to sample")
    return _fill(tensor, values, "trunc_normal_")


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    arr = _array(tensor, "constant_")
    arr.fill(val)
    tensor._bump_version()
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot & Bengio (2010): U(−a, a) with a = gain·sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, get_generator().uniform(-bound, bound, size=tensor.shape), "xavier_uniform_")


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot & Bengio (2010): N(0, std²) with std = gain·sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, get_generator().normal(0.0, std, size=tensor.shape), "xavier_normal_")


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """He et al. (2015): U(−bound, bound), bound = sqrt(3)·gain/sqrt(fan) (``a``: leaky_relu slope)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode, "kaiming_uniform_"))
    bound = math.sqrt(3.0) * std
    return _fill(tensor, get_generator().uniform(-bound, bound, size=tensor.shape), "kaiming_uniform_")


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """He et al. (2015): N(0, std²), std = gain/sqrt(fan) (``a``: leaky_relu slope; a=0 gives ReLU's sqrt(2))."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode, "kaiming_normal_"))
    return _fill(tensor, get_generator().normal(0.0, std, size=tensor.shape), "kaiming_normal_")


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Saxe et al. (2013): a (semi-)orthogonal matrix of the tensor flattened to (size(0), rest), times gain."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: expected a tensor with at least 2 dimensions, got shape {tensor.shape}")
    rows = tensor.shape[0]
    cols = int(np.prod(tensor.shape[1:]))
    flat = get_generator().standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape), "orthogonal_")


def he_init_(weight: Tensor, bias: Optional[Tensor]) -> None:
    """fastconv's default for Conv2d/Linear: kaiming_normal_(mode='fan_in', nonlinearity='relu'), bias 0."""
    kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
    if bias is not None:
        zeros_(bias)


__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
]
