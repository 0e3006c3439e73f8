"""fastconv.backends.deterministic: the same bits at any thread count and in every run."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv._kernels import _omp
from fastconv.nn import functional as F


@pytest.fixture
def restore():
    """Thread count, governor and mode restored after the test; teams exactly as requested."""
    threads, adaptive, mode = fc.get_num_threads(), _omp.set_adaptive(False), fc.backends.deterministic
    yield
    fc.backends.deterministic = mode
    _omp.set_adaptive(adaptive)
    fc.set_num_threads(threads)


def _network():
    """Convolutions that take five different paths at batch 16 (on AVX2/AVX-512 CPUs, by the
    planner's heuristic, which deterministic mode uses: implicit GEMM for 3→16, the
    output-channel-vectorized loops for 16→32, Winograd for 32→32, im2col + GEMM for the grouped
    one, the depthwise loops), batch norm, max and average pooling, linear layers."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=2),
        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, 10))


def _train(threads: int, steps: int = 20):
    """``steps`` steps of SGD with momentum (convolutions) and Adam (the rest) from fixed weights
    and data at ``threads`` threads; returns every weight, buffer and optimizer state."""
    fc.set_num_threads(threads)
    assert _omp.team_size() == threads  # the regions really run this many threads
    fc.manual_seed(0)
    model = _network()
    convs = [p for m in model if isinstance(m, nn.Conv2d) for p in m.parameters()]
    rest = [p for m in model if not isinstance(m, nn.Conv2d) for p in m.parameters()]
    sgd = fc.optim.SGD(convs, lr=0.05, momentum=0.9)
    adam = fc.optim.Adam(rest, lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = fc.tensor(rng.standard_normal((16, 3, 24, 24)).astype(np.float32))
        y = rng.integers(0, 10, size=16)
        loss = F.cross_entropy(model(x), y)
        sgd.zero_grad()
        adam.zero_grad()
        loss.backward()
        sgd.step()
        adam.step()
    state = {f"model/{k}": np.array(v) for k, v in model.state_dict().items()}
    for name, opt in (("sgd", sgd), ("adam", adam)):
        for i, per_param in opt.state_dict()["state"].items():
            for k, v in per_param.items():
                state[f"{name}/{i}/{k}"] = np.array(v)
    return state


@pytest.mark.skipif(not _omp.openmp_enabled(), reason="kernels built without OpenMP")
def test_training_is_bit_identical_at_one_and_two_threads_in_deterministic_mode(restore):
    fc.backends.deterministic = True
    one = _train(1)
    two = _train(2)
    again = _train(2)
    assert one.keys() == two.keys() and len(one) > 20
    differing = [k for k in one if one[k].tobytes() != two[k].tobytes()]
    assert not differing, differing
    assert all(two[k].tobytes() == again[k].tobytes() for k in two)
    assert np.isfinite(one["model/0.weight"]).all()


def test_switch_is_a_plain_attribute_that_changes_the_plans(restore):
    fc.backends.deterministic = False
    fc.set_num_threads(1)
    assert fc.backends.deterministic is False and _omp.get_max_threads() == 1
    fc.backends.deterministic = True
    from fastconv.backends import _determinism

    assert fc.backends.deterministic is True
    assert _omp.get_max_threads() == _determinism.PARTITIONS and fc.get_num_threads() == 1
    fc.set_num_threads(2)
    assert _omp.get_max_threads() == _determinism.PARTITIONS
    fc.backends.deterministic = False
    assert _omp.get_max_threads() == 2


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_switch_rejects_non_booleans(restore, bad):
    with pytest.raises(TypeError, match="fastconv.backends.deterministic: expected True or False"):
        fc.backends.deterministic = bad
