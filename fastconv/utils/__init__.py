"""``torch.utils``'s counterpart: ``fastconv.utils.data`` (datasets, samplers, DataLoader)."""
from . import data

__all__ = ["data"]
