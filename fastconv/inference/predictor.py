"""``Predictor``: the compiled model, callable at any batch size from any number of threads.

A predictor holds the optimized graph and, per (batch size, thread count), a runner: its
plans (``program.build_plan``) and a pool of arenas. A call takes an arena from the pool (or
allocates one when every arena is in use by another thread), runs the program with the GIL
released and puts the arena back, so concurrent calls never share buffers.

Two ways to use several threads: with at least as many samples as threads and a graph whose
samples never mix (``samplewise``), each thread runs the whole program on its own share of the
batch with single-threaded kernels (no synchronization between layers); otherwise one program
runs with every kernel parallel inside.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._config import get_num_threads, run_with_kernel_blas
from .._kernels import infer as _infer
from ..nn.functional.conv import planner
from ..tensor import Tensor
from . import fileformat
from .graph import Affine, Graph
from .program import Plan, build_plan


def samplewise(graph: Graph) -> bool:
    """Whether every sample's outputs depend on that sample alone: every computed value is
    (batch, fixed sizes...) and no node reduces, normalizes, concatenates, slices or moves
    across the batch axis."""
    for vid, v in graph.values.items():
        if v.is_const:
            continue
        if not v.shape or v.shape[0] != Affine(0, 1) or any(isinstance(d, Affine) for d in v.shape[1:]):
            return False
    for node in graph.nodes:
        a = node.attrs
        if node.op == "normalize" and isinstance(a["shape3"][0], Affine):
            return False
        if node.op == "reduce" and 0 in a["axes"] or node.op == "softmax" and a["axis"] == 0:
            return False
        if node.op == "concat" and a["axis"] == 0 or node.op == "transpose" and a["axes"][0] != 0:
            return False
        if node.op == "slice":
            first = a["index"][0] if a["index"] else {"ellipsis": True}
            if not (first.get("slice") == [None, None, None] or first.get("ellipsis")):
                return False
        if node.op == "pad" and (a["widths"][0] != [0, 0] or a["crops"][0] != [0, 0]):
            return False
        if node.op == "matmul" and len(graph.values[node.inputs[0]].shape) < 3:
            return False
    return True


def _sample_bytes(graph: Graph) -> int:
    """Bytes one sample's two largest values take: about what a layer reads and writes."""
    sizes = sorted((4 * int(np.prod(v.shape_at(1))) for v in graph.values.values() if not v.is_const), reverse=True)
    return max(sum(sizes[:2]), 1)


