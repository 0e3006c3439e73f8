"""``fastconv viz``: PNG figures of a trained run, and the figures ``fastconv demo`` adds.

``add_parser(subparsers)`` registers the sub-command on the CLI's parser; ``demo_figures`` writes
the first-layer filters and one saliency and one occlusion figure.
"""
from __future__ import annotations

import argparse
import os
from typing import List

import numpy as np

from .._runs import datasets, load_run, normalize
from ..nn.module import Module
from ..nn.modules import Conv2d, CoordConv2d, Flatten, Linear, ReLU
from ..nn.modules.container import Sequential
from .layers import sequential_leaves

WHAT = ("filters", "activations", "topk", "tsne", "occlusion", "saliency", "classmodel", "deconv")
DEFAULT_WHAT = "filters,activations,topk,tsne,occlusion,saliency,classmodel"


def first_conv(model: Module) -> str:
    """Name of the model's first convolution (the layer whose filters are images)."""
    for name, mod in model.named_modules():
        if isinstance(mod, (Conv2d, CoordConv2d)):
            return name
    raise ValueError(f"fastconv viz: the model ({type(model).__name__}) has no Conv2d layer")


def last_feature_map(model: Module) -> str:
    """Name of the last ReLU (else conv) before the first Flatten/Linear: the deepest spatial features."""
    if not isinstance(model, Sequential):
        raise ValueError("fastconv viz: pass --layer for a model that is not a Sequential")
    best = None
    for name, mod in sequential_leaves(model):
        if isinstance(mod, (Flatten, Linear)):
            break
        if isinstance(mod, (ReLU, Conv2d, CoordConv2d)):
            best = name
    if best is None:
        raise ValueError("fastconv viz: found no convolutional feature map; pass --layer")
    return best


def strongest_channel(model: Module, image: np.ndarray, layer) -> int:
    """The channel of ``layer`` with the largest activation anywhere for ``image``."""
    from .activations import activations

    out = activations(model, image, layer)[0]
    return int(out.reshape(out.shape[0], -1).max(axis=1).argmax())


def _scores(model: Module, image: np.ndarray) -> np.ndarray:
    """The model's class scores for one image (eval mode, no_grad)."""
    from ..autograd import no_grad
    from ..tensor import Tensor
    from .layers import as_image, evaluating, model_dtype

    with evaluating(model), no_grad():
        return model(Tensor._wrap(as_image(image, "fastconv viz", model_dtype(model)))).numpy()[0]


def _num_classes(model: Module, image: np.ndarray) -> int:
    return int(_scores(model, image).shape[0])


def _target(model: Module, image: np.ndarray, label) -> int:
    """The image's label when known, else the model's prediction."""
    return int(label) if label is not None else int(_scores(model, image).argmax())


def _sample(dataset, index: int):
    sample = dataset[index]
    sample = sample if isinstance(sample, (tuple, list)) else (sample,)
    return np.asarray(sample[0]), (sample[1] if len(sample) > 1 else None)


def demo_figures(model: Module, dataset, out_dir: str) -> List[str]:
    """Write filters.png (first conv), saliency.png and occlusion.png (first dataset image); returns paths."""
    from . import plot_filters, plot_occlusion, plot_saliency, save_figure

    image, label = _sample(dataset, 0)
    target = _target(model, image, label)
    figures = [("filters.png", plot_filters(first_conv(model), model)),
               ("saliency.png", plot_saliency(model, image, target)),
               ("occlusion.png", plot_occlusion(model, image, target, size=6, stride=2))]
    return [save_figure(fig, os.path.join(out_dir, name)) for name, fig in figures]


def _what(text: str) -> List[str]:
    items = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in items if w not in WHAT]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(WHAT)}, got {text!r}")
    return items


def _layer_arg(text: str):
    return int(text) if text.lstrip("-").isdigit() else text


