"""Train a small conv net for 5 SGD steps on a fixed data stream; write each rank's final weights.

Usage: python ddp_equivalence.py OUT_DIR SPEC [SPEC ...]
SPEC is a bucket cap in MiB, or "syncbn": a BatchNorm2d after conv1 with sync_batchnorm=True
(writes OUT_DIR/{SPEC}_rank{r}.npz).

Every step uses the same global batch of 64 samples; with p ranks, rank r takes rows
[r*64/p, (r+1)*64/p). Each rank starts from different random weights (seed 100 + rank), so
equality with the single-process run also proves that DDP broadcast rank 0's. The model has a
parameter no forward uses and a layer applied twice (its gradient is accumulated twice).
"""
import os
import sys

import numpy as np

import fastconv as fc
import fastconv.distributed as dist
from fastconv import nn
from fastconv.nn import functional as F

GLOBAL_BATCH, STEPS = 64, 5


class Net(nn.Module):
    def __init__(self, batchnorm: bool = False):
        super().__init__()
        self.unused = nn.Linear(3, 3)      # never in forward; registered first, so in the last bucket
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.head = nn.Linear(5, 5)        # applied twice: its bucket is reduced again

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.norm(self.conv1(x))), 2)
        x = F.relu(self.conv2(x)).reshape(x.shape[0], -1)
        return self.head(F.relu(self.head(self.fc(x))))


def train(spec: str) -> dict:
    r, p = dist.rank(), dist.world_size()
    fc.manual_seed(100 + r)
    syncbn = spec == "syncbn"
    model = dist.DistributedDataParallel(Net(batchnorm=syncbn).double(), bucket_cap_mb=25 if syncbn else float(spec),
                                         sync_batchnorm=syncbn)
    opt = fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    data = np.random.default_rng(7)
    x_all = data.standard_normal((STEPS * GLOBAL_BATCH, 1, 8, 8))
    y_all = data.integers(0, 5, STEPS * GLOBAL_BATCH)
    local = GLOBAL_BATCH // p
    for step in range(STEPS):
        lo = step * GLOBAL_BATCH + r * local
        x, y = x_all[lo:lo + local], y_all[lo:lo + local]
        opt.zero_grad()
        loss = F.cross_entropy(model(fc.tensor(x)), y)
        loss.backward()
        assert model.module.unused.weight.grad is None, "a parameter no rank used must keep grad None"
        opt.step()
    out = {k: v for k, v in model.state_dict().items()}
    out["_buckets"] = np.array(len(model.bucket_assignment()))
    return out


def main():
    out_dir = sys.argv[1]
    for spec in sys.argv[2:]:
        weights = train(spec)
        np.savez(os.path.join(out_dir, f"{spec}_rank{dist.rank()}.npz"), **weights)


if __name__ == "__main__":
    dist.run_guarded(main)
