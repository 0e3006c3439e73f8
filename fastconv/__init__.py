"""fastconv: a Cython-accelerated, CPU-only deep learning framework with a define-by-run tape."""
__version__ = "0.1.0"

from . import autograd
from ._config import config, get_num_threads, set_num_threads, show_config
from .autograd import enable_grad, no_grad, set_grad_enabled, is_grad_enabled
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import (
    Tensor, arange, bool_, cat, float32, float64, full, int32, int64, matmul, ones, ones_like, pad, rand,
    randn, stack, tensor, where, zeros, zeros_like,
)
from . import nn
from .serialization import load, save
from . import optim
from . import profile
from . import utils
from . import data
from . import pretrain
from . import distributed  # mpi4py is imported only under an MPI launcher
from . import viz  # matplotlib/scikit-learn are imported only by the functions that need them
from . import vision
from . import backends
from . import inference

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "zeros_like", "ones_like", "randn", "rand", "arange",
    "cat", "stack", "pad", "where", "matmul", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "manual_seed", "get_rng_state", "set_rng_state", "set_num_threads",
    "get_num_threads", "show_config", "config", "autograd", "nn", "save", "load", "optim", "profile", "utils", "data",
    "pretrain", "distributed", "viz", "vision", "backends", "inference",
    "float32", "float64", "int32", "int64", "bool_",
]
