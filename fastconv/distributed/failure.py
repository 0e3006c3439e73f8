"""Failure handling: a rank that raises reports its traceback and aborts the whole MPI job.

Without it one failing rank exits while the others wait forever in the next collective. MPI
has no way to deliver an exception to the other ranks; ``MPI_Abort`` is the standard remedy
(ChainerMN's global except hook and ``python -m mpi4py`` do the same).
"""
from __future__ import annotations

import contextlib
import sys
import time
import traceback
from typing import Any, Callable, Iterator

from . import _comm

# seconds between reporting a failure and MPI_Abort, so the launcher forwards the report
ABORT_GRACE_SECONDS = 0.2


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def report_and_abort(exc: BaseException) -> None:
    """Print ``exc``'s traceback with every line prefixed by ``[rank N]``, then abort all ranks."""
    comm = _comm.get_comm()
    r = comm.Get_rank()
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    prefixed = "".join(f"[rank {r}] {line}\n" for line in text.rstrip("\n").split("\n"))
    sys.stdout.flush()
    # one write, then a moment for the launcher to forward it: MPI_Abort kills the ranks at once
    # and mpiexec may drop output still in flight (seen: the last line of a two-write report lost)
    sys.stderr.write(prefixed + f"[rank {r}] aborting all {comm.Get_size()} ranks (MPI_Abort)\n")
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_SECONDS)
    comm.Abort(_exit_code(exc) or 1)


@contextlib.contextmanager
def abort_on_error() -> Iterator[None]:
    """Run the ``with`` body; if it raises in a multi-rank job, report and ``MPI_Abort`` every rank.

    ``SystemExit(0)`` passes through. In world size 1 the exception propagates unchanged.
    """
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - every escaping exception must stop the job
        if _exit_code(exc) == 0 or _comm.world_size() == 1:
            raise
        report_and_abort(exc)
        raise  # not reached: Abort does not return


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` inside ``abort_on_error()``; returns its result."""
    if not callable(fn):
        raise TypeError(f"run_guarded: expected a callable, got {type(fn).__name__}")
    with abort_on_error():
        return fn(*args, **kwargs)
