"""In-place operations against PyTorch: values and returned objects, autograd through in-place ops
(plain, on views, item assignment), the version check that refuses overwritten saved values, leaf
rules, inplace activations, and ``.data`` as a Tensor sharing memory."""
import numpy as np
import pytest
from _torch_compare import compare

import fastconv as fc
from fastconv import nn
from fastconv.nn import functional as F


def arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, size=s) for s in shapes]


@pytest.mark.parametrize("op,args", [
    ("add_", (2.0,)), ("sub_", (0.5,)), ("mul_", (3.0,)), ("div_", (4.0,)), ("pow_", (2,)), ("zero_", ()),
    ("fill_", (1.5,)), ("clamp_", (0.8, 1.2)), ("clip_", (0.8, None)),
])
def test_scalar_inplace_ops_match_torch_and_return_self(torch, op, args):
    a = arrays(0, (3, 4))[0]
    ours, theirs = fc.tensor(a), torch.tensor(a)
    alias, t_alias = ours.view(-1), theirs.view(-1)
    assert getattr(ours, op)(*args) is ours and getattr(theirs, op)(*args) is theirs
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    np.testing.assert_allclose(alias.numpy(), t_alias.numpy(), rtol=1e-12)   # views see the change


def test_tensor_operand_inplace_ops_broadcast_and_alpha_like_torch(torch):
    a, b = arrays(1, (3, 4), (4,))
    for op, kwargs in (("add_", {}), ("add_", {"alpha": -2.0}), ("sub_", {"alpha": 0.5}), ("mul_", {}), ("div_", {})):
        ours, theirs = fc.tensor(a), torch.tensor(a)
        getattr(ours, op)(fc.tensor(b), **kwargs)
        getattr(theirs, op)(torch.tensor(b), **kwargs)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    ours, theirs = fc.tensor(a), torch.tensor(a)
    ours.copy_(fc.tensor(b))
    theirs.copy_(torch.tensor(b))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    ints = fc.zeros(2, 3, dtype=fc.int64)
    ints.copy_(fc.tensor([[1.7, -2.2, 3.9]] * 2))                # copy_ casts any dtype, as torch's
    assert ints.tolist() == torch.zeros(2, 3, dtype=torch.int64).copy_(torch.tensor([[1.7, -2.2, 3.9]] * 2)).tolist()


def test_augmented_assignment_modifies_in_place_like_torch(torch):
    a, b = arrays(2, (2, 3), (2, 3))
    ours, theirs = fc.tensor(a), torch.tensor(a)
    o_alias, t_alias = ours, theirs
    for x, y in ((ours, fc.tensor(b)), (theirs, torch.tensor(b))):
        x += y
        x -= 0.5
        x *= y
        x /= 2.0
    assert o_alias is ours and t_alias is theirs
    np.testing.assert_allclose(o_alias.numpy(), t_alias.numpy(), rtol=1e-12)
    n = fc.tensor([1, 2])
    n += 3
    n *= 2
    assert n.tolist() == [8, 10] and n.dtype == np.int64


def test_inplace_errors_on_dtype_and_shape_like_torch(torch):
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.long).add_(1.5)
    with pytest.raises(TypeError, match="add_: result type float32 can't be cast to the desired output type int64"):
        fc.ones(3, dtype=fc.long).add_(1.5)
    with pytest.raises(TypeError, match="div_: result type float32 can't be cast"):
        fc.ones(3, dtype=fc.long).div_(2)
    with pytest.raises(RuntimeError):
        torch.ones(3).add_(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"add_: output with shape \(3,\) doesn't match the broadcast shape \(2, 3\)"):
        fc.ones(3).add_(fc.ones(2, 3))
    f32 = fc.ones(3)
    f32 += fc.ones(3, dtype=fc.float64)                         # float64 result cast back, as torch does
    assert f32.dtype == np.float32


def test_random_fills_keep_shape_dtype_and_follow_the_seed():
    x = fc.zeros(2000, dtype=fc.float64)
    fc.manual_seed(3)
    assert x.normal_(1.0, 0.5) is x
    first = x.numpy().copy()
    assert abs(first.mean() - 1.0) < 0.05 and abs(first.std() - 0.5) < 0.05
    fc.manual_seed(3)
    np.testing.assert_array_equal(x.normal_(1.0, 0.5).numpy(), first)
    x.uniform_(-2, 3)
    assert x.numpy().min() >= -2 and x.numpy().max() < 3 and abs(x.numpy().mean() - 0.5) < 0.1
    x.uniform_(**{"from": 1.0, "to": 2.0})                      # PyTorch's keyword names
    assert x.numpy().min() >= 1.0
    g = fc.Generator().manual_seed(5)
    a = fc.zeros(4).normal_(generator=g).numpy().copy()
    np.testing.assert_array_equal(fc.zeros(4).normal_(generator=fc.Generator().manual_seed(5)).numpy(), a)
    with pytest.raises(TypeError, match="normal_: expected a float32 or float64 tensor"):
        fc.zeros(3, dtype=fc.long).normal_()


