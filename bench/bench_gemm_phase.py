"""The GEMM phase of each benchmarked convolution alone: its products' rate vs this machine's sgemm.

For every configuration of bench/cases_conv.py this times, on one thread, the GEMMs fastconv's
convolution runs per image (the kernels run one such GEMM per thread, so the one-thread rate is
the per-core rate at any thread count), through the same row-major wrapper the kernels call
(``gemm_general``: fastconv's packed sgemm or BLAS, with its packing):

- im2col path: forward W (K×R) · cols (R×L), dW dY (K×L) · colsᵀ, dX Wᵀ (R×K) · dY (K×L),
  with R = C·kh·kw and L the output pixels of a column block;
- Winograd path (3×3 stride 1, when the dispatch rule takes it): the 16 products per block of
  the forward passes (forward, dX), U_ξ (K×C) · V_ξ (C×tiles), and of the dW pass,
  dU_ξᵀ (C×K) = V_ξ (C×tiles) · M_ξᵀ (tiles×K). For float32 on a CPU with the packed sgemm the
  kernels run both on panels their transforms write (``packed``: no packing, timed through
  ``winograd.packed_product``); otherwise through the wrapper (dW as dU_ξ = M_ξ · V_ξᵀ, packing
  included);
- output-channel-vectorized path (the im2col path's float32 convolutions where ``_use_ocvec``
  takes them): ``direct.ocvec_forward`` and ``direct.ocvec_weight_grad`` on one image, padded
  copy, transposed dY and weight repacking included; its dX stays im2col's Wᵀ·dY;
- implicit-GEMM path (shallow stride-1 convolutions): its three loops (``shallow_product``):
  the forward and dW on the kw shifted image copies over the Ho·Wo output pixels; dX on the
  padded dY over the columns it computes (the output numbered in the padded width, rounded up to
  whole blocks; the extra columns count as work done, so this is the loop's rate, not the useful
  rate, which is H·W / L of it).

The reference is numpy's 1024³ sgemm on one thread, timed alternately with each product.

    python bench/bench_gemm_phase.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved_median_seconds, setup_threads  # noqa: E402
from cases_conv import CONFIGS  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv._kernels import direct as _direct  # noqa: E402
from fastconv._kernels import gemm as _gemm  # noqa: E402
from fastconv._kernels import winograd as _winograd  # noqa: E402
from fastconv.nn.functional.conv import path_gemm, path_winograd, planner  # noqa: E402
from fastconv.nn.functional.conv.geometry import ConvGeometry, problem_from_shapes  # noqa: E402


def _product(trans_a: bool, trans_b: bool, m: int, n: int, k: int):
    """(callable, flops) of one C (m×n) = op(A)·op(B) product with depth k through the kernels'
    wrapper, repeated to at least ~2·10⁸ flops per call (cold caches after the reference amortized)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    inner = max(1, int(2e8 // (2.0 * m * n * k)))

    def run():
        for _ in range(inner):
            _gemm.gemm_general(trans_a, trans_b, 1.0, a, b, 0.0, c)

    return run, 2.0 * m * n * k * inner


def _implicit_product(label: str, transposed: bool, m: int, taps: int, channels: int, kernel: int,
                      height: int, width: int, columns: int, shifted: bool = False):
    """(callable, flops) of one implicit-GEMM loop: ``taps`` rows of a padded (channels, height,
    width) image at the conv's tap offsets, or with ``shifted`` of its kernel shifted copies (each
    (channels, height, width)), ``columns`` wide, against an m-row matrix."""
    rng = np.random.default_rng(0)
    if shifted:
        offsets = [((j * channels + c) * height + i) * width for c in range(channels)
                   for i in range(kernel) for j in range(kernel)]
    else:
        offsets = [(c * height + i) * width + j for c in range(channels) for i in range(kernel)
                   for j in range(kernel)]
    offsets = np.array(offsets, dtype=np.intp)
    copies = kernel if shifted else 1
    b = rng.standard_normal(copies * channels * height * width + 64, dtype=np.float32)
    a = rng.standard_normal((m, columns) if transposed else (m, taps), dtype=np.float32)
    c = np.zeros((m, taps) if transposed else (m, columns), dtype=np.float32)
    inner = max(1, int(2e8 // (2.0 * m * taps * columns)))

    def run():
        for _ in range(inner):
            _direct.shallow_product(a, b, offsets, c, transposed)

    return run, 2.0 * m * taps * columns * inner


def _ocvec_product(pass_: str, c: int, h: int, k: int, f: int, s: int, p: int):
    """(callable, flops) of the output-channel-vectorized forward or weight gradient of one image."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c, h, h), dtype=np.float32)
    w = rng.standard_normal((k, c * f * f), dtype=np.float32)
    out = (h + 2 * p - f) // s + 1
    dy = rng.standard_normal((1, k, out, out), dtype=np.float32)
    flops = 2.0 * k * c * f * f * out * out
    inner = max(1, int(2e8 // flops))

    def run():
        for _ in range(inner):
            if pass_ == "fwd":
                _direct.ocvec_forward(x, w, None, f, f, s, s, p, p, 1, 1, out, out, 1)
            else:
                _direct.ocvec_weight_grad(x, dy, f, f, s, s, p, p, 1, 1, 1)

    return run, flops * inner


def _aligned(n: int) -> np.ndarray:
    """n random float32 values starting on a 64-byte boundary (what the packed kernel loads)."""
    raw = np.random.default_rng(0).standard_normal(n + 16, dtype=np.float32)
    start = (-raw.ctypes.data // 4) % 16
    return raw[start:start + n]


def _packed_product(m: int, n: int, k: int):
    """(callable, flops) of one Winograd product on pre-packed 12-row A and 32-column B panels."""
    a = _aligned(-(-m // 12) * 12 * k)
    b = _aligned(-(-n // 32) * 32 * k)
    c = np.zeros((m, n), dtype=np.float32)
    inner = max(1, int(2e8 // (2.0 * m * n * k)))
    return (lambda: _winograd.packed_product(a, b, c, k, inner)), 2.0 * m * n * k * inner


def _reference():
    """(callable, flops) of numpy's 1024³ sgemm, timed alternately with each product so that
    load drifting on a shared machine affects both alike."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    return (lambda: a @ a), 2.0 * 1024 ** 3


def _phases(n, c, h, k, f, s, p):
    """(path, [(label, trans_a, trans_b, m, n, k), ...]) of the GEMMs one image's conv runs."""
    out = (h + 2 * p - f) // s + 1
    g = ConvGeometry(f, f, s, s, p, p, 1, 1, 1, out, out)
    # the heuristic's forward path (the planner's choice when measuring is off)
    path = planner.heuristic(problem_from_shapes((n, c, h, h), (k, c, f, f), g, "float32"), "forward")
    if path == "winograd":
        tiles = path_winograd.winograd_plan(n, c, k, out, out, 4).block_tiles
        dw_tiles = path_winograd.winograd_plan(n, c, k, out, out, 4, weight_grad=True).block_tiles
        if _winograd.panel_layout(True):
            return "winograd", [(f"fwd 16 x U.V(C x {tiles}) packed", "packed", False, k, tiles, c),
                                (f"dW 16 x V.M^T({dw_tiles} x K) packed", "packed", False, c, k, dw_tiles)]
        return "winograd", [(f"fwd 16 x U(K x C).V(C x {tiles})", False, False, k, tiles, c),
                            (f"dW 16 x M(K x {dw_tiles}).V^T", False, True, k, c, dw_tiles)]
    if path == "implicit":
        hp = out + f - 1          # rows of the shifted copies (of out columns)
        hq = h + f - 1            # padded dY of the dX pass
        dx_cols = -(-((h - 1) * hq + h) // 64) * 64
        depth = c * f * f
        fwd_cols = out * out - (out * out) % 64   # whole blocks (a last partial one goes apart)
        return "implicit", [("fwd W.x_shifted", (False, k, depth, c, f, hp, out, fwd_cols, True)),
                            ("dW dY.x_shifted^T", (True, k, depth, c, f, hp, out, out * out, True)),
                            ("dX W_rot.dY_pad", (False, c, k * f * f, k, f, hq, hq, dx_cols))]
    if path == "shallow":
        return "shallow loops", []
    depth = c * f * f
    pixels = path_gemm._row_block(out, depth * out) * out
    dx = ("dX W^T.dY", True, False, depth, pixels, k)
    if path == "ocvec":
        return "ocvec", [("fwd loops (no GEMM)", "ocvec", "fwd", c, h, k, f, s, p),
                         ("dW loops (no GEMM)", "ocvec", "dw", c, h, k, f, s, p), dx]
    return "im2col", [("fwd W.cols", False, False, k, pixels, depth),
                      ("dW dY.cols^T", False, True, k, depth, pixels), dx]


def main() -> None:
    setup_threads(1)
    repeats = 7
    ref_run, ref_flops = _reference()
    print(f"fastconv {fc.__version__}, 1 thread, sgemm {fc.config()['sgemm']}; each product timed "
          f"alternately with numpy's 1024^3 sgemm (%numpy: its rate over numpy's in the same runs)")
    head = (f"{'conv (N,C,H->K,F,S,P)':<26} {'path':<9} {'product (per image) [m x n x k]':<44} "
            f"{'GF/s':>6} {'%numpy':>7}")
    print(head)
    print("-" * len(head))
    for cfg in CONFIGS:
        path, gemms = _phases(*cfg)
        label = "{},{},{}->{},{},{},{}".format(*cfg)
        if not gemms:
            print(f"{label:<26} {path:<9} (no GEMM: register-blocked loops)")
        for name, *spec in gemms:
            if path == "implicit":
                transposed, m, taps, chans, f, height, width, cols, *shifted = spec[0]
                run, flops = _implicit_product(name, transposed, m, taps, chans, f, height, width, cols,
                                               *shifted)
                shape = f"{name} [{m}x{cols if not transposed else taps}x{taps if not transposed else cols}]"
            elif spec[0] == "ocvec":
                run, flops = _ocvec_product(*spec[1:])
                c_, h_, k_, f_, s_, p_ = spec[2:]
                o_ = (h_ + 2 * p_ - f_) // s_ + 1
                mnk = (k_, o_ * o_, c_ * f_ * f_) if spec[1] == "fwd" else (k_, c_ * f_ * f_, o_ * o_)
                shape = f"{name} [{mnk[0]}x{mnk[1]}x{mnk[2]}]"
            elif spec[0] == "packed":
                _, _, m, n, k = spec
                run, flops = _packed_product(m, n, k)
                shape = f"{name} [{m}x{n}x{k}]"
            else:
                ta, tb, m, n, k = spec
                run, flops = _product(ta, tb, m, n, k)
                shape = f"{name} [{m}x{n}x{k}]"
            t_ref, t = interleaved_median_seconds([ref_run, run], repeats=repeats)
            rate, ref_rate = flops / t / 1e9, ref_flops / t_ref / 1e9
            print(f"{label:<26} {path:<9} {shape:<44} {rate:6.1f} {100 * rate / ref_rate:6.0f}%")


if __name__ == "__main__":
    main()
