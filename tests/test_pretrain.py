"""fastconv.pretrain: patch extraction, contrast normalization, ZCA, Eq. (1) k-means, convolutional
k-means, filter redundancy and layer-wise pretraining, checked against direct numpy implementations."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv import nn
from fastconv.pretrain import (PatchPreprocessor, ZCAWhitening, conv_kmeans, extract_patches, kmeans, kmeans_filters,
                               match_windows, mean_pairwise_correlation, normalize_patches, pretrain_conv_layers)
from fastconv.pretrain.patches import windows_at


def smooth_images(rng, n, c, h, w, dtype=np.float32):
    """Random images with local structure (box-blurred noise), so patches are correlated like pictures."""
    x = rng.standard_normal((n, c, h + 2, w + 2))
    x = sum(x[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
    return np.ascontiguousarray(x.astype(dtype))


# ---- patch extraction ----------------------------------------------------------------------------

@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 9), kw=st.integers(1, 9), seed=st.integers(0, 1000),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_extract_patches_equals_slicing(n, c, h, w, kh, kw, seed, dtype):
    kh, kw = min(kh, h), min(kw, w)
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype)
    out, (idx, top, left) = extract_patches(x, (kh, kw), 37, seed=seed, return_positions=True)
    assert out.shape == (37, c * kh * kw) and out.dtype == dtype
    assert idx.min() >= 0 and idx.max() < n and top.max() <= h - kh and left.max() <= w - kw
    expected = np.stack([x[i, :, t:t + kh, l:l + kw].ravel() for i, t, l in zip(idx, top, left)])
    np.testing.assert_array_equal(out, expected)


def test_extract_patches_window_equal_to_image_and_one_pixel_images(rng):
    x = rng.standard_normal((4, 2, 5, 6))
    out, (idx, top, left) = extract_patches(x, (5, 6), 50, seed=0, return_positions=True)
    assert (top == 0).all() and (left == 0).all()
    np.testing.assert_array_equal(out, x.reshape(4, -1)[idx])
    one = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    out = extract_patches(one, 1, 20, seed=1)
    assert out.shape == (20, 2)
    assert all(any(np.array_equal(row, img.ravel()) for img in one) for row in out)


def test_extract_patches_seeded_and_global_generator(rng):
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    a, b = extract_patches(x, 3, 100, seed=7), extract_patches(x, 3, 100, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, extract_patches(x, 3, 100, seed=8))
    fc.manual_seed(3)
    c = extract_patches(x, 3, 100)
    fc.manual_seed(3)
    np.testing.assert_array_equal(c, extract_patches(x, 3, 100))


def test_extract_patches_bad_input(rng):
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="extract_patches: patch size \\(5, 5\\) is larger than the images"):
        extract_patches(x, 5, 10)
    with pytest.raises(ValueError, match="extract_patches: expected 4-D"):
        extract_patches(x[0], 2, 10)
    with pytest.raises(TypeError, match="extract_patches: expected images of dtype float32 or float64, got int64"):
        extract_patches(np.ones((2, 1, 4, 4), dtype=np.int64), 2, 10)
    with pytest.raises(ValueError, match="patch_size >= 1"):
        extract_patches(x, 0, 10)
    with pytest.raises(ValueError, match="n_patches"):
        extract_patches(x, 2, 0)
    with pytest.raises(ValueError, match="NaN"):
        extract_patches(np.full((1, 1, 3, 3), np.nan), 2, 1)
    with pytest.raises(TypeError, match="seed"):
        extract_patches(x, 2, 3, seed=-1)
    # the kernel is never handed a window that leaves its image
    with pytest.raises(ValueError, match="outside the images"):
        windows_at(x, np.array([0]), np.array([2]), np.array([0]), (3, 3))
    with pytest.raises(ValueError, match="outside the images"):
        windows_at(x, np.array([2]), np.array([0]), np.array([0]), (3, 3))


# ---- contrast normalization and whitening ---------------------------------------------------------

def test_normalize_patches_matches_formula(rng):
    p = rng.standard_normal((50, 12)) * 3 + 1
    out = normalize_patches(p, 0.5)
    expected = (p - p.mean(1, keepdims=True)) / np.sqrt(p.var(1, keepdims=True) + 0.5)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="constant patch"):
        normalize_patches(np.ones((2, 4)), 0.0)
    with pytest.raises(ValueError, match="normalize_patches: expected eps"):
        normalize_patches(p, -1.0)


def test_zca_whitening_gives_identity_covariance_and_stored_transform(rng):
    mix = rng.standard_normal((6, 6))
    x = rng.standard_normal((4000, 6)) @ mix + 3.0
    zca = ZCAWhitening(eps=1e-9).fit(x)
    z = zca.transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(z, rowvar=False, bias=True), np.eye(6), atol=1e-6)
    # the matrix is the symmetric inverse square root of the covariance (+ eps), applied to new data
    cov = np.cov(x, rowvar=False, bias=True)
    expected = np.real(scipy.linalg.sqrtm(np.linalg.inv(cov + 1e-9 * np.eye(6))))
    np.testing.assert_allclose(zca.matrix, expected, rtol=1e-5, atol=1e-8)
    new = rng.standard_normal((5, 6))
    np.testing.assert_allclose(zca.transform(new), (new - x.mean(0)) @ expected, rtol=1e-5, atol=1e-8)
    # a larger eps damps the low-variance directions: covariance eigenvalues λ/(λ+eps) < 1
    damped = np.linalg.eigvalsh(np.cov(ZCAWhitening(eps=1.0).fit_transform(x), rowvar=False, bias=True))
    lam = np.linalg.eigvalsh(cov)
    np.testing.assert_allclose(np.sort(damped), np.sort(lam / (lam + 1.0)), rtol=1e-6)


def test_zca_errors(rng):
    with pytest.raises(ValueError, match="call fit"):
        ZCAWhitening().transform(np.ones((2, 3)))
    zca = ZCAWhitening().fit(rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="expected patches with 3 values"):
        zca.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="eps"):
        ZCAWhitening(eps=0)


# ---- k-means, Eq. (1) ----------------------------------------------------------------------------

def eq1_reference(w, d):
    """One iteration of Dundar et al. Eq. (1), written out patch by patch. w: (n, dim), d: (K, dim)."""
    s = np.zeros((len(d), len(w)))
    for i, wi in enumerate(w):
        r = d @ wi
        j = int(np.argmax(np.abs(r)))
        s[j, i] = r[j]
    new = (w.T @ s.T).T + d
    return new / np.linalg.norm(new, axis=1, keepdims=True)


def test_kmeans_one_iteration_is_eq1(rng):
    w = rng.standard_normal((300, 7))
    init = w[:5] / np.linalg.norm(w[:5], axis=1, keepdims=True)  # every centroid wins its own patch
    res = kmeans(w, 5, iters=1, init=init, tol=0.0)
    np.testing.assert_allclose(res.centroids, eq1_reference(w, init), rtol=1e-12, atol=1e-14)
    assert res.n_iter == 1 and res.reseeded == 0
    np.testing.assert_allclose(res.objective[0], np.mean(np.max(np.abs(w @ init.T), axis=1)), rtol=1e-12)
    # two iterations = Eq. (1) twice; a batch at least as large as the data is the full-batch update
    two = kmeans(w, 5, iters=2, init=init, tol=0.0, batch_size=1000)
    np.testing.assert_allclose(two.centroids, eq1_reference(w, eq1_reference(w, init)), rtol=1e-10, atol=1e-12)


def test_kmeans_reseeds_empty_clusters_from_patches(rng):
    w = np.zeros((40, 4))
    w[:, :3] = rng.standard_normal((40, 3))
    init = np.eye(4)  # the last centroid is orthogonal to every patch: it never wins
    res = kmeans(w, 4, iters=1, init=init, seed=0, tol=0.0)
    assert res.reseeded == 1
    unit = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert np.isclose(np.abs(unit @ res.centroids[3]).max(), 1.0)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0)


def test_kmeans_recovers_planted_directions_and_is_deterministic(rng):
    centers = np.linalg.qr(rng.standard_normal((10, 4)))[0].T  # 4 orthonormal directions
    labels = rng.integers(0, 4, 2000)
    signs = rng.choice([-1.0, 1.0], 2000)[:, None]
    w = (signs * centers[labels] * rng.uniform(1, 3, (2000, 1)) + 0.05 * rng.standard_normal((2000, 10)))
    w = w.astype(np.float32)
    for batch in (None, 256):
        res = kmeans(w, 4, iters=20, batch_size=batch, seed=3)
        assert res.centroids.dtype == np.float32
        cos = np.abs(res.centroids @ centers.T)
        assert np.sort(cos.max(axis=0)).min() > 0.99  # every planted direction found (up to sign)
        again = kmeans(w, 4, iters=20, batch_size=batch, seed=3)
        np.testing.assert_array_equal(res.centroids, again.centroids)
    assert not np.array_equal(kmeans(w, 4, iters=2, batch_size=256, seed=1).centroids,
                              kmeans(w, 4, iters=2, batch_size=256, seed=2).centroids)


def test_kmeans_errors(rng):
    w = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="at least n_clusters=11"):
        kmeans(w, 11)
    with pytest.raises(ValueError, match="init of shape \\(2, 3\\)"):
        kmeans(w, 2, init=np.ones((2, 4)))
    with pytest.raises(ValueError, match="all-zero row"):
        kmeans(w, 2, init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kmeans: expected 2-D"):
        kmeans(w[0], 2)
    with pytest.raises(ValueError, match="batch_size"):
        kmeans(w, 2, batch_size=0)


# ---- convolutional k-means -----------------------------------------------------------------------

def planted_windows(rng, pattern, n, size, noise=0.0):
    kh, kw = pattern.shape
    windows = noise * rng.standard_normal((n, 1, size, size))
    top = rng.integers(0, size - kh + 1, n)
    left = rng.integers(0, size - kw + 1, n)
    for i in range(n):
        windows[i, 0, top[i]:top[i] + kh, left[i]:left[i] + kw] += pattern
    return windows, top, left


def test_match_windows_finds_planted_shifted_pattern(rng):
    pattern = rng.standard_normal((3, 3))
    windows, top, left = planted_windows(rng, pattern, 30, 8)
    centroids = np.stack([pattern.ravel() / np.linalg.norm(pattern), rng.standard_normal(9) / 3])
    m = match_windows(windows, centroids, 3)
    assert (m.filter == 0).all()
    np.testing.assert_array_equal(m.top, top)
    np.testing.assert_array_equal(m.left, left)
    np.testing.assert_allclose(m.value, np.linalg.norm(pattern), rtol=1e-10)
    np.testing.assert_allclose(m.subpatches, np.tile(pattern.ravel(), (30, 1)), atol=1e-12)


def test_folded_conv_responses_equal_explicit_preprocessing(rng):
    x = smooth_images(rng, 6, 2, 9, 9, np.float64)
    prep = PatchPreprocessor(eps_norm=0.05, eps_zca=0.01).fit(extract_patches(x, 3, 500, seed=0))
    d = rng.standard_normal((4, 18))
    got = prep.conv_responses(x, d, (3, 3))
    assert got.shape == (6, 4, 7, 7)
    for y in range(7):
        for xx in range(7):
            sub = x[:, :, y:y + 3, xx:xx + 3].reshape(6, -1)
            np.testing.assert_allclose(got[:, :, y, xx], prep.transform(sub) @ d.T, rtol=1e-8, atol=1e-8)


def test_conv_kmeans_learns_the_pattern_not_its_shifts(rng):
    pattern = np.zeros((3, 3))
    pattern[:, 1] = 1.0  # a vertical bar
    pattern -= pattern.mean()
    windows, _, _ = planted_windows(rng, pattern, 400, 6, noise=0.05)
    res = conv_kmeans(windows, 2, 3, iters=10, seed=0, batch_size=128)
    target = pattern.ravel() / np.linalg.norm(pattern)
    assert np.abs(res.centroids @ target).max() > 0.95
    again = conv_kmeans(windows, 2, 3, iters=10, seed=0, batch_size=128)
    np.testing.assert_array_equal(res.centroids, again.centroids)
    with pytest.raises(ValueError, match="conv_kmeans: kernel size \\(7, 7\\) is larger than the images"):
        conv_kmeans(windows, 2, 7)
    with pytest.raises(ValueError, match="not fitted"):
        conv_kmeans(windows, 2, 3, preprocessor=PatchPreprocessor())


# ---- redundancy measure --------------------------------------------------------------------------

def test_mean_pairwise_correlation_against_corrcoef_and_shifts(rng):
    f = rng.standard_normal((5, 2, 4, 4))
    c = np.abs(np.corrcoef(f.reshape(5, -1)))
    np.testing.assert_allclose(mean_pairwise_correlation(f), c[~np.eye(5, dtype=bool)].mean(), rtol=1e-12)
    base = rng.standard_normal((1, 1, 6, 6))
    shifted = np.concatenate([base, np.roll(base, 1, axis=3)])  # second filter: first moved right by 1
    assert mean_pairwise_correlation(shifted) < 0.9
    assert mean_pairwise_correlation(shifted, max_shift=1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_correlation(f[:1])
    with pytest.raises(ValueError, match="max_shift=4"):
        mean_pairwise_correlation(f, max_shift=4)


# ---- one layer -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["kmeans", "conv-kmeans"])
def test_kmeans_filters_shapes_norms_and_determinism(rng, method):
    x = smooth_images(rng, 20, 3, 12, 12)
    f = kmeans_filters(x, 6, (3, 2), n_patches=600, method=method, iters=3, seed=4)
    assert f.shape == (6, 3, 3, 2) and f.dtype == np.float32 and np.isfinite(f).all()
    np.testing.assert_allclose(np.linalg.norm(f.reshape(6, -1), axis=1), 1.0, rtol=1e-5)
    # contrast-normalized centroids carry no mean: the filters ignore the brightness of a patch
    np.testing.assert_allclose(f.reshape(6, -1).sum(axis=1), 0.0, atol=1e-3)
    np.testing.assert_array_equal(f, kmeans_filters(fc.tensor(x), 6, (3, 2), n_patches=600, method=method,
                                                    iters=3, seed=4))


def test_kmeans_filters_errors(rng):
    x = smooth_images(rng, 4, 1, 6, 6)
    with pytest.raises(ValueError, match="kmeans_filters: expected method 'kmeans' or 'conv-kmeans', got 'pca'"):
        kmeans_filters(x, 4, 3, method="pca")
    with pytest.raises(ValueError, match="kernel size \\(7, 7\\) is larger than the images"):
        kmeans_filters(x, 4, 7)
    with pytest.raises(ValueError, match="n_patches >= n_filters"):
        kmeans_filters(x, 40, 3, n_patches=10)
    with pytest.raises(ValueError, match="window_size >= kernel size"):
        kmeans_filters(x, 4, 3, method="conv-kmeans", window_size=2, n_patches=50)
    with pytest.raises(ValueError, match="window_size applies to method='conv-kmeans' only"):
        kmeans_filters(x, 4, 3, window_size=5)
    with pytest.raises(TypeError, match="whiten as a bool"):
        kmeans_filters(x, 4, 3, whiten="yes")


# ---- layer-wise pretraining ----------------------------------------------------------------------

def small_net():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))


def test_pretrain_fills_every_conv_at_he_scale_with_active_relus(rng):
    fc.manual_seed(0)
    x = smooth_images(rng, 60, 2, 12, 12)
    model = small_net()
    linear_before = model[6].weight.numpy().copy()
    reports = pretrain_conv_layers(model, x, n_patches=2000, iters=5, seed=np.random.default_rng(5))
    assert [r.index for r in reports] == [0, 3]
    assert all(not r.frozen and r.iterations >= 1 for r in reports)
    np.testing.assert_array_equal(model[6].weight.numpy(), linear_before)  # only convolutions change
    with fc.no_grad():
        pre1 = model[0](fc.tensor(x)).numpy()
        pre2 = model[3](model[:3](fc.tensor(x))).numpy()
    for conv, pre in ((model[0], pre1), (model[3], pre2)):
        w = conv.weight.numpy()
        fan_in = w[0].size
        assert np.isfinite(w).all() and np.isfinite(conv.bias.numpy()).all()
        # every filter has the RMS of a He-initialized one, sqrt(2 / fan_in)
        np.testing.assert_allclose(np.sqrt((w.reshape(len(w), -1) ** 2).mean(axis=1)), np.sqrt(2 / fan_in),
                                   rtol=1e-5)
        active = (pre > 0).mean(axis=(0, 2, 3))  # per filter
        assert ((active > 0.2) & (active < 0.8)).all(), active


def test_pretrain_learns_layer_l_on_the_outputs_of_layers_before(rng):
    x = smooth_images(rng, 40, 2, 12, 12)
    model = small_net()
    pretrain_conv_layers(model, x, n_patches=1500, iters=4, seed=np.random.default_rng(11))
    g = np.random.default_rng(11)  # the same stream, consumed layer by layer
    first = kmeans_filters(x, 4, 3, n_patches=1500, iters=4, seed=g)
    np.testing.assert_allclose(model[0].weight.numpy(), first * np.sqrt(2), rtol=1e-5, atol=1e-6)
    with fc.no_grad():
        hidden = model[:3](fc.tensor(x)).numpy()
    second = kmeans_filters(hidden, 6, 3, n_patches=1500, iters=4, seed=g)
    np.testing.assert_allclose(model[3].weight.numpy(), second * np.sqrt(2), rtol=1e-4, atol=1e-5)


def test_pretrain_freeze_leaves_convolutions_without_gradients(rng):
    x = smooth_images(rng, 30, 2, 12, 12)
    model = small_net()
    reports = pretrain_conv_layers(model, x, n_patches=800, iters=2, method="conv-kmeans", seed=1, freeze=True)
    assert all(r.frozen and r.method == "conv-kmeans" for r in reports)
    loss = fc.nn.functional.cross_entropy(model(fc.tensor(x[:8])), np.arange(8) % 3)
    loss.backward()
    for i in (0, 3):
        assert not model[i].weight.requires_grad and model[i].weight.grad is None and model[i].bias.grad is None
    assert model[6].weight.grad is not None and np.abs(model[6].weight.grad.numpy()).sum() > 0


def test_pretrain_errors(rng):
    x = smooth_images(rng, 10, 2, 12, 12)
    with pytest.raises(TypeError, match="expected a fastconv.nn.Sequential, got Conv2d"):
        pretrain_conv_layers(nn.Conv2d(2, 4, 3), x)
    with pytest.raises(ValueError, match="groups=2; only groups=1"):
        pretrain_conv_layers(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), x)
    with pytest.raises(ValueError, match="no Conv2d"):
        pretrain_conv_layers(nn.Sequential(nn.Flatten(), nn.Linear(288, 2)), x)
    with pytest.raises(ValueError, match="contains a Conv2d inside a sub-module"):
        pretrain_conv_layers(nn.Sequential(nn.Sequential(nn.Conv2d(2, 4, 3))), x)
    with pytest.raises(ValueError, match="expected images with 2 channels"):
        pretrain_conv_layers(small_net(), x[:, :1])
    with pytest.raises(TypeError, match="dtype float32 or float64, got int64"):
        pretrain_conv_layers(small_net(), x.astype(np.int64))
    with pytest.raises(ValueError, match="active_fraction in \\(0, 1\\)"):
        pretrain_conv_layers(small_net(), x, active_fraction=1.5)
    with pytest.raises(ValueError, match="kernel size \\(13, 13\\) is larger than the images"):
        pretrain_conv_layers(nn.Sequential(nn.Conv2d(2, 4, 13)), x)
    with pytest.raises(ValueError, match="dilation"):
        pretrain_conv_layers(nn.Sequential(nn.Conv2d(2, 4, 3, dilation=2)), x)
