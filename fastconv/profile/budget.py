"""Budgets and comparisons on top of the static estimate: the largest batch that fits a memory
budget, and several architectures side by side at one batch size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from ..nn.module import Module
from .checks import MODES, check_batch, check_choice, parse_shape
from .estimate import ModelProfile
from .table import render_table
from .units import format_bytes, format_count, parse_bytes

MAX_SEARCH_BATCH = 1 << 24


def max_batch_size(model: Module, input_shape, budget: Union[int, str], mode: str = "train",
                   optimizer: Optional[str] = None, dtype="float32", augment_copies: int = 0) -> int:
    """Largest batch whose estimated peak (training step or inference) fits in ``budget``
    (bytes, or a string such as '512MB', '2GB', '1.5GiB').

    The kernels' workspace plans depend on the batch (rows split across threads), so the peak is
    not quite monotone in it: a binary search over the peak without transient buffers (monotone)
    bounds the answer from above, then batches are checked downwards from that bound.
    """
    op = "max_batch_size"
    limit = parse_bytes(budget, op)
    check_choice(mode, MODES, op, "mode")
    profile = ModelProfile(model, input_shape, dtype, optimizer, op)

    def fits(batch: int, workspace: bool = True) -> bool:
        return profile.peak(batch, mode, augment_copies, workspace) <= limit

    if not fits(1, workspace=False):
        raise ValueError(f"{op}: even batch 1 needs {format_bytes(profile.peak(1, mode, augment_copies))} "
                         f"for {'a training step' if mode == 'train' else 'inference'}, more than the budget "
                         f"{budget!r} ({format_bytes(limit)})")
    lo, hi = 1, 2
    while hi <= MAX_SEARCH_BATCH and fits(hi, workspace=False):
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_SEARCH_BATCH + 1)
    while hi - lo > 1:  # invariant: fits(lo) and not fits(hi), without workspace
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid, workspace=False) else (lo, mid)
    for batch in range(lo, 0, -1):
        if fits(batch):
            return batch
    raise ValueError(f"{op}: even batch 1 needs {format_bytes(profile.peak(1, mode, augment_copies))} "
                     f"for {'a training step' if mode == 'train' else 'inference'}, more than the budget "
                     f"{budget!r} ({format_bytes(limit)})")


_METRICS = (
    ("Parameters", lambda t: f"{t['params']:,}"),
    ("MACs forward", lambda t: format_count(t["macs_forward"])),
    ("MACs forward+backward", lambda t: format_count(t["macs_forward_backward"])),
    ("Saved for backward", lambda t: format_bytes(t["saved_activation_bytes"])),
    ("Largest workspace", lambda t: format_bytes(t["workspace_bytes"])),
    ("Params + grads + optim.", lambda t: format_bytes(t["param_bytes"] + t["grad_bytes"]
                                                       + t["optimizer_state_bytes"])),
    ("Peak, training step", lambda t: format_bytes(t["train_peak_bytes"])),
    ("Peak, inference", lambda t: format_bytes(t["eval_peak_bytes"])),
)


@dataclass
class Comparison:
    """Totals of several models at one batch size; ``str`` shows them side by side."""

    names: List[str]
    totals: List[Dict[str, Any]]
    legend: List[str]
    meta: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        return {"models": [{"name": n, "totals": dict(t)} for n, t in zip(self.names, self.totals)],
                "meta": dict(self.meta)}

    def __str__(self) -> str:
        m = self.meta
        head = (f"input {list(m['input_shape'])} x batch {m['batch_size']}, {m['dtype']}, "
                f"optimizer={m['optimizer']}")
        rows = [[label] + [f(t) for t in self.totals] for label, f in _METRICS]
        parts = [head, render_table(["", *self.names], rows)]
        if self.legend:
            parts.append("\n".join(self.legend))
        return "\n".join(parts)


def _build(item, input_shape, num_classes, op: str):
    if isinstance(item, Module):
        return item
    if isinstance(item, str):
        from ..nn.blueprint import blueprint

        return blueprint(item, input_shape, num_classes)
    raise TypeError(f"{op}: expected Modules or blueprint spec strings, got {type(item).__name__}")


def compare(models_or_specs: Sequence[Union[Module, str]], input_shape, batch_size: int,
            names: Optional[Sequence[str]] = None, num_classes: Optional[int] = None, dtype="float32",
            optimizer: Optional[str] = None, augment_copies: int = 0) -> Comparison:
    """Parameters, multiply-adds, saved activations and train/eval peaks of several models (or
    blueprint specs, built for ``input_shape`` and ``num_classes``) at one batch size."""
    op = "compare"
    if isinstance(models_or_specs, (str, Module)) or not isinstance(models_or_specs, (list, tuple)):
        raise TypeError(f"{op}: expected a list of Modules or blueprint specs, got {type(models_or_specs).__name__}")
    if not models_or_specs:
        raise ValueError(f"{op}: expected at least one model or spec, got an empty list")
    shape = parse_shape(input_shape, op)
    batch = check_batch(batch_size, op)
    if names is not None and len(names) != len(models_or_specs):
        raise ValueError(f"{op}: got {len(names)} names for {len(models_or_specs)} models")
    labels, legend, totals = [], [], []
    for i, item in enumerate(models_or_specs):
        model = _build(item, shape, num_classes, op)
        label = names[i] if names is not None else f"({i + 1})"
        if names is None:
            legend.append(f"{label} {item if isinstance(item, str) else type(item).__name__}")
        labels.append(str(label))
        profile = ModelProfile(model, shape, dtype, optimizer, op)
        totals.append(profile.summary(batch, "train", augment_copies).totals)
    meta = {"input_shape": shape, "batch_size": batch, "dtype": str(profile.dtype), "optimizer": optimizer}
    return Comparison(names=labels, totals=totals, legend=legend, meta=meta)
