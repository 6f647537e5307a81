# The gate passes of one step with peephole connections (Gers & Schmidhuber):
# the input and forget gates also see c_{t-1}, the output gate sees c_t,
# each through its own weight vector p = [p_i | p_f | p_o] (3H). Off by
# default, so these are plain loops rather than vectorised kernels (_gates.h).

from cython cimport floating
from libc.math cimport exp, expf, fabs, tanh, tanhf


cdef inline floating _tanh(floating z) noexcept nogil:
    if floating is float:
        return tanhf(z)
    else:
        return tanh(z)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    # e = exp(-|z|) <= 1: never overflows, and accurate in both tails.
    cdef floating e = expf(-fabs(z)) if floating is float else exp(-fabs(z))
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


cdef inline void peephole_forward_rows(int B, int H, floating* acts, floating* c, floating* h,
                                       floating* tanh_c, const floating* p) noexcept nogil:
    """# 2, 3a, 3b: acts (B, 4H) pre-activations in, activations out; c holds
    c_{t-1} in and c_t out; tanh_c written unless NULL."""
    cdef Py_ssize_t b, j, k
    cdef floating* a
    cdef floating cp, ig, fg, gg, og, ct, tc
    for b in range(B):
        a = acts + b * 4 * H
        for j in range(H):
            k = b * H + j
            cp = c[k]
            ig = _sigmoid(a[j] + p[j] * cp)
            fg = _sigmoid(a[H + j] + p[H + j] * cp)
            gg = _tanh(a[2 * H + j])
            ct = fg * cp + ig * gg
            og = _sigmoid(a[3 * H + j] + p[2 * H + j] * ct)
            tc = _tanh(ct)
            a[j], a[H + j], a[2 * H + j], a[3 * H + j] = ig, fg, gg, og
            c[k] = ct
            h[k] = og * tc
            if tanh_c != NULL:
                tanh_c[k] = tc


cdef inline void peephole_backward_rows(int B, int H, const floating* acts,
                                        const floating* tanh_c, const floating* c_prev,
                                        const floating* dh, floating* dc, floating* dgates,
                                        const floating* p) noexcept nogil:
    """# 3b', 3a', 2': from dh and dc (dL/dc_t in, dL/dc_{t-1} out) to the
    gate gradients, through the peepholes too."""
    cdef Py_ssize_t b, j, k
    cdef const floating* a
    cdef floating* dg
    cdef floating ig, fg, gg, og, tc, dct, dai, daf, dao
    for b in range(B):
        a = acts + b * 4 * H
        dg = dgates + b * 4 * H
        for j in range(H):
            k = b * H + j
            ig, fg, gg, og = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
            tc = tanh_c[k]
            dao = dh[k] * tc * og * (1 - og)
            dct = dc[k] + dh[k] * og * (1 - tc * tc) + dao * p[2 * H + j]
            dai = dct * gg * ig * (1 - ig)
            daf = dct * c_prev[k] * fg * (1 - fg)
            dg[j] = dai
            dg[H + j] = daf
            dg[2 * H + j] = dct * ig * (1 - gg * gg)
            dg[3 * H + j] = dao
            dc[k] = dct * fg + dai * p[j] + daf * p[H + j]


cdef inline void peephole_grads(int T, int B, int H, const floating* cs,
                                const floating* dgates, floating* dp) noexcept nogil:
    """dp (3H) += the peepholes' gradient: sums over all steps and rows of
    dA_i c_{t-1}, dA_f c_{t-1} and dA_o c_t (cs (T+1, B, H), dgates (T, B, 4H))."""
    cdef Py_ssize_t n, j
    cdef const floating* dg
    cdef const floating* cp
    cdef const floating* ct
    for n in range(T * B):
        dg = dgates + n * 4 * H
        cp = cs + n * H
        ct = cs + (n + B) * H
        for j in range(H):
            dp[j] += dg[j] * cp[j]
            dp[H + j] += dg[H + j] * cp[j]
            dp[2 * H + j] += dg[3 * H + j] * ct[j]
