# Inline gate math for the fused per-step passes in _lstm.pyx.
#
# Pure math, so `noexcept nogil`. Written once over cython.floating: float32
# calls expf/tanhf, float64 calls exp/tanh, never mixing precisions.
# sigmoid(x) = 1 / (1 + exp(-x)) is safe at both ends: exp(-x) overflows to
# +inf for very negative x and 1/inf is 0; it never produces NaN from a finite x.

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf


cdef inline floating sigmoid(floating x) noexcept nogil:
    if floating is float:
        return 1.0 / (1.0 + expf(-x))
    else:
        return 1.0 / (1.0 + exp(-x))


cdef inline floating tanh_(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)
