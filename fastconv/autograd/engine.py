"""Backward: an iterative walk of the tape in reverse topological order.

Nodes are Function contexts. Each node runs once, after every node that feeds gradient
into it has run (dependency counting, as in PyTorch's engine), so a chain of any length
needs no recursion. Gradients reaching a leaf are accumulated into ``leaf.grad``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .function import _Tensor

_final_callbacks: List = []


def queue_callback(callback) -> None:
    """Run ``callback()`` once when the backward pass in progress finishes (e.g. to wait for
    gradient allreduces started by hooks during backward)."""
    _final_callbacks.append(callback)


def _run_final_callbacks() -> None:
    while _final_callbacks:
        _final_callbacks.pop(0)()


def _count_dependencies(roots) -> Dict[object, int]:
    deps: Dict[object, int] = {}
    stack = list(roots)
    seen = set(id(r) for r in roots)
    while stack:
        node = stack.pop()
        for edge in node.next_edges:
            if type(edge) is tuple:
                child = edge[0]
                deps[child] = deps.get(child, 0) + 1
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
    return deps


def _check_grad(node, index, grad, shape, dtype):
    if not isinstance(grad, np.ndarray):
        grad = np.asarray(grad, dtype=dtype)
    if grad.shape != shape:
        raise RuntimeError(
            f"{node.function.__name__}.backward returned a gradient of shape {grad.shape} for "
            f"input {index}, expected {shape}"
        )
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _accumulate_leaf(leaf, grad: np.ndarray, owned: bool = False) -> None:
    """Add ``grad`` into ``leaf.grad``; ``owned`` means no one else holds the array, so it is kept
    as is instead of copied (a leaf's .grad must never alias another gradient)."""
    Tensor = _Tensor()
    for hook in leaf._hooks or ():
        out = hook(Tensor._wrap(grad))
        if out is not None:
            grad = out.data if isinstance(out, Tensor) else np.asarray(out)
            owned = False
    if leaf.grad is None:
        keep = owned and grad.base is None and grad.dtype == leaf.data.dtype and grad.flags.writeable
        leaf.grad = Tensor._wrap(grad if keep else np.array(grad, dtype=leaf.data.dtype, copy=True))
    else:
        leaf.grad = Tensor._wrap(leaf.grad.data + grad)
    for hook in leaf._post_hooks or ():
        hook(leaf)


def _run_output_hooks(node, grads: List) -> None:
    Tensor = _Tensor()
    if node.tensor_hooks:
        for i, hooks in node.tensor_hooks.items():
            for hook in hooks:
                out = hook(Tensor._wrap(grads[i]))
                if out is not None:
                    grads[i] = out.data if isinstance(out, Tensor) else np.asarray(out)
    if node.retained:
        for i, ref in node.retained.items():
            t = ref()
            if t is not None:
                t.grad = Tensor._wrap(grads[i].copy()) if t.grad is None else Tensor._wrap(t.grad.data + grads[i])


def run_backward(tensors: Sequence, grads: Sequence[np.ndarray], retain_graph: bool = False) -> None:
    """Propagate ``grads`` (one per tensor) back through the tape to the leaves."""
    try:
        _propagate(tensors, grads, retain_graph)
        _run_final_callbacks()
    finally:
        _final_callbacks.clear()


def _propagate(tensors, grads, retain_graph: bool) -> None:
    buffers: Dict[object, List] = {}
    roots = []
    for t, g in zip(tensors, grads):
        if t.grad_fn is None:
            if t.requires_grad:
                _accumulate_leaf(t, g)
            continue
        node = t.grad_fn
        if node not in buffers:
            buffers[node] = [None] * len(node.output_meta)
            roots.append(node)
        buf = buffers[node]
        buf[t._output_index] = g if buf[t._output_index] is None else buf[t._output_index] + g
    deps = _count_dependencies(roots)
    ready = [r for r in roots if deps.get(r, 0) == 0]

    def _done_with(child):
        deps[child] -= 1
        if deps[child] == 0:
            ready.append(child)

    while ready:
        node = ready.pop()
        grads_out = buffers.pop(node, None)
        edges = node.next_edges
        if grads_out is None:
            # No gradient reached this node: nothing to compute, but its inputs stop waiting.
            for edge in edges:
                if type(edge) is tuple:
                    _done_with(edge[0])
            continue
        if _holds(grads_out, None):
            for i, g in enumerate(grads_out):
                if g is None:
                    shape, dtype = node.output_meta[i]
                    grads_out[i] = np.zeros(shape, dtype=dtype)
        if node.tensor_hooks or node.retained:
            _run_output_hooks(node, grads_out)
        if node._released:
            node.saved_tensors  # raises the "backward a second time" error
        grads_in = node.function.backward(node, *grads_out)
        if type(grads_in) is not tuple:
            grads_in = (grads_in,)
        if len(grads_in) != len(edges):
            raise RuntimeError(
                f"{node.function.__name__}.backward returned {len(grads_in)} gradients, "
                f"expected {len(edges)} (one per positional input)"
            )
        if not retain_graph:
            node.release()
        for i, edge in enumerate(edges):
            if edge is None:
                continue
            g = grads_in[i]
            if type(edge) is tuple:
                child, index = edge
                if g is not None:
                    shape, dtype = child.output_meta[index]
                    if type(g) is not np.ndarray or g.shape != shape or g.dtype != dtype:
                        g = _check_grad(node, i, g, shape, dtype)
                    buf = buffers.get(child)
                    if buf is None:
                        buf = buffers[child] = [None] * len(child.output_meta)
                    buf[index] = g if buf[index] is None else buf[index] + g
                deps[child] -= 1
                if deps[child] == 0:
                    ready.append(child)
            elif g is not None:
                checked = _check_grad(node, i, g, edge.data.shape, edge.data.dtype)
                # a fresh array made by this backward, given to this input only, can be kept
                owned = checked is g and _only_once(g, grads_in) and not _holds(grads_out, g)
                _accumulate_leaf(edge, checked, owned)


def _only_once(g, arrays) -> bool:
    """Whether ``g`` is exactly one of ``arrays`` (by identity)."""
    count = 0
    for a in arrays:
        if a is g:
            count += 1
    return count == 1


def _holds(arrays, g) -> bool:
    """Whether ``g`` is one of ``arrays`` (by identity)."""
    for a in arrays:
        if a is g:
            return True
    return False
