"""The one atomic writer: umask mode, fsync of file and folder, nothing left on failure, stale
temporaries cleaned on the next write or resume, and every writer in the package going through it."""
import ast
import os
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from _subprocess import NEUTRAL_CWD, child_env

import fastconv as fc
from fastconv import _atomic, data, nn, train
from fastconv._atomic import atomic_write, remove_stale_temporaries

PACKAGE = os.path.dirname(os.path.abspath(fc.__file__))


@pytest.fixture
def umask027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_bytes_and_text_with_the_umask_mode(tmp_path, umask027):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"\x00\x01")
    with atomic_write(tmp_path / "b.txt", "w") as f:
        f.write("µ text")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "µ text"
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "b.txt") == umask027
    os.umask(0o077)
    with atomic_write(tmp_path / "a.bin") as f:  # a replaced file takes the mode a new file would get
        f.write(b"2")
    assert mode(tmp_path / "a.bin") == 0o600
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.txt"]


def test_failure_keeps_the_previous_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "m.npz"
    target.write_bytes(b"previous")
    for exc in (OSError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_write(target) as f:
                f.write(b"partial")
                raise exc
        assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.npz"]


def test_fsyncs_the_file_then_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_write(tmp_path / "x") as f:
        f.write(b"1")
    assert synced == ["file", "folder"]


def test_missing_folder_and_symlinks(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        with atomic_write(tmp_path / "missing" / "x") as f:
            f.write(b"1")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "t.npz").write_bytes(b"old")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real" / "t.npz")
    with atomic_write(tmp_path / "link.npz") as f:  # written through, as open(path, "w") does
        f.write(b"new")
    assert (tmp_path / "link.npz").is_symlink() and (tmp_path / "real" / "t.npz").read_bytes() == b"new"


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    host = _atomic._HOST
    names = {
        f".ckpt.npz.{host}-{dead_pid()}-0a1b2c3d.tmp": "removed",      # its writer died (SIGKILL)
        f".ckpt.npz.{host}-{os.getpid()}-0a1b2c3d.tmp": "removed",     # ours, and not being written
        f".ckpt.npz.{host}-{os.getppid()}-0a1b2c3d.tmp": "kept",       # a live process may be writing it
        ".ckpt.npz.otherhost-123-0a1b2c3d.tmp": "kept",                 # another machine's, recent
        ".ckpt.npz.otherhost-456-0a1b2c3d.tmp": "old",                  # another machine's, hours old
        ".ckpt.npz.k2x_9abc.tmp": "kept",                               # older fastconv (mkstemp), recent
        ".ckpt.npz.q8w_7xyz.tmp": "old",                                # older fastconv, hours old
        ".other.npz.k2x_9abc.tmp": "other",                             # another target's
        "ckpt.npz.tmp": "other",
    }
    for name, fate in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if fate in ("old", "other"):
            past = time.time() - 2 * _atomic.STALE_AFTER_SECONDS
            os.utime(tmp_path / name, (past, past))
    with atomic_write(tmp_path / "ckpt.npz") as f:
        f.write(b"new")
    expected = {n for n, fate in names.items() if fate in ("kept", "other")} | {"ckpt.npz"}
    assert set(os.listdir(tmp_path)) == expected
    assert remove_stale_temporaries(tmp_path / "ckpt.npz") == 0


KILLED_WRITER = textwrap.dedent('''
    import sys, time
    import numpy as np
    import fastconv as fc

    real = np.lib.format.write_array

    def slow_write(fp, array, *args, **kwargs):
        real(fp, array, *args, **kwargs)
        if array.size > 1000:
            fp.flush()
            print("writing", flush=True)
            time.sleep(60)  # killed here

    np.lib.format.write_array = slow_write
    fc.save({"w": np.ones(200000, np.float32)}, sys.argv[1])
''')


def test_a_writer_killed_mid_write_leaves_a_temporary_that_the_next_resume_removes(tmp_path):
    """The issue's case: SIGKILL during a checkpoint write left .checkpoint.npz.*.tmp for good."""
    fc.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    opt = fc.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    loader = data.DataLoader(data.TensorDataset(rng.standard_normal((8, 1, 2, 2)).astype(np.float32),
                                                rng.integers(0, 2, 8)), batch_size=4)
    train.fit(model, loader, fc.nn.functional.cross_entropy, opt, 1, checkpoint_dir=str(tmp_path), verbose=False)
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    target = tmp_path / train.CHECKPOINT_NAME
    before = target.read_bytes()
    proc = subprocess.Popen([sys.executable, str(script), str(target)], env=child_env(), cwd=NEUTRAL_CWD,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == "writing", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    orphans = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(orphans) == 1 and (tmp_path / orphans[0]).stat().st_size > 100000
    assert target.read_bytes() == before
    train.fit(model, loader, fc.nn.functional.cross_entropy, opt, 2, checkpoint_dir=str(tmp_path), resume=True,
              verbose=False)
    assert sorted(set(os.listdir(tmp_path)) - {train.PLANS_NAME}) == sorted([train.CHECKPOINT_NAME, "writer.py"])


# ---- every writer in the package -----------------------------------------------------------------

_WRITING_CALLS = {"replace", "rename", "renames", "mkstemp", "NamedTemporaryFile", "save", "savez",
                  "savez_compressed", "savetxt", "tofile", "write_bytes", "write_text", "savefig", "imsave"}


def _open_mode(call: ast.Call):
    args = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    return args[0].value if args and isinstance(args[0], ast.Constant) else "r"


def _writing_calls(tree):
    """Calls that create or replace files, except writes into a file object (``savefig(f, ...)``,
    ``imsave(f, ...)``)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name in ("open", "fdopen") and owner in ("", "os", "io") and any(c in str(_open_mode(node)) for c in "wax+"):
            yield node
        elif name in _WRITING_CALLS and not (name in ("savefig", "imsave") and node.args
                                             and isinstance(node.args[0], ast.Name)):
            if name in ("save", "replace", "rename") and owner not in ("np", "os"):
                continue  # fc.save, dataclasses.replace, str.replace, ...
            yield node


def test_no_writer_bypasses_the_atomic_helper():
    offenders = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py") or name == "_atomic.py":
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            offenders += [f"{os.path.relpath(path, PACKAGE)}:{node.lineno}" for node in _writing_calls(tree)]
    assert offenders == []


def test_the_scan_finds_unsafe_writes():
    unsafe = ast.parse("np.savez(p, a=1)\nopen(p, 'w')\nfig.savefig('x.png')\nos.replace(a, b)\n"
                       "open(p, mode='ab')\nPath(p).write_text('x')")
    safe = ast.parse("open(p)\nopen(p, 'rb')\nfig.savefig(f, format='png')\nfc.save(x, p)\nsave(x, p)")
    assert len(list(_writing_calls(unsafe))) == 6 and list(_writing_calls(safe)) == []


def _writers(tmp_path):
    """(name, target, write) for each file writer of the package."""
    from fastconv import cli
    from fastconv.data import write_idx

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    opt = fc.optim.SGD(model.parameters(), lr=0.1)
    writers = [
        ("fc.save", tmp_path / "m.npz", lambda p: fc.save(model.state_dict(), p)),
        ("save_checkpoint", tmp_path / "c.npz", lambda p: train.save_checkpoint(str(p), model, opt)),
        ("write_idx", tmp_path / "t.idx.gz", lambda p: write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))),
        ("cli json", tmp_path / "metrics.json", lambda p: cli._write_json(str(p), {"a": 1})),
        ("save_plans", tmp_path / "plans.json", lambda p: fc.backends.conv.save_plans(p)),
    ]
    try:
        import matplotlib  # noqa: F401

        from fastconv.viz import save_figure
        from fastconv.viz.plotting import new_figure

        def figure(p):
            fig = new_figure("test", 1, 1)
            fig.subplots().plot([0, 1])
            save_figure(fig, str(p))

        writers.append(("save_figure", tmp_path / "f.png", figure))
    except ImportError:
        pass
    return writers


def test_every_writer_is_atomic_with_the_umask_mode(tmp_path, umask027, monkeypatch):
    for name, target, write in _writers(tmp_path):
        write(target)
        assert mode(target) == umask027, name
        before = target.read_bytes()

        def failing_replace(src, dst):
            raise OSError("simulated failure of the rename")

        monkeypatch.setattr(_atomic.os, "replace", failing_replace)
        with pytest.raises(OSError, match="simulated"):
            write(target)
        monkeypatch.undo()
        assert target.read_bytes() == before, name
        assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], name
