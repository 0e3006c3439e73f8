"""Process-wide switches of fastconv's kernels, named as PyTorch's ``torch.backends``."""
from . import conv

__all__ = ["conv"]
