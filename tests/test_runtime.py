"""The kernels' parallel runtime: one thread setting for every Python thread, fork safety, the
wait policy (docs/design.md §2)."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from _subprocess import child_env, NEUTRAL_CWD

import fastconv as fc
from fastconv._kernels import _omp

needs_openmp = pytest.mark.skipif(not _omp.openmp_enabled(), reason="kernels built without OpenMP")
KERNEL_DIR = os.path.dirname(_omp.__file__)


@pytest.fixture
def exact_teams():
    """Teams of exactly the requested size (the load governor off), thread count restored."""
    threads, adaptive = fc.get_num_threads(), _omp.set_adaptive(False)
    yield
    _omp.set_adaptive(adaptive)
    fc.set_num_threads(threads)


def _in_thread(fn, start_gate=None):
    """Run ``fn`` in a new thread (after ``start_gate`` is set, when given); returns its result."""
    out = {}

    def body():
        if start_gate is not None:
            start_gate.wait(30)
        out["value"] = fn()

    t = threading.Thread(target=body)
    t.start()
    return t, out


def _report():
    return fc.get_num_threads(), _omp.team_size()


@needs_openmp
def test_set_num_threads_binds_threads_started_before_and_after(exact_teams):
    fc.set_num_threads(2)
    gate = threading.Event()
    early, early_out = _in_thread(_report, gate)  # started while the setting is 2
    fc.set_num_threads(1)
    gate.set()
    early.join(30)
    late, late_out = _in_thread(_report)
    late.join(30)
    assert early_out["value"] == (1, 1) and late_out["value"] == (1, 1) and _report() == (1, 1)

    fc.set_num_threads(2)
    gate2 = threading.Event()
    early, early_out = _in_thread(_report, gate2)
    gate2.set()
    early.join(30)
    assert early_out["value"] == (2, 2) and _report() == (2, 2)


@needs_openmp
def test_team_size_follows_the_request_and_the_cap(exact_teams):
    fc.set_num_threads(2)
    assert _omp.team_size(1) == 1 and _omp.team_size(2) == 2 and _omp.team_size(8) == 2
    fc.set_num_threads(3)
    assert _omp.team_size() == 3 and fc.get_num_threads() == 3


@needs_openmp
def test_cap_to_load_changes_nothing_on_an_idle_or_ungoverned_machine(exact_teams):
    fc.set_num_threads(2)
    assert _omp.cap_to_load() == -1 and _omp.get_max_threads() == 2  # governor off
    fc.set_num_threads(1)
    assert _omp.cap_to_load() == -1


@needs_openmp
def test_thread_cap_binds_only_the_calling_thread(exact_teams):
    """set_thread_cap(1) makes the calling thread's calls plan for and run on one thread (what a
    serial conv plan uses); other Python threads keep the process-wide count; 0 lifts it."""
    fc.set_num_threads(2)
    previous = _omp.set_thread_cap(1)
    try:
        assert previous == 0
        assert _omp.get_max_threads() == 1 and _omp.team_size() == 1 and fc.get_num_threads() == 2
        t, out = _in_thread(lambda: (_omp.get_max_threads(), _omp.team_size()))
        t.join(30)
        assert out["value"] == (2, 2)
    finally:
        assert _omp.set_thread_cap(previous) == 1
    assert _omp.get_max_threads() == 2 and _omp.team_size() == 2
    with pytest.raises(ValueError, match="set_thread_cap"):
        _omp.set_thread_cap(-1)


@needs_openmp
@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load governor reads /proc/stat")
def test_load_governor_gives_one_thread_while_other_processes_fill_every_cpu():
    import time

    threads, adaptive = fc.get_num_threads(), _omp.set_adaptive(True)
    affinity = os.sched_getaffinity(0)
    cpus = sorted(affinity)[:2]  # the governor counts the CPUs this process may use: two at most
    os.sched_setaffinity(0, cpus)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus]
    try:
        for hog, cpu in zip(hogs, cpus):
            os.sched_setaffinity(hog.pid, {cpu})
        fc.set_num_threads(len(cpus) + 1)
        time.sleep(0.15)
        _omp.load_cap()    # closes the window that started before the hogs
        time.sleep(0.3)    # a window in which they keep every CPU busy
        cap, other = _omp.load_cap()
        assert other > len(cpus) - 0.5 and cap == 1
        assert _omp.team_size() == 1 and fc.get_num_threads() == len(cpus) + 1
        assert _omp.get_max_threads() == len(cpus) + 1  # plans, hence bits, ignore the load
        # ...except the conv planner's, outside deterministic mode: it caps its pass at the load
        previous = _omp.cap_to_load()
        try:
            assert previous == 0 and _omp.get_max_threads() == 1
        finally:
            _omp.set_thread_cap(previous)
        assert _omp.get_max_threads() == len(cpus) + 1
        parts = _omp.set_deterministic_partitions(4)
        try:
            assert _omp.cap_to_load() == -1 and _omp.get_max_threads() == 4
        finally:
            _omp.set_deterministic_partitions(parts)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        os.sched_setaffinity(0, affinity)
        _omp.set_adaptive(adaptive)
        fc.set_num_threads(threads)


def test_every_parallel_region_takes_its_team_from_the_runtime():
    """Every prange of the kernels passes num_threads from _omp (team or team_for_work), so no
    region falls back to the calling thread's own OpenMP setting."""
    offenders = []
    for name in sorted(os.listdir(KERNEL_DIR)):
        if not name.endswith(".pyx"):
            continue
        with open(os.path.join(KERNEL_DIR, name)) as f:
            source = f.read()
        for match in re.finditer(r"\bprange\(", source):
            depth, i = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(source[i], 0)
                i += 1
            call = source[match.start():i]
            if not re.search(r"num_threads\s*=\s*team(_for_work)?\(", call):
                offenders.append(f"{name}: {' '.join(call.split())}")
    assert not offenders, offenders
    pragmas = [name for name in os.listdir(KERNEL_DIR) if name.endswith(".h")
               and "omp parallel" in open(os.path.join(KERNEL_DIR, name)).read()]
    assert not pragmas


