"""``save`` / ``load``: checkpoints as ``.npz`` archives that never need pickle; ``load`` also reads
PyTorch checkpoints and safetensors files.

What can be saved is what ``torch.save`` users put in checkpoints: Tensors and Parameters
(``requires_grad`` kept; loaded back as Tensors/Parameters), numpy arrays (loaded back as arrays),
numpy scalars, bool/int/float/complex/str/bytes/None, ``np.dtype``, and dicts (OrderedDict kept;
keys str, int, bool, float, None or tuples of those), lists, tuples, sets and frozensets of
these, nested. That covers ``model.state_dict()``, optimizer and scheduler state dicts, RNG states
and the usual ``{"epoch": ..., "model_state_dict": ..., "loss": ...}`` checkpoint. Each array is
one archive member named after its path (``0.weight``, ``optimizer/state/0/momentum_buffer``),
so the file is also readable with ``np.load``; the nesting and the scalars are a JSON manifest
in the member ``__fastconv_meta__`` (docs/design.md, "Files and errors"). A plain ``.npz``
written by ``np.savez(path, **arrays)`` (e.g. PyTorch weights exported as numpy arrays) loads as a
dict of arrays. The same object saved twice (tied weights) is stored once and loads as one object.

Writing goes through ``fastconv._atomic.atomic_write``. Loading never runs code from a file and
never trusts a header: ``load`` first detects what the file is (``fastconv._formats``), then
hands it to the reader registered for that kind in ``_READERS``: fastconv's own files, plain
``.npz``, PyTorch checkpoints (``torch.save``, zip and legacy, through the allow-list unpickler
of ``fastconv._torch_checkpoint``, as ``torch.load(weights_only=True)`` reads them) and
safetensors files; other kinds get a ValueError naming the file and what it looks like.
"""
from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from collections import OrderedDict
from typing import IO, Any, Callable, Dict, List, Optional, Union

import numpy as np
from numpy.lib import format as npy_format

from ._atomic import atomic_write
from ._formats import FASTCONV_META, FileFormat, detect_format
from ._npz import NpzError, read_npz
from ._torch_checkpoint import TorchCheckpointError, load_torch_checkpoint
from . import safetensors
from .nn.module import Parameter
from .tensor import Tensor

META_KEY = FASTCONV_META[:-4]
FORMAT_VERSION = 2          # written when the content needs it (Tensors, bytes, sets, ...); else 1
READABLE_VERSIONS = (1, 2)  # 1: arrays, scalars, dicts with str/int keys, lists, tuples
MAX_DEPTH = 200             # nesting levels save writes and load accepts

PathLike = Union[str, "os.PathLike[str]"]
FileLike = Union[PathLike, IO[bytes]]

_V2_KINDS = ("tensor", "complex", "bytes", "set", "frozenset", "dtype")


class LoadError(ValueError):
    """A file ``load`` cannot read: its message is one line naming the file and the problem."""


# ---- encoding -------------------------------------------------------------------------------------

def _where(path: List[str]) -> str:
    return "/".join(path) or "the top level"


def _tensor_array(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().numpy())


