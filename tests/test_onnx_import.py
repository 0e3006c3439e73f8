"""fc.onnx.load: ONNX graphs (hand-built, fastconv's own export) run as trainable fastconv modules,
checked against ONNX Runtime on the same file (1e-5 relative)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv as fc
from fastconv import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FLOAT = TensorProto.FLOAT


def assert_close(got, ref):
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1e-6, float(np.abs(ref).max(initial=0))))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def graph_model(nodes, inputs, outputs, initializers=(), opset=17):
    """A model of ``nodes``; inputs/outputs are (name, shape) pairs (shape None: unknown)."""
    g = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info(n, FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, FLOAT, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(g, opset_imports=opsets)
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def compare(model, *xs, tmp_path=None):
    """fastconv's import and ONNX Runtime give the same outputs; returns the imported module."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    refs = session.run(None, dict(zip(names, xs)))
    module = fc.onnx.load(model)
    with fc.no_grad():
        out = module(*[fc.tensor(x) for x in xs])
    outs = out if isinstance(out, tuple) else (out,)
    for got, ref in zip(outs, refs):
        assert got.shape == ref.shape
        if ref.dtype.kind == "f":
            assert_close(got.numpy(), ref)
        else:
            np.testing.assert_array_equal(got.numpy(), ref)
    return module


def single(op, x_shape, attrs=None, initializers=(), extra_inputs=(), n_out=1, opset=17, seed=0):
    node = helper.make_node(op, ["x", *extra_inputs], [f"y{i}" for i in range(n_out)], name=f"the_{op}",
                            **(attrs or {}))
    model = graph_model([node], [("x", x_shape)], [(f"y{i}", None) for i in range(n_out)], initializers, opset)
    return compare(model, randn(*x_shape, seed=seed))


# ---- convolution and pooling ------------------------------------------------------------------------

W = randn(4, 3, 3, 3, seed=1)
B = randn(4, seed=2)


@pytest.mark.parametrize("attrs", [
    {}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"pads": [0, 1, 2, 1]}, {"auto_pad": "SAME_UPPER"},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, {"auto_pad": "VALID", "dilations": [2, 1]},
])
def test_conv(attrs):
    single("Conv", (2, 3, 7, 8), attrs, [("w", W), ("b", B)], ["w", "b"])


def test_grouped_conv_without_bias():
    single("Conv", (1, 4, 6, 6), {"group": 2, "pads": [1, 1, 1, 1]}, [("w", randn(6, 2, 3, 3, seed=3))], ["w"])


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]}, {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    {"strides": [2, 3], "pads": [0, 1, 2, 1]}, {"strides": [2, 2], "output_shape": [10, 11]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, {"dilations": [2, 2], "group": 1},
])
def test_conv_transpose(attrs):
    single("ConvTranspose", (2, 3, 5, 5), attrs, [("w", randn(3, 4, 3, 3, seed=4)), ("b", B)], ["w", "b"])


@given(k=st.integers(1, 3), s=st.integers(1, 3), pads=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       ceil=st.integers(0, 1), size=st.integers(5, 8))
@settings(max_examples=25, deadline=None)
def test_max_pool_property(k, s, pads, ceil, size):
    if any(p >= k for p in pads):
        return
    single("MaxPool", (1, 2, size, size + 1), {"kernel_shape": [k, k], "strides": [s, s], "pads": pads,
                                                 "ceil_mode": ceil})


@given(k=st.integers(1, 3), s=st.integers(1, 3), pads=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       include=st.integers(0, 1), size=st.integers(5, 8))
@settings(max_examples=25, deadline=None)
def test_average_pool_property(k, s, pads, include, size):
    if any(p >= k for p in pads):
        return
    single("AveragePool", (1, 2, size, size + 1), {"kernel_shape": [k, k], "strides": [s, s], "pads": pads,
                                                     "count_include_pad": include})


