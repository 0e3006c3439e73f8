"""safetensors files (Hugging Face's weight format), read and written without the ``safetensors`` package.

Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the byte buffer that follows;
an optional ``"__metadata__"`` maps str to str), then the raw little-endian, row-major buffers.
The names mirror ``safetensors.numpy``: ``save_file``/``load_file``/``save``/``load`` and
``safe_open`` for reading single tensors of a large file.

Headers are checked as strictly as the reference implementation does (known dtype, shape and
offsets consistent, offsets covering the buffer exactly with no holes or overlaps, no duplicate
names, metadata of strings); anything else is a one-line ValueError naming the file. BF16 tensors
load as float32 (numpy has no bfloat16); FP8 and the sub-byte types are refused by name.
"""
from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

from ._atomic import atomic_write
from .tensor import Tensor

__all__ = ["save_file", "load_file", "save", "load", "safe_open", "SafetensorError"]

_MAX_HEADER = 100_000_000  # the reference implementation's limit
_METADATA = "__metadata__"

# safetensors dtype -> numpy dtype (little-endian); BF16 is decoded separately
_DTYPES: Dict[str, str] = {
    "BOOL": "|b1", "U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "F16": "<f2", "I32": "<i4",
    "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8", "C64": "<c8", "BF16": "<u2",
}
_NAMES: Dict[str, str] = {np.dtype(v).newbyteorder("=").str: k for k, v in _DTYPES.items() if k != "BF16"}
_KNOWN_UNSUPPORTED = ("F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C128")


class SafetensorError(ValueError):
    """A file that is not a valid safetensors file (the message names the file and the problem)."""


# ---- writing ---------------------------------------------------------------------------------

def _as_array(name: str, value) -> np.ndarray:
    if not isinstance(name, str):
        raise TypeError(f"save_file: tensor names must be str, got {name!r}")
    if name == _METADATA:
        raise ValueError(f"save_file: '{_METADATA}' is reserved for the metadata, not a tensor name")
    arr = value.numpy() if isinstance(value, Tensor) else value
    if isinstance(arr, np.generic):
        arr = np.asarray(arr)
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"save_file: expected an ndarray or Tensor for '{name}', got {type(value).__name__}")
    key = arr.dtype.newbyteorder("=").str if arr.dtype.byteorder != "|" else arr.dtype.str
    if key not in _NAMES:
        raise TypeError(f"save_file: dtype {arr.dtype} of '{name}' has no safetensors equivalent")
    return arr


