"""Benchmark harness: fastconv and PyTorch side by side in one process at one thread count.

Times are medians of several runs (calls shorter than 20 ms repeated within a run, time per call);
results are reported as ratios (fastconv/torch speed) and as a fraction of this machine's numpy
sgemm rate, never as absolute times to compare across runs.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if glob.glob(os.path.join(_REPO, "fastconv", "_kernels", "_omp*.so")):
    # kernels built in place (python setup.py build_ext --inplace): benchmark this checkout;
    # otherwise the installed package (pip install .) is imported as usual
    sys.path.insert(0, _REPO)


@dataclass
class Case:
    """One benchmark row: a name, its flop count (None when not a GEMM-like op) and two callables."""

    name: str
    fastconv: Callable[[], object]
    torch: Optional[Callable[[], object]] = None
    flops: Optional[float] = None
    note: str = ""
    results: dict = field(default_factory=dict)


def median_seconds(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# Shortest timed sample: calls shorter than this are repeated within one sample and the time per
# call reported, so sub-millisecond cases (batch-1 convs) measure the steady state of a loop, not
# one cold call plus the timer (a single 0.1 ms call read ~2x slower, for both libraries).
MIN_SAMPLE_SECONDS = 0.02


def _calls_per_sample(fn: Callable[[], object]) -> int:
    """Calls of ``fn`` that take at least MIN_SAMPLE_SECONDS (one warm call timed to estimate)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    return max(1, int(MIN_SAMPLE_SECONDS / max(once, 1e-7)) + 1) if once < MIN_SAMPLE_SECONDS else 1


def interleaved_median_seconds(fns, repeats: int = 7, warmup: int = 2):
    """Median wall time per call of each callable, timed alternately sample by sample so that load
    drifting on a shared machine affects all of them alike (the ratios are what we report); short
    calls are repeated within a sample (MIN_SAMPLE_SECONDS)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    inner = [_calls_per_sample(fn) for fn in fns]
    for fn, calls in zip(fns, inner):  # one untimed sample each: caches, allocator and threads warm
        for _ in range(calls):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, calls, bucket in zip(fns, inner, times):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            bucket.append((time.perf_counter() - t0) / calls)
    return [statistics.median(t) for t in times]


def sgemm_gflops(n: int = 1024, repeats: int = 7) -> float:
    """This machine's float32 GEMM rate through numpy (GF/s, 2·n³ flops per product)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    t = median_seconds(lambda: a @ b, repeats=repeats)
    return 2.0 * n ** 3 / t / 1e9


def fastconv_sgemm_gflops(threads: int, n: int = 1024, repeats: int = 7) -> float:
    """fastconv's own float32 GEMM rate (the kernels' product: packed AVX-512 sgemm or BLAS)."""
    import fastconv
    from fastconv._config import run_with_kernel_blas
    from fastconv._kernels import gemm

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    t = median_seconds(lambda: run_with_kernel_blas(gemm.matmul, False, False, a, b, c, threads),
                       repeats=repeats)
    return 2.0 * n ** 3 / t / 1e9


def setup_threads(threads: int):
    """Same thread count for fastconv (OpenMP + BLAS) and torch; returns torch or None."""
    import fastconv

    fastconv.set_num_threads(threads)
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def run_cases(cases: List[Case], repeats: int, sgemm: float) -> None:
    for c in cases:
        if c.torch is not None:
            fc_t, th_t = interleaved_median_seconds([c.fastconv, c.torch], repeats=repeats)
        else:
            fc_t, th_t = median_seconds(c.fastconv, repeats=repeats), None
        c.results = {"fastconv_ms": fc_t * 1e3, "torch_ms": None if th_t is None else th_t * 1e3}
        if c.flops:
            c.results["gflops"] = c.flops / fc_t / 1e9
            c.results["sgemm_frac"] = c.results["gflops"] / sgemm
        if th_t is not None:
            c.results["speedup"] = th_t / fc_t


