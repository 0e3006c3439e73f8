"""The compiled predictor (fastconv.inference) against PyTorch eager, torch.compile and ONNX Runtime:
latency at batch 1 and throughput at batch 64.

    python bench/bench_inference.py                                    # everything (long)
    python bench/bench_inference.py --nets resnet20 lenet --threads 1 --rounds 2
    python bench/bench_inference.py --nets resnet18 --batches 1 --peers fastconv ort

Networks: the demo LeNet (1x28x28), ResNet-20 and a MobileNet-style CIFAR net (MobileNetV2 on
3x32x32, 10 classes), ResNet-18 and MobileNetV2 at 224x224. Every peer starts from the same
weights (PyTorch's initialization with randomized batch-norm statistics, saved once; fastconv
loads the same state_dict) and the same batch; each worker saves its output and the table flags
any that differs from fastconv's. ONNX Runtime runs the model exported from PyTorch
(``torch.onnx.export``, a dynamic batch axis) on its default CPU provider with
``intra_op_num_threads`` = the thread count and one inter-op thread; fastconv compiles with
``fc.inference.compile`` on an example of the measured batch (plans built before timing).

Each measurement runs in a fresh process per peer, never two libraries in one process (two
OpenMP runtimes slow each other down); peers alternate over ``--rounds`` rounds (the order
rotating every round), each worker reports the median time per call over ``--samples`` samples
(each at least ``--min-time`` seconds) and the table shows the median over rounds, in ms per
call, with batch-64 throughput in images/s. Ratios are the peer's time divided by fastconv's
(above 1: fastconv is faster); the summary checks the issue's targets (>= 1.0x ONNX Runtime and
>= 2x PyTorch eager on every row).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _harness import (  # noqa: E402
    add_process_round_options, alternate_rounds, run_worker_process, same_output, time_worker_step,
)

# name: (model, input CxHxW, classes)
NETS = {
    "lenet": ("lenet", (1, 28, 28), 10),
    "resnet20": ("resnet20", (3, 32, 32), 10),
    "mobilenet_cifar": ("mobilenet_v2", (3, 32, 32), 10),
    "resnet18": ("resnet18", (3, 224, 224), 1000),
    "mobilenet_v2": ("mobilenet_v2", (3, 224, 224), 1000),
}
PEERS = ("fastconv", "eager", "compile", "ort")
TARGETS = {"ort": 1.0, "eager": 2.0}


def batch_input(shape, batch: int) -> np.ndarray:
    return np.random.default_rng(1234).standard_normal((batch,) + tuple(shape)).astype(np.float32)


def save_weights(model: str, classes: int, path: str) -> None:
    """PyTorch's initialization (seed 0) with randomized batch-norm parameters and statistics."""
    import torch
    from _torch_models import build

    torch.manual_seed(0)
    net = build(torch, model, num_classes=classes)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    np.savez(path, **{k: v.detach().numpy() for k, v in net.state_dict().items()})


def export_onnx(model: str, shape, classes: int, weights: str, path: str) -> None:
    import torch
    from _torch_models import build

    net = build(torch, model, num_classes=classes)
    with np.load(weights) as z:
        net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    net.eval()
    x = torch.from_numpy(batch_input(shape, 2))
    torch.onnx.export(net, (x,), path, input_names=["input"], output_names=["output"], opset_version=17,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)


# ---- workers ------------------------------------------------------------------------------------------

def _fastconv(args, x, weights):
    sys.path.insert(0, REPO)
    import fastconv as fc
    from fastconv.vision import models

    fc.set_num_threads(args.threads)
    model = getattr(models, NETS[args.net][0])(num_classes=NETS[args.net][2])
    model.load_state_dict(weights)
    model.eval()
    predictor = fc.inference.compile(model, x)
    predictor(x)  # every plan of this batch and thread count built
    return lambda: predictor(x)


def _torch(args, x, weights):
    import torch
    from _torch_models import build

    torch.set_num_threads(args.threads)
    model = build(torch, NETS[args.net][0], num_classes=NETS[args.net][2])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.eval()
    run = torch.compile(model) if args.peer == "compile" else model
    xt = torch.from_numpy(x)

    def step():
        with torch.no_grad():
            return run(xt).numpy()

    return step


def _ort(args, x, weights):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"input": x})[0]


def worker(args) -> None:
    """One peer, one configuration: save the output, then time; writes a JSON result."""
    model, shape, classes = NETS[args.net]
    x = batch_input(shape, args.batch)
    with np.load(args.weights) as z:
        weights = {k: z[k] for k in z.files}
    make = {"fastconv": _fastconv, "eager": _torch, "compile": _torch, "ort": _ort}[args.peer]
    t0 = time.perf_counter()
    step = make(args, x, weights)
    np.save(args.out + ".npy", np.asarray(step()))
    time_worker_step(step, args.out, args.warmup, args.min_time, args.samples, t0)


