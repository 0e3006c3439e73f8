"""Backend switches, named as PyTorch's ``torch.backends``: ``mps`` and ``cudnn`` report that those
accelerators are absent (fastconv is CPU-only)."""
from . import cudnn, mps

__all__ = ["cudnn", "mps"]
