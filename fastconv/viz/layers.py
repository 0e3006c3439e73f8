"""Shared plumbing of the visualizations: inputs, layer lookup, running a model up to a layer.

Every method names layers the same way (an index into a Sequential, a dotted name from
``named_modules()``, or the module object) and runs models the same way (eval mode, hooks
removed afterwards even on error), so these helpers live here once.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.modules.container import Sequential
from ..tensor import Tensor

LayerRef = Union[int, str, Module]


def model_dtype(model: Module) -> np.dtype:
    """The dtype of the model's first parameter (float32 for a model without parameters)."""
    for p in model.parameters():
        return p.numpy().dtype
    return np.dtype(np.float32)


def as_batch(x, op: str, dtype=None) -> np.ndarray:
    """An (N, C, H, W) float array from an (N, C, H, W) or (C, H, W) ndarray or Tensor."""
    arr = x.numpy() if isinstance(x, Tensor) else x
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{op}: expected the input as an ndarray or Tensor, got {type(x).__name__}")
    if arr.dtype.kind != "f" or arr.dtype == np.float16:
        raise TypeError(f"{op}: expected a float32 or float64 input, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{op}: expected an image (C, H, W) or a batch (N, C, H, W), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{op}: expected at least one image, got an empty batch of shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype if dtype is not None else arr.dtype)


def as_image(x, op: str, dtype=None) -> np.ndarray:
    """One image as a (1, C, H, W) array; a batch of more than one image is a ValueError."""
    batch = as_batch(x, op, dtype)
    if batch.shape[0] != 1:
        raise ValueError(f"{op}: expected one image (C, H, W) or (1, C, H, W), got a batch of shape {batch.shape}")
    return batch


def check_index(value, size: int, op: str, what: str, owner: str) -> int:
    """An int in [0, size) (e.g. a channel or class), with an error naming both sides."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: expected {what} as an int, got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{op}: {what} {int(value)} is out of range: {owner} has {size} (0..{size - 1})")
    return int(value)


def resolve_layer(model: Module, layer: LayerRef, op: str) -> Tuple[str, Module]:
    """(dotted name, module) for an index into a Sequential, a name from named_modules(), or a module."""
    if not isinstance(model, Module):
        raise TypeError(f"{op}: expected a fastconv Module as the model, got {type(model).__name__}")
    if isinstance(layer, Module):
        for name, mod in model.named_modules():
            if mod is layer and name:
                return name, mod
        raise ValueError(f"{op}: the given {type(layer).__name__} is not a sub-module of the model")
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not isinstance(model, Sequential):
            raise TypeError(f"{op}: integer layer indices need a Sequential model, got {type(model).__name__}; "
                            f"pass a name from named_modules() or the module itself")
        n = len(model)
        if not -n <= layer < n:
            raise ValueError(f"{op}: layer index {int(layer)} is out of range for a Sequential of {n} layers")
        key = list(model._modules.keys())[int(layer)]
        return key, model._modules[key]
    if isinstance(layer, str):
        modules = {name: mod for name, mod in model.named_modules() if name}
        if layer in modules:
            return layer, modules[layer]
        raise ValueError(f"{op}: unknown layer name {layer!r}; the model's layers are {sorted(modules)}")
    raise TypeError(f"{op}: expected the layer as an int index, a name or a Module, got {type(layer).__name__}")


@contextlib.contextmanager
def evaluating(model: Module) -> Iterator[Module]:
    """Eval mode (batch-norm running statistics, no dropout) inside the block; each module's mode restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


@contextlib.contextmanager
def frozen(model: Module) -> Iterator[Module]:
    """Parameters stop requiring grad inside the block, so input gradients leave ``.grad`` of weights alone."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _Reached(Exception):
    """Raised by a hook to stop the forward pass once the wanted layer has produced its output."""

    def __init__(self, output):
        super().__init__("layer reached")
        self.output = output


def _first(output):
    """A layer's main output (max pooling with return_indices returns (values, indices))."""
    return output[0] if isinstance(output, tuple) else output


def run_to(model: Module, x: Tensor, layer: LayerRef, op: str) -> Tensor:
    """The output of ``layer`` for input ``x``; the forward pass stops there (the hook is always removed)."""
    name, module = resolve_layer(model, layer, op)

    def stop(mod, inputs, output):
        raise _Reached(_first(output))

    handle = module.register_forward_hook(stop)
    try:
        model(x)
    except _Reached as reached:
        return reached.output
    finally:
        handle.remove()
    raise ValueError(f"{op}: layer {name!r} ({type(module).__name__}) was not called by the model's forward")


def layer_output(model: Module, x, layer: LayerRef, op: str) -> np.ndarray:
    """``run_to`` in eval mode under no_grad, returned as an ndarray."""
    batch = Tensor._wrap(as_batch(x, op, model_dtype(model)))
    with evaluating(model), no_grad():
        return run_to(model, batch, layer, op).numpy()


def record_outputs(model: Module, x: Tensor, modules: Sequence[Tuple[str, Module]]) -> Dict[str, np.ndarray]:
    """Run the whole model once and return the outputs of ``modules`` by name (hooks removed afterwards)."""
    outputs: Dict[str, np.ndarray] = {}
    handles = []
    try:
        for name, module in modules:
            def keep(mod, inputs, output, name=name):
                outputs.setdefault(name, _first(output).numpy())
            handles.append(module.register_forward_hook(keep))
        model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


def sequential_leaves(model: Module, prefix: str = "") -> List[Tuple[str, Module]]:
    """The layers of a (nested) Sequential in execution order; other modules count as one layer."""
    leaves: List[Tuple[str, Module]] = []
    for key, child in model._modules.items():
        if child is None:
            continue
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(child, Sequential):
            leaves.extend(sequential_leaves(child, name))
        else:
            leaves.append((name, child))
    return leaves


def layer_chain(model: Module, layer: LayerRef, op: str) -> List[Tuple[str, Module]]:
    """The layers of a Sequential from the input up to and including ``layer`` (for geometry and deconv)."""
    if not isinstance(model, Sequential):
        raise TypeError(f"{op}: expected a Sequential model (its layers form one chain), got {type(model).__name__}")
    _, target = resolve_layer(model, layer, op)
    leaves = sequential_leaves(model)
    last = sequential_leaves(target)[-1][1] if isinstance(target, Sequential) else target
    for i, (_, mod) in enumerate(leaves):
        if mod is last:
            return leaves[:i + 1]
    raise ValueError(f"{op}: layer {layer!r} is inside a non-Sequential block; name that block instead")


def iterate_batches(dataset, batch_size: int, op: str, indices=None):
    """(indices, x, y-or-None) batches of a dataset in order (vectorized ``get_batch`` when available)."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"{op}: expected a dataset with __len__ and __getitem__, got {type(dataset).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{op}: expected batch_size as a positive int, got {batch_size!r}")
    order = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    if order.size == 0:
        raise ValueError(f"{op}: expected a non-empty dataset, got {len(order)} samples")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if callable(getattr(dataset, "get_batch", None)):
            fields = tuple(dataset.get_batch(idx))
        else:
            samples = [dataset[int(i)] for i in idx]
            samples = [s if isinstance(s, (tuple, list)) else (s,) for s in samples]
            fields = tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))
        yield idx, fields[0], (np.asarray(fields[1]) if len(fields) > 1 else None)


def dataset_images(dataset, indices, op: str) -> np.ndarray:
    """The inputs at ``indices`` stacked into one array (for thumbnails)."""
    return np.concatenate([x for _, x, _ in iterate_batches(dataset, 256, op, indices)])
