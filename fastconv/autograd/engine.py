"""Backward: an iterative walk of the tape in reverse topological order.

Nodes are Function contexts. Each node runs once, after every node that feeds gradient
into it has run (dependency counting, as in PyTorch's engine), so a chain of any length
needs no recursion. Gradients reaching a leaf are accumulated into ``leaf.grad``.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from . import function as _function
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
    """For every node below ``roots``, how many edges lead into it (a node runs when all have
    delivered). Roots count only edges from other nodes; a root reached from another root is not
    walked twice."""
    deps: Dict[object, int] = {}
    stack = list(roots)
    root_set = set(roots)
    while stack:
        for edge in stack.pop().next_edges:
            if type(edge) is tuple:
                child = edge[0]
                if child in deps:
                    deps[child] += 1
                else:
                    deps[child] = 1
                    if child not in root_set:
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
    Tensor = _function._tensor_type or _Tensor()
    for hook in leaf._hooks or ():
        out = hook(Tensor._wrap(grad))
        if out is not None:
            grad = out._array if isinstance(out, Tensor) else np.asarray(out)
            owned = False
    if leaf.grad is None:
        keep = owned and grad.base is None and grad.dtype == leaf._array.dtype and grad.flags.writeable
        leaf.grad = Tensor._wrap(grad if keep else np.array(grad, dtype=leaf._array.dtype, copy=True))
    else:
        leaf.grad = Tensor._wrap(leaf.grad._array + grad)
    for hook in leaf._post_hooks or ():
        hook(leaf)


def _run_output_hooks(node, grads: List) -> None:
    Tensor = _Tensor()
    if node.tensor_hooks:
        for i, hooks in node.tensor_hooks.items():
            for hook in hooks:
                out = hook(Tensor._wrap(grads[i]))
                if out is not None:
                    grads[i] = out._array if isinstance(out, Tensor) else np.asarray(out)
    if node.retained:
        for i, ref in node.retained.items():
            t = ref()
            if t is not None:
                t.grad = Tensor._wrap(grads[i].copy()) if t.grad is None else Tensor._wrap(t.grad._array + grads[i])


def run_backward(tensors: Sequence, grads: Sequence[np.ndarray], retain_graph: bool = False) -> None:
    """Propagate ``grads`` (one per tensor) back through the tape to the leaves."""
    try:
        _propagate(tensors, grads, retain_graph)
        if _final_callbacks:
            _run_final_callbacks()
    finally:
        _final_callbacks.clear()


def _propagate(tensors, grads, retain_graph: bool) -> None:
    buffers, roots = _seed_buffers(tensors, grads)
    deps = _count_dependencies(roots)
    ready = []
    for r in roots:  # a loop, not a comprehension: Python 3.11 makes a frame for one
        if r not in deps:
            ready.append(r)
    while ready:
        node = ready.pop()
        grads_out = buffers.pop(node, None)
        edges = node.next_edges
        if grads_out is None:
            # No gradient reached this node: nothing to compute, but its inputs stop waiting.
            grads_in = (None,) * len(edges)
        else:
            grads_in = _call_backward(node, grads_out, retain_graph)
        for i, edge in enumerate(edges):
            if edge is None:
                continue
            g = grads_in[i]
            if type(edge) is tuple:
                child, index = edge
                if g is not None:
                    _buffer_grad(buffers, node, i, child, index, g)
                left = deps[child] - 1
                deps[child] = left
                if left == 0:
                    ready.append(child)
            elif g is not None:
                _deliver_to_leaf(node, i, edge, g, grads_in, grads_out)


def _seed_buffers(tensors, grads):
    """The output-gradient buffers ``{node: [grad per output]}`` of the nodes behind ``tensors``
    and those nodes (the roots, in order); a gradient for a leaf among ``tensors`` goes straight
    into its ``.grad``."""
    buffers: Dict[object, List] = {}
    roots = []
    for t, g in zip(tensors, grads):
        node = t.grad_fn
        if node is None:
            if t.requires_grad:
                _accumulate_leaf(t, g)
            continue
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * len(node.output_meta)
            roots.append(node)
        index = t._output_index
        buf[index] = g if buf[index] is None else buf[index] + g
    return buffers, roots


def _call_backward(node, grads_out: List, retain_graph: bool):
    """Run ``node``'s backward on its output gradients (zeros for outputs no gradient reached, after
    the tensor hooks and ``retain_grad``), check it returned one gradient per input, release its
    saved arrays unless ``retain_graph``; return the input gradients as a tuple."""
    for i, g in enumerate(grads_out):
        if g is None:
            shape, dtype = node.output_meta[i]
            grads_out[i] = np.zeros(shape, dtype=dtype)
    if node.tensor_hooks or node.retained:
        _run_output_hooks(node, grads_out)
    if node._released:
        node.saved_tensors  # raises the "backward a second time" error
    if node.saved_versions is not None:
        node.check_versions()
    grads_in = node.function.backward(node, *grads_out)
    if type(grads_in) is not tuple:
        grads_in = (grads_in,)
    if len(grads_in) != len(node.next_edges):
        raise RuntimeError(
            f"{node.function.__name__}.backward returned {len(grads_in)} gradients, "
            f"expected {len(node.next_edges)} (one per positional input)"
        )
    if not retain_graph:
        node.release()
    return grads_in


def _buffer_grad(buffers, node, i, child, index, g) -> None:
    """Add ``g`` (``node``'s gradient for its input ``i``) to output ``index`` of ``child``, after
    checking it against that output's shape and dtype."""
    shape, dtype = child.output_meta[index]
    if type(g) is not np.ndarray or g.shape != shape or g.dtype != dtype:
        g = _check_grad(node, i, g, shape, dtype)
    buf = buffers.get(child)
    if buf is None:
        buf = buffers[child] = [None] * len(child.output_meta)
    buf[index] = g if buf[index] is None else buf[index] + g


def _deliver_to_leaf(node, i, leaf, g, grads_in, grads_out) -> None:
    """Accumulate ``g`` (``node``'s gradient for its input ``i``) into ``leaf.grad``, after checking
    it against the leaf's shape and dtype. A fresh array made by this backward (not a view, given
    to this input only, not one of the output gradients passed in) is kept instead of copied."""
    data = leaf._array
    if type(g) is np.ndarray and g.shape == data.shape and g.dtype == data.dtype:
        checked = g  # what _check_grad would return, without the call
        if (leaf.grad is None and leaf._hooks is None and leaf._post_hooks is None
                and g.flags.writeable and _fresh(g, grads_in, grads_out)):
            # what _accumulate_leaf(leaf, g, owned=True) does here, without the call
            leaf.grad = (_function._tensor_type or _Tensor())._wrap(g)
            return
    else:
        checked = _check_grad(node, i, g, data.shape, data.dtype)
    # Only a first gradient can be kept, so accumulation skips the scan (a False is always safe: a copy).
    owned = checked is g and leaf.grad is None and _fresh(g, grads_in, grads_out)
    _accumulate_leaf(leaf, checked, owned)


def _fresh(g: np.ndarray, grads_in, grads_out) -> bool:
    """Whether no one but the leaf will hold ``g``: it is not a view, it is exactly one of the
    gradients ``grads_in`` a backward returned (by identity) and none of the output gradients
    ``grads_out`` it received."""
    if g.base is not None:
        return False
    count = 0
    for a in grads_in:
        if a is g:
            count += 1
    if count != 1:
        return False
    for a in grads_out:
        if a is g:
            return False
    return True
