"""Read ``torch.save`` files without PyTorch, and without running any code they contain.

A PyTorch checkpoint is a pickle whose tensors point at raw storages: in the zip format (PyTorch
≥ 1.6) ``<archive>/data.pkl`` plus one record ``<archive>/data/<key>`` per storage and
``<archive>/byteorder``; in the legacy format three small pickles (magic number, protocol, system
info), the main pickle, the list of storage keys, then each storage's element count and bytes.

The main pickle is decoded by ``_AllowListUnpickler``: ``find_class`` resolves only the globals a
tensor checkpoint needs (the tensor/parameter rebuild functions, the storage and dtype names,
``collections.OrderedDict``, ``torch.device``, ``torch.Size``, ``set``, ...) and maps each to a
fastconv stand-in that builds numpy arrays; any other global is refused before it is looked up,
so nothing outside this module is ever imported or called — the guarantee of
``torch.load(weights_only=True)``. Storages become one numpy array each; tensors are views of
them (offset, size, stride), so tensors that share a storage share memory, as in PyTorch.
bfloat16 is widened to float32 (numpy has no bfloat16); every other dtype is kept.
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import threading
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .nn.module import Parameter
from .tensor import Tensor

__all__ = ["load_torch_checkpoint", "is_torch_checkpoint", "TorchCheckpointError"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_MAX_DIMS = 64


class TorchCheckpointError(ValueError):
    """A PyTorch checkpoint that cannot be read safely or is corrupt (the message names the file)."""


# ---- storage and dtype names ----------------------------------------------------------------------

# storage class name -> numpy dtype of its elements ("bfloat16" is decoded from uint16 bit patterns)
_STORAGE_DTYPES: Dict[str, str] = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "CharStorage": "int8", "ByteStorage": "uint8",
    "ShortStorage": "int16", "IntStorage": "int32", "LongStorage": "int64", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}

# torch dtype name (``torch.float32``) -> numpy dtype name, for _rebuild_tensor_v3 and dtype values
_TORCH_DTYPES: Dict[str, str] = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int8": "int8", "uint8": "uint8",
    "int16": "int16", "short": "int16", "int32": "int32", "int": "int32", "int64": "int64", "long": "int64",
    "bool": "bool", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "complex64": "complex64", "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
}


def _itemsize(dtype_name: str) -> int:
    return 2 if dtype_name == "bfloat16" else np.dtype(dtype_name).itemsize


class _Frozen:
    """Base of the stand-ins the unpickler hands out: no attribute can be set or pickled state
    applied to them (a BUILD opcode aimed at one is refused)."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise pickle.UnpicklingError(f"cannot set attribute {name!r} on {self!r}")

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"cannot apply pickled state to {self!r}")


class _StorageType(_Frozen):
    """Stands for ``torch.FloatStorage`` & co. inside a persistent id: only its dtype is used."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __repr__(self):
        return f"torch.{self.name}"


class _DType(_Frozen):
    """Stands for a ``torch.<dtype>`` value; loads as the numpy dtype (bfloat16 as float32)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage(_Frozen):
    """One storage: a flat numpy array of its elements (bfloat16 already widened to float32)."""

    __slots__ = ("array", "dtype")

    def __init__(self, array: np.ndarray, dtype: str):
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "dtype", dtype)

    def __repr__(self):
        return f"<storage {self.dtype}[{self.array.size}]>"


class _Call(_Frozen):
    """A callable stand-in for an allowed global (``torch._utils._rebuild_tensor_v2`` ...)."""

    __slots__ = ("qualname", "fn")

    def __init__(self, qualname: str, fn):
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return self.qualname


_flags = threading.local()  # per load: id(array) -> (requires_grad, is a Parameter)


def _record(array, requires_grad, parameter: bool) -> None:
    table = getattr(_flags, "table", None)
    if table is not None and isinstance(array, np.ndarray):
        table[id(array)] = (bool(requires_grad), parameter)


_TENSOR_TYPE = _DType("Tensor")  # torch.Tensor / Parameter as the type argument of _rebuild_from_type_v2
_PARAMETER_TYPE = _DType("nn.Parameter")


# ---- tensors ----------------------------------------------------------------------------------------

def _int_tuple(value, what: str) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise pickle.UnpicklingError(f"expected the tensor {what} as a tuple of ints, got {value!r}")
    return tuple(value)


