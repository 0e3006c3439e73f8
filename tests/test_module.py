"""Module system: registration, iteration, modes, hooks, state_dict, Sequential/ModuleList, freezing."""
from collections import OrderedDict

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.register_buffer("seen", np.zeros((), dtype=np.int64))
        self.register_buffer("cache", np.zeros(2, dtype=np.float32), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_parameter_is_float_leaf_requiring_grad():
    p = nn.Parameter(np.arange(3.0))
    assert isinstance(p, fc.Tensor) and p.requires_grad and p.is_leaf and p.dtype == np.float64
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    frozen = nn.Parameter(np.zeros(2), requires_grad=False)
    assert not frozen.requires_grad
    with pytest.raises(TypeError, match="Parameter: expected float32 or float64"):
        nn.Parameter(np.arange(3))
    arr = np.zeros(3, dtype=np.float32)
    assert nn.Parameter(arr).numpy() is arr  # shares, like torch.nn.Parameter
    assert repr(p).startswith("Parameter containing:")


def test_registration_and_iteration_order():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in m.named_buffers()] == ["seen", "cache"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert len(list(m.parameters(recurse=False))) == 1
    assert list(m.modules())[0] is m
    assert m.fc1.weight.shape == (3, 4)
    # reassigning a parameter name replaces it; a plain attribute is not registered
    m.note = "hello"
    assert "note" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="cannot assign ndarray to parameter 'scale'"):
        m.scale = np.ones(2)
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    del m.fc2
    assert [n for n, _ in m.named_children()] == ["fc1", "act"]


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]


def test_setattr_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Broken()


def test_register_buffer_checks_name_and_type():
    m = nn.Module()
    with pytest.raises(ValueError, match="without '.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="expected an ndarray or Tensor"):
        m.register_buffer("a", [1, 2])
    m.register_buffer("a", np.zeros(2))
    assert isinstance(m.a, fc.Tensor) and not m.a.requires_grad
    m.a = np.ones(2)  # assignment to a buffer name updates the buffer
    assert m.state_dict()["a"].tolist() == [1.0, 1.0]


def test_train_eval_propagates():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_zero_grad_and_requires_grad():
    m = TwoLayer()
    m(fc.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_apply_visits_children_first_and_double_float():
    m = TwoLayer()
    order = []
    m.apply(lambda mod: order.append(type(mod).__name__))
    assert order == ["Linear", "ReLU", "Linear", "TwoLayer"]
    w = m.fc1.weight
    m.double()
    assert m.fc1.weight is w and w.dtype == np.float64
    assert m.seen.dtype == np.int64  # integer buffers keep their dtype
    assert m.cache.dtype == np.float64
    assert m(fc.randn(2, 4, dtype=np.float64)).dtype == np.float64
    m.float()
    assert w.dtype == np.float32


def test_forward_hooks_run_and_can_be_removed():
    m = nn.Linear(3, 2)
    calls = []
    pre = m.register_forward_pre_hook(lambda mod, args: calls.append(("pre", args[0].shape)))
    post = m.register_forward_hook(lambda mod, args, out: calls.append(("post", out.shape)))
    m(fc.randn(4, 3))
    assert calls == [("pre", (4, 3)), ("post", (4, 2))]
    pre.remove()
    post.remove()
    m(fc.randn(4, 3))
    assert len(calls) == 2


def test_hooks_can_replace_inputs_and_outputs():
    m = nn.Identity()
    with m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,)):
        with m.register_forward_hook(lambda mod, args, out: out + 1):
            assert m(fc.tensor([1.0])).item() == 3.0
    assert m(fc.tensor([1.0])).item() == 1.0


