"""fastconv.safetensors: round trips, cross-checks with the reference package, strict header checks."""
import json
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv as fc
from fastconv import safetensors as fst

DTYPES = ["bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32", "float64",
          "int64", "uint64", "complex64"]


def _array(rng, dtype, shape):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape).astype(dtype)


def _raw_file(tmp_path, header, buffer=b"", pad=True, name="f.safetensors"):
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(text)) + text + buffer)
    return path


def test_every_dtype_round_trips_with_metadata_and_order(tmp_path, rng):
    tensors = {f"t_{d}": _array(rng, d, (3, 2)) for d in DTYPES}
    tensors["scalar"] = np.full((), 3.5, np.float32)
    tensors["empty"] = np.zeros((0, 4), np.float32)
    path = tmp_path / "all.safetensors"
    fst.save_file(tensors, path, metadata={"format": "pt", "note": "é"})
    loaded = fst.load_file(path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        assert loaded[name].dtype == arr.dtype and loaded[name].shape == arr.shape, name
        np.testing.assert_array_equal(loaded[name], arr)
    with fst.safe_open(path, framework="np") as f:
        assert f.metadata() == {"format": "pt", "note": "é"}
        np.testing.assert_array_equal(f.get_tensor("t_int16"), tensors["t_int16"])
    assert fst.load(path.read_bytes()).keys() == loaded.keys()
    # buffers start aligned to their element size (largest first), header padded to 8 bytes
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert n % 8 == 0


@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4), dtype=st.sampled_from(DTYPES))
def test_round_trip_any_shape(shape, dtype):
    arr = _array(np.random.default_rng(len(shape)), dtype, tuple(shape))
    out = fst.load(fst.save({"x": arr}))["x"]
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_non_native_and_non_contiguous_inputs_are_written_as_values(tmp_path):
    big = np.arange(6, dtype=">f4").reshape(2, 3)
    out = fst.load(fst.save({"big": big, "t": big.T, "tensor": fc.tensor([1.0, 2.0])}))
    np.testing.assert_array_equal(out["big"], big)
    np.testing.assert_array_equal(out["t"], big.T)
    np.testing.assert_array_equal(out["tensor"], [1.0, 2.0])
    assert out["big"].dtype == np.float32


def test_cross_check_with_the_safetensors_package(tmp_path, rng):
    ref = pytest.importorskip("safetensors.numpy")
    tensors = {f"t_{d}": _array(rng, d, (4, 3)) for d in DTYPES if d != "complex64"}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    fst.save_file(tensors, ours, metadata={"a": "b"})
    ref.save_file(tensors, theirs, metadata={"a": "b"})
    for path in (ours, theirs):
        for reader in (ref.load_file, fst.load_file):
            loaded = reader(str(path))
            for name, arr in tensors.items():
                np.testing.assert_array_equal(loaded[name], arr)
                assert loaded[name].dtype == arr.dtype
    with fst.safe_open(ours) as f:  # every buffer aligned to its element size, as the reference writes
        for name in f.keys():
            assert f._entries[name]["data_offsets"][0] % tensors[name].dtype.itemsize == 0


def test_bfloat16_from_torch_loads_as_float32(torch, tmp_path):
    st_torch = pytest.importorskip("safetensors.torch")
    t = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    path = tmp_path / "bf.safetensors"
    st_torch.save_file({"w": t, "f16": t.half()}, str(path))
    loaded = fst.load_file(path)
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], t.float().numpy())
    np.testing.assert_array_equal(loaded["f16"], t.half().numpy())


def test_model_state_dict_round_trip_gives_the_same_outputs(tmp_path):
    fc.manual_seed(0)
    nn = fc.nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5))
    model.train()
    model(fc.randn(2, 3, 6, 6))  # moves the running statistics
    model.eval()
    path = tmp_path / "m.safetensors"
    fst.save_file(model.state_dict(), path)
    fc.manual_seed(1)
    clone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5)).eval()
    clone.load_state_dict(fst.load_file(path))
    x = fc.randn(3, 3, 6, 6)
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())


def test_bad_arguments_when_saving(tmp_path):
    with pytest.raises(TypeError, match="metadata must map str to str"):
        fst.save({"a": np.ones(1)}, metadata={"a": 1})
    with pytest.raises(TypeError, match="has no safetensors equivalent"):
        fst.save({"a": np.array(["x"])})
    with pytest.raises(TypeError, match="expected an ndarray or Tensor for 'a'"):
        fst.save({"a": [1, 2]})
    with pytest.raises(ValueError, match="reserved"):
        fst.save({"__metadata__": np.ones(1)})


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header,buffer,problem", [
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 8, "outside the 8-byte buffer"),
    ({"a": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "unknown dtype 'X9'"),
    ({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, "F8_E4M3"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "exactly dtype, shape and data_offsets"),
    ({"a": F32_2, "b": F32_2}, b"\0" * 8, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "hole at byte 0"),
    ({"a": F32_2}, b"\0" * 12, "trailing data"),
    ({"__metadata__": {"k": 1}, "a": F32_2}, b"\0" * 8, "__metadata__"),
    ([1, 2], b"", "does not start with '{'"),
])
def test_invalid_headers_are_one_line_errors_naming_the_file(tmp_path, header, buffer, problem):
    path = _raw_file(tmp_path, header, buffer)
    with pytest.raises(fst.SafetensorError) as err:
        fst.load_file(path)
    message = str(err.value)
    assert problem in message and str(path) in message and "\n" not in message


def test_truncated_duplicate_and_garbage_files(tmp_path):
    good = tmp_path / "good.safetensors"
    fst.save_file({"a": np.arange(10.0)}, good)
    data = good.read_bytes()
    for cut, problem in ((4, "too short"), (20, "header length"), (len(data) - 8, "outside the 72-byte buffer")):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(fst.SafetensorError, match=problem):
            fst.load_file(bad)
    text = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    dup = tmp_path / "dup.safetensors"
    dup.write_bytes(struct.pack("<Q", len(text)) + text + b"\0")
    with pytest.raises(fst.SafetensorError, match="duplicate name 'a'"):
        fst.load_file(dup)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 5) + b"{abc}")
    with pytest.raises(fst.SafetensorError, match="unreadable header"):
        fst.load_file(junk)
    with pytest.raises(FileNotFoundError):
        fst.load_file(tmp_path / "missing.safetensors")
    assert fst.is_safetensors(good)
    np.savez(tmp_path / "n.npz", a=np.ones(2))
    assert not fst.is_safetensors(tmp_path / "n.npz")
