# cython: language_level=3
"""The nogil float32 entry points of depthwise.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef void channel_forward_f32(const float* x, const float* wt, const float* bias, float* y,
                              float* xt, float* yt, float* scratch, Py_ssize_t N, Py_ssize_t C,
                              Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho,
                              Py_ssize_t Wo, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                              int dw, Py_ssize_t rows_per_item, int threads,
                              Py_ssize_t G, bint x_minor, bint y_minor) noexcept nogil

cdef void channel_rows_f32(const float* xt, const float* wt, const float* bias, float* yt,
                           Py_ssize_t Cp, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                           Py_ssize_t r0, Py_ssize_t r1) noexcept nogil

cdef void depthwise_forward_f32(const float* x, const float* w, const float* bias, float* y,
                                Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                                Py_ssize_t K, Py_ssize_t Ho, Py_ssize_t Wo, int kh, int kw, int sh,
                                int sw, int ph, int pw, int dh, int dw, int threads, float clamp_lo,
                                float clamp_hi) noexcept nogil
cdef void transpose_images(const float* src, float* dst, Py_ssize_t N, Py_ssize_t rows,
                           Py_ssize_t cols, float* scratch, int threads) noexcept nogil
