"""Which points ``lstm-c bench`` measures, and how many GEMM FLOPs each one is.

Three grids (``--grid``):

  default  the product of ``--dtype``, ``--B`` and ``--H`` at one ``--T``, ``--I``
           and ``--layers`` (the options' defaults, or what was given);
  quick    a few small points, short timings: seconds, for a first look;
  anchors  the 22 LSTM points and 5 streaming points of the perf-anchors tables
           (``shared/perf-anchors.md`` section 4), so lstm-c's numbers sit beside
           torch's and the BLAS floor's measured there.

A point is ``(dtype, T, B, I, H, L)``; a streaming point is ``(dtype, I, H, L)``
(T = B = 1, the state carried from call to call). ``--bidirectional`` and
``--proj-size P`` (default grid, infer and train only) make every point's
LSTM bidirectional or projected; a row then also carries ``D`` (directions,
1 or 2) and ``P`` (proj_size, 0 for none).
"""
from __future__ import annotations

GRIDS = ("default", "quick", "anchors")

# perf-anchors section 4, in its tables' order: (dtype, T, B, I, H, L)
ANCHOR_POINTS = (
    [("float32", 100, B, 65, H, 1) for B in (1, 16, 64) for H in (128, 256, 512, 1024)]
    + [("float32", 50, 16, 128, 256, 1), ("float32", 50, 64, 128, 512, 1),
       ("float32", 50, 1, 128, 1024, 1),
       ("float32", 100, 1, 65, 512, 3), ("float32", 100, 16, 65, 512, 3),
       ("float32", 100, 64, 65, 256, 3), ("float32", 50, 64, 65, 512, 3),
       ("float64", 100, 1, 65, 256, 1), ("float64", 100, 16, 65, 512, 1),
       ("float64", 100, 64, 65, 256, 1)])
# perf-anchors' streaming table: (dtype, I, H, L)
ANCHOR_STREAM = [("float32", 65, 128, 1), ("float32", 65, 512, 1), ("float32", 65, 1024, 1),
                 ("float32", 65, 512, 3), ("float64", 65, 512, 1)]

QUICK_POINTS = [("float32", 50, B, 65, 128, 1) for B in (1, 32)]
QUICK_STREAM = [("float32", 65, 128, 1)]

# What each grid measures unless --mode, --threads or --min-time say otherwise.
GRID_DEFAULTS = {
    "default": dict(mode=["infer", "train"], threads=[1, 2], min_time=0.25, peak_n=2048),
    "quick": dict(mode=["infer", "train", "stream"], threads=[1], min_time=0.05, peak_n=1024),
    "anchors": dict(mode=["infer", "train", "stream"], threads=[1, 2], min_time=0.25,
                    peak_n=2048),
}


def lstm_points(grid, dtypes=None, T=None, B=None, I=None, H=None, L=None):
    """The (dtype, T, B, I, H, L) points of a grid.

    For ``default`` the other arguments span the grid (B, H and dtypes are
    lists). For ``quick`` and ``anchors`` the points are fixed; ``dtypes``, when
    given, keeps only the points of those dtypes.
    """
    if grid == "default":
        return [(dt, T, b, I, h, L) for dt in dtypes for b in B for h in H]
    points = {"quick": QUICK_POINTS, "anchors": ANCHOR_POINTS}[grid]
    return [p for p in points if dtypes is None or p[0] in dtypes]


def stream_points(grid, dtypes=None, I=None, H=None, L=None):
    """The (dtype, I, H, L) streaming points of a grid (B = T = 1)."""
    if grid == "default":
        return [(dt, I, h, L) for dt in dtypes for h in H]
    points = {"quick": QUICK_STREAM, "anchors": ANCHOR_STREAM}[grid]
    return [p for p in points if dtypes is None or p[0] in dtypes]


def gemm_flops(T, B, I, H, L, mode, D=1, P=0):
    """GEMM FLOPs of one call, counted as perf-anchors section 2 does.

    Forward, per layer and direction: ``2 * T * B * 4H * (I_l + P_h)`` (the
    input GEMM and the T recurrent products), plus with a projection
    (``P`` = proj_size > 0) the T products h_t = W_hr m_t, ``2 * T * B * H * P``.
    P_h is the width of h: P with a projection, else H. I_l is I for layer 0
    and ``D * P_h`` above it (the directions' outputs concatenated). ``D`` = 2
    (bidirectional) runs every layer twice. Training (forward + backward) is 3x
    that: backward makes two more products of each size (dh and dX, dW_ih and
    dW_hh; dm and dW_hr for the projection). "stream" is a forward at
    T = B = 1. The gate math is not counted.
    """
    width = P or H
    forward = 0
    for layer in range(L):
        inputs = I if layer == 0 else D * width
        per_direction = 2 * T * B * 4 * H * (inputs + width)
        if P:
            per_direction += 2 * T * B * H * P
        forward += D * per_direction
    return 3 * forward if mode == "train" else forward
