"""The batched remap kernels and index maps (fastconv.data._remap) against numpy references, and the
fastconv.data batch transforms built on them."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv.data import _remap
from fastconv.data import transforms as BT


def _naive_crop(x, padding, size, rng):
    n, c, h, w = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    top = rng.integers(0, h + 2 * padding - size + 1, size=n)
    left = rng.integers(0, w + 2 * padding - size + 1, size=n)
    return np.stack([p[k, :, top[k]:top[k] + size, left[k]:left[k] + size] for k in range(n)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_transforms_equal_numpy_references(rng, dtype):
    x = rng.standard_normal((7, 3, 12, 10)).astype(dtype)[:, :, :, ::-1]  # not contiguous
    out = BT.RandomCrop(9, padding=2)(x, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(out, _naive_crop(x, 2, 9, np.random.default_rng(3)))
    assert out.dtype == dtype
    flags = np.random.default_rng(4).random(7) < 0.5
    np.testing.assert_array_equal(BT.RandomHorizontalFlip()(x, rng=np.random.default_rng(4)),
                                  np.where(flags[:, None, None, None], x[..., ::-1], x))
    mean, std = np.array([0.1, -0.2, 0.3]), np.array([0.5, 2.0, 1.5])
    np.testing.assert_array_equal(BT.Normalize(mean, std)(x),
                                  (x - mean.astype(dtype)[:, None, None]) / std.astype(dtype)[:, None, None])


@settings(max_examples=25)
@given(h=st.integers(1, 9), w=st.integers(1, 9), before=st.integers(-2, 6), after=st.integers(-2, 6),
       mode=st.sampled_from(["constant", "edge", "reflect", "symmetric"]))
def test_pad_maps_equal_numpy_pad(h, w, before, after, mode):
    if min(h, w) - max(-before, 0) - max(-after, 0) <= 0:
        return  # cropped away entirely (numpy cannot pad an empty axis either)
    x = np.random.default_rng(h * 10 + w).random((2, 2, h, w)).astype(np.float32)
    rows = _remap.pad(_remap.identity(2, h), before, after, mode, slot=0)
    cols = _remap.pad(_remap.identity(2, w), after, before, mode, slot=0)
    out = _remap.remap_float(x, rows, cols, np.float32(0.25))
    cropped = x[:, :, max(-before, 0):h - max(-after, 0), max(-after, 0):w - max(-before, 0)]
    widths = ((0, 0), (0, 0), (max(before, 0), max(after, 0)), (max(after, 0), max(before, 0)))
    ref = np.pad(cropped, widths, mode=mode, **({"constant_values": 0.25} if mode == "constant" else {}))
    np.testing.assert_array_equal(out, ref)


def test_later_padding_wins_where_paddings_meet(rng):
    images = rng.integers(0, 256, (3, 5, 6, 2), dtype=np.uint8)
    rows, cols = _remap.identity(3, 5), _remap.identity(3, 6)
    rows = _remap.pad(rows, 1, 0, "constant", slot=0)          # first: a row of fill 0 on top
    cols = _remap.pad(cols, 0, 2, "constant", slot=1)          # then: two columns of fill 1 on the right
    rows = _remap.pad(rows, 0, 1, "edge")                      # then: replicate the bottom row
    lut = np.tile(np.arange(256, dtype=np.float32), (2, 1))
    fills = np.array([[-1.0, -1.5], [-2.0, -2.5]], np.float32)
    out = _remap.remap_u8(images, rows, cols, lut, fills)
    ref = images.transpose(0, 3, 1, 2).astype(np.float32)
    ref = np.concatenate([np.broadcast_to(fills[0][None, :, None, None], (3, 2, 1, 6)), ref], axis=2)
    ref = np.concatenate([ref, np.broadcast_to(fills[1][None, :, None, None], (3, 2, 6, 2))], axis=3)
    ref = np.concatenate([ref, ref[:, :, -1:]], axis=2)
    np.testing.assert_array_equal(out, ref)


def test_remap_checks_its_inputs(rng):
    images = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    rows, cols = _remap.identity(2, 4), _remap.identity(2, 4)
    lut, fills = np.zeros((3, 256), np.float32), np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match=r"row map entries must lie in \[-1, 4\)"):
        _remap.remap_u8(images, rows + 1, cols, lut, fills)
    with pytest.raises(ValueError, match="lookup table"):
        _remap.remap_u8(images, rows, cols, lut[:2], fills)
    with pytest.raises(TypeError, match="uint8 images"):
        _remap.remap_u8(images.astype(np.float32), rows, cols, lut, fills)
    with pytest.raises(ValueError, match="fill values of shape"):
        _remap.remap_float(images.astype(np.float32).transpose(0, 3, 1, 2), rows, cols, np.zeros((1, 2)))