def test_max_pool_indices_and_unpool():
    x_shape = (2, 3, 6, 4)
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxUnpool", ["y", "i"], ["u"], kernel_shape=[2, 2], strides=[2, 2])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", FLOAT, None),
                           helper.make_tensor_value_info("i", TensorProto.INT64, None),
                           helper.make_tensor_value_info("u", FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    compare(model, randn(*x_shape))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pools(op):
    single(op, (2, 3, 5, 4))


# ---- normalization, activations, linear ------------------------------------------------------------

def test_batch_norm_runs_in_eval_and_trains_with_batch_statistics():
    init = [("s", randn(3, seed=1)), ("b", randn(3, seed=2)), ("m", randn(3, seed=3)),
            ("v", np.abs(randn(3, seed=4)) + 0.5)]
    module = single("BatchNormalization", (2, 3, 4, 4), {"epsilon": 1e-3, "momentum": 0.8}, init,
                    ["s", "b", "m", "v"])
    assert set(module.state_dict()) == {"s", "b", "m", "v"}
    assert {n for n, _ in module.named_parameters()} == {"s", "b"}
    module.train()
    x = randn(2, 3, 4, 4, seed=7)
    y = module(fc.tensor(x)).numpy()
    mean = x.mean(axis=(0, 2, 3))
    expected = (x - mean[:, None, None]) / np.sqrt(x.var(axis=(0, 2, 3))[:, None, None] + 1e-3)
    assert_close(y, expected * init[0][1][:, None, None] + init[1][1][:, None, None])
    # torch's momentum is 1 - ONNX's
    assert_close(module.state_dict()["m"], 0.8 * init[2][1] + 0.2 * mean)


def test_instance_layer_and_group_norm():
    single("InstanceNormalization", (2, 3, 4, 5), {"epsilon": 1e-4}, [("s", randn(3)), ("b", randn(3, seed=1))],
           ["s", "b"])
    single("LayerNormalization", (2, 3, 4, 5), {"axis": -2}, [("s", randn(4, 5)), ("b", randn(4, 5, seed=1))],
           ["s", "b"])
    single("LayerNormalization", (2, 3, 4, 5), {"axis": -1}, [("s", randn(5))], ["s"])
    single("GroupNormalization", (2, 6, 4, 3), {"num_groups": 3}, [("s", randn(3)), ("b", randn(3, seed=1))],
           ["s", "b"], opset=18)
    single("GroupNormalization", (2, 6, 4, 3), {"num_groups": 2}, [("s", randn(6)), ("b", randn(6, seed=1))],
           ["s", "b"], opset=21)


@pytest.mark.parametrize("op,attrs,opset", [
    ("Relu", {}, 17), ("LeakyRelu", {"alpha": 0.3}, 17), ("Elu", {"alpha": 0.5}, 17), ("Sigmoid", {}, 17),
    ("Tanh", {}, 17), ("Softmax", {"axis": 1}, 17), ("LogSoftmax", {}, 17), ("Softmax", {"axis": 1}, 11),
    ("LogSoftmax", {"axis": 2}, 11), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 17), ("HardSwish", {}, 17),
    ("Softplus", {}, 17), ("Mish", {}, 18), ("Erf", {}, 17), ("Gelu", {}, 20),
    ("Gelu", {"approximate": "tanh"}, 20), ("Neg", {}, 17), ("Abs", {}, 17), ("Exp", {}, 17),
    ("Identity", {}, 17), ("Dropout", {}, 17), ("Flatten", {"axis": 2}, 17), ("Transpose", {"perm": [2, 0, 3, 1]}, 17),
    ("ReduceMean", {"axes": [1, 3], "keepdims": 0}, 17), ("ReduceMax", {"keepdims": 1}, 17),
    ("Clip", {"min": -0.5, "max": 0.7}, 6), ("Squeeze", {"axes": [1]}, 11), ("Unsqueeze", {"axes": [0, 3]}, 11),
    ("Split", {"axis": 3, "split": [1, 3]}, 11),
])
def test_elementwise_and_shape_ops(op, attrs, opset):
    shape = (2, 1, 3, 4) if op == "Squeeze" else (2, 3, 3, 4)
    n_out = 2 if op == "Split" else 1
    single(op, shape, attrs, opset=opset, n_out=n_out)


def test_prelu_and_clip_with_inputs():
    single("PRelu", (2, 3, 4, 4), initializers=[("slope", randn(3, 1, 1) * 0.1)], extra_inputs=["slope"])
    single("Clip", (2, 3), initializers=[("lo", np.array(-0.2, np.float32)), ("hi", np.array(0.4, np.float32))],
           extra_inputs=["lo", "hi"])


