"""Layer modules, one file per family (mirroring ``fastconv.nn.functional``)."""
from .activation import (
    ELU, GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
    Softplus, Tanh,
)
from .loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss,
)
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv2d, ConvTranspose2d, CoordConv2d
from .dropout import Dropout, Dropout2d
from .linear import Flatten, Identity, Linear, Unflatten
from .padding import (
    CircularPad1d, CircularPad2d, ConstantPad1d, ConstantPad2d, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
    ReplicationPad2d, ZeroPad1d, ZeroPad2d,
)
from .upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from .pooling import (
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, GlobalAvgPool2d, GlobalMaxPool2d, MaxPool2d, MaxUnpool2d,
)

__all__ = [
    "Sequential", "ModuleList", "Conv2d", "ConvTranspose2d", "CoordConv2d", "Linear", "Flatten", "Unflatten",
    "Identity", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "MaxPool2d",
    "MaxUnpool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "InstanceNorm2d", "GroupNorm", "Dropout", "Dropout2d",
    "ReLU6", "Hardtanh", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Mish", "PReLU", "Softplus",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss",
    "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d", "CircularPad2d",
    "ConstantPad1d", "ConstantPad2d", "ZeroPad1d", "ZeroPad2d", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "ModuleDict", "ParameterList", "ParameterDict",
]
