/* Denormal numbers off for the length of an engine call.
 *
 * Saturated gates make tiny products in the backward pass (dc * f * (1 - f)
 * with f near 1, and so on), and tiny numbers below 2^-126 (float) are
 * denormal; on many x86 CPUs every operation on one takes a slow microcode
 * path (oneDNN issue 561: an LSTM's backward 20x slower for some inputs). So
 * the engine sets flush-to-zero and denormals-are-zero in MXCSR on entry and
 * puts the caller's setting back on exit: the caller's own NumPy arithmetic
 * keeps IEEE denormals. A value that would be denormal becomes 0, an error
 * below 1.2e-38 (float) or 2.2e-308 (double) absolute.
 */
#ifndef LSTM_C_FPENV_H
#define LSTM_C_FPENV_H

#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define LSTMC_FTZ_DAZ 0x8040u   /* MXCSR bits 15 (flush to zero) and 6 (denormals are zero) */

static inline unsigned int lstmc_denormals_off(void)
{
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | LSTMC_FTZ_DAZ);
    return old;
}

static inline void lstmc_fpenv_restore(unsigned int old) { _mm_setcsr(old); }
static inline int lstmc_flushes_denormals(void) { return 1; }
#else
/* Elsewhere denormals stay on (ARM cores, for one, handle them at full speed). */
static inline unsigned int lstmc_denormals_off(void) { return 0; }
static inline void lstmc_fpenv_restore(unsigned int old) { (void)old; }
static inline int lstmc_flushes_denormals(void) { return 0; }
#endif

#endif
