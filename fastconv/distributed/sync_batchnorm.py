"""``SyncBatchNorm``: batch normalization with statistics of the global batch across MPI ranks.

With small per-rank batches, per-rank statistics are noisy; SyncBatchNorm normalizes with the
mean and variance of all ranks' samples together, so p ranks of batch b behave like one
process of batch p·b. Forward exchanges (count, mean, M2) per channel (one allgather; merged
with Chan's parallel-variance formula, no cancellation); backward allreduces the per-channel
sums of dy and dy·x̂ (one allreduce). Weight and bias gradients stay local sums that DDP
averages. In eval mode or world size 1 it is exactly ``BatchNorm``.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..nn.module import Module
from ..nn.modules.normalization import _BatchNorm
from ..tensor import Tensor
from . import _comm


def _global_moments(x64: np.ndarray, axes) -> tuple:
    """Global (count, mean, biased var) per channel over every rank's samples."""
    count = x64.size // x64.shape[1]
    mean = x64.mean(axis=axes)
    m2 = ((x64 - mean.reshape(_channel_shape(x64.ndim, -1))) ** 2).sum(axis=axes)
    rows = _comm.all_gather_object((count, mean, m2))
    counts = np.array([r[0] for r in rows], dtype=np.float64)
    total = counts.sum()
    means = np.stack([r[1] for r in rows])
    g_mean = (counts[:, None] * means).sum(axis=0) / total
    g_m2 = sum(r[2] for r in rows) + (counts[:, None] * (means - g_mean) ** 2).sum(axis=0)
    return total, g_mean, g_m2 / total


def _channel_shape(ndim: int, c: int) -> tuple:
    return (1, c) + (1,) * (ndim - 2)


class _SyncBatchNormFunction(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, *, eps: float, running=None):
        axes = (0,) + tuple(range(2, x.ndim))
        x64 = x.astype(np.float64, copy=False)
        total, mean, var = _global_moments(x64, axes)
        if total <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when "
                             f"training, got {int(total)} for input of shape {tuple(x.shape)}")
        if running is not None:
            running_mean, running_var, momentum = running
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * total / (total - 1)  # unbiased, like BatchNorm
        shape = _channel_shape(x.ndim, x.shape[1])
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = (x64 - mean.reshape(shape)) * rstd.reshape(shape)
        y = xhat if weight is None else xhat * weight.astype(np.float64).reshape(shape)
        if bias is not None:
            y = y + bias.astype(np.float64).reshape(shape)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.axes, ctx.total = axes, total
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, weight = ctx.saved_tensors
        axes, shape = ctx.axes, _channel_shape(dy.ndim, dy.shape[1])
        dy64 = dy.astype(np.float64, copy=False)
        sums = np.stack([dy64.sum(axis=axes), (dy64 * xhat).sum(axis=axes)])
        grad_w = sums[1].astype(dy.dtype) if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sums[0].astype(dy.dtype) if ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            _comm.all_reduce(sums, "sum")  # the other ranks' samples shaped the statistics too
            mean_dy, mean_dy_xhat = sums / ctx.total
            scale = rstd if weight is None else rstd * weight.astype(np.float64)
            grad_x = (scale.reshape(shape) * (dy64 - mean_dy.reshape(shape) - xhat * mean_dy_xhat.reshape(shape)))
            grad_x = grad_x.astype(dy.dtype, copy=False)
        return grad_x, grad_w, grad_b


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, *) inputs whose training statistics span all ranks of the MPI job.

    Same parameters, buffers and state_dict keys as ``BatchNorm1d/2d``. Every rank must call it
    the same number of times per step (it communicates in forward and backward).
    """

    _ranks = (2, 3, 4, 5)
    _layout = "(N, C, *)"

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or _comm.world_size() == 1:
            return super().forward(input)
        data = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
        if data.ndim not in self._ranks or data.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected input of shape (N, {self.num_features}, *), got "
                             f"{tuple(data.shape)}")
        factor = self._update_factor()
        running = None
        if self.track_running_stats:
            running = (self.running_mean.numpy(), self.running_var.numpy(), factor)
        x = input if isinstance(input, Tensor) else Tensor._wrap(data)
        return _SyncBatchNormFunction.apply(x, self.weight, self.bias, eps=self.eps, running=running)


def convert_sync_batchnorm(module: Module) -> Module:
    """Replace every BatchNorm layer in ``module`` by a ``SyncBatchNorm`` sharing its parameters and
    buffers (so optimizers and state_dict keys are unchanged); returns the (possibly new) root."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm(module.num_features, eps=module.eps, momentum=module.momentum,
                             affine=module.affine, track_running_stats=module.track_running_stats,
                             dtype=module.weight.dtype if module.affine else None)
        for name in ("weight", "bias"):
            if getattr(module, name) is not None:
                setattr(sync, name, getattr(module, name))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            if getattr(module, name) is not None:
                sync.register_buffer(name, getattr(module, name))
        sync.train(module.training)
        return sync
    for name, child in list(module._modules.items()):
        if child is not None:
            replaced = convert_sync_batchnorm(child)
            if replaced is not child:
                setattr(module, name, replaced)
    return module
