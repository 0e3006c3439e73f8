"""The vector plane loops of _kernels/_dwplanes.h (3×3 filters, dilation 1, stride 1 or 2 per axis):
the NCHW depthwise forward and the few-channel forward of the shallow path, on every variant
this CPU runs, against float64 numpy references: any plane size (narrower than one vector, rows
cut at every remainder), both strides on each axis, paddings past the filter, channel
multipliers and more output than the input covers (the planes' bottom/right rows and columns
read zeros)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv._kernels import conv as conv_kernels
from fastconv._kernels import depthwise as D
from fastconv.backends import conv as backends_conv
from fastconv.nn import functional as F


def reference(x, w, b, stride, padding, out_shape):
    """y[n, k] = b[k] + Σ_taps w[k, tap] · x[n, k // m] at the tap (zeros outside), float64."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = out_shape
    pad = np.zeros((n, c, (ho - 1) * sh + 3, (wo - 1) * sw + 3))
    rows, cols = max(0, min(h, pad.shape[2] - ph)), max(0, min(wd, pad.shape[3] - pw))
    pad[:, :, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols]
    y = np.zeros((n, k, ho, wo)) + b[None, :, None, None]
    for ky in range(3):
        for kx in range(3):
            patch = pad[:, np.arange(k) // (k // c), ky:ky + (ho - 1) * sh + 1:sh, kx:kx + (wo - 1) * sw + 1:sw]
            y += w[None, :, ky * 3 + kx, None, None] * patch
    return y


@given(n=st.integers(1, 2), c=st.integers(1, 3), mult=st.integers(1, 2), h=st.integers(1, 40),
       w=st.integers(1, 40), sh=st.sampled_from([1, 2]), sw=st.sampled_from([1, 2]), ph=st.integers(0, 3),
       pw=st.integers(0, 3), extra=st.integers(0, 2), threads=st.sampled_from([1, 2]), seed=st.integers(0, 999))
def test_vector_plane_loops_match_reference(n, c, mult, h, w, sh, sw, ph, pw, extra, threads, seed):
    ho = (h + 2 * ph - 3) // sh + 1 + extra
    wo = (w + 2 * pw - 3) // sw + 1 + extra
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c * mult, 9)).astype(np.float32)
    b = rng.standard_normal(c * mult).astype(np.float32)
    ref = reference(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), (sh, sw), (ph, pw),
                    (ho, wo))
    scale = 16 * np.finfo(np.float32).eps * (1 + np.abs(x).max() * np.abs(wt).sum(axis=1).max() + np.abs(b).max())
    for variant in D.plane_variants():
        previous = D.set_variant_cap(variant)
        try:
            y = np.full((n, c * mult, ho, wo), np.nan, np.float32)
            D.depthwise_forward(x, wt, b, True, y, 3, 3, sh, sw, ph, pw, 1, 1, threads)
        finally:
            D.set_variant_cap(previous)
        np.testing.assert_allclose(y, ref, rtol=0, atol=scale, err_msg=f"variant {variant}")


def test_variant_cap_is_checked():
    with pytest.raises(ValueError, match="depthwise.set_variant_cap: expected a level in 1..3, got 4"):
        D.set_variant_cap(4)


def test_mobilenet_planes_match_torch(torch):
    """MobileNet's first depthwise layer shape (32×112×112, stride 1) and a stride-2 one, forced on
    the plane path through the public conv2d, against torch."""
    rng = np.random.default_rng(0)
    for shape, stride in (((1, 32, 112, 112), 1), ((2, 24, 29, 31), 2)):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((shape[1], 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(shape[1]).astype(np.float32)
        with backends_conv.force("depthwise_planes", ["forward"]):
            y = F.conv2d(fc.tensor(x), fc.tensor(w), fc.tensor(b), stride=stride, padding=1, groups=shape[1])
        want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                          stride=stride, padding=1, groups=shape[1]).numpy()
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)


def dense_reference(x, w, b, stride, padding):
    """float64 conv2d (groups 1, 3×3, dilation 1) with symmetric padding."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (xp.shape[2] - 3) // sh + 1, (xp.shape[3] - 3) // sw + 1
    y = np.zeros((x.shape[0], w.shape[0], ho, wo)) + b[None, :, None, None]
    for ky in range(3):
        for kx in range(3):
            patch = xp[:, :, ky:ky + (ho - 1) * sh + 1:sh, kx:kx + (wo - 1) * sw + 1:sw]
            y += np.einsum("nchw,kc->nkhw", patch, w[:, :, ky, kx])
    return y


@given(n=st.integers(1, 2), c=st.integers(1, 4), k=st.integers(1, 20), h=st.integers(1, 37),
       w=st.integers(1, 37), sh=st.sampled_from([1, 2]), sw=st.sampled_from([1, 2]), ph=st.integers(0, 2),
       pw=st.integers(0, 2), bias=st.booleans(), seed=st.integers(0, 999))
def test_few_channel_rows_match_reference(n, c, k, h, w, sh, sw, ph, pw, bias, seed):
    """The shallow path's forward on 3×3 filters (the plane loops, one thread: the column-buffer
    loops remain for the threaded im2col) on every variant."""
    if h + 2 * ph < 3 or w + 2 * pw < 3:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    ref = dense_reference(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64) if bias else np.zeros(k),
                          (sh, sw), (ph, pw))
    scale = 16 * np.finfo(np.float32).eps * (1 + np.abs(x).max() * np.abs(wt).sum(axis=(1, 2, 3)).max() + np.abs(b).max())
    previous_threads = fc.get_num_threads()
    fc.set_num_threads(1)
    try:
        for variant in conv_kernels.shallow_variants():
            previous = conv_kernels.set_shallow_variant_cap(variant)
            try:
                with backends_conv.force("shallow", ["forward"]), fc.no_grad():
                    y = F.conv2d(fc.tensor(x), fc.tensor(wt), fc.tensor(b) if bias else None, stride=(sh, sw),
                                 padding=(ph, pw))
            finally:
                conv_kernels.set_shallow_variant_cap(previous)
            np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=scale, err_msg=f"variant {variant}")
    finally:
        fc.set_num_threads(previous_threads)
