"""Training throughput of the demo network, fastconv vs PyTorch CPU, side by side in one process.

The network is the README demo's `INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC` on
1x28x28 inputs; both frameworks start from the same weights and run SGD with momentum on the
same batches. Reported: samples/s (median of several timed runs) and the fastconv/torch ratio.

    python bench/bench_train.py --threads 2 --batch-sizes 64 1
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import common_args, interleaved_median_seconds, median_seconds, setup_threads  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv._runs import build_model as _build_model  # noqa: E402
from fastconv.cli import DEMO_ARCH  # noqa: E402


def torch_twin(torch, model):
    """The same architecture in PyTorch, loaded with fastconv's weights (state_dict keys agree)."""
    tnn = torch.nn
    layers = []
    for m in model:
        name = type(m).__name__
        if name == "Conv2d":
            layers.append(tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding))
        elif name == "Linear":
            layers.append(tnn.Linear(m.in_features, m.out_features))
        elif name == "ReLU":
            layers.append(tnn.ReLU())
        elif name == "MaxPool2d":
            layers.append(tnn.MaxPool2d(m.kernel_size, m.stride))
        elif name == "Flatten":
            layers.append(tnn.Flatten())
        else:
            raise ValueError(f"bench_train: no torch twin for {name}")
    net = tnn.Sequential(*layers)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return net


def main() -> None:
    p = common_args(__doc__)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1])
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per timed run")
    args = p.parse_args()
    torch = setup_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"demo network {DEMO_ARCH}, {args.threads} threads, median of {args.repeats} runs of "
          f"{args.steps} steps, fastconv and torch runs alternated")
    print(f"{'batch':>6} {'fastconv samples/s':>19} {'torch samples/s':>16} {'fc/torch':>9}")
    for bs in args.batch_sizes:
        x = rng.standard_normal((args.steps, bs, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, size=(args.steps, bs))
        fc.manual_seed(0)
        model = _build_model(DEMO_ARCH, (1, 28, 28), 10)
        opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        F = fc.nn.functional

        def fc_run():
            for i in range(args.steps):
                loss = F.cross_entropy(model(fc.tensor(x[i])), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()

        if torch is not None:
            net = torch_twin(torch, model)
            topt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def torch_run():
                for i in range(args.steps):
                    loss = torch.nn.functional.cross_entropy(net(tx[i]), ty[i])
                    topt.zero_grad()
                    loss.backward()
                    topt.step()

            t_fc, t_th = interleaved_median_seconds([fc_run, torch_run], repeats=args.repeats, warmup=1)
            fc_rate, th_rate = args.steps * bs / t_fc, args.steps * bs / t_th
            print(f"{bs:>6} {fc_rate:>19.0f} {th_rate:>16.0f} {fc_rate / th_rate:>8.2f}x")
        else:
            fc_rate = args.steps * bs / median_seconds(fc_run, repeats=args.repeats, warmup=1)
            print(f"{bs:>6} {fc_rate:>19.0f} {'-':>16} {'-':>9}")


if __name__ == "__main__":
    main()
