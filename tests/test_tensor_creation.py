"""Creation functions and random generators: dtypes, shapes and deterministic values against PyTorch;
random ones by their distribution and by seeding (the streams differ from PyTorch's)."""
import numpy as np
import pytest

import fastconv as fc


def same(ours, theirs):
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_deterministic_creation_like_torch(torch):
    same(fc.linspace(0, 1, 5), torch.linspace(0, 1, 5))
    same(fc.linspace(-2, 3, 1), torch.linspace(-2, 3, 1))
    same(fc.linspace(0, 1, 4, dtype=fc.float64), torch.linspace(0, 1, 4, dtype=torch.float64))
    same(fc.logspace(0, 2, 3), torch.logspace(0, 2, 3))
    same(fc.eye(3), torch.eye(3))
    same(fc.eye(2, 4), torch.eye(2, 4))
    same(fc.eye(3, dtype=fc.int64), torch.eye(3, dtype=torch.int64))
    for fill in (1, 1.5, True):
        same(fc.full((2, 3), fill), torch.full((2, 3), fill))      # dtype inferred from the value
    same(fc.full((2,), 7, dtype=fc.float64), torch.full((2,), 7, dtype=torch.float64))
    same(fc.empty(2, 3), torch.zeros(2, 3))
    assert fc.empty((4,), dtype=fc.int64).dtype == np.int64
    same(fc.zeros(2, 3), torch.zeros(2, 3))
    same(fc.ones((2, 3), dtype=fc.int32), torch.ones((2, 3), dtype=torch.int32))
    same(fc.arange(5), torch.arange(5))
    same(fc.arange(1, 2, 0.25), torch.arange(1, 2, 0.25))
    x = fc.ones(2, 3, dtype=fc.float64)
    same(fc.full_like(x, 4), torch.full_like(torch.ones(2, 3, dtype=torch.float64), 4))
    same(fc.empty_like(x), torch.zeros(2, 3, dtype=torch.float64))
    same(x.new_zeros(2), torch.ones(1, dtype=torch.float64).new_zeros(2))
    same(x.new_full((2,), 3.0), torch.ones(1, dtype=torch.float64).new_full((2,), 3.0))
    same(fc.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    same(fc.tensor([[1, 2]]), torch.tensor([[1, 2]]))
    same(fc.tensor(True), torch.tensor(True))


def test_from_numpy_shares_memory_and_as_tensor_avoids_copies(torch):
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = fc.from_numpy(arr)
    assert t.dtype == np.float64 and np.shares_memory(t.numpy(), arr)
    t[0, 0] = 10.0
    assert arr[0, 0] == 10.0
    arr[1, 1] = -1.0
    assert t[1, 1].item() == -1.0
    assert torch.from_numpy(arr).dtype == torch.float64
    assert np.shares_memory(fc.as_tensor(arr).numpy(), arr)
    assert not np.shares_memory(fc.as_tensor(arr, dtype=fc.float32).numpy(), arr)
    assert fc.as_tensor(t) is t and fc.as_tensor([1.0, 2.0]).dtype == np.float32
    assert fc.is_tensor(t) and not fc.is_tensor(arr) and fc.numel(t) == 6
    with pytest.raises(TypeError, match="from_numpy: expected an np.ndarray"):
        fc.from_numpy([1, 2])


def test_random_creation_dtypes_ranges_and_shapes_like_torch(torch):
    fc.manual_seed(0)
    r = fc.randint(0, 10, (1000,))
    assert str(torch.randint(0, 10, (3,)).dtype) == "torch.int64"
    assert r.dtype == np.int64 and r.numpy().min() >= 0 and r.numpy().max() <= 9 and len(np.unique(r.numpy())) == 10
    assert fc.randint(5, (2, 3)).shape == (2, 3) and fc.randint(3, 5, size=(4,)).numpy().min() >= 3
    p = fc.randperm(20)
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(20))
    assert str(torch.randperm(3).dtype) == "torch.int64"
    n = fc.randn(4000, dtype=fc.float64)
    assert abs(n.mean().item()) < 0.1 and abs(n.std().item() - 1) < 0.05
    u = fc.rand(2, 3)
    assert u.dtype == np.float32 and u.shape == (2, 3)
    assert fc.rand_like(u).shape == (2, 3) and fc.randn_like(u).dtype == np.float32
    assert fc.randint_like(u, 4).numpy().max() < 4
    with pytest.raises(ValueError, match="randint: expected low < high"):
        fc.randint(3, 3, (2,))
    with pytest.raises(TypeError, match="randint: expected a size tuple"):
        fc.randint(3)


def test_manual_seed_and_generators_like_torch(torch):
    g_torch = torch.manual_seed(1)
    g = fc.manual_seed(1)
    assert isinstance(g, fc.Generator) and g is fc.default_generator and g.initial_seed() == 1
    assert isinstance(g_torch, torch.Generator)
    a = fc.randn(5).numpy().copy()
    fc.manual_seed(1)
    np.testing.assert_array_equal(fc.randn(5).numpy(), a)
    gen = fc.Generator().manual_seed(42)
    assert gen.manual_seed(42) is gen and gen.initial_seed() == 42
    first = (fc.randperm(10, generator=gen).tolist(), fc.randint(0, 100, (3,), generator=gen).tolist(),
             fc.randn(3, generator=gen).tolist(), fc.rand(2, generator=gen).tolist())
    gen.manual_seed(42)
    fc.randn(7)                                   # the global generator is a separate stream
    again = (fc.randperm(10, generator=gen).tolist(), fc.randint(0, 100, (3,), generator=gen).tolist(),
             fc.randn(3, generator=gen).tolist(), fc.rand(2, generator=gen).tolist())
    assert first == again
    state = gen.get_state()
    x = fc.randn(4, generator=gen).tolist()
    gen.set_state(state)
    assert fc.randn(4, generator=gen).tolist() == x
    assert fc.Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1 == torch.Generator().manual_seed(-1).initial_seed()
    seed = fc.seed()
    assert fc.initial_seed() == seed
    with pytest.raises(TypeError, match="manual_seed: expected an int seed"):
        fc.manual_seed(1.5)
    with pytest.raises(TypeError, match="generator: expected a fastconv.Generator"):
        fc.randn(2, generator=object())


def test_dtype_names_like_torch(torch):
    for name in ("float32", "float", "float64", "double", "int64", "long", "int32", "int", "int16", "short",
                 "uint8", "bool"):
        ours, theirs = getattr(fc, name), getattr(torch, name)
        assert fc.zeros(1, dtype=ours).dtype.name == str(theirs).replace("torch.", ""), name
    assert fc.get_default_dtype() == np.float32 and torch.get_default_dtype() == torch.float32
    assert fc.ones(1).dtype == fc.float32 and fc.ones(1).dtype == fc.float
    assert fc.tensor([1.0], dtype=float).dtype == torch.tensor([1.0], dtype=float).numpy().dtype
