"""fastconv: a Cython-accelerated, CPU-only deep learning framework with a define-by-run tape.

The top level mirrors ``torch``'s: ``import fastconv as torch`` gives tensors, dtypes, devices,
creation and math functions, grad modes and seeding under PyTorch's names.
"""
__version__ = "0.1.0"

from . import autograd
from ._config import config, get_num_threads, set_num_threads, show_config
from .autograd import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from .random import Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from ._dtypes import (  # noqa: A001 - PyTorch's dtype names shadow builtins in this namespace only
    bool_, double, float16, float32, float64, half, int8, int16, int32, int64, long, short, uint8,
)
from ._dtypes import ALIASES as _DTYPE_ALIASES
from ._device import device
from .tensor import (
    Tensor, arange, cat, concat, concatenate, full, matmul, ones, ones_like, pad, rand, randn, stack, tensor,
    where, zeros, zeros_like,
)
from ._creation import (
    as_tensor, empty, empty_like, eye, from_numpy, full_like, is_tensor, linspace, logspace, numel, rand_like,
    randint, randint_like, randn_like, randperm,
)
from ._functions import (  # noqa: A004 - PyTorch's function names (max, min, sum, abs, all, any, pow)
    abs, add, all, allclose, amax, amin, any, argmax, argmin, argsort, bincount, chunk, diag, clamp, clip, clone, detach, div,
    eq, equal, exp, flatten, gather, ge, gt, hstack, index_select, isfinite, isinf, isnan, le, log,
    log_softmax, lt, masked_fill, max, maximum, mean, min, minimum, mul, ne, neg, norm, permute, pow, relu,
    reshape, scatter, scatter_add, sigmoid, softmax, sort, split, sqrt, square, squeeze, std, sub, sum, t,
    tanh, topk, transpose, unbind, unsqueeze, var, vstack,
)
from . import return_types
from . import cuda
from . import accelerator
from . import nn
from .serialization import load, save
from . import optim
from . import utils
from . import data
from . import backends  # after nn: backends.conv drives the convolution planner

globals().update(_DTYPE_ALIASES)  # fastconv.float, .int, .bool, ... (the builtins' names, as in torch)
Size = tuple  # shapes are tuples (torch.Size is a tuple subclass)


def get_default_dtype():
    """float32: the dtype of tensors made from Python floats."""
    return float32


def is_floating_point(input) -> bool:  # noqa: A002
    return input.is_floating_point()


__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "zeros_like", "ones_like", "randn", "rand", "arange",
    "cat", "concat", "stack", "pad", "where", "matmul", "no_grad", "enable_grad", "set_grad_enabled",
    "inference_mode", "is_grad_enabled", "is_inference_mode_enabled", "manual_seed", "seed", "initial_seed",
    "Generator", "default_generator", "get_rng_state", "set_rng_state", "set_num_threads",
    "get_num_threads", "show_config", "config", "autograd", "nn", "save", "load", "optim", "profile", "utils", "data",
    "pretrain", "distributed", "viz", "vision", "onnx", "device", "cuda", "backends", "inference", "accelerator",
    "return_types",
    "float32", "float64", "float16", "half", "double", "int8", "int16", "int32", "int64", "long", "short",
    "uint8", "bool_", "float", "int", "bool", "Size", "get_default_dtype", "is_floating_point",
    "as_tensor", "empty", "empty_like", "eye", "from_numpy", "full_like", "is_tensor", "linspace", "logspace",
    "numel", "rand_like", "randint", "randint_like", "randn_like", "randperm",
    "abs", "add", "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort", "bincount", "chunk", "diag", "clamp",
    "clip", "clone", "detach", "div", "eq", "equal", "exp", "flatten", "gather", "ge", "gt", "hstack",
    "index_select", "isfinite", "isinf", "isnan", "le", "log", "log_softmax", "lt", "masked_fill", "max",
    "maximum", "mean", "min", "minimum", "mul", "ne", "neg", "norm", "permute", "pow", "relu", "reshape",
    "scatter", "scatter_add", "sigmoid", "softmax", "sort", "split", "sqrt", "square", "squeeze", "std",
    "sub", "sum", "t", "tanh", "topk", "transpose", "unbind", "unsqueeze", "var", "vstack",
]


_ON_FIRST_USE = ("vision", "inference", "onnx", "profile", "pretrain", "distributed", "viz")


def __getattr__(name):
    """The tools outside the training path (vision, inference, onnx, profile, pretrain, distributed,
    viz) are imported on first use: a script that never touches them does not pay for their import
    (``import fastconv`` stays short)."""
    if name in _ON_FIRST_USE:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute '{name}'")
