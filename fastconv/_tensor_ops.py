"""Elementary differentiable operations behind Tensor's operators (each forward next to its backward)."""
from __future__ import annotations

import numpy as np

from ._config import elementwise_threads
from ._kernels import elementwise as _ew
from ._validation import FLOAT_DTYPES, normalize_axis
from .autograd.function import Function

# Same-shape float arrays from this size on go through the OpenMP element-wise kernels (one pass,
# all threads); smaller ones through numpy, whose single loop is then as fast as the kernel call.
_KERNEL_MIN_ELEMENTS = 1 << 14


def _kernel_operands(a, b) -> bool:
    """Whether a (op) b can run on the element-wise kernels: contiguous float arrays of one shape and
    dtype, large enough to be worth it."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype
            and a.size >= _KERNEL_MIN_ELEMENTS and a.dtype in FLOAT_DTYPES and a.flags.c_contiguous
            and b.flags.c_contiguous)


def _add(a, b):
    if _kernel_operands(a, b):
        y = np.empty(a.shape, dtype=a.dtype)
        _ew.add(a.reshape(-1), b.reshape(-1), y.reshape(-1), False, 0.0, elementwise_threads(y.size))
        return y
    return np.asarray(a + b)


def _mul(a, b):
    if _kernel_operands(a, b):
        y = np.empty(a.shape, dtype=a.dtype)
        _ew.mul(a.reshape(-1), b.reshape(-1), y.reshape(-1), elementwise_threads(y.size))
        return y
    return np.asarray(a * b)


def unbroadcast(grad: np.ndarray, shape) -> np.ndarray:
    """Sum ``grad`` over the axes numpy broadcasting added or stretched, back to ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _expand_reduced(grad: np.ndarray, shape, axes, keepdims: bool) -> np.ndarray:
    """Broadcast the gradient of a reduction back to the input's shape (a fresh array)."""
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdims:
        grad = np.expand_dims(grad, axes) if axes else grad
    out = np.empty(shape, dtype=grad.dtype)
    out[...] = grad
    return out


# ---- arithmetic -------------------------------------------------------------------------------

