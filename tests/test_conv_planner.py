"""The convolution planner and the paths it chooses among: every path forced on (where eligible)
against a numpy reference on hypothesis geometries, the depthwise and pointwise paths against
PyTorch and in float64 gradchecks, the planner's measuring, cache, JSON round trip and
switches, deterministic mode, and each new path's memory declaration against tracemalloc."""
import json
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
import fastconv.nn.functional as F
from fastconv.nn.functional.conv import Conv2dFunction, planner, registry
from fastconv._kernels.depthwise import channel_width
from fastconv._kernels.direct import ocvec_available
from fastconv.nn.functional.conv.geometry import problem_from_shapes
from test_conv import make_input, ref_conv2d, tolerance

import _conv_paths as cp

ALL_PATHS = registry.names()


@st.composite
def geometries(draw, depthwise=None):
    """A conv2d call: depthwise (groups = C, K = m·C), pointwise (1×1), or general."""
    kind = depthwise or draw(st.sampled_from(["depthwise", "pointwise", "grouped", "general"]))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 20))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    if kind == "depthwise":
        groups, k = c, c * draw(st.sampled_from([1, 1, 2]))
        kh = kw = draw(st.sampled_from([1, 3, 5]))
    elif kind == "pointwise":
        groups, k, kh, kw = 1, draw(st.integers(1, 24)), 1, 1
    elif kind == "grouped":  # G = C/groups = K/groups channels per group (ResNeXt)
        size = draw(st.sampled_from([2, 4, 8, 3]))
        groups = draw(st.integers(1, 5))
        c = k = groups * size
        kh = kw = draw(st.sampled_from([1, 3]))
    else:
        groups = draw(st.sampled_from([1, 1, 2]))
        c = c - c % groups or groups
        k = groups * draw(st.integers(1, 6))
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    dilation = 1 if kind == "pointwise" else draw(st.integers(1, 2))
    padding = 0 if kind == "pointwise" else draw(st.integers(0, 3))
    if h + 2 * padding < dilation * (kh - 1) + 1 or w + 2 * padding < dilation * (kw - 1) + 1:
        padding = max(dilation * (kh - 1), dilation * (kw - 1))  # kernel ≥ input: padding makes room
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=stride, padding=padding,
                dilation=dilation, groups=groups, dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["contiguous", "strided"])), bias=draw(st.booleans()),
                path=draw(st.sampled_from(ALL_PATHS)))


def _check_against_reference(case, monkeypatch):
    rng = np.random.default_rng(0)
    dt = case["dtype"]
    x = make_input(rng, (case["n"], case["c"], case["h"], case["w"]), dt, case["layout"])
    w = rng.standard_normal((case["k"], case["c"] // case["groups"], case["kh"], case["kw"])).astype(dt)
    b = rng.standard_normal(case["k"]).astype(dt) if case["bias"] else None
    opts = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    cp.switch(monkeypatch, case["path"], True)
    X, W = fc.tensor(x, requires_grad=True), fc.tensor(w, requires_grad=True)
    B = fc.tensor(b, requires_grad=True) if b is not None else None
    y = F.conv2d(X, W, B, **opts)
    problem = y.grad_fn.problem
    for pass_ in registry.PASSES:  # a forced path runs wherever it can
        if registry.get(case["path"]).eligible(problem, pass_):
            assert planner.choose(problem, pass_) == (case["path"], "forced")
    ref, grads = ref_conv2d(x.astype(np.float64), w.astype(np.float64), b, (case["stride"],) * 2,
                            case["padding"], (case["dilation"],) * 2, case["groups"])
    dy = rng.standard_normal(y.shape).astype(dt)
    y.backward(dy)
    dx, dw, db = grads(dy.astype(np.float64))
    tol = tolerance(dt)
    scale = 1 + np.abs(ref).max()
    np.testing.assert_allclose(y.numpy(), ref, rtol=tol["rtol"], atol=tol["atol"] * scale)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=tol["rtol"], atol=tol["atol"] * (1 + np.abs(dx).max()))
    np.testing.assert_allclose(W.grad.numpy(), dw, rtol=tol["rtol"], atol=tol["atol"] * (1 + np.abs(dw).max()))
    if b is not None:
        np.testing.assert_allclose(B.grad.numpy(), db, rtol=tol["rtol"], atol=tol["atol"] * (1 + np.abs(db).max()))


@given(geometries())
def test_every_path_forced_matches_reference(case):
    with pytest.MonkeyPatch.context() as mp:
        _check_against_reference(case, mp)


@given(geometries(depthwise="depthwise"))
def test_depthwise_paths_match_reference(case):
    for path in ("depthwise", "depthwise_planes"):
        with pytest.MonkeyPatch.context() as mp:
            _check_against_reference(dict(case, path=path), mp)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0), (2, 0), (1, 2), (2, 2), ((2, 1), 1),
                                             ((1, 2), 1)])
