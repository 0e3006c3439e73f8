"""``DistributedDataParallel``: one model replica per rank, gradients averaged by bucketed MPI allreduce.

How a step works (the design of PyTorch DDP and Horovod's tensor fusion):

* At construction every rank checks that all ranks hold the same parameters (names, shapes,
  dtypes) and copies rank 0's parameters and buffers, so replicas start identical.
* Trainable parameters are grouped, in reverse registration order (roughly the order backward
  produces their gradients), into buckets of about ``bucket_cap_mb`` MiB, one contiguous buffer
  per bucket and dtype.
* A post-accumulate-grad hook on every parameter marks it ready. When all of a bucket's
  parameters are ready, its gradients are packed into the buffer and a non-blocking
  ``Iallreduce`` starts while backward keeps running on earlier layers. Buckets are launched in
  index order on every rank so the collectives match.
* When backward finishes (``queue_callback``), the remaining buckets are launched, all requests
  are waited on, the sums are divided by the world size and copied back into ``p.grad``. So
  when ``backward()`` returns every rank holds the same averaged gradients and
  ``optimizer.step()`` needs no change.

Unused parameters: one that got no gradient on some ranks in a step (e.g. a branch taken on
other ranks only) contributes zeros there (or its current ``.grad`` when gradients are being
accumulated) and every rank ends with the average; one that no rank used keeps its ``.grad``
(None after ``zero_grad``), as in single-process training, so the optimizer skips it. A parameter whose gradient is accumulated again after its bucket was launched
(e.g. a weight used twice) is detected; that bucket is reduced again, blocking, at the end.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional

import numpy as np

from ..autograd.engine import queue_callback
from ..autograd.grad_mode import is_grad_enabled
from ..nn.module import Module
from ..tensor import Tensor
from . import _comm
from ._coalesce import coalesced


class _Bucket:
    """Parameters of one dtype whose gradients travel in one contiguous buffer."""

    __slots__ = ("params", "indices", "offsets", "size", "dtype", "flat", "ready", "request", "dirty")

    def __init__(self, params: List, dtype) -> None:
        self.params = params
        self.indices: List[int] = []  # each parameter's position in DDP's used-flags array
        self.dtype = np.dtype(dtype)
        self.offsets = np.cumsum([0] + [p.numpy().size for p in params]).tolist()
        self.size = self.offsets[-1]
        self.flat: Optional[np.ndarray] = None
        self.ready = 0
        self.request = None
        self.dirty = False

    def pack(self) -> np.ndarray:
        if self.flat is None:
            self.flat = np.empty(self.size, dtype=self.dtype)
        for p, start, stop in zip(self.params, self.offsets, self.offsets[1:]):
            if p.grad is None:
                self.flat[start:stop] = 0
            else:
                self.flat[start:stop] = p.grad.numpy().reshape(-1)
        return self.flat

    def unpack(self, scale: float, used: np.ndarray) -> None:
        """Write the averaged gradients back; a parameter no rank used keeps its ``.grad``."""
        self.flat *= scale
        for p, i, start, stop in zip(self.params, self.indices, self.offsets, self.offsets[1:]):
            if used[i]:
                p.grad = Tensor._wrap(self.flat[start:stop].reshape(p.numpy().shape).copy())


def _assign_buckets(params: List, cap_bytes: float) -> List[_Bucket]:
    """Reverse registration order, split into ~cap_bytes groups, never mixing dtypes in a bucket;
    buckets are ordered by their first parameter (the order backward roughly fills them)."""
    closed = []        # (position of first parameter, params, dtype)
    open_groups = {}   # dtype -> [position of first parameter, params, bytes]
    for position, p in enumerate(reversed(params)):
        dt = p.numpy().dtype
        group = open_groups.get(dt)
        if group is not None and group[2] + p.numpy().nbytes > cap_bytes:
            closed.append((group[0], group[1], dt))
            group = None
        if group is None:
            group = open_groups[dt] = [position, [], 0]
        group[1].append(p)
        group[2] += p.numpy().nbytes
    closed += [(g[0], g[1], dt) for dt, g in open_groups.items()]
    return [_Bucket(group, dt) for _, group, dt in sorted(closed, key=lambda c: c[0])]


class DistributedDataParallel(Module):
    """Data parallelism over MPI ranks: wrap the model, train as usual, gradients come out averaged.

    ``forward`` calls the wrapped ``module``; ``parameters()``, ``named_parameters()``,
    ``buffers()``, ``state_dict()`` and ``load_state_dict()`` pass through to it, so a
    checkpoint has the plain model's keys (``0.weight``, not ``module.0.weight``) and loads into
    an unwrapped model. Buffers (BatchNorm running statistics): with ``broadcast_buffers=True``
    rank 0's are copied to every rank at each training forward, so all ranks use and save
    rank 0's; with ``False`` each rank keeps its own and ``sync_buffers()`` (or
    ``SyncBuffersCallback`` in ``fit``) averages them, e.g. at epoch end. ``sync_batchnorm=True``
    replaces BatchNorm layers by ``SyncBatchNorm``, which normalizes with statistics of the
    global batch. In world size 1 it is a plain pass-through (no hooks, no copies).
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True,
                 sync_batchnorm: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a fastconv.nn.Module to wrap, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number of MiB, "
                             f"got {bucket_cap_mb!r}")
        if sync_batchnorm:
            from .sync_batchnorm import convert_sync_batchnorm

            module = convert_sync_batchnorm(module)
        self.module = module
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.world_size = _comm.world_size()
        self._comm = _comm.get_comm() if self.world_size > 1 else None
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._param_names = {id(p): n for n, p in named}
        self._buckets = _assign_buckets([p for _, p in named], self.bucket_cap_mb * 2 ** 20)
        self._where = {}  # id(param) -> (bucket index, position in launch order)
        for b, bucket in enumerate(self._buckets):
            for p in bucket.params:
                self._where[id(p)] = (b, len(self._where))
                bucket.indices.append(self._where[id(p)][1])
        self._used = np.zeros(len(self._where), dtype=np.int32)  # got a gradient in this pass
        self._no_sync = False
        self._pass_active = False
        self._next_bucket = 0
        self._handles = []
        if self._comm is not None:
            self._verify_replicas()
            coalesced(list(module.parameters()) + list(module.buffers()),
                      lambda flat: _comm.broadcast(flat, 0))
            for _, p in named:
                self._handles.append(p.register_post_accumulate_grad_hook(self._on_grad_ready))

    # ---- pass-through to the wrapped module ------------------------------------------------------
    def forward(self, *args, **kwargs):
        if self._comm is not None and self.training and is_grad_enabled():
            if self._pass_active:  # the previous backward raised: forget its half-done reduction
                self._reset_pass()
            if self.broadcast_buffers:
                buffers = list(self.module.buffers())
                if buffers:
                    coalesced(buffers, lambda flat: _comm.broadcast(flat, 0))
        return self.module(*args, **kwargs)

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        return self.module.named_parameters(prefix=prefix, recurse=recurse)

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self.module.named_buffers(prefix=prefix, recurse=recurse)

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        return self.module.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True):
        return self.module.load_state_dict(state_dict, strict=strict)

    def extra_repr(self) -> str:
        return (f"world_size={self.world_size}, bucket_cap_mb={self.bucket_cap_mb:g}, "
                f"broadcast_buffers={self.broadcast_buffers}, sync_batchnorm={self.sync_batchnorm}")

    # ---- public controls -------------------------------------------------------------------------
    def bucket_assignment(self) -> List[List[str]]:
        """Parameter names per bucket, in launch order (for inspection and tuning bucket_cap_mb)."""
        return [[self._param_names[id(p)] for p in b.params] for b in self._buckets]

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside accumulate gradients locally without communication (gradient
        accumulation); the first backward after the block averages the accumulated sums."""
        previous, self._no_sync = self._no_sync, True
        try:
            yield
        finally:
            self._no_sync = previous

    def sync_buffers(self) -> None:
        """Average float buffers (BatchNorm running mean/var) over ranks; copy rank 0's integer ones
        (e.g. num_batches_tracked). A no-op in world size 1."""
        if self._comm is None:
            return
        buffers = list(self.module.buffers())
        floats = [b for b in buffers if b.numpy().dtype.kind == "f"]
        others = [b for b in buffers if b.numpy().dtype.kind != "f"]
        coalesced(floats, lambda flat: _comm.all_reduce(flat, "mean"))
        coalesced(others, lambda flat: _comm.broadcast(flat, 0))

    # ---- construction ----------------------------------------------------------------------------
    def _verify_replicas(self) -> None:
        """All ranks must wrap the same architecture; report the first difference from rank 0."""
        mine = [("parameter", n, tuple(p.numpy().shape), p.numpy().dtype.str, bool(p.requires_grad))
                for n, p in self.module.named_parameters()]
        mine += [("buffer", n, tuple(b.numpy().shape), b.numpy().dtype.str, False)
                 for n, b in self.module.named_buffers()]
        everyone = _comm.all_gather_object(mine)
        reference = everyone[0]
        for r, theirs in enumerate(everyone[1:], start=1):
            if theirs == reference:
                continue
            for a, b in zip(reference, theirs):
                if a != b:
                    raise ValueError(f"DistributedDataParallel: rank 0 has {a[0]} '{a[1]}' shape {a[2]} "
                                     f"dtype {a[3]} requires_grad={a[4]}, but rank {r} has {b[0]} '{b[1]}' "
                                     f"shape {b[2]} dtype {b[3]} requires_grad={b[4]}")
            raise ValueError(f"DistributedDataParallel: rank 0 has {len(reference)} parameters and buffers, "
                             f"rank {r} has {len(theirs)}")

    # ---- the reduction ---------------------------------------------------------------------------
    def _on_grad_ready(self, param) -> None:
        if self._no_sync:
            return
        if not self._pass_active:
            self._pass_active = True
            queue_callback(self._finalize)
        b, index = self._where[id(param)]
        bucket = self._buckets[b]
        if bucket.request is not None:
            bucket.dirty = True  # accumulated again after launch: reduce once more at the end
            return
        if not self._used[index]:  # a weight used twice fires twice; count it once
            self._used[index] = 1
            bucket.ready += 1
        if bucket.ready == len(bucket.params):
            while (self._next_bucket < len(self._buckets)
                   and self._buckets[self._next_bucket].ready == len(self._buckets[self._next_bucket].params)):
                self._launch(self._buckets[self._next_bucket])
                self._next_bucket += 1
        self._progress()

    def _launch(self, bucket: _Bucket) -> None:
        MPI = _comm.mpi()
        bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, bucket.pack(), op=MPI.SUM)

    def _progress(self) -> None:
        """Let MPI advance the outstanding reductions (MPICH progresses inside MPI calls)."""
        pending = [b.request for b in self._buckets if b.request is not None]
        if pending:
            _comm.mpi().Request.Testall(pending)

    def _finalize(self) -> None:
        """End of backward: launch what is left, wait, average, write ``p.grad`` on every parameter."""
        MPI = _comm.mpi()
        try:
            for bucket in self._buckets[self._next_bucket:]:
                self._launch(bucket)  # a parameter without gradient here contributes zeros
            self._next_bucket = len(self._buckets)
            # One small allreduce tells every rank which parameters any rank used and which
            # buckets any rank must reduce again (so all ranks make the same collective calls).
            flags = np.concatenate([self._used, [b.dirty for b in self._buckets]]).astype(np.int32)
            self._comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
            used, dirty = flags[:len(self._used)], flags[len(self._used):]
            MPI.Request.Waitall([b.request for b in self._buckets])
            for bucket, redo in zip(self._buckets, dirty):
                if redo:
                    self._comm.Allreduce(MPI.IN_PLACE, bucket.pack(), op=MPI.SUM)
            scale = 1.0 / self.world_size
            for bucket in self._buckets:
                bucket.unpack(scale, used)
        finally:
            self._reset_pass()

    def _reset_pass(self) -> None:
        self._used[...] = 0
        for bucket in self._buckets:
            bucket.ready = 0
            bucket.request = None
            bucket.dirty = False
        self._next_bucket = 0
        self._pass_active = False
