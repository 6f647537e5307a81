/* The recurrent product of every step, over W_hh packed once per call.
 *
 * Why: per step an LSTM multiplies the batch's h (B, H) by W_hh^T (H, 4H).
 * Through BLAS that is one gemm per step, and OpenBLAS re-packs W_hh into its
 * blocked layout on every call; oneDNN (torch's float32 path) packs once per
 * sequence and so beats any per-step BLAS caller at B >= 16. Here W_hh is
 * packed once per forward (and once per backward) call, and an own register-
 * blocked kernel (_recurrent_kernels.h) streams the packed panels and runs the
 * gate math on each block of sums while it is still in registers.
 *
 * Layouts (U = hidden units per vector register of the chosen instruction set):
 *   forward  wp (ceil(H/U), 1 + H + I, 4, U): panel p holds, for units
 *            p*U .. p*U+U-1 and each of the four gates, the bias, then the
 *            W_hh columns (k < H), then the W_ih columns; one step of the k
 *            loop reads 4 vectors and adds to i, f, g, o of U units. The input
 *            projection thus runs inside the step, and nothing of it goes
 *            through memory;
 *   backward wb (ceil(H/4U), 4H, 4U): panel q holds W_hh[:, q*4U : q*4U+4U],
 *            so dh_{t-1} = dg_t @ W_hh comes out 4U units at a time.
 * Units past H in the last panel are zero-padded.
 *
 * The kernels are built for AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and
 * the x86-64 baseline, and the best one for the running CPU is picked on the
 * first call (so one wheel runs on any x86-64); other GCC/clang targets get one
 * portable copy. The packing width comes from the same pick, so callers ask
 * lstmc_unit_*() for the sizes. Without GCC vector extensions there is no
 * packed path (unit 0) and the engine keeps to per-step BLAS.
 */
#ifndef LSTM_C_RECURRENT_H
#define LSTM_C_RECURRENT_H

#include <string.h>

#include "_gates.h"

#if defined(__GNUC__) || defined(__clang__)
#define LSTMC_HAVE_PACKED 1
#else
#define LSTMC_HAVE_PACKED 0
#endif

#if LSTMC_HAVE_PACKED

/* Ask for the cache lines of [p, p + bytes) ahead of use. */
LSTMC_INLINE void lstmc_prefetch_span(const void *p, long bytes)
{
    const char *c = (const char *)p;
    for (long i = 0; i < bytes; i += 64)
        __builtin_prefetch(c + i);
    __builtin_prefetch(c + bytes - 1);
}

/* The sums in the k loops should be fused multiply-adds: twice the rate of a
 * separate multiply and add. The gate kernels are built without contraction
 * (setup.py), so this file turns it back on for itself only. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#elif defined(__clang__)
#pragma clang fp contract(fast)
#endif

#if defined(LSTMC_CLONES_ACTIVE)
#define LSTMC_MULTI_ISA 1
#else
#define LSTMC_MULTI_ISA 0
#endif

/* 32 zmm registers: 4 rows x 4 vectors of sums. */
#if LSTMC_MULTI_ISA
#define RK_TARGET __attribute__((target("arch=x86-64-v4")))
#define RK_ISA _v4
#define RK_VEC_BYTES 64
#define RK_MR 4
#include "_recurrent_isa.h"

/* 16 ymm registers: 2 rows x 4 vectors of sums. */
#define RK_TARGET __attribute__((target("arch=x86-64-v3")))
#define RK_ISA _v3
#define RK_VEC_BYTES 32
#define RK_MR 2
#include "_recurrent_isa.h"
#endif /* LSTMC_MULTI_ISA */

/* 16-byte vectors: SSE2 on the x86-64 baseline, NEON and the like elsewhere. */
#define RK_TARGET
#define RK_ISA _base
#define RK_VEC_BYTES 16
#define RK_MR 2
#include "_recurrent_isa.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* 2: AVX-512, 1: AVX2, 0: baseline; chosen once (a race only writes the same value). */
static int lstmc_rec_level = -1;

