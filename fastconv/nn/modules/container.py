"""Containers: ``Sequential`` (layers applied in order), ``ModuleList``, ``ModuleDict``, ``ParameterList``
and ``ParameterDict`` (PyTorch's semantics: registered children/parameters, state_dict keys by position or key)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Iterator, Union

import numpy as np

from ...tensor import Tensor
from ..module import Module, Parameter
from .fusion import run_sequence


def _position(index, length: int, owner: str) -> int:
    """A non-negative position for an int index (negative counts from the end)."""
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"{owner}: indices must be integers or slices, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} is out of range for {length} modules")
    return index % length


def _check_module(module, owner: str) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: expected a Module, got {type(module).__name__}")
    return module


class Sequential(Module):
    """Applies its modules in order; ``Sequential(a, b)`` or ``Sequential(OrderedDict(name=module))``.
    A BatchNorm directly followed by a ReLU (or ReLU6) runs as one fused call when neither carries
    hooks (same results; see ``fastconv.nn.modules.fusion``).

    Keys are '0', '1', ... like PyTorch's, so state_dict keys match (``0.weight``). Slicing returns a
    Sequential that shares the same layer objects under their original keys: ``model[:-1]`` is the
    feature extractor ("CNN codes") of a trained classifier, and ``model[-1] = Linear(...)``
    replaces its head.
    """

    def __init__(self, *args: Union[Module, "OrderedDict[str, Module]"]):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, _check_module(module, "Sequential"))
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), _check_module(module, "Sequential"))

    def _keys(self):
        return list(self._modules.keys())

    def __getitem__(self, index):
        if isinstance(index, slice):
            items = list(self._modules.items())[index]
            return Sequential(OrderedDict(items))
        keys = self._keys()
        return self._modules[keys[_position(index, len(keys), "Sequential")]]

    def __setitem__(self, index: int, module: Module) -> None:
        keys = self._keys()
        key = keys[_position(index, len(keys), "Sequential")]
        self._modules[key] = _check_module(module, "Sequential")

    def __delitem__(self, index) -> None:
        keys = self._keys()
        doomed = keys[index] if isinstance(index, slice) else [keys[_position(index, len(keys), "Sequential")]]
        for key in doomed:
            del self._modules[key]
        # renumber so that keys stay '0', '1', ... (as PyTorch does)
        remaining = list(self._modules.values())
        self._modules.clear()
        for i, module in enumerate(remaining):
            self._modules[str(i)] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Add a module at the end (key: the next free integer)."""
        n = len(self)
        while str(n) in self._modules:
            n += 1
        self.add_module(str(n), _check_module(module, "Sequential.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> "Sequential":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> "Sequential":
        """Insert before position ``index`` and renumber the keys."""
        items = list(self._modules.values())
        n = len(items)
        if not -n <= index <= n:
            raise IndexError(f"Sequential.insert: index {index} is out of range for {n} modules")
        items.insert(index % (n + 1) if index < 0 else index, _check_module(module, "Sequential.insert"))
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m
        return self

    def forward(self, input):
        # a batch norm directly followed by a ReLU/ReLU6 runs as one fused call (see fusion.py)
        return run_sequence(list(self._modules.values()), input)


class ModuleList(Module):
    """A list of modules whose parameters are registered (keys '0', '1', ...); no forward of its own."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self.extend(modules)

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[_position(index, len(values), "ModuleList")]

    def __setitem__(self, index: int, module: Module) -> None:
        keys = list(self._modules.keys())
        self._modules[keys[_position(index, len(keys), "ModuleList")]] = _check_module(module, "ModuleList")

    def __delitem__(self, index) -> None:
        values = list(self._modules.values())
        if isinstance(index, slice):
            del values[index]
        else:
            del values[_position(index, len(values), "ModuleList")]
        self._modules.clear()
        for i, m in enumerate(values):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        values = list(self._modules.values())
        values.insert(index, _check_module(module, "ModuleList.insert"))
        self._modules.clear()
        for i, m in enumerate(values):
            self._modules[str(i)] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your Module's forward")


def _pairs(values, owner: str):
    """(key, value) pairs of a mapping or of an iterable of 2-sequences, as PyTorch's update() accepts."""
    if isinstance(values, Mapping) or isinstance(values, (ModuleDict, ParameterDict)):
        return list(values.items())
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{owner}.update: expected a mapping or an iterable of key/value pairs, "
                        f"got {type(values).__name__}")
    pairs = []
    for i, item in enumerate(values):
        if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
            raise TypeError(f"{owner}.update: element #{i} is a {type(item).__name__}, expected a key/value pair")
        item = tuple(item)
        if len(item) != 2:
            raise ValueError(f"{owner}.update: element #{i} has length {len(item)}; 2 is required")
        pairs.append(item)
    return pairs


def _checked_key(key, owner: str, kind: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{owner}: {kind} names must be strings, got {type(key).__name__} {key!r}")
    if not key or "." in key:
        raise KeyError(f"{owner}: {kind} name must be non-empty and can't contain '.', got {key!r}")
    return key


class ModuleDict(Module):
    """An ordered dict of sub-modules, registered under their keys (state_dict keys ``key.weight``).

    Behaves like PyTorch's: indexing by key, ``in``, ``len``, iteration over keys, ``keys/values/items``,
    ``update`` (mapping or key/value pairs), ``pop``, ``clear``. No forward of its own.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(key)
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(_checked_key(key, "ModuleDict", "module"), _check_module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules) -> None:
        """Add or replace modules from a mapping (in its order) or an iterable of (key, module) pairs."""
        for key, module in _pairs(modules, "ModuleDict"):
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it in your Module's forward")


def _as_parameter(value, owner: str) -> Parameter:
    """Parameters are kept as they are; Tensors and arrays become Parameters sharing their data."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, (Tensor, np.ndarray)):
        return Parameter(value)
    raise TypeError(f"{owner}: expected a Parameter, Tensor or ndarray, got {type(value).__name__}")


def _parameter_line(key: str, p: Parameter) -> str:
    size = "x".join(str(s) for s in p.shape)
    return f"({key}): Parameter containing: [{p.dtype} of size {size}]"


class ParameterList(Module):
    """A list of Parameters registered under '0', '1', ... (Tensors and arrays are wrapped as Parameters)."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def _key(self, index) -> str:
        return str(_position(index, len(self), "ParameterList"))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ParameterList(list(self._parameters.values())[index])
        return self._parameters[self._key(index)]

    def __setitem__(self, index: int, value) -> None:
        self.register_parameter(self._key(index), _as_parameter(value, "ParameterList"))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def __iadd__(self, values) -> "ParameterList":
        return self.extend(values)

    def append(self, value) -> "ParameterList":
        self.register_parameter(str(len(self)), _as_parameter(value, "ParameterList.append"))
        return self

    def extend(self, values) -> "ParameterList":
        if isinstance(values, (Tensor, np.ndarray)) or not isinstance(values, Iterable):
            raise TypeError(f"ParameterList.extend: expected an iterable of Parameters, got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(_parameter_line(k, p) for k, p in self._parameters.items())

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterList has no forward(); iterate over it in your Module's forward")


class ParameterDict(Module):
    """An ordered dict of Parameters registered under their keys (Tensors and arrays are wrapped).

    Dict methods as in PyTorch: indexing, ``in``, ``len``, iteration over keys, ``keys/values/items``,
    ``get``, ``pop``, ``popitem``, ``setdefault``, ``update``, ``copy``, ``fromkeys``, ``clear``, ``|``.
    """

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        if key not in self._parameters:
            raise KeyError(key)
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        self.register_parameter(_checked_key(key, "ParameterDict", "parameter"), _as_parameter(value, "ParameterDict"))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __reversed__(self) -> Iterator[str]:
        return reversed(list(self._parameters))

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def items(self):
        return self._parameters.items()

    def values(self):
        return self._parameters.values()

    def get(self, key: str, default=None):
        return self._parameters.get(key, default)

    def pop(self, key: str) -> Parameter:
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        if not self._parameters:
            raise KeyError("popitem(): ParameterDict is empty")
        key = next(reversed(self._parameters))
        return key, self.pop(key)

    def setdefault(self, key: str, default=None):
        if key not in self._parameters:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        self._parameters.clear()

    def update(self, parameters) -> None:
        """Add or replace entries from a mapping (in its order) or an iterable of (key, value) pairs."""
        for key, value in _pairs(parameters, "ParameterDict"):
            self[key] = value

    def copy(self) -> "ParameterDict":
        """A new ParameterDict holding the same Parameter objects."""
        return ParameterDict(OrderedDict(self._parameters.items()))

    def fromkeys(self, keys, default=None) -> "ParameterDict":
        return ParameterDict((k, default) for k in keys)

    def __or__(self, other) -> "ParameterDict":
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other) -> "ParameterDict":
        merged = ParameterDict(other)
        merged.update(self)
        return merged

    def __ior__(self, other) -> "ParameterDict":
        self.update(other)
        return self

    def extra_repr(self) -> str:
        return "\n".join(_parameter_line(k, p) for k, p in self._parameters.items())

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterDict has no forward(); index it in your Module's forward")
