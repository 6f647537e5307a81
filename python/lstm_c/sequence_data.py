"""Sequences and their targets, as the estimators take them, turned into padded arrays.

A set of sequences can be given three ways:

- an array of shape (n, T, F): n sequences of T steps with F features each;
- an array of shape (n, T): n univariate sequences (F = 1);
- a list of n arrays, each (T_i, F) or (T_i,): sequences of their own lengths
  (a list of equal-length rows is the array it lists, as in scikit-learn).

All become one batch-major array (n, T, F), T the longest, zero past each
sequence's end, and the lengths (n,) (None when every sequence is T long),
which the LSTM's ``lengths=`` takes. Targets are one per sequence, (n,) or
(n, k), or one per step, shaped like the sequences themselves.

Every check names the argument and what was expected, as scikit-learn's do;
NaN and inf are refused (an estimator trained on them learns nothing).
"""

import numpy as np

from lstm_c import _validate as check

__all__ = ["Sequences", "as_sequences", "step_targets", "sequence_targets", "real_numbers"]


class Sequences:
    """Padded sequences: ``X`` (n, T, F) batch-major, ``lengths`` (n,) ints or None (all T).

    ``columns`` is T when they came as a 2-D array (n, T), whose columns
    scikit-learn counts as features, else None.
    """

    def __init__(self, X, lengths, columns=None):
        self.X = X
        self.lengths = lengths
        self.columns = columns

    def __len__(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[2]

    def steps(self):
        """Each sequence's length, (n,) ints (T for all when no lengths were needed)."""
        if self.lengths is None:
            return np.full(len(self), self.X.shape[1], np.intp)
        return self.lengths

    def valid(self):
        """(n, T) bool: True on each sequence's own steps."""
        return np.arange(self.X.shape[1]) < self.steps()[:, None]

    def batch(self, rows):
        """The sequences `rows` as the LSTM takes them: time-major x (T_b, b, F) and lengths.

        T_b is the longest of them, so a batch of short sequences runs only
        its own steps; lengths is None when all of them are T_b long.
        """
        lengths = None if self.lengths is None else self.lengths[rows]
        T_b = self.X.shape[1] if lengths is None else int(lengths.max())
        x = np.ascontiguousarray(self.X[rows, :T_b].transpose(1, 0, 2))
        if lengths is not None and int(lengths.min()) == T_b:
            lengths = None
        return x, lengths


def real_numbers(arr, name):
    """arr if its numbers are real (floats, ints, bools, or objects float() converts), else an error."""
    if arr.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported, got dtype {arr.dtype}")
    if arr.dtype.kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected real numbers, got objects float() cannot "
                            f"convert ({e})") from None
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"{name}: expected real numbers (float or int), got dtype {arr.dtype}")
    return arr


def as_sequences(X, dtype, lengths=None, name="X"):
    """X in any of the three forms (module docstring) as ``Sequences`` of `dtype`.

    `lengths` (n,) ints in [1, T] marks a padded array's own lengths; a list
    of sequences carries its lengths itself, so giving both is an error.
    """
    if X is None:
        raise ValueError(f"{name}: expected sequences, got None")
    if hasattr(X, "nnz") and hasattr(X, "toarray"):  # scipy.sparse, without importing it
        raise TypeError(f"{name}: sparse input is not supported; expected a dense array "
                        f"(use {name}.toarray())")
    if isinstance(X, (list, tuple)):
        if lengths is not None:
            raise ValueError(f"{name}: lengths= is for a padded array; a list of sequences "
                             "carries its own lengths")
        return _from_list(X, dtype, name)
    arr = check.to_numpy(X, name)
    shape = arr.shape
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        reshape = (" Reshape your data: X.reshape(1, -1) is one univariate sequence."
                   if arr.ndim == 1 else "")
        raise ValueError(f"{name}: expected an array of shape (n_samples, T, n_features), "
                         f"(n_samples, T) or a list of (T_i, n_features) arrays, "
                         f"got a {arr.ndim}-D array of shape {shape}.{reshape}")
    n, T, F = arr.shape
    if n == 0:
        raise ValueError(f"{name}: found 0 sample(s) (shape={shape}) while a minimum of 1 "
                         "is required")
    if T == 0 or F == 0:
        raise ValueError(f"{name}: 0 feature(s) (shape={shape}) while a minimum of 1 is "
                         "required: at least one step, and one feature per step")
    arr = real_numbers(arr, name)
    out = np.array(arr, dtype=dtype, order="C")  # a private copy: padding gets zeroed
    seq = Sequences(out, _checked_lengths(lengths, n, T), T if len(shape) == 2 else None)
    if seq.lengths is not None:
        out[~seq.valid()] = 0  # what the padding held (even NaN) does not matter
    check.check_finite(name, out)
    return seq


