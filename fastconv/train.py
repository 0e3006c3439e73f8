"""The fit loop: progress bar, history, atomic per-epoch checkpoints, exact resume, Ctrl-C safety.

A checkpoint holds everything the next step depends on (model, optimizer, scheduler, the global
generator, the loader's position and the partial epoch's running sums), so a resumed run
reproduces an uninterrupted one bit for bit.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import random as _random
from ._atomic import remove_stale_temporaries
from .backends import conv as _conv_backend
from .autograd.grad_mode import no_grad
from .serialization import load, save
from .tensor import Tensor

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_FORMAT = "fastconv-checkpoint-1"
PLANS_NAME = "conv_plans.json"  # beside the checkpoint: the convolution paths the run measured


class Callback:
    """Hooks into ``fit``; override what you need. ``logs`` is the epoch's history entry."""

    def on_train_begin(self, model) -> None:
        pass

    def on_epoch_begin(self, epoch: int, model) -> None:
        pass

    def on_batch_end(self, epoch: int, batch: int, loss: float, model) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict, model) -> None:
        pass

    def on_train_end(self, history: List[dict], model) -> None:
        pass


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; training stops instead of silently continuing."""


class SingleProcess:
    """The process group ``fit`` uses on its own: one process, which writes checkpoints, and
    reductions that return their input. ``fastconv.distributed`` installs its MPI group instead."""

    @staticmethod
    def is_main() -> bool:
        return True

    @staticmethod
    def world_size() -> int:
        return 1

    @staticmethod
    def all_reduce(array: np.ndarray, op: str = "sum") -> np.ndarray:
        return array


_process_group = SingleProcess


def set_process_group(group):
    """Install the process group ``fit`` and ``save_checkpoint`` ask (``is_main()``, ``world_size()``,
    ``all_reduce(array, op)``); returns the previous one. ``fastconv.distributed`` calls this with
    its MPI group when imported; ``SingleProcess`` restores the default."""
    global _process_group
    for name in ("is_main", "world_size", "all_reduce"):
        if not callable(getattr(group, name, None)):
            raise TypeError(f"set_process_group: expected an object with is_main(), world_size() and "
                            f"all_reduce(array, op), got {type(group).__name__} without {name}()")
    previous, _process_group = _process_group, group
    return previous


def _is_main_process() -> bool:
    return bool(_process_group.is_main())


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x))


def _global_totals(sums: dict) -> dict:
    """Loss/correct/count summed over the process group's ranks (the sums themselves stay per rank)."""
    if _process_group.world_size() == 1:
        return sums
    totals = _process_group.all_reduce(np.array([sums["loss"], sums["correct"], sums["count"]], dtype=np.float64),
                                       op="sum")
    return dict(sums, loss=float(totals[0]), correct=int(totals[1]), count=int(totals[2]))


def _correct(output: np.ndarray, target: np.ndarray) -> Optional[int]:
    """Number of correct class predictions, or None when the task is not classification."""
    if output.ndim < 2 or not np.issubdtype(np.asarray(target).dtype, np.integer):
        return None
    return int((output.argmax(axis=1) == target).sum())


