"""fastconv's random generators: the global one (``manual_seed``), used by randn/rand, init, dropout,
loaders, and ``Generator`` objects for the ``generator=`` arguments (PyTorch's ``torch.Generator``).

Each Generator wraps a numpy ``Generator`` (PCG64); the sequences differ from PyTorch's (Mersenne
Twister), seeding works the same way.
"""
from __future__ import annotations

import numpy as np

from ._device import as_cpu

_SEED_RANGE = 2 ** 64


def _seed_value(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expected an int seed, got {seed!r}")
    seed = int(seed)
    if not -2 ** 63 <= seed < _SEED_RANGE:
        raise ValueError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    return seed % _SEED_RANGE  # negative seeds map into the unsigned range, as in PyTorch


class Generator:
    """A seeded source of random numbers, as ``torch.Generator``: ``manual_seed(s)`` (returns self),
    ``seed()``, ``initial_seed()``, ``get_state()`` / ``set_state(state)`` (a dict here)."""

    def __init__(self, device="cpu"):
        self.device = as_cpu(device, "Generator")
        self.seed()

    def manual_seed(self, seed) -> "Generator":
        self._initial_seed = _seed_value(seed)
        self._rng = np.random.default_rng(self._initial_seed)
        return self

    def seed(self) -> int:
        """Reseed from fresh entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().generate_state(1, np.uint64)[0]))
        return self._initial_seed

    def initial_seed(self) -> int:
        return self._initial_seed

    def get_state(self) -> dict:
        return {"seed": self._initial_seed, "bit_generator": self._rng.bit_generator.state}

    def set_state(self, state) -> "Generator":
        if not isinstance(state, dict) or "bit_generator" not in state:
            raise TypeError("Generator.set_state: expected a state from Generator.get_state()")
        self._initial_seed = state.get("seed", self._initial_seed)
        self._rng.bit_generator.state = state["bit_generator"]
        return self

    def __repr__(self) -> str:
        return f"<fastconv.Generator seed={self._initial_seed}>"


default_generator = Generator()


def manual_seed(seed) -> Generator:
    """Reseed the global generator so that runs are reproducible; returns it (as PyTorch does)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Reseed the global generator from fresh entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_generator() -> np.random.Generator:
    """The numpy generator behind the global generator (what fastconv's own random draws use)."""
    return default_generator._rng


def generator_of(generator) -> np.random.Generator:
    """The numpy generator of a ``generator=`` argument (None: the global one)."""
    if generator is None:
        return default_generator._rng
    if isinstance(generator, Generator):
        return generator._rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator: expected a fastconv.Generator, got {type(generator).__name__}")


def get_rng_state() -> dict:
    """The global generator's state (for checkpoints)."""
    return default_generator._rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    default_generator._rng.bit_generator.state = state
