"""Datasets for the DataLoader worker tests, in an importable module so that the ``spawn`` start
method can pickle them by reference."""
import os
import random
import time

import numpy as np

import fastconv as fc
from fastconv.random import get_generator
from fastconv.utils.data import Dataset, IterableDataset, get_worker_info


class Probe(Dataset):
    """Sample i: ([i, worker id, kernel threads, numpy legacy draw, python draw, fastconv draw], worker seed)."""

    def __init__(self, n=12):
        self.n = n

    def __getitem__(self, i):
        info = get_worker_info()
        return (np.array([i, info.id, fc.get_num_threads(), np.random.random(), random.random(),
                          get_generator().random()]), np.int64(info.seed))

    def __len__(self):
        return self.n


class Failing(Dataset):
    """Raises a ValueError (with a recognizable message) at index ``bad``; KeyError at ``key``."""

    def __init__(self, n=8, bad=5, key=-1):
        self.n, self.bad, self.key = n, bad, key

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is broken on purpose")
        if i == self.key:
            return {"x": 1}["missing key"]
        return np.float32(i)

    def __len__(self):
        return self.n


class MultiArgError(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


class FailingOddly(Dataset):
    def __getitem__(self, i):
        raise MultiArgError(1, 2)

    def __len__(self):
        return 2


class Slow(Dataset):
    """Each sample takes ``delay`` seconds."""

    def __init__(self, n=50, delay=0.2):
        self.n, self.delay = n, delay

    def __getitem__(self, i):
        time.sleep(self.delay)
        return np.float32(i)

    def __len__(self):
        return self.n


class Structured(Dataset):
    """Samples mixing arrays, Tensors, strings, dicts and ints."""

    def __getitem__(self, i):
        return {"image": fc.tensor(np.full((3, 4, 5), i, np.float32)), "name": f"item{i}",
                "meta": (i, np.arange(i + 1)[:1].astype(np.int16))}

    def __len__(self):
        return 7


class Stream(IterableDataset):
    """range(start, end), split among workers as PyTorch's documentation shows."""

    def __init__(self, start=0, end=23):
        self.start, self.end = start, end

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        per = -(-(self.end - self.start) // info.num_workers)
        lo = self.start + info.id * per
        return iter(range(lo, min(lo + per, self.end)))


class Pids(Dataset):
    def __getitem__(self, i):
        return os.getpid()

    def __len__(self):
        return 8


class KernelWork(Dataset):
    """Runs OpenMP kernels in the worker (a convolution and the augment remap)."""

    def __getitem__(self, i):
        x = fc.randn(2, 3, 16, 16)
        w = fc.randn(4, 3, 3, 3)
        y = fc.nn.functional.conv2d(x, w, padding=1)
        crop = fc.data.transforms.RandomCrop(16, padding=2)(x.numpy(), rng=np.random.default_rng(i))
        return np.float32(y.numpy().sum() + crop.sum())

    def __len__(self):
        return 6


def init_marks_worker(worker_id):
    """A worker_init_fn that leaves a trace visible to the samples."""
    os.environ["FASTCONV_TEST_INIT"] = str(worker_id * 10 + 7)


class InitProbe(Dataset):
    def __getitem__(self, i):
        return np.int64(os.environ.get("FASTCONV_TEST_INIT", "-1"))

    def __len__(self):
        return 6


class Logged(Dataset):
    """Sleeps ``delay`` per sample and leaves a file per sample fetched in ``folder``."""

    def __init__(self, folder, n=20, delay=0.3):
        self.folder, self.n, self.delay = str(folder), n, delay

    def __getitem__(self, i):
        time.sleep(self.delay)
        open(os.path.join(self.folder, f"{i}.done"), "w").close()
        return np.float32(i)

    def __len__(self):
        return self.n