class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return _add(a, b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(a - b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(b if na else None, a if nb else None)
        ctx.shapes = (np.shape(a), np.shape(b))
        return _mul(a, b)

    @staticmethod
    def backward(ctx, g):
        b, a = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(_mul(g, b), sa) if na else None, unbroadcast(_mul(g, a), sb) if nb else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = np.asarray(a / b)
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)
        ctx.shapes = (np.shape(a), np.shape(b))
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        ga = unbroadcast(g / b, sa) if na else None
        gb = unbroadcast(-g * out / b, sb) if nb else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = np.asarray(a ** b)
        ctx.save_for_backward(a, b, out)
        ctx.shapes = (np.shape(a), np.shape(b))
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        ga = unbroadcast(g * b * a ** (b - 1), sa) if na else None
        gb = None
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(np.where(a > 0, g * out * np.log(np.where(a > 0, a, 1)), 0), sb)
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(b if na else None, a if nb else None)
        ctx.ndims = (a.ndim, b.ndim)
        ctx.shapes = (a.shape, b.shape)
        return np.asarray(np.matmul(a, b))

    @staticmethod
    def saved_bytes(shapes, dtype, needs_input_grad) -> int:
        """b when a needs grad, a when b needs grad."""
        itemsize = np.dtype(dtype).itemsize
        na, nb = needs_input_grad
        return itemsize * ((int(np.prod(shapes[1], dtype=np.int64)) if na else 0)
                           + (int(np.prod(shapes[0], dtype=np.int64)) if nb else 0))

    @staticmethod
    def macs(shapes, needs_input_grad):
        """Multiply-adds (forward, backward): batch·m·k·n; backward repeats it per operand needing grad."""
        sa, sb = (tuple(shapes[0]), tuple(shapes[1]))
        a2 = (1,) + sa if len(sa) == 1 else sa
        b2 = sb + (1,) if len(sb) == 1 else sb
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
        forward = int(np.prod(batch, dtype=np.int64)) * a2[-2] * a2[-1] * b2[-1]
        return forward, forward * (int(needs_input_grad[0]) + int(needs_input_grad[1]))

    @staticmethod
    def backward(ctx, g):
        b, a = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        da, db = ctx.ndims
        sa, sb = ctx.shapes
        if da == 1 and db == 1:  # inner product: g is a scalar
            return (g * b if na else None, g * a if nb else None)
        # Promote vectors to matrices so one formula serves every case.
        if da == 1:
            g = np.expand_dims(g, -2)
        if db == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if na:
            b2 = b[:, None] if db == 1 else b
            ga = np.matmul(g, np.swapaxes(b2, -1, -2))
            ga = ga[..., 0, :] if da == 1 else ga
            ga = unbroadcast(ga, sa)
        if nb:
            a2 = a[None, :] if da == 1 else a
            gb = np.matmul(np.swapaxes(a2, -1, -2), g)
            gb = gb[..., 0] if db == 1 else gb
            gb = unbroadcast(gb, sb)
        return ga, gb


# ---- elementwise ------------------------------------------------------------------------------

class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(np.sign(a))
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        (sign,) = ctx.saved_tensors
        return g * sign


class Clip(Function):
    @staticmethod
    def forward(ctx, a, lo=None, hi=None):
        inside = np.ones(a.shape, dtype=bool)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        ctx.save_for_backward(inside)
        return np.clip(a, lo, hi).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside


class Maximum(Function):
    """Elementwise max(a, b); where a == b each side gets half the gradient (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(np.maximum(a, b))

    @staticmethod
    def backward(ctx, g):
        return _select_backward(ctx, g, np.greater)


class Minimum(Function):
    """Elementwise min(a, b); ties share the gradient equally."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(np.minimum(a, b))

    @staticmethod
    def backward(ctx, g):
        return _select_backward(ctx, g, np.less)


def _select_backward(ctx, g, wins):
    """Gradients of an elementwise choice between a and b: all of g to the winner, half on ties."""
    a, b = ctx.saved_tensors
    na, nb = ctx.needs_input_grad
    sa, sb = ctx.shapes
    half = (a == b) * g.dtype.type(0.5)
    ga = unbroadcast(g * (wins(a, b) + half), sa) if na else None
    gb = unbroadcast(g * (wins(b, a) + half), sb) if nb else None
    return ga, gb


class ClampTensor(Function):
    """min(max(a, lo), hi) with tensor bounds (either may be None); each bound gets the gradient
    where it was chosen."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        out = a
        if lo is not None:
            out = np.maximum(out, lo)
        if hi is not None:
            out = np.minimum(out, hi)
        ctx.save_for_backward(a, lo, hi)
        ctx.shapes = (np.shape(a), np.shape(lo), np.shape(hi))
        return np.asarray(out, dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, lo, hi = ctx.saved_tensors
        na, nlo, nhi = ctx.needs_input_grad
        below = (a < lo) if lo is not None else False
        above = (a > hi) if hi is not None else False
        inside = ~(below | above) if (lo is not None or hi is not None) else True
        sa, slo, shi = ctx.shapes
        return (unbroadcast(g * inside, sa) if na else None,
                unbroadcast(g * (below & ~above), slo) if nlo else None,
                unbroadcast(g * above, shi) if nhi else None)


# ---- reductions -------------------------------------------------------------------------------

class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        return _expand_reduced(g, ctx.shape, ctx.axis, ctx.keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        ctx.count = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        return np.asarray(a.mean(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        return _expand_reduced(g / max(ctx.count, 1), ctx.shape, ctx.axis, ctx.keepdims)


class Extremum(Function):
    """max/min over axes; the gradient is shared equally between tied extremes."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, largest=True):
        reduce = np.max if largest else np.min
        out = np.asarray(reduce(a, axis=axis, keepdims=True))
        mask = a == out
        ctx.save_for_backward(mask, mask.sum(axis=axis, keepdims=True))
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return out if keepdims else np.asarray(out.squeeze(axis=axis) if axis is not None else out.reshape(()))

    @staticmethod
    def backward(ctx, g):
        mask, count = ctx.saved_tensors
        g = _expand_reduced(g, ctx.shape, ctx.axis, ctx.keepdims)
        return g * mask / count


class Var(Function):
    """Variance with ``ddof`` (PyTorch's ``correction``; 1 is the unbiased estimate)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, ddof=0):
        mean = a.mean(axis=axis, keepdims=True)
        centered = a - mean
        count = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        ctx.save_for_backward(centered)
        ctx.shape, ctx.axis, ctx.keepdims, ctx.denom = a.shape, axis, keepdims, max(count - ddof, 0)
        out = (centered * centered).sum(axis=axis, keepdims=keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(out / ctx.denom, dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        (centered,) = ctx.saved_tensors
        g = _expand_reduced(g, ctx.shape, ctx.axis, ctx.keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (2.0 / ctx.denom) * centered


class Std(Function):
    """Standard deviation with ``ddof``; where it is 0 the gradient is 0 (as in PyTorch), not nan."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, ddof=0):
        var = Var.forward(ctx, a, axis=axis, keepdims=keepdims, ddof=ddof)
        out = np.sqrt(var)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            g_var = np.where(ctx.out == 0, 0, g / (2 * ctx.out)).astype(g.dtype, copy=False)
        return Var.backward(ctx, g_var)


class Norm(Function):
    """The p-norm over axes (p = 2, 1, inf, -inf, 0 or any other real)."""

    @staticmethod
    def forward(ctx, a, p=2.0, axis=None, keepdims=False):
        mag = np.abs(a)
        if p == 2:
            out = np.sqrt((a * a).sum(axis=axis, keepdims=True))
        elif p == 1:
            out = mag.sum(axis=axis, keepdims=True)
        elif p == np.inf:
            out = mag.max(axis=axis, keepdims=True)
        elif p == -np.inf:
            out = mag.min(axis=axis, keepdims=True)
        elif p == 0:
            out = (a != 0).sum(axis=axis, keepdims=True).astype(a.dtype)
        else:
            out = (mag ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)
        out = np.asarray(out, dtype=a.dtype)
        ctx.save_for_backward(a, out)
        ctx.p, ctx.shape, ctx.axis, ctx.keepdims = p, a.shape, axis, keepdims
        if keepdims:
            return out
        return np.asarray(out.reshape(()) if axis is None else out.squeeze(axis=axis))

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved_tensors
        p = ctx.p
        g = g.reshape(out.shape)  # reduced axes as 1s, so g broadcasts against a
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                scale = np.where(out == 0, 0, g / out)
                return a * scale
            if p == 1:
                return np.sign(a) * g
            if p in (np.inf, -np.inf):
                hit = np.abs(a) == out
                return np.sign(a) * hit * (g / hit.sum(axis=ctx.axis, keepdims=True))
            if p == 0:
                return np.zeros(ctx.shape, dtype=a.dtype)
            mag = np.abs(a)
            scale = np.where(out == 0, 0, g / out ** (p - 1))
            return np.sign(a) * mag ** (p - 1) * scale


# ---- shape ------------------------------------------------------------------------------------

class Reshape(Function):
    @staticmethod
    def view(a, shape=None):
        return a.reshape(shape)

    @staticmethod
    def forward(ctx, a, shape=None):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def view(a, axes=None):
        return np.transpose(a, axes)

    @staticmethod
    def forward(ctx, a, axes=None):
        ctx.axes = axes
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx, g):
        return np.transpose(g, np.argsort(ctx.axes))


