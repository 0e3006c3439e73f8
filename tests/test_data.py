"""fastconv.data: IDX files, datasets, bundled MNIST, DataLoader reproducibility, transforms, coord task."""
import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv.data import (
    MNIST, Compose, DataLoader, Dataset, Normalize, RandomCrop, RandomHorizontalFlip, Subset,
    TensorDataset, random_split, read_idx, stratified_subset, write_idx,
)
from fastconv.data.synthetic import coord_dataset

# type code, struct format letter (big-endian), numpy dtype -- from the IDX format description
IDX_TYPES = [(0x08, "B", np.uint8), (0x09, "b", np.int8), (0x0B, "h", np.int16),
             (0x0C, "i", np.int32), (0x0D, "f", np.float32), (0x0E, "d", np.float64)]


def idx_bytes(code, fmt, shape, values):
    """Build an IDX file by hand with struct (independent of write_idx)."""
    header = bytes([0, 0, code, len(shape)]) + struct.pack(">" + "I" * len(shape), *shape)
    return header + struct.pack(">" + fmt * len(values), *values)


def sample_values(dtype, n, rng):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(n).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=n, endpoint=True).astype(dtype)


# ---------------------------------------------------------------------------------------- IDX ----
@pytest.mark.parametrize("code,fmt,dtype", IDX_TYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_matches_hand_built_file(tmp_path, rng, code, fmt, dtype, compress):
    shape = (3, 4, 5)
    values = sample_values(dtype, 60, rng)
    raw = idx_bytes(code, fmt, shape, values.tolist())
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    np.testing.assert_array_equal(out, values.reshape(shape))
    out[0, 0, 0] = 0  # result is writable


@pytest.mark.parametrize("code,fmt,dtype", IDX_TYPES)
@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
def test_write_idx_round_trip_and_layout(tmp_path, rng, code, fmt, dtype, suffix):
    values = sample_values(dtype, 24, rng).reshape(2, 3, 4)
    path = tmp_path / ("a" + suffix)
    write_idx(path, values)
    np.testing.assert_array_equal(read_idx(path), values)
    raw = path.read_bytes()
    if suffix.endswith(".gz"):
        raw = gzip.decompress(raw)
    assert raw == idx_bytes(code, fmt, (2, 3, 4), values.ravel().tolist())
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind


def test_write_idx_accepts_big_endian_and_tensor(tmp_path):
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    write_idx(tmp_path / "be.idx", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "be.idx"), arr)
    write_idx(tmp_path / "t.idx", fc.tensor(np.ones((2, 2), dtype=np.float32)))
    np.testing.assert_array_equal(read_idx(tmp_path / "t.idx"), np.ones((2, 2), dtype=np.float32))


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match=r"write_idx: expected an array of dtype .*got int64"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))
    assert not os.listdir(tmp_path)


def test_write_idx_failure_keeps_old_file(tmp_path):
    path = tmp_path / "keep.idx"
    write_idx(path, np.arange(4, dtype=np.uint8))
    with pytest.raises(TypeError):
        write_idx(path, np.zeros(3, dtype=np.complex64))
    np.testing.assert_array_equal(read_idx(path), np.arange(4, dtype=np.uint8))


