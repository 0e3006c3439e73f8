"""One executable plan of the graph at one batch size and thread count.

``build_plan`` evaluates every shape at the batch, turns each node into executor steps
(``fastconv/_kernels/infer.pyx``), chooses each convolution's path through the convolution
planner (timing the executor's own step per candidate) and calls that path's kernel directly;
layers whose path reads a prepared layout (the output-channel-vectorized packing, the depthwise
channel-minor filter) get it once and keep that path (``PackedWeight``), Winograd filters are
transformed per call into the workspace. Element-wise operations run in place where their input
dies, and every intermediate buffer and workspace is laid out in one arena
(``memory.assign_offsets``).

Operand bases of a program: 0 the arena, 1 the constant pool (constants used as data operands),
then the graph inputs, then the outputs. Graph inputs are never written.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._config import run_with_kernel_blas
from .._kernels import _omp
from .._kernels import depthwise as _dw
from .._kernels import direct as _direct
from .._kernels import gemm as _gemm
from .._kernels import infer as _infer
from .._kernels import winograd as _winograd
from ..nn.functional.conv import path_gemm, path_implicit, path_winograd, planner, registry
from ..nn.functional.conv.common import threads_for
from ..nn.functional.conv.geometry import ConvGeometry, ConvProblem
from ..nn.functional.conv.path_depthwise import DepthwisePath, _group_size
from . import bands, timing
from .graph import Graph, GraphError, Node, resolve
from .memory import ARENA, POOL, aligned, assign_offsets
ACT_CODES = {None: 0, "clamp": 1, "leaky": 2, "elu": 3, "sigmoid": 4, "tanh": 5, "silu": 6, "gelu": 7,
             "gelu_tanh": 8, "hardswish": 9, "hardsigmoid": 10, "affine": 11, "exp": 12, "log": 13, "sqrt": 14,
             "abs": 15, "pow": 16, "rdiv": 17, "rpow": 18, "softplus": 19, "mish": 20}
BINARY_CODES = {"add": 0, "sub": 1, "mul": 2, "div": 3, "pow": 4, "max": 5, "min": 6}
REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2, "min": 3}
MAX_DIMS = 6
# Loops of the executor over fewer elements than this run on one thread (a fork/join costs more).
PARALLEL_MIN_ELEMENTS = 1 << 15
# Output elements of one chunk of a one-thread convolution with an epilogue (256 KiB: in L2).
CHUNK_ELEMENTS = 1 << 16
# Without measuring, values beside a channel-vectorized depthwise step are kept channel-minor when
# its output has at least this many pixels over the batch (the 1×1 GEMMs then have enough rows).
CHANNEL_MINOR_PIXELS = 64
# Measuring a convolution's candidate paths when a plan is built: the minimum of MEASURE_REPEATS
# runs for calls shorter than MEASURE_REPEAT_BELOW seconds (one run above).
MEASURE_REPEAT_BELOW = 0.05
MEASURE_REPEATS = 5
# Convolution paths the executor runs (every registered path but these is disabled when planning).
CONV_STEPS = {"gemm": "conv_gemm", "shallow": "conv_gemm", "winograd": "conv_winograd",
              "implicit": "conv_implicit", "ocvec": "conv_ocvec", "depthwise": "conv_channel",
              "grouped": "conv_channel", "depthwise_planes": "conv_planes", "pointwise": "conv_pointwise",
              "pointwise_batched": "conv_pw_batched"}


@dataclass
class Plan:
    """A program and the sizes of what it runs on."""

    program: Any
    batch: int
    threads: int
    arena_elements: int
    pool: np.ndarray
    input_shapes: List[Tuple[int, ...]]
    output_shapes: List[Tuple[int, ...]]
    conv_paths: List[Tuple[str, str]] = field(default_factory=list)  # (layer, path) per convolution


# Paths whose weight layout is prepared once at compile time (the layer's original weight is then
# dropped: one copy of each weight in memory); every other path reads the original weight.
PACKED_PATHS = ("ocvec", "depthwise", "grouped")

# A 1×1 convolution's weight is held as the sgemm's prepacked B panels (PackedWeight "panels") when
# its images have at most this many pixels and it has at least PANEL_MIN_CHANNELS outputs: a product
# over few pixels spends 3–60 % of its time repacking the weight (the fewer pixels, the more; see
# docs/design.md §16), a larger image next to nothing, and fewer outputs than a panel's 32 columns
# would be half padding. Linear layers always qualify by their outputs.
PANEL_MAX_PIXELS = 1024
PANEL_MIN_CHANNELS = 32
PANEL_COLUMNS = _gemm.PANEL_COLUMNS
# Outputs of one block of a prepacked 1×1 step: the block and its input rows stay in L2.
PANEL_BLOCK_FLOATS = 32768
PANEL_MIN_ROWS = 12  # a register tile's rows
PANEL_BALANCED_ITEMS = 4  # below this many blocks per thread, blocks are made to divide evenly


# A Winograd layer chosen by a predictor's first plan keeps its transformed filter (PackedWeight
# "winograd") when that holds at most this many floats: transforming a small filter on every call
# costs a third of a 32×16×16→32 batch-1 forward (12 of 37 µs), while the kept copy (16/9 of the
# weight, plus the original for files) adds little; large filters are transformed per call, where
# it is at most 2/tiles of the work and a kept copy would weigh on weight-dominated models.
WINOGRAD_KEEP_FLOATS = 1 << 16


def keeps_winograd_filter(problem: ConvProblem) -> bool:
    """Whether the Winograd path keeps ``problem``'s transformed filter (see WINOGRAD_KEEP_FLOATS)."""
    return (_winograd.panel_layout(problem.dtype == "float32")
            and _winograd.filter_elements(problem.in_channels, problem.out_channels, True) <= WINOGRAD_KEEP_FLOATS)


