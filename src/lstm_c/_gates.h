/* Fused LSTM gate kernels over rows of a (B, 4H) gate buffer, gate order [i|f|g|o].
 *
 * These are C, not Cython, for one reason: Cython cannot mark pointers
 * `restrict`, and without it the compiler will not vectorise the loops. Each
 * kernel is built three times (target_clones): for AVX-512 (x86-64-v4), for
 * AVX2 + FMA (x86-64-v3) and for the baseline; the dynamic loader picks the
 * best one for the CPU at hand, so one wheel runs on any x86-64 machine.
 *
 * The activations use branch-free exp and tanh that the compiler can
 * vectorise (libm's are scalar calls), within a few ulp of the exact values.
 * Step labels (# 2, 3a, 3b, 2', 3a', 3b') are those of reference.py.
 */
#ifndef LSTM_C_GATES_H
#define LSTM_C_GATES_H

#include <stdint.h>
#include <string.h>

/* Every helper must be inlined into the kernels: a helper left out of line is
 * compiled for the baseline ISA only, and the AVX copies would call it. */
#if defined(__GNUC__) || defined(__clang__)
#define LSTMC_INLINE static inline __attribute__((always_inline))
#else
#define LSTMC_INLINE static inline
#endif

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__linux__)
#define LSTMC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define LSTMC_CLONES_ACTIVE 1
/* The copy the loader picks on this CPU, for `lstm-c info`. */
static const char *lstmc_kernel_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2, FMA)";
    return "x86-64 baseline (SSE2)";
}
#else
#define LSTMC_CLONES
static const char *lstmc_kernel_isa(void) { return "portable C (one copy)"; }
#endif

/* exp(x) for float32 (Cephes expf): x = n ln2 + r with |r| <= ln2/2, exp(r)
 * by a degree-6 polynomial, 2^n built in the exponent bits. Relative error
 * below 1e-7 on [-87, 88]; the input is clamped there so the result stays a
 * normal float (exp(-87) ~ 1.6e-38, exp(88) ~ 1.7e38); NaN stays NaN. */
LSTMC_INLINE float lstmc_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round x / ln2 to the nearest integer with the 1.5 * 2^23 trick */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;       /* ln2 in two parts, so r stays exact */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* exp(x) for float64 (Cephes exp): x = n ln2 + r, exp(r) = 1 + 2 r P(r^2) /
 * (Q(r^2) - r P(r^2)). Relative error below 4e-16 on [-708, 709], where the
 * input is clamped. n is read from the bits of x / ln2 + 1.5 * 2^52, so no
 * double -> int64 conversion is needed (AVX2 has none). */
