"""Band chains of the compiled predictor: MobileNet's expand 1×1 → depthwise → project 1×1 run
band by band of the depthwise output's rows (``_kernels/infer.pyx``, "band chains"), so the
expanded activations, six times the block's channels, are used while in cache instead of
streaming through memory three times.

This module says which three steps of a plan form a chain, what the chain's header step holds,
and times a chain against the same three steps run one after another. The plan builder
(``program.py``) decides and inserts the headers.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from . import timing

# Expanded activations one band computes, the candidates measured: a band's expanded rows and
# depthwise output rows should stay in a core's L2 between the three steps, but each band's two
# GEMMs pack their weights again and run short tiles, so a band should be long. The first is the
# one used without measuring.
CHAIN_BAND_FLOATS = (1 << 18, 1 << 16)
# Without measuring, a chain is formed when one image's expanded activations are at least this
# many floats (1 MiB, a core's L2): smaller ones stay in cache between whole steps anyway.
CHAIN_MIN_FLOATS = 1 << 18


def _value(ref) -> Optional[int]:
    """The value id of an arena operand ("v", vid, offset), else None (constants, outputs)."""
    return ref[1] if ref is not None and ref[0] == "v" else None


def _flag(step, i: int) -> int:
    """Layout flag i of a step (x_minor 24, y_minor 25); 0 when the step has none (an NCHW step)."""
    return step.ints[i] if len(step.ints) > i else 0


def is_chain(steps: Sequence[Any], j: int) -> bool:
    """Whether steps j, j+1, j+2 are expand → depthwise → project: a channel-minor 1×1 writing the
    depthwise step's channel-minor input, a pure depthwise step (one channel per group, no
    padding channels) reading and writing channel-minor, and a 1×1 reading its output."""
    if j + 2 >= len(steps):
        return False
    a, b, c = steps[j], steps[j + 1], steps[j + 2]
    if (a.op, b.op, c.op) != ("conv_pw_layout", "conv_channel", "conv_pw_layout"):
        return False
    if not (_flag(a, 25) and _flag(b, 24) and _flag(b, 25) and _flag(c, 24)):
        return False
    if b.ints[16] != 1 or b.ints[2] != b.ints[1] or a.res is not None or b.res is not None:
        return False
    if any(_value(ref) is None for ref in (a.srcs[0], a.dst, b.dst, c.dst)):
        return False
    return _value(b.srcs[0]) == _value(a.dst) and _value(c.srcs[0]) == _value(b.dst) \
        and a.dst[2] == 0 and b.dst[2] == 0


def expanded_floats(steps: Sequence[Any], j: int) -> int:
    """Floats of one image's expanded activations in the chain at j."""
    a = steps[j]
    return a.ints[2] * a.ints[3] * a.ints[4]


def header_ints(steps: Sequence[Any], j: int, band_floats: int) -> List[int]:
    """The header's parameters: the 3 steps it runs and the depthwise output rows per band (those
    whose expanded input rows make about ``band_floats``)."""
    b = steps[j + 1]
    width, channels, stride = b.ints[4], b.ints[2], b.ints[9]
    return [3, max(1, band_floats // max(1, stride * width * channels))]


def chain_timer(steps: Sequence[Any], j: int, shapes: Dict[int, Sequence[int]], header: Optional[Any]) -> Callable:
    """A function running the chain at j on scratch buffers: as a band chain under ``header``, or
    (``header`` None) as its three steps one after another (each with its workspace)."""
    chain = list(steps[j:j + 3])
    if header is not None:
        chain = [header] + [dataclasses.replace(step, work=0) for step in chain]
    return timing.steps_timer(chain, shapes, np.zeros(1, np.float32))
