"""The GEMM kernel behind linear: OpenMP row/column panels over single-threaded BLAS."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv as fc
from fastconv._config import run_with_kernel_blas
from fastconv._kernels import gemm


@pytest.fixture
def two_threads():
    before = fc.get_num_threads()
    fc.set_num_threads(2)
    yield 2
    fc.set_num_threads(before)


# row panels (m large), column panels (m small), one row as GEMV (split or serial), below the threshold
@pytest.mark.parametrize("m,n,k", [(512, 64, 40), (3, 700, 600), (1, 2000, 600), (1, 128, 1568), (1, 7, 5), (257, 129, 65),
                                   (5, 3, 7)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panels_equal_numpy(m, n, k, trans_a, trans_b, dtype, two_threads):
    rng = np.random.default_rng(m * 7 + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype=dtype)
    run_with_kernel_blas(gemm.matmul, trans_a, trans_b, a, b, out, two_threads)
    ref = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.sqrt(k))


def test_empty_inner_dimension_gives_zeros(two_threads):
    out = np.full((3, 4), np.nan, dtype=np.float32)
    gemm.matmul(False, False, np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), out, two_threads)
    np.testing.assert_array_equal(out, 0)


@given(rows=st.integers(1, 130), out_features=st.integers(1, 300), seed=st.integers(0, 1000))
def test_linear_large_enough_to_split_matches_numpy(rows, out_features, seed):
    rng = np.random.default_rng(seed)
    x = fc.tensor(rng.standard_normal((rows, 257)), requires_grad=True)
    w = fc.tensor(rng.standard_normal((out_features, 257)), requires_grad=True)
    before = fc.get_num_threads()
    fc.set_num_threads(2)
    try:
        y = fc.nn.functional.linear(x, w)
        g = rng.standard_normal(y.shape)
        y.backward(g)
    finally:
        fc.set_num_threads(before)
    np.testing.assert_allclose(y.numpy(), x.numpy() @ w.numpy().T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), g @ w.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), g.T @ x.numpy(), rtol=1e-10, atol=1e-10)


def _strided(rng, rows, cols, dtype, pad):
    """A rows×cols view into a wider array (row stride cols + pad), with the padding set to NaN."""
    base = np.full((rows, cols + pad), np.nan, dtype=dtype)
    base[:, :cols] = rng.standard_normal((rows, cols))
    return base, base[:, :cols]


@given(m=st.integers(1, 40), n=st.integers(1, 80), k=st.integers(1, 40),
       trans_a=st.booleans(), trans_b=st.booleans(), alpha=st.sampled_from([1.0, 0.5, -2.0]),
       beta=st.sampled_from([0.0, 1.0, -0.75]), pad=st.integers(0, 5), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 1000))
def test_gemm_contract_alpha_beta_strides(m, n, k, trans_a, trans_b, alpha, beta, pad, dtype, seed):
    """Every shape class of the packed kernel (partial 12-row / 32-column tiles, one or several
    16-deep transposes) and BLAS below its size limits: values, alpha/beta, and no write outside C."""
    rng = np.random.default_rng(seed)
    a_base, a = _strided(rng, *((k, m) if trans_a else (m, k)), dtype, pad)
    b_base, b = _strided(rng, *((n, k) if trans_b else (k, n)), dtype, pad)
    c_base, c = _strided(rng, m, n, dtype, pad)
    c_before = c.astype(np.float64)
    ref = alpha * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if beta != 0:
        ref += beta * c_before
    else:
        c[...] = np.nan   # beta 0 must not read C
    gemm.gemm_general(trans_a, trans_b, alpha, a, b, beta, c)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * np.sqrt(k) * 4)
    assert np.isnan(c_base[:, n:]).all(), "wrote into C's row padding"


# The AVX2 variant's tile classes (6 x 16 sub-tiles of the 12 x 32 panels, 4- and 2-row tails,
# 12 x 8 tiles for a last half of <= 8 columns), the one-A-block path that packs each B panel just
# before use (m <= 192) and the all-of-B path (m > 192), on padded operands; and the narrow
# products (n < 32 columns, m >= 64 rows) made transposed in scratch and written back.
@pytest.mark.parametrize("m,n,k", [(4, 16, 1), (5, 17, 3), (6, 24, 8), (7, 40, 9), (11, 41, 16),
                                   (13, 49, 17), (17, 63, 1), (25, 16, 257), (193, 33, 7),
                                   (200, 72, 300), (201, 4100, 3), (64, 16, 5), (96, 31, 300),
                                   (250, 20, 17), (63, 16, 9)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("beta", [0.0, -0.75])
def test_gemm_contract_tile_classes(m, n, k, trans_a, trans_b, beta):
    rng = np.random.default_rng(m * 31 + n + k)
    a_base, a = _strided(rng, *((k, m) if trans_a else (m, k)), np.float32, 3)
    b_base, b = _strided(rng, *((n, k) if trans_b else (k, n)), np.float32, 3)
    c_base, c = _strided(rng, m, n, np.float32, 3)
    ref = -2.0 * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if beta != 0:
        ref += beta * c.astype(np.float64)
    else:
        c[...] = np.nan   # beta 0 must not read C
    gemm.gemm_general(trans_a, trans_b, -2.0, a, b, beta, c)
    np.testing.assert_allclose(c, ref, rtol=2e-5, atol=2e-5 * np.sqrt(k) * 8)
    assert np.isnan(c_base[:, n:]).all(), "wrote into C's row padding"


# Products that fill the tiles better transposed (49 or 196 columns: a 7×7 or 14×14 image's pixels
# as 32-column panels) run as Cᵀ = op(B)ᵀ·op(A)ᵀ and are written back transposed; with beta ≠ 0 or
# alpha ≠ 1 (or a shallow product) they keep their orientation.
@pytest.mark.parametrize("m,n,k", [(512, 49, 300), (100, 49, 64), (64, 196, 70), (37, 49, 600), (33, 17, 65)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (0.5, 0.0)])
def test_gemm_contract_transposed_orientation(m, n, k, trans_a, trans_b, alpha, beta):
    rng = np.random.default_rng(m + 7 * n + k)
    a_base, a = _strided(rng, *((k, m) if trans_a else (m, k)), np.float32, 2)
    b_base, b = _strided(rng, *((n, k) if trans_b else (k, n)), np.float32, 2)
    c_base, c = _strided(rng, m, n, np.float32, 3)
    ref = alpha * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if beta != 0:
        ref += beta * c.astype(np.float64)
    else:
        c[...] = np.nan  # beta 0 must not read C
    gemm.gemm_general(trans_a, trans_b, alpha, a, b, beta, c)
    np.testing.assert_allclose(c, ref, rtol=2e-5, atol=2e-5 * np.sqrt(k) * 8)
    assert np.isnan(c_base[:, n:]).all(), "wrote into C's row padding"


def test_config_names_the_sgemm_variant():
    name = fc.config()["sgemm"]
    assert name in ("fastconv AVX-512", "fastconv AVX2", "BLAS")
    assert (name != "BLAS") == gemm.packed_sgemm_available()


@pytest.mark.parametrize("m,n,k", [(300, 40, 600), (13, 4130, 5), (64, 784, 288), (37, 33, 513)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_contract_several_blocks(m, n, k, trans_a, trans_b):
    """Shapes past one packed block: several 192-row A blocks, 4096-column B blocks and depth blocks."""
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    ref = 1.5 * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64) + c
    gemm.gemm_general(trans_a, trans_b, 1.5, a, b, 1.0, c)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_gemm_general_rejects_mismatched_shapes():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="gemm_general"):
        gemm.gemm_general(False, False, 1.0, a, np.zeros((5, 2), np.float32), 0.0,
                          np.zeros((3, 2), np.float32))


# ---- prepacked B panels (a constant weight packed once: the compiled predictor's 1x1 layers) ----

@given(m=st.integers(1, 40), n=st.integers(1, 100), k=st.integers(1, 600), trans_a=st.booleans(),
       trans_b=st.booleans(), seed=st.integers(0, 1000))
def test_prepacked_b_panels_match_numpy(m, n, k, trans_a, trans_b, seed):
    """op(A)·B with B packed once: one row (the panel GEMV), 4-/8-/12-row tiles, partial panels,
    several depth blocks (k > 256)."""
    if not gemm.packed_sgemm_available():
        pytest.skip("fastconv's packed sgemm does not run here")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    panels = gemm.pack_b_panels(trans_b, b)
    assert panels.size == gemm.b_panels_size(k, n) and panels.ctypes.data % 64 == 0
    out = np.full((m, n), np.nan, np.float32)  # every element written (NaN would survive otherwise)
    gemm.matmul_b_prepacked(trans_a, a, panels, out)
    ref = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5 * np.sqrt(k) * 4)


def test_prepacked_b_panels_reject_bad_operands():
    if not gemm.packed_sgemm_available():
        pytest.skip("fastconv's packed sgemm does not run here")
    b = np.ones((40, 7), np.float32)
    panels = gemm.pack_b_panels(True, b)  # op(B) 7 x 40
    with pytest.raises(ValueError, match="matmul_b_prepacked: op\\(A\\) 3x6"):
        gemm.matmul_b_prepacked(False, np.ones((3, 6), np.float32), panels, np.empty((3, 40), np.float32))
    shifted = np.empty(panels.size + 1, np.float32)
    start = 1 if shifted.ctypes.data % 64 == 0 else 0
    view = shifted[start:start + panels.size]
    view[:] = panels
    if view.ctypes.data % 64:
        with pytest.raises(ValueError, match="64-byte boundary"):
            gemm.matmul_b_prepacked(False, np.ones((3, 7), np.float32), view, np.empty((3, 40), np.float32))


_CAPPED_ISA_CHECK = """
import numpy as np
from fastconv._kernels import gemm
assert gemm.packed_sgemm_variant() == {variant!r}, gemm.packed_sgemm_variant()
rng = np.random.default_rng(0)
for m, n, k in [(1, 40, 300), (2, 33, 7), (5, 64, 19), (13, 70, 300), (200, 72, 17), (64, 16, 9), (7, 40, 9),
                (512, 49, 300), (100, 49, 64)]:
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
            ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
            c = np.full((m, n), np.nan, np.float32)
            gemm.gemm_general(ta, tb, 1.0, a, b, 0.0, c)
            np.testing.assert_allclose(c, ref, rtol=2e-5, atol=1e-4 * np.sqrt(k))
            panels = gemm.pack_b_panels(tb, b)
            assert (panels is None) == (gemm.packed_sgemm_variant() is None)
            if panels is not None:
                c[...] = np.nan
                gemm.matmul_b_prepacked(ta, a, panels, c)
                np.testing.assert_allclose(c, ref, rtol=2e-5, atol=1e-4 * np.sqrt(k))
print("ok")
"""


@pytest.mark.parametrize("isa,variant", [("avx2", "AVX2"), ("blas", None)])
def test_sgemm_isa_cap_runs_the_lower_kernels(isa, variant):
    """FASTCONV_SGEMM_ISA lowers the sgemm's kernels, so the AVX2 ones (and the BLAS fallback, where
    nothing is prepacked) are checked on AVX-512 machines too."""
    import sys

    from _subprocess import child_env, run

    if variant == "AVX2" and gemm.packed_sgemm_variant() is None:
        pytest.skip("this CPU has no AVX2 + FMA")
    done = run([sys.executable, "-c", _CAPPED_ISA_CHECK.format(variant=variant)],
               env=child_env(FASTCONV_SGEMM_ISA=isa))
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