def format_table(cases: List[Case]) -> str:
    head = f"{'case':<44} {'fastconv ms':>11} {'torch ms':>9} {'GF/s':>7} {'%sgemm':>7} {'fc/torch':>8}"
    lines = [head, "-" * len(head)]
    for c in cases:
        r = c.results
        torch_ms = f"{r['torch_ms']:.3f}" if r.get("torch_ms") is not None else "-"
        gf = f"{r['gflops']:.1f}" if "gflops" in r else "-"
        frac = f"{100 * r['sgemm_frac']:.0f}%" if "sgemm_frac" in r else "-"
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        lines.append(f"{c.name:<44} {r['fastconv_ms']:>11.3f} {torch_ms:>9} {gf:>7} {frac:>7} {sp:>8}")
    return "\n".join(lines)


def common_args(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="threads for both fastconv and torch")
    p.add_argument("--repeats", type=int, default=7, help="runs per measurement (median reported)")
    p.add_argument("--only", default=None, help="substring filter on case names")
    return p


def add_process_round_options(p: argparse.ArgumentParser, peers, min_time: float, warmup: int, what: str) -> None:
    """The options of the whole-network benchmarks that run every peer in fresh processes,
    alternated over rounds (bench_nets.py, bench_inference.py), and their hidden worker options."""
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--peers", nargs="+", default=list(peers), choices=list(peers))
    p.add_argument("--rounds", type=int, default=3, help="fresh processes per peer, alternated")
    p.add_argument("--samples", type=int, default=5, help="timed samples per process (median)")
    p.add_argument("--min-time", type=float, default=min_time, help=f"shortest sample, seconds (short {what} repeat)")
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed {what} per process (torch.compile compiles)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--worker", choices=list(peers), default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)


# ---- whole-network benchmarks: one peer per fresh process, rounds alternated -------------------------

def time_worker_step(step: Callable[[], object], out: str, warmup: int, min_time: float, samples: int,
                     started: float) -> None:
    """A worker's timing of ``step``: ``warmup`` untimed calls, then ``samples`` samples, each
    repeating the call until it lasts ``min_time``; writes the median seconds per call, the samples
    and the set-up time since ``started`` as JSON to ``out``."""
    for _ in range(warmup):
        step()
    setup = time.perf_counter() - started
    t = time.perf_counter()
    step()
    once = time.perf_counter() - t
    inner = max(1, int(min_time / max(once, 1e-6)) + 1) if once < min_time else 1
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(inner):
            step()
        times.append((time.perf_counter() - t) / inner)
    with open(out, "w") as f:
        json.dump({"seconds": statistics.median(times), "samples": times, "setup_seconds": setup}, f)


def run_worker_process(cmd: List[str], threads: int, timeout: float, out: str) -> dict:
    """Run a worker command in a fresh process at ``threads`` OpenMP threads: its JSON result from
    ``out`` plus ``check``, the output it saved as ``out``.npy (None when it saved none), or
    {"error": its last line of output}."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not os.path.exists(out):
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
    with open(out) as f:
        result = json.load(f)
    os.remove(out)
    check = out + ".npy"
    result["check"] = np.load(check) if os.path.exists(check) else None
    if os.path.exists(check):
        os.remove(check)
    return result


def alternate_rounds(peers: List[str], rounds: int, run: Callable[[str], dict]):
    """``run(peer)`` for every peer in each of ``rounds`` rounds, the order rotating every round so
    that load drifting on a shared machine affects all alike; a peer that fails is not run again.
    Returns (median seconds per peer or None, errors per peer, first check output per peer)."""
    times = {p: [] for p in peers}
    errors, checks = {}, {}
    for r in range(rounds):
        for peer in peers[r % len(peers):] + peers[:r % len(peers)]:
            if peer in errors:
                continue
            res = run(peer)
            if "error" in res:
                errors[peer] = res["error"]
                continue
            times[peer].append(res["seconds"])
            checks.setdefault(peer, res["check"])
    medians = {p: statistics.median(t) if t else None for p, t in times.items()}
    return medians, errors, checks


def same_output(a, b) -> bool:
    """float32 networks: equal up to accumulated rounding, relative to the output's scale."""
    if a is None or b is None or a.shape != b.shape:
        return a is None and b is None
    return float(np.abs(a - b).max()) <= 1e-3 * max(1.0, float(np.abs(b).max()))
