"""fastconv.save/load: pickle-free round trips, atomic writes, clear errors on bad files, torch weights."""
import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import stat
import subprocess
import types
import zipfile
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
    with pytest.raises(TypeError, match="dict keys must be str, int, bool, float, None or tuples"):
        fc.save({object(): 3}, tmp_path / "a.npz")
    with pytest.raises(TypeError, match="cannot store the structured or object dtype at d"):
        fc.save({"d": np.dtype([("a", np.int8)])}, tmp_path / "a.npz")
    with pytest.raises(ValueError, match="nested more than 200 levels deep .*or contains itself"):
        loop = []
        loop.append(loop)
        fc.save(loop, tmp_path / "a.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fc.save({}, tmp_path / "missing" / "a.npz")
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    fc.save({"w": np.arange(4.0)}, path)
    original = path.read_bytes()

    def failing_write(file, array, **kwargs):
        file.write(b"\x93NUMPY partial data")
        raise KeyboardInterrupt("simulated interruption during the write")

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
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
    with pytest.raises(ValueError, match=f"load: {text} is not a fastconv file: it looks like a text file"):
        fc.load(text)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    with pytest.raises(ValueError, match="it looks like a single NumPy .npy array"):
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


# ---- torch.save-style checkpoints: Tensors, more kinds, file objects, map_location ----------------

def assert_same_loaded(a, b):
    """assert_same, with Tensors compared by class, dtype, values and requires_grad."""
    if isinstance(a, fc.Tensor):
        assert type(a) is type(b) and a.requires_grad == b.requires_grad
        assert_same(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b)
        for k in a:
            assert_same_loaded(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_loaded(x, y)
    else:
        assert_same(a, b)


def test_tensors_load_back_as_tensors(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    w = fc.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    checkpoint = {
        "plain": fc.tensor(np.arange(4, dtype=np.int64)), "grad": w, "param": model[0].weight,
        "f64": fc.tensor(np.ones((2, 2))), "scalar": fc.tensor(np.float32(2.5)), "array": np.ones(3, np.float32),
        "loss": fc.tensor(np.float32(0.25)), "epoch": 7,
    }
    path = tmp_path / "c.pt"
    fc.save(checkpoint, path)
    loaded = fc.load(path)
    assert_same_loaded(checkpoint, loaded)
    assert isinstance(loaded["param"], nn.Parameter) and loaded["param"].requires_grad
    assert loaded["grad"].requires_grad and loaded["grad"].grad_fn is None  # a leaf, as torch.load gives
    assert type(loaded["array"]) is np.ndarray and loaded["f64"].dtype == np.float64
    loaded["grad"].sum().backward()  # a usable leaf
    np.testing.assert_array_equal(loaded["grad"].grad.numpy(), np.ones((2, 3)))


def test_shared_objects_are_stored_once_and_stay_shared(tmp_path):
    t = fc.tensor(np.arange(3.0))
    a = np.arange(5.0)
    path = tmp_path / "tied.npz"
    fc.save({"encoder": t, "decoder": t, "x": a, "y": [a]}, path)
    loaded = fc.load(path)
    assert loaded["encoder"] is loaded["decoder"] and loaded["x"] is loaded["y"][0]
    with np.load(path) as raw:
        assert len(raw.files) == 3  # t, a and the manifest


def test_more_kinds_and_keys_round_trip(tmp_path):
    obj = {
        "bytes": b"\x00\xffraw", "complex": 1.5 - 2j, "set": {1, 2, "a"}, "frozen": frozenset({(1, 2)}),
        "dtype": np.dtype(np.float32), "dtype_type": np.int64, (1, "a"): "tuple key", 2.5: "float key",
        None: "none key", True: "bool key", np.int64(3): "numpy int key", np.float32(0.5): "numpy float key",
        "empty": [(), [], {}],
        "nan": float("nan"), "big": 2 ** 80, "text": "ünï\u00b5 \U0001f600", "lone surrogate": "\ud800",
    }
    path = tmp_path / "kinds.npz"
    fc.save(obj, path)
    loaded = fc.load(path)
    assert loaded.pop(3) == "numpy int key" and loaded.pop(0.5) == "numpy float key"
    expected = dict(obj)
    expected.pop(np.int64(3))
    expected.pop(np.float32(0.5))
    assert_same(expected, loaded)
    assert loaded["dtype"] == np.float32 and loaded["dtype_type"] is np.int64


def test_state_dicts_stay_readable_by_format_version_1(tmp_path):
    """Arrays and plain values need nothing new: such files keep version 1 (older fastconv reads them)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    fc.save(model.state_dict(), tmp_path / "sd.npz")
    fc.save({"t": fc.tensor([1.0])}, tmp_path / "t.npz")
    versions = []
    for name in ("sd.npz", "t.npz"):
        with np.load(tmp_path / name) as raw:
            versions.append(json.loads(raw["__fastconv_meta__"].tobytes())["version"])
    expected_sd = 2 if any(isinstance(v, fc.Tensor) for v in model.state_dict().values()) else 1
    assert versions == [expected_sd, 2]


def _previous_serialization_module():
    """fastconv.serialization as the first release wrote it (format version 1), rebuilt from git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(["git", "show", "e43ec3a:fastconv/serialization.py"], cwd=root, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip("the previous serialization.py is not in this checkout's history")
    source = proc.stdout.replace("from .tensor import Tensor", "from fastconv.tensor import Tensor")
    module = types.ModuleType("previous_serialization")
    exec(compile(source, "previous_serialization.py", "exec"), module.__dict__)
    return module


def test_files_written_by_the_previous_release_load(tmp_path):
    previous = _previous_serialization_module()
    model = nn.Sequential(nn.Linear(3, 2))
    opt = fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(fc.randn(4, 3)).sum().backward()
    opt.step()
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": fc.get_rng_state(),
                  "epoch": 3, "history": [1.5, float("inf")], "by_int": {0: np.arange(3)}, "t": (None, True)}
    checkpoint = {k: v for k, v in checkpoint.items()}
    previous.save(checkpoint, tmp_path / "old.npz")
    assert_same(previous.load(tmp_path / "old.npz"), fc.load(tmp_path / "old.npz"))
    fc.save({"w": np.ones(2), "n": 3}, tmp_path / "new.npz")  # and version-1 content is readable by it
    assert_same(previous.load(tmp_path / "new.npz"), {"w": np.ones(2), "n": 3})


def test_file_objects(tmp_path):
    buffer = io.BytesIO()
    fc.save({"w": fc.tensor([1.0, 2.0]), "n": 1}, buffer)
    buffer.seek(0)
    loaded = fc.load(buffer)
    assert loaded["n"] == 1 and isinstance(loaded["w"], fc.Tensor)
    path = tmp_path / "f.npz"
    with open(path, "wb") as f:
        fc.save([np.arange(3)], f)
    with open(path, "rb") as f:
        assert_same(fc.load(f), [np.arange(3)])
    with open(path, "rb") as f:  # a file positioned after other content
        prefixed = tmp_path / "prefixed.bin"
        prefixed.write_bytes(b"HEADER" + f.read())
    with open(prefixed, "rb") as f:
        f.read(6)
        assert_same(fc.load(f), [np.arange(3)])
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fc.load(tmp_path)


class _Device:
    """What fc.device / torch.device look like to fc.load: a ``type`` and an ``index``."""

    def __init__(self, type, index=None):
        self.type, self.index = type, index


@pytest.mark.parametrize("location", ["cpu", "cpu:0", _Device("cpu"), {"cuda:0": "cpu"}, {"cpu": "cpu"},
                                      {"cpu": _Device("cpu")}, None])
def test_map_location_cpu_forms(tmp_path, location):
    fc.save({"w": fc.tensor([1.0]), "a": np.ones(2)}, tmp_path / "m.npz")
    loaded = fc.load(tmp_path / "m.npz", map_location=location)
    assert isinstance(loaded["w"], fc.Tensor) and isinstance(loaded["a"], np.ndarray)


@pytest.mark.parametrize("location,error,needle", [
    ("cuda", RuntimeError, "map_location='cuda' asks for a CUDA device, but fastconv runs on the CPU only"),
    ("cuda:1", RuntimeError, "CUDA device"), (_Device("cuda", 0), RuntimeError, "map_location='cuda:0'"),
    ({"cpu": "cuda:0"}, RuntimeError, r"map_location\['cpu'\]='cuda:0'"), ("mps", RuntimeError, "the mps device"),
    ("gpu", ValueError, "map_location='gpu' is not a device"), (3, TypeError, "expected map_location as a device"),
])
def test_map_location_refuses_other_devices(tmp_path, location, error, needle):
    fc.save({"w": fc.tensor([1.0])}, tmp_path / "m.npz")
    with pytest.raises(error, match=needle):
        fc.load(tmp_path / "m.npz", map_location=location)


def test_map_location_callable_is_called_per_tensor_like_torch(tmp_path, torch):
    calls = []

    def record(storage, location):
        calls.append((type(storage), location))
        return None

    obj = {"a": np.arange(2.0), "b": [np.arange(3.0), np.arange(4.0)]}
    fc.save({k: (fc.tensor(v) if k == "a" else [fc.tensor(x) for x in v]) for k, v in obj.items()}, tmp_path / "f.npz")
    loaded = fc.load(tmp_path / "f.npz", map_location=record)
    ours = [loc for _, loc in calls]
    calls.clear()
    torch.save({k: (torch.from_numpy(v) if k == "a" else [torch.from_numpy(x) for x in v]) for k, v in obj.items()},
               tmp_path / "t.pt")
    torch.load(tmp_path / "t.pt", map_location=record, weights_only=True)
    assert ours == [loc for _, loc in calls] == ["cpu"] * 3  # once per tensor, with the location tag
    np.testing.assert_array_equal(loaded["b"][1].numpy(), obj["b"][1])

    doubled = fc.load(tmp_path / "f.npz", map_location=lambda t, loc: t * 2)
    np.testing.assert_array_equal(doubled["b"][0].numpy(), 2 * obj["b"][0])
    with pytest.raises(TypeError, match="map_location returned str"):
        fc.load(tmp_path / "f.npz", map_location=lambda t, loc: "cuda")


def test_map_location_cuda_is_an_error_in_torch_too(tmp_path, torch):
    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    torch.save({"w": torch.ones(1)}, tmp_path / "t.pt")
    with pytest.raises(RuntimeError):
        torch.load(tmp_path / "t.pt", map_location="cuda")
    fc.save({"w": fc.ones(1)}, tmp_path / "f.npz")
    with pytest.raises(RuntimeError):
        fc.load(tmp_path / "f.npz", map_location="cuda")


@pytest.mark.parametrize("weights_only", [True, False, None])
def test_weights_only_is_accepted(tmp_path, weights_only):
    fc.save({"w": fc.tensor([1.0])}, tmp_path / "m.npz")
    assert isinstance(fc.load(tmp_path / "m.npz", weights_only=weights_only)["w"], fc.Tensor)


def test_weights_only_must_be_a_bool(tmp_path):
    fc.save({}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="weights_only as a bool or None, got 'yes'"):
        fc.load(tmp_path / "m.npz", weights_only="yes")


def _to_torch(obj, torch):
    if isinstance(obj, fc.Tensor):
        t = torch.nn.Parameter(torch.from_numpy(obj.numpy().copy())) if isinstance(obj, nn.Parameter) else \
            torch.from_numpy(obj.numpy().copy()).requires_grad_(obj.requires_grad)
        return t
    if isinstance(obj, dict):
        return type(obj)((k, _to_torch(v, torch)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(v, torch) for v in obj)
    return obj


def _same_as_torch(ours, theirs, torch):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, fc.Tensor)
        assert isinstance(ours, nn.Parameter) == isinstance(theirs, torch.nn.Parameter)
        assert ours.requires_grad == theirs.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            _same_as_torch(ours[k], theirs[k], torch)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same_as_torch(a, b, torch)
    else:
        assert type(ours) is type(theirs) and (ours == theirs or (ours != ours and theirs != theirs))


def test_checkpoints_round_trip_as_torch_save_and_load_do(tmp_path, torch):
    """The same checkpoint through torch.save/torch.load and fc.save/fc.load: same structure and values."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    ours = OrderedDict([
        ("epoch", 5), ("loss", fc.tensor(np.float32(0.125))), ("best", 0.5), ("name", "resnet"), ("none", None),
        ("model_state_dict", OrderedDict((k, fc.tensor(v)) for k, v in model.state_dict().items())),
        ("params", [model[0].weight, (model[0].bias, 3)]), ("flags", {"a": True, 1: [2.5, float("nan")]}),
        ("leaf", fc.tensor(np.ones(2, np.float32), requires_grad=True)), ("ints", fc.tensor(np.arange(3))),
    ])
    theirs = _to_torch(ours, torch)
    torch.save(theirs, tmp_path / "t.pt")
    torch_loaded = torch.load(tmp_path / "t.pt", weights_only=True)
    fc.save(ours, tmp_path / "f.npz")
    _same_as_torch(fc.load(tmp_path / "f.npz"), torch_loaded, torch)


def test_load_state_dict_accepts_loaded_tensors(tmp_path, torch):
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(2 * 4 * 4, 3))
    fc.save({k: fc.tensor(v.numpy()) for k, v in theirs.state_dict().items()}, tmp_path / "sd.npz")
    loaded = fc.load(tmp_path / "sd.npz")
    assert all(isinstance(v, fc.Tensor) for v in loaded.values())
    ours.load_state_dict(loaded)
    for (k, v), w in zip(ours.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_array_equal(np.asarray(v), w.numpy(), err_msg=k)


# ---- format detection: every other kind of file is named, never read ------------------------------

def _zip_with(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _foreign_files(tmp_path, torch_module=None):
    """(file, what the error must say it looks like) for files fc.load must refuse to read."""
    files = []

    def add(name, content, looks_like):
        p = tmp_path / name
        p.write_bytes(content) if isinstance(content, bytes) else content(p)
        files.append((p, looks_like))

    payload = pickle.dumps(_Payload(), protocol=4)
    add("evil.pkl", payload, "a Python pickle (protocol 4)")
    add("legacy.pt", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + payload, "a legacy PyTorch checkpoint")
    add("ckpt.pth", lambda p: _zip_with(p, {"ckpt/data.pkl": payload, "ckpt/version": b"3\n",
                                            "ckpt/data/0": b"\0" * 16}),
        "a PyTorch checkpoint (torch.save zip archive with ckpt/data.pkl)")
    add("script.pt", lambda p: _zip_with(p, {"m/constants.pkl": payload, "m/code/__torch__.py": b"",
                                             "m/data.pkl": payload}), "a TorchScript archive")
    add("weights.safetensors", lambda p: p.write_bytes(
        (lambda h: len(h).to_bytes(8, "little") + h)(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
        + b"\0" * 4), "a safetensors file")
    add("one.npy", lambda p: np.save(p, np.ones(2)), "a single NumPy .npy array")
    add("ckpt.npz.gz", gzip.compress(b"PK\x03\x04" + b"\0" * 100)[:30], "gzip-compressed data")
    add("c.bz2", bz2.compress(b"data"), "bzip2-compressed data")
    add("c.xz", lzma.compress(b"data"), "xz-compressed data")
    add("m.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "an HDF5 file")
    add("notes.txt", b"hello, world\nsecond line", "a text file (starts with 'hello, world')")
    add("config.json", b'  {"arch": "x"}', "a JSON text file")
    add("empty.npz", b"", "an empty file")
    add("random.bin", np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "unrecognized binary data (first bytes")
    add("docs.zip", lambda p: _zip_with(p, {"a.txt": b"x", "b/c.npy": b"y"}),
        "a zip archive that is not a NumPy .npz (members: a.txt, b/c.npy)")
    if torch_module is not None:
        add("real.pth", lambda p: torch_module.save(torch_module.nn.Linear(2, 2).state_dict(), p),
            "a PyTorch checkpoint (torch.save zip archive with real/data.pkl)")
        add("real_legacy.pt", lambda p: torch_module.save({"w": torch_module.ones(2)}, p,
                                                          _use_new_zipfile_serialization=False),
            "a legacy PyTorch checkpoint")
    return files


def test_foreign_formats_are_named_not_read(tmp_path):
    try:
        import torch as torch_module
    except ImportError:
        torch_module = None
    for path, looks_like in _foreign_files(tmp_path, torch_module):
        with pytest.raises(ValueError) as info:
            fc.load(path)
        message = str(info.value)
        assert message.startswith(f"load: {path} ") and looks_like in message, message
        assert "\n" not in message and "allow_pickle" not in message and "unpickl" not in message.lower()
    assert EXECUTED == []


def test_torch_state_dict_file_is_refused_not_listed_as_keys(tmp_path, torch):
    """The issue's repro: fc.load('x.pth') used to return {'lin/data.pkl': b'...'}."""
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "x.pth")
    with pytest.raises(ValueError, match=r"is not a fastconv file: it looks like a PyTorch checkpoint \(torch.save zip "
                                         r"archive with x/data.pkl\); fastconv cannot read PyTorch checkpoints yet"):
        fc.load(tmp_path / "x.pth")


def test_a_reader_is_one_dispatch_entry(tmp_path, monkeypatch):
    """How the PyTorch reader plugs in: one entry under the detected kind."""
    from fastconv import serialization

    _zip_with(tmp_path / "c.pth", {"c/data.pkl": b"...", "c/version": b"3\n"})
    seen = []

    def reader(f, size, source, fmt):
        seen.append((fmt.kind, source, fmt.members))
        return {"w": fc.tensor([1.0])}

    monkeypatch.setitem(serialization._READERS, "pytorch-zip", reader)
    loaded = fc.load(tmp_path / "c.pth", map_location=lambda t, loc: t * 3)
    assert seen == [("pytorch-zip", str(tmp_path / "c.pth"), ["c/data.pkl", "c/version"])]
    np.testing.assert_array_equal(loaded["w"].numpy(), [3.0])  # map_location applies to every reader


def test_saved_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        fc.save({"w": np.ones(2)}, tmp_path / "a.npz")
        os.umask(0o022)
        fc.save({"w": np.ones(2)}, tmp_path / "b.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "b.npz").st_mode) == 0o644


def test_a_handwritten_version_1_archive_loads(tmp_path):
    """Format version 1 as design.md describes it, written without fastconv."""
    manifest = {"format": "fastconv", "version": 1, "root": {"t": "odict", "items": [
        ["w", {"t": "array", "entry": "w"}], [{"int": 3}, {"t": "float", "v": "nan"}],
        ["s", {"t": "npscalar", "entry": "s"}], ["l", {"t": "tuple", "items": [{"t": "plain", "v": None}]}]]}}
    path = tmp_path / "v1.npz"
    np.savez(path, w=np.arange(3.0), s=np.asarray(np.int8(4)),
             __fastconv_meta__=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))
    loaded = fc.load(path)
    assert type(loaded) is OrderedDict and list(loaded) == ["w", 3, "s", "l"]
    assert np.isnan(loaded[3]) and loaded["s"] == 4 and type(loaded["s"]) is np.int8 and loaded["l"] == (None,)
    np.testing.assert_array_equal(loaded["w"], np.arange(3.0))


def test_saving_onto_a_folder_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; pass a file path such as"):
        fc.save({}, tmp_path)
    assert os.listdir(tmp_path) == []


def test_compressed_archives_of_zeros_are_not_mistaken_for_bombs(tmp_path):
    """Deflate expands at most ~1032-fold; the reader's bound must admit the real maximum."""
    fc.save({"z": np.zeros(2_000_000, np.float32), "t": fc.tensor(np.ones(3))}, tmp_path / "z.npz", compress=True)
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        info = zf.getinfo("z.npy")
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 1000 * info.compress_size
    loaded = fc.load(tmp_path / "z.npz")
    assert loaded["z"].shape == (2_000_000,) and not loaded["z"].any()
