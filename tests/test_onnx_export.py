"""fc.onnx.export: every layer and tensor operation, run in ONNX Runtime against fastconv's own output
(1e-5 relative), at the traced batch size and another one."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def assert_close(got, ref):
    """Within 1e-5 relative to the output's scale."""
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1e-6, float(np.abs(ref).max(initial=0))))


class Lambda(nn.Module):
    """A module whose forward is a Python function (as users write residual blocks)."""

    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, m in modules.items():
            setattr(self, name, m)

    def forward(self, *x):
        return self.fn(self, *x)


def run_onnx(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: np.asarray(x) for n, x in zip(names, inputs)})


def check(model, x, tmp_path, other_batch=3, opset=17, dynamic_batch=True, seed=0):
    """Export on ``x``; ORT's outputs equal the model's on x and on a batch of another size."""
    path = tmp_path / "model.onnx"
    fc.onnx.export(model, x, path, opset_version=opset, dynamic_batch=dynamic_batch)
    model.eval()
    batches = [np.asarray(x)]
    if dynamic_batch and other_batch:
        rng = np.random.default_rng(seed + 1)
        batches.append(rng.standard_normal((other_batch,) + np.shape(x)[1:]).astype(np.asarray(x).dtype))
    for xb in batches:
        with fc.no_grad():
            ref = model(fc.tensor(xb))
        refs = ref if isinstance(ref, (tuple, list)) else (ref,)
        got = run_onnx(path, xb)
        assert len(got) == len(refs)
        for g, r in zip(got, refs):
            assert g.shape == r.shape
            assert_close(g, r.numpy())
    return onnx.load(str(path))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- convolutions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3), dict(kernel_size=3, padding=1, bias=False), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 5), stride=(2, 1), padding=(1, 2)), dict(kernel_size=3, dilation=2, padding=2),
    dict(kernel_size=4, padding="same"), dict(kernel_size=(2, 5), dilation=(3, 1), padding="same"),
    dict(kernel_size=3, padding="valid", stride=3), dict(kernel_size=3, groups=2, padding=1),
    dict(kernel_size=3, groups=8, padding=1, stride=2),
])
def test_conv2d(tmp_path, kwargs):
    fc.manual_seed(0)
    in_channels = 8
    out_channels = 8 if kwargs.get("groups", 1) == 8 else 6
    check(nn.Conv2d(in_channels, out_channels, **kwargs), randn(2, in_channels, 11, 10), tmp_path)


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2), size=st.integers(5, 9))
@settings(max_examples=15, deadline=None)
def test_conv2d_geometry_property(tmp_path_factory, k, s, p, d, size):
    if d * (k - 1) + 1 > size + 2 * p:
        return
    fc.manual_seed(1)
    check(nn.Conv2d(2, 3, k, stride=s, padding=p, dilation=d), randn(1, 2, size, size + 1),
          tmp_path_factory.mktemp("c"), other_batch=2)


@pytest.mark.parametrize("kwargs,size", [
    (dict(kernel_size=3), None), (dict(kernel_size=3, stride=2, padding=1, output_padding=1), None),
    (dict(kernel_size=(3, 4), stride=(2, 3), padding=(1, 0), bias=False), None),
    (dict(kernel_size=3, dilation=2, stride=2, output_padding=1), None),
    (dict(kernel_size=3, groups=2, stride=2), None), (dict(kernel_size=4, stride=2, padding=1), (14, 15)),
])
def test_conv_transpose2d(tmp_path, kwargs, size):
    fc.manual_seed(0)
    layer = nn.ConvTranspose2d(4, 6, **kwargs)
    model = layer if size is None else Lambda(lambda m, x: m.up(x, output_size=size), up=layer)
    check(model, randn(2, 4, 7, 7), tmp_path)


# ---- pools ------------------------------------------------------------------------------------------

@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2), ceil=st.booleans(),
       size=st.integers(4, 9))
@settings(max_examples=25, deadline=None)
def test_max_pool_geometry_property(tmp_path_factory, k, s, p, d, ceil, size):
    if p > k // 2 or d * (k - 1) + 1 > size + 2 * p:
        return
    check(nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=ceil), randn(1, 2, size, size + 2),
          tmp_path_factory.mktemp("m"), other_batch=2)


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(),
       include=st.booleans(), divisor=st.sampled_from([None, 3]), size=st.integers(4, 9))
