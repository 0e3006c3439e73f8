"""The six PyTorch-style scripts in examples/pytorch_style (MNIST, CIFAR-10 blitz, ResNet CIFAR, DCGAN,
fine-tuning, U-Net segmentation) run on fastconv with only their import lines
rewritten (``torch`` -> ``fastconv``, ``torchvision`` -> ``fastconv.vision``), on small data made
here from fastconv's bundled MNIST; where torch is installed the untouched script runs under
torch/torchvision with the same settings and both reach comparable metrics."""
import gzip
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastconv
from _subprocess import NEUTRAL_CWD, child_env
from _torchvision import import_torchvision

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "pytorch_style"
BUNDLED = Path(fastconv.__file__).resolve().parent / "data" / "mnist"
_IMPORT_LINE = re.compile(r"^(\s*)(import|from)\s+(torchvision|torch)\b(\S*)(.*)$")


def rewrite_imports(source: str) -> str:
    """Only the import lines change: ``torch`` becomes ``fastconv``, ``torchvision`` ``fastconv.vision``;
    a bare ``import torch`` keeps its name through ``as``."""
    lines = []
    for line in source.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            indent, kind, top, rest, tail = m.groups()
            new_top = "fastconv" if top == "torch" else "fastconv.vision"
            if kind == "import" and not rest and not tail.strip():
                line = f"{indent}import {new_top} as {top}"
            else:
                line = f"{indent}{kind} {new_top}{rest}{tail}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_rewrite_touches_only_import_lines():
    src = ("import torch\nimport torch.nn as nn\nfrom torch.optim.lr_scheduler import StepLR\n"
           "import torchvision\nfrom torchvision import datasets, transforms\n"
           "x = torch.zeros(1)  # import torch\n")
    assert rewrite_imports(src).splitlines() == [
        "import fastconv as torch", "import fastconv.nn as nn", "from fastconv.optim.lr_scheduler import StepLR",
        "import fastconv.vision as torchvision", "from fastconv.vision import datasets, transforms",
        "x = torch.zeros(1)  # import torch"]