class _Encoder:
    """Turns a nested object into (JSON manifest, {member name: array}); arrays seen twice are stored once."""

    def __init__(self) -> None:
        self.arrays: Dict[str, np.ndarray] = {}
        self._entry_of: Dict[int, str] = {}        # id(array) -> member name
        self._tensor_ref: Dict[int, int] = {}      # id(Tensor) -> reference number
        self._keep: List[Any] = []                 # keeps encoded objects alive so ids stay unique
        self.version = 1

    def _entry_name(self, path: List[str]) -> str:
        base = "/".join(path) or "array"
        name, n = base, 1
        while name in self.arrays or name == META_KEY:
            name = f"{base}#{n}"
            n += 1
        return name

    def _store(self, arr: np.ndarray, path: List[str]) -> str:
        if arr.dtype.hasobject:
            raise TypeError(f"save: cannot store the object array at '{'/'.join(path)}' without pickle; "
                            "convert it to a numeric array")
        if id(arr) in self._entry_of:
            return self._entry_of[id(arr)]
        name = self._entry_name(path)
        self.arrays[name] = arr
        self._entry_of[id(arr)] = name
        self._keep.append(arr)
        return name

    def _key(self, key: Any, path: List[str]) -> Any:
        if isinstance(key, str):
            return key
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            return {"int": int(key)}
        if isinstance(key, (np.floating, np.bool_)):
            key = key.item()  # equal and hashing equal: loads as the Python float/bool
        if key is None or isinstance(key, (bool, float, complex, tuple)) and not isinstance(key, np.generic):
            self.version = FORMAT_VERSION
            return {"key": self.encode(key, path + [repr(key)], len(path) + 1, in_key=True)}
        raise TypeError(f"save: dict keys must be str, int, bool, float, None or tuples of those, "
                        f"got {type(key).__name__} {key!r} at {_where(path)}")

    def encode(self, obj: Any, path: List[str], depth: int = 0, in_key: bool = False) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"save: the object is nested more than {MAX_DEPTH} levels deep at "
                             f"{_where(path[:8])}/... (or contains itself)")
        if in_key and isinstance(obj, (Tensor, np.ndarray, np.generic, bytes, bytearray, dict, list, set,
                                       frozenset)):
            raise TypeError(f"save: dict key {obj!r} at {_where(path[:-1])} is not a plain value")
        if isinstance(obj, Tensor):
            return self._encode_tensor(obj, path)
        if isinstance(obj, np.ndarray):
            return {"t": "array", "entry": self._store(obj, path)}
        if isinstance(obj, np.generic):
            return {"t": "npscalar", "entry": self._store(np.asarray(obj), path)}
        if obj is None or isinstance(obj, (bool, str)):
            return {"t": "plain", "v": obj}
        if isinstance(obj, int):
            return {"t": "plain", "v": int(obj)}
        if isinstance(obj, float):
            return {"t": "float", "v": repr(float(obj))}  # repr round-trips exactly, including nan and inf
        if isinstance(obj, complex):
            self.version = FORMAT_VERSION
            return {"t": "complex", "re": repr(obj.real), "im": repr(obj.imag)}
        if isinstance(obj, (bytes, bytearray)):
            self.version = FORMAT_VERSION
            return {"t": "bytes", "entry": self._store(np.frombuffer(bytes(obj), dtype=np.uint8), path)}
        if isinstance(obj, np.dtype) or (isinstance(obj, type) and issubclass(obj, np.generic)):
            if np.dtype(obj).fields is not None or np.dtype(obj).hasobject:
                raise TypeError(f"save: cannot store the structured or object dtype at {_where(path)}")
            self.version = FORMAT_VERSION
            return {"t": "dtype", "v": np.dtype(obj).str, "type": not isinstance(obj, np.dtype)}
        if isinstance(obj, dict):
            items = [[self._key(key, path), self.encode(value, path + [str(key)], depth + 1)]
                     for key, value in obj.items()]
            return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
        if isinstance(obj, (list, tuple, set, frozenset)):
            if isinstance(obj, (set, frozenset)):
                self.version = FORMAT_VERSION
            values = obj if isinstance(obj, (list, tuple)) else sorted(obj, key=repr)
            items = [self.encode(v, path + [str(i)], depth + 1, in_key) for i, v in enumerate(values)]
            kind = next(k for k in (list, tuple, frozenset, set) if isinstance(obj, k)).__name__
            return {"t": kind, "items": items}
        hint = "; save module.state_dict() instead" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"save: cannot store {type(obj).__name__} at {_where(path)} without pickle{hint}")

    def _encode_tensor(self, t: Tensor, path: List[str]) -> dict:
        self.version = FORMAT_VERSION
        if id(t) not in self._tensor_ref:
            self._tensor_ref[id(t)] = len(self._tensor_ref)
            self._keep.append(t)
        return {"t": "tensor", "entry": self._store(_tensor_array(t), path),
                "requires_grad": bool(t.requires_grad), "parameter": isinstance(t, Parameter),
                "ref": self._tensor_ref[id(t)]}


