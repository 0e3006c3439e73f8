"""``torch.cuda`` for a CPU-only framework: no device is available.

``is_available()`` is False and ``device_count()`` 0, so scripts that pick ``'cuda' if
is_available() else 'cpu'`` run on the CPU. Seeding is accepted and ignored (as in PyTorch without
CUDA); anything that needs a CUDA device raises a RuntimeError saying fastconv is CPU-only.
"""
from __future__ import annotations

from ._device import cpu_only_error, device


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def manual_seed(seed) -> None:
    """Accepted and ignored: there is no CUDA generator (PyTorch does the same without CUDA)."""


def manual_seed_all(seed) -> None:
    """Accepted and ignored, like ``manual_seed``."""


def empty_cache() -> None:
    """Nothing to free: no CUDA memory."""


def _unavailable(op: str):
    return cpu_only_error(device("cuda"), f"fastconv.cuda.{op}")


def current_device() -> int:
    raise _unavailable("current_device")


def set_device(dev) -> None:
    raise _unavailable("set_device")


def get_device_name(dev=None) -> str:
    raise _unavailable("get_device_name")


def synchronize(dev=None) -> None:
    raise _unavailable("synchronize")