class Clone(Function):
    """A C-contiguous copy (clone, contiguous); the gradient passes through."""

    @staticmethod
    def forward(ctx, a):
        return np.array(a, order="C", copy=True)

    @staticmethod
    def backward(ctx, g):
        return g


class Expand(Function):
    """A read-only broadcast view of a in a larger shape; backward sums over the broadcast dims."""

    @staticmethod
    def view(a, shape=None):
        return np.broadcast_to(a, shape)

    @staticmethod
    def forward(ctx, a, shape=None):
        ctx.shape = a.shape
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.shape)


class Repeat(Function):
    """a tiled ``reps`` times per dim (PyTorch's repeat: leading reps add new dims)."""

    @staticmethod
    def forward(ctx, a, reps=None):
        padded = a.reshape((1,) * (len(reps) - a.ndim) + a.shape)
        ctx.shape, ctx.padded, ctx.reps = a.shape, padded.shape, reps
        return np.tile(padded, reps)

    @staticmethod
    def backward(ctx, g):
        interleaved = []
        for r, n in zip(ctx.reps, ctx.padded):
            interleaved += [r, n]
        summed = g.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(ctx.reps), 2)))
        return summed.reshape(ctx.shape)


class Split(Function):
    """Consecutive pieces of ``sizes`` along an axis (views of a); backward concatenates their
    gradients (zeros for pieces no gradient reached)."""

    @staticmethod
    def forward(ctx, a, axis=0, sizes=()):
        ctx.axis = axis
        bounds = np.cumsum(sizes)[:-1]
        return tuple(np.split(a, bounds, axis=axis))

    @staticmethod
    def backward(ctx, *grads):
        return np.concatenate(grads, axis=ctx.axis)


def _has_advanced_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (list, np.ndarray)) for i in items)


class GetItem(Function):
    @staticmethod
    def view(a, index=None):
        """a[index]; an integer index of every dim gives a 0-d view (numpy would give a scalar copy)."""
        out = a[index]
        if not isinstance(out, np.ndarray):
            out = a[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
        return out

    @staticmethod
    def forward(ctx, a, index=None):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return GetItem.view(a, index)

    @staticmethod
    def backward(ctx, g):
        out = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _has_advanced_index(ctx.index):
            np.add.at(out, ctx.index, g)  # repeated indices accumulate
        else:
            out[ctx.index] = g
        return out


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        splits = np.cumsum(ctx.sizes)[:-1]
        parts = np.split(g, splits, axis=ctx.axis)
        return tuple(p if need else None for p, need in zip(parts, ctx.needs_input_grad))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(np.take(g, i, axis=ctx.axis) if need else None
                     for i, need in enumerate(ctx.needs_input_grad))


class Pad(Function):
    @staticmethod
    def forward(ctx, a, pad_width=None, value=0.0):
        ctx.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, a.shape))
        return np.pad(a, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return np.ascontiguousarray(g[ctx.slices])


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.asarray(np.where(cond, a, b))

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        _, na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (None,
                unbroadcast(np.where(cond, g, 0), sa) if na else None,
                unbroadcast(np.where(cond, 0, g), sb) if nb else None)


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype=None):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype)


def reduction_axes(axis, ndim: int, op: str):
    """Axis argument of a reduction in canonical form (None or a sorted tuple)."""
    axes = normalize_axis(axis, ndim, op)
    return None if axes is None else tuple(sorted(axes))
