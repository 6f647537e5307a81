"""Find the LSTM cells that track a feature of the text.

Every cell (layer k, unit j) of a `lstm_c.record.Recording` gives one value per
character; every feature (`lstm_c.features.text_features`, or any arrays you
pass, such as the known state of `lstm_c.synthetic.generate`) gives another.
A cell's score for a feature is the Pearson correlation of the two over the
text, computed for all L*H cells at once: standardise both, one matrix
product. A sign is kept: a cell that is low inside quotes tracks them as well
as one that is high.
"""

from typing import NamedTuple

import numpy as np

from lstm_c import _validate as check
from lstm_c.features import text_features

VALUES = ("tanh_c", "c", "h")


class CellMatch(NamedTuple):
    """One cell's fit to one feature."""

    feature: str
    layer: int
    unit: int
    correlation: float  # signed Pearson correlation over the recorded text


def correlations(recording, features=None, value="tanh_c"):
    """Pearson correlation of every cell with every feature.

    Parameters
    ----------
    recording : lstm_c.record.Recording
    features : dict of str to array of shape (N,), or None
        One value per recorded character; None means
        ``text_features(recording.text)``.
    value : {"tanh_c", "c", "h"}
        Which recorded state of a cell to correlate.

    Returns
    -------
    dict of str to float64 array of shape (L, H)
        In the order of `features`. A constant feature or a constant cell
        scores 0.
    """
    if value not in VALUES:
        raise ValueError(f"value must be one of {list(VALUES)}, got {value!r}")
    states = np.asarray(getattr(recording, value))
    if states.ndim != 3:
        raise ValueError(f"recording.{value} must have shape (L, N, H), got {states.shape}")
    L, N, H = states.shape
    if N < 2:
        raise ValueError(f"a correlation needs at least 2 characters, the recording has {N}")
    if features is None:
        features = text_features(recording.text)
    names = list(features)
    columns = [_feature_column(name, features[name], N) for name in names]
    if not names:
        return {}

    # (N, L*H): column k*H + j is cell (k, j); float64 so that long texts sum accurately.
    cells = _standardise(states.transpose(1, 0, 2).reshape(N, L * H).astype(np.float64))
    targets = _standardise(np.stack(columns, axis=1))
    r = np.clip(targets.T @ cells / N, -1.0, 1.0)
    return {name: r[i].reshape(L, H) for i, name in enumerate(names)}


def find_cells(recording, features=None, value="tanh_c", top=1):
    """The cells whose activation best tracks each feature.

    Parameters
    ----------
    recording : lstm_c.record.Recording
    features : dict of str to array of shape (N,), or None
        None means ``text_features(recording.text)``.
    value : {"tanh_c", "c", "h"}
    top : int >= 1 or None
        How many cells to keep per feature; None keeps all L*H.

    Returns
    -------
    list of CellMatch
        Grouped by feature in the order of `features`, each group sorted by
        ``|correlation|``, largest first (ties in layer, then unit order).
    """
    if top is not None:
        top = check.positive_int("top", top)
    r = correlations(recording, features, value)
    matches = []
    for name, scores in r.items():
        H = scores.shape[1]
        flat = scores.ravel()
        order = np.argsort(-np.abs(flat), kind="stable")
        if top is not None:
            order = order[:top]
        matches.extend(CellMatch(name, int(i // H), int(i % H), float(flat[i])) for i in order)
    return matches


def _feature_column(name, values, n):
    column = np.asarray(values, dtype=np.float64)
    if column.ndim != 1 or column.shape[0] != n:
        raise ValueError(f"feature {name!r} has shape {column.shape}, but the recording has "
                         f"{n} characters: expected shape ({n},)")
    if not np.all(np.isfinite(column)):
        raise ValueError(f"feature {name!r} has non-finite values")
    return column


def _standardise(x):
    """Columns of `x` (N, M) to mean 0 and mean square 1, in place; constant columns to 0.

    A column counts as constant when all its values are equal, tested exactly:
    a tolerance on the standard deviation would either miss constants (whose
    centred values are rounding noise, not 0) or zero out real small signals.
    """
    constant = np.all(x == x[:1], axis=0)
    x -= x.mean(axis=0)
    scale = np.sqrt(np.mean(x * x, axis=0))
    scale[constant] = 1.0
    x /= scale
    x[:, constant] = 0.0
    return x
