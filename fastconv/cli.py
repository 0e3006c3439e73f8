"""The ``fastconv`` command line: one sub-command per job, each with --help; bad arguments give one line."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

import numpy as np

from . import _runs
from ._atomic import atomic_write

DEMO_ARCH = "INPUT -> [CONV(32, k=3, p=same) -> RELU -> POOL]*2 -> FC(128) -> RELU -> FC"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one clear line (no traceback, exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class CLIError(Exception):
    """A user-facing problem reported as one line."""


def _shape(text: str):
    """'1x28x28' -> (1, 28, 28)."""
    try:
        dims = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 1x28x28, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive dimensions like 1x28x28, got {text!r}")
    return dims


def _positive(cast, kind: str):
    """An argparse type: ``cast(text)`` that must be > 0, else one clear line naming ``kind``."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind}, got {text!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind}, got {text!r}")
        return v

    return parse


_positive_int = _positive(int, "integer")
_positive_float = _positive(float, "number")


# ---- data and model (run folders and the factories: fastconv._runs) ------------------------------

def _loaders(cfg: dict, train_set, test_set):
    from fastconv import data

    normalize = _runs.normalize()
    train_tf = data.Compose([data.RandomCrop(28, padding=2), normalize]) if cfg["augment"] else normalize
    sampler = None
    if cfg.get("distributed"):
        from fastconv import distributed

        sampler = distributed.DistributedSampler(train_set, shuffle=True, seed=cfg["seed"])
    train_loader = data.DataLoader(train_set, batch_size=cfg["batch_size"], shuffle=sampler is None,
                                   seed=cfg["seed"], transform=train_tf, sampler=sampler)
    test_loader = data.DataLoader(test_set, batch_size=1000, shuffle=False, transform=normalize)
    return train_loader, test_loader


def _optimizer(cfg: dict, params):
    from fastconv import optim

    name = cfg["optimizer"]
    if name == "sgd":
        return optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                         nesterov=cfg["momentum"] > 0)
    if name == "adam":
        return optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "adamw":
        return optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"] or 1e-2)
    raise CLIError(f"unknown optimizer {name!r} (available: sgd, adam, adamw)")


def _write_json(path: str, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2)


def _train(cfg: dict, verbose: bool = True) -> dict:
    """Train per ``cfg`` into ``cfg['out']``; returns the metrics written to metrics.json."""
    import fastconv as fc
    from fastconv import train as training
    from fastconv.nn import functional as F

    if cfg.get("threads"):
        fc.set_num_threads(cfg["threads"])
    dist = None
    if cfg.get("distributed"):
        from fastconv import distributed as dist

        dist.init()
    main = dist is None or dist.is_main()
    fc.manual_seed(cfg["seed"])
    train_set, test_set, input_shape, num_classes = _runs.datasets(cfg["data"], cfg.get("data_root"))
    model = _runs.build_model(cfg["arch"], input_shape, num_classes)
    if dist is not None:
        # running statistics: each rank's own during the epoch, averaged over ranks at its end
        model = dist.DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = _optimizer(cfg, model.parameters())
    scheduler = fc.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg["epochs"]) if cfg["cosine"] else None
    train_loader, test_loader = _loaders(cfg, train_set, test_set)
    out = cfg["out"]
    if main:
        os.makedirs(out, exist_ok=True)
        _write_json(os.path.join(out, _runs.CONFIG_NAME), cfg)
    callbacks = []
    if dist is not None:
        callbacks.append(dist.SyncBuffersCallback(model))
    t0 = time.perf_counter()
    history = training.fit(model, train_loader, F.cross_entropy, optimizer, cfg["epochs"],
                           scheduler=scheduler, callbacks=callbacks, checkpoint_dir=out,
                           resume=cfg.get("resume", False), verbose=verbose)
    train_seconds = time.perf_counter() - t0
    plain = getattr(model, "module", model)
    result = training.evaluate(plain, test_loader, F.cross_entropy)
    metrics = {
        "arch": cfg["arch"],
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "train_seconds": train_seconds,
        "epochs": cfg["epochs"],
        "train_samples": len(train_set),
        "history": history,
    }
    if main:
        fc.save(plain.state_dict(), os.path.join(out, _runs.MODEL_NAME))
        _write_json(os.path.join(out, "metrics.json"), metrics)
    if dist is not None:
        dist.barrier()
    return metrics


def _train_config(args) -> dict:
    return {
        "arch": args.arch, "data": args.data, "data_root": args.data_root, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
        "momentum": args.momentum, "weight_decay": args.weight_decay, "out": args.out,
        "resume": args.resume, "threads": args.threads, "seed": args.seed, "augment": args.augment,
        "cosine": args.cosine, "distributed": getattr(args, "distributed", False),
    }


def _cmd_train(args) -> int:
    if getattr(args, "distributed", False):
        from fastconv import distributed

        with distributed.abort_on_error():
            metrics = _train(_train_config(args))
        if not distributed.is_main():
            return 0
    else:
        metrics = _train(_train_config(args))
    print(f"test accuracy {metrics['test_accuracy']:.4f}, {metrics['train_seconds']:.1f} s of training; "
          f"wrote {args.out}")
    return 0