def _tensor_view(storage, offset, size, stride) -> np.ndarray:
    """The view (offset, size, stride) of a storage, checked to lie inside it."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"expected a storage as the tensor's first argument, got {storage!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise pickle.UnpicklingError(f"expected a storage offset >= 0, got {offset!r}")
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"invalid tensor geometry: size {size}, stride {stride}")
    base = storage.array
    if 0 in size:
        return np.zeros(size, dtype=base.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= base.size:
        raise pickle.UnpicklingError(
            f"tensor of size {size}, stride {stride} at offset {offset} reaches element {last} of a "
            f"storage of {base.size} elements")
    item = base.itemsize
    overlapping = any(n > 1 and s == 0 for n, s in zip(size, stride))
    return np.lib.stride_tricks.as_strided(base[offset:], shape=size, strides=tuple(s * item for s in stride),
                                           writeable=not overlapping)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _tensor_view(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    view = _tensor_view(storage, offset, size, stride)
    _record(view, requires_grad, False)
    return view


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if isinstance(storage, _Storage) and isinstance(dtype, _DType) and storage.dtype == "uint8" \
            and _TORCH_DTYPES.get(dtype.name, "uint8") != "uint8":
        raise pickle.UnpicklingError(f"tensors of dtype {dtype!r} over untyped storages are not supported")
    return _tensor_view(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError(f"expected a tensor inside a Parameter, got {type(data).__name__}")
    _record(data, requires_grad, True)
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor with Python attributes or a Parameter subclass: rebuild the plain tensor."""
    if not isinstance(func, _Call) or func.fn not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_tensor,
                                                       _rebuild_parameter):
        raise pickle.UnpicklingError(f"_rebuild_from_type_v2 with {func!r} is not allowed")
    if new_type is not _TENSOR_TYPE and new_type is not _PARAMETER_TYPE:
        raise pickle.UnpicklingError(f"_rebuild_from_type_v2 to {new_type!r} is not allowed")
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2: expected a tuple of arguments")
    return func(*args)


def _device(*args):
    """``torch.device('cpu')`` loads as the string 'cpu' (or 'cuda:0')."""
    if not args or not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args):
        raise pickle.UnpicklingError(f"torch.device: expected a name and an optional index, got {args!r}")
    return ":".join(str(a) for a in args)


