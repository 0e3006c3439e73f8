"""Activation maps of a layer and the dying-ReLU health report (also as a ``fit`` callback).

A ReLU channel that outputs zero for every image of a batch gets no gradient and usually never
recovers; a large dead fraction is the classic symptom of a too-high learning rate.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.modules.activation import ReLU
from ..tensor import Tensor
from ..train import Callback
from .layers import LayerRef, as_batch, check_index, evaluating, layer_output, model_dtype, record_outputs
from .plotting import image_grid, unit_range


def activations(model: Module, x, layer: LayerRef) -> np.ndarray:
    """The output of ``layer`` for input ``x`` (image or batch), captured by a forward hook in eval mode."""
    return layer_output(model, x, layer, "activations")


def plot_activations(model: Module, x, layer: LayerRef, index: int = 0, max_channels: int = 64):
    """All activation maps (up to ``max_channels``) of ``layer`` for image ``index`` of ``x``, one panel each."""
    out = activations(model, x, layer)
    index = check_index(index, out.shape[0], "plot_activations", "image index", "the batch")
    if out.ndim != 4:
        raise ValueError(f"plot_activations: expected a layer with (N, C, H, W) output, got shape {out.shape}")
    maps = out[index, :max_channels]
    images = [unit_range(m) for m in maps]
    return image_grid("plot_activations", images, titles=[str(c) for c in range(len(maps))], panel=0.9,
                      suptitle=f"layer {layer!r}: {out.shape[1]} maps {out.shape[2]}x{out.shape[3]}")[0]


def dead_relu_report(model: Module, x) -> Dict[str, Dict[str, float]]:
    """Per ReLU layer (by name): ``dead_fraction`` of channels that are zero for every image and position
    of the batch ``x``, mean ``sparsity`` (fraction of zero outputs), and the ``dead_channels`` indices."""
    op = "dead_relu_report"
    relus = [(name, m) for name, m in model.named_modules() if isinstance(m, ReLU)]
    if not relus:
        raise ValueError(f"{op}: expected a model with ReLU layers, found none in {type(model).__name__}")
    batch = Tensor._wrap(as_batch(x, op, model_dtype(model)))
    with evaluating(model), no_grad():
        outputs = record_outputs(model, batch, relus)
    report = {}
    for name, _ in relus:
        if name not in outputs:
            continue
        out = outputs[name]
        per_channel = np.moveaxis(out, 1, 0).reshape(out.shape[1], -1) if out.ndim > 1 else out[None]
        dead = np.flatnonzero(~(per_channel > 0).any(axis=1))
        report[name] = {"dead_fraction": len(dead) / per_channel.shape[0],
                        "sparsity": float((out <= 0).mean()),
                        "channels": per_channel.shape[0],
                        "dead_channels": dead}
    return report


class DeadReLUMonitor(Callback):
    """``fit`` callback: the dead-ReLU report on a fixed probe batch after every epoch.

    ``history`` holds one ``(epoch, report)`` per epoch; ``dead_fractions()`` gives them as an
    (epochs, layers) array. A warning is issued when a layer's dead fraction reaches ``warn_at``.
    """

    def __init__(self, probe, warn_at: Optional[float] = 0.5):
        self.probe = as_batch(probe, "DeadReLUMonitor")
        if warn_at is not None and not 0.0 < float(warn_at) <= 1.0:
            raise ValueError(f"DeadReLUMonitor: expected warn_at in (0, 1] or None, got {warn_at!r}")
        self.warn_at = warn_at
        self.history: List[tuple] = []

    def on_epoch_end(self, epoch: int, logs: dict, model) -> None:
        report = dead_relu_report(getattr(model, "module", model), self.probe)
        self.history.append((epoch, report))
        if self.warn_at is None:
            return
        for name, entry in report.items():
            if entry["dead_fraction"] >= self.warn_at:
                warnings.warn(f"DeadReLUMonitor: epoch {epoch}: {100 * entry['dead_fraction']:.0f} % of the "
                              f"channels of ReLU {name!r} are dead on the probe batch (learning rate too high?)",
                              RuntimeWarning, stacklevel=2)

    def dead_fractions(self):
        """(epochs array, layer names, (epochs, layers) dead-fraction array)."""
        names = list(self.history[0][1]) if self.history else []
        epochs = np.array([e for e, _ in self.history], dtype=np.int64)
        table = np.array([[r[n]["dead_fraction"] for n in names] for _, r in self.history], dtype=np.float64)
        return epochs, names, table.reshape(len(epochs), len(names))
