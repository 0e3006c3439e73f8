"""Differentiable operations that select or place elements by index (each forward next to its backward):
value-selecting reductions (max/min over a dim, sort, topk), gather/scatter, index_select,
masked_fill, item assignment and the two steps of an in-place change of a view.

Indices are int64 outputs marked non-differentiable; backward sends each gradient back to the
position its value came from (``np.add.at`` where an index may repeat)."""
from __future__ import annotations

import numpy as np

from ._tensor_ops import unbroadcast
from .autograd.function import Function


def _keep(a: np.ndarray, axis: int, keepdims: bool) -> np.ndarray:
    return a if keepdims else np.squeeze(a, axis=axis)


def _scatter_back(g: np.ndarray, indices: np.ndarray, shape, axis: int) -> np.ndarray:
    """The gradient of values taken along ``axis`` at ``indices`` (distinct per line): zeros of
    ``shape`` with ``g`` put back at those positions."""
    out = np.zeros(shape, dtype=g.dtype)
    np.put_along_axis(out, indices, g, axis=axis)
    return out


# ---- value-selecting reductions ----------------------------------------------------------------

class ExtremumDim(Function):
    """max/min along one dim with the index of the first extreme (NaN propagates, as in PyTorch);
    the gradient goes to that index only."""

    @staticmethod
    def forward(ctx, a, axis=0, keepdims=False, largest=True):
        idx = np.expand_dims(np.argmax(a, axis=axis) if largest else np.argmin(a, axis=axis), axis)
        values = np.take_along_axis(a, idx, axis=axis)
        ctx.mark_non_differentiable(1)
        ctx.save_for_backward(idx)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return _keep(values, axis, keepdims), _keep(idx.astype(np.int64, copy=False), axis, keepdims)

    @staticmethod
    def backward(ctx, g, _):
        (idx,) = ctx.saved_tensors
        g = g if ctx.keepdims else np.expand_dims(g, ctx.axis)
        return _scatter_back(g, idx, ctx.shape, ctx.axis)


def sort_indices(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable sort order along ``axis``; NaN counts as the largest value (last ascending, first
    descending, as in PyTorch). Descending keeps equal values in their original order: the
    reversed array is sorted ascending and the order read backwards."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    order = np.argsort(np.flip(a, axis=axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(order, axis=axis)


class Sort(Function):
    """Values and int64 indices of a sort along one dim."""

    @staticmethod
    def forward(ctx, a, axis=-1, descending=False):
        idx = sort_indices(a, axis, descending)
        ctx.mark_non_differentiable(1)
        ctx.save_for_backward(idx)
        ctx.shape, ctx.axis = a.shape, axis
        return np.take_along_axis(a, idx, axis=axis), idx.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, g, _):
        (idx,) = ctx.saved_tensors
        return _scatter_back(g, idx, ctx.shape, ctx.axis)


class TopK(Function):
    """The k largest (or smallest) values along one dim and their int64 indices, sorted."""

    @staticmethod
    def forward(ctx, a, k=1, axis=-1, largest=True):
        idx = np.take(sort_indices(a, axis, descending=largest), np.arange(k), axis=axis)
        ctx.mark_non_differentiable(1)
        ctx.save_for_backward(idx)
        ctx.shape, ctx.axis = a.shape, axis
        return np.take_along_axis(a, idx, axis=axis), idx.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, g, _):
        (idx,) = ctx.saved_tensors
        return _scatter_back(g, idx, ctx.shape, ctx.axis)


# ---- gather / scatter / index_select -----------------------------------------------------------

def _index_grid(index: np.ndarray, axis: int):
    """The full advanced index that addresses, for each element of ``index``, the position
    ``index`` names along ``axis`` and its own position along every other dim."""
    grid = list(np.ogrid[tuple(slice(n) for n in index.shape)])
    grid[axis] = index
    return tuple(grid)


def _leading(shape):
    """Slices selecting the first ``shape`` elements of each dim."""
    return tuple(slice(n) for n in shape)


class Gather(Function):
    """out[i][j] = a[index[i][j]][j] (axis 0); index may be smaller than a in the other dims."""

    @staticmethod
    def forward(ctx, a, index=None, axis=0):
        grid = _index_grid(index, axis)
        ctx.grid, ctx.shape = grid, a.shape
        return np.asarray(a[grid])

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=g.dtype)
        np.add.at(out, ctx.grid, g)
        return out