def _cmd_eval(args) -> int:
    from fastconv import data, train
    from fastconv.nn import functional as F

    model, cfg = _runs.load_run(args.checkpoint, args.arch)
    train_set, test_set, _, _ = _runs.datasets(cfg.get("data", "mnist"), args.data_root or cfg.get("data_root"))
    ds = test_set if args.split == "test" else train_set
    loader = data.DataLoader(ds, batch_size=1000, transform=_runs.normalize())
    result = train.evaluate(model, loader, F.cross_entropy)
    print(f"{args.split}: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"on {result['samples']} samples")
    return 0


def _network(args):
    """The model of ``summary``/``profile``: a blueprint (--arch, needs --input) or a zoo model by name
    (--model: --input defaults to the size it is designed for, --num-classes to its builder's)."""
    if args.model is None:
        if args.input is None:
            raise CLIError("--input is required with --arch (e.g. --input 1x28x28)")
        args.num_classes = args.num_classes or 10
        return _runs.build_model(args.arch, args.input, args.num_classes)
    from fastconv.vision import models

    if args.model not in models.list_models():
        raise CLIError(f"unknown model {args.model!r} (available: {', '.join(models.list_models())})")
    args.input = args.input or models.default_input_shape(args.model)
    model = models.get_model(args.model, **({} if args.num_classes is None else {"num_classes": args.num_classes}))
    args.num_classes = args.num_classes or 10  # --measure's targets: every zoo model has at least 10 classes
    return model


def _cmd_summary(args) -> int:
    from fastconv import profile

    model = _network(args)
    print(model)
    print(profile.memory_summary(model, args.input, args.batch_size, optimizer=args.optimizer))
    return 0


def _profile_optimizer(name: Optional[str], params):
    """The optimizer a profile name stands for (its state is what the estimate counts)."""
    from fastconv import optim

    if name is None:
        return None
    if name == "sgd":
        return optim.SGD(params, lr=0.01)
    if name == "sgd-momentum":
        return optim.SGD(params, lr=0.01, momentum=0.9)
    return optim.Adam(params, lr=1e-3)


def _cmd_profile(args) -> int:
    import fastconv as fc
    from fastconv import profile
    from fastconv.nn import functional as F

    model = _network(args)
    summary = profile.memory_summary(model, args.input, args.batch_size, dtype=args.dtype,
                                     optimizer=args.optimizer, mode=args.mode)
    print(summary)
    if args.budget:
        for mode in ("train", "eval"):
            n = profile.max_batch_size(model, args.input, args.budget, mode=mode, optimizer=args.optimizer,
                                       dtype=args.dtype)
            print(f"largest batch within {args.budget} ({mode}): {n}")
    if args.measure:
        fc.manual_seed(0)
        rng = np.random.default_rng(0)
        x = fc.tensor(rng.standard_normal((args.batch_size, *args.input)).astype(args.dtype))
        y = rng.integers(0, args.num_classes, size=args.batch_size)
        measured = profile.measure_step(model, x, y, F.cross_entropy,
                                        _profile_optimizer(args.optimizer, model.parameters()), mode=args.mode)
        print(measured)
        estimate = summary.to_dict()["totals"]["peak_bytes"]
        print(f"estimated {args.mode} peak {profile.format_bytes(estimate)} vs measured "
              f"{profile.format_bytes(measured.peak_bytes)} ({100 * (estimate / max(measured.peak_bytes, 1) - 1):+.1f} %)")
    return 0


def _cmd_demo(args) -> int:
    import fastconv as fc
    from fastconv import profile

    cfg = {
        "arch": DEMO_ARCH, "data": "mnist", "data_root": None, "epochs": args.epochs, "batch_size": 64,
        "lr": 0.002, "optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0, "out": args.out,
        "resume": False, "threads": args.threads, "seed": args.seed, "augment": True, "cosine": True,
    }
    model = _runs.build_model(DEMO_ARCH, (1, 28, 28), 10)
    print(f"fastconv demo: {DEMO_ARCH}\n  on the bundled MNIST subset (5,000 training images, 10,000 test images)")
    print(profile.memory_summary(model, (1, 28, 28), 64, optimizer="adam"))
    metrics = _train(cfg)
    print(f"\ntest accuracy {100 * metrics['test_accuracy']:.2f} % on the 10,000 MNIST test images, "
          f"{metrics['train_seconds']:.1f} s of training ({fc.get_num_threads()} threads)")
    _demo_figures(args.out, metrics)
    print(f"wrote {os.path.join(args.out, 'metrics.json')}")
    return 0


def _demo_figures(out: str, metrics: dict) -> None:
    """Training curve, first-layer filters, saliency and occlusion PNGs (with the viz extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print('(install "fastconv[viz]" for the training-curve and visualization PNGs)')
        return
    from fastconv import data
    from fastconv.viz.command import demo_figures

    _training_curve(out, metrics)
    model, _ = _runs.load_run(out, None)
    test_set = data.MNIST(split="test")
    images = data.TensorDataset(test_set.data, test_set.targets, transform=_runs.normalize())
    for path in demo_figures(model, images, out):
        print(f"wrote {path}")
    return 0


def _training_curve(out: str, metrics: dict) -> None:
    """Loss and accuracy per epoch as training_curve.png (written atomically)."""
    from fastconv.viz.plotting import new_figure, save_figure

    hist = metrics["history"]
    epochs = [h["epoch"] for h in hist]
    fig = new_figure("fastconv demo", 9, 3.5)
    ax = fig.subplots(1, 2)
    ax[0].plot(epochs, [h["train_loss"] for h in hist], marker="o")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("train loss")
    ax[1].plot(epochs, [100 * h["train_accuracy"] for h in hist], marker="o", label="train")
    ax[1].axhline(100 * metrics["test_accuracy"], color="k", ls="--", label="test (final)")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("accuracy %")
    ax[1].legend()
    fig.tight_layout()
    print(f"wrote {save_figure(fig, os.path.join(out, 'training_curve.png'))}")


def _add_train_options(p: argparse.ArgumentParser, defaults: dict) -> None:
    p.add_argument("--arch", default=defaults.get("arch", DEMO_ARCH), help="blueprint spec of the network")
    p.add_argument("--data", default="mnist", help="dataset (mnist: the bundled copy)")
    p.add_argument("--data-root", default=None, help="folder with MNIST IDX files (default: bundled)")
    p.add_argument("--epochs", type=_positive_int, default=3)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=_positive_float, default=0.01,
                   help="learning rate (SGD with momentum 0.9 diverges on the demo network at 0.05)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--cosine", action="store_true", help="cosine-annealed learning rate")
    p.add_argument("--augment", action="store_true", help="random 2-pixel shifts")
    p.add_argument("--out", default="runs/train", help="output folder (checkpoints, metrics.json)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--threads", type=_positive_int, default=None, help="OpenMP + BLAS threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks (run under mpiexec; needs fastconv[mpi])")


def _add_network_options(p: argparse.ArgumentParser, example_input: str) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", help="blueprint spec of the network")
    which.add_argument("--model", help="a fastconv.vision.models name, e.g. resnet18 or resnet20")
    p.add_argument("--input", type=_shape, default=None,
                   help=f"input shape CxHxW, e.g. {example_input} (default with --model: the model's own)")
    p.add_argument("--num-classes", type=_positive_int, default=None,
                   help="classes (default: 10 for --arch, the builder's for --model)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastconv", description="fastconv: CPU deep learning with Cython kernels.")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser("demo", help="train the lecture's CNN on the bundled MNIST and report test accuracy")
    demo.add_argument("--out", default="runs/demo", help="output folder")
    demo.add_argument("--epochs", type=_positive_int, default=15)  # >= 98 % test accuracy with the cosine schedule
    demo.add_argument("--threads", type=_positive_int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)

    train = sub.add_parser("train", help="train a blueprint network")
    _add_train_options(train, {})
    train.set_defaults(run=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate a trained model")
    ev.add_argument("--checkpoint", required=True, help="run folder, model.npz or checkpoint.npz")
    ev.add_argument("--arch", default=None, help="blueprint spec (default: the run's config.json)")
    ev.add_argument("--split", choices=["test", "train"], default="test")
    ev.add_argument("--data-root", default=None)
    ev.set_defaults(run=_cmd_eval)

    summary = sub.add_parser("summary", help="layers, output shapes, parameters and memory of a blueprint")
    _add_network_options(summary, "1x28x28")
    summary.add_argument("--batch-size", type=_positive_int, default=1)
    summary.add_argument("--optimizer", choices=["sgd", "sgd-momentum", "adam"], default=None)
    summary.set_defaults(run=_cmd_summary)

    prof = sub.add_parser("profile", help="memory (params, grads, optimizer, activations, peak) and multiply-adds")
    _add_network_options(prof, "3x224x224")
    prof.add_argument("--batch-size", type=_positive_int, default=32)
    prof.add_argument("--optimizer", choices=["sgd", "sgd-momentum", "adam"], default=None)
    prof.add_argument("--mode", choices=["train", "eval"], default="train")
    prof.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    prof.add_argument("--budget", default=None, help="memory budget, e.g. 512MB or 2GB: prints the largest batch")
    prof.add_argument("--measure", action="store_true", help="also run one real step and measure its peak")
    prof.set_defaults(run=_cmd_profile)

    from fastconv.viz.command import add_parser as add_viz_parser
    from fastconv.inference.command import add_parser as add_inference_parsers

    add_viz_parser(sub)
    add_inference_parsers(sub)

    config = sub.add_parser("config", help="print versions, BLAS and OpenMP threading")
    config.set_defaults(run=lambda a: (__import__("fastconv").show_config(), 0)[1])
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the message
        print(f"fastconv {args.command}: error: {message}", file=sys.stderr)
        return 2
