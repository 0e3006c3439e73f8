"""The numpy Generator behind a ``generator=`` argument of samplers, ``random_split`` and DataLoader."""
from __future__ import annotations

import numpy as np

from ...random import get_generator

# attributes under which a generator object may keep its numpy Generator (fastconv's Generator keeps
# it in ``_rng``; thin wrappers use the others); checked in this order
_NUMPY_ATTRIBUTES = ("_rng", "np_generator", "numpy_generator", "_generator", "generator")


def numpy_generator(generator, op: str) -> np.random.Generator:
    """``generator`` as a numpy Generator: None is fastconv's global generator (``fastconv.manual_seed``
    reseeds it); a numpy Generator is used as is; any other object must hold one (see
    ``_NUMPY_ATTRIBUTES``). Draws advance the generator, so successive epochs differ, as in PyTorch."""
    if generator is None:
        return get_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    for name in _NUMPY_ATTRIBUTES:
        inner = getattr(generator, name, None)
        if isinstance(inner, np.random.Generator):
            return inner
    raise TypeError(f"{op}: expected generator as None, a fastconv Generator or a numpy.random.Generator, "
                    f"got {type(generator).__name__}")


def fresh_generator(generator, op: str) -> np.random.Generator:
    """A new numpy Generator seeded by one draw from ``generator`` (PyTorch's RandomSampler does this
    per epoch: the epoch's permutation does not depend on how many numbers the previous one used)."""
    return np.random.default_rng(int(numpy_generator(generator, op).integers(2 ** 63)))


def draw_seed(generator, op: str) -> int:
    """One int64 seed from ``generator`` (a DataLoader iterator's base seed for its workers)."""
    return int(numpy_generator(generator, op).integers(2 ** 63))