def test_state_dict_copies_and_round_trip():
    fc.manual_seed(0)
    a, b = TwoLayer(), TwoLayer()
    sd = a.state_dict()
    assert list(sd) == ["scale", "seen", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert "cache" not in sd  # non-persistent
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["fc1.weight"][...] = 7.0
    assert not np.any(a.fc1.weight.numpy() == 7.0)  # copies
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = fc.randn(3, 4)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # tensors are accepted as values and dtypes are kept
    b.load_state_dict({k: fc.tensor(v.astype(np.float64)) if v.dtype.kind == "f" else v
                       for k, v in a.state_dict().items()})
    assert b.fc1.weight.dtype == np.float32


def test_load_state_dict_reports_every_problem_and_changes_nothing():
    m = TwoLayer()
    before = m.state_dict()
    bad = m.state_dict()
    del bad["fc2.bias"]
    bad["extra.weight"] = np.zeros(1)
    bad["fc1.weight"] = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert "missing keys: 'fc2.bias'" in msg
    assert "unexpected keys: 'extra.weight'" in msg
    assert "size mismatch for 'fc1.weight': expected shape (3, 4)" in msg and "got (4, 3)" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # non-strict: key problems are returned, shape mismatches still raise
    ok = m.state_dict()
    del ok["fc2.bias"]
    ok["extra"] = np.zeros(1)
    res = m.load_state_dict(ok, strict=False)
    assert res.missing_keys == ["fc2.bias"] and res.unexpected_keys == ["extra"]
    with pytest.raises(ValueError, match="size mismatch"):
        m.load_state_dict(bad, strict=False)
    with pytest.raises(TypeError, match="expected a mapping"):
        m.load_state_dict([1, 2])


def test_repr_is_pytorch_like():
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(8, 2)))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=8, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


def test_sequential_indexing_slicing_and_head_replacement():
    layers = [nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)]
    model = nn.Sequential(*layers)
    assert model[0] is layers[0] and model[-1] is layers[2] and len(model) == 3
    assert list(model) == layers
    features = model[:-1]
    assert isinstance(features, nn.Sequential) and features[0] is layers[0]
    assert list(features.state_dict()) == ["0.weight", "0.bias"]
    x = fc.randn(2, 4)
    np.testing.assert_array_equal(features(x).numpy(), np.maximum(layers[0](x).numpy(), 0))
    tail = model[1:]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]  # original keys kept, as in PyTorch
    head = nn.Linear(8, 5)
    model[-1] = head
    assert model[2] is head and model(x).shape == (2, 5)
    assert list(model.state_dict())[-2:] == ["2.weight", "2.bias"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        model[3]
    with pytest.raises(TypeError, match="expected a Module"):
        model[0] = "not a module"
    model.append(nn.ReLU())
    assert len(model) == 4 and list(model._modules) == ["0", "1", "2", "3"]
    del model[0]
    assert list(model._modules) == ["0", "1", "2"] and model[0] is layers[1]
    named = nn.Sequential(OrderedDict([("features", nn.Linear(2, 2)), ("head", nn.Linear(2, 1))]))
    assert list(named.state_dict()) == ["features.weight", "features.bias", "head.weight", "head.bias"]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    ml.append(nn.Linear(2, 1))
    assert len(ml) == 3 and isinstance(ml[-1], nn.Linear)
    assert isinstance(ml[:2], nn.ModuleList) and ml[:2][0] is ml[0]
    holder = nn.Module()
    holder.blocks = ml
    assert [n for n, _ in holder.named_parameters()] == [
        "blocks.0.weight", "blocks.0.bias", "blocks.2.weight", "blocks.2.bias"]
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        ml(fc.randn(1, 2))


def test_freeze_by_prefix():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    frozen = nn.freeze(model, "0.", "2.")
    assert frozen == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.requires_grad for p in model.parameters()] == [False, False, False, False, True, True]
    model(fc.randn(4, 2)).sum().backward()
    assert model[0].weight.grad is None and model[2].weight.grad is None
    assert model[4].weight.grad is not None
    with pytest.raises(ValueError, match="no parameter name starts with '9.'"):
        nn.freeze(model, "9.")
    assert nn.unfreeze(model) == [n for n, _ in model.named_parameters()]


def test_deepcopy_gives_independent_parameters_and_forward_is_required():
    import copy

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight is not model[0].weight
    clone[0].weight.numpy()[...] = 0
    assert np.any(model[0].weight.numpy() != 0)
    assert list(clone.state_dict()) == list(model.state_dict())
    with pytest.raises(NotImplementedError, match="must define forward"):
        nn.Module()(fc.zeros(1))