# ---- the orchestrator ---------------------------------------------------------------------------------

def run_worker(args, peer, net, batch, threads, files, out) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer, "--net", net, "--batch", str(batch),
           "--threads", str(threads), "--weights", files["weights"], "--onnx", files["onnx"], "--out", out,
           "--samples", str(args.samples), "--min-time", str(args.min_time), "--warmup", str(args.warmup)]
    return run_worker_process(cmd, threads, args.timeout, out)


def measure(args, net, batch, threads, files, tmp) -> dict:
    """Median over rounds of each peer's time; peers alternate, the order rotating every round."""
    peers = list(args.peers)
    medians, errors, checks = alternate_rounds(
        peers, args.rounds,
        lambda peer: run_worker(args, peer, net, batch, threads, files, os.path.join(tmp, f"{peer}-{net}-{batch}.json")))
    row = {"net": net, "batch": batch, "threads": threads, "errors": errors, **medians}
    ref = checks.get("fastconv")
    row["check"] = {p: same_output(ref, c) for p, c in checks.items() if p != "fastconv"} if ref is not None else {}
    return row


def print_row(row, peers) -> None:
    fc_t = row.get("fastconv")
    cells = [f"{row['net']:<16}", f"{row['batch']:>5}", f"{row['threads']:>3}"]
    cells += [f"{1e3 * row[p]:9.2f}" if row.get(p) else f"{'-':>9}" for p in peers]
    cells.append(f"{row['batch'] / fc_t:9.0f}" if fc_t and row["batch"] > 1 else f"{'':>9}")
    cells += [f"{row[p] / fc_t:7.2f}x" if row.get(p) and fc_t else f"{'-':>8}" for p in peers if p != "fastconv"]
    notes = [f"OUTPUT MISMATCH vs {p}" for p, ok in row["check"].items() if not ok]
    notes += [f"{p} failed: {e[:100]}" for p, e in row["errors"].items()]
    print(" ".join(cells) + ("  " + "; ".join(notes) if notes else ""), flush=True)


def summary(rows, peers) -> str:
    parts = []
    for p in peers:
        if p == "fastconv":
            continue
        ratios = [r[p] / r["fastconv"] for r in rows if r.get(p) and r.get("fastconv")]
        if not ratios:
            continue
        geo = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
        text = f"vs {p}: geomean {geo:.2f}x, {min(ratios):.2f}-{max(ratios):.2f}x"
        if p in TARGETS:
            text += f", {sum(v >= TARGETS[p] for v in ratios)}/{len(ratios)} rows at >= {TARGETS[p]}x"
        parts.append(text)
    mismatches = sum(1 for r in rows for ok in r["check"].values() if not ok)
    parts.append(f"{mismatches} output mismatches")
    return "summary: " + "; ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    add_process_round_options(p, PEERS, min_time=0.2, warmup=3, what="calls")
    p.add_argument("--net", default=None, help=argparse.SUPPRESS)
    p.add_argument("--onnx", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.peer = args.worker
        args.threads = args.threads[0]
        worker(args)
        return
    if "fastconv" not in args.peers:
        args.peers = ["fastconv"] + list(args.peers)
    peers = list(args.peers)
    head = (f"{'net':<16} {'batch':>5} {'thr':>3} " + " ".join(f"{q + ' ms':>9}" for q in peers)
            + f" {'fc img/s':>9} " + " ".join(f"{q + '/fc':>8}" for q in peers if q != "fastconv"))
    print(f"{len(args.nets)} nets, threads {args.threads}, {args.rounds} rounds of fresh processes per peer "
          f"(alternated), {args.samples} samples each; ratio = peer time / fastconv time (> 1: fastconv faster)")
    print(head)
    print("-" * len(head), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_inference-") as tmp:
        for net in args.nets:
            model, shape, classes = NETS[net]
            files = {"weights": os.path.join(tmp, f"{net}.npz"), "onnx": os.path.join(tmp, f"{net}.onnx")}
            save_weights(model, classes, files["weights"])
            if "ort" in peers:
                export_onnx(model, shape, classes, files["weights"], files["onnx"])
            for batch in args.batches:
                for threads in args.threads:
                    row = measure(args, net, batch, threads, files, tmp)
                    rows.append(row)
                    print_row(row, peers)
    print(summary(rows, peers))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "check"} | {"check": r["check"]} for r in rows], f,
                      indent=1, default=str)


if __name__ == "__main__":
    main()
