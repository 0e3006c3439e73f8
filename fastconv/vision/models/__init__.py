"""Model zoo with torchvision's builder names, classes and state_dict keys (torchvision checkpoints
load unchanged), plus the CIFAR ResNets of He et al. 2016 and the README's demo LeNet.

Builders take ``weights=None`` only (fastconv never downloads; load a state_dict instead) and
forward every other keyword to the model class, as torchvision's do.
"""
from ._registry import default_input_shape, get_model, get_model_builder, list_models
from .alexnet import AlexNet, alexnet
from .lenet import LeNet, lenet
from .mobilenetv2 import InvertedResidual, MobileNetV2, mobilenet_v2
from .resnet import (
    BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d,
    resnext101_32x8d, resnext101_64x4d, wide_resnet50_2, wide_resnet101_2,
)
from .resnet_cifar import CifarBasicBlock, CifarResNet, resnet20, resnet32, resnet44, resnet56, resnet110
from .squeezenet import Fire, SqueezeNet, squeezenet1_0, squeezenet1_1
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

__all__ = [
    "get_model", "get_model_builder", "list_models", "default_input_shape",
    "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "CifarResNet", "CifarBasicBlock", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "MobileNetV2", "InvertedResidual", "mobilenet_v2",
    "VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "AlexNet", "alexnet", "SqueezeNet", "Fire", "squeezenet1_0", "squeezenet1_1", "LeNet", "lenet",
]
