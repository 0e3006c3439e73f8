# cython: language_level=3
"""The nogil float32 entry points of direct.pyx that the compiled predictor's executor
(fastconv/_kernels/infer.pyx) calls with the GIL released."""

cdef int direct_forward_f32(const float* x, const float* w, const float* bias, float* y,
                            float* work, Py_ssize_t stride, Py_ssize_t N, Py_ssize_t C,
                            Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, int kh, int kw, int ph,
                            int pw, int dh, int dw, Py_ssize_t out_h, Py_ssize_t out_w,
                            bint parallel, int num_threads) noexcept nogil

cdef void ocvec_forward_packed_f32(const float* x, const float* wt, const float* bp, float* y,
                                   float* frames, Py_ssize_t frame_stride, Py_ssize_t N,
                                   Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K, int kh,
                                   int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                   Py_ssize_t out_h, Py_ssize_t out_w, int num_threads) noexcept nogil
