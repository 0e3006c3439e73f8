"""The C allocator's policy for large arrays (fastconv/_kernels/_malloc_policy.py): set by
fastconv on glibc unless the user chose one or turned it off, and what it is for: the pages of
freed activations stay in the process, so the next step does not fault them in again."""
import platform
import subprocess
import sys

import pytest
from _subprocess import NEUTRAL_CWD, child_env

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="the policy applies to glibc's malloc")

# A training step's pattern: several large arrays allocated, written, then all freed; the minor
# page faults of the last 8 of 10 such steps.
STEPS = """
import resource, numpy as np, fastconv as fc
print(fc.config()['allocator'])
def step():
    arrays = [np.ones(4 << 20, dtype=np.float32) for _ in range(6)]  # 6 x 16 MiB
    del arrays
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(**extra):
    env = child_env(**extra)
    for name in ("FASTCONV_ALLOCATOR_TUNING", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                 "GLIBC_TUNABLES"):
        if name not in extra:
            env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", STEPS], cwd=NEUTRAL_CWD, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    policy, faults = out.stdout.strip().split("\n")
    return policy, int(faults)


@glibc
def test_freed_large_arrays_keep_their_pages():
    policy, faults = _run()
    assert policy.endswith("(set by fastconv)")
    off_policy, off_faults = _run(FASTCONV_ALLOCATOR_TUNING="0")
    assert off_policy == "the C library's defaults (FASTCONV_ALLOCATOR_TUNING=0)"
    # glibc's defaults return the 96 MiB to the system after every step and fault it in again
    # (up to 24k pages of 4 KiB per step); kept, they do not
    if off_faults < 1000:
        pytest.skip(f"the untuned loop faulted only {off_faults} times here (huge pages?): nothing to compare")
    assert faults < off_faults / 10


@glibc
@pytest.mark.parametrize("user", ["MALLOC_TRIM_THRESHOLD_=1000000", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=1000000"])
def test_a_policy_the_user_chose_is_left_alone(user):
    name, value = user.split("=", 1)
    policy, _ = _run(**{name: value})
    assert policy == f"{user} (set by the user)"


def test_config_reports_the_allocator_policy(capsys):
    import fastconv as fc

    assert fc.config()["allocator"]
    fc.show_config()
    assert "large arrays:" in capsys.readouterr().out
