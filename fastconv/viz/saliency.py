"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014), optionally SmoothGrad-averaged.

The saliency of pixel (i, j) is max over channels of |∂S_c/∂I|, where S_c is the unnormalized
class score (the logit, before softmax): how much a small change there would move the score.
"""
from __future__ import annotations

import numpy as np

from ..nn.module import Module
from ..tensor import Tensor
from .layers import as_image, check_index, evaluating, frozen, model_dtype
from .plotting import display_image, new_figure, show


def score_gradient(model: Module, batch: np.ndarray, target: int, op: str):
    """(∂(Σ S_target)/∂batch, scores of the batch) in eval mode, without touching parameter gradients."""
    x = Tensor(batch, requires_grad=True)
    with evaluating(model), frozen(model):
        scores = model(x)
        if scores.ndim != 2:
            raise ValueError(f"{op}: expected the model to return (N, classes) scores, got shape {scores.shape}")
        check_index(target, scores.shape[1], op, "target", "the model's output")
        scores[:, target].sum().backward()
    return x.grad.numpy(), scores.numpy()[:, target].copy()


def saliency(model: Module, x, target: int, samples: int = 0, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """(H, W) map of max over channels of |∂S_target/∂I| for one image.

    ``samples > 0`` gives SmoothGrad: the mean of |gradient| over that many copies of the image plus
    Gaussian noise of std ``noise·(max − min)`` of the image, drawn from ``seed``.
    """
    op = "saliency"
    image = as_image(x, op, model_dtype(model))
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 0:
        raise ValueError(f"{op}: expected samples as an int >= 0, got {samples!r}")
    if samples == 0:
        grad, _ = score_gradient(model, image, target, op)
        return np.abs(grad[0]).max(axis=0)
    if not noise >= 0:
        raise ValueError(f"{op}: expected noise >= 0, got {noise!r}")
    sigma = noise * float(image.max() - image.min())
    rng = np.random.default_rng(seed)
    noisy = image + rng.normal(0.0, sigma, size=(samples,) + image.shape[1:]).astype(image.dtype)
    grad, _ = score_gradient(model, noisy, target, op)
    return np.abs(grad).mean(axis=0).max(axis=0)


def plot_saliency(model: Module, x, target: int, samples: int = 0, noise: float = 0.15, seed: int = 0):
    """The image beside its saliency map for ``target``."""
    sal = saliency(model, x, target, samples, noise, seed)
    image = as_image(x, "plot_saliency", model_dtype(model))
    fig = new_figure("plot_saliency", 6.5, 3.4)
    left, right = fig.subplots(1, 2)
    show(left, display_image(image[0]), "input")
    kind = f"SmoothGrad, {samples} samples" if samples else "|dS/dI|"
    show(right, sal, f"saliency of class {target} ({kind})", vmin=0.0)
    right.images[0].set_cmap("hot")
    return fig
