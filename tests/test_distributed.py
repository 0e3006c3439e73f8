"""fastconv.distributed: world size 1 in-process, and real 2-rank MPI jobs launched with mpiexec."""
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
from _subprocess import child_env, run
import pytest

import fastconv as fc
import fastconv.distributed as dist
from fastconv import nn
from fastconv.distributed import _comm

SCRIPTS = os.path.join(os.path.dirname(__file__), "mpi_scripts")
TIMEOUT = 120  # seconds; a hung job fails the test instead of hanging the suite


def _clean_env() -> dict:
    """Environment for child processes: no launcher variables, one thread, this fastconv importable."""
    base = {k: v for k, v in os.environ.items() if k not in _comm.LAUNCH_VARIABLES}
    return child_env(base, OMP_NUM_THREADS="1")


def _mpiexec():
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=os.pathsep.join([here, os.environ.get("PATH", "")]))


needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
    reason='needs mpi4py and mpiexec: pip install "fastconv[mpi]"')


def _run(args, ranks=None):
    cmd = [sys.executable] + args
    if ranks is not None:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    return run(cmd, env=_clean_env(), timeout=TIMEOUT)


@pytest.fixture
def no_launcher(monkeypatch):
    """This process as a plain, non-MPI process (whatever launched pytest)."""
    for name in _comm.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    old = _comm._reset()
    yield
    _comm._reset()
    _comm._comm = old
    _comm._initialized = old is not None


# ---- world size 1 -------------------------------------------------------------------------------

def test_single_process_is_world_size_one(no_launcher):
    assert dist.init() == 1
    assert (dist.world_size(), dist.rank(), dist.is_main()) == (1, 0, True)
    assert dist.get_comm() is None
    dist.barrier()
    a = np.array([1.0, 2.0])
    assert dist.broadcast(a) is a and a.tolist() == [1.0, 2.0]
    assert dist.all_reduce(a, op="mean").tolist() == [1.0, 2.0]
    assert dist.broadcast_object({"k": 1}) == {"k": 1}
    assert dist.all_gather_object("x") == ["x"]


def test_ddp_world_size_one_is_a_pass_through(no_launcher):
    fc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    ddp = dist.DistributedDataParallel(model)
    assert all(p._post_hooks is None for p in model.parameters())  # nothing hooked
    assert list(ddp.state_dict()) == list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [id(p) for p in ddp.parameters()] == [id(p) for p in model.parameters()]
    x = fc.randn(5, 4)
    np.testing.assert_array_equal(ddp(x).numpy(), model(x).numpy())
    ddp(x).sum().backward()
    g = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(g[n], p.grad.numpy())
    ddp.sync_buffers()  # no-op
    ddp.load_state_dict(model.state_dict())
    assert ddp.eval() is ddp and not model.training


def test_no_mpi4py_import_without_launcher():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import fastconv as fc, fastconv.distributed as dist\n"
        "from fastconv.train import _is_main_process\n"
        "assert dist.init() == 1 and dist.is_main() and _is_main_process()\n"
        "m = dist.DistributedDataParallel(fc.nn.Linear(2, 2))\n"
        "s = dist.DistributedSampler(list(range(5)))\n"
        "assert list(s) and dist.run_guarded(lambda: 7) == 7\n"
        "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n"
    )
    proc = _run(["-c", code])
    assert proc.returncode == 0, proc.stderr


