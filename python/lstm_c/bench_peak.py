"""The machine's GEMM peak: square sgemm / dgemm GFLOP/s, once per ``lstm-c bench`` run.

Every LSTM row's GFLOP/s is divided by this measured rate (same dtype, same
thread count) to give its "% of peak". It is measured with
``scipy.linalg.blas`` (the OpenBLAS the engine links) on Fortran-ordered N x N
matrices, writing into C in place, so nothing but the product is timed.
The best sample counts, as in perf-anchors section 3: a large GEMM's slower
samples are the machine's noise, not the library's speed.

A theoretical peak (clock x FLOP per cycle) is not derived: /proc/cpuinfo gives
the nominal clock, and on the project's machine the cores run well above it
(perf-anchors section 1 measured 3.5 GHz against a nominal 2.6 GHz), so such a
"theoretical" number would sit below the measured one. perf-anchors states it
for that machine: 112-114 fp32 GFLOP/s per core, measured sgemm 88 % of it.
"""
from __future__ import annotations

import numpy as np

from .bench_common import SETTLE_S, timeit

PEAK_REPS = 3


def gemm_peak(dtype, n, min_time, threads=1):
    """GFLOP/s of one N x N x N GEMM in ``dtype`` (threads already pinned by the caller).

    Returns {"dtype", "n", "threads", "gflops" (best sample), "gflops_median", "time"}.
    """
    from scipy.linalg import blas
    dt = np.dtype(dtype)
    gemm = blas.sgemm if dt == np.float32 else blas.dgemm
    rng = np.random.default_rng(0)
    a, b = (np.asfortranarray(rng.standard_normal((n, n)).astype(dt)) for _ in range(2))
    c = np.zeros((n, n), dt, order="F")
    r = timeit(lambda: gemm(1.0, a, b, 0.0, c, 0, 0, 1), min_time, min_reps=PEAK_REPS,
               settle=SETTLE_S if threads > 1 else 0.0)
    flops = 2.0 * n ** 3
    return {"dtype": dt.name, "n": n, "threads": threads, "gflops": flops / r["min"] / 1e9,
            "gflops_median": flops / r["median"] / 1e9, "time": r}


def measure_peaks(dtypes, threads, n, min_time, pin):
    """{(dtype, threads): gemm_peak(...)} for every dtype and thread count of the run.

    ``pin(n)`` is the context manager that sets every thread pool to n threads.
    """
    peaks = {}
    for nt in threads:
        with pin(nt):
            for dt in dtypes:
                peaks[(dt, nt)] = gemm_peak(dt, n, min_time, threads=nt)
    return peaks
