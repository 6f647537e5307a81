"""lstm-c bench's GEMM peak: measured per dtype and thread count of the run."""
import contextlib

from lstm_c import bench_peak


def test_measure_peaks_covers_every_dtype_and_thread_count():
    pinned = []

    @contextlib.contextmanager
    def pin(n):
        pinned.append(n)
        yield

    peaks = bench_peak.measure_peaks(["float32", "float64"], [1, 2], 32, 0.0, pin)
    assert pinned == [1, 2]
    assert sorted(peaks) == [("float32", 1), ("float32", 2), ("float64", 1), ("float64", 2)]
    for (dtype, threads), p in peaks.items():
        assert (p["dtype"], p["threads"], p["n"]) == (dtype, threads, 32)
        # best sample: at least the median's rate
        assert p["gflops"] >= p["gflops_median"] > 0
        assert p["time"]["reps"] >= bench_peak.PEAK_REPS