def _write_archive(f: IO[bytes], entries: Dict[str, np.ndarray], compress: bool) -> None:
    """The .npz layout np.savez writes (one ``name.npy`` member per array), without its keyword clashes."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, mode="w", compression=method, allowZip64=True) as zf:
        for name, arr in entries.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                npy_format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def save(obj: Any, f: FileLike, compress: bool = False) -> None:
    """Write ``obj`` (state dicts, checkpoints: see the module docstring) to a path or binary file.

    A path is written atomically, exactly at ``f`` (no suffix is added); a file object (e.g.
    ``io.BytesIO``) is written at its position. ``compress`` deflates the members. A path ending
    in ``.safetensors`` gets a safetensors file instead (``obj`` must then map names to
    Tensors/arrays, as a state_dict does; see ``fastconv.safetensors``).
    """
    if not hasattr(f, "write") and os.fspath(f).endswith(".safetensors"):
        safetensors.save_file(obj, f)
        return
    encoder = _Encoder()
    root = encoder.encode(obj, [])
    meta = {"format": "fastconv", "version": encoder.version, "root": root}
    entries = dict(encoder.arrays)
    entries[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    if hasattr(f, "write"):
        _write_archive(f, entries, compress)
        return
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder} does not exist (saving to {path})")
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path} is a folder; pass a file path such as {os.path.join(path, 'model.npz')}")
    with atomic_write(path) as out:
        _write_archive(out, entries, compress)


# ---- decoding -------------------------------------------------------------------------------------

class _Decoder:
    """Rebuilds the object a manifest describes; every malformed part is a LoadError naming the file."""

    def __init__(self, arrays: Dict[str, np.ndarray], source: str) -> None:
        self.arrays = arrays
        self.source = source
        self.tensors: Dict[int, Tensor] = {}

    def fail(self, problem: str) -> LoadError:
        return LoadError(f"load: {self.source} has a malformed fastconv manifest: {problem}")

    def array(self, desc: dict) -> np.ndarray:
        entry = desc.get("entry")
        if not isinstance(entry, str):
            raise self.fail(f"entry name {entry!r} is not a string")
        if entry not in self.arrays:
            raise LoadError(f"load: {self.source} is missing the member '{entry}' its manifest names "
                            "(truncated or corrupt)")
        return self.arrays[entry]

    def number(self, text: Any, what: str) -> float:
        if not isinstance(text, str):
            raise self.fail(f"{what} {text!r} is not a string")
        try:
            return float(text)
        except ValueError:
            raise self.fail(f"{what} {text[:40]!r} is not a number") from None

    def key(self, desc: Any, depth: int) -> Any:
        if isinstance(desc, str):
            return desc
        if isinstance(desc, dict) and len(desc) == 1 and isinstance(desc.get("int"), int) \
                and not isinstance(desc.get("int"), bool):
            return desc["int"]
        if isinstance(desc, dict) and len(desc) == 1 and "key" in desc:
            key = self.decode(desc["key"], depth + 1)
            try:
                hash(key)
            except TypeError:
                raise self.fail(f"dict key of type {type(key).__name__} is not hashable") from None
            return key
        raise self.fail(f"dict key {str(desc)[:60]} is not a key description")

    def items(self, desc: dict) -> list:
        items = desc.get("items")
        if not isinstance(items, list):
            raise self.fail(f"'items' of a {desc.get('t')} is {type(items).__name__}, not a list")
        return items

    def decode(self, desc: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        if not isinstance(desc, dict):
            raise self.fail(f"expected an object description, got {type(desc).__name__}")
        kind = desc.get("t")
        if kind == "array":
            return self.array(desc)
        if kind == "tensor":
            return self.tensor(desc)
        if kind == "npscalar":
            arr = self.array(desc)
            if arr.shape != ():
                raise self.fail(f"numpy scalar '{desc['entry']}' has shape {arr.shape}")
            return arr[()]
        if kind == "plain":
            v = desc.get("v")
            if v is not None and not isinstance(v, (bool, int, str)):
                raise self.fail(f"plain value of type {type(v).__name__}")
            return v
        if kind == "float":
            return self.number(desc.get("v"), "float")
        if kind == "complex":
            return complex(self.number(desc.get("re"), "real part"), self.number(desc.get("im"), "imaginary part"))
        if kind == "bytes":
            arr = self.array(desc)
            if arr.dtype != np.uint8 or arr.ndim != 1:
                raise self.fail(f"bytes member '{desc['entry']}' is {arr.dtype} of shape {arr.shape}")
            return arr.tobytes()
        if kind == "dtype":
            try:
                dt = np.dtype(desc.get("v"))
            except (TypeError, ValueError):
                raise self.fail(f"dtype {str(desc.get('v'))[:40]!r} is not a numpy dtype") from None
            if dt.hasobject:
                raise self.fail("object dtype")
            return dt.type if desc.get("type") else dt
        if kind in ("dict", "odict"):
            out = OrderedDict() if kind == "odict" else {}
            for pair in self.items(desc):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise self.fail("a dict item is not a [key, value] pair")
                out[self.key(pair[0], depth)] = self.decode(pair[1], depth + 1)
            return out
        if kind in ("list", "tuple", "set", "frozenset"):
            values = [self.decode(v, depth + 1) for v in self.items(desc)]
            if kind in ("set", "frozenset"):
                try:
                    return set(values) if kind == "set" else frozenset(values)
                except TypeError:
                    raise self.fail(f"a {kind} holds an unhashable value") from None
            return tuple(values) if kind == "tuple" else values
        raise self.fail(f"unknown kind {str(kind)[:40]!r}")

    def tensor(self, desc: dict) -> Tensor:
        ref = desc.get("ref")
        if isinstance(ref, int) and ref in self.tensors:
            return self.tensors[ref]
        arr = self.array(desc)
        requires_grad = desc.get("requires_grad", False)
        parameter = desc.get("parameter", False)
        if not isinstance(requires_grad, bool) or not isinstance(parameter, bool):
            raise self.fail("a tensor's requires_grad/parameter flags are not booleans")
        try:
            t = Parameter(arr, requires_grad=requires_grad) if parameter else Tensor(arr, requires_grad=requires_grad)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise self.fail(f"tensor '{desc['entry']}' cannot be rebuilt ({exc})") from None
        if isinstance(ref, int):
            self.tensors[ref] = t
        return t


def _read_manifest(arrays: Dict[str, np.ndarray], source: str) -> Any:
    raw = arrays.pop(META_KEY)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"member is {raw.dtype} of shape {raw.shape}, not uint8 bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise LoadError(f"load: {source} has a fastconv manifest nested too deeply to read") from None
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise LoadError(f"load: {source} has an unreadable fastconv manifest ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})") from None
    if not isinstance(meta, dict) or "root" not in meta:
        raise LoadError(f"load: {source} has a malformed fastconv manifest: no 'root' object")
    version = meta.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise LoadError(f"load: {source} was written in fastconv format version {repr(version)[:20]}; "
                        f"this version reads versions {', '.join(map(str, READABLE_VERSIONS))} "
                        "(upgrade fastconv)")
    try:
        return _Decoder(arrays, source).decode(meta["root"])
    except RecursionError:
        raise LoadError(f"load: {source} has a fastconv manifest nested too deeply to read") from None


# ---- readers: one per format kind (fastconv._formats.FileFormat.kind) ----------------------------

def _read_fastconv(f: IO[bytes], size: int, source: str, fmt: FileFormat) -> Any:
    return _read_manifest(_read_arrays(f, size, source), source)


def _read_plain_npz(f: IO[bytes], size: int, source: str, fmt: FileFormat) -> Any:
    return _read_arrays(f, size, source)


def _read_arrays(f: IO[bytes], size: int, source: str) -> Dict[str, np.ndarray]:
    try:
        return read_npz(f, size)
    except NpzError as exc:
        raise LoadError(f"load: {source}: {exc}") from None


def _read_pytorch(f: IO[bytes], size: int, source: str, fmt: FileFormat) -> Any:
    """torch.save files (zip and legacy) through the allow-list unpickler: Tensors come back as
    Tensors (Parameters as Parameters), as torch.load(weights_only=True) returns them."""
    try:
        return load_torch_checkpoint(f, tensors=True, source=source)
    except TorchCheckpointError as exc:
        raise LoadError(str(exc)) from None


def _read_safetensors(f: IO[bytes], size: int, source: str, fmt: FileFormat) -> Any:
    """A safetensors file as an OrderedDict of Tensors (in the header's order)."""
    try:
        with safetensors.safe_open(f, source=source) as st:
            return OrderedDict((name, Tensor(st.get_tensor(name))) for name in st.keys())
    except safetensors.SafetensorError as exc:
        raise LoadError(str(exc).replace("load_file:", "load:", 1)) from None


Reader = Callable[[IO[bytes], int, str, FileFormat], Any]
_READERS: Dict[str, Reader] = {
    "fastconv": _read_fastconv,
    "npz": _read_plain_npz,
    "pytorch-zip": _read_pytorch,
    "pytorch-legacy": _read_pytorch,
    "safetensors": _read_safetensors,
}

_HINTS = {
    "pickle": "; fastconv never loads pickles (they can run arbitrary code)",
    "torchscript": "; fastconv does not run TorchScript",
    "npy": "; fastconv files are .npz archives (read an .npy array with numpy.load)",
    "gzip": "; fastconv files are not compressed this way (decompress it first)",
    "empty": " (an interrupted copy or download?)",
    "damaged-zip": "",
}


def _unsupported(source: str, fmt: FileFormat) -> LoadError:
    if fmt.kind == "damaged-zip":
        return LoadError(f"load: {source} is {fmt.description}")
    return LoadError(f"load: {source} is not a fastconv file: it looks like {fmt.description}"
                     f"{_HINTS.get(fmt.kind, '')}")


# ---- map_location ---------------------------------------------------------------------------------

_DEVICE_KINDS = ("cuda", "mps", "xpu", "xla", "hip", "ipu", "mtia", "hpu", "vulkan", "meta", "privateuseone")


def _device_name(value: Any) -> Optional[str]:
    """'cpu', 'cuda:0', ... for a device string or device-like object (``.type``), else None."""
    if isinstance(value, str):
        return value.strip()
    kind = getattr(value, "type", None)
    if isinstance(kind, str):
        index = getattr(value, "index", None)
        return kind if index is None else f"{kind}:{index}"
    return None


def _check_cpu(value: Any, what: str) -> None:
    name = _device_name(value)
    if name is None:
        raise TypeError(f"load: expected {what} as a device string like 'cpu', a device, a dict or a callable, "
                        f"got {type(value).__name__}")
    kind, _, index = name.partition(":")
    if kind == "cpu" and (not index or index.isdigit()):
        return
    if kind in _DEVICE_KINDS:
        what_device = "a CUDA device" if kind == "cuda" else f"the {kind} device"
        raise RuntimeError(f"load: {what}={name!r} asks for {what_device}, but fastconv runs on the CPU only; "
                           "use map_location='cpu' or leave it out")
    raise ValueError(f"load: {what}={name!r} is not a device (expected 'cpu')")


def _location_mapper(map_location: Any) -> Optional[Callable[[Any], Any]]:
    """Check ``map_location`` as torch.load reads it; returns a leaf transform for a callable."""
    if map_location is None:
        return None
    if isinstance(map_location, dict):
        for key in map_location:
            if _device_name(key) is None:
                raise TypeError(f"load: map_location keys must be device strings, got {key!r}")
        if "cpu" in map_location:
            _check_cpu(map_location["cpu"], "map_location['cpu']")
        return None
    if callable(map_location) and _device_name(map_location) is None:
        def apply(value):
            mapped = map_location(value, "cpu")
            if mapped is None:
                return value
            if not isinstance(mapped, (Tensor, np.ndarray)):
                raise TypeError(f"load: map_location returned {type(mapped).__name__}; expected a Tensor, an "
                                "ndarray or None")
            return mapped
        return apply
    _check_cpu(map_location, "map_location")
    return None


def _map_leaves(obj: Any, fn: Callable[[Any], Any], memo: Dict[int, Any]) -> Any:
    """``obj`` with every Tensor/ndarray replaced by ``fn(leaf)`` (each object mapped once)."""
    if isinstance(obj, (Tensor, np.ndarray)):
        if id(obj) not in memo:
            memo[id(obj)] = fn(obj)
        return memo[id(obj)]
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _map_leaves(v, fn, memo)
        return out
    if isinstance(obj, list):
        return [_map_leaves(v, fn, memo) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_leaves(v, fn, memo) for v in obj)
    return obj


# ---- load -------------------------------------------------------------------------------------------

def _open(f: FileLike):
    """(binary file, size, name for messages, whether we opened it)."""
    if hasattr(f, "read"):
        name = getattr(f, "name", None)
        source = name if isinstance(name, str) else f"<{type(f).__name__}>"
        if not (callable(getattr(f, "seekable", None)) and f.seekable()):
            data = f.read()
            if not isinstance(data, bytes):
                raise TypeError(f"load: expected a binary file object, got one that reads {type(data).__name__}")
            return io.BytesIO(data), len(data), source, True
        start = f.tell()
        size = f.seek(0, io.SEEK_END) - start
        f.seek(start)
        if start:
            data = f.read()
            return io.BytesIO(data), len(data), source, True
        return f, size, source, False
    path = os.fspath(f)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file: {path}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"load: {path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(f"load: {path} is not a regular file (a device, pipe or socket); fastconv reads "
                        "checkpoints from files")
    return open(path, "rb"), st.st_size, path, True


