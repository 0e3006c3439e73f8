"""Loss modules (nn.CrossEntropyLoss, ...) against PyTorch's: values, gradients, buffers, legacy arguments."""
import numpy as np
import pytest

import fastconv as fc

nn = fc.nn


def _problem(kind, rng):
    if kind == "class":
        x = rng.standard_normal((5, 4, 3))
        t = rng.integers(0, 4, (5, 3))
        t[0, 0] = 2 if t[0, 0] != 2 else 1
        return x, t
    if kind == "prob":
        x = rng.uniform(0.05, 0.95, (4, 6))
        return x, rng.uniform(0, 1, (4, 6))
    x = rng.standard_normal((4, 6)) * 2
    return x, rng.standard_normal((4, 6))


CASES = [
    ("CrossEntropyLoss", {}, "class"),
    ("CrossEntropyLoss", {"weight": [0.2, 1.0, 2.0, 0.5], "ignore_index": 2}, "class"),
    ("CrossEntropyLoss", {"label_smoothing": 0.1, "reduction": "sum"}, "class"),
    ("CrossEntropyLoss", {"weight": [0.2, 1.0, 2.0, 0.5], "label_smoothing": 0.2, "reduction": "none"}, "class"),
    ("NLLLoss", {}, "class"),
    ("NLLLoss", {"weight": [0.2, 1.0, 2.0, 0.5], "ignore_index": 1, "reduction": "sum"}, "class"),
    ("MSELoss", {}, "pair"),
    ("MSELoss", {"reduction": "none"}, "pair"),
    ("L1Loss", {"reduction": "sum"}, "pair"),
    ("SmoothL1Loss", {"beta": 0.5}, "pair"),
    ("SmoothL1Loss", {"beta": 0.0, "reduction": "sum"}, "pair"),
    ("HuberLoss", {"delta": 0.7}, "pair"),
    ("HuberLoss", {"reduction": "none", "delta": 2.0}, "pair"),
    ("BCELoss", {}, "prob"),
    ("BCELoss", {"weight": [1.0, 2.0, 0.5, 1.0, 3.0, 0.1], "reduction": "sum"}, "prob"),
    ("BCEWithLogitsLoss", {}, "pair-logits"),
    ("BCEWithLogitsLoss", {"pos_weight": [1.0, 2.0, 0.5, 1.0, 3.0, 0.1]}, "pair-logits"),
    ("BCEWithLogitsLoss", {"weight": [1.0, 2.0, 0.5, 1.0, 3.0, 0.1], "pos_weight": [2.0] * 6,
                           "reduction": "none"}, "pair-logits"),
]


@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_modules_match_torch(torch, name, kwargs, kind):
    rng = np.random.default_rng(0)
    x, t = _problem("prob" if kind == "prob" else ("class" if kind == "class" else "pair"), rng)
    if kind == "pair-logits":
        t = rng.uniform(0, 1, x.shape)
    if name == "NLLLoss":
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    ours_kwargs = {k: (fc.tensor(np.array(v)) if isinstance(v, list) else v) for k, v in kwargs.items()}
    torch_kwargs = {k: (torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v)
                    for k, v in kwargs.items()}
    ours = getattr(nn, name)(**ours_kwargs).double()
    ref = getattr(torch.nn, name)(**torch_kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy())
    xt = fc.tensor(x, requires_grad=True)
    out = ours(xt, fc.tensor(t) if kind != "class" else t)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    txt = torch.tensor(x, requires_grad=True)
    tout = ref(txt, torch.tensor(t))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), txt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert repr(ours) == repr(ref)


def test_float32_logits_with_integer_tensor_targets(torch):
    x = np.random.default_rng(1).standard_normal((8, 10)).astype(np.float32)
    t = np.arange(8) % 10
    loss = nn.CrossEntropyLoss()(fc.tensor(x), fc.tensor(t))
    assert loss.dtype == np.float32 and loss.shape == ()
    ref = torch.nn.CrossEntropyLoss()(torch.from_numpy(x), torch.from_numpy(t))
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-6)


@pytest.mark.parametrize("size_average,reduce,expected", [(None, False, "none"), (False, None, "sum"),
                                                          (True, True, "mean"), (False, False, "none")])
def test_legacy_size_average_and_reduce_map_like_torch(torch, size_average, reduce, expected):
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        ours = nn.MSELoss(size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning):
        ref = torch.nn.MSELoss(size_average=size_average, reduce=reduce)
    assert ours.reduction == ref.reduction == expected
    with pytest.warns(UserWarning):
        assert nn.CrossEntropyLoss(None, size_average, -100, reduce).reduction == expected


def test_weight_buffers_follow_double_and_load_state_dict():
    loss = nn.CrossEntropyLoss(weight=fc.tensor([1.0, 2.0, 3.0]))
    assert loss.weight.dtype == np.float32
    loss.double()
    assert loss.weight.dtype == np.float64
    loss.load_state_dict({"weight": np.array([3.0, 2.0, 1.0])})
    np.testing.assert_array_equal(loss.weight.numpy(), [3.0, 2.0, 1.0])
    assert nn.BCEWithLogitsLoss().state_dict() == {}


def test_loss_module_errors_name_the_layer():
    with pytest.raises(ValueError, match="CrossEntropyLoss: expected reduction 'none', 'mean' or 'sum', got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: expected label_smoothing in \\[0, 1\\], got 1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="NLLLoss: expected ignore_index as an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(ValueError, match="HuberLoss: expected delta > 0, got 0"):
        nn.HuberLoss(delta=0)
    with pytest.raises(ValueError, match="SmoothL1Loss: expected beta >= 0, got -1"):
        nn.SmoothL1Loss(beta=-1)
    with pytest.raises(TypeError, match="BCEWithLogitsLoss: expected pos_weight as a float32/float64"):
        nn.BCEWithLogitsLoss(pos_weight=np.array(["a"]))
    with pytest.raises(ValueError, match="cross_entropy: target value 7 is out of range for 3 classes"):
        nn.CrossEntropyLoss()(fc.randn(2, 3), np.array([0, 7]))


def test_functional_losses_take_the_legacy_arguments_like_torch(torch):
    x = np.random.default_rng(3).standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    for kwargs in (dict(size_average=False), dict(reduce=False), dict(size_average=True, reduce=True)):
        with pytest.warns(UserWarning, match="nll_loss: size_average and reduce args will be deprecated"):
            ours = fc.nn.functional.nll_loss(fc.tensor(x), t, **kwargs)
        with pytest.warns(UserWarning):
            theirs = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(t), **kwargs)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    with pytest.warns(UserWarning, match="mse_loss"):
        assert fc.nn.functional.mse_loss(fc.tensor(x), fc.tensor(x * 0), size_average=False).item() == \
            pytest.approx((x ** 2).sum())
