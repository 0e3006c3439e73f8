"""``fastconv export`` and ``fastconv serve``: compile a checkpoint into a predictor file, and serve
one (latency and throughput, or predictions for a batch of inputs in a ``.npy`` file).

    fastconv export --checkpoint runs/demo --out demo.fcp           # a training run's model
    fastconv export --model resnet18 --weights r18.npz --out r18.fcp  # a model zoo network
    fastconv serve demo.fcp                                          # latency at batch 1, throughput at 64
    fastconv serve demo.fcp --input x.npy --output scores.npy         # predictions

``add_parser(subparsers)`` registers both sub-commands on the CLI's parser (``fastconv.cli``).
Inputs are what the model's forward takes: a run's model expects inputs normalized as in training.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np


def measure(call: Callable[[], object], min_seconds: float = 1.0, max_calls: int = 10000) -> float:
    """Median seconds per call over about ``min_seconds`` of calls (after one warm call)."""
    call()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < 5 or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(predictor, batches: Sequence[int], seconds: float = 1.0, seed: int = 0) -> List[Dict[str, float]]:
    """Latency and throughput of ``predictor`` at each batch size on random inputs (plans built
    first, then timed for about ``seconds`` each)."""
    from .._config import get_num_threads

    rng = np.random.default_rng(seed)
    rows = []
    for batch in batches:
        xs = [rng.standard_normal((batch,) + tuple(shape)).astype(np.float32) for shape in predictor.input_shapes]
        t_plan = time.perf_counter()
        predictor(*xs)
        t_plan = time.perf_counter() - t_plan
        t = measure(lambda: predictor(*xs), seconds)
        memory = predictor.memory_bytes(batch)["total"]
        rows.append({"batch": batch, "threads": get_num_threads(), "latency_ms": 1e3 * t,
                     "images_per_second": batch / t, "first_call_ms": 1e3 * t_plan, "memory_mb": memory / 2 ** 20})
    return rows


def print_report(rows) -> None:
    print(f"{'batch':>6} {'threads':>7} {'latency ms':>11} {'images/s':>10} {'first call ms':>14} {'memory MB':>10}")
    for r in rows:
        print(f"{r['batch']:>6} {r['threads']:>7} {r['latency_ms']:>11.3f} {r['images_per_second']:>10.1f} "
              f"{r['first_call_ms']:>14.1f} {r['memory_mb']:>10.1f}")


def _model(args):
    """(model, per-sample input shape) of ``export``: a run's checkpoint or a zoo model."""
    from .. import _runs
    from ..cli import CLIError

    if (args.checkpoint is None) == (args.model is None):
        raise CLIError("pass one of --checkpoint (a training run) or --model (a fastconv.vision.models name)")
    if args.checkpoint is not None:
        model, cfg = _runs.load_run(args.checkpoint, args.arch)
        _, _, shape, _ = _runs.datasets(cfg.get("data", "mnist"), cfg.get("data_root"))
        return model, tuple(args.input or shape)
    from ..serialization import load
    from ..vision import models

    if args.model not in models.list_models():
        raise CLIError(f"unknown model {args.model!r} (available: {', '.join(models.list_models())})")
    model = models.get_model(args.model, **({} if args.num_classes is None else {"num_classes": args.num_classes}))
    if args.weights is not None:
        state = load(args.weights)
        if not isinstance(state, dict):
            raise CLIError(f"{args.weights}: expected a state_dict, found {type(state).__name__}")
        model.load_state_dict(state)
    return model, tuple(args.input or models.default_input_shape(args.model))


