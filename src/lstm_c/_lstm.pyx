"""The compiled LSTM engine: whole-sequence forward and backward (BPTT) of one layer.

Design
------
The time loop runs without the GIL and without Python objects. Per layer:

- forward: one GEMM projects the input of all T steps at once (# 1a); each
  step then does one recurrent product (# 1b) and one fused pass over the
  gates that applies the activations, updates the cell and writes h (# 2, 3a,
  3b).
- backward: each step does one fused pass from dh, dc to the gate gradients
  and one product for dh_prev (# 3b' .. 1b'); after the loop one GEMM each
  gives dx, dW_ih and dW_hh over all T*B rows, and one reduction gives db
  (# 1a').

The per-step products run *feature-major*: h_prev is kept transposed as
hT (H, B), so W_hh @ hT is a column-major NN gemm, the fastest OpenBLAS form
at small B, and a gemv at B = 1 (OpenBLAS's gemm with a unit dimension is
several times slower). The fused passes read the row-major (B, 4H) gate rows
and write both layouts. The only allocation is a small (B, 5H) scratch per
call, outside the loop; every large buffer is passed in by the caller.

Notation
--------
T steps, B batch, I input size, H hidden size, G = 4H; gate order [i|f|g|o]
as in PyTorch. x (T, B, I); w_ih (4H, I); w_hh (4H, H); hs, cs (T+1, B, H)
with hs[0] = h0, so h_prev of step t is hs[t] and y = hs[1:]; acts (T, B, 4H)
the gate activations. Step labels (# 1a ... 3b') are those of reference.py.
"""

from cython cimport floating
from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from lstm_c._blas cimport gemm, gemv
from lstm_c._gates cimport sigmoid, tanh_

cdef extern from *:
    """
    #ifndef LSTM_C_DEBUG
    #define LSTM_C_DEBUG 0
    #endif
    #ifdef __VERSION__
    #define LSTM_C_CC __VERSION__
    #else
    #define LSTM_C_CC "unknown"
    #endif
    """
    int LSTM_C_DEBUG
    const char* LSTM_C_CC

BUILD_INFO = {
    "debug": bool(LSTM_C_DEBUG),
    "compiler": LSTM_C_CC.decode("utf-8", "replace"),
    "dtypes": ("float32", "float64"),
}


# ----------------------------------------------------------------- checks
# The engine is reachable from Python, so it checks shapes itself: a wrong
# shape must raise, never read or write out of bounds.

cdef int _expect(str name, Py_ssize_t* shape, tuple want) except -1:
    cdef Py_ssize_t n = len(want), d
    for d in range(n):
        if shape[d] != want[d]:
            got = tuple([shape[k] for k in range(n)])
            raise ValueError(f"{name}: expected shape {want}, got {got}")
    return 0


cdef int _blas_int(Py_ssize_t n, str what) except -1:
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {n}")
    if n > INT_MAX:
        raise ValueError(f"{what} = {n} exceeds the BLAS limit of {INT_MAX}")
    return <int>n


cdef floating* _scratch(Py_ssize_t n, floating dummy) except NULL:
    cdef floating* p = <floating*>malloc(n * sizeof(floating))
    if p == NULL:
        raise MemoryError(f"could not allocate {n * sizeof(floating)} bytes of scratch")
    return p


# ----------------------------------------------------------------- forward

