"""Process-wide switches of fastconv's kernels, named as PyTorch's ``torch.backends``.

``fastconv.backends.deterministic = True``: bit-identical results at any thread count, under any
load and in every run (``_determinism``); ``fastconv.backends.conv``: the convolution planner's
switches.
"""
import sys

from . import conv
from ._determinism import BackendsModule as _BackendsModule

sys.modules[__name__].__class__ = _BackendsModule

__all__ = ["conv", "deterministic"]