class PackedWeight:
    """A convolution weight held only in the layout its layer's frozen path reads (``PACKED_PATHS``):
    the output-channel-vectorized blocks ([block][tap][channel], bias padded to the block) or the
    channel-minor depthwise/grouped filter ((taps·G, Cp), bias padded to Cp); or a 1×1 or linear
    weight as the sgemm's prepacked B panels ("panels", PANEL_MAX_PIXELS; the bias stays apart); or
    a small 3×3 filter Winograd-transformed ("winograd", WINOGRAD_KEEP_FLOATS; the original kept
    too: the transform is not exactly invertible). ``np.asarray`` of it
    gives back the original (K, C/groups, kh, kw) weight exactly (files store that: the layouts
    depend on the CPU's vector width)."""

    def __init__(self, path: str, weight: np.ndarray, bias: Optional[np.ndarray]):
        self.path = path
        self.shape = tuple(weight.shape)
        self.dtype = np.dtype(np.float32)
        k = weight.shape[0]
        if path == "winograd":  # the transformed filter in the sgemm's A panels, and the original
            c = weight.shape[1]
            u = _gemm.aligned_floats(_winograd.filter_elements(c, k, True))
            _winograd.winograd_filter(np.ascontiguousarray(weight, np.float32), u, False, _winograd.PANEL_ROWS, 1)
            self.arrays = (u, np.ascontiguousarray(weight, np.float32).copy())
        elif path == "panels":  # a 1×1 or linear weight (K, C) as op(B) = wᵀ, C × K in 32-column panels
            self.arrays = (_gemm.pack_b_panels(True, np.ascontiguousarray(weight, np.float32).reshape(k, -1)),)
        elif path == "ocvec":
            self.block = _direct.ocvec_block(k)
            self.arrays = _direct.ocvec_pack(np.ascontiguousarray(weight.reshape(k, -1)), bias)
        else:
            cp = _dw.channel_padded(k)
            bias_p = np.zeros(cp, dtype=np.float32)
            if bias is not None:
                bias_p[:k] = bias
            self.cp = cp
            self.arrays = (DepthwisePath._filter(weight, cp), bias_p)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __array__(self, dtype=None, copy=None):
        k = self.shape[0]
        taps = int(np.prod(self.shape[1:]))
        if self.path == "winograd":
            out = self.arrays[1]
        elif self.path == "panels":
            panels = -(-k // PANEL_COLUMNS)
            out = self.arrays[0].reshape(panels, taps, PANEL_COLUMNS).transpose(0, 2, 1).reshape(-1, taps)[:k]
        elif self.path == "ocvec":
            blocks = -(-k // self.block)
            w = self.arrays[0][:blocks * self.block * taps].reshape(blocks, taps, self.block)
            out = w.transpose(0, 2, 1).reshape(blocks * self.block, taps)[:k]
        else:
            g = self.shape[1]
            kh, kw = self.shape[2], self.shape[3]
            out = self.arrays[0].reshape(kh * kw, g, self.cp)[:, :, :k].transpose(2, 1, 0)
        out = np.ascontiguousarray(out, dtype=np.float32).reshape(self.shape)
        return out if dtype is None else out.astype(dtype)


def _contiguous_strides(shape: Sequence[int]) -> List[int]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= int(n)
    return strides[::-1]


def _numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _collapse(shape: List[int], *strides: List[int]) -> Tuple[List[int], List[List[int]]]:
    """Merge adjacent axes that every operand walks contiguously (and drop size-1 axes)."""
    keep = [d for d in range(len(shape)) if shape[d] != 1] or [len(shape) - 1] if shape else []
    shape = [shape[d] for d in keep] if shape else [1]
    strides = [[s[d] for d in keep] if keep else [0] for s in strides]
    out_shape, out_strides = [shape[0]], [[s[0]] for s in strides]
    for d in range(1, len(shape)):
        if all(s[d - 1] == s[d] * shape[d] for s in strides):
            out_shape[-1] *= shape[d]
            for o, s in zip(out_strides, strides):
                o[-1] = s[d]
        else:
            out_shape.append(shape[d])
            for o, s in zip(out_strides, strides):
                o.append(s[d])
    return out_shape, out_strides


@contextlib.contextmanager
def _careful_measuring():
    """Measure plans on more repeats than a training step's first call does: a plan is built
    once and served many times, and one sample on a busy machine can be off by 2x."""
    saved = planner.MEASURE_REPEAT_BELOW, planner.MEASURE_REPEATS
    planner.MEASURE_REPEAT_BELOW, planner.MEASURE_REPEATS = MEASURE_REPEAT_BELOW, MEASURE_REPEATS
    try:
        yield
    finally:
        planner.MEASURE_REPEAT_BELOW, planner.MEASURE_REPEATS = saved


@dataclass
class _Step:
    op: str
    threads: int
    srcs: List[Any]
    dst: Any
    ints: List[int] = field(default_factory=list)
    floats: List[float] = field(default_factory=list)
    consts: List[Any] = field(default_factory=list)
    work: int = 0
    act: Tuple[int, float, float] = (0, 0.0, 0.0)
    res: Any = None
    name: str = ""
    reads: List[int] = field(default_factory=list)   # value ids read
    writes: List[int] = field(default_factory=list)  # value ids written


class _Builder:
    """Emits the steps of one plan."""

    def __init__(self, graph: Graph, batch: int, threads: int, freeze: bool):
        self.graph, self.batch, self.threads, self.freeze = graph, batch, threads, freeze
        self.shapes: Dict[int, Tuple[int, ...]] = {}
        for vid, v in graph.values.items():
            self.shapes[vid] = tuple(v.data.shape) if v.is_const else v.shape_at(batch)
            if not v.is_const and any(d < 0 for d in self.shapes[vid]):
                raise GraphError(f"inference: batch {batch} gives a negative size {self.shapes[vid]}")
        self.steps: List[_Step] = []
        self.alias: Dict[int, int] = {}   # value → the value whose memory it is (reshapes)
        self.pool_parts: List[np.ndarray] = []
        self.pool_offset: Dict[int, int] = {}
        self.pool_size = 0
        self.conv_paths: List[Tuple[str, str]] = []
        self.node: Optional[Node] = None
        self.inplace: Dict[int, List[int]] = {}  # output value → values whose memory it may take
        self.next_temp = max(graph.values, default=0) + 1
        self.minor: set = set()  # values stored channel-minor (images of pixels × channels)
        self.forced: Dict[int, str] = {}  # convolution output → the path its chain's timing chose

    # -- operands
    def root(self, vid: int) -> int:
        while vid in self.alias:
            vid = self.alias[vid]
        return vid

    def temp(self, shape: Sequence[int]) -> int:
        """A value of the plan only (an intermediate of one node's steps)."""
        vid = self.next_temp
        self.next_temp += 1
        self.shapes[vid] = tuple(int(d) for d in shape)
        return vid

    def is_const(self, vid: int) -> bool:
        v = self.graph.values.get(vid)
        return v is not None and v.is_const

    def ref(self, vid: int, offset: int = 0):
        """An operand: a value (plus an element offset into it); constants from the pool."""
        v = self.graph.values.get(vid)
        if v is not None and v.is_const:
            if vid not in self.pool_offset:
                data = np.ascontiguousarray(v.data, dtype=np.float32).reshape(-1)
                self.pool_offset[vid] = self.pool_size
                self.pool_parts.append(data)
                self.pool_size += aligned(data.size)
                if data.size != aligned(data.size):
                    self.pool_parts.append(np.zeros(aligned(data.size) - data.size, np.float32))
            return ("pool", self.pool_offset[vid] + offset)
        return ("v", vid, offset)

    def const(self, vid: int) -> np.ndarray:
        return np.ascontiguousarray(self.graph.values[vid].data, dtype=np.float32)

    def loop_threads(self, elements: int) -> int:
        return self.threads if elements >= PARALLEL_MIN_ELEMENTS else 1

    def emit(self, op: str, threads: int, srcs: Sequence[Any], dst, reads: Sequence[int], writes: Sequence[int],
             **kw) -> _Step:
        node = self.node
        kw.setdefault("name", node.where() if node is not None else op)
        step = _Step(op, max(1, int(threads)), list(srcs), dst, reads=list(reads), writes=list(writes), **kw)
        self.steps.append(step)
        return step

    def with_epilogue(self, step: _Step, node: Node) -> _Step:
        if node.act is not None:
            name, a0, a1 = node.act
            step.act = (ACT_CODES[name], float(a0), float(a1))
        if node.residual is not None:
            step.res = self.ref(node.residual)
            step.reads.append(node.residual)
        return step

    # -- nodes
    def build(self) -> None:
        self.minor = self.channel_minor_values()
        for node in self.graph.nodes:
            node = dataclasses.replace(node, attrs=resolve(node.attrs, self.batch))
            self.node = node
            handler = getattr(self, "op_" + node.op, None)
            if handler is None:
                raise GraphError(f"inference: no executor step for {node.where()}")
            handler(node)
        self.node = None
        self.fuse_bands()

    def fuse_bands(self) -> None:
        """Put a band-chain header before each expand → depthwise → project triple of steps
        (``bands.py``) that runs faster as one: measured against the three steps for each band
        length, or without measuring when an image's expanded activations reach CHAIN_MIN_FLOATS.
        The three steps stay in the plan, without workspace (the chain calls their kernels
        directly); the last reads every value of the chain, which keeps them all alive, and apart
        in the arena, while the chain runs."""
        steps, j = [], 0
        while j < len(self.steps):
            header = self.chain_header(j) if bands.is_chain(self.steps, j) else None
            if header is not None:
                a, b, c = chain = self.steps[j:j + 3]
                for step in chain:
                    step.work = 0
                c.reads = c.reads + a.reads + a.writes + b.writes
                steps += [header] + chain
                j += 3
                continue
            steps.append(self.steps[j])
            j += 1
        self.steps = steps

    def chain_header(self, j: int) -> Optional[_Step]:
        """The header of the band chain at step j, or None when the steps run faster apart."""
        headers = [_band_header(self.steps, j, floats) for floats in bands.CHAIN_BAND_FLOATS]
        if not planner.measuring():
            return headers[0] if bands.expanded_floats(self.steps, j) >= bands.CHAIN_MIN_FLOATS else None
        runs = {k: bands.chain_timer(self.steps, j, self.shapes, h) for k, h in enumerate(headers)}
        runs[None] = bands.chain_timer(self.steps, j, self.shapes, None)
        best = timing.fastest(runs, MEASURE_REPEATS)
        return None if best is None else headers[best]

    def op_reshape(self, node: Node) -> None:
        src = node.inputs[0]
        if self.is_const(src):
            self.copy_contiguous(node, src)
            return
        self.alias[node.output] = src

    def copy_contiguous(self, node: Node, src: int) -> None:
        n = _numel(self.shapes[node.output])
        self.emit("copy", self.loop_threads(n), [self.ref(src)], self.ref(node.output), [src], [node.output],
                  ints=[1, n, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1])

    # convolutions
    def op_conv2d(self, node: Node) -> None:
        """A convolution on its layer's path: frozen when its weight is packed for one, else the
        planner's choice at this batch size among the paths reading the original weight (the
        first plan of a predictor may also choose a packed path, which then freezes it)."""
        x = node.inputs[0]
        x_minor, y_minor = x in self.minor, node.output in self.minor
        panels = self.panel_weight(node)
        if panels is not None or ((x_minor or y_minor) and _is_pointwise(node, self.graph)):
            layout = ", channel-minor" if x_minor or y_minor else ""
            self.conv_paths.append((node.scope or node.where(),
                                    f"pointwise (prepacked{layout})" if panels is not None else "pointwise (channel-minor)"))
            op, threads, ints, consts, work = self.pointwise_step(node, x_minor, y_minor)
        else:
            problem, path, weight, packed = self.conv_path(node)
            self.conv_paths.append((node.scope or node.where(), path))
            bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
            op, threads, ints, consts, work = conv_step(problem, path, weight, bias, packed)
            if x_minor or y_minor:  # a channel-vectorized depthwise step (channel_minor_values)
                ints = ints + [int(x_minor), int(y_minor)]
        step = self.emit(op, threads, [self.ref(x)], self.ref(node.output), [x], [node.output],
                         ints=ints, consts=consts, work=work)
        self.with_epilogue(step, node)

    def panel_weight(self, node: Node) -> Optional[PackedWeight]:
        """The prepacked panels of a 1×1 convolution's or linear layer's weight when it qualifies
        (PANEL_MAX_PIXELS, PANEL_MIN_CHANNELS; made on first use and kept in place of the weight),
        else None. The rule reads only the layer's shapes, so every plan agrees."""
        wvalue = self.graph.values[node.inputs[1]]
        if isinstance(wvalue.data, PackedWeight):
            return wvalue.data if wvalue.data.path == "panels" else None
        if not wvalue.is_const or wvalue.shape[0] < PANEL_MIN_CHANNELS or not _gemm.packed_sgemm_available():
            return None
        if node.op == "conv2d":
            image = self.shapes[node.inputs[0]]
            if not _is_pointwise(node, self.graph) or image[2] * image[3] > PANEL_MAX_PIXELS:
                return None
        elif node.op != "linear":
            return None
        packed = PackedWeight("panels", self.const(node.inputs[1]), None)
        if packed.arrays[0] is None:
            return None
        wvalue.data = packed
        return packed

    def pointwise_step(self, node: Node, x_minor: bool, y_minor: bool):
        """The executor step of a 1×1 convolution (stride 1) with the given layouts: on the weight's
        prepacked panels when it has them, else ``pointwise_layout_step`` (one side channel-minor)."""
        problem = self.conv_problem(node)
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
        panels = self.panel_weight(node)
        if panels is not None:
            return panel_step(problem.image_shape, problem.out_channels, panels, bias, x_minor, y_minor,
                              threads_for(problem.flops))
        return pointwise_layout_step(problem, self.const(node.inputs[1]), bias, x_minor, y_minor)

    def conv_problem(self, node: Node) -> ConvProblem:
        image = self.shapes[node.inputs[0]]
        if len(image) != 4:
            raise GraphError(f"inference: {node.where()}: expected a 4-d input, got shape {image}")
        g = ConvGeometry(*node.attrs["geometry"])
        return ConvProblem(tuple(image), tuple(self.graph.values[node.inputs[1]].shape), g, "float32")

    def conv_path(self, node: Node):
        """(problem, path, original weight or None, packed weight or None) of a convolution: its
        frozen path when the weight is packed, else the planner's choice at this batch size."""
        problem = self.conv_problem(node)
        wvalue = self.graph.values[node.inputs[1]]
        if isinstance(wvalue.data, PackedWeight):
            return problem, wvalue.data.path, None, wvalue.data
        weight = self.const(node.inputs[1])
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
        path = self.forced.get(node.output) or choose_path(problem, weight, bias, allow_packed=self.freeze)
        if packs_weight(path, problem, self.freeze):
            wvalue.data = PackedWeight(path, weight, bias)
        return problem, path, weight, wvalue.data if isinstance(wvalue.data, PackedWeight) else None

    def channel_minor_values(self) -> set:
        """Values kept channel-minor between a depthwise convolution on the channel-vectorized path
        and the 1×1 convolutions feeding it and fed by it (MobileNet's expand → depthwise →
        project): each 1×1 then reads or writes that layout through its GEMM's transpose flags and
        the depthwise step skips its transposes. Only values with that one producer and consumer,
        that no one else reads and that are not outputs, and only when the channel count fills
        whole vectors (the channel-minor rows have no padding then)."""
        graph, minor = self.graph, set()
        readers, producer = graph.consumers(), graph.producer()
        outputs = set(graph.outputs)
        width = _dw.channel_width()
        for node in graph.nodes:
            if node.op != "conv2d" or not width:
                continue
            weight_shape = graph.values[node.inputs[1]].shape
            channels = self.shapes[node.inputs[0]][1] if len(self.shapes[node.inputs[0]]) == 4 else 0
            g = ConvGeometry(*resolve(node.attrs["geometry"], self.batch))
            if g.groups != channels or weight_shape[0] != channels or channels % width:
                continue
            resolved = dataclasses.replace(node, attrs=resolve(node.attrs, self.batch))
            trial = None  # the depthwise path, timed in the chain against the planner's standalone pick
            if self.conv_path(resolved)[1] != "depthwise":
                problem = self.conv_problem(resolved)
                frozen = isinstance(self.graph.values[node.inputs[1]].data, PackedWeight)
                forced = planner.choose(problem, "forward")[1] == "forced"  # backends.conv.force binds here too
                if frozen or forced or not (self.freeze and planner.measuring()
                                            and registry.get("depthwise").eligible(problem, "forward")):
                    continue
                trial = "depthwise"
            x, y = node.inputs[0], node.output
            source = producer.get(x)
            only_reader = len(readers.get(x, [])) == 1 and readers[x][0] is node
            if (source is not None and x not in outputs and only_reader and source.residual is None
                    and _is_pointwise(source, graph)):
                minor.add(x)
            users = readers.get(y, [])
            sink = users[0] if len(users) == 1 else None
            if (node.residual is None and y not in outputs and sink is not None and sink.inputs[0] == y
                    and sink.residual != y and y not in sink.inputs[1:] and _is_pointwise(sink, graph)):
                minor.add(y)
            keep, use_trial = self.layouts_to_keep(node, source if x in minor else None,
                                                   sink if y in minor else None, minor, trial)
            minor -= keep
            if use_trial:
                self.forced[node.output] = trial
        return minor

    def layouts_to_keep(self, node: Node, source: Optional[Node], sink: Optional[Node], minor: set,
                        trial: Optional[str] = None) -> Tuple[set, bool]:
        """Of the depthwise ``node``'s input and output values proposed channel-minor (``source``/``sink``:
        their 1×1 producer and consumer, or None), those to leave NCHW, and whether ``node`` takes
        the ``trial`` path (the depthwise path when the planner's standalone pick for it, with
        NCHW on both sides, was another). Measuring, the steps run for every combination as the
        executor runs them and the fastest wins (a 1×1 GEMM over few pixels can cost more in the
        other layout than the transposes it saves; a depthwise step that loses alone can win in
        the chain); otherwise every proposal stands when the depthwise output has at least
        CHANNEL_MINOR_PIXELS pixels over the batch, and no trial path is taken."""
        x, y = node.inputs[0], node.output
        proposed = [v for v, n in ((x, source), (y, sink)) if n is not None]
        if not proposed and trial is None:
            return set(), False
        if not planner.measuring():
            if trial is not None:
                return set(proposed), False
            pixels = self.batch * self.shapes[y][2] * self.shapes[y][3]
            return (set(proposed) if pixels < CHANNEL_MINOR_PIXELS else set()), False
        subsets = [frozenset(c) for c in ([], [x], [y], [x, y]) if set(c) <= set(proposed)]
        options = [(trial, c, None) for c in subsets]
        if trial is not None:
            options.insert(0, (None, frozenset(), None))  # the planner's path, NCHW around it
        if source is not None and sink is not None:  # both sides channel-minor, run as a band chain
            options += [(trial, frozenset([x, y]), k) for k in range(len(bands.CHAIN_BAND_FLOATS))]
        rng = np.random.default_rng(0)
        chain = [n for n in (source, node, sink) if n is not None]
        runs = {}
        for option in options:
            path, layout, band = option
            steps = [self.timing_step(n, layout | (minor - set(proposed)), path if n is node else None)
                     for n in chain]
            if band is not None:
                timer = self.chain_timer(chain, steps, band)
                if timer is not None:
                    runs[option] = [timer]
                continue
            runs[option] = [_step_runner(*step, rng.standard_normal(self.shapes[n.inputs[0]]).astype(np.float32),
                                         np.empty(self.shapes[n.output], np.float32))
                            for step, n in zip(steps, chain)]
        path, layout, _ = _fastest_option(runs)
        return set(proposed) - layout, path is not None

    def chain_timer(self, nodes: Sequence[Node], steps: Sequence[tuple], band: int):
        """A timer of ``nodes`` (expand, depthwise, project) as a band chain of their timing
        ``steps`` with the ``band``-th band length; None when the steps do not form a chain (the
        executor would read them as one: never run it on others)."""
        chain = [_Step(op, threads, [("v", n.inputs[0], 0)], ("v", n.output, 0), ints=ints, consts=consts,
                       work=work, res=None if n.residual is None else ("v", n.residual, 0))
                 for (op, threads, ints, consts, work), n in zip(steps, nodes)]
        if not bands.is_chain(chain, 0):
            return None
        return bands.chain_timer(chain, 0, self.shapes, _band_header(chain, 0, bands.CHAIN_BAND_FLOATS[band]))

    def timing_step(self, node: Node, minor: set, path: Optional[str] = None):
        """The executor step (op, threads, ints, consts, work) ``node`` gets when ``minor`` holds the
        channel-minor values (on ``path`` when given: a trial, its weight packed for it alone)."""
        node = dataclasses.replace(node, attrs=resolve(node.attrs, self.batch))
        x_minor, y_minor = node.inputs[0] in minor, node.output in minor
        if _is_pointwise(node, self.graph) and (x_minor or y_minor or self.panel_weight(node) is not None):
            return self.pointwise_step(node, x_minor, y_minor)
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
        if path is None:
            problem, path, weight, packed = self.conv_path(node)
        else:
            problem, weight = self.conv_problem(node), self.const(node.inputs[1])
            packed = PackedWeight(path, weight, bias) if path in PACKED_PATHS else None
        op, threads, ints, consts, work = conv_step(problem, path, weight, bias, packed)
        if path == "depthwise":
            ints = ints + [int(x_minor), int(y_minor)]
        return op, threads, ints, consts, work

    def op_conv_transpose2d(self, node: Node) -> None:
        x = node.inputs[0]
        weight = self.const(node.inputs[1])
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
        n, cin, hin, win = self.shapes[x]
        out = self.shapes[node.output]
        g = ConvGeometry(*node.attrs["geometry"])
        plan = path_gemm.backward_plan(tuple(out), cin, g)
        work = plan.buffers * plan.row_elements * plan.block_rows
        ints = [n, out[1], out[2], out[3], cin, hin, win, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                g.groups, plan.block_rows, int(plan.parallel), 0, plan.row_elements * plan.block_rows,
                _numel(out), cin * hin * win, _numel(out[1:]), chunk(_numel(out[1:]))]
        self.conv_paths.append((node.scope or node.where(), "gemm (transposed)"))
        step = self.emit("conv_transpose", plan.threads, [self.ref(x)], self.ref(node.output), [x], [node.output],
                         ints=ints, consts=[weight.reshape(cin, -1), bias], work=work)
        self.with_epilogue(step, node)

    # dense
    def op_linear(self, node: Node) -> None:
        x = node.inputs[0]
        bias = self.const(node.inputs[2]) if len(node.inputs) > 2 else None
        shape = self.shapes[x]
        k, c = self.graph.values[node.inputs[1]].shape
        m = _numel(shape[:-1])
        panels = self.panel_weight(node)
        if panels is not None:  # the rows as pixels of a channel-minor 1×1 convolution
            op, threads, ints, consts, work = panel_step((m, c, 1, 1), k, panels, bias, True, True,
                                                         threads_for(2 * m * c * k))
            step = self.emit(op, threads, [self.ref(x)], self.ref(node.output), [x], [node.output],
                             ints=ints, consts=consts, work=work)
        else:
            step = self.emit("linear", self.threads, [self.ref(x)], self.ref(node.output), [x], [node.output],
                             ints=[m, c, k], consts=[self.const(node.inputs[1]), bias])
        self.with_epilogue(step, node)

    def op_matmul(self, node: Node) -> None:
        a, b = node.inputs
        sa, sb, so = self.shapes[a], self.shapes[b], self.shapes[node.output]
        m, k, n = sa[-2], sa[-1], sb[-1]
        batch = _numel(so[:-2])
        a_stride = m * k if _numel(sa[:-2]) == batch and batch > 1 else 0
        b_stride = k * n if _numel(sb[:-2]) == batch and batch > 1 else 0
        if (_numel(sa[:-2]) not in (1, batch)) or (_numel(sb[:-2]) not in (1, batch)) or (
                _numel(sa[:-2]) == 1 and batch > 1):
            raise GraphError(f"inference: {node.where()}: batched matrix products need the first operand to carry "
                             f"every batch dimension (got {sa} @ {sb})")
        step = self.emit("matmul", self.threads, [self.ref(a), self.ref(b)], self.ref(node.output), [a, b],
                         [node.output], ints=[batch, m, n, k, a_stride, b_stride, 0])
        self.with_epilogue(step, node)

    # element-wise
    def inplace_target(self, node: Node, candidates: Sequence[int]) -> None:
        """Mark the node's output as computable in the memory of one of ``candidates`` (decided
        later, when lifetimes are known)."""
        self.inplace[node.output] = [c for c in candidates if not self.is_const(c)
                                     and _numel(self.shapes[c]) == _numel(self.shapes[node.output])]

    def op_channel_affine(self, node: Node) -> None:
        x = node.inputs[0]
        shape = self.shapes[x]
        planes, s = shape[0] * shape[1], _numel(shape[2:])
        consts = [self.const(v) for v in node.inputs[1:4]]
        step = self.emit("channel_affine", self.loop_threads(planes * s), [self.ref(x)], self.ref(node.output), [x],
                         [node.output], ints=[planes, shape[1], s], consts=consts)
        self.with_epilogue(step, node)
        self.inplace_target(node, [x])

    def op_normalize(self, node: Node) -> None:
        x = node.inputs[0]
        a = node.attrs
        consts = [None, None]
        rest = node.inputs[1:]
        if a["weight"]:
            consts[0], rest = self.const(rest[0]), rest[1:]
        if a["bias"]:
            consts[1] = self.const(rest[0])
        A, B, L = a["shape3"]
        step = self.emit("normalize", self.loop_threads(A * B * L), [self.ref(x)], self.ref(node.output), [x],
                         [node.output], ints=[A, B, L, a["cpg"], a["channels"], int(a["elementwise"])],
                         floats=[a["eps"]], consts=consts)
        self.with_epilogue(step, node)
        self.inplace_target(node, [x])

    def op_act(self, node: Node) -> None:
        x = node.inputs[0]
        n = _numel(self.shapes[node.output])
        if self.is_const(x):
            raise GraphError(f"inference: {node.where()} of a constant (fold it into the model)")
        step = self.emit("act", self.loop_threads(n), [self.ref(x)], self.ref(node.output), [x], [node.output],
                         ints=[n])
        self.with_epilogue(step, node)
        self.inplace_target(node, [x])

    def op_binary(self, node: Node) -> None:
        a, b = node.inputs
        out = list(self.shapes[node.output])
        nd = len(out)

        def strides(vid):
            shape = list(self.shapes[vid])
            shape = [1] * (nd - len(shape)) + shape
            st = _contiguous_strides(shape)
            return [0 if shape[d] == 1 and out[d] != 1 else st[d] for d in range(nd)]

        shape, (sa, sb, so) = _collapse(out, strides(a), strides(b), _contiguous_strides(out))
        if len(shape) > MAX_DIMS:
            raise GraphError(f"inference: {node.where()}: broadcasting over {len(shape)} axes (at most {MAX_DIMS})")
        pad = MAX_DIMS - len(shape)
        ints = [BINARY_CODES[node.attrs["op"]], len(shape)] + shape + [0] * pad + sa + [0] * pad + sb + [0] * pad
        n = _numel(out)
        step = self.emit("binary", self.loop_threads(n), [self.ref(a), self.ref(b)], self.ref(node.output), [a, b],
                         [node.output], ints=ints + [n])
        self.with_epilogue(step, node)
        self.inplace_target(node, [a, b])

    def op_softmax(self, node: Node) -> None:
        x = node.inputs[0]
        shape = self.shapes[x]
        axis = node.attrs["axis"]
        outer, r, inner = _numel(shape[:axis]), shape[axis], _numel(shape[axis + 1:])
        self.emit("softmax", self.loop_threads(_numel(shape)), [self.ref(x)], self.ref(node.output), [x],
                  [node.output], ints=[outer, r, inner, int(node.attrs["log"])])

    def op_reduce(self, node: Node) -> None:
        x = node.inputs[0]
        shape = list(self.shapes[x])
        axes = node.attrs["axes"]
        if not axes:
            self.copy_contiguous(node, x)
            return
        src = x
        if axes != list(range(axes[0], axes[-1] + 1)):
            # the reduced axes are not one block: move them last first (a copy into a temporary)
            order = [d for d in range(len(shape)) if d not in axes] + axes
            moved = [shape[d] for d in order]
            src = self.temp(moved)
            self.emit_copy(x, moved, [_contiguous_strides(shape)[d] for d in order], self.ref(src),
                           _contiguous_strides(moved), dst_vid=src)
            shape, axes = moved, list(range(len(shape) - len(axes), len(shape)))
        outer, r, inner = _numel(shape[:axes[0]]), _numel([shape[d] for d in axes]), _numel(shape[axes[-1] + 1:])
        self.emit("reduce", self.loop_threads(_numel(shape)), [self.ref(src)], self.ref(node.output), [src],
                  [node.output], ints=[REDUCE_CODES[node.attrs["op"]], outer, r, inner])

    # pooling
    def pool_shapes(self, node: Node):
        x = node.inputs[0]
        shape, out = self.shapes[x], self.shapes[node.output]
        planes = _numel(shape[:-2])
        return x, planes, shape[-2], shape[-1], out[-2], out[-1]

    @staticmethod
    def window_table(n_out: int, size: int, kernel: int, stride: int, pad: int, dilation: int) -> np.ndarray:
        """(base, first, end) per output index: taps base + i·dilation, first ≤ i < end, inside [0, size)."""
        o = np.arange(n_out, dtype=np.int64)
        start = o * stride - pad
        first = np.where(start < 0, -(start // dilation), 0)  # ceil(-start / dilation)
        end = np.minimum(kernel, -((start - size) // dilation))  # ceil((size - start) / dilation)
        end = np.maximum(end, first)
        return np.ascontiguousarray(np.stack([start, first, end], axis=1).reshape(-1), dtype=np.intp)

    def pool_step(self, node: Node, op: str, x: int, planes: int, h: int, w: int, ho: int, wo: int,
                  consts: list, dil=(1, 1), window=None) -> None:
        """A pooling step; ``window`` (kw, sw, pw) for one window shape: the separable loops, with
        one padded row buffer per thread in the workspace."""
        threads = self.loop_threads(planes * ho * wo * 4)
        sep = [0, 0, 0, 0, 0]
        work = 0
        if window is not None:
            kw, sw, pw = window
            row = aligned((wo - 1) * sw + (kw - 1) * dil[1] + 1) * (2 if op == "avg_pool" else 1)
            sep = [kw, sw, pw, 1, row]
            work = threads * row
        self.emit(op, threads, [self.ref(x)], self.ref(node.output), [x], [node.output],
                  ints=[planes, h, w, ho, wo, dil[0], dil[1]] + sep, consts=consts, work=work)

    def op_max_pool2d(self, node: Node) -> None:
        x, planes, h, w, ho, wo = self.pool_shapes(node)
        a = node.attrs
        rows = self.window_table(ho, h, a["kernel"][0], a["stride"][0], a["padding"][0], a["dilation"][0])
        cols = self.window_table(wo, w, a["kernel"][1], a["stride"][1], a["padding"][1], a["dilation"][1])
        self.pool_step(node, "max_pool", x, planes, h, w, ho, wo, [rows, cols], tuple(a["dilation"]),
                       (a["kernel"][1], a["stride"][1], a["padding"][1]))
        if (a["kernel"], a["stride"], a["padding"], a["dilation"]) == ([2, 2], [2, 2], [0, 0], [1, 1]) \
                and 2 * ho <= h and 2 * wo <= w:
            self.steps[-1].ints[10] = 2  # whole 2×2 windows: the one-pass loop

    @staticmethod
    def avg_table(n_out: int, size: int, kernel: int, stride: int, pad: int, include_pad: bool, divisor: int):
        """The eager kernel's windows (pool.pyx ``_avg_windows``): (base, 0, taps) and 1/divisor."""
        o = np.arange(n_out, dtype=np.int64)
        start = o * stride - pad
        end = np.minimum(start + kernel, size + pad)
        lo, hi = np.maximum(start, 0), np.minimum(end, size)
        span = (end - start) if include_pad else (hi - lo)
        if divisor:
            scale = np.full(n_out, 1.0 / divisor)
        else:
            scale = np.where(span > 0, 1.0 / np.maximum(span, 1), 0.0)
        table = np.stack([lo, np.zeros_like(lo), np.maximum(hi - lo, 0)], axis=1).reshape(-1)
        return np.ascontiguousarray(table, dtype=np.intp), np.ascontiguousarray(scale, dtype=np.float64)

    def op_avg_pool2d(self, node: Node) -> None:
        x, planes, h, w, ho, wo = self.pool_shapes(node)
        a = node.attrs
        rows, rs = self.avg_table(ho, h, a["kernel"][0], a["stride"][0], a["padding"][0], a["count_include_pad"],
                                  a["divisor"])
        cols, cs = self.avg_table(wo, w, a["kernel"][1], a["stride"][1], a["padding"][1], a["count_include_pad"],
                                  1 if a["divisor"] else 0)
        self.pool_step(node, "avg_pool", x, planes, h, w, ho, wo, [rows, cols, rs, cs],
                       window=(a["kernel"][1], a["stride"][1], a["padding"][1]))

    @staticmethod
    def adaptive_table(n_out: int, size: int):
        o = np.arange(n_out, dtype=np.int64)
        lo, hi = (o * size) // n_out, ((o + 1) * size + n_out - 1) // n_out
        table = np.stack([lo, np.zeros_like(lo), hi - lo], axis=1).reshape(-1)
        return np.ascontiguousarray(table, dtype=np.intp), np.ascontiguousarray(1.0 / np.maximum(hi - lo, 1))

    def op_adaptive_avg_pool2d(self, node: Node) -> None:
        x, planes, h, w, ho, wo = self.pool_shapes(node)
        if (ho, wo) == (1, 1):
            self.emit("plane_mean", self.loop_threads(planes * h * w), [self.ref(x)], self.ref(node.output), [x],
                      [node.output], ints=[planes, h * w])
            return
        rows, rs = self.adaptive_table(ho, h)
        cols, cs = self.adaptive_table(wo, w)
        self.pool_step(node, "avg_pool", x, planes, h, w, ho, wo, [rows, cols, rs, cs])

    def op_adaptive_max_pool2d(self, node: Node) -> None:
        x, planes, h, w, ho, wo = self.pool_shapes(node)
        rows, cols = self.adaptive_table(ho, h)[0], self.adaptive_table(wo, w)[0]
        self.pool_step(node, "max_pool", x, planes, h, w, ho, wo, [rows, cols])

    # data movement
    def emit_copy(self, src_vid: Optional[int], shape, src_strides, dst, dst_strides, src_ref=None, dst_vid=None,
                  work: int = 0, reads=None, writes=None, src_offset: int = 0) -> _Step:
        shape, (ss, ds) = _collapse(list(shape), list(src_strides), list(dst_strides))
        if len(shape) > MAX_DIMS:
            raise GraphError(f"inference: {self.node.where()}: a copy over {len(shape)} axes (at most {MAX_DIMS})")
        pad = MAX_DIMS - len(shape)
        ints = [len(shape)] + shape + [0] * pad + ss + [0] * pad + ds + [0] * pad
        src = src_ref if src_ref is not None else self.ref(src_vid, src_offset)
        return self.emit("copy", self.loop_threads(_numel(shape)), [src], dst,
                         reads if reads is not None else ([src_vid] if src_vid is not None else []),
                         writes if writes is not None else ([dst_vid] if dst_vid is not None else []),
                         ints=ints, work=work)

    def op_transpose(self, node: Node) -> None:
        x = node.inputs[0]
        shape = self.shapes[x]
        st = _contiguous_strides(shape)
        axes = node.attrs["axes"]
        out = [shape[a] for a in axes]
        self.emit_copy(x, out, [st[a] for a in axes], self.ref(node.output), _contiguous_strides(out),
                       dst_vid=node.output)

    def op_expand(self, node: Node) -> None:
        """A broadcast (``expand``): a copy reading the input with stride 0 along the expanded axes."""
        x = node.inputs[0]
        out = list(self.shapes[node.output])
        shape = [1] * (len(out) - len(self.shapes[x])) + list(self.shapes[x])
        st = _contiguous_strides(shape)
        self.emit_copy(x, out, [0 if shape[d] == 1 and out[d] != 1 else st[d] for d in range(len(out))],
                       self.ref(node.output), _contiguous_strides(out), dst_vid=node.output)

    def op_slice(self, node: Node) -> None:
        x = node.inputs[0]
        shape = self.shapes[x]
        index = []
        for item in node.attrs["index"]:
            if "slice" in item:
                index.append(slice(*item["slice"]))
            elif "int" in item:
                index.append(item["int"])
            elif "newaxis" in item:
                index.append(None)
            else:
                index.append(Ellipsis)
        # the view's geometry, computed on a zero-stride stand-in (no memory is touched)
        probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=shape,
                                                strides=[4 * s for s in _contiguous_strides(shape)])
        view = probe[tuple(index)]
        base = probe.__array_interface__["data"][0]
        offset = (view.__array_interface__["data"][0] - base) // 4 if view.size else 0
        out = list(view.shape)
        if tuple(out) != tuple(self.shapes[node.output]):
            raise GraphError(f"inference: {node.where()}: indexing gives {tuple(out)}, traced "
                             f"{self.shapes[node.output]}")
        if not view.size:
            return
        self.emit_copy(x, out, [s // 4 for s in view.strides], self.ref(node.output), _contiguous_strides(out),
                       dst_vid=node.output, src_offset=offset)

    def op_concat(self, node: Node) -> None:
        out = self.shapes[node.output]
        axis = node.attrs["axis"]
        ost = _contiguous_strides(out)
        offset = 0
        for i, vid in enumerate(node.inputs):
            shape = self.shapes[vid]
            if _numel(shape):
                self.emit_copy(vid, shape, _contiguous_strides(shape), self.ref(node.output, offset * ost[axis]),
                               ost, dst_vid=node.output)
            offset += shape[axis]

    def op_pad(self, node: Node) -> None:
        """Crop (crops ≥ 0), then pad with the value (widths ≥ 0): fill, then copy the kept part."""
        x = node.inputs[0]
        shape, out = self.shapes[x], self.shapes[node.output]
        n = _numel(out)
        self.emit("fill", 1, [], self.ref(node.output), [], [node.output], ints=[n],
                  floats=[node.attrs["value"]])
        ost, xst = _contiguous_strides(out), _contiguous_strides(shape)
        src_off = dst_off = 0
        inner = []
        for d, ((lo, _), (clo, chi)) in enumerate(zip(node.attrs["widths"], node.attrs["crops"])):
            take = shape[d] - clo - chi
            if take <= 0:
                return
            src_off += clo * xst[d]
            dst_off += lo * ost[d]
            inner.append(take)
        self.emit_copy(x, inner, xst, self.ref(node.output, dst_off), ost, dst_vid=node.output, src_offset=src_off)

    def op_interpolate(self, node: Node) -> None:
        """Resampling of the last two axes by per-axis source indices (nearest, and the border
        modes of F.pad) or index pairs and weights (linear); 1-d inputs are planes of one row."""
        x = node.inputs[0]
        shape, out = self.shapes[x], self.shapes[node.output]
        h, w = (shape[-2], shape[-1]) if len(shape) >= 4 else (1, shape[-1])
        ho, wo = (out[-2], out[-1]) if len(out) >= 4 else (1, out[-1])
        planes = _numel(shape[:-2]) if len(shape) >= 4 else _numel(shape[:-1])
        a = node.attrs
        ints = [planes, h, w, ho, wo]
        threads = self.loop_threads(planes * ho * wo)
        idx = lambda v: np.ascontiguousarray(v, dtype=np.intp)
        if a["mode"] == "nearest":
            rows = a["rows"] if len(shape) >= 4 else [0]
            self.emit("nearest", threads, [self.ref(x)], self.ref(node.output), [x], [node.output], ints=ints,
                      consts=[idx(rows), idx(a["cols"])])
            return
        f32 = lambda v: np.ascontiguousarray(v, dtype=np.float32)
        r, c = a["rows"], a["cols"]
        self.emit("linear2d", threads, [self.ref(x)], self.ref(node.output), [x], [node.output], ints=ints,
                  consts=[idx(r["i0"]), idx(r["i1"]), f32(r["l0"]), f32(r["l1"]), idx(c["i0"]), idx(c["i1"]),
                          f32(c["l0"]), f32(c["l1"])])

    # -- memory and the program
    def finish(self) -> Plan:
        graph = self.graph
        n_in = len(graph.inputs)
        input_base = {vid: 2 + i for i, vid in enumerate(graph.inputs)}
        # output j lives in base 2 + n_in + j; a root that cannot be an output buffer is copied
        out_base: Dict[int, int] = {}
        for j, vid in enumerate(graph.outputs):
            root = self.root(vid)
            if self.is_const(root) or root in input_base or root in out_base:
                n = _numel(self.shapes[vid])
                self.node = None
                self.emit("copy", self.loop_threads(n), [self.ref(root)], ("out", j), [root], [],
                          ints=[1, n, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], name="output copy")
            else:
                out_base[root] = 2 + n_in + j
        # lifetimes of the roots written by steps
        first: Dict[int, int] = {}
        last: Dict[int, int] = {}
        for k, step in enumerate(self.steps):
            for vid in step.writes:
                r = self.root(vid)
                first.setdefault(r, k)
                last[r] = max(last.get(r, k), k)
            for vid in step.reads:
                r = self.root(vid)
                last[r] = max(last.get(r, k), k)
        for r in out_base:  # outputs survive the program
            last[r] = len(self.steps)
        # storages: roots share one when an element-wise step computes in place of a dying input
        storage = {r: r for r in first}
        members: Dict[int, List[int]] = {r: [r] for r in first}
        s_last = dict(last)
        s_out = {r: (r in out_base) for r in first}
        for k, step in enumerate(self.steps):
            for vid in step.writes:
                w = self.root(vid)
                if first.get(w) != k or storage[w] != w or len(members[w]) != 1:
                    continue
                for cand in self.inplace.get(vid, ()):
                    c = self.root(cand)
                    if c not in storage or c in input_base:
                        continue
                    sc = storage[c]
                    if s_last[sc] != k or (s_out[sc] and s_out[w]) or _numel(self.shapes[c]) != _numel(self.shapes[w]):
                        continue
                    storage[w] = sc
                    members[sc].append(w)
                    s_last[sc] = max(s_last[sc], s_last.pop(w))
                    s_out[sc] = s_out[sc] or s_out.pop(w)
                    out_base.update({sc: out_base[w]} if w in out_base else {})
                    del members[w]
                    break
        # the arena: storages not in an input or output buffer, and each step's workspace
        sizes = {}
        for sid, roots in members.items():
            sizes[sid] = max(_numel(self.shapes[r]) for r in roots)
        arena_ids = [sid for sid in members if not s_out[sid]]
        buffers = [(sizes[sid], first[sid], s_last[sid]) for sid in arena_ids]
        work_steps = [k for k, step in enumerate(self.steps) if step.work > 0]
        buffers += [(self.steps[k].work, k, k) for k in work_steps]
        offsets, total = assign_offsets(buffers)
        location = {sid: (ARENA, off) for sid, off in zip(arena_ids, offsets)}
        for sid in members:
            if s_out[sid]:
                base = next(out_base[r] for r in members[sid] if r in out_base)
                location[sid] = (base, 0)
        work_at = {k: off for k, off in zip(work_steps, offsets[len(arena_ids):])}

        def resolve(ref, k):
            if ref is None:
                return None
            kind = ref[0]
            if kind == "pool":
                return (POOL, ref[1])
            if kind == "out":
                return (2 + n_in + ref[1], 0)
            _, vid, off = ref
            r = self.root(vid)
            if r in input_base:
                return (input_base[r], off)
            base, start = location[storage[r]]
            return (base, start + off)

        program = _infer.Program()
        for k, step in enumerate(self.steps):
            program.add(step.op, step.threads, [resolve(s, k) for s in step.srcs], resolve(step.dst, k),
                        (ARENA, work_at[k]) if k in work_at else None, step.ints, step.floats,
                        [None if c is None else np.ascontiguousarray(c) for c in step.consts],
                        step.act[0], step.act[1], step.act[2], resolve(step.res, k), step.name)
        pool = np.concatenate(self.pool_parts) if self.pool_parts else np.zeros(1, np.float32)
        return Plan(program, self.batch, self.threads, total, pool,
                    [self.shapes[v] for v in graph.inputs], [self.shapes[v] for v in graph.outputs],
                    self.conv_paths)


def _band_header(steps: Sequence[_Step], j: int, band_floats: int) -> _Step:
    """The header step of the band chain at steps j … j+2, bands of about ``band_floats``
    expanded floats, on the most threads its steps have."""
    chain = steps[j:j + 3]
    return _Step("band_chain", max(s.threads for s in chain), [], None,
                 ints=bands.header_ints(steps, j, band_floats), name=f"band chain to {chain[2].name}")


def chunk(image_elements: int) -> int:
    """Images per chunk of a one-thread convolution whose epilogue runs chunk by chunk: an output
    chunk of about CHUNK_ELEMENTS stays in cache for the epilogue."""
    return max(1, CHUNK_ELEMENTS // max(image_elements, 1))


def _is_pointwise(node: Node, graph: Graph) -> bool:
    """A plain 1×1 convolution: stride 1, no padding or dilation, one group, a constant weight."""
    if node.op != "conv2d" or not graph.values[node.inputs[1]].is_const:
        return False
    g = ConvGeometry(*node.attrs["geometry"])
    return ((g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups) == (1, 1, 1, 1, 0, 0, 1, 1, 1)
            and all(graph.values[v].is_const for v in node.inputs[2:]))


# A channel-minor 1×1 convolution runs in blocks of pixels, each GEMM reading both layouts in place
# and finishing with the epilogue while in cache, from this many pixels an image (both sides
# channel-minor: over the batch, which is one long image then); below, one GEMM over the batch,
# a transpose of the NCHW side and a separate epilogue cost less.
PW_PER_IMAGE_PIXELS = 1024


def pointwise_layout_step(problem: ConvProblem, weight: np.ndarray, bias: Optional[np.ndarray], x_minor: bool,
                          y_minor: bool):
    """The executor step of a 1×1 convolution whose input and/or output is channel-minor."""
    n, c, h, w = problem.image_shape
    k = problem.out_channels
    ints = [n, c, h, w, k, h, w] + [0] * 13 + [n * k * h * w] + [c * h * w, k * h * w, chunk(k * h * w)]
    blocks = (n if x_minor and y_minor else 1) * h * w >= PW_PER_IMAGE_PIXELS
    ints += [int(x_minor), int(y_minor), int(blocks)]
    threads = threads_for(problem.flops)
    # in blocks: no workspace; else (small images) the NCHW side's images are transposed through the
    # workspace, with a scratch per thread of (columns of the transposed matrix) × vector width:
    # pixels for the input, channels for the output
    if blocks:
        work = 0
    elif y_minor:
        work = n * h * w * c + threads * h * w * _dw.channel_width()
    else:
        work = n * h * w * k + threads * k * _dw.channel_width()
    return "conv_pw_layout", threads, ints, [weight.reshape(k, c), bias], work


def panel_step(image: Sequence[int], k: int, packed: PackedWeight, bias: Optional[np.ndarray], x_minor: bool,
               y_minor: bool, threads: int):
    """The executor step of a 1×1 convolution (stride 1) of ``image`` (N, C, H, W) to ``k`` channels
    on prepacked panels, either side channel-minor or NCHW: blocks of pixels of about
    PANEL_BLOCK_FLOATS outputs (one pixel per image: the layouts coincide, the batch is one block
    of rows); too few blocks for the threads, each block's output channels split in parts too."""
    n, c, h, w = (int(d) for d in image)
    if h * w == 1:
        x_minor = y_minor = True
    images = 1 if x_minor and y_minor else n
    pixels = (n if x_minor and y_minor else 1) * h * w
    rows = max(PANEL_MIN_ROWS, PANEL_BLOCK_FLOATS // k // PANEL_MIN_ROWS * PANEL_MIN_ROWS)
    per_image = -(-pixels // rows)
    rows = -(-pixels // per_image)  # blocks of equal size
    parts = 1
    if threads > 1 and (images * per_image) % threads and images * per_image < PANEL_BALANCED_ITEMS * threads:
        # few blocks that the threads cannot share equally: each split in one part of whole
        # output-channel panels per thread, so every thread gets the same share of every block
        parts = min(threads, -(-k // PANEL_COLUMNS))
    ints = [n, c, h, w, k, h, w] + [0] * 13 + [n * k * h * w] + [c * h * w, k * h * w, chunk(k * h * w)]
    ints += [int(x_minor), int(y_minor), 1, rows, parts]
    return "conv_pw_layout", threads, ints, [packed.arrays[0], bias], 0


def conv_step(problem: ConvProblem, path: str, weight: Optional[np.ndarray], bias: Optional[np.ndarray],
              packed: Optional[PackedWeight]):
    """(operation, threads, integer parameters, constants, workspace elements) of the executor step
    running ``problem``'s forward on ``path`` (``weight`` the original, or ``packed`` for a packed
    path); the thread counts and blocks are the path's own plans at the current thread count, or
    at one thread where the planner measured the pass faster serially."""
    with planner.planned_threads(problem, "forward"):
        return _conv_step(problem, path, weight, bias, packed)


def _conv_step(problem: ConvProblem, path: str, weight: Optional[np.ndarray], bias: Optional[np.ndarray],
               packed: Optional[PackedWeight]):
    n, c, h, w = problem.image_shape
    g = problem.geometry
    k = problem.out_channels
    ho, wo = g.out_h, g.out_w
    out = n * k * ho * wo
    geo = [g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw]
    image = problem.image_shape
    if path in ("gemm", "shallow"):
        threads, block, parallel, row_elems = path_gemm.forward_setup(tuple(image), k, g)
        work = (threads if parallel else 1) * row_elems * block
        ints = [n, c, h, w, k, ho, wo] + geo + [g.groups, block, int(parallel), int(path == "shallow"),
                                                 row_elems * block, out]
        consts = [weight.reshape(k, -1), bias]
    elif path == "winograd":
        # the filter is transformed per call into the workspace unless the layer keeps it (int 18)
        plan = path_winograd.winograd_plan(n, c, k, ho, wo, 4)
        threads = plan.threads
        kept = packed is not None and plan.panels
        u = 0 if kept else aligned(plan.u_elements)
        work = u + plan.buffers * (plan.v_elements + plan.m_elements)
        ints = [n, c, h, w, k, ho, wo, g.ph, g.pw, plan.block_tiles, int(plan.panels), int(plan.parallel),
                plan.v_elements, plan.m_elements, plan.buffers * plan.v_elements, u,
                _winograd.PANEL_ROWS if plan.panels else 1, plan.channel_parts, int(kept), 0, out]
        consts = [packed.arrays[0] if kept else (weight if weight is not None else np.asarray(packed)), bias]
    elif path == "implicit":
        plan = path_implicit.direct_plan(tuple(image), k, g)
        threads = plan.threads
        work = plan.forward_buffers * plan.forward
        ints = [n, c, h, w, k, g.kh, g.kw, g.ph, g.pw, g.dh, g.dw, ho, wo, int(plan.parallel), plan.forward,
                0, 0, 0, 0, 0, out]
        consts = [weight.reshape(k, -1), bias]
    elif path == "ocvec":
        threads = threads_for(problem.flops)
        frame, copies = _direct.ocvec_frame_elements(n, c, k, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, ho, wo, threads)
        work = copies * frame
        ints = [n, c, h, w, k] + geo + [ho, wo, frame, 0, 0, 0, 0, out]
        consts = list(packed.arrays)
    elif path in ("depthwise", "grouped"):
        cp, copies, threads = DepthwisePath._layout(problem)
        rows = _dw.channel_rows_per_item(n, ho, wo * cp, threads)
        xt, yt = copies * h * w * cp, copies * ho * wo * cp
        work = xt + yt + threads * c * _dw.channel_width()
        ints = [n, c, cp, h, w, ho, wo] + geo + [rows, _group_size(problem), 0, xt, xt + yt, out]
        consts = list(packed.arrays)
    elif path == "depthwise_planes":
        threads = threads_for(problem.flops)
        work = 0
        ints = [n, c, h, w, k, ho, wo] + geo + [0, 0, 0, 0, 0, out]
        consts = [weight.reshape(k, -1), bias]
    elif path in ("pointwise", "pointwise_batched"):
        threads = threads_for(problem.flops)
        strided = g.sh != 1 or g.sw != 1
        pixels = n * ho * wo
        work = (n * c * ho * wo if strided else 0) + ((c + k) * pixels if path == "pointwise_batched" else 0)
        ints = [n, c, h, w, k, ho, wo, g.sh, g.sw, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, out]
        consts = [weight.reshape(k, -1), bias]
    else:  # pragma: no cover - CONV_STEPS lists every path choose_path may return
        raise GraphError(f"inference: no executor step for conv path {path!r}")
    ints = ints + [c * h * w, k * ho * wo, chunk(k * ho * wo)]
    return CONV_STEPS[path], threads, ints, consts, work


def packs_weight(path: str, problem: ConvProblem, allow_packed: bool) -> bool:
    """Whether ``path`` holds ``problem``'s weight in its own layout: the PACKED_PATHS, and with
    ``allow_packed`` (a first plan, which may freeze a layer) Winograd when it keeps the filter."""
    return path in PACKED_PATHS or (allow_packed and path == "winograd" and keeps_winograd_filter(problem))


def _time_conv(problem: ConvProblem, path, weight: np.ndarray, bias, x: np.ndarray, y: np.ndarray,
               allow_packed: bool) -> None:
    """Run ``problem``'s forward on ``path`` as the executor runs it (a one-step program, its
    workspace allocated beforehand): what the planner times for the compiled predictor."""
    packed = PackedWeight(path.name, weight, bias) if packs_weight(path.name, problem, allow_packed) else None
    return _step_runner(*conv_step(problem, path.name, weight, bias, packed), x, y)


def _fastest_option(runs: Dict[Any, List[Any]]) -> Any:
    """The option whose steps run fastest one after another (best of MEASURE_REPEATS; the options
    alternate round by round, so a burst of load on a shared machine does not fall on one)."""
    def in_turn(steps):
        def run():
            for step in steps:
                step()
        return run

    return timing.fastest({option: in_turn(steps) for option, steps in runs.items()}, MEASURE_REPEATS)


def _step_runner(op: str, threads: int, ints, consts, work: int, x: np.ndarray, y: np.ndarray):
    """A function running one executor step from x into y (after one untimed run)."""
    program = _infer.Program()
    program.add(op, threads, [(2, 0)], (3, 0), (ARENA, 0) if work else None, ints,
                [], [None if c is None else np.ascontiguousarray(c) for c in consts])
    arena = np.empty(max(aligned(work), 1), dtype=np.float32)
    def run():
        run_with_kernel_blas(_infer.run, program, [arena, arena, x, y])

    run()  # untimed: first touch of the workspace and output
    return run


def choose_path(problem: ConvProblem, weight: np.ndarray, bias, allow_packed: bool) -> str:
    """The planner's path for this forward, among the paths the executor runs (and reading the
    original weight unless ``allow_packed``); measured now when benchmarking and unplanned, by
    running each candidate as the executor's own step on random data (not the eager op: its
    per-call allocations and Python would bias the choice)."""
    unsupported = [name for name in registry.names()
                   if name not in CONV_STEPS or (name in PACKED_PATHS and not allow_packed)]
    with planner.disable(*unsupported):
        name, source = planner.choose(problem, "forward")
        if source == "pending":
            rng = np.random.default_rng(0)
            x = rng.standard_normal(problem.image_shape).astype(np.float32)
            y = np.empty(problem.out_shape, dtype=np.float32)
            runs = {path.name: _time_conv(problem, path, weight, bias, x, y, allow_packed)
                    for path in registry.eligible(problem, "forward") if path.name not in planner.settings.disabled}

            def execute(path):
                runs[path.name]()

            with _careful_measuring():
                name, _ = planner.run(problem, "forward", execute, follow_load=False)
    return name


def build_plan(graph: Graph, batch: int, threads: int, freeze: bool = False) -> Plan:
    """The plan of ``graph`` at ``batch`` with kernels on ``threads`` threads (the OpenMP thread
    count of the calling thread is set to it while the paths are chosen and planned, then
    restored). With ``freeze`` (a predictor's first plan) a convolution may take a path that packs
    its weight (``PACKED_PATHS``), which freezes that layer's path for every later plan."""
    previous = _omp.get_max_threads()
    _omp.set_num_threads(threads)
    try:
        builder = _Builder(graph, batch, threads, freeze)
        builder.build()
        return builder.finish()
    finally:
        _omp.set_num_threads(previous)
