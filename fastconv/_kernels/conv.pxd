# cython: language_level=3
"""The nogil float32 entry points of conv.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef void conv_forward_f32(const float* x, const float* w, const float* bias, float* y,
                           float* work, Py_ssize_t work_stride, Py_ssize_t N, Py_ssize_t C,
                           Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                           int groups, int block_rows, bint parallel_items, int num_threads,
                           bint small, float clamp_lo, float clamp_hi) noexcept nogil

cdef void conv_transpose_forward_f32(const float* x, const float* w, const float* bias, float* y,
                                     float* dwork, Py_ssize_t work_stride, Py_ssize_t N,
                                     Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K,
                                     Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw, int sh, int sw,
                                     int ph, int pw, int dh, int dw, int groups, int block_rows,
                                     bint parallel_items, int num_threads) noexcept nogil
