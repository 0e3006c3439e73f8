"""MNIST, FashionMNIST and KMNIST from IDX files under ``root/<Name>/raw`` (gzipped or not).

fastconv never downloads: ``download=True`` makes MNIST fall back to the copy bundled with fastconv
(5,000 training images, the full 10,000-image test set) when the files are absent, and says so on
stderr; for the other datasets it changes nothing, and missing files are a RuntimeError naming the
paths looked for. ``data`` is a uint8 Tensor (N, 28, 28) and ``targets`` an int64 Tensor, as in
torchvision.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ...data.datasets import BUNDLED_MNIST
from ...data.idx import read_idx
from ...tensor import Tensor
from ._array_images import ArrayImageDataset

__all__ = ["MNIST", "FashionMNIST", "KMNIST"]


def _idx_file(folder: str, stem: str) -> Optional[str]:
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


class MNIST(ArrayImageDataset):
    """MNIST digits (torchvision's signature and attributes). Reads
    ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``."""

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]
    _bundled: Optional[Path] = BUNDLED_MNIST  # used when download=True and the files are absent

    def __init__(self, root: Union[str, Path], train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, download: bool = False) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        images_path, labels_path = self._files(download)
        self.data, self.targets = self._load(images_path, labels_path)

    # -- files -----------------------------------------------------------------------------------
    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "processed")

    def _stems(self) -> Tuple[str, str]:
        prefix = "train" if self.train else "t10k"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    def _files(self, download: bool) -> Tuple[str, str]:
        name = type(self).__name__
        stems = self._stems()
        found = [_idx_file(self.raw_folder, stem) for stem in stems]
        if all(found):
            return found[0], found[1]
        looked = ", ".join(os.path.join(self.raw_folder, stem) + "[.gz]" for stem in stems)
        if download and self._bundled is not None:
            prefix = "train5k" if self.train else "t10k"
            bundled = [os.path.join(self._bundled, f"{prefix}-{kind}-ubyte.gz") for kind in ("images-idx3", "labels-idx1")]
            what = "5,000 of the 60,000 training images" if self.train else "the 10,000 test images"
            print(f"{name}: no IDX files in {self.raw_folder}; using the copy bundled with fastconv ({what}); "
                  "nothing is downloaded", file=sys.stderr)
            return bundled[0], bundled[1]
        if download:
            raise RuntimeError(f"{name}: dataset not found and fastconv does not download (it runs offline): "
                               f"place the IDX files at {looked}")
        hint = " or pass download=True to use the copy bundled with fastconv" if self._bundled is not None else ""
        raise RuntimeError(f"{name}: dataset not found: looked for {looked}; place the IDX files there{hint}")

    def _load(self, images_path: str, labels_path: str) -> Tuple[Tensor, Tensor]:
        name = type(self).__name__
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{name}: {images_path}: expected uint8 images of shape (N, H, W), "
                             f"got {images.dtype} of shape {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(f"{name}: {labels_path}: expected uint8 labels of shape (N,), "
                             f"got {labels.dtype} of shape {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{name}: {images_path} has {len(images)} images but {labels_path} "
                             f"has {len(labels)} labels")
        limit = len(self.classes)
        if labels.size and int(labels.max()) >= limit:
            raise ValueError(f"{name}: {labels_path}: labels must lie in [0, {limit}), found {int(labels.max())}")
        return Tensor._wrap(images), Tensor._wrap(labels.astype(np.int64))

    # -- torchvision's attributes ----------------------------------------------------------------
    @property
    def class_to_idx(self) -> Dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def train_labels(self):
        warnings.warn("train_labels has been renamed targets")
        return self.targets

    @property
    def test_labels(self):
        warnings.warn("test_labels has been renamed targets")
        return self.targets

    @property
    def train_data(self):
        warnings.warn("train_data has been renamed data")
        return self.data

    @property
    def test_data(self):
        warnings.warn("test_data has been renamed data")
        return self.data

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"


class FashionMNIST(MNIST):
    """Fashion-MNIST: ``root/FashionMNIST/raw/...`` IDX files (same layout as MNIST)."""

    classes: List[str] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                          "Bag", "Ankle boot"]
    _bundled = None


class KMNIST(MNIST):
    """Kuzushiji-MNIST: ``root/KMNIST/raw/...`` IDX files (same layout as MNIST)."""

    classes: List[str] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
    _bundled = None
