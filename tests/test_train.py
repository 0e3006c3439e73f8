"""fit/evaluate: history, checkpoints, bit-exact resume after an interruption, NaN stop."""
import os

import numpy as np
import pytest

import fastconv as fc
from fastconv import data, nn, train
from fastconv.nn import functional as F


def small_problem(seed=0, n=96):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 0, :, :4].mean(axis=(1, 2)) > 0)
    return data.TensorDataset(x, y)


def small_model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 4),
    )


def setup(seed=0):
    fc.manual_seed(seed)
    model = small_model()
    opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = fc.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loader = data.DataLoader(small_problem(), batch_size=16, shuffle=True, seed=3,
                             transform=data.RandomCrop(8, padding=1))
    return model, opt, sched, loader


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_fit_history_and_evaluate(tmp_path):
    model, opt, sched, loader = setup()
    val = data.DataLoader(small_problem(seed=1), batch_size=32)
    hist = train.fit(model, loader, F.cross_entropy, opt, 3, val_loader=val, scheduler=sched,
                     checkpoint_dir=str(tmp_path), verbose=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for h in hist:
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "samples_per_s"} <= set(h)
        assert 0 <= h["train_accuracy"] <= 1
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert [h["lr"] for h in hist] == pytest.approx([0.05, 0.035, 0.0245])
    res = train.evaluate(model, val, F.cross_entropy)
    assert res["loss"] == pytest.approx(hist[-1]["val_loss"]) and res["samples"] == 96
    assert os.path.exists(tmp_path / train.CHECKPOINT_NAME)


@pytest.mark.parametrize("cut", [5, 6, 13])  # mid-epoch, exactly at an epoch end, later epoch
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, cut):
    model, opt, sched, loader = setup()
    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, verbose=False)
    reference = weights(model)

    model, opt, sched, loader = setup()
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, max_batches=cut)
    # a fresh process: everything rebuilt from scratch with another seed, then resumed
    model, opt, sched, loader = setup(seed=99)
    hist = train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                     resume=True, verbose=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, reference[k], err_msg=k)


class CountingDataset:
    """A dataset that counts the samples fetched from it (no get_batch: fetched one by one)."""

    def __init__(self, inner):
        self.inner, self.fetched = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.fetched += 1
        return self.inner[i]


def test_resume_fetches_only_the_batches_left(tmp_path):
    # 96 samples in batches of 16: 6 batches per epoch; cut after 8 steps = epoch 2, batch 2
    model, opt, sched, _ = setup()
    counted = CountingDataset(small_problem())
    loader = data.DataLoader(counted, batch_size=16, shuffle=True, seed=3, transform=data.RandomCrop(8, padding=1))
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
                  verbose=False, max_batches=8)
    assert counted.fetched == 8 * 16
    model, opt, sched, _ = setup(seed=99)
    counted = CountingDataset(small_problem())
    loader = data.DataLoader(counted, batch_size=16, shuffle=True, seed=3, transform=data.RandomCrop(8, padding=1))
    train.fit(model, loader, F.cross_entropy, opt, 3, scheduler=sched, checkpoint_dir=str(tmp_path),
              resume=True, verbose=False)
    assert counted.fetched == (3 * 6 - 8) * 16


def test_resume_replays_a_plain_iterable(tmp_path):
    # a loader that is only an iterable of batches (no state): the cut epoch is replayed and skipped
    class Batches:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x) // 16

        def __iter__(self):
            return ((self.x[i:i + 16], self.y[i:i + 16]) for i in range(0, len(self.x), 16))

    ds = small_problem()
    x, y = ds.arrays

    def run(**kwargs):
        fc.manual_seed(0)
        model = small_model()
        opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        train.fit(model, Batches(x, y), F.cross_entropy, opt, 2, verbose=False, **kwargs)
        return model

    reference = weights(run())
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=str(tmp_path), max_batches=4)
    resumed = weights(run(checkpoint_dir=str(tmp_path), resume=True))
    for k, v in resumed.items():
        np.testing.assert_array_equal(v, reference[k], err_msg=k)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model, opt, sched, loader = setup()
    train.fit(model, loader, F.cross_entropy, opt, 1, checkpoint_dir=str(tmp_path), verbose=False)
    path = tmp_path / train.CHECKPOINT_NAME
    before = path.read_bytes()

    def exploding_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", exploding_write)
    with pytest.raises(OSError, match="disk full"):
        train.save_checkpoint(str(path), model, opt, epoch=5)
    assert path.read_bytes() == before
    assert sorted(set(os.listdir(tmp_path)) - {train.PLANS_NAME}) == [train.CHECKPOINT_NAME]


def test_corrupt_checkpoint_is_named(tmp_path):
    model, opt, sched, loader = setup()
    path = tmp_path / train.CHECKPOINT_NAME
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=str(path.name)):
        train.fit(model, loader, F.cross_entropy, opt, 1, checkpoint_dir=str(tmp_path), resume=True,
                  verbose=False)


def test_nan_loss_stops_with_a_clear_message():
    model, opt, sched, loader = setup()
    opt.param_groups[0]["lr"] = 1e30
    with pytest.raises(train.TrainingDiverged, match=r"loss became (nan|inf)"), np.errstate(all="ignore"):
        train.fit(model, loader, F.cross_entropy, opt, 5, verbose=False)


def test_callbacks_are_called_in_order():
    calls = []

    class Recorder(train.Callback):
        def on_train_begin(self, model):
            calls.append("begin")

        def on_epoch_end(self, epoch, logs, model):
            calls.append(("epoch", epoch, round(logs["train_loss"], 6)))

        def on_train_end(self, history, model):
            calls.append(("end", len(history)))

    model, opt, sched, loader = setup()
    hist = train.fit(model, loader, F.cross_entropy, opt, 2, callbacks=[Recorder()], verbose=False)
    assert calls == ["begin", ("epoch", 0, round(hist[0]["train_loss"], 6)),
                     ("epoch", 1, round(hist[1]["train_loss"], 6)), ("end", 2)]


def test_bad_arguments():
    model, opt, sched, loader = setup()
    with pytest.raises(ValueError, match="fit: expected epochs >= 1"):
        train.fit(model, loader, F.cross_entropy, opt, 0)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        train.fit(model, loader, F.cross_entropy, opt, 1, resume=True)
