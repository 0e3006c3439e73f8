"""``save`` / ``load``: checkpoints as ``.npz`` archives that never need pickle.

What can be saved: numpy arrays and Tensors (stored as arrays, loaded back as arrays), nested
dicts (str or int keys; OrderedDict kept), lists and tuples, and plain scalars (bool, int, float,
str, None, numpy scalars). That covers ``model.state_dict()``, optimizer state dicts and RNG
states. Each array becomes one archive entry named after its path (``0.weight``,
``optimizer/state/0/momentum_buffer``), so the file is also readable with ``np.load``; the nesting
and the scalars are kept as JSON in the entry ``__fastconv_meta__``. A plain ``.npz`` written by
``np.savez(path, **arrays)`` (e.g. PyTorch weights exported as numpy arrays) loads as a dict.

Writing is atomic: the archive goes to a temporary file in the target's folder, is fsynced, then
renamed over the target with ``os.replace``, so an interrupted save leaves the old file intact.
Loading uses ``np.load(allow_pickle=False)``: an untrusted file can never execute code.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Union

import numpy as np

from .tensor import Tensor

META_KEY = "__fastconv_meta__"
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


class _Encoder:
    """Turns a nested object into (JSON description, {entry name: array})."""

    def __init__(self) -> None:
        self.arrays: Dict[str, np.ndarray] = {}

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
        name = self._entry_name(path)
        self.arrays[name] = arr
        return name

    def encode(self, obj: Any, path: List[str]) -> Any:
        if isinstance(obj, Tensor):
            return {"t": "array", "entry": self._store(obj.numpy(), path)}
        if isinstance(obj, np.ndarray):
            return {"t": "array", "entry": self._store(obj, path)}
        if isinstance(obj, np.generic):
            return {"t": "npscalar", "entry": self._store(np.asarray(obj), path)}
        if obj is None or isinstance(obj, (bool, str)):
            return {"t": "plain", "v": obj}
        if isinstance(obj, int):
            return {"t": "plain", "v": int(obj)}
        if isinstance(obj, float):
            return {"t": "float", "v": repr(obj)}  # repr round-trips exactly, including nan and inf
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"save: dict keys must be str or int, got {key!r} at '{'/'.join(path)}'")
                items.append([key if isinstance(key, str) else {"int": int(key)},
                              self.encode(value, path + [str(key)])])
        elif isinstance(obj, (list, tuple)):
            items = [self.encode(v, path + [str(i)]) for i, v in enumerate(obj)]
        else:
            where = "/".join(path) or "the top level"
            hint = "; save module.state_dict() instead" if hasattr(obj, "state_dict") else ""
            raise TypeError(f"save: cannot store {type(obj).__name__} at {where} without pickle{hint}")
        kind = ("odict" if isinstance(obj, OrderedDict) else "dict") if isinstance(obj, dict) else \
            ("tuple" if isinstance(obj, tuple) else "list")
        return {"t": kind, "items": items}


def _decode(desc: Any, arrays, source: str) -> Any:
    try:
        kind = desc["t"]
        if kind == "array":
            return arrays(desc["entry"])
        if kind == "npscalar":
            return arrays(desc["entry"])[()]
        if kind == "plain":
            return desc["v"]
        if kind == "float":
            return float(desc["v"])
        if kind in ("dict", "odict"):
            out = OrderedDict() if kind == "odict" else {}
            for key, value in desc["items"]:
                out[key["int"] if isinstance(key, dict) else key] = _decode(value, arrays, source)
            return out
        if kind in ("list", "tuple"):
            values = [_decode(v, arrays, source) for v in desc["items"]]
            return tuple(values) if kind == "tuple" else values
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, _LoadError):
            raise
        raise _LoadError(f"load: {source} has malformed fastconv metadata ({type(exc).__name__}: {exc})") from None
    raise _LoadError(f"load: {source} has malformed fastconv metadata (unknown entry kind {kind!r})")


class _LoadError(ValueError):
    """A file that is not a readable fastconv/numpy archive (ValueError naming the file)."""


def save(obj: Any, path: PathLike, compress: bool = False) -> None:
    """Write ``obj`` (state dicts, nested dicts/lists of arrays and scalars) to ``path`` atomically.

    The file is written exactly at ``path`` (no suffix is added). ``compress`` uses zip deflate.
    """
    path = os.fspath(path)
    encoder = _Encoder()
    meta = {"format": "fastconv", "version": FORMAT_VERSION, "root": encoder.encode(obj, [])}
    entries = dict(encoder.arrays)
    entries[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder {folder} does not exist (saving to {path})")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: PathLike) -> Any:
    """Read what ``save`` wrote (or any plain ``.npz`` of numeric arrays, as a dict); never unpickles.

    A missing file raises FileNotFoundError; a truncated, corrupt or non-npz file, or one holding
    pickled object arrays, raises ValueError naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _LoadError(f"load: {path} is not a readable .npz archive (truncated, corrupt or another format): "
                         f"{exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _LoadError(f"load: {path} holds a single .npy array, not an .npz archive; use numpy.load")
    with archive:
        cache: Dict[str, np.ndarray] = {}

        def read(name: str) -> np.ndarray:
            if name not in cache:
                if name not in archive.files:
                    raise _LoadError(f"load: {path} is missing the entry '{name}' named in its metadata "
                                     "(truncated or corrupt)")
                try:
                    cache[name] = archive[name]
                except ValueError as exc:
                    if "pickle" in str(exc) or "Object arrays" in str(exc):
                        raise _LoadError(f"load: {path}: entry '{name}' is a pickled object array, which is "
                                         "refused (loading it could execute code)") from None
                    raise _LoadError(f"load: {path}: entry '{name}' is corrupt: {exc}") from None
                except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
                    raise _LoadError(f"load: {path}: entry '{name}' is truncated or corrupt: {exc}") from None
            return cache[name]

        if META_KEY not in archive.files:
            return {name: read(name) for name in archive.files}
        try:
            meta = json.loads(read(META_KEY).tobytes().decode("utf-8"))
            root = meta["root"]
            version = meta.get("version")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise _LoadError(f"load: {path} has unreadable fastconv metadata ({type(exc).__name__}: {exc})") from None
        if version != FORMAT_VERSION:
            raise _LoadError(f"load: {path} was written in fastconv format version {version!r}; this version "
                             f"reads version {FORMAT_VERSION}")
        result = _decode(root, read, path)
        # Verify every entry (a truncated archive may only fail when an entry is read)
        for name in archive.files:
            read(name)
        return result


__all__ = ["save", "load"]
