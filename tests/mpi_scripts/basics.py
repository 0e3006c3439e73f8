"""Exercise the collectives, the sampler, buffers and partial gradients; each rank writes what it saw.

Usage: python basics.py OUT_DIR   (writes OUT_DIR/rank{r}.json)
"""
import json
import os
import sys

import numpy as np

import fastconv as fc
import fastconv.distributed as dist
from fastconv import nn


class TwoParams(nn.Module):
    """``a`` is used on every rank, ``b`` only on rank 1."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(np.zeros(3))
        self.b = nn.Parameter(np.zeros(3))

    def forward(self, x):
        out = (x * self.a).sum()
        return out + (x * self.b).sum() if dist.rank() == 1 else out


def main():
    out_dir = sys.argv[1]
    r = dist.rank()
    seen = {"rank": r, "world_size": dist.world_size(), "is_main": dist.is_main()}
    dist.barrier()
    seen["broadcast"] = dist.broadcast(np.full(3, float(r + 5))).tolist()
    seen["broadcast_object"] = dist.broadcast_object({"from": r})
    seen["all_reduce_sum"] = dist.all_reduce(np.array([r + 1], dtype=np.int64)).tolist()
    seen["all_reduce_mean"] = dist.all_reduce(np.array([float(r)]), op="mean").tolist()
    seen["all_reduce_max"] = dist.all_reduce(np.array([float(r)]), op="max").tolist()

    # sampler shards for a dataset of 11 (not divisible by 2), two epochs
    data = fc.data.TensorDataset(np.arange(11), np.arange(11))
    seen["shards"] = {}
    for shuffle in (False, True):
        for drop_last in (False, True):
            sampler = dist.DistributedSampler(data, shuffle=shuffle, seed=3, drop_last=drop_last)
            for epoch in (0, 1):
                sampler.set_epoch(epoch)
                seen["shards"][f"{shuffle}-{drop_last}-{epoch}"] = list(sampler)
    loader = fc.data.DataLoader(data, batch_size=4, sampler=dist.DistributedSampler(data, seed=3))
    seen["loader"] = {}
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        seen["loader"][str(epoch)] = [x.tolist() for x, _ in loader]

    # buffers: construction copies rank 0's; sync_buffers averages floats, copies rank 0's ints
    bn = nn.BatchNorm2d(2, momentum=0.0)
    bn.running_mean.numpy()[...] = r + 1.0
    ddp = dist.DistributedDataParallel(bn, broadcast_buffers=False)
    seen["bn_after_construction"] = bn.running_mean.numpy().tolist()
    bn.running_mean.numpy()[...] = r + 1.0
    bn.num_batches_tracked.numpy()[...] = 10 * (r + 1)
    dist.SyncBuffersCallback().on_epoch_end(0, {}, ddp)
    seen["bn_after_sync"] = bn.running_mean.numpy().tolist()
    seen["bn_batches_after_sync"] = int(bn.num_batches_tracked.numpy())
    # broadcast_buffers=True: a training forward first copies rank 0's buffers (momentum 0 keeps them)
    bn2 = nn.BatchNorm2d(2, momentum=0.0)
    ddp2 = dist.DistributedDataParallel(bn2, broadcast_buffers=True)
    bn2.running_var.numpy()[...] = r + 2.0
    ddp2(fc.randn(4, 2, 3, 3, requires_grad=True))
    seen["bn_broadcast_forward"] = bn2.running_var.numpy().tolist()

    # a parameter used on rank 1 only: both ranks end with half of rank 1's gradient
    two = dist.DistributedDataParallel(TwoParams())
    x = fc.tensor(np.array([1.0, 2.0, 3.0]) * (r + 1))
    two(x).backward()
    seen["grad_a"] = two.module.a.grad.numpy().tolist()
    seen["grad_b"] = two.module.b.grad.numpy().tolist()
    # no_sync: the first micro-batch stays local, the second backward averages the sum
    two.zero_grad()
    with two.no_sync():
        two(x).backward()
    seen["grad_a_local"] = two.module.a.grad.numpy().tolist()
    two(x).backward()
    seen["grad_a_accumulated"] = two.module.a.grad.numpy().tolist()

    # mismatched replicas are reported, on every rank
    try:
        dist.DistributedDataParallel(nn.Linear(3, 3 + r))
        seen["mismatch"] = None
    except ValueError as exc:
        seen["mismatch"] = str(exc)

    with open(os.path.join(out_dir, f"rank{r}.json"), "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    dist.run_guarded(main)