@pytest.mark.parametrize("c, h, w", [(16, 9, 12), (80, 6, 15), (48, 3, 3), (64, 8, 21)])
def test_depthwise_3x3_interior_loops_match_reference(stride, padding, c, h, w):
    """The channel-vectorized 3×3 forward's interior loops (column stride 1 or 2, four pixels a
    step and the rest one by one, the border pixels on the checked loop): rows and columns
    cut at every remainder, channel counts of 1 to 5 vectors, row strides other than the column's."""
    if isinstance(stride, int):
        case = dict(n=2, c=c, h=h, w=w, k=c, kh=3, kw=3, stride=stride, padding=padding, dilation=1, groups=c,
                    dtype=np.float32, layout="contiguous", bias=True, path="depthwise")
        with pytest.MonkeyPatch.context() as mp:
            _check_against_reference(case, mp)
        return
    rng = np.random.default_rng(c + h)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        cp.switch(mp, "depthwise", True)
        y = F.conv2d(fc.tensor(x), fc.tensor(wt), fc.tensor(b), stride=stride, padding=padding, groups=c)
    ref, _ = ref_conv2d(x.astype(np.float64), wt.astype(np.float64), b, stride, padding, (1, 1), c)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-5 * (1 + np.abs(ref).max()))


@given(geometries(depthwise="grouped"))
def test_grouped_path_matches_reference(case):
    with pytest.MonkeyPatch.context() as mp:
        _check_against_reference(dict(case, path="grouped", dtype=np.float32), mp)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", ["depthwise", "depthwise_planes", "pointwise", "pointwise_batched"])
def test_new_paths_thread_counts_and_batch_split(rng, monkeypatch, path, threads):
    """Batch 1 and batch 5 at 1 and 2 threads (images per thread vs row blocks per image, and
    at batch 1 the transposes split by chunks of pixels, one of them empty on a 3×3 image)."""
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)
    previous = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        for n, h, w in ((1, 15, 13), (5, 15, 13), (1, 3, 3), (2, 7, 5)):
            one = path.startswith("pointwise")
            case = dict(n=n, c=32, h=h, w=w, k=32, kh=1 if one else 3, kw=1 if one else 3, stride=2,
                        padding=0 if one else 1, dilation=1, groups=1 if one else 32, dtype=np.float32,
                        layout="contiguous", bias=True, path=path)
            _check_against_reference(case, monkeypatch)
    finally:
        fc.set_num_threads(previous)


