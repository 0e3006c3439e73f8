"""fastconv.viz: each method against an independent expectation (closed forms, brute force, autograd)."""
import argparse
import json
import os
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn, viz
from fastconv.nn import functional as F


def _seeded(model, seed=0, bias=0.1):
    """Deterministic float64 weights (and small non-zero biases, so ReLUs are not all silent on zeros)."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.numpy()[...] = bias * rng.standard_normal(p.numpy().shape)
        else:
            p.numpy()[...] = rng.standard_normal(p.numpy().shape) / np.sqrt(np.prod(p.numpy().shape[1:]))
    return model


def _cnn(seed=0):
    return _seeded(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 3)).double(), seed)


def _images(n, shape=(1, 16, 16), seed=1):
    return np.random.default_rng(seed).random((n,) + shape)


# ---- saliency (Simonyan et al. Eq. 2) -------------------------------------------------------------

def test_saliency_of_linear_model_is_abs_weight_max_over_channels(rng):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 4, 4)).double()
    model[1].weight.numpy()[...] = rng.standard_normal((4, 60))
    x = rng.standard_normal((3, 5, 4))
    want = np.abs(model[1].weight.numpy()[2].reshape(3, 5, 4)).max(axis=0)
    np.testing.assert_allclose(viz.saliency(model, x, 2), want, rtol=1e-12)
    # the score is the logit: a constant gradient, so SmoothGrad averages to the same map
    np.testing.assert_allclose(viz.saliency(model, x, 2, samples=5, noise=0.3), want, rtol=1e-12)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_saliency_matches_autograd_gradient_of_the_logit_and_restores_mode():
    model = _cnn().train()
    x = _images(1)
    xt = fc.tensor(x, requires_grad=True)
    model.eval()
    model(xt)[0, 1].backward()
    want = np.abs(xt.grad.numpy()[0]).max(axis=0)
    model.train()
    np.testing.assert_allclose(viz.saliency(model, x[0], 1), want, rtol=1e-10)
    assert model.training and model[0].training


def test_smoothgrad_is_seeded_and_differs_from_plain_gradient():
    model, x = _cnn(), _images(1)[0]
    a = viz.saliency(model, x, 0, samples=8, seed=3)
    np.testing.assert_array_equal(a, viz.saliency(model, x, 0, samples=8, seed=3))
    assert not np.allclose(a, viz.saliency(model, x, 0))


# ---- occlusion -----------------------------------------------------------------------------------

def _region_model(h, w, rows, cols):
    """Two logits (s, −s) where s is the sum of the input over one known rectangle."""
    mask = np.zeros((h, w))
    mask[rows, cols] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(h * w, 2)).double()
    model[1].weight.numpy()[...] = np.stack([mask.ravel(), -mask.ravel()])
    model[1].bias.numpy()[...] = 0.0
    return model, mask


def test_occlusion_equals_brute_force_and_is_lowest_exactly_on_the_region():
    h, w, size, stride = 20, 28, 4, 2
    model, mask = _region_model(h, w, slice(8, 12), slice(16, 20))
    image = np.ones((1, h, w)) * 0.25
    heat = viz.occlusion(model, image, 0, size=size, stride=stride, fill=0.0, batch_size=7)
    tops, lefts = range(0, h - size + 1, stride), range(0, w - size + 1, stride)
    want = np.empty((len(tops), len(lefts)))
    for i, t in enumerate(tops):
        for j, left in enumerate(lefts):
            occluded = image[0].copy()
            occluded[t:t + size, left:left + size] = 0.0
            s = (occluded * mask).sum()
            want[i, j] = 1.0 / (1.0 + np.exp(-2.0 * s))
    np.testing.assert_allclose(heat, want, rtol=1e-12)
    assert heat.shape == (9, 13)
    assert np.unravel_index(np.argmin(heat), heat.shape) == (4, 8)  # corner (8, 16) covers the region
    np.testing.assert_array_equal(heat, viz.occlusion(model, image, 0, size=size, stride=stride, batch_size=1000))


def test_occlusion_fill_mean_and_pixel_map():
    model, _ = _region_model(8, 8, slice(0, 2), slice(0, 2))
    image = np.arange(64, dtype=np.float64).reshape(1, 8, 8) / 64
    heat = viz.occlusion(model, image, 1, size=2, stride=2, fill="mean")
    occluded = image[0].copy()
    occluded[0:2, 0:2] = image.mean()
    assert heat[0, 0] == pytest.approx(1.0 / (1.0 + np.exp(2.0 * occluded[:2, :2].sum())))
    pixels = viz.occlusion_pixels(heat, (9, 8), 2, 2)
    np.testing.assert_array_equal(pixels[:8], np.kron(heat, np.ones((2, 2))))
    assert np.isnan(pixels[8]).all()


# ---- class-model visualization (Simonyan et al. Eq. 1) -----------------------------------------

def test_class_model_of_linear_model_follows_the_closed_form(rng):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    model[1].weight.numpy()[...] = rng.standard_normal((3, 12))
    wc, bc, lr, l2 = model[1].weight.numpy()[1], model[1].bias.numpy()[1], 0.1, 0.05
    image, scores = viz.class_model(model, (1, 3, 4), 1, steps=30, lr=lr, l2=l2)
    # I_t = w/(2λ)·(1 − (1 − 2λ·lr)^t), so S_t = b + |w|²/(2λ)·(1 − (1 − 2λ·lr)^t)
    t = np.arange(31)
    np.testing.assert_allclose(scores, bc + wc @ wc / (2 * l2) * (1 - (1 - 2 * l2 * lr) ** t), rtol=1e-10)
    np.testing.assert_allclose(image.ravel(), wc / (2 * l2) * (1 - (1 - 2 * l2 * lr) ** 30), rtol=1e-10)
    assert np.all(np.diff(scores) > 0)
    # from a mean image I_0: I_t = w/(2λ) + (I_0 − w/(2λ))·(1 − 2λ·lr)^t
    start = np.full((1, 3, 4), 0.5)
    image, _ = viz.class_model(model, (1, 3, 4), 1, steps=10, lr=lr, l2=l2, init=start)
    fixed = wc / (2 * l2)
    np.testing.assert_allclose(image.ravel(), fixed + (0.5 - fixed) * (1 - 2 * l2 * lr) ** 10, rtol=1e-10)


def test_class_model_score_increases_on_a_cnn_with_jitter_and_blur():
    model = _cnn(seed=4)
    image, scores = viz.class_model(model, (1, 16, 16), 2, steps=20, lr=1.0)
    assert image.shape == (1, 16, 16) and scores.shape == (21,)
    assert scores[-1] > scores[0] + 2.0 and np.mean(np.diff(scores) > 0) >= 0.9
    _, regularized = viz.class_model(model, (1, 16, 16), 2, steps=20, lr=1.0, jitter=1, blur_every=5, seed=0)
    assert regularized[-1] > regularized[0] + 0.2 and not np.allclose(regularized, scores)


def test_class_model_warns_when_the_gradient_is_zero():
    model = _seeded(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).double(),
                    bias=0.0)
    with pytest.warns(RuntimeWarning, match="exactly zero"):
        _, scores = viz.class_model(model, (1, 6, 6), 0, steps=3)
    assert np.all(scores == scores[0])


# ---- top-k ---------------------------------------------------------------------------------------

def test_top_k_is_the_brute_force_top_k_with_ties_to_the_lower_index():
    model = _cnn(seed=2)
    images = _images(50, seed=5)
    images[41] = images[3]  # a tie: index 3 must come first
    ds = fc.data.TensorDataset(images, np.arange(50))
    with fc.no_grad():
        maps = model[:5](fc.tensor(images)).numpy()[:, 2]
    scores = maps.reshape(50, -1).max(axis=1)
    order = np.argsort(-scores, kind="stable")
    k = int(np.flatnonzero(order == 41)[0]) + 1  # make sure the tie is inside the top k
    result = viz.top_k(model, ds, 4, 2, k=k, batch_size=7)
    np.testing.assert_array_equal(result.indices, order[:k])
    np.testing.assert_allclose(result.scores, scores[order[:k]])
    want_pos = [np.unravel_index(np.argmax(maps[i]), maps.shape[1:]) for i in order[:k]]
    np.testing.assert_array_equal(result.positions, want_pos)
    assert list(result.indices).index(3) < list(result.indices).index(41)


def test_top_k_of_a_fully_connected_unit_has_no_positions():
    model = _cnn()
    ds = fc.data.TensorDataset(_images(10), np.zeros(10, dtype=np.int64))
    result = viz.top_k(model, ds, 7, 1, k=3)
    with fc.no_grad():
        logits = model(fc.tensor(_images(10))).numpy()[:, 1]
    np.testing.assert_array_equal(result.indices, np.argsort(-logits, kind="stable")[:3])
    assert result.positions is None


# ---- receptive fields ----------------------------------------------------------------------------

def test_receptive_field_of_a_known_stack_matches_hand_computation():
    model = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, stride=2, padding=1, dilation=2), nn.ReLU(),
                          nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(4, 2))
    # conv5 p2: 5, jump 1, start −2; pool2: 6, 2, −2; conv3 d2 s2 p1: 6 + 4·2 = 14, 4, −4; pool3 s2 p1: 22, 8, −8
    assert viz.receptive_field(model, 0) == ((5, 5), (1, 1), (-2, -2))
    assert viz.receptive_field(model, 2) == ((6, 6), (2, 2), (-2, -2))
    assert viz.receptive_field(model, "4") == ((14, 14), (4, 4), (-4, -4))
    assert viz.receptive_field(model, model[5]) == ((22, 22), (8, 8), (-8, -8))
    assert viz.receptive_field(model, 5).box(1, 2) == (0, 8, 22, 30)
    assert viz.receptive_field(model, 5).box(1, 2, (20, 20)) == (0, 8, 20, 20)
    with pytest.raises(ValueError, match=r"receptive_field: layer '6' \(Flatten\) has no receptive-field"):
        viz.receptive_field(model, 7)


def test_receptive_field_handles_rectangular_kernels_same_padding_and_nesting():
    inner = nn.Sequential(nn.Conv2d(1, 1, (3, 1)), nn.ReLU())
    model = nn.Sequential(inner, nn.Conv2d(1, 1, 4, padding="same"), nn.MaxPool2d((2, 1)))
    assert viz.receptive_field(model, 0) == ((3, 1), (1, 1), (0, 0))
    assert viz.receptive_field(model, "0.0") == ((3, 1), (1, 1), (0, 0))
    assert viz.receptive_field(model, 1) == ((6, 4), (1, 1), (-1, -1))
    assert viz.receptive_field(model, 2) == ((7, 4), (2, 1), (-1, -1))


def test_receptive_field_box_is_exactly_the_support_of_the_input_gradient():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, stride=2),
                          nn.Conv2d(1, 1, 2, dilation=2)).double()
    for p in model.parameters():
        p.numpy()[...] = 1.0
    x = fc.tensor(np.zeros((1, 1, 24, 24)), requires_grad=True)
    model(x)[0, 0, 2, 1].backward()
    support = np.argwhere(x.grad.numpy()[0, 0] != 0)
    top, left, bottom, right = viz.receptive_field(model, 2).box(2, 1, (24, 24))
    assert (support.min(0).tolist(), (support.max(0) + 1).tolist()) == ([top, left], [bottom, right])
    assert (bottom - top, right - left) == (9, 9)


# ---- activations and dying ReLUs ---------------------------------------------------------------

def test_activations_equal_the_prefix_output_and_hooks_are_removed():
    model = _cnn().train()
    x = _images(3)
    with fc.no_grad():
        want = model.eval()[:4](fc.tensor(x)).numpy()
    model.train()
    np.testing.assert_allclose(viz.activations(model, x, 3), want)
    np.testing.assert_allclose(viz.activations(model, x, "3"), want)
    np.testing.assert_allclose(viz.activations(model, x, model[3]), want)
    assert model.training and all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="expected input with 1 channels"):
        viz.activations(model, _images(2, shape=(2, 16, 16)), 3)  # error inside the forward pass
    assert all(not m._forward_hooks for m in model.modules())


def _dying_model():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 4), nn.ReLU()).double()
    model[0].bias.numpy()[...] = -100.0
    model[3].bias.numpy()[...] = [1.0, -1.0, 0.5, 0.0]
    return model


def test_dead_relu_report_finds_a_layer_killed_by_a_large_negative_bias():
    report = viz.dead_relu_report(_dying_model(), _images(8, shape=(1, 6, 6)))
    assert report["1"]["dead_fraction"] == 1.0 and report["1"]["sparsity"] == 1.0
    assert report["1"]["channels"] == 4
    # the linear layer sees only zeros, so its outputs are its biases: two of four units are dead
    assert report["4"]["dead_fraction"] == 0.5 and report["4"]["sparsity"] == 0.5
    np.testing.assert_array_equal(report["4"]["dead_channels"], [1, 3])


def test_dead_relu_report_of_a_healthy_layer_counts_partial_sparsity():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()).double()
    model[0].weight.numpy()[...] = np.array([1.0, -1.0]).reshape(2, 1, 1, 1)
    model[0].bias.numpy()[...] = 0.0
    x = np.linspace(-1, 1, 2 * 9).reshape(2, 1, 3, 3)
    entry = viz.dead_relu_report(model, x)["1"]
    assert entry["dead_fraction"] == 0.0
    assert entry["sparsity"] == pytest.approx(((x <= 0).sum() + (x >= 0).sum()) / (2 * x.size))


def test_dead_relu_monitor_records_every_epoch_during_fit():
    model = _dying_model()
    images = _images(16, shape=(1, 6, 6))
    loader = fc.data.DataLoader(fc.data.TensorDataset(images, np.arange(16) % 4), batch_size=8, seed=0)
    monitor = viz.DeadReLUMonitor(images[:8], warn_at=0.9)
    with pytest.warns(RuntimeWarning, match="100 % of the channels of ReLU '1'"):
        fc.train.fit(model, loader, F.cross_entropy, fc.optim.SGD(model.parameters(), lr=0.01), 2,
                     callbacks=[monitor], verbose=False)
    epochs, names, table = monitor.dead_fractions()
    assert len(epochs) == 2 and names == ["1", "4"]
    np.testing.assert_array_equal(table[:, 0], [1.0, 1.0])


# ---- deconvnet -----------------------------------------------------------------------------------

def test_deconv_without_relus_is_the_unit_value_times_its_input_gradient():
    # transposed convolutions and unpooling through the switches are the linear part of backprop
    model = _seeded(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.MaxPool2d(2),
                                  nn.Conv2d(3, 4, 4, padding="same", dilation=1)).double(), seed=7)
    x = _images(1, shape=(2, 15, 17), seed=8)
    xt = fc.tensor(x, requires_grad=True)
    out = model(xt)
    out[0, 2, 1, 3].backward()
    want = out.numpy()[0, 2, 1, 3] * xt.grad.numpy()[0]
    np.testing.assert_allclose(viz.deconv_reconstruction(model, x, 2, 2, position=(1, 3)), want, atol=1e-12)


def test_deconv_reconstruction_is_non_zero_only_inside_the_receptive_field():
    model = _cnn(seed=3)
    x = _images(1, seed=9)
    acts = viz.activations(model, x, 4)[0]
    channel = int(np.argmax(acts.reshape(6, -1).max(axis=1)))
    recon = viz.deconv_reconstruction(model, x, 4, channel)
    row, col = np.unravel_index(np.argmax(acts[channel]), acts.shape[1:])
    top, left, bottom, right = viz.receptive_field(model, 4).box(row, col, (16, 16))
    inside = np.zeros(recon.shape, bool)
    inside[:, top:bottom, left:right] = True
    assert np.abs(recon[inside]).sum() > 0
    assert np.all(recon[~inside] == 0)


# ---- filters, embedding --------------------------------------------------------------------------

def test_filters_are_normalized_per_filter():
    model = _cnn()
    w = model[3].weight.numpy()
    f = viz.filters(model[3])
    assert f.shape == w.shape
    for i in range(w.shape[0]):
        np.testing.assert_allclose(f[i], (w[i] - w[i].min()) / (w[i].max() - w[i].min()), rtol=1e-6)
    np.testing.assert_array_equal(viz.filters(3, model), f)
    with pytest.raises(TypeError, match="filters: expected a Conv2d layer, got ReLU"):
        viz.filters(model[1])


def test_cnn_codes_are_the_outputs_of_model_without_its_head():
    model = _cnn()
    images = _images(9)
    codes, labels = viz.cnn_codes(model, fc.data.TensorDataset(images, np.arange(9)), batch_size=4)
    with fc.no_grad():
        np.testing.assert_allclose(codes, model[:-1](fc.tensor(images)).numpy())
    np.testing.assert_array_equal(labels, np.arange(9))


def test_tsne_keeps_separated_classes_apart():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    images = rng.normal(size=(60, 1, 4, 4)) * 0.1 + labels[:, None, None, None] * 3.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()  # codes = the flattened images
    emb = viz.tsne_codes(model, fc.data.TensorDataset(images, labels), perplexity=10, seed=0)
    assert emb.points.shape == (60, 2)
    np.testing.assert_array_equal(emb.labels, labels)
    dist = np.linalg.norm(emb.points[:, None] - emb.points[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    assert np.mean(labels[dist.argmin(axis=1)] == labels) == 1.0
    sub = viz.tsne_codes(model, fc.data.TensorDataset(images, labels), max_samples=30, perplexity=5)
    assert len(sub.indices) == 30 and np.all(np.diff(sub.indices) > 0)
    np.testing.assert_array_equal(sub.labels, labels[sub.indices])


def test_tsne_mosaic_places_each_image_in_its_cell_with_y_upwards():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    images = np.zeros((4, 1, 2, 2))
    for k in range(4):
        images[k, 0, k // 2, k % 2] = 1.0
    canvas = viz.tsne_mosaic(points, images, grid=2)
    assert canvas.shape == (4, 4)
    np.testing.assert_array_equal(canvas[2:, :2], images[0, 0])  # (x=0, y=0): bottom-left
    np.testing.assert_array_equal(canvas[2:, 2:], images[1, 0])  # (x=1, y=0): bottom-right
    np.testing.assert_array_equal(canvas[:2, :2], images[2, 0])  # (x=0, y=1): top-left


# ---- errors --------------------------------------------------------------------------------------

def test_bad_layers_channels_targets_and_inputs_are_reported():
    model, x = _cnn(), _images(1)
    with pytest.raises(ValueError, match=r"activations: unknown layer name 'conv9'; the model's layers are"):
        viz.activations(model, x, "conv9")
    with pytest.raises(ValueError, match="activations: layer index 12 is out of range for a Sequential of 8"):
        viz.activations(model, x, 12)
    with pytest.raises(ValueError, match=r"top_k: channel 6 is out of range: layer 4 output .* has 6"):
        viz.top_k(model, fc.data.TensorDataset(_images(3)), 4, 6, k=1)
    with pytest.raises(ValueError, match="saliency: target 3 is out of range"):
        viz.saliency(model, x, 3)
    with pytest.raises(ValueError, match="occlusion: expected one image"):
        viz.occlusion(model, _images(2), 0)
    with pytest.raises(TypeError, match="saliency: expected a float32 or float64 input, got dtype int64"):
        viz.saliency(model, np.zeros((1, 16, 16), dtype=np.int64), 0)
    with pytest.raises(ValueError, match="the given ReLU is not a sub-module"):
        viz.activations(model, x, nn.ReLU())


def test_integer_layers_need_a_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.conv(x)

    net = Net().double()
    with pytest.raises(TypeError, match="activations: integer layer indices need a Sequential model, got Net"):
        viz.activations(net, _images(1), 0)
    assert viz.activations(net, _images(1), "conv").shape == (1, 2, 14, 14)
    with pytest.raises(TypeError, match="receptive_field: expected a Sequential model"):
        viz.receptive_field(net, "conv")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'plot_filters needs matplotlib .*pip install "fastconv\[viz\]"'):
        viz.plot_filters(_cnn()[0])


# ---- figures and the command line ----------------------------------------------------------------

def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    model = _cnn()
    images = _images(40)
    ds = fc.data.TensorDataset(images, np.arange(40) % 3)
    x = images[0]
    emb = viz.tsne_codes(model, ds, perplexity=5)
    figures = {
        "filters1": viz.plot_filters(model[0]), "filters2": viz.plot_filters(3, model),
        "activations": viz.plot_activations(model, x, 1), "topk": viz.plot_top_k(model, ds, 4, 1, k=4),
        "tsne": viz.plot_tsne(emb), "mosaic": viz.plot_tsne_mosaic(emb, ds, grid=6),
        "occlusion": viz.plot_occlusion(model, x, 0, size=4, stride=2), "saliency": viz.plot_saliency(model, x, 0),
        "smoothgrad": viz.plot_saliency(model, x, 0, samples=4),
        "classmodel": viz.plot_class_model(model, (1, 16, 16), [0, 2], steps=5),
        "deconv": viz.plot_deconv(model, x, 4, 1),
    }
    for name, fig in figures.items():
        path = viz.save_figure(fig, str(tmp_path / "figs" / f"{name}.png"))
        assert _is_png(path), name
    assert sorted(os.listdir(tmp_path / "figs")) == sorted(f"{n}.png" for n in figures)  # no temporary files


def test_viz_command_and_demo_figures_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    from fastconv import _runs
    from fastconv.viz import command

    arch = "INPUT -> CONV(4, k=3, p=same) -> RELU -> POOL -> FC"
    run = tmp_path / "run"
    run.mkdir()
    fc.manual_seed(0)
    model = _seeded(_runs.build_model(arch, (1, 28, 28), 10))
    fc.save(model.state_dict(), str(run / "model.npz"))
    (run / "config.json").write_text(json.dumps({"arch": arch, "data": "mnist"}))
    parser = argparse.ArgumentParser(prog="fastconv")
    command.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "figs"
    args = parser.parse_args(["viz", "--checkpoint", str(run), "--out", str(out), "--samples", "60",
                              "--steps", "3", "--what", "filters,activations,topk,tsne,occlusion,saliency,"
                              "classmodel,deconv"])
    assert args.run(args) == 0
    written = sorted(os.listdir(out))
    assert written == sorted(["filters.png", "activations.png", "topk.png", "tsne.png", "tsne_mosaic.png",
                              "occlusion.png", "saliency.png", "smoothgrad.png", "classmodel.png", "deconv.png"])
    assert all(_is_png(str(out / name)) for name in written)
    with pytest.raises(SystemExit):
        parser.parse_args(["viz", "--checkpoint", str(run), "--what", "filters,nonsense"])

    test_set = fc.data.MNIST(split="test")
    demo = command.demo_figures(model, fc.data.Subset(test_set, np.arange(5)), str(tmp_path / "demo"))
    assert [os.path.basename(p) for p in demo] == ["filters.png", "saliency.png", "occlusion.png"]
    assert all(_is_png(p) for p in demo)
