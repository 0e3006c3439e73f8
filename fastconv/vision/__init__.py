"""torchvision's counterpart, built on fastconv's public API: ``datasets``, ``transforms`` and
``utils`` with torchvision's names and signatures (Pillow, ``fastconv[vision]``, is optional)."""
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
