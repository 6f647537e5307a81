/* Template: the packed recurrent kernels for one instruction set and one dtype.
 *
 * _recurrent_isa.h includes this file once per (ISA, dtype) after defining
 *   RK_T        float or double
 *   RK_U        hidden units per forward panel: one vector register of RK_T
 *   RK_MR       batch rows per register block
 *   RK_SFX      suffix of the generated names (e.g. _v4_f32; may use RK_CAT)
 *   RK_TARGET   the function attribute that picks the instruction set
 *   RK_SIGMOID, RK_TANH   the activations of _gates.h for RK_T
 * and undefines them afterwards.
 *
 * Both kernels keep an (RK_MR rows) x (4 vectors) block of sums in registers
 * while they stream one weight panel (see _recurrent.h for the layouts), then
 * run the gate math on the block while it is hot: forward, the cell update of
 * the next step; backward, the gate gradients of the step before. The weight
 * panel is read once per row block, so it stays in L2 across the batch.
 */

#define RK_CAT2(a, b) a##b
#define RK_CAT(a, b) RK_CAT2(a, b)
#define RK_NAME(x) RK_CAT(x, RK_SFX)
#define RK_V RK_NAME(lstmc_vec)

/* aligned(sizeof(RK_T)): loads and stores through this type need not be
 * aligned to the vector size (rows of the gate buffer are not). */
typedef RK_T RK_V __attribute__((vector_size(RK_U * sizeof(RK_T)), aligned(sizeof(RK_T))));

/* Copy n of the FULL lanes: the common full case has a constant size, which
 * the compiler turns into vector moves instead of a call to memcpy. */
#define RK_COPY(dst, src, n, FULL) \
    ((n) == (FULL) ? memcpy(dst, src, (FULL) * sizeof(RK_T)) : memcpy(dst, src, (n) * sizeof(RK_T)))

/* Forward, rows [0, mr) of a row block, hidden units [j0, j0 + nu) of one panel.
 *   panel  (1 + H + I, 4, U) packed [bias; W_hh^T; W_ih^T] columns of these units
 *          (see _recurrent.h), so the sums start at the bias and take in
 *          h_{t-1} @ W_hh^T and x_t @ W_ih^T in one k loop
 *   hprev  (mr, H) rows of h_{t-1};  x (mr, I) rows of x_t
 *   c_prev, c (mr, H): c_{t-1} in, c_t out (the same memory in inference)
 *   h      (mr, H): h_t out
 *   acts (mr, 4H), tanh_c (mr, H): the activations and tanh(c_t), written
 *          only when `store` (training) */
LSTMC_INLINE RK_TARGET void RK_NAME(lstmc_fwd_block)(
    const int mr, const long H, const long I, const RK_T *restrict panel,
    const RK_T *restrict hprev, const RK_T *restrict x, const long j0, const long nu,
    RK_T *acts, const RK_T *c_prev, RK_T *c, RK_T *h, RK_T *tanh_c, const int store)
{
    RK_V acc[RK_MR][4];
    const RK_V *w = (const RK_V *)panel;
    for (int r = 0; r < mr; r++)
        for (int g = 0; g < 4; g++)
            acc[r][g] = w[g];
    w += 4;
#define RK_FMA_ROWS(SRC, LD, K)                                     \
    for (long k = 0; k < (K); k++, w += 4) {                        \
        RK_V w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];            \
        for (int r = 0; r < mr; r++) {                              \
            RK_V v = (SRC)[r * (LD) + k] - (RK_V){0}; /* broadcast: v - 0 is v */ \
            acc[r][0] += v * w0;                                    \
            acc[r][1] += v * w1;                                    \
            acc[r][2] += v * w2;                                    \
            acc[r][3] += v * w3;                                    \
        }                                                           \
    }
    RK_FMA_ROWS(hprev, H, H)
    RK_FMA_ROWS(x, I, I)