def _checked_lengths(lengths, n, T):
    if lengths is None:
        return None
    arr = check.to_numpy(lengths, "lengths")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    check.check_shape("lengths", arr, (n,), " (one per sample)")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"lengths: expected every length in [1, {T}] (T, the padded length), "
                         f"got values from {arr.min()} to {arr.max()}")
    return None if arr.min() == T else arr.astype(np.intp)


def _from_list(X, dtype, name):
    if len(X) == 0:
        raise ValueError(f"{name}: expected at least one sequence, got an empty list")
    seqs, flat = [], True
    for i, s in enumerate(X):
        a = check.to_numpy(s, f"{name}[{i}]")
        flat = flat and a.ndim == 1
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"{name}[{i}]: expected a sequence of shape (T_i, n_features) or "
                             f"(T_i,) with T_i >= 1, got shape {a.shape}")
        a = real_numbers(a, f"{name}[{i}]")
        if a.shape[1] != seqs[0].shape[1] if seqs else False:
            raise ValueError(f"{name}[{i}]: expected {seqs[0].shape[1]} features (as {name}[0]), "
                             f"got {a.shape[1]}")
        seqs.append(a)
    lengths = np.array([a.shape[0] for a in seqs], np.intp)
    T, F = int(lengths.max()), seqs[0].shape[1]
    check.check_memory(f"{name} padded to ({len(seqs)}, {T}, {F})",
                       len(seqs) * T * F * np.dtype(dtype).itemsize)
    out = np.zeros((len(seqs), T, F), dtype)
    for i, a in enumerate(seqs):
        out[i, :a.shape[0]] = a
    check.check_finite(name, out)
    # A list of equal rows is the array-like scikit-learn means (X.tolist()).
    equal = lengths.min() == T
    return Sequences(out, None if equal else lengths, T if equal and flat else None)


def sequence_targets(y, n, name="y"):
    """One target row per sequence: y (n,) or (n, k) as an array of ndim 1 or 2 (not converted)."""
    arr = check.to_numpy(y, name)
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ValueError(f"{name}: expected one target per sequence, shape ({n},) or ({n}, k), "
                         f"got shape {arr.shape} (return_sequences=True takes one per step)")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one output, got shape {arr.shape}")
    return arr


def step_targets(y, seq, name="y"):
    """One target per step of each sequence, as an array (n, T) or (n, T, k) padded like seq.X.

    y is padded the same way as X (its entries past a sequence's end are not
    read) or, for sequences of their own lengths, a list of (T_i,) / (T_i, k).
    The padding of the result is 0 (or the first valid label: any valid value).
    """
    n, T = seq.X.shape[:2]
    steps = seq.steps()
    if isinstance(y, (list, tuple)):
        if len(y) != n:
            raise ValueError(f"{name}: expected {n} target sequences (one per sequence of X), "
                             f"got {len(y)}")
        rows = [check.to_numpy(t, f"{name}[{i}]") for i, t in enumerate(y)]
        for i, (t, T_i) in enumerate(zip(rows, steps)):
            if t.ndim not in (1, 2) or t.shape[0] != T_i:
                raise ValueError(f"{name}[{i}]: expected {T_i} targets (the length of X[{i}]), "
                                 f"shape ({T_i},) or ({T_i}, k), got shape {t.shape}")
            if t.shape[1:] != rows[0].shape[1:]:
                raise ValueError(f"{name}[{i}]: expected targets of shape (T_i,) + "
                                 f"{rows[0].shape[1:]} (as {name}[0]), got {t.shape}")
        out = np.empty((n, T) + rows[0].shape[1:], np.result_type(*rows))
        out[...] = rows[0][:1]  # padding: a valid value of the right type
        for i, t in enumerate(rows):
            out[i, :t.shape[0]] = t
        return out
    arr = check.to_numpy(y, name)
    if arr.ndim not in (2, 3) or arr.shape[:2] != (n, T):
        raise ValueError(f"{name}: expected one target per step, shape ({n}, {T}) or "
                         f"({n}, {T}, k) (that of X), got shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 0:
        raise ValueError(f"{name}: expected at least one output, got shape {arr.shape}")
    return arr
