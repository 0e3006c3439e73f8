"""Devices: fc.device, fc.cuda / fc.backends / fc.accelerator, Tensor.to and Module.to, device= on
creation functions; each compared with what PyTorch (CPU build) does."""
import copy

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn


@pytest.mark.parametrize("args", [("cpu",), ("cpu:0",), ("cpu", 0), ("cuda",), ("cuda:1",), ("cuda", 2), ("mps",),
                                  ("meta",)])
def test_device_attributes_str_repr_and_equality_match_torch(torch, args):
    ours, theirs = fc.device(*args), torch.device(*args)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)
    assert fc.device(ours) == ours and hash(fc.device(ours)) == hash(ours)


def test_device_equality_table_matches_torch(torch):
    names = ["cpu", "cpu:0", "cpu:1", "cuda", "cuda:0"]
    for a in names:
        for b in names:
            assert (fc.device(a) == fc.device(b)) == (torch.device(a) == torch.device(b)), (a, b)
    assert (fc.device("cpu") == "cpu") == (torch.device("cpu") == "cpu")  # False in both
    assert len({fc.device("cpu"), fc.device("cpu"), fc.device("cpu:0")}) == 2


@pytest.mark.parametrize("bad", ["foo", "cpu:x", "cuda:-1", "cpu:0:1"])
def test_invalid_device_strings_raise_like_torch(torch, bad):
    with pytest.raises(RuntimeError):
        torch.device(bad)
    with pytest.raises(RuntimeError, match="device"):
        fc.device(bad)
    with pytest.raises(RuntimeError, match="must not be negative"):
        fc.device("cpu", -1)
    with pytest.raises(TypeError):
        fc.device(3.0)


def test_accelerators_report_absent_like_a_cpu_only_torch(torch):
    assert fc.cuda.is_available() is False is torch.cuda.is_available()
    assert fc.cuda.device_count() == 0 == torch.cuda.device_count()
    assert fc.backends.mps.is_available() is False is torch.backends.mps.is_available()
    assert fc.backends.mps.is_built() is False
    assert fc.backends.cudnn.is_available() is False
    assert fc.accelerator.is_available() is False is torch.accelerator.is_available()
    assert fc.accelerator.current_accelerator() is None is torch.accelerator.current_accelerator()
    fc.cuda.manual_seed(0)                     # accepted and ignored, as in torch without CUDA
    fc.cuda.manual_seed_all(0)
    torch.cuda.manual_seed_all(0)
    fc.backends.cudnn.benchmark = True         # scripts set it unconditionally (DCGAN)
    fc.backends.cudnn.benchmark = False
    with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
        fc.cuda.current_device()


def test_device_keyword_script_idiom():
    """The line every PyTorch script starts with picks the CPU and everything accepts it."""
    device = fc.device("cuda" if fc.cuda.is_available() else "cpu")
    x = fc.randn(2, 3, device=device)
    assert x.device == fc.device("cpu") and x.device.type == "cpu" and not x.is_cuda
    assert x.to(device) is x and x.cpu() is x
    model = nn.Linear(3, 4).to(device)
    assert model(x.to(device)).shape == (2, 4)


