"""Class-model visualization (Simonyan et al. 2014, Eq. 1): the image the network finds most "class-like".

Gradient ascent on S_c(I) − λ‖I‖² from a zero (or given, e.g. mean) image, in eval mode;
optional jitter (random shifts before each step) and periodic Gaussian blur keep high
frequencies in check.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple

import numpy as np

from ..nn.module import Module
from .layers import model_dtype
from .plotting import display_image, new_figure, show
from .saliency import score_gradient


def _shape(input_shape, op: str) -> Tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ValueError(f"{op}: expected input_shape (C, H, W) of positive ints, got {input_shape!r}")
    return tuple(int(s) for s in shape)


def class_model(model: Module, input_shape: Sequence[int], target: int, steps: int = 200, lr: float = 1.0,
                l2: float = 1e-3, init: Optional[np.ndarray] = None, jitter: int = 0, blur_every: int = 0,
                blur_sigma: float = 0.5, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(image (C, H, W), score trajectory (steps + 1,)): S_target of the image before each step and at the end.

    Each step: I ← I + lr·(∂S_c/∂I − 2·l2·I), where the gradient is taken at I shifted by up to
    ``jitter`` pixels (random, seeded) and shifted back; every ``blur_every`` steps I is blurred with
    a Gaussian of std ``blur_sigma`` pixels. ``init`` (e.g. the mean training image) replaces zeros.
    """
    op = "class_model"
    shape = _shape(input_shape, op)
    for name, value in (("steps", steps), ("jitter", jitter), ("blur_every", blur_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{op}: expected {name} as an int >= 0, got {value!r}")
    if not lr > 0 or not l2 >= 0:
        raise ValueError(f"{op}: expected lr > 0 and l2 >= 0, got lr={lr!r}, l2={l2!r}")
    dtype = model_dtype(model)
    if init is None:
        image = np.zeros((1,) + shape, dtype=dtype)
    elif np.shape(init) in (shape, (1,) + shape):
        image = np.array(init, dtype=dtype).reshape((1,) + shape)
    else:
        raise ValueError(f"{op}: expected init of shape {shape}, got shape {np.shape(init)}")
    rng = np.random.default_rng(seed)
    scores = np.empty(steps + 1)
    for step in range(steps + 1):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shifted = np.roll(image, (dy, dx), axis=(2, 3))
        grad, score = score_gradient(model, shifted, target, op)
        if step == 0 and not np.any(grad):
            warnings.warn(f"{op}: the gradient of class {target} is exactly zero at the initial image (e.g. "
                          f"every ReLU inactive on a zero image); the image will not change: pass init=",
                          RuntimeWarning, stacklevel=2)
        if jitter:
            scores[step] = score_gradient(model, image, target, op)[1][0]
        else:
            scores[step] = score[0]
        if step == steps:
            break
        grad = np.roll(grad, (-dy, -dx), axis=(2, 3))
        image = image + lr * (grad - 2.0 * l2 * image)
        if blur_every and (step + 1) % blur_every == 0:
            from scipy import ndimage  # only when blurring: keeps `import fastconv` light

            image = ndimage.gaussian_filter(image, sigma=(0, 0, blur_sigma, blur_sigma)).astype(dtype)
    return image[0], scores


def plot_class_model(model: Module, input_shape: Sequence[int], targets: Sequence[int], **options):
    """One class-model image per target class (top row) and their score trajectories (below).

    ``options`` are passed to ``class_model`` (steps, lr, l2, init, jitter, blur_every, ...).
    """
    targets = list(targets)
    if not targets:
        raise ValueError("plot_class_model: expected at least one target class, got none")
    fig = new_figure("plot_class_model", max(6.0, 1.3 * len(targets)), 4.6)
    grid = fig.add_gridspec(2, len(targets), height_ratios=[1, 1.6])
    curve = fig.add_subplot(grid[1, :])
    for k, t in enumerate(targets):
        image, scores = class_model(model, input_shape, t, **options)
        show(fig.add_subplot(grid[0, k]), display_image(image), f"class {t}")
        curve.plot(scores, label=str(t))
    curve.set_xlabel("gradient-ascent step")
    curve.set_ylabel("class score S_c")
    curve.legend(fontsize=7, ncol=min(len(targets), 10), title="class", title_fontsize=7)
    return fig
