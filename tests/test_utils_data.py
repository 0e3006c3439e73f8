"""fastconv.utils.data against torch.utils.data: datasets, random_split, samplers, default_collate,
DataLoader batches/lengths/argument checks, in-process workers, fastconv.data built on it."""
import collections
import math
import warnings

import numpy as np
import pytest

import fastconv as fc
from fastconv.utils import data as D


def _plain(obj):
    """A batch as plain Python/numpy for comparisons: Tensors (ours and torch's) become arrays."""
    if isinstance(obj, fc.Tensor):
        return ("T", obj.numpy().dtype.str, obj.numpy().tolist())
    if type(obj).__module__.startswith("torch") and hasattr(obj, "numpy"):
        return ("T", obj.numpy().dtype.str, obj.numpy().tolist())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__,) + tuple(_plain(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


Point = collections.namedtuple("Point", ["x", "label"])

SAMPLE_BATCHES = {
    "tuple-of-arrays": [(np.full((2, 3), i, np.float32), i) for i in range(4)],
    "list-fields": [[np.arange(3) + i, float(i)] for i in range(3)],
    "dict": [{"image": np.ones((1, 2), np.uint8) * i, "name": f"s{i}", "w": 0.5 * i} for i in range(3)],
    "namedtuple": [Point(np.float64(i), i % 2) for i in range(5)],
    "numpy-scalars": [np.float32(i) / 3 for i in range(4)],
    "bools": [True, False, True],
    "nested": [({"a": (np.ones(2) * i, [i, i + 1])}, "str") for i in range(3)],
    "float64-arrays": [np.linspace(0, 1, 4) * i for i in range(2)],
}


@pytest.mark.parametrize("name", sorted(SAMPLE_BATCHES))
def test_default_collate_matches_torch(torch, name):
    from torch.utils.data import default_collate as torch_collate

    batch = SAMPLE_BATCHES[name]
    ours, theirs = D.default_collate(batch), torch_collate(batch)
    assert _plain(ours) == _plain(theirs)


def test_default_collate_of_tensors_and_python_numbers():
    out = D.default_collate([(fc.tensor(np.ones((2, 2), np.float32)), 1.5, 3) for _ in range(4)])
    assert isinstance(out, list) and [t.shape for t in out] == [(4, 2, 2), (4,), (4,)]
    assert [t.dtype for t in out] == [np.float32, np.float64, np.int64]  # Python floats collate to float64
    assert not out[0].requires_grad


def test_default_collate_errors():
    with pytest.raises(TypeError, match="default_collate: batch must contain Tensors, numpy arrays"):
        D.default_collate([np.array(["a", "b"]), np.array(["c", "d"])])
    with pytest.raises(ValueError, match="default_collate: stack expects each element to be of equal size"):
        D.default_collate([np.ones(3), np.ones(4)])
    with pytest.raises(ValueError, match="each element in list of batch should be of equal size"):
        D.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        D.default_collate([None, None])


def test_default_convert_matches_torch(torch):
    from torch.utils.data import default_convert as torch_convert

    sample = {"x": np.arange(3.0), "pair": (np.int64(2), "s"), "list": [np.ones(2, np.float32)], "n": 4}
    assert _plain(D.default_convert(sample)) == _plain(torch_convert(sample))


# ---- datasets -----------------------------------------------------------------------------------------
def test_tensor_dataset_matches_torch(torch):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10) % 3
    ours = D.TensorDataset(fc.tensor(x), fc.tensor(y))
    theirs = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 10
    for i in (0, 3, -1):
        assert _plain(ours[i]) == _plain(theirs[i])
    assert _plain(ours.__getitems__([4, 1, 1])) == _plain([ours[4], ours[1], ours[1]])
    assert isinstance(ours.tensors, tuple) and ours.tensors[0].shape == (10, 2)
    assert D.TensorDataset(x, y)[2][0].numpy().tolist() == [4.0, 5.0]  # ndarrays are accepted
    with pytest.raises(ValueError, match="TensorDataset: size mismatch between tensors, first dimensions are"):
        D.TensorDataset(fc.ones(3, 2), fc.ones(4))


def test_concat_subset_stack_and_chain_datasets(torch):
    a = D.TensorDataset(fc.tensor(np.arange(5)))
    b = D.TensorDataset(fc.tensor(np.arange(10, 13)))
    cat = a + b
    tcat = torch.utils.data.ConcatDataset([torch.utils.data.TensorDataset(torch.arange(5)),
                                           torch.utils.data.TensorDataset(torch.arange(10, 13))])
    assert isinstance(cat, D.ConcatDataset) and cat.cumulative_sizes == tcat.cumulative_sizes == [5, 8]
    assert [int(cat[i][0].item()) for i in range(-8, 8)] == [int(tcat[i][0]) for i in range(-8, 8)]
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        cat[-9]
    with pytest.raises(IndexError):
        cat[8]
    sub = D.Subset(cat, [7, 0, 5])
    assert len(sub) == 3 and [int(s[0].item()) for s in sub.__getitems__([0, 1, 2])] == [12, 0, 10]
    stacked = D.StackDataset(a, D.TensorDataset(fc.tensor(np.arange(5) * 2)))
    assert int(stacked[3][1][0].item()) == 6
    named = D.StackDataset(x=a, y=a)
    assert set(named[0]) == {"x", "y"}
    with pytest.raises(ValueError, match="StackDataset: size mismatch between datasets"):
        D.StackDataset(a, b)

    class Stream(D.IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    chain = Stream(2) + Stream(3)
    assert isinstance(chain, D.ChainDataset) and list(chain) == [0, 1, 0, 1, 2] and len(chain) == 5
    with pytest.raises(TypeError, match="ConcatDataset does not support IterableDataset"):
        D.ConcatDataset([Stream(2)])


@pytest.mark.parametrize("n,lengths", [(10, [0.3, 0.3, 0.4]), (7, [0.5, 0.5]), (11, [0.1, 0.2, 0.7]),
                                       (100, [0.8, 0.2]), (5, [3, 2]), (9, [1 / 3] * 3), (3, [0.9, 0.1])])
def test_random_split_sizes_match_torch_and_cover_the_dataset(torch, n, lengths):
    ds = D.TensorDataset(fc.tensor(np.arange(n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-length splits warn in both
        parts = D.random_split(ds, lengths, generator=np.random.default_rng(0))
        tparts = torch.utils.data.random_split(torch.utils.data.TensorDataset(torch.arange(n)), lengths)
    assert [len(p) for p in parts] == [len(p) for p in tparts]
    seen = sorted(i for p in parts for i in p.indices)
    assert seen == list(range(n))


def test_random_split_generators_and_errors():
    ds = D.TensorDataset(fc.tensor(np.arange(20)))
    a = D.random_split(ds, [15, 5], generator=np.random.default_rng(3))
    b = D.random_split(ds, [15, 5], generator=np.random.default_rng(3))
    assert a[0].indices == b[0].indices and a[0].indices != list(range(15))

    class Holder:  # a generator object that keeps a numpy Generator (as fastconv's Generator does)
        def __init__(self, seed):
            self.np_generator = np.random.default_rng(seed)

    assert D.random_split(ds, [15, 5], generator=Holder(3))[1].indices == a[1].indices

    class LikeFastconvGenerator:  # fastconv.Generator keeps its numpy Generator in _rng
        def __init__(self, seed):
            self._rng = np.random.default_rng(seed)

    assert D.random_split(ds, [15, 5], generator=LikeFastconvGenerator(3))[1].indices == a[1].indices
    fc.manual_seed(5)
    c = D.random_split(ds, [0.5, 0.5])
    fc.manual_seed(5)
    assert D.random_split(ds, [0.5, 0.5])[0].indices == c[0].indices
    with pytest.raises(ValueError, match="random_split: lengths \\[15, 6\\] sum to 21"):
        D.random_split(ds, [15, 6])
    with pytest.raises(TypeError, match="random_split: expected generator as None, a fastconv Generator"):
        D.random_split(ds, [10, 10], generator=42)
    with pytest.warns(UserWarning, match="length of split at index 1 is 0"):
        D.random_split(D.TensorDataset(fc.tensor(np.arange(2))), [0.99, 0.01])


# ---- samplers -----------------------------------------------------------------------------------------
def test_sequential_and_batch_samplers_match_torch(torch):
    for n, bs, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (0, 2, False)]:
        ours = D.BatchSampler(D.SequentialSampler(range(n)), bs, drop)
        theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert list(D.BatchSampler([4, 2, 9], 2, False)) == [[4, 2], [9]]  # any iterable of indices
    with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
        D.BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        D.BatchSampler(range(3), 2, "no")


def test_random_sampler_permutations_replacement_and_reproducibility():
    data = list(range(50))
    fc.manual_seed(0)
    sampler = D.RandomSampler(data)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == data and first != second  # a new order every epoch
    fc.manual_seed(0)
    assert list(D.RandomSampler(data)) == first  # the global seed fixes the sequence
    gen = np.random.default_rng(7)
    assert list(D.RandomSampler(data, generator=gen)) != list(D.RandomSampler(data, generator=gen))
    assert list(D.RandomSampler(data, generator=np.random.default_rng(7))) == \
        list(D.RandomSampler(data, generator=np.random.default_rng(7)))
    drawn = list(D.RandomSampler(data, replacement=True, num_samples=500, generator=np.random.default_rng(1)))
    assert len(drawn) == 500 and set(drawn) <= set(data) and len(set(drawn)) < 50 + 1
    long = list(D.RandomSampler(range(4), num_samples=10, generator=np.random.default_rng(2)))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3] and len(set(long[8:])) == 2
    assert len(D.RandomSampler(data, num_samples=7)) == 7
    with pytest.raises(TypeError, match="RandomSampler: replacement should be a boolean value"):
        D.RandomSampler(data, replacement=1)
    with pytest.raises(ValueError, match="RandomSampler: num_samples should be a positive integer value"):
        D.RandomSampler(data, num_samples=0)


def test_subset_and_weighted_samplers():
    indices = [3, 8, 11, 20]
    got = list(D.SubsetRandomSampler(indices, generator=np.random.default_rng(0)))
    assert sorted(got) == indices and len(D.SubsetRandomSampler(indices)) == 4
    weights = [0.0, 1.0, 3.0, 0.0]
    draws = np.array(list(D.WeightedRandomSampler(weights, 4000, generator=np.random.default_rng(0))))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[3] == 0 and abs(counts[2] / counts[1] - 3.0) < 0.3
    unique = list(D.WeightedRandomSampler([1, 1, 1, 5], 3, replacement=False, generator=np.random.default_rng(1)))
    assert len(set(unique)) == 3
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        D.WeightedRandomSampler(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2 non-zero weights"):
        D.WeightedRandomSampler([1, 0, 1], 3, replacement=False)
    with pytest.raises(ValueError, match="non-negative weights"):
        D.WeightedRandomSampler([1, -1], 3)


# ---- DataLoader ---------------------------------------------------------------------------------------
def _twin_data(torch, n=11):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    return D.TensorDataset(fc.tensor(x), fc.tensor(y)), torch.utils.data.TensorDataset(torch.tensor(x),
                                                                                         torch.tensor(y))


LOADER_CASES = [dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=1), dict(batch_size=None),
                dict(batch_size=20), dict(batch_size=3, num_workers=2), dict(batch_size=3, num_workers=1,
                                                                             persistent_workers=True)]


@pytest.mark.parametrize("kwargs", LOADER_CASES, ids=[str(k) for k in LOADER_CASES])
def test_dataloader_batches_match_torch(torch, kwargs):
    ours_ds, torch_ds = _twin_data(torch)
    ours = D.DataLoader(ours_ds, **kwargs)
    theirs = torch.utils.data.DataLoader(torch_ds, **{k: v for k, v in kwargs.items()
                                                      if k not in ("num_workers", "persistent_workers")})
    assert len(ours) == len(theirs)
    for _ in range(2):  # two epochs (the persistent iterator is reused)
        assert [_plain(b) for b in ours] == [_plain(b) for b in theirs]


def test_dataloader_with_samplers_and_collate_fn_matches_torch(torch):
    ours_ds, torch_ds = _twin_data(torch)
    order = [5, 2, 9, 0, 1]
    cases = [dict(sampler=order, batch_size=2), dict(batch_sampler=[[1, 2], [3], [10, 0, 4]]),
             dict(batch_size=3, collate_fn=lambda rows: len(rows)),
             dict(sampler=D.SequentialSampler(range(4)), batch_size=None)]
    for kwargs in cases:
        ours = D.DataLoader(ours_ds, **kwargs)
        tk = dict(kwargs)
        if isinstance(tk.get("sampler"), D.SequentialSampler):
            tk["sampler"] = torch.utils.data.SequentialSampler(range(4))
        theirs = torch.utils.data.DataLoader(torch_ds, **tk)
        assert [_plain(b) for b in ours] == [_plain(b) for b in theirs]
        assert len(ours) == len(theirs)


def test_shuffle_covers_every_sample_reproducibly():
    ds = D.TensorDataset(fc.tensor(np.arange(23)))
    loader = D.DataLoader(ds, batch_size=5, shuffle=True, generator=np.random.default_rng(4))
    epochs = [np.concatenate([b[0].numpy() for b in loader]) for _ in range(2)]
    assert all(sorted(e.tolist()) == list(range(23)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    again = D.DataLoader(ds, batch_size=5, shuffle=True, generator=np.random.default_rng(4))
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in again]), epochs[0])
    fc.manual_seed(1)
    a = [b[0].numpy().tolist() for b in D.DataLoader(ds, batch_size=5, shuffle=True)]
    fc.manual_seed(1)
    assert a == [b[0].numpy().tolist() for b in D.DataLoader(ds, batch_size=5, shuffle=True)]


class Range(D.IterableDataset):
    """An iterable dataset that splits its range among workers, as PyTorch's documentation shows."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = D.get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        per = int(math.ceil((self.end - self.start) / info.num_workers))
        lo = self.start + info.id * per
        return iter(range(lo, min(lo + per, self.end)))

    def __len__(self):
        return self.end - self.start


@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None),
                                    dict(batch_size=4, num_workers=3)])
def test_iterable_dataset_batches_and_length_match_torch(torch, kwargs):
    class TorchRange(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3, 13))

        def __len__(self):
            return 10

    ours = D.DataLoader(Range(3, 13), **kwargs)
    theirs = torch.utils.data.DataLoader(TorchRange(), **{k: v for k, v in kwargs.items() if k != "num_workers"})
    assert [_plain(b) for b in ours] == [_plain(b) for b in theirs]
    assert len(ours) == len(theirs)


def test_workers_report_worker_info_and_run_init_fn():
    """Worker processes (see test_dataloader_workers.py for the rest): each sample says which worker
    fetched it and whether that worker's init function ran there."""
    class Probe(D.Dataset):
        def __getitem__(self, i):
            info = D.get_worker_info()
            return np.array([i, -1 if info is None else info.id, -1 if info is None else info.num_workers,
                             getattr(D, "_probe_init", -1), info is not None and info.dataset is self])

        def __len__(self):
            return 4

    def init(worker_id):
        D._probe_init = worker_id

    probe = Probe()
    loader = D.DataLoader(probe, batch_size=2, num_workers=2, worker_init_fn=init, multiprocessing_context="fork")
    for _ in range(2):
        rows = np.concatenate([b.numpy() for b in loader])
        assert rows[:, 0].tolist() == [0, 1, 2, 3]
        assert rows[:, 1].tolist() == [0, 0, 1, 1] and set(rows[:, 2]) == {2}  # batches go round-robin
        assert rows[:, 3].tolist() == rows[:, 1].tolist() and rows[:, 4].all()
    assert D.get_worker_info() is None and not hasattr(D, "_probe_init")  # the main process is untouched
    rows = np.concatenate([b.numpy() for b in D.DataLoader(probe, batch_size=2)])
    assert set(rows[:, 1]) == {-1}
    with pytest.raises(RuntimeError, match="cannot assign"):
        D.WorkerInfo(0, 1, 0, None).id = 3


def test_getitems_is_used_for_batches():
    class Batched(D.Dataset):
        def __init__(self):
            self.calls = []

        def __getitem__(self, i):
            raise AssertionError("per-item access while __getitems__ exists")

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [np.float32(i) for i in indices]

        def __len__(self):
            return 5

    ds = Batched()
    assert [b.numpy().tolist() for b in D.DataLoader(ds, batch_size=2)] == [[0, 1], [2, 3], [4]]
    assert ds.calls == [[0, 1], [2, 3], [4]]


ARGUMENT_CASES = [dict(num_workers=-1), dict(timeout=-1), dict(prefetch_factor=2), dict(persistent_workers=True),
                  dict(sampler=[0, 1], shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
                  dict(batch_sampler=[[0]], drop_last=True), dict(batch_size=None, drop_last=True),
                  dict(num_workers=2, prefetch_factor=-1)]


@pytest.mark.parametrize("kwargs", ARGUMENT_CASES, ids=[str(k) for k in ARGUMENT_CASES])
def test_dataloader_rejects_what_torch_rejects(torch, kwargs):
    ours_ds, torch_ds = _twin_data(torch)
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(torch_ds, **kwargs)
    with pytest.raises(ValueError, match="DataLoader"):
        D.DataLoader(ours_ds, **kwargs)


def test_dataloader_iterable_dataset_rules_and_frozen_attributes():
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified shuffle option"):
        D.DataLoader(Range(0, 3), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified sampler option"):
        D.DataLoader(Range(0, 3), sampler=[0])
    loader = D.DataLoader(D.TensorDataset(fc.ones(3)), batch_size=2, pin_memory=True, num_workers=2, timeout=5,
                          prefetch_factor=4, multiprocessing_context="spawn", pin_memory_device="")
    assert loader.pin_memory and loader.prefetch_factor == 4 and len(loader) == 2
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 5
    loader.num_workers = 0  # other attributes stay settable, as in torch
    with pytest.raises(TypeError, match="DataLoader: expected a map-style dataset"):
        D.DataLoader(5)


def test_fastconv_data_datasets_work_with_both_loaders():
    mnist = fc.data.Subset(fc.data.MNIST(split="test"), np.arange(10))
    assert isinstance(mnist, D.Dataset) and isinstance(mnist, D.Subset)
    x, y = next(iter(D.DataLoader(mnist, batch_size=4)))
    assert isinstance(x, fc.Tensor) and x.shape == (4, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    # fastconv.data's loader takes a utils.data dataset (batches stay numpy arrays)
    tds = D.TensorDataset(fc.tensor(np.arange(6, dtype=np.float32).reshape(6, 1)), fc.tensor(np.arange(6)))
    xb, yb = next(iter(fc.data.DataLoader(tds, batch_size=4, seed=0)))
    assert isinstance(xb, np.ndarray) and xb.shape == (4, 1) and yb.tolist() == [0, 1, 2, 3]


def test_legacy_loader_order_is_a_random_sampler_of_the_epoch_generator():
    """fastconv.data.DataLoader's shuffle (and so resumed checkpoints) is RandomSampler's permutation."""
    ds = fc.data.TensorDataset(np.arange(17, dtype=np.float32).reshape(17, 1), np.arange(17))
    loader = fc.data.DataLoader(ds, batch_size=17, shuffle=True, seed=3)
    (_, labels), = list(loader)
    expected = np.random.default_rng([3, 0, 0]).permutation(17)
    np.testing.assert_array_equal(labels, expected)


def test_training_loop_with_a_pytorch_style_loader():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    loader = D.DataLoader(D.TensorDataset(fc.tensor(x), fc.tensor(y)), batch_size=16, shuffle=True,
                          generator=np.random.default_rng(1))
    model = fc.nn.Sequential(fc.nn.Linear(2, 8), fc.nn.ReLU(), fc.nn.Linear(8, 2))
    opt = fc.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = fc.nn.CrossEntropyLoss()
    for _ in range(15):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    accuracy = (model(fc.tensor(x)).numpy().argmax(1) == y).mean()
    assert accuracy > 0.9


def test_worker_seed_per_iterator_and_kept_by_persistent_workers():
    class Seeds(D.Dataset):
        def __getitem__(self, i):
            return D.get_worker_info().seed

        def __len__(self):
            return 4

    loader = D.DataLoader(Seeds(), batch_size=2, num_workers=1, generator=np.random.default_rng(0),
                          multiprocessing_context="fork")
    first, second = (set(np.concatenate([b.numpy() for b in loader]).tolist()) for _ in range(2))
    assert len(first) == len(second) == 1 and first != second  # a new base seed every epoch
    persistent = D.DataLoader(Seeds(), batch_size=2, num_workers=1, persistent_workers=True,
                              multiprocessing_context="fork")
    seeds = [set(np.concatenate([b.numpy() for b in persistent]).tolist()) for _ in range(2)]
    assert len(seeds[0]) == 1 and seeds[0] == seeds[1]  # the persistent worker keeps its seed


def test_tensor_dataset_batches_are_prestacked_and_subclasses_keep_their_getitem():
    from fastconv.utils.data.collate import PrestackedBatch

    class Doubled(D.TensorDataset):
        def __getitem__(self, i):
            (x,) = super().__getitem__(i)
            return (x * 2,)

    plain = D.TensorDataset(fc.tensor(np.arange(4.0)))
    batch = plain.__getitems__([3, 1])
    assert isinstance(batch, PrestackedBatch) and batch.stacked[0].tolist() == [3.0, 1.0]
    assert [b[0].numpy().tolist() for b in D.DataLoader(Doubled(fc.tensor(np.arange(4.0))), batch_size=2)] == \
        [[0.0, 2.0], [4.0, 6.0]]
