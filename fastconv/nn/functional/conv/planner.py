"""The convolution planner: which registered path runs each pass of a call.

On the first call with a new (problem, thread count, pass) it times every eligible path on the
call's own arrays and caches the fastest, as FFTW's planner and cuDNN's benchmark mode do; the
call returns the fastest path's result, so measuring costs the other candidates' run time
once per geometry and nothing after. With measuring off (``benchmark = False``) or in
deterministic mode, a cheap heuristic picks: the eligible path of highest priority whose rule
prefers the call. Plans can be saved as JSON and loaded, so a deployment skips measuring.
Tests force a path on (``force``) or off (``disable``) per pass."""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Callable, Dict, Iterable, Optional, Tuple

from ...._atomic import atomic_write
from ...._kernels import _omp
from . import registry
from .geometry import ConvGeometry, ConvProblem
from .registry import PASSES

# Candidates are timed in alternating rounds and each keeps its fastest run. At least two rounds:
# a path's first run pays its cold start (workspace pages touched for the first time, packing),
# which would otherwise count against the paths with the largest workspaces. While the fastest
# candidate is shorter than MEASURE_REPEAT_BELOW seconds, up to MEASURE_REPEATS rounds: the
# minimum of a few runs is steadier on a busy machine, and short calls cost little to repeat.
MEASURE_REPEAT_BELOW = 2e-3
MEASURE_ROUNDS = 2
MEASURE_REPEATS = 3
# Paths a shape puts far outside their design (``worth_measuring`` False) are timed too while the
# fastest candidate takes less than this (seconds): a path 10x slower then costs a few tenths of
# a second once, and the rules cannot foresee every shape where such a path wins.
MEASURE_ALL_BELOW = 0.02
# With several threads, each candidate is also timed on one thread (``_omp.set_thread_cap``)
# while the fastest call takes less than this (seconds): a short region may not pay for waking
# the other thread and its barriers, or the other core may be taken; longer calls always do.
MEASURE_SERIAL_BELOW = 5e-3
# ...and one thread is kept only when at least this much faster: a wrong serial pick costs up to
# the second core's whole share, a wrong parallel pick of so short a call a few µs.
SERIAL_MARGIN = 0.9
_PLAN_CACHE_SIZE = 4096


class _Settings:
    benchmark = True         # measure on first use (else the heuristic)
    deterministic = False    # heuristic only: the same path on every run
    serial_variants = True   # with several threads, also time each candidate on one
    forced: Dict[str, str] = {}      # pass -> path name, when eligible
    disabled: frozenset = frozenset()


settings = _Settings()
# (problem, threads, pass) -> (path name, how it was chosen: "measured", "loaded", serial: the
# pass runs on one thread)
_PLANS: Dict[Tuple[ConvProblem, int, str], Tuple[str, str, bool]] = {}
# seconds spent measuring, and candidates timed: the reported planning cost
stats = {"measure_seconds": 0.0, "measured_plans": 0}


def _candidates(problem: ConvProblem, pass_: str):
    return [p for p in registry.eligible(problem, pass_) if p.name not in settings.disabled]


def heuristic(problem: ConvProblem, pass_: str) -> str:
    """The eligible, enabled path of highest priority whose rule prefers the call (im2col +
    GEMM when none does)."""
    best = None
    for path in _candidates(problem, pass_):
        if (best is None or path.priority > best.priority) and path.preferred(problem, pass_):
            best = path
    return best.name if best is not None else "gemm"


def _forced(problem: ConvProblem, pass_: str) -> Optional[str]:
    name = settings.forced.get(pass_)
    if name is not None and registry.get(name).eligible(problem, pass_):
        return name
    return None


def _heuristic_only() -> bool:
    """Paths by the heuristic alone: this planner's ``deterministic`` switch, or the process-wide
    deterministic mode (``fastconv.backends.deterministic``), where timing noise must not pick
    the path."""
    return settings.deterministic or _omp.deterministic_partitions() > 0


def measuring() -> bool:
    """Whether choices are measured now: ``benchmark`` on and no deterministic mode (the
    compiled predictor's micro-batch choice follows the same switches)."""
    return settings.benchmark and not _heuristic_only()


def choose(problem: ConvProblem, pass_: str) -> Tuple[str, str]:
    """(path name, source) without measuring: "forced", a cached plan ("measured" or
    "loaded"), else the heuristic's choice: "heuristic" when that is what ``run`` will use,
    "pending" when ``run`` will measure first. The memory declarations use this."""
    if settings.forced:
        name = _forced(problem, pass_)
        if name is not None:
            return name, "forced"
    if _heuristic_only():
        return heuristic(problem, pass_), "heuristic"
    entry = _PLANS.get((problem, _omp.get_max_threads(), pass_))
    if entry is not None and entry[0] not in settings.disabled:
        return entry[:2]
    return heuristic(problem, pass_), ("pending" if settings.benchmark else "heuristic")


