# The fused gate passes of one step, over all B rows: the kernels are C
# (_gates.h, where the reason is given); these inline wrappers pick the
# float32 or float64 one, so the engine is written once over cython.floating.

from cython cimport floating


cdef extern from "_gates.h" nogil:
    const char* kernel_isa "lstmc_kernel_isa"() noexcept
    void forward_rows_f32 "lstmc_forward_rows_f32"(
        int B, int H, float* acts, float* c, float* h, float* tanh_c) noexcept
    void forward_rows_f64 "lstmc_forward_rows_f64"(
        int B, int H, double* acts, double* c, double* h, double* tanh_c) noexcept
    void backward_rows_f32 "lstmc_backward_rows_f32"(
        int B, int H, const float* acts, const float* tanh_c, const float* c_prev,
        const float* dh, float* dc, float* dgates) noexcept
    void backward_rows_f64 "lstmc_backward_rows_f64"(
        int B, int H, const double* acts, const double* tanh_c, const double* c_prev,
        const double* dh, double* dc, double* dgates) noexcept


cdef inline void forward_rows(int B, int H, floating* acts, floating* c, floating* h,
                              floating* tanh_c) noexcept nogil:
    """# 2, 3a, 3b: activations, cell update, h; stores for backward unless tanh_c is NULL."""
    if floating is float:
        forward_rows_f32(B, H, acts, c, h, tanh_c)
    else:
        forward_rows_f64(B, H, acts, c, h, tanh_c)


cdef inline void backward_rows(int B, int H, const floating* acts, const floating* tanh_c,
                               const floating* c_prev, const floating* dh, floating* dc,
                               floating* dgates) noexcept nogil:
    """# 3b', 3a', 2': from dh, dc to the gate gradients; dc becomes dL/dc_prev."""
    if floating is float:
        backward_rows_f32(B, H, acts, tanh_c, c_prev, dh, dc, dgates)
    else:
        backward_rows_f64(B, H, acts, tanh_c, c_prev, dh, dc, dgates)