@pytest.mark.parametrize("attrs,b_shape,c", [
    ({"transB": 1}, (5, 4), True), ({}, (4, 5), True), ({"alpha": 0.5, "beta": 2.0, "transA": 1}, (4, 5), True),
    ({"transB": 1}, (5, 4), False),
])
def test_gemm(attrs, b_shape, c):
    a_shape = (4, 3) if attrs.get("transA") else (3, 4)
    init = [("b", randn(*b_shape, seed=1))] + ([("c", randn(5, seed=2))] if c else [])
    single("Gemm", a_shape, attrs, init, ["b"] + (["c"] if c else []))


def test_shape_arithmetic_reshape_gather_slice_concat_expand():
    """The dynamic-shape chains exporters write: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    ints = lambda name, v: (name, np.array(v, dtype=np.int64))  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axis0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes", "steps"], ["sliced"]),
        helper.make_node("Gather", ["sliced", "cols"], ["picked"], axis=1),
        helper.make_node("MatMul", ["picked", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["biased"]),
        helper.make_node("Expand", ["bias", "eshape"], ["expanded"]),
        helper.make_node("Mul", ["biased", "expanded"], ["prod"]),
        helper.make_node("ConstantOfShape", ["eshape2"], ["zeros"],
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Sub", ["prod", "zeros"], ["sub"]),
        helper.make_node("Pad", ["sub", "pads", "pad_value"], ["padded"], mode="constant"),
        helper.make_node("Where", ["mask", "padded", "pad_value"], ["y"]),
    ]
    init = [ints("zero", 0), ints("axis0", [0]), ints("minus1", [-1]), ints("starts", [1]), ints("ends", [1000]),
            ints("axes", [1]), ints("steps", [2]), ints("cols", [0, 2, 4, 4]), ("w", randn(4, 3, seed=5)),
            ("bias", randn(3, seed=6)), ints("eshape", [2, 3]), ints("eshape2", [1, 3]), ints("pads", [1, 0, 0, 2]),
            ("pad_value", np.array(-1.0, np.float32)), ("mask", np.array([[True, False, True, True, False]] * 3))]
    module = compare(graph_model(nodes, [("x", [2, 3, 4])], [("y", None)], init), randn(2, 3, 4))
    assert {n for n, _ in module.named_parameters()} == {"w", "bias"}


def test_onnx_opset_11_forms():
    """Attributes that later opsets turned into inputs (Clip, Squeeze/Unsqueeze, Pad, Reduce, Slice)."""
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1]),
             helper.make_node("ReduceSum", ["u"], ["r"], axes=[1], keepdims=1),
             helper.make_node("Squeeze", ["r"], ["s"], axes=[1]),
             helper.make_node("Slice", ["s", "st", "en"], ["sl"]),
             helper.make_node("Clip", ["sl", "lo", ""], ["y"])]
    init = [("st", np.array([0, 1], np.int64)), ("en", np.array([1, 3], np.int64)), ("lo", np.array(0.1, np.float32))]
    compare(graph_model(nodes, [("x", [2, 3])], [("y", None)], init, opset=11), randn(2, 3))


# ---- fastconv -> ONNX -> fastconv -----------------------------------------------------------------------

def _cnn():
    fc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.GroupNorm(2, 8), nn.ELU(),
                         nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Linear(8 * 6, 10), nn.LogSoftmax(dim=1))


def test_round_trip_outputs_names_and_gradients(tmp_path):
    model = _cnn()
    model.train()
    model(fc.randn(4, 3, 12, 10))
    model.eval()
    path = tmp_path / "cnn.onnx"
    fc.onnx.export(model, fc.randn(2, 3, 12, 10), path)
    imported = fc.onnx.load(path)
    assert not imported.training
    assert set(imported.state_dict()) == set(model.state_dict()) - {"1.num_batches_tracked"}
    x = fc.tensor(randn(3, 3, 12, 10, seed=9))
    assert_close(imported(x).numpy(), model(x).numpy())
    # gradients of the same loss reach the same parameters with the same values
    for m in (model, imported):
        m.zero_grad()
        (m(x) * fc.tensor(randn(3, 10, seed=3))).sum().backward()
    grads = dict(model.named_parameters())
    for name, p in imported.named_parameters():
        assert p.grad is not None, name
        assert_close(p.grad.numpy(), grads[name].grad.numpy())


def test_imported_module_fine_tunes_saves_and_exports_again(tmp_path):
    model = _cnn().eval()
    fc.onnx.export(model, fc.randn(2, 3, 12, 10), tmp_path / "a.onnx")
    imported = fc.onnx.load(tmp_path / "a.onnx")
    imported.train()
    opt = fc.optim.SGD(imported.parameters(), lr=0.05, momentum=0.9)
    x, target = fc.tensor(randn(8, 3, 12, 10, seed=4)), np.arange(8) % 10
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = fc.nn.functional.nll_loss(imported(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert losses[-1] < losses[0] * 0.7
    imported.eval()
    fc.save(imported.state_dict(), tmp_path / "tuned.npz")
    again = fc.onnx.load(tmp_path / "a.onnx")
    again.load_state_dict(fc.load(tmp_path / "tuned.npz"))
    assert_close(again(x).numpy(), imported(x).numpy())
    fc.onnx.export(imported, fc.randn(2, 3, 12, 10), tmp_path / "b.onnx")
    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"input": x.numpy()})[0], imported(x).numpy())


def test_erf_gradcheck():
    from fastconv.onnx._functions import Erf
    x = fc.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert fc.autograd.gradcheck(lambda t: Erf.apply(t), (x,))


# ---- errors ------------------------------------------------------------------------------------------

def test_unsupported_operator_names_the_op_and_the_node(tmp_path):
    node = helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms_1")
    model = graph_model([node], [("x", [1, 4])], [("y", None)])
    with pytest.raises(ValueError, match=r"operator NonMaxSuppression \(node 'nms_1'\) is not supported"):
        fc.onnx.load(model)
    custom = helper.make_node("Relu", ["x"], ["y"], name="mine", domain="com.example")
    g = helper.make_graph([custom], "t", [helper.make_tensor_value_info("x", FLOAT, [1])],
                          [helper.make_tensor_value_info("y", FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(ValueError, match=r"Relu in domain 'com.example' \(node 'mine'\)"):
        fc.onnx.load(m)


def test_bad_files_and_inputs(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.onnx is not a readable ONNX model"):
        fc.onnx.load(bad)
    with pytest.raises(FileNotFoundError):
        fc.onnx.load(tmp_path / "missing.onnx")
    module = fc.onnx.load(graph_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n", 3])], [("y", None)]))
    with pytest.raises(ValueError, match=r"expected input 'x' of shape \(\?, 3\), got \(2, 4\)"):
        module(fc.randn(2, 4))
    with pytest.raises(TypeError, match="takes 1 input"):
        module(fc.randn(2, 3), fc.randn(2, 3))


@pytest.mark.parametrize("attrs,scales,sizes", [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 2], None),
    ({"mode": "nearest"}, None, [2, 3, 7, 5]),
    ({"mode": "nearest", "nearest_mode": "ceil", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 1.5, 0.5], None),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 2, 2], None),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, None, [2, 3, 9, 3]),
    ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 0.5, 1.75], None),
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 3, 1], None),
])
def test_resize(attrs, scales, sizes):
    extra = [("roi", np.zeros(0, np.float32)), ("scales", np.array(scales or [], np.float32))]
    names = ["roi", "scales"]
    if sizes is not None:
        extra.append(("sizes", np.array(sizes, np.int64)))
        names.append("sizes")
    module = single("Resize", (2, 3, 4, 6), attrs, extra, names)
    module.train()
    x = fc.tensor(randn(2, 3, 4, 6), requires_grad=True)
    module(x).sum().backward()  # differentiable: gathers and weighted sums
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("mode,opset", [("reflect", 17), ("edge", 17), ("wrap", 19), ("constant", 17)])
def test_pad_modes(mode, opset):
    init = [("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))]
    single("Pad", (2, 3, 4, 5), {"mode": mode}, init, ["pads"], opset=opset)


def test_clip_as_relu6_and_prelu_shapes():
    single("Clip", (2, 3), initializers=[("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))],
           extra_inputs=["lo", "hi"], seed=3)
    single("PRelu", (2, 3, 4), initializers=[("slope", randn(4) * 0.1)], extra_inputs=["slope"])
    single("PRelu", (2, 3, 4, 4), initializers=[("slope", np.array([0.2], np.float32))], extra_inputs=["slope"])
