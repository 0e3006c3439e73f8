"""ModuleDict, ParameterList and ParameterDict against PyTorch's containers: registration, state_dict
keys, parameters(), named_modules, indexing, update and the dict/list methods."""
from collections import OrderedDict

import numpy as np
import pytest

import fastconv as fc

nn = fc.nn


def _twin_module_dicts(torch):
    ours = nn.ModuleDict({"conv": nn.Conv2d(1, 2, 3), "act": nn.ReLU(), "head": nn.Linear(4, 3)})
    theirs = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(1, 2, 3), "act": torch.nn.ReLU(),
                                  "head": torch.nn.Linear(4, 3)})
    return ours, theirs


def test_module_dict_matches_torch(torch):
    ours, theirs = _twin_module_dicts(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours) == list(theirs) == list(ours.keys())
    assert repr(ours) == repr(theirs)
    assert "act" in ours and "nope" not in ours and len(ours) == 3
    assert ours["head"] is ours.head
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(ours["conv"].weight.numpy(), theirs["conv"].weight.detach().numpy())
    # update keeps the order of the mapping, replaces existing keys in place, accepts pairs
    for d, lib in ((ours, nn), (theirs, torch.nn)):
        d.update(OrderedDict([("z", lib.Tanh()), ("act", lib.Sigmoid())]))
        d.update([("b", lib.Identity())])
    assert list(ours) == list(theirs) == ["conv", "act", "head", "z", "b"]
    assert type(ours["act"]).__name__ == "Sigmoid"
    assert isinstance(ours.pop("z"), nn.Tanh) and "z" not in ours
    del ours["b"]
    assert list(ours.keys()) == ["conv", "act", "head"]
    assert [type(m).__name__ for m in ours.values()] == ["Conv2d", "Sigmoid", "Linear"]
    ours.clear()
    assert len(ours) == 0 and list(ours.parameters()) == []


def test_module_dict_errors_like_torch():
    d = nn.ModuleDict({"a": nn.ReLU()})
    with pytest.raises(KeyError):
        d["x"]
    with pytest.raises(KeyError, match="can't contain '.'"):
        d["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleDict: module names must be strings"):
        d[0] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleDict: expected a Module, got int"):
        d["b"] = 3
    with pytest.raises(ValueError, match="ModuleDict.update: element #0 has length 3; 2 is required"):
        d.update([("a", nn.ReLU(), 3)])
    with pytest.raises(TypeError, match="ModuleDict.update: expected a mapping or an iterable of key/value pairs"):
        d.update(5)
    with pytest.raises(NotImplementedError, match="ModuleDict has no forward"):
        d(fc.randn(2))


def test_module_dict_inside_a_model_trains_and_round_trips(torch):
    class Net(nn.Module):
        def __init__(self, lib):
            super().__init__()
            self.heads = lib.ModuleDict({"cls": lib.Linear(4, 3), "reg": lib.Linear(4, 1)})

        def forward(self, x):
            return self.heads["cls"](x), self.heads["reg"](x)

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(4, 3), "reg": torch.nn.Linear(4, 1)})

    ours = Net(nn)
    assert list(ours.state_dict()) == list(TorchNet().state_dict())
    opt = fc.optim.SGD(ours.parameters(), lr=0.1)
    cls, reg = ours(fc.randn(5, 4))
    (cls.sum() + reg.sum()).backward()
    opt.step()
    assert all(p.grad is not None for p in ours.parameters())