@settings(max_examples=25, deadline=None)
def test_avg_pool_geometry_property(tmp_path_factory, k, s, p, ceil, include, divisor, size):
    if p > k // 2 or k > size + 2 * p:
        return
    check(nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor),
          randn(1, 2, size, size + 1), tmp_path_factory.mktemp("a"), other_batch=2)


def test_max_pool_with_indices_and_unpool(tmp_path):
    pool = nn.MaxPool2d(2, stride=2, return_indices=True)
    unpool = nn.MaxUnpool2d(2, stride=2)

    def forward(m, x):
        y, idx = m.pool(x)
        return m.unpool(y, idx), y, idx

    check(Lambda(forward, pool=pool, unpool=unpool), randn(2, 3, 8, 6), tmp_path)


def test_max_pool_indices_with_padding_ceil_and_unbatched_input(tmp_path):
    pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    model = check(Lambda(lambda m, x: m.pool(x), pool=pool), randn(3, 9, 8), tmp_path, dynamic_batch=False)
    assert any(n.op_type == "MaxPool" for n in model.graph.node)


@pytest.mark.parametrize("out", [1, (1, 1), 2, (3, 2), (7, 5), (4, None)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pools(tmp_path, out, kind):
    layer = nn.AdaptiveAvgPool2d(out) if kind == "avg" else nn.AdaptiveMaxPool2d(out)
    check(layer, randn(2, 3, 8, 7), tmp_path)


def test_adaptive_max_pool_indices_and_global_pools(tmp_path):
    model = Lambda(lambda m, x: (*m.a(x), m.g(x), m.h(x)), a=nn.AdaptiveMaxPool2d((2, 3), return_indices=True),
                   g=nn.GlobalAvgPool2d(), h=nn.GlobalMaxPool2d())
    check(model, randn(2, 3, 8, 9), tmp_path)


# ---- normalization ------------------------------------------------------------------------------

def _trained(model, x, steps=2):
    model.train()
    for _ in range(steps):
        model(fc.tensor(x))
    return model.eval()


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_2d_and_1d(tmp_path, affine):
    fc.manual_seed(0)
    bn2 = _trained(nn.BatchNorm2d(4, affine=affine), randn(5, 4, 3, 3) * 3 + 1)
    check(bn2, randn(2, 4, 3, 3), tmp_path)
    bn1 = _trained(nn.BatchNorm1d(4, affine=affine), randn(6, 4) * 2 - 1)
    check(bn1, randn(2, 4), tmp_path)


def test_batch_norm_without_running_stats_uses_batch_statistics(tmp_path):
    bn = nn.BatchNorm2d(3, track_running_stats=False)
    check(bn, randn(4, 3, 5, 5), tmp_path)


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("shape,affine", [((6,), True), ((5, 6), True), ((6,), False)])
def test_layer_norm(tmp_path, opset, shape, affine):
    fc.manual_seed(0)
    ln = nn.LayerNorm(shape, elementwise_affine=affine)
    if affine:
        ln.weight.numpy()[...] = randn(*shape, seed=3)
        ln.bias.numpy()[...] = randn(*shape, seed=4)
    check(ln, randn(2, 3, 5, 6) + 2, tmp_path, opset=opset)


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True)])
def test_instance_norm(tmp_path, affine, track):
    fc.manual_seed(0)
    norm_layer = nn.InstanceNorm2d(3, affine=affine, track_running_stats=track)
    if affine:
        norm_layer.weight.numpy()[...] = randn(3, seed=5)
    check(_trained(norm_layer, randn(4, 3, 5, 5) + 1), randn(2, 3, 5, 5), tmp_path)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm(tmp_path, groups):
    gn = nn.GroupNorm(groups, 6)
    gn.weight.numpy()[...] = randn(6, seed=6)
    gn.bias.numpy()[...] = randn(6, seed=7)
    check(gn, randn(2, 6, 4, 3) * 2 + 1, tmp_path)


# ---- activations, linear, tensor operations -------------------------------------------------------

@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.Sigmoid(), nn.Tanh(),
                                   nn.Softmax(dim=1), nn.Softmax(dim=-1), nn.LogSoftmax(dim=1),
                                   nn.LogSoftmax(dim=-1), nn.Dropout(0.3), nn.Dropout2d(0.5), nn.Identity()],
                         ids=lambda m: repr(m))
def test_activations_and_eval_dropout(tmp_path, layer):
    check(layer, randn(2, 3, 4, 5) * 3, tmp_path)