LSTMC_INLINE double lstmc_exp(double x)
{
    x = x < -708.0 ? -708.0 : x;
    x = x > 709.0 ? 709.0 : x;
    const double magic = 6755399441055744.0;
    double t = x * 1.4426950408889634073599 + magic;
    double n = t - magic;
    x = x - n * 6.93145751953125e-1;
    x = x - n * 1.42860682030941723212e-6;
    double xx = x * x;
    double p = x * ((1.26177193074810590878e-4 * xx + 3.02994407707441961300e-2) * xx
                    + 9.99999999999999999910e-1);
    double q = ((3.00198505138664455042e-6 * xx + 2.52448340349684104192e-3) * xx
                + 2.27265548208155028766e-1) * xx + 2.00000000000000000009e0;
    double e = 1.0 + 2.0 * (p / (q - p));
    uint64_t t_bits, magic_bits;
    memcpy(&t_bits, &t, sizeof t);
    memcpy(&magic_bits, &magic, sizeof magic);
    uint64_t bits = (t_bits - magic_bits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

/* tanh from exp loses relative accuracy near 0 (1 - 2/(e^2x + 1) cancels), so
 * small |x| takes Cephes' odd polynomial (float) or rational (double) instead;
 * both branches are computed and one selected, which keeps the loop vectorisable.
 * Relative error: float below 3e-7, double below 5e-16. */
LSTMC_INLINE float lstmc_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                    + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float big = 1.0f - 2.0f / (lstmc_expf(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

LSTMC_INLINE double lstmc_tanh(double x)
{
    double ax = x < 0 ? -x : x;
    double z = x * x;
    double small = x + x * z * (((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                                 - 1.61468768441708447952e3)
                                / (((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
                                   + 4.84406305325125486048e3));
    double big = 1.0 - 2.0 / (lstmc_exp(2.0 * ax) + 1.0);
    big = x < 0 ? -big : big;
    return ax < 0.625 ? small : big;
}

LSTMC_INLINE float lstmc_sigmoidf(float x) { return 1.0f / (1.0f + lstmc_expf(-x)); }
LSTMC_INLINE double lstmc_sigmoid(double x) { return 1.0 / (1.0 + lstmc_exp(-x)); }

/* Indices are long: under -fwrapv (Python's CFLAGS) int offsets such as H + j
 * may wrap, and the compiler then cannot prove the accesses contiguous. */

/* Forward, one step, all B rows.
 *   acts   IN/OUT (B, 4H): gate pre-activations in; activations out when tanh_c != NULL
 *   c      IN/OUT (B, H):  c_prev in, c_t out
 *   h      OUT    (B, H):  h_t
 *   tanh_c OUT    (B, H):  tanh(c_t), or NULL in inference (then nothing else is stored)
 * The row function takes `store` as a constant from each call site, so each
 * inlined copy is a loop without branches, which the compiler vectorises. */
#define LSTMC_FORWARD_ROWS(NAME, T, SIGMOID, TANH)                                   \
LSTMC_INLINE void NAME##_row(const long H, T *restrict a, T *restrict c,             \
                              T *restrict h, T *restrict tanh_c, const int store)     \
{                                                                                     \
    for (long j = 0; j < H; j++) {                                                    \
        T gi = SIGMOID(a[j]);                                  /* 2 */                \
        T gf = SIGMOID(a[H + j]);                                                     \
        T gg = TANH(a[2 * H + j]);                                                    \
        T go = SIGMOID(a[3 * H + j]);                                                 \
        T ct = gf * c[j] + gi * gg;                            /* 3a */               \
        T th = TANH(ct);                                       /* 3b */               \
        c[j] = ct;                                                                    \
        h[j] = go * th;                                                               \
        if (store) {                                                                  \
            a[j] = gi;                                                                \
            a[H + j] = gf;                                                            \
            a[2 * H + j] = gg;                                                        \
            a[3 * H + j] = go;                                                        \
            tanh_c[j] = th;                                                           \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
LSTMC_CLONES static void NAME(int B, int H, T *restrict acts, T *restrict c,          \
                              T *restrict h, T *restrict tanh_c)                      \
{                                                                                     \
    const long h4 = 4L * H, h1 = H;                                                   \
    for (long b = 0; b < B; b++) {                                                    \
        if (tanh_c)                                                                   \
            NAME##_row(h1, acts + b * h4, c + b * h1, h + b * h1, tanh_c + b * h1, 1); \
        else                                                                          \
            NAME##_row(h1, acts + b * h4, c + b * h1, h + b * h1, NULL, 0);           \
    }                                                                                 \
}

/* Backward, one step, all B rows.
 *   acts, tanh_c, c_prev IN (B, 4H), (B, H), (B, H): as stored by the forward
 *   dh     IN     (B, H):  dL/dh_t, from above and from step t+1
 *   dc     IN/OUT (B, H):  dL/dc_t in, dL/dc_prev out
 *   dgates OUT    (B, 4H): dL/d(gate pre-activations) */
#define LSTMC_BACKWARD_ROWS(NAME, T)                                                  \
LSTMC_CLONES static void NAME(int B, int H, const T *restrict acts,                   \
                              const T *restrict tanh_c, const T *restrict c_prev,     \
                              const T *restrict dh, T *restrict dc,                   \
                              T *restrict dgates)                                     \
{                                                                                     \
    const long h1 = H;                                                                \
    for (long b = 0; b < B; b++) {                                                    \
        const T *restrict a = acts + b * 4 * h1;                                      \
        T *restrict dg = dgates + b * 4 * h1;                                         \
        for (long j = 0; j < h1; j++) {                                               \
            long k = b * h1 + j;                                                      \
            T gi = a[j], gf = a[h1 + j], gg = a[2 * h1 + j], go = a[3 * h1 + j];      \
            T th = tanh_c[k];                                                         \
            T dct = dc[k] + dh[k] * go * (1 - th * th);       /* 3b' */               \
            dg[3 * h1 + j] = dh[k] * th * go * (1 - go);                              \
            dc[k] = dct * gf;                                 /* 3a' */               \
            dg[j] = dct * gg * gi * (1 - gi);                 /* 2' */                \
            dg[h1 + j] = dct * c_prev[k] * gf * (1 - gf);                             \
            dg[2 * h1 + j] = dct * gi * (1 - gg * gg);                                \
        }                                                                             \
    }                                                                                 \
}

LSTMC_FORWARD_ROWS(lstmc_forward_rows_f32, float, lstmc_sigmoidf, lstmc_tanhf)
LSTMC_FORWARD_ROWS(lstmc_forward_rows_f64, double, lstmc_sigmoid, lstmc_tanh)
LSTMC_BACKWARD_ROWS(lstmc_backward_rows_f32, float)
LSTMC_BACKWARD_ROWS(lstmc_backward_rows_f64, double)

#endif
