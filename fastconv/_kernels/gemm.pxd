# cython: language_level=3
"""The nogil float32 entry point of gemm.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef void matmul_f32(bint trans_a, bint trans_b, const float* a, const float* b, float* c, int m,
                     int n, int k, int threads) noexcept nogil
