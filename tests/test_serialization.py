"""fastconv.save/load: pickle-free round trips, atomic writes, clear errors on bad files, torch weights."""
import os
from collections import OrderedDict

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn


def assert_same(a, b):
    """Deep equality with types: arrays by dtype/shape/values, containers by type and order."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_state_dict_round_trip(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    path = tmp_path / "m.npz"
    fc.save(model.state_dict(), path)
    loaded = fc.load(path)
    assert_same(model.state_dict(), loaded)
    assert loaded["1.num_batches_tracked"].shape == () and loaded["1.num_batches_tracked"].dtype == np.int64
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    other.load_state_dict(loaded)
    assert_same(model.state_dict(), other.state_dict())
    with np.load(path, allow_pickle=False) as raw:  # plain numpy can read it, entries named by key
        np.testing.assert_array_equal(raw["0.weight"], model[0].weight.numpy())


def test_nested_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    opt = fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(fc.randn(4, 3)).sum().backward()
    opt.step()
    checkpoint = {
        "epoch": 3, "best": 0.25, "history": [1.5, float("inf"), float("nan")], "name": "run/1",
        "flags": (True, None, -7), "model": model.state_dict(), "optimizer": opt.state_dict(),
        "rng": fc.get_rng_state(), "scalar": np.float32(1.25), "by_int": {0: np.arange(3), 10: "x"},
        "empty": {}, "nested": [[np.zeros((0, 2))], {"a": {"b": np.int8(3)}}],
        "a/b": np.ones(1), "a": {"b": np.zeros(1)},  # entry names that would collide
    }
    path = tmp_path / "ckpt.npz"
    fc.save(checkpoint, path)
    assert_same(checkpoint, fc.load(path))
    restored = fc.load(path)
    fc.set_rng_state(restored["rng"])
    assert fc.get_rng_state() == checkpoint["rng"]


def test_plain_npz_loads_as_a_dict(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones((2, 2), np.float32), b=np.zeros(2))
    loaded = fc.load(path)
    assert set(loaded) == {"w", "b"} and loaded["w"].dtype == np.float32


def test_save_rejects_what_needs_pickle(tmp_path):
    with pytest.raises(TypeError, match="cannot store the object array at 'x/0'"):
        fc.save({"x": [np.array([{}, 1], dtype=object)]}, tmp_path / "a.npz")
    with pytest.raises(TypeError, match="cannot store Sequential at the top level.*state_dict"):
        fc.save(nn.Sequential(), tmp_path / "a.npz")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        fc.save({(1, 2): 3}, tmp_path / "a.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fc.save({}, tmp_path / "missing" / "a.npz")
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    fc.save({"w": np.arange(4.0)}, path)
    original = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 partial data")
        raise KeyboardInterrupt("simulated interruption during the write")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        fc.save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise OSError("simulated failure of the rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename"):
        fc.save({"w": np.zeros(3)}, path)
    assert path.read_bytes() == original and os.listdir(tmp_path) == ["m.npz"]


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    path = tmp_path / "m.npz"
    fc.save({"w": np.random.default_rng(0).standard_normal(5000), "b": np.ones(3)}, path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        truncated = tmp_path / f"cut{cut}.npz"
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"load: {truncated}"):
            fc.load(truncated)
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(data[:200] + bytes(255 - b for b in data[200:400]) + data[400:])
    with pytest.raises(ValueError, match=f"load: {garbled}"):
        fc.load(garbled)
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=f"load: {text} is not a readable .npz archive"):
        fc.load(text)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    with pytest.raises(ValueError, match="single .npy array"):
        fc.load(single)
    with pytest.raises(FileNotFoundError, match="no such file"):
        fc.load(tmp_path / "absent.npz")


EXECUTED = []


def _record_execution(tag):
    EXECUTED.append(tag)
    return tag


class _Payload:
    def __reduce__(self):
        return (_record_execution, ("unpickled!",))


def test_pickled_object_arrays_are_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.ones(2), evil=np.array([_Payload()], dtype=object))
    with pytest.raises(ValueError, match="entry 'evil' is a pickled object array, which is refused"):
        fc.load(path)
    assert EXECUTED == []


def lenet_pair(torch):
    ours = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    T = torch.nn
    theirs = T.Sequential(
        T.Conv2d(1, 6, 5, padding=2), T.ReLU(), T.MaxPool2d(2), T.Conv2d(6, 16, 5), T.ReLU(), T.MaxPool2d(2),
        T.Flatten(), T.Linear(16 * 5 * 5, 120), T.ReLU(), T.Linear(120, 84), T.ReLU(), T.Linear(84, 10))
    return ours, theirs, (4, 1, 28, 28)


def bn_net_pair(torch):
    ours = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    T = torch.nn
    theirs = T.Sequential(
        T.Conv2d(3, 8, 3, padding=1, bias=False), T.BatchNorm2d(8), T.ReLU(), T.MaxPool2d(2),
        T.Conv2d(8, 16, 3, padding=1), T.BatchNorm2d(16), T.ReLU(), T.AdaptiveAvgPool2d(1), T.Flatten(),
        T.Linear(16, 32), T.BatchNorm1d(32), T.ReLU(), T.Linear(32, 10))
    return ours, theirs, (6, 3, 16, 16)


@pytest.mark.parametrize("pair", [lenet_pair, bn_net_pair], ids=["LeNet", "BatchNorm-net"])
def test_torch_weights_exported_as_numpy_load_unchanged(torch, tmp_path, pair):
    ours, theirs, shape = pair(torch)
    torch.manual_seed(0)
    theirs.train()
    with torch.no_grad():  # a few training-mode passes give non-trivial running statistics
        for _ in range(3):
            theirs(torch.randn(*shape) * 2 + 1)
    theirs.eval()
    exported = tmp_path / "torch_weights.npz"
    np.savez(exported, **{k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.load_state_dict(fc.load(exported))
    ours.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(fc.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    # and back through fastconv.save: the same keys and arrays torch has
    fc.save(ours.state_dict(), tmp_path / "ours.npz")
    reloaded = fc.load(tmp_path / "ours.npz")
    assert list(reloaded) == list(theirs.state_dict())
    theirs.load_state_dict(OrderedDict((k, torch.from_numpy(v)) for k, v in reloaded.items()))
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-6, atol=1e-7)
