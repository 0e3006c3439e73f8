"""The arena plan: offsets for buffers with known lifetimes, so activations reuse memory.

Each buffer is live from the step that writes it first to the step that reads it last
(inclusive); two buffers may share memory when their lifetimes do not overlap. Offsets come from
the greedy-by-size heuristic of TensorFlow Lite's arena planner (Pisarchyk & Lee 2020): largest
buffers first, each at the lowest offset where it fits among the already placed buffers that
are live at the same time. Offsets are multiples of ALIGN elements (64 bytes), so every buffer
starts on a cache line.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

ALIGN = 16  # float32 elements: 64 bytes
ARENA, POOL = 0, 1  # operand bases of every program: the arena, then the constant pool


def aligned(n: int) -> int:
    return -(-max(int(n), 1) // ALIGN) * ALIGN


def assign_offsets(buffers: Sequence[Tuple[int, int, int]]) -> Tuple[List[int], int]:
    """(offset per buffer, arena elements) for buffers given as (elements, first step, last step).
    Offsets are multiples of ALIGN; a buffer occupies exactly its elements."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], buffers[i][1], i))
    offsets = [0] * len(buffers)
    placed: List[int] = []
    total = 0
    for i in order:
        size, first, last = max(int(buffers[i][0]), 1), buffers[i][1], buffers[i][2]
        busy = sorted((offsets[j], offsets[j] + max(int(buffers[j][0]), 1)) for j in placed
                      if buffers[j][1] <= last and first <= buffers[j][2])
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, aligned(hi))
        offsets[i] = offset
        placed.append(i)
        total = max(total, offset + size)
    return offsets, total