def test_autograd_through_inplace_ops_matches_torch(torch):
    def body(lib):
        def fn(x, w, v):
            y = x * 2
            y += w                    # the residual idiom: out += shortcut(x)
            y.mul_(v)
            y.sub_(1.0, alpha=0.5)
            y.div_(w)
            y.clamp_(min=0.9)
            z = y.sigmoid()
            return z * y
        return fn

    x, w, v = arrays(4, (3, 4), (3, 4), (4,))
    compare(body(fc), body(torch), [x, w, v], torch)


def test_autograd_through_fills_copies_and_item_assignment_matches_torch(torch):
    def body(x, w, s):
        y = x * 3
        y[0] = w[0]                   # item assignment on the tape
        y[:, 1] = 0.0
        y[y > 5.0] = s                # boolean-mask assignment from a 0-d tensor
        z = (x * 1).fill_(2.0) + (x * 1).zero_()
        c = (x * 1).copy_(w * 2)
        m = (x * 1).masked_fill_(w > 1.2, -1.0)
        return y * z + c * m

    x, w = arrays(5, (3, 4), (3, 4))
    compare(body, body, [x * 2, w, np.array(0.75)], torch)


def test_inplace_on_views_updates_the_base_history_like_torch(torch):
    def body(x, w):
        y = x * 2
        v = y[1:]                      # a view of y
        v.mul_(w[1:])
        y.view(-1)[:2].add_(5.0)       # a view of a view, written in place
        row = y.select(0, 0)
        row.copy_(w[0])
        return y * y

    x, w = arrays(6, (3, 4), (3, 4))
    compare(body, body, [x, w], torch)

    def fresh_base(x, w):
        z = x.new_zeros(3, 4)
        z[0:2].add_(w[:2])            # a base that did not require grad starts to
        return z.sum(1)

    compare(fresh_base, fresh_base, [x, w], torch)


def test_a_view_taken_before_an_inplace_change_of_its_base_sees_the_new_history(torch):
    def body(x):
        y = x * 2
        v = y[0]
        y.mul_(3.0)
        return v * 1.0

    compare(body, body, arrays(7, (2, 3)), torch)


def test_version_check_refuses_overwritten_saved_values_like_torch(torch):
    def overwrite_sigmoid_output(lib, x):
        s = x.sigmoid()               # saves its output
        s.mul_(2)
        return s.sum()

    def overwrite_mul_input(lib, x, w):
        a = x * 1
        b = a * w                     # saves a for w's gradient
        a.add_(1)
        return b.sum()

    def overwrite_through_detach(lib, x):
        e = x.log()                   # saves its input
        x.detach().add_(1)            # detach shares the version counter
        return e.sum()

    def relu_inplace_on_sigmoid(lib, x):
        s = x.sigmoid()
        lib.relu_(s) if lib is torch else F.relu(s, inplace=True)
        return s.sum()

    x, w = arrays(8, (3,), (3,))
    for build, args in ((overwrite_sigmoid_output, [x]), (overwrite_mul_input, [x, w]),
                        (overwrite_through_detach, [x]), (relu_inplace_on_sigmoid, [x])):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            build(torch, *[torch.tensor(a, requires_grad=True) for a in args]).backward()
        with pytest.raises(RuntimeError, match="one of the variables needed for gradient computation has been "
                                               "modified by an inplace operation"):
            build(fc, *[fc.tensor(a, requires_grad=True) for a in args]).backward()


def test_inplace_changes_nothing_saved_needs_pass_like_torch(torch):
    def body(lib):
        def fn(x):
            y = x * 2
            z = y + 1                 # add saves nothing
            y.add_(1)
            e = x.exp()               # saves its output, not x
            x.data.add_(1)            # .data is outside the version counter
            return (z + e).sum() + y.sum()
        return fn

    x = arrays(9, (4,))[0]
    ours, theirs = fc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    body(fc)(ours).backward()
    body(torch)(theirs).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


def test_leaf_rules_match_torch(torch):
    for lib in (torch, fc):
        x = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
            x.add_(1)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            x += 1
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
            x[:2].mul_(2)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            x[0] = 5.0
        with lib.no_grad():
            x.mul_(2)
            x -= 0.5
            x[0] = 0.0
        assert x.tolist() == [0.0, 1.5, 1.5] and x.is_leaf and x.requires_grad
        x.data.add_(1)
        assert x.tolist() == [1.0, 2.5, 2.5]