def evaluate(model, loader, loss_fn: Optional[Callable] = None) -> Dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` in eval mode, without recording."""
    was_training = getattr(model, "training", False)
    model.eval()
    total_loss = 0.0
    correct = 0
    count = 0
    classification = True
    try:
        with no_grad():
            for x, y in loader:
                out = model(_as_tensor(x))
                n = len(y)
                if loss_fn is not None:
                    total_loss += float(loss_fn(out, y).item()) * n
                c = _correct(out.numpy(), np.asarray(y))
                classification = classification and c is not None
                correct += c or 0
                count += n
    finally:
        model.train(was_training)
    result = {"loss": total_loss / max(count, 1) if loss_fn is not None else float("nan"),
              "samples": count}
    if classification:
        result["accuracy"] = correct / max(count, 1)
    return result


def _progress(total: int, desc: str, verbose: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm stays silent when stderr is not a terminal
    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True,
                disable=None if verbose else True)


def _checkpoint_state(model, optimizer, scheduler, loader, epoch, batch, history, partial) -> dict:
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _random.get_rng_state(),
        "epoch": epoch,
        "batch": batch,
        "history": history,
        "partial": partial,
    }
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if hasattr(loader, "state_dict"):
        state["loader"] = loader.state_dict()
    return state


def save_checkpoint(path: str, model, optimizer, scheduler=None, loader=None, epoch: int = 0,
                    batch: int = 0, history: Optional[List[dict]] = None,
                    partial: Optional[dict] = None) -> None:
    """Write a resumable checkpoint atomically (rank 0 only under MPI)."""
    if not _is_main_process():
        return
    state = _checkpoint_state(model, optimizer, scheduler, loader, epoch, batch, history or [],
                              partial or {})
    save(state, path)


def load_checkpoint(path: str, model, optimizer=None, scheduler=None, loader=None) -> dict:
    """Restore model (and optimizer, scheduler, loader, generator) from ``path``; returns the state.

    A file that is not a complete training checkpoint raises ValueError naming it."""
    state = load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"load_checkpoint: {path} is not a fastconv training checkpoint (no "
                         f"'format': {CHECKPOINT_FORMAT!r} entry)")
    _check_checkpoint(state, path)
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        if loader is not None and "loader" in state and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(state["loader"])
        _random.set_rng_state(state["rng"])
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:  # parts of the wrong kind
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"load_checkpoint: {path} does not fit this training run: {detail}") from None
    return state


def _check_checkpoint(state: dict, path: str) -> None:
    """Every entry fit reads is present and of the right kind (else ValueError naming the file)."""
    expected = {"model": dict, "optimizer": dict, "rng": dict, "epoch": int, "batch": int, "history": list,
                "partial": dict}
    for key, kind in expected.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            got = "nothing" if key not in state else f"{type(value).__name__} {str(value)[:40]}"
            raise ValueError(f"load_checkpoint: {path} is a damaged training checkpoint: expected "
                             f"'{key}' as {'a non-negative int' if kind is int else 'a ' + kind.__name__}, "
                             f"got {got}")
    if state["batch"] > 0:  # a cut epoch: its running sums continue
        sums = state["partial"]
        for key, kinds in (("loss", (int, float)), ("correct", (int,)), ("count", (int,)),
                           ("classification", (bool,)), ("seconds", (int, float))):
            if not isinstance(sums.get(key), kinds):
                raise ValueError(f"load_checkpoint: {path} is a damaged training checkpoint: the cut epoch's "
                                 f"sums lack a valid '{key}'")


class _StopRequest:
    """Ctrl-C during ``fit`` (main thread only).

    The first Ctrl-C sets ``requested``: training stops at the next step boundary, where model,
    optimizer, generator, loader position and epoch sums agree, and that state is checkpointed.
    A second Ctrl-C raises KeyboardInterrupt at once, wherever the program is (possibly halfway
    through a step, or through writing that checkpoint): nothing is saved then, and the previous
    checkpoint stays as it was (files are replaced atomically).
    """

    def __init__(self) -> None:
        self.requested = False
        self.saved = False

    def handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _save_conv_plans(checkpoint_dir: str) -> None:
    """Keep the convolution paths measured so far (``fastconv.backends.conv``, benchmark mode)
    beside the checkpoint: a resumed run computes with the same paths, hence the same bits, as the
    run it continues (two processes measuring on their own may pick paths that round differently)."""
    if _conv_backend.benchmark and not _conv_backend.deterministic and _conv_backend.planner.plans():
        _conv_backend.save_plans(os.path.join(checkpoint_dir, PLANS_NAME))


def _load_conv_plans(checkpoint_dir: str) -> None:
    path = os.path.join(checkpoint_dir, PLANS_NAME)
    if os.path.exists(path):
        _conv_backend.load_plans(path)


@contextlib.contextmanager
def _ctrl_c_stops_between_steps():
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, stop.handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _scheduler_step(scheduler, logs: dict) -> None:
    if scheduler is None:
        return
    if type(scheduler).__name__ == "ReduceLROnPlateau":
        metric = logs.get("val_loss", logs["train_loss"])
        scheduler.step(metric)
    else:
        scheduler.step()


def fit(
    model,
    train_loader,
    loss_fn: Callable,
    optimizer,
    epochs: int,
    val_loader=None,
    scheduler=None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: Optional[str] = None,
    resume: bool = False,
    verbose: bool = True,
    max_batches: Optional[int] = None,
) -> List[dict]:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch history.

    Each epoch records train loss/accuracy, val loss/accuracy (with ``val_loader``), the learning
    rate, wall time and samples/s. With ``checkpoint_dir`` a checkpoint is written atomically
    after every epoch and on Ctrl-C: the first Ctrl-C stops after the current step, writes the
    checkpoint and raises KeyboardInterrupt; a second one stops at once and writes nothing, so
    the previous checkpoint stays (``_StopRequest``). ``resume=True`` continues from the
    checkpoint exactly (bit for bit, as if never interrupted). A NaN/inf loss raises
    ``TrainingDiverged``. ``max_batches`` stops after that many optimizer steps in total, as a
    first Ctrl-C would (used to simulate an interruption in tests).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: expected epochs >= 1, got {epochs!r}")
    ckpt_path = os.path.join(checkpoint_dir, CHECKPOINT_NAME) if checkpoint_dir else None
    if resume and not ckpt_path:
        raise ValueError("fit: resume=True needs checkpoint_dir")
    if ckpt_path:
        os.makedirs(checkpoint_dir, exist_ok=True)
        for name in (CHECKPOINT_NAME, PLANS_NAME):  # left by a process killed while writing
            remove_stale_temporaries(os.path.join(checkpoint_dir, name))
    history: List[dict] = []
    start_epoch, start_batch, partial = 0, 0, {}
    if resume and os.path.exists(ckpt_path):
        state = load_checkpoint(ckpt_path, model, optimizer, scheduler, train_loader)
        _load_conv_plans(checkpoint_dir)
        start_epoch, start_batch = state["epoch"], state["batch"]
        history, partial = list(state["history"]), dict(state["partial"])
    main = _is_main_process()
    for cb in callbacks:
        cb.on_train_begin(model)
    steps = 0
    with _ctrl_c_stops_between_steps() as stop:
        try:
            for epoch in range(start_epoch, epochs):
                if stop.requested:  # nothing trained since the last checkpoint (or the start)
                    raise KeyboardInterrupt
                resumed = epoch == start_epoch and start_batch > 0
                completed = start_batch if resumed else 0
                sums = dict(partial) if resumed else {"loss": 0.0, "correct": 0, "count": 0,
                                                      "classification": True, "seconds": 0.0}
                logs = _train_epoch(model, train_loader, loss_fn, optimizer, callbacks, epoch, epochs,
                                    completed, sums, stop, verbose and main, max_batches, steps)
                steps += logs.pop("_steps")
                completed = logs.pop("_completed")
                if stop.requested:  # at a step boundary: everything saved below agrees
                    if ckpt_path:
                        if main:
                            _save_conv_plans(checkpoint_dir)
                        save_checkpoint(ckpt_path, model, optimizer, scheduler, train_loader, epoch, completed,
                                        history, sums)
                        stop.saved = True
                        if verbose and main:
                            print(f"\ninterrupted: checkpoint saved to {ckpt_path} (resume with resume=True)",
                                  file=sys.stderr)
                    raise KeyboardInterrupt
                if val_loader is not None:
                    val = evaluate(model, val_loader, loss_fn)
                    logs["val_loss"] = val["loss"]
                    if "accuracy" in val:
                        logs["val_accuracy"] = val["accuracy"]
                _scheduler_step(scheduler, logs)
                history.append(logs)
                if verbose and main:
                    print(_format_logs(logs), file=sys.stderr, flush=True)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs, model)
                if ckpt_path:
                    if main:
                        _save_conv_plans(checkpoint_dir)
                    save_checkpoint(ckpt_path, model, optimizer, scheduler, train_loader, epoch + 1, 0, history)
        except KeyboardInterrupt:
            if ckpt_path and not stop.saved and verbose and main:
                print(f"\nstopped at once: {ckpt_path} was not updated (it holds the last completed "
                      "checkpoint, if any)", file=sys.stderr)
            raise
    for cb in callbacks:
        cb.on_train_end(history, model)
    return history


def _train_epoch(model, loader, loss_fn, optimizer, callbacks, epoch, epochs, completed, sums,
                 stop, show, max_batches, steps_before) -> dict:
    """One epoch from batch ``completed`` on; updates ``sums`` in place, stops after the step
    during which ``stop.requested`` became true.

    A cut epoch resumes in the loader itself when it can (fastconv's DataLoader: same order and
    augmentation draws from batch ``completed`` on, nothing fetched twice); any other iterable is
    replayed from its start, skipping the batches already trained on."""
    resumable = (0 < completed < len(loader) and callable(getattr(loader, "load_state_dict", None))
                 and hasattr(loader, "seed"))
    if resumable:
        loader.load_state_dict({"seed": loader.seed, "epoch": epoch, "batches_done": completed})
    elif hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    model.train()
    for cb in callbacks:
        cb.on_epoch_begin(epoch, model)
    bar = _progress(len(loader), f"epoch {epoch + 1}/{epochs}", show)
    t_start = time.perf_counter() - sums["seconds"]
    steps = 0
    skip = 0 if resumable else completed
    if resumable:
        bar.update(completed)
    for batch_index, (x, y) in enumerate(loader, start=completed if resumable else 0):
        if batch_index < skip:  # replay the cut epoch's order (and augmentation draws) up to where it stopped
            bar.update(1)
            continue
        out = model(_as_tensor(x))
        loss = loss_fn(out, y)
        value = float(loss.item())
        if not math.isfinite(value):
            bar.close()
            raise TrainingDiverged(
                f"fit: loss became {value} at epoch {epoch + 1}, batch {batch_index + 1}; "
                "training stopped (try a lower learning rate or check the inputs)")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n = len(y)
        c = _correct(out.numpy(), np.asarray(y))
        sums["loss"] += value * n
        sums["classification"] = sums["classification"] and c is not None
        sums["correct"] += c or 0
        sums["count"] += n
        sums["seconds"] = time.perf_counter() - t_start
        completed = batch_index + 1
        steps += 1
        bar.set_postfix(loss=f"{sums['loss'] / sums['count']:.4f}",
                        samples_s=f"{sums['count'] / max(sums['seconds'], 1e-9):.0f}", refresh=False)
        bar.update(1)
        for cb in callbacks:
            cb.on_batch_end(epoch, batch_index, value, model)
        if max_batches is not None and steps_before + steps >= max_batches:
            stop.requested = True
        if stop.requested:
            break
    bar.close()
    totals = _global_totals(sums) if not stop.requested else sums
    logs = {
        "epoch": epoch + 1,
        "train_loss": totals["loss"] / max(totals["count"], 1),
        "lr": float(optimizer.param_groups[0]["lr"]),
        "seconds": totals["seconds"],
        "samples_per_s": totals["count"] / max(totals["seconds"], 1e-9),
        "_steps": steps,
        "_completed": completed,
    }
    if totals["classification"]:
        logs["train_accuracy"] = totals["correct"] / max(totals["count"], 1)
    return logs


def _format_logs(logs: dict) -> str:
    parts = [f"epoch {logs['epoch']}", f"train loss {logs['train_loss']:.4f}"]
    if "train_accuracy" in logs:
        parts.append(f"acc {logs['train_accuracy']:.4f}")
    if "val_loss" in logs:
        parts.append(f"val loss {logs['val_loss']:.4f}")
    if "val_accuracy" in logs:
        parts.append(f"val acc {logs['val_accuracy']:.4f}")
    parts.append(f"{logs['samples_per_s']:.0f} samples/s")
    return ", ".join(parts)
