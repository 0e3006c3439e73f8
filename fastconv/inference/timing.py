"""Timing executor steps while a plan is built: the plan builder measures what it cannot predict
(a band chain against its steps) by running the steps themselves, as the executor will, on
scratch buffers of random data."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Sequence

import numpy as np

from .._config import run_with_kernel_blas
from .._kernels import infer as _infer
from .memory import ARENA, POOL, aligned


def steps_timer(steps: Sequence[Any], shapes: Dict[int, Sequence[int]], pool: np.ndarray) -> Callable:
    """A function running ``steps`` (the builder's steps: operands as ("v", value, offset) or
    ("pool", offset)) once, every value they touch in its own scratch buffer (random data, shared
    between the steps that touch it) and their workspaces in one arena. One untimed run first."""
    rng = np.random.default_rng(0)
    bases: list = [None, pool]
    where: Dict[int, int] = {}
    for step in steps:
        for ref in list(step.srcs) + [step.dst, step.res]:
            if ref is not None and ref[0] == "v" and ref[1] not in where:
                where[ref[1]] = len(bases)
                bases.append(rng.standard_normal(shapes[ref[1]]).astype(np.float32).reshape(-1))
    work = max((aligned(step.work) for step in steps), default=0)
    bases[ARENA] = np.empty(max(work, 1), np.float32)

    def resolve(ref):
        if ref is None:
            return None
        return (POOL, ref[1]) if ref[0] == "pool" else (where[ref[1]], ref[2])

    program = _infer.Program()
    for step in steps:
        program.add(step.op, step.threads, [resolve(s) for s in step.srcs], resolve(step.dst),
                    (ARENA, 0) if step.work else None, step.ints, step.floats,
                    [None if c is None else np.ascontiguousarray(c) for c in step.consts],
                    step.act[0], step.act[1], step.act[2], resolve(step.res))

    def run():
        run_with_kernel_blas(_infer.run, program, bases)

    run()
    return run


def fastest(runs: Dict[Any, Callable], repeats: int) -> Any:
    """The key of ``runs`` whose function ran fastest (best of ``repeats``, options alternated)."""
    best = {key: float("inf") for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[key] = min(best[key], time.perf_counter() - t0)
    return min(best, key=best.get)