def test_linear_flatten_unflatten(tmp_path):
    fc.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 8), nn.Unflatten(1, (2, 4)), nn.Linear(4, 3, bias=False),
                          nn.Flatten(0, -1))
    check(model, randn(2, 3, 4, 5), tmp_path)


def test_residual_python_forward(tmp_path):
    fc.manual_seed(0)

    def block(m, x):
        y = F.relu(m.bn1(m.conv1(x)))
        y = m.bn2(m.conv2(y))
        return F.relu(y + m.down(x))

    model = Lambda(block, conv1=nn.Conv2d(3, 8, 3, 2, 1, bias=False), bn1=nn.BatchNorm2d(8),
                   conv2=nn.Conv2d(8, 8, 3, 1, 1, bias=False), bn2=nn.BatchNorm2d(8),
                   down=nn.Sequential(nn.Conv2d(3, 8, 1, 2, bias=False), nn.BatchNorm2d(8)))
    _trained(model, randn(4, 3, 8, 8))
    proto = check(model, randn(2, 3, 8, 8), tmp_path)
    assert {i.name for i in proto.graph.initializer} >= set(model.state_dict()) - {
        k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    nodes = [n.name for n in proto.graph.node]
    assert "/conv1/Conv" in nodes and "/down/0/Conv" in nodes


def test_tensor_operations(tmp_path):
    def forward(m, x):
        a = x * 2.0 + 1.0
        b = (a - x) / 3.0 - x ** 2
        c = fc.cat([a, -b], dim=1)
        d = fc.stack([x, a], dim=2).mean(dim=2)
        e = c[:, 1:5:2, ::-1, 1] + d[:, :2, :, -1].sum(1, keepdim=True).exp().clip(0, 5).log()
        f = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 3).transpose(1, 2)
        g = fc.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)), value=0.5).max(dim=3, keepdim=True).values * x.var(dim=(2, 3), keepdim=True)
        h = fc.where(m.mask, x, x.abs().sqrt()) @ m.w
        i = x[..., None, 2][:, None] + x.min(dim=1).values[:, :, 1].unsqueeze(-1).mean()
        return e, f, g, h, i, x.astype(np.float64).astype(np.float32).tanh()

    model = Lambda(forward)
    model.register_buffer("mask", randn(4, 5, seed=9) > 0)
    model.register_buffer("w", randn(5, 2, seed=10))
    check(model, randn(2, 3, 4, 5), tmp_path)


def test_integer_array_indexing(tmp_path):
    check(Lambda(lambda m, x: x[:, [2, 0, 2]] * 1.5), randn(2, 3, 4), tmp_path)


def test_coord_conv_constant_follows_the_batch(tmp_path):
    fc.manual_seed(0)
    proto = check(nn.CoordConv2d(3, 4, 3, padding=1, with_r=True), randn(2, 3, 6, 5), tmp_path, other_batch=5)
    assert any(n.op_type == "Expand" for n in proto.graph.node)


# ---- names, options, errors ---------------------------------------------------------------------

def test_names_dynamic_batch_and_static_export(tmp_path):
    fc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = randn(2, 1, 6, 6)
    proto = fc.onnx.export(model, x, tmp_path / "a.onnx", input_names=["pixels"], output_names=["logits"])
    assert [i.name for i in proto.graph.input] == ["pixels"] and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [i.name for i in proto.graph.initializer] == list(model.state_dict())
    static = fc.onnx.export(model, x, tmp_path / "b.onnx", dynamic_batch=False)
    assert static.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert [o.name for o in static.graph.output] == ["output"]


def test_multiple_inputs_and_an_output_that_is_an_input(tmp_path):
    model = Lambda(lambda m, a, b: (a + b, a))
    fc.onnx.export(model, (randn(2, 3), randn(2, 3, seed=1)), tmp_path / "m.onnx")
    a, b = randn(4, 3, seed=2), randn(4, 3, seed=3)
    s, first = run_onnx(tmp_path / "m.onnx", a, b)
    assert_close(s, a + b)
    np.testing.assert_array_equal(first, a)


