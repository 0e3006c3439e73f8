"""Reading torch.save files without PyTorch: tensors, views, shared storages, dtypes, both formats,
and the allow-list unpickler refusing everything else without running it."""
import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from fastconv._torch_checkpoint import TorchCheckpointError, is_torch_checkpoint, load_torch_checkpoint


def _save(torch, obj, path, legacy=False):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64",
                                   "bool", "complex64"])
def test_every_dtype_round_trips_exactly(torch, tmp_path, dtype, legacy):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(3, 4, generator=g) * 50)
    t = t > 0 if dtype == "bool" else t.to(getattr(torch, dtype))
    loaded = load_torch_checkpoint(_save(torch, {"t": t}, tmp_path / "x.pth", legacy))["t"]
    assert loaded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded, t.numpy())


@pytest.mark.parametrize("legacy", [False, True])
def test_bfloat16_widens_to_float32_exactly(torch, tmp_path, legacy):
    t = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    loaded = load_torch_checkpoint(_save(torch, [t], tmp_path / "b.pth", legacy))[0]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, t.float().numpy())


@pytest.mark.parametrize("legacy", [False, True])
def test_views_and_shared_storages(torch, tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"base": base, "t": base.t(), "col": base[:, 2], "strided": base[1::2, ::3],
           "expanded": torch.arange(3.0).expand(4, 3), "scalar": base[2, 5], "empty": base[:0]}
    loaded = load_torch_checkpoint(_save(torch, obj, tmp_path / "v.pth", legacy))
    for key, value in obj.items():
        np.testing.assert_array_equal(loaded[key], value.numpy(), err_msg=key)
        assert loaded[key].shape == tuple(value.shape)
    # tensors of one storage share memory, as in PyTorch
    assert np.shares_memory(loaded["base"], loaded["t"])
    assert np.shares_memory(loaded["base"], loaded["col"])
    loaded["base"][2, 2] = -1.0
    assert loaded["col"][2] == -1.0 and loaded["t"][2, 2] == -1.0
    # a view whose elements overlap in memory (stride 0) is read-only instead of silently aliasing
    assert not loaded["expanded"].flags.writeable


def test_state_dict_of_a_network_loads_with_its_keys_and_order(torch, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
    sd = net.state_dict()
    loaded = load_torch_checkpoint(_save(torch, sd, tmp_path / "net.pth"))
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(sd)
    for key, value in sd.items():
        np.testing.assert_array_equal(loaded[key], value.numpy())
    assert loaded["1.num_batches_tracked"].dtype == np.int64


def test_nested_training_checkpoint_with_plain_values_and_parameters(torch, tmp_path):
    lin = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(torch.randn(3, 4)).sum().backward()
    opt.step()
    p = torch.nn.Parameter(torch.ones(2))
    tagged = torch.zeros(2)
    tagged.note = "python attribute"  # saved through _rebuild_from_type_v2
    obj = {"epoch": 3, "acc": 0.5, "name": "run", "none": None, "flags": (True, False), "ids": {1, 2},
           "model": lin.state_dict(), "optimizer": opt.state_dict(), "param": p, "tagged": tagged,
           "device": torch.device("cpu"), "size": torch.Size([2, 3]), "blob": b"\x00\xff", "z": 1 + 2j,
           "dtype": torch.float16}
    loaded = load_torch_checkpoint(_save(torch, obj, tmp_path / "ckpt.pth"))
    assert (loaded["epoch"], loaded["acc"], loaded["name"], loaded["none"]) == (3, 0.5, "run", None)
    assert loaded["flags"] == (True, False) and loaded["ids"] == {1, 2}
    assert loaded["device"] == "cpu" and loaded["size"] == (2, 3) and loaded["blob"] == b"\x00\xff"
    assert loaded["z"] == 1 + 2j and repr(loaded["dtype"]) == "torch.float16"
    np.testing.assert_array_equal(loaded["param"], np.ones(2, np.float32))
    np.testing.assert_array_equal(loaded["tagged"], np.zeros(2, np.float32))
    momentum = opt.state_dict()["state"][0]["momentum_buffer"].numpy()
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["momentum_buffer"], momentum)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.1


