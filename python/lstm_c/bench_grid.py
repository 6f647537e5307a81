"""Which points ``lstm-c bench`` measures, and how many GEMM FLOPs each one is.

Three grids (``--grid``):

  default  the product of ``--dtype``, ``--B`` and ``--H`` at one ``--T``, ``--I``
           and ``--layers`` (the options' defaults, or what was given);
  quick    a few small points, short timings: seconds, for a first look;
  anchors  the 22 LSTM points and 5 streaming points of the perf-anchors tables
           (``shared/perf-anchors.md`` section 4), so lstm-c's numbers sit beside
           torch's and the BLAS floor's measured there.

A point is ``(dtype, T, B, I, H, L)``; a streaming point is ``(dtype, I, H, L)``
(T = B = 1, the state carried from call to call).
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


def gemm_flops(T, B, I, H, L, mode):
    """GEMM FLOPs of one call, counted as perf-anchors section 2 does.

    Forward, per layer: ``2 * T * B * 4H * (I_l + H)`` (the input GEMM and the
    T recurrent products; I_l is I for layer 0, H above it). Training (forward
    + backward) is 3x that: backward makes dh, dX, dW_ih and dW_hh, two more
    products of the same size. "stream" is a forward at T = B = 1. The gate
    math is not counted.
    """
    forward = sum(2 * T * B * 4 * H * ((I if layer == 0 else H) + H) for layer in range(L))
    return 3 * forward if mode == "train" else forward
