"""lstm_c.set_num_threads: the engine's BLAS runs at that many threads during its calls only."""

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
def test_engine_blas_runs_at_the_set_count_and_the_callers_setting_comes_back(n, restore_threads):
    controllers = _threads._engine_blas()
    assert controllers, "threadpoolctl found no BLAS for the engine"
    before = [c.get_num_threads() for c in controllers]
    outside = 3 - n  # something other than n, set by the "caller"
    for c in controllers:
        c.set_num_threads(outside)
    lstm_c.set_num_threads(n)
    with _threads.engine_threads():
        assert [c.get_num_threads() for c in controllers] == [n] * len(controllers)
    assert [c.get_num_threads() for c in controllers] == [outside] * len(controllers)
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


def test_results_do_not_depend_on_the_thread_count(restore_threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 16, 24))
    dy = rng.standard_normal((20, 16, 48))
    out = []
    for n in (1, 2):
        lstm_c.set_num_threads(n)
        m = lstm_c.LSTM(24, 48, num_layers=2, dtype=np.float64, seed=3)
        y, (h, c) = m(x)
        dx, _ = m.backward(dy)
        out.append([y, h, c, dx] + [m.grads[k] for k in sorted(m.grads)])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
