"""Batches from worker processes through shared memory: a ring of buffers per worker.

A worker writes every array of a batch (numpy arrays and Tensors, anywhere in lists, tuples, dicts
and namedtuples) into one of its shared-memory *slots* and sends the main process only a small
message: the batch's structure with each array replaced by (offset, dtype, shape), and the slot's
name. The main process copies the arrays out (one memcpy each: the batch it returns owns its
memory) and hands the slot back with the worker's next task. Everything that is not an array
travels pickled in the message.

Slots live as long as their worker: a worker reuses a free slot, grows one (a new segment, the old
name unlinked) when a batch outgrows it, or adds one when all are in use. The worker unlinks its
segments when it exits; the main process unlinks the names it knows of workers that died.
"""
from __future__ import annotations

from multiprocessing import shared_memory
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...tensor import Tensor

_ALIGN = 64  # bytes: each array starts on a cache line


class _ArrayRef:
    """An array's place in a slot: ``(offset, dtype string, shape, is a Tensor)``."""

    __slots__ = ("offset", "dtype", "shape", "tensor")

    def __init__(self, offset: int, dtype: str, shape: tuple, tensor: bool) -> None:
        self.offset, self.dtype, self.shape, self.tensor = offset, dtype, shape, tensor

    def __reduce__(self):
        return _ArrayRef, (self.offset, self.dtype, self.shape, self.tensor)


def _shareable(array: np.ndarray) -> bool:
    return not array.dtype.hasobject and array.dtype.kind != "V"


def _structure(obj, arrays: List[Tuple[np.ndarray, bool]]):
    """``obj`` with every shareable array replaced by its index in ``arrays`` (``_Leaf``)."""
    if isinstance(obj, Tensor):
        array = obj.numpy()
        if _shareable(array):
            arrays.append((array, True))
            return _Leaf(len(arrays) - 1)
        return obj
    if type(obj) is np.ndarray and _shareable(obj):
        arrays.append((obj, False))
        return _Leaf(len(arrays) - 1)
    if type(obj) is list:
        return [_structure(v, arrays) for v in obj]
    if type(obj) is tuple:
        return tuple(_structure(v, arrays) for v in obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_structure(v, arrays) for v in obj))
    if type(obj) is dict:
        return {k: _structure(v, arrays) for k, v in obj.items()}
    return obj


class _Leaf:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return _Leaf, (self.index,)


def _rebuild(obj, refs: List[_ArrayRef], buffer) -> Any:
    if isinstance(obj, _Leaf):
        ref = refs[obj.index]
        dtype = np.dtype(ref.dtype)
        count = int(np.prod(ref.shape, dtype=np.int64))
        view = np.frombuffer(buffer, dtype=dtype, count=count, offset=ref.offset).reshape(ref.shape)
        array = view.copy()
        return Tensor._wrap(array) if ref.tensor else array
    if type(obj) is list:
        return [_rebuild(v, refs, buffer) for v in obj]
    if type(obj) is tuple:
        return tuple(_rebuild(v, refs, buffer) for v in obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_rebuild(v, refs, buffer) for v in obj))
    if type(obj) is dict:
        return {k: _rebuild(v, refs, buffer) for k, v in obj.items()}
    return obj


class SharedBatch:
    """The message for one batch: its structure, the array places and the slot that holds them."""

    __slots__ = ("structure", "refs", "slot", "name")

    def __init__(self, structure, refs: List[_ArrayRef], slot: int, name: Optional[str]) -> None:
        self.structure, self.refs, self.slot, self.name = structure, refs, slot, name

    def __reduce__(self):
        return SharedBatch, (self.structure, self.refs, self.slot, self.name)


class SlotWriter:
    """A worker's ring of shared-memory slots."""

    def __init__(self) -> None:
        self.segments: List[Optional[shared_memory.SharedMemory]] = []
        self.busy: List[bool] = []

    def release(self, slots) -> None:
        """The main process has copied these slots out: they may be written again."""
        for slot in slots:
            if 0 <= slot < len(self.busy):
                self.busy[slot] = False

    def _slot_for(self, nbytes: int) -> int:
        free = [k for k, b in enumerate(self.busy) if not b]
        fitting = [k for k in free if self.segments[k].size >= nbytes]
        if fitting:
            return fitting[0]
        if free:  # grow a free slot
            k = free[0]
            size = max(nbytes, 2 * self.segments[k].size)
            self._unlink(k)
        else:
            k, size = len(self.segments), nbytes
            self.segments.append(None)
            self.busy.append(False)
        self.segments[k] = shared_memory.SharedMemory(create=True, size=max(size, 1))
        return k

    def _unlink(self, k: int) -> None:
        segment = self.segments[k]
        self.segments[k] = None
        if segment is not None:
            segment.close()
            try:
                segment.unlink()
            except FileNotFoundError:
                pass

    def encode(self, batch) -> SharedBatch:
        """Write ``batch``'s arrays into a free slot; the returned message describes them."""
        arrays: List[Tuple[np.ndarray, bool]] = []
        structure = _structure(batch, arrays)
        if not arrays:
            return SharedBatch(structure, [], -1, None)
        offsets, total = [], 0
        for array, _ in arrays:
            total = -(-total // _ALIGN) * _ALIGN
            offsets.append(total)
            total += array.nbytes
        k = self._slot_for(total)
        segment = self.segments[k]
        refs = []
        for (array, is_tensor), offset in zip(arrays, offsets):
            target = np.frombuffer(segment.buf, dtype=array.dtype, count=array.size, offset=offset)
            np.copyto(target.reshape(array.shape), array, casting="no")
            refs.append(_ArrayRef(offset, array.dtype.str, tuple(array.shape), is_tensor))
            del target
        self.busy[k] = True
        return SharedBatch(structure, refs, k, segment.name)

    def close(self) -> None:
        """Unlink every segment (the worker is exiting)."""
        for k in range(len(self.segments)):
            self._unlink(k)


class SlotReader:
    """The main process's view of one worker's slots: attaches segments by name, copies batches out."""

    def __init__(self) -> None:
        self.attached: Dict[int, shared_memory.SharedMemory] = {}
        self.names: set = set()

    def decode(self, message: SharedBatch):
        if message.name is None:
            return _rebuild(message.structure, message.refs, b"")
        segment = self.attached.get(message.slot)
        if segment is None or segment.name != message.name:
            if segment is not None:  # the worker grew this slot and unlinked the old segment
                segment.close()
                self.names.discard(segment.name)
            segment = shared_memory.SharedMemory(name=message.name)
            self.attached[message.slot] = segment
            self.names.add(message.name)
        return _rebuild(message.structure, message.refs, segment.buf)

    def close(self, unlink: bool) -> None:
        """Detach everything; with ``unlink`` also remove the names (their worker died)."""
        for segment in self.attached.values():
            segment.close()
        self.attached.clear()
        if unlink:
            for name in self.names:
                try:
                    stale = shared_memory.SharedMemory(name=name)
                except FileNotFoundError:
                    continue
                stale.close()
                try:
                    stale.unlink()
                except FileNotFoundError:
                    pass
        self.names.clear()