def test_launcher_without_mpi4py_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['mpi4py'] = None  # as if not installed\n"
        "import fastconv.distributed as dist\n"
        "try:\n"
        "    dist.init()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    env = _clean_env()
    env.update(PMI_RANK="0", PMI_SIZE="2")
    proc = run([sys.executable, "-c", code], env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "fastconv[mpi]"' in proc.stdout and "PMI_RANK" in proc.stdout


def test_run_guarded_single_process_reraises(no_launcher):
    assert dist.run_guarded(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError, match="original"):
        dist.run_guarded(lambda: {}["original"])
    with pytest.raises(TypeError, match="run_guarded: expected a callable"):
        dist.run_guarded(42)


# ---- DistributedDataParallel construction ------------------------------------------------------

def test_ddp_rejects_bad_arguments(no_launcher):
    with pytest.raises(TypeError, match="DistributedDataParallel: expected a fastconv.nn.Module.*list"):
        dist.DistributedDataParallel([1, 2])
    for cap in (0, -1.0, "25", True):
        with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number"):
            dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=cap)
    with pytest.raises(TypeError, match="SyncBuffersCallback: expected a DistributedDataParallel"):
        dist.SyncBuffersCallback(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="SyncBuffersCallback: fit's model is a Linear"):
        dist.SyncBuffersCallback().on_epoch_end(0, {}, nn.Linear(2, 2))


def test_buckets_follow_reverse_registration_order_and_cap(no_launcher):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4).double(), nn.Linear(4, 4))
    model[3].requires_grad_(False)  # frozen: not reduced
    # float32 Linear(4, 4): weight 64 bytes, bias 16; float64: 128 and 32. A cap of 80 bytes holds
    # one float32 layer; dtypes never share a bucket.
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=80 / 2 ** 20)
    assert ddp.bucket_assignment() == [["2.bias"], ["2.weight"], ["1.bias", "1.weight"], ["0.bias", "0.weight"]]
    big = dist.DistributedDataParallel(model)
    assert big.bucket_assignment() == [["2.bias", "2.weight"], ["1.bias", "1.weight", "0.bias", "0.weight"]]


# ---- DistributedSampler --------------------------------------------------------------------------

