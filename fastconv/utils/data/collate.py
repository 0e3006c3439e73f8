"""``default_collate`` / ``default_convert``: samples to batches, with PyTorch's rules.

The structure of a sample is kept and its leaves are stacked along a new first axis: Tensors and
numpy arrays become one Tensor (dtype kept), Python floats a float64 Tensor, ints int64, bools
bool, numpy scalars a Tensor of their dtype; strings and bytes stay as they come (a list, or a
tuple for a field of tuple samples); mappings, namedtuples
and sequences are collated field by field (a tuple sample gives a list, as in PyTorch).
``numpy_collate`` does the same stacking but leaves numpy arrays (``fastconv.data``'s batches).
"""
from __future__ import annotations

import collections.abc
import re
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ...tensor import Tensor

_STRING_OR_OBJECT = re.compile(r"[SaUO]")  # numpy dtype strings that cannot become Tensors
_ERROR = ("default_collate: batch must contain Tensors, numpy arrays, numbers, dicts or lists; found {}")


def _leaf_array(value, op: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    if _STRING_OR_OBJECT.search(value.dtype.str) is not None:
        raise TypeError(_ERROR.replace("default_collate", op).format(value.dtype))
    return value


def _stack(arrays: Sequence[np.ndarray], op: str) -> np.ndarray:
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise ValueError(f"{op}: stack expects each element to be of equal size, but got {list(shape)} at "
                             f"entry 0 and {list(a.shape)} at entry {i}")
    return np.stack(arrays)


def _collate(batch: Sequence, leaf: Callable[[np.ndarray], Any], op: str):
    """Collate ``batch`` recursively; ``leaf`` turns each stacked array into the batch's leaf type."""
    elem = batch[0]
    elem_type = type(elem)
    if isinstance(elem, (Tensor, np.ndarray)):
        return leaf(_stack([_leaf_array(b, op) for b in batch], op))
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "bytes_", "string_"):
        if np.ndim(elem) == 0 and _STRING_OR_OBJECT.search(np.asarray(elem).dtype.str) is None:  # numpy scalars
            return leaf(np.asarray(batch))
    elif isinstance(elem, bool):
        return leaf(np.asarray(batch, dtype=np.bool_))
    elif isinstance(elem, float):
        return leaf(np.asarray(batch, dtype=np.float64))
    elif isinstance(elem, int):
        return leaf(np.asarray(batch, dtype=np.int64))
    elif isinstance(elem, (str, bytes)):
        return batch  # as given: the list of samples, or the tuple of a field (PyTorch's result)
    elif isinstance(elem, collections.abc.Mapping):
        collated = {key: _collate([d[key] for d in batch], leaf, op) for key in elem}
        try:
            return elem_type(collated)
        except TypeError:  # a mapping type without a dict constructor
            return collated
    elif isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(_collate(samples, leaf, op) for samples in zip(*batch)))
    elif isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise ValueError(f"{op}: each element in list of batch should be of equal size")
        fields = [_collate(samples, leaf, op) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return fields  # PyTorch returns a list for tuple samples
        try:
            return elem_type(fields)
        except TypeError:
            return fields
    raise TypeError(_ERROR.replace("default_collate", op).format(elem_type))


def _as_tensor(array: np.ndarray) -> Tensor:
    return Tensor._wrap(array)


class PrestackedBatch(list):
    """What a dataset's ``__getitems__`` may return when it built some fields of the batch at once:
    the list of samples (tuples), plus ``stacked[k]``, the array equal to stacking field ``k`` of
    every sample (each sample's field is a view of a row of it). ``default_collate`` uses the
    stacked arrays instead of stacking again; any other ``collate_fn`` sees a plain list of samples."""

    def __init__(self, samples=(), stacked: Optional[dict] = None) -> None:
        super().__init__(samples)
        self.stacked = {} if stacked is None else stacked


def _collate_prestacked(batch: PrestackedBatch, leaf: Callable, op: str):
    width = len(batch[0])
    if any(not isinstance(s, tuple) or len(s) != width for s in batch):
        return _collate(list(batch), leaf, op)
    return [leaf(batch.stacked[k]) if k in batch.stacked else _collate([s[k] for s in batch], leaf, op)
            for k in range(width)]


def default_collate(batch: Sequence):
    """Stack a list of samples into a batch of fastconv Tensors, keeping the samples' structure."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)) or len(batch) == 0:
        raise TypeError(f"default_collate: expected a non-empty list of samples, got {type(batch).__name__}")
    if isinstance(batch, PrestackedBatch):
        return _collate_prestacked(batch, _as_tensor, "default_collate")
    return _collate(batch, _as_tensor, "default_collate")


def numpy_collate(batch: Sequence):
    """``default_collate`` with numpy arrays as leaves (Tensors in the samples give their arrays)."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)) or len(batch) == 0:
        raise TypeError(f"numpy_collate: expected a non-empty list of samples, got {type(batch).__name__}")
    return _collate(batch, lambda a: a, "numpy_collate")


def default_convert(data):
    """Without batching (``batch_size=None``): numpy arrays and numpy scalars become Tensors, containers
    are converted element by element; everything else is returned as it is (PyTorch's rule)."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "bytes_", "string_"):
        if isinstance(data, np.ndarray) and _STRING_OR_OBJECT.search(data.dtype.str) is not None:
            return data
        return Tensor._wrap(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            return elem_type(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        converted = [default_convert(d) for d in data]
        try:
            return elem_type(converted)
        except TypeError:
            return converted
    return data


__all__ = ["default_collate", "default_convert", "numpy_collate", "PrestackedBatch"]