def _chunks(n: int, parts: int) -> List[Tuple[int, int]]:
    return [(n * t // parts, n * (t + 1) // parts) for t in range(parts)]


# A micro-batch keeps its activations in about this many bytes per thread (a share of the L3),
# so one sample's way through the network stays in cache instead of every layer streaming the
# whole batch through memory.
MICROBATCH_BYTES = 16 << 20
# The smaller candidate, about a core's L2: it wins where each layer's kernels do as well on a
# few samples (direct and Winograd convolutions), and loses where they need many (pointwise
# GEMMs), so the runner measures both.
L2_MICROBATCH_BYTES = 2 << 20
# Timed runs of each micro-batch candidate (the fastest counts).
MICRO_TRIALS = 3


def _sizes(total: int, micro: int) -> List[int]:
    """``total`` samples in micro-batches of ``micro`` (the last ones evened out)."""
    parts = -(-total // micro)
    return [hi - lo for lo, hi in _chunks(total, parts)]


class _Runner:
    """The plans and arenas of one (batch size, thread count).

    Sample-wise graphs run in micro-batches: each thread takes its share of the batch (with
    several threads and at least as many samples) and runs it micro-batch by micro-batch, with
    one-thread kernels and its own arena; the micro-batch is the largest whose two biggest
    activations fit ``MICROBATCH_BYTES`` or ``L2_MICROBATCH_BYTES`` (at least one sample),
    whichever runs the batch faster when measured. Other graphs, and batches smaller than the
    thread count, run the whole batch as one program, kernels threaded inside; for a batch
    smaller than the thread count that program is timed against one with one-thread kernels
    and the faster kept (measuring): a small net's steps at batch 1 can cost more in waking
    threads than they gain."""

    def __init__(self, predictor: "Predictor", batch: int, threads: int, micro: Optional[int] = None):
        graph = predictor._graph
        first = not predictor._runners
        self.split = predictor._samplewise and (threads == 1 or batch >= threads)
        cache: Dict[Tuple[int, int], Plan] = {}

        def plan(size: int, kernel_threads: int) -> Plan:
            if (size, kernel_threads) not in cache:
                cache[size, kernel_threads] = build_plan(graph, size, kernel_threads, first and not cache)
            return cache[size, kernel_threads]

        if self.split:
            shares = _chunks(batch, threads if batch >= threads else 1)
            kernel_threads = 1 if len(shares) > 1 else threads
            share = max(hi - lo for lo, hi in shares)
            if micro is not None:
                candidates = [min(micro, share)]
            else:
                candidates = sorted({min(share, max(1, limit // predictor._sample_bytes))
                                     for limit in (MICROBATCH_BYTES, L2_MICROBATCH_BYTES)}, reverse=True)
            options = []
            for size in candidates:
                jobs = []  # per thread: (plan, first sample, samples)
                for lo, hi in shares:
                    start, work = lo, []
                    for part in _sizes(hi - lo, min(size, hi - lo)):
                        work.append((plan(part, kernel_threads), start, part))
                        start += part
                    jobs.append(work)
                options.append(jobs)
            self._set_output_shapes(options[0], batch)
            self.jobs = options[0] if len(options) == 1 else self._fastest(options, predictor, batch)
        else:
            self.jobs = [[(plan(batch, threads), 0, batch)]]
            self._set_output_shapes(self.jobs, batch)
            if threads > 1 and batch < threads:  # batch 1 of a small net: threads may not pay
                self.jobs = self._fastest([self.jobs, [[(plan(batch, 1), 0, batch)]]], predictor, batch)
        used = {id(p) for work in self.jobs for p, _, _ in work}
        self.plans = [p for p in cache.values() if id(p) in used]
        self.micro = max(size for work in self.jobs for _, _, size in work)
        # one program over the whole batch: the call passes the caller's arrays as they are
        self._whole = self.jobs[0][0][0] if len(self.jobs) == 1 and len(self.jobs[0]) == 1 else None
        # idle arenas; list.pop and list.append are atomic under the GIL, so no lock is needed
        self._free: List[List[np.ndarray]] = []

    def _set_output_shapes(self, jobs: list, batch: int) -> None:
        self.output_shapes = [(batch,) + tuple(s[1:]) for s in jobs[0][0][0].output_shapes]

    def _fastest(self, options: List[list], predictor: "Predictor", batch: int) -> list:
        """The jobs (micro-batching, or kernel thread count) that run the batch fastest, timed on
        random inputs, the candidates alternating, each timed on the second of two back-to-back
        runs (unless the planner is off: deterministic or not measuring, where the first option
        is kept)."""
        if not planner.measuring():
            return options[0]
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(shape).astype(np.float32) for shape in predictor._wanted_shapes(batch)]
        best = [float("inf")] * len(options)
        arenas: List[list] = [[] for _ in options]
        for trial in range(MICRO_TRIALS + 1):  # the first round untimed: arenas and caches warm
            for k, jobs in enumerate(options):
                self.jobs, self._whole, self._free = jobs, None, arenas[k]
                self.run(inputs)  # untimed: back-to-back calls find the threads awake, as served calls do
                t0 = time.perf_counter()
                self.run(inputs)
                if trial:
                    best[k] = min(best[k], time.perf_counter() - t0)
        return options[min(range(len(options)), key=best.__getitem__)]

    def arena_elements(self) -> int:
        """Elements of the arenas of one call: per thread, the largest of its plans."""
        return sum(max(p.arena_elements for p, _, _ in work) for work in self.jobs)

    def _take(self) -> List[np.ndarray]:
        try:
            return self._free.pop()
        except IndexError:
            return [np.empty(max(max(p.arena_elements for p, _, _ in work), 1), dtype=np.float32)
                    for work in self.jobs]

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        outputs = [np.empty(shape, dtype=np.float32) for shape in self.output_shapes]
        arenas = self._take()
        try:
            if self._whole is not None:
                run_with_kernel_blas(_infer.run, self._whole.program, [arenas[0], self._whole.pool, *inputs, *outputs])
            else:
                jobs = [[(p.program, [arena, p.pool] + [a[lo:lo + n] for a in inputs] + [o[lo:lo + n] for o in outputs])
                         for p, lo, n in work] for arena, work in zip(arenas, self.jobs)]
                run_with_kernel_blas(_infer.run_jobs, jobs)
        finally:
            self._free.append(arenas)
        return outputs


class Predictor:
    """A compiled model: ``predictor(x)`` runs the forward the model was compiled from (float32),
    at any batch size; see ``fastconv.inference.compile``."""

    def __init__(self, graph: Graph, info: Optional[dict] = None):
        self._graph = graph
        self._samplewise = samplewise(graph)
        self._sample_bytes = _sample_bytes(graph)
        self._runners: Dict[Tuple[int, int], _Runner] = {}
        self._input_shapes: Dict[int, List[Tuple[int, ...]]] = {}  # batch -> every input's full shape
        self._build_lock = threading.Lock()
        self.info = dict(info or {})

    # -- calling
    @property
    def input_shapes(self) -> List[Tuple[Any, ...]]:
        """Each input's shape without the batch axis."""
        return [tuple(self._graph.values[v].shape_at(1)[1:]) for v in self._graph.inputs]

    def _arrays(self, inputs) -> Tuple[List[np.ndarray], bool, int]:
        expected = len(self._graph.inputs)
        if len(inputs) != expected:
            raise TypeError(f"Predictor: expected {expected} input{'s' if expected != 1 else ''}, got {len(inputs)}")
        arrays, any_tensor, batch = [], False, None
        for i, (x, vid) in enumerate(zip(inputs, self._graph.inputs)):
            if isinstance(x, Tensor):
                any_tensor = True
                x = x.numpy()
            if not isinstance(x, np.ndarray):
                raise TypeError(f"Predictor: expected input {i} as a float32 ndarray or Tensor, got {type(x).__name__}")
            if x.dtype != np.float32:
                raise TypeError(f"Predictor: expected input {i} of dtype float32 (the compiled predictor runs "
                                f"float32), "
                                f"got {x.dtype}")
            n = x.shape[0] if x.ndim else 0
            want = self._wanted_shapes(n)[i] if n >= 1 else None
            if x.shape != want:
                self._shape_error(i, vid, x, n, want)
            if batch is not None and n != batch:
                raise ValueError(f"Predictor: inputs have different batch sizes ({batch} and {n})")
            batch = n
            arrays.append(np.ascontiguousarray(x))
        return arrays, any_tensor, batch

    def _wanted_shapes(self, batch: int) -> List[Tuple[int, ...]]:
        """Every input's full shape at ``batch`` (cached: the call checks shapes against it)."""
        shapes = self._input_shapes.get(batch)
        if shapes is None:
            shapes = self._input_shapes[batch] = [self._graph.values[v].shape_at(batch) for v in self._graph.inputs]
        return shapes

    def _shape_error(self, i: int, vid: int, x: np.ndarray, n: int, want) -> None:
        shape = self._graph.values[vid].shape
        if x.ndim != len(shape) or x.ndim == 0:
            raise ValueError(f"Predictor: expected input {i} with {len(shape)} dimensions (batch, "
                             f"{', '.join(str(d) for d in self.input_shapes[i])}), got shape {x.shape}")
        if n < 1:
            raise ValueError(f"Predictor: expected a batch of at least one sample, got input {i} of shape "
                             f"{x.shape}")
        raise ValueError(f"Predictor: expected input {i} of shape {want} at batch {n}, got {x.shape}")

    def runner(self, batch: int, threads: Optional[int] = None) -> _Runner:
        """The plans for ``batch`` samples on ``threads`` threads (built on first use)."""
        threads = get_num_threads() if threads is None else threads
        key = (batch, threads)
        runner = self._runners.get(key)
        if runner is None:
            with self._build_lock:
                runner = self._runners.get(key)
                if runner is None:
                    runner = self._runners[key] = _Runner(self, batch, threads)
        return runner

    def __call__(self, *inputs):
        arrays, as_tensor, batch = self._arrays(inputs)
        outputs = self.runner(batch).run(arrays)
        if as_tensor:
            outputs = [Tensor._wrap(o) for o in outputs]
        structure = self._graph.output_structure
        if structure == "tensor" or structure is None:
            return outputs[0]
        return _nest(structure, outputs)

    # -- inspection
    def plan(self, batch: int, threads: Optional[int] = None) -> List[Plan]:
        """The plans a call with ``batch`` samples runs (one per micro-batch size)."""
        return self.runner(batch, threads).plans

    def conv_paths(self, batch: int, threads: Optional[int] = None) -> List[Tuple[str, str]]:
        """(layer, convolution path) of every convolution, as frozen in the plan for ``batch``."""
        return self.plan(batch, threads)[0].conv_paths

    def memory_bytes(self, batch: int, threads: Optional[int] = None) -> Dict[str, int]:
        """What one call at ``batch`` holds: constants (weights, pre-transformed weights, tables),
        the arena (activations and workspace), inputs and outputs."""
        runner = self.runner(batch, threads)
        consts = sum(v.data.nbytes for v in self._graph.values.values() if v.is_const)
        tables = sum(p.pool.nbytes for p in runner.plans)
        arena = 4 * runner.arena_elements()
        io = 4 * sum(int(np.prod(s)) for s in runner.output_shapes)
        io += 4 * sum(int(np.prod(self._graph.values[v].shape_at(batch))) for v in self._graph.inputs)
        return {"constants": consts + tables, "arena": arena, "inputs_outputs": io,
                "total": consts + tables + arena + io}

    def profile(self, *inputs, repeats: int = 5) -> List[Tuple[str, str, float]]:
        """(step, operation, median seconds) of every step of the program a call on ``inputs`` runs:
        the call's own plan when it runs the whole batch as one program, else such a plan built
        now (the whole batch, kernels threaded inside on the current thread count)."""
        arrays, _, batch = self._arrays(inputs)
        plan = self.runner(batch)._whole or build_plan(self._graph, batch, get_num_threads())
        arena = np.empty(max(plan.arena_elements, 1), dtype=np.float32)
        outputs = [np.empty(s, dtype=np.float32) for s in plan.output_shapes]
        bases = [arena, plan.pool] + list(arrays) + outputs
        times = np.median([run_with_kernel_blas(_infer.run_timed, plan.program, bases) for _ in range(repeats)], axis=0)
        return [(name, op, float(t)) for name, op, t in zip(plan.program.names, plan.program.ops(), times)]

    def __repr__(self) -> str:
        ops: Dict[str, int] = {}
        for node in self._graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        fused = sum(1 for n in self._graph.nodes if n.act or n.residual is not None)
        listing = ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
        return (f"Predictor({len(self._graph.nodes)} operations: {listing}; {fused} with fused epilogues; "
                f"inputs {self.input_shapes} per sample)")

    # -- files
    def save(self, path) -> None:
        """Write the predictor to one pickle-free file (``fastconv.save``'s .npz format: the graph as
        JSON, the constants as arrays); ``fastconv.inference.load`` reads it without the model."""
        fileformat.save(self._graph, self.info, path)


def _nest(structure, outputs):
    if isinstance(structure, int):
        return outputs[structure]
    return tuple(_nest(s, outputs) for s in structure)


def load(path) -> Predictor:
    """A predictor written by ``Predictor.save``."""
    graph, info = fileformat.load(path)
    return Predictor(graph, info)
