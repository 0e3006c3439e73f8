"""Collectives over many small arrays at once: pack per dtype into one buffer, one MPI call each."""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np


def group_by_dtype(tensors: Sequence) -> Dict[np.dtype, List]:
    groups: Dict[np.dtype, List] = {}
    for t in tensors:
        groups.setdefault(t.numpy().dtype, []).append(t)
    return groups


def coalesced(tensors: Sequence, collective: Callable[[np.ndarray], None]) -> None:
    """Apply ``collective(flat)`` (in place) to the concatenation of each dtype group of tensors,
    then write the result back into the tensors' arrays (in place, so references stay valid)."""
    for dtype, group in group_by_dtype(tensors).items():
        flat = np.concatenate([t.numpy().reshape(-1) for t in group]) if group else np.empty(0, dtype)
        collective(flat)
        offset = 0
        for t in group:
            n = t.numpy().size
            chunk = flat[offset:offset + n].reshape(t.numpy().shape)
            if t.numpy().flags.writeable:
                t.numpy()[...] = chunk
            else:
                t.data = chunk.copy()
            offset += n