def forward_layer(const floating[:, :, ::1] x,     # IN  (T, B, I)
                  const floating[:, ::1] w_ih,     # IN  (4H, I)
                  const floating[:, ::1] w_hh,     # IN  (4H, H)
                  const floating[::1] bias,        # IN  (4H,) b_ih + b_hh
                  floating[:, :, ::1] hs,          # IN/OUT (T+1, B, H), hs[0] = h0
                  floating[:, :, ::1] cs,          # IN/OUT (T+1, B, H) training, (1, B, H) inference
                  floating[:, :, ::1] acts,        # OUT (T, B, 4H) activations (scratch in inference)
                  floating[:, :, ::1] tanh_c,      # OUT (T, B, H) training; untouched in inference
                  bint training):
    """Run one LSTM layer over a whole sequence.

    Parameters
    ----------
    x : array of shape (T, B, I)
    w_ih : array of shape (4H, I)
    w_hh : array of shape (4H, H)
    bias : array of shape (4H,)
        b_ih + b_hh.
    hs : array of shape (T+1, B, H)
        hs[0] holds h0 on entry; on exit hs[t+1] is h_t.
    cs : array of shape (T+1, B, H) when training, else (1, B, H)
        cs[0] holds c0 on entry. Training: cs[t+1] is c_t on exit.
        Inference: cs[0] is updated in place and holds c_T on exit.
    acts : array of shape (T, B, 4H)
        Training: the gate activations [i|f|g|o] of every step.
    tanh_c : array of shape (T, B, H)
        Training: tanh(c_t) of every step. Not touched in inference.
    training : bool
        Store what backward_layer needs.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    _blas_int(T * B, "T*B")
    _blas_int(I, "input size I")
    _blas_int(4 * H, "4 * hidden size")
    _expect("w_ih", w_ih.shape, (4 * H, I))
    _expect("w_hh", w_hh.shape, (4 * H, H))
    _expect("bias", bias.shape, (4 * H,))
    _expect("hs", hs.shape, (T + 1, B, H))
    _expect("cs", cs.shape, (T + 1 if training else 1, B, H))
    _expect("acts", acts.shape, (T, B, 4 * H))
    if training:
        _expect("tanh_c", tanh_c.shape, (T, B, H))

    # NULL tanh_c tells _forward not to store anything for backward.
    cdef floating* tanh_c_ptr = &tanh_c[0, 0, 0] if training else NULL
    cdef floating* scratch = _scratch(5 * H * B, hs[0, 0, 0])
    try:
        with nogil:
            _forward(<int>T, <int>B, <int>I, <int>H, &x[0, 0, 0], &w_ih[0, 0],
                     &w_hh[0, 0], &bias[0], &hs[0, 0, 0], &cs[0, 0, 0],
                     &acts[0, 0, 0], tanh_c_ptr, scratch, scratch + 4 * H * B)
    finally:
        free(scratch)


cdef void _forward(int T, int B, int I, int H,
                   const floating* x, const floating* w_ih, const floating* w_hh,
                   const floating* bias, floating* hs, floating* cs,
                   floating* acts, floating* tanh_c,
                   floating* rT, floating* hT) noexcept nogil:
    # tanh_c is NULL in inference: then c is updated in place in cs[0] and
    # nothing per step is kept beyond h.
    cdef int G = 4 * H
    cdef int TB = T * B
    cdef bint training = tanh_c != NULL
    cdef Py_ssize_t t, b, j, k
    cdef floating* a
    cdef floating* c_prev
    cdef floating* c_t
    cdef floating* h_t
    cdef floating* tc
    cdef floating gi, gf, gg, go, ct, th

    # 1a: input projection of every step at once: acts (T*B, 4H) = x @ w_ih^T
    if TB == 1:
        gemv(False, G, I, 1, w_ih, I, x, 0, acts)
    else:
        gemm(False, True, TB, G, I, 1, x, I, w_ih, I, 0, acts, G)

    for b in range(B):
        for j in range(H):
            hT[j * B + b] = hs[b * H + j]

    for t in range(T):
        # 1b: recurrent product, feature-major: rT (4H, B) = w_hh @ hT
        if B == 1:
            gemv(False, G, H, 1, w_hh, H, hT, 0, rT)
        else:
            gemm(False, False, G, B, H, 1, w_hh, H, hT, B, 0, rT, B)

        a = acts + t * B * G
        h_t = hs + (t + 1) * B * H
        if training:
            c_prev = cs + t * B * H
            c_t = c_prev + B * H
            tc = tanh_c + t * B * H
        else:
            c_prev = cs
            c_t = cs
        for b in range(B):
            for j in range(H):
                k = b * G + j
                # 2: activations of the four gates
                gi = sigmoid(a[k] + rT[j * B + b] + bias[j])
                gf = sigmoid(a[k + H] + rT[(H + j) * B + b] + bias[H + j])
                gg = tanh_(a[k + 2 * H] + rT[(2 * H + j) * B + b] + bias[2 * H + j])
                go = sigmoid(a[k + 3 * H] + rT[(3 * H + j) * B + b] + bias[3 * H + j])
                # 3a: cell update; 3b: hidden state
                ct = gf * c_prev[b * H + j] + gi * gg
                th = tanh_(ct)
                c_t[b * H + j] = ct
                h_t[b * H + j] = go * th
                hT[j * B + b] = go * th
                if training:
                    a[k] = gi
                    a[k + H] = gf
                    a[k + 2 * H] = gg
                    a[k + 3 * H] = go
                    tc[b * H + j] = th


# ----------------------------------------------------------------- backward

def backward_layer(const floating[:, :, ::1] x,       # IN  (T, B, I)
                   const floating[:, ::1] w_ih,       # IN  (4H, I)
                   const floating[:, ::1] w_hh,       # IN  (4H, H)
                   const floating[:, :, ::1] hs,      # IN  (T+1, B, H) from forward
                   const floating[:, :, ::1] cs,      # IN  (T+1, B, H) from forward
                   const floating[:, :, ::1] acts,    # IN  (T, B, 4H) from forward
                   const floating[:, :, ::1] tanh_c,  # IN  (T, B, H) from forward
                   const floating[:, :, ::1] dy,      # IN  (T, B, H)
                   const floating[:, ::1] dh_n,       # IN  (B, H)
                   const floating[:, ::1] dc_n,       # IN  (B, H)
                   floating[:, :, ::1] dx,            # OUT (T, B, I)
                   floating[:, ::1] dh0,              # OUT (B, H)
                   floating[:, ::1] dc0,              # OUT (B, H)
                   floating[:, ::1] dw_ih,            # INOUT (4H, I), added to
                   floating[:, ::1] dw_hh,            # INOUT (4H, H), added to
                   floating[::1] db,                  # INOUT (4H,), added to
                   floating[:, :, ::1] dgates):       # OUT (T, B, 4H) scratch
    """Backpropagate through one layer over the whole sequence (BPTT).

    Parameters
    ----------
    x, w_ih, w_hh, hs, cs, acts, tanh_c
        As left by ``forward_layer(..., training=True)``.
    dy : array of shape (T, B, H)
        dL/dh_t from above, every step.
    dh_n, dc_n : arrays of shape (B, H)
        dL/dh_T and dL/dc_T from outside the sequence.
    dx : array of shape (T, B, I)
        Overwritten with dL/dx.
    dh0, dc0 : arrays of shape (B, H)
        Overwritten with dL/dh0 and dL/dc0.
    dw_ih, dw_hh, db
        The weight gradients are *added* to these (db is the gradient of both
        b_ih and b_hh).
    dgates : array of shape (T, B, 4H)
        On exit, dL/d(gate pre-activations) of every step.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    _blas_int(T * B, "T*B")
    _blas_int(I, "input size I")
    _blas_int(4 * H, "4 * hidden size")
    _expect("w_ih", w_ih.shape, (4 * H, I))
    _expect("w_hh", w_hh.shape, (4 * H, H))
    _expect("hs", hs.shape, (T + 1, B, H))
    _expect("cs", cs.shape, (T + 1, B, H))
    _expect("acts", acts.shape, (T, B, 4 * H))
    _expect("tanh_c", tanh_c.shape, (T, B, H))
    _expect("dy", dy.shape, (T, B, H))
    _expect("dh_n", dh_n.shape, (B, H))
    _expect("dc_n", dc_n.shape, (B, H))
    _expect("dx", dx.shape, (T, B, I))
    _expect("dh0", dh0.shape, (B, H))
    _expect("dc0", dc0.shape, (B, H))
    _expect("dw_ih", dw_ih.shape, (4 * H, I))
    _expect("dw_hh", dw_hh.shape, (4 * H, H))
    _expect("db", db.shape, (4 * H,))
    _expect("dgates", dgates.shape, (T, B, 4 * H))

    cdef floating* scratch = _scratch(5 * H * B, dx[0, 0, 0])
    try:
        with nogil:
            _backward(<int>T, <int>B, <int>I, <int>H, &x[0, 0, 0], &w_ih[0, 0],
                      &w_hh[0, 0], &hs[0, 0, 0], &cs[0, 0, 0], &acts[0, 0, 0],
                      &tanh_c[0, 0, 0], &dy[0, 0, 0], &dh_n[0, 0], &dc_n[0, 0],
                      &dx[0, 0, 0], &dh0[0, 0], &dc0[0, 0], &dw_ih[0, 0],
                      &dw_hh[0, 0], &db[0], &dgates[0, 0, 0],
                      scratch, scratch + 4 * H * B)
    finally:
        free(scratch)


