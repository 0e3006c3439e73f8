"""``torch.backends.cudnn``: absent in fastconv (CPU-only). Scripts set ``benchmark`` and
``deterministic`` here; as in PyTorch without CUDA the flags are kept and change nothing."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    return None