#undef RK_FMA_ROWS

    /* The gate math runs on local copies over a fixed U lanes, so the loop
     * has no aliasing and no tail and compiles to straight vector code;
     * lanes past nu compute on zeros and are not written back. */
    for (int r = 0; r < mr; r++) {
        RK_T z[4][RK_U], cp[RK_U], ct[RK_U], ht[RK_U], tc[RK_U], gates[4][RK_U];
        memcpy(z, acc[r], sizeof z);
        if (nu < RK_U)
            memset(cp, 0, sizeof cp);
        RK_COPY(cp, c_prev + r * H + j0, nu, RK_U);
        for (int j = 0; j < RK_U; j++) {
            RK_T gi = RK_SIGMOID(z[0][j]);                           /* 2 */
            RK_T gf = RK_SIGMOID(z[1][j]);
            RK_T gg = RK_TANH(z[2][j]);
            RK_T go = RK_SIGMOID(z[3][j]);
            ct[j] = gf * cp[j] + gi * gg;                            /* 3a */
            tc[j] = RK_TANH(ct[j]);                                  /* 3b */
            ht[j] = go * tc[j];
            gates[0][j] = gi;
            gates[1][j] = gf;
            gates[2][j] = gg;
            gates[3][j] = go;
        }
        RK_COPY(c + r * H + j0, ct, nu, RK_U);
        RK_COPY(h + r * H + j0, ht, nu, RK_U);
        if (store) {
            RK_T *a = acts + r * 4 * H + j0;
            for (int g = 0; g < 4; g++)
                RK_COPY(a + g * H, gates[g], nu, RK_U);
            RK_COPY(tanh_c + r * H + j0, tc, nu, RK_U);
        }
    }
}

/* One forward step for all B rows (# 1a, 1b, 2, 3a, 3b): panels outside,
 * row blocks inside, so each panel is read from L2 across the batch. */
static RK_TARGET void RK_NAME(lstmc_fwd_step)(
    int B, int H, int I, const RK_T *wp, const RK_T *hprev, const RK_T *x, RK_T *acts,
    const RK_T *c_prev, RK_T *c, RK_T *h, RK_T *tanh_c)
{
    const long h1 = H, i1 = I, panels = (h1 + RK_U - 1) / RK_U;
    const long panel_len = (1 + h1 + i1) * 4 * RK_U;
    for (long p = 0; p < panels; p++) {
        const RK_T *panel = wp + p * panel_len;
        const long j0 = p * RK_U, nu = h1 - j0 < RK_U ? h1 - j0 : RK_U;
        long b = 0;
#define RK_FWD(MR, STORE)                                                              \
        RK_NAME(lstmc_fwd_block)(MR, h1, i1, panel, hprev + b * h1, x + b * i1, j0, nu,   \
                                 STORE ? acts + b * 4 * h1 : NULL, c_prev + b * h1,       \
                                 c + b * h1, h + b * h1, STORE ? tanh_c + b * h1 : NULL, STORE)
        if (tanh_c) {
            for (; b + RK_MR <= B; b += RK_MR)
                RK_FWD(RK_MR, 1);
            for (; b < B; b++)
                RK_FWD(1, 1);
        } else {
            for (; b + RK_MR <= B; b += RK_MR)
                RK_FWD(RK_MR, 0);
            for (; b < B; b++)
                RK_FWD(1, 0);
        }
#undef RK_FWD
    }
}

/* Backward, rows [0, mr), hidden units [j0, j0 + nu) of one panel (nu <= 4U).
 *   panel  (4H, 4U) packed W_hh: panel[k][u] = W_hh[k][j0 + u]
 *   dg     (mr, 4H) rows of dL/d(gates) of step t
 * The product is dL/dh_{t-1} from step t. Unless `fuse`, it is written to
 * dh_out (mr, H) and that is all (the last step, t = 0). With `fuse`, dy
 * (mr, H) of step t-1 is added and the gate backward of step t-1 runs on it,
 * reading acts, tanh_c, c_prev of step t-1, updating dc (mr, H) in place and
 * writing dg_out (mr, 4H), as _gates.h's backward rows do. */