def test_version_counter_matches_torch(torch):
    for lib in (torch, fc):
        x = lib.ones(3, requires_grad=True)
        v = x.detach()
        with lib.no_grad():
            x.add_(1)
        v.mul_(2)
        assert x._version == 2 and v._version == 2
        assert x.data._version == 0            # .data has its own counter
        y = x * 1
        y[0] = 3.0
        assert y._version == 1
        assert x.view(3)._base is x and x._base is None


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "ELU", "F.relu", "F.leaky_relu", "F.relu_"])
def test_inplace_activations_overwrite_their_input_and_keep_gradients(name, torch):
    tf = torch.nn.functional
    ours, ref = {
        "ReLU": (nn.ReLU(inplace=True), tf.relu),
        "LeakyReLU": (nn.LeakyReLU(0.2, inplace=True), lambda t: tf.leaky_relu(t, 0.2)),
        "ELU": (nn.ELU(inplace=True), tf.elu),
        "F.relu": (lambda x: F.relu(x, inplace=True), tf.relu),
        "F.leaky_relu": (lambda x: F.leaky_relu(x, 0.1, inplace=True), lambda t: tf.leaky_relu(t, 0.1)),
        "F.relu_": (F.relu_, tf.relu),
    }[name]
    x = fc.tensor(np.linspace(-2, 2, 12).reshape(3, 4), requires_grad=True)
    h = x * 1.5
    before = h.numpy()
    out = ours(h)
    assert out is h and h.numpy() is before           # the same tensor and memory
    tx = torch.tensor(x.numpy(), requires_grad=True)
    th = ref(tx * 1.5)
    np.testing.assert_allclose(h.numpy(), th.detach().numpy(), rtol=1e-12)
    (h * h).sum().backward()
    (th * th).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_inplace_relu_in_a_network_trains_like_the_out_of_place_one():
    def net(inplace):
        fc.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=inplace), nn.Conv2d(4, 2, 3),
                             nn.ReLU(inplace=inplace), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    x = fc.tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    grads = []
    for inplace in (False, True):
        model = net(inplace)
        F.cross_entropy(model(x), np.array([0, 2])).backward()
        grads.append([p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_data_is_a_tensor_sharing_memory_like_torch(torch):
    m = nn.Conv2d(3, 4, 3)
    assert isinstance(m.weight.data, fc.Tensor) and not isinstance(m.weight.data, nn.Parameter)
    assert not m.weight.data.requires_grad and np.shares_memory(m.weight.data.numpy(), m.weight.numpy())
    assert isinstance(m.weight.numpy(), np.ndarray)
    m.weight.data.normal_(0.0, 0.02)                           # the DCGAN idioms
    m.bias.data.fill_(0)
    assert abs(float(m.weight.std()) - 0.02) < 0.01 and m.bias.abs().sum().item() == 0
    nn.init.normal_(m.weight.data, 1.0, 0.02)
    assert abs(m.weight.mean().item() - 1.0) < 0.01
    nn.init.constant_(m.bias.data, 0.5)
    assert m.bias.tolist() == [0.5] * 4
    m.weight.data = fc.zeros(4, 3, 3, 3)                       # assignment replaces the array
    assert m.weight.abs().sum().item() == 0 and isinstance(m.weight, nn.Parameter)
    m.bias.data = np.ones(4, np.float32)
    assert m.bias.tolist() == [1.0] * 4
    t = torch.nn.Conv2d(3, 4, 3)
    t.weight.data = torch.zeros(4, 3, 3, 3)
    assert t.weight.abs().sum().item() == 0


def test_dcgan_weights_init_and_manual_sgd_step_match_torch(torch):
    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            m.weight.data.fill_(0.02)
        elif classname.find("BatchNorm") != -1:
            m.weight.data.fill_(1.0)
            m.bias.data.fill_(0)

    ours = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.ReLU(True), nn.Flatten(), nn.Linear(8, 1))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, bias=False), torch.nn.BatchNorm2d(2), torch.nn.ReLU(True),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 1))
    ours.apply(weights_init)
    theirs.apply(weights_init)
    theirs[4].weight.data = torch.tensor(ours[4].weight.numpy().copy())
    theirs[4].bias.data = torch.tensor(ours[4].bias.numpy().copy())
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    for model, lib in ((ours, fc), (theirs, torch)):
        for _ in range(3):
            model.zero_grad()
            model(lib.tensor(x)).pow(2).mean().backward()
            with lib.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad                          # in place: the Parameter objects stay
    for a, b in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_optimizer_step_between_forward_and_backward_raises_like_torch(torch):
    """The GAN pitfall: backward through a graph whose saved weights an optimizer step overwrote."""
    for lib in (torch, fc):
        layer = (torch.nn if lib is torch else nn).Linear(3, 2)
        opt = (torch.optim if lib is torch else fc.optim).SGD(layer.parameters(), lr=0.1)
        x = lib.ones(4, 3, requires_grad=True)     # the weight is saved for x's gradient
        out = layer(x).sum()
        out.backward(retain_graph=True)
        opt.step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.backward()
