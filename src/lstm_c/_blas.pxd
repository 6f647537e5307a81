# Row-major BLAS helpers over scipy.linalg.cython_blas (the OpenBLAS SciPy ships).
#
# BLAS is column-major. A row-major (m, n) matrix with leading dimension ld is
# the same memory as a column-major (n, m) matrix: its transpose. So the
# row-major product C = op(A) op(B) is computed as the column-major product
# C^T = op(B)^T op(A)^T: swap the operands and the sizes m and n, keep each
# operand's own transpose flag. Every call in the engine goes through here, so
# that swap is written once.
#
# cython_blas takes non-const pointers for inputs it only reads; the `<float*>`
# casts of const inputs below are safe for that reason.

from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef inline void gemv(bint trans_a, int rows, int cols,
                      floating alpha, const floating* a, int lda,
                      const floating* x, floating beta, floating* y) noexcept nogil:
    """y = alpha * op(A) @ x + beta * y for a row-major A of shape (rows, cols).

    Used instead of gemm when one side is a single vector: OpenBLAS's gemm
    with a unit dimension is several times slower than its gemv.
    """
    # Column-major, the memory is A^T (cols, rows): A @ x is a transposed gemv.
    cdef char t = b'N' if trans_a else b'T'
    cdef int inc = 1
    if floating is float:
        sgemv(&t, &cols, &rows, &alpha, <float*>a, &lda, <float*>x, &inc, &beta, y, &inc)
    else:
        dgemv(&t, &cols, &rows, &alpha, <double*>a, &lda, <double*>x, &inc, &beta, y, &inc)
