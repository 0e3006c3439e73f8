"""``num_workers > 0``: worker processes fetch and collate batches; the main process hands them out.

Like PyTorch's ``_MultiProcessingDataLoaderIter``: the iterator starts ``num_workers`` processes
(``multiprocessing_context``: None for the platform default, ``'fork'``, ``'spawn'``,
``'forkserver'`` or a context object), keeps ``prefetch_factor`` tasks per worker in flight (tasks go
round-robin to the workers; a new one is sent each time a batch is handed out) and hands batches out
in sampler order (``in_order=False``: as they arrive). Each worker talks to the main process over
its own pipe: tasks out, small messages back; the batch's arrays come through the worker's shared
memory slots (``_shm``), copied out once and the slot handed back with the next task.

Seeds: the iterator draws a base seed from ``generator`` (or fastconv's global generator); worker
``i`` seeds Python's ``random`` and fastconv's generator with ``base_seed + i`` and numpy's legacy
generator with PyTorch's derived state, so a seed and a worker count fix the augmentation.
``persistent_workers`` keeps the workers (and their generators' progress) across epochs.

Shutdown: at the end of an epoch (unless persistent), when the iterator is garbage collected,
when the main process exits, and at once on Ctrl-C or any error raised while waiting: workers are
told to stop, joined, and terminated if they do not exit; their shared segments are unlinked. A
worker that dies is reported with its pid and exit code; ``timeout`` bounds the wait for a batch; a
worker's exception is re-raised here with the worker's traceback in its message. A worker whose
parent disappears (killed) exits by itself within ``WATCHDOG_SECONDS``.
"""
from __future__ import annotations

import atexit
import itertools
import multiprocessing
import time
import weakref
from multiprocessing import connection, resource_tracker
from typing import Dict, List

from ._fetch import _BaseDataLoaderIter
from ._random import draw_seed
from ._shm import SharedBatch, SlotReader
from ._worker import IterableExhausted, WorkerConfig, WorkerError, worker_loop

POLL_SECONDS = 0.5       # how often a waiting main process checks that its workers are alive
JOIN_SECONDS = 5.0       # how long a stopping worker may take before it is terminated
ABORT_SECONDS = 0.1      # the same after an error or Ctrl-C

_live_iterators: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    """At exit, stop every iterator's workers (before multiprocessing terminates daemonic ones, so
    the workers unlink their shared memory)."""
    for it in list(_live_iterators):
        it._shutdown_workers()


