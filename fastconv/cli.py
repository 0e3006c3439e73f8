"""The ``fastconv`` command line: one sub-command per job, each with --help; bad arguments give one line."""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one clear line (no traceback, exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _demo(args) -> int:
    """Softmax regression trained with the tape on a synthetic 3-class problem."""
    import fastconv as fc
    from fastconv.nn import functional as F

    fc.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    centers = rng.standard_normal((3, 2)) * 3
    labels = rng.integers(0, 3, size=600)
    points = (centers[labels] + rng.standard_normal((600, 2))).astype(np.float32)
    w = fc.zeros(2, 3, requires_grad=True)
    b = fc.zeros(3, requires_grad=True)
    onehot = np.eye(3, dtype=np.float32)[labels]
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        logp = F.log_softmax(fc.tensor(points) @ w + b, dim=1)
        loss = -(logp * onehot).sum() / len(labels)
        w.grad = b.grad = None
        loss.backward()
        for p in (w, b):
            p.data -= args.lr * p.grad.numpy()
    acc = float((np.argmax(points @ w.numpy() + b.numpy(), axis=1) == labels).mean())
    print(f"softmax regression: loss {loss.item():.4f}, accuracy {acc:.3f} in "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastconv", description="fastconv: CPU deep learning with Cython kernels.")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True
    demo = sub.add_parser("demo", help="train a small model end to end and report accuracy")
    demo.add_argument("--epochs", type=int, default=200)
    demo.add_argument("--lr", type=float, default=0.5)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    config = sub.add_parser("config", help="print versions, BLAS and OpenMP threading")
    config.set_defaults(run=lambda a: (__import__("fastconv").show_config(), 0)[1])
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"fastconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
