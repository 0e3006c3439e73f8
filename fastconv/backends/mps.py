"""``torch.backends.mps``: Apple's Metal backend, never available in fastconv (CPU-only)."""


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False