# ---- fork -----------------------------------------------------------------------------------------
FORK_SCRIPT = textwrap.dedent('''
    import os, sys, threading, time, signal
    import multiprocessing as mp
    import numpy as np
    import fastconv as fc
    from fastconv._kernels import _omp
    from fastconv.nn import functional as F

    def kernels(_=None):
        """conv (forward and backward), relu, max pool, linear: result bits and the team size."""
        rng = np.random.default_rng(0)
        x = fc.tensor(rng.standard_normal((16, 16, 28, 28), dtype=np.float32), requires_grad=True)
        w = fc.tensor(rng.standard_normal((32, 16, 3, 3), dtype=np.float32), requires_grad=True)
        lw = fc.tensor(rng.standard_normal((10, 32 * 14 * 14), dtype=np.float32), requires_grad=True)
        y = F.linear(F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2).reshape(16, -1), lw)
        y.sum().backward()
        return y.numpy().tobytes(), w.grad.numpy().tobytes(), lw.grad.numpy().tobytes(), _omp.team_size()

    def setup():
        _omp.set_adaptive(False)
        fc.set_num_threads(2)
        # the same paths and partitions in every process (a spawned process would otherwise time
        # the convolution paths afresh and might pick another one)
        fc.backends.deterministic = True

    def wait(pid, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hung"

    if __name__ == "__main__":
        release = sys.argv[1] == "release"
        setup()
        _omp.set_fork_release(release)
        expected = kernels()
        assert expected[3] == 2, expected[3]
        pid = os.fork()
        if pid == 0:
            got = kernels()
            # with the pool released the child runs full teams; else its forking thread runs one
            # thread while threads it starts get full teams again, and the bits never change
            box = {}
            t = threading.Thread(target=lambda: box.update(team=_omp.team_size()))
            t.start(); t.join()
            ok = got[:3] == expected[:3] and got[3] == (2 if release else 1) and box["team"] == 2
            os._exit(0 if ok else 3)
        print("os.fork", wait(pid))
        for method in ("fork", "spawn"):
            with mp.get_context(method).Pool(2, initializer=setup) as pool:
                results = pool.map_async(kernels, range(4)).get(timeout=120)
            print(method, all(r[:3] == expected[:3] for r in results), sorted({r[3] for r in results}))
        print("parent", kernels() == expected)
''')


def _run_isolated(script_path, *args, timeout=240):
    """Run the script in its own process group; on timeout kill the whole group (hung children
    included) and fail."""
    proc = subprocess.Popen([sys.executable, script_path, *args], cwd=NEUTRAL_CWD, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"fork test hung for {timeout} s")
    assert proc.returncode == 0, err
    return out


@needs_openmp
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("mode", ["release", "fallback"])
def test_forked_children_and_pools_run_kernels_after_the_parent_used_two_threads(tmp_path, mode):
    if mode == "release" and not _omp.fork_release_supported():
        pytest.skip("this OpenMP runtime cannot release its pool")
    script = tmp_path / "fork_kernels.py"
    script.write_text(FORK_SCRIPT)
    lines = _run_isolated(str(script), mode).split("\n")
    assert "os.fork 0" in lines
    # fork pool workers: the same bits; full teams when the pool was released, else one thread
    assert f"fork True [{2 if mode == 'release' else 1}]" in lines
    assert "spawn True [2]" in lines
    assert "parent True" in lines


# ---- wait policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("user", [None, "OMP_WAIT_POLICY=passive", "GOMP_SPINCOUNT=123"])
def test_wait_policy_is_set_for_libgomp_unless_the_user_chose_one(user):
    extra = dict([user.split("=")]) if user else {}
    env = child_env(**extra)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if name not in extra:
            env.pop(name, None)
    code = ("import os, fastconv as fc; print(fc.config()['openmp_wait']); "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    policy, variable = out.stdout.strip().split("\n")
    if user is None:
        from fastconv._kernels._openmp_env import SPINCOUNT

        assert policy == f"GOMP_SPINCOUNT={SPINCOUNT} (set by fastconv)"
        assert variable == "None"  # not left in the environment for child processes
    else:
        assert policy == f"{user} (set by the user)"


def test_config_reports_the_wait_policy(capsys):
    fc.show_config()
    assert f"wait policy: {fc.config()['openmp_wait']}" in capsys.readouterr().out


@needs_openmp
def test_kernels_give_the_same_bits_whatever_the_team(exact_teams):
    """Reductions sum fixed partitions, so a team smaller than the plan (a busy machine) changes
    nothing: run the same 2-thread plan with teams of 2 and (forced by the governor's cap) 1."""
    from fastconv.nn import functional as F

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 4, 5, 5)).astype(np.float32)

    def grads():
        xt, wt = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, padding=2)
        (y * y).sum().backward()
        return xt.grad.numpy().copy(), wt.grad.numpy().copy()

    fc.set_num_threads(2)
    full = grads()
    previous = _omp.set_deterministic_partitions(2)  # plan for 2 partitions ...
    try:
        fc.set_num_threads(1)                          # ... run by a team of 1
        assert _omp.get_max_threads() == 2 and _omp.team_size(2) == 1
        small_team = grads()
    finally:
        _omp.set_deterministic_partitions(previous)
    assert all(np.array_equal(a, b) for a, b in zip(full, small_team))
