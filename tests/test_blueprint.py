"""nn.blueprint: the lecture's grammar, options, tiling errors, rule-of-thumb warnings, malformed specs."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv as fc
from fastconv import nn
from fastconv.nn import BlueprintWarning


def build(spec, shape=(3, 32, 32), num_classes=10):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlueprintWarning)
        return nn.blueprint(spec, shape, num_classes)


def kinds(model):
    return [type(m).__name__ for m in model]


@pytest.mark.parametrize("spec,expected", [
    ("INPUT -> FC", ["Flatten", "Linear"]),
    ("INPUT -> CONV -> RELU -> FC", ["Conv2d", "ReLU", "Flatten", "Linear"]),
    ("INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC",
     ["Conv2d", "ReLU", "MaxPool2d"] * 2 + ["Flatten", "Linear", "ReLU", "Linear"]),
    ("INPUT -> [CONV -> RELU -> CONV -> RELU -> POOL]*3 -> [FC -> RELU]*2 -> FC",
     ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"] * 3 + ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]),
])
def test_lecture_examples_build_and_run(spec, expected):
    fc.manual_seed(0)
    model = build(spec)
    assert kinds(model) == expected
    assert model(fc.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.blueprint_warnings == [] and model.blueprint_output_shape == (10,)


def test_defaults_and_sizes():
    model = build("INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC")
    conv0, conv1 = model[0], model[3]
    assert (conv0.in_channels, conv0.out_channels, conv0.kernel_size, conv0.padding) == (3, 32, (3, 3), (1, 1))
    assert conv1.in_channels == 32
    assert (model[2].kernel_size, model[2].stride) == (2, 2)
    hidden, last = model[7], model[9]
    assert (hidden.in_features, hidden.out_features) == (32 * 8 * 8, 128)
    assert (last.in_features, last.out_features) == (128, 10)


def test_options_positional_keyword_and_aliases():
    spec = ("input -> conv(16, k=5, s=1, p=2) -> BN -> LRELU(0.2) -> POOL(avg, k=2) -> CONV(filters=8, kernel_size=3, "
            "padding=valid) -> ELU -> DROPOUT(0.25) -> GAP -> FC(20) -> TANH -> BN -> SIGMOID -> FC")
    with pytest.warns(BlueprintWarning, match="padding 0 ≠ \\(F−1\\)/2 = 1"):
        model = nn.blueprint(spec, (1, 28, 28), 10)
    assert kinds(model) == ["Conv2d", "BatchNorm2d", "LeakyReLU", "AvgPool2d", "Conv2d", "ELU", "Dropout",
                            "GlobalAvgPool2d", "Flatten", "Linear", "Tanh", "BatchNorm1d", "Sigmoid", "Linear"]
    assert model[0].padding == (2, 2) and model[0].kernel_size == (5, 5) and model[2].negative_slope == 0.2
    assert model[4].padding == (0, 0) and model[6].p == 0.25 and model[9].in_features == 8
    assert model[11].num_features == 20
    assert model(fc.randn(3, 1, 28, 28)).shape == (3, 10)


def test_optional_layer_is_built_only_where_it_tiles():
    model = build("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> FC", shape=(1, 28, 28))
    assert kinds(model).count("MaxPool2d") == 2  # 28 -> 14 -> 7; the third would leave a pixel unused
    assert len(model.blueprint_skipped) == 1 and "7x7" in model.blueprint_skipped[0]
    assert model(fc.randn(1, 1, 28, 28)).shape == (1, 10)
    assert kinds(build("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> FC")).count("MaxPool2d") == 3  # 32x32


def test_repeat_zero_and_nesting():
    model = build("INPUT -> [[CONV -> RELU]*0 -> POOL]*2 -> [FC -> RELU]*0 -> FC")
    assert kinds(model) == ["MaxPool2d", "MaxPool2d", "Flatten", "Linear"]
    with pytest.raises(ValueError, match="builds no layer"):
        nn.blueprint("INPUT -> [FC]*0", (1, 8, 8), 10)


def test_last_fc_size_and_num_classes():
    assert build("INPUT -> FC(7)", num_classes=None)(fc.randn(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="last FC has 7 outputs but num_classes=10"):
        build("INPUT -> FC(7)")
    with pytest.raises(ValueError, match="last FC has no size and num_classes is None"):
        build("INPUT -> FC", num_classes=None)


def caret_column(message):
    """The column (0-based, within the spec line) the caret points at."""
    lines = message.splitlines()
    return lines[-1].index("^") - 2


@pytest.mark.parametrize("spec,fragment,token", [
    ("CONV -> FC", "starts with INPUT", "CONV"),
    ("INPUT -> [CONV -> RELU -> FC", "to close the group", None),
    ("INPUT -> CONV -> RELU]-> FC", "expected '->' or end of spec", "]"),
    ("INPUT -> CONV(k=0) -> FC", "positive integer for CONV option 'k'", "0"),
    ("INPUT -> CONV(3, x=2) -> FC", "unknown option 'x' for CONV", "x"),
    ("INPUT -> CONVV -> FC", "unknown layer 'CONVV'", "CONVV"),
    ("INPUT -> POOL(min) -> FC", "'max' or 'avg'", "min"),
    ("INPUT -> CONV*x -> FC", "non-negative integer after '*'", "x"),
    ("INPUT -> CONV -> -> FC", "expected a layer name or '['", "->"),
    ("INPUT -> [] -> FC", "empty group", "]"),
    ("INPUT -> CONV -> INPUT", "INPUT may only appear at the start", "INPUT"),
    ("INPUT -> FC -> CONV", "features were already flattened", "CONV"),
    ("INPUT -> CONV(3, 5, 1, 1, 9)", "at most 4 positional", "9"),
    ("INPUT -> RELU(2) -> FC", "RELU takes no options", "2"),
    ("INPUT -> DROPOUT(1.5) -> FC", "probability", "1.5"),
    ("INPUT -> CONV(k=3, k=5) -> FC", "given twice", "5"),
    ("INPUT -> CONV -> FC $", "unexpected character '$'", "$"),
    ("INPUT", "at least one layer after INPUT", None),
])
def test_malformed_specs_point_at_the_token(spec, fragment, token):
    with pytest.raises(ValueError) as info:
        nn.blueprint(spec, (1, 32, 32), 10)
    message = str(info.value)
    assert message.startswith("blueprint: ") and fragment in message
    assert message.splitlines()[-2] == "  " + spec
    column = caret_column(message)
    if token is None:
        assert column == len(spec)  # end of spec
    else:
        assert spec[column:column + len(token)] == token


def test_tiling_errors_name_the_layer_and_sizes():
    with pytest.raises(ValueError) as info:
        nn.blueprint("INPUT -> CONV -> RELU -> POOL -> POOL(max, k=3, s=2) -> FC", (1, 28, 28), 10)
    message = str(info.value)
    assert "layer 4 POOL(max, k=3, s=2) on a 14x14 input leaves 1 pixel unused" in message
    spec_line, caret_line = message.splitlines()[-2:]
    assert spec_line[caret_line.index("^"):].startswith("POOL(max, k=3")
    with pytest.raises(ValueError, match="layer 1 CONV\\(32, k=7, s=1, p=0\\) on a 5x5 input: the 7x7 window "
                                         "does not fit the height"):
        nn.blueprint("INPUT -> CONV(k=7, p=0) -> FC", (1, 5, 5), 10)
    with pytest.raises(ValueError, match="layer 1 CONV\\(4, k=3, s=2, p=0\\) on a 8x8 input leaves 1 pixel unused"):
        nn.blueprint("INPUT -> CONV(4, k=3, s=2, p=0) -> FC", (1, 8, 8), 10)


def test_rule_of_thumb_warnings_are_issued_and_kept():
    with pytest.warns(BlueprintWarning) as record:
        model = nn.blueprint("INPUT -> CONV(k=5, p=1) -> POOL(k=4, s=4) -> FC", (3, 30, 30), 10)
    messages = [str(w.message) for w in record]
    assert len(messages) == 3 and [m.startswith("blueprint: ") for m in messages] == [True] * 3
    kept = model.blueprint_warnings
    assert len(kept) == 3
    assert "input 30x30 is divisible by 2 only 1 time(s)" in kept[0]
    assert "layer 1 CONV(32, k=5, s=1, p=1): padding 1 ≠ (F−1)/2 = 2" in kept[1]
    assert "layer 2 POOL(max, k=4, s=4)" in kept[2] and "larger than 3" in kept[2]


@given(n_blocks=st.integers(0, 3), convs=st.integers(0, 2), fcs=st.integers(0, 2),
       size=st.sampled_from([8, 16, 24, 32]))
def test_pattern_builds_when_it_tiles(n_blocks, convs, fcs, size):
    """INPUT -> [[CONV -> RELU]*N -> POOL]*M -> [FC -> RELU]*K -> FC: builds iff every pool tiles."""
    spec = f"INPUT -> [[CONV(4) -> RELU]*{convs} -> POOL]*{n_blocks} -> [FC(6) -> RELU]*{fcs} -> FC"
    side = size
    fits = True
    for _ in range(n_blocks):
        fits = fits and side % 2 == 0
        side //= 2
    if not fits:
        with pytest.raises(ValueError, match="pixel unused"):
            nn.blueprint(spec, (1, size, size), 3)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BlueprintWarning)
        model = nn.blueprint(spec, (1, size, size), 3)
    assert kinds(model).count("MaxPool2d") == n_blocks and kinds(model).count("Linear") == fcs + 1
    channels = 4 if convs and n_blocks else 1
    assert model[kinds(model).index("Linear")].in_features == channels * side * side
    with fc.no_grad():
        assert model(fc.randn(2, 1, size, size)).shape == (2, 3)


def test_input_shape_forms_and_errors():
    assert build("INPUT -> FC", shape=(32, 32))[1].in_features == 32 * 32
    assert build("INPUT -> FC", shape=(5, 3, 32, 32))[1].in_features == 3 * 32 * 32
    with pytest.raises(ValueError, match="expected input_shape as \\(C, H, W\\)"):
        nn.blueprint("INPUT -> FC", (0, 8, 8), 10)
    with pytest.raises(TypeError, match="expected spec as a str"):
        nn.blueprint(None, (1, 8, 8), 10)


def test_built_model_trains_and_has_pytorch_keys():
    model = build("INPUT -> CONV(4) -> BN -> RELU -> POOL -> FC", shape=(1, 8, 8), num_classes=3)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                        "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias"]
    loss = model(fc.randn(4, 1, 8, 8)).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    np.testing.assert_equal(int(model[1].num_batches_tracked.numpy()), 1)
