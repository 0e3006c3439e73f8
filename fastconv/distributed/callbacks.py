"""Fit callbacks for data-parallel training."""
from __future__ import annotations

from typing import Optional

from ..train import Callback
from .ddp import DistributedDataParallel


class SyncBuffersCallback(Callback):
    """Average BatchNorm running statistics over ranks at the end of every epoch.

    For ``DistributedDataParallel(..., broadcast_buffers=False)``: each rank's running
    statistics drift apart during the epoch (each sees its own shard); averaging them before the
    checkpoint is written gives statistics over all shards. Pass the wrapper, or leave ``ddp``
    out to use the model given to ``fit`` when that is a ``DistributedDataParallel``.
    """

    def __init__(self, ddp: Optional[DistributedDataParallel] = None) -> None:
        if ddp is not None and not isinstance(ddp, DistributedDataParallel):
            raise TypeError(f"SyncBuffersCallback: expected a DistributedDataParallel, got {type(ddp).__name__}")
        self.ddp = ddp

    def on_epoch_end(self, epoch: int, logs: dict, model) -> None:
        target = self.ddp if self.ddp is not None else model
        if not isinstance(target, DistributedDataParallel):
            raise TypeError(f"SyncBuffersCallback: fit's model is a {type(target).__name__}, not a "
                            "DistributedDataParallel; pass the wrapper to SyncBuffersCallback(ddp)")
        target.sync_buffers()
