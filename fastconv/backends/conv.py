"""Switches of the convolution planner (``fastconv.nn.functional.conv.planner``).

``benchmark`` (default True): on the first call with a new geometry, thread count and pass,
time every eligible path and keep the fastest, as cuDNN's benchmark mode does; False: a cheap
heuristic picks. ``deterministic`` (default False): always the heuristic's path, the same on
every run and at every thread count (no timing noise in the choice). ``save_plans(path)`` /
``load_plans(path)`` write and read the measured plans as JSON, so a deployment ships them and
never measures; ``plan(...)`` shows what each pass of a call would run; ``planning_cost()``
reports the time spent measuring."""
from __future__ import annotations

import sys
import types

from ..nn.functional.conv import planner, registry
from ..nn.functional.conv.geometry import ConvGeometry, ConvProblem
from .._validation import int_pair

PASSES = planner.PASSES
save_plans = planner.save_plans
load_plans = planner.load_plans
clear_plans = planner.clear_plans
force = planner.force
disable = planner.disable


def paths():
    """Names of the registered convolution paths."""
    return registry.names()


def planning_cost():
    """{'measure_seconds': time spent timing candidates, 'measured_plans': plans measured}."""
    return dict(planner.stats)


def plan(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, dtype="float32"):
    """{pass: (path, source, threads)} for a conv2d of these shapes: what each pass would run
    now (source: "forced", "measured", "loaded", "heuristic", or "pending" = measured on first
    call), on how many threads (1 where the planner measured one thread faster). ``padding``
    is an int or a pair (top/left = bottom/right)."""
    op = "backends.conv.plan"
    if len(input_shape) != 4 or len(weight_shape) != 4:
        raise ValueError(f"{op}: expected 4-d input and weight shapes, got {input_shape!r} and {weight_shape!r}")
    n, c, h, w = (int(v) for v in input_shape)
    k, cg, kh, kw = (int(v) for v in weight_shape)
    sh, sw = int_pair(stride, op, "stride", minimum=1)
    ph, pw = int_pair(padding, op, "padding", minimum=0)
    dh, dw = int_pair(dilation, op, "dilation", minimum=1)
    if groups < 1 or c != cg * groups or k % groups:
        raise ValueError(f"{op}: input {input_shape!r} and weight {weight_shape!r} disagree with groups={groups}")
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{op}: the filter does not fit the padded input")
    problem = ConvProblem((n, c, h, w), (k, cg, kh, kw),
                          ConvGeometry(kh, kw, sh, sw, ph, pw, dh, dw, groups, out_h, out_w), str(dtype))
    return {p: planner.choose(problem, p) + (planner.pass_threads(problem, p),) for p in planner.PASSES}


class _ConvBackend(types.ModuleType):
    """The module with ``benchmark`` and ``deterministic`` as properties over the planner's
    settings, so ``fastconv.backends.conv.benchmark = False`` takes effect (as in PyTorch)."""

    @property
    def benchmark(self) -> bool:
        return planner.settings.benchmark

    @benchmark.setter
    def benchmark(self, value) -> None:
        planner.settings.benchmark = bool(value)

    @property
    def deterministic(self) -> bool:
        return planner.settings.deterministic

    @deterministic.setter
    def deterministic(self, value) -> None:
        planner.settings.deterministic = bool(value)


sys.modules[__name__].__class__ = _ConvBackend