@pytest.mark.parametrize("n,p", [(10, 3), (12, 4), (7, 2), (2, 3)])
def test_sampler_shards_are_equal_disjoint_and_cover(n, p):
    shards = [dist.DistributedSampler(range(n), num_replicas=p, rank=r, seed=5) for r in range(p)]
    lists = [list(s) for s in shards]
    size = -(-n // p)
    assert all(len(s) == size and len(l) == size for s, l in zip(shards, lists))
    flat = sum(lists, [])
    assert set(flat) == set(range(n))                    # covers the data
    assert len(flat) - len(set(flat)) == size * p - n    # only the padding repeats


@pytest.mark.parametrize("n,p", [(10, 3), (7, 2), (12, 4)])
def test_sampler_drop_last_is_disjoint(n, p):
    lists = [list(dist.DistributedSampler(range(n), p, r, drop_last=True)) for r in range(p)]
    flat = sum(lists, [])
    assert [len(l) for l in lists] == [n // p] * p
    assert len(set(flat)) == len(flat) == (n // p) * p


def test_sampler_reshuffles_per_epoch_identically_on_all_ranks():
    a = dist.DistributedSampler(range(100), 2, 0, seed=1)
    b = dist.DistributedSampler(range(100), 2, 1, seed=1)
    first = list(a)
    assert first == list(a) and first != list(range(0, 100, 2))
    a.set_epoch(1)
    b.set_epoch(1)
    second = list(a)
    assert second != first
    assert not set(second) & set(b)                      # still disjoint in the new epoch
    unshuffled = dist.DistributedSampler(range(6), 2, 1, shuffle=False)
    assert list(unshuffled) == [1, 3, 5]
    restored = dist.DistributedSampler(range(100), 2, 0, seed=9)
    restored.load_state_dict(a.state_dict())
    assert list(restored) == second


def test_sampler_drives_the_data_loader():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    data = fc.data.TensorDataset(x, np.arange(10))
    sampler = dist.DistributedSampler(data, num_replicas=2, rank=1, seed=4)
    loader = fc.data.DataLoader(data, batch_size=3, sampler=sampler)
    loader.set_epoch(2)
    labels = np.concatenate([y for _, y in loader])
    sampler.set_epoch(2)
    assert labels.tolist() == list(sampler) and len(loader) == 2


def test_sampler_rejects_bad_arguments():
    with pytest.raises(TypeError, match="DistributedSampler: dataset must have a length"):
        dist.DistributedSampler(iter([1, 2]), 2, 0)
    with pytest.raises(ValueError, match=r"rank must be < num_replicas \(2\), got 2"):
        dist.DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be >= 1, got 0"):
        dist.DistributedSampler(range(4), 0, 0)
    with pytest.raises(TypeError, match="seed must be an int"):
        dist.DistributedSampler(range(4), 2, 0, seed=1.5)
    with pytest.raises(ValueError, match=r"drop_last=True needs at least num_replicas \(3\) samples, dataset has 2"):
        dist.DistributedSampler(range(2), 3, 0, drop_last=True)


def test_all_reduce_rejects_bad_arguments():
    with pytest.raises(ValueError, match="all_reduce: op must be one of"):
        dist.all_reduce(np.zeros(2), op="prod")
    with pytest.raises(TypeError, match="all_reduce: op='mean' needs a float array, got dtype int64"):
        dist.all_reduce(np.zeros(2, dtype=np.int64), op="mean")
    with pytest.raises(TypeError, match="broadcast: expected a numpy ndarray, got list"):
        dist.broadcast([1.0])
    with pytest.raises(ValueError, match="broadcast: expected a C-contiguous"):
        dist.broadcast(np.zeros((3, 3))[:, 0])


# ---- real MPI jobs -------------------------------------------------------------------------------

@needs_mpi
def test_two_ranks_of_32_match_one_process_of_64(tmp_path):
    script = os.path.join(SCRIPTS, "ddp_equivalence.py")
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir()
    multi.mkdir()
    proc = _run([script, str(single), "25", "syncbn"])
    assert proc.returncode == 0, proc.stderr
    # "25": one bucket. "0.00025" (262 bytes): one bucket per tensor or pair; the layer applied twice
    # sits alone in a bucket launched before its second gradient arrives (so it is reduced again).
    # "syncbn": BatchNorm2d with sync_batchnorm=True normalizes over all 64 samples, like one process.
    proc = _run([script, str(multi), "25", "0.00025", "syncbn"], ranks=2)
    assert proc.returncode == 0, proc.stderr
    for spec, reference_spec in (("25", "25"), ("0.00025", "25"), ("syncbn", "syncbn")):
        reference = dict(np.load(single / f"{reference_spec}_rank0.npz"))
        assert int(reference.pop("_buckets")) == 1
        for r in (0, 1):
            got = dict(np.load(multi / f"{spec}_rank{r}.npz"))
            buckets = int(got.pop("_buckets"))
            assert buckets > 4 if spec == "0.00025" else buckets == 1
            assert got.keys() == reference.keys()
            for k in reference:
                # float64: sums of 32 + 32 terms vs 64 terms differ only by rounding (~1e-16 relative)
                np.testing.assert_allclose(got[k], reference[k], rtol=1e-5, atol=1e-5, err_msg=f"{spec} {r} {k}")


@needs_mpi
def test_collectives_sampler_buffers_and_partial_gradients(tmp_path):
    proc = _run([os.path.join(SCRIPTS, "basics.py"), str(tmp_path)], ranks=2)
    assert proc.returncode == 0, proc.stderr
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r0["world_size"], r0["is_main"]) == (0, 2, True)
    assert (r1["rank"], r1["world_size"], r1["is_main"]) == (1, 2, False)
    for seen in (r0, r1):
        assert seen["broadcast"] == [5.0] * 3 and seen["broadcast_object"] == {"from": 0}
        assert seen["all_reduce_sum"] == [1 + 2] and seen["all_reduce_mean"] == [0.5]
        assert seen["all_reduce_max"] == [1.0]
        assert seen["bn_after_construction"] == [1.0, 1.0]     # rank 0's buffers copied at wrap
        assert seen["bn_after_sync"] == [1.5, 1.5]             # mean of 1 and 2
        assert seen["bn_batches_after_sync"] == 10             # rank 0's integer buffer
        assert seen["bn_broadcast_forward"] == [2.0, 2.0]      # rank 0's running_var before forward
        # a used on both ranks with x = [1,2,3]*(rank+1): mean is 1.5*[1,2,3]
        assert seen["grad_a"] == [1.5, 3.0, 4.5]
        # b used on rank 1 only (gradient [2,4,6]); rank 0 contributes zeros
        assert seen["grad_b"] == [1.0, 2.0, 3.0]
        assert seen["grad_a_accumulated"] == [3.0, 6.0, 9.0]   # two micro-batches, averaged once
        assert "rank 0 has parameter 'weight' shape (3, 3)" in seen["mismatch"]
        assert "rank 1 has parameter 'weight' shape (4, 3)" in seen["mismatch"]
    assert r0["grad_a_local"] == [1.0, 2.0, 3.0] and r1["grad_a_local"] == [2.0, 4.0, 6.0]
    for key in r0["shards"]:
        a, b = r0["shards"][key], r1["shards"][key]
        shuffle, drop_last, epoch = key.split("-")
        assert len(a) == len(b) == (5 if drop_last == "True" else 6)
        if drop_last == "True":
            assert not set(a) & set(b) and len(set(a + b)) == 10
        else:
            assert set(a + b) == set(range(11))
    assert r0["shards"]["True-False-0"] != r0["shards"]["True-False-1"]   # reshuffled per epoch
    for seen in (r0, r1):  # the loader's batches are the rank's shard, epoch by epoch
        for epoch in ("0", "1"):
            assert sum(seen["loader"][epoch], []) == seen["shards"][f"True-False-{epoch}"]


@needs_mpi
def test_fit_under_mpi_logs_and_checkpoints_on_rank0_and_resumes_everywhere(tmp_path):
    proc = _run([os.path.join(SCRIPTS, "fit_ddp.py"), str(tmp_path)], ranks=2)
    assert proc.returncode == 0, proc.stderr
    logs = proc.stdout + proc.stderr
    for epoch in (1, 2, 3):  # printed by rank 0 only (epoch 3 after the resume)
        assert logs.count(f"epoch {epoch}, train loss") == 1, logs
    assert (tmp_path / "ckpt" / "checkpoint.npz").exists()
    final = [dict(np.load(tmp_path / f"final_rank{r}.npz")) for r in (0, 1)]
    straight = dict(np.load(tmp_path / "straight_rank0.npz"))
    assert "1.running_mean" in final[0]  # plain model keys, BatchNorm statistics included
    for k in final[0]:
        np.testing.assert_array_equal(final[0][k], final[1][k], err_msg=k)  # replicas identical
        np.testing.assert_allclose(final[0][k], straight[k], rtol=1e-6, atol=1e-7, err_msg=k)


@needs_mpi
def test_a_failing_rank_stops_every_rank():
    proc = _run([os.path.join(SCRIPTS, "failing_rank.py")], ranks=2)  # would hang without the abort
    assert proc.returncode != 0
    assert "[rank 1] RuntimeError: boom on rank 1" in proc.stderr
    assert "[rank 1] aborting all 2 ranks" in proc.stderr


@needs_mpi
def test_cli_train_distributed_matches_one_process(tmp_path):
    """`mpiexec -n 2 fastconv train --distributed` (2 x 128 per step) equals one process with batch 256."""
    common = ["-m", "fastconv", "train", "--arch", "INPUT -> POOL(avg, k=4, s=4) -> FC", "--epochs", "1",
              "--lr", "0.1", "--threads", "1"]
    two = _run(common + ["--distributed", "--batch-size", "128", "--out", str(tmp_path / "two")], ranks=2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("test accuracy") == 1  # rank 0 reports, the other stays quiet
    one = _run(common + ["--batch-size", "256", "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    w_two = fc.load(str(tmp_path / "two" / "model.npz"))
    w_one = fc.load(str(tmp_path / "one" / "model.npz"))
    for key in w_one:
        np.testing.assert_allclose(w_two[key], w_one[key], rtol=1e-4, atol=1e-6, err_msg=key)
