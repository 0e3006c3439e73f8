"""How good are the planner's picks? Brute force over random convolution geometries.

    python bench/bench_planner.py [--geometries 50] [--threads 1] [--seed 0] [--repeats 5]

For each random geometry (batch, channels, image size, kernel, stride, padding, dilation,
groups incl. depthwise, float32) every eligible path of every pass is timed alternately with
the others (medians of ``--repeats`` samples); the planner's measured pick (its first call) is
compared with the fastest. Reported per pass: how often the pick is within 5 % of the fastest,
the worst pick's slowdown, the heuristic's same figures, and the planning cost (first call
time over the steady call time).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _harness import interleaved_median_seconds  # noqa: E402

import numpy as np  # noqa: E402


def random_geometry(rng):
    """(n, c, h, k, f, s, p, d, groups) of a layer a CNN might have."""
    kind = rng.choice(["dense", "dense", "depthwise", "pointwise", "grouped"])
    n = int(rng.choice([1, 2, 8, 16, 32]))
    h = int(rng.choice([4, 7, 8, 14, 16, 28, 32, 56]))
    c = int(rng.choice([3, 8, 16, 24, 32, 64, 96, 128, 256]))
    if kind == "depthwise":
        return n, c, h, c, int(rng.choice([3, 5])), int(rng.choice([1, 2])), 1, 1, c
    if kind == "pointwise":
        return n, c, h, int(rng.choice([16, 32, 64, 128, 256])), 1, int(rng.choice([1, 1, 2])), 0, 1, 1
    k = int(rng.choice([16, 32, 64, 128, 256]))
    f = int(rng.choice([1, 3, 3, 3, 5, 7]))
    groups = 1
    if kind == "grouped":
        groups = int(rng.choice([2, 4, 8]))
        c, k = max(c // groups, 1) * groups, max(k // groups, 1) * groups
    s = int(rng.choice([1, 1, 2]))
    d = int(rng.choice([1, 1, 1, 2]))
    p = d * (f - 1) // 2
    return n, c, h, k, f, s, p, d, groups


def time_pass(F, fc, planner, x, w, opts, pass_, name, dy):
    def run():
        with planner.force(name, passes=[pass_]):
            if pass_ == "forward":
                with fc.no_grad():
                    F.conv2d(x, w, **opts)
            else:
                xx = x if pass_ == "grad_input" else x.detach()
                ww = w if pass_ == "grad_weight" else w.detach()
                xx.grad = ww.grad = None
                F.conv2d(xx, ww, **opts).backward(dy)
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--geometries", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import fastconv as fc
    import fastconv.nn.functional as F
    from fastconv.nn.functional.conv import planner, registry

    fc.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    stats = {q: {"picked": [], "heuristic": []} for q in registry.PASSES}
    plan_overheads = []
    print(f"threads {args.threads}; slowdown = chosen path's time / fastest eligible path's time")
    for i in range(args.geometries):
        n, c, h, k, f, s, pad, d, groups = random_geometry(rng)
        if h + 2 * pad < d * (f - 1) + 1:
            continue
        x = fc.tensor(rng.standard_normal((n, c, h, h), dtype=np.float32), requires_grad=True)
        w = fc.tensor(rng.standard_normal((k, c // groups, f, f), dtype=np.float32) * 0.1, requires_grad=True)
        opts = dict(stride=s, padding=pad, dilation=d, groups=groups)
        planner.clear_plans()
        planner.settings.benchmark = True
        t0 = time.perf_counter()
        y = F.conv2d(x, w, **opts)
        problem = y.grad_fn.problem
        dy = fc.tensor(rng.standard_normal(y.shape, dtype=np.float32))
        y.backward(dy)
        first = time.perf_counter() - t0
        x.grad = w.grad = None
        t0 = time.perf_counter()
        F.conv2d(x, w, **opts).backward(dy)
        plan_overheads.append(first / max(time.perf_counter() - t0, 1e-9))
        picked = {q: planner.choose(problem, q)[0] for q in registry.PASSES}
        heur = {q: planner.heuristic(problem, q) for q in registry.PASSES}
        line = [f"{n}x{c}x{h}->{k} {f}x{f}/{s} d{d} g{groups}"]
        for q in registry.PASSES:
            names = [path.name for path in registry.eligible(problem, q)]
            times = interleaved_median_seconds([time_pass(F, fc, planner, x, w, opts, q, name, dy) for name in names],
                                               repeats=args.repeats)
            best = min(times)
            by_name = dict(zip(names, times))
            stats[q]["picked"].append(by_name[picked[q]] / best)
            stats[q]["heuristic"].append(by_name[heur[q]] / best)
            line.append(f"{q} {picked[q]} {by_name[picked[q]] / best:.2f} (heur {heur[q]} {by_name[heur[q]] / best:.2f})")
        print(f"{i:3d} " + " | ".join(line), flush=True)
    planner.settings.benchmark = True
    for q, s in stats.items():
        for who, xs in s.items():
            if xs:
                ok = sum(v <= 1.05 for v in xs)
                geo = math.exp(sum(math.log(v) for v in xs) / len(xs))
                print(f"summary {q:12s} {who:9s}: within 5 % of the fastest in {ok}/{len(xs)}, "
                      f"worst {max(xs):.2f}x, geometric mean {geo:.3f}x")
    if plan_overheads:
        print(f"planning cost: first fwd+bwd call = {np.median(plan_overheads):.1f}x a planned call (median), "
              f"max {max(plan_overheads):.1f}x")


if __name__ == "__main__":
    main()
