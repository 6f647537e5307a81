"""Synthetic long-time-lag sequence tasks: the adding and temporal-order problems.

Both come from Hochreiter & Schmidhuber (1997), "Long Short-Term Memory",
Neural Computation 9(8), section 5: experiment 4 (adding problem) and
experiment 6a (temporal order, two relevant symbols). In each the answer
depends on two inputs far apart in the sequence and on nothing in between, so
a model must carry information across a lag that grows with the length T; a
plain tanh RNN (``lstm_c.reference.rnn_forward``) fails once T is long.

Arrays are batch-major, (n, T, features); the layers take time-major input
by default, so pass ``X.transpose(1, 0, 2)`` (or use ``batch_first=True``).
``rng`` is an int seed, a ``numpy.random.Generator`` or None (fresh entropy):
the same seed gives the same arrays.
"""

import numbers

import numpy as np

from lstm_c import _validate as check

__all__ = ["adding_problem", "adding_solved", "ADDING_BASELINE_MSE", "ADDING_SUCCESS_MSE",
           "temporal_order", "SYMBOLS", "CLASSES"]

# The adding problem's target is the sum of two independent U[0, 1] values:
# mean 1, variance 2 * 1/12. Always predicting 1 therefore has MSE 1/6 (~0.167),
# the score a model that ignores the inputs reaches.
ADDING_BASELINE_MSE = 1.0 / 6.0
# Solved: MSE below 0.01 on fresh sequences (issue 8), i.e. 6% of the baseline.
ADDING_SUCCESS_MSE = 0.01

# Temporal order: one-hot over these 8 symbols, in this order. a-d are
# distractors, X and Y the relevant symbols, B and E mark start and end.
SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")
_X, _Y, _B, _E = 4, 5, 6, 7
# Class index = 2 * (first relevant symbol is Y) + (second is Y).
# (H&S call these classes Q, R, S, U.)
CLASSES = ("XX", "XY", "YX", "YY")


