"""Transfer learning with a torchvision ResNet-18 checkpoint, end to end on fastconv.

The recipe of the CS231n notes ("Transfer Learning"): take a CNN trained on a large dataset and

1. load its weights -- here a torchvision ResNet-18 ``.pth`` read by ``fc.load`` without PyTorch
   (the allow-list unpickler runs nothing from the file);
2. use it as a fixed feature extractor: the 512-d global-average-pooled activations before the
   classifier are the image's "CNN codes" (the notes' 4096-d AlexNet codes);
3. fit a linear classifier on the codes;
4. fine-tune the last stage (``layer4``) together with the new head, the stage at a smaller learning
   rate than the head, earlier stages frozen (their batch-norm statistics too);
5. export the result to ONNX and run it in ONNX Runtime.

Which of 3 and 4 to use follows the notes' four cases:

============================  ===============================  ================================
                              similar to the pretraining data  different from it
============================  ===============================  ================================
small new dataset             linear classifier on the codes   linear classifier on codes from
                              (fine-tuning overfits)           an earlier stage
large new dataset             fine-tune the last stage(s)      fine-tune more (or all) stages
============================  ===============================  ================================

The data is generated: four classes of 64x64 colour textures (horizontal, vertical and diagonal
stripes, concentric rings) with random frequency, phase, colours and noise.

    python examples/transfer_learning.py --checkpoint resnet18-f37072fd.pth

(from the repository root; ``PYTHONPATH=.`` in a checkout that is not installed) uses torchvision's
ImageNet weights (download them once with torchvision or from
download.pytorch.org/models/resnet18-f37072fd.pth). Without ``--checkpoint`` the script writes a
stand-in torchvision checkpoint with randomly initialised weights (this needs torch and
torchvision); the steps are the same, but random features make poor codes, so expect accuracies
near chance from the stand-in and the lecture's gains only from real ImageNet weights.
ONNX export needs ``pip install "fastconv[onnx]"``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import types
from typing import Dict, Optional, Tuple

import numpy as np

import fastconv as fc
from fastconv import nn
from fastconv.nn.finetune import freeze, unfreeze
from fastconv.vision import models

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
CLASSES = ("horizontal stripes", "vertical stripes", "diagonal stripes", "rings")


# ---- data ------------------------------------------------------------------------------------------

def make_textures(n_per_class: int, size: int = 64, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(images, labels): ``n_per_class`` images of each class, (N, 3, size, size) float32 normalised
    with ImageNet's mean and std (what the pretrained network expects), labels int64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(n_per_class):
            freq = rng.uniform(3.0, 7.0)
            phase = rng.uniform(0, 2 * np.pi)
            if label == 0:
                t = yy
            elif label == 1:
                t = xx
            elif label == 2:
                t = (xx + yy) / np.sqrt(2.0) if rng.random() < 0.5 else (xx - yy) / np.sqrt(2.0)
            else:
                cy, cx = rng.uniform(0.3, 0.7, size=2)
                t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
            pattern = 0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)
            a, b = rng.uniform(0, 1, size=(2, 3, 1, 1)).astype(np.float32)
            image = a * pattern + b * (1 - pattern) + rng.normal(0, 0.08, size=(3, size, size))
            images.append(np.clip(image, 0, 1))
            labels.append(label)
    images = (np.stack(images).astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    order = rng.permutation(len(labels))
    return np.ascontiguousarray(images[order]), np.asarray(labels, dtype=np.int64)[order]


# ---- 1. the checkpoint -----------------------------------------------------------------------------

def write_standin_checkpoint(path: str, seed: int = 0) -> str:
    """A torchvision ResNet-18 state_dict written by torch.save (random weights), standing in for
    the ImageNet checkpoint when none is given."""
    try:
        import torch
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
        import torchvision
    except ImportError:
        raise SystemExit("transfer_learning: pass --checkpoint resnet18.pth (a torchvision ResNet-18 state_dict), "
                         "or install torch and torchvision to write a stand-in one") from None
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def load_pretrained(checkpoint: str) -> nn.Module:
    """fastconv's ResNet-18 with the checkpoint's weights (torchvision's keys, read without torch)."""
    model = models.resnet18()
    model.load_state_dict(fc.load(checkpoint))
    return model.eval()


# ---- 2. CNN codes ------------------------------------------------------------------------------------

def cnn_codes(model: nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The (N, 512) global-average-pooled features in front of the classifier, in eval mode."""
    head, model.fc = model.fc, nn.Identity()
    model.eval()
    try:
        with fc.no_grad():
            return np.concatenate([model(fc.tensor(images[i:i + batch_size])).numpy()
                                   for i in range(0, len(images), batch_size)])
    finally:
        model.fc = head


# ---- 3. a linear classifier on the codes ----------------------------------------------------------------

def fit_linear(codes: np.ndarray, labels: np.ndarray, num_classes: int, steps: int = 300,
               lr: float = 0.05, weight_decay: float = 1e-3, seed: int = 0) -> nn.Linear:
    """Softmax regression on standardised codes (full batch, Adam, L2 penalty); the
    standardisation is folded into the returned layer, which takes raw codes."""
    fc.manual_seed(seed)
    mean, std = codes.mean(axis=0), codes.std(axis=0) + 1e-6
    head = nn.Linear(codes.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    opt = fc.optim.Adam(head.parameters(), lr=lr)
    x = fc.tensor((codes - mean) / std)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(x), labels) + weight_decay * (head.weight * head.weight).sum()
        loss.backward()
        opt.step()
    with fc.no_grad():  # w·(c − mean)/std + b  =  (w/std)·c + (b − w·mean/std)
        w = head.weight.numpy() / std
        head.bias.numpy()[...] -= w @ mean
        head.weight.numpy()[...] = w
    return head


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


# ---- 4. fine-tuning the last stage --------------------------------------------------------------------------

def fine_tune(model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int = 3, batch_size: int = 32,
              lr_stage: float = 1e-4, lr_head: float = 1e-3, seed: int = 0) -> list:
    """Train ``layer4`` (at ``lr_stage``) and ``fc`` (at ``lr_head``); everything before stays frozen,
    including its batch-norm statistics (those modules stay in eval mode). Returns the epoch losses."""
    freeze(model)
    unfreeze(model, "layer4.", "fc.")
    model.eval()
    model.layer4.train()
    model.fc.train()
    opt = fc.optim.SGD([{"params": list(model.layer4.parameters()), "lr": lr_stage},
                        {"params": list(model.fc.parameters()), "lr": lr_head}], lr=lr_head, momentum=0.9)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(labels))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(fc.tensor(images[idx])), labels[idx])
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
        losses.append(total / len(order))
    unfreeze(model)
    return losses


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    model.eval()
    with fc.no_grad():
        return np.concatenate([model(fc.tensor(images[i:i + batch_size])).numpy()
                               for i in range(0, len(images), batch_size)])


# ---- 5. ONNX ---------------------------------------------------------------------------------------------

def run_in_onnx_runtime(model: nn.Module, images: np.ndarray, path: str) -> np.ndarray:
    """Export ``model`` (dynamic batch) and return ONNX Runtime's logits for ``images``."""
    import onnxruntime

    fc.onnx.export(model.eval(), images[:2], path, opset_version=17, input_names=["image"],
                   output_names=["logits"])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


# ---- the whole recipe ---------------------------------------------------------------------------------------

def main(argv: Optional[list] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a torchvision ResNet-18 state_dict (.pth); default: a stand-in")
    parser.add_argument("--out", default="runs/transfer", help="folder for the stand-in checkpoint and model.onnx")
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=25)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        fc.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()

    checkpoint = args.checkpoint or write_standin_checkpoint(os.path.join(args.out, "resnet18_standin.pth"))
    model = load_pretrained(checkpoint)
    print(f"1. loaded {checkpoint} into fastconv.vision.models.resnet18")

    train_x, train_y = make_textures(args.train_per_class, args.size, seed=1)
    test_x, test_y = make_textures(args.test_per_class, args.size, seed=2)
    train_codes, test_codes = cnn_codes(model, train_x), cnn_codes(model, test_x)
    print(f"2. CNN codes: train {train_codes.shape}, test {test_codes.shape}")

    head = fit_linear(train_codes, train_y, len(CLASSES))
    with fc.no_grad():
        probe = accuracy(head(fc.tensor(test_codes)).numpy(), test_y)
    print(f"3. linear classifier on the codes: test accuracy {probe:.3f} (chance {1 / len(CLASSES):.2f})")

    model.fc = head
    losses = fine_tune(model, train_x, train_y, epochs=args.epochs)
    logits = predict(model, test_x)
    tuned = accuracy(logits, test_y)
    print(f"4. fine-tuned layer4 + head: epoch losses {', '.join(f'{v:.3f}' for v in losses)}; "
          f"test accuracy {tuned:.3f}")

    onnx_path = os.path.join(args.out, "resnet18_transfer.onnx")
    ort_logits = run_in_onnx_runtime(model, test_x, onnx_path)
    gap = float(np.abs(ort_logits - logits).max() / np.abs(logits).max())
    print(f"5. {onnx_path} in ONNX Runtime: test accuracy {accuracy(ort_logits, test_y):.3f}, "
          f"largest difference to fastconv {gap:.1e} (relative)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"probe_accuracy": probe, "tuned_accuracy": tuned, "first_loss": losses[0], "last_loss": losses[-1],
            "onnx_relative_difference": gap, "codes_dim": train_codes.shape[1]}


if __name__ == "__main__":
    main()
