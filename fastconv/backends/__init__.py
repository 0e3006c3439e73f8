"""Process-wide backend switches, as in ``torch.backends``.

``fastconv.backends.deterministic = True``: bit-identical results at any thread count and in every
run (see ``_determinism``).
"""
import sys

from ._determinism import BackendsModule as _BackendsModule

sys.modules[__name__].__class__ = _BackendsModule

__all__ = ["deterministic"]
