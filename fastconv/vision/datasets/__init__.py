"""torchvision's datasets for fastconv: MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100,
ImageFolder, DatasetFolder and FakeData, with torchvision's signatures and attributes.

Everything is read from local files (nothing is downloaded); Pillow (``fastconv[vision]``) is
imported only to make PIL images and decode image files.
"""
from .cifar import CIFAR10, CIFAR100
from .fakedata import FakeData
from .folder import IMG_EXTENSIONS, DatasetFolder, ImageFolder, default_loader, pil_loader
from .mnist import KMNIST, MNIST, FashionMNIST
from .vision import StandardTransform, VisionDataset

__all__ = ["MNIST", "FashionMNIST", "KMNIST", "CIFAR10", "CIFAR100", "ImageFolder", "DatasetFolder", "FakeData",
           "VisionDataset", "StandardTransform", "IMG_EXTENSIONS", "default_loader", "pil_loader"]
