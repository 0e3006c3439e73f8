"""``Optimizer``: parameter groups with per-group options, per-parameter state, PyTorch's state_dict layout.

Subclasses implement ``_update(group, params)``; updates run in place on the parameters' arrays (``param.numpy()``, never
recorded on the tape); one fused kernel call per parameter (``fastconv._kernels.optim``, see
``fused_update``), and skip parameters whose ``grad`` is None.
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .._config import get_num_threads
from .._validation import FLOAT_DTYPES
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor

# Parameters with at least this many elements are updated by all kernel threads (below it the
# OpenMP fork/join costs more than the memory-bound pass saves).
PARALLEL_MIN_ELEMENTS = 1 << 16


class ParamState:
    """Per-parameter state keyed by identity (``opt.state[p]``), like PyTorch's ``defaultdict``."""

    def __init__(self) -> None:
        self._items: Dict[int, Tuple[Tensor, dict]] = {}

    def __getitem__(self, param: Tensor) -> dict:
        entry = self._items.get(id(param))
        if entry is None:
            entry = (param, {})
            self._items[id(param)] = entry
        return entry[1]

    def __setitem__(self, param: Tensor, value: dict) -> None:
        self._items[id(param)] = (param, value)

    def __contains__(self, param: Tensor) -> bool:
        return id(param) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Tensor]:
        return (p for p, _ in self._items.values())

    def items(self) -> Iterator[Tuple[Tensor, dict]]:
        return iter(list(self._items.values()))

    def clear(self) -> None:
        self._items.clear()


def _plain(value: Any) -> Any:
    """Numbers as Python numbers, tuples as lists (the layout fastconv.save writes without pickle)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _check_params(params: list, op: str) -> None:
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected parameters as Tensors, got {type(p).__name__}")
        if p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: expected float32 or float64 parameters, got a parameter of dtype {p.dtype}")
        if not p.is_leaf:
            raise ValueError(f"{op}: can't optimize a non-leaf Tensor (shape {p.shape}); pass leaf tensors")


def _split_names(items: list, op: str) -> Tuple[list, Optional[List[str]]]:
    """(tensors, names) of a group given as tensors or as ``(name, tensor)`` pairs (``named_parameters()``,
    accepted as by PyTorch, which then keeps 'param_names' in the group); names are None without pairs."""
    pairs = [isinstance(p, tuple) for p in items]
    if not any(pairs):
        return items, None
    if not all(pairs) or any(len(p) != 2 or not isinstance(p[0], str) for p in items):
        raise ValueError(f"{op}: all optimizer params should be with/without names (name, Tensor) pairs; "
                         f"some param names are missing")
    return [p[1] for p in items], [p[0] for p in items]


def compat_options(op: str, foreach=None, differentiable: bool = False, fused=None, capturable=None) -> dict:
    """PyTorch's implementation switches, kept in the groups as PyTorch keeps them. ``foreach``,
    ``fused`` and ``capturable`` change nothing here (every update is one fused CPU kernel call per
    parameter); ``differentiable=True`` (autograd through the step) is not supported."""
    if differentiable:
        raise ValueError(f"{op}: differentiable=True (autograd through the optimizer step) is not supported")
    for flag, value in (("foreach", foreach), ("fused", fused)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{op}: expected {flag} as None or a bool, got {value!r}")
    options = {"foreach": foreach, "differentiable": False, "fused": fused}
    if capturable is not None:
        options["capturable"] = bool(capturable)
    return options


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with 'params' and options) and ``state``."""

    def __init__(self, params: Iterable, defaults: Dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state = ParamState()
        self.param_groups: List[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (e.g. new layers while fine-tuning); missing options take the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: expected a param group as a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: param group is missing the 'params' key, got keys {sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters need to be organized in ordered collections, got a set")
        params, names = _split_names(list(params), name)
        _check_params(params, name)
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same parameter more than once")
        for group in self.param_groups:
            if ids & {id(p) for p in group["params"]}:
                raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group = {k: v for k, v in param_group.items() if k not in ("params", "param_names")}
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate_group(group)
        if self.param_groups and ("param_names" in self.param_groups[0]) != (names is not None):
            raise ValueError(f"{name}: all optimizer params should be with/without names; some param groups have "
                             f"names and others do not")
        group["params"] = params
        if names is not None:
            group["param_names"] = names
        self.param_groups.append(group)

    def _validate_group(self, group: dict) -> None:
        """Check a group's options (subclasses raise ValueError naming the option)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients: drop them (default, saves memory) or zero them in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.numpy()[...] = 0

    def step(self, closure: Optional[Callable[[], Any]] = None):
        """One update of every parameter with a gradient; ``closure`` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)
        return loss

    def _update(self, group: dict, params: List[Tensor]) -> None:
        raise NotImplementedError

    # ---- state_dict ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` (copies)."""
        index = 0
        groups = []
        state = {}
        for group in self.param_groups:
            packed = {k: _plain(v) for k, v in group.items() if k != "params"}
            indices = []
            for p in group["params"]:
                if p in self.state:
                    state[index] = {k: v.copy() if isinstance(v, np.ndarray) else _plain(v)
                                    for k, v in self.state[p].items()}
                indices.append(index)
                index += 1
            packed["params"] = indices
            groups.append(packed)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore options and state saved by ``state_dict`` for the same parameters in the same order."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a state_dict with 'state' and 'param_groups' keys")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: loaded state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}")
        index_to_param = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            saved_ids = [int(_plain(k)) for k in np.asarray(saved["params"]).reshape(-1)]
            if len(saved_ids) != len(group["params"]):
                raise ValueError(
                    f"{name}: loaded state dict has a parameter group {i} of size {len(saved_ids)}, "
                    f"the optimizer's group {i} has {len(group['params'])} parameters")
            index_to_param.update(zip(saved_ids, group["params"]))
        new_state = ParamState()
        for key, values in state_dict["state"].items():
            idx = int(_plain(key))
            if idx not in index_to_param:
                raise ValueError(f"{name}: loaded state refers to parameter index {idx}, which no group lists")
            p = index_to_param[idx]
            entry = {}
            for k, v in values.items():
                if isinstance(v, np.ndarray) and v.ndim > 0:
                    if v.shape != p.shape:
                        raise ValueError(
                            f"{name}: loaded state '{k}' of parameter {idx} has shape {v.shape}, "
                            f"the parameter has shape {p.shape}")
                    entry[k] = np.array(v, dtype=p.dtype, order="C")  # the layout the kernels take
                else:
                    entry[k] = copy.deepcopy(_plain(v))
            new_state[p] = entry
        for group, saved in zip(self.param_groups, saved_groups):
            for k, v in saved.items():
                if k == "params":
                    continue
                v = _plain(v)
                if isinstance(v, np.ndarray):
                    v = [_plain(x) for x in v]
                if isinstance(group.get(k, self.defaults.get(k)), tuple) and isinstance(v, list):
                    v = tuple(v)
                group[k] = v
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