LSTMC_INLINE RK_TARGET void RK_NAME(lstmc_bwd_block)(
    const int mr, const long H, const RK_T *restrict panel, const RK_T *restrict dg,
    const long j0, const long nu, const RK_T *dy, const RK_T *acts, const RK_T *tanh_c,
    const RK_T *c_prev, RK_T *dc, RK_T *dg_out, RK_T *dh_out, const int fuse)
{
    RK_V acc[RK_MR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < 4; v++)
            acc[r][v] = (RK_V){0};
    for (int r = 0; fuse && r < mr; r++) {
        const long bytes = 4 * RK_U * sizeof(RK_T), row = r * H + j0;
        for (int g = 0; g < 4; g++)
            lstmc_prefetch_span(acts + r * 4 * H + g * H + j0, bytes);
        lstmc_prefetch_span(dy + row, bytes);
        lstmc_prefetch_span(tanh_c + row, bytes);
        lstmc_prefetch_span(c_prev + row, bytes);
    }
    for (long k = 0; k < 4 * H; k++) {
        const RK_V *w = (const RK_V *)(panel + k * 4 * RK_U);
        RK_V w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        for (int r = 0; r < mr; r++) {
            RK_V d = dg[r * 4 * H + k] - (RK_V){0};
            acc[r][0] += d * w0;
            acc[r][1] += d * w1;
            acc[r][2] += d * w2;
            acc[r][3] += d * w3;
        }
    }
    /* As in the forward: local copies, fixed lanes, straight vector code. */
    enum { W = 4 * RK_U };
    for (int r = 0; r < mr; r++) {
        RK_T d[W];
        memcpy(d, acc[r], sizeof d);
        if (!fuse) {
            RK_COPY(dh_out + r * H + j0, d, nu, W);
            continue;
        }
        const long row = r * H + j0;
        const RK_T *a = acts + r * 4 * H + j0;
        RK_T g[4][W], th[W], cp[W], dcv[W], dyv[W], out[4][W];
        if (nu < W) {
            memset(g, 0, sizeof g);
            memset(th, 0, sizeof th);
            memset(cp, 0, sizeof cp);
            memset(dcv, 0, sizeof dcv);
            memset(dyv, 0, sizeof dyv);
        }
        for (int q = 0; q < 4; q++)
            RK_COPY(g[q], a + q * H, nu, W);
        RK_COPY(th, tanh_c + row, nu, W);
        RK_COPY(cp, c_prev + row, nu, W);
        RK_COPY(dcv, dc + row, nu, W);
        RK_COPY(dyv, dy + row, nu, W);
        for (int j = 0; j < W; j++)
            d[j] += dyv[j];
        for (int j = 0; j < W; j++) {
            RK_T gi = g[0][j], gf = g[1][j], gg = g[2][j], go = g[3][j];
            RK_T dct = dcv[j] + d[j] * go * (1 - th[j] * th[j]);     /* 3b' */
            out[3][j] = d[j] * th[j] * go * (1 - go);
            dcv[j] = dct * gf;                                       /* 3a' */
            out[0][j] = dct * gg * gi * (1 - gi);                    /* 2' */
            out[1][j] = dct * cp[j] * gf * (1 - gf);
            out[2][j] = dct * gi * (1 - gg * gg);
        }
        RK_COPY(dc + row, dcv, nu, W);
        for (int q = 0; q < 4; q++)
            RK_COPY(dg_out + r * 4 * H + j0 + q * H, out[q], nu, W);
    }
}

/* One backward step for all B rows (see lstmc_bwd_block); dy == NULL means
 * the last one: write dL/dh_0 to dh_out and stop. */
static RK_TARGET void RK_NAME(lstmc_bwd_step)(
    int B, int H, const RK_T *wb, const RK_T *dg, const RK_T *dy, const RK_T *acts,
    const RK_T *tanh_c, const RK_T *c_prev, RK_T *dc, RK_T *dg_out, RK_T *dh_out)
{
    const long h1 = H, width = 4 * RK_U, panels = (h1 + width - 1) / width;
    const int fuse = dy != NULL;
    for (long q = 0; q < panels; q++) {
        const RK_T *panel = wb + q * 4 * h1 * width;
        const long j0 = q * width, nu = h1 - j0 < width ? h1 - j0 : width;
        long b = 0;
#define RK_BWD(MR, FUSE)                                                                  \
        RK_NAME(lstmc_bwd_block)(MR, h1, panel, dg + b * 4 * h1, j0, nu,                  \
                                 FUSE ? dy + b * h1 : NULL, FUSE ? acts + b * 4 * h1 : NULL, \
                                 FUSE ? tanh_c + b * h1 : NULL,                            \
                                 FUSE ? c_prev + b * h1 : NULL, FUSE ? dc + b * h1 : NULL, \
                                 FUSE ? dg_out + b * 4 * h1 : NULL,                        \
                                 FUSE ? NULL : dh_out + b * h1, FUSE)
        if (fuse) {
            for (; b + RK_MR <= B; b += RK_MR)
                RK_BWD(RK_MR, 1);
            for (; b < B; b++)
                RK_BWD(1, 1);
        } else {
            for (; b + RK_MR <= B; b += RK_MR)
                RK_BWD(RK_MR, 0);
            for (; b < B; b++)
                RK_BWD(1, 0);
        }
#undef RK_BWD
    }
}

#undef RK_COPY
#undef RK_V
#undef RK_NAME
#undef RK_CAT
#undef RK_CAT2