def _figures(args, model: Module, dataset) -> List[str]:
    from . import (
        plot_activations, plot_class_model, plot_deconv, plot_filters, plot_occlusion, plot_saliency, plot_top_k,
        plot_tsne, plot_tsne_mosaic, save_figure, tsne_codes,
    )
    from ..data import Subset

    image, label = _sample(dataset, args.index)
    target = args.target if args.target is not None else _target(model, image, label)
    layer = args.layer if args.layer is not None else last_feature_map(model)
    channel = args.channel if args.channel is not None else strongest_channel(model, image, layer)
    subset = Subset(dataset, np.arange(min(args.samples, len(dataset))))
    written = []

    def save(name, fig):
        written.append(save_figure(fig, os.path.join(args.out, name)))
        print(f"wrote {written[-1]}")

    for what in args.what:
        if what == "filters":
            save("filters.png", plot_filters(first_conv(model), model))
        elif what == "activations":
            save("activations.png", plot_activations(model, image, layer))
        elif what == "topk":
            save("topk.png", plot_top_k(model, subset, layer, channel, args.k))
        elif what == "tsne":
            embedding = tsne_codes(model, subset, max_samples=None, seed=args.seed)
            save("tsne.png", plot_tsne(embedding))
            save("tsne_mosaic.png", plot_tsne_mosaic(embedding, subset))
        elif what == "occlusion":
            save("occlusion.png", plot_occlusion(model, image, target, args.occluder, args.stride))
        elif what == "saliency":
            save("saliency.png", plot_saliency(model, image, target))
            save("smoothgrad.png", plot_saliency(model, image, target, samples=32, seed=args.seed))
        elif what == "classmodel":
            classes = range(_num_classes(model, image))
            save("classmodel.png", plot_class_model(model, image.shape, list(classes), steps=args.steps,
                                                    jitter=1, blur_every=10, seed=args.seed))
        elif what == "deconv":
            save("deconv.png", plot_deconv(model, image, layer, channel))
    return written


def _run(args) -> int:
    from ..data import TensorDataset

    model, cfg = load_run(args.checkpoint, args.arch)
    _, test_set, _, _ = datasets(cfg.get("data", "mnist"), args.data_root or cfg.get("data_root"))
    dataset = TensorDataset(test_set.data, test_set.targets, transform=normalize())
    if not 0 <= args.index < len(dataset):
        raise ValueError(f"fastconv viz: --index {args.index} is out of range for {len(dataset)} test images")
    _figures(args, model, dataset)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``viz`` on the CLI's sub-parsers (``set_defaults(run=...)``, as the other commands)."""
    p = subparsers.add_parser("viz", help="PNG figures of a trained run: filters, activations, top-k, t-SNE, ...")
    p.add_argument("--checkpoint", required=True, help="run folder, model.npz or checkpoint.npz")
    p.add_argument("--arch", default=None, help="blueprint spec (default: the run's config.json)")
    p.add_argument("--what", type=_what, default=_what(DEFAULT_WHAT),
                   help=f"comma-separated figures among {','.join(WHAT)} (default: {DEFAULT_WHAT})")
    p.add_argument("--out", default="figs", help="folder for the PNG files")
    p.add_argument("--data-root", default=None, help="folder with MNIST IDX files (default: bundled)")
    p.add_argument("--index", type=int, default=0, help="test image for activations/occlusion/saliency/deconv")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the image's label)")
    p.add_argument("--layer", type=_layer_arg, default=None,
                   help="layer index or name for activations/topk/deconv (default: last conv feature map)")
    p.add_argument("--channel", type=int, default=None,
                   help="channel for topk/deconv (default: the one most active on the --index image)")
    p.add_argument("--k", type=int, default=9, help="images shown by topk")
    p.add_argument("--samples", type=int, default=2000, help="test images searched by topk and embedded by tsne")
    p.add_argument("--occluder", type=int, default=6, help="occluder size in pixels")
    p.add_argument("--stride", type=int, default=2, help="occluder stride in pixels")
    p.add_argument("--steps", type=int, default=200, help="gradient-ascent steps of classmodel")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run)
    return p
