"""fastconv.vision.utils (make_grid, save_image) against torchvision, and the vision package without
Pillow (ndarray images, matplotlib for PNGs, ImportErrors naming the extra)."""
import io
import os
import sys

import numpy as np
import pytest

import fastconv as fc
import fastconv.vision.transforms as T
from fastconv.vision import datasets, utils

from _torchvision import import_torchvision

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def tvu():
    import_torchvision()
    import torchvision.utils as tvu
    return tvu


def _batch(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("kwargs", [dict(), dict(nrow=2, padding=3, pad_value=0.5), dict(normalize=True),
                                    dict(normalize=True, value_range=(-1.0, 1.0)), dict(normalize=True, scale_each=True),
                                    dict(nrow=10, padding=0)])
def test_make_grid_matches_torchvision(rng, torch, tvu, kwargs):
    for shape in ((5, 3, 6, 7), (4, 1, 5, 5), (1, 3, 4, 4), (3, 8, 9), (1, 8, 9), (8, 9)):
        a = _batch(rng, shape)
        ours = utils.make_grid(fc.tensor(a), **kwargs)
        ref = tvu.make_grid(torch.from_numpy(a.copy()), **kwargs)
        assert ours.shape == tuple(ref.shape)
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
    images = [fc.tensor(_batch(rng, (3, 4, 5))) for _ in range(3)]
    np.testing.assert_allclose(utils.make_grid(images, **kwargs).numpy(),
                               tvu.make_grid([torch.from_numpy(t.numpy().copy()) for t in images], **kwargs).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_make_grid_bad_arguments():
    with pytest.raises(TypeError, match="tensor or list of tensors expected"):
        utils.make_grid(np.zeros((2, 3, 4, 4)))
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        utils.make_grid(fc.zeros(2, 3, 4, 4), normalize=True, value_range=[0, 1])
    with pytest.raises(ValueError, match="nrow"):
        utils.make_grid(fc.zeros(2, 3, 4, 4), nrow=0)


def test_save_image_matches_torchvision(tmp_path, rng, torch, tvu):
    a = rng.random((6, 3, 8, 9)).astype(np.float32) * 1.2 - 0.1
    utils.save_image(fc.tensor(a), tmp_path / "ours.png", nrow=3)
    tvu.save_image(torch.from_numpy(a), str(tmp_path / "theirs.png"), nrow=3)
    ours, theirs = Image.open(tmp_path / "ours.png"), Image.open(tmp_path / "theirs.png")
    assert ours.mode == theirs.mode and ours.size == theirs.size
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    buffer = io.BytesIO()
    utils.save_image(fc.tensor(a[0]), buffer, format="PNG")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))),
                                  np.asarray(Image.open(tmp_path / "ours.png"))[2:10, 2:11])
    assert sorted(os.listdir(tmp_path)) == ["ours.png", "theirs.png"]  # no temporaries left


def test_save_image_errors_and_atomicity(tmp_path, rng, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        utils.save_image(fc.zeros(3, 4, 4), tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="cannot tell the image format"):
        utils.save_image(fc.zeros(3, 4, 4), tmp_path / "noext")
    target = tmp_path / "keep.png"
    target.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        utils.save_image(fc.zeros(3, 4, 4), target)
    assert target.read_bytes() == b"previous" and sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_save_image_without_pillow_uses_matplotlib(tmp_path, rng, monkeypatch):
    pytest.importorskip("matplotlib")
    a = rng.random((2, 3, 5, 6)).astype(np.float32)
    utils.save_image(fc.tensor(a), tmp_path / "pil.png")
    monkeypatch.setattr(utils, "pil_available", lambda: False)
    utils.save_image(fc.tensor(a), tmp_path / "mpl.png")
    with_mpl = np.asarray(Image.open(tmp_path / "mpl.png"))
    np.testing.assert_array_equal(with_mpl[..., :3], np.asarray(Image.open(tmp_path / "pil.png")))


def test_datasets_without_pillow_give_ndarrays(tmp_path, rng, monkeypatch):
    from fastconv.vision.datasets import _array_images, fakedata
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(f"c{k}" for k in range(10)))
    pipeline = T.Compose([T.RandomCrop(30, padding=2), T.RandomHorizontalFlip(), T.ToTensor()])
    with_pil = datasets.CIFAR10(tmp_path, transform=pipeline)
    fc.manual_seed(3)
    expect = [with_pil[i][0].numpy() for i in range(5)]
    monkeypatch.setattr(_array_images, "pil_available", lambda: False)
    monkeypatch.setattr(fakedata, "pil_available", lambda: False)
    plain = datasets.CIFAR10(tmp_path)
    img, target = plain[3]
    assert isinstance(img, np.ndarray) and img.shape == (32, 32, 3)
    np.testing.assert_array_equal(img, plain.data[3])
    fc.manual_seed(3)
    for i in range(5):
        np.testing.assert_array_equal(datasets.CIFAR10(tmp_path, transform=pipeline)[i][0].numpy(), expect[i])
    assert isinstance(datasets.FakeData(2, (1, 4, 5))[0][0], np.ndarray)


def test_missing_pillow_is_an_import_error_naming_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (3, 3)).save(tmp_path / "a" / "x.png")
    ds = datasets.ImageFolder(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r'fastconv\[vision\]'):
        ds[0]
    with pytest.raises(ImportError, match=r'fastconv\[vision\]'):
        T.ToPILImage()(fc.zeros(3, 2, 2))
