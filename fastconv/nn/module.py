"""``Module`` (the base of every layer) and ``Parameter`` (a trainable Tensor), shaped like PyTorch's.

A Module registers what is assigned to it: Parameters become its parameters, Modules its
children, and ``register_buffer`` adds non-trainable state (e.g. batch-norm running statistics).
``state_dict()`` flattens all of it into dotted keys (``0.weight``, ``1.running_mean``) that equal
PyTorch's for the same architecture, with numpy arrays as values.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import numpy as np

from .._device import cpu_only_error, cuda_device, to_args
from ..tensor import Tensor, _to_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Parameter(Tensor):
    """A Tensor that a Module treats as trainable: float, a leaf, ``requires_grad=True`` by default.

    Wrapping a Tensor or ndarray shares its array (like ``torch.nn.Parameter``); Python lists
    become float32.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        arr = data.numpy() if isinstance(data, Tensor) else _to_array(data)
        if arr.dtype not in _FLOATS:
            raise TypeError(f"Parameter: expected float32 or float64 data, got dtype {arr.dtype}")
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """Returned by hook registration; ``remove()`` (or leaving a ``with`` block) unregisters the hook."""

    _next_id = itertools.count()

    def __init__(self, hooks: "OrderedDict[int, Callable]"):
        self._hooks = hooks
        self.id = next(RemovableHandle._next_id)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(strict=False)`` could not match (PyTorch's return value)."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _as_array(value, key: str) -> np.ndarray:
    if isinstance(value, Tensor):  # what fc.load returns for saved Tensors
        return value.detach().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is reported with the key
        raise TypeError(f"load_state_dict: value for '{key}' is not array-like ({type(value).__name__}): {exc}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"load_state_dict: expected a numeric array for '{key}', got dtype {arr.dtype}")
    return arr


class Module:
    """Base class of layers and models: subclass, create sub-layers in ``__init__``, define ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ---- computation ---------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Module must define forward()")

    def __call__(self, *args, **kwargs):
        """Run the pre-hooks, ``forward``, then the post-hooks (each may replace inputs/output)."""
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs)`` runs before forward; returning a value replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, inputs, output)`` runs after forward; returning a value replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ---- registration --------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: cannot assign '{name}' before Module.__init__() is called")
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} to parameter "
                                f"'{name}' (expected a Parameter or None)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} to child module "
                                f"'{name}' (expected a Module or None)")
            modules[name] = None
        elif name in buffers:
            buffers[name] = None if value is None else self._buffer_tensor(value, name)
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: Optional[dict] = None) -> None:
        """Drop ``name`` from every registry but ``keep`` (where a re-registration then replaces it in
        place, keeping its position in state_dict order as PyTorch does) and from plain attributes."""
        for store in (self._parameters, self._modules, self._buffers):
            if store is not keep:
                store.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    @staticmethod
    def _check_name(kind: str, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"register_{kind}: expected the name as a str, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"register_{kind}: name must be a non-empty string without '.', got {name!r}")

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Add a Parameter (or None, e.g. ``bias=False``) under ``name``."""
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected a Parameter or None for '{name}', "
                            f"got {type(param).__name__}")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add non-trainable state (array or Tensor, stored as a Tensor); ``persistent`` puts it in state_dict."""
        self._check_name("buffer", name)
        self._forget(name, keep=self._buffers)
        self._buffers[name] = None if tensor is None else self._buffer_tensor(tensor, name)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    @staticmethod
    def _buffer_tensor(value, name: str) -> Tensor:
        if isinstance(value, Parameter):
            raise TypeError(f"register_buffer: '{name}' is a Parameter; use register_parameter")
        if isinstance(value, Tensor):
            return value
        if isinstance(value, np.ndarray):
            return Tensor._wrap(value)
        raise TypeError(f"register_buffer: expected an ndarray or Tensor for '{name}', got {type(value).__name__}")

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Add a child module under ``name`` (what attribute assignment does, for computed names)."""
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module for '{name}', got {type(module).__name__}")
        self._forget(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The sub-module at dotted path ``target`` ('' is self)."""
        mod = self
        for part in target.split(".") if target else ():
            child = mod._modules.get(part)
            if child is None:
                raise AttributeError(f"get_submodule: {type(mod).__name__} has no submodule '{part}' (in '{target}')")
            mod = child
        return mod

    # ---- iteration -----------------------------------------------------------------------------
    def named_modules(self, memo: Optional[Set[int]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """(dotted name, module) for self and every descendant, depth first, each module once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, mod in modules:
            for name, value in getattr(mod, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, Parameter), each shared Parameter once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and bulk changes ----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, batch norm uses batch statistics) for self and descendants."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: expected mode as a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze every parameter; frozen layers record nothing on the tape."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset parameter gradients: drop them (default) or fill them with zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._wrap(np.zeros_like(p.numpy()))

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every descendant, then on self (e.g. custom initialization)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _cast_floats(self, dtype) -> "Module":
        """Convert float parameters, gradients and buffers in place (Parameter objects are kept)."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.numpy().astype(dtype, copy=False)
            if p.grad is not None:
                p.grad = Tensor._wrap(p.grad.numpy().astype(dtype, copy=False))
        for m in self.modules():
            for name, b in m._buffers.items():
                if b is not None and b.dtype in _FLOATS:
                    b.data = b.numpy().astype(dtype, copy=False)
        return self

    def double(self) -> "Module":
        """float64 parameters and buffers (for gradcheck)."""
        return self._cast_floats(np.float64)

    def float(self) -> "Module":
        """float32 parameters and buffers."""
        return self._cast_floats(np.float32)

    def to(self, *args, **kwargs) -> "Module":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)`` (its dtype), as PyTorch's:
        float parameters and buffers take a float dtype; the only device is the CPU (others raise)."""
        dtype, _ = to_args(args, kwargs, "Module.to", Tensor)
        if dtype is None:
            return self
        if dtype not in _FLOATS:
            raise TypeError(f"Module.to: only floating point dtypes (float32, float64) are accepted, got {dtype}")
        return self._cast_floats(dtype)

    def cpu(self) -> "Module":
        return self

    def cuda(self, device=None) -> "Module":
        raise cpu_only_error(cuda_device(device), "Module.cuda")

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self, destination: Optional[Dict[str, np.ndarray]] = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Any]":
        """Copies of parameters and persistent buffers as numpy arrays under PyTorch's dotted keys.

        ``keep_vars=True`` returns the Parameter/Tensor objects themselves instead of copies.
        """
        out = OrderedDict() if destination is None else destination
        for mod_prefix, mod in self.named_modules(prefix=prefix.rstrip(".")):
            head = f"{mod_prefix}." if mod_prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[head + name] = p if keep_vars else p.numpy().copy()
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent_buffers:
                    out[head + name] = b if keep_vars else b.numpy().copy()
        return out

    def _state_targets(self) -> "OrderedDict[str, Tensor]":
        return self.state_dict(keep_vars=True)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> _IncompatibleKeys:
        """Copy arrays (or Tensors) into the parameters and buffers, keeping their dtypes.

        Shape mismatches are always an error; with ``strict`` missing or unexpected keys are too.
        Nothing is modified when an error is raised. Returns (missing_keys, unexpected_keys).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        problems: List[str] = []
        updates = []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = _as_array(state_dict[key], key)
            if value.shape != target.shape:
                problems.append(f"size mismatch for '{key}': expected shape {tuple(target.shape)} "
                                f"(from the model), got {tuple(value.shape)} (from the state_dict)")
            else:
                updates.append((target, value))
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        if problems:
            raise ValueError(f"load_state_dict: error(s) loading state_dict for {type(self).__name__}: "
                             + "; ".join(problems))  # one line: CLIs and logs show it whole
        for target, value in updates:
            if not target.numpy().flags.writeable:
                target.data = target.numpy().copy()
            target.numpy()[...] = value.astype(target.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ---- representation ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown inside ``Name(...)``; layers override it."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        if not self._modules:
            return f"{self._get_name()}({extra})"
        body = "\n  ".join(lines)
        return f"{self._get_name()}(\n  {body}\n)"
