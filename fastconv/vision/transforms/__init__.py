"""torchvision's ``transforms`` for fastconv: per-sample transforms of PIL images, HWC ndarrays and
CHW Tensors (see ``transforms`` for the random streams and ``_fusion`` for the batched path)."""
from . import functional
from .functional import InterpolationMode
from .transforms import (
    CenterCrop, ColorJitter, Compose, ConvertImageDtype, Grayscale, Lambda, Normalize, Pad, PILToTensor, RandomApply,
    RandomCrop, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, RandomRotation, RandomVerticalFlip, Resize,
    ToPILImage, ToTensor,
)

__all__ = [
    "functional", "InterpolationMode", "Compose", "ToTensor", "PILToTensor", "ConvertImageDtype", "ToPILImage",
    "Normalize", "Resize", "CenterCrop", "Pad", "Lambda", "RandomApply", "RandomCrop", "RandomHorizontalFlip",
    "RandomVerticalFlip", "RandomResizedCrop", "ColorJitter", "RandomRotation", "Grayscale", "RandomGrayscale",
]
