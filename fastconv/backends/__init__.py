"""Process-wide switches of fastconv's kernels, named as PyTorch's ``torch.backends``; ``mps`` and
``cudnn`` report that those accelerators are absent (fastconv is CPU-only)."""
from . import conv, cudnn, mps

__all__ = ["conv", "cudnn", "mps"]
