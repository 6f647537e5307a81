"""Threads (issue 7, item 3).

The engine releases the GIL for its time loop, so Python threads running
separate models really do run at once. Rules, as documented in LSTM's
docstring and the README:

- separate models (LSTM, LSTMCell, FrozenLSTM) in separate threads give
  exactly the bits of the same calls made one after another;
- one LSTM or LSTMCell used from two threads at once is refused: the second
  call raises RuntimeError at once (a model keeps the forward's saved state and
  its workspaces on itself, so two calls at once would corrupt each other);
- one FrozenLSTM may be shared: its packed weights are read-only and each call
  allocates its own scratch;
- ``lstm_c.set_num_threads`` is process-global, not per thread.
"""

import threading

import numpy as np
import pytest

import lstm_c
from lstm_c import _lstm, _threads

N_THREADS = 4


@pytest.fixture
def restore_threads():
    n = lstm_c.get_num_threads()
    yield
    lstm_c.set_num_threads(n)


# --------------------------------------------------------------------------- jobs
# Each job builds its own model from a seed and returns every array it produced,
# so a run can be compared bit for bit with another. Shapes are kept small:
# the point is the overlap of calls, not their length.

def _data(seed, *shape, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _lstm_job(seed, T, B, I, H, L, dtype, reps=3, **kw):
    def run():
        m = lstm_c.LSTM(I, H, num_layers=L, dtype=dtype, seed=seed, **kw)
        D = 2 if kw.get("bidirectional") else 1
        P = kw.get("proj_size") or H
        out = []
        for r in range(reps):
            x = _data(seed * 100 + r, T, B, I, dtype=dtype)
            dy = _data(seed * 100 + r + 50, T, B, D * P, dtype=dtype)
            y, (h, c) = m.forward(x)
            dx, (dh0, dc0) = m.backward(dy)
            yi, _ = m.forward(x, grad=False)
            out += [y, h, c, dx, dh0, dc0, yi] + [m.grads[k].copy() for k in sorted(m.grads)]
        return out
    return run


def _lengths_job(seed, T, B, I, H, dtype, reps=3):
    def run():
        m = lstm_c.LSTM(I, H, dtype=dtype, seed=seed, bidirectional=True)
        lengths = np.random.default_rng(seed).integers(1, T + 1, size=B)
        out = []
        for r in range(reps):
            x = _data(seed * 100 + r, T, B, I, dtype=dtype)
            y, (h, c) = m.forward(x, lengths=lengths)
            dx, (dh0, dc0) = m.backward(np.ones_like(y))
            out += [y, h, c, dx, dh0, dc0] + [m.grads[k].copy() for k in sorted(m.grads)]
        return out
    return run


def _cell_job(seed, B, I, H, dtype, steps=20):
    def run():
        cell = lstm_c.LSTMCell(I, H, dtype=dtype, seed=seed)
        xs = _data(seed, steps, B, I, dtype=dtype)
        out, state = [], None
        for t in range(steps):
            h, c = cell.forward(xs[t], state)
            dx, (dh, dc) = cell.backward(np.ones_like(h), np.ones_like(c))
            state = (h, c)
            out += [h, c, dx, dh, dc]
        return out + [cell.grads[k].copy() for k in sorted(cell.grads)]
    return run


def _frozen_job(frozen, seed, T, B, steps=6):
    """Calls on a FrozenLSTM that may be shared with other threads."""
    def run():
        xs = _data(seed, steps, T, B, frozen.input_size, dtype=frozen.dtype)
        out, state = [], None
        for k in range(steps):
            y, state = frozen(xs[k], state)
            out += [y, state[0], state[1]]
        return out
    return run


def _jobs():
    """Several models, different seeds, shapes and dtypes; B = 1 (per-step BLAS)
    and B > 1 (packed kernels), projections and peepholes (per-step BLAS at any B)."""
    return [
        _lstm_job(1, T=25, B=1, I=7, H=48, L=2, dtype=np.float32),
        _lstm_job(2, T=20, B=12, I=9, H=40, L=2, dtype=np.float64),
        _lstm_job(3, T=15, B=17, I=5, H=24, L=1, dtype=np.float32, proj_size=8,
                  peephole=True, recurrent_dropout=0.3),
        _lengths_job(4, T=18, B=9, I=6, H=20, dtype=np.float64),
        # H = 256 at B = 1: each step's gemv is split over the engine's threads
        _lstm_job(5, T=6, B=1, I=16, H=256, L=1, dtype=np.float32, reps=2),
        _cell_job(6, B=3, I=10, H=30, dtype=np.float64),
        _cell_job(7, B=1, I=4, H=12, dtype=np.float32),
        _lstm_job(8, T=12, B=40, I=11, H=32, L=1, dtype=np.float32, dropout=0.0),
    ]


def _run_at_once(jobs, n_threads=N_THREADS):
    """Run the jobs on n_threads threads started together; each thread takes jobs
    i, i + n, ... Returns the results in the jobs' order (exceptions re-raised)."""
    results = [None] * len(jobs)
    errors = []
    start = threading.Barrier(n_threads)

    def worker(i):
        try:
            start.wait()
            for j in range(i, len(jobs), n_threads):
                results[j] = jobs[j]()
        except BaseException as e:  # noqa: BLE001  re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish"
    if errors:
        raise errors[0]
    return results


def _assert_same_bits(a_runs, b_runs):
    assert len(a_runs) == len(b_runs)
    for j, (a, b) in enumerate(zip(a_runs, b_runs)):
        assert len(a) == len(b), f"job {j}"
        for k, (u, v) in enumerate(zip(a, b)):
            assert u.dtype == v.dtype and u.shape == v.shape, f"job {j}, array {k}"
            # same bits, NaN included (none are expected)
            assert u.tobytes() == v.tobytes(), f"job {j}, array {k} differs"


@pytest.mark.parametrize("kernel", ["auto", "packed", "blas"])
@pytest.mark.parametrize("n", [1, 2])
def test_separate_models_in_threads_give_the_bits_of_a_serial_run(n, kernel, restore_threads):
    lstm_c.set_num_threads(n)
    _lstm.set_recurrent_kernel(kernel)
    try:
        jobs = _jobs()
        serial = [job() for job in jobs]
        for _ in range(2):
            _assert_same_bits(serial, _run_at_once(jobs))
    finally:
        _lstm.set_recurrent_kernel("auto")


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_frozen_lstm_shared_by_threads(dtype, n, restore_threads):
    lstm_c.set_num_threads(n)
    frozen = lstm_c.LSTM(6, 32, num_layers=2, dtype=dtype, seed=11).eval().freeze()
    jobs = [_frozen_job(frozen, seed, T=T, B=B) for seed, (T, B) in
            enumerate([(1, 1), (5, 3), (1, 8), (9, 1), (3, 20), (1, 1)])]
    serial = [job() for job in jobs]
    for _ in range(3):
        _assert_same_bits(serial, _run_at_once(jobs))


def test_one_frozen_copy_shared_by_threads():
    # bidirectional / projection / peephole models freeze to a private copy
    # run through LSTM.forward; FrozenLSTM serialises calls on it.
    frozen = lstm_c.LSTM(5, 16, dtype=np.float64, seed=2, bidirectional=True,
                         proj_size=4).eval().freeze()
    assert frozen._copy is not None
    jobs = [_frozen_job(frozen, seed, T=4, B=B) for seed, B in enumerate([1, 3, 2, 5])]
    serial = [job() for job in jobs]
    _assert_same_bits(serial, _run_at_once(jobs))


# --------------------------------------------------------------------------- one model, two threads

class _Blocking:
    """An array-like whose conversion waits: a forward given it stays inside the
    model's call (the guard held) until released. Deterministic, no timing."""

    def __init__(self, value):
        self.value = value
        self.entered = threading.Event()
        self.release = threading.Event()

    def __array__(self, dtype=None, copy=None):
        self.entered.set()
        assert self.release.wait(30)
        return self.value if dtype is None else self.value.astype(dtype)


def _hold_inside(call, blocker):
    """Start call() in a thread and return once it is inside the model."""
    out = {}

    def target():
        try:
            out["result"] = call()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    assert blocker.entered.wait(30)
    return t, out


@pytest.mark.parametrize("method", ["forward", "forward_no_grad", "backward", "trace"])
def test_one_lstm_from_two_threads_is_refused(method):
    m = lstm_c.LSTM(4, 8, seed=0)
    x = _data(0, 5, 2, 4)
    expected_y, _ = lstm_c.LSTM(4, 8, seed=0).forward(x)
    if method == "backward":
        y, _ = m.forward(x)
        blocker = _Blocking(np.ones((5, 2, 8), np.float32))
        call = lambda: m.backward(blocker)  # noqa: E731
    else:
        blocker = _Blocking(x)
        call = {"forward": lambda: m.forward(blocker),
                "forward_no_grad": lambda: m.forward(blocker, grad=False),
                "trace": lambda: m.trace(blocker)}[method]
    t, out = _hold_inside(call, blocker)
    try:
        for other in (lambda: m.forward(x), lambda: m.forward(x, grad=False),
                      lambda: m.backward(np.ones((5, 2, 8), np.float32)), lambda: m(x),
                      lambda: m.trace(x)):
            with pytest.raises(RuntimeError,
                               match="in use by another thread.*one model per thread"):
                other()
    finally:
        blocker.release.set()
        t.join(30)
    assert "error" not in out, out.get("error")
    # the refused calls changed nothing: the held call finished normally, and the model works
    if method != "backward":
        y = out["result"][0]
        np.testing.assert_array_equal(y, expected_y)
    y2, _ = m.forward(x)
    np.testing.assert_array_equal(y2, expected_y)
    m.backward(np.ones_like(y2))


def test_one_cell_from_two_threads_is_refused():
    cell = lstm_c.LSTMCell(3, 5, seed=0)
    x = _data(1, 2, 3)
    blocker = _Blocking(x)
    t, out = _hold_inside(lambda: cell.forward(blocker), blocker)
    try:
        with pytest.raises(RuntimeError, match="LSTMCell is in use by another thread"):
            cell.forward(x)
        with pytest.raises(RuntimeError, match="in use by another thread"):
            cell.backward(np.ones((2, 5), np.float32))
    finally:
        blocker.release.set()
        t.join(30)
    assert "error" not in out
    h, c = cell.forward(x)
    np.testing.assert_array_equal(h, out["result"][0])
    cell.backward(np.ones_like(h))


def test_the_guard_is_released_after_an_error():
    m = lstm_c.LSTM(4, 8, seed=0)
    with pytest.raises(ValueError):
        m.forward(np.ones((3, 2, 5), np.float32))   # wrong input size
    with pytest.raises(ValueError):
        m.backward(np.ones((3, 2, 8), np.float32))  # no forward yet
    y, _ = m.forward(np.ones((3, 2, 4), np.float32))
    m.backward(np.ones_like(y))
    cell = lstm_c.LSTMCell(4, 8, seed=0)
    with pytest.raises(ValueError):
        cell.forward(np.ones((2, 5), np.float32))
    cell.forward(np.ones((2, 4), np.float32))


def test_the_same_thread_may_call_again_after_its_call_returns():
    # the guard is not re-entrant by design, but nothing in forward calls forward
    m = lstm_c.LSTM(3, 4, seed=0)
    for _ in range(3):
        y, _ = m(np.ones((2, 1, 3), np.float32))
        m.backward(y)


# --------------------------------------------------------------------------- set_num_threads

def test_set_num_threads_is_process_global(restore_threads):
    lstm_c.set_num_threads(2)
    seen = []
    t = threading.Thread(target=lambda: seen.append(lstm_c.get_num_threads()))
    t.start()
    t.join()
    assert seen == [2]
    t = threading.Thread(target=lambda: lstm_c.set_num_threads(1))
    t.start()
    t.join()
    assert lstm_c.get_num_threads() == 1


def test_engine_blas_threads_under_concurrent_calls():
    """Several threads inside engine calls at once: the engine's BLAS stays at
    one thread while any of them is inside, and the caller's setting comes back
    when the last leaves (one thread leaving must not restore it under another)."""
    controllers = _threads._engine_blas()
    before = [c.get_num_threads() for c in controllers]
    for c in controllers:
        c.set_num_threads(2)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = []

        def a():  # enters first (and so sets the BLAS to 1), leaves first
            with _threads.engine_threads():
                a_in.set()
                assert b_in.wait(10)
            a_out.set()

        def b():  # enters second, still inside when a has left
            assert a_in.wait(10)
            with _threads.engine_threads():
                b_in.set()
                assert a_out.wait(10)
                seen.append([c.get_num_threads() for c in controllers])

        ts = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert seen == [[1] * len(controllers)]
        assert [c.get_num_threads() for c in controllers] == [2] * len(controllers)
    finally:
        for c, b in zip(controllers, before):
            c.set_num_threads(b)