def pass_threads(problem: ConvProblem, pass_: str) -> int:
    """Threads the pass runs on now: 1 where its measured plan runs it serially, else the
    calling thread's planned count."""
    if not settings.forced and not _heuristic_only():
        entry = _PLANS.get((problem, _omp.get_max_threads(), pass_))
        if entry is not None and entry[2] and entry[0] not in settings.disabled:
            return 1
    return _omp.get_max_threads()


class _one_thread:
    """Within the block, one thread for the calling thread's kernel calls when ``on`` (a class,
    not a generator context manager: it sits on the batch-1 hot path)."""

    __slots__ = ("on", "previous")

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        if self.on:
            self.previous = _omp.set_thread_cap(1)

    def __exit__(self, *exc):
        if self.on:
            _omp.set_thread_cap(self.previous)


def planned_threads(problem: ConvProblem, pass_: str) -> _one_thread:
    """A context in which the calling thread's kernels use the threads the pass's plan runs on:
    memory declarations (workspaces depend on the thread count) see what the run allocates."""
    return _one_thread(pass_threads(problem, pass_) == 1 and _omp.get_max_threads() > 1)


def run(problem: ConvProblem, pass_: str, execute: Callable, follow_load: bool = True):
    """Run ``pass_`` of ``problem`` by its planned path: ``execute(path)`` computes the pass on
    the call's arrays. Returns (path name, result). Measures first when no plan exists yet.
    ``follow_load=False`` plans for the thread setting whatever the load (a compiled predictor
    freezes its plans: a moment's load while it compiles must not pick them)."""
    if settings.forced:
        name = _forced(problem, pass_)
        if name is not None:
            return name, execute(registry.get(name))
    if _heuristic_only():
        name = heuristic(problem, pass_)
        return name, execute(registry.get(name))
    # other processes keep CPUs busy: the plan of the threads the team will get (not the plan of
    # the setting run on fewer threads; deterministic mode, above, never does this)
    previous = _omp.cap_to_load() if follow_load else -1
    if previous < 0:
        return _run_planned(problem, pass_, execute, _omp.get_max_threads())
    try:
        return _run_planned(problem, pass_, execute, _omp.get_max_threads())
    finally:
        _omp.set_thread_cap(previous)


def _run_planned(problem: ConvProblem, pass_: str, execute: Callable, planned: int):
    """``run`` for a call planned for ``planned`` threads (outside forced and heuristic-only)."""
    key = (problem, planned, pass_)
    entry = _PLANS.get(key)
    if entry is not None and entry[0] not in settings.disabled:
        if not entry[2]:
            return entry[0], execute(registry.get(entry[0]))
        with _one_thread(True):
            return entry[0], execute(registry.get(entry[0]))
    if not settings.benchmark:
        name = heuristic(problem, pass_)
        return name, execute(registry.get(name))
    candidates = _candidates(problem, pass_)
    pick = heuristic(problem, pass_)
    timed = [(p, False) for p in candidates if p.name == pick or p.worth_measuring(problem, pass_)]
    unlikely = [(p, False) for p in candidates if (p, False) not in timed]
    serial = key[1] > 1 and settings.serial_variants
    return _measure(key, timed, execute, unlikely, serial)


def _measure(key, candidates, execute: Callable, unlikely=(), serial=False):
    """Time every (path, serial) candidate on the call's arrays, cache the fastest, return its
    result. Two groups join from the next round when the fastest call so far is short enough to
    afford them: the ``unlikely`` paths (not worth measuring at this shape) under
    MEASURE_ALL_BELOW, and with ``serial`` the one-thread runs of the paths timed so far under
    MEASURE_SERIAL_BELOW."""
    start = time.perf_counter()
    # the fastest run of each kind (False: the full team, True: one thread): time, candidate, result
    fastest = {False: (float("inf"), None, None), True: (float("inf"), None, None)}
    active, rounds, round_ = list(candidates), MEASURE_ROUNDS, 0
    while active:
        for candidate in active:
            path, one_thread = candidate
            with _one_thread(one_thread):
                t0 = time.perf_counter()
                result = execute(path)
                elapsed = time.perf_counter() - t0
            if elapsed < fastest[one_thread][0]:
                fastest[one_thread] = (elapsed, candidate, result)
            result = None
        round_ += 1
        best_time = min(fastest[False][0], fastest[True][0])
        joining = []
        if unlikely and best_time < MEASURE_ALL_BELOW:
            joining, unlikely = list(unlikely), ()
        if serial and best_time < MEASURE_SERIAL_BELOW:
            joining += [(path, True) for path, _ in active + joining]
            serial = False
        if joining:
            active, rounds = active + joining, round_ + MEASURE_ROUNDS
            continue
        if len(active) == 1 or round_ >= MEASURE_REPEATS + rounds - MEASURE_ROUNDS or (
                round_ >= rounds and best_time >= MEASURE_REPEAT_BELOW):
            break
    one = fastest[True][0] < SERIAL_MARGIN * fastest[False][0]
    _, best, best_result = fastest[one]
    fastest = None
    if len(_PLANS) >= _PLAN_CACHE_SIZE:
        _PLANS.clear()
    best_name = best[0].name
    _PLANS[key] = (best_name, "measured", one)
    stats["measure_seconds"] += time.perf_counter() - start
    stats["measured_plans"] += 1
    return best_name, best_result


