"""Whole-network speed on a busy machine: fastconv, PyTorch and ONNX Runtime at 1 and 2 threads.

A CPU hog (``while True: pass``) is pinned to one core; each library then runs each case in its
own process (same weights everywhere), at each thread count, and the same cases run again on the
idle machine. Cases: the demo network (``fastconv.cli.DEMO_ARCH``) inference at batch 1 and 64,
its SGD training step at batch 64, and ResNet-20 (CIFAR, He et al. 2016) inference at batch 1
(``--cases`` adds ``resnet20-train-64``, ``resnet20-infer-64``). Reported: mean time per call over
the timed window (a busy machine's times are heavy-tailed; the mean is what a user waits), and
for each library the ratio of its 1-thread time to its 2-thread time (> 1: the second thread helps).
The processes run in rounds (every configuration once per round) and each cell is the median
over the rounds, so that load drifting on a shared machine hits all configurations alike.

    python bench/bench_contention.py [--load busy idle] [--threads 1 2] [--seconds 1] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _harness  # noqa: E402,F401  (puts this checkout's fastconv first when its kernels are built in place)

CASES = ("demo-infer-1", "demo-infer-64", "demo-train-64", "resnet20-infer-1")
EXTRA_CASES = ("resnet20-infer-64", "resnet20-train-64")
LIBRARIES = ("fastconv", "torch", "onnxruntime")
NUM_CLASSES = 10


# ---- networks --------------------------------------------------------------------------------------
def demo_fastconv():
    import fastconv as fc
    from fastconv._runs import build_model
    from fastconv.cli import DEMO_ARCH

    fc.manual_seed(0)
    return build_model(DEMO_ARCH, (1, 28, 28), NUM_CLASSES)


def resnet20_fastconv():
    """ResNet-20 for 32×32 inputs: 3 stages of 3 basic blocks (16, 32, 64 channels), 1×1
    convolution + BatchNorm shortcuts where the shape changes, global average pool, one FC."""
    import fastconv as fc
    from fastconv import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Sequential())

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU()
            blocks, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    blocks.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.layers = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(64, NUM_CLASSES)

        def forward(self, x):
            x = self.layers(self.relu(self.bn1(self.conv1(x))))
            return self.fc(self.flatten(self.pool(x)))

    fc.manual_seed(0)
    return ResNet20()


def resnet20_torch(torch):
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.shortcut = (tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride=stride, bias=False), tnn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else tnn.Sequential())

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet20(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            self.relu = tnn.ReLU()
            blocks, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    blocks.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.layers = tnn.Sequential(*blocks)
            self.pool = tnn.AdaptiveAvgPool2d(1)
            self.flatten = tnn.Flatten()
            self.fc = tnn.Linear(64, NUM_CLASSES)

        def forward(self, x):
            x = self.layers(self.relu(self.bn1(self.conv1(x))))
            return self.fc(self.flatten(self.pool(x)))

    return ResNet20()


def torch_model(torch, network: str, state: dict):
    if network == "demo":
        from bench_train import torch_twin

        net = torch_twin(torch, demo_fastconv())
    else:
        net = resnet20_torch(torch)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return net


def input_shape(network: str):
    return (1, 28, 28) if network == "demo" else (3, 32, 32)


def parse_case(case: str):
    network, mode, batch = case.split("-")
    return network, mode, int(batch)


# ---- one library, one case, one thread count (runs in its own process) -------------------------------
def time_calls(fn, seconds: float, warmup: int = 3):
    """Mean seconds per call of ``fn`` over a window of about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls, calls


def fastconv_call(case: str, weights: dict, threads: int):
    import fastconv as fc

    fc.set_num_threads(threads)
    network, mode, batch = parse_case(case)
    model = demo_fastconv() if network == "demo" else resnet20_fastconv()
    model.load_state_dict(fc.load(weights[network]))
    rng = np.random.default_rng(0)
    x = fc.tensor(rng.standard_normal((batch,) + input_shape(network)).astype(np.float32))
    if mode == "infer":
        model.eval()

        def infer():
            with fc.no_grad():
                model(x)
        return infer
    y = rng.integers(0, NUM_CLASSES, size=batch)
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    F = fc.nn.functional

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_call(case: str, weights: dict, threads: int):
    import torch  # first: its own libgomp (and wait policy) serve it; fastconv only loads weights here
    import fastconv as fc

    torch.set_num_threads(threads)
    network, mode, batch = parse_case(case)
    net = torch_model(torch, network, fc.load(weights[network]))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch,) + input_shape(network)).astype(np.float32))
    if mode == "infer":
        net.eval()

        def infer():
            with torch.inference_mode():
                net(x)
        return infer
    y = torch.from_numpy(rng.integers(0, NUM_CLASSES, size=batch))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def onnxruntime_call(case: str, weights: dict, threads: int):
    import onnxruntime as ort

    network, mode, batch = parse_case(case)
    if mode != "infer":
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(weights[f"{network}.onnx"], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch,) + input_shape(network)).astype(np.float32)
    return lambda: session.run(None, {name: x})


