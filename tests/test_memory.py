"""Memory (issue 7, item 4): no leak over 10,000 engine calls.

One loop of 10,000 iterations runs, at tiny shapes, every way into the
compiled engine: a training forward + backward on per-step BLAS (B = 1) and,
every few iterations, on the packed kernels (B > 1), with lengths, with a
projection and peepholes, at 2 engine threads; LSTMCell; freeze() and the
frozen model's calls; and the error paths that raise inside the engine
(wrong shapes, bad batch sizes, thread counts and dtypes).
The loop runs in a fresh Python process (in the test session, blocks freed by
earlier tests would absorb a leak). Its resident set size, read from
/proc/self/statm after a warm-up of the same loop, must not grow by more than
LEAK_BOUND over the 10,000 iterations:
a leak of 100 bytes per iteration, far less than any buffer the engine
allocates per call (its smallest scratch here is 5H*B numbers, 320 bytes), would
reach it.

The AddressSanitizer run over the engine's tests is described in
docs/reliability.md.
"""

import gc
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import lstm_c
from lstm_c import _lstm

ITERATIONS = 10_000
WARMUP = 1_000
LEAK_BOUND = 1_000_000  # bytes over ITERATIONS: 100 bytes per iteration

# Under AddressSanitizer (docs/reliability.md) the RSS says nothing: its
# allocator keeps freed blocks in a quarantine of up to 256 MB.
_rss_means_nothing = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm") or "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="reads the resident set size from /proc, with the system's allocator")


def _rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _engine_errors(f32):
    """Calls that raise inside the engine, each after its argument parsing."""
    T, B, I, H = 3, 2, 4, 5
    x = np.zeros((T, B, I), f32)
    w_ih, w_hh, b = np.zeros((4 * H, I), f32), np.zeros((4 * H, H), f32), np.zeros(4 * H, f32)
    hs, cs = np.zeros((T + 1, B, H), f32), np.zeros((T + 1, B, H), f32)
    acts, tanh_c = np.zeros((T, B, 4 * H), f32), np.zeros((T, B, H), f32)
    calls = [
        lambda: _lstm.forward_layer(x, w_ih, w_hh, b, hs[:T], cs, acts, tanh_c, True),
        lambda: _lstm.forward_layer(x, w_ih, w_hh, b, hs, cs, acts, tanh_c, True, threads=0),
        lambda: _lstm.forward_layer(x, w_ih, w_hh, b, hs, cs, acts, tanh_c, True,
                                    batch_sizes=np.array([1, 2, 2], np.int32)),
        lambda: _lstm.forward_layer(x.astype(np.float64), w_ih, w_hh, b, hs, cs, acts, tanh_c,
                                    True),
        lambda: _lstm.backward_layer(x, w_ih, w_hh, hs, cs, acts, tanh_c, hs[1:], hs[0], cs[0],
                                     x, hs[0], cs[0], w_ih, w_hh, b, acts[:1]),
        lambda: _lstm.PackedLSTM([w_ih], [w_hh], [b[:4]]),
    ]
    if _lstm.packed_panel_units("float32"):
        packed = _lstm.PackedLSTM([w_ih], [w_hh], [b])
        h, c, y = np.zeros((1, B, H), f32), np.zeros((1, B, H), f32), np.zeros((T, B, H), f32)
        calls.append(lambda: _lstm.packed_forward(packed, np.zeros((T, B, I + 1), f32), h, c, y))
        calls.append(lambda: _lstm.packed_forward(packed, x, h[:, :1], c, y))
        calls.append(lambda: _lstm.packed_forward(packed, x.astype(np.float64), h, c, y))
    return calls