def _size(*args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return _int_tuple(args[0], "Size")
    return _int_tuple(args, "Size")


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles store bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode: only latin1 text is allowed, got {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    table: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("_codecs", "encode"): _Call("_codecs.encode", _encode),
        ("torch", "device"): _Call("torch.device", _device),
        ("torch", "Size"): _Call("torch.Size", _size),
        ("torch", "Tensor"): _TENSOR_TYPE,
        ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
        ("torch._tensor", "_rebuild_from_type_v2"): _Call("torch._tensor._rebuild_from_type_v2",
                                                          _rebuild_from_type_v2),
    }
    for name, fn in (("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor_v2),
                     ("_rebuild_tensor_v3", _rebuild_tensor_v3), ("_rebuild_parameter", _rebuild_parameter),
                     ("_rebuild_parameter_with_state", _rebuild_parameter)):
        table[("torch._utils", name)] = _Call(f"torch._utils.{name}", fn)
    for name, dtype in _STORAGE_DTYPES.items():
        table[("torch", name)] = _StorageType(name, dtype)
    for name in _TORCH_DTYPES:
        table[("torch", name)] = _DType(name)
    return table


_ALLOWED = _allowed_globals()
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _AllowListUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals (to fastconv stand-ins); storages come from ``storages``."""

    def __init__(self, file, storage_loader, path: str):
        super().__init__(file, encoding="utf-8")
        self._storage_loader = storage_loader
        self._path = path

    def find_class(self, module: str, name: str):
        key = (_PY2_MODULES.get(module, module), name)
        if key not in _ALLOWED:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return _ALLOWED[key]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise pickle.UnpicklingError("the file pickles a whole nn.Module (legacy format); load it in PyTorch "
                                         "and save model.state_dict() instead")
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id of kind {kind!r}")
        return self._storage_loader(pid[1:])


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A global outside the allow-list (its dotted name is the message)."""


# ---- storages -------------------------------------------------------------------------------------

def _decode_storage(raw: np.ndarray, dtype: str, big_endian: bool) -> np.ndarray:
    """Raw bytes (uint8) -> the storage's elements in native order; bfloat16 widened to float32."""
    if dtype == "bfloat16":
        bits = raw.view(">u2" if big_endian else "<u2").astype(np.uint32)
        return (bits << 16).view(np.float32)
    arr = raw.view(np.dtype(dtype).newbyteorder(">" if big_endian else "<")) if dtype != "bool" else raw.view(np.bool_)
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False) if big_endian else arr


def _storage_args(args, legacy: bool):
    """(storage type, key, numel, view metadata) of a persistent id, type-checked."""
    if legacy:
        if len(args) != 5:
            raise pickle.UnpicklingError(f"unexpected storage id {args!r}")
        storage_type, key, _location, numel, view = args
    else:
        if len(args) != 4:
            raise pickle.UnpicklingError(f"unexpected storage id {args!r}")
        storage_type, key, _location, numel = args
        view = None
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
    key = key.decode("ascii") if isinstance(key, bytes) else key
    if not isinstance(key, str) or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        raise pickle.UnpicklingError(f"unexpected storage id {args!r}")
    return storage_type, key, numel, view


class _ZipStorages:
    """Loads each ``data/<key>`` record of a zip checkpoint once (shared by every tensor using it)."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, big_endian: bool, path: str):
        self.archive, self.prefix, self.big_endian, self.path = archive, prefix, big_endian, path
        self.cache: Dict[str, _Storage] = {}

    def __call__(self, args) -> _Storage:
        storage_type, key, numel, _ = _storage_args(args, legacy=False)
        if key in self.cache:
            return self.cache[key]
        name = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"the pickle refers to storage '{key}' but the archive has no record {name}")
        nbytes = numel * _itemsize(storage_type.dtype)
        if info.file_size != nbytes:
            raise pickle.UnpicklingError(f"record {name} holds {info.file_size} bytes, expected {nbytes} "
                                         f"({numel} elements of {storage_type!r})")
        raw = np.empty(nbytes, dtype=np.uint8)
        with self.archive.open(info) as f:
            view = memoryview(raw)
            done = 0
            while done < nbytes:
                n = f.readinto(view[done:])
                if not n:
                    raise pickle.UnpicklingError(f"record {name} is truncated")
                done += n
        storage = _Storage(_decode_storage(raw, storage_type.dtype, self.big_endian), storage_type.dtype)
        self.cache[key] = storage
        return storage


class _LegacyStorages:
    """Storages of the legacy format: allocated when the pickle names them, filled afterwards."""

    def __init__(self):
        self.roots: Dict[str, Tuple[_StorageType, int]] = {}
        self.storages: Dict[str, _Storage] = {}
        self.pending = []  # (storage, view key or root key, offset) to resolve once data is read

    def __call__(self, args) -> _Storage:
        storage_type, key, numel, view = _storage_args(args, legacy=True)
        if key in self.roots:
            if self.roots[key] != (storage_type, numel):
                raise pickle.UnpicklingError(f"storage '{key}' is declared twice with different types or sizes")
        else:
            self.roots[key] = (storage_type, numel)
            self.storages[key] = _Storage(np.empty(numel, dtype=np.float32 if storage_type.dtype == "bfloat16"
                                                   else storage_type.dtype), storage_type.dtype)
        root = self.storages[key]
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, (int, str, bytes)) for v in view)):
            raise pickle.UnpicklingError(f"unexpected storage view {view!r}")
        view_key, offset, view_numel = view
        view_key = view_key.decode("ascii") if isinstance(view_key, bytes) else view_key
        if not (isinstance(offset, int) and isinstance(view_numel, int) and 0 <= offset
                and offset + view_numel <= numel):
            raise pickle.UnpicklingError(f"storage view {view!r} lies outside storage '{key}' of {numel} elements")
        if view_key not in self.storages:
            self.storages[view_key] = _Storage(root.array[offset:offset + view_numel], root.dtype)
        return self.storages[view_key]


# ---- the two formats ---------------------------------------------------------------------------

def _load_zip(f, source: str) -> Any:
    with zipfile.ZipFile(f) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise TorchCheckpointError(f"load: {source} is a zip archive but not a PyTorch checkpoint "
                                       "(no single <archive>/data.pkl record)")
        prefix = pkl[0][:-len("data.pkl")]
        order = b"little"
        if f"{prefix}byteorder" in names:
            order = archive.read(f"{prefix}byteorder").strip()
            if order not in (b"little", b"big"):
                raise TorchCheckpointError(f"load: {source} declares an unknown byte order {order!r}")
        storages = _ZipStorages(archive, prefix, order == b"big", source)
        data = archive.read(pkl[0])
        return _AllowListUnpickler(io.BytesIO(data), storages, source).load()


def _load_legacy(f, source: str) -> Any:
    magic = _small_pickle(f)
    if magic != _LEGACY_MAGIC:
        raise TorchCheckpointError(f"load: {source} is not a PyTorch checkpoint (bad magic number)")
    protocol = _small_pickle(f)
    if protocol != 1001:
        raise TorchCheckpointError(f"load: {source} uses PyTorch's legacy protocol {protocol!r}; only 1001 is read")
    sys_info = _small_pickle(f)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages = _LegacyStorages()
    result = _AllowListUnpickler(f, storages, source).load()
    keys = _small_pickle(f)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchCheckpointError(f"load: {source} has a malformed storage key list")
    for key in keys:
        if key not in storages.roots:
            raise TorchCheckpointError(f"load: {source} stores data for storage '{key}' that no tensor uses")
        storage_type, numel = storages.roots[key]
        header = f.read(8)
        if len(header) != 8:
            raise TorchCheckpointError(f"load: {source} is truncated (storage '{key}')")
        (count,) = struct.unpack("<q" if little else ">q", header)
        if count != numel:
            raise TorchCheckpointError(f"load: {source}: storage '{key}' holds {count} elements, expected {numel}")
        nbytes = numel * _itemsize(storage_type.dtype)
        raw = np.frombuffer(f.read(nbytes), dtype=np.uint8)
        if raw.size != nbytes:
            raise TorchCheckpointError(f"load: {source} is truncated (storage '{key}')")
        storages.storages[key].array[...] = _decode_storage(raw, storage_type.dtype, not little)
    return result


def _small_pickle(f) -> Any:
    """One of the legacy format's header pickles: plain values only, no globals at all."""
    class _NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise _ForbiddenGlobal(f"{module}.{name}")
    return _NoGlobals(f).load()


def _as_tensors(obj: Any, flags: Dict[int, Tuple[bool, bool]], memo: Dict[int, Any]) -> Any:
    """Arrays that were tensors become Tensors (Parameters for torch Parameters, requires_grad
    kept), one object per array; containers keep their types."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, np.ndarray):
        requires_grad, parameter = flags.get(key, (False, False))
        float_data = obj.dtype.kind == "f"
        if parameter and float_data:
            out = Parameter(obj, requires_grad=requires_grad)
        else:
            out = Tensor(obj, requires_grad=requires_grad and float_data)
    elif isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        memo[key] = out
        for k, v in obj.items():
            out[k] = _as_tensors(v, flags, memo)
        return out
    elif isinstance(obj, list):
        out = []
        memo[key] = out
        out.extend(_as_tensors(v, flags, memo) for v in obj)
        return out
    elif isinstance(obj, tuple):
        out = tuple(_as_tensors(v, flags, memo) for v in obj)
    else:
        return obj
    memo[key] = out
    return out


# ---- public entry points -----------------------------------------------------------------------

def is_torch_checkpoint(path) -> bool:
    """Whether ``path`` looks like a ``torch.save`` file (zip with data.pkl, or the legacy magic)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith("/data.pkl") and n.count("/") == 1 for n in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return head[:2] == b"\x80\x02" and head[2:3] == b"\x8a"  # protocol 2, LONG1: the magic number


def _hint(global_name: str) -> str:
    if global_name.startswith(("_codecs.", "collections.", "builtins.")) or global_name.count(".") < 2:
        return ""
    return ("; if it holds a whole pickled model or other objects, load it in PyTorch and save "
            "model.state_dict() (tensors only)")


def load_torch_checkpoint(f, tensors: bool = False, source: Optional[str] = None) -> Any:
    """Read a ``torch.save`` file (a path or a seekable binary file object) as nested
    dicts/lists/tuples of tensors and plain values.

    Tensors are numpy arrays — views of their storage, so tensors sharing a storage share
    memory — or, with ``tensors=True``, fastconv Tensors over those arrays (torch Parameters as
    Parameters, ``requires_grad`` kept). bfloat16 loads as float32. Both the zip format and the
    legacy (PyTorch < 1.6) format are read. Safe for untrusted files: only the globals
    ``torch.load(weights_only=True)`` allows for plain tensors are honoured, each by a fastconv
    stand-in; anything else raises TorchCheckpointError naming the file and the global before it
    is imported, and nothing in the file runs.
    """
    opened = None
    if not hasattr(f, "read"):
        path = os.fspath(f)
        if not os.path.exists(path):
            raise FileNotFoundError(f"load: no such file: {path}")
        opened = f = open(path, "rb")
        source = source or path
    source = source or getattr(f, "name", None) or f"<{type(f).__name__}>"
    _flags.table = {}
    try:
        start = f.tell()
        head = f.read(4)
        f.seek(start)
        result = (_load_zip if head.startswith(b"PK") else _load_legacy)(f, source)
        return _as_tensors(result, _flags.table, {}) if tensors else result
    except TorchCheckpointError:
        raise
    except _ForbiddenGlobal as exc:
        raise TorchCheckpointError(
            f"load: {source} is a PyTorch checkpoint that refers to the global '{exc}', which is not allowed: "
            "only tensors, storages and plain containers are read (as torch.load(weights_only=True)); "
            f"nothing in the file was run{_hint(str(exc))}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError, TypeError,
            AttributeError, IndexError, KeyError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise TorchCheckpointError(f"load: {source} is not a readable PyTorch checkpoint (truncated, corrupt or "
                                   f"unsupported): {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    finally:
        _flags.table = None
        if opened is not None:
            opened.close()
