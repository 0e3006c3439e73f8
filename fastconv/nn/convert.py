"""``to_fully_convolutional``: turn a classifier's FC head into convolutions (FC→conv conversion).

A Linear layer that reads a flattened C×H×W feature map computes the same numbers as a Conv2d
with an H×W kernel applied at one position; the following Linear layers are 1×1 convolutions.
After the swap the network accepts larger inputs and slides the whole classifier over them in
one pass, producing a class heatmap instead of one vector (Long et al. 2015; the lecture's
"converting FC layers to CONV layers").
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Tuple

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .module import Module, Parameter
from .modules import (
    ELU, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax,
    MaxPool2d, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)

_ELEMENTWISE = (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Dropout, Identity)


def _layer_input_shapes(model: Sequential, input_shape: Tuple[int, ...]) -> List[Tuple[int, ...]]:
    """The shape each layer receives for one sample of ``input_shape`` (run in eval mode, no tape)."""
    params = list(model.parameters())
    dtype = params[0].dtype if params else np.float32
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    shapes = []
    try:
        x = Tensor._wrap(np.zeros((1,) + tuple(input_shape), dtype=dtype))
        with no_grad():
            for layer in model:
                shapes.append(tuple(x.shape))
                x = layer(x)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return shapes


def _linear_as_conv(linear: Linear, in_shape: Tuple[int, ...]) -> Conv2d:
    """A Conv2d computing ``linear`` on a (C, H, W) map (kernel H×W) or on (F,) features (1×1)."""
    c, h, w = in_shape if len(in_shape) == 3 else (in_shape[0], 1, 1)
    weight = linear.weight.numpy()
    conv = Conv2d(c, linear.out_features, (h, w), bias=linear.bias is not None, dtype=weight.dtype)
    conv.weight = Parameter(weight.reshape(linear.out_features, c, h, w).copy(),
                            requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        conv.bias = Parameter(linear.bias.numpy().copy(), requires_grad=linear.bias.requires_grad)
    return conv


def _batchnorm1d_as_2d(bn: BatchNorm1d) -> BatchNorm2d:
    """The same per-feature normalization applied per channel of a (N, C, h, w) map."""
    floats = [a.dtype for a in bn.state_dict().values() if a.dtype.kind == "f"]
    out = BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                      track_running_stats=bn.track_running_stats,
                      dtype=floats[0] if floats else None)
    out.load_state_dict(bn.state_dict())
    return out


def _convert_head_layer(layer: Module, name: str, in_shape: Tuple[int, ...]) -> Module:
    if isinstance(layer, Linear):
        return _linear_as_conv(layer, in_shape)
    if isinstance(layer, _ELEMENTWISE):
        return layer
    if isinstance(layer, BatchNorm1d):
        if len(in_shape) != 1:
            raise ValueError(f"to_fully_convolutional: layer '{name}' (BatchNorm1d) normalizes the flattened "
                             "feature map element by element, which has no convolutional equivalent")
        return _batchnorm1d_as_2d(layer)
    if isinstance(layer, (Softmax, LogSoftmax)):
        if layer.dim not in (1, -1, None):
            raise ValueError(f"to_fully_convolutional: layer '{name}' {layer!r} normalizes over dim {layer.dim} of "
                             "(N, features); expected dim=1")
        return type(layer)(dim=1)
    raise ValueError(f"to_fully_convolutional: cannot convert layer '{name}' ({type(layer).__name__}) in the "
                     "classifier head; supported after the Flatten: Linear, BatchNorm1d, Dropout, Identity, "
                     "activations, Softmax/LogSoftmax")


def output_stride(model: Sequential) -> Tuple[int, int]:
    """Product of the strides of the convolution and pooling layers: the heatmap's step in input pixels."""
    sh = sw = 1
    for layer in model.modules():
        if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
            s = layer.stride
            s = (s, s) if isinstance(s, int) else tuple(s)
            sh, sw = sh * s[0], sw * s[1]
    return sh, sw


def to_fully_convolutional(model: Sequential, input_shape: Sequence[int]) -> Sequential:
    """A Sequential equal to ``model`` on inputs of ``input_shape`` ((C, H, W) or (N, C, H, W)) whose
    Flatten + Linear head is replaced by Conv2d layers (the first with the feature map's size as
    kernel, later ones 1×1), copying the weights.

    On a larger input the result outputs (N, classes, h, w): location (i, j) is the original network
    applied to the input crop starting at (i·S, j·S), S = ``output_stride(model)`` — exactly so when
    the feature layers use no padding (with padding, a crop's border sees real pixels where the
    original saw zeros). The convolutional feature layers are shared with ``model`` (not copied);
    the original model is left unchanged. Keys keep their names (``5.weight`` stays ``5.weight``).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"to_fully_convolutional: expected a Sequential, got {type(model).__name__}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"to_fully_convolutional: expected input_shape (C, H, W) or (N, C, H, W), got {input_shape!r}")
    shapes = _layer_input_shapes(model, shape)
    items = list(model._modules.items())
    flatten_at = next((i for i, (_, layer) in enumerate(items)
                       if isinstance(layer, Flatten) and len(shapes[i]) == 4), None)
    if flatten_at is None or not any(isinstance(layer, Linear) for _, layer in items[flatten_at + 1:]):
        raise ValueError("to_fully_convolutional: expected a Flatten of (N, C, H, W) features followed by Linear "
                         f"layers, found none in {type(model).__name__} with layers "
                         f"{[type(layer).__name__ for _, layer in items]}")
    flatten = items[flatten_at][1]
    if (flatten.start_dim, flatten.end_dim) not in ((1, -1), (1, 3)):
        raise ValueError(f"to_fully_convolutional: expected Flatten(start_dim=1, end_dim=-1) before the head, "
                         f"got {flatten!r}")
    converted = OrderedDict(items[:flatten_at])
    feature_shape = shapes[flatten_at][1:]
    seen_linear = False
    for i in range(flatten_at + 1, len(items)):
        name, layer = items[i]
        # until the first Linear the features are still the flattened map (C, H, W)
        in_shape = shapes[i][1:] if seen_linear else feature_shape
        converted[name] = _convert_head_layer(layer, name, in_shape)
        seen_linear = seen_linear or isinstance(layer, Linear)
    result = Sequential(converted)
    result.train(model.training)
    return result


__all__ = ["to_fully_convolutional", "output_stride"]
