"""``fastconv.device``: PyTorch's device object for a CPU-only framework.

Every tensor lives on the CPU. Device objects for other types (``device('cuda')``) can be made, as in
PyTorch, so that ``device = fc.device("cuda" if fc.cuda.is_available() else "cpu")`` runs; asking for
memory or computation on one (``.to('cuda')``, ``device='cuda'``, ``.cuda()``) raises a RuntimeError
saying fastconv is CPU-only. ``to_args`` parses the arguments of ``Tensor.to`` / ``Module.to``.
"""
from __future__ import annotations

import numpy as np

from ._dtypes import resolve_dtype

# PyTorch's device types (torch.device accepts these names; fastconv can compute on 'cpu' only).
_DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga",
                 "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")


class device:
    """A device: ``type`` ('cpu', 'cuda', ...) and an optional ``index``, as ``torch.device``.

    ``device('cpu')``, ``device('cpu:0')``, ``device('cpu', 0)`` and ``device(other_device)`` are
    accepted; equality compares type and index (``device('cpu') != device('cpu:0')``, as in PyTorch).
    """

    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device: an index cannot be given with a device object")
            self._type, self._index = type.type, type.index
            return
        if isinstance(type, (int, np.integer)) and not isinstance(type, bool):
            raise RuntimeError(f"device: a bare index ({type}) means an accelerator device, and fastconv is "
                               "CPU-only (no accelerator is available); use 'cpu'")
        if not isinstance(type, str):
            raise TypeError(f"device: expected a device string or device, got {type.__class__.__name__}")
        name, sep, idx = type.partition(":")
        if name not in _DEVICE_TYPES:
            raise RuntimeError(f"device: expected one of {', '.join(_DEVICE_TYPES)} device type at start of "
                               f"device string, got {type!r}")
        if sep:
            if index is not None:
                raise RuntimeError(f"device: type {type!r} already has an index; do not pass index={index}")
            if not idx.isdigit():
                raise RuntimeError(f"device: invalid device string {type!r}")
            index = int(idx)
        if index is not None:
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise TypeError(f"device: expected index as an int, got {index!r}")
            if index < 0:
                raise RuntimeError(f"device: device index must not be negative, got {index}")
            index = int(index)
        self._type, self._index = name, index

    @property
    def type(self) -> str:
        return self._type

    @property
    def index(self):
        return self._index

    def __eq__(self, other) -> bool:
        if not isinstance(other, device):
            return NotImplemented
        return self._type == other._type and self._index == other._index

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __reduce__(self):
        return (device, (self._type, self._index))


CPU = device("cpu")


def cpu_only_error(requested, op: str) -> RuntimeError:
    """The error for a request of a non-CPU device (PyTorch: 'Torch not compiled with CUDA enabled')."""
    kind = requested.type
    what = {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU", "hip": "HIP"}.get(kind, kind)
    return RuntimeError(f"{op}: fastconv is CPU-only, {what} device '{requested}' is not available "
                        f"(fastconv.cuda.is_available() is False); use 'cpu'")


def cuda_device(value) -> device:
    """The device ``.cuda(value)`` names (an index, a device or None for 'cuda')."""
    if value is None:
        return device("cuda")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return device("cuda", value)
    return value if isinstance(value, device) else device(value)


def as_cpu(value, op: str):
    """Check a ``device=`` argument: None, 'cpu', 'cpu:0' or a cpu device pass; anything else raises."""
    if value is None:
        return CPU
    dev = value if isinstance(value, device) else device(value)
    if dev.type != "cpu":
        raise cpu_only_error(dev, op)
    if dev.index not in (None, 0):
        raise RuntimeError(f"{op}: fastconv has one CPU device, got '{dev}'")
    return dev


def _is_device_like(value) -> bool:
    if isinstance(value, device):
        return True
    if isinstance(value, str):
        return value.partition(":")[0] in _DEVICE_TYPES
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def to_args(args, kwargs, op: str, tensor_type):
    """``(dtype or None, copy)`` from the arguments of ``to``: ``to(device)``, ``to(dtype)``,
    ``to(device, dtype)``, ``to(other_tensor)`` (its dtype), with keywords ``device``, ``dtype``,
    ``non_blocking`` (accepted; CPU copies are synchronous) and ``copy``. A non-CPU device raises."""
    kwargs = dict(kwargs)
    dev = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    copy = bool(kwargs.pop("copy", False))
    if kwargs:
        raise TypeError(f"{op}: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
    args = list(args)
    if args and isinstance(args[0], tensor_type):
        if dev is not None or dtype is not None or len(args) > 3:
            raise TypeError(f"{op}: to(other) takes no device or dtype besides the tensor")
        dtype = args.pop(0).dtype
    elif args and _is_device_like(args[0]):
        if dev is not None:
            raise TypeError(f"{op}: device given twice")
        dev = args.pop(0)
    if args and not isinstance(args[0], bool):
        if dtype is not None:
            raise TypeError(f"{op}: dtype given twice")
        dtype = args.pop(0)
    if args:  # PyTorch's positional non_blocking, copy
        if len(args) > 2 or not all(isinstance(a, bool) for a in args):
            raise TypeError(f"{op}: unexpected positional arguments {args!r}")
        if len(args) == 2:
            copy = args[1]
    as_cpu(dev, op)
    return resolve_dtype(dtype, op), copy