static int lstmc_rec_isa(void)
{
    if (lstmc_rec_level < 0) {
#if LSTMC_MULTI_ISA
        __builtin_cpu_init();
        lstmc_rec_level = __builtin_cpu_supports("x86-64-v4") ? 2
                        : __builtin_cpu_supports("x86-64-v3") ? 1 : 0;
#else
        lstmc_rec_level = 0;
#endif
    }
    return lstmc_rec_level;
}

/* For tests: run the kernels of a lower level than the CPU's best (the AVX2
 * and baseline copies are otherwise never run on an AVX-512 machine). Returns
 * the level in force. Not while another thread is inside the engine. */
static int lstmc_rec_use_level(int level)
{
    lstmc_rec_level = -1;
    int best = lstmc_rec_isa();
    lstmc_rec_level = level < best ? (level < 0 ? 0 : level) : best;
    return lstmc_rec_level;
}

#if LSTMC_MULTI_ISA
#define LSTMC_PICK(name, T, ...)                                   \
    switch (lstmc_rec_isa()) {                                     \
    case 2: name##_v4_##T(__VA_ARGS__); break;                     \
    case 1: name##_v3_##T(__VA_ARGS__); break;                     \
    default: name##_base_##T(__VA_ARGS__);                         \
    }
static int lstmc_unit_f32(void) { static const int u[] = {4, 8, 16}; return u[lstmc_rec_isa()]; }
static int lstmc_unit_f64(void) { static const int u[] = {2, 4, 8}; return u[lstmc_rec_isa()]; }
#else
#define LSTMC_PICK(name, T, ...) name##_base_##T(__VA_ARGS__);
static int lstmc_unit_f32(void) { return 4; }
static int lstmc_unit_f64(void) { return 2; }
#endif

