"""``Function``: one differentiable operation; its context is the tape node.

A Function's ``forward(ctx, *args)`` receives numpy arrays where the caller passed Tensors
and returns an array (or a tuple of arrays); ``backward(ctx, *grad_outputs)`` receives one
array per output and returns one gradient (array or None) per positional input.
Keyword arguments are non-differentiable options.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .grad_mode import is_grad_enabled

_tensor_type = None
_observers: list = []


def add_observer(observer) -> None:
    """Call ``observer(function_cls, ctx, args, kwargs, outputs)`` after every Function call
    (used by the memory profiler to read what each call saved; remove with remove_observer)."""
    _observers.append(observer)


def remove_observer(observer) -> None:
    _observers.remove(observer)


def _Tensor():
    """The Tensor class, imported lazily (tensor.py sits above autograd in the layering)."""
    global _tensor_type
    if _tensor_type is None:
        from ..tensor import Tensor

        _tensor_type = Tensor
    return _tensor_type


def shape_nbytes(shape, dtype) -> int:
    """Bytes of an array of ``shape`` and ``dtype``: the unit of every Function's memory declarations
    (``saved_bytes``, ``workspace_bytes``) that the profiler adds up."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _array_nbytes(arrays) -> int:
    """Bytes held by distinct arrays (each buffer counted once)."""
    seen = set()
    total = 0
    for a in arrays:
        if isinstance(a, np.ndarray):
            key = id(a)
            if key not in seen:
                seen.add(key)
                total += a.nbytes
    return total


class Context:
    """Per-call state of a Function and, when recorded, a node of the backward graph."""

    __slots__ = (
        "function", "needs_input_grad", "recording", "next_edges", "output_meta",
        "_saved", "_released", "non_differentiable", "tensor_hooks",
        "retained", "saved_versions", "__dict__", "__weakref__",
    )

    def __init__(self, function, needs_input_grad, recording):
        self.function = function
        self.needs_input_grad = needs_input_grad
        self.recording = recording
        self.next_edges = ()
        self.output_meta = ()
        self._saved = ()
        self._released = False
        self.non_differentiable = ()
        self.tensor_hooks = None
        self.retained = None
        self.saved_versions = None

    def save_for_backward(self, *arrays) -> None:
        """Keep arrays for backward; a no-op when the call is not recorded (no_grad, frozen inputs)."""
        if not self.recording:
            return
        self._saved = arrays

    @property
    def saved_nbytes(self) -> int:
        """Bytes of the distinct arrays kept for backward (0 once released), counted when asked
        (by the memory profiler), not on every call."""
        return _array_nbytes(self._saved)

    @property
    def saved_tensors(self) -> Tuple[Any, ...]:
        if self._released:
            raise RuntimeError(
                f"{self.function.__name__}: trying to backward through the graph a second time "
                "(its saved arrays were freed); call backward(retain_graph=True) the first time"
            )
        return self._saved

    def mark_non_differentiable(self, *output_indices: int) -> None:
        """Outputs (by position) that never carry gradient, e.g. max-pool indices."""
        self.non_differentiable = tuple(output_indices)

    def release(self) -> None:
        """Drop saved arrays (after backward without retain_graph)."""
        self._saved = ()
        self._released = True
        self.saved_versions = None
        self.__dict__.clear()

    def check_versions(self) -> None:
        """Raise if a tensor whose array this call saved was modified in place since (PyTorch's
        version check: backward would otherwise read the new values)."""
        for counter, version, position in self.saved_versions:
            if counter[0] != version:
                where = (f"input {position}" if position >= 0 else f"output {-1 - position}")
                raise RuntimeError(
                    f"{self.function.__name__}.backward: one of the variables needed for gradient "
                    f"computation has been modified by an inplace operation: the {where} of "
                    f"{self.function.__name__} is at version {counter[0]}; expected version {version} "
                    "instead. Use an out-of-place op (y = y + 1 instead of y += 1, inplace=False) "
                    "or clone() the tensor before modifying it")

    def keep_original(self, array, counter) -> None:
        """Save a copy in place of ``array`` (and forget ``counter``'s version): the call is an
        in-place op about to overwrite ``array``, whose old values its backward needs."""
        base = array.base
        self._saved = tuple([s.copy() if _same_memory(s, array, base) else s for s in self._saved])
        if self.saved_versions is not None:
            self.saved_versions = tuple([r for r in self.saved_versions if r[0] is not counter]) or None

    def __repr__(self):
        return f"<{self.function.__name__}Backward>"


