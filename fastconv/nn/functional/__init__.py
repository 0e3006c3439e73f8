"""Functional ops (PyTorch names and arguments): each validates in Python, then runs a Function."""
from .activation import (
    elu, gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, leaky_relu_, log_softmax, mish, prelu, relu, relu_, relu6,
    sigmoid, silu, softmax, softplus, tanh,
)
from .loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, l1_loss, mse_loss,
    nll_loss, smooth_l1_loss,
)
from .conv import conv2d, conv_transpose2d
from .linear import linear
from .pooling import (
    adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d,
    max_unpool2d,
)
from .normalization import batch_norm, group_norm, instance_norm, layer_norm
from .dropout import dropout, dropout2d
from .padding import pad
from .interpolation import interpolate, upsample, upsample_bilinear, upsample_nearest
from .fused import add_relu, batch_norm_relu