#define LSTMC_PACKED_API(T, TYPE)                                                          \
/* Elements of the forward and backward packings of a (4H, H) W_hh. */                   \
static long lstmc_packed_fwd_len_##T(int H, int I)                                         \
{                                                                                          \
    const long u = lstmc_unit_##T();                                                       \
    return (H + u - 1) / u * u * 4L * (1L + H + I);                                        \
}                                                                                          \
static long lstmc_packed_bwd_len_##T(int H)                                                \
{                                                                                          \
    const long w = 4L * lstmc_unit_##T();                                                  \
    return (H + w - 1) / w * w * 4L * H;                                                   \
}                                                                                          \
static void lstmc_pack_fwd_##T(int H, int I, const TYPE *restrict w_hh,                    \
                               const TYPE *restrict w_ih, const TYPE *restrict bias,       \
                               TYPE *restrict wp)                                          \
{                                                                                          \
    const long u = lstmc_unit_##T(), h1 = H, i1 = I, panels = (h1 + u - 1) / u;            \
    const long panel_len = (1 + h1 + i1) * 4 * u;                                          \
    /* Zeroing all first also pads the lanes past H, and measured faster than    \
     * zeroing the last panel alone (the block writes then find their lines). */   \
    memset(wp, 0, lstmc_packed_fwd_len_##T(H, I) * sizeof(TYPE));                          \
    for (long p = 0; p < panels; p++) {                                                    \
        TYPE *panel = wp + p * panel_len;                                                  \
        const long nu = h1 - p * u < u ? h1 - p * u : u;                                   \
        for (long g = 0; g < 4; g++)                                                       \
            for (long v = 0; v < nu; v++)                                                  \
                panel[g * u + v] = bias[g * h1 + p * u + v];                               \
        /* Blocks of 16 k: the 4u source rows' pieces and the block of the                 \
         * panel both stay in L1 (a plain loop writes one number per 4u). */               \
        for (long part = 0; part < 2; part++) {                                            \
            const TYPE *w = part == 0 ? w_hh : w_ih;                                       \
            const long K = part == 0 ? h1 : i1;                                            \
            TYPE *dst = panel + (part == 0 ? 1 : 1 + h1) * 4 * u;                          \
            for (long k0 = 0; k0 < K; k0 += 16) {                                          \
                const long k1 = k0 + 16 < K ? k0 + 16 : K;                                 \
                for (long g = 0; g < 4; g++)                                               \
                    for (long v = 0; v < nu; v++) {                                        \
                        const TYPE *row = w + (g * h1 + p * u + v) * K;                    \
                        for (long k = k0; k < k1; k++)                                     \
                            dst[(k * 4 + g) * u + v] = row[k];                             \
                    }                                                                      \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
static void lstmc_pack_bwd_##T(int H, const TYPE *restrict w, TYPE *restrict wb)          \
{                                                                                          \
    const long width = 4L * lstmc_unit_##T(), h1 = H;                                      \
    const long panels = (h1 + width - 1) / width;                                          \
    for (long q = 0; q < panels; q++) {                                                    \
        const long j0 = q * width, nu = h1 - j0 < width ? h1 - j0 : width;                 \
        for (long k = 0; k < 4 * h1; k++) {                                                \
            TYPE *dst = wb + (q * 4 * h1 + k) * width;                                     \
            memcpy(dst, w + k * h1 + j0, nu * sizeof(TYPE));                               \
            memset(dst + nu, 0, (width - nu) * sizeof(TYPE));                              \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
static void lstmc_fwd_step_##T(int B, int H, int I, const TYPE *wp, const TYPE *hprev,     \
                               const TYPE *x, TYPE *acts, const TYPE *c_prev, TYPE *c,     \
                               TYPE *h, TYPE *tanh_c)                                      \
{                                                                                          \
    LSTMC_PICK(lstmc_fwd_step, T, B, H, I, wp, hprev, x, acts, c_prev, c, h, tanh_c)       \
}                                                                                          \
static void lstmc_bwd_step_##T(int B, int H, const TYPE *wb, const TYPE *dg,              \
                               const TYPE *dy, const TYPE *acts, const TYPE *tanh_c,       \
                               const TYPE *c_prev, TYPE *dc, TYPE *dg_out, TYPE *dh_out)   \
{                                                                                          \
    LSTMC_PICK(lstmc_bwd_step, T, B, H, wb, dg, dy, acts, tanh_c, c_prev, dc, dg_out,      \
               dh_out)                                                                     \
}

LSTMC_PACKED_API(f32, float)
LSTMC_PACKED_API(f64, double)

#else /* no vector extensions: the engine stays on per-step BLAS */

static int lstmc_unit_f32(void) { return 0; }
static int lstmc_unit_f64(void) { return 0; }
static int lstmc_rec_use_level(int level) { (void)level; return 0; }
#define LSTMC_NO_PACKED(T, TYPE)                                                           \
static long lstmc_packed_fwd_len_##T(int H, int I) { (void)H; (void)I; return 0; }         \
static long lstmc_packed_bwd_len_##T(int H) { (void)H; return 0; }                         \
static void lstmc_pack_fwd_##T(int H, int I, const TYPE *w_hh, const TYPE *w_ih,           \
                               const TYPE *bias, TYPE *wp) { (void)H; }                    \
static void lstmc_pack_bwd_##T(int H, const TYPE *w, TYPE *wb) { (void)H; }                \
static void lstmc_fwd_step_##T(int B, int H, int I, const TYPE *wp, const TYPE *hprev,     \
                               const TYPE *x, TYPE *acts, const TYPE *c_prev, TYPE *c,     \
                               TYPE *h, TYPE *tanh_c) { (void)B; }                         \
static void lstmc_bwd_step_##T(int B, int H, const TYPE *wb, const TYPE *dg,               \
                               const TYPE *dy, const TYPE *acts, const TYPE *tanh_c,       \
                               const TYPE *c_prev, TYPE *dc, TYPE *dg_out, TYPE *dh_out)   \
{ (void)B; }
LSTMC_NO_PACKED(f32, float)
LSTMC_NO_PACKED(f64, double)

#endif /* LSTMC_HAVE_PACKED */

#endif
