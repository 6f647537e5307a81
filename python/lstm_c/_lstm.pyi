# Stubs for the compiled engine (src/lstm_c/_lstm.pyx). `floating` is float32
# or float64, one dtype per call; every array C-contiguous. Shapes: T steps,
# B batch, I input, H hidden, P = the size of h (proj_size, or H without a
# projection w_hr); gate order [i|f|g|o].
from typing import Any

import numpy as np
import numpy.typing as npt

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_Int32 = npt.NDArray[np.int32]

BUILD_INFO: dict[str, Any]

def forward_layer(
    x: _Float,  # const floating[:, :, ::1] (T, B, I)
    w_ih: _Float,  # const floating[:, ::1] (4H, I)
    w_hh: _Float,  # const floating[:, ::1] (4H, P)
    bias: _Float,  # const floating[::1] (4H,)
    hs: _Float,  # floating[:, :, ::1] (T+1, B, P), IN/OUT
    cs: _Float,  # floating[:, :, ::1] (T+1, B, H) training, (1, B, H) inference, IN/OUT
    acts: _Float,  # floating[:, :, ::1] (T, B, 4H), OUT
    tanh_c: _Float,  # floating[:, :, ::1] (T, B, H) training, OUT
    training: bool,  # bint
    threads: int = 1,  # threads for the time loop and the GEMMs
    batch_sizes: _Int32 | None = None,  # (T,) rows running per step, sorted longest first
    w_hr: _Float | None = None,  # (P, H) projection
    ms: _Float | None = None,  # (T, B, H) training, (1, B, H) inference: m_t, with w_hr
    peephole: _Float | None = None,  # (3H,) [p_i | p_f | p_o]
    rec_mask: _Float | None = None,  # (B, P) recurrent dropout mask
) -> None: ...
def backward_layer(
    x: _Float,  # const floating[:, :, ::1] (T, B, I)
    w_ih: _Float,  # const floating[:, ::1] (4H, I)
    w_hh: _Float,  # const floating[:, ::1] (4H, P)
    hs: _Float,  # const floating[:, :, ::1] (T+1, B, P)
    cs: _Float,  # const floating[:, :, ::1] (T+1, B, H)
    acts: _Float,  # const floating[:, :, ::1] (T, B, 4H)
    tanh_c: _Float,  # const floating[:, :, ::1] (T, B, H)
    dy: _Float,  # const floating[:, :, ::1] (T, B, P)
    dh_n: _Float,  # const floating[:, ::1] (B, P)
    dc_n: _Float,  # const floating[:, ::1] (B, H)
    dx: _Float,  # floating[:, :, ::1] (T, B, I), OUT
    dh0: _Float,  # floating[:, ::1] (B, P), OUT
    dc0: _Float,  # floating[:, ::1] (B, H), OUT
    dw_ih: _Float,  # floating[:, ::1] (4H, I), added to
    dw_hh: _Float,  # floating[:, ::1] (4H, P), added to
    db: _Float,  # floating[::1] (4H,), added to
    dgates: _Float,  # floating[:, :, ::1] (T, B, 4H), OUT
    threads: int = 1,
    batch_sizes: _Int32 | None = None,  # as given to forward_layer
    w_hr: _Float | None = None,  # as given to forward_layer
    ms: _Float | None = None,  # (T, B, H) from forward_layer, with w_hr
    dw_hr: _Float | None = None,  # (P, H), added to, with w_hr
    peephole: _Float | None = None,  # as given to forward_layer
    dpeephole: _Float | None = None,  # (3H,), added to, with peephole
    rec_mask: _Float | None = None,  # as given to forward_layer
) -> None: ...