class Scatter(Function):
    """a with a[index[i][j]][j] = src[i][j] (axis 0), or a scalar ``value``; ``add`` accumulates
    (scatter_add). ``inplace`` writes into a's array (the in-place form)."""

    @staticmethod
    def forward(ctx, a, src=None, index=None, axis=0, add=False, inplace=False):
        grid = _index_grid(index, axis)
        out = a if inplace else a.copy()
        values = src[_leading(index.shape)] if isinstance(src, np.ndarray) and src.ndim else src
        if add:
            np.add.at(out, grid, values)
        else:
            out[grid] = values
        ctx.grid, ctx.add = grid, add
        ctx.src_shape = np.shape(src)
        ctx.index_shape = index.shape
        return out

    @staticmethod
    def backward(ctx, g):
        na, ns = ctx.needs_input_grad
        ga = gs = None
        if na:
            ga = g
            if not ctx.add:
                ga = g.copy()
                ga[ctx.grid] = 0
        if ns:
            picked = g[ctx.grid]
            if len(ctx.src_shape) == 0:
                gs = np.asarray(picked.sum(), dtype=g.dtype)
            else:
                gs = np.zeros(ctx.src_shape, dtype=g.dtype)
                gs[_leading(ctx.index_shape)] = picked
        return ga, gs


class IndexSelect(Function):
    """The entries ``index`` (1-D) of a along one dim; repeated indices accumulate in backward."""

    @staticmethod
    def forward(ctx, a, index=None, axis=0):
        ctx.index, ctx.axis, ctx.shape = index, axis, a.shape
        return np.take(a, index, axis=axis)

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=g.dtype)
        np.add.at(np.moveaxis(out, ctx.axis, 0), ctx.index, np.moveaxis(g, ctx.axis, 0))
        return out


class MaskedFill(Function):
    """a with ``value`` where ``mask`` (broadcast to a) is True; value may be a 0-d array that
    needs grad (it receives the sum of the gradient over the filled positions)."""

    @staticmethod
    def forward(ctx, a, value, mask=None, inplace=False):
        out = a if inplace else a.copy()
        np.copyto(out, np.asarray(value, dtype=a.dtype), where=mask)
        ctx.save_for_backward(mask)
        ctx.value_shape = np.shape(value)
        return out

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        na, nv = ctx.needs_input_grad
        ga = np.where(mask, 0, g).astype(g.dtype, copy=False) if na else None
        gv = None
        if nv:
            gv = np.asarray(np.where(mask, g, 0).sum(), dtype=g.dtype).reshape(ctx.value_shape)
        return ga, gv


class Fill(Function):
    """Every element of a set to ``value`` (a scalar or a 0-d array that may need grad), in a's
    array: the in-place fill_/zero_/normal_ of a tensor on the tape (a's old values get no gradient)."""

    @staticmethod
    def forward(ctx, a, value):
        a[...] = value
        ctx.value_shape = np.shape(value)
        return a

    @staticmethod
    def backward(ctx, g):
        na, nv = ctx.needs_input_grad
        return (np.zeros_like(g) if na else None,
                np.asarray(g.sum(), dtype=g.dtype).reshape(ctx.value_shape) if nv else None)


class Copy(Function):
    """a's elements replaced by src (broadcast), in a's array: ``copy_``."""

    @staticmethod
    def forward(ctx, a, src):
        ctx.src_shape = np.shape(src)
        np.copyto(a, src, casting="unsafe")
        return a

    @staticmethod
    def backward(ctx, g):
        na, ns = ctx.needs_input_grad
        return (np.zeros_like(g) if na else None, unbroadcast(g, ctx.src_shape) if ns else None)


class SetItem(Function):
    """a[index] = value, in a's array (item assignment on the tape)."""

    @staticmethod
    def forward(ctx, a, value, index=None):
        a[index] = value
        ctx.index, ctx.value_shape = index, np.shape(value)
        return a

    @staticmethod
    def backward(ctx, g):
        na, nv = ctx.needs_input_grad
        ga = gv = None
        if na:
            ga = g.copy()
            ga[ctx.index] = 0
        if nv:
            gv = unbroadcast(np.asarray(g[ctx.index]), ctx.value_shape)
        return ga, gv


# ---- in-place changes of views --------------------------------------------------------------------

def view_of(array: np.ndarray, steps) -> np.ndarray:
    """The view of ``array`` that the view ops ``steps`` ((Function, options) pairs) make."""
    for function, options in steps:
        array = function.view(array, **options)
    return array


class ViewScatter(Function):
    """base with its view (``steps``) replaced by v, written into base's array: the base's side
    of an in-place op on one of its views (PyTorch's CopySlices)."""

    @staticmethod
    def forward(ctx, base, v, steps=()):
        target = view_of(base, steps)
        if not np.may_share_memory(target, v):  # an op that wrote into the view already
            target[...] = v
        ctx.steps = steps
        return base

    @staticmethod
    def backward(ctx, g):
        nb, nv = ctx.needs_input_grad
        gb = gv = None
        if nv:
            gv = np.array(view_of(g, ctx.steps))
        if nb:
            gb = g.copy()
            view_of(gb, ctx.steps)[...] = 0
        return gb, gv