def _context(value):
    if value is None:
        return multiprocessing.get_context()
    if isinstance(value, str):
        try:
            return multiprocessing.get_context(value)
        except ValueError:
            raise ValueError(f"DataLoader: multiprocessing_context should specify a valid start method in "
                             f"{multiprocessing.get_all_start_methods()}, but got multiprocessing_context="
                             f"{value!r}") from None
    if not hasattr(value, "Process") or not hasattr(value, "Pipe"):
        raise TypeError(f"DataLoader: multiprocessing_context option should be a valid context object or a string "
                        f"specifying the start method, but got multiprocessing_context={value!r}")
    return value


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """An epoch (or, with ``persistent_workers``, every epoch) served by worker processes."""

    def __init__(self, loader) -> None:
        super().__init__(loader)
        if loader.prefetch_factor is None or loader.prefetch_factor < 1:
            raise ValueError(f"DataLoader: prefetch_factor must be at least 1 with worker processes, "
                             f"got {loader.prefetch_factor}")
        self._num_workers = loader.num_workers
        self._prefetch = int(loader.prefetch_factor)
        self._timeout = float(loader.timeout)
        self._in_order = bool(loader.in_order)
        self._persistent = bool(loader.persistent_workers)
        self._ctx = _context(loader.multiprocessing_context)
        self._base_seed = draw_seed(loader.generator, "DataLoader")
        self._epoch = 0
        self._workers: List = []
        self._conns: List = []
        self._readers: List[SlotReader] = []
        self._shutdown = True
        self._start_workers(loader)
        self._start_epoch()

    # ---- workers ----------------------------------------------------------------------------
    def _start_workers(self, loader) -> None:
        resource_tracker.ensure_running()  # one tracker shared by the workers (fork and spawn)
        self._shutdown = False
        _live_iterators.add(self)
        self._done = self._ctx.Event()  # set at shutdown: workers skip the tasks still queued
        self._freed: List[List[int]] = [[] for _ in range(self._num_workers)]  # slots to hand back
        for worker_id in range(self._num_workers):
            config = WorkerConfig(self._dataset, self._is_iterable, self._auto_collation, self._collate_fn,
                                  self._drop_last, self._base_seed, loader.worker_init_fn, worker_id,
                                  self._num_workers)
            parent_end, child_end = self._ctx.Pipe(duplex=True)
            process = self._ctx.Process(target=worker_loop, args=(child_end, config, self._done), daemon=True,
                                        name=f"DataLoader worker {worker_id}")
            try:
                process.start()
            except BaseException:
                parent_end.close()
                child_end.close()
                self._shutdown_workers()
                raise
            child_end.close()
            self._workers.append(process)
            self._conns.append(parent_end)
            self._readers.append(SlotReader())
        self._worker_ids = {conn: k for k, conn in enumerate(self._conns)}

    @property
    def worker_pids(self) -> List[int]:
        """Process ids of the workers (for monitoring)."""
        return [p.pid for p in self._workers]

    def _shutdown_workers(self, graceful: bool = True) -> None:
        """Stop the workers: ask them (and give them ``JOIN_SECONDS`` to finish a task when
        ``graceful``), then terminate (SIGTERM: they still unlink their memory) and kill."""
        if getattr(self, "_shutdown", True):
            return
        self._shutdown = True
        _live_iterators.discard(self)
        if getattr(self, "_done", None) is not None:
            self._done.set()
        for conn in self._conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + (JOIN_SECONDS if graceful else ABORT_SECONDS)
        for process in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self._workers:
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        for reader, process in zip(self._readers, self._workers):
            reader.close(unlink=process.exitcode not in (0, None))
        for conn in self._conns:
            conn.close()
        self._conns, self._readers = [], []

    def __del__(self) -> None:
        try:
            self._shutdown_workers()
        except Exception:
            pass

    # ---- epochs -------------------------------------------------------------------------------------
    def _reset(self, loader, first_iter: bool = False) -> None:
        super()._reset(loader, first_iter)
        if self._shutdown:  # stopped by an error or Ctrl-C: a persistent loader starts new workers
            self._workers, self._conns, self._readers = [], [], []
            self._start_workers(loader)
        self._start_epoch()

    def _start_epoch(self) -> None:
        self._epoch += 1
        self._send_idx = 0       # next task number
        self._rcvd_idx = 0       # next task number to hand out (in order)
        self._task_worker: Dict[int, int] = {}
        self._ready: Dict[int, object] = {}
        self._outstanding = [0] * self._num_workers
        self._active = [True] * self._num_workers
        self._cycle = itertools.cycle(range(self._num_workers))
        self._sampler_done = False
        for _ in range(self._prefetch * self._num_workers):
            self._put_task()

    def _put_task(self) -> None:
        if self._sampler_done or sum(self._outstanding) >= self._prefetch * self._num_workers:
            return
        for _ in range(self._num_workers):
            worker = next(self._cycle)
            if self._active[worker] and self._outstanding[worker] < self._prefetch:
                break
        else:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            self._sampler_done = True
            return
        freed, self._freed[worker] = self._freed[worker], []
        try:
            self._conns[worker].send((self._send_idx, self._epoch, index, freed))
        except (BrokenPipeError, EOFError, OSError):
            self._check_workers()  # a dead worker is reported as such
            raise
        self._task_worker[self._send_idx] = worker
        self._outstanding[worker] += 1
        self._send_idx += 1

    # ---- receiving ------------------------------------------------------------------------------------
    def _receive(self):
        """The next ``(task, worker, reply)`` of this epoch (older epochs' replies are dropped)."""
        start = time.monotonic()
        while True:
            live = [c for c, p in zip(self._conns, self._workers) if p.is_alive() or c.poll()]
            wait = POLL_SECONDS if self._timeout <= 0 else min(POLL_SECONDS, max(
                0.0, self._timeout - (time.monotonic() - start)))
            ready = connection.wait(live, timeout=wait) if live else []
            for conn in ready:
                worker = self._worker_ids[conn]
                try:
                    task, epoch, reply = conn.recv()
                except (EOFError, OSError):
                    continue  # a dead worker: reported below
                if isinstance(reply, SharedBatch):
                    data = self._readers[worker].decode(reply)
                    if reply.slot >= 0:
                        self._freed[worker].append(reply.slot)
                    reply = _Batch(data)
                if epoch != self._epoch:
                    continue
                return task, worker, reply
            self._check_workers()
            if self._timeout > 0 and time.monotonic() - start >= self._timeout:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")

    def _check_workers(self) -> None:
        dead = [p for p in self._workers if not p.is_alive()]
        if dead:
            details = ", ".join(f"{p.pid} (exit code {p.exitcode})" for p in dead)
            raise RuntimeError(f"DataLoader worker (pid(s) {details}) exited unexpectedly")

    def _next_batch(self):
        if self._shutdown:
            raise StopIteration
        try:
            reply = self._next_reply()
        except StopIteration:
            if not self._persistent:
                self._shutdown_workers()
            raise
        except BaseException:
            self._shutdown_workers(graceful=False)  # Ctrl-C, a timeout, a dead worker: stop everything now
            raise
        if isinstance(reply, WorkerError):
            reply.reraise()  # the iterator stays usable, as PyTorch's
        return reply.data

    def _next_reply(self):
        while True:
            if self._in_order:
                while self._rcvd_idx < self._send_idx and self._rcvd_idx not in self._task_worker \
                        and self._rcvd_idx not in self._ready:
                    self._rcvd_idx += 1  # a task of an exhausted stream
                if self._rcvd_idx in self._ready:
                    reply = self._ready.pop(self._rcvd_idx)
                    self._rcvd_idx += 1
                    return self._hand_out(reply)
            if not any(self._outstanding):
                raise StopIteration
            task, worker, reply = self._receive()
            self._outstanding[worker] -= 1
            del self._task_worker[task]
            if isinstance(reply, IterableExhausted):
                self._active[worker] = False
                self._put_task()
                continue
            if self._in_order and task != self._rcvd_idx:
                self._ready[task] = reply
                continue
            if self._in_order:
                self._rcvd_idx += 1
            return self._hand_out(reply)

    def _hand_out(self, reply):
        self._put_task()
        return reply


class _Batch:
    __slots__ = ("data",)

    def __init__(self, data) -> None:
        self.data = data
