# cython: language_level=3
"""The nogil float32 entry point of pointwise.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef void pointwise_forward_f32(const float* w, const float* x, const float* bias, float* y,
                                Py_ssize_t N, Py_ssize_t C, Py_ssize_t P, Py_ssize_t K,
                                int threads) noexcept nogil
