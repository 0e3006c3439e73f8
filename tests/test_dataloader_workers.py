"""DataLoader worker processes: batches and order, fork and spawn, shared-memory transport, seeds as
PyTorch derives them, reproducible augmentation, one kernel thread per worker, prefetching,
persistent workers, errors with the worker's traceback, timeout, and no orphan processes (garbage
collection, errors, Ctrl-C, a killed worker, a killed main process)."""
import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections import namedtuple

import numpy as np
import pytest

import fastconv as fc
import fastconv.utils.data as D
from fastconv.utils.data import _shm
from fastconv.utils.data._worker import generate_state

import _loader_datasets as L
from _subprocess import NEUTRAL_CWD, child_env

TESTS = os.path.dirname(os.path.abspath(__file__))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pids, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _segments():
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} if os.path.isdir("/dev/shm") else set()


@pytest.fixture(autouse=True)
def no_leaked_segments():
    before = _segments()
    yield
    gc.collect()
    assert _segments() - before == set()


def _rows(loader):
    return np.concatenate([b.numpy() for b in loader])


def _probe(loader):
    """Rows [i, worker, threads, numpy draw, python draw, fastconv draw] and the worker seeds (int64)."""
    batches = list(loader)
    return np.concatenate([r.numpy() for r, _ in batches]), np.concatenate([s.numpy() for _, s in batches])


# ---- batches ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_batches_equal_single_process_with_fork_and_spawn(context):
    x = fc.tensor(np.arange(60, dtype=np.float32).reshape(20, 3))
    ds = D.TensorDataset(x, fc.tensor(np.arange(20)))
    ref = [(a.numpy(), b.numpy()) for a, b in D.DataLoader(ds, batch_size=3)]
    probe = D.DataLoader(L.Probe(10), batch_size=3, num_workers=2, multiprocessing_context=context)
    rows, _ = _probe(probe)
    assert rows[:, 0].tolist() == list(range(10)) and set(rows[:, 2]) == {1.0}  # one kernel thread each
    assert rows[:, 1].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1]
    if context == "spawn":
        return  # (starting spawned workers is slow: one loader is enough)
    loader = D.DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context=context)
    got = [(a.numpy(), b.numpy()) for a, b in loader]
    assert len(got) == len(ref) == len(loader)
    for (a, b), (c, d) in zip(got, ref):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_structured_samples_keep_their_types():
    ours = list(D.DataLoader(L.Structured(), batch_size=3, num_workers=2))
    ref = list(D.DataLoader(L.Structured(), batch_size=3))
    for a, b in zip(ours, ref):
        assert a.keys() == b.keys() and a["name"] == b["name"]
        assert isinstance(a["image"], fc.Tensor) and a["image"].dtype == np.float32
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
        assert isinstance(a["meta"], list) and a["meta"][1].dtype == np.int16
        np.testing.assert_array_equal(a["meta"][0].numpy(), b["meta"][0].numpy())
    unbatched = [s for s in D.DataLoader(L.Structured(), batch_size=None, num_workers=2)]
    assert [s["name"] for s in unbatched] == [f"item{i}" for i in range(7)]


def test_out_of_order_hands_out_every_batch():
    ds = D.TensorDataset(fc.tensor(np.arange(30)))
    got = sorted(np.concatenate([b[0].numpy() for b in D.DataLoader(ds, batch_size=4, num_workers=3,
                                                                        in_order=False)]).tolist())
    assert got == list(range(30))


def test_iterable_dataset_is_split_among_workers_and_restarts_every_epoch():
    loader = D.DataLoader(L.Stream(0, 23), batch_size=4, num_workers=3, persistent_workers=True)
    for _ in range(2):
        assert sorted(_rows(loader).tolist()) == list(range(23))
    dropped = D.DataLoader(L.Stream(0, 23), batch_size=4, num_workers=3, drop_last=True)
    assert sorted(_rows(dropped).tolist()) == list(range(20))  # workers get 0-7, 8-15, 16-22: 20-22 dropped


# ---- the shared-memory transport ----------------------------------------------------------------------------
Pair = namedtuple("Pair", "left right")


