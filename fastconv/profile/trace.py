"""Record every Function call of one forward pass at a tiny batch, attributed to its layer.

The static estimate never runs the model at the requested batch size. It runs two tiny
forwards (batch 2 and 3) under the tape observer and forward hooks, and records per call the
Function class, the shapes of its positional arguments, which arguments are model parameters,
``needs_input_grad``, the keyword options and the identity of every array buffer it read,
produced or saved. Comparing the two traces gives every batch-dependent size as an exact
affine function of the batch size, so any batch can be evaluated without running it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._affine import Affine
from ..autograd.function import add_observer, remove_observer
from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor

TRACE_BATCHES = (2, 3)

PARAM, INPUT, ACT = "param", "input", "act"


# ---- values affine in the batch size ---------------------------------------------------------

def _fit_int(v2: int, v3: int) -> Affine:
    slope = int(v3) - int(v2)
    return Affine(int(v2) - TRACE_BATCHES[0] * slope, slope)


class Scalable:
    """A value seen at both trace batches, evaluated at any batch (ints and nested tuples scale)."""

    __slots__ = ("_kind", "_value", "_children", "_type")

    def __init__(self, v2: Any, v3: Any, what: str):
        if isinstance(v2, (bool, np.bool_)) or v2 is None or isinstance(v2, (str, float)):
            if v2 != v3:
                raise ValueError(f"memory_summary: {what} changed from {v2!r} to {v3!r} between batch sizes "
                                 f"{TRACE_BATCHES}; cannot scale it to another batch")
            self._kind, self._value = "const", v2
        elif isinstance(v2, (int, np.integer)) and isinstance(v3, (int, np.integer)):
            self._kind, self._value = "int", _fit_int(v2, v3)
        elif isinstance(v2, (tuple, list)) and isinstance(v3, (tuple, list)) and len(v2) == len(v3):
            self._kind, self._type = "seq", type(v2)
            self._children = [Scalable(a, b, what) for a, b in zip(v2, v3)]
        elif dataclasses.is_dataclass(v2) and type(v2) is type(v3):
            names = [f.name for f in dataclasses.fields(v2)]
            self._kind, self._value = "dataclass", (v2, names)
            self._children = [Scalable(getattr(v2, n), getattr(v3, n), what) for n in names]
        else:
            if not _same(v2, v3):
                raise ValueError(f"memory_summary: {what} changed from {v2!r} to {v3!r} between batch sizes "
                                 f"{TRACE_BATCHES}; cannot scale it to another batch")
            self._kind, self._value = "const", v2

    def at(self, batch: int) -> Any:
        if self._kind == "const":
            return self._value
        if self._kind == "int":
            return self._value.at(batch)
        items = [c.at(batch) for c in self._children]
        if self._kind == "dataclass":
            template, names = self._value
            return dataclasses.replace(template, **dict(zip(names, items)))
        if hasattr(self._type, "_fields"):  # NamedTuple, e.g. ConvGeometry
            return self._type(*items)
        return self._type(items)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and \
            bool(np.array_equal(a, b))
    try:
        return bool(a == b)
    except Exception:
        return a is b


# ---- one raw trace -----------------------------------------------------------------------------

@dataclass
class RawCall:
    function: type
    layer: str
    arg_shapes: Tuple[Optional[Tuple[int, ...]], ...]
    arg_bufs: Tuple[Optional[int], ...]
    needs: Tuple[bool, ...]
    kwargs: Dict[str, Any]
    out_bufs: Tuple[int, ...]
    out_shapes: Tuple[Tuple[int, ...], ...]
    saved_bufs: Tuple[int, ...]
    saved_nbytes: int
    recording: bool


@dataclass
class RawTrace:
    calls: List[RawCall] = field(default_factory=list)
    buffer_bytes: List[int] = field(default_factory=list)
    buffer_kind: List[str] = field(default_factory=list)
    module_outputs: Dict[str, Tuple[int, ...]] = field(default_factory=dict)
    output_bufs: Tuple[int, ...] = ()
    # (buffer, call index): a module's input stays referenced until the module returns (its caller
    # and its forward hold it), which may be after the last call that reads it
    holds: List[Tuple[int, int]] = field(default_factory=list)


def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory behind a view."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class _Recorder:
    """Tape observer plus forward hooks: one RawTrace per forward."""

    def __init__(self, model, param_roots: Dict[int, np.ndarray]):
        self.model = model
        self.param_roots = param_roots
        self.trace = RawTrace()
        self._ids: Dict[int, int] = {}
        self._keep: List[np.ndarray] = []  # keeps roots alive so ids stay unique during the trace
        self._stack: List[str] = []
        self._inputs: List[Tuple[int, ...]] = []  # buffers of the arguments of the modules running
        self.input_root_id: Optional[int] = None

    def buffer(self, array: np.ndarray) -> int:
        root = _root(array)
        key = id(root)
        index = self._ids.get(key)
        if index is None:
            index = self._ids[key] = len(self.trace.buffer_bytes)
            self._keep.append(root)
            self.trace.buffer_bytes.append(int(root.nbytes))
            kind = PARAM if key in self.param_roots else INPUT if key == self.input_root_id else ACT
            self.trace.buffer_kind.append(kind)
        return index

    def pre_hook(self, name):
        def hook(module, args):
            self._stack.append(name)
            self._inputs.append(tuple(self.buffer(a.numpy()) for a in args if isinstance(a, Tensor)))
        hook._fastconv_observer = True  # only observes: fused layers stay fused (nn/modules/fusion.py)
        return hook

    def post_hook(self, name):
        def hook(module, args, output):
            self._stack.pop()
            last = len(self.trace.calls) - 1
            self.trace.holds.extend((b, last) for b in self._inputs.pop())
            if name not in self.trace.module_outputs and isinstance(output, Tensor):
                self.trace.module_outputs[name] = tuple(output.shape)
        hook._fastconv_observer = True
        return hook

    def __call__(self, cls, ctx, args, kwargs, outputs):
        shapes, bufs = [], []
        for a in args:
            array = a.numpy() if isinstance(a, Tensor) else a
            if isinstance(array, np.ndarray):
                shapes.append(tuple(array.shape))
                bufs.append(self.buffer(array))
            else:
                shapes.append(None)
                bufs.append(None)
        saved = ctx.saved_tensors if ctx.recording else ()
        self.trace.calls.append(RawCall(
            function=cls,
            layer=self._stack[-1] if self._stack else "",
            arg_shapes=tuple(shapes),
            arg_bufs=tuple(bufs),
            needs=tuple(ctx.needs_input_grad),
            kwargs=dict(kwargs),
            out_bufs=tuple(self.buffer(o.numpy()) for o in outputs),
            out_shapes=tuple(tuple(o.shape) for o in outputs),
            saved_bufs=tuple(self.buffer(s) for s in saved if isinstance(s, np.ndarray)),
            saved_nbytes=int(ctx.saved_nbytes),
            recording=bool(ctx.recording),
        ))


def param_roots(model) -> Dict[int, np.ndarray]:
    """Buffers owned by the model's parameters and registered buffers, by id of their root array."""
    roots = {}
    for t in list(model.parameters()) + list(model.buffers()):
        r = _root(t.numpy())
        roots[id(r)] = r
    return roots


