# cython: language_level=3
"""Row-major GEMM, callable without the GIL: fastconv's packed sgemm or scipy's BLAS.

float32 products run on fastconv's own packed kernel (_sgemm.h: AVX-512 micro-kernels, or
AVX2+FMA ones on CPUs without AVX-512, picked at run time) when the shape suits its 12x32
panels; everything else (float64, narrow shapes, CPUs without AVX2+FMA) goes to scipy's
Fortran BLAS (sgemm/dgemm).

Fortran BLAS is column-major; a row-major matrix is the transpose of the same buffer read
column-major, so C = op(A)·op(B) (row-major) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with A and B
swapped. The caller chooses the thread count of the underlying BLAS: never call this from
inside a ``prange`` unless BLAS has been limited to one thread.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef extern from "_sgemm.h" nogil:
    int fc_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb,
                 float beta, float* c, int ldc)
    int fc_sgemm_pack_b_panels(int trans_b, int k, int n, const float* b, int ldb, float* dst)
    int fc_sgemm_b_prepacked(int trans_a, int m, int n, int k, const float* a, int lda,
                             const float* pb, float* c, int ldc)
    void fc_sgemm_transpose_store(int rows, int cols, const float* t, Py_ssize_t ldt, float* y,
                                  Py_ssize_t ldy)
    float* fc_sgemm_scratch(size_t floats)


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """C (m×n, row stride ldc) = alpha·op(A)·op(B) + beta·C, all row-major.

    op(A) is m×k: A is stored m×k (row stride lda) or, with trans_a, k×m.
    op(B) is k×n: B is stored k×n (row stride ldb) or, with trans_b, n×k.
    """
    cdef char tb = b'T' if trans_b else b'N'
    cdef char ta = b'T' if trans_a else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        if fc_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
            return
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)
