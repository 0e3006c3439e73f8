"""torchvision's counterpart, built on fastconv's public API: ``datasets``, ``transforms``, ``models``
and ``utils`` with torchvision's names and signatures (Pillow, ``fastconv[vision]``, is optional;
``models`` have torchvision's state_dict keys, so its checkpoints load unchanged)."""
from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]
