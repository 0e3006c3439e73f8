"""Peak memory of a training step or an inference, by replaying the traced calls' buffers.

The replay follows the arrays fastconv really allocates, each with its size at the requested
batch (from the trace), and frees each one when its last holder lets go:

* forward — a call's outputs and newly saved arrays appear; its transient buffer (im2col
  columns) exists while it runs. An activation dies after the last call that reads it (the
  caller drops it, as ``Sequential`` does), or when the last module that received it as input
  returns (a residual block holds its input until it returns), unless the tape saved it or it is
  the model's output.
* loss — the loss keeps one output-sized array (cross_entropy's log-probabilities) and creates
  the output-sized gradient that seeds backward.
* backward (reverse call order, as the engine runs a chain) — while a call's backward runs,
  alive are: the saved arrays not yet released, the gradients flowing (its output gradient),
  the gradients it creates (input-sized; views for reshape/permute), its parameter-gradient
  results plus the previous call's (the engine holds them until the next call returns), the
  parameter gradients accumulated so far, and its transient workspace. Then its saved arrays
  are released and its output gradient dropped.
* optimizer step — parameters' gradients, the model output and the update's temporaries
  (``optimizer_temp_bytes``, e.g. Adam's three parameter-sized intermediates).

Eval replays the forward only, under no_grad: nothing is saved, so only consecutive layers'
activations (plus the transient buffer) are alive at once.

Persistent memory (parameters, buffers, optimizer state, the data batch) is added by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .trace import ACT, PARAM

_VIEW_BACKWARD = ("Reshape", "Permute")  # backward returns a view of the output gradient


@dataclass
class ReplayCall:
    """What the replay needs of one call, sizes already evaluated at the requested batch."""

    name: str
    recording: bool
    needs: Tuple[bool, ...]
    arg_bufs: Tuple[object, ...]
    out_bufs: Tuple[int, ...]
    saved_bufs: Tuple[int, ...]
    workspace: int
    forward_workspace: int


@dataclass
class Peak:
    """Highest total of the arrays alive during the step (above persistent memory), and where."""

    bytes: int = 0
    phase: str = ""
    call: int = -1

    def see(self, total: int, phase: str, call: int) -> None:
        if total > self.bytes:
            self.bytes, self.phase, self.call = total, phase, call


def _last_uses(calls: Sequence[ReplayCall], holds: Sequence[Tuple[int, int]] = ()) -> Dict[int, int]:
    """The last call during which each buffer is referenced: its last reader, or later when a module
    that received it as input returns later (``holds``)."""
    last: Dict[int, int] = {}
    for i, c in enumerate(calls):
        for b in c.arg_bufs:
            if b is not None:
                last[b] = i
    for b, i in holds:
        if b in last and i > last[b]:
            last[b] = i
    return last


def _forward(calls, sizes, kinds, outputs, train: bool, peak: Peak,
             holds: Sequence[Tuple[int, int]] = ()) -> Tuple[Dict[int, int], Dict[int, int]]:
    """Replay forward; returns (live activations at its end, number of unreleased savers per buffer)."""
    last = _last_uses(calls, holds)
    live: Dict[int, int] = {}
    savers: Dict[int, int] = {}
    for i, c in enumerate(calls):
        for b in list(c.arg_bufs) + list(c.out_bufs) + list(c.saved_bufs):
            if b is not None and kinds[b] == ACT and b not in live:
                live[b] = sizes[b]
        peak.see(sum(live.values()) + c.forward_workspace, "forward", i)
        if train and c.recording:
            for b in set(c.saved_bufs):
                savers[b] = savers.get(b, 0) + 1
        for b in list(live):
            if last.get(b, -1) <= i and not savers.get(b) and b not in outputs:
                del live[b]
    return live, savers


def replay_eval(calls: Sequence[ReplayCall], sizes: Sequence[int], kinds: Sequence[str],
                outputs: Sequence[int], holds: Sequence[Tuple[int, int]] = ()) -> Peak:
    """Peak of an inference under no_grad."""
    peak = Peak()
    _forward(calls, sizes, kinds, set(outputs), False, peak, holds)
    return peak


def replay_train(calls: Sequence[ReplayCall], sizes: Sequence[int], kinds: Sequence[str],
                 outputs: Sequence[int], optimizer_temp_bytes: int, step: bool,
                 holds: Sequence[Tuple[int, int]] = ()) -> Tuple[Peak, int]:
    """Peak of forward + loss + backward (+ optimizer step when ``step``); also the bytes alive at
    the end of forward (saved arrays and the output)."""
    peak = Peak()
    outputs = set(outputs)
    live, savers = _forward(calls, sizes, kinds, outputs, True, peak, holds)
    end_of_forward = sum(live.values())
    out_bytes = sum(sizes[b] for b in outputs if kinds[b] == ACT)
    # loss: its saved log-probabilities and, from its backward, the gradient of the output
    peak.see(end_of_forward + 2 * out_bytes, "loss", len(calls))
    grads: Dict[int, int] = {b: sizes[b] for b in outputs if kinds[b] == ACT}
    param_grads: Dict[int, int] = {}
    previous_temp = 0
    for i in range(len(calls) - 1, -1, -1):
        c = calls[i]
        if not c.recording or not any(b in grads for b in c.out_bufs):
            continue
        missing = sum(sizes[b] for b in c.out_bufs if b not in grads)  # zero gradients the engine fills in
        created: List[Tuple[int, int]] = []
        temp = 0
        for b, need in zip(c.arg_bufs, c.needs):
            if not need or b is None:
                continue
            if kinds[b] == PARAM:
                temp += sizes[b]
            elif c.name in _VIEW_BACKWARD:
                created.append((b, 0))
            else:
                created.append((b, sizes[b]))
        peak.see(sum(live.values()) + sum(grads.values()) + missing + sum(param_grads.values())
                 + previous_temp + sum(n for _, n in created) + temp + c.workspace, "backward", i)
        for b in set(c.saved_bufs):
            savers[b] -= 1
            if savers[b] == 0 and b in live and b not in outputs:
                del live[b]
        flowing = sum(grads.pop(b, 0) for b in c.out_bufs)
        for b, n in created:
            grads[b] = max(grads.get(b, 0), n if n else flowing)
        for b, need in zip(c.arg_bufs, c.needs):
            if need and b is not None and kinds[b] == PARAM:
                param_grads[b] = sizes[b]
        previous_temp = temp
    if step:
        peak.see(sum(live.values()) + sum(param_grads.values()) + optimizer_temp_bytes, "optimizer step", -1)
    return peak, end_of_forward