def test_parameter_list_matches_torch(torch):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    ours = nn.ParameterList([nn.Parameter(fc.tensor(arrays[0])), fc.tensor(arrays[1])])
    theirs = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(arrays[0])), torch.tensor(arrays[1])])
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0", "1"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours)
    assert len(ours) == 2 and ours[-1].shape == (4,)
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    ours.append(fc.zeros(2))
    ours += [fc.ones(1)]
    theirs.append(torch.zeros(2))
    theirs += [torch.ones(1)]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0", "1", "2", "3"]
    sliced = ours[1:3]
    assert isinstance(sliced, nn.ParameterList) and sliced[0] is ours[1] and list(sliced.state_dict()) == ["0", "1"]
    replacement = nn.Parameter(fc.ones(4))
    ours[1] = replacement
    assert ours[1] is replacement and ours.state_dict()["1"].tolist() == [1.0] * 4
    assert "(0): Parameter containing: [float32 of size 3x4]" in repr(ours)
    with pytest.raises(IndexError, match="ParameterList: index 9 is out of range for 4"):
        ours[9]
    with pytest.raises(TypeError, match="ParameterList.append: expected a Parameter, Tensor or ndarray, got str"):
        ours.append("w")


def test_parameter_list_shared_array_and_training():
    w = fc.tensor(np.ones((2, 2), np.float32))
    plist = nn.ParameterList([w])
    assert plist[0].numpy() is w.numpy()  # wraps without copying, like torch.nn.Parameter(tensor)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterList([nn.Parameter(fc.ones(3)) for _ in range(2)])

        def forward(self, x):
            for p in self.weights:
                x = x * p
            return x

    m = Model()
    assert [n for n, _ in m.named_parameters()] == ["weights.0", "weights.1"]
    out = m(fc.tensor(np.array([1.0, 2.0, 3.0], np.float32)))
    out.sum().backward()
    np.testing.assert_array_equal(m.weights[0].grad.numpy(), [1.0, 2.0, 3.0])


def test_parameter_dict_matches_torch(torch):
    ours = nn.ParameterDict({"a": fc.ones(2), "b": nn.Parameter(fc.zeros(3))})
    theirs = torch.nn.ParameterDict({"a": torch.ones(2), "b": torch.nn.Parameter(torch.zeros(3))})
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["a", "b"]
    assert isinstance(ours["a"], nn.Parameter) and ours["a"].requires_grad
    assert list(ours) == ["a", "b"] and "a" in ours and len(ours) == 2
    assert ours.get("zz") is None and ours.get("a") is ours["a"]
    merged = ours | {"c": fc.ones(1)}
    assert list(merged) == ["a", "b", "c"] and merged["a"] is ours["a"] and "c" not in ours
    copy = ours.copy()
    assert copy["b"] is ours["b"]
    assert ours.setdefault("d", fc.ones(5)).shape == (5,) and list(ours) == ["a", "b", "d"]
    key, value = ours.popitem()
    assert key == "d" and value.shape == (5,)
    assert ours.pop("a").shape == (2,) and list(ours) == ["b"]
    ours.update([("e", fc.ones(2))])
    ours["b"] = fc.ones(7)
    assert list(ours) == ["b", "e"] and ours["b"].shape == (7,)
    assert list(nn.ParameterDict().fromkeys(["x", "y"], fc.ones(1))) == ["x", "y"]
    assert ours.b is ours["b"]  # attribute access, as on any Module
    ours.load_state_dict({"b": np.full(7, 3.0), "e": np.zeros(2)})
    assert ours["b"].numpy().tolist() == [3.0] * 7
    with pytest.raises(KeyError):
        ours["nope"]
    with pytest.raises(KeyError, match="can't contain '.'"):
        ours["x.y"] = fc.ones(1)
    with pytest.raises(TypeError, match="ParameterDict: expected a Parameter, Tensor or ndarray, got float"):
        ours["f"] = 1.5


def test_re_registering_a_name_keeps_its_state_dict_position_like_torch(torch):
    ours, theirs = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    ours.weight = nn.Parameter(fc.zeros(3, 2))
    theirs.weight = torch.nn.Parameter(torch.zeros(3, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    seq, tseq = nn.Sequential(nn.ReLU(), nn.Tanh()), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh())
    seq.add_module("0", nn.Linear(1, 1))
    tseq.add_module("0", torch.nn.Linear(1, 1))
    assert [n for n, _ in seq.named_children()] == [n for n, _ in tseq.named_children()] == ["0", "1"]
    bn = nn.BatchNorm2d(2)
    bn.register_buffer("running_mean", np.ones(2, np.float32))
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm2d(2).state_dict())
