# Stubs for the compiled engine (src/lstm_c/_lstm.pyx). `floating` is float32
# or float64, one dtype per call; every array C-contiguous. Shapes: T steps,
# B batch, I input, H hidden; gate order [i|f|g|o].
from typing import Any

import numpy as np
import numpy.typing as npt

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]

BUILD_INFO: dict[str, Any]

def forward_layer(
    x: _Float,  # const floating[:, :, ::1] (T, B, I)
    w_ih: _Float,  # const floating[:, ::1] (4H, I)
    w_hh: _Float,  # const floating[:, ::1] (4H, H)
    bias: _Float,  # const floating[::1] (4H,)
    hs: _Float,  # floating[:, :, ::1] (T+1, B, H), IN/OUT
    cs: _Float,  # floating[:, :, ::1] (T+1, B, H) training, (1, B, H) inference, IN/OUT
    acts: _Float,  # floating[:, :, ::1] (T, B, 4H), OUT
    tanh_c: _Float,  # floating[:, :, ::1] (T, B, H) training, OUT
    training: bool,  # bint
) -> None: ...
def backward_layer(
    x: _Float,  # const floating[:, :, ::1] (T, B, I)
    w_ih: _Float,  # const floating[:, ::1] (4H, I)
    w_hh: _Float,  # const floating[:, ::1] (4H, H)
    hs: _Float,  # const floating[:, :, ::1] (T+1, B, H)
    cs: _Float,  # const floating[:, :, ::1] (T+1, B, H)
    acts: _Float,  # const floating[:, :, ::1] (T, B, 4H)
    tanh_c: _Float,  # const floating[:, :, ::1] (T, B, H)
    dy: _Float,  # const floating[:, :, ::1] (T, B, H)
    dh_n: _Float,  # const floating[:, ::1] (B, H)
    dc_n: _Float,  # const floating[:, ::1] (B, H)
    dx: _Float,  # floating[:, :, ::1] (T, B, I), OUT
    dh0: _Float,  # floating[:, ::1] (B, H), OUT
    dc0: _Float,  # floating[:, ::1] (B, H), OUT
    dw_ih: _Float,  # floating[:, ::1] (4H, I), added to
    dw_hh: _Float,  # floating[:, ::1] (4H, H), added to
    db: _Float,  # floating[::1] (4H,), added to
    dgates: _Float,  # floating[:, :, ::1] (T, B, 4H), OUT
) -> None: ...