def _write(path, raw, compress):
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_data_names_file_and_sizes(tmp_path, compress):
    raw = idx_bytes(0x08, "B", (10, 28, 28), [0] * 7840)[: 4 + 12 + 123]
    path = _write(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if compress else "")), raw, compress)
    with pytest.raises(ValueError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg and "10x28x28" in msg and "7840" in msg and "123" in msg


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_trailing_bytes(tmp_path, compress):
    raw = idx_bytes(0x08, "B", (2, 2), [1, 2, 3, 4]) + b"\x00\x00\x07"
    path = _write(tmp_path / ("x.idx" + (".gz" if compress else "")), raw, compress)
    with pytest.raises(ValueError, match=r"3 unexpected trailing bytes") as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_bad_magic(tmp_path, compress):
    raw = b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00"
    path = _write(tmp_path / ("m.idx" + (".gz" if compress else "")), raw, compress)
    with pytest.raises(ValueError, match="two zero bytes") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_unknown_type_code(tmp_path):
    path = _write(tmp_path / "c.idx", b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00", False)
    with pytest.raises(ValueError, match=r"unsupported IDX type code 0x0A") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_truncated_header_and_empty(tmp_path):
    short = _write(tmp_path / "h.idx", b"\x00\x00\x08\x03" + struct.pack(">I", 5), False)
    with pytest.raises(ValueError, match=r"h\.idx: truncated: header declares 3 dimensions"):
        read_idx(short)
    empty = _write(tmp_path / "e.idx", b"", False)
    with pytest.raises(ValueError, match=r"e\.idx: truncated"):
        read_idx(empty)


def test_read_idx_bad_gzip_stream(tmp_path):
    good = gzip.compress(idx_bytes(0x08, "B", (100,), list(range(100))))
    cut = _write(tmp_path / "cut.gz", good[: len(good) // 2], False)
    with pytest.raises(ValueError, match=r"cut\.gz: truncated gzip stream"):
        read_idx(cut)
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # corrupt the CRC32 trailer
    bad = _write(tmp_path / "crc.gz", bytes(flipped), False)
    with pytest.raises(ValueError, match=r"crc\.gz: corrupt gzip stream"):
        read_idx(bad)
    not_gz = _write(tmp_path / "plain.gz", idx_bytes(0x08, "B", (1,), [1]), False)
    with pytest.raises(ValueError, match=r"plain\.gz: not a gzip file"):
        read_idx(not_gz)


@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
       kind=st.sampled_from([t[2] for t in IDX_TYPES]))
def test_write_read_any_shape(tmp_path_factory, shape, kind):
    arr = (np.arange(int(np.prod(shape))) % 100).astype(kind).reshape(shape)
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(path, arr)
    out = read_idx(path)
    assert out.shape == tuple(shape) and out.dtype == np.dtype(kind)
    np.testing.assert_array_equal(out, arr)


# ------------------------------------------------------------------------------- bundled MNIST ----
@pytest.fixture(scope="module")
def mnist_train():
    return MNIST(split="train")


def test_bundled_mnist_train(mnist_train):
    ds = mnist_train
    assert len(ds) == 5000
    assert ds.data.shape == (5000, 1, 28, 28) and ds.data.dtype == np.float32
    assert ds.targets.dtype == np.int64
    assert ds.data.min() == 0.0 and ds.data.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.targets, minlength=10), np.full(10, 500))
    x, y = ds[123]
    assert x.shape == (1, 28, 28) and int(y) == int(ds.targets[123])


def test_bundled_mnist_test_matches_raw_bytes():
    ds = MNIST(split="test")
    assert len(ds) == 10000 and ds.data.shape == (10000, 1, 28, 28)
    folder = os.path.join(os.path.dirname(fc.data.__file__), "mnist")
    with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        raw_labels = f.read()
    assert raw_labels[:8] == b"\x00\x00\x08\x01" + struct.pack(">I", 10000)
    np.testing.assert_array_equal(ds.targets, np.frombuffer(raw_labels[8:], dtype=np.uint8))
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        head = f.read(16 + 784)
    np.testing.assert_allclose(ds.data[0, 0], np.frombuffer(head[16:], dtype=np.uint8).reshape(28, 28) / 255.0,
                               rtol=0, atol=1e-7)
    # the official test set's well-known class counts and first labels
    np.testing.assert_array_equal(np.bincount(ds.targets), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert ds.targets[:3].tolist() == [7, 2, 1]


def test_mnist_custom_root_raw_files_and_errors(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    ds = MNIST(root=tmp_path, split="test")
    np.testing.assert_allclose(ds.data[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.targets, [1, 2, 3])
    with pytest.raises(FileNotFoundError, match=r"MNIST: no train split in"):
        MNIST(root=tmp_path, split="train")
    with pytest.raises(ValueError, match=r"MNIST: expected split 'train' or 'test', got 'val'"):
        MNIST(split="val")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"has 3 images but .* has 2 labels"):
        MNIST(root=tmp_path, split="test")


def test_mnist_transform_applies_per_sample_and_batch(mnist_train):
    ds = MNIST(split="train", transform=Normalize(0.5, 0.25))
    x, _ = ds[7]
    np.testing.assert_allclose(x, (mnist_train.data[7] - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    xb, _ = ds.get_batch([7, 8])
    np.testing.assert_allclose(xb[0], x, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------ datasets ----
class ListDataset(Dataset):
    """A plain per-sample dataset (no arrays), to exercise the loader's generic path."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def small_arrays(n=37):
    x = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 2, 3, 3)
    y = np.arange(n, dtype=np.int64) % 5
    return x, y


def test_tensor_dataset_validation():
    with pytest.raises(ValueError, match=r"TensorDataset: expected arrays of equal length, got lengths \[3, 4\]"):
        TensorDataset(np.zeros(3), np.zeros(4))
    ds = TensorDataset(*small_arrays(5))
    with pytest.raises(IndexError, match="out of range"):
        ds[5]
    assert ds[-1][1] == 4
    x, y = ds.get_batch(np.array([4, 0]))
    assert x.shape == (2, 2, 3, 3) and list(y) == [4, 0]


def test_stratified_subset_counts_determinism_nesting():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    a = stratified_subset(labels, 5, seed=3)
    b = stratified_subset(labels, 5, seed=3)
    c = stratified_subset(labels, 5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.bincount(labels[a]), [5, 5, 5, 5])
    assert len(set(a.tolist())) == 20
    assert set(a.tolist()) <= set(stratified_subset(labels, 8, seed=3).tolist())
    with pytest.raises(ValueError, match=r"stratified_subset: class 0 has only 10 samples, 11 requested"):
        stratified_subset(labels, 11)


def test_stratified_subset_of_dataset(mnist_train):
    sub = stratified_subset(mnist_train, 10, seed=0)
    assert isinstance(sub, Subset) and len(sub) == 100
    np.testing.assert_array_equal(np.bincount(sub.targets), np.full(10, 10))
    x, y = DataLoader(sub, batch_size=100).__iter__().__next__()
    np.testing.assert_array_equal(x, mnist_train.data[sub.indices])
    generic = stratified_subset(ListDataset(*small_arrays(40)), 3, seed=1)
    np.testing.assert_array_equal(np.bincount(generic.targets), [3] * 5)


def test_random_split():
    ds = TensorDataset(*small_arrays(37))
    parts = random_split(ds, [30, 7], seed=0)
    assert [len(p) for p in parts] == [30, 7]
    everything = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(everything), np.arange(37))
    np.testing.assert_array_equal(random_split(ds, [30, 7], seed=0)[1].indices, parts[1].indices)
    assert [len(p) for p in random_split(ds, [0.5, 0.5], seed=0)] == [19, 18]
    with pytest.raises(ValueError, match="random_split: lengths"):
        random_split(ds, [30, 8])


# -------------------------------------------------------------------------------------- loader ----
def epoch_batches(loader):
    return [tuple(np.copy(a) for a in batch) for batch in loader]


def concat_labels(batches):
    return np.concatenate([b[1] for b in batches])


def test_loader_batches_shapes_and_len():
    x, y = small_arrays(37)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    batches = epoch_batches(loader)
    assert len(loader) == 5 == len(batches)
    assert [len(b[0]) for b in batches] == [8, 8, 8, 8, 5]
    assert batches[0][0].shape == (8, 2, 3, 3) and batches[0][0].dtype == np.float32
    assert batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    dropped = DataLoader(TensorDataset(x, y), batch_size=8, drop_last=True)
    assert len(dropped) == 4 and [len(b[0]) for b in dropped] == [8, 8, 8, 8]


def test_loader_seed_determinism_and_epochs():
    x, y = small_arrays(37)
    y = np.arange(37)
    a = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, seed=11)
    b = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, seed=11)
    a0, a1 = concat_labels(epoch_batches(a)), concat_labels(epoch_batches(a))
    b0 = concat_labels(epoch_batches(b))
    np.testing.assert_array_equal(a0, b0)
    assert sorted(a0) == list(range(37)) and sorted(a1) == list(range(37))
    assert not np.array_equal(a0, a1)
    assert not np.array_equal(a0, np.arange(37))
    other = concat_labels(epoch_batches(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, seed=12)))
    assert not np.array_equal(a0, other)
    # rows stay aligned with their labels after shuffling
    for bx, by in epoch_batches(a):
        np.testing.assert_array_equal(bx, x[by])


def test_loader_seed_none_follows_manual_seed():
    ds = TensorDataset(*small_arrays(20))
    fc.manual_seed(5)
    first = concat_labels(epoch_batches(DataLoader(ds, batch_size=4, shuffle=True)))
    fc.manual_seed(5)
    second = concat_labels(epoch_batches(DataLoader(ds, batch_size=4, shuffle=True)))
    np.testing.assert_array_equal(first, second)


def test_loader_set_epoch_reproduces_order():
    ds = TensorDataset(np.zeros((50, 1, 1, 1), np.float32), np.arange(50))
    loader = DataLoader(ds, batch_size=7, shuffle=True, seed=3)
    orders = [concat_labels(epoch_batches(loader)) for _ in range(3)]
    assert loader.epoch == 3
    fresh = DataLoader(ds, batch_size=7, shuffle=True, seed=3)
    fresh.set_epoch(2)
    np.testing.assert_array_equal(concat_labels(epoch_batches(fresh)), orders[2])
    fresh.set_epoch(0)
    np.testing.assert_array_equal(concat_labels(epoch_batches(fresh)), orders[0])


def test_loader_state_dict_resumes_mid_epoch_with_augmentation():
    x = np.random.default_rng(0).random((30, 1, 6, 6)).astype(np.float32)
    ds = TensorDataset(x, np.arange(30))
    aug = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip()])
    ref = DataLoader(ds, batch_size=4, shuffle=True, seed=9, transform=aug)
    epoch_batches(ref)
    full = epoch_batches(ref)  # epoch 1, uninterrupted

    run = DataLoader(ds, batch_size=4, shuffle=True, seed=9, transform=aug)
    epoch_batches(run)
    it = iter(run)
    seen = [next(it) for _ in range(3)]
    state = run.state_dict()
    assert state == {"seed": 9, "epoch": 1, "batches_done": 3}
    assert all(isinstance(v, int) for v in state.values())

    resumed = DataLoader(ds, batch_size=4, shuffle=True, seed=123, transform=aug)
    resumed.load_state_dict(state)
    rest = epoch_batches(resumed)
    assert len(seen) + len(rest) == len(full)
    for got, want in zip(seen + rest, full):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert resumed.state_dict() == {"seed": 9, "epoch": 2, "batches_done": 0}
    # taking the last batch by hand also ends the epoch
    last = DataLoader(ds, batch_size=10, seed=9)
    it = iter(last)
    for _ in range(3):
        next(it)
    assert last.state_dict() == {"seed": 9, "epoch": 1, "batches_done": 0}


def test_loader_fast_path_equals_generic_path_and_subsets():
    x, y = small_arrays(37)
    fast = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True, seed=1)
    slow = DataLoader(ListDataset(x, y), batch_size=6, shuffle=True, seed=1)
    for (fx, fy), (sx, sy) in zip(fast, slow):
        np.testing.assert_array_equal(fx, sx)
        np.testing.assert_array_equal(fy, sy)
        assert sy.dtype == np.int64
    idx = np.array([5, 3, 30, 2, 11])
    sub = Subset(TensorDataset(x, y), idx)
    bx, by = next(iter(DataLoader(sub, batch_size=5)))
    np.testing.assert_array_equal(bx, x[idx])
    np.testing.assert_array_equal(by, y[idx])


class EveryOther:
    """A custom sampler: even indices first, rotated by the epoch."""

    def __init__(self, n):
        self.n, self.epoch, self.calls = n, 0, []

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.calls.append(epoch)

    def __iter__(self):
        order = list(range(0, self.n, 2)) + list(range(1, self.n, 2))
        k = self.epoch % self.n
        return iter(order[k:] + order[:k])

    def __len__(self):
        return self.n


def test_loader_custom_sampler():
    ds = TensorDataset(np.zeros((9, 1, 1, 1), np.float32), np.arange(9))
    sampler = EveryOther(9)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    assert len(loader) == 3
    assert concat_labels(epoch_batches(loader)).tolist() == [0, 2, 4, 6, 8, 1, 3, 5, 7]
    assert concat_labels(epoch_batches(loader)).tolist() == [2, 4, 6, 8, 1, 3, 5, 7, 0]
    loader.set_epoch(7)
    assert sampler.epoch == 7
    # a plain list with __len__ works as a sampler too
    listed = DataLoader(ds, batch_size=2, sampler=[8, 1, 1])
    assert concat_labels(epoch_batches(listed)).tolist() == [8, 1, 1]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(TypeError, match=r"DataLoader: expected a sampler that is iterable and has __len__"):
        DataLoader(ds, sampler=iter([0]))


def test_loader_argument_errors():
    ds = TensorDataset(*small_arrays(4))
    with pytest.raises(ValueError, match=r"DataLoader: expected batch_size as a positive int, got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match=r"DataLoader: expected a dataset"):
        DataLoader(42)
    with pytest.raises(ValueError, match=r"missing keys \['batches_done'\]"):
        DataLoader(ds).load_state_dict({"seed": 1, "epoch": 0})


def test_loader_transform_receives_generator():
    seen = []

    def record(x, rng):
        seen.append(rng.integers(1 << 30))
        return x * 2

    ds = TensorDataset(np.ones((6, 1, 2, 2), np.float32), np.zeros(6, np.int64))
    loader = DataLoader(ds, batch_size=3, seed=4, transform=record)
    assert all((b[0] == 2).all() for b in loader)
    first = list(seen)
    loader.set_epoch(0)
    list(loader)
    assert seen[2:] == first and first[0] != first[1]
    plain = DataLoader(ds, batch_size=6, transform=lambda x: x + 1)
    assert (next(iter(plain))[0] == 2).all()


# ---------------------------------------------------------------------------------- transforms ----
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       pad=st.integers(0, 3), seed=st.integers(0, 1000))
def test_random_crop_is_a_shift_within_padding(n, c, h, w, pad, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, c, h, w)).astype(np.float32) + 1.0  # strictly positive, so zeros = padding
    out = RandomCrop((h, w), padding=pad)(x, np.random.default_rng(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for k in range(n):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if np.array_equal(out[k], padded[k, :, dy:dy + h, dx:dx + w])]
        assert matches, "each crop is the image shifted by at most the padding"
    np.testing.assert_array_equal(RandomCrop((h, w))(x, rng), x)


def test_random_crop_offsets_vary_and_smaller_size():
    x = np.ones((200, 1, 4, 4), np.float32)
    out = RandomCrop(4, padding=1)(x, np.random.default_rng(0))
    # zero padding appears on different sides for different images
    assert len({tuple(np.argwhere(o[0] == 0)[:, 0].tolist()) for o in out}) > 3
    assert RandomCrop((2, 3))(x, np.random.default_rng(0)).shape == (200, 1, 2, 3)
    with pytest.raises(ValueError, match=r"RandomCrop: crop size \(7, 7\) is larger than the padded image"):
        RandomCrop(7, padding=1)(x, np.random.default_rng(0))


def test_random_horizontal_flip():
    x = np.random.default_rng(1).random((64, 2, 3, 5)).astype(np.float32)
    always = RandomHorizontalFlip(p=1.0)
    np.testing.assert_array_equal(always(x), x[..., ::-1])
    np.testing.assert_array_equal(always(always(x)), x)
    half = RandomHorizontalFlip(0.5)
    once = half(x, np.random.default_rng(3))
    np.testing.assert_array_equal(half(once, np.random.default_rng(3)), x)
    flipped = [np.array_equal(o, xi[..., ::-1]) for o, xi in zip(once, x)]
    kept = [np.array_equal(o, xi) for o, xi in zip(once, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    with pytest.raises(ValueError, match="RandomHorizontalFlip: expected a probability"):
        RandomHorizontalFlip(1.5)


def test_normalize_per_channel_stats():
    rng = np.random.default_rng(2)
    x = np.stack([rng.normal(3.0, 2.0, (100, 8, 8)), rng.normal(-1.0, 0.5, (100, 8, 8))], axis=1)
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    out = Normalize(mean, std)(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), [0, 0], atol=1e-10)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), [1, 1], rtol=1e-10)
    assert Normalize(0.5, 0.5)(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"Normalize: mean has 3 values, batch has 2 channels"):
        Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match=r"Normalize: expected std > 0"):
        Normalize(0, 0)
    with pytest.raises(TypeError, match=r"Normalize: expected a float batch"):
        Normalize(0, 1)(np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"Normalize: expected a 4-D NCHW batch"):
        Normalize(0, 1)(np.zeros((2, 2), np.float32))


def test_compose_and_inputs_untouched():
    x = np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32)
    before = x.copy()
    t = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip(), Normalize(0.5, 2.0), lambda b: b + 1])
    a = t(x, np.random.default_rng(8))
    b = t(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    shared = np.random.default_rng(8)  # Compose hands one generator to each step in turn
    manual = Normalize(0.5, 2.0)(RandomHorizontalFlip()(RandomCrop(4, padding=1)(x, shared), shared)) + 1
    np.testing.assert_array_equal(manual, a)


# --------------------------------------------------------------------------------- coord task ----
@pytest.mark.parametrize("size", [4, 7, 16])
def test_coord_dataset_quadrant(size):
    train, test = coord_dataset(size, split="quadrant")
    half = size // 2
    test_pos = {tuple(p) for p in test.arrays[1].astype(int).tolist()}
    train_pos = {tuple(p) for p in train.arrays[1].astype(int).tolist()}
    assert test_pos == {(i, j) for i in range(half, size) for j in range(half, size)}
    assert not train_pos & test_pos
    assert len(train_pos | test_pos) == size * size == len(train) + len(test)


def test_coord_dataset_one_hot_and_directions():
    train, test = coord_dataset(8, split="uniform", seed=1)
    for ds in (train, test):
        images, coords = ds.arrays
        assert images.shape[1:] == (1, 8, 8) and images.dtype == np.float32 and coords.dtype == np.float32
        assert (images.reshape(len(images), -1).sum(axis=1) == 1).all()
        hot = np.argwhere(images[:, 0] == 1)
        np.testing.assert_array_equal(hot[:, 1:], coords.astype(int))
    rev_train, _ = coord_dataset(8, split="uniform", seed=1, direction="coords_to_image")
    np.testing.assert_array_equal(rev_train.arrays[0], train.arrays[1])
    np.testing.assert_array_equal(rev_train.arrays[1], train.arrays[0])


def test_coord_dataset_uniform_split():
    train, test = coord_dataset(10, split="uniform", seed=0)
    assert (len(train), len(test)) == (80, 20)
    pos = lambda ds: {tuple(p) for p in ds.arrays[1].astype(int).tolist()}
    assert not pos(train) & pos(test) and len(pos(train) | pos(test)) == 100
    same, _ = coord_dataset(10, split="uniform", seed=0)
    other, _ = coord_dataset(10, split="uniform", seed=1)
    assert pos(same) == pos(train) and pos(other) != pos(train)
    # test positions are spread over the grid, unlike the quadrant split
    assert len({(i >= 5, j >= 5) for i, j in pos(test)}) == 4
    with pytest.raises(ValueError, match=r"coord_dataset: expected split 'uniform' or 'quadrant'"):
        coord_dataset(8, split="diagonal")
