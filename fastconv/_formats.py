"""What a file looks like, from its first bytes (and a zip's member names), without running it.

``detect_format`` names the kind of a checkpoint-like file so that ``fastconv.load`` can
dispatch to a reader or say clearly what the file is when it has none: fastconv's own ``.npz``,
a plain NumPy ``.npz``, PyTorch's zip checkpoints and TorchScript archives, legacy PyTorch and
plain pickles, safetensors, single ``.npy`` arrays, compressed streams, HDF5, ONNX, text. Nothing
here unpickles or decompresses: it reads at most the first ``HEAD_BYTES`` bytes and, for a zip,
its central directory.
"""
from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from typing import IO, List, Optional

HEAD_BYTES = 512
FASTCONV_META = "__fastconv_meta__.npy"

# torch.save(..., _use_new_zipfile_serialization=False) starts with its magic number, pickled
# with protocol 2: PROTO 2, LONG1 of 10 bytes (0x1950a86a20f9469cfc6c little-endian), STOP.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"


@dataclass(frozen=True)
class FileFormat:
    """``kind`` is a short tag readers are registered under; ``description`` reads "a ..."."""

    kind: str
    description: str
    members: Optional[List[str]] = None  # a zip's member names (None for other kinds)


def _zip_format(f: IO[bytes]) -> FileFormat:
    try:
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        return FileFormat("damaged-zip", f"a truncated or damaged zip archive ({exc})")
    if all(n.endswith(".npy") for n in names):
        if FASTCONV_META in names:
            return FileFormat("fastconv", "a fastconv checkpoint", names)
        return FileFormat("npz", "a NumPy .npz archive", names)
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return FileFormat("torchscript", "a TorchScript archive (torch.jit.save)", names)
    pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if pickles:
        return FileFormat("pytorch-zip", f"a PyTorch checkpoint (torch.save zip archive with {pickles[0]})", names)
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return FileFormat("keras", "a Keras model archive (.keras)", names)
    shown = ", ".join(names[:4]) + (f", ... ({len(names)} members)" if len(names) > 4 else "")
    return FileFormat("zip", f"a zip archive that is not a NumPy .npz (members: {shown})", names)


def _safetensors_header(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _text_format(head: bytes) -> Optional[FileFormat]:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # only a multi-byte character cut at the end is tolerated
            return None
        text = head[:exc.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n\f\v" for c in text):
        return None
    stripped = text.lstrip()
    snippet = stripped.splitlines()[0][:40] if stripped else ""
    if stripped[:1] in ("{", "["):
        return FileFormat("json", f"a JSON text file (starts with {snippet!r})")
    return FileFormat("text", f"a text file (starts with {snippet!r})")


def detect_format(f: IO[bytes], size: int) -> FileFormat:
    """The format of the seekable binary file ``f`` of ``size`` bytes (position restored to 0)."""
    f.seek(0)
    head = f.read(HEAD_BYTES)
    f.seek(0)
    try:
        if size == 0 or not head:
            return FileFormat("empty", "an empty file")
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _zip_format(f)
        if head.startswith(b"\x93NUMPY"):
            return FileFormat("npy", "a single NumPy .npy array")
        if head.startswith(_TORCH_LEGACY_MAGIC):
            return FileFormat("pytorch-legacy",
                              "a legacy PyTorch checkpoint (torch.save with _use_new_zipfile_serialization=False)")
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            return FileFormat("pickle", f"a Python pickle (protocol {head[1]})")
        if head.startswith(b"\x1f\x8b"):
            return FileFormat("gzip", "gzip-compressed data")
        if head.startswith(b"BZh"):
            return FileFormat("bzip2", "bzip2-compressed data")
        if head.startswith(b"\xfd7zXZ\x00"):
            return FileFormat("xz", "xz-compressed data")
        if head.startswith(b"\x28\xb5\x2f\xfd"):
            return FileFormat("zstd", "zstd-compressed data")
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return FileFormat("hdf5", "an HDF5 file (h5py, Keras .h5)")
        if len(head) >= 262 and head[257:262] == b"ustar":
            return FileFormat("tar", "a tar archive")
        if _safetensors_header(head, size):
            return FileFormat("safetensors", "a safetensors file")
        if head[:1] == b"\x08" and head[2:3] == b"\x12":
            return FileFormat("onnx", "an ONNX model (protobuf)")
        text = _text_format(head)
        if text is not None:
            return text
        return FileFormat("unknown", f"unrecognized binary data (first bytes {head[:8].hex(' ')})")
    finally:
        f.seek(0)


__all__ = ["FileFormat", "detect_format", "FASTCONV_META", "HEAD_BYTES"]
