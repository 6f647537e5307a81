/* Template: the float32 and float64 kernels of one instruction set.
 *
 * _recurrent.h includes this file once per instruction set after defining
 *   RK_TARGET     the function attribute that picks the instruction set
 *   RK_ISA        the name suffix (e.g. _v4): the kernels become lstmc_*_v4_f32, _v4_f64
 *   RK_VEC_BYTES  the vector register width in bytes (RK_U = lanes of one register)
 *   RK_MR         batch rows per register block
 * and this file undefines them again.
 */

#define RK_T float
#define RK_U (RK_VEC_BYTES / 4)
#define RK_SFX RK_CAT(RK_ISA, _f32)
#define RK_SIGMOID lstmc_sigmoidf
#define RK_TANH lstmc_tanhf
#include "_recurrent_kernels.h"
#undef RK_T
#undef RK_U
#undef RK_SFX
#undef RK_SIGMOID
#undef RK_TANH

#define RK_T double
#define RK_U (RK_VEC_BYTES / 8)
#define RK_SFX RK_CAT(RK_ISA, _f64)
#define RK_SIGMOID lstmc_sigmoid
#define RK_TANH lstmc_tanh
#include "_recurrent_kernels.h"
#undef RK_T
#undef RK_U
#undef RK_SFX
#undef RK_SIGMOID
#undef RK_TANH

#undef RK_TARGET
#undef RK_ISA
#undef RK_VEC_BYTES
#undef RK_MR
