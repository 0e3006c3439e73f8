"""Process-wide switches of fastconv's kernels, named as PyTorch's ``torch.backends``.

``fastconv.backends.deterministic = True``: bit-identical results at any thread count, under any
load and in every run (``_determinism``); ``fastconv.backends.conv``: the convolution planner's
switches; ``mps`` and ``cudnn`` report that those accelerators are absent (fastconv is CPU-only).
"""
import sys

from . import conv, cudnn, mps
from ._determinism import BackendsModule as _BackendsModule

sys.modules[__name__].__class__ = _BackendsModule

__all__ = ["conv", "cudnn", "deterministic", "mps"]
