"""Tests of the long-time-lag tasks (python/lstm_c/tasks.py) and of the plain
tanh RNN in the NumPy reference that they are compared against.

The generators are checked against their documented rules (shapes, ranges,
where the markers and relevant symbols go, what the target is) and for
reproducibility; the RNN against a loop written here and against central
finite differences in float64. Nothing is trained.
"""

import numpy as np
import pytest

from lstm_c import reference as ref
from lstm_c import tasks


# --------------------------------------------------------------------------
# adding problem

@pytest.mark.parametrize("n, T", [(1, 2), (7, 3), (64, 50), (5, 101)])
def test_adding_shapes_ranges_markers_and_target(n, T):
    X, y = tasks.adding_problem(n, T, rng=0)
    assert X.shape == (n, T, 2) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.float32
    values, markers = X[..., 0], X[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = T // 2
    # exactly one marker in the first half, one in the second
    np.testing.assert_array_equal(markers[:, :half].sum(1), 1)
    np.testing.assert_array_equal(markers[:, half:].sum(1), 1)
    for i in range(n):
        marked = values[i, markers[i] == 1]
        assert y[i] == marked[0] + marked[1]  # float32 + float32, same rounding


def test_adding_statistics_and_baseline():
    X, y = tasks.adding_problem(20000, 20, rng=1)
    assert abs(y.mean() - 1) < 0.02
    # predicting the mean scores the documented baseline
    assert abs(np.mean((y - 1.0) ** 2) - tasks.ADDING_BASELINE_MSE) < 0.01
    assert tasks.ADDING_BASELINE_MSE == pytest.approx(0.1667, abs=1e-4)
    # both halves' markers land on every step of their half
    first = X[:, :10, 1].argmax(1)
    second = X[:, 10:, 1].argmax(1)
    assert set(first) == set(range(10)) and set(second) == set(range(10))


def test_adding_solved():
    y = np.array([0.5, 1.0, 1.5])
    assert tasks.adding_solved(y + 0.09, y)          # MSE 0.0081
    assert not tasks.adding_solved(y + 0.11, y)      # MSE 0.0121
    assert not tasks.adding_solved(np.ones(3), y)
    with pytest.raises(ValueError, match=r"pred: expected shape \(3,\)"):
        tasks.adding_solved(np.ones(2), y)
    with pytest.raises(ValueError, match="at least one target"):
        tasks.adding_solved([], [])


# --------------------------------------------------------------------------
# temporal order

@pytest.mark.parametrize("n, T", [(1, 10), (9, 11), (200, 100), (13, 257)])
def test_temporal_order_rule(n, T):
    X, y = tasks.temporal_order(n, T, rng=2)
    assert X.shape == (n, T, 8) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    np.testing.assert_array_equal(X.sum(-1), 1)  # one-hot
    assert set(np.unique(X)) <= {0.0, 1.0}
    sym = np.array(tasks.SYMBOLS)[X.argmax(-1)]
    assert (sym[:, 0] == "E").all() and (sym[:, -1] == "B").all()
    assert np.isin(sym[:, 1:-1], ["a", "b", "c", "d", "X", "Y"]).all()
    for i in range(n):
        pos = np.flatnonzero(np.isin(sym[i], ["X", "Y"]))
        assert len(pos) == 2
        t1, t2 = pos
        assert T // 10 <= t1 <= T // 5 and T // 2 <= t2 <= 3 * T // 5
        assert tasks.CLASSES[y[i]] == sym[i, t1] + sym[i, t2]


def test_temporal_order_covers_classes_and_positions():
    X, y = tasks.temporal_order(4000, 100, rng=3)
    counts = np.bincount(y, minlength=4)
    assert (counts > 850).all() and (counts < 1150).all()
    relevant = X[..., 4:6].sum(-1)
    assert set(np.flatnonzero(relevant[:, :40].sum(0))) == set(range(10, 21))
    assert set(np.flatnonzero(relevant[:, 40:].sum(0)) + 40) == set(range(50, 61))


# --------------------------------------------------------------------------
# shared: reproducibility and argument checks

GENERATORS = [(tasks.adding_problem, 2), (tasks.temporal_order, 10)]


@pytest.mark.parametrize("gen, T", GENERATORS)
def test_reproducible(gen, T):
    X1, y1 = gen(16, T + 5, rng=42)
    X2, y2 = gen(16, T + 5, rng=42)
    X3, y3 = gen(16, T + 5, rng=np.random.default_rng(42))
    X4, _ = gen(16, T + 5, rng=43)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(X1, X3)   # an int seed is default_rng(seed)
    np.testing.assert_array_equal(y1, y3)
    assert not np.array_equal(X1, X4)
    g = np.random.default_rng(0)             # a Generator is advanced, not copied
    assert not np.array_equal(gen(4, T, rng=g)[0], gen(4, T, rng=g)[0])
    gen(3, T)                                # rng=None works


@pytest.mark.parametrize("gen, T_min", GENERATORS)
def test_bad_arguments(gen, T_min):
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        gen(0, T_min)
    with pytest.raises(TypeError, match="n must be a positive int"):
        gen(2.0, T_min)
    with pytest.raises(TypeError, match="T must be a positive int"):
        gen(2, True)
    with pytest.raises(ValueError, match=f"T must be >= {T_min}.*got {T_min - 1}"):
        gen(2, T_min - 1)
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy"):
        gen(2, T_min, rng=1.5)
    with pytest.raises(ValueError, match="a seed must be >= 0, got -1"):
        gen(2, T_min, rng=-1)
    with pytest.raises(TypeError):
        gen(2, T_min, 0)  # rng is keyword-only


# --------------------------------------------------------------------------
# the plain tanh RNN in the reference

def _rnn_case(seed, T, B, I, H, dtype=np.float64):
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    p = {"x": rand(T, B, I), "w_ih": rand(H, I, scale=0.5), "w_hh": rand(H, H, scale=0.5),
         "bias": rand(H, scale=0.5), "h0": rand(B, H, scale=0.5)}
    u = {"dy": rand(T, B, H), "dh_n": rand(B, H)}
    return p, u


def _rnn_loss(p, u):
    hs = ref.rnn_forward(**p)
    return np.sum(hs[1:] * u["dy"]) + np.sum(hs[-1] * u["dh_n"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rnn_forward_matches_loop(dtype):
    p, _ = _rnn_case(0, T=6, B=3, I=4, H=5, dtype=dtype)
    hs = ref.rnn_forward(**p)
    assert hs.shape == (7, 3, 5) and hs.dtype == dtype
    h = p["h0"].astype(np.float64)
    np.testing.assert_array_equal(hs[0], p["h0"])
    for t in range(6):
        for b in range(3):
            for j in range(5):
                a = p["bias"][j] + sum(p["x"][t, b, k] * p["w_ih"][j, k] for k in range(4))
                a += sum(h[b, k] * p["w_hh"][j, k] for k in range(5))
                assert hs[t + 1, b, j] == pytest.approx(np.tanh(a), rel=1e-5, abs=1e-6)
        h = hs[t + 1].astype(np.float64)


@pytest.mark.parametrize("T, B, I, H", [(1, 1, 1, 1), (3, 2, 3, 4), (5, 3, 2, 6)])
def test_rnn_backward_matches_finite_differences(T, B, I, H):
    p, u = _rnn_case(1, T, B, I, H)
    hs = ref.rnn_forward(**p)
    grads = dict(zip(("x", "h0", "w_ih", "w_hh", "bias"),
                     ref.rnn_backward(p["x"], p["w_ih"], p["w_hh"], hs, u["dy"], u["dh_n"])))
    eps = 1e-6
    for name, g in grads.items():
        assert g.shape == p[name].shape, name
        num = np.empty_like(p[name])
        for idx in np.ndindex(num.shape):
            plus, minus = p[name].copy(), p[name].copy()
            plus[idx] += eps
            minus[idx] -= eps
            num[idx] = (_rnn_loss({**p, name: plus}, u)
                        - _rnn_loss({**p, name: minus}, u)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-7, atol=1e-9, err_msg=name)


def test_rnn_backward_without_dh_n():
    p, u = _rnn_case(2, T=4, B=2, I=3, H=3)
    hs = ref.rnn_forward(**p)
    args = (p["x"], p["w_ih"], p["w_hh"], hs, u["dy"])
    for a, b in zip(ref.rnn_backward(*args), ref.rnn_backward(*args, np.zeros((2, 3)))):
        np.testing.assert_array_equal(a, b)
