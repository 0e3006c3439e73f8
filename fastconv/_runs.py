"""Run folders (what ``fastconv train`` writes) and the dataset/model factories behind them.

A run folder holds ``config.json`` (the training settings), ``model.npz`` (the final
``state_dict``) and ``checkpoint.npz`` (the resumable training state). The command line
(``fastconv.cli``) and ``fastconv viz`` (``fastconv.viz.command``) both rebuild models from
here. Every problem with a folder or file is a ``RunError``: a one-line ValueError naming the
file and what is wrong with it.
"""
from __future__ import annotations

import json
import os
import stat
import warnings
from typing import Optional, Tuple

from . import data, nn
from .serialization import load
from .train import CHECKPOINT_FORMAT

CONFIG_NAME = "config.json"
MODEL_NAME = "model.npz"
CHECKPOINT_NAME = "checkpoint.npz"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
MAX_CONFIG_BYTES = 1 << 20  # a run's config is a few hundred bytes


class RunError(ValueError):
    """A run folder or file that cannot be used (one line naming the file and the problem)."""


def datasets(name: str, root: Optional[str]):
    """(train, test, input_shape, num_classes) for a dataset name."""
    if name != "mnist":
        raise RunError(f"unknown dataset {name!r} (available: mnist)")
    return data.MNIST(root=root, split="train"), data.MNIST(root=root, split="test"), (1, 28, 28), 10


def normalize():
    """The per-pixel normalization every MNIST model here was trained with."""
    return data.Normalize([MNIST_MEAN], [MNIST_STD])


def build_model(arch: str, input_shape, num_classes: int):
    """The blueprint network ``arch`` (blueprint warnings silenced: the CLI reports errors only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nn.BlueprintWarning)
        return nn.blueprint(arch, input_shape, num_classes)


def _regular_file(path: str, what: str) -> int:
    """Size of ``path``, which must be a regular file (a FIFO would block the reader forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RunError(f"no such {what}: {path}") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
        raise RunError(f"{path}: expected the {what} as a file, found {kind}")
    return st.st_size


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


_CONFIG_TYPES = {"arch": (str,), "data": (str,), "data_root": (str, type(None))}


def read_config(path: str) -> dict:
    """The settings in a run's ``config.json``: a JSON object whose 'arch', 'data' and
    'data_root' (when present) are strings (data_root may be null)."""
    size = _regular_file(path, "run config")
    if size > MAX_CONFIG_BYTES:
        raise RunError(f"{path}: {size} bytes is too large for a run config (at most {MAX_CONFIG_BYTES})")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        cfg = json.loads(text)
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: not UTF-8 text ({_one_line(exc)})") from None
    except RecursionError:
        raise RunError(f"{path}: JSON nested too deeply to be a run config") from None
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        raise RunError(f"{path}: not valid JSON ({_one_line(exc)})") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read the run config ({exc.strerror or exc})") from None
    if not isinstance(cfg, dict):
        raise RunError(f"{path}: expected a JSON object of run settings, got a JSON {_json_kind(cfg)}")
    for key, types in _CONFIG_TYPES.items():
        if key in cfg and not isinstance(cfg[key], types):
            want = "a string" if types == (str,) else "a string or null"
            raise RunError(f"{path}: expected '{key}' as {want}, got a JSON {_json_kind(cfg[key])}")
    return cfg


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "list", str: "string", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _model_file(checkpoint: str) -> Tuple[str, str]:
    """(folder, model file) for a run folder or a file inside one."""
    if os.path.isdir(checkpoint):
        path = os.path.join(checkpoint, MODEL_NAME)
        if not os.path.exists(path) and os.path.exists(os.path.join(checkpoint, CHECKPOINT_NAME)):
            path = os.path.join(checkpoint, CHECKPOINT_NAME)  # a run stopped before its end
        if not os.path.exists(path):
            raise RunError(f"no such checkpoint: {path} (the folder has no {MODEL_NAME} or {CHECKPOINT_NAME})")
        return checkpoint, path
    if not os.path.exists(checkpoint):
        raise RunError(f"no such checkpoint: {checkpoint}")
    return os.path.dirname(checkpoint), checkpoint


def load_run(checkpoint: str, arch: Optional[str] = None):
    """(model, config) rebuilt from a run folder, or from a model/checkpoint file and the
    ``config.json`` beside it (or ``arch``)."""
    folder, path = _model_file(checkpoint)
    cfg_path = os.path.join(folder, CONFIG_NAME)
    cfg = read_config(cfg_path) if os.path.lexists(cfg_path) else {}
    arch = arch or cfg.get("arch")
    if not arch:
        raise RunError(f"{path}: no {CONFIG_NAME} with an 'arch' beside it; pass --arch")
    try:
        _, _, input_shape, num_classes = datasets(cfg.get("data", "mnist"), cfg.get("data_root"))
    except (ValueError, OSError) as exc:  # a dataset or data_root the config names
        raise RunError(f"{cfg_path}: {_one_line(exc, 400)}") from None
    try:
        model = build_model(arch, input_shape, num_classes)
    except (ValueError, TypeError) as exc:
        source = "--arch" if arch is not cfg.get("arch") else f"{cfg_path} 'arch'"
        raise RunError(f"{source}: {_one_line(exc, 400)}") from None
    _regular_file(path, "checkpoint")
    state = load(path)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        state = state.get("model")
    if not isinstance(state, dict):
        raise RunError(f"{path}: expected a model state_dict (a dict of arrays), found {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except (ValueError, TypeError) as exc:
        raise RunError(f"{path} does not fit the model {_one_line(arch, 80)!r}: {_one_line(exc, 400)}") from None
    return model, cfg


__all__ = ["RunError", "datasets", "normalize", "build_model", "read_config", "load_run", "CONFIG_NAME",
           "MODEL_NAME", "CHECKPOINT_NAME", "MNIST_MEAN", "MNIST_STD"]
