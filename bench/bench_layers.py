"""Every distinct convolution layer of real networks: fastconv vs PyTorch eager, forward and
forward+backward, with the planner's path per pass.

    python bench/bench_layers.py [--threads 1] [--nets resnet18,mobilenet_v2_cifar] [--batches 1,8,64]
                                 [--repeats 5] [--rounds 3] [--json out.json]

Networks: ResNet-18 and ResNet-50 (224×224), ResNet-20/56 (CIFAR), MobileNetV2 (224×224 and the
CIFAR variant at 32×32), VGG-16-BN (CIFAR) and the demo LeNet; layers shared by several nets are
timed once. Calls whose arrays would exceed 8 GiB are skipped. At 1 thread both libraries run in
this process, alternated sample by sample. Above 1 thread each library runs in its own process
(two OpenMP runtimes in one process slow each other down), alternating ``--rounds`` rounds; the
median per layer over rounds is reported. Each fastconv row is timed after the planner's first
call (whose measuring time is reported as the planning cost). The summary gives the worst ratio
and the geometric mean (ratio = torch time / fastconv time: above 1, fastconv is faster).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _harness import interleaved_median_seconds  # noqa: E402  (also puts an in-place build first)

import numpy as np  # noqa: E402

MAX_BYTES = 8 << 30


# ---- the layers ------------------------------------------------------------------------------------
# a layer: (C, H, K, kernel, stride, padding, groups), square images

def _basic_resnet(first, size, channels, stages):
    """ResNet of basic blocks: the stem ``first``, then per stage (width, stride) a strided 3×3
    with its 1×1 shortcut and the stage's 3×3 at its width."""
    layers, c = [first], channels
    for k, s in stages:
        layers.append((c, size, k, 3, s, 1, 1))
        if s != 1:
            layers.append((c, size, k, 1, s, 0, 1))
        size //= s
        layers.append((k, size, k, 3, 1, 1, 1))
        c = k
    return layers


def _resnet18():
    return _basic_resnet((3, 224, 64, 7, 2, 3, 1), 56, 64, ((64, 1), (128, 2), (256, 2), (512, 2)))


def _resnet50():
    layers = [(3, 224, 64, 7, 2, 3, 1)]
    size, c = 56, 64
    for width, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
        out = 4 * width
        layers += [(c, size, width, 1, 1, 0, 1), (width, size, width, 3, s, 1, 1), (c, size, out, 1, s, 0, 1)]
        size //= s
        layers += [(width, size, out, 1, 1, 0, 1), (out, size, width, 1, 1, 0, 1), (width, size, width, 3, 1, 1, 1)]
        c = out
    return layers


def _resnet_cifar():
    return _basic_resnet((3, 32, 16, 3, 1, 1, 1), 32, 16, ((16, 1), (32, 2), (64, 2)))


