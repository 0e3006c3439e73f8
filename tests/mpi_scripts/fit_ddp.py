"""fit() under MPI: DDP + DistributedSampler + SyncBuffersCallback, rank-0 checkpoint, resume on every rank.

Usage: python fit_ddp.py OUT_DIR   (writes OUT_DIR/{final,straight}_rank{r}.npz: resumed and uninterrupted runs)
"""
import os
import sys

import numpy as np

import fastconv as fc
import fastconv.distributed as dist
from fastconv import nn
from fastconv.nn import functional as F


def build():
    fc.manual_seed(10 + dist.rank())  # different on each rank: DDP copies rank 0's
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    model = dist.DistributedDataParallel(net, broadcast_buffers=False)
    return model, fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def main():
    out = sys.argv[1]
    ckpt = os.path.join(out, "ckpt")
    data_rng = np.random.default_rng(3)
    x = (data_rng.standard_normal((96, 1, 8, 8)) + np.arange(96).reshape(96, 1, 1, 1) % 3).astype(np.float32)
    y = np.arange(96) % 3
    data = fc.data.TensorDataset(x, y)

    def loader():
        return fc.data.DataLoader(data, batch_size=16, sampler=dist.DistributedSampler(data, seed=1))

    model, opt = build()
    fc.train.fit(model, loader(), F.cross_entropy, opt, epochs=2, checkpoint_dir=ckpt,
                 callbacks=[dist.SyncBuffersCallback()], verbose=True)
    dist.barrier()  # rank 0 has written the checkpoint
    resumed, opt2 = build()
    fc.train.fit(resumed, loader(), F.cross_entropy, opt2, epochs=3, checkpoint_dir=ckpt, resume=True,
                 callbacks=[dist.SyncBuffersCallback()], verbose=True)
    np.savez(os.path.join(out, f"final_rank{dist.rank()}.npz"), **resumed.state_dict())
    straight, opt3 = build()  # the same 3 epochs without the interruption
    fc.train.fit(straight, loader(), F.cross_entropy, opt3, epochs=3, callbacks=[dist.SyncBuffersCallback()],
                 verbose=False)
    np.savez(os.path.join(out, f"straight_rank{dist.rank()}.npz"), **straight.state_dict())


if __name__ == "__main__":
    dist.run_guarded(main)
