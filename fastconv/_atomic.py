"""``atomic_write``: the one way fastconv writes a file, so a crash never leaves half a file.

The content goes to a temporary file in the target's folder (same file system, so the rename is
atomic), which is flushed and fsynced, renamed over the target with ``os.replace``, and the folder
is fsynced so the rename itself survives a power loss. An interrupted write (exception, Ctrl-C)
removes its temporary file and leaves the previous target untouched.

The file gets the mode ``open()`` would give it (0o666 minus the umask): the temporary file is
created with ``os.open(..., 0o666)``, so the kernel applies the umask (and any default ACL).

Temporaries are named ``.<name>.<host>-<pid>-<token>.tmp``. A process killed mid-write (SIGKILL,
power loss) leaves its temporary behind; every later write of the same target, and every resume
of a training run, removes the temporaries of that target whose writer is gone: same host and a
process that no longer exists (or this process, when the write is not in progress), or, for
other hosts and for temporaries named by older fastconv versions, older than an hour.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import threading
import time
from typing import IO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

STALE_AFTER_SECONDS = 3600.0  # temporaries whose writer cannot be checked count as stale after this
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_in_flight: set = set()  # temporaries this process is writing right now
_in_flight_lock = threading.Lock()


def _temporary_name(base: str) -> str:
    return f".{base}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a pid this platform cannot check): assume alive
    return True


def _is_stale(folder: str, name: str, tag: str) -> bool:
    """Whether the temporary ``name`` (middle part ``tag``) belongs to no running write."""
    parts = tag.split("-")
    if len(parts) == 3 and parts[0] == _HOST and parts[1].isdigit():
        pid = int(parts[1])
        if pid == os.getpid():
            with _in_flight_lock:
                return os.path.join(folder, name) not in _in_flight
        return not _process_exists(pid)
    try:  # another host's write, or an older fastconv's (mkstemp names): judged by age
        return time.time() - os.lstat(os.path.join(folder, name)).st_mtime > STALE_AFTER_SECONDS
    except OSError:
        return False


def remove_stale_temporaries(path: PathLike) -> int:
    """Delete the leftover temporaries of ``path`` (see the module docstring); returns how many."""
    target = _resolved(os.fspath(path))
    folder, base = os.path.split(target)
    prefix = f".{base}."
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")) or len(name) <= len(prefix) + 4:
            continue
        if _is_stale(folder, name, name[len(prefix):-4]):
            try:
                os.unlink(os.path.join(folder, name))
                removed += 1
            except OSError:
                pass  # cleaned by another process first, or not ours to remove (sticky folder)
    return removed


def _resolved(path: str) -> str:
    """The absolute target; a symlink is written through (as ``open(path, 'w')`` would)."""
    return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically and durably.

    ``mode`` is ``"wb"`` (binary) or ``"w"`` (text in ``encoding``). The target's folder must
    exist (FileNotFoundError naming it otherwise). If the ``with`` body raises (or is interrupted),
    the temporary file is removed and ``path`` keeps its previous content.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: expected mode 'wb' or 'w', got {mode!r}")
    target = _resolved(os.fspath(path))
    folder, base = os.path.split(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {os.fspath(path)}: folder {folder} does not exist")
    remove_stale_temporaries(target)
    tmp = os.path.join(folder, _temporary_name(base))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    with _in_flight_lock:
        _in_flight.add(tmp)
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
        try:
            f = os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {}))
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(tmp)
    fsync_folder(folder)


__all__ = ["atomic_write", "remove_stale_temporaries", "fsync_folder", "STALE_AFTER_SECONDS"]
