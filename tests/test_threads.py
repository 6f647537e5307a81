"""lstm_c.set_num_threads: the engine splits its work over that many threads, its BLAS
stays at one during its calls, and the results do not depend on the count."""

import numpy as np
import pytest

import lstm_c
from lstm_c import _threads


@pytest.fixture
def restore_threads():
    n = lstm_c.get_num_threads()
    yield
    lstm_c.set_num_threads(n)


def test_default_is_one_thread():
    assert lstm_c.get_num_threads() == 1


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                      (True, TypeError), ("2", TypeError)])
def test_bad_thread_counts_are_refused(bad, exc, restore_threads):
    with pytest.raises(exc, match="threads"):
        lstm_c.set_num_threads(bad)
    assert lstm_c.get_num_threads() == 1


@pytest.mark.parametrize("n", [1, 2])
def test_engine_blas_runs_at_one_thread_and_the_callers_setting_comes_back(n, restore_threads):
    controllers = _threads._engine_blas()
    assert controllers, "threadpoolctl found no BLAS for the engine"
    before = [c.get_num_threads() for c in controllers]
    for c in controllers:
        c.set_num_threads(2)  # the "caller's" setting
    lstm_c.set_num_threads(n)
    with _threads.engine_threads():
        assert [c.get_num_threads() for c in controllers] == [1] * len(controllers)
    assert [c.get_num_threads() for c in controllers] == [2] * len(controllers)
    for c, b in zip(controllers, before):
        c.set_num_threads(b)


def test_other_blas_single_threaded_leaves_the_engines_blas_alone():
    import numpy  # noqa: F401  (its BLAS is the other one here)

    engine = {c.filepath for c in _threads._engine_blas()}
    others = [c for c in _threads._all_blas() if c.filepath not in engine]
    if not others:
        pytest.skip("this process has no BLAS besides the engine's")
    before = [c.get_num_threads() for c in others]
    for c in others:
        c.set_num_threads(2)
    engine_before = [c.get_num_threads() for c in _threads._engine_blas()]
    try:
        with _threads.other_blas_single_threaded():
            assert [c.get_num_threads() for c in others] == [1] * len(others)
            assert [c.get_num_threads() for c in _threads._engine_blas()] == engine_before
        assert [c.get_num_threads() for c in others] == [2] * len(others)
    finally:
        for c, n in zip(others, before):
            c.set_num_threads(n)


@pytest.mark.parametrize("kernel", ["packed", "blas"])
@pytest.mark.parametrize("B", [16, 37])  # 37: row ranges of 16 and 21, not a multiple of 4
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(dtype, B, kernel, restore_threads):
    from lstm_c import _lstm

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, B, 24)).astype(dtype)
    dy = rng.standard_normal((20, B, 48)).astype(dtype)
    out = []
    old = _lstm.get_recurrent_kernel()
    _lstm.set_recurrent_kernel(kernel)
    try:
        for n in (1, 2, 3):
            lstm_c.set_num_threads(n)
            m = lstm_c.LSTM(24, 48, num_layers=2, dtype=dtype, seed=3)
            y, (h, c) = m(x)
            dx, (dh0, dc0) = m.backward(dy)
            out.append([y, h, c, dx, dh0, dc0] + [m.grads[k] for k in sorted(m.grads)])
    finally:
        _lstm.set_recurrent_kernel(old)
    # Each batch row runs alone through the forward's time loop, so y, h_n and
    # c_n are the same bits at any count. The backward's GEMMs are split into
    # smaller ones, which BLAS may sum in another order, so the rest is close.
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for other in out[1:]:
        for k, (a, b) in enumerate(zip(out[0], other)):
            assert a.shape == b.shape
            if k < 3:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("bad", [0, -1, 257])
def test_engine_refuses_a_bad_thread_count(bad):
    from lstm_c import _lstm

    T, B, I, H = 2, 3, 4, 5
    z = np.zeros
    args = dict(x=z((T, B, I)), w_ih=z((4 * H, I)), w_hh=z((4 * H, H)), bias=z(4 * H),
                hs=z((T + 1, B, H)), cs=z((T + 1, B, H)), acts=z((T, B, 4 * H)),
                tanh_c=z((T, B, H)), training=True)
    with pytest.raises(ValueError, match="threads must be between 1 and 256"):
        _lstm.forward_layer(**args, threads=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_sequence_on_two_threads_gives_the_same(dtype, restore_threads):
    """B = 1 with a large W_hh shares each step's gemv out over the threads."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 8)).astype(dtype)
    out = []
    for n in (1, 2):
        lstm_c.set_num_threads(n)
        m = lstm_c.LSTM(8, 256, dtype=dtype, seed=0)
        y, (h, c) = m(x)
        dx, (dh0, dc0) = m.backward(np.cos(y))
        out.append([y, h, c, dx, dh0, dc0] + [m.grads[k] for k in sorted(m.grads)])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
