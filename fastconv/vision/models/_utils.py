"""Helpers shared by the model builders: the offline ``weights`` rule, torchvision's channel
rounding and PyTorch's default layer initialization."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from ... import nn


def check_builder_args(builder: str, weights: Any, kwargs: Dict[str, Any]) -> None:
    """Accept ``weights=None`` only: fastconv never downloads anything.

    torchvision's ``progress`` is accepted and ignored; its legacy ``pretrained=False`` too
    (``pretrained=True`` is refused like any weights value). Both are removed from ``kwargs``.
    """
    kwargs.pop("progress", None)
    pretrained = kwargs.pop("pretrained", False)
    if pretrained:
        weights = "pretrained=True"
    if weights is not None:
        raise ValueError(
            f"{builder}: weights={weights!r} would need a download, and fastconv works offline; build the "
            f"model with weights=None and load a checkpoint into it: "
            f"model.load_state_dict(state_dict) accepts torchvision's state_dict keys unchanged "
            f"(e.g. {{k: v.numpy() for k, v in torchvision_model.state_dict().items()}}, or fc.load(path))")


def make_divisible(v: float, divisor: int, min_value: Optional[int] = None) -> int:
    """torchvision's ``_make_divisible``: the nearest multiple of ``divisor`` to ``v``, at least
    ``min_value`` (default ``divisor``) and never more than 10 % below ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def torch_default_init_(module: nn.Module) -> None:
    """PyTorch's own initialization of Conv2d and Linear (kaiming_uniform_ with a=sqrt(5), bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))), which torchvision keeps for models without an init
    scheme (AlexNet); fastconv's layers default to He normal instead."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            if m.bias is not None:
                fan_in = int(m.weight.numel() // m.weight.shape[0])
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound)
