"""Layer-wise k-means pretraining of the Conv2d layers of a Sequential (Coates & Ng; Dundar et al.).

Layer l is learned on the outputs of layers < l (already pretrained), computed without recording.
Filters come from ``learn_filters`` (unit norm in the layer's input space) and are scaled to the
He-init scale: norm sqrt(2), so their RMS is sqrt(2/fan_in) like kaiming_normal_(relu) weights.
The bias of filter j is minus the (1 − active_fraction) quantile of its responses on the sampled
patches, so the following ReLU passes about ``active_fraction`` of the inputs (half by default):
neither dead units nor purely linear ones, and training continues smoothly from there.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.modules.container import Sequential
from ..nn.modules.conv import Conv2d
from ..tensor import Tensor
from ._common import SeedLike, as_images, generator, positive_float, positive_int
from .filters import check_options, learn_filters
from .metrics import mean_pairwise_correlation

HE_NORM = math.sqrt(2.0)  # ‖w‖ of a filter with RMS sqrt(2/fan_in)
BIAS_SAMPLES = 20000      # patches used to choose the biases


@dataclass
class LayerReport:
    """What pretraining did to one Conv2d (``index`` is its position in the Sequential)."""

    index: int
    weight_shape: Tuple[int, ...]
    method: str
    n_patches: int
    iterations: int
    reseeded: int
    objective: float          # final mean |code| (mean best |Dᵀw| of the preprocessed patches)
    correlation: float        # mean_pairwise_correlation of the filters (no shift)
    active_fraction: float    # fraction of sampled patches with a positive pre-activation
    seconds: float
    frozen: bool


def _check_model(model, op: str) -> List[int]:
    """Indices of the Conv2d layers of a Sequential; groups=1, dilation=1, none hidden in sub-modules."""
    if not isinstance(model, Sequential):
        raise TypeError(f"{op}: expected a fastconv.nn.Sequential, got {type(model).__name__}")
    convs = []
    for i, layer in enumerate(model):
        if isinstance(layer, Conv2d):
            if layer.groups != 1:
                raise ValueError(f"{op}: layer {i} ({layer!r}) has groups={layer.groups}; only groups=1 is supported")
            if layer.dilation != (1, 1):
                raise ValueError(f"{op}: layer {i} ({layer!r}) has dilation={layer.dilation}; "
                                 f"filters are learned from contiguous patches, dilation must be 1")
            convs.append(i)
        elif any(isinstance(m, Conv2d) for m in layer.modules()):
            raise ValueError(f"{op}: layer {i} ({type(layer).__name__}) contains a Conv2d inside a sub-module; "
                             f"only Conv2d layers placed directly in the Sequential are pretrained")
    if not convs:
        raise ValueError(f"{op}: the model has no Conv2d layer to pretrain")
    return convs


def _forward(layer: Module, x: np.ndarray, batch: int) -> np.ndarray:
    with no_grad():
        return np.concatenate([layer(Tensor(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


def _set_layer(layer: Conv2d, filters: np.ndarray, patches: np.ndarray, active_fraction: float) -> float:
    """Write He-scaled filters and quantile biases into the layer; returns the active fraction on the patches."""
    weight = filters * HE_NORM
    sample = patches[:BIAS_SAMPLES]
    responses = sample @ weight.reshape(len(weight), -1).T
    if layer.bias is not None:
        bias = -np.quantile(responses.astype(np.float64), 1.0 - active_fraction, axis=0)
        layer.bias.numpy()[...] = bias.astype(layer.bias.numpy().dtype)
        responses = responses + bias
    layer.weight.numpy()[...] = weight.astype(layer.weight.numpy().dtype)
    return float(np.mean(responses > 0))


def pretrain_conv_layers(model, images, n_patches: int = 50000, method: str = "kmeans", whiten: bool = True,
                         seed: SeedLike = None, freeze: bool = False, active_fraction: float = 0.5,
                         normalize: bool = True, eps_zca: float = 0.1, eps_norm: Optional[float] = None,
                         iters: int = 10, batch_size: Optional[int] = None, window_size=None,
                         forward_batch: int = 256) -> List[LayerReport]:
    """Fill every Conv2d of the Sequential ``model``, in order, with filters learned by k-means.

    ``images``: unlabeled float (N, C, H, W) ndarray or Tensor, normalized as the model expects
    (cast to the model's dtype). Each layer's filters are learned from ``n_patches`` patches of its
    own input (see ``kmeans_filters`` for method/whiten/normalize/eps/iters/batch_size/window_size),
    scaled to He norm, biased so that ~``active_fraction`` of the ReLU inputs are positive, and with
    ``freeze`` excluded from training (requires_grad False). Returns one LayerReport per Conv2d.
    """
    op = "pretrain_conv_layers"
    convs = _check_model(model, op)
    x = as_images(images, op)
    opts = check_options(op, n_patches, method, whiten, normalize, eps_zca, eps_norm, iters, batch_size,
                         window_size)
    if not isinstance(freeze, (bool, np.bool_)):
        raise TypeError(f"{op}: expected freeze as a bool, got {freeze!r}")
    active_fraction = positive_float(active_fraction, op, "active_fraction")
    if active_fraction >= 1:
        raise ValueError(f"{op}: expected active_fraction in (0, 1), got {active_fraction}")
    forward_batch = positive_int(forward_batch, op, "forward_batch")
    first = model[convs[0]]
    if convs[0] == 0 and x.shape[1] != first.in_channels:
        raise ValueError(f"{op}: expected images with {first.in_channels} channels for layer 0 ({first!r}), "
                         f"got images of shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=first.weight.numpy().dtype)
    rng = generator(seed, op)
    reports: List[LayerReport] = []
    was_training = model.training
    model.eval()
    try:
        for i in range(convs[-1] + 1):
            layer = model[i]
            if i in convs:
                if x.shape[1] != layer.in_channels:
                    raise ValueError(f"{op}: layer {i} ({layer!r}) expects {layer.in_channels} input channels, "
                                     f"the previous layers produce {x.shape[1]} (shape {x.shape})")
                start = time.perf_counter()
                learned = learn_filters(x, layer.out_channels, layer.kernel_size, opts, rng, f"{op} (layer {i})")
                active = _set_layer(layer, learned.filters, learned.patches, active_fraction)
                if freeze:
                    layer.requires_grad_(False)
                reports.append(LayerReport(
                    i, tuple(layer.weight.shape), opts.method, opts.n_patches, learned.result.n_iter,
                    learned.result.reseeded, learned.result.objective[-1],
                    mean_pairwise_correlation(learned.filters) if layer.out_channels > 1 else 0.0,
                    active, time.perf_counter() - start, bool(freeze)))
            if i < convs[-1]:
                x = np.ascontiguousarray(_forward(layer, x, forward_batch))
    finally:
        model.train(was_training)
    return reports
