# cython: language_level=3
"""The nogil float32 entry point of winograd.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef void winograd_forward_f32(const float* x, const float* u, const float* bias, float* y,
                               float* vwork, Py_ssize_t vstride, float* mwork, Py_ssize_t mstride,
                               Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K,
                               Py_ssize_t Ho, Py_ssize_t Wo, int ph, int pw, Py_ssize_t block_tiles,
                               bint panels, bint parallel, Py_ssize_t channel_parts,
                               int num_threads) noexcept nogil

cdef void winograd_filter_f32(const float* w, float* u, Py_ssize_t K, Py_ssize_t C, Py_ssize_t panel_rows,
                              int num_threads) noexcept nogil
