"""Shared test helpers: relative errors and a record of the worst ones per dtype.

Tests that compare two implementations measure each pair of arrays with the
``record_error`` fixture, which returns ``rel_err(actual, expected)`` and keeps
the worst per (comparison, dtype); those are printed in the terminal summary of
every run, e.g.::

    engine vs reference   float64  3.1e-15  (test_forward_training[...] hs)
"""

import numpy as np
import pytest

# (comparison, dtype name) -> (worst relative error, where)
_WORST = {}


def rel_err(a, b):
    """max|a - b| / max|b|: one number per array, 0 when both are all zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    if scale == 0:
        return float(diff)
    return float(diff / scale)


@pytest.fixture
def record_error(request):
    """record(comparison, dtype, actual, expected, what) -> rel_err(actual, expected).

    Keeps the worst error per comparison and dtype for the terminal summary.
    """

    def record(comparison, dtype, actual, expected, what=""):
        err = rel_err(actual, expected)
        key = (comparison, np.dtype(dtype).name)
        if key not in _WORST or err > _WORST[key][0]:
            _WORST[key] = (float(err), f"{request.node.name} {what}".strip())
        return err

    return record


def pytest_terminal_summary(terminalreporter):
    if not _WORST:
        return
    terminalreporter.section("worst relative errors per dtype")
    for (comparison, dtype), (err, where) in sorted(_WORST.items()):
        terminalreporter.write_line(f"{comparison:<32} {dtype:<8} {err:9.2e}  ({where})")