def _cmd_export(args) -> int:
    from .. import inference, set_num_threads

    if args.threads:
        set_num_threads(args.threads)
    model, shape = _model(args)
    example = np.zeros((args.batch,) + shape, dtype=np.float32)
    t0 = time.perf_counter()
    predictor = inference.compile(model, example)
    seconds = time.perf_counter() - t0
    predictor.save(args.out)
    info = predictor.info
    print(f"compiled {info.get('model', 'the model')} for inputs {'x'.join(map(str, shape))} in {seconds:.2f} s: "
          f"{len(predictor._graph.nodes)} operations, {info.get('batch_norm_folded', 0)} batch norms folded, "
          f"{info.get('epilogues_fused', 0)} epilogues fused; wrote {args.out}")
    if not args.no_report:
        print_report(report(predictor, args.batches, args.seconds))
    return 0


def _cmd_serve(args) -> int:
    from .. import inference, set_num_threads
    from ..cli import CLIError

    if args.threads:
        set_num_threads(args.threads)
    predictor = inference.load(args.predictor)
    if args.input is None:
        if args.output is not None:
            raise CLIError("--output needs --input (a .npy file of inputs)")
        print(predictor)
        print_report(report(predictor, args.batches, args.seconds))
        return 0
    if not args.input.endswith(".npy") or (args.output is not None and not args.output.endswith(".npy")):
        raise CLIError("--input and --output are .npy files")
    x = np.load(args.input, allow_pickle=False)
    t0 = time.perf_counter()
    scores = np.concatenate([predictor(np.ascontiguousarray(x[i:i + args.batch_size], dtype=np.float32))
                             for i in range(0, len(x), args.batch_size)]) if len(x) else np.zeros((0,), np.float32)
    seconds = time.perf_counter() - t0
    if args.output is not None:
        from .._atomic import atomic_write

        with atomic_write(args.output) as f:
            np.lib.format.write_array(f, scores, allow_pickle=False)
    print(f"{len(x)} inputs in {seconds:.3f} s ({len(x) / max(seconds, 1e-9):.1f} /s)"
          + (f"; wrote {args.output}" if args.output else ""))
    return 0


def _add_report_options(parser) -> None:
    """The latency/throughput report's options, shared by ``export`` and ``serve``."""
    from ..cli import _positive_int

    parser.add_argument("--batches", type=_positive_int, nargs="+", default=[1, 64],
                        help="batch sizes of the latency/throughput report")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per batch size")
    parser.add_argument("--threads", type=_positive_int, default=None)


def add_parser(sub) -> None:
    """Register ``export`` and ``serve`` on the CLI's sub-command parser."""
    from ..cli import _positive_int, _shape

    export = sub.add_parser("export", help="compile a checkpoint into a predictor file (fastconv.inference) "
                                           "and report its latency and throughput")
    export.add_argument("--checkpoint", default=None, help="run folder, model.npz or checkpoint.npz")
    export.add_argument("--arch", default=None, help="blueprint spec (default: the run's config.json)")
    export.add_argument("--model", default=None, help="a fastconv.vision.models network instead of a run")
    export.add_argument("--weights", default=None, help="state_dict file for --model (fastconv, PyTorch, ...)")
    export.add_argument("--num-classes", type=_positive_int, default=None, help="classes of --model")
    export.add_argument("--input", type=_shape, default=None, help="per-sample input shape, e.g. 3x224x224")
    export.add_argument("--out", required=True, help="the predictor file to write")
    export.add_argument("--batch", type=_positive_int, default=1, help="batch size to compile for (any works)")
    _add_report_options(export)
    export.add_argument("--no-report", action="store_true", help="only compile and write the file")
    export.set_defaults(run=_cmd_export)

    serve = sub.add_parser("serve", help="run a predictor file: latency and throughput, or predictions "
                                         "for inputs in a .npy file")
    serve.add_argument("predictor", help="a file written by fastconv export / Predictor.save")
    serve.add_argument("--input", default=None, help=".npy file of inputs (batch axis first)")
    serve.add_argument("--output", default=None, help=".npy file for the outputs")
    serve.add_argument("--batch-size", type=_positive_int, default=64, help="inputs per call with --input")
    _add_report_options(serve)
    serve.set_defaults(run=_cmd_serve)
