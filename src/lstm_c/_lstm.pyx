"""The compiled LSTM engine: whole-sequence forward and backward (BPTT) of one layer.

Design
------
The time loop runs without the GIL and without Python objects, in one of two
ways, picked per call (see "kernel choice"):

- packed (B > 1): W_hh, W_ih and the bias are packed once per forward call,
  W_hh once more per backward call, and one C kernel per step (_recurrent.h)
  does the step's products and its gate math while the sums are in registers.
  The forward then needs no input GEMM and no transposes: the kernel reads the
  rows of h_prev and x_t. The backward kernel gives dh of step t-1 and runs
  that step's gate backward on it.
- per-step BLAS (B = 1, or when asked): the input projection of all steps is
  one GEMM that writes the bias and x @ W_ih^T into the (B, 4H) gate rows;
  each step adds its recurrent product (gemv at B = 1: OpenBLAS's gemm with a
  unit dimension is several times slower; at B > 1 a feature-major gemm on hT
  (H, B), added in by a blocked transpose) and runs the fused gate pass of
  _gates.h (vectorised, AVX-512 / AVX2 / baseline copies picked at run time).

Either way, the backward ends with one GEMM each for dx, dW_ih and dW_hh over
all T*B rows and one reduction for db. Only scratch (packed weights, a small
(B, 5H) buffer) is allocated per call, outside the loop; every large buffer is
passed in by the caller.

Notation
--------
T steps, B batch, I input size, H hidden size, G = 4H; gate order [i|f|g|o]
as in PyTorch. x (T, B, I); w_ih (4H, I); w_hh (4H, H); hs, cs (T+1, B, H)
with hs[0] = h0, so h_prev of step t is hs[t] and y = hs[1:]; acts (T, B, 4H)
the gate activations. Step labels (# 1a ... 3b') are those of reference.py.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from lstm_c._blas cimport gemm, gemv
from lstm_c._gates cimport backward_rows, forward_rows, kernel_isa
from lstm_c._peephole cimport peephole_backward_rows, peephole_forward_rows, peephole_grads
from lstm_c._recurrent cimport (bwd_step, fwd_step, pack_bwd, pack_fwd, packed_bwd_len,
                                packed_fwd_len, packed_unit, use_level)

cdef extern from "_fpenv.h" nogil:
    unsigned int denormals_off "lstmc_denormals_off"() noexcept
    void fpenv_restore "lstmc_fpenv_restore"(unsigned int old) noexcept
    int flushes_denormals "lstmc_flushes_denormals"() noexcept

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

cdef enum:
    MAX_THREADS = 256   # sizes the arrays of row-range bounds


BUILD_INFO = {
    "debug": bool(LSTM_C_DEBUG),
    "compiler": LSTM_C_CC.decode("utf-8", "replace"),
    "dtypes": ("float32", "float64"),
    "gate kernels": kernel_isa().decode("ascii"),
    "denormals": "flushed to zero in engine calls" if flushes_denormals() else "kept",
    "packed recurrent kernels": (f"{packed_unit(<float>0)} float32 / {packed_unit(<double>0)} "
                                 f"float64 units per panel" if packed_unit(<float>0)
                                 else "none (per-step BLAS only)"),
}


# ----------------------------------------------------------------- kernel choice
# The per-step recurrent product runs either on per-step BLAS calls or on the
# packed kernels of _recurrent.h. "auto" picks per call; "blas" and "packed"
# force one, so tests can check both against the reference and benchmarks can
# time both.

RECURRENT_KERNELS = ("auto", "blas", "packed")
cdef int _recurrent_mode = 0


def set_recurrent_kernel(str name):
    """Choose the recurrent product: "auto" (the default), "blas" or "packed"."""
    global _recurrent_mode
    if name not in RECURRENT_KERNELS:
        raise ValueError(f"recurrent kernel must be one of {RECURRENT_KERNELS}, got {name!r}")
    _recurrent_mode = RECURRENT_KERNELS.index(name)


def get_recurrent_kernel():
    return RECURRENT_KERNELS[_recurrent_mode]


PACKED_LEVELS = ("baseline", "avx2", "avx512")


def use_packed_level(str name):
    """For tests: run the packed kernels of an instruction set up to this CPU's best.

    Returns the level in force (the CPU's best when it lacks the one asked for).
    """
    if name not in PACKED_LEVELS:
        raise ValueError(f"level must be one of {PACKED_LEVELS}, got {name!r}")
    return PACKED_LEVELS[use_level(PACKED_LEVELS.index(name))]


def packed_panel_units(dtype):
    """Hidden units per packed panel on this CPU for "float32" or "float64"; 0: none in this build."""
    if str(dtype) not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return packed_unit(<float>0) if str(dtype) == "float32" else packed_unit(<double>0)


cdef bint _use_packed(Py_ssize_t T, Py_ssize_t B, floating dummy) noexcept:
    if packed_unit(dummy) == 0 or _recurrent_mode == 1:
        return False
    if _recurrent_mode == 2:
        return True
    # Packing costs about one pass over W_hh; at B = 1 BLAS's gemv needs no
    # packing and streams W_hh as fast.
    return B > 1


cdef floating* _aligned(Py_ssize_t n, void** raw, floating dummy) except NULL:
    """n elements on a 64-byte boundary (whole cache lines for the vector loads); free(raw[0])."""
    raw[0] = malloc(n * sizeof(floating) + 64)
    if raw[0] == NULL:
        raise MemoryError(f"could not allocate {n * sizeof(floating)} bytes for packed weights")
    return <floating*>((<size_t>raw[0] + 63) & ~(<size_t>63))


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


cdef int _check_sizes(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t P,
                      Py_ssize_t* w_ih_shape, Py_ssize_t* w_hh_shape,
                      Py_ssize_t* w_hr_shape) except -1:
    # P: the size of h, H unless there is a projection w_hr (P, H).
    _blas_int(T * B, "T*B")
    _blas_int(I, "input size I")
    _blas_int(4 * H, "4 * hidden size")
    _blas_int(P, "projection size")
    _blas_int(B * 4 * H, "B * 4 * hidden size")  # the per-step offsets are C ints
    _expect("w_ih", w_ih_shape, (4 * H, I))
    _expect("w_hh", w_hh_shape, (4 * H, P))
    if w_hr_shape != NULL:
        _expect("w_hr", w_hr_shape, (P, H))
    return 0


cdef int _check_threads(int threads) except -1:
    if threads < 1 or threads > MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {threads}")
    return 0


cdef const int* _batch_sizes(const int[::1] batch_sizes, Py_ssize_t T, Py_ssize_t B) except? NULL:
    """Pointer to checked batch_sizes, or NULL when every row runs every step."""
    if batch_sizes is None:
        return NULL
    _expect("batch_sizes", batch_sizes.shape, (T,))
    cdef Py_ssize_t t
    for t in range(T):
        if batch_sizes[t] < 0 or batch_sizes[t] > B or (t > 0 and batch_sizes[t] > batch_sizes[t - 1]):
            raise ValueError(f"batch_sizes: expected non-increasing counts between 0 and B = {B}, "
                             f"got {batch_sizes[t]} at step {t}"
                             + (f" after {batch_sizes[t - 1]}" if t > 0 else ""))
    return &batch_sizes[0]


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
                  bint training,
                  int threads=1,
                  const int[::1] batch_sizes=None,  # IN (T,) rows still running per step
                  const floating[:, ::1] w_hr=None,  # IN (P, H) projection, or None
                  floating[:, :, ::1] ms=None,       # OUT (T, B, H) training, (1, B, H) inference
                  const floating[::1] peephole=None,   # IN (3H,) [p_i | p_f | p_o], or None
                  const floating[:, ::1] rec_mask=None):  # IN (B, P) recurrent dropout, or None
    """Run one LSTM layer over a whole sequence.

    Parameters
    ----------
    x : array of shape (T, B, I)
    w_ih : array of shape (4H, I)
    w_hh : array of shape (4H, P), P = H without a projection
    bias : array of shape (4H,)
        b_ih + b_hh.
    hs : array of shape (T+1, B, P)
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
    threads : int
        Threads for the time loop: on the packed path the batch is split into
        this many row ranges, each run through all steps by its own thread.
    batch_sizes : int32 array of shape (T,), optional
        Sequences of different lengths, as PyTorch's PackedSequence: rows
        sorted longest first, step t runs rows [0, batch_sizes[t]). The rows
        past a sequence's end get h = 0, carry c, and store zero activations.
    w_hr : array of shape (P, H), optional
        A projection of h, as torch's proj_size (LSTMP): h_t = w_hr @ m_t,
        m_t = o * tanh(c_t). The time loop then runs on per-step BLAS.
    ms : array of shape (T, B, H) when training, else (1, B, H); with w_hr
        Training: m_t of every step, for backward; inference: scratch.
    peephole : array of shape (3H,), optional
        Peephole weights [p_i | p_f | p_o]: i and f also see c_{t-1}, o sees c_t.
    rec_mask : array of shape (B, P), optional
        Variational (recurrent) dropout, Gal & Ghahramani: the recurrent
        product reads h_{t-1} * rec_mask, the same mask at every step.
    The time loop runs on per-step BLAS with w_hr, peephole or rec_mask.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2], P = w_hh.shape[1]
    cdef Py_ssize_t H = w_hr.shape[1] if w_hr is not None else P
    _check_sizes(T, B, I, H, P, w_ih.shape, w_hh.shape, w_hr.shape if w_hr is not None else NULL)
    _expect("bias", bias.shape, (4 * H,))
    _expect("hs", hs.shape, (T + 1, B, P))
    _expect("cs", cs.shape, (T + 1 if training else 1, B, H))
    _expect("acts", acts.shape, (T, B, 4 * H))
    if training:
        _expect("tanh_c", tanh_c.shape, (T, B, H))
    if w_hr is not None:
        if ms is None:
            raise ValueError("ms: expected an array for m_t with a projection w_hr")
        _expect("ms", ms.shape, (T if training else 1, B, H))
    if peephole is not None:
        _expect("peephole", peephole.shape, (3 * H,))
    if rec_mask is not None:
        _expect("rec_mask", rec_mask.shape, (B, P))
    _check_threads(threads)
    cdef const int* bs = _batch_sizes(batch_sizes, T, B)
    cdef int starts[MAX_THREADS + 1]
    cdef int parts = _split_rows(<int>T, <int>B, threads, bs, starts)

    # NULL tanh_c tells _forward not to store anything for backward.
    cdef floating* tanh_c_ptr = &tanh_c[0, 0, 0] if training else NULL
    cdef const floating* w_hr_ptr = &w_hr[0, 0] if w_hr is not None else NULL
    cdef floating* ms_ptr = &ms[0, 0, 0] if w_hr is not None else NULL
    cdef const floating* peep = &peephole[0] if peephole is not None else NULL
    cdef const floating* rmask = &rec_mask[0, 0] if rec_mask is not None else NULL
    cdef bint plain = w_hr is None and peephole is None and rec_mask is None
    cdef void* raw = NULL
    cdef unsigned int csr
    cdef floating* wp = NULL
    cdef floating* scratch = NULL
    try:
        if plain and _use_packed(T, B, hs[0, 0, 0]):
            wp = _aligned(packed_fwd_len(<int>H, <int>I, hs[0, 0, 0]), &raw, hs[0, 0, 0])
        else:
            scratch = _scratch(5 * H * B, hs[0, 0, 0])
        with nogil:
            csr = denormals_off()
            _forward(<int>T, <int>B, <int>I, <int>H, <int>P, &x[0, 0, 0], &w_ih[0, 0],
                     &w_hh[0, 0], &bias[0], w_hr_ptr, &hs[0, 0, 0], &cs[0, 0, 0],
                     &acts[0, 0, 0], tanh_c_ptr, ms_ptr, peep, rmask, wp, scratch,
                     scratch + 4 * H * B, bs, parts, starts, _gemv_parts(B, H, P, threads))
            fpenv_restore(csr)
    finally:
        free(scratch)
        free(raw)


