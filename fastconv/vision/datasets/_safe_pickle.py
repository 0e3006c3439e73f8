"""A pickle reader for dataset files (CIFAR's python batches) that never runs pickled code.

The official batches are Python-2 pickles of dicts holding lists, strings, bytes and numpy arrays.
``load_data_pickle`` decodes exactly those: ``find_class`` resolves no real global. The few
globals numpy's pickles name (``numpy.dtype``, ``ndarray``, ``_reconstruct``, ``_frombuffer``,
``scalar``, and ``_codecs.encode`` for bytes written at protocol 2) map to stand-ins that check
their arguments and build plain, non-object arrays; any other global, any persistent id and any
object dtype is refused with a ``ValueError`` naming the file and the global. Nothing from the
file is called, imported or given attributes.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, Dict, List

import numpy as np

# dtype kinds an array may have: bool, signed/unsigned ints, floats, complex; never objects
_PLAIN_KINDS = frozenset("biufc")
_MAX_NDIM = 32


class UnsafePickleError(ValueError):
    """A dataset pickle that needs something other than dicts, lists, strings, bytes and arrays."""


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler; turned into ``UnsafePickleError`` with the file's name."""


def _plain_dtype(spec) -> np.dtype:
    if not isinstance(spec, str) or len(spec) > 16:
        raise _Refused(f"unsupported numpy dtype {spec!r}")
    try:
        dtype = np.dtype(spec)
    except TypeError as exc:
        raise _Refused(f"unsupported numpy dtype {spec!r} ({exc})") from None
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"numpy dtype {spec!r} is not a plain numeric dtype (object and structured "
                       "arrays are not allowed)")
    return dtype


class _DTypeStub:
    """``numpy.dtype(spec, align, copy)``; its BUILD state sets the byte order."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=True, *rest):
        self.dtype = _plain_dtype(spec)

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise _Refused(f"malformed numpy dtype state {state!r:.80}")
        order = state[1]
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"malformed numpy dtype byte order {order!r:.20}")
        if any(field is not None for field in state[2:5]):
            raise _Refused("structured numpy dtypes are not allowed")
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)

    def __repr__(self) -> str:
        return f"numpy.dtype({self.dtype.str!r})"


def _raw_bytes(raw, what: str) -> bytes:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if isinstance(raw, str):  # Python 2 str, decoded as latin-1 by the unpickler
        return raw.encode("latin-1")
    raise _Refused(f"expected the raw bytes of {what}, got {type(raw).__name__}")


def _shape(value) -> tuple:
    if (not isinstance(value, tuple) or len(value) > _MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)):
        raise _Refused(f"malformed numpy array shape {value!r:.80}")
    return value


def _from_bytes(raw: bytes, dtype: np.dtype, shape: tuple, fortran: bool) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise _Refused(f"numpy array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
                       f"the file holds {len(raw)}")
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=True)


class _ArrayStub:
    """``_reconstruct(ndarray, (0,), b'b')``; its BUILD state holds the array."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused(f"malformed numpy array state ({type(state).__name__} of "
                           f"{len(state) if isinstance(state, tuple) else '?'} items)")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DTypeStub):
            raise _Refused(f"expected a numpy dtype in the array state, got {type(dtype).__name__}")
        self.array = _from_bytes(_raw_bytes(raw, "a numpy array"), dtype.dtype, _shape(shape), bool(fortran))