@pytest.mark.parametrize("path, opts, wshape", [
    ("depthwise", dict(stride=2, padding=1, groups=4), (4, 1, 3, 3)),
    ("depthwise_planes", dict(stride=1, padding=2, dilation=2, groups=3), (6, 1, 3, 3)),
    ("pointwise", dict(stride=2), (5, 3, 1, 1)),
    ("pointwise_batched", dict(stride=1), (5, 3, 1, 1)),
])
def test_new_paths_gradcheck(rng, monkeypatch, path, opts, wshape):
    cp.switch(monkeypatch, path, True)
    c = wshape[1] * opts.get("groups", 1)
    x = fc.tensor(rng.standard_normal((2, c, 6, 5)), requires_grad=True)
    w = fc.tensor(rng.standard_normal(wshape), requires_grad=True)
    b = fc.tensor(rng.standard_normal(wshape[0]), requires_grad=True)
    if path == "depthwise":  # float32 only: the float64 gradcheck runs its plane twin; check the
        assert not registry.get(path).eligible(  # float32 path against torch below instead
            problem_from_shapes(x.shape, w.shape, F.conv2d(x, w, b, **opts).grad_fn.geometry, "float64"),
            "forward")
        return
    assert fc.autograd.gradcheck(lambda a, k, c_: F.conv2d(a, k, c_, **opts), [x, w, b])


