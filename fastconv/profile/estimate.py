"""Static memory and compute estimate of a model at any batch size, from one tiny traced forward.

Each traced call is evaluated at the requested batch through its Function's own declarations:
``saved_bytes`` (what the tape keeps), ``workspace_bytes`` / ``forward_workspace_bytes`` (transient
buffers) and ``macs`` (multiply-adds). Functions without ``macs`` (element-wise ops, pooling,
normalization, losses) count 0 multiply-adds: the total is the GEMM work of convolutions,
linear layers and matmuls. A Function without ``saved_bytes`` gets the affine fit of what the
tape saved at the two trace batches. Peaks come from ``peak.replay_*``.
"""
from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..nn.module import Module
from ..random import get_rng_state, set_rng_state
from .checks import MODES, OPTIMIZERS, check_batch, check_choice, check_dtype, parse_shape
from .peak import ReplayCall, replay_eval, replay_train
from .summary import MemorySummary
from .trace import PARAM, TRACE_BATCHES, Trace, TracedCall, trace_model

# persistent parameter-sized state (rmsprop without momentum or centering; adagrad's sum, adadelta's two averages)
STATE_COPIES = {None: 0, "sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2, "adagrad": 1, "rmsprop": 1, "adadelta": 2}
# of the largest parameter, in step() (none: fused in-place kernels)
STEP_TEMPORARIES = {name: 0 for name in STATE_COPIES}


# ---- tracing without side effects ------------------------------------------------------------

@contextmanager
def _preserved(model: Module, train: bool):
    """Put the model in train/eval state; restore modes, buffers (running stats) and the RNG after."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(t, t.numpy().copy()) for t in model.buffers()]
    rng = get_rng_state()
    model.train(train)
    try:
        yield
    finally:
        for m, flag in modes:
            object.__setattr__(m, "training", flag)
        for t, saved in buffers:
            t.numpy()[...] = saved
        set_rng_state(rng)


def _in_dtype(model: Module, dtype: np.dtype) -> Module:
    """The model itself when its floating parameters already have ``dtype``, else a cast copy."""
    floats = [p.numpy().dtype for p in model.parameters() if p.numpy().dtype.kind == "f"]
    if all(d == dtype for d in floats):
        return model
    return copy.deepcopy(model).to(dtype)


# ---- evaluating one call at a batch ------------------------------------------------------------

_TAKES_NEEDS: dict = {}


def _workspace_takes_needs(fn) -> bool:
    """Whether ``fn.workspace_bytes`` declares a ``needs_input_grad`` keyword (its backward then
    depends on which gradients are wanted, as conv2d's dX and dW passes do)."""
    takes = _TAKES_NEEDS.get(fn)
    if takes is None:
        takes = _TAKES_NEEDS[fn] = "needs_input_grad" in inspect.signature(fn.workspace_bytes).parameters
    return takes


class CallCost:
    """Declared costs of one call at one batch size."""

    __slots__ = ("saved", "param_saved", "workspace", "forward_workspace", "macs_forward", "macs_backward")

    def __init__(self, call: TracedCall, trace: Trace, batch: int, dtype: np.dtype):
        fn = call.function
        shapes, kwargs = call.shapes_at(batch), call.kwargs_at(batch)
        if hasattr(fn, "saved_bytes"):
            self.saved = int(fn.saved_bytes(shapes, dtype, call.needs, **kwargs))
        else:
            self.saved = call.saved_nbytes.at(batch)
        self.param_saved = sum(trace.buffer_bytes[b].at(batch) for b in set(call.saved_bufs)
                               if trace.buffer_kind[b] == PARAM)
        self.workspace = 0
        if hasattr(fn, "workspace_bytes"):
            needs = {"needs_input_grad": call.needs} if _workspace_takes_needs(fn) else {}
            self.workspace = int(fn.workspace_bytes(shapes, dtype, **kwargs, **needs))
        self.forward_workspace = (int(fn.forward_workspace_bytes(shapes, dtype, call.needs, **kwargs))
                                  if hasattr(fn, "forward_workspace_bytes") else self.workspace)
        if hasattr(fn, "macs"):
            f, b = fn.macs(shapes, call.needs, **kwargs)
            self.macs_forward, self.macs_backward = int(f), int(b)
        else:
            self.macs_forward = self.macs_backward = 0

    @property
    def activation_saved(self) -> int:
        """Saved bytes that are not views of parameters (those cost nothing extra)."""
        return self.saved - self.param_saved


def check_declarations(trace: Trace, dtype: np.dtype) -> None:
    """Every declared ``saved_bytes`` must equal what the tape saved at both trace batches."""
    for call in trace.calls:
        fn = call.function
        if not hasattr(fn, "saved_bytes"):
            continue
        for b in TRACE_BATCHES:
            declared = int(fn.saved_bytes(call.shapes_at(b), dtype, call.needs, **call.kwargs_at(b)))
            if declared != call.saved_nbytes.at(b):
                raise RuntimeError(
                    f"memory_summary: {fn.__name__}.saved_bytes declares {declared} bytes but the tape saved "
                    f"{call.saved_nbytes.at(b)} at batch {b} (in layer '{call.layer}', argument shapes "
                    f"{call.shapes_at(b)}); the declaration next to its forward is out of date")


# ---- the profile -------------------------------------------------------------------------------

class ModelProfile:
    """A model traced once in train and in eval state; evaluates summaries at any batch size."""

    def __init__(self, model: Module, input_shape: Sequence[int], dtype="float32", optimizer=None,
                 op: str = "memory_summary"):
        if not isinstance(model, Module):
            raise TypeError(f"{op}: expected a fastconv.nn.Module, got {type(model).__name__}")
        self.input_shape = parse_shape(input_shape, op)
        self.dtype = check_dtype(dtype, op)
        self.optimizer = check_choice(optimizer, OPTIMIZERS, op, "optimizer")
        self.name = type(model).__name__
        self.model = _in_dtype(model, self.dtype)
        self.traces: Dict[str, Trace] = {}
        for mode in MODES:
            with _preserved(self.model, mode == "train"):
                try:
                    self.traces[mode] = trace_model(self.model, self.input_shape, self.dtype, mode == "train")
                except (ValueError, TypeError) as e:
                    if str(e).startswith(op):
                        raise
                    raise type(e)(f"{op}: the model rejects input of shape (N,) + {self.input_shape}: {e}") from e
            check_declarations(self.traces[mode], self.dtype)
        self._modules = [(name, m) for name, m in self.model.named_modules()]

    # -- per call ---------------------------------------------------------------------------
    def costs(self, mode: str, batch: int) -> List[CallCost]:
        trace = self.traces[mode]
        return [CallCost(c, trace, batch, self.dtype) for c in trace.calls]

    def _replay_calls(self, mode: str, costs: List[CallCost], workspace: bool = True) -> List[ReplayCall]:
        return [ReplayCall(name=c.function.__name__, recording=c.recording, needs=c.needs, arg_bufs=c.arg_bufs,
                           out_bufs=c.out_bufs, saved_bufs=c.saved_bufs, workspace=k.workspace * workspace,
                           forward_workspace=k.forward_workspace * workspace)
                for c, k in zip(self.traces[mode].calls, costs)]

    # -- peaks ------------------------------------------------------------------------------
    def persistent_bytes(self, batch: int, train: bool, augment_copies: int) -> Dict[str, int]:
        params = [p for p in self.model.parameters()]
        trainable = sum(p.numpy().nbytes for p in params if p.requires_grad)
        largest = max([p.numpy().nbytes for p in params if p.requires_grad], default=0)
        return {
            "data_bytes": (1 + augment_copies) * batch * int(np.prod(self.input_shape)) * self.dtype.itemsize,
            "param_bytes": sum(p.numpy().nbytes for p in params),
            "buffer_bytes": sum(t.numpy().nbytes for t in self.model.buffers()),
            "optimizer_state_bytes": STATE_COPIES[self.optimizer] * trainable if train else 0,
            "step_temp_bytes": STEP_TEMPORARIES[self.optimizer] * largest,
        }

    def train_peak(self, batch: int, augment_copies: int = 0, workspace: bool = True):
        """(total peak bytes, Peak, per-call costs); ``workspace=False`` leaves out transient
        buffers, which makes the peak monotone in the batch (used to bound searches)."""
        trace = self.traces["train"]
        costs = self.costs("train", batch)
        sizes = [a.at(batch) for a in trace.buffer_bytes]
        fixed = self.persistent_bytes(batch, True, augment_copies)
        peak, _ = replay_train(self._replay_calls("train", costs, workspace), sizes, trace.buffer_kind,
                                            trace.output_bufs, fixed["step_temp_bytes"],
                                            step=self.optimizer is not None, holds=trace.holds)
        base = fixed["data_bytes"] + fixed["param_bytes"] + fixed["buffer_bytes"] + fixed["optimizer_state_bytes"]
        return base + peak.bytes, peak, costs

    def eval_peak(self, batch: int, augment_copies: int = 0, workspace: bool = True):
        trace = self.traces["eval"]
        costs = self.costs("eval", batch)
        sizes = [a.at(batch) for a in trace.buffer_bytes]
        fixed = self.persistent_bytes(batch, False, augment_copies)
        peak = replay_eval(self._replay_calls("eval", costs, workspace), sizes, trace.buffer_kind,
                           trace.output_bufs, holds=trace.holds)
        return fixed["data_bytes"] + fixed["param_bytes"] + fixed["buffer_bytes"] + peak.bytes, peak, costs

    def peak(self, batch: int, mode: str, augment_copies: int = 0, workspace: bool = True) -> int:
        return (self.train_peak if mode == "train" else self.eval_peak)(batch, augment_copies, workspace)[0]

    # -- the summary ------------------------------------------------------------------------
    def summary(self, batch: int, mode: str = "train", augment_copies: int = 0) -> MemorySummary:
        train = mode == "train"
        train_total, train_peak, train_costs = self.train_peak(batch, augment_copies)
        eval_total, eval_peak, eval_costs = self.eval_peak(batch, augment_copies)
        rows = self._rows(batch, mode, train_costs, eval_costs)
        fixed = self.persistent_bytes(batch, train, augment_copies)
        params = list(self.model.parameters())
        trace = self.traces[mode]
        totals = {
            "params": sum(int(p.numpy().size) for p in params),
            "trainable_params": sum(int(p.numpy().size) for p in params if p.requires_grad),
            "data_bytes": fixed["data_bytes"],
            "param_bytes": fixed["param_bytes"],
            "buffer_bytes": fixed["buffer_bytes"],
            "grad_bytes": sum(r["grad_bytes"] for r in rows),
            "optimizer_state_bytes": fixed["optimizer_state_bytes"],
            "saved_activation_bytes": sum(r["saved_bytes"] for r in rows),
            "tape_bytes": sum(k.saved for k in (train_costs if train else eval_costs)),
            "workspace_bytes": max([k.workspace if train else k.forward_workspace
                                    for k in (train_costs if train else eval_costs)], default=0),
            "output_bytes": sum(trace.buffer_bytes[b].at(batch) for b in trace.output_bufs),
            "macs_forward": sum(k.macs_forward for k in train_costs),
            "macs_forward_backward": sum(k.macs_forward + k.macs_backward for k in train_costs),
            "train_peak_bytes": train_total,
            "eval_peak_bytes": eval_total,
            "peak_bytes": train_total if train else eval_total,
            "train_peak_at": self._where(train_peak, "train"),
            "eval_peak_at": self._where(eval_peak, "eval"),
        }
        meta = {"model": self.name, "input_shape": self.input_shape, "batch_size": batch,
                "dtype": str(self.dtype), "optimizer": self.optimizer, "mode": mode,
                "augment_copies": augment_copies}
        return MemorySummary(rows=rows, totals=totals, meta=meta)

    def _where(self, peak, mode: str) -> str:
        calls = self.traces[mode].calls
        if 0 <= peak.call < len(calls):
            c = calls[peak.call]
            return f"{peak.phase} of {c.function.__name__} in '{c.layer or self.name}'"
        return peak.phase

    def _rows(self, batch: int, mode: str, train_costs, eval_costs) -> List[dict]:
        train = mode == "train"
        trace = self.traces[mode]
        costs = train_costs if train else eval_costs
        by_layer: Dict[str, List[int]] = {}
        for i, c in enumerate(trace.calls):
            by_layer.setdefault(c.layer, []).append(i)
        # forward+backward MACs always come from the training trace (same call order per layer)
        train_by_layer: Dict[str, List[int]] = {}
        for i, c in enumerate(self.traces["train"].calls):
            train_by_layer.setdefault(c.layer, []).append(i)
        order = {name: idx[0] for name, idx in by_layer.items()}
        rows = []
        for name, module in sorted(self._modules, key=lambda nm: order.get(nm[0], len(trace.calls))):
            own = list(module.parameters(recurse=False))
            if name not in by_layer and not own and not list(module.buffers(recurse=False)):
                continue
            idx = by_layer.get(name, [])
            tidx = train_by_layer.get(name, [])
            trainable = sum(p.numpy().nbytes for p in own if p.requires_grad)
            shape = trace.module_outputs.get(name)
            rows.append({
                "name": name or self.name,
                "type": type(module).__name__,
                "output_shape": None if shape is None else tuple(shape.at(batch)),
                "params": sum(int(p.numpy().size) for p in own),
                "param_bytes": sum(p.numpy().nbytes for p in own),
                "saved_bytes": sum(costs[i].activation_saved for i in idx) if train else 0,
                "tape_bytes": sum(costs[i].saved for i in idx) if train else 0,
                "grad_bytes": trainable if train else 0,
                "optimizer_state_bytes": STATE_COPIES[self.optimizer] * trainable if train else 0,
                "workspace_bytes": max([costs[i].workspace if train else costs[i].forward_workspace
                                        for i in idx], default=0),
                "macs_forward": sum(train_costs[i].macs_forward for i in tidx),
                "macs_forward_backward": sum(train_costs[i].macs_forward + train_costs[i].macs_backward
                                             for i in tidx),
            })
        return rows


def memory_summary(model: Module, input_shape: Union[Sequence[int], str], batch_size: int,
                   dtype="float32", optimizer: Optional[str] = None, mode: str = "train",
                   augment_copies: int = 0) -> MemorySummary:
    """Per-layer and total memory (parameters, gradients, optimizer state, saved activations,
    workspace, train/eval peaks) and multiply-adds of ``model`` at ``batch_size``, without
    running it at that batch: one tiny forward is traced and every size scaled exactly."""
    op = "memory_summary"
    batch = check_batch(batch_size, op)
    check_choice(mode, MODES, op, "mode")
    if not isinstance(augment_copies, (int, np.integer)) or isinstance(augment_copies, bool) or augment_copies < 0:
        raise ValueError(f"{op}: expected augment_copies as an int >= 0, got {augment_copies!r}")
    return ModelProfile(model, input_shape, dtype, optimizer, op).summary(batch, mode, int(augment_copies))
