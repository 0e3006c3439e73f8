"""Shared test settings: hypothesis profiles (bounded in CI) and common fixtures."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Kernel regions run the teams the thread count asks for, however busy the machine is: the load
# governor (docs/design.md §2) would otherwise run them on one thread on a busy CI runner, and
# the tests would never exercise two threads at once.
os.environ.setdefault("FASTCONV_ADAPTIVE_THREADS", "0")

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def torch():
    """PyTorch for cross-checks; the test is skipped when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(autouse=True)
def conv_planner_heuristic():
    """Tests see the convolution planner's heuristic (deterministic path choices); the planner's
    own tests turn measuring back on."""
    from fastconv.nn.functional.conv import planner

    previous = planner.settings.benchmark
    planner.settings.benchmark = False
    yield
    planner.settings.benchmark = previous