@pytest.mark.parametrize("path, shape, wshape, opts", [
    ("depthwise", (3, 64, 16, 16), (64, 1, 3, 3), dict(stride=2, padding=1, groups=64)),
    ("depthwise", (1, 40, 9, 11), (40, 1, 5, 5), dict(stride=1, padding=2, groups=40)),
    ("depthwise_planes", (2, 8, 9, 9), (16, 1, 3, 3), dict(stride=1, padding=1, groups=8)),
    ("pointwise", (2, 24, 7, 9), (48, 24, 1, 1), dict(stride=1)),
    ("pointwise", (1, 16, 8, 8), (32, 16, 1, 1), dict(stride=2)),
    ("pointwise_batched", (3, 24, 4, 5), (40, 24, 1, 1), dict(stride=1)),
    ("grouped", (2, 128, 9, 9), (128, 4, 3, 3), dict(stride=1, padding=1, groups=32)),
    ("grouped", (1, 64, 10, 10), (64, 8, 3, 3), dict(stride=2, padding=1, groups=8)),
    ("grouped", (3, 32, 7, 7), (32, 16, 1, 1), dict(groups=2)),
    ("pointwise_batched", (2, 16, 8, 7), (32, 16, 1, 1), dict(stride=2)),
])
def test_new_paths_match_torch(torch, rng, monkeypatch, path, shape, wshape, opts):
    cp.switch(monkeypatch, path, True)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    X, W, B = (fc.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(X, W, B, **opts)
    assert y.grad_fn.path == path
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(dy)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **opts)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((y, ty), (X.grad, tx.grad), (W.grad, tw.grad), (B.grad, tb.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_planner_measures_once_then_caches(rng, monkeypatch):
    monkeypatch.setattr(planner.settings, "benchmark", True)
    planner.clear_plans()
    x = fc.tensor(rng.standard_normal((2, 16, 12, 12)).astype(np.float32), requires_grad=True)
    w = fc.tensor(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), requires_grad=True)
    before = planner.stats["measured_plans"]
    y = F.conv2d(x, w, padding=1, groups=16)
    problem = y.grad_fn.problem
    y.sum().backward()
    assert planner.stats["measured_plans"] == before + 3  # forward, dX, dW
    for pass_ in registry.PASSES:
        name, source = planner.choose(problem, pass_)
        assert source == "measured" and registry.get(name).eligible(problem, pass_)
    F.conv2d(x, w, padding=1, groups=16).sum().backward()
    assert planner.stats["measured_plans"] == before + 3  # cached: nothing measured again


def test_plans_json_round_trip(rng, tmp_path, monkeypatch):
    monkeypatch.setattr(planner.settings, "benchmark", True)
    planner.clear_plans()
    x = fc.tensor(rng.standard_normal((1, 8, 10, 10)).astype(np.float32), requires_grad=True)
    w = fc.tensor(rng.standard_normal((12, 8, 1, 1)).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w)
    problem = y.grad_fn.problem
    y.sum().backward()
    chosen = {p: planner.choose(problem, p)[0] for p in registry.PASSES}
    path = tmp_path / "plans.json"
    fc.backends.conv.save_plans(path)
    records = json.loads(path.read_text())["plans"]
    assert {r["pass"] for r in records} == set(registry.PASSES)
    planner.clear_plans()
    assert fc.backends.conv.load_plans(path) == len(records)
    before = planner.stats["measured_plans"]
    F.conv2d(x, w).sum().backward()
    assert planner.stats["measured_plans"] == before  # loaded plans: no measuring
    assert {p: planner.choose(problem, p) for p in registry.PASSES} == {p: (chosen[p], "loaded") for p in chosen}


def test_serial_variant_wins_where_one_thread_is_faster(rng, tmp_path, monkeypatch):
    """At 2 threads the planner also times each candidate on one thread (``set_thread_cap``):
    when that is faster, the plan runs the pass serially, ``plan`` shows 1 thread, the memory
    declaration is the serial run's, and the JSON round trip keeps it."""
    from fastconv._kernels import _omp
    monkeypatch.setattr(planner.settings, "benchmark", True)
    monkeypatch.setattr(planner.settings, "serial_variants", True)
    monkeypatch.setattr(planner, "MEASURE_SERIAL_BELOW", 1.0)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        planner.clear_plans()
        x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
        w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
        with planner.force("gemm"):
            problem = F.conv2d(fc.tensor(x, requires_grad=True), fc.tensor(w), padding=1).grad_fn.problem
        seen = []

        def execute(path):  # a stand-in pass: slow whenever it may use two threads
            seen.append((path.name, _omp.get_max_threads()))
            if _omp.get_max_threads() > 1:
                time.sleep(0.003)
            return path.name

        name, result = planner.run(problem, "forward", execute)
        assert {threads for _, threads in seen} == {1, 2} and result == name
        assert fc.backends.conv.plan(x.shape, w.shape, padding=1)["forward"] == (name, "measured", 1)
        seen.clear()
        planner.run(problem, "forward", execute)
        assert seen == [(name, 1)]  # the cached plan runs under the cap
        with planner.planned_threads(problem, "forward"):
            assert _omp.get_max_threads() == 1
        assert _omp.get_max_threads() == 2
        path = tmp_path / "plans.json"
        fc.backends.conv.save_plans(path)
        assert [r["serial"] for r in json.loads(path.read_text())["plans"]] == [True]
        planner.clear_plans()
        fc.backends.conv.load_plans(path)
        assert fc.backends.conv.plan(x.shape, w.shape, padding=1)["forward"] == (name, "loaded", 1)
        monkeypatch.setattr(planner.settings, "serial_variants", False)
        planner.clear_plans()
        seen.clear()
        planner.run(problem, "forward", execute)
        assert {threads for _, threads in seen} == {2}  # switched off: parallel runs only
    finally:
        planner.clear_plans()
        fc.set_num_threads(previous)


class _LoadedRuntime:
    """``_omp`` as the planner sees it while other processes leave ``busy_cap`` CPUs: its
    ``cap_to_load`` caps the calling thread there (the real cap, so the kernels see it)."""

    def __init__(self, omp, busy_cap):
        self._omp, self._busy_cap = omp, busy_cap

    def __getattr__(self, name):
        return getattr(self._omp, name)

    def cap_to_load(self):
        if self._omp.get_max_threads() <= self._busy_cap:
            return -1
        return self._omp.set_thread_cap(self._busy_cap)


def test_passes_follow_the_load_outside_deterministic_mode(rng, monkeypatch):
    """While other processes leave fewer CPUs than the thread setting (the load governor's cap),
    a pass runs the plan of the threads it gets, not the setting's plan on fewer threads;
    deterministic mode keeps the setting's plan whatever the load."""
    from fastconv._kernels import _omp
    monkeypatch.setattr(planner.settings, "benchmark", True)
    monkeypatch.setattr(planner.settings, "serial_variants", False)
    previous = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
        w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
        with planner.force("gemm"):
            problem = F.conv2d(fc.tensor(x, requires_grad=True), fc.tensor(w), padding=1).grad_fn.problem
        planner.clear_plans()
        seen = []

        def execute(path):
            seen.append(_omp.get_max_threads())
            return path.name

        monkeypatch.setattr(planner, "_omp", _LoadedRuntime(_omp, busy_cap=1))
        planner.run(problem, "forward", execute)
        assert set(seen) == {1} and [r["threads"] for r in planner.plans()] == [1]
        assert _omp.get_max_threads() == 2  # the cap ends with the pass
        monkeypatch.setattr(planner.settings, "deterministic", True)
        seen.clear()
        planner.run(problem, "forward", execute)
        assert seen == [2]
        monkeypatch.setattr(planner.settings, "deterministic", False)
        monkeypatch.setattr(planner, "_omp", _omp)
        seen.clear()
        planner.run(problem, "forward", execute)
        assert set(seen) == {2} and sorted(r["threads"] for r in planner.plans()) == [1, 2]
    finally:
        planner.clear_plans()
        fc.set_num_threads(previous)


@pytest.mark.parametrize("text, message", [
    ("not json", "not a readable conv plan file"),
    ("[1, 2]", "not a fastconv conv plan file"),
    ('{"fastconv_conv_plans": 1, "plans": [{"path": "gemm"}]}', "malformed plan record"),
    ('{"fastconv_conv_plans": 1, "plans": [{"image_shape": [1, 2, 3, 3], "weight_shape": [2, 2, 1, 1], '
     '"geometry": [1, 1, 1, 1, 0, 0, 1, 1, 1, 3, 3], "dtype": "float32", "threads": 1, "pass": "forward", '
     '"path": "warp"}]}', "unknown conv path 'warp'"),
    ('{"fastconv_conv_plans": 1, "plans": [{"image_shape": [1, 2, 3, 3], "weight_shape": [2, 2, 1, 1], '
     '"geometry": [1, 1, 1, 1, 0, 0, 1, 1, 1, 3, 3], "dtype": "float32", "threads": 1, "pass": "forward", '
     '"path": "winograd"}]}', "cannot run forward"),
])
def test_load_plans_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "plans.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        fc.backends.conv.load_plans(path)
    assert "plans.json" in str(info.value)


def test_backend_switches_and_plan(monkeypatch):
    conv = fc.backends.conv
    monkeypatch.setattr(planner.settings, "benchmark", True)
    conv.benchmark = False
    assert planner.settings.benchmark is False and conv.benchmark is False
    conv.deterministic = True
    try:
        assert planner.settings.deterministic
        shown = conv.plan((8, 32, 16, 16), (32, 1, 3, 3), stride=1, padding=1, groups=32)
        assert set(shown) == set(registry.PASSES)
        assert all(source == "heuristic" and threads == fc.get_num_threads() for _, source, threads in shown.values())
        assert conv.plan((8, 32, 16, 16), (64, 32, 1, 1))["forward"][0] == "pointwise"
    finally:
        conv.deterministic = False
    with conv.force("gemm", passes=["forward"]):
        assert conv.plan((1, 4, 8, 8), (4, 1, 3, 3), padding=1, groups=4)["forward"][:2] == ("gemm", "forced")
    with conv.disable("depthwise", "depthwise_planes"):
        assert conv.plan((1, 4, 8, 8), (4, 1, 3, 3), padding=1, groups=4)["forward"][0] == "gemm"
    with pytest.raises(ValueError, match="unknown path 'nope'"):
        with conv.force("nope"):
            pass
    with pytest.raises(ValueError, match="disagree with groups"):
        conv.plan((1, 4, 8, 8), (4, 2, 3, 3), groups=4)


@pytest.mark.parametrize("threads", [1, 2])
def test_deterministic_mode_same_bits_across_thread_counts(rng, monkeypatch, threads):
    """The new paths' reductions do not depend on the thread count: deterministic mode gives
    the same bits at 1 and 2 threads."""
    monkeypatch.setattr(planner.settings, "deterministic", True)
    monkeypatch.setattr(cp.common, "MIN_FLOPS_PER_THREAD", 0)
    cases = [((3, 32, 12, 12), (32, 1, 3, 3), dict(padding=1, groups=32)),
             ((1, 32, 12, 12), (32, 1, 3, 3), dict(stride=2, padding=1, groups=32)),
             ((2, 16, 9, 9), (24, 16, 1, 1), {})]
    previous = fc.get_num_threads()
    results = []
    try:
        for t in (1, 2):
            fc.set_num_threads(t)
            out = []
            for shape, wshape, opts in cases:
                r = np.random.default_rng(7)
                x = fc.tensor(r.standard_normal(shape).astype(np.float32), requires_grad=True)
                w = fc.tensor(r.standard_normal(wshape).astype(np.float32), requires_grad=True)
                b = fc.tensor(r.standard_normal(wshape[0]).astype(np.float32), requires_grad=True)
                y = F.conv2d(x, w, b, **opts)
                y.backward(fc.tensor(r.standard_normal(y.shape).astype(np.float32)))
                out.append([a.copy() for a in (y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy())])
            results.append(out)
    finally:
        fc.set_num_threads(previous)
    for one, two in zip(*results):
        for a, b in zip(one, two):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("path, shape, wshape, opts", [
    ("depthwise", (4, 32, 14, 14), (32, 1, 3, 3), dict(stride=1, padding=1, groups=32)),
    ("depthwise", (1, 24, 20, 20), (24, 1, 3, 3), dict(stride=2, padding=1, groups=24)),
    ("depthwise_planes", (2, 16, 12, 12), (32, 1, 5, 5), dict(stride=1, padding=2, groups=16)),
    ("pointwise", (2, 32, 14, 14), (64, 32, 1, 1), dict(stride=2)),
    ("pointwise", (2, 32, 14, 14), (64, 32, 1, 1), dict(stride=1)),
    ("pointwise_batched", (4, 32, 6, 6), (64, 32, 1, 1), dict(stride=1)),
    ("pointwise_batched", (4, 32, 12, 12), (64, 32, 1, 1), dict(stride=2)),
    ("gemm", (2, 8, 12, 12), (16, 8, 3, 3), dict(stride=2, padding=1)),
    ("gemm", (6, 16, 7, 7), (24, 16, 3, 3), dict(stride=1, padding=1)),  # dX side by side
    ("gemm", (5, 16, 2, 2), (24, 16, 3, 3), dict(stride=1, padding=1)),  # dX and dW side by side
    ("grouped", (2, 64, 12, 12), (64, 4, 3, 3), dict(padding=1, groups=16)),
    ("gemm", (2, 8, 12, 12), (16, 4, 3, 3), dict(padding=1, groups=2)),
    ("shallow", (2, 1, 12, 12), (16, 1, 3, 3), dict(padding=1)),
    ("winograd", (2, 32, 12, 12), (32, 32, 3, 3), dict(padding=1)),
    ("implicit", (2, 4, 12, 12), (16, 4, 3, 3), dict(padding=1)),
    ("ocvec", (2, 16, 14, 14), (64, 16, 3, 3), dict(stride=2, padding=1)),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_paths_memory_declarations_match_tracemalloc(rng, monkeypatch, path, shape, wshape, opts, threads):
    """Every path: forward_workspace_bytes and workspace_bytes equal the transient peaks the
    passes allocate beyond their outputs (y; dX, dW, db)."""
    if path in ("depthwise", "grouped") and not channel_width():
        pytest.skip("the channel-vectorized loops need AVX-512 or AVX2+FMA")
    if path == "ocvec" and not ocvec_available():
        pytest.skip("the output-channel-vectorized loops need AVX-512 or AVX2+FMA")
    cp.switch(monkeypatch, path, True)
    previous = fc.get_num_threads()
    fc.set_num_threads(threads)
    try:
        x = fc.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        w = fc.tensor(rng.standard_normal(wshape).astype(np.float32), requires_grad=True)
        b = fc.tensor(rng.standard_normal(wshape[0]).astype(np.float32), requires_grad=True)
        F.conv2d(x, w, b, **opts).sum().backward()  # warm caches
        x.grad = w.grad = b.grad = None  # the measured backward allocates the gradients anew
        y = F.conv2d(x, w, b, **opts)
        geometry = y.grad_fn.geometry
        shapes = (x.shape, w.shape, b.shape)
        dy = fc.tensor(np.ones(y.shape, np.float32))
        y_bytes = y.numpy().nbytes
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            y2 = F.conv2d(x.detach(), w.detach(), b.detach(), **opts)
            forward_peak = tracemalloc.get_traced_memory()[1] - start - y_bytes
            del y2
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            y.backward(dy)
            grads = x.grad.numpy().nbytes + w.grad.numpy().nbytes + b.grad.numpy().nbytes
            backward_peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
        declared_fwd = Conv2dFunction.forward_workspace_bytes(shapes, np.float32, (False, False, False), geometry)
        declared_bwd = Conv2dFunction.workspace_bytes(shapes, np.float32, geometry)
        assert abs(forward_peak - declared_fwd) <= 0.05 * declared_fwd + 4096, (forward_peak, declared_fwd)
        assert backward_peak - grads <= declared_bwd + 0.05 * declared_bwd + 4096, (backward_peak, grads, declared_bwd)
        assert backward_peak >= 0.5 * declared_bwd, (backward_peak, declared_bwd)
    finally:
        fc.set_num_threads(previous)


@pytest.mark.parametrize("cheap", [False, True])
def test_planner_times_paths_far_outside_their_shapes_only_when_calls_are_cheap(rng, monkeypatch, cheap):
    """Planning cost is bounded: the shallow loops (576 deep) and the implicit GEMM (128 output
    channels of depth 576) are timed only when the fastest candidate is under MEASURE_ALL_BELOW,
    then from the second round on and at least twice (their cold first run is not the verdict)."""
    monkeypatch.setattr(planner.settings, "benchmark", True)
    monkeypatch.setattr(planner, "MEASURE_ALL_BELOW", 1e9 if cheap else 0.0)
    planner.clear_plans()
    timed = []
    for name in ("shallow", "implicit", "gemm"):
        path = registry.get(name)
        original = type(path).forward
        monkeypatch.setattr(type(path), "forward",
                            lambda self, *a, _o=original, _n=name: (timed.append(_n), _o(self, *a))[1])
    x = fc.tensor(rng.standard_normal((1, 64, 8, 8)).astype(np.float32))
    w = fc.tensor(rng.standard_normal((128, 64, 3, 3)).astype(np.float32))
    with fc.no_grad():
        F.conv2d(x, w, padding=1)
    assert timed.count("gemm") >= 2
    if cheap:
        assert timed.count("shallow") >= 2 and timed.count("implicit") >= 2
        assert timed.index("shallow") > timed.index("gemm") and timed.index("implicit") > timed.index("gemm")
    else:
        assert "shallow" not in timed and "implicit" not in timed


def test_depthwise_dx_interior_keeps_infinite_weights_infinite(monkeypatch):
    """An infinite weight gives infinite input gradients where its tap reaches and finite ones
    elsewhere, in the interior loop as in the checked one (its accumulators start at zero, not
    at a weight minus itself, which is NaN for an infinite weight)."""
    cp.switch(monkeypatch, "depthwise", True)
    x = fc.tensor(np.ones((1, 16, 8, 8), np.float32), requires_grad=True)
    w = np.ones((16, 1, 3, 3), np.float32)
    w[:, :, 2, 2] = np.inf  # the first weight the rotated filter of dX loads
    y = F.conv2d(x, fc.tensor(w), padding=1, groups=16)
    y.backward(np.ones(y.shape, np.float32))
    dx = x.grad.numpy()
    reached = np.zeros((8, 8), bool)
    reached[1:, 1:] = True  # tap (2, 2) of output (oy, ox) reads input (oy + 1, ox + 1)
    assert not np.isnan(dx).any()
    assert np.isinf(dx[:, :, reached]).all() and np.isfinite(dx[:, :, ~reached]).all()