# ---- switches, inspection and persistence --------------------------------------------------------

@contextlib.contextmanager
def force(name: str, passes: Iterable[str] = PASSES):
    """Within the block, run ``passes`` by path ``name`` whenever it is eligible."""
    registry.get(name)
    passes = tuple(passes)
    for p in passes:
        if p not in PASSES:
            raise ValueError(f"conv planner: unknown pass {p!r}; expected one of {PASSES}")
    previous = dict(settings.forced)
    settings.forced = {**settings.forced, **{p: name for p in passes}}
    try:
        yield
    finally:
        settings.forced = previous


@contextlib.contextmanager
def disable(*names: str):
    """Within the block, never choose the paths ``names``."""
    for name in names:
        registry.get(name)
    previous = settings.disabled
    settings.disabled = previous | frozenset(names)
    try:
        yield
    finally:
        settings.disabled = previous


@contextlib.contextmanager
def heuristic_only():
    """Within the block, passes without a plan take the heuristic's path and are not measured:
    the memory profiler measures a step whose paths its declarations (``choose``) predict."""
    previous = settings.benchmark
    settings.benchmark = False
    try:
        yield
    finally:
        settings.benchmark = previous


def clear_plans() -> None:
    _PLANS.clear()


def plans():
    """The cached plans as JSON-ready records."""
    return [{"image_shape": list(problem.image_shape), "weight_shape": list(problem.weight_shape),
             "geometry": list(problem.geometry), "dtype": problem.dtype, "threads": threads,
             "pass": pass_, "path": name, "serial": serial}
            for (problem, threads, pass_), (name, _, serial) in _PLANS.items()]


def save_plans(path) -> None:
    """Write the cached plans as JSON, atomically (``fastconv._atomic.atomic_write``)."""
    text = json.dumps({"fastconv_conv_plans": 1, "plans": plans()}, indent=1)
    with atomic_write(path, "w") as f:
        f.write(text)


def _record_key(record, where: str):
    try:
        geometry = ConvGeometry(*[int(v) for v in record["geometry"]])
        problem = ConvProblem(tuple(int(v) for v in record["image_shape"]),
                              tuple(int(v) for v in record["weight_shape"]), geometry, str(record["dtype"]))
        threads, pass_, name = int(record["threads"]), str(record["pass"]), str(record["path"])
        serial = record.get("serial", False)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: malformed plan record {record!r} ({exc})") from None
    if len(problem.image_shape) != 4 or len(problem.weight_shape) != 4 or problem.dtype not in (
            "float32", "float64") or pass_ not in PASSES or threads < 1 or not isinstance(serial, bool):
        raise ValueError(f"{where}: malformed plan record {record!r}")
    if name not in registry.names():
        raise ValueError(f"{where}: unknown conv path {name!r} in record {record!r}")
    if not registry.get(name).eligible(problem, pass_):
        raise ValueError(f"{where}: path {name!r} cannot run {pass_} of {record!r}")
    return (problem, threads, pass_), name, serial


def load_plans(path) -> int:
    """Read plans written by ``save_plans``; later calls with those geometries skip measuring.
    Returns how many were loaded. A file that is not such a plan file raises ValueError."""
    where = f"load_plans({os.fspath(path)!r})"
    try:
        with open(path, "r", encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: not a readable conv plan file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(document, dict) or document.get("fastconv_conv_plans") != 1 or not isinstance(
            document.get("plans"), list):
        raise ValueError(f"{where}: not a fastconv conv plan file")
    entries = [_record_key(record, where) for record in document["plans"]]
    for key, name, serial in entries:
        _PLANS[key] = (name, "loaded", serial)
    return len(entries)
