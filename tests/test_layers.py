"""Layers through the module API: gradcheck (float64), PyTorch equivalence of outputs and state_dict
keys, batch-norm running statistics, CoordConv channels, freezing (tape saved bytes), head swap."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv.autograd import gradcheck


# ---- gradcheck through the module API --------------------------------------------------------------

def module_gradcheck(module, *inputs, seed=None):
    """Gradcheck ``module`` with respect to its inputs and every parameter (float64).

    gradcheck perturbs float64 copies of what it is given, so the copies of the parameters are
    put into the module for each call; ``seed`` reseeds fastconv's generator before each forward
    (dropout masks must be identical across the finite-difference evaluations).
    """
    module.double()
    named = list(module.named_parameters())

    def fn(*args):
        xs, params = args[:len(inputs)], args[len(inputs):]
        for (name, _), p in zip(named, params):
            owner, _, leaf = name.rpartition(".")
            module.get_submodule(owner)._parameters[leaf] = p
        if seed is not None:
            fc.manual_seed(seed)
        out = module(*xs)
        return out[0] if isinstance(out, tuple) else out

    try:
        return gradcheck(fn, list(inputs) + [p for _, p in named])
    finally:
        for name, p in named:
            owner, _, leaf = name.rpartition(".")
            module.get_submodule(owner)._parameters[leaf] = p


def x64(*shape, seed=0):
    return fc.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


GRADCHECK_CASES = [
    ("Conv2d", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 5)),
    ("Conv2d-same-even", lambda: nn.Conv2d(2, 2, 2, padding="same", bias=False), (1, 2, 4, 5)),
    ("Conv2d-groups-dilation", lambda: nn.Conv2d(4, 2, 3, dilation=2, groups=2), (1, 4, 6, 6)),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (1, 2, 3, 3)),
    ("CoordConv2d", lambda: nn.CoordConv2d(1, 2, 3, padding=1, with_r=True), (2, 1, 4, 5)),
    ("Linear", lambda: nn.Linear(5, 3), (4, 5)),
    ("ReLU", lambda: nn.ReLU(), (3, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (3, 4)),
    ("ELU", lambda: nn.ELU(0.7), (3, 4)),
    ("Sigmoid", lambda: nn.Sigmoid(), (3, 4)),
    ("Tanh", lambda: nn.Tanh(), (3, 4)),
    ("Softmax", lambda: nn.Softmax(dim=1), (3, 4)),
    ("LogSoftmax", lambda: nn.LogSoftmax(dim=-1), (3, 4)),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), (1, 2, 4, 6)),
    ("MaxPool2d-overlap", lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 5)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1), (1, 2, 5, 5)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    ("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d(2), (1, 2, 5, 5)),
    ("GlobalAvgPool2d", lambda: nn.GlobalAvgPool2d(), (2, 3, 3, 4)),
    ("GlobalMaxPool2d", lambda: nn.GlobalMaxPool2d(), (2, 3, 3, 4)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
    ("BatchNorm2d-eval", lambda: nn.BatchNorm2d(2).eval(), (3, 2, 3, 3)),
    ("LayerNorm", lambda: nn.LayerNorm((3, 4)), (2, 3, 4)),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(2, affine=True), (2, 2, 3, 3)),
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), (2, 4, 3, 2)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("Identity", lambda: nn.Identity(), (2, 3)),
]


@pytest.mark.parametrize("name,factory,shape", GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck_through_module(name, factory, shape):
    fc.manual_seed(0)
    module = factory()
    if "eval" in name:  # give the running statistics non-trivial values
        module.running_mean.numpy()[...] = [0.3, -0.2]
        module.running_var.numpy()[...] = [1.5, 0.5]
    assert module_gradcheck(module, x64(*shape))


@pytest.mark.parametrize("layer", [nn.Dropout(0.3), nn.Dropout2d(0.5)], ids=["Dropout", "Dropout2d"])
def test_gradcheck_dropout_with_fixed_mask(layer):
    assert module_gradcheck(layer, x64(2, 4, 3, 3), seed=3)


def test_gradcheck_max_unpool():
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    x = x64(1, 2, 4, 4)
    _, idx = pool(x)
    assert module_gradcheck(unpool, x64(1, 2, 2, 2, seed=1), idx)
    out, idx = pool(x)
    restored = unpool(out, idx)
    assert restored.shape == x.shape
    # each window keeps exactly its maximum, at the maximum's position, zeros elsewhere
    window_max = x.numpy().reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)).repeat(2, axis=2).repeat(2, axis=3)
    expected = np.where(x.numpy() == window_max, x.numpy(), 0.0)
    np.testing.assert_array_equal(restored.numpy(), expected)


# ---- equivalence with PyTorch (outputs and state_dict keys) -------------------------------------------

TORCH_CASES = [
    ("Conv2d", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), lambda t: t.nn.Conv2d(3, 4, 3, stride=2, padding=1),
     (2, 3, 7, 7)),
    ("Conv2d-same", lambda: nn.Conv2d(3, 4, 4, padding="same"), lambda t: t.nn.Conv2d(3, 4, 4, padding="same"),
     (2, 3, 6, 5)),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1),
     lambda t: t.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 4, 4)),
    ("Linear", lambda: nn.Linear(6, 4), lambda t: t.nn.Linear(6, 4), (3, 6)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.1), lambda t: t.nn.LeakyReLU(0.1), (3, 6)),
    ("ELU", lambda: nn.ELU(0.5), lambda t: t.nn.ELU(0.5), (3, 6)),
    ("Softmax", lambda: nn.Softmax(dim=1), lambda t: t.nn.Softmax(dim=1), (3, 6)),
    ("MaxPool2d", lambda: nn.MaxPool2d(3, 2, 1), lambda t: t.nn.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda t: t.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 7, 7)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d(3), lambda t: t.nn.AdaptiveAvgPool2d(3), (2, 3, 7, 8)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3), lambda t: t.nn.BatchNorm2d(3), (4, 3, 5, 5)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3), lambda t: t.nn.BatchNorm1d(3), (4, 3, 5)),
    ("LayerNorm", lambda: nn.LayerNorm(5), lambda t: t.nn.LayerNorm(5), (2, 3, 5)),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
     lambda t: t.nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 4)),
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), lambda t: t.nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    ("Flatten", lambda: nn.Flatten(1, 2), lambda t: t.nn.Flatten(1, 2), (2, 3, 4, 5)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name,ours,theirs,shape", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_with_torch_weights(torch, name, ours, theirs, shape):
    torch.manual_seed(0)
    ref = theirs(torch).double()
    with torch.no_grad():
        for p in ref.parameters():  # non-trivial affine parameters
            p.uniform_(-1, 1)
    mod = ours().double()
    torch_state = {k: v.numpy() for k, v in ref.state_dict().items()}
    ours_state = mod.state_dict()
    assert list(ours_state) == list(torch_state)
    assert all(ours_state[k].shape == torch_state[k].shape for k in torch_state)
    mod.load_state_dict(torch_state)
    x = np.random.default_rng(1).standard_normal(shape)
    for _ in range(2):  # twice: batch norm's running statistics evolve identically
        np.testing.assert_allclose(mod(fc.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-10)
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(mod.state_dict()[k], v.numpy(), rtol=1e-10, atol=1e-12)
    mod.eval()
    ref.eval()
    np.testing.assert_allclose(mod(fc.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)


def test_batchnorm_cumulative_average_and_untracked(torch):
    rng = np.random.default_rng(0)
    ours, ref = nn.BatchNorm2d(2, momentum=None).double(), torch.nn.BatchNorm2d(2, momentum=None).double()
    for _ in range(3):
        x = rng.standard_normal((4, 2, 3, 3)) * 3 + 1
        ours(fc.tensor(x))
        ref(torch.from_numpy(x))
    assert int(ours.num_batches_tracked.numpy()) == 3
    np.testing.assert_allclose(ours.running_var.numpy(), ref.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-12)
    free = nn.BatchNorm2d(2, track_running_stats=False).double().eval()
    assert free.running_mean is None and list(free.state_dict()) == ["weight", "bias"]
    x = rng.standard_normal((4, 2, 3, 3))
    y = free(fc.tensor(x)).numpy()  # batch statistics even in eval mode, as PyTorch does
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="Conv2d: in_channels .* divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: expected padding 'same', 'valid'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="Linear: expected in_features as a positive int, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="Dropout: expected p as a probability in \\[0, 1\\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="GroupNorm: num_channels \\(6\\) must be divisible by num_groups \\(4\\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="BatchNorm2d: expected input with 3 channels"):
        nn.BatchNorm2d(3)(fc.zeros(2, 4, 2, 2))
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4-D"):
        nn.BatchNorm2d(3)(fc.zeros(2, 3))
    with pytest.raises(ValueError, match="fastconv runs on the CPU only"):
        nn.Linear(2, 2, device="cuda")
    with pytest.raises(TypeError, match="expected dtype float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)


def test_dropout_train_and_eval():
    x = fc.ones(200, 50)
    layer = nn.Dropout(0.4)
    fc.manual_seed(0)
    y = layer(x).numpy()
    kept = y != 0
    assert 0.55 < kept.mean() < 0.65
    np.testing.assert_allclose(y[kept], 1 / 0.6, rtol=1e-6)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    spatial = nn.Dropout2d(0.5)
    z = spatial(fc.ones(8, 16, 3, 3)).numpy()
    per_channel = z.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(axis=2) | (per_channel == 2).all(axis=2))


def test_softmax_implicit_dim_warns_like_torch():
    with pytest.warns(UserWarning, match="implicit dimension"):
        y = nn.Softmax()(fc.randn(2, 3, 4, 5))
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1, rtol=1e-5)


# ---- CoordConv ------------------------------------------------------------------------------------

def test_coordconv_channels_exact_at_corners_and_centre():
    layer = nn.CoordConv2d(2, 3, 1, with_r=True)
    x = fc.randn(2, 2, 5, 7)
    out = layer.add_coords(x).numpy()
    assert out.shape == (2, 5, 5, 7)
    np.testing.assert_array_equal(out[:, :2], x.numpy())
    i, j, r = out[0, 2], out[0, 3], out[0, 4]
    assert (i[0, 0], i[0, 6], i[4, 0], i[4, 6], i[2, 3]) == (-1, -1, 1, 1, 0)  # i runs along the height
    assert (j[0, 0], j[4, 0], j[0, 6], j[4, 6], j[2, 3]) == (-1, -1, 1, 1, 0)  # j runs along the width
    assert r[2, 3] == 0 and all(abs(v - 1) < 1e-6 for v in (r[0, 0], r[0, 6], r[4, 0], r[4, 6]))
    np.testing.assert_allclose(i[:, 0], [-1, -0.5, 0, 0.5, 1], atol=1e-7)
    np.testing.assert_allclose(j[0], np.arange(7) / 3 - 1, atol=1e-7)
    assert np.all(out[1, 2:] == out[0, 2:])  # same coordinates for every sample


def test_coordconv_size_one_dimension_gives_zero_and_any_size_works():
    layer = nn.CoordConv2d(1, 2, 1)
    out = layer.add_coords(fc.zeros(1, 1, 1, 4)).numpy()
    assert np.all(out[0, 1] == 0)
    np.testing.assert_allclose(out[0, 2, 0], [-1, -1 / 3, 1 / 3, 1], atol=1e-7)
    for h, w in [(3, 3), (8, 5), (1, 1)]:
        assert layer(fc.randn(2, 1, h, w)).shape == (2, 2, h, w)


def test_coordconv_equals_conv_on_concatenated_coordinates():
    fc.manual_seed(0)
    layer = nn.CoordConv2d(3, 4, 3, padding=1).double()
    assert list(layer.state_dict()) == ["conv.weight", "conv.bias"] and layer.conv.in_channels == 5
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 4))
    rows = (-1 + 2 * np.arange(6) / 5)[:, None] * np.ones((1, 4))
    cols = np.ones((6, 1)) * (-1 + 2 * np.arange(4) / 3)[None, :]
    manual = np.concatenate([x, np.broadcast_to(np.stack([rows, cols]), (2, 2, 6, 4))], axis=1)
    ref = nn.Conv2d(5, 4, 3, padding=1).double()
    ref.load_state_dict({"weight": layer.conv.weight.numpy(), "bias": layer.conv.bias.numpy()})
    np.testing.assert_allclose(layer(fc.tensor(x)).numpy(), ref(fc.tensor(manual)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="CoordConv2d: expected input with 3 channels"):
        layer(fc.zeros(1, 4, 3, 3, dtype=np.float64))


# ---- fine-tuning ----------------------------------------------------------------------------------

def tape_saved_bytes(output):
    """Bytes saved for backward on the tape behind ``output`` (each node once)."""
    total, seen, stack = 0, set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        total += node.saved_nbytes
        stack.extend(e[0] for e in node.next_edges if type(e) is tuple)
    return total


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def test_frozen_prefix_saves_nothing_and_gets_no_gradient():
    fc.manual_seed(0)
    model = small_cnn()
    x = fc.randn(4, 1, 16, 16)
    full = tape_saved_bytes(model(x).sum())
    model[:3].requires_grad_(False)
    loss = model(x).sum()
    frozen = tape_saved_bytes(loss)
    with fc.no_grad():
        features = model[:3](x)
    tail_only = tape_saved_bytes(model[3:](features).sum())
    assert 0 < frozen == tail_only < full
    loss.backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[3].weight.grad is not None and model[7].weight.grad is not None
    model.requires_grad_(False)
    out = model(x)
    assert out.grad_fn is None and not out.requires_grad


def test_replacing_the_head_trains_only_the_new_head():
    fc.manual_seed(1)
    model = small_cnn()
    model.requires_grad_(False)
    model[-1] = nn.Linear(8 * 4 * 4, 3)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["7.weight", "7.bias"]
    before = model[0].weight.numpy().copy()
    loss = model(fc.randn(2, 1, 16, 16)).sum()
    loss.backward()
    assert model[-1].weight.grad.shape == (3, 128)
    np.testing.assert_array_equal(model[0].weight.numpy(), before)
    codes = model[:-1](fc.randn(2, 1, 16, 16))  # the "CNN codes" feature extractor
    assert codes.shape == (2, 128)
