# The packed recurrent kernels (_recurrent.h, where the layouts and the reason
# are given); these inline wrappers pick the float32 or float64 one, so the
# engine is written once over cython.floating.

from cython cimport floating


cdef extern from "_recurrent.h" nogil:
    int unit_f32 "lstmc_unit_f32"() noexcept
    int unit_f64 "lstmc_unit_f64"() noexcept
    int use_level "lstmc_rec_use_level"(int level) noexcept
    long packed_fwd_len_f32 "lstmc_packed_fwd_len_f32"(int H, int I) noexcept
    long packed_fwd_len_f64 "lstmc_packed_fwd_len_f64"(int H, int I) noexcept
    long packed_bwd_len_f32 "lstmc_packed_bwd_len_f32"(int H) noexcept
    long packed_bwd_len_f64 "lstmc_packed_bwd_len_f64"(int H) noexcept
    void pack_fwd_f32 "lstmc_pack_fwd_f32"(
        int H, int I, const float* w_hh, const float* w_ih, const float* bias, float* wp) noexcept
    void pack_fwd_f64 "lstmc_pack_fwd_f64"(
        int H, int I, const double* w_hh, const double* w_ih, const double* bias,
        double* wp) noexcept
    void pack_bwd_f32 "lstmc_pack_bwd_f32"(int H, const float* w, float* wb) noexcept
    void pack_bwd_f64 "lstmc_pack_bwd_f64"(int H, const double* w, double* wb) noexcept
    void fwd_step_f32 "lstmc_fwd_step_f32"(
        int B, int H, int I, const float* wp, const float* hprev, const float* x,
        float* acts, const float* c_prev, float* c, float* h, float* tanh_c) noexcept
    void fwd_step_f64 "lstmc_fwd_step_f64"(
        int B, int H, int I, const double* wp, const double* hprev, const double* x,
        double* acts, const double* c_prev, double* c, double* h, double* tanh_c) noexcept
    void bwd_step_f32 "lstmc_bwd_step_f32"(
        int B, int H, const float* wb, const float* dg, const float* dy,
        const float* acts, const float* tanh_c, const float* c_prev, float* dc,
        float* dg_out, float* dh_out) noexcept
    void bwd_step_f64 "lstmc_bwd_step_f64"(
        int B, int H, const double* wb, const double* dg, const double* dy,
        const double* acts, const double* tanh_c, const double* c_prev, double* dc,
        double* dg_out, double* dh_out) noexcept


cdef inline int packed_unit(floating dummy) noexcept nogil:
    """Hidden units per forward panel on this CPU; 0: no packed kernels in this build."""
    return unit_f32() if floating is float else unit_f64()


cdef inline long packed_fwd_len(int H, int I, floating dummy) noexcept nogil:
    return packed_fwd_len_f32(H, I) if floating is float else packed_fwd_len_f64(H, I)


cdef inline long packed_bwd_len(int H, floating dummy) noexcept nogil:
    return packed_bwd_len_f32(H) if floating is float else packed_bwd_len_f64(H)


cdef inline void pack_fwd(int H, int I, const floating* w_hh, const floating* w_ih,
                          const floating* bias, floating* wp) noexcept nogil:
    if floating is float:
        pack_fwd_f32(H, I, w_hh, w_ih, bias, wp)
    else:
        pack_fwd_f64(H, I, w_hh, w_ih, bias, wp)


cdef inline void pack_bwd(int H, const floating* w, floating* wb) noexcept nogil:
    if floating is float:
        pack_bwd_f32(H, w, wb)
    else:
        pack_bwd_f64(H, w, wb)


cdef inline void fwd_step(int B, int H, int I, const floating* wp, const floating* hprev,
                          const floating* x, floating* acts, const floating* c_prev,
                          floating* c, floating* h, floating* tanh_c) noexcept nogil:
    """# 1a, 1b, 2, 3a, 3b of one step; acts and tanh_c written unless tanh_c is NULL."""
    if floating is float:
        fwd_step_f32(B, H, I, wp, hprev, x, acts, c_prev, c, h, tanh_c)
    else:
        fwd_step_f64(B, H, I, wp, hprev, x, acts, c_prev, c, h, tanh_c)


cdef inline void bwd_step(int B, int H, const floating* wb, const floating* dg,
                          const floating* dy, const floating* acts,
                          const floating* tanh_c, const floating* c_prev,
                          floating* dc, floating* dg_out, floating* dh_out) noexcept nogil:
    """# 1b' of step t, then 3b' .. 2' of step t-1 (or, dy NULL, dh_0 to dh_out)."""
    if floating is float:
        bwd_step_f32(B, H, wb, dg, dy, acts, tanh_c, c_prev, dc, dg_out, dh_out)
    else:
        bwd_step_f64(B, H, wb, dg, dy, acts, tanh_c, c_prev, dc, dg_out, dh_out)