_PLACEHOLDERS = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def placeholder(dtype) -> np.ndarray:
    """An empty array of ``dtype`` for a kernel state argument the options leave unread."""
    return _PLACEHOLDERS[np.dtype(dtype)]


def state_array(state: dict, key: str, param: np.ndarray, op: str) -> np.ndarray:
    """``state[key]`` as a C-contiguous array of the parameter's dtype and shape, the layout the fused
    kernels update in place (an array set or loaded in another layout is replaced by such a copy)."""
    value = state[key]
    if not (isinstance(value, np.ndarray) and value.dtype == param.dtype and value.flags.c_contiguous):
        value = state[key] = np.array(value, dtype=param.dtype, order="C")
    if value.shape != param.shape:
        raise ValueError(f"{op}: state '{key}' has shape {value.shape}, the parameter has shape {param.shape}")
    return value


def fused_update(op: str, kernel, param: Tensor, states: Tuple[np.ndarray, ...], *options) -> None:
    """Run ``kernel(param, grad, *states, *options, threads)`` of ``fastconv._kernels.optim`` in place
    on ``param.numpy()``, on 1-D views.

    The gradient is taken in the parameter's dtype (PyTorch requires them to agree); a parameter
    that is not C-contiguous is updated through a contiguous copy written back afterwards.
    ``states`` are arrays from ``state_array`` (or fresh C-contiguous arrays), or placeholders the
    kernel does not read.
    """
    data = param.numpy()
    grad = param.grad.numpy()
    if grad.shape != data.shape:
        raise ValueError(f"{op}: gradient of shape {grad.shape} does not match its parameter of shape {data.shape}")
    if grad.dtype != data.dtype or not grad.flags.c_contiguous:
        grad = np.ascontiguousarray(grad, dtype=data.dtype)
    work = data if data.flags.c_contiguous else np.ascontiguousarray(data)
    threads = get_num_threads() if data.size >= PARALLEL_MIN_ELEMENTS else 1
    kernel(work.ravel(), grad.ravel(), *[s.ravel() for s in states], *options, threads)  # views: all contiguous
    if work is not data:
        data[...] = work
    param._bump_version()  # an in-place change: a graph that saved the old values refuses backward


def check_option(op: str, name: str, value: Any, minimum: float = 0.0, maximum: Optional[float] = None,
                 open_max: bool = False) -> None:
    """A real-valued hyperparameter within [minimum, maximum] (or [minimum, maximum) when open_max)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: expected {name} as a real number, got {value!r}")
    too_big = maximum is not None and (value >= maximum if open_max else value > maximum)
    if not value >= minimum or too_big:
        hi = "" if maximum is None else (f" and < {maximum}" if open_max else f" and <= {maximum}")
        raise ValueError(f"{op}: expected {name} >= {minimum}{hi}, got {value!r}")
