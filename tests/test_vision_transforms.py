"""fastconv.vision.transforms against torchvision on the same inputs (PIL images, Tensors, ndarrays),
their random streams, argument errors, and the fused batch path against the per-sample path."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
import fastconv.vision.transforms as T
import fastconv.vision.transforms.functional as F
from fastconv.random import get_generator
from fastconv.vision.transforms import _fusion

from _torchvision import import_torchvision

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


@pytest.fixture(scope="module")
def TF(tv):
    import torchvision.transforms.functional as TF
    return TF


@pytest.fixture(scope="module")
def TT(tv):
    import torchvision.transforms as TT
    return TT


def _image(rng, shape=(3, 23, 29), dtype=np.uint8):
    a = rng.integers(0, 256, shape).astype(dtype)
    return a / np.asarray(255, dtype) if dtype != np.uint8 else a


def _arr(x):
    if isinstance(x, fc.Tensor):
        return x.numpy()
    if hasattr(x, "detach"):
        return x.detach().numpy()
    return np.asarray(x)


def _close(ours, ref, atol=0.0, mismatch=0.0):
    """Equal shapes and values within ``atol``; ``mismatch``: share of elements allowed to be off by 1
    (uint8 results rounded from float computations that differ in the last bit)."""
    ours, ref = _arr(ours), _arr(ref)
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype or (ours.dtype.kind == ref.dtype.kind == "f")
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    if mismatch:
        assert diff.max() <= 1 and (diff > atol).mean() <= mismatch
    else:
        assert diff.max() <= atol


def _pair(rng, torch, shape=(3, 23, 29), dtype=np.uint8):
    a = _image(rng, shape, dtype)
    return fc.tensor(a), torch.from_numpy(a.copy())


# ---- functional: Tensors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "nearest-exact"])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_tensor_matches_torchvision(rng, torch, TF, dtype, mode, antialias):
    x, t = _pair(rng, torch, (3, 37, 45), dtype)
    for size in ([20, 30], [60, 70], [37, 90], [10], 50):
        ours = F.resize(x, size, F.InterpolationMode(mode), antialias=antialias)
        ref = TF.resize(t, size, TF.InterpolationMode(mode), antialias=antialias)
        _close(ours, ref, atol=1e-5 if dtype == np.float32 else 0, mismatch=0.01 if dtype == np.uint8 else 0)


@settings(max_examples=20)
@given(h=st.integers(1, 40), w=st.integers(1, 40), oh=st.integers(1, 50), ow=st.integers(1, 50),
       mode=st.sampled_from(["bilinear", "bicubic", "nearest"]), antialias=st.booleans())
def test_resize_any_shape_matches_torchvision(TF, h, w, oh, ow, mode, antialias):
    import torch
    a = np.random.default_rng(h * 100 + w).random((2, h, w), dtype=np.float32)
    ours = F.resize(fc.tensor(a), [oh, ow], F.InterpolationMode(mode), antialias=antialias)
    ref = TF.resize(torch.from_numpy(a), [oh, ow], TF.InterpolationMode(mode), antialias=antialias)
    _close(ours, ref, atol=1e-5)


def test_resize_size_rules_match_torchvision(rng, torch, TF):
    x, t = _pair(rng, torch, (3, 30, 50))
    for size, max_size in ((20, None), ([20], None), (20, 25), ((15, 16), None), (30, None)):
        assert F.resize(x, size, max_size=max_size).shape == tuple(TF.resize(t, size, max_size=max_size).shape)
    assert F.resize(x, 30) is x  # already the requested size: the same image, as torchvision
    with pytest.raises(ValueError, match="max_size"):
        F.resize(x, 20, max_size=10)
    with pytest.raises(ValueError, match="unsupported with Tensor"):
        F.resize(x, 10, F.InterpolationMode.LANCZOS)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_rotate_tensor_matches_torchvision(rng, torch, TF, dtype):
    x, t = _pair(rng, torch, (3, 37, 45), dtype)
    fills = (None, [0.0] * 3, [10.0, 20.0, 30.0] if dtype == np.uint8 else [0.5, 0.25, 1.0])
    for angle in (0, 30, -45.5, 90, 17):
        for mode in ("nearest", "bilinear"):
            for expand in (False, True):
                for center in (None, [5, 9]):
                    for fill in fills:
                        ours = F.rotate(x, angle, F.InterpolationMode(mode), expand, center, fill)
                        ref = TF.rotate(t, angle, TF.InterpolationMode(mode), expand, center, fill)
                        _close(ours, ref, atol=1e-5 if dtype == np.float32 else 0,
                               mismatch=0.002 if dtype == np.uint8 else 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_geometry_tensor_matches_torchvision(rng, torch, TF, dtype):
    x, t = _pair(rng, torch, (3, 23, 29), dtype)
    for mode in ("constant", "edge", "reflect", "symmetric"):
        for padding in (3, [2, 5], [1, 2, 3, 4], [-2, 3, 1, -1]):
            _close(F.pad(x, padding, 7 if mode == "constant" else 0, mode),
                   TF.pad(t, padding, 7 if mode == "constant" else 0, mode))
    for box in ((0, 0, 10, 10), (-3, -4, 20, 50), (20, 25, 10, 10)):
        _close(F.crop(x, *box), TF.crop(t, *box))
    for size in (10, (20, 27), 40, (23, 29), (30, 12)):
        _close(F.center_crop(x, size), TF.center_crop(t, size))
    _close(F.hflip(x), TF.hflip(t))
    _close(F.vflip(x), TF.vflip(t))
    for ours, ref in zip(F.ten_crop(x, (9, 11)), TF.ten_crop(t, (9, 11))):
        _close(ours, ref)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_color_tensor_matches_torchvision(rng, torch, TF, dtype):
    x, t = _pair(rng, torch, (3, 23, 29), dtype)
    for factor in (0.0, 0.5, 1.3, 2.0):
        _close(F.adjust_brightness(x, factor), TF.adjust_brightness(t, factor))
        _close(F.adjust_contrast(x, factor), TF.adjust_contrast(t, factor), mismatch=0.001 if dtype == np.uint8 else 0,
               atol=1e-6 if dtype == np.float32 else 0)
        _close(F.adjust_saturation(x, factor), TF.adjust_saturation(t, factor), atol=1e-6)
    for hue in (-0.5, -0.2, 0.0, 0.1, 0.5):
        _close(F.adjust_hue(x, hue), TF.adjust_hue(t, hue), atol=1e-6 if dtype == np.float32 else 0)
    for channels in (1, 3):
        _close(F.rgb_to_grayscale(x, channels), TF.rgb_to_grayscale(t, channels))
    gray = fc.tensor(_image(rng, (1, 8, 9), dtype))
    _close(F.adjust_saturation(gray, 0.3), TF.adjust_saturation(torch.from_numpy(gray.numpy().copy()), 0.3))


def test_normalize_and_conversions_match_torchvision(rng, torch, TF):
    a = rng.random((3, 10, 12)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]
    _close(F.normalize(fc.tensor(a), mean, std), TF.normalize(torch.from_numpy(a), mean, std))
    b = rng.random((2, 3, 4, 5))
    _close(F.normalize(fc.tensor(b), 0.5, 0.25), TF.normalize(torch.from_numpy(b), 0.5, 0.25))
    x = fc.tensor(a.copy())
    assert F.normalize(x, mean, std, inplace=True) is x
    _close(x, TF.normalize(torch.from_numpy(a), mean, std))
    u8 = _image(rng, (3, 6, 7))
    for dtype in (np.float32, np.float64):
        _close(F.convert_image_dtype(fc.tensor(u8), dtype),
               TF.convert_image_dtype(torch.from_numpy(u8), getattr(torch, np.dtype(dtype).name)))
    _close(F.convert_image_dtype(fc.tensor(a), np.uint8), TF.convert_image_dtype(torch.from_numpy(a), torch.uint8))


def test_to_tensor_and_to_pil_match_torchvision(rng, torch, TF):
    rgb = _image(rng, (11, 13, 3))
    images = [Image.fromarray(rgb), Image.fromarray(rgb[..., 0]), Image.fromarray(rgb).convert("RGBA"),
              Image.fromarray(rgb).convert("1"), Image.fromarray(rgb[..., 0].astype(np.int32) * 1000).convert("I"),
              Image.fromarray(rng.random((11, 13)).astype(np.float32))]
    for img in images:
        _close(F.to_tensor(img), TF.to_tensor(img))
        _close(F.pil_to_tensor(img), TF.pil_to_tensor(img))
    for array in (rgb, rgb[..., 0], rng.random((4, 5, 3)), rng.integers(0, 9, (4, 5, 2)).astype(np.int16)):
        _close(F.to_tensor(array), TF.to_tensor(array))
    for pic, mode in ((rng.random((3, 5, 6)).astype(np.float32), None), (_image(rng, (1, 5, 6)), None),
                      (_image(rng, (4, 5, 6)), None), (_image(rng, (2, 5, 6)), None), (_image(rng, (3, 5, 6)), "HSV"),
                      (rng.random((1, 5, 6)).astype(np.float32), "F")):
        ours, ref = F.to_pil_image(fc.tensor(pic), mode), TF.to_pil_image(torch.from_numpy(pic), mode)
        assert ours.mode == ref.mode and ours.size == ref.size
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
    hwc = _image(rng, (5, 6, 3))
    np.testing.assert_array_equal(np.asarray(F.to_pil_image(hwc)), np.asarray(TF.to_pil_image(hwc)))


def test_batched_tensors_match_torchvision(rng, torch, TF):
    x, t = _pair(rng, torch, (2, 3, 17, 19), np.float32)
    _close(F.resize(x, [9, 25]), TF.resize(t, [9, 25]), atol=1e-5)
    _close(F.rotate(x, 25.0, F.InterpolationMode.BILINEAR), TF.rotate(t, 25.0, TF.InterpolationMode.BILINEAR),
           atol=1e-5)
    _close(F.adjust_contrast(x, 1.7), TF.adjust_contrast(t, 1.7), atol=1e-6)
    _close(F.adjust_hue(x, 0.3), TF.adjust_hue(t, 0.3), atol=1e-6)
    _close(F.normalize(x, [0.5, 0.4, 0.3], [0.2, 0.3, 0.4]), TF.normalize(t, [0.5, 0.4, 0.3], [0.2, 0.3, 0.4]))
    _close(F.center_crop(x, 11), TF.center_crop(t, 11))
    img = Image.fromarray(_image(rng, (8, 9, 3)))
    with pytest.warns(UserWarning, match="Anti-alias option is always applied"):
        F.resize(img, 4, antialias=False)


# ---- functional: PIL images and ndarrays -------------------------------------------------------------------
def test_pil_ops_match_torchvision(rng, TF):
    img = Image.fromarray(_image(rng, (23, 29, 3)))
    gray = img.convert("L")
    cases = [
        ("resize", (img, [11, 40])), ("resize", (gray, 17)), ("pad", (img, [1, 2, 3, 4], (5, 6, 7))),
        ("pad", (gray, 3, 0, "reflect")), ("pad", (img, [2, 3], 0, "symmetric")), ("pad", (img, 2, 0, "edge")),
        ("crop", (img, 3, 4, 10, 12)), ("center_crop", (img, 30)), ("hflip", (img,)), ("vflip", (gray,)),
        ("rotate", (img, 33.0)), ("rotate", (img, 33.0, F.InterpolationMode.BILINEAR, True, None, [1, 2, 3])),
        ("adjust_brightness", (img, 1.5)), ("adjust_contrast", (img, 0.4)), ("adjust_saturation", (img, 1.7)),
        ("adjust_hue", (img, -0.3)), ("rgb_to_grayscale", (img, 3)), ("resized_crop", (img, 2, 3, 15, 20, [8, 8])),
    ]
    for name, args in cases:
        targs = tuple(TF.InterpolationMode(a.value) if isinstance(a, F.InterpolationMode) else a for a in args)
        ours, ref = getattr(F, name)(*args), getattr(TF, name)(*targs)
        assert ours.mode == ref.mode and ours.size == ref.size, name
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref), err_msg=name)


def test_ndarray_images_follow_the_tensor_path(rng):
    hwc = _image(rng, (23, 29, 3))
    chw = fc.tensor(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
    for fn, args in ((F.resize, ([12, 14],)), (F.pad, ([1, 2, 3, 4], 9)), (F.crop, (2, 3, 10, 11)), (F.hflip, ()),
                     (F.rotate, (20.0,)), (F.adjust_contrast, (1.4,)), (F.adjust_hue, (0.2,)), (F.center_crop, (9,))):
        ours = fn(hwc, *args)
        assert isinstance(ours, np.ndarray) and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, fn(chw, *args).numpy().transpose(1, 2, 0))
    hw = hwc[..., 0]
    assert F.pad(hw, 2).shape == (27, 33) and F.adjust_brightness(hw, 0.5).shape == hw.shape
    assert F.rotate(hw, 10.0).shape == hw.shape


# ---- transform classes: deterministic ones against torchvision's classes ------------------------------------
def test_deterministic_transforms_match_torchvision(rng, torch, TT):
    img = Image.fromarray(_image(rng, (23, 29, 3)))
    pairs = [
        (T.Compose([T.Resize(16), T.CenterCrop(12), T.ToTensor(), T.Normalize((0.4, 0.5, 0.6), (0.2, 0.3, 0.4))]),
         TT.Compose([TT.Resize(16), TT.CenterCrop(12), TT.ToTensor(), TT.Normalize((0.4, 0.5, 0.6), (0.2, 0.3, 0.4))])),
        (T.Compose([T.Pad([1, 2], fill=(3, 4, 5)), T.Grayscale(3), T.PILToTensor()]),
         TT.Compose([TT.Pad([1, 2], fill=(3, 4, 5)), TT.Grayscale(3), TT.PILToTensor()])),
        (T.Compose([T.ToTensor(), T.Resize((10, 40), antialias=False), T.Lambda(lambda x: x * 2)]),
         TT.Compose([TT.ToTensor(), TT.Resize((10, 40), antialias=False), TT.Lambda(lambda x: x * 2)])),
    ]
    for ours, ref in pairs:
        _close(ours(img), ref(img), atol=1e-5)
    for ours, ref in ((T.ToPILImage(), TT.ToPILImage()), (T.ToPILImage("RGB"), TT.ToPILImage("RGB"))):
        pic = rng.random((3, 5, 6)).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(ours(fc.tensor(pic))), np.asarray(ref(torch.from_numpy(pic))))


def test_reprs_match_torchvision(TT):
    pairs = [
        (T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))]),
         TT.Compose([TT.RandomCrop(32, padding=4), TT.RandomHorizontalFlip(), TT.ToTensor(),
                     TT.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])),
        (T.Resize(256), TT.Resize(256)), (T.CenterCrop(224), TT.CenterCrop(224)),
        (T.RandomResizedCrop(224), TT.RandomResizedCrop(224)), (T.ColorJitter(0.4, 0.4, 0.4, 0.1),
                                                                TT.ColorJitter(0.4, 0.4, 0.4, 0.1)),
        (T.RandomRotation(15), TT.RandomRotation(15)), (T.Pad(2, padding_mode="edge"), TT.Pad(2, padding_mode="edge")),
        (T.RandomVerticalFlip(0.3), TT.RandomVerticalFlip(0.3)), (T.ToPILImage(), TT.ToPILImage()),
    ]
    for ours, ref in pairs:
        assert repr(ours) == repr(ref)


# ---- random transforms: the documented stream, checked with torchvision's functional ops -------------------
def _doubles(seed, count):
    return np.random.default_rng(seed).random(count)


def test_random_crop_and_flips_follow_their_stream(rng, TF):
    img = Image.fromarray(_image(rng, (23, 29, 3)))
    for seed in range(5):
        fc.manual_seed(seed)
        ours = T.Compose([T.RandomCrop(20, padding=3, padding_mode="reflect"), T.RandomHorizontalFlip(),
                          T.RandomVerticalFlip(0.7)])(img)
        u = _doubles(seed, 4)
        ref = TF.pad(img, 3, padding_mode="reflect")
        top, left = int(u[0] * (29 - 20 + 1)), int(u[1] * (35 - 20 + 1))
        ref = TF.crop(ref, top, left, 20, 20)
        ref = TF.hflip(ref) if u[2] < 0.5 else ref
        ref = TF.vflip(ref) if u[3] < 0.7 else ref
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
    fc.manual_seed(7)
    state = get_generator().bit_generator.state
    T.RandomCrop((23, 29))(img)  # the whole image: nothing drawn, as torchvision
    assert get_generator().bit_generator.state == state


def test_pad_if_needed(rng, torch, TF):
    x, t = _pair(rng, torch, (3, 10, 12), np.float32)
    for seed in range(3):
        fc.manual_seed(seed)
        out = T.RandomCrop((14, 15), pad_if_needed=True, fill=0.5)(x)
        padded = TF.pad(TF.pad(t, [3, 0], 0.5), [0, 4], 0.5)  # width 12 → 18, then height 10 → 18
        u = _doubles(seed, 2)
        _close(out, TF.crop(padded, int(u[0] * 5), int(u[1] * 4), 14, 15))
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop(14)(x)


def test_random_resized_crop_rotation_jitter_follow_their_stream(rng, torch, TF):
    img = Image.fromarray(_image(rng, (40, 50, 3)))
    for seed in range(4):
        fc.manual_seed(seed)
        ours = T.RandomResizedCrop(16, scale=(0.2, 0.9))(img)
        fc.manual_seed(seed)
        i, j, h, w = T.RandomResizedCrop.get_params(img, (0.2, 0.9), (3 / 4, 4 / 3))
        assert 0 <= i <= 40 - h and 0 <= j <= 50 - w
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(TF.resized_crop(img, i, j, h, w, [16, 16])))

        fc.manual_seed(seed)
        x = fc.tensor(_image(rng, (3, 20, 21), np.float32))
        ours = T.RandomRotation((-40, 20), interpolation=F.InterpolationMode.BILINEAR, fill=0.25)(x)
        angle = -40 + 60 * _doubles(seed, 1)[0]
        ref = TF.rotate(torch.from_numpy(x.numpy().copy()), angle, TF.InterpolationMode.BILINEAR, fill=[0.25] * 3)
        _close(ours, ref, atol=1e-5)

        fc.manual_seed(seed)
        ours = T.ColorJitter(0.4, (0.5, 1.5), 0.3, 0.1)(img)
        g = np.random.default_rng(seed)
        order, u = g.permutation(4), g.random(4)
        factors = [0.6 + 0.8 * u[0], 0.5 + 1.0 * u[1], 0.7 + 0.6 * u[2], -0.1 + 0.2 * u[3]]
        ref = img
        for k in order:
            ref = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue][k](ref, factors[k])
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_random_apply_and_grayscale(rng):
    img = Image.fromarray(_image(rng, (8, 9, 3)))
    for seed in range(6):
        fc.manual_seed(seed)
        out = T.RandomApply([T.Grayscale(3)], p=0.4)(img)
        expect = np.asarray(F.rgb_to_grayscale(img, 3)) if _doubles(seed, 1)[0] <= 0.4 else np.asarray(img)
        np.testing.assert_array_equal(np.asarray(out), expect)


def test_bad_arguments_are_clear_errors(rng):
    x = fc.tensor(_image(rng, (3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="probability"):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="two dimensions"):
        T.RandomCrop((1, 2, 3))
    with pytest.raises(ValueError, match="padding mode"):
        T.Pad(2, padding_mode="wrap")
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)
    with pytest.raises(TypeError, match="Compose: expected callables"):
        T.Compose([T.ToTensor(), 5])
    with pytest.raises(ValueError, match="std"):
        T.Normalize((0.5,), (0.0,))
    with pytest.raises(TypeError, match="float tensor"):
        F.normalize(fc.tensor(np.zeros((3, 4, 4), np.uint8)), [0.5], [0.5])
    with pytest.raises(TypeError, match="PIL Image"):
        F.normalize(Image.new("RGB", (4, 4)), [0.5], [0.5])
    with pytest.raises(TypeError, match="expected a PIL Image, an HWC ndarray or a CHW Tensor"):
        F.hflip([1, 2, 3])
    with pytest.raises(ValueError, match="hue_factor"):
        F.adjust_hue(x, 0.7)
    with pytest.raises(ValueError, match="reflect padding"):
        F.pad(x, 8, padding_mode="reflect")
    with pytest.raises(TypeError, match="to_tensor"):
        F.to_tensor(x)
    with pytest.raises(ValueError, match="brightness"):
        T.ColorJitter(brightness=-1)


# ---- the fused batch path -----------------------------------------------------------------------------------
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
FUSABLE = [  # each maker gets the channel count
    lambda c: T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                         T.Normalize(CIFAR_MEAN[:c], CIFAR_STD[:c])]),
    lambda c: T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]),
    lambda c: T.ToTensor(),
    lambda c: T.Compose([T.RandomCrop(28, padding=(2, 5), padding_mode="reflect", fill=3), T.RandomVerticalFlip(0.3),
                         T.ToTensor()]),
    lambda c: T.Compose([T.Pad([1, 2, 3, 4], fill=(10, 20, 30)[:c]), T.CenterCrop(40),
                         T.RandomCrop(30, pad_if_needed=True, padding_mode="edge"), T.ToTensor(), T.Normalize(0.5, 0.5),
                         T.RandomCrop(34, padding=2, fill=-1.0)]),
    lambda c: T.Compose([T.Compose([T.RandomHorizontalFlip(0.5), T.ToTensor()]), T.Pad(3, fill=0.25),
                         T.Normalize(CIFAR_MEAN[:c], CIFAR_STD[:c]), T.RandomHorizontalFlip(0.9), T.CenterCrop(20)]),
]


@pytest.mark.parametrize("make", FUSABLE)
@pytest.mark.parametrize("channels", [1, 3])
def test_fused_batch_equals_per_sample_bit_for_bit(rng, make, channels):
    transform = make(channels)
    images = rng.integers(0, 256, (9, 32, 32, channels), dtype=np.uint8)
    pipeline = _fusion.plan(transform, 32, 32, channels)
    assert pipeline is not None
    fc.manual_seed(11)
    batch = pipeline(images, get_generator())
    after_batch = get_generator().random()
    fc.manual_seed(11)
    for k in range(len(images)):
        pic = Image.fromarray(images[k, ..., 0] if channels == 1 else images[k])
        expect = transform(pic).numpy()
        assert batch[k].dtype == expect.dtype == np.float32
        np.testing.assert_array_equal(batch[k], expect)
    assert get_generator().random() == after_batch  # the same number of draws


@pytest.mark.parametrize("transform", [
    T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]),          # no ToTensor: PIL images out
    T.Compose([T.RandomCrop(32, padding=4), T.ColorJitter(0.2), T.ToTensor()]),  # an unfusable transform
    T.Compose([T.ToTensor(), T.Normalize(0.5, 0.5), T.Normalize(0.1, 0.2)]),      # a second Normalize
    T.Compose([T.Normalize(0.5, 0.5), T.ToTensor()]),                             # Normalize before ToTensor
    T.Compose([T.RandomCrop(40), T.ToTensor()]),                                  # larger than the image: an error
    T.Compose([T.Pad(2, fill=300), T.ToTensor()]),                                # not a byte
    T.Compose([T.Lambda(lambda x: x), T.ToTensor()]),
])
def test_unfusable_pipelines_stay_per_sample(transform):
    assert _fusion.plan(transform, 32, 32, 3) is None


def test_subclassed_transform_is_not_fused():
    class MyFlip(T.RandomHorizontalFlip):
        def forward(self, img):
            return img
    assert _fusion.plan(T.Compose([MyFlip(), T.ToTensor()]), 8, 8, 3) is None


_PAD_MODES = ["constant", "edge", "reflect", "symmetric"]


@st.composite
def _geometric(draw, stage):
    kind = draw(st.sampled_from(["crop", "center", "pad", "hflip", "vflip"]))
    fill = draw(st.integers(0, 255)) if stage == "byte" else draw(st.sampled_from([0.0, 0.5, -1.0]))
    mode = draw(st.sampled_from(_PAD_MODES))
    if kind == "crop":
        return T.RandomCrop(draw(st.integers(4, 20)), padding=draw(st.sampled_from([None, 1, 3, (2, 1)])),
                            pad_if_needed=draw(st.booleans()), fill=fill, padding_mode=mode)
    if kind == "center":
        return T.CenterCrop(draw(st.integers(4, 22)))
    if kind == "pad":
        return T.Pad(draw(st.sampled_from([1, 2, (1, 3), (0, 1, 2, 3)])), fill=fill, padding_mode=mode)
    return (T.RandomHorizontalFlip if kind == "hflip" else T.RandomVerticalFlip)(draw(st.sampled_from([0.0, 0.5, 1.0])))


@settings(max_examples=25)
@given(data=st.data(), size=st.integers(6, 16), channels=st.sampled_from([1, 3]))
def test_fused_random_pipelines_equal_per_sample(data, size, channels):
    before = data.draw(st.lists(_geometric("byte"), max_size=3))
    after = data.draw(st.lists(_geometric("float"), max_size=2))
    normalize = [T.Normalize([0.3] * channels, [0.7] * channels)] if data.draw(st.booleans()) else []
    transform = T.Compose(before + [T.ToTensor()] + normalize + after)
    pipeline = _fusion.plan(transform, size, size, channels)
    images = np.random.default_rng(size).integers(0, 256, (3, size, size, channels), dtype=np.uint8)
    fc.manual_seed(5)
    try:
        expect = [transform(Image.fromarray(img[..., 0] if channels == 1 else img)).numpy() for img in images]
    except (ValueError, TypeError):
        assert pipeline is None  # what the per-sample path refuses is never fused
        return
    if pipeline is None:
        return  # e.g. a reflect pad larger than the image (numpy pads it, torch refuses)
    fc.manual_seed(5)
    batch = pipeline(images, get_generator())
    for k in range(3):
        np.testing.assert_array_equal(batch[k], expect[k])