def test_shared_memory_round_trip_and_small_messages():
    big = np.random.default_rng(0).random((256, 1024)).astype(np.float32)  # 1 MiB
    batch = {"x": fc.tensor(big), "pair": Pair(np.arange(5)[::2], "text"), "list": [np.zeros((0, 3)), 7, None],
             "objects": np.array([1, "a"], dtype=object), "t": (np.uint8(3), fc.tensor(np.ones(2, np.int64)))}
    writer, reader = _shm.SlotWriter(), _shm.SlotReader()
    try:
        message = writer.encode(batch)
        assert len(pickle.dumps(message)) < 2000  # the arrays are not in the message
        out = reader.decode(pickle.loads(pickle.dumps(message)))
        np.testing.assert_array_equal(out["x"].numpy(), big)
        assert isinstance(out["x"], fc.Tensor) and out["x"].numpy().flags.owndata
        assert isinstance(out["pair"], Pair) and out["pair"].right == "text"
        np.testing.assert_array_equal(out["pair"].left, [0, 2, 4])
        assert out["list"][0].shape == (0, 3) and out["list"][1:] == [7, None]
        assert out["objects"].tolist() == [1, "a"] and out["t"][1].numpy().tolist() == [1, 1]
        assert writer.busy == [True]
        second = writer.encode({"x": big[:10]})  # slot 0 is busy: a second slot
        assert second.slot == 1
        writer.release([0])
        grown = writer.encode(np.zeros(2 * big.size, np.float32))  # slot 0 is free but too small: grown
        assert grown.slot == 0 and grown.name != message.name
        assert reader.decode(grown).shape == (2 * big.size,)
    finally:
        reader.close(unlink=False)
        writer.close()


# ---- seeds, augmentation --------------------------------------------------------------------------------------
def test_worker_seeds_are_pytorchs():
    generator = np.random.default_rng(42)
    base = int(np.random.default_rng(42).integers(2 ** 63))  # the iterator's one draw
    rows, seeds = _probe(D.DataLoader(L.Probe(6), batch_size=2, num_workers=2, generator=generator))
    for worker in (0, 1):
        mine = rows[rows[:, 1] == worker]
        assert set(seeds[rows[:, 1] == worker].tolist()) == {base + worker}
        np.random.seed(generate_state(base, worker))
        expect_np = [np.random.random() for _ in range(len(mine))]
        import random
        random.seed(base + worker)
        expect_py = [random.random() for _ in range(len(mine))]
        expect_fc = np.random.default_rng(base + worker).random(len(mine))
        np.testing.assert_array_equal(mine[:, 3], expect_np)
        np.testing.assert_array_equal(mine[:, 4], expect_py)
        np.testing.assert_array_equal(mine[:, 5], expect_fc)


def test_generate_state_matches_pytorch(torch):
    from torch.utils.data._utils.worker import _generate_state
    rng = np.random.default_rng(0)
    for _ in range(50):
        base, worker = int(rng.integers(2 ** 63)), int(rng.integers(64))
        assert generate_state(base, worker) == _generate_state(base, worker)


