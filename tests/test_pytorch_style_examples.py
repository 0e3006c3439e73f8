"""The PyTorch-style scripts in examples/pytorch_style run on fastconv with only their import lines
rewritten (``torch`` -> ``fastconv``, ``torchvision`` -> ``fastconv.vision``), on small data made
here from fastconv's bundled MNIST; where torch is installed the untouched script runs under
torch/torchvision with the same settings and both reach comparable metrics."""
import gzip
import os
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import fastconv
from _subprocess import run
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
def _idx(stem: str, n: int) -> bytes:
    raw = gzip.decompress((BUNDLED / f"{stem}.gz").read_bytes())
    dims = raw[3]
    shape = np.frombuffer(raw[4:4 + 4 * dims], dtype=">u4").copy()
    shape[0] = min(n, int(shape[0]))
    header = raw[:4] + shape.astype(">u4").tobytes()
    return header + raw[4 + 4 * dims:4 + 4 * dims + int(np.prod(shape))]


def _digits(stem_prefix: str, n: int):
    images = np.frombuffer(_idx(f"{stem_prefix}-images-idx3-ubyte", n)[16:], np.uint8).reshape(-1, 28, 28)
    labels = np.frombuffer(_idx(f"{stem_prefix}-labels-idx1-ubyte", n)[8:], np.uint8)
    return images, labels


def write_mnist(root: Path, n_train: int, n_test: int) -> None:
    """Uncompressed IDX files under root/MNIST/raw, the layout torchvision checks for offline."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for src, dst, n in [("train5k", "train", n_train), ("t10k", "t10k", n_test)]:
        for kind in ("images-idx3", "labels-idx1"):
            (raw / f"{dst}-{kind}-ubyte").write_bytes(_idx(f"{src}-{kind}-ubyte", n))


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


def run_on_fastconv(name: str, args: list, tmp_path: Path) -> dict:
    script = tmp_path / name
    script.write_text(rewrite_imports((EXAMPLES / name).read_text()))
    done = run([sys.executable, str(script)] + args, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return _metrics(done.stdout)


def run_on_torch(name: str, args: list) -> dict:
    import_torchvision()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # two cores shared with the fastconv run and other tests
    done = run([sys.executable, "-c", _TORCH_LAUNCHER, str(EXAMPLES / name)] + args, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return _metrics(done.stdout)
