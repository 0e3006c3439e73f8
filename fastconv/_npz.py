"""A bounded, pickle-free reader of ``.npz`` archives (what ``np.savez`` writes).

``np.load`` trusts an archive's headers: a member that declares a 2**34-element shape on 16
bytes makes it allocate (or fail with MemoryError) before noticing. This reader checks every
member against the sizes the zip declares before allocating anything: the ``.npy`` header
(``numpy.lib.format``'s parser, bounded size, literal values only) must describe exactly the bytes
that follow it, and the declared uncompressed size must be within what the stored bytes can hold
(deflate expands at most ~1032-fold). Object dtypes (pickles) are refused; CRCs are checked.
Every problem is an ``NpzError`` (a ValueError) whose message names the member.
"""
from __future__ import annotations

import math
import zipfile
import zlib
from typing import IO, Dict

import numpy as np
from numpy.lib import format as npy_format

MAX_HEADER_BYTES = 10000          # numpy's own default bound for .npy headers
_DEFLATE_MAX_RATIO = 1100         # deflate's limit is ~1032:1; a little slack for tiny members
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class NpzError(ValueError):
    """A member of an .npz archive that cannot be read safely (message names the member)."""


def _label(info: zipfile.ZipInfo) -> str:
    """The key np.load would give the member (its name without .npy)."""
    return info.filename[:-4] if info.filename.endswith(".npy") else info.filename


def _check_sizes(info: zipfile.ZipInfo, archive_size: int) -> None:
    name = _label(info)
    if info.flag_bits & 0x1:
        raise NpzError(f"entry '{name}' is encrypted (np.savez never encrypts)")
    if info.compress_type not in _COMPRESSIONS:
        raise NpzError(f"entry '{name}' uses zip compression method {info.compress_type}, which fastconv does not "
                       "read (np.savez writes stored or deflate members)")
    if info.compress_size > archive_size or info.header_offset + info.compress_size > archive_size:
        raise NpzError(f"entry '{name}' declares {info.compress_size} stored bytes, more than the "
                       f"{archive_size}-byte file holds (truncated or corrupt)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise NpzError(f"entry '{name}' declares {info.file_size} bytes but stores {info.compress_size} "
                       "(corrupt zip directory)")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 1024:
        raise NpzError(f"entry '{name}' declares {info.file_size} bytes from {info.compress_size} compressed "
                       "bytes, more than deflate can expand to (corrupt or malicious)")


def _read_header(f: IO[bytes], name: str):
    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
        if version == (2, 0):
            return npy_format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
        reader = getattr(npy_format, "_read_array_header", None)
        if version == (3, 0) and reader is not None:
            return reader(f, version, max_header_size=MAX_HEADER_BYTES)
        raise NpzError(f"entry '{name}' is in .npy format version {version}, which this numpy cannot read")
    except NpzError:
        raise
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, EOFError, OSError,
            zipfile.BadZipFile) as exc:
        raise NpzError(f"entry '{name}' has no valid .npy header ({type(exc).__name__}: {_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = _label(info)
    with zf.open(info) as f:
        shape, fortran_order, dtype = _read_header(f, name)
        if dtype.hasobject:
            raise NpzError(f"entry '{name}' is a pickled object array, which is refused "
                           "(loading it could execute code)")
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise NpzError(f"entry '{name}' declares an invalid shape {shape!r}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        available = info.file_size - f.tell()
        if nbytes != available:
            raise NpzError(f"entry '{name}' declares shape {tuple(shape)} of {dtype} ({nbytes} bytes) but holds "
                           f"{available} bytes of data (truncated or corrupt)")
        if dtype.itemsize == 0 and count > 2 ** 31:
            raise NpzError(f"entry '{name}' declares {count} elements of a zero-size dtype {dtype}")
        try:
            flat = np.empty(count, dtype=dtype)
        except MemoryError:
            raise NpzError(f"entry '{name}' needs {nbytes} bytes, more memory than is available") from None
        view = memoryview(flat.view(np.uint8).reshape(-1)) if nbytes else memoryview(b"")
        done = 0
        while done < nbytes:
            n = f.readinto(view[done:])
            if not n:
                raise NpzError(f"entry '{name}' ends after {done} of {nbytes} data bytes (truncated)")
            done += n
        if f.read(1):  # reaching the end also makes zipfile check the member's CRC
            raise NpzError(f"entry '{name}' has bytes past its declared data (corrupt)")
    if fortran_order:
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


def read_npz(f: IO[bytes], size: int) -> Dict[str, np.ndarray]:
    """All members of the .npz archive in the seekable file ``f`` (``size`` bytes), by key."""
    arrays: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(f) as zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise NpzError(f"member '{name}' is not an .npy array")
                key = name[:-4]
                if key in arrays:
                    raise NpzError(f"entry '{key}' appears twice (corrupt archive)")
                _check_sizes(info, size)
                arrays[key] = _read_member(zf, info)
    except NpzError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError) as exc:
        raise NpzError(f"truncated or corrupt archive ({type(exc).__name__}: {_one_line(exc)})") from None
    return arrays


__all__ = ["read_npz", "NpzError"]