def _augmented_cifar(tmp_path):
    import fastconv.vision.transforms as T
    from fastconv.vision import datasets
    pytest.importorskip("PIL")
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([rng.integers(0, 10, (8, 1)), rng.integers(0, 256, (8, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(f"c{k}" for k in range(10)))
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    return datasets.CIFAR10(tmp_path, transform=transform)


def test_augmentation_is_reproducible_for_a_seed_and_worker_count(tmp_path):
    ds = _augmented_cifar(tmp_path)

    def epoch(seed, workers):
        fc.manual_seed(seed)
        loader = D.DataLoader(ds, batch_size=5, shuffle=True, num_workers=workers)
        return [(x.numpy(), y.numpy()) for x, y in loader]

    a, b, c = epoch(1, 2), epoch(1, 2), epoch(2, 2)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a, c))
    # worker w draws from fastconv's generator seeded base_seed + w; batch 0 is worker 0's first batch
    fc.manual_seed(5)
    first = next(iter(D.DataLoader(ds, batch_size=5, num_workers=2)))[0].numpy()
    fc.manual_seed(int(np.random.default_rng(5).integers(2 ** 63)))  # the iterator's base seed, worker 0
    np.testing.assert_array_equal(first, np.stack([ds[i][0].numpy() for i in range(5)]))


# ---- prefetching and persistent workers -------------------------------------------------------------------------
def test_prefetch_factor_bounds_tasks_in_flight():
    ds = D.TensorDataset(fc.tensor(np.arange(100)))
    for workers, prefetch in ((1, 1), (2, 3)):
        it = iter(D.DataLoader(ds, batch_size=2, num_workers=workers, prefetch_factor=prefetch))
        assert sum(it._outstanding) == workers * prefetch and max(it._outstanding) == prefetch
        next(it)
        assert sum(it._outstanding) == workers * prefetch
        del it
    with pytest.raises(ValueError, match="prefetch_factor must be at least 1"):
        iter(D.DataLoader(ds, num_workers=1, prefetch_factor=0))


def test_persistent_workers_survive_epochs_and_continue_their_streams():
    loader = D.DataLoader(L.Probe(6), batch_size=2, num_workers=2, persistent_workers=True)
    epochs = [_probe(loader) for _ in range(3)]
    pids = loader._iterator.worker_pids
    assert all(_alive(p) for p in pids)
    assert len({tuple(seeds) for _, seeds in epochs}) == 1              # the same seeds...
    assert len({tuple(rows[:, 5]) for rows, _ in epochs}) == 3           # ...but the streams go on
    it = iter(loader)
    next(it)  # break off mid-epoch: the next epoch still starts from the beginning
    assert _probe(loader)[0][:, 0].tolist() == list(range(6))
    del loader, it
    gc.collect()
    assert _wait_dead(pids)


# ---- errors -----------------------------------------------------------------------------------------------------
def test_worker_exception_is_reraised_with_its_traceback():
    loader = D.DataLoader(L.Failing(8, bad=5), batch_size=2, num_workers=2)
    it = iter(loader)
    pids = it.worker_pids
    assert [next(it).numpy().tolist() for _ in range(2)] == [[0, 1], [2, 3]]
    with pytest.raises(ValueError) as info:
        next(it)
    message = str(info.value)
    assert "Caught ValueError in DataLoader worker process 0" in message
    assert "sample 5 is broken on purpose" in message and "_loader_datasets.py" in message
    assert "in __getitem__" in message
    assert next(it).numpy().tolist() == [6, 7]  # the iterator goes on, as PyTorch's
    del it, info  # (the traceback's frames hold the iterator too)
    gc.collect()
    assert _wait_dead(pids)
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process"):
        list(D.DataLoader(L.Failing(4, bad=-1, key=2), batch_size=1, num_workers=1))
    with pytest.raises(RuntimeError, match="Caught MultiArgError"):
        list(D.DataLoader(L.FailingOddly(), batch_size=1, num_workers=1))


def test_worker_init_fn_runs_in_each_worker():
    rows = _rows(D.DataLoader(L.InitProbe(), batch_size=2, num_workers=2, worker_init_fn=L.init_marks_worker))
    assert rows.tolist() == [7, 7, 17, 17, 7, 7]
    assert "FASTCONV_TEST_INIT" not in os.environ

    def broken(worker_id):
        raise OSError("no init for you")
    with pytest.raises(OSError, match="no init for you"):
        list(D.DataLoader(L.InitProbe(), batch_size=2, num_workers=1, worker_init_fn=broken))


def test_timeout_and_dead_workers_stop_everything():
    it = iter(D.DataLoader(L.Slow(20, delay=30.0), batch_size=1, num_workers=1, timeout=0.3))
    pids = it.worker_pids
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.3 seconds"):
        next(it)
    assert time.monotonic() - start < 15.0  # neither the 30 s sample nor a graceful wait for it
    assert _wait_dead(pids, 8)
    it = iter(D.DataLoader(L.Slow(20, delay=0.05), batch_size=1, num_workers=2))
    next(it)
    victim = it.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=rf"DataLoader worker \(pid\(s\) {victim} \(exit code -9\)\) exited unexpectedly"):
        for _ in range(20):
            next(it)
    assert _wait_dead(it.worker_pids, 8)