def test_big_endian_archives_are_byte_swapped(torch, tmp_path):
    """A checkpoint written on a big-endian machine: byteorder 'big' and swapped data records."""
    src = _save(torch, {"f": torch.randn(3, 2), "h": torch.randn(4).half(), "i": torch.arange(5),
                        "b": torch.randn(3).bfloat16()}, tmp_path / "le.pth")
    dst = tmp_path / "be.pth"
    sizes = {"0": 4, "1": 2, "2": 8, "3": 2}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, dtype=f"u{sizes[info.filename.rsplit('/', 1)[1]]}").byteswap().tobytes()
            zout.writestr(info, data)
    little, big = load_torch_checkpoint(src), load_torch_checkpoint(dst)
    for key in little:
        np.testing.assert_array_equal(big[key], little[key])
        assert big[key].dtype.isnative


def test_is_torch_checkpoint(torch, tmp_path):
    assert is_torch_checkpoint(_save(torch, {"a": torch.ones(1)}, tmp_path / "z.pth"))
    assert is_torch_checkpoint(_save(torch, {"a": torch.ones(1)}, tmp_path / "l.pth", legacy=True))
    np.savez(tmp_path / "n.npz", a=np.ones(2))
    assert not is_torch_checkpoint(tmp_path / "n.npz")


# ---- hostile and broken files (no torch needed) ------------------------------------------------

class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _zip_checkpoint(path, payload: bytes, extra=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for name, data in extra:
            z.writestr(name, data)
    return path


def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = _zip_checkpoint(tmp_path / "evil.pth",
                           pickle.dumps({"weight": _System(f"touch {marker}")}, protocol=2))
    with pytest.raises(TorchCheckpointError) as err:
        load_torch_checkpoint(path)
    assert not marker.exists()
    message = str(err.value)
    assert str(path) in message and f"{os.system.__module__}.system" in message and "not allowed" in message


def test_a_legacy_format_pickle_calling_os_system_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    pickle.dump(_System(f"touch {marker}"), buf, protocol=2)
    path = tmp_path / "evil_legacy.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(TorchCheckpointError, match="system"):
        load_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("builtins", "getattr"), ("torch", "load"),
                                         ("numpy", "load"), ("subprocess", "Popen"), ("torch._utils", "_import_dotted_name"),
                                         ("numpy.core.multiarray", "_reconstruct")])
def test_every_global_outside_the_allow_list_is_refused_by_name(tmp_path, module, name):
    # protocol-2 GLOBAL opcode, then an empty tuple and REDUCE: a call of the global
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    path = _zip_checkpoint(tmp_path / "g.pth", payload)
    with pytest.raises(TorchCheckpointError, match=f"'{module}.{name}'"):
        load_torch_checkpoint(path)


def test_stand_ins_refuse_pickled_state(tmp_path):
    """BUILD on an allowed global (trying to change a storage type's dtype) is refused."""
    payload = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x07\x00\x00\x00float64sb."
    with pytest.raises(TorchCheckpointError, match="cannot apply pickled state"):
        load_torch_checkpoint(_zip_checkpoint(tmp_path / "b.pth", payload))


def test_views_outside_their_storage_are_refused(torch, tmp_path):
    path = _save(torch, {"a": torch.arange(6.0)}, tmp_path / "a.pth")
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\x06\x85", b"K\x09\x85")  # size (6,) -> (9,) with 6 elements stored
            zout.writestr(info, data)
    with pytest.raises(TorchCheckpointError, match="reaches element 8 of a storage of 6 elements"):
        load_torch_checkpoint(bad)