def worker(spec: dict) -> None:
    make = {"fastconv": fastconv_call, "torch": torch_call, "onnxruntime": onnxruntime_call}[spec["library"]]
    fn = make(spec["case"], spec["weights"], spec["threads"])
    if fn is None:
        print(json.dumps(None))
        return
    seconds, calls = time_calls(fn, spec["seconds"])
    print(json.dumps({"ms": seconds * 1e3, "calls": calls}))


# ---- driver ----------------------------------------------------------------------------------------
def available(library: str) -> bool:
    try:
        __import__(library)
        return True
    except ImportError:
        return False


def write_weights(folder: str, libraries) -> dict:
    """Both networks' fastconv weights as .npz (every library loads these) and, for ONNX Runtime,
    the PyTorch twins exported to ONNX with a dynamic batch axis."""
    import fastconv as fc

    weights = {}
    for network, build in (("demo", demo_fastconv), ("resnet20", resnet20_fastconv)):
        path = os.path.join(folder, f"{network}.npz")
        fc.save(build().state_dict(), path)
        weights[network] = path
        if "onnxruntime" in libraries:
            import warnings

            import torch

            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice

            net = torch_model(torch, network, fc.load(path)).eval()
            onnx_path = os.path.join(folder, f"{network}.onnx")
            torch.onnx.export(net, torch.zeros((1,) + input_shape(network)), onnx_path, dynamo=False,
                              input_names=["x"], dynamic_axes={"x": {0: "batch"}}, opset_version=17)
            weights[f"{network}.onnx"] = onnx_path
    return weights


def run_worker(spec: dict, timeout: float):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_contention: worker {spec['library']} {spec['case']} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def background_cpus(seconds: float = 0.5):
    """CPUs kept busy by other processes over ``seconds`` (from /proc/stat; None elsewhere): the
    "idle" machine is only idle when this is near 0."""
    def busy_ticks():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:8]]
        return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]  # user nice system irq softirq
    try:
        before = busy_ticks()
        time.sleep(seconds)
        return (busy_ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds
    except OSError:
        return None


def start_hog():
    """A busy loop pinned to the last CPU this process may use; returns the Popen."""
    cpu = max(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.sched_setaffinity(hog.pid, {cpu})
    time.sleep(0.2)
    return hog


def measure(load: str, cases, libraries, threads, seconds: float, rounds: int, weights: dict) -> dict:
    """{(case, library, threads): {"ms": median over the rounds}} (None where the library has no
    such case)."""
    samples = {}
    hog = start_hog() if load == "busy" else None
    try:
        for _ in range(rounds):
            for case in cases:
                for library in libraries:
                    for t in threads:
                        spec = {"library": library, "case": case, "threads": t, "seconds": seconds,
                                "weights": weights}
                        r = run_worker(spec, timeout=120 + 20 * seconds)
                        if r is not None:
                            samples.setdefault((case, library, t), []).append(r["ms"])
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return {key: {"ms": statistics.median(ms)} for key, ms in samples.items()}


def format_results(load: str, results: dict, cases, libraries, threads) -> str:
    cols = [(lib, t) for lib in libraries for t in threads]
    names = {"fastconv": "fc", "torch": "torch", "onnxruntime": "ort"}
    head = f"{load + ' machine':<20}" + "".join(f"{names[lib] + f' {t}t ms':>12}" for lib, t in cols)
    ratio = len(threads) == 2
    if ratio:
        head += "".join(f"{names[lib] + f' {threads[0]}t/{threads[1]}t':>13}" for lib in libraries)
    lines = [head, "-" * len(head)]
    for case in cases:
        row = f"{case:<20}"
        for lib, t in cols:
            r = results.get((case, lib, t))
            row += f"{r['ms']:>12.3f}" if r else f"{'-':>12}"
        if ratio:
            for lib in libraries:
                a, b = results.get((case, lib, threads[0])), results.get((case, lib, threads[1]))
                row += f"{a['ms'] / b['ms']:>12.2f}x" if a and b else f"{'-':>13}"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", nargs="+", default=["busy", "idle"], choices=["busy", "idle"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES + EXTRA_CASES)
    p.add_argument("--seconds", type=float, default=1.0, help="timed window per measurement")
    p.add_argument("--rounds", type=int, default=3, help="runs of every configuration (median reported)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    libraries = [lib for lib in args.libraries if available(lib)]
    if "onnxruntime" in libraries and not available("torch"):
        libraries.remove("onnxruntime")  # the ONNX files are exported from the PyTorch twins
    with tempfile.TemporaryDirectory() as folder:
        weights = write_weights(folder, libraries)
        print(f"bench_contention: {', '.join(libraries)}; threads {args.threads}; mean ms per call over "
              f"~{args.seconds:g} s per process, median of {args.rounds} rounds; busy = one "
              f"`while True: pass` pinned to CPU {max(os.sched_getaffinity(0))}")
        for load in args.load:
            background = background_cpus()
            results = measure(load, args.cases, libraries, args.threads, args.seconds, args.rounds, weights)
            print(format_results(load, results, args.cases, libraries, args.threads))
            if background is not None:
                print(f"(before this table other processes kept {background:.2f} of "
                      f"{len(os.sched_getaffinity(0))} CPUs busy)", flush=True)


if __name__ == "__main__":
    main()