def record_forward(model, input_shape: Sequence[int], batch: int, dtype: np.dtype, train: bool) -> RawTrace:
    """One forward at ``batch`` (grad enabled in training, no_grad otherwise), fully recorded."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(dtype)
    recorder = _Recorder(model, param_roots(model))
    recorder.input_root_id = id(_root(x))
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(recorder.pre_hook(name)))
        handles.append(module.register_forward_hook(recorder.post_hook(name)))
    add_observer(recorder)
    try:
        with enable_grad() if train else no_grad():
            out = model(Tensor._wrap(x))
    finally:
        remove_observer(recorder)
        for h in handles:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else (out,)
    recorder.trace.output_bufs = tuple(recorder.buffer(o.numpy()) for o in outs if isinstance(o, Tensor))
    return recorder.trace


# ---- two traces → one batch-scalable trace -------------------------------------------------

@dataclass
class TracedCall:
    """One Function call with every size expressed as a function of the batch size."""

    index: int
    function: type
    layer: str
    arg_shapes: Tuple[Optional[Scalable], ...]
    arg_bufs: Tuple[Optional[int], ...]
    needs: Tuple[bool, ...]
    kwargs: Dict[str, Scalable]
    out_bufs: Tuple[int, ...]
    out_shapes: Tuple[Scalable, ...]
    saved_bufs: Tuple[int, ...]
    saved_nbytes: Affine
    recording: bool

    def shapes_at(self, batch: int) -> Tuple[Optional[Tuple[int, ...]], ...]:
        return tuple(None if s is None else s.at(batch) for s in self.arg_shapes)

    def kwargs_at(self, batch: int) -> Dict[str, Any]:
        return {k: v.at(batch) for k, v in self.kwargs.items()}


@dataclass
class Trace:
    """A recorded forward pass, evaluable at any batch size."""

    calls: List[TracedCall]
    buffer_bytes: List[Affine]
    buffer_kind: List[str]
    module_outputs: Dict[str, Scalable]
    output_bufs: Tuple[int, ...]
    train: bool
    holds: Tuple[Tuple[int, int], ...] = ()


def combine(t2: RawTrace, t3: RawTrace, train: bool) -> Trace:
    """Merge the traces at the two batch sizes; the model must issue the same calls at both."""
    if len(t2.calls) != len(t3.calls) or len(t2.buffer_bytes) != len(t3.buffer_bytes):
        raise ValueError(f"memory_summary: the model issued {len(t2.calls)} Function calls at batch "
                         f"{TRACE_BATCHES[0]} but {len(t3.calls)} at batch {TRACE_BATCHES[1]}; its control flow "
                         "depends on the batch size, so it cannot be profiled statically")
    calls = []
    for i, (a, b) in enumerate(zip(t2.calls, t3.calls)):
        if (a.function is not b.function or a.arg_bufs != b.arg_bufs or a.out_bufs != b.out_bufs
                or a.saved_bufs != b.saved_bufs or a.needs != b.needs):
            raise ValueError(f"memory_summary: call {i} differs between batch sizes {TRACE_BATCHES} "
                             f"({a.function.__name__} in '{a.layer}' vs {b.function.__name__} in '{b.layer}'); "
                             "cannot profile a model whose structure depends on the batch size")
        what = f"{a.function.__name__} (in '{a.layer}')"
        calls.append(TracedCall(
            index=i, function=a.function, layer=a.layer,
            arg_shapes=tuple(None if s is None else Scalable(s, t, f"the argument shape of {what}")
                             for s, t in zip(a.arg_shapes, b.arg_shapes)),
            arg_bufs=a.arg_bufs, needs=a.needs,
            kwargs={k: Scalable(v, b.kwargs.get(k), f"option {k} of {what}") for k, v in a.kwargs.items()},
            out_bufs=a.out_bufs,
            out_shapes=tuple(Scalable(s, t, f"the output shape of {what}")
                             for s, t in zip(a.out_shapes, b.out_shapes)),
            saved_bufs=a.saved_bufs, saved_nbytes=_fit_int(a.saved_nbytes, b.saved_nbytes),
            recording=a.recording,
        ))
    outputs = {name: Scalable(shape, t3.module_outputs.get(name), f"the output shape of '{name}'")
               for name, shape in t2.module_outputs.items()}
    return Trace(calls=calls, buffer_bytes=[_fit_int(x, y) for x, y in zip(t2.buffer_bytes, t3.buffer_bytes)],
                 buffer_kind=list(t2.buffer_kind), module_outputs=outputs, output_bufs=t2.output_bufs, train=train,
                 holds=tuple(t2.holds))


def trace_model(model, input_shape: Sequence[int], dtype: np.dtype, train: bool) -> Trace:
    """Trace ``model`` (already in the wanted train/eval state and dtype) at two tiny batches."""
    raw = [record_forward(model, input_shape, b, dtype, train) for b in TRACE_BATCHES]
    return combine(raw[0], raw[1], train)
