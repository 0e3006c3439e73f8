"""Kernel benchmark: fastconv vs PyTorch CPU (same thread count, one process) on conv, pooling, norm.

    python bench/bench_kernels.py [--threads 2] [--repeats 7] [--only conv]

Collects cases from bench/cases_conv.py, cases_pool.py and cases_norm.py (those that exist;
each defines ``cases(torch, repeats) -> list[Case]``) and prints this machine's sgemm rate and
a table of median times, GF/s, fraction of sgemm and the fastconv/torch speed ratio.
"""
from __future__ import annotations

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _harness import (common_args, fastconv_sgemm_gflops, format_table, run_cases,  # noqa: E402
                      setup_threads, sgemm_gflops)

CASE_MODULES = ("cases_conv", "cases_pool", "cases_norm")


def collect(torch, repeats: int, only):
    cases = []
    for name in CASE_MODULES:
        if not os.path.exists(os.path.join(HERE, f"{name}.py")):
            continue
        module = importlib.import_module(name)
        cases.extend(module.cases(torch, repeats))
    if only:
        cases = [c for c in cases if only in c.name]
    return cases


def _torch_sgemm(torch) -> str:
    """PyTorch's float32 GEMM rate on 1024³ (its oneDNN/MKL kernel), for the header line."""
    if torch is None:
        return ""
    import numpy as np
    from _harness import median_seconds

    a = torch.tensor(np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32))
    t = median_seconds(lambda: torch.mm(a, a))
    return f", torch sgemm {2.0 * 1024 ** 3 / t / 1e9:.1f} GF/s"


def main(argv=None) -> None:
    args = common_args(__doc__.splitlines()[0]).parse_args(argv)
    torch = setup_threads(args.threads)
    import fastconv

    sgemm = sgemm_gflops()
    own = fastconv_sgemm_gflops(args.threads)
    print(f"fastconv {fastconv.__version__}, torch {getattr(torch, '__version__', 'not installed')}, "
          f"threads {args.threads}; numpy sgemm {sgemm:.1f} GF/s, fastconv sgemm ({fastconv.config()['sgemm']}) "
          f"{own:.1f} GF/s{_torch_sgemm(torch)}; %sgemm is relative to numpy's")
    cases = collect(torch, args.repeats, args.only)
    run_cases(cases, args.repeats, sgemm)
    print(format_table(cases))


if __name__ == "__main__":
    main()