def load(f: FileLike, map_location: Any = None, weights_only: Optional[bool] = None) -> Any:
    """Read what ``save`` wrote (or any plain ``.npz`` of arrays, as a dict); never unpickles.

    ``f`` is a path or a binary file object. Tensors come back as Tensors (Parameters as
    Parameters), arrays as arrays. ``map_location`` is read as ``torch.load`` reads it: ``'cpu'``,
    a device (anything with ``.type``), a dict of location strings, or a callable
    ``(tensor, 'cpu') -> tensor or None`` applied to every Tensor and array; everything lives on
    the CPU, so a CUDA (or other accelerator) device is a RuntimeError. ``weights_only`` is
    accepted for compatibility: loading never runs code, whatever its value.

    A missing file raises FileNotFoundError; a file in another format (a PyTorch checkpoint, a
    pickle, text, ...) or a truncated, corrupt or malicious one raises ValueError naming the file.
    """
    if weights_only is not None and not isinstance(weights_only, (bool, np.bool_)):
        raise TypeError(f"load: expected weights_only as a bool or None, got {weights_only!r}")
    mapper = _location_mapper(map_location)
    handle, size, source, owned = _open(f)
    try:
        fmt = detect_format(handle, size)
        reader = _READERS.get(fmt.kind)
        if reader is None:
            raise _unsupported(source, fmt)
        result = reader(handle, size, source, fmt)
    finally:
        if owned:
            handle.close()
    return result if mapper is None else _map_leaves(result, mapper, {})


__all__ = ["save", "load", "LoadError"]