# Transposes run in blocks of 16 source rows, so that both sides stay in L1:
# a plain loop strides the destination by a power of two (4H floats) and
# thrashes one cache set.

cdef inline void _transpose(int rows, int cols, int ld, const floating* src,
                            const floating* mask, floating* dst) noexcept nogil:
    """dst (cols, ld)[:, :rows] = (src * mask)^T for src, mask (rows, cols); mask may be NULL."""
    cdef Py_ssize_t r0, r, c
    for r0 in range(0, rows, 16):
        for c in range(cols):
            for r in range(r0, min(r0 + 16, rows)):
                dst[c * ld + r] = src[r * cols + c] * (mask[r * cols + c] if mask != NULL else 1)


cdef inline void _add_transposed(int rows, int cols, int ld, const floating* src,
                                 floating* dst) noexcept nogil:
    """dst (cols, rows) += src (rows, ld)[:, :cols]^T."""
    cdef Py_ssize_t r0, r, c
    for r0 in range(0, rows, 16):
        for c in range(cols):
            for r in range(r0, min(r0 + 16, rows)):
                dst[c * rows + r] += src[r * ld + c]


# ----------------------------------------------------------------- threads
# Two cores are used at a coarse grain only: the batch rows are independent
# through the whole time loop, so each thread runs all T steps of its own
# row range over the shared packed weights, with no synchronisation per step.
# Each row's sums run in the same order whatever the split, so the results
# are the same bits at any thread count. (Per-step work split between threads
# would need a barrier every step, which costs more than a step at small B.)