# ---- small data shared by both libraries -----------------------------------------------------------
def _bundled(prefix: str):
    """Images (n, 28, 28) and labels of one bundled IDX pair."""
    images = gzip.decompress((BUNDLED / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((BUNDLED / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
    return np.frombuffer(images, np.uint8, offset=16).reshape(-1, 28, 28), np.frombuffer(labels, np.uint8, offset=8)


def _digits(prefix: str, n: int):
    """``n`` digits, classes interleaved (the bundled training copy is sorted by class)."""
    images, labels = _bundled(prefix)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    order = np.array([by_class[i % 10][i // 10] for i in range(n)])
    return images[order], labels[order]


def write_mnist(root: Path, n_train: int, n_test: int) -> None:
    """Uncompressed IDX files under root/MNIST/raw, the layout torchvision checks for offline."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for src, dst, n in [("train5k", "train", n_train), ("t10k", "t10k", n_test)]:
        images, labels = _digits(src, n)
        (raw / f"{dst}-images-idx3-ubyte").write_bytes(np.array([2051, n, 28, 28], ">u4").tobytes() + images.tobytes())
        (raw / f"{dst}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">u4").tobytes() + labels.tobytes())


def _tinted(images: np.ndarray, rng) -> np.ndarray:
    """28x28 digits as 32x32 colour images: random background and ink colours, random 0-4 px offset."""
    n = len(images)
    out = np.empty((n, 3, 32, 32), np.float32)
    ink = rng.uniform(128, 255, (n, 3, 1, 1))
    paper = rng.uniform(0, 100, (n, 3, 1, 1))
    for i, img in enumerate(images):
        canvas = np.zeros((32, 32), np.float32)
        dy, dx = rng.integers(0, 5, 2)
        canvas[dy:dy + 28, dx:dx + 28] = img / 255.0
        out[i] = paper[i] + (ink[i] - paper[i]) * canvas
    return out.round().clip(0, 255).astype(np.uint8).reshape(n, -1)


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """CIFAR-10 python batches (5 training batches, test_batch, batches.meta) of tinted digits."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = _digits("train5k", n_train)
    test_x, test_y = _digits("t10k", n_test)
    parts = np.array_split(np.arange(len(train_x)), 5)
    batches = [(f"data_batch_{k + 1}", train_x[p], train_y[p]) for k, p in enumerate(parts)]
    for name, x, y in batches + [("test_batch", test_x, test_y)]:
        entry = {"batch_label": name, "data": _tinted(x, rng), "labels": [int(v) for v in y],
                 "filenames": [f"{name}_{i}.png" for i in range(len(y))]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": [str(d) for d in range(10)], "num_cases_per_batch": len(parts[0]), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pytorch_style_data")
    write_mnist(root, 1024, 512)
    write_cifar10(root, 1024, 512)
    return root


# ---- running a script under each library -----------------------------------------------------------
_TORCH_LAUNCHER = """
import os, runpy, sys, types
sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))
import torchvision.datasets.cifar as cifar  # the batches were written here: no published md5 to match
cifar.check_integrity = lambda path, md5=None: os.path.isfile(path)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""
_METRIC = re.compile(r"^(\w+) (-?[0-9.]+|nan|inf)\s*$", re.M)


def _metrics(output: str) -> dict:
    return {name: float(value) for name, value in _METRIC.findall(output)}


def _start(cmd, env) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=NEUTRAL_CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(name: str, child: subprocess.Popen, library: str) -> dict:
    try:
        out, err = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    assert child.returncode == 0, f"{name} on {library} failed:\n{out[-2000:]}{err[-4000:]}"
    return _metrics(out)


def start_on_fastconv(name: str, args: list, tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / name
    script.write_text(rewrite_imports((EXAMPLES / name).read_text()))
    return _start([sys.executable, str(script)] + args, child_env())


def start_on_torch(name: str, args: list) -> subprocess.Popen:
    """The untouched script under torch/torchvision (skips without them), single-threaded."""
    import_torchvision()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # the fastconv run goes on at the same time on a small machine
    return _start([sys.executable, "-c", _TORCH_LAUNCHER, str(EXAMPLES / name)] + args, env)


# ---- the scripts -------------------------------------------------------------------------------------
# name, tiny settings, {metric: (low, high, margin)}: both libraries land in [low, high] and within
# ``margin`` of each other (small data: a few dozen steps from different random initialisations)
CASES = [
    ("mnist.py", ["--epochs", "1", "--train-size", "1024", "--test-size", "512", "--batch-size", "32",
                  "--log-interval", "100"], {"accuracy": (0.5, 1, 0.15)}),
    ("cifar10_blitz.py", ["--epochs", "4", "--batch-size", "16", "--lr", "0.02"], {"accuracy": (0.4, 1, 0.15)}),
    ("resnet20_cifar.py", ["--depth", "8", "--epochs", "4", "--batch-size", "32", "--lr", "0.1", "--train-size", "512",
                           "--test-size", "256", "--schedule", "cosine"], {"accuracy": (0.2, 1, 0.15)}),
    ("dcgan.py", ["--epochs", "2", "--train-size", "512", "--batch-size", "32"],
     {"loss_d": (0.3, 2.0, 0.4), "loss_g": (0.4, 3.0, 0.5), "d_accuracy": (0.4, 1, 0.4), "fake_std": (0.02, 1, 0.1)}),
    ("finetune.py", ["--pretrain-epochs", "2", "--epochs", "5", "--train-size", "200", "--test-size", "100",
                     "--batch-size", "25", "--lr", "0.02", "--out", "{out}/backbone.pth"], {"accuracy": (0.3, 1, 0.15)}),
    ("segmentation.py", ["--epochs", "3", "--train-size", "256", "--test-size", "64", "--batch-size", "16",
                         "--lr", "0.01"], {"pixel_accuracy": (0.85, 1, 0.08), "miou": (0.5, 1, 0.2)}),
]


@pytest.mark.parametrize("name, args, expected", CASES, ids=[c[0] for c in CASES])
def test_script_runs_on_fastconv_and_matches_torch(name, args, expected, data_root, tmp_path):
    args = ["--data", str(data_root), "--seed", "0"] + args
    (tmp_path / "fastconv").mkdir()
    (tmp_path / "torch").mkdir()
    ours_child = start_on_fastconv(name, [a.format(out=tmp_path / "fastconv") for a in args], tmp_path)
    try:
        theirs_child = start_on_torch(name, [a.format(out=tmp_path / "torch") for a in args])
    finally:
        ours = _finish(name, ours_child, "fastconv")
    for metric, (low, high, _) in expected.items():
        assert metric in ours, f"{name} printed no final '{metric} <value>' line"
        assert low <= ours[metric] <= high, (metric, ours)
    theirs = _finish(name, theirs_child, "torch")
    for metric, (low, high, margin) in expected.items():
        assert low <= theirs[metric] <= high, (metric, theirs)
        assert abs(ours[metric] - theirs[metric]) <= margin, (metric, ours, theirs)
