"""k-means filter pretraining on few-label MNIST, beside Dundar, Jin & Culurciello (2015), Table 3.

Three measurements, printed as markdown tables:
1. time to learn 64 5×5 filters from 100,000 patches (fastconv's Eq. (1) k-means; scikit-learn's
   MiniBatchKMeans on the same preprocessed patches, when installed);
2. redundancy of the learned filters, mean |correlation| between distinct filters (also under
   shifts of ±1 pixel), for plain vs convolutional k-means;
3. test error on the 10k MNIST test set after training a small two-conv-layer net on 600 / 1000 /
   3000 labels drawn stratified from the bundled 5,000-image training subset, for random He init,
   k-means init (fine-tuned) and k-means frozen + trained classifier; mean ± std over seeds.
   k-means sees all 5,000 training images without labels. Every run of one label count gets the
   same number of training samples (epochs × labels), so initializations are compared at equal cost.

Usage: python bench/bench_kmeans.py [--quick] [--seeds 3] [--method conv-kmeans] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastconv as fc  # noqa: E402
from _harness import median_seconds  # noqa: E402
from fastconv.pretrain import (PatchPreprocessor, extract_patches, kmeans, kmeans_filters, mean_pairwise_correlation,
                               pretrain_conv_layers)  # noqa: E402

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
PAPER = {  # Dundar et al. 2015, Table 3: test error (%) on MNIST with 600 / 1000 / 3000 labels
    "Dundar et al.: 2 layers + multi dict.": {600: 2.8, 1000: 2.5, 3000: 1.4},
    "LeCun et al. 1998 convnet (as cited there)": {600: 7.68, 1000: 6.45, 3000: 3.35},
}


def load_mnist():
    norm = fc.data.Normalize(MNIST_MEAN, MNIST_STD)
    train, test = fc.data.MNIST(split="train"), fc.data.MNIST(split="test")
    return norm(train.data), train.targets, norm(test.data), test.targets


def make_net():
    nn = fc.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def mean_std(values: List[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


# ---- 1. clustering time -------------------------------------------------------------------------

def bench_time(x: np.ndarray, n_patches: int, iters: int) -> None:
    """Median of 3 runs per step (after one warm-up run), so a busy machine distorts less."""
    print(f"\n### Learning 64 5×5 filters from {n_patches:,} patches ({iters} iterations, "
          f"{fc.get_num_threads()} threads; median of 3 runs)\n")
    print("| step | seconds |\n|---|---:|")
    raw = extract_patches(x, 5, n_patches, seed=0)
    z = PatchPreprocessor().fit(raw).transform(raw)
    steps = [
        ("patch extraction (Cython/OpenMP kernel)", lambda: extract_patches(x, 5, n_patches, seed=0)),
        ("contrast normalization + ZCA fit and transform", lambda: PatchPreprocessor().fit(raw).transform(raw)),
        ("fastconv k-means, Eq. (1), full batch", lambda: kmeans(z, 64, iters=iters, seed=0, tol=0.0)),
        ("fastconv k-means, Eq. (1), mini-batch 10,000",
         lambda: kmeans(z, 64, iters=iters, batch_size=10000, seed=0, tol=0.0)),
        ("fastconv kmeans_filters, end to end (images to filters)",
         lambda: kmeans_filters(x, 64, 5, n_patches=n_patches, iters=iters, seed=0)),
    ]
    try:
        from sklearn.cluster import MiniBatchKMeans

        steps.append((f"scikit-learn MiniBatchKMeans (batch 10,000, {iters} epochs, same preprocessed patches)",
                      lambda: MiniBatchKMeans(n_clusters=64, batch_size=10000, max_iter=iters, n_init=1,
                                              random_state=0, max_no_improvement=None, tol=0.0).fit(z)))
    except ImportError:
        print("| scikit-learn MiniBatchKMeans | not installed |")
    for name, fn in steps:
        print(f"| {name} | {median_seconds(fn, repeats=3, warmup=1):.3f} |", flush=True)


# ---- 2. redundancy ------------------------------------------------------------------------------

def bench_redundancy(x: np.ndarray, n_patches: int, seeds: List[int]) -> None:
    print(f"\n### Filter redundancy: 32 5×5 filters from {n_patches:,} patches/windows (10×10 windows for "
          f"conv k-means); mean |correlation| between distinct filters, mean ± std over {len(seeds)} seeds\n")
    print("| method | whitening | no shift | best shift within ±1 px |\n|---|---|---:|---:|")
    for whiten in (True, False):
        for method in ("kmeans", "conv-kmeans"):
            c0, c1 = [], []
            for seed in seeds:
                f = kmeans_filters(x, 32, 5, n_patches=n_patches, method=method, whiten=whiten, seed=seed)
                c0.append(mean_pairwise_correlation(f))
                c1.append(mean_pairwise_correlation(f, max_shift=1))
            print(f"| {method} | {'yes' if whiten else 'no'} | {mean_std(c0)} | {mean_std(c1)} |")


# ---- 3. few-label MNIST -------------------------------------------------------------------------

def train_and_test(model, x, y, xt, yt, labels_per_class: int, seed: int, budget: int, lr: float) -> float:
    """Train on the stratified label subset for ~``budget`` samples; test error in %."""
    idx = fc.data.stratified_subset(y, labels_per_class, seed=seed)
    n = len(idx)
    epochs = max(1, round(budget / n))
    loader = fc.data.DataLoader(fc.data.TensorDataset(x[idx], y[idx]), batch_size=32, shuffle=True, seed=seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = fc.optim.Adam(params, lr=lr)
    fc.train.fit(model, loader, fc.nn.functional.cross_entropy, opt, epochs=epochs, verbose=False)
    test = fc.data.DataLoader(fc.data.TensorDataset(xt, yt), batch_size=1000)
    return 100.0 * (1.0 - fc.train.evaluate(model, test)["accuracy"])


def bench_few_labels(x, y, xt, yt, args) -> None:
    label_counts = args.labels
    rows: Dict[str, Dict[int, List[float]]] = {}
    names = ["random He init", f"{args.method} init, fine-tuned", f"{args.method} frozen + trained classifier"]
    for name in names:
        rows[name] = {n: [] for n in label_counts}
    pretrain_seconds = []
    for seed in args.seeds:
        fc.manual_seed(seed)
        pretrained = make_net()
        initial = {k: v.copy() for k, v in pretrained.state_dict().items()}
        t0 = time.perf_counter()
        reports = pretrain_conv_layers(pretrained, x, n_patches=args.pretrain_patches, method=args.method,
                                       seed=seed)
        pretrain_seconds.append(time.perf_counter() - t0)
        kmeans_state = {k: v.copy() for k, v in pretrained.state_dict().items()}
        if seed == args.seeds[0]:
            for r in reports:
                print(f"  layer {r.index} {r.weight_shape}: {r.iterations} iterations, {r.reseeded} re-seeded, "
                      f"correlation {r.correlation:.3f}, active {r.active_fraction:.2f}, {r.seconds:.1f} s")
        for n_labels in label_counts:
            for name in names:
                model = make_net()
                model.load_state_dict(initial if name == names[0] else kmeans_state)
                if name == names[2]:
                    for i in (0, 3):
                        model[i].requires_grad_(False)
                err = train_and_test(model, x, y, xt, yt, n_labels // 10, seed, args.budget, args.lr)
                rows[name][n_labels].append(err)
                print(f"  seed {seed}, {n_labels} labels, {name}: {err:.2f} % error", flush=True)
    print(f"\n### Few-label MNIST: test error (%) on the 10k test set, mean ± std over {len(args.seeds)} seeds\n")
    print(f"Net: conv 5×5 ×16 → ReLU → maxpool 2 → conv 5×5 ×32 → ReLU → maxpool 2 → linear; Adam lr {args.lr}, "
          f"batch 32, ~{args.budget:,} training samples per run (epochs = budget / labels). "
          f"Pretraining: {args.method}, {args.pretrain_patches:,} patches per layer from all 5,000 unlabeled "
          f"training images, {statistics.mean(pretrain_seconds):.1f} s per net.\n")
    header = " | ".join(f"{n} labels" for n in label_counts)
    print(f"| initialization | {header} |\n|---|" + "---:|" * len(label_counts))
    for name in names:
        print(f"| {name} (fastconv) | " + " | ".join(mean_std(rows[name][n]) for n in label_counts) + " |")
    for name, errs in PAPER.items():
        print(f"| {name} | " + " | ".join(f"{errs[n]:.2f}" if n in errs else "–" for n in label_counts) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller run (1 seed, fewer patches, smaller budget)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--method", choices=("kmeans", "conv-kmeans"), default="conv-kmeans")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--labels", type=int, nargs="+", default=[600, 1000, 3000])
    parser.add_argument("--budget", type=int, default=6000, help="training samples per run")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--skip", nargs="*", default=[], choices=("time", "redundancy", "labels"))
    args = parser.parse_args()
    if args.threads:
        fc.set_num_threads(args.threads)
    n_seeds = 1 if args.quick else args.seeds
    args.seeds = list(range(n_seeds))
    args.pretrain_patches = 10000 if args.quick else 20000
    if args.quick:
        args.budget = min(args.budget, 3000)
    x, y, xt, yt = load_mnist()
    start = time.perf_counter()
    if "time" not in args.skip:
        bench_time(x, 20000 if args.quick else 100000, 10)
    if "redundancy" not in args.skip:
        bench_redundancy(x, 10000 if args.quick else 20000, args.seeds)
    if "labels" not in args.skip:
        bench_few_labels(x, y, xt, yt, args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