cdef int _split_rows(int T, int B, int threads, const int* bs, int* starts) noexcept nogil:
    """Split B rows into ranges of at least 8 rows for the threads; returns how
    many, with starts[0 .. parts] their bounds (on multiples of 4, the kernels'
    row block). With batch_sizes the rows are sorted longest first, so the
    bounds split the work (the active steps of the rows), not the row count."""
    cdef int parts = threads if threads < B // 8 else B // 8
    cdef int p, b, t
    cdef long total = 0, done = 0
    if parts < 1:
        parts = 1
    starts[0] = 0
    starts[parts] = B
    if bs == NULL:
        for p in range(1, parts):
            starts[p] = (B * p // parts) & ~3
        return parts
    # Row b is active in the steps t with bs[t] > b.
    for t in range(T):
        total += bs[t]
    b = 0
    t = T
    for p in range(1, parts):
        while b < B and done * parts < total * p:
            while t > 0 and bs[t - 1] <= b:
                t -= 1
            done += t          # row b's length
            b += 1
        starts[p] = b & ~3
    return parts


cdef inline int _share(int part, int parts, int n) noexcept nogil:
    """Start of a part's share of n rows, on a multiple of 4."""
    return n if part == parts else (n * part // parts) & ~3


cdef int _gemv_parts(Py_ssize_t B, Py_ssize_t H, Py_ssize_t P, int threads) noexcept nogil:
    """Threads for each step's W_hh product at B = 1: a gemv streams all of
    W_hh from cache, and two cores stream it faster; worth a fork and join
    per step only when W_hh is large (H >= 256 here: 1 MB)."""
    return threads if B == 1 and 4 * H * P >= 4 * 256 * 256 else 1


cdef inline void _gemv_split(int parts, int rows, int cols, const floating* a,
                             const floating* x, floating* y) noexcept nogil:
    """y (rows) += a (rows, cols) @ x, the rows shared out over `parts` threads."""
    cdef int part
    if parts == 1:
        gemv(False, rows, cols, 1, a, cols, x, 1, y)
        return
    for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
        gemv(False, _share(part + 1, parts, rows) - _share(part, parts, rows), cols, 1,
             a + <Py_ssize_t>_share(part, parts, rows) * cols, cols, x, 1,
             y + _share(part, parts, rows))


cdef inline void _gemv_t_split(int parts, int rows, int cols, const floating* a,
                               const floating* x, floating* y) noexcept nogil:
    """y (cols) = a (rows, cols)^T @ x, the columns shared out over `parts` threads."""
    cdef int part
    if parts == 1:
        gemv(True, rows, cols, 1, a, cols, x, 0, y)
        return
    for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
        gemv(True, rows, _share(part + 1, parts, cols) - _share(part, parts, cols), 1,
             a + _share(part, parts, cols), cols, x, 0, y + _share(part, parts, cols))


cdef inline int _active(const int* bs, Py_ssize_t t, int r0, int r1) noexcept nogil:
    """How many of rows [r0, r1) are still inside their sequence at step t."""
    if bs == NULL:
        return r1 - r0
    return 0 if bs[t] <= r0 else (r1 - r0 if bs[t] >= r1 else bs[t] - r0)


cdef void _ended_rows(Py_ssize_t t, int B, int H, int P, int r0, int r1, floating* hs,
                      floating* cs, floating* acts, floating* tanh_c,
                      floating* ms) noexcept nogil:
    """Rows [r0, r1) of step t belong to sequences that have ended: h_t is 0
    (the output past the end), c is carried (so the last cs holds c_n); in
    training the stored activations (and m_t, ms not NULL) are 0."""
    cdef Py_ssize_t n = r1 - r0, G = 4 * H
    if n <= 0:
        return
    memset(hs + ((t + 1) * B + r0) * P, 0, n * P * sizeof(floating))
    if tanh_c != NULL:
        memcpy(cs + ((t + 1) * B + r0) * H, cs + (t * B + r0) * H, n * H * sizeof(floating))
        memset(acts + (t * B + r0) * G, 0, n * G * sizeof(floating))
        memset(tanh_c + (t * B + r0) * H, 0, n * H * sizeof(floating))
        if ms != NULL:
            memset(ms + (t * B + r0) * H, 0, n * H * sizeof(floating))


cdef void _forward(int T, int B, int I, int H, int P,
                   const floating* x, const floating* w_ih, const floating* w_hh,
                   const floating* bias, const floating* w_hr, floating* hs, floating* cs,
                   floating* acts, floating* tanh_c, floating* ms, const floating* peep,
                   const floating* rmask, floating* wp, floating* rT, floating* hT,
                   const int* bs, int parts, const int* starts,
                   int gemv_parts) noexcept nogil:
    # tanh_c is NULL in inference: then c is updated in place in cs[0] and
    # nothing per step is kept beyond h. wp: room for the packed W_hh, W_ih
    # and bias, or NULL for per-step BLAS (which then uses the scratch rT, hT).
    # bs: rows running per step, or NULL for all. w_hr: the projection (P, H)
    # or NULL (then P = H); the gate pass then writes m_t to ms. peep: the
    # peephole weights or NULL; rmask: the recurrent dropout mask (B, P) or NULL.
    cdef int G = 4 * H
    cdef int TB = T * B
    cdef Py_ssize_t t, n
    cdef int part, m
    cdef floating* a
    cdef floating* c
    cdef floating* h_t
    cdef floating* out

    if wp != NULL:
        pack_fwd(H, I, w_hh, w_ih, bias, wp)
        if parts == 1:
            _forward_rows(T, B, I, H, 0, B, x, wp, hs, cs, acts, tanh_c, bs)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _forward_rows(T, B, I, H, starts[part], starts[part + 1], x, wp, hs, cs,
                              acts, tanh_c, bs)
        return

    # 1a: input projection of every step at once, bias included:
    #     acts (T*B, 4H) = bias + x @ w_ih^T
    for n in range(TB):
        memcpy(acts + n * G, bias, G * sizeof(floating))
    if TB == 1:
        gemv(False, G, I, 1, w_ih, I, x, 1, acts)
    else:
        gemm(False, True, TB, G, I, 1, x, I, w_ih, I, 1, acts, G)

    if B > 1 or rmask != NULL:
        _transpose(B, P, B, hs, rmask, hT)
    for t in range(T):
        m = _active(bs, t, 0, B)
        a = acts + t * B * G
        h_t = hs + (t + 1) * B * P
        # The gate pass writes h_t, or with a projection m_t.
        out = h_t if w_hr == NULL else (ms + t * B * H if tanh_c != NULL else ms)
        # 1b: recurrent product added to the gate rows of the m running rows.
        # B = 1: a gemv straight from h_prev; else feature-major,
        # rT (4H, m) = w_hh @ hT, then added.
        if m > 0:
            if B == 1:  # hT holds h_prev * rmask when there is a mask
                _gemv_split(gemv_parts, G, P, w_hh, hs + t * P if rmask == NULL else hT, a)
            else:
                gemm(False, False, G, m, P, 1, w_hh, P, hT, B, 0, rT, B)
                _add_transposed(G, m, B, rT, a)
            c = cs + (t + 1) * B * H if tanh_c != NULL else cs
            if tanh_c != NULL:
                memcpy(c, c - B * H, m * H * sizeof(floating))
            if peep != NULL:
                peephole_forward_rows(m, H, a, c, out,
                                      tanh_c + t * B * H if tanh_c != NULL else NULL, peep)
            else:
                forward_rows(m, H, a, c, out, tanh_c + t * B * H if tanh_c != NULL else NULL)
            if w_hr != NULL:  # 3c: h_t (m, P) = m_t (m, H) @ w_hr^T
                if m == 1:
                    gemv(False, P, H, 1, w_hr, H, out, 0, h_t)
                else:
                    gemm(False, True, m, P, H, 1, out, H, w_hr, H, 0, h_t, P)
        _ended_rows(t, B, H, P, m, B, hs, cs, acts, tanh_c,
                    ms if (w_hr != NULL and tanh_c != NULL) else <floating*>NULL)
        if B > 1 or rmask != NULL:
            _transpose(m, P, B, h_t, rmask, hT)


cdef void _forward_rows(int T, int B, int I, int H, int b0, int b1, const floating* x,
                        const floating* wp, floating* hs, floating* cs, floating* acts,
                        floating* tanh_c, const int* bs) noexcept nogil:
    """The packed time loop over batch rows [b0, b1): 1a, 1b, 2, 3a, 3b in one
    kernel per step, straight from the rows of h_prev and x_t."""
    cdef int G = 4 * H, m
    cdef Py_ssize_t t
    # Denormals are flushed per thread (MXCSR is per thread); a no-op
    # repeat on the calling thread.
    cdef unsigned int csr = denormals_off()
    for t in range(T):
        m = _active(bs, t, b0, b1)
        if m > 0 and tanh_c != NULL:
            fwd_step(m, H, I, wp, hs + (t * B + b0) * H, x + (t * B + b0) * I,
                     acts + (t * B + b0) * G, cs + (t * B + b0) * H,
                     cs + ((t + 1) * B + b0) * H, hs + ((t + 1) * B + b0) * H,
                     tanh_c + (t * B + b0) * H)
        elif m > 0:
            fwd_step(m, H, I, wp, hs + (t * B + b0) * H, x + (t * B + b0) * I,
                     <floating*>NULL, cs + b0 * H, cs + b0 * H,
                     hs + ((t + 1) * B + b0) * H, <floating*>NULL)
        _ended_rows(t, B, H, H, b0 + m, b1, hs, cs, acts, tanh_c, <floating*>NULL)
    fpenv_restore(csr)


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
                   floating[:, :, ::1] dgates,        # OUT (T, B, 4H) scratch
                   int threads=1,
                   const int[::1] batch_sizes=None,   # IN (T,), as given to forward_layer
                   const floating[:, ::1] w_hr=None,  # IN (P, H), as given to forward_layer
                   const floating[:, :, ::1] ms=None, # IN (T, B, H) from forward, with w_hr
                   floating[:, ::1] dw_hr=None,       # INOUT (P, H), added to, with w_hr
                   const floating[::1] peephole=None,  # IN (3H,), as given to forward_layer
                   floating[::1] dpeephole=None,       # INOUT (3H,), added to, with peephole
                   const floating[:, ::1] rec_mask=None):  # IN (B, P), as given to forward_layer
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
    threads : int
        Threads for the time loop, as in forward_layer; the GEMMs after it
        are split into as many shares of their rows, each on one BLAS thread.
    batch_sizes : int32 array of shape (T,), optional
        As given to forward_layer. Past a sequence's end its dgates are 0 and
        dh, dc pass through unchanged (dh_n, dc_n reach its last step); dy
        there is not read.
    w_hr, ms, dw_hr : with a projection
        w_hr and ms as given to and left by forward_layer; the gradient of
        w_hr is added to dw_hr. h, dy, dh_n and dh0 are then P wide.
    peephole, dpeephole, rec_mask
        As given to forward_layer; the peepholes' gradient is added to dpeephole.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2], P = w_hh.shape[1]
    cdef Py_ssize_t H = w_hr.shape[1] if w_hr is not None else P
    _check_sizes(T, B, I, H, P, w_ih.shape, w_hh.shape, w_hr.shape if w_hr is not None else NULL)
    _expect("hs", hs.shape, (T + 1, B, P))
    _expect("cs", cs.shape, (T + 1, B, H))
    _expect("acts", acts.shape, (T, B, 4 * H))
    _expect("tanh_c", tanh_c.shape, (T, B, H))
    _expect("dy", dy.shape, (T, B, P))
    _expect("dh_n", dh_n.shape, (B, P))
    _expect("dc_n", dc_n.shape, (B, H))
    _expect("dx", dx.shape, (T, B, I))
    _expect("dh0", dh0.shape, (B, P))
    _expect("dc0", dc0.shape, (B, H))
    _expect("dw_ih", dw_ih.shape, (4 * H, I))
    _expect("dw_hh", dw_hh.shape, (4 * H, P))
    if w_hr is not None:
        if ms is None or dw_hr is None:
            raise ValueError("ms and dw_hr: expected arrays with a projection w_hr")
        _expect("ms", ms.shape, (T, B, H))
        _expect("dw_hr", dw_hr.shape, (P, H))
    if peephole is not None:
        _expect("peephole", peephole.shape, (3 * H,))
        if dpeephole is None:
            raise ValueError("dpeephole: expected an array with peephole")
        _expect("dpeephole", dpeephole.shape, (3 * H,))
    if rec_mask is not None:
        _expect("rec_mask", rec_mask.shape, (B, P))
    _expect("db", db.shape, (4 * H,))
    _expect("dgates", dgates.shape, (T, B, 4 * H))
    _check_threads(threads)
    cdef const int* bs = _batch_sizes(batch_sizes, T, B)
    cdef int starts[MAX_THREADS + 1]
    cdef int parts = _split_rows(<int>T, <int>B, threads, bs, starts)

    cdef const floating* w_hr_ptr = &w_hr[0, 0] if w_hr is not None else NULL
    cdef void* raw = NULL
    cdef unsigned int csr
    cdef floating* wb = NULL
    cdef const floating* peep = &peephole[0] if peephole is not None else NULL
    cdef const floating* rmask = &rec_mask[0, 0] if rec_mask is not None else NULL
    cdef bint plain = w_hr is None and peephole is None and rec_mask is None
    # dh (B, P); with a projection also dm (B, H) and every step's dh (T, B, P);
    # with a mask h * mask (T, B, P) for dW_hh
    cdef Py_ssize_t dhs_len = H * B + T * B * P if w_hr is not None else 0
    cdef floating* scratch = _scratch(P * B + dhs_len + (T * B * P if rmask != NULL else 0),
                                      dx[0, 0, 0])
    cdef floating* hz = scratch + P * B + dhs_len if rmask != NULL else NULL
    try:
        if plain and _use_packed(T, B, dx[0, 0, 0]):
            wb = _aligned(packed_bwd_len(<int>H, dx[0, 0, 0]), &raw, dx[0, 0, 0])
        with nogil:
            csr = denormals_off()
            _backward(<int>T, <int>B, <int>I, <int>H, <int>P, &x[0, 0, 0], &w_ih[0, 0],
                      &w_hh[0, 0], w_hr_ptr, &hs[0, 0, 0], &cs[0, 0, 0], &acts[0, 0, 0],
                      &tanh_c[0, 0, 0], &ms[0, 0, 0] if w_hr is not None else NULL,
                      &dy[0, 0, 0], &dh_n[0, 0], &dc_n[0, 0],
                      &dx[0, 0, 0], &dh0[0, 0], &dc0[0, 0], &dw_ih[0, 0],
                      &dw_hh[0, 0], &db[0], &dw_hr[0, 0] if w_hr is not None else NULL,
                      peep, &dpeephole[0] if peephole is not None else NULL, rmask, hz,
                      &dgates[0, 0, 0], wb, scratch, threads, bs, parts, starts)
            fpenv_restore(csr)
    finally:
        free(scratch)
        free(raw)


cdef void _backward(int T, int B, int I, int H, int P,
                    const floating* x, const floating* w_ih, const floating* w_hh,
                    const floating* w_hr, const floating* hs, const floating* cs,
                    const floating* acts, const floating* tanh_c, const floating* ms,
                    const floating* dy, const floating* dh_n, const floating* dc_n,
                    floating* dx, floating* dh0, floating* dc0,
                    floating* dw_ih, floating* dw_hh, floating* db, floating* dw_hr,
                    const floating* peep, floating* dpeep, const floating* rmask,
                    floating* hz, floating* dgates, floating* wb, floating* dh, int threads,
                    const int* bs, int parts, const int* starts) noexcept nogil:
    # dh (B, P) carries dL/dh between steps; dc0 doubles as the running
    # dL/dc, updated in place from dc_n down to dc0. wb: room for the packed
    # W_hh, or NULL for per-step BLAS. With a projection (w_hr not NULL) dh
    # is followed by the scratch dm (B, H) and dhs (T, B, P), every step's dh.
    # With a recurrent dropout mask, hz (T, B, P) gets h_{t-1} * mask for dW_hh.
    cdef int G = 4 * H
    cdef int TB = T * B
    cdef int part
    cdef Py_ssize_t n, k
    cdef floating* dhs = dh + B * P + B * H if w_hr != NULL else NULL

    memcpy(dc0, dc_n, B * H * sizeof(floating))
    memcpy(dh, dh_n, B * P * sizeof(floating))
    if wb != NULL:
        pack_bwd(H, w_hh, wb)
        if parts == 1:
            _backward_rows(T, B, H, 0, B, wb, cs, acts, tanh_c, dy, dc0, dgates, dh, dh0, bs)
        else:
            for part in prange(parts, num_threads=parts, schedule="static", chunksize=1):
                _backward_rows(T, B, H, starts[part], starts[part + 1], wb, cs, acts, tanh_c,
                               dy, dc0, dgates, dh, dh0, bs)
    else:
        _backward_blas_steps(T, B, H, P, w_hh, w_hr, peep, rmask, cs, acts, tanh_c, dy, dc0,
                             dgates, dh, dh + B * P, dhs, bs, _gemv_parts(B, H, P, threads))
        memcpy(dh0, dh, B * P * sizeof(floating))
    if peep != NULL:
        peephole_grads(T, B, H, cs, dgates, dpeep)
    if rmask != NULL:  # dW_hh reads the masked h_{t-1}
        for n in range(TB):
            for k in range(P):
                hz[n * P + k] = hs[n * P + k] * rmask[(n % B) * P + k]
        hs = hz

    # 1a': one GEMM each over all T*B rows, then the bias reduction
    if TB == 1:
        gemv(True, G, I, 1, w_ih, I, dgates, 0, dx)
        _weight_grads(0, 1, TB, I, H, P, x, hs, ms, dgates, dhs, dw_ih, dw_hh, db, dw_hr)
        return
    if threads == 1 or TB < 64:
        gemm(False, False, TB, I, G, 1, dgates, G, w_ih, I, 0, dx, I)
        _weight_grads(0, 1, TB, I, H, P, x, hs, ms, dgates, dhs, dw_ih, dw_hh, db, dw_hr)
        return
    for part in prange(threads, num_threads=threads, schedule="static", chunksize=1):
        _input_grads(part, threads, TB, I, H, w_ih, dgates, dx)
        _weight_grads(part, threads, TB, I, H, P, x, hs, ms, dgates, dhs, dw_ih, dw_hh, db,
                      dw_hr)


cdef void _input_grads(int part, int parts, int TB, int I, int H, const floating* w_ih,
                       const floating* dgates, floating* dx) noexcept nogil:
    """This part's share of the T*B rows of dx = dgates @ w_ih."""
    cdef int G = 4 * H
    cdef int r0 = TB * part // parts, r1 = TB * (part + 1) // parts
    if r1 > r0:
        gemm(False, False, r1 - r0, I, G, 1, dgates + r0 * G, G, w_ih, I, 0, dx + r0 * I, I)


cdef void _weight_grads(int part, int parts, int TB, int I, int H, int P, const floating* x,
                        const floating* hs, const floating* ms, const floating* dgates,
                        const floating* dhs, floating* dw_ih, floating* dw_hh, floating* db,
                        floating* dw_hr) noexcept nogil:
    """This part's share of the rows of dW_ih, dW_hh, db and dW_hr (added to)."""
    cdef int G = 4 * H
    cdef int g0 = _share(part, parts, G), g1 = _share(part + 1, parts, G)
    cdef int p0 = _share(part, parts, P), p1 = _share(part + 1, parts, P)
    cdef Py_ssize_t n, k
    if g1 > g0:
        gemm(True, False, g1 - g0, I, TB, 1, dgates + g0, G, x, I, 1, dw_ih + g0 * I, I)
        gemm(True, False, g1 - g0, P, TB, 1, dgates + g0, G, hs, P, 1, dw_hh + g0 * P, P)
        for n in range(TB):
            for k in range(g0, g1):
                db[k] += dgates[n * G + k]
    # 3c': dW_hr (P, H) += dhs^T (P, T*B) @ ms (T*B, H)
    if dw_hr != NULL and p1 > p0:
        gemm(True, False, p1 - p0, H, TB, 1, dhs + p0, P, ms, H, 1, dw_hr + p0 * H, H)


cdef void _backward_rows(int T, int B, int H, int b0, int b1, const floating* wb,
                         const floating* cs, const floating* acts, const floating* tanh_c,
                         const floating* dy, floating* dc, floating* dgates, floating* dh,
                         floating* dh0, const int* bs) noexcept nogil:
    """The packed time loop of backward over batch rows [b0, b1): the last
    step's gates alone, then each kernel call gives dh of step t-1 and runs
    that step's gate backward on it (1b' .. 2'); dh in is dL/dh_T.

    With batch_sizes, of the m rows running at step t-1 the first n (those
    also running at t) take dh from the kernel; the rest end at t-1, and take
    the dh carried from dh_n."""
    cdef int G = 4 * H, nb = b1 - b0, m, n
    cdef Py_ssize_t t
    cdef unsigned int csr = denormals_off()   # per thread, as in _forward_rows
    dh += b0 * H
    dc += b0 * H
    n = 0
    for t in range(T - 1, -1, -1):
        m = _active(bs, t, b0, b1)
        # Rows [0, n) of step t got dh and their gate backward from the
        # kernel at step t+1; rows [n, m) end here; rows [m, nb) have ended.
        if t < T - 1 and n > 0:
            bwd_step(n, H, wb, dgates + ((t + 1) * B + b0) * G, dy + (t * B + b0) * H,
                     acts + (t * B + b0) * G, tanh_c + (t * B + b0) * H,
                     cs + (t * B + b0) * H, dc, dgates + (t * B + b0) * G, <floating*>NULL)
        if m > n:
            _gates_backward_alone(t, B, H, b0 + n, b0 + m, acts, tanh_c, cs, dy,
                                  dh - b0 * H, dc - b0 * H, dgates)
        if nb > m:
            memset(dgates + (t * B + b0 + m) * G, 0, (nb - m) * G * sizeof(floating))
        n = m
    # dh_0 of the rows that ran step 0; rows that never ran keep dh_n.
    if n > 0:
        bwd_step(n, H, wb, dgates + b0 * G, <floating*>NULL, <floating*>NULL, <floating*>NULL,
                 <floating*>NULL, <floating*>NULL, <floating*>NULL, dh0 + b0 * H)
    if nb > n:
        memcpy(dh0 + (b0 + n) * H, dh + n * H, (nb - n) * H * sizeof(floating))
    fpenv_restore(csr)


cdef inline void _gates_backward_alone(Py_ssize_t t, int B, int H, int r0, int r1,
                                       const floating* acts, const floating* tanh_c,
                                       const floating* cs, const floating* dy, floating* dh,
                                       floating* dc, floating* dgates) noexcept nogil:
    """3b' .. 2' of step t for rows [r0, r1) whose dh is the carried one plus dy_t."""
    cdef Py_ssize_t k
    cdef const floating* dyt = dy + (t * B + r0) * H
    cdef floating* d = dh + r0 * H
    for k in range((r1 - r0) * H):
        d[k] += dyt[k]
    backward_rows(r1 - r0, H, acts + (t * B + r0) * 4 * H, tanh_c + (t * B + r0) * H,
                  cs + (t * B + r0) * H, d, dc + r0 * H, dgates + (t * B + r0) * 4 * H)


cdef void _backward_blas_steps(int T, int B, int H, int P, const floating* w_hh,
                               const floating* w_hr, const floating* peep,
                               const floating* rmask, const floating* cs,
                               const floating* acts, const floating* tanh_c,
                               const floating* dy, floating* dc, floating* dgates,
                               floating* dh, floating* dm, floating* dhs,
                               const int* bs, int gemv_parts) noexcept nogil:
    """The time loop of backward on per-step BLAS: dh in is dL/dh_T, out dL/dh_0.

    Only the m rows running at a step take part in it; the others keep dh
    and dc, and get zero dgates. With a projection w_hr, every step's dh goes
    to dhs (for dW_hr) and the gate backward reads dm = dh @ w_hr. With peep,
    the gate backward runs through the peepholes; with rmask, dh_prev is
    masked as h_prev was."""
    cdef int G = 4 * H, m
    cdef Py_ssize_t t, n
    cdef const floating* dyt
    cdef floating* dg
    cdef floating* d
    for t in range(T - 1, -1, -1):
        m = _active(bs, t, 0, B)
        dg = dgates + t * B * G
        if m < B:
            memset(dg + m * G, 0, (B - m) * G * sizeof(floating))
            if dhs != NULL:
                memset(dhs + (t * B + m) * P, 0, (B - m) * P * sizeof(floating))
        if m == 0:
            continue
        dyt = dy + t * B * P
        for n in range(m * P):
            dh[n] += dyt[n]
        d = dh
        if w_hr != NULL:  # 3c': dm (m, H) = dh (m, P) @ w_hr
            memcpy(dhs + t * B * P, dh, m * P * sizeof(floating))
            if m == 1:
                gemv(True, P, H, 1, w_hr, H, dh, 0, dm)
            else:
                gemm(False, False, m, H, P, 1, dh, P, w_hr, H, 0, dm, H)
            d = dm
        if peep != NULL:
            peephole_backward_rows(m, H, acts + t * B * G, tanh_c + t * B * H,
                                   cs + t * B * H, d, dc, dg, peep)
        else:
            backward_rows(m, H, acts + t * B * G, tanh_c + t * B * H, cs + t * B * H,
                          d, dc, dg)
        # 1b': dh_prev (m, P) = dg (m, 4H) @ w_hh
        if m == 1:
            _gemv_t_split(gemv_parts, G, P, w_hh, dg, dh)
        else:
            gemm(False, False, m, P, G, 1, dg, G, w_hh, P, 0, dh, P)
        if rmask != NULL:
            for n in range(m * P):
                dh[n] *= rmask[n]


# ----------------------------------------------------------------- frozen inference

cdef class PackedLSTM:
    """A stack of LSTM layers packed once for inference (``LSTM.freeze()``).

    Holds, per layer, W_ih, W_hh and b_ih + b_hh in the forward layout of
    _recurrent.h, so ``packed_forward`` runs with no packing, no BLAS call and
    no thread switch: a streaming step (T = 1) costs one pass over the packed
    weights. Later changes to the arrays it was made from are not seen.
    """
    cdef void* raw
    cdef char* data
    cdef readonly int num_layers, input_size, hidden_size
    cdef readonly object dtype
    cdef Py_ssize_t total
    cdef Py_ssize_t offsets[64]

    def __cinit__(self, list w_ih, list w_hh, list bias):
        cdef Py_ssize_t L = len(w_ih), k, total = 0, I, H
        if L < 1 or L > 64 or len(w_hh) != L or len(bias) != L:
            raise ValueError(f"expected 1 to 64 layers, each with w_ih, w_hh and bias; got "
                             f"{len(w_ih)}, {len(w_hh)}, {len(bias)}")
        first = w_hh[0]
        self.dtype = first.dtype
        if self.dtype.name not in ("float32", "float64"):
            raise TypeError(f"weights must be float32 or float64, got {self.dtype}")
        H = first.shape[1]
        I = w_ih[0].shape[1]
        self.num_layers, self.input_size, self.hidden_size = L, I, H
        if packed_unit(<float>0) == 0:
            raise RuntimeError("this build of lstm-c has no packed kernels")
        _blas_int(4 * H, "4 * hidden size")
        _blas_int(I, "input size I")
        for k in range(L):
            want = {"w_ih": (4 * H, I if k == 0 else H), "w_hh": (4 * H, H), "bias": (4 * H,)}
            for name, a in zip(want, (w_ih[k], w_hh[k], bias[k])):
                if a.shape != want[name]:
                    raise ValueError(f"{name} of layer {k}: expected shape {want[name]}, "
                                     f"got {a.shape}")
            for a in (w_ih[k], w_hh[k], bias[k]):
                if a.dtype != self.dtype or not a.flags.c_contiguous:
                    raise ValueError(f"layer {k}: expected C-contiguous {self.dtype} arrays")
            self.offsets[k] = total
            if self.dtype.name == "float32":
                total += packed_fwd_len(<int>H, <int>(I if k == 0 else H), <float>0) * sizeof(float)
            else:
                total += packed_fwd_len(<int>H, <int>(I if k == 0 else H), <double>0) * sizeof(double)
        self.total = total
        self.raw = malloc(total + 64)
        if self.raw == NULL:
            raise MemoryError(f"could not allocate {total} bytes for packed weights")
        self.data = <char*>((<size_t>self.raw + 63) & ~(<size_t>63))
        for k in range(L):
            if self.dtype.name == "float32":
                _pack_layer[float](self, k, w_ih[k], w_hh[k], bias[k])
            else:
                _pack_layer[double](self, k, w_ih[k], w_hh[k], bias[k])

    def __dealloc__(self):
        free(self.raw)

    @property
    def nbytes(self):
        """Bytes of packed weights held."""
        return self.total

cdef int _pack_layer(PackedLSTM p, Py_ssize_t k, const floating[:, ::1] w_ih,
                     const floating[:, ::1] w_hh, const floating[::1] bias) except -1:
    with nogil:
        pack_fwd(p.hidden_size, <int>w_ih.shape[1], &w_hh[0, 0], &w_ih[0, 0], &bias[0],
                 <floating*>(p.data + p.offsets[k]))
    return 0


def packed_forward(PackedLSTM p,
                   const floating[:, :, ::1] x,    # IN  (T, B, I)
                   floating[:, :, ::1] h,          # IN/OUT (L, B, H): h0 in, h_n out
                   floating[:, :, ::1] c,          # IN/OUT (L, B, H): c0 in, c_n out
                   floating[:, :, ::1] y):         # OUT (T, B, H)
    """Inference over all layers and steps with the packed weights of ``p``.

    Runs step by step through the stack (step t of layer k as soon as step t
    of layer k-1 is done), so nothing of size T is kept between layers.
    """
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t L = p.num_layers, H = p.hidden_size
    if p.dtype.itemsize != sizeof(floating):
        raise TypeError(f"x: expected {p.dtype}, the dtype of the packed weights")
    if I != p.input_size:
        raise ValueError(f"x: expected input size {p.input_size}, "
                         f"got shape {(x.shape[0], x.shape[1], x.shape[2])}")
    _blas_int(T * B, "T*B")
    _blas_int(B * 4 * H, "B * 4 * hidden size")
    _expect("h", h.shape, (L, B, H))
    _expect("c", c.shape, (L, B, H))
    _expect("y", y.shape, (T, B, H))
    # h ping-pongs between the caller's h and this scratch: the kernel reads
    # h_prev while it writes h_t.
    cdef floating* other = _scratch(L * B * H, y[0, 0, 0])
    cdef floating* cur
    cdef floating* nxt
    cdef const floating* inp
    cdef Py_ssize_t t, k, in_k
    cdef unsigned int csr
    try:
        with nogil:
            csr = denormals_off()
            for t in range(T):
                inp = &x[t, 0, 0]
                for k in range(L):
                    cur = &h[k, 0, 0] if t % 2 == 0 else other + k * B * H
                    nxt = other + k * B * H if t % 2 == 0 else &h[k, 0, 0]
                    in_k = I if k == 0 else H
                    fwd_step(<int>B, <int>H, <int>in_k,
                             <const floating*>(p.data + p.offsets[k]), cur, inp,
                             <floating*>NULL, &c[k, 0, 0], &c[k, 0, 0], nxt,
                             <floating*>NULL)
                    inp = nxt
                memcpy(&y[t, 0, 0], inp, B * H * sizeof(floating))
            if T % 2 == 1:
                memcpy(&h[0, 0, 0], other, L * B * H * sizeof(floating))
            fpenv_restore(csr)
    finally:
        free(other)