def _generator(rng):
    """A numpy Generator from None, a non-negative int seed, or a Generator."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, numbers.Integral):
        raise TypeError("rng must be None, an int seed or a numpy.random.Generator, "
                        f"got {rng!r} ({type(rng).__name__})")
    if rng < 0:
        raise ValueError(f"rng: a seed must be >= 0, got {rng}")
    return np.random.default_rng(int(rng))


def adding_problem(n, T, *, rng=None):
    """Draw `n` sequences of the adding problem, each `T` steps long.

    The standard modern version (Le, Jaitly & Hinton 2015; Arjovsky, Shah &
    Bengio 2016), not H&S's original: every step carries a value drawn
    uniformly from [0, 1) and a marker; exactly two markers are 1, one at a
    step drawn uniformly from the first half ``[0, T // 2)`` and one from the
    second half ``[T // 2, T)``; the target is the plain sum of the two marked
    values. H&S used values in [-1, 1], put the first marker among the first
    10 steps, and scaled the target to 0.5 + (x1 + x2) / 4. The modern version
    is the one later results (and the 0.01 / 0.167 numbers of
    `ADDING_SUCCESS_MSE` and `ADDING_BASELINE_MSE`) are quoted against, so
    results here compare with theirs.

    Parameters
    ----------
    n : int >= 1
        Number of sequences.
    T : int >= 2
        Steps per sequence (each half needs at least one step).
    rng : None, int or numpy.random.Generator, keyword-only
        Source of randomness; an int is a seed.

    Returns
    -------
    X : float32 array of shape (n, T, 2)
        ``X[..., 0]`` the values, ``X[..., 1]`` the markers (0 or 1).
    y : float32 array of shape (n,)
        The sum of the two marked values, in [0, 2].
    """
    n = check.positive_int("n", n)
    T = check.positive_int("T", T)
    if T < 2:
        raise ValueError(f"T must be >= 2 for the adding problem (a marker in each half), got {T}")
    g = _generator(rng)
    rows = np.arange(n)
    values = g.random((n, T), dtype=np.float32)
    first = g.integers(0, T // 2, n)
    second = g.integers(T // 2, T, n)
    X = np.zeros((n, T, 2), np.float32)
    X[..., 0] = values
    X[rows, first, 1] = 1
    X[rows, second, 1] = 1
    y = values[rows, first] + values[rows, second]
    return X, y


def adding_solved(pred, y):
    """True when predictions `pred` of targets `y` reach MSE < ADDING_SUCCESS_MSE.

    The criterion of issue 8: mean squared error below 0.01 on fresh
    sequences (sequences not trained on). For scale, predicting the mean 1
    everywhere scores ``ADDING_BASELINE_MSE`` = 1/6, about 0.167.
    """
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if pred.shape != y.shape:
        raise ValueError(f"pred: expected shape {y.shape} (that of y), got {pred.shape}")
    if y.size == 0:
        raise ValueError("y: expected at least one target, got none")
    return bool(np.mean((pred - y) ** 2) < ADDING_SUCCESS_MSE)


def _order_positions(T):
    """Inclusive ranges (lo1, hi1), (lo2, hi2) of the two relevant positions."""
    # H&S: length 100-110, t1 in [10, 20], t2 in [50, 60]; here the length is
    # fixed at T and the ranges scale with it, 0-based: [T//10, T//5] and
    # [T//2, 3T//5]. T >= 10 keeps t1 off the start symbol (step 0); t2 never
    # reaches the end symbol (step T - 1) once T >= 5.
    return (T // 10, T // 5), (T // 2, 3 * T // 5)


def temporal_order(n, T, *, rng=None):
    """Draw `n` sequences of the temporal-order problem (H&S 1997, task 6a).

    Each sequence is `T` symbols long: ``E`` at step 0 and ``B`` (the
    "trigger symbol") at step T - 1, as the paper has them,
    and distractors drawn uniformly from {a, b, c, d} everywhere else, except
    at two steps t1 and t2, each holding ``X`` or ``Y`` (equally likely,
    independently). t1 is drawn uniformly from ``[T // 10, T // 5]`` and t2
    from ``[T // 2, 3 * T // 5]`` (both inclusive, 0-based), H&S's [10, 20]
    and [50, 60] scaled to length T (H&S drew the length from 100-110; here
    it is fixed). The class is the order of the two relevant symbols:
    XX -> 0, XY -> 1, YX -> 2, YY -> 3 (see `CLASSES`), and only the end of
    the sequence asks for it.

    Parameters
    ----------
    n : int >= 1
        Number of sequences.
    T : int >= 10
        Steps per sequence; below 10 the first range would reach step 0.
    rng : None, int or numpy.random.Generator, keyword-only
        Source of randomness; an int is a seed.

    Returns
    -------
    X : float32 array of shape (n, T, 8)
        One-hot symbols, columns in the order of `SYMBOLS`
        (a, b, c, d, X, Y, B, E).
    y : int64 array of shape (n,)
        The class, in 0..3.
    """
    n = check.positive_int("n", n)
    T = check.positive_int("T", T)
    if T < 10:
        raise ValueError(f"T must be >= 10 for the temporal-order problem (the first relevant "
                         f"symbol goes in [T//10, T//5], after the start symbol), got {T}")
    g = _generator(rng)
    (lo1, hi1), (lo2, hi2) = _order_positions(T)
    rows = np.arange(n)
    symbols = g.integers(0, 4, (n, T))  # distractors a-d
    symbols[:, 0] = _E   # H&S: "starts with E, ends with B (the trigger symbol)"
    symbols[:, -1] = _B
    is_y = g.integers(0, 2, (n, 2))  # 0: X, 1: Y, for the first and second symbol
    symbols[rows, g.integers(lo1, hi1 + 1, n)] = _X + is_y[:, 0]
    symbols[rows, g.integers(lo2, hi2 + 1, n)] = _X + is_y[:, 1]
    X = np.eye(len(SYMBOLS), dtype=np.float32)[symbols]
    y = (2 * is_y[:, 0] + is_y[:, 1]).astype(np.int64)
    return X, y