class Function:
    """Base class of differentiable operations (subclass, define static forward/backward)."""

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on the arrays behind the Tensor arguments and record the call if needed."""
        Tensor = _tensor_type or _Tensor()
        arrays, needs, edges, recording = _unpack_args(args, Tensor, is_grad_enabled())
        ctx = Context(cls, needs, recording)
        out = cls.forward(ctx, *arrays, **kwargs)
        multiple = isinstance(out, tuple)
        if not recording:
            ctx._released = True
            results = tuple([Tensor._wrap(o) for o in out]) if multiple else (Tensor._wrap(out),)
        else:
            ctx.next_edges = edges
            if multiple:
                nondiff = ctx.non_differentiable
                ctx.output_meta = tuple([(o.shape, o.dtype) for o in out])
                results = tuple([Tensor._wrap(o, None if i in nondiff else ctx, i) for i, o in enumerate(out)])
            else:
                ctx.output_meta = ((out.shape, out.dtype),)
                results = (Tensor._wrap(out, None if 0 in ctx.non_differentiable else ctx, 0),)
            if ctx._saved:
                _record_versions(ctx, args, arrays, results, Tensor)
        if _observers:
            for obs in _observers:
                obs(cls, ctx, args, kwargs, results)
        return results if multiple else results[0]


def _same_memory(saved, array, array_base) -> bool:
    """Whether ``saved`` is ``array`` or a view of the same buffer (numpy's .base is the owner)."""
    if saved is array:
        return True
    base = saved.base if isinstance(saved, np.ndarray) else None
    return base is not None and (base is array or base is array_base)


def _record_versions(ctx, args, arrays, results, Tensor) -> None:
    """Note the version of every Tensor (input or output) whose array the call saved, so that
    backward can detect an in-place change of it (``Context.check_versions``)."""
    inputs = []
    for i, a in enumerate(args):  # a loop, not a comprehension: Python 3.11 makes a frame for one
        if isinstance(a, Tensor):
            inputs.append((i, a, arrays[i]))
    records = []
    for saved in ctx._saved:
        if not isinstance(saved, np.ndarray):
            continue
        base = saved.base
        owner, position = None, 0
        for i, a, arr in inputs:
            if saved is arr or (base is not None and (base is arr or base is arr.base)):
                owner, position = a, i
                break
        else:
            for j, t in enumerate(results):
                if saved is t._array:
                    owner, position = t, -1 - j
                    break
        if owner is not None:
            counter = owner._version_counter
            if counter is None:
                counter = owner._version_counter = [0]
            records.append((counter, counter[0], position))
    if records:
        ctx.saved_versions = tuple(records)


def _unpack_args(args, Tensor, grad_on):
    """``(arrays, needs_input_grad, next_edges, recording)`` of a call's positional arguments, in
    one pass (this runs on every op, so it builds each sequence once).

    ``arrays`` holds the array behind each Tensor and every other argument as is; an input needs
    grad when grad mode is on and it requires grad; its edge is then ``(grad_fn, output_index)``
    for a computed tensor or the leaf Tensor itself, and None for inputs that need no grad.
    """
    arrays = []
    needs = []
    edges = []
    recording = False
    for a in args:
        if isinstance(a, Tensor):
            view = a._view
            if view is not None and grad_on and view[0]._version_counter[0] != view[2]:
                a._refresh_view()  # the base changed in place since: take its new history
            arrays.append(a._array)
            if grad_on and a._requires_grad:
                recording = True
                needs.append(True)
                node = a.grad_fn
                edges.append(a if node is None else (node, a._output_index))
                continue
        else:
            arrays.append(a)
        needs.append(False)
        edges.append(None)
    return arrays, tuple(needs), tuple(edges), recording