def test_bad_multiprocessing_context():
    ds = D.TensorDataset(fc.tensor(np.arange(4)))
    with pytest.raises(ValueError, match="valid start method"):
        iter(D.DataLoader(ds, num_workers=1, multiprocessing_context="bogus"))
    with pytest.raises(TypeError, match="multiprocessing_context"):
        iter(D.DataLoader(ds, num_workers=1, multiprocessing_context=3))


# ---- no orphans ---------------------------------------------------------------------------------------------------
def test_workers_stop_after_an_epoch_and_on_garbage_collection():
    loader = D.DataLoader(L.Pids(), batch_size=2, num_workers=2)
    it = iter(loader)
    pids = it.worker_pids
    seen = {int(v) for b in it for v in b.numpy()}
    assert seen == set(pids) and _wait_dead(pids, 8)  # an epoch's end stops them
    it = iter(loader)
    pids = it.worker_pids
    next(it)
    del it
    gc.collect()
    assert _wait_dead(pids, 8)

    def user_code_fails():
        for _ in loader:
            raise ArithmeticError("the training step failed")
    with pytest.raises(ArithmeticError):
        user_code_fails()
    gc.collect()
    assert not [p for p in pids if _alive(p)]


def test_shutdown_skips_the_tasks_still_queued(tmp_path):
    it = iter(D.DataLoader(L.Logged(tmp_path, delay=0.3), batch_size=1, num_workers=1, prefetch_factor=6))
    pids = it.worker_pids
    next(it)
    del it
    gc.collect()
    assert _wait_dead(pids, 8)
    assert len(os.listdir(tmp_path)) <= 3  # the first batch, the one in flight (and a race); not all 6


def _run(script: str, **kwargs):
    """A child Python running ``script`` with the test process's fastconv (installed or built in
    place, never a checkout's uncompiled sources) and the tests' helper modules importable."""
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join((env["PYTHONPATH"], TESTS))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=NEUTRAL_CWD,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_ctrl_c_stops_the_workers_at_once():
    proc = _run("""
        import os, signal, time, threading
        import fastconv.utils.data as D
        import _loader_datasets as L
        # Ctrl-C as in a terminal, even when the test run inherited SIGINT ignored (a job started
        # in the background by a non-interactive shell), where Python would not raise KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        it = iter(D.DataLoader(L.Slow(50, delay=0.3), batch_size=1, num_workers=2))
        print(*it.worker_pids, flush=True)
        threading.Timer(0.8, lambda: os.killpg(os.getpgid(0), signal.SIGINT)).start()  # Ctrl-C: the whole group
        try:
            for _ in it:
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        alive = []  # the iterator is still referenced here, yet its workers must be gone
        for pid in it.worker_pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        print("alive", alive, flush=True)
    """, start_new_session=True)
    out, err = proc.communicate(timeout=60)
    assert "interrupted" in out and "alive []" in out, (out, err)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_workers_exit_when_the_main_process_is_killed():
    proc = _run("""
        import time
        import fastconv.utils.data as D
        import _loader_datasets as L
        it = iter(D.DataLoader(L.Slow(50, delay=0.1), batch_size=1, num_workers=2, multiprocessing_context="spawn"))
        next(it)
        print(*it.worker_pids, flush=True)
        time.sleep(60)
    """)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    proc.kill()
    proc.wait(10)
    assert _wait_dead(pids, 10)


def test_fork_after_parallel_kernels_runs_kernels_in_workers():
    """The main process runs OpenMP kernels on 2 threads, then forks workers that run kernels too."""
    proc = _run("""
        import numpy as np
        import fastconv as fc
        import fastconv.utils.data as D
        import _loader_datasets as L
        fc.set_num_threads(2)
        x = fc.randn(8, 16, 32, 32)
        for _ in range(3):
            fc.nn.functional.conv2d(x, fc.randn(16, 16, 3, 3), padding=1)
        fork = np.concatenate([b.numpy() for b in D.DataLoader(L.KernelWork(), batch_size=2, num_workers=2,
                                                                 multiprocessing_context="fork")])
        fc.manual_seed(0)
        print(len(fork), fc.get_num_threads())
    """)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.split() == ["6", "2"]
