"""``torch.accelerator``: fastconv is CPU-only, so there is no current accelerator."""
from __future__ import annotations


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def current_accelerator(check_available: bool = False):
    """None: no accelerator (PyTorch's answer on a CPU-only build)."""
    return None