def test_truncated_and_mismatched_files_name_the_file(torch, tmp_path):
    path = _save(torch, {"a": torch.arange(100.0)}, tmp_path / "a.pth")
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TorchCheckpointError, match="cut.pth"):
        load_torch_checkpoint(cut)
    short = tmp_path / "short.pth"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(short, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info)[:40] if "/data/" in info.filename else zin.read(info))
    with pytest.raises(TorchCheckpointError, match="holds 40 bytes, expected 400"):
        load_torch_checkpoint(short)
    legacy = _save(torch, {"a": torch.arange(100.0)}, tmp_path / "l.pth", legacy=True)
    cut.write_bytes(legacy.read_bytes()[:-8])
    with pytest.raises(TorchCheckpointError, match="truncated"):
        load_torch_checkpoint(cut)


def test_a_zip_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(TorchCheckpointError, match="not a PyTorch checkpoint"):
        load_torch_checkpoint(path)


def test_a_whole_pickled_model_gets_a_hint(torch, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(TorchCheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        load_torch_checkpoint(path)


def test_as_tensors_keeps_parameters_requires_grad_and_sharing(torch, tmp_path):
    import fastconv as fc

    lin = torch.nn.Linear(3, 2)
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    shared = torch.arange(4.0)
    obj = {"weight": lin.weight, "frozen": frozen, "grad_tensor": torch.zeros(2, requires_grad=True),
           "plain": torch.ones(3), "ints": torch.arange(3), "a": shared, "b": shared, "pair": (shared, 1)}
    path = _save(torch, obj, tmp_path / "t.pth")
    with open(path, "rb") as f:  # a file object works as well as a path
        loaded = load_torch_checkpoint(f, tensors=True)
    assert isinstance(loaded["weight"], fc.nn.Parameter) and loaded["weight"].requires_grad
    assert isinstance(loaded["frozen"], fc.nn.Parameter) and not loaded["frozen"].requires_grad
    assert type(loaded["grad_tensor"]) is fc.Tensor and loaded["grad_tensor"].requires_grad
    assert type(loaded["plain"]) is fc.Tensor and not loaded["plain"].requires_grad
    assert loaded["ints"].numpy().dtype == np.int64
    assert loaded["a"] is loaded["b"] and loaded["pair"][0] is loaded["a"]
    np.testing.assert_array_equal(loaded["weight"].numpy(), lin.weight.detach().numpy())


def test_random_views_of_one_storage(torch, tmp_path):
    """Any slicing/transposition/expansion of a saved storage loads as the same values, and every
    view shares the one storage's memory (hypothesis over view recipes)."""
    from hypothesis import given, settings, strategies as st

    base = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    recipe = st.lists(st.sampled_from(["t01", "t23", "s1", "s3", "step", "sel0", "exp"]), max_size=4)

    @given(recipes=st.lists(recipe, min_size=1, max_size=4), legacy=st.booleans())
    @settings(max_examples=20, deadline=None)
    def check(recipes, legacy):
        views = []
        for steps in recipes:
            v = base
            for step in steps:
                if step == "t01" and v.dim() >= 2:
                    v = v.transpose(0, 1)
                elif step == "t23" and v.dim() >= 4:
                    v = v.transpose(2, 3)
                elif step == "s1" and v.dim() >= 2 and v.shape[1] > 1:
                    v = v[:, 1:]
                elif step == "s3" and v.dim() >= 4 and v.shape[3] > 2:
                    v = v[..., 1:-1]
                elif step == "step" and v.shape[-1] > 1:
                    v = v[..., ::2]
                elif step == "sel0" and v.dim() >= 2:
                    v = v[0]
                elif step == "exp" and v.dim() >= 1:
                    v = v.unsqueeze(0).expand(3, *v.shape)
            views.append(v)
        path = tmp_path / ("v_legacy.pth" if legacy else "v.pth")
        torch.save({"base": base, "views": views}, path, _use_new_zipfile_serialization=not legacy)
        loaded = load_torch_checkpoint(path)
        for got, want in zip(loaded["views"], views):
            np.testing.assert_array_equal(got, want.numpy())
            assert np.shares_memory(got, loaded["base"])

    check()
