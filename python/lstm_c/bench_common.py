"""What every part of ``lstm-c bench`` shares: the timer, thread pinning, load and errors."""
from __future__ import annotations

import contextlib
import gc
import os
import time

import numpy as np

MIN_REPS = 5
SETTLE_S = 0.15         # pause before each multi-thread measurement
BUSY = 0.10             # rows during which other work used more of the machine are marked


# --------------------------------------------------------------------------- timing

def timeit(fn, min_time, min_reps=MIN_REPS, max_reps=None, settle=0.0, warmup=True):
    """Median seconds per call of ``fn()``: samples until >= min_time and >= min_reps.

    Calls shorter than 1 ms are repeated ``number`` times per sample. ``settle``
    seconds of sleep come first (lets other thread pools' spinning workers stop).
    """
    if settle:
        time.sleep(settle)
    t0 = time.perf_counter()
    if warmup:
        fn()
    first = time.perf_counter() - t0
    number = max(1, int(1e-3 / first)) if first > 0 else 1
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while (len(samples) < min_reps or time.perf_counter() - start < min_time) and \
                (max_reps is None or len(samples) < max_reps):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    return {"median": float(np.median(samples)), "min": float(min(samples)),
            "reps": len(samples), "number": number}


@contextlib.contextmanager
def pinned_threads(n, torch):
    """lstm-c's engine, BLAS / OpenMP pools (threadpoolctl) and torch's intra-op pool, all at n threads."""
    from threadpoolctl import threadpool_limits

    import lstm_c
    old = torch.get_num_threads() if torch is not None else None
    old_engine = lstm_c.get_num_threads()
    with threadpool_limits(limits=n):
        lstm_c.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            lstm_c.set_num_threads(old_engine)
            if torch is not None:
                torch.set_num_threads(old)


# --------------------------------------------------------------------------- machine load

def cpu_snapshot():
    """(wall s, machine busy CPU-s, this process's CPU-s); None where /proc/stat is missing.

    Busy includes steal time: on a VM, the host running someone else is contention too."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    t = os.times()
    return (time.perf_counter(), (user + nice + system + irq + softirq + steal) / tick,
            t.user + t.system)


def others_share(before, after):
    """Share of the machine (0..1) used by anything but this process between two snapshots."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other / ((after[0] - before[0]) * (os.cpu_count() or 1)))


# --------------------------------------------------------------------------- helpers

def rel_err(a, b):
    """max |a - b| / max |b| in float64 (max |a| when b is all zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def to_numpy(t):
    return t.detach().cpu().numpy()


def import_torch():
    """torch, or None when it is missing or broken (the bench then runs without it)."""
    try:
        import torch
        return torch
    except Exception:
        return None


def cores_available():
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