cdef void _backward(int T, int B, int I, int H,
                    const floating* x, const floating* w_ih, const floating* w_hh,
                    const floating* hs, const floating* cs, const floating* acts,
                    const floating* tanh_c, const floating* dy,
                    const floating* dh_n, const floating* dc_n,
                    floating* dx, floating* dh0, floating* dc0,
                    floating* dw_ih, floating* dw_hh, floating* db,
                    floating* dgates, floating* dgT, floating* dhT) noexcept nogil:
    # dhT (H, B) carries dL/dh_prev feature-major between steps; dc0 doubles
    # as the running dL/dc, updated in place from dc_n down to dc0.
    cdef int G = 4 * H
    cdef int TB = T * B
    cdef Py_ssize_t t, b, j, k, n
    cdef const floating* a
    cdef const floating* tc
    cdef const floating* c_prev
    cdef const floating* dyt
    cdef floating* dg
    cdef floating gi, gf, gg, go, th, dh, dct, d_i, d_f, d_g, d_o

    memcpy(dc0, dc_n, B * H * sizeof(floating))
    for b in range(B):
        for j in range(H):
            dhT[j * B + b] = dh_n[b * H + j]

    for t in range(T - 1, -1, -1):
        a = acts + t * B * G
        dg = dgates + t * B * G
        tc = tanh_c + t * B * H
        c_prev = cs + t * B * H
        dyt = dy + t * B * H
        for b in range(B):
            for j in range(H):
                k = b * G + j
                gi = a[k]
                gf = a[k + H]
                gg = a[k + 2 * H]
                go = a[k + 3 * H]
                th = tc[b * H + j]
                dh = dyt[b * H + j] + dhT[j * B + b]
                # 3b': through h_t = o * tanh(c_t)
                dct = dc0[b * H + j] + dh * go * (1 - th * th)
                d_o = dh * th * go * (1 - go)
                # 3a': through c_t = f * c_prev + i * g
                dc0[b * H + j] = dct * gf
                # 2': through the activations, to the pre-activation gates
                d_i = dct * gg * gi * (1 - gi)
                d_f = dct * c_prev[b * H + j] * gf * (1 - gf)
                d_g = dct * gi * (1 - gg * gg)
                dg[k] = d_i
                dg[k + H] = d_f
                dg[k + 2 * H] = d_g
                dg[k + 3 * H] = d_o
                dgT[j * B + b] = d_i
                dgT[(H + j) * B + b] = d_f
                dgT[(2 * H + j) * B + b] = d_g
                dgT[(3 * H + j) * B + b] = d_o
        # 1b': dh_prev, feature-major: dhT (H, B) = w_hh^T @ dgT
        if B == 1:
            gemv(True, G, H, 1, w_hh, H, dgT, 0, dhT)
        else:
            gemm(True, False, H, B, G, 1, w_hh, H, dgT, B, 0, dhT, B)

    for b in range(B):
        for j in range(H):
            dh0[b * H + j] = dhT[j * B + b]

    # 1a': one GEMM each over all T*B rows, then the bias reduction
    if TB == 1:
        gemv(True, G, I, 1, w_ih, I, dgates, 0, dx)
    else:
        gemm(False, False, TB, I, G, 1, dgates, G, w_ih, I, 0, dx, I)
    gemm(True, False, G, I, TB, 1, dgates, G, x, I, 1, dw_ih, I)
    gemm(True, False, G, H, TB, 1, dgates, G, hs, H, 1, dw_hh, H)
    for n in range(TB):
        for k in range(G):
            db[k] += dgates[n * G + k]
