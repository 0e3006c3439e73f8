"""nn.utils: clip_grad_norm_ / clip_grad_value_ / get_total_norm / parameters_to_vector /
vector_to_parameters against PyTorch and numpy."""
import math

import numpy as np
import pytest

import fastconv as fc
from fastconv.autograd import gradcheck

nn = fc.nn
U = fc.nn.utils
SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _twins(torch, dtype=np.float32, seed=0, scale=1.0, skip=None):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(fc.tensor(np.zeros(s, dtype))) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float32 if dtype == np.float32 else torch.float64))
              for s in SHAPES]
    for i, (p, tp, g) in enumerate(zip(ours, theirs, grads)):
        if i != skip:
            p.grad = fc.tensor(g.copy())
            tp.grad = torch.tensor(g.copy())
    return ours, theirs, grads


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm, dtype):
    ours, theirs, _ = _twins(torch, dtype, skip=1)
    total = U.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=float(norm_type))
    assert isinstance(total, fc.Tensor) and total.shape == () and total.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(total.item(), ref.item(), rtol=rtol)
    assert ours[1].grad is None
    for p, tp in zip(ours, theirs):
        if p.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=1e-12)


def test_clip_grad_norm_numpy_reference_and_in_place():
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in SHAPES]
    params = [nn.Parameter(fc.tensor(np.zeros(s))) for s in SHAPES]
    arrays = []
    for p, g in zip(params, grads):
        p.grad = fc.tensor(g.copy())
        arrays.append(p.grad.numpy())
    total = U.clip_grad_norm_(iter(params), 1.0)  # a generator, as model.parameters() is
    expected = np.sqrt(sum((g ** 2).sum() for g in grads))
    np.testing.assert_allclose(total.item(), expected, rtol=1e-12)
    for p, g, a in zip(params, grads, arrays):
        assert p.grad.numpy() is a  # scaled in place
        np.testing.assert_allclose(a, g * (1.0 / (expected + 1e-6)), rtol=1e-12)
    new_total = U.clip_grad_norm_(params, 10.0)  # below max_norm: gradients unchanged (scale 1)
    np.testing.assert_allclose(new_total.item(), 1.0, rtol=1e-5)


def test_clip_grad_norm_edge_cases(torch):
    assert U.clip_grad_norm_([], 1.0).item() == 0.0
    assert U.clip_grad_norm_([nn.Parameter(fc.ones(2))], 1.0).item() == 0.0  # no grads
    single = nn.Parameter(fc.zeros(3))
    single.grad = fc.tensor(np.array([3.0, 4.0, 0.0], np.float32))
    assert U.clip_grad_norm_(single, 1.0).item() == pytest.approx(5.0)  # one Tensor, not a list
    ours, theirs, _ = _twins(torch)
    ours[0].grad.numpy()[0, 0] = np.nan
    theirs[0].grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="total norm of order 2.0 for gradients from `parameters` is non-finite"):
        U.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    total = U.clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) and math.isnan(ref.item())
    assert np.isnan(ours[2].grad.numpy()).all() and torch.isnan(theirs[2].grad).all()
    with pytest.raises(TypeError, match="clip_grad_norm_: expected parameters as Tensors"):
        U.clip_grad_norm_([np.ones(3)], 1.0)
    with pytest.raises(TypeError, match="get_total_norm: expected norm_type as a number or 'inf'"):
        U.clip_grad_norm_(ours, 1.0, norm_type="two")


def test_get_total_norm_and_clip_grads_with_norm(torch):
    ours, theirs, grads = _twins(torch, np.float64)
    total = U.get_total_norm([p.grad for p in ours], 3.0)
    ref = torch.nn.utils.get_total_norm([p.grad for p in theirs], 3.0)
    np.testing.assert_allclose(total.item(), ref.item(), rtol=1e-12)
    U.clip_grads_with_norm_(ours, 0.5, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.5, ref)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_torch(torch):
    ours, theirs, _ = _twins(torch, scale=3.0, skip=0)
    assert U.clip_grad_value_(ours, 1.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, tp in zip(ours[1:], theirs[1:]):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())
        assert np.abs(p.grad.numpy()).max() == np.float32(1.5)
    with pytest.raises(TypeError, match="clip_grad_value_: expected clip_value as a real number"):
        U.clip_grad_value_(ours, "1")


def test_parameters_to_vector_and_back(torch):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    vec = U.parameters_to_vector(model.parameters())
    np.testing.assert_array_equal(vec.numpy(), torch.nn.utils.parameters_to_vector(ref.parameters()).detach().numpy())
    new = np.arange(vec.shape[0], dtype=np.float32)
    U.vector_to_parameters(fc.tensor(new), model.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), ref.parameters())
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v.numpy())
    # differentiable in the parameters, as torch's (a concatenation of views)
    a = fc.tensor(np.random.default_rng(2).standard_normal((2, 3)), requires_grad=True)
    b = fc.tensor(np.random.default_rng(3).standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, y: U.parameters_to_vector([x, y]), [a, b])
    with pytest.raises(ValueError, match="vector_to_parameters: vec has 3 elements, the parameters need 26"):
        U.vector_to_parameters(fc.ones(3), model.parameters())
    with pytest.raises(TypeError, match="vector_to_parameters: expected vec as a Tensor"):
        U.vector_to_parameters(np.ones(26), model.parameters())
