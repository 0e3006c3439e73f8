"""``MemorySummary``: the per-layer table and totals of a static estimate, printable like torchinfo."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from .table import render_table
from .units import format_bytes, format_count

_COLUMNS = (
    ("Layer (type)", lambda r: f"{r['name']} ({r['type']})"),
    ("Output shape", lambda r: "-" if r["output_shape"] is None else str(list(r["output_shape"]))),
    ("Params", lambda r: f"{r['params']:,}"),
    ("Param mem", lambda r: format_bytes(r["param_bytes"])),
    ("Saved act.", lambda r: format_bytes(r["saved_bytes"])),
    ("Grads", lambda r: format_bytes(r["grad_bytes"])),
    ("Optim. state", lambda r: format_bytes(r["optimizer_state_bytes"])),
    ("MACs fwd", lambda r: format_count(r["macs_forward"])),
    ("MACs fwd+bwd", lambda r: format_count(r["macs_forward_backward"])),
)


@dataclass
class MemorySummary:
    """Rows (one per layer that owns parameters or issues operations) and totals, in bytes and MACs."""

    rows: List[Dict[str, Any]]
    totals: Dict[str, Any]
    meta: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """{"rows": [...], "totals": {...}} with plain ints, strings and tuples (JSON-friendly)."""
        return {"rows": [dict(r) for r in self.rows], "totals": dict(self.totals), "meta": dict(self.meta)}

    def __str__(self) -> str:
        m, t = self.meta, self.totals
        head = (f"{m.get('model', 'model')}: input {list(m.get('input_shape', ()))} x batch {m.get('batch_size')}, "
                f"{m.get('dtype')}, mode={m.get('mode')}, optimizer={m.get('optimizer')}")
        table = render_table([c[0] for c in _COLUMNS], [[f(r) for _, f in _COLUMNS] for r in self.rows])
        data = format_bytes(t["data_bytes"])
        if m.get("augment_copies"):
            data += f" (originals + {m['augment_copies']} augmented copies)"
        lines = [
            f"Total params: {t['params']:,} (trainable {t['trainable_params']:,})",
            f"Multiply-adds: forward {format_count(t['macs_forward'])}, "
            f"forward+backward {format_count(t['macs_forward_backward'])}",
            f"Data batch:                  {data}",
            f"Parameters (+ buffers):      {format_bytes(t['param_bytes'] + t['buffer_bytes'])}",
            f"Gradients:                   {format_bytes(t['grad_bytes'])}",
            f"Optimizer state:             {format_bytes(t['optimizer_state_bytes'])}",
            f"Saved for backward:          {format_bytes(t['saved_activation_bytes'])}",
            f"Largest transient workspace: {format_bytes(t['workspace_bytes'])}",
            f"Peak, training step:         {format_bytes(t['train_peak_bytes'])}  ({t['train_peak_at']})",
            f"Peak, inference:             {format_bytes(t['eval_peak_bytes'])}  ({t['eval_peak_at']})",
        ]
        return "\n".join([head, table] + lines)
