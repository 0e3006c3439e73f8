"""Data loading throughput for CIFAR-style augmentation, fastconv vs torchvision + torch's DataLoader,
and the share of a ResNet-20 CIFAR training run spent waiting for data.

Both libraries read the same fake CIFAR-10 (python-version batches written to a temporary folder)
through ``datasets.CIFAR10`` with ``RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
Normalize(...)``, batch 128, shuffled, at 0, 1 and 2 workers (persistent; the timed epochs come
after one warm-up epoch, so worker start-up is not counted). fastconv runs the pipeline fused (one
kernel pass per batch, ``fastconv.vision.transforms._fusion``) and, for reference, per sample
(a subclass overriding ``__getitem__`` turns the fusion off).

The training part runs ResNet-20 (``fastconv.vision.models.resnet20`` when present, else the same
network defined here) with SGD on the loader's batches and reports the time spent in ``next()``
of the loader as a share of the steps' total.

    python bench/bench_data.py --images 2560 --workers 0 1 2 --train-batches 6
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import common_args, setup_threads  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv.utils.data import DataLoader  # noqa: E402
from fastconv.vision import datasets, transforms  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def write_fake_cifar(root: str, images: int) -> None:
    """CIFAR-10 python batches of random images (5 training files, a test file, the meta file)."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    per_file = max(images // 5, 1)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        n = per_file if name != "test_batch" else 16
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f, protocol=2)


def fastconv_pipeline():
    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


class PerSampleCIFAR10(datasets.CIFAR10):
    """CIFAR10 whose batches go sample by sample (overriding ``__getitem__`` disables the fusion)."""

    def __getitem__(self, index):
        return super().__getitem__(index)


def import_torchvision():
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    try:
        import torchvision
        import torchvision.datasets.cifar as tv_cifar
    except ImportError:
        return None
    tv_cifar.check_integrity = lambda path, md5=None: os.path.isfile(path)  # our fake files have no md5
    return torchvision


def images_per_second(make_loader, epochs: int) -> float:
    """Images/s over ``epochs`` timed epochs after one warm-up epoch of a persistent loader."""
    loader = make_loader()
    for _ in loader:
        pass
    total, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            total += len(batch[1])
    rate = total / (time.perf_counter() - start)
    del loader
    return rate


def loader_table(root: str, worker_counts, epochs: int, batch: int) -> None:
    fast = datasets.CIFAR10(root, transform=fastconv_pipeline())
    slow = PerSampleCIFAR10(root, transform=fastconv_pipeline())
    tv = import_torchvision()
    rows = []
    for workers in worker_counts:
        kw = dict(batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
        row = {"workers": workers,
               "fused": images_per_second(lambda: DataLoader(fast, **kw), epochs),
               "per-sample": images_per_second(lambda: DataLoader(slow, **kw), epochs)}
        if tv is not None:
            import torch
            import torchvision.transforms as T
            tds = tv.datasets.CIFAR10(root, transform=T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                                                 T.ToTensor(), T.Normalize(MEAN, STD)]))
            row["torch"] = images_per_second(lambda: torch.utils.data.DataLoader(tds, **kw), epochs)
        rows.append(row)
    print(f"CIFAR-style augmentation, batch {batch}, {len(fast)} images, images/s (on a shared machine compare "
          "within a row)")
    header = f"{'workers':>8} {'fastconv fused':>15} {'fastconv per-sample':>20}"
    if tv is not None:
        header += f" {'torchvision+torch':>18} {'fused/torch':>12}"
    print(header)
    for row in rows:
        line = f"{row['workers']:>8} {row['fused']:>15.0f} {row['per-sample']:>20.0f}"
        if "torch" in row:
            line += f" {row['torch']:>18.0f} {row['fused'] / row['torch']:>11.1f}x"
        print(line)


class BasicBlock(fc.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        nn = fc.nn
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet20(num_classes: int = 10):
    """ResNet-20 for CIFAR (He et al. 2016): 3 stages of 3 basic blocks, 16/32/64 channels."""
    try:
        from fastconv.vision import models
        return models.resnet20(num_classes=num_classes)
    except (ImportError, AttributeError):
        pass
    nn = fc.nn
    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for k in range(3):
            layers.append(BasicBlock(cin, cout, stride if k == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


def training_wait_share(root: str, worker_counts, batches: int, batch: int) -> None:
    ds = datasets.CIFAR10(root, transform=fastconv_pipeline())
    print(f"\nResNet-20 training, batch {batch}, {batches} steps after one warm-up step: time waiting for data")
    print(f"{'workers':>8} {'step ms':>9} {'waiting ms':>11} {'waiting share':>14}")
    for workers in worker_counts:
        fc.manual_seed(0)
        model = resnet20()
        opt = fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        loss_fn = fc.nn.CrossEntropyLoss()
        loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            persistent_workers=workers > 0)
        it = iter(loader)
        waited = total = 0.0
        for step in range(batches + 1):
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(loader)
                x, y = next(it)
            t1 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            t2 = time.perf_counter()
            if step:  # the first step warms up (planner, allocations, workers' first batches)
                waited += t1 - t0
                total += t2 - t0
        print(f"{workers:>8} {1000 * total / batches:>9.1f} {1000 * waited / batches:>11.2f} "
              f"{100 * waited / total:>13.1f}%")
        del it, loader


def main() -> None:
    p = common_args(__doc__)
    p.add_argument("--images", type=int, default=2560, help="training images in the fake CIFAR-10")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per loader")
    p.add_argument("--train-batches", type=int, default=6, help="timed ResNet-20 steps per worker count (0: skip)")
    p.add_argument("--train-workers", type=int, nargs="+", default=[0])
    args = p.parse_args()
    setup_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        write_fake_cifar(root, args.images)
        loader_table(root, args.workers, args.epochs, args.batch)
        if args.train_batches:
            training_wait_share(root, args.train_workers, args.train_batches, args.batch)


if __name__ == "__main__":
    main()