def test_unsupported_function_is_named_with_its_module(tmp_path):
    class Cube(fc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x ** 3

    model = nn.Sequential(nn.ReLU(), Lambda(lambda m, x: Cube.apply(x)))
    with pytest.raises(fc.onnx.ExportError, match=r"Cube \(called in module '1' \(Lambda\)\) has no ONNX"):
        fc.onnx.export(model, randn(2, 3), tmp_path / "m.onnx")


def test_values_computed_outside_fastconv_are_refused(tmp_path):
    leaked = Lambda(lambda m, x: x + fc.tensor(x.numpy()[::-1].copy()))
    with pytest.raises(fc.onnx.ExportError, match="changes with the input"):
        fc.onnx.export(leaked, randn(2, 3), tmp_path / "m.onnx")
    aliased = Lambda(lambda m, x: F.relu(x) * fc.Tensor(x.numpy()))
    with pytest.raises(fc.onnx.ExportError, match="holds the memory of a traced tensor"):
        fc.onnx.export(aliased, randn(2, 3), tmp_path / "m.onnx", dynamic_batch=False)


def test_training_mode_is_restored_and_dropout_in_training_is_refused(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model.train()
    fc.onnx.export(model, randn(2, 3), tmp_path / "m.onnx")
    assert model.training and model[1].training
    forced = Lambda(lambda m, x: F.dropout(x, 0.5, training=True))
    with pytest.raises(fc.onnx.ExportError, match="dropout ran in training mode"):
        fc.onnx.export(forced, randn(2, 3), tmp_path / "m.onnx")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="opset_version"):
        fc.onnx.export(nn.ReLU(), randn(1, 2), tmp_path / "m.onnx", opset_version=9)
    with pytest.raises(TypeError, match="example_input"):
        fc.onnx.export(nn.ReLU(), [[1.0, 2.0]], tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="output_names"):
        fc.onnx.export(nn.ReLU(), randn(1, 2), tmp_path / "m.onnx", output_names=["a", "b"])


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "fastconv\[onnx\]"'):
        fc.onnx.export(nn.ReLU(), randn(1, 2), tmp_path / "m.onnx")


@pytest.mark.parametrize("opset", [13, 15, 18, 21])
def test_opsets(tmp_path, opset):
    """Reductions (axes attribute before 18, input after), layer norm (a node from 17), Squeeze/Unsqueeze,
    Pad and Clip forms, across the supported opsets."""
    fc.manual_seed(0)

    def forward(m, x):
        y = m.pool(F.relu(m.ln(m.gn(m.conv(x)))))
        z = y.mean(dim=(2, 3), keepdim=True) + y.var(dim=1, keepdim=True) - y.amax(dim=3, keepdim=True)
        return m.adaptive(z)[:, None, 1:].clip(-1.0, 1.0), fc.stack([x[:, 0], x[:, 1]], dim=1).sum(dim=1)

    model = Lambda(forward, conv=nn.Conv2d(3, 4, 3, padding=1), gn=nn.GroupNorm(2, 4), ln=nn.LayerNorm(7),
                   pool=nn.MaxPool2d(2, ceil_mode=True), adaptive=nn.AdaptiveAvgPool2d((3, 2)))
    check(model, randn(2, 3, 6, 7), tmp_path, opset=opset)


# ---- the PyTorch drop-in layers: activations, padding modes, interpolation ---------------------------

@pytest.mark.parametrize("layer,opset", [
    (nn.ReLU6(), 17), (nn.SiLU(), 17), (nn.GELU(), 17), (nn.GELU(approximate="tanh"), 17), (nn.GELU(), 20),
    (nn.GELU(approximate="tanh"), 20), (nn.Hardswish(), 17), (nn.Hardsigmoid(), 17), (nn.Mish(), 17),
    (nn.Mish(), 18), (nn.Softplus(), 17), (nn.Softplus(beta=2.0, threshold=3.0), 17), (nn.PReLU(), 17),
    (nn.PReLU(3, init=0.1), 17), (nn.Hardtanh(), 17), (nn.Hardtanh(-2.5, 1.5), 17),
], ids=lambda v: repr(v))
def test_dropin_activations(tmp_path, layer, opset):
    check(layer, randn(2, 3, 4, 5) * 4, tmp_path, opset=opset)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("opset", [17, 19])
def test_conv_padding_modes(tmp_path, mode, opset):
    fc.manual_seed(0)
    check(nn.Conv2d(3, 4, 3, padding=(2, 1), padding_mode=mode), randn(2, 3, 6, 7), tmp_path, opset=opset)


def test_pad_layers_and_negative_amounts(tmp_path):
    model = nn.Sequential(nn.ReflectionPad2d((1, 2, 0, 1)), nn.ReplicationPad2d(1), nn.CircularPad2d((2, 0, 1, 1)),
                          nn.ZeroPad2d((1, 1, 2, 0)), nn.ConstantPad2d(1, -0.5),
                          Lambda(lambda m, x: F.pad(x, (-1, 2, 1, -2), value=0.25)))
    check(model, randn(2, 3, 5, 6), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=2, mode="nearest"), dict(size=(7, 9), mode="nearest"), dict(scale_factor=1.5, mode="nearest-exact"),
    dict(scale_factor=2, mode="bilinear"), dict(size=(9, 4), mode="bilinear", align_corners=True),
    dict(scale_factor=0.5, mode="bilinear"), dict(size=(3, 4), mode="area"),
])
def test_interpolate(tmp_path, kwargs):
    check(nn.Upsample(**kwargs), randn(2, 3, 6, 5), tmp_path)


