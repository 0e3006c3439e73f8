"""IDX files (the MNIST format): a validating reader and an atomic writer, gzip or raw.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the data in C order, big-endian. Every way a file can be wrong (not gzip, bad magic,
unknown type, short header, truncated data, trailing bytes) is a ``ValueError`` naming the file.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from typing import Union

import numpy as np

from .._atomic import atomic_write
from ..tensor import Tensor

PathLike = Union[str, "os.PathLike[str]"]

# type code -> big-endian dtype, as in LeCun's description of the format
TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in TYPE_CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_NDIM = 32  # numpy's historical limit; a larger count is a corrupt header


def _decompress(raw: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise ValueError(f"{name}: truncated gzip stream ({exc})") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ValueError(f"{name}: corrupt gzip stream ({exc})") from exc


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian, writable ndarray.

    Compression is detected from the content; a ``.gz`` name on an uncompressed file is an error
    because it almost always means a broken download.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = _decompress(raw, name)
    elif name.endswith(".gz"):
        raise ValueError(f"{name}: not a gzip file (expected gzip magic 1f 8b, got {raw[:2].hex(' ') or 'an empty file'})")
    if len(raw) < 4:
        raise ValueError(f"{name}: truncated: expected a 4-byte IDX magic number, file has {len(raw)} bytes")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{name}: not an IDX file: magic number must start with two zero bytes, got {raw[:4].hex(' ')}")
    if code not in TYPE_CODES:
        known = ", ".join(f"0x{c:02X} ({TYPE_CODES[c].name})" for c in TYPE_CODES)
        raise ValueError(f"{name}: unsupported IDX type code 0x{code:02X}; expected one of {known}")
    if ndim > _MAX_NDIM:
        raise ValueError(f"{name}: corrupt IDX header: {ndim} dimensions (at most {_MAX_NDIM} supported)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{name}: truncated: header declares {ndim} dimensions ({header} header bytes), file has {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = TYPE_CODES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(
            f"{name}: truncated: header says {_shape_text(shape)} {dtype.name} = {expected} bytes of data, found {found}")
    if found > expected:
        raise ValueError(
            f"{name}: {found - expected} unexpected trailing bytes: header says {_shape_text(shape)} "
            f"{dtype.name} = {expected} bytes of data, found {found}")
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``; atomic.

    The file appears complete or not at all (``fastconv._atomic.atomic_write``).
    """
    name = os.fspath(path)
    arr = array.numpy() if isinstance(array, Tensor) else np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        allowed = ", ".join(dt.name for dt in _CODE_OF)
        raise TypeError(f"write_idx: expected an array of dtype {allowed}, got {arr.dtype}")
    if arr.ndim > _MAX_NDIM:
        raise ValueError(f"write_idx: expected at most {_MAX_NDIM} dimensions, got {arr.ndim}")
    if any(d >= 2 ** 32 for d in arr.shape):
        raise ValueError(f"write_idx: every dimension must be below 2**32, got shape {arr.shape}")
    code = _CODE_OF[native]
    payload = (bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
               + np.ascontiguousarray(arr, dtype=TYPE_CODES[code]).tobytes())
    if name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(name) as f:
        f.write(payload)