def _workload():
    """A function running one iteration of the loop (its argument: the iteration)."""
    f32 = np.float32
    rng = np.random.default_rng(0)
    m1 = lstm_c.LSTM(4, 16, seed=0)                          # B = 1: per-step BLAS
    mb = lstm_c.LSTM(4, 16, num_layers=2, seed=1)            # B = 8: packed kernels
    mx = lstm_c.LSTM(4, 8, seed=2, bidirectional=True, proj_size=3, peephole=True,
                     recurrent_dropout=0.2, dtype=np.float64)
    cell = lstm_c.LSTMCell(4, 16, seed=3)
    x1 = rng.standard_normal((6, 1, 4)).astype(f32)
    xb = rng.standard_normal((5, 8, 4)).astype(f32)
    lengths = np.array([5, 3, 5, 1, 2, 4, 5, 2])
    errors = _engine_errors(f32)

    def step(i):
        y, _ = m1.forward(x1)
        m1.backward(y)
        m1.forward(x1, grad=False)
        h, c = cell.forward(x1[0])
        cell.backward(h, c)
        if i % 10 == 0:
            y, _ = mb.forward(xb, lengths=lengths if i % 20 == 0 else None)
            mb.backward(np.ones_like(y))
            y, _ = mx.forward(xb, lengths=lengths)
            mx.backward(np.ones_like(y))
            frozen = mb.freeze()
            frozen(xb[:1])
            frozen(x1[:2], None)
        if i % 50 == 0:
            lstm_c.set_num_threads(2)
            y, _ = mb.forward(xb)
            mb.backward(np.ones_like(y))
            lstm_c.set_num_threads(1)
        if i % 20 == 5:
            for call in errors:
                with pytest.raises((ValueError, TypeError)):
                    call()
            with pytest.raises(ValueError):
                m1.forward(np.ones((2, 1, 5), f32))      # wrong input size (Python's check)
    return step


def _measure(mode):
    """In this process: (RSS before, RSS after, seconds) of ITERATIONS iterations
    of the workload after a warm-up ("engine"), or of the control ("control")."""
    start = time.perf_counter()
    if mode == "engine":
        step = _workload()
    else:
        kept = []   # the control leaks: a 200-byte array kept per iteration

        def step(i):
            kept.append(np.empty(200 // 8))
            return len(kept)
    for i in range(WARMUP):
        step(i)
    before = _rss()
    for i in range(ITERATIONS):
        step(i)
    return before, _rss(), time.perf_counter() - start


def _measure_in_a_fresh_process(mode):
    """_measure in a new Python: in a long-lived one (the test session), blocks
    freed by earlier tests would take a leak without any growth of the RSS."""
    r = subprocess.run([sys.executable, os.path.abspath(__file__), mode],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@_rss_means_nothing
def test_no_leak_over_10000_forward_backward_calls():
    before, after, seconds = _measure_in_a_fresh_process("engine")
    growth = after - before
    sys.stderr.write(f"\nRSS before {before / 1e6:.1f} MB, after {ITERATIONS} iterations "
                     f"{after / 1e6:.1f} MB: {growth:+,} bytes ({seconds:.1f} s)\n")
    assert growth < LEAK_BOUND, (before, after)


@_rss_means_nothing
def test_the_leak_check_would_see_a_leak():
    # The control: keeping a 200-byte array per iteration (about 300 bytes
    # with the array object, three times the bound's rate) is seen.
    before, after, _ = _measure_in_a_fresh_process("control")
    assert after - before > LEAK_BOUND, (before, after)


def test_engine_errors_name_what_was_given():
    # packed_forward's message once printed a memoryview's 8 shape slots:
    # "got shape (3, 2, 5, 0, 0, 0, 0, 0)"
    f32 = np.float32
    if not _lstm.packed_panel_units("float32"):
        pytest.skip("this build has no packed kernels")
    p = _lstm.PackedLSTM([np.zeros((20, 4), f32)], [np.zeros((20, 5), f32)], [np.zeros(20, f32)])
    h = np.zeros((1, 2, 5), f32)
    with pytest.raises(ValueError, match=r"expected input size 4, got shape \(3, 2, 5\)$"):
        _lstm.packed_forward(p, np.zeros((3, 2, 5), f32), h, h.copy(), np.zeros((3, 2, 5), f32))


if __name__ == "__main__":   # _measure_in_a_fresh_process runs this file
    print(json.dumps(_measure(sys.argv[1])))
