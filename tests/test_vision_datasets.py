"""fastconv.vision.datasets on small files made here (IDX gz/raw, CIFAR python and binary batches,
an ImageFolder of PNGs) and on the bundled MNIST, against torchvision reading the same files;
malformed and malicious files; the fused batch path against the per-sample path."""
import gzip
import os
import pickle

import numpy as np
import pytest

import fastconv as fc
import fastconv.vision.transforms as T
from fastconv.data.idx import write_idx
from fastconv.utils.data import DataLoader, Subset, default_collate
from fastconv.utils.data.collate import PrestackedBatch
from fastconv.vision import datasets

from _torchvision import import_torchvision

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def tvd():
    import_torchvision()
    import torchvision.datasets as tvd
    return tvd


def _mnist_files(folder, rng, n=7, gz=False, prefix="train", h=28, w=28, classes=10):
    os.makedirs(folder, exist_ok=True)
    images = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), images)
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
    return images, labels


# ---- MNIST family -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "KMNIST"])
def test_mnist_family_matches_torchvision(tmp_path, rng, tvd, name):
    raw = tmp_path / name / "raw"
    images, labels = _mnist_files(raw, rng, prefix="train")
    _mnist_files(raw, rng, prefix="t10k", n=4)
    ours, ref = getattr(datasets, name)(tmp_path), getattr(tvd, name)(str(tmp_path))
    assert isinstance(ours.data, fc.Tensor) and ours.data.dtype == np.uint8
    np.testing.assert_array_equal(ours.data.numpy(), ref.data.numpy())
    np.testing.assert_array_equal(ours.targets.numpy(), ref.targets.numpy())
    assert ours.targets.dtype == np.int64 and len(ours) == len(ref) == 7
    assert ours.classes == ref.classes and ours.class_to_idx == ref.class_to_idx
    for i in (0, 3, -1):
        (img, target), (rimg, rtarget) = ours[i], ref[i]
        assert img.mode == rimg.mode == "L" and target == rtarget and isinstance(target, int)
        np.testing.assert_array_equal(np.asarray(img), np.asarray(rimg))
    assert repr(ours) == repr(ref).replace(str(tmp_path), str(tmp_path))
    test = getattr(datasets, name)(tmp_path, train=False, transform=T.ToTensor(), target_transform=lambda t: t + 100)
    rtest = getattr(tvd, name)(str(tmp_path), train=False)
    x, y = test[1]
    assert x.shape == (1, 28, 28) and y == rtest[1][1] + 100
    assert "Split: Test" in repr(test) and "Transform: ToTensor()" in repr(test)


def test_mnist_reads_gzipped_files(tmp_path, rng):
    images, labels = _mnist_files(tmp_path / "MNIST" / "raw", rng, gz=True)
    ds = datasets.MNIST(tmp_path)
    np.testing.assert_array_equal(ds.data.numpy(), images)
    assert [ds[i][1] for i in range(len(ds))] == labels.tolist()


def test_mnist_falls_back_to_the_bundled_copy_only_with_download(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="train-images-idx3-ubyte.*download=True"):
        datasets.MNIST(tmp_path)
    train = datasets.MNIST(tmp_path, download=True)
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "bundled" in message and "nothing is downloaded" in message
    test = datasets.MNIST(tmp_path, train=False, download=True)
    assert len(train) == 5000 and len(test) == 10000
    bundled = fc.data.MNIST(split="test")
    np.testing.assert_array_equal(test.data.numpy(), (bundled.data[:, 0] * 255).round().astype(np.uint8))
    np.testing.assert_array_equal(test.targets.numpy(), bundled.targets)
    with pytest.raises(RuntimeError, match=r"does not download.*FashionMNIST[/\\]raw[/\\]train-images-idx3-ubyte"):
        datasets.FashionMNIST(tmp_path, download=True)
    assert not (tmp_path / "MNIST").exists()  # nothing was written


def test_mnist_malformed_files_name_the_file(tmp_path, rng):
    raw = tmp_path / "MNIST" / "raw"
    _mnist_files(raw, rng)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated"):
        datasets.MNIST(tmp_path)
    _mnist_files(raw, rng, n=5)
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="5 images but .*train-labels-idx1-ubyte has 4 labels"):
        datasets.MNIST(tmp_path)
    write_idx(raw / "train-labels-idx1-ubyte", np.array([0, 1, 2, 3, 12], np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), found 12"):
        datasets.MNIST(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(5)))
    os.rename(raw / "train-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte.gz.bak")
    with pytest.raises(RuntimeError, match="not found"):
        datasets.MNIST(tmp_path)


