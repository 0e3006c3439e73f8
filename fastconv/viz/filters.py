"""Learned filters of a convolution layer, each scaled to [0, 1] on its own so every pattern is visible."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..nn.module import Module
from ..nn.modules.conv import Conv2d, CoordConv2d
from .layers import LayerRef, resolve_layer
from .plotting import display_image, image_grid, unit_range


def _conv_of(layer, model: Optional[Module], op: str) -> Conv2d:
    if model is not None:
        _, layer = resolve_layer(model, layer, op)
    elif not isinstance(layer, Module):
        raise TypeError(f"{op}: a layer given by index or name needs the model: {op}(layer, model=model)")
    if isinstance(layer, CoordConv2d):
        layer = layer.conv
    if not isinstance(layer, Conv2d):
        raise TypeError(f"{op}: expected a Conv2d layer, got {type(layer).__name__}")
    return layer


def filters(layer: LayerRef, model: Optional[Module] = None) -> np.ndarray:
    """The layer's weights (out, in/groups, kh, kw), each filter min-max scaled to [0, 1] over all its values."""
    w = _conv_of(layer, model, "filters").weight.numpy()
    return np.stack([unit_range(f) for f in w]).astype(np.float32)


def plot_filters(layer: LayerRef, model: Optional[Module] = None, max_filters: int = 64,
                 max_channels: int = 16):
    """Grid of filters: gray/RGB images when the layer sees 1 or 3 channels, else one row per filter
    with a panel per input channel (first ``max_filters`` × ``max_channels``)."""
    w = filters(layer, model)[:max_filters]
    out, cin = w.shape[:2]
    if cin in (1, 3):
        images = [display_image(f) if cin == 3 else f[0] for f in w]
        fig, axes = image_grid("plot_filters", images, suptitle=f"{out} filters {w.shape[2]}x{w.shape[3]}",
                               panel=0.8)
        for ax in axes:  # keep the per-filter [0, 1] scale instead of each panel's autoscale
            ax.images[0].set_clim(0.0, 1.0)
        return fig
    cin = min(cin, max_channels)
    images = [w[i, c] for i in range(out) for c in range(cin)]
    fig, axes = image_grid("plot_filters", images, ncols=cin, panel=0.6,
                           suptitle=f"{out} filters x {cin} input channels (rows: filters)")
    for ax in axes:
        ax.images[0].set_clim(0.0, 1.0)
    return fig
