"""Ctrl-C during fit: whatever the sequence of SIGINTs, the checkpoint left behind is either a
consistent one or the previous one, and resuming ends bit-identical to an uninterrupted run.

In-process tests place the second Ctrl-C at chosen moments (inside a step, inside the checkpoint
write); the subprocess test sends two or three real SIGINTs at seeded random moments.
"""
import os
import random
import select
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _subprocess import NEUTRAL_CWD, child_env

import fastconv as fc
from fastconv import data, nn, train
from fastconv.nn import functional as F

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                                reason="POSIX signals")


def setup(seed=0):
    fc.manual_seed(seed)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 0, :, :4].mean(axis=(1, 2)) > 0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 4))
    opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = fc.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16, shuffle=True, seed=3,
                             transform=data.RandomCrop(8, padding=1))
    return model, opt, sched, loader


def weights(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def reference():
    model, opt, sched, loader = setup()
    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, verbose=False)
    return weights(model)


def resume_and_compare(folder, reference):
    # with a checkpoint, start from other weights: the checkpoint must restore everything; without
    # one the rerun starts over, as the same script would
    has_checkpoint = (folder / train.CHECKPOINT_NAME).exists()
    model, opt, sched, loader = setup(seed=99 if has_checkpoint else 0)
    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(folder), resume=True,
              verbose=False)
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, reference[k], err_msg=k)


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # the Python handler runs before the next bytecode


class CtrlCAt(train.Callback):
    """Presses Ctrl-C ``times`` times at the end of global step ``step``."""

    def __init__(self, step, times):
        self.step, self.times, self.seen = step, times, 0

    def on_batch_end(self, epoch, batch, loss, model):
        self.seen += 1
        if self.seen == self.step:
            for _ in range(self.times):
                ctrl_c()


def checkpoint_bytes(folder):
    path = folder / train.CHECKPOINT_NAME
    return path.read_bytes() if path.exists() else None


def test_first_ctrl_c_saves_a_consistent_checkpoint(tmp_path, reference):
    model, opt, sched, loader = setup()
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, callbacks=[CtrlCAt(8, 1)])
    state = fc.load(tmp_path / train.CHECKPOINT_NAME)
    assert (state["epoch"], state["batch"]) == (1, 2)  # 6 batches per epoch: step 8 is epoch 1, batch 2
    assert state["loader"] == {"seed": 3, "epoch": 1, "batches_done": 2}
    assert state["partial"]["count"] == 2 * 16
    resume_and_compare(tmp_path, reference)


def test_second_ctrl_c_inside_a_step_saves_nothing(tmp_path, reference):
    """The issue's case: the second Ctrl-C lands mid-epoch (here inside the loss of a step)."""
    model, opt, sched, loader = setup()
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        if calls["n"] == 9:  # epoch 1, batch 2, before its backward and optimizer step
            ctrl_c()
            ctrl_c()
        return F.cross_entropy(out, y)

    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, loss_fn, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path), verbose=False)
    state = fc.load(tmp_path / train.CHECKPOINT_NAME)
    assert (state["epoch"], state["batch"]) == (1, 0)  # the end-of-epoch-0 checkpoint, untouched
    assert state["loader"]["batches_done"] == 0 and state["partial"] == {}
    resume_and_compare(tmp_path, reference)


def test_second_ctrl_c_during_the_checkpoint_write_keeps_the_previous_one(tmp_path, reference, monkeypatch):
    model, opt, sched, loader = setup()
    real_write = np.lib.format.write_array
    writes = {"n": 0}

    def write_array(fp, array, *args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 3 and stop_pressed["yes"]:
            ctrl_c()  # the second Ctrl-C, halfway through writing the interrupt checkpoint
        return real_write(fp, array, *args, **kwargs)

    stop_pressed = {"yes": False}

    class FirstCtrlC(train.Callback):
        def __init__(self):
            self.seen = 0

        def on_batch_end(self, epoch, batch, loss, model):
            self.seen += 1
            if self.seen == 9:
                ctrl_c()
                stop_pressed["yes"] = True
                writes["n"] = 0

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, callbacks=[FirstCtrlC()])
    monkeypatch.undo()
    assert writes["n"] >= 3
    assert sorted(set(os.listdir(tmp_path)) - {train.PLANS_NAME}) == [train.CHECKPOINT_NAME]  # no temporary file
    state = fc.load(tmp_path / train.CHECKPOINT_NAME)
    assert (state["epoch"], state["batch"]) == (1, 0)
    resume_and_compare(tmp_path, reference)


def test_ctrl_c_twice_at_once_at_an_epoch_end(tmp_path, reference):
    """Two Ctrl-C together right after the last step of epoch 0: the second stops at once."""
    before = None
    model, opt, sched, loader = setup()
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, callbacks=[CtrlCAt(6, 2)])
    assert checkpoint_bytes(tmp_path) == before  # no checkpoint had been written yet, and none is now
    resume_and_compare(tmp_path, reference)