# ---- CIFAR ----------------------------------------------------------------------------------------------------
def _cifar_python(root, rng, hundred=False, protocol=2, per_file=6):
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    n_classes = 100 if hundred else 10
    files = ["train", "test"] if hundred else [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    content = {}
    for name in files:
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, n_classes, per_file).tolist()
        entry = {"batch_label": f"batch {name}", "data": data, "filenames": [f"img{k}.png" for k in range(per_file)]}
        if hundred:
            entry.update(fine_labels=labels, coarse_labels=[v // 5 for v in labels])
        else:
            entry["labels"] = labels
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
        content[name] = (data, labels)
    names = [f"class{k}" for k in range(n_classes)]
    meta = {"fine_label_names": names, "coarse_label_names": names[:20]} if hundred else \
        {"label_names": names, "num_cases_per_batch": per_file}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=protocol))
    return content, names


def _cifar_binary(root, content, names, hundred=False):
    folder = root / ("cifar-100-binary" if hundred else "cifar-10-batches-bin")
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in content.items():
        head = [[v // 5, v] for v in labels] if hundred else [[v] for v in labels]
        records = np.concatenate([np.asarray(head, np.uint8), data], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    (folder / ("fine_label_names.txt" if hundred else "batches.meta.txt")).write_text("\n".join(names) + "\n\n")


@pytest.mark.parametrize("hundred", [False, True])
@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_python_batches_match_torchvision(tmp_path, rng, tvd, hundred, protocol, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))  # our own files
    _cifar_python(tmp_path, rng, hundred, protocol)
    cls = "CIFAR100" if hundred else "CIFAR10"
    for train in (True, False):
        ours, ref = getattr(datasets, cls)(tmp_path, train=train), getattr(tvd, cls)(str(tmp_path), train=train)
        np.testing.assert_array_equal(ours.data, ref.data)
        assert ours.data.shape == ref.data.shape and ours.data.dtype == np.uint8
        assert ours.targets == ref.targets and isinstance(ours.targets, list)
        assert ours.classes == ref.classes and ours.class_to_idx == ref.class_to_idx
        (img, target), (rimg, rtarget) = ours[2], ref[2]
        assert img.mode == rimg.mode == "RGB" and target == rtarget
        np.testing.assert_array_equal(np.asarray(img), np.asarray(rimg))
        assert repr(ours) == repr(ref)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_binary_version_equals_python_version(tmp_path, rng, hundred):
    content, names = _cifar_python(tmp_path / "py", rng, hundred)
    _cifar_binary(tmp_path / "bin", content, names, hundred)
    cls = datasets.CIFAR100 if hundred else datasets.CIFAR10
    for train in (True, False):
        a, b = cls(tmp_path / "py", train=train), cls(tmp_path / "bin", train=train)
        np.testing.assert_array_equal(a.data, b.data)
        assert a.targets == b.targets and a.classes == b.classes


def test_cifar_missing_files_name_what_was_looked_for(tmp_path):
    with pytest.raises(RuntimeError, match=r"dataset not found.*data_batch_1.*data_batch_1\.bin"):
        datasets.CIFAR10(tmp_path)
    with pytest.raises(RuntimeError, match=r"does not download.*cifar-100-python[/\\]train"):
        datasets.CIFAR100(tmp_path, download=True)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(RuntimeError, match=r"dataset file not found: .*data_batch_1"):
        datasets.CIFAR10(tmp_path)


class _Payload:
    """Pickles as a call of ``os.system`` that would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _ObjectArrayPayload:
    def __reduce__(self):
        return np.array, ([1, "x"], object)


def test_malicious_cifar_batch_never_runs_its_payload(tmp_path, rng):
    content, _ = _cifar_python(tmp_path, rng)
    folder = tmp_path / "cifar-10-batches-py"
    marker = tmp_path / "pwned"
    data, labels = content["data_batch_3"]
    for evil in ({"data": data, "labels": labels, "x": _Payload(marker)},
                 {"data": _Payload(marker), "labels": labels},
                 [_Payload(marker)]):
        (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
        with pytest.raises(ValueError, match=r"data_batch_3: refusing the pickled global (posix|nt|os)\.system"):
            datasets.CIFAR10(tmp_path)
        assert not marker.exists()
    # the harmless-looking stand-ins refuse what they do not build
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.array([1, "x"], dtype=object), "labels": []}, 2))
    with pytest.raises(ValueError, match="data_batch_3: .*not a plain numeric dtype"):
        datasets.CIFAR10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": _ObjectArrayPayload()}, 2))
    with pytest.raises(ValueError, match="data_batch_3: refusing the pickled global numpy"):
        datasets.CIFAR10(tmp_path)
    assert not marker.exists()


def test_malformed_cifar_files_name_the_file(tmp_path, rng):
    content, names = _cifar_python(tmp_path, rng)
    folder = tmp_path / "cifar-10-batches-py"
    path = folder / "data_batch_2"
    good = path.read_bytes()
    data, labels = content["data_batch_2"]
    cases = [
        (good[: len(good) // 2], "data_batch_2: not a valid dataset pickle"),
        (b"not a pickle at all", "data_batch_2: not a valid dataset pickle"),
        (pickle.dumps({"data": data[:, :100], "labels": labels}, 2), r"data_batch_2: expected 'data' of shape \(N, 3072\)"),
        (pickle.dumps({"data": data.astype(np.int16), "labels": labels}, 2), "data_batch_2: expected 'data' as a uint8"),
        (pickle.dumps({"data": data, "labels": labels[:-1]}, 2), "data_batch_2: 6 images but 5 labels"),
        (pickle.dumps({"data": data, "labels": [11] + labels[1:]}, 2), r"data_batch_2: labels .* \[0, 10\)"),
        (pickle.dumps({"labels": labels}, 2), "data_batch_2: no 'data' entry"),
        (pickle.dumps([data, labels], 2), "data_batch_2: expected a pickled dict"),
    ]
    for raw, message in cases:
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=message):
            datasets.CIFAR10(tmp_path)
    path.write_bytes(good)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names[:3]}, 2))
    with pytest.raises(ValueError, match="batches.meta: expected 'label_names' as a list of 10 strings"):
        datasets.CIFAR10(tmp_path)
    _cifar_binary(tmp_path / "b", content, names)
    binary = tmp_path / "b" / "cifar-10-batches-bin" / "test_batch.bin"
    binary.write_bytes(binary.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"test_batch.bin: expected whole records of 3073 bytes"):
        datasets.CIFAR10(tmp_path / "b", train=False)


# ---- folders ------------------------------------------------------------------------------------------------
def _image_folder(root, rng):
    layout = {"cat": ["a.png", "b.PNG", "sub/c.png"], "dog": ["x.png", "notes.txt"], "emu": []}
    for cls, names in layout.items():
        (root / cls).mkdir(parents=True)
        for k, name in enumerate(names):
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".txt"):
                path.write_text("not an image")
                continue
            mode = ["RGB", "L", "RGBA"][k % 3]
            array = rng.integers(0, 256, (9, 7, {"RGB": 3, "L": 1, "RGBA": 4}[mode]), dtype=np.uint8)
            Image.fromarray(array[..., 0] if mode == "L" else array, mode=None).save(path, format="PNG")
    return layout


def test_image_folder_matches_torchvision(tmp_path, rng, tvd):
    _image_folder(tmp_path, rng)
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes emu"):
        datasets.ImageFolder(tmp_path)
    ours = datasets.ImageFolder(tmp_path, allow_empty=True)
    ref = tvd.ImageFolder(str(tmp_path), allow_empty=True)
    assert ours.classes == ref.classes == ["cat", "dog", "emu"]
    assert ours.class_to_idx == ref.class_to_idx and ours.targets == ref.targets
    assert [os.path.relpath(p, tmp_path) for p, _ in ours.samples] == \
        [os.path.relpath(p, tmp_path) for p, _ in ref.samples] and ours.imgs == ours.samples
    for i in range(len(ours)):
        (img, target), (rimg, rtarget) = ours[i], ref[i]
        assert img.mode == rimg.mode == "RGB" and target == rtarget
        np.testing.assert_array_equal(np.asarray(img), np.asarray(rimg))
    assert repr(ours) == repr(ref)
    tensors = datasets.ImageFolder(tmp_path, transform=T.Compose([T.Resize((4, 5)), T.ToTensor()]), allow_empty=True)
    assert tensors[0][0].shape == (3, 4, 5)


def test_dataset_folder_loader_extensions_and_validity(tmp_path, rng):
    _image_folder(tmp_path, rng)
    texts = datasets.DatasetFolder(tmp_path, loader=lambda p: open(p).read(), extensions=(".txt",), allow_empty=True)
    assert len(texts) == 1 and texts[0] == ("not an image", 1)
    only_a = datasets.DatasetFolder(tmp_path, loader=os.path.basename, is_valid_file=lambda p: p.endswith("a.png"),
                                    allow_empty=True)
    assert [s for s, _ in only_a] == ["a.png"]
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        datasets.DatasetFolder(tmp_path, loader=os.path.basename, extensions=(".png",), is_valid_file=bool)
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        datasets.ImageFolder(tmp_path / "cat" / "sub")

    class OnlyDogs(datasets.ImageFolder):
        def find_classes(self, directory):
            return ["dog"], {"dog": 0}
    assert len(OnlyDogs(tmp_path)) == 1


def test_undecodable_image_names_the_file(tmp_path, rng):
    _image_folder(tmp_path, rng)
    (tmp_path / "dog" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = datasets.ImageFolder(tmp_path, allow_empty=True)
    with pytest.raises(ValueError, match=r"cannot decode image .*x\.png"):
        ds[ds.targets.index(1)]


# ---- FakeData -----------------------------------------------------------------------------------------------
def test_fakedata_is_deterministic_per_index_like_torchvision(tvd):
    ours, ref = datasets.FakeData(size=5, image_size=(3, 12, 10), num_classes=4), tvd.FakeData(5, (3, 12, 10), 4)
    for i in range(5):
        (img, target), (rimg, _) = ours[i], ref[i]
        assert img.mode == rimg.mode and img.size == rimg.size and 0 <= target < 4 and isinstance(target, int)
        np.testing.assert_array_equal(np.asarray(img), np.asarray(ours[i][0]))
    assert not np.array_equal(np.asarray(ours[0][0]), np.asarray(ours[1][0]))
    assert datasets.FakeData(3, (1, 4, 4))[0][0].mode == "L"
    assert not np.array_equal(np.asarray(datasets.FakeData(3, random_offset=1)[0][0]), np.asarray(ours[0][0])[:0])
    with pytest.raises(IndexError):
        ours[5]
    with pytest.raises(ValueError, match="image_size"):
        datasets.FakeData(image_size=(2, 4, 4))


# ---- the batched path through __getitems__ ----------------------------------------------------------------------
CIFAR_TRAIN = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                         T.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])


def test_cifar_getitems_is_fused_and_equals_per_sample(tmp_path, rng):
    _cifar_python(tmp_path, rng, per_file=8)
    ds = datasets.CIFAR10(tmp_path, transform=CIFAR_TRAIN, target_transform=lambda t: t * 2)
    indices = [5, 0, 17, 39, 3]
    fc.manual_seed(4)
    batch = ds.__getitems__(indices)
    assert isinstance(batch, PrestackedBatch)
    fc.manual_seed(4)
    expect = [ds[i] for i in indices]
    for (x, y), (ex, ey) in zip(batch, expect):
        np.testing.assert_array_equal(x.numpy(), ex.numpy())
        assert y == ey
    xs, ys = default_collate(batch)
    ex, ey = default_collate(expect)
    np.testing.assert_array_equal(xs.numpy(), ex.numpy())
    np.testing.assert_array_equal(ys.numpy(), ey.numpy())


def test_dataloader_batches_equal_the_per_sample_path(tmp_path, rng):
    _cifar_python(tmp_path, rng, per_file=8)
    ds = datasets.CIFAR10(tmp_path, transform=CIFAR_TRAIN)

    class PerSample(datasets.CIFAR10):
        def __getitem__(self, index):  # overriding __getitem__ turns the fused path off
            return super().__getitem__(index)

    slow = PerSample(tmp_path, transform=CIFAR_TRAIN)
    assert slow._batch_pipeline() is None and ds._batch_pipeline() is not None
    for loader_ds in (ds, Subset(ds, list(range(0, 40, 3)))):
        other = slow if loader_ds is ds else Subset(slow, list(range(0, 40, 3)))
        fc.manual_seed(9)
        fast = [(x.numpy().copy(), y.numpy().copy()) for x, y in DataLoader(loader_ds, batch_size=6, shuffle=True)]
        fc.manual_seed(9)
        ref = [(x.numpy(), y.numpy()) for x, y in DataLoader(other, batch_size=6, shuffle=True)]
        assert len(fast) == len(ref)
        for (a, b), (c, d) in zip(fast, ref):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_bundled_mnist_through_a_pytorch_style_pipeline(tmp_path, capsys):
    ds = datasets.MNIST(tmp_path, train=False, download=True,
                        transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    capsys.readouterr()
    x, y = next(iter(DataLoader(ds, batch_size=64)))
    assert x.shape == (64, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    raw = ds.data.numpy()[:64].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(x.numpy()[:, 0], (raw - np.float32(0.1307)) / np.float32(0.3081))
    np.testing.assert_array_equal(y.numpy(), ds.targets.numpy()[:64])
