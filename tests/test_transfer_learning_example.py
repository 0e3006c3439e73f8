"""examples/transfer_learning.py runs end to end on a torchvision ResNet-18 checkpoint made by torch:
.pth -> fastconv ResNet-18 -> 512-d codes -> linear classifier -> fine-tuned layer4 -> ONNX Runtime."""
import importlib.util
import os
import sys
import types

import numpy as np
import pytest

import fastconv as fc

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "transfer_learning.py")


def _example():
    spec = importlib.util.spec_from_file_location("transfer_learning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_end_to_end(torch, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    torchvision = pytest.importorskip("torchvision")
    example = _example()
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")

    model = example.load_pretrained(str(tmp_path / "resnet18.pth"))  # the torchvision checkpoint, read by fc.load
    images, labels = example.make_textures(3, size=32, seed=0)
    assert images.shape == (12, 3, 32, 32) and sorted(set(labels.tolist())) == [0, 1, 2, 3]
    with torch.no_grad():
        net.fc = torch.nn.Identity()
        ref = net.eval()(torch.from_numpy(images)).numpy()
    codes = example.cnn_codes(model, images)
    np.testing.assert_allclose(codes, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert isinstance(model.fc, fc.nn.Linear)  # the classifier is put back after extracting codes

    result = example.main(["--checkpoint", str(tmp_path / "resnet18.pth"), "--out", str(tmp_path / "run"),
                           "--train-per-class", "6", "--test-per-class", "3", "--size", "32", "--epochs", "2"])
    out = capsys.readouterr().out
    assert all(f"{step}. " in out for step in range(1, 6))
    assert result["codes_dim"] == 512
    assert np.isfinite(result["first_loss"]) and result["last_loss"] < result["first_loss"]
    assert result["onnx_relative_difference"] < 1e-5
    assert os.path.exists(tmp_path / "run" / "resnet18_transfer.onnx")


def test_fine_tuning_trains_only_the_last_stage_and_the_head():
    example = _example()
    model = fc.vision.models.resnet18()
    model.fc = fc.nn.Linear(512, 4)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    images, labels = example.make_textures(2, size=32, seed=0)
    example.fine_tune(model, images, labels, epochs=1, batch_size=8)
    after = model.state_dict()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(k.startswith(("layer4.", "fc.")) for k in changed), sorted(changed)[:5]
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again afterwards