CHILD = textwrap.dedent('''
    """A seeded run with checkpoints: 'reference' trains without them (and keeps the convolution
    paths it measured), 'run' resumes when it can. A run starts with the reference's paths, as the
    same run would: in benchmark mode two processes may measure different, differently rounding
    paths; a resumed run must take them from its checkpoint folder."""
    import os
    import sys

    import numpy as np

    import fastconv as fc
    from fastconv import data, nn, train
    from fastconv.nn import functional as F

    mode, folder, reference_plans = sys.argv[1], sys.argv[2], sys.argv[3]
    fc.set_num_threads(1)
    if mode == "run" and not os.path.exists(os.path.join(folder, train.CHECKPOINT_NAME)):
        fc.backends.conv.load_plans(reference_plans)
    fc.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 1, 24, 24)).astype(np.float32)
    y = (x[:, 0, :12].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 0, :, :12].mean(axis=(1, 2)) > 0)
    # steps of a few milliseconds, so that a second SIGINT can land inside one
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
                          nn.Flatten(), nn.Linear(32 * 6 * 6, 4))
    opt = fc.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    sched = fc.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=8, shuffle=True, seed=3,
                             transform=data.RandomCrop(24, padding=2))


    class Ready(train.Callback):
        said = False

        def on_batch_end(self, epoch, batch, loss, model):
            if not self.said:
                self.said = True
                print("ready", flush=True)


    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, verbose=False, callbacks=[Ready()],
              checkpoint_dir=None if mode == "reference" else folder, resume=mode == "run")
    fc.save(model.state_dict(), os.path.join(folder, "final.npz"))
    if mode == "reference":
        fc.backends.conv.save_plans(reference_plans)
''')


def run_child(script, mode, folder, plans):
    return subprocess.run([sys.executable, str(script), mode, str(folder), str(plans)], env=child_env(),
                          cwd=NEUTRAL_CWD, capture_output=True, text=True, timeout=120)


def interrupted_child(script, folder, delays, plans):
    """Start a run, wait until it trains, then send SIGINT after each delay (seconds)."""
    proc = subprocess.Popen([sys.executable, str(script), "run", str(folder), str(plans)], env=child_env(),
                            cwd=NEUTRAL_CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for delay in delays:
            select.select([], [], [], delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode


@pytest.mark.parametrize("trial", range(int(os.environ.get("FASTCONV_SIGINT_TRIALS", 4))))
def test_repeated_sigint_at_random_moments_then_resume_is_bit_exact(tmp_path_factory, trial):
    folder = tmp_path_factory.mktemp(f"sigint{trial}")
    script = folder / "child.py"
    script.write_text(CHILD)
    ref_folder = tmp_path_factory.getbasetemp() / "sigint_reference"
    plans = ref_folder / "plans.json"
    if not (ref_folder / "final.npz").exists():
        ref_folder.mkdir(exist_ok=True)
        proc = run_child(script, "reference", ref_folder, plans)
        assert proc.returncode == 0, proc.stderr
    rng = random.Random(1000 + trial)
    presses = 2 if trial % 2 == 0 else 3
    # after 'ready' the run trains 47 more steps of ~2-6 ms and writes 3 checkpoints; the later
    # presses follow within a step (or a checkpoint write), or after the interrupt checkpoint
    delays = [rng.uniform(0.0, 0.25)] + [rng.uniform(0.0, 0.006) if rng.random() < 0.5 else rng.uniform(0.01, 0.08)
                                         for _ in range(presses - 1)]
    run_dir = folder / "run"
    run_dir.mkdir()
    interrupted_child(script, run_dir, delays, plans)
    proc = run_child(script, "run", run_dir, plans)  # resume (or start over when nothing was saved)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(run_dir)) == sorted(["final.npz", train.CHECKPOINT_NAME, train.PLANS_NAME])
    got, want = fc.load(run_dir / "final.npz"), fc.load(ref_folder / "final.npz")
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=f"{k} (delays {delays})")


def test_measured_convolution_paths_are_kept_beside_the_checkpoint(tmp_path, monkeypatch):
    """In benchmark mode a resumed run computes with the paths the interrupted run measured."""
    from fastconv.backends import conv as backend

    monkeypatch.setattr(backend.planner.settings, "benchmark", True)
    monkeypatch.setattr(backend.planner.settings, "deterministic", False)
    backend.clear_plans()
    model, opt, sched, loader = setup()
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, max_batches=8)
    measured = backend.planner.plans()
    assert measured and (tmp_path / train.PLANS_NAME).exists()
    backend.clear_plans()  # a new process knows nothing
    model, opt, sched, loader = setup(seed=99)
    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path), resume=True,
              verbose=False)
    sources = {(r["pass"], tuple(r["image_shape"])): r["path"] for r in backend.planner.plans()}
    assert all(sources[(r["pass"], tuple(r["image_shape"]))] == r["path"] for r in measured)
    plan = backend.plan((16, 1, 8, 8), (4, 1, 3, 3), padding=1)
    passes = {r["pass"] for r in measured if r["image_shape"] == [16, 1, 8, 8]}
    assert passes and all(plan[p][1] == "loaded" for p in passes)  # not measured again
