"""The command line: help, one-line errors, a real (tiny) train -> eval -> resume round trip."""
import json
import os
import sys

import pytest
from _subprocess import run

from fastconv import cli

TINY_ARCH = "INPUT -> POOL(avg, k=4, s=4) -> FC"


def run_cli(*args):
    return run([sys.executable, "-m", "fastconv", *args])


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["eval"], ["summary"], ["profile"], ["viz"],
                                     ["config"]])
def test_help_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: fastconv" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["train", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
    (["train", "--lr", "fast"], "--lr: expected a positive number, got 'fast'"),
    (["summary", "--arch", "INPUT -> FC", "--input", "1xAx2"], "expected a shape like 1x28x28"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_blueprint_is_reported_without_traceback(tmp_path):
    proc = run_cli("train", "--arch", "INPUT -> CONV(k=) -> FC", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "fastconv train: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_train_eval_resume_round_trip(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--arch", TINY_ARCH, "--epochs", "1", "--batch-size", "256", "--lr", "0.1",
                   "--out", str(out), "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == TINY_ARCH and len(metrics["history"]) == 1
    assert 0.5 < metrics["test_accuracy"] <= 1.0  # a linear model on 7x7 MNIST thumbnails
    assert {"config.json", "model.npz", "checkpoint.npz", "metrics.json"} <= set(os.listdir(out))

    proc = run_cli("eval", "--checkpoint", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy {metrics['test_accuracy']:.4f}" in proc.stdout

    proc = run_cli("train", "--arch", TINY_ARCH, "--epochs", "2", "--batch-size", "256", "--lr", "0.1",
                   "--out", str(out), "--threads", "1", "--resume")
    assert proc.returncode == 0, proc.stderr
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == metrics["history"][0]  # the first epoch came from the checkpoint


def test_eval_of_missing_checkpoint_is_one_line(tmp_path):
    proc = run_cli("eval", "--checkpoint", str(tmp_path / "nope.npz"))
    assert proc.returncode == 2 and "no such checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_profile_command_estimates_and_measures():
    proc = run_cli("profile", "--arch", "INPUT -> CONV(8, k=3, p=same) -> RELU -> POOL -> FC", "--input", "1x16x16",
                   "--batch-size", "8", "--optimizer", "sgd-momentum", "--budget", "64MB", "--measure")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # 8 filters of 1x3x3 + 8 biases, then 8*8*8 -> 10 linear
    assert f"{8 * 9 + 8 + 8 * 8 * 8 * 10 + 10:,}" in out
    assert "largest batch within 64MB (train):" in out and "Measured training step" in out
    pct = float(out.rsplit("(", 1)[1].split("%")[0])
    assert abs(pct) < 25


def test_summary_command(capsys):
    assert cli.main(["summary", "--arch", "INPUT -> FC", "--input", "1x4x4", "--num-classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "Linear(in_features=16, out_features=3" in out and f"{16 * 3 + 3}" in out


def test_summary_and_profile_of_zoo_models(capsys):
    """--model takes a fastconv.vision.models name; --input and --num-classes default to the model's."""
    assert cli.main(["summary", "--model", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "CifarResNet: input [3, 32, 32]" in out and "Total params: 269,722" in out
    assert cli.main(["summary", "--model", "resnet18", "--num-classes", "7"]) == 0
    out = capsys.readouterr().out
    assert "input [3, 224, 224]" in out and "Linear(in_features=512, out_features=7" in out
    assert cli.main(["profile", "--model", "lenet", "--batch-size", "4", "--measure"]) == 0
    out = capsys.readouterr().out
    assert "[4, 10]" in out and "Measured training step" in out
    assert abs(float(out.rsplit("(", 1)[1].split("%")[0])) < 10
    assert cli.main(["summary", "--model", "resnet9"]) == 2
    assert "unknown model 'resnet9'" in capsys.readouterr().err
    assert cli.main(["summary", "--arch", "INPUT -> FC"]) == 2
    assert "--input is required with --arch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["summary", "--arch", "INPUT -> FC", "--model", "lenet"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_demo_end_to_end_one_epoch(tmp_path):
    """The README's main job, shortened to one epoch: summary, progress, metrics, figures."""
    out = tmp_path / "demo"
    proc = run_cli("demo", "--epochs", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Peak, training step" in proc.stdout and "test accuracy" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9 and metrics["train_seconds"] > 0 and len(metrics["history"]) == 1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for name in ("training_curve.png", "filters.png", "saliency.png", "occlusion.png"):
        assert (out / name).stat().st_size > 1000, name
