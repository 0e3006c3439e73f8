"""torchvision's model registry functions: ``list_models``, ``get_model``, ``get_model_builder``."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from . import alexnet, lenet, mobilenetv2, resnet, resnet_cifar, squeezenet, vgg

BUILDERS: Dict[str, Callable] = {}
for _module in (resnet, resnet_cifar, mobilenetv2, vgg, alexnet, squeezenet, lenet):
    for _name in _module.__all__:
        if _name[0].islower() and _name != "make_layers":
            BUILDERS[_name] = getattr(_module, _name)


def default_input_shape(name: str) -> Tuple[int, int, int]:
    """The (C, H, W) input a model is designed for: 1×28×28 (lenet, MNIST), 3×32×32 (the CIFAR
    ResNets), else 3×224×224 (ImageNet)."""
    builder = get_model_builder(name)
    if builder.__module__ == lenet.__name__:
        return (1, 28, 28)
    if builder.__module__ == resnet_cifar.__name__:
        return (3, 32, 32)
    return (3, 224, 224)


def list_models() -> List[str]:
    """The builders' names, sorted (``get_model`` accepts each)."""
    return sorted(BUILDERS)


def get_model_builder(name: str) -> Callable:
    """The builder function of a model name (e.g. ``resnet18``)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in BUILDERS:
        raise ValueError(f"get_model: unknown model {name!r}; available: {', '.join(list_models())}")
    return BUILDERS[key]


def get_model(name: str, **config: Any):
    """Build a model by name: ``get_model("resnet18", num_classes=10)``."""
    return get_model_builder(name)(**config)