def save(tensors: Mapping[str, Any], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The safetensors bytes of a flat mapping of names to arrays/Tensors (e.g. a state_dict)."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save_file: expected a mapping of names to arrays, got {type(tensors).__name__}")
    arrays = {name: _as_array(name, value) for name, value in tensors.items()}
    header: Dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_file: metadata must map str to str (as safetensors requires)")
        header[_METADATA] = dict(metadata)
    # buffers: largest alignment first, then by name, so every buffer starts aligned to its element
    # size (the reference writer's layout); the header lists the tensors in the mapping's order
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    offsets, offset = {}, 0
    for name in order:
        offsets[name] = [offset, offset + arrays[name].nbytes]
        offset += arrays[name].nbytes
    for name, arr in arrays.items():
        key = arr.dtype.newbyteorder("=").str if arr.dtype.byteorder != "|" else arr.dtype.str
        header[name] = {"dtype": _NAMES[key], "shape": list(arr.shape), "data_offsets": offsets[name]}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    parts = [struct.pack("<Q", len(text)), text]
    for name in order:
        arr = arrays[name]
        parts.append(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
    return b"".join(parts)


def save_file(tensors: Mapping[str, Any], filename, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` (names to arrays/Tensors) as a safetensors file, atomically."""
    data = save(tensors, metadata)
    with atomic_write(filename) as f:
        f.write(data)


# ---- reading ---------------------------------------------------------------------------------

def _error(source: str, problem: str) -> SafetensorError:
    return SafetensorError(f"load_file: {source} is not a valid safetensors file: {problem}")


def _unique_object(pairs):
    out = OrderedDict()
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate name {key!r} in the header")
        out[key] = value
    return out


def _parse_header(raw: bytes, buffer_size: int, source: str) -> Tuple["OrderedDict[str, Any]", Dict[str, str]]:
    """Checked (entries, metadata) from the JSON header; entries keep the file's order."""
    if not raw.lstrip(b" ").startswith(b"{"):
        raise _error(source, "the header does not start with '{'")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _error(source, f"unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise _error(source, "the header is not a JSON object")
    metadata = header.pop(_METADATA, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _error(source, "__metadata__ must map strings to strings")
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _error(source, f"entry '{name}' must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype in _KNOWN_UNSUPPORTED:
            raise _error(source, f"tensor '{name}' has dtype {dtype}, which fastconv does not read")
        if dtype not in _DTYPES:
            raise _error(source, f"tensor '{name}' has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise _error(source, f"tensor '{name}' has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= buffer_size):
            raise _error(source, f"tensor '{name}' has data_offsets {offsets!r} outside the "
                                 f"{buffer_size}-byte buffer")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise _error(source, f"tensor '{name}' of dtype {dtype} and shape {tuple(shape)} needs {nbytes} "
                                 f"bytes, its data_offsets {offsets} span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            what = "overlaps the previous tensor" if begin < end else f"leaves a hole at byte {end}"
            raise _error(source, f"tensor '{name}' at data_offsets [{begin}, {stop}] {what}")
        end = stop
    if end != buffer_size:
        raise _error(source, f"the tensors cover {end} of the {buffer_size} buffer bytes (trailing data)")
    return header, metadata


def _decode(raw: np.ndarray, dtype: str, shape) -> np.ndarray:
    """Little-endian bytes -> a native array of ``shape`` (BF16 widened to float32)."""
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype == "BOOL":
        return (raw != 0).reshape(shape)
    arr = raw.view(_DTYPES[dtype]).reshape(shape)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


class safe_open:
    """Lazy access to one file, as ``safetensors.safe_open``: ``keys()``, ``metadata()``,
    ``get_tensor(name)`` (reads only that tensor). ``framework`` is accepted for compatibility
    ("np"/"numpy"/"pt"/"fastconv"); tensors are numpy arrays. ``filename`` may also be a
    seekable binary file object (read from its start; ``source`` names it in errors)."""

    def __init__(self, filename, framework: str = "numpy", device: str = "cpu", *, source: Optional[str] = None):
        if device != "cpu":
            raise ValueError(f"safe_open: fastconv runs on the CPU, got device={device!r}")
        self._owned = not hasattr(filename, "read")
        if self._owned:
            self._path = os.fspath(filename)
            if not os.path.exists(self._path):
                raise FileNotFoundError(f"load_file: no such file: {self._path}")
            self._file = open(self._path, "rb")
        else:
            self._file = filename
            name = getattr(filename, "name", None)
            self._path = source or (name if isinstance(name, str) else f"<{type(filename).__name__}>")
        try:
            size = self._file.seek(0, os.SEEK_END)
            self._file.seek(0)
            head = self._file.read(8)
            if len(head) < 8:
                raise _error(self._path, f"{size} bytes is too short for the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or n > size - 8:
                raise _error(self._path, f"header length {n} exceeds the file ({size} bytes) or the "
                                         f"{_MAX_HEADER}-byte limit")
            self._start = 8 + n
            self._entries, self._metadata = _parse_header(self._file.read(n), size - self._start, self._path)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def keys(self):
        """Tensor names in the file's header order."""
        return list(self._entries)

    def metadata(self) -> Dict[str, str]:
        return dict(self._metadata)

    def get_tensor(self, name: str) -> np.ndarray:
        if name not in self._entries:
            raise KeyError(f"safe_open: {self._path} has no tensor named {name!r}")
        entry = self._entries[name]
        begin, end = entry["data_offsets"]
        raw = np.empty(end - begin, dtype=np.uint8)
        self._file.seek(self._start + begin)
        if self._file.readinto(memoryview(raw)) != raw.size:
            raise _error(self._path, f"tensor '{name}' is truncated")
        return _decode(raw, entry["dtype"], entry["shape"])

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


def load_file(filename) -> "OrderedDict[str, np.ndarray]":
    """Every tensor of a safetensors file (a path or binary file object) as numpy arrays, in the
    header's order."""
    with safe_open(filename) as f:
        return OrderedDict((name, f.get_tensor(name)) for name in f.keys())


def load(data: bytes) -> "OrderedDict[str, np.ndarray]":
    """Every tensor of safetensors bytes (as ``safetensors.numpy.load``)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"load: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    source = "the given bytes"
    if len(data) < 8:
        raise _error(source, f"{len(data)} bytes is too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or n > len(data) - 8:
        raise _error(source, f"header length {n} exceeds the data ({len(data)} bytes)")
    entries, _ = _parse_header(data[8:8 + n], len(data) - 8 - n, source)
    buffer = np.frombuffer(bytearray(data[8 + n:]), dtype=np.uint8)
    return OrderedDict((name, _decode(buffer[e["data_offsets"][0]:e["data_offsets"][1]].copy(), e["dtype"],
                                      e["shape"])) for name, e in entries.items())


def is_safetensors(path) -> bool:
    """Whether ``path`` starts like a safetensors file (a plausible header length, then '{')."""
    with open(os.fspath(path), "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return n <= min(_MAX_HEADER, size - 8) and head[8:9] == b"{"
