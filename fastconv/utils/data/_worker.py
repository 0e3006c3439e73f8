"""The DataLoader's worker process: seeding as PyTorch does, the fetch loop, errors and exit.

A worker runs ``worker_loop``: one kernel thread (``fastconv.set_num_threads(1)``, so workers and
the training process do not oversubscribe the cores), SIGINT ignored (Ctrl-C is the main
process's to handle; it shuts the workers down), seeds derived from the iterator's base seed,
``worker_init_fn(worker_id)``, then tasks from its pipe until told to stop, the pipe closes or the
parent process disappears. Each task's batch goes back through shared memory (``_shm``); an
exception goes back as its type and formatted traceback, re-raised by the main process.
"""
from __future__ import annotations

import os
import pickle
import random
import signal
import sys
import traceback
from typing import Any, Callable, List, Optional

import numpy as np

from ..._config import set_num_threads
from ...random import manual_seed
from . import _fetch
from ._shm import SlotWriter

WATCHDOG_SECONDS = 1.0  # how often an idle worker checks that its parent is alive


def generate_state(base_seed: int, worker_id: int) -> List[int]:
    """The 4-word numpy seed PyTorch gives worker ``worker_id`` (its ``_generate_state``: numpy's
    SeedSequence hashing of ``[worker_id, base_seed low, base_seed high, 0]``)."""
    init_a, mult_a, init_b, mult_b = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
    mix_l, mix_r, xshift, mask = 0xCA01F9DD, 0x4973F715, 16, 0xFFFFFFFF
    entropy = [worker_id, base_seed & mask, base_seed >> 32, 0]
    hash_const = init_a

    def hashed(value: int) -> int:
        nonlocal hash_const
        value = (value ^ hash_const) & mask
        hash_const = (hash_const * mult_a) & mask
        value = (value * hash_const) & mask
        return (value ^ (value >> xshift)) & mask

    def mix(x: int, y: int) -> int:
        result = (((mix_l * x) & mask) - ((mix_r * y) & mask)) & mask
        return (result ^ (result >> xshift)) & mask

    pool = [hashed(v) for v in entropy]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashed(pool[src]))
    const_b, state = init_b, []
    for value in pool:
        value = (value ^ const_b) & mask
        const_b = (const_b * mult_b) & mask
        value = (value * const_b) & mask
        state.append((value ^ (value >> xshift)) & mask)
    return state


def seed_worker(base_seed: int, worker_id: int) -> int:
    """Seed Python's ``random``, numpy's legacy global generator and fastconv's generator as
    PyTorch seeds a worker (``base_seed + worker_id``; numpy from ``generate_state``)."""
    seed = base_seed + worker_id
    random.seed(seed)
    manual_seed(seed)
    np.random.seed(generate_state(base_seed, worker_id))
    return seed


class WorkerError:
    """A worker's exception: its type (when it can travel) and its formatted traceback."""

    def __init__(self, worker_id: int, exc: BaseException) -> None:
        self.where = f"in DataLoader worker process {worker_id}"
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        exc_type = type(exc)
        try:
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = RuntimeError
        self.exc_type = exc_type

    def reraise(self):
        """Raise the worker's exception type in this process, its message carrying the traceback."""
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:
            raise KeyError(_KeyErrorMessage(msg))
        try:
            exception = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exception


class _KeyErrorMessage(str):
    """KeyError prints the repr of its argument; this keeps the traceback readable."""

    def __repr__(self) -> str:
        return str(self)


class IterableExhausted:
    """Sent when a worker's IterableDataset has no more batches for this epoch."""


class WorkerConfig:
    """Everything a worker needs (pickled for the spawn start method)."""

    def __init__(self, dataset, is_iterable: bool, auto_collation: bool, collate_fn: Callable, drop_last: bool,
                 base_seed: int, worker_init_fn: Optional[Callable], worker_id: int, num_workers: int) -> None:
        self.dataset, self.is_iterable, self.auto_collation = dataset, is_iterable, auto_collation
        self.collate_fn, self.drop_last, self.base_seed = collate_fn, drop_last, base_seed
        self.worker_init_fn, self.worker_id, self.num_workers = worker_init_fn, worker_id, num_workers


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # runs the finally blocks: the shared segments are unlinked


def worker_loop(conn, config: WorkerConfig, done) -> None:
    """Serve ``(task, epoch, index, freed slots)`` messages until ``None``, EOF, ``done`` being set
    (the main process is shutting down: queued tasks are skipped) or the parent's disappearance."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parent = os.getppid()
    writer = SlotWriter()
    try:
        set_num_threads(1)
        seed = seed_worker(config.base_seed, config.worker_id)
        _fetch._current_worker = _fetch.WorkerInfo(id=config.worker_id, num_workers=config.num_workers, seed=seed,
                                                    dataset=config.dataset)
        init_error = None
        if config.worker_init_fn is not None:
            try:
                config.worker_init_fn(config.worker_id)
            except Exception as exc:
                init_error = WorkerError(config.worker_id, exc)
        fetcher, fetcher_error, epoch = None, None, None
        while True:
            if not conn.poll(WATCHDOG_SECONDS):
                if os.getppid() != parent:
                    return  # the main process is gone
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message is None or done.is_set():
                return
            task, task_epoch, index, freed = message
            writer.release(freed)
            if task_epoch != epoch and init_error is None:  # a new epoch: a new fetcher (re-iterates a stream)
                epoch = task_epoch
                kind = _fetch._IterableFetcher if config.is_iterable else _fetch._MapFetcher
                try:
                    fetcher, fetcher_error = kind(config.dataset, config.auto_collation, config.collate_fn,
                                                  config.drop_last), None
                except Exception as exc:
                    fetcher, fetcher_error = None, WorkerError(config.worker_id, exc)
            if init_error is not None:
                reply: Any = init_error
            elif fetcher is None:
                reply = fetcher_error
            else:
                reply = _serve(fetcher, index, writer, config.worker_id)
            try:
                conn.send((task, task_epoch, reply))
            except (BrokenPipeError, EOFError, OSError):
                return
    except KeyboardInterrupt:
        return
    finally:
        writer.close()
        sys.stdout.flush()


def _serve(fetcher, index, writer: SlotWriter, worker_id: int):
    try:
        batch = fetcher.fetch(index)
    except StopIteration:
        return IterableExhausted()
    except Exception as exc:
        return WorkerError(worker_id, exc)
    try:
        return writer.encode(batch)
    except Exception as exc:
        return WorkerError(worker_id, exc)
