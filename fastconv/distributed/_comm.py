"""The MPI environment: launch detection, lazy mpi4py import, rank/size, and small collectives.

Whether this process was started by an MPI launcher (mpiexec, mpirun, srun) is read from the
environment variables launchers set, *before* mpi4py is imported. A process that was not
launched that way is world size 1 and never imports mpi4py, so fastconv's core stays free of it.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

# Set by the process managers of MPICH/Intel MPI (Hydra, PMI-1/2), Open MPI, PMIx, MVAPICH.
LAUNCH_VARIABLES = (
    "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK", "MV2_COMM_WORLD_SIZE",
)

INSTALL_HINT = 'pip install "fastconv[mpi]"'

_comm = None          # mpi4py COMM_WORLD once initialized under a launcher
_initialized = False


def launched_under_mpi() -> bool:
    """True when an MPI launcher started this process (judged from its environment variables)."""
    return any(os.environ.get(name) for name in LAUNCH_VARIABLES)


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        found = next(name for name in LAUNCH_VARIABLES if os.environ.get(name))
        raise ImportError(
            f"fastconv.distributed: this process was started by an MPI launcher ({found} is set) but "
            f"mpi4py cannot be imported ({exc}); install it with: {INSTALL_HINT}") from exc
    return MPI


def init() -> int:
    """Join the MPI job this process was launched in and return the world size.

    Without an MPI launcher this is world size 1 and mpi4py is not imported. Calling it again
    is harmless; ``rank()``/``world_size()`` call it on first use.
    """
    global _comm, _initialized
    if not _initialized:
        if launched_under_mpi():
            _comm = _import_mpi().COMM_WORLD
        _initialized = True
    return 1 if _comm is None else _comm.Get_size()


def get_comm():
    """The mpi4py communicator of the job, or None in world size 1 without MPI."""
    init()
    return _comm


def mpi():
    """The ``mpi4py.MPI`` module (only valid when ``get_comm()`` is not None)."""
    from mpi4py import MPI

    return MPI


def world_size() -> int:
    """Number of processes in the job (1 without MPI)."""
    return init()


def rank() -> int:
    """This process's rank, 0 .. world_size()-1 (0 without MPI)."""
    comm = get_comm()
    return 0 if comm is None else comm.Get_rank()


def is_main() -> bool:
    """True on rank 0: the process that prints, logs and writes checkpoints."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank has reached this call (no-op in world size 1)."""
    comm = get_comm()
    if comm is not None and comm.Get_size() > 1:
        comm.Barrier()


def _check_array(fn: str, array) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{fn}: expected a numpy ndarray, got {type(array).__name__}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{fn}: expected a C-contiguous writeable array, got one with flags "
                         f"c_contiguous={array.flags.c_contiguous}, writeable={array.flags.writeable}")
    return array


def broadcast(array: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``array`` in place with rank ``root``'s values; returns it. Shapes must agree."""
    _check_array("broadcast", array)
    comm = get_comm()
    if comm is not None and comm.Get_size() > 1:
        _check_root("broadcast", root, comm.Get_size())
        comm.Bcast(array, root=root)
    return array


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank ``root``'s picklable Python object, returned on every rank (e.g. a config dict)."""
    comm = get_comm()
    if comm is None or comm.Get_size() == 1:
        return obj
    _check_root("broadcast_object", root, comm.Get_size())
    return comm.bcast(obj, root=root)


_OPS = ("sum", "mean", "max", "min")


def all_reduce(array: np.ndarray, op: str = "sum") -> np.ndarray:
    """Reduce ``array`` over all ranks in place ('sum', 'mean', 'max' or 'min'); returns it.

    Used for metrics (e.g. summing per-rank correct counts) and buffer averaging.
    """
    _check_array("all_reduce", array)
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    if op == "mean" and array.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='mean' needs a float array, got dtype {array.dtype}")
    comm = get_comm()
    if comm is None or comm.Get_size() == 1:
        return array
    MPI = mpi()
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    comm.Allreduce(MPI.IN_PLACE, array, op=mpi_op)
    if op == "mean":
        array /= comm.Get_size()
    return array


def all_gather_object(obj: Any) -> list:
    """Every rank's picklable object, in rank order (``[obj]`` in world size 1)."""
    comm = get_comm()
    if comm is None or comm.Get_size() == 1:
        return [obj]
    return comm.allgather(obj)


def _check_root(fn: str, root: int, size: int) -> None:
    if not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"{fn}: root must be a rank in [0, {size}), got {root!r}")


def _reset() -> Optional[object]:
    """Forget the cached communicator (tests that fake a launcher environment use this)."""
    global _comm, _initialized
    old, _comm, _initialized = _comm, None, False
    return old