def test_tensor_to_forms_match_torch(torch):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    ours, theirs = fc.tensor(arr), torch.tensor(arr)
    other64 = fc.zeros(1, dtype=fc.float64)
    cases = [
        ((), {}), (("cpu",), {}), ((fc.device("cpu"),), {}), ((fc.float64,), {}), ((fc.float32,), {}),
        (("cpu", fc.float64), {}), ((), {"dtype": fc.int64}), ((), {"device": "cpu", "dtype": fc.float64}),
        (("cpu",), {"non_blocking": True}), (("cpu",), {"copy": True}), ((fc.float32,), {"copy": True}),
    ]
    t_map = {fc.float64: torch.float64, fc.float32: torch.float32, fc.int64: torch.int64}
    for args, kwargs in cases:
        targs = tuple(t_map.get(a, a) if not isinstance(a, fc.device) else torch.device(str(a)) for a in args)
        tkwargs = {k: t_map.get(v, v) for k, v in kwargs.items()}
        out, ref = ours.to(*args, **kwargs), theirs.to(*targs, **tkwargs)
        assert str(out.dtype) == str(ref.dtype).replace("torch.", "")
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
        assert (out is ours) == (ref is theirs), (args, kwargs)   # same object unless a change/copy
    assert ours.to(other64).dtype == np.float64 and theirs.to(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64
    copied = ours.to("cpu", copy=True)
    copied[0, 0] = 100.0
    assert ours[0, 0].item() == 0.0


def test_to_keeps_the_tape():
    x = fc.tensor([1.0, 2.0], dtype=fc.float64, requires_grad=True)
    y = x.to("cpu", fc.float32)
    assert y.dtype == np.float32 and y.grad_fn is not None
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert x.grad.dtype == np.float64


@pytest.mark.parametrize("request_", ["cuda", "cuda:0", "mps", 0])
def test_asking_for_an_accelerator_names_fastconv_as_cpu_only(request_):
    x = fc.ones(2)
    with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
        x.to(request_ if request_ != 0 else "cuda:0")
    with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
        fc.zeros(2, device=request_ if request_ != 0 else "cuda")
    with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
        nn.Linear(2, 2).to(request_ if request_ != 0 else "cuda")


def test_cuda_methods_raise_where_torch_raises(torch):
    with pytest.raises((AssertionError, RuntimeError), match="CUDA"):
        torch.zeros(2).cuda()
    for call in (lambda: fc.zeros(2).cuda(), lambda: nn.Linear(2, 2).cuda(), lambda: fc.zeros(2).cuda(1),
                 lambda: fc.tensor([1.0], device="cuda"), lambda: fc.randn(2, device=fc.device("cuda")),
                 lambda: fc.Generator(device="cuda")):
        with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
            call()
    with pytest.raises(RuntimeError, match="one CPU device"):
        fc.zeros(2, device="cpu:1")


@pytest.mark.parametrize("make", [
    lambda d: fc.tensor([1.0], device=d), lambda d: fc.zeros(2, device=d), lambda d: fc.ones(2, device=d),
    lambda d: fc.full((2,), 1.0, device=d), lambda d: fc.empty(2, device=d), lambda d: fc.randn(2, device=d),
    lambda d: fc.rand(2, device=d), lambda d: fc.arange(3, device=d), lambda d: fc.linspace(0, 1, 3, device=d),
    lambda d: fc.eye(2, device=d), lambda d: fc.randint(0, 5, (2,), device=d), lambda d: fc.randperm(3, device=d),
    lambda d: fc.zeros_like(fc.ones(2), device=d), lambda d: fc.ones_like(fc.ones(2), device=d),
    lambda d: fc.full_like(fc.ones(2), 3, device=d), lambda d: fc.empty_like(fc.ones(2), device=d),
    lambda d: fc.rand_like(fc.ones(2), device=d), lambda d: fc.randn_like(fc.ones(2), device=d),
    lambda d: fc.as_tensor([1, 2], device=d), lambda d: fc.ones(2).new_zeros(3, device=d),
])
def test_every_creation_function_takes_device(make):
    for d in ("cpu", "cpu:0", fc.device("cpu"), None):
        assert make(d).device == fc.device("cpu")
    with pytest.raises(RuntimeError, match="fastconv is CPU-only"):
        make("cuda")


def test_module_to_dtype_device_and_tensor_like_torch(torch):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    for ours, theirs in ((m.to(fc.float64), tm.to(torch.float64)), (m.to("cpu", fc.float32), tm.to("cpu", torch.float32)),
                         (m.double(), tm.double()), (m.float(), tm.float()), (m.cpu(), tm.cpu()),
                         (m.to(fc.zeros(1, dtype=fc.float64)), tm.to(torch.zeros(1, dtype=torch.float64)))):
        assert ours is m and theirs is tm
        for (name, p), (tname, tp) in zip(m.state_dict(keep_vars=True).items(), tm.state_dict(keep_vars=True).items()):
            assert name == tname and str(p.dtype) == str(tp.dtype).replace("torch.", ""), name
    with pytest.raises(TypeError):
        tm.to(torch.int64)
    with pytest.raises(TypeError, match="floating point"):
        m.to(fc.int64)


def test_module_to_keeps_parameter_objects_and_optimizer_references():
    m = nn.Linear(3, 2)
    params = list(m.parameters())
    opt = fc.optim.SGD(m.parameters(), lr=0.1)
    m.to(fc.float64)
    assert all(a is b for a, b in zip(params, m.parameters())) and params[0].dtype == np.float64
    m(fc.ones(1, 3, dtype=fc.float64)).sum().backward()
    opt.step()
    assert m.weight.dtype == np.float64


def test_generator_device_and_deepcopy_of_devices():
    g = fc.Generator(device="cpu")
    assert g.device == fc.device("cpu")
    d = copy.deepcopy(fc.device("cuda", 1))
    assert d == fc.device("cuda:1")