class _Global:
    """What ``find_class`` returns: a frozen stand-in for an allowed global (no attributes can be
    set on it and no pickled state applied to it); calling it calls the checked replacement."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        if self._fn is None:
            raise _Refused(f"calling {self._name} is not allowed")
        return self._fn(*args)

    def __setattr__(self, name, value):
        raise _Refused(f"cannot set attribute {name!r} on {self._name}")

    def __setstate__(self, state):
        raise _Refused(f"cannot apply pickled state to {self._name}")

    def __repr__(self) -> str:
        return self._name


_NDARRAY = _Global("numpy.ndarray", None)  # only ever _reconstruct's first argument


def _reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise _Refused("numpy _reconstruct is allowed only for plain ndarrays")
    return _ArrayStub()


def _frombuffer(buffer, dtype, shape, order):
    if not isinstance(dtype, _DTypeStub):
        raise _Refused(f"expected a numpy dtype for _frombuffer, got {type(dtype).__name__}")
    if order not in ("C", "F"):
        raise _Refused(f"malformed array order {order!r:.10}")
    array = _ArrayStub()
    array.array = _from_bytes(_raw_bytes(buffer, "a numpy array"), dtype.dtype, _shape(shape), order == "F")
    return array


def _scalar(dtype, raw=None):
    if not isinstance(dtype, _DTypeStub):
        raise _Refused(f"expected a numpy dtype for a numpy scalar, got {type(dtype).__name__}")
    data = _raw_bytes(raw, "a numpy scalar")
    if len(data) != dtype.dtype.itemsize:
        raise _Refused(f"numpy scalar of dtype {dtype.dtype} needs {dtype.dtype.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype.dtype)[0].astype(dtype.dtype.newbyteorder("="))


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    """How Python 3 writes ``bytes`` at pickle protocol 2: ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise _Refused(f"_codecs.encode is allowed only for latin-1 bytes, got encoding {encoding!r:.20}")
    return text.encode("latin-1")


_NUMPY_CORES = ("numpy.core", "numpy._core")
_ALLOWED: Dict[tuple, _Global] = {("numpy", "dtype"): _Global("numpy.dtype", _DTypeStub),
                                  ("numpy", "ndarray"): _NDARRAY,
                                  ("_codecs", "encode"): _Global("_codecs.encode", _codecs_encode)}
for _core in _NUMPY_CORES:
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _Global(f"{_core}.multiarray._reconstruct", _reconstruct)
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _Global(f"{_core}.multiarray.scalar", _scalar)
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _Global(f"{_core}.numeric._frombuffer", _frombuffer)


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"refusing the pickled global {module}.{name} (only dicts, lists, strings, bytes "
                           "and numpy arrays may appear in a dataset file; nothing in it is executed)")
        return found

    def persistent_load(self, pid):
        raise _Refused(f"refusing a persistent id {pid!r:.40} (not part of a dataset file)")


def _resolve(obj):
    """Replace array stand-ins by their arrays in the decoded containers (iteratively)."""
    def fix(value):
        if isinstance(value, _ArrayStub):
            if value.array is None:
                raise _Refused("a numpy array without its state")
            return value.array
        if isinstance(value, (_DTypeStub, _Global)):
            raise _Refused(f"a bare {value!r} is not dataset content")
        return value

    root = [obj]
    stack: List[Any] = [root]
    seen = set()
    while stack:
        container = stack.pop()
        if id(container) in seen:
            continue
        seen.add(id(container))
        if isinstance(container, dict):
            for key in list(container):
                if isinstance(key, (_ArrayStub, _DTypeStub, _Global)):
                    raise _Refused("numpy objects as dict keys are not dataset content")
                container[key] = fix(container[key])
                if isinstance(container[key], (dict, list)):
                    stack.append(container[key])
                elif isinstance(container[key], tuple):
                    container[key] = _fixed_tuple(container[key], fix, stack)
        elif isinstance(container, list):
            for i, item in enumerate(container):
                container[i] = fix(item)
                if isinstance(container[i], (dict, list)):
                    stack.append(container[i])
                elif isinstance(container[i], tuple):
                    container[i] = _fixed_tuple(container[i], fix, stack)
    return root[0]


def _fixed_tuple(value: tuple, fix, stack: list) -> tuple:
    items = tuple(fix(v) for v in value)
    for v in items:
        if isinstance(v, (dict, list)):
            stack.append(v)
    if any(isinstance(v, tuple) for v in items):
        items = tuple(_fixed_tuple(v, fix, stack) if isinstance(v, tuple) else v for v in items)
    return items


def load_data_pickle(path, op: str):
    """Decode the pickle at ``path`` holding only dicts/lists/str/bytes/numbers/numpy arrays.

    Python 2 strings decode as latin-1 (as ``pickle.load(f, encoding='latin1')`` does for these
    files). Every failure is a ``ValueError`` naming ``op`` and the file; nothing is executed.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()
    try:
        obj = _DataUnpickler(io.BytesIO(raw), encoding="latin1").load()
        return _resolve(obj)
    except _Refused as exc:
        raise UnsafePickleError(f"{op}: {name}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{op}: {name}: malformed pickle (nested too deeply)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ValueError(f"{op}: {name}: not a valid dataset pickle ({type(exc).__name__}: {exc})") from None
