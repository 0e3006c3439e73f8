"""Type promotion against PyTorch: for every pair of operand kinds (tensor with dimensions, 0-d tensor,
Python scalar, numpy scalar, 0-d array) and dtypes, the result dtype and value of + - * / ** equal
torch's; a float64 buffer on a float32 module behaves as in torch and the error names the input."""
import itertools

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.nn import functional as F

DTYPES = ["bool", "uint8", "int32", "int64", "float32", "float64"]
OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
       "div": lambda a, b: a / b}


def torch_dtype(torch, name):
    return getattr(torch, name)


def values(name, shape):
    if name == "bool":
        return np.ones(shape, dtype=bool)
    return (np.arange(int(np.prod(shape))).reshape(shape) % 3 + 1).astype(name)


def operand(lib, kind, dtype, torch):
    """An operand of a kind: 'dim' tensor (2,), '0d' tensor, Python 'scalar' of dtype's kind,
    'npscalar' numpy scalar, '0darray' numpy 0-d array (only for fastconv: torch converts those)."""
    if kind == "dim":
        arr = values(dtype, (2,))
        return fc.tensor(arr) if lib is fc else torch.tensor(arr)
    if kind == "0d":
        arr = values(dtype, ())
        return fc.tensor(arr) if lib is fc else torch.tensor(arr)
    py = {"b": True, "u": 2, "i": 2, "f": 2.5}[np.dtype(dtype).kind]
    if kind == "scalar":
        return py
    if kind == "npscalar":
        return np.dtype(dtype).type(py)
    raise ValueError(kind)


KINDS = ["dim", "0d", "scalar", "npscalar"]


@pytest.mark.parametrize("op", sorted(OPS))
def test_binary_result_dtypes_and_values_match_torch(torch, op):
    fn = OPS[op]
    checked = 0
    for ka, kb in itertools.product(KINDS, KINDS):
        if ka not in ("dim", "0d") and kb not in ("dim", "0d"):
            continue
        for da, db in itertools.product(DTYPES, DTYPES):
            if (ka in ("scalar", "npscalar") and da in ("uint8", "int32")) or \
                    (kb in ("scalar", "npscalar") and db in ("uint8", "int32")):
                continue  # a Python int is the same operand whatever the dtype label
            if (ka == "npscalar" and da == "bool") or (kb == "npscalar" and db == "bool"):
                continue  # torch reads np.bool_ as a float; fastconv as the bool it is
            a_t, b_t = operand(torch, ka, da, torch), operand(torch, kb, db, torch)
            try:
                expected = fn(a_t, b_t)
            except RuntimeError:
                continue  # torch refuses (e.g. subtracting bools): nothing to compare
            a_f, b_f = operand(fc, ka, da, torch), operand(fc, kb, db, torch)
            got = fn(a_f, b_f)
            label = (op, ka, da, kb, db)
            assert str(got.dtype) == str(expected.dtype).replace("torch.", ""), label
            np.testing.assert_allclose(got.numpy().astype(np.float64), expected.numpy().astype(np.float64),
                                       rtol=1e-6, err_msg=str(label))
            checked += 1
    assert checked > 200


def test_numpy_scalars_and_0d_arrays_do_not_change_a_tensors_dtype(torch):
    x = fc.ones(3)
    for other in (np.sqrt(2.0), np.float64(2.0), np.float32(2.0), np.array(2.0), np.int64(3), 2.0, 2,
                  fc.tensor(2.0, dtype=fc.float64)):
        for out in (x * other, other * x, x + other, x / other, x - other, other - x, x ** other):
            assert out.dtype == np.float32, type(other)
    assert (torch.ones(3) * np.sqrt(2.0)).dtype == torch.float32
    assert (fc.ones(3, dtype=fc.int64) * 2.5).dtype == np.float32            # the default float, as torch
    assert (fc.ones(3, dtype=fc.int64) / 2).dtype == np.float32              # true division
    assert (fc.ones(3, dtype=fc.int64) + fc.ones(3)).dtype == np.float32     # numpy would say float64
    assert (fc.ones(3, dtype=fc.int32) + 2).dtype == np.int32
    assert (fc.ones(3, dtype=fc.bool) + 2).dtype == np.int64
    assert (fc.ones(3) + fc.ones(3, dtype=fc.float64)).dtype == np.float64   # both with dims: promoted


def test_promotion_keeps_the_tape():
    x = fc.tensor([1.0, 2.0], requires_grad=True)            # float32
    w = fc.tensor(3.0, dtype=fc.float64, requires_grad=True)  # 0-d float64: cast to float32 on the tape
    y = x * w
    assert y.dtype == np.float32
    y.sum().backward()
    assert w.grad.dtype == np.float64 and w.grad.item() == pytest.approx(3.0)
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    z = fc.tensor([1.0, 2.0], requires_grad=True) * fc.tensor([2.0, 2.0], dtype=fc.float64, requires_grad=True)
    assert z.dtype == np.float64


def test_scaling_by_numpy_constants_in_layers_stays_float32():
    """The He-init / attention idioms: a float32 activation times a numpy float64 constant."""
    x = fc.randn(2, 8, requires_grad=True)
    y = F.relu(x) * np.sqrt(2.0 / 8) / np.float64(3.0)
    assert y.dtype == np.float32
    out = nn.Linear(8, 2)(y)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


class Normalized(nn.Module):
    """A float32 model with a float64 buffer registered from numpy (as a user would)."""

    def __init__(self, per_channel: bool):
        super().__init__()
        shape = (1, 3, 1, 1) if per_channel else ()
        self.register_buffer("mean", np.full(shape, 0.5))     # float64
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x - self.mean)


def test_float64_buffer_on_a_float32_module_like_torch(torch):
    model = Normalized(per_channel=True)
    assert model.mean.dtype == np.float64                     # kept, as torch keeps a buffer's dtype
    x = fc.ones(1, 3, 5, 5)
    with pytest.raises(TypeError, match="conv2d: expected input of dtype float32 like weight, got float64"):
        model(x)                                              # x - mean is float64 (both have dims), as in torch
    tm = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError):
        tm(torch.ones(1, 3, 5, 5) - torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64))
    assert model.float().mean.dtype == np.float32             # Module.float() casts float buffers, like torch
    assert model(x).dtype == np.float32
    scalar = Normalized(per_channel=False)                    # a 0-d buffer does not change the input's dtype
    assert scalar(x).dtype == np.float32
