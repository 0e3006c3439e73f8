"""torchvision's counterpart, built on fastconv's public API: ``models`` (same names, same
state_dict keys as torchvision, so its checkpoints load unchanged)."""
from . import models

__all__ = ["models"]
