"""Data-parallel training over MPI (mpi4py), the way Horovod and ChainerMN do it.

Launch with ``mpiexec -n 4 python train.py`` (``pip install "fastconv[mpi]"`` brings mpi4py and
an MPI runtime). Without a launcher everything here behaves as world size 1 and mpi4py is never
imported::

    import fastconv.distributed as dist
    dist.init()
    model = dist.DistributedDataParallel(model)            # rank 0's weights on every rank
    sampler = dist.DistributedSampler(dataset, shuffle=True, seed=0)
    loader = fc.data.DataLoader(dataset, batch_size=64, sampler=sampler)
    dist.run_guarded(fc.train.fit, model, loader, loss_fn, opt, epochs=5)  # one failing rank stops all
"""
from ._comm import (
    INSTALL_HINT, all_gather_object, all_reduce, barrier, broadcast, broadcast_object, get_comm, init, is_main,
    launched_under_mpi, rank, world_size,
)
from .callbacks import SyncBuffersCallback
from .ddp import DistributedDataParallel
from .failure import abort_on_error, report_and_abort, run_guarded
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm
from . import _comm
from ..train import set_process_group as _set_process_group

# fit and save_checkpoint ask this group which rank writes and how epoch sums are reduced
_set_process_group(_comm)

__all__ = [
    "init", "rank", "world_size", "is_main", "barrier", "broadcast", "broadcast_object", "all_reduce",
    "all_gather_object", "get_comm", "launched_under_mpi", "DistributedDataParallel", "DistributedSampler",
    "SyncBuffersCallback", "SyncBatchNorm", "convert_sync_batchnorm", "abort_on_error", "run_guarded", "report_and_abort", "INSTALL_HINT",
]
