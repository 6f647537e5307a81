"""Shared test helpers: relative errors and a record of the worst ones per dtype.

Tests that compare two implementations measure each pair of arrays with the
``record_error`` fixture, which returns ``rel_err(actual, expected)`` and keeps
the worst per (comparison, dtype); those are printed in the terminal summary of
every run, e.g.::

    engine vs reference   float64  3.1e-15  (test_forward_training[...] hs)

Hypothesis tests (tests/test_properties.py) have the cases they ran counted,
per property (test), and the summary ends with the total, e.g.::

    hypothesis: 2400 cases over 12 properties

The checkpoint fuzzing (tests/test_checkpoint_fuzz.py) counts its inputs per
mutation family with the ``record_fuzz`` fixture, and what each loader did with
them (loaded or refused); the summary lists them and the total.
"""

import functools

import numpy as np
import pytest

# (comparison, dtype name) -> (worst relative error, where)
_WORST = {}
# hypothesis property (test name) -> cases run; the test running now
_CASES = {}
_CURRENT = [None]
# checkpoint fuzzing: mutation family -> {"input" or (loader, "loaded"/"refused"): count}
_FUZZ = {}


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


def check_finite_differences(model, names, loss, rng, points=1, eps=1e-6):
    """model.grads[name] at random entries against central differences of loss().

    The caller has run forward and backward already, so model.grads holds the
    gradient of loss() (float64; loss() must not change the model's state).
    """
    for name in names:
        p = model.parameters()[name]
        for _ in range(points):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            np.testing.assert_allclose(model.grads[name][idx], (up - down) / (2 * eps),
                                       rtol=1e-6, atol=1e-8, err_msg=f"{name}{idx}")


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


@pytest.fixture(scope="session")
def record_fuzz():
    """record(family, loader, outcome): count one fuzz input (loader None, outcome "input")
    or what one loader did with it ("loaded", "refused"), for the terminal summary."""

    def record(family, loader, outcome):
        counts = _FUZZ.setdefault(family, {})
        key = outcome if loader is None else (loader, outcome)
        counts[key] = counts.get(key, 0) + 1

    return record


def _fuzz_summary(terminalreporter):
    if not _FUZZ:
        return
    terminalreporter.section("checkpoint fuzzing: inputs per mutation family")
    loaders = sorted({k[0] for c in _FUZZ.values() for k in c if isinstance(k, tuple)})
    for family, c in sorted(_FUZZ.items()):
        outcomes = "  ".join(f"{name} {c.get((name, 'loaded'), 0)} loaded/"
                             f"{c.get((name, 'refused'), 0)} refused" for name in loaders)
        terminalreporter.write_line(f"{family:<28} {c.get('input', 0):6d} inputs  {outcomes}")
    terminalreporter.write_line(f"checkpoint fuzzing: {sum(c.get('input', 0) for c in _FUZZ.values())}"
                                f" inputs over {len(_FUZZ)} families")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count the cases of a hypothesis test: wrap the function hypothesis calls per case."""
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    if handle is not None and not getattr(handle.inner_test, "_counts_cases", False):
        inner = handle.inner_test

        @functools.wraps(inner)
        def counted(*args, **kwargs):
            _CASES[_CURRENT[0]] = _CASES.get(_CURRENT[0], 0) + 1
            return inner(*args, **kwargs)

        counted._counts_cases = True
        handle.inner_test = counted  # hypothesis reads it anew on every run
    _CURRENT[0] = item.name
    try:
        yield
    finally:
        _CURRENT[0] = None


def pytest_terminal_summary(terminalreporter):
    _fuzz_summary(terminalreporter)
    if _WORST:
        terminalreporter.section("worst relative errors per dtype")
        for (comparison, dtype), (err, where) in sorted(_WORST.items()):
            terminalreporter.write_line(f"{comparison:<32} {dtype:<8} {err:9.2e}  ({where})")
    if _CASES:
        terminalreporter.section("hypothesis cases per property")
        for name, n in sorted(_CASES.items()):
            terminalreporter.write_line(f"{name:<56} {n:6d}")
        terminalreporter.write_line(f"hypothesis: {sum(_CASES.values())} cases over "
                                    f"{len(_CASES)} properties")
