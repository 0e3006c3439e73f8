"""``Sequential`` (layers applied in order) and ``ModuleList`` (an indexable list of sub-modules)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Union

from ..module import Module
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
