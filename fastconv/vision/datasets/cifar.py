"""CIFAR-10 and CIFAR-100 from the official python batches or the binary version.

Python version (torchvision's): ``root/cifar-10-batches-py/{data_batch_1..5, test_batch,
batches.meta}`` and ``root/cifar-100-python/{train, test, meta}``, read by a pickle decoder that
builds only dicts, lists, strings, bytes and numpy arrays (``_safe_pickle``: nothing in a file is
executed). Binary version, used when the python folder is absent:
``root/cifar-10-batches-bin/{data_batch_1..5, test_batch}.bin`` + ``batches.meta.txt`` (records
of 1 label byte + 3072 pixel bytes) and ``root/cifar-100-binary/{train, test}.bin`` +
``fine_label_names.txt`` (coarse byte, fine byte, 3072 pixel bytes). ``data`` is uint8
(N, 32, 32, 3) HWC, ``targets`` a list of ints, as in torchvision; every malformed file is a
ValueError naming it. Nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from ._array_images import ArrayImageDataset
from ._safe_pickle import load_data_pickle

__all__ = ["CIFAR10", "CIFAR100"]

_PIXELS = 3 * 32 * 32


def _labels(values, path: str, key: str, count: int, num_classes: int, op: str) -> List[int]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise ValueError(f"{op}: {path}: expected '{key}' as 1-D integers, got {values.dtype} {values.shape}")
        labels = values.astype(np.int64).tolist()
    elif isinstance(values, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
            raise ValueError(f"{op}: {path}: expected '{key}' to hold integers")
        labels = [int(v) for v in values]
    else:
        raise ValueError(f"{op}: {path}: expected '{key}' as a list of integers, got {type(values).__name__}")
    if len(labels) != count:
        raise ValueError(f"{op}: {path}: {count} images but {len(labels)} labels in '{key}'")
    if labels and not 0 <= min(labels) <= max(labels) < num_classes:
        raise ValueError(f"{op}: {path}: labels in '{key}' must lie in [0, {num_classes}), "
                         f"found [{min(labels)}, {max(labels)}]")
    return labels


def _pixels(values, path: str, op: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) or values.dtype != np.uint8:
        got = f"{values.dtype} array" if isinstance(values, np.ndarray) else type(values).__name__
        raise ValueError(f"{op}: {path}: expected 'data' as a uint8 array, got {got}")
    if values.ndim == 2 and values.shape[1] == _PIXELS:
        return values.reshape(-1, 3, 32, 32)
    if values.ndim == 4 and values.shape[1:] == (3, 32, 32):
        return values
    raise ValueError(f"{op}: {path}: expected 'data' of shape (N, 3072), got {values.shape}")


class CIFAR10(ArrayImageDataset):
    """CIFAR-10 (torchvision's signature and attributes: ``data``, ``targets``, ``classes``,
    ``class_to_idx``)."""

    base_folder = "cifar-10-batches-py"
    train_list = [["data_batch_1"], ["data_batch_2"], ["data_batch_3"], ["data_batch_4"], ["data_batch_5"]]
    test_list = [["test_batch"]]
    meta = {"filename": "batches.meta", "key": "label_names"}
    num_classes = 10
    binary_folder = "cifar-10-batches-bin"
    binary_train = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                    "data_batch_5.bin"]
    binary_test = ["test_batch.bin"]
    binary_meta = "batches.meta.txt"
    binary_label_bytes = 1  # label bytes before each image; the last one is the target

    def __init__(self, root: Union[str, Path], train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, download: bool = False) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        python_dir = os.path.join(self.root, self.base_folder)
        binary_dir = os.path.join(self.root, self.binary_folder)
        if os.path.isdir(python_dir):
            chw, self.targets, self.classes = self._load_python(python_dir)
        elif os.path.isdir(binary_dir):
            chw, self.targets, self.classes = self._load_binary(binary_dir)
        else:
            raise RuntimeError(self._not_found(python_dir, binary_dir, download))
        self.data = np.ascontiguousarray(chw.transpose(0, 2, 3, 1))  # HWC, as torchvision
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def _not_found(self, python_dir: str, binary_dir: str, download: bool) -> str:
        files = [f[0] for f in (self.train_list if self.train else self.test_list)] + [self.meta["filename"]]
        binary = (self.binary_train if self.train else self.binary_test) + [self.binary_meta]
        reason = "download=True, but fastconv does not download (it runs offline)" if download else "dataset not found"
        return (f"{type(self).__name__}: {reason}: looked for {', '.join(os.path.join(python_dir, f) for f in files)} "
                f"(python version) or {', '.join(os.path.join(binary_dir, f) for f in binary)} (binary version)")

    # -- python version --------------------------------------------------------------------------------
    def _load_python(self, folder: str) -> Tuple[np.ndarray, List[int], List[str]]:
        op = type(self).__name__
        chunks, targets = [], []
        for (filename, *_) in (self.train_list if self.train else self.test_list):
            path = os.path.join(folder, filename)
            entry = self._read_pickle(path)
            if "data" not in entry:
                raise ValueError(f"{op}: {path}: no 'data' entry (keys: {sorted(map(str, entry))[:8]})")
            key = "labels" if "labels" in entry else ("fine_labels" if "fine_labels" in entry else None)
            if key is None:
                raise ValueError(f"{op}: {path}: no 'labels' or 'fine_labels' entry")
            pixels = _pixels(entry["data"], path, op)
            chunks.append(pixels)
            targets.extend(_labels(entry[key], path, key, len(pixels), self.num_classes, op))
        meta_path = os.path.join(folder, self.meta["filename"])
        meta = self._read_pickle(meta_path)
        classes = meta.get(self.meta["key"])
        if (not isinstance(classes, list) or len(classes) != self.num_classes
                or not all(isinstance(c, str) for c in classes)):
            raise ValueError(f"{op}: {meta_path}: expected '{self.meta['key']}' as a list of "
                             f"{self.num_classes} strings")
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0], targets, classes

    def _read_pickle(self, path: str) -> dict:
        op = type(self).__name__
        if not os.path.isfile(path):
            raise RuntimeError(f"{op}: dataset file not found: {path}")
        entry = load_data_pickle(path, op)
        if not isinstance(entry, dict):
            raise ValueError(f"{op}: {path}: expected a pickled dict, got {type(entry).__name__}")
        return entry

    # -- binary version ----------------------------------------------------------------------------------
    def _load_binary(self, folder: str) -> Tuple[np.ndarray, List[int], List[str]]:
        op = type(self).__name__
        record = self.binary_label_bytes + _PIXELS
        chunks, targets = [], []
        for filename in (self.binary_train if self.train else self.binary_test):
            path = os.path.join(folder, filename)
            if not os.path.isfile(path):
                raise RuntimeError(f"{op}: dataset file not found: {path}")
            raw = np.fromfile(path, dtype=np.uint8)
            if raw.size == 0 or raw.size % record:
                raise ValueError(f"{op}: {path}: expected whole records of {record} bytes "
                                 f"({self.binary_label_bytes} label byte(s) + {_PIXELS} pixels), file has {raw.size} bytes")
            rows = raw.reshape(-1, record)
            labels = rows[:, self.binary_label_bytes - 1]
            if int(labels.max()) >= self.num_classes:
                raise ValueError(f"{op}: {path}: labels must lie in [0, {self.num_classes}), found {int(labels.max())}")
            chunks.append(rows[:, self.binary_label_bytes:].reshape(-1, 3, 32, 32))
            targets.extend(labels.astype(np.int64).tolist())
        classes = self._read_names(os.path.join(folder, self.binary_meta), op)
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0], targets, classes

    def _read_names(self, path: str, op: str) -> List[str]:
        if not os.path.isfile(path):
            raise RuntimeError(f"{op}: dataset file not found: {path}")
        try:
            with open(path, "r", encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as exc:
            raise ValueError(f"{op}: {path}: not a text file of class names ({exc})") from None
        if len(names) != self.num_classes:
            raise ValueError(f"{op}: {path}: expected {self.num_classes} class names, found {len(names)}")
        return names

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train is True else 'Test'}"


class CIFAR100(CIFAR10):
    """CIFAR-100 with its 100 fine labels as targets (torchvision's)."""

    base_folder = "cifar-100-python"
    train_list = [["train"]]
    test_list = [["test"]]
    meta = {"filename": "meta", "key": "fine_label_names"}
    num_classes = 100
    binary_folder = "cifar-100-binary"
    binary_train = ["train.bin"]
    binary_test = ["test.bin"]
    binary_meta = "fine_label_names.txt"
    binary_label_bytes = 2
