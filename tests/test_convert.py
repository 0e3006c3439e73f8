"""nn.to_fully_convolutional: same outputs at the training size, crop-wise equality on larger inputs."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv as fc
from fastconv import nn


def classifier(dtype=np.float64):
    """Valid (unpadded) convolutions so that each heatmap location sees exactly one crop."""
    fc.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2),          # 12 -> 10 -> 5
        nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6), nn.ReLU(),  # 5 -> 2
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(6 * 2 * 2, 16), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Linear(16, 5), nn.LogSoftmax(dim=1),
    )
    if dtype == np.float64:
        model.double()
    model.train()
    with fc.no_grad():  # non-trivial batch-norm statistics
        for _ in range(3):
            model(fc.randn(8, 2, 12, 12, dtype=dtype) * 2 + 0.5)
    return model.eval()


def test_same_outputs_at_the_original_size():
    model = classifier()
    fcn = nn.to_fully_convolutional(model, (2, 12, 12))
    assert [type(m).__name__ for m in fcn][6:] == ["Dropout", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d",
                                                   "LogSoftmax"]
    layers = dict(fcn.named_children())  # keys keep the original names; the Flatten ('6') is gone
    assert layers["8"].kernel_size == (2, 2) and layers["11"].kernel_size == (1, 1)
    assert fcn[0] is model[0]  # the features are shared, not copied
    assert "6" not in fcn._modules and "8.weight" in fcn.state_dict()
    x = fc.randn(3, 2, 12, 12, dtype=np.float64)
    np.testing.assert_allclose(fcn(x).numpy().reshape(3, 5), model(x).numpy(), rtol=1e-12, atol=1e-12)
    assert isinstance(model[8], nn.Linear)  # the original is unchanged


@settings(max_examples=8, deadline=None)
@given(extra_h=st.integers(0, 9), extra_w=st.integers(0, 9))
def test_each_heatmap_location_is_the_net_on_its_crop(extra_h, extra_w):
    model = classifier()
    fcn = nn.to_fully_convolutional(model, (2, 12, 12))
    sh, sw = nn.output_stride(model)
    assert (sh, sw) == (4, 4)
    x = np.random.default_rng(extra_h * 10 + extra_w).standard_normal((2, 2, 12 + extra_h, 12 + extra_w))
    heat = fcn(fc.tensor(x)).numpy()
    assert heat.shape == (2, 5, extra_h // 4 + 1, extra_w // 4 + 1)
    crops = [(i, j) for i in range(heat.shape[2]) for j in range(heat.shape[3])]
    batch = np.concatenate([x[:, :, i * sh:i * sh + 12, j * sw:j * sw + 12] for i, j in crops])
    expected = model(fc.tensor(batch)).numpy().reshape(len(crops), 2, 5)
    for k, (i, j) in enumerate(crops):
        np.testing.assert_allclose(heat[:, :, i, j], expected[k], rtol=1e-10, atol=1e-12)


def test_float32_and_blueprint_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nn.BlueprintWarning)  # 18x18 and valid convs break rules of thumb
        model = nn.blueprint("INPUT -> [CONV(8, p=valid) -> RELU -> POOL]*2 -> FC(16) -> RELU -> FC", (1, 18, 18), 4)
    model.eval()
    fcn = nn.to_fully_convolutional(model, (1, 18, 18))
    assert dict(fcn.named_children())["7"].weight.dtype == np.float32
    x = fc.randn(2, 1, 18, 18)
    np.testing.assert_allclose(fcn(x).numpy().reshape(2, 4), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert fcn(fc.randn(1, 1, 42, 26)).shape == (1, 4, 7, 3)


def test_conversion_errors():
    with pytest.raises(TypeError, match="expected a Sequential"):
        nn.to_fully_convolutional(nn.Linear(2, 2), (1, 2, 2))
    with pytest.raises(ValueError, match="expected a Flatten of \\(N, C, H, W\\) features followed by Linear"):
        nn.to_fully_convolutional(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 5, 5))
    flat_bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.BatchNorm1d(18), nn.Linear(18, 2))
    with pytest.raises(ValueError, match="layer '2' \\(BatchNorm1d\\) normalizes the flattened feature map"):
        nn.to_fully_convolutional(flat_bn, (1, 5, 5))
    odd = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4), nn.Unflatten(1, (2, 2)))
    with pytest.raises(ValueError, match="cannot convert layer '3' \\(Unflatten\\)"):
        nn.to_fully_convolutional(odd, (1, 5, 5))
    with pytest.raises(ValueError, match="expected input_shape"):
        nn.to_fully_convolutional(odd, (5, 5))