def _mobilenet_v2(size, first_stride, strides):
    settings = [(1, 16, 1, 1), (6, 24, 2, strides[0]), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
    layers = [(3, size, 32, 3, first_stride, 1, 1)]
    size //= first_stride
    c = 32
    for t, k, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c * t
            if t != 1:
                layers.append((c, size, hidden, 1, 1, 0, 1))
            layers.append((hidden, size, hidden, 3, stride, 1, hidden))
            size = (size - 1) // stride + 1
            layers.append((hidden, size, k, 1, 1, 0, 1))
            c = k
    layers.append((c, size, 1280, 1, 1, 0, 1))
    return layers


def _vgg16_cifar():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, c, size = [], 3, 32
    for v in cfg:
        if v == "M":
            size //= 2
        else:
            layers.append((c, size, v, 3, 1, 1, 1))
            c = v
    return layers


NETS = {
    "resnet18": _resnet18, "resnet50": _resnet50, "resnet20_56": _resnet_cifar,
    "mobilenet_v2": lambda: _mobilenet_v2(224, 2, (2,)),
    "mobilenet_v2_cifar": lambda: _mobilenet_v2(32, 1, (1,)),
    "vgg16_bn_cifar": _vgg16_cifar,
    "lenet": lambda: [(1, 28, 32, 3, 1, 1, 1), (32, 14, 32, 3, 1, 1, 1)],
}


def layer_name(n, layer):
    c, h, k, f, s, p, g = layer
    return f"{n}x{c}x{h}->{k} {f}x{f}/{s}" + (f" g{g}" if g > 1 else "")


def collect(nets, batches):
    """[(batch, layer, nets it occurs in)] without duplicates, skipping calls over MAX_BYTES."""
    seen = {}
    for net in nets:
        for layer in NETS[net]():
            seen.setdefault(layer, []).append(net)
    rows = []
    for n in batches:
        for layer, where in seen.items():
            c, h, k, f, s, p, _ = layer
            out = (h + 2 * p - f) // s + 1
            if 4 * 3 * n * (c * h * h + k * out * out) > MAX_BYTES:
                continue
            rows.append((n, layer, sorted(set(where))))
    return rows


def flops(n, layer):
    c, h, k, f, s, p, g = layer
    out = (h + 2 * p - f) // s + 1
    return 2.0 * n * k * (c // g) * f * f * out * out


# ---- one library's callables ---------------------------------------------------------------------

def fastconv_calls(n, layer, rng):
    import fastconv as fc
    import fastconv.nn.functional as F

    c, h, k, f, s, p, g = layer
    x = fc.tensor(rng.standard_normal((n, c, h, h), dtype=np.float32), requires_grad=True)
    w = fc.tensor(rng.standard_normal((k, c // g, f, f), dtype=np.float32) * 0.1, requires_grad=True)
    out = (h + 2 * p - f) // s + 1
    grad = fc.tensor(rng.standard_normal((n, k, out, out), dtype=np.float32))

    def forward():
        with fc.no_grad():
            return F.conv2d(x, w, stride=s, padding=p, groups=g)

    def forward_backward():
        x.grad = w.grad = None
        F.conv2d(x, w, stride=s, padding=p, groups=g).backward(grad)

    def paths():
        problem = F.conv2d(x, w, stride=s, padding=p, groups=g).grad_fn.problem
        shown = fc.backends.conv.plan(problem.image_shape, problem.weight_shape, stride=s, padding=p, groups=g)
        return "/".join(name + ("@1t" if threads < fc.get_num_threads() else "")
                        for name, _, threads in (shown[q] for q in ("forward", "grad_input", "grad_weight")))

    return forward, forward_backward, paths


def torch_calls(torch, n, layer, rng):
    c, h, k, f, s, p, g = layer
    x = torch.tensor(rng.standard_normal((n, c, h, h), dtype=np.float32), requires_grad=True)
    w = torch.tensor(rng.standard_normal((k, c // g, f, f), dtype=np.float32) * 0.1, requires_grad=True)
    out = (h + 2 * p - f) // s + 1
    grad = torch.tensor(rng.standard_normal((n, k, out, out), dtype=np.float32))
    conv = torch.nn.functional.conv2d

    def forward():
        with torch.no_grad():
            return conv(x, w, stride=s, padding=p, groups=g)

    def forward_backward():
        x.grad = w.grad = None
        conv(x, w, stride=s, padding=p, groups=g).backward(grad)

    return forward, forward_backward


def planning_time(call) -> float:
    """Seconds of the first call (the planner measures its candidates there)."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


# ---- running ---------------------------------------------------------------------------------------

def run_in_process(rows, repeats):
    """1 thread: both libraries here, alternated sample by sample."""
    import torch

    results = []
    for n, layer, where in rows:
        rng = np.random.default_rng(0)
        ff, fb, paths = fastconv_calls(n, layer, rng)
        tf, tb = torch_calls(torch, n, layer, rng)
        plan_s = planning_time(fb) + planning_time(ff)
        fc_f, th_f = interleaved_median_seconds([ff, tf], repeats=repeats)
        fc_b, th_b = interleaved_median_seconds([fb, tb], repeats=repeats)
        results.append(dict(batch=n, layer=list(layer), nets=where, paths=paths(), plan_seconds=plan_s,
                            fastconv=[fc_f, fc_b], torch=[th_f, th_b]))
    return results


def worker(library, rows, repeats):
    """Times of one library (its own process): {index: [fwd, fwd+bwd], ...}."""
    out = {}
    if library == "torch":
        import torch
    for i, (n, layer, _) in enumerate(rows):
        rng = np.random.default_rng(0)
        if library == "fastconv":
            ff, fb, paths = fastconv_calls(n, layer, rng)
            plan_s = planning_time(fb) + planning_time(ff)
            times = interleaved_median_seconds([ff, fb], repeats=repeats)
            out[i] = dict(times=times, paths=paths(), plan_seconds=plan_s)
        else:
            tf, tb = torch_calls(torch, n, layer, rng)
            out[i] = dict(times=interleaved_median_seconds([tf, tb], repeats=repeats))
    return out


def run_processes(rows, args):
    """Above 1 thread: each library in its own process, rounds alternated, medians over rounds."""
    per = {"fastconv": [], "torch": []}
    base = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--nets", args.nets,
            "--batches", args.batches, "--repeats", str(args.repeats)]
    for _ in range(args.rounds):
        for library in ("fastconv", "torch"):
            proc = subprocess.run(base + ["--worker", library], capture_output=True, text=True, check=True)
            per[library].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = []
    for i, (n, layer, where) in enumerate(rows):
        key = str(i)
        med = {lib: [statistics.median(r[key]["times"][j] for r in per[lib]) for j in (0, 1)] for lib in per}
        first = per["fastconv"][0][key]
        results.append(dict(batch=n, layer=list(layer), nets=where, paths=first["paths"],
                            plan_seconds=first["plan_seconds"], fastconv=med["fastconv"], torch=med["torch"]))
    return results


def report(results, threads, sgemm):
    head = (f"{'layer':<30} {'fwd ms':>8} {'ratio':>6} {'f+b ms':>8} {'ratio':>6} {'GF/s f+b':>8} "
            f"{'%sgemm':>6} {'plan ms':>7}  paths fwd/dX/dW  (nets)")
    print(f"threads {threads}; fastconv sgemm {sgemm:.1f} GF/s; ratio = torch time / fastconv time")
    print(head)
    print("-" * len(head))
    ratios = []
    for r in results:
        n, layer = r["batch"], tuple(r["layer"])
        fwd_ratio = r["torch"][0] / r["fastconv"][0]
        fb_ratio = r["torch"][1] / r["fastconv"][1]
        ratios += [fwd_ratio, fb_ratio]
        gf = 3 * flops(n, layer) / r["fastconv"][1] / 1e9
        print(f"{layer_name(n, layer):<30} {1e3 * r['fastconv'][0]:>8.3f} {fwd_ratio:>5.2f}x "
              f"{1e3 * r['fastconv'][1]:>8.3f} {fb_ratio:>5.2f}x {gf:>8.1f} {100 * gf / sgemm:>5.0f}% "
              f"{1e3 * r['plan_seconds']:>7.1f}  {r['paths']}  ({','.join(r['nets'])})")
    if ratios:
        geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        below = sum(x < 1.0 for x in ratios)
        print(f"summary: {len(results)} layers x 2 passes, worst ratio {min(ratios):.2f}x, geometric mean "
              f"{geo:.2f}x, {below} of {len(ratios)} below 1.0x; planning "
              f"{sum(r['plan_seconds'] for r in results):.2f} s of first calls in all")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternated process rounds above 1 thread")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--worker", choices=["fastconv", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    unknown = [n for n in nets if n not in NETS]
    if unknown:
        p.error(f"unknown nets {unknown}; known: {', '.join(NETS)}")
    rows = collect(nets, [int(b) for b in args.batches.split(",")])
    import fastconv as fc
    fc.set_num_threads(args.threads)
    if args.worker:
        if args.worker == "torch":
            import torch
            torch.set_num_threads(args.threads)
        print(json.dumps(worker(args.worker, rows, args.repeats)))
        return
    from _harness import fastconv_sgemm_gflops
    sgemm = fastconv_sgemm_gflops(args.threads)
    if args.threads == 1:
        import torch
        torch.set_num_threads(1)
        results = run_in_process(rows, args.repeats)
    else:
        results = run_processes(rows, args)
    report(results, args.threads, sgemm)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