def test_interpolate_1d(tmp_path):
    check(Lambda(lambda m, x: F.interpolate(x, scale_factor=2.5, mode="linear")), randn(2, 3, 7), tmp_path)


def test_pytorch_style_tensor_operations(tmp_path):
    """Tensor methods of the PyTorch drop-in: elementwise max/min/clamp with tensors, clone, std,
    norms, expand/repeat/split, max/min with indices, topk/sort, gather, index_select, masked_fill."""
    def forward(m, x):
        a = fc.maximum(x, m.w) + fc.minimum(x, 0.5 * m.w) + x.clamp(min=m.lo, max=m.hi).clone()
        b = x.std(dim=2, keepdim=True) + x.norm(dim=(1, 3), keepdim=True) + x.norm(p=1, dim=3, keepdim=True)
        c = x[:, :1].expand(x.shape[0], 3, 4, 5) + x.repeat(1, 1, 1, 1)
        first, rest = x.split([2, 3], dim=3)
        values, indices = x.max(dim=1)
        top, top_idx = x.topk(2, dim=3)
        ordered, order = x.sort(dim=2, descending=True)
        return (a + b + c, first * 2, rest, values, indices, top, top_idx, ordered, order, x.gather(3, m.index),
                x.index_select(1, m.channels), x.masked_fill(m.mask, -1.0))

    model = Lambda(forward)
    model.register_buffer("w", randn(4, 5, seed=3))
    model.register_buffer("lo", randn(5, seed=4) - 1)
    model.register_buffer("hi", randn(5, seed=5) + 1)
    model.register_buffer("index", np.random.default_rng(6).integers(0, 5, size=(1, 3, 4, 2)))
    model.register_buffer("channels", np.array([2, 0, 2]))
    model.register_buffer("mask", randn(4, 5, seed=7) > 0)
    check(model, randn(2, 3, 4, 5), tmp_path, dynamic_batch=False)


@pytest.mark.parametrize("max_value", [None, 6.0])
@pytest.mark.parametrize("train_stats", [False, True])
def test_fused_batch_norm_activation_and_add_relu(tmp_path, max_value, train_stats):
    """The zoo's fused Functions called directly (module fusion is off while tracing, since the
    tracer's hooks are not observer hooks): BN [+ residual] + ReLU/ReLU6, add + ReLU."""
    fc.manual_seed(0)
    bn = _trained(nn.BatchNorm2d(3), randn(4, 3, 4, 4) * 2 + 1)
    bn.weight.numpy()[...] = randn(3, seed=2)

    def forward(m, x):
        stats = (None, None) if train_stats else (m.bn.running_mean, m.bn.running_var)
        y = F.batch_norm_relu(x, *stats, m.bn.weight, m.bn.bias, training=train_stats, residual=x,
                              max_value=max_value)
        return F.add_relu(y, -x, max_value=max_value)

    check(Lambda(forward, bn=bn), randn(2, 3, 4, 4), tmp_path, dynamic_batch=not train_stats)


def test_in_place_operations_follow_the_tensor(tmp_path):
    """relu(inplace=True), +=, *= update a Tensor that later ops read: they must read the result."""
    fc.manual_seed(0)

    def forward(m, x):
        out = m.conv(x)
        identity = out
        out = F.relu(out, inplace=True)
        out += x[:, :1]
        out *= 0.5
        y = m.act(out)  # nn.ReLU(inplace=True)
        return y + identity

    check(Lambda(forward, conv=nn.Conv2d(3, 4, 3, padding=1), act=nn.ReLU(inplace=True)), randn(2, 3, 5, 5), tmp_path)
