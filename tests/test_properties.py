"""Property tests (hypothesis) over the public API: every call matches the reference or refuses clearly.

For random arguments (shapes with 0 and 1 in every axis; strided, Fortran-
ordered, reversed, read-only and zero-stride (overlapping) views; lists, torch
tensors, scalars, None; int8 ... float64, float16, bool, complex, object
dtypes; NaN and inf; huge sizes whose products overflow) every call to
``LSTM``, ``LSTMCell``, ``forward``, ``backward``, ``state_dict`` /
``load_state_dict``, ``freeze()`` and the engine's ``forward_layer`` /
``backward_layer`` either

- returns what the NumPy reference backend returns for the same weights and
  the plain conversion ``np.array(arg, dtype=model.dtype)`` of its arguments
  (float64 to 1e-10, float32 to 1e-4 relative; NaN where it has NaN), or
- raises ValueError, TypeError or MemoryError whose message names the
  argument that was wrong,

and never anything else (another exception, a crash, a write out of bounds).
The semantics decided here, and written in the docstrings of layers.py and
_validate.py: ints, unsigned ints and float16 convert to the model's dtype;
bool, complex, object and strings are refused with TypeError; T = 0 or B = 0
is refused with ValueError; NaN and inf in x, hx or dy propagate as in torch
(no check on the hot path); weights loaded through load_state_dict must be
finite; sizes the engine's BLAS cannot take (T*B, I or 4H above 2**31 - 1) are
refused with ValueError, and calls that need more memory than the machine has
with MemoryError, both before anything is allocated.

The runs are reproducible (derandomize) and counted: the terminal summary ends
with "hypothesis: N cases over M properties" (conftest.py).
"""

import contextlib
import math
import os
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lstm_c
from lstm_c import LSTM, LSTMCell, _lstm, reference
from lstm_c import _validate as check

try:
    import torch
except ImportError:  # the torch extra is optional: its tensors are then not tried
    torch = None

# NaN, inf and huge values are inputs here: NumPy's warnings about them are expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
REFUSALS = (ValueError, TypeError, MemoryError)
INT_MAX = 2**31 - 1


# LSTM_C_PROPERTY_SCALE=10 pytest tests/test_properties.py: ten times the cases, for a search
SCALE = float(os.environ.get("LSTM_C_PROPERTY_SCALE", "1"))


def cases(n):
    """Settings of one property: n cases, reproducible, no deadline, no example database."""
    return settings(max_examples=max(1, round(n * SCALE)), derandomize=True, deadline=None,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --------------------------------------------------------------------------
# helpers

def attempt(call, label=""):
    """(result, None) or (None, the refusal); any other exception fails the test.

    The outcome is a hypothesis event (pytest --hypothesis-show-statistics).
    """
    try:
        result = call()
    except REFUSALS as e:
        event(f"{label} refused: {type(e).__name__}".strip())
        return None, e
    event(f"{label} accepted".strip())
    return result, None


def assert_names(err, *names):
    """err's message names one of `names` (the arguments given wrongly)."""
    msg = str(err)
    assert any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", msg) for n in names), (
        f"{type(err).__name__} does not name any of {names}: {msg!r}")


def assert_refused(err, *names):
    assert err is not None, f"accepted, but one of {names} was wrong"
    assert isinstance(err, REFUSALS), err
    assert_names(err, *names)


def assert_close(record, what, dtype, got, want):
    """got == want to the dtype's tolerance; NaN and inf exactly where want has them."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype} != {dtype}"
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN where the reference has none, or not"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"{what}: inf differs"
    fin = np.isfinite(want)
    assert np.isfinite(got[fin]).all(), f"{what}: inf where the reference is finite"
    # Relative to max(max|want|, 1): h, c and the gates are O(1), and where
    # every gate saturates (x = 100) the outputs are tiny, and the reference's
    # sigmoid 0.5 * (1 + tanh(z / 2)) keeps only their absolute precision.
    one = np.ones(1)
    err = record("properties: cython vs numpy", dtype, np.concatenate([got[fin], one]),
                 np.concatenate([want[fin], one]), what)
    assert err <= TOL[np.dtype(dtype)], f"{what}: error {err:.3g} relative to max(|want|, 1)"


def assert_tree_close(record, what, dtype, got, want):
    """assert_close over nested tuples, lists and dicts of arrays."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), what
        for k in want:
            assert_tree_close(record, f"{what}.{k}", dtype, got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert isinstance(got, type(want)) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_tree_close(record, f"{what}[{i}]", dtype, g, w)
    else:
        assert_close(record, what, dtype, got, want)


def canonical(value, dtype):
    """The plain conversion the property compares with: np.array(value, dtype), C order."""
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    return np.array(value, dtype=dtype)


@contextlib.contextmanager
def bounded_address_space(extra_bytes=4 * 2**30):
    """While inside, an allocation beyond `extra_bytes` more fails (MemoryError), not the machine.

    The huge-size properties expect every such call to be refused before it
    allocates anything; if one regressed, this turns the allocation into a
    MemoryError (whose message then fails the naming check), or at worst
    crashes this test run, instead of exhausting the memory of a machine
    shared with other test runs.
    """
    try:
        import resource
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def engine_threads(n):
    old = lstm_c.get_num_threads()
    lstm_c.set_num_threads(n)
    try:
        yield
    finally:
        lstm_c.set_num_threads(old)


# --------------------------------------------------------------------------
# array forms: the same values in every layout and dtype a caller may pass

# Forms that convert to np.array(form, dtype) of the same values (ints truncate).
GOOD_FORMS = ("same", "float64", "float32", "float16", "int8", "int64", "uint8", "fortran",
              "strided", "reversed", "readonly", "zero-stride", "list", "torch")
BAD_FORMS = ("bool", "complex64", "complex128", "object", "str")


def as_form(a, form, dtype):
    """The float64 array a as `form` (GOOD_FORMS convert to the model's dtype, BAD_FORMS are refused)."""
    if form == "same":
        return a.astype(dtype)
    if form in ("float64", "float32", "float16", "int64", "complex64", "complex128", "bool"):
        return a.astype(form)
    if form in ("int8", "uint8"):  # small ints: this is about conversion, not saturation
        b = np.nan_to_num(np.round(a * 3), posinf=8, neginf=-8)
        return np.clip(np.abs(b) if form == "uint8" else b, -8, 8).astype(form)
    if form == "object":
        return a.astype(object)
    if form == "str":
        return a.astype(str)
    if form == "fortran":
        return np.asfortranarray(a.astype(dtype))
    if form == "strided":  # every other element of a twice as long last axis
        if a.ndim == 0:
            return a.astype(dtype)
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if form == "reversed":  # negative strides
        return a[::-1].astype(dtype)[::-1] if a.ndim else a.astype(dtype)
    if form == "readonly":
        b = a.astype(dtype)
        b.flags.writeable = False
        return b
    if form == "zero-stride":  # every row the first one, all in the same memory
        if a.ndim == 0 or a.shape[0] == 0:
            return a.astype(dtype)
        return np.broadcast_to(a[:1].astype(dtype), a.shape)
    if form == "list":
        return a.tolist()
    if form == "torch":
        if torch is None:
            return a.astype(dtype)
        return torch.from_numpy(a.astype(dtype)).requires_grad_(a.size > 0 and a.ndim > 0)
    raise AssertionError(form)


good_forms = st.sampled_from(GOOD_FORMS)


def values(rng, shape, special=False, inf=True):
    """float64 standard normals; with special, a few NaN, huge and (with inf) infinite entries.

    inf only in x: an infinite c (from c0) or dh (from dy, dh_n) meets the
    reference's 0 * c and 0 * dh terms of absent peepholes (reference.py),
    which make NaN where the engine, as torch, keeps inf.
    """
    a = rng.standard_normal(shape)
    if special and a.size:
        # Without inf, huge stays finite in float16 too (whose largest is 65504).
        choices = [np.nan] + ([np.inf, -np.inf, 1e30, -1e30] if inf else [6e4, -6e4])
        for _ in range(rng.integers(1, 3)):
            a.flat[rng.integers(a.size)] = rng.choice(choices)
    return a


def model_pair(cfg):
    """The same model (weights, dropout generator) on the engine and on the reference."""
    cy = LSTM(**cfg, backend="cython")
    ref = LSTM(**cfg, backend="numpy")
    return cy, ref


@st.composite
def lstm_configs(draw, max_layers=3):
    H = draw(st.integers(1, 4))
    bias = draw(st.booleans())
    cfg = dict(input_size=draw(st.integers(1, 4)), hidden_size=H,
               num_layers=draw(st.integers(1, max_layers)), bias=bias,
               batch_first=draw(st.booleans()),
               dtype=draw(st.sampled_from([np.float64, np.float32])),
               seed=draw(st.integers(0, 2**16)),
               bidirectional=draw(st.booleans()),
               proj_size=draw(st.integers(0, H - 1)) if draw(st.booleans()) else 0,
               peephole=draw(st.booleans()),
               dropout=draw(st.sampled_from([0.0, 0.0, 0.4])),
               recurrent_dropout=draw(st.sampled_from([0.0, 0.0, 0.3])),
               forget_bias=draw(st.sampled_from([None, 1.0])) if bias else None)
    return cfg


def state_shapes(m, B, unbatched):
    LD = m.num_layers * m.num_directions
    P = m.proj_size or m.hidden_size
    lead = (LD,) if unbatched else (LD, B)
    return lead + (P,), lead + (m.hidden_size,)


def x_shape(m, T, B, unbatched):
    if unbatched:
        return (T, m.input_size)
    return (B, T, m.input_size) if m.batch_first else (T, B, m.input_size)


# --------------------------------------------------------------------------
# 1. the constructors: every argument valid, wrong in type or value, or huge

# (value, ok): ok is True (valid), False (refused) or a function of the other
# arguments. Huge values need more than any machine's memory, or exceed the
# engine's BLAS limit: refused before anything is allocated.
SIZE = [(1, True), (2, True), (4, True), (np.int64(3), True), (np.uint8(2), True),
        (0, False), (-1, False), (-2**63, False), (3.0, False), (True, False), (None, False),
        ("3", False), (np.float64(2), False)]
HUGE_INPUT = [(2**31, False), (2**40, False), (2**62, False), (2**64, False)]
HUGE_HIDDEN = [(2**29, False), (2**40, False), (2**70, False)]
# Each size within the BLAS limit, their product past any memory (the first: past 2**63 bytes).
HUGE_PAIRS = [((2**31 - 1, False), (2**29 - 1, False)), ((2**20, False), (2**28, False))]
HUGE_LAYERS = [(2**40, False), (2**62, False), (2**63, False)]
LAYERS = [(1, True), (2, True), (np.int16(3), True), (0, False), (-1, False), (1.5, False),
          (None, False), (True, False)]
FLAG = [(True, True), (False, True), (0, True), (1, True), (np.bool_(True), True),
        (2, False), (None, False), ("no", False), (0.0, False)]
BIAS = FLAG + [(np.float64, True), ("float32", True), (np.float16, False)]
RATE = [(0, True), (0.0, True), (0.5, True), (np.float32(0.25), True), (np.int64(0), True),
        (1.0, False), (-0.1, False), (float("nan"), False), (float("inf"), False),
        (None, False), ("0.5", False), (True, False), (1j, False)]
DTYPE = [(np.float32, True), (np.float64, True), ("float32", True), ("f8", True), (float, True),
         (None, True), (np.dtype("float64"), True), (np.float16, False), (np.int32, False),
         (np.complex64, False), (object, False), ("foo", False), (">f8", False), (1, False)]
if torch is not None:
    DTYPE += [(torch.float64, True), (torch.float16, False)]
BACKEND = [("cython", True), ("numpy", True), ("torch", False), (None, False), (1, False),
           (["cython"], False)]
SEED = [(None, True), (0, True), (12345, True), (2**64, True), (np.uint32(7), True),
        (-1, False), (np.int64(-3), False), (1.5, False), ("1", False), (True, False)]
PROJ = [(0, True), (1, lambda a: a["hidden_size"] > 1), (2, lambda a: a["hidden_size"] > 2),
        (np.int8(1), lambda a: a["hidden_size"] > 1), (-1, False), (1.0, False), (None, False),
        (True, False)]
FORGET = [(None, True), (1.0, lambda a: a["bias"]), (-2, lambda a: a["bias"]),
          (np.float32(0.5), lambda a: a["bias"]), (np.int8(1), lambda a: a["bias"]),
          (1e300, lambda a: a["bias"] and a["dtype"] == np.float64), (float("nan"), False),
          (float("inf"), False), ("1", False), (True, False), (1j, False)]


def pick(options, odd=0.1):
    """A strategy over (value, ok) pairs: a valid one, or with chance `odd` any of them.

    Most arguments are then valid in most cases, so that each wrong one is
    seen alone as well as with others, and a fair share of models is built.
    """
    good = [o for o in options if o[1] is True]
    n = round(1 / odd)
    return st.sampled_from(range(n)).flatmap(
        lambda k: st.sampled_from(options if k == 0 else good))


def _resolved(args):
    """The sizes, bias and dtype the constructor would use (or None where invalid)."""
    r = {}
    for k in ("input_size", "hidden_size"):
        v, ok = args[k]
        r[k] = int(v) if ok is True else None
    bias, bias_ok = args["bias"]
    if check.is_float_dtype(bias):  # LSTM(I, H, L, np.float64): a dtype given positionally
        r["bias"], r["dtype"], dtype_ok = True, check.float_dtype(bias), True
    else:
        r["bias"] = bool(bias) if bias_ok is True else None
        v, dtype_ok = args["dtype"]
        r["dtype"] = check.float_dtype(v) if dtype_ok is True else None
    return r, dtype_ok


@cases(600)
@given(data=st.data())
def test_constructor_refuses_or_builds(data):
    """LSTM(...) and LSTMCell(...): a model with torch's parameters, or a refusal naming a wrong argument."""
    cell = data.draw(st.booleans(), "cell")
    sizes = data.draw(st.sampled_from(range(10)).flatmap(lambda k: (
        st.tuples(st.sampled_from(HUGE_INPUT), pick(SIZE)) if k == 0 else
        st.tuples(pick(SIZE), st.sampled_from(HUGE_HIDDEN)) if k == 1 else
        st.sampled_from(HUGE_PAIRS) if k == 2 else st.tuples(pick(SIZE), pick(SIZE)))), "sizes")
    args = {"input_size": sizes[0], "hidden_size": sizes[1],
            "bias": data.draw(pick(BIAS)), "dtype": data.draw(pick(DTYPE)),
            "backend": data.draw(pick(BACKEND)), "seed": data.draw(pick(SEED))}
    if not cell:
        args.update(num_layers=data.draw(st.sampled_from(range(10)).flatmap(
                        lambda k: st.sampled_from(HUGE_LAYERS) if k == 0 else pick(LAYERS))),
                    batch_first=data.draw(pick(FLAG)), dropout=data.draw(pick(RATE)),
                    bidirectional=data.draw(pick(FLAG)), peephole=data.draw(pick(FLAG)),
                    proj_size=data.draw(pick(PROJ)), recurrent_dropout=data.draw(pick(RATE)),
                    forget_bias=data.draw(pick(FORGET)))
    resolved, dtype_ok = _resolved(args)
    bad = []
    for name, (value, ok) in args.items():
        if name == "dtype":
            ok = dtype_ok
        elif callable(ok):  # depends on other arguments: judged only when those are valid
            try:
                ok = ok(resolved)
            except (TypeError, KeyError):
                ok = True
            # (`is None`, not `in`: np.dtype("float64") == None is True)
            if any(resolved[k] is None for k in ("hidden_size", "bias", "dtype")):
                ok = True
        if ok is not True:
            bad.append(name)
    kwargs = {k: v for k, (v, _) in args.items()}
    cls = LSTMCell if cell else LSTM
    with bounded_address_space():
        m, err = attempt(lambda: cls(**kwargs), "bad " + ",".join(bad) if bad else "valid")
    if bad:
        assert_refused(err, *bad)
        return
    assert err is None, f"valid arguments refused: {err!r}"
    # torch's names and shapes, finite values, the initialisation's range
    I, H = resolved["input_size"], resolved["hidden_size"]
    assert m.dtype == resolved["dtype"] and m.bias == resolved["bias"]
    params = m.state_dict()
    for name, p in params.items():
        assert p.dtype == m.dtype and np.isfinite(p).all(), name
    if cell:
        want = {"weight_ih": (4 * H, I), "weight_hh": (4 * H, H)}
        if m.bias:
            want.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
    else:
        D, P = m.num_directions, m.proj_size or H
        want = {}
        for k in range(m.num_layers):
            for d in range(D):
                s = f"_l{k}" + ("_reverse" if d else "")
                want["weight_ih" + s] = (4 * H, I if k == 0 else D * P)
                want["weight_hh" + s] = (4 * H, P)
                if m.bias:
                    want["bias_ih" + s] = want["bias_hh" + s] = (4 * H,)
                if m.proj_size:
                    want["weight_hr" + s] = (P, H)
                if m.peephole:
                    want["weight_peephole" + s] = (3 * H,)
    assert {k: p.shape for k, p in params.items()} == want
    assert {k: g.shape for k, g in m.grads.items()} == want
    repr(m)


# --------------------------------------------------------------------------
# 2. valid models and inputs in every form: the engine matches the reference

@cases(400)
@given(cfg=lstm_configs(), data=st.data())
def test_lstm_matches_reference_for_any_input_form(cfg, data, record_error):
    """forward (lengths, mask, return_cells, grad) and backward; inputs in every layout and dtype."""
    cy, ref = model_pair(cfg)
    if data.draw(st.booleans(), "eval"):
        cy.eval(), ref.eval()
    dtype = cy.dtype
    T, B = data.draw(st.integers(1, 4), "T"), data.draw(st.sampled_from([1, 1, 2, 3, 4, 9]), "B")
    unbatched = B == 1 and data.draw(st.booleans(), "unbatched")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    seq = data.draw(st.sampled_from(["none", "none", "lengths", "mask"]), "seq")
    special = data.draw(st.integers(0, 5), "special") == 0
    x0 = values(rng, x_shape(cy, T, B, unbatched), special and seq == "none")
    x_form = data.draw(good_forms, "x form")
    hx = None
    if data.draw(st.booleans(), "hx"):
        h_shape, c_shape = state_shapes(cy, B, unbatched)
        hx = (as_form(values(rng, h_shape), data.draw(good_forms, "h form"), dtype),
              as_form(values(rng, c_shape), data.draw(good_forms, "c form"), dtype))
    kw = {}
    if seq == "lengths":
        lengths = rng.integers(0, T + 1, size=1 if unbatched else B)
        kw["lengths"] = data.draw(st.sampled_from(
            [lengths, lengths.astype(np.int32), lengths.tolist(), lengths.astype(np.uint8)]
            + ([int(lengths[0])] if unbatched else [])), "lengths form")
        want_kw = {"lengths": lengths}
    elif seq == "mask":
        lengths = rng.integers(0, T + 1, size=1 if unbatched else B)
        m = np.arange(T)[:, None] < lengths[None, :]
        m = m[:, 0] if unbatched else (m.T if cy.batch_first else m)
        kw["mask"] = m.tolist() if data.draw(st.booleans(), "mask list") else m
        want_kw = {"mask": m}
    else:
        want_kw = {}
    pad = None
    if seq != "none":  # padding never matters: garbage past each end, zeros for the reference
        pad = np.arange(T)[:, None] >= lengths[None, :]
        pad = pad[:, 0] if unbatched else (pad.T if cy.batch_first else pad)
        garbage = values(rng, x0.shape, True) if special else rng.standard_normal(x0.shape)
        x0 = np.where(pad[..., None], garbage, x0)
    x = as_form(x0, x_form, dtype)
    want_x = canonical(x, dtype)
    if pad is not None:
        want_x[np.broadcast_to(pad[..., None], want_x.shape)] = 0
    grad = data.draw(st.booleans(), "grad")
    cells = data.draw(st.booleans(), "return_cells")
    threads = data.draw(st.sampled_from([1, 1, 2]), "threads")

    with engine_threads(threads):
        got = cy.forward(x, hx, grad=grad, return_cells=cells, **kw)
    want = ref.forward(want_x, None if hx is None else
                       tuple(canonical(a, dtype) for a in hx),
                       grad=grad, return_cells=cells, **want_kw)
    assert_tree_close(record_error, "forward", dtype, got, want)
    if grad:
        assert not got[0].flags.writeable, "the y of a training forward is read-only"
    if not grad:
        return
    y_shape = want[0].shape
    dy0 = values(rng, y_shape)
    dy = as_form(dy0, data.draw(good_forms, "dy form"), dtype)
    dhx = None
    if data.draw(st.booleans(), "dhx"):
        dhx = tuple(as_form(values(rng, a.shape), data.draw(good_forms, "dhx form"), dtype)
                    for a in want[1])
    with engine_threads(threads):
        got = cy.backward(dy, dhx)
    want = ref.backward(canonical(dy, dtype),
                        None if dhx is None else tuple(canonical(a, dtype) for a in dhx))
    assert_tree_close(record_error, "backward", dtype, got, want)
    assert_tree_close(record_error, "grads", dtype, cy.grads, ref.grads)


# --------------------------------------------------------------------------
# 3. one argument of forward wrong, or odd: refused by name, or as the reference

def wild_array(draw, rng, shape, dtype, special_ok=True, inf=False):
    """An array-like near `shape`: right, or with a changed axis, an odd dtype or form, or no array.

    special_ok: NaN and huge values may appear, and with inf infinities (see
    values). Not with lengths: a NaN inside a sequence reaches its steps past
    the end through the reference's 0 * NaN, where the engine skips them.
    """
    kind = draw(st.sampled_from(["good", "good", "axis", "ndim", "bad form", "not an array",
                                 "huge"] + (["special"] if special_ok else [])), "kind")
    if kind == "good":
        return as_form(values(rng, shape), draw(good_forms, "form"), dtype)
    if kind == "special":
        return as_form(values(rng, shape, True, inf), draw(good_forms, "form"), dtype)
    if kind == "axis" and shape:
        axis = draw(st.integers(0, len(shape) - 1), "axis")
        size = draw(st.sampled_from([0, 1, 2, shape[axis] + 1, max(shape[axis] - 1, 0)]), "size")
        new = shape[:axis] + (size,) + shape[axis + 1:]
        return as_form(values(rng, new), draw(good_forms, "form"), dtype)
    if kind in ("ndim", "axis"):
        new = draw(st.sampled_from([(), shape[:-1], shape + (1,), (1,) + shape, shape[1:]]),
                   "shape")
        return as_form(values(rng, new), draw(good_forms, "form"), dtype)
    if kind == "bad form":
        return as_form(values(rng, shape), draw(st.sampled_from(BAD_FORMS), "form"), dtype)
    if kind == "huge":  # zero-stride: no memory behind it; its product passes 2**31 or 2**40
        axis = draw(st.integers(0, max(len(shape) - 1, 0)), "axis") if shape else 0
        size = draw(st.sampled_from([2**31, 2**40, 2**50]), "size")
        new = (shape[:axis] + (size,) + shape[axis + 1:]) if shape else (size,)
        return np.broadcast_to(np.zeros((1,) * len(new), dtype), new)
    return draw(st.sampled_from([None, 1.0, 3, "abc", {"x": 1}, [[1.0], [1.0, 2.0]], object()]),
                "value")


@cases(600)
@given(cfg=lstm_configs(max_layers=2), data=st.data())
def test_forward_one_wild_argument(cfg, data, record_error):
    """forward with one of x, hx, lengths, mask, grad, return_cells wild: refused by name, or right."""
    cy, ref = model_pair(cfg)
    dtype = cy.dtype
    T, B = data.draw(st.integers(1, 3), "T"), data.draw(st.integers(1, 3), "B")
    unbatched = B == 1 and data.draw(st.booleans(), "unbatched")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    x = values(rng, x_shape(cy, T, B, unbatched))
    h_shape, c_shape = state_shapes(cy, B, unbatched)
    which = data.draw(st.sampled_from(["x", "hx", "lengths", "mask", "grad", "return_cells",
                                       "lengths and mask"]), "which")
    args = {"x": x.astype(dtype), "hx": None, "grad": True, "return_cells": False}
    want = dict(args)
    names = (which,)
    if which == "x":
        args["x"] = wild_array(data.draw, rng, x.shape, dtype, inf=True)
        want["x"] = args["x"]
    elif which == "hx":
        kind = data.draw(st.sampled_from(["pair", "pair", "not a pair"]), "hx kind")
        if kind == "pair":
            args["hx"] = (wild_array(data.draw, rng, h_shape, dtype),
                          wild_array(data.draw, rng, c_shape, dtype))
            if data.draw(st.booleans(), "hx list"):
                args["hx"] = list(args["hx"])
        else:
            args["hx"] = data.draw(st.sampled_from(
                [np.zeros((2,) + h_shape), (np.zeros(h_shape),), (np.zeros(h_shape),) * 3,
                 {"h": 0}, 1.0, "hc"]), "hx value")
        want["hx"] = args["hx"]
    elif which in ("lengths", "lengths and mask"):
        n = 1 if unbatched else B
        good = rng.integers(0, T + 1, size=n)
        args["lengths"] = data.draw(st.sampled_from(
            [good, good.tolist(), good.astype(np.int8), good.astype(np.uint64),
             good.astype(float), good.astype(bool), good[:0], np.append(good, 1), good - T - 1,
             good + T + 1, [2**70] * n, np.full(n, 2**63, np.uint64), int(good[0]), 1.5,
             None, "ab", [None] * n, good[:, None]]
            + ([torch.from_numpy(good)] if torch is not None else [])), "lengths")
        want["lengths"] = args["lengths"]
        if which == "lengths and mask":
            m = np.ones((T,) if unbatched else (B, T) if cy.batch_first else (T, B), bool)
            args["mask"] = want["mask"] = m
            names = ("lengths", "mask")
    elif which == "mask":
        good = np.arange(T)[:, None] < rng.integers(0, T + 1, size=B)[None, :]
        good = good[:, 0] if unbatched else (good.T if cy.batch_first else good)
        args["mask"] = data.draw(st.sampled_from(
            [good, good.tolist(), ~good, good.astype(int), good.astype(np.uint8), good.T,
             good[..., :0], np.ones(good.shape + (1,), bool), np.zeros_like(good), True, None,
             np.asfortranarray(good), np.broadcast_to(good[:1], good.shape)]), "mask")
        want["mask"] = args["mask"]
    else:
        want[which] = args[which] = data.draw(st.sampled_from(
            [True, False, 0, 1, np.bool_(False), np.int64(1), 2, -1, None, "yes", 1.0, [True]]),
            which)
    for m in (cy, ref):  # a state for backward (and the same dropout draws on both)
        m.forward(np.ones(x_shape(cy, 1, B, unbatched)), grad=True)
    saved = cy._saved
    with bounded_address_space():
        got, err = attempt(lambda: cy.forward(args["x"], args["hx"], grad=args["grad"],
                                              return_cells=args["return_cells"],
                                              lengths=args.get("lengths"),
                                              mask=args.get("mask")), which)
    if err is not None:
        assert_refused(err, *names)
        assert cy._saved is saved, "a refused forward changed the state saved for backward"
        return
    # Accepted: the same as the reference given the plain conversions.
    w_x = canonical(want["x"], dtype)
    w_hx = None if want["hx"] is None else tuple(canonical(a, dtype) for a in want["hx"])
    w_len = want.get("lengths")
    if w_len is not None:
        w_len = np.atleast_1d(canonical(w_len, np.int64))
    w_mask = want.get("mask")
    if w_mask is not None:
        w_mask = np.array(w_mask)
    assert w_mask is None or w_mask.dtype == bool, "a mask that is not boolean was accepted"
    assert want.get("lengths") is None or np.asarray(want["lengths"]).dtype.kind in "iu", \
        "lengths that are not integers were accepted"
    expect = ref.forward(w_x, w_hx, grad=bool(want["grad"]),
                         return_cells=bool(want["return_cells"]), lengths=w_len, mask=w_mask)
    assert_tree_close(record_error, f"forward ({which})", dtype, got, expect)


# --------------------------------------------------------------------------
# 4. backward: dy and dhx wild, an inference call in between

@cases(400)
@given(cfg=lstm_configs(max_layers=2), data=st.data())
def test_backward_one_wild_argument(cfg, data, record_error):
    """backward(dy, dhx) with one of them wild: refused by name (grads untouched), or right."""
    cy, ref = model_pair(cfg)
    dtype = cy.dtype
    T, B = data.draw(st.integers(1, 3), "T"), data.draw(st.integers(1, 3), "B")
    unbatched = B == 1 and data.draw(st.booleans(), "unbatched")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    x = values(rng, x_shape(cy, T, B, unbatched)).astype(dtype)
    lengths = None
    if data.draw(st.booleans(), "lengths"):
        lengths = rng.integers(0, T + 1, size=1 if unbatched else B)
    (y, (h_n, c_n)), _ = cy(x, lengths=lengths), ref(x, lengths=lengths)
    if data.draw(st.booleans(), "inference in between"):  # leaves the saved state alone
        other = values(rng, x_shape(cy, T + 1, B, unbatched))
        cy(other, grad=False), ref(other, grad=False)
    which = data.draw(st.sampled_from(["dy", "dhx"]), "which")
    dy = values(rng, y.shape).astype(dtype)
    dhx = None
    special_ok = lengths is None
    if which == "dy":
        dy = wild_array(data.draw, rng, y.shape, dtype, special_ok)
    else:
        kind = data.draw(st.sampled_from(["pair", "pair", "not a pair"]), "dhx kind")
        dhx = ((wild_array(data.draw, rng, h_n.shape, dtype, special_ok),
                wild_array(data.draw, rng, c_n.shape, dtype, special_ok)) if kind == "pair"
               else data.draw(st.sampled_from([np.zeros((2,) + h_n.shape), (h_n,), 0.0]), "dhx"))
    grads = {k: g.copy() for k, g in cy.grads.items()}
    with bounded_address_space():
        got, err = attempt(lambda: cy.backward(dy, dhx), which)
    if err is not None:
        assert_refused(err, which)
        for k, g in grads.items():
            np.testing.assert_array_equal(cy.grads[k], g, err_msg=f"refused, yet {k} changed")
        return
    expect = ref.backward(canonical(dy, dtype),
                          None if dhx is None else tuple(canonical(a, dtype) for a in dhx))
    assert_tree_close(record_error, f"backward ({which})", dtype, got, expect)
    assert_tree_close(record_error, "grads", dtype, cy.grads, ref.grads)


# --------------------------------------------------------------------------
# 5. LSTMCell

@cases(400)
@given(data=st.data())
def test_cell_refuses_or_matches_reference(data, record_error):
    """LSTMCell forward and backward, one of x, hx, dh, dc wild."""
    I, H = data.draw(st.integers(1, 4), "I"), data.draw(st.integers(1, 4), "H")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), "dtype")
    bias, seed = data.draw(st.booleans(), "bias"), data.draw(st.integers(0, 99), "seed")
    cy = LSTMCell(I, H, bias, dtype, "cython", seed)
    ref = LSTMCell(I, H, bias, dtype, "numpy", seed)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    B = data.draw(st.integers(1, 4), "B")
    unbatched = B == 1 and data.draw(st.booleans(), "unbatched")
    x_sh, s_sh = ((I,), (H,)) if unbatched else ((B, I), (B, H))
    which = data.draw(st.sampled_from(["x", "hx", "dh", "dc", "none"]), "which")
    x = (wild_array(data.draw, rng, x_sh, dtype, inf=True) if which == "x"
         else as_form(values(rng, x_sh), data.draw(good_forms, "x form"), dtype))
    hx = None
    if which == "hx":
        hx = (wild_array(data.draw, rng, s_sh, dtype), wild_array(data.draw, rng, s_sh, dtype))
    elif which != "x" and data.draw(st.booleans(), "hx"):  # a wild x may change B
        hx = tuple(as_form(values(rng, s_sh), data.draw(good_forms, "hx form"), dtype)
                   for _ in range(2))
    with bounded_address_space():
        got, err = attempt(lambda: cy(x, hx), which)
    if err is not None:
        assert which in ("x", "hx"), f"valid input refused: {err!r}"
        assert_refused(err, which)
        return
    expect = ref(canonical(x, dtype), None if hx is None else tuple(canonical(a, dtype)
                                                                      for a in hx))
    assert_tree_close(record_error, f"cell forward ({which})", dtype, got, expect)
    shape = expect[0].shape
    dh = (wild_array(data.draw, rng, shape, dtype) if which == "dh"
          else as_form(values(rng, shape), data.draw(good_forms, "dh form"), dtype))
    dc = (wild_array(data.draw, rng, shape, dtype) if which == "dc"
          else as_form(values(rng, shape), data.draw(good_forms, "dc form"), dtype)
          if data.draw(st.booleans(), "dc") else None)
    with bounded_address_space():
        got, err = attempt(lambda: cy.backward(dh, dc), which)
    if err is not None:
        assert which in ("dh", "dc"), f"valid input refused: {err!r}"
        assert_refused(err, which)
        return
    expect = ref.backward(canonical(dh, dtype), None if dc is None else canonical(dc, dtype))
    assert_tree_close(record_error, f"cell backward ({which})", dtype, got, expect)
    assert_tree_close(record_error, "cell grads", dtype, cy.grads, ref.grads)


# --------------------------------------------------------------------------
# 6. state_dict / load_state_dict: all or nothing

@cases(300)
@given(cfg=lstm_configs(max_layers=2), data=st.data())
def test_load_state_dict_all_or_nothing(cfg, data, record_error):
    """A state dict with one entry (or its keys) wild: loaded exactly, or refused changing nothing."""
    cy, ref = model_pair(cfg)
    dtype = cy.dtype
    source = LSTM(**{**cfg, "seed": cfg["seed"] + 1})  # other weights, the same keys and shapes
    sd = source.state_dict()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    keys = sorted(sd)
    key = data.draw(st.sampled_from(keys), "key")
    what = data.draw(st.sampled_from(["value", "value", "form", "alias", "keys", "mapping"]),
                     "what")
    if what == "value":
        sd[key] = wild_array(data.draw, rng, sd[key].shape, dtype)
    elif what == "form":
        sd[key] = as_form(sd[key].astype(np.float64), data.draw(good_forms, "form"), dtype)
    elif what == "alias":  # another parameter of the model itself, of the same shape: a swap
        same = [k for k in keys if cy.parameters()[k].shape == sd[key].shape]
        other = data.draw(st.sampled_from(same), "other")
        sd[key], sd[other] = cy.parameters()[other], cy.parameters()[key]
    elif what == "keys":
        change = data.draw(st.sampled_from(["missing", "extra", "int key", "keys of two types",
                                            "renamed"]), "change")
        if change == "missing":
            del sd[key]
        elif change == "extra":
            sd["weight_ih_l9"] = sd[key]
        elif change == "int key":
            sd[1] = sd[key]
        elif change == "keys of two types":
            sd[1], sd[(2, 3)], sd["extra"] = sd[key], 0, 0
        else:
            sd[key.replace("weight", "Weight").replace("bias", "Bias")] = sd.pop(key)
    else:
        sd = data.draw(st.sampled_from([list(sd.items()), None, 1.0, "state"]), "mapping")
    before = {k: p.copy() for k, p in cy.parameters().items()}
    want = {}
    for k, v in (sd.items() if isinstance(sd, dict) else ()):
        try:  # before the load: with "alias" the values are the model's own parameters
            big = isinstance(v, np.ndarray) and v.size > 2**20  # zero-stride, never copied
            want[k] = None if big else canonical(v, dtype)
        except (TypeError, ValueError):
            want[k] = None
    with bounded_address_space():
        _, err = attempt(lambda: cy.load_state_dict(sd), what)
    if err is not None:
        assert_refused(err, "state_dict")
        for k, p in before.items():
            np.testing.assert_array_equal(cy.parameters()[k], p,
                                          err_msg=f"refused, yet {k} changed")
        return
    for k, w in want.items():
        assert w is not None and np.isfinite(w).all(), f"{k}: {sd[k]!r} was accepted"
        np.testing.assert_array_equal(cy.parameters()[k], w, err_msg=k)
    ref.load_state_dict(want)
    x = values(rng, x_shape(cy, 2, 2, False))
    assert_tree_close(record_error, "after load", dtype, cy(x, grad=False), ref(x, grad=False))


# --------------------------------------------------------------------------
# 7. freeze(): the snapshot, whatever the model and the input

@cases(250)
@given(cfg=lstm_configs(max_layers=2), data=st.data())
def test_frozen_matches_reference(cfg, data, record_error):
    """m.eval().freeze()(x, hx) = the reference's forward(grad=False) of the weights at freeze time."""
    if data.draw(st.integers(0, 9), "deep") == 0:  # past the 64 layers a PackedLSTM holds
        cfg = {**cfg, "num_layers": 65, "input_size": 1, "hidden_size": 1, "proj_size": 0,
               "bidirectional": False}
    cy, ref = model_pair(cfg)
    cy.eval(), ref.eval()
    dtype = cy.dtype
    frozen = cy.freeze()
    for p in cy.parameters().values():  # later changes are not seen
        p += 1
    T, B = data.draw(st.integers(1, 3), "T"), data.draw(st.integers(1, 4), "B")
    unbatched = B == 1 and data.draw(st.booleans(), "unbatched")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    which = data.draw(st.sampled_from(["x", "hx", "none"]), "which")
    shape = x_shape(cy, T, B, unbatched)
    x = (wild_array(data.draw, rng, shape, dtype, inf=True) if which == "x" else
         as_form(values(rng, shape), data.draw(good_forms, "form"), dtype))
    h_shape, c_shape = state_shapes(cy, B, unbatched)
    hx = None
    if which == "hx":
        hx = (wild_array(data.draw, rng, h_shape, dtype),
              wild_array(data.draw, rng, c_shape, dtype))
    elif which != "x" and data.draw(st.booleans(), "hx"):  # a wild x may change B
        hx = (values(rng, h_shape).astype(dtype), values(rng, c_shape).astype(dtype))
    with bounded_address_space():
        got, err = attempt(lambda: frozen(x, hx), which)
    if err is not None:
        assert which != "none", f"valid input refused: {err!r}"
        assert_refused(err, which)
        return
    expect = ref.forward(canonical(x, dtype), None if hx is None else
                         tuple(canonical(a, dtype) for a in hx), grad=False)
    assert_tree_close(record_error, f"frozen ({which})", dtype, got, expect)


# --------------------------------------------------------------------------
# 8. huge sizes: refused before anything is allocated

@cases(200)
@given(data=st.data())
def test_huge_sizes_refused_before_allocating(data):
    """Zero-stride inputs with T*B past 2**31 (or 2**40), wrong-shaped huge states and gradients."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), "dtype")
    batch_first = data.draw(st.booleans(), "batch_first")
    m = LSTM(2, 3, data.draw(st.integers(1, 2), "L"), batch_first=batch_first, dtype=dtype,
             seed=0)
    big = data.draw(st.sampled_from([2**31, 2**31 + 1, 2**32, 2**40, 2**50]), "big")
    small = data.draw(st.sampled_from([1, 2, 3]), "small")
    # Past the BLAS limits (T * B, or B * 4H for one step's gates: ValueError),
    # or within them but past the memory of this machine, made 64 MiB here
    # (MemoryError).
    T, B = data.draw(st.sampled_from([(big, small), (small, big), (2**16, 2**16),
                                      (2**20, 2**21), (2**12, 2**10), (2**22, 1),
                                      (1, 2**28)]), "T, B")
    where = data.draw(st.sampled_from(["x", "x unbatched", "frozen", "cell x", "hx", "dy", "dh",
                                       "state_dict"]), "where")
    zeros = lambda shape: np.broadcast_to(np.zeros((1,) * len(shape), dtype), shape)  # noqa: E731
    if where == "x":
        call, name = lambda: m(zeros((B, T, 2) if batch_first else (T, B, 2))), "x"
    elif where == "x unbatched":
        call, name = lambda: m(zeros((T * B, 2)), grad=False), "x"
    elif where == "frozen":
        f = m.eval().freeze()
        call, name = lambda: f(zeros((B, T, 2) if batch_first else (T, B, 2))), "x"
    elif where == "cell x":
        c = LSTMCell(2, 3, dtype=dtype)
        call, name = lambda: c(zeros((T * B, 2))), "x"
    elif where == "hx":
        x = np.ones((2, 2, 2), dtype)
        call, name = lambda: m(x, (zeros((m.num_layers, T * B, 3)), np.zeros((1, 2, 3)))), "hx"
    elif where == "dy":
        y, _ = m(np.ones((2, 2, 2), dtype))
        call, name = lambda: m.backward(zeros((T, B, 3))), "dy"
    elif where == "dh":
        c = LSTMCell(2, 3, dtype=dtype)
        c(np.ones((2, 2), dtype))
        call, name = lambda: c.backward(zeros((T * B, 3))), "dh"
    else:
        sd = m.state_dict()
        sd["weight_hh_l0"] = zeros((T * B, 3))
        call, name = lambda: m.load_state_dict(sd), "state_dict"
    with bounded_address_space(extra_bytes=2**30), \
            mock.patch.object(check, "physical_memory", lambda: 2**26):
        _, err = attempt(call, where)
    assert_refused(err, name)


# --------------------------------------------------------------------------
# 9. the engine called directly: shapes and dtypes checked, nothing written out of bounds

PAD = 64        # guard elements on each side of every output
CANARY = 1234.5


def guarded(shape, dtype, fill=None):
    """A C-contiguous array of shape in the middle of a buffer whose ends hold CANARY."""
    n = math.prod(shape)
    buf = np.full(n + 2 * PAD, CANARY, dtype)
    a = buf[PAD:PAD + n].reshape(shape)
    a[...] = 0 if fill is None else fill
    return buf, a


def canaries_intact(buf):
    return (buf[:PAD] == CANARY).all() and (buf[-PAD:] == CANARY).all()


@st.composite
def engine_case(draw):
    T, B, I, H = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, 9])),
                  draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    P = draw(st.integers(1, H - 1)) if H > 1 and draw(st.booleans()) else 0
    return dict(T=T, B=B, I=I, H=H, P=P, training=draw(st.booleans()),
                peephole=draw(st.booleans()), lengths=draw(st.booleans()),
                rec_mask=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])), backward=draw(st.booleans()))


def engine_arrays(c, rng):
    """Consistent arguments of forward_layer, and of backward_layer after a reference forward."""
    T, B, I, H, dt = c["T"], c["B"], c["I"], c["H"], c["dtype"]
    P = c["P"] or H
    fwd = {"x": values(rng, (T, B, I)).astype(dt), "w_ih": values(rng, (4 * H, I)).astype(dt),
           "w_hh": values(rng, (4 * H, P)).astype(dt), "bias": values(rng, (4 * H,)).astype(dt)}
    if c["P"]:
        fwd["w_hr"] = values(rng, (P, H)).astype(dt)
    if c["peephole"]:
        fwd["peephole"] = values(rng, (3 * H,)).astype(dt)
    if c["rec_mask"]:
        fwd["rec_mask"] = (rng.random((B, P)) > 0.3).astype(dt) / dt(0.7)
    if c["lengths"]:
        fwd["batch_sizes"] = np.sort(rng.integers(0, B + 1, size=T))[::-1].astype(np.int32).copy()
    training = c["training"] or c["backward"]
    outs = {"hs": (T + 1, B, P), "cs": (T + 1 if training else 1, B, H), "acts": (T, B, 4 * H),
            "tanh_c": (T if training else 0, B, H)}
    if c["P"]:
        outs["ms"] = (T if training else 1, B, H)
    return fwd, outs, training


@cases(600)
@given(c=engine_case(), data=st.data())
def test_engine_checks_its_arguments(c, data, record_error):
    """forward_layer / backward_layer with one argument changed: refused, or right; never out of bounds.

    Every output lies between guard elements (CANARY) that must stay as they
    were; inputs must stay unchanged; a refused call must not have written
    its outputs. Messages are not checked here: Cython's own argument
    conversion ("Buffer dtype mismatch", "ndarray is not C-contiguous", ...)
    does not name the argument (see the report).
    """
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "values"))
    dt = c["dtype"]
    T, B, I, H = c["T"], c["B"], c["I"], c["H"]
    P = c["P"] or H
    fwd, fwd_shapes, training = engine_arrays(c, rng)
    bufs = {}

    def output(name, shape, fill=None):
        bufs[name], a = guarded(shape, dt, fill)
        return a

    if c["backward"]:
        state = {k: output(k, shape) for k, shape in fwd_shapes.items()}
        state["hs"][0] = values(rng, (B, P))
        state["cs"][0] = values(rng, (B, H))
        reference.forward_layer(training=True, **fwd, **state)
        bufs.clear()
        ins = {**{k: v for k, v in fwd.items() if k != "bias"}, **state,
               "dy": values(rng, (T, B, P)).astype(dt), "dh_n": values(rng, (B, P)).astype(dt),
               "dc_n": values(rng, (B, H)).astype(dt)}
        added = {"dw_ih": (4 * H, I), "dw_hh": (4 * H, P), "db": (4 * H,)}
        if c["P"]:
            added["dw_hr"] = (P, H)
        if c["peephole"]:
            added["dpeephole"] = (3 * H,)
        outs = {k: output(k, shape) for k, shape in
                {"dx": (T, B, I), "dh0": (B, P), "dc0": (B, H), "dgates": (T, B, 4 * H)}.items()}
        outs.update({k: output(k, shape, values(rng, shape)) for k, shape in added.items()})
        fn, ref_fn, kwargs = _lstm.backward_layer, reference.backward_layer, {"threads": 1}
    else:
        ins = fwd
        outs = {k: output(k, shape) for k, shape in fwd_shapes.items()}
        outs["hs"][0] = values(rng, (B, P))
        outs["cs"][0] = values(rng, (B, H))
        fn, ref_fn = _lstm.forward_layer, reference.forward_layer
        kwargs = {"threads": 1, "training": training}
    args = {**ins, **outs}

    change = data.draw(st.sampled_from(["none", "none", "shape", "dtype", "layout", "read-only",
                                        "missing", "threads", "batch_sizes", "training"]),
                       "change")
    target = data.draw(st.sampled_from(sorted(args)), "target")
    a = args[target]
    if change == "shape":
        axis = data.draw(st.integers(0, a.ndim - 1), "axis")
        size = max(data.draw(st.sampled_from([0, a.shape[axis] - 1, a.shape[axis] + 1]), "size"), 0)
        shape = a.shape[:axis] + (size,) + a.shape[axis + 1:]
        args[target] = output(target, shape) if target in outs else np.resize(a, shape)
    elif change == "dtype":
        args[target] = a.astype(data.draw(st.sampled_from(
            [np.float16, np.float32, np.float64, np.int32, np.int64, np.complex64, object]),
            "to dtype"))
    elif change == "layout":
        form = data.draw(st.sampled_from(["fortran", "strided", "zero-stride", "list"]), "form")
        args[target] = as_form(np.asarray(a, np.float64), form, a.dtype)
    elif change == "read-only":
        args[target] = a.copy()
        args[target].flags.writeable = False
    elif change == "missing":
        args[target] = None
    elif change == "threads":
        kwargs["threads"] = data.draw(st.sampled_from([0, -1, 2, 256, 257, 2**31 - 1]), "threads")
    elif change == "batch_sizes":
        bs = data.draw(st.sampled_from(["increasing", "too big", "negative", "long", "int64"]),
                       "batch_sizes")
        args["batch_sizes"] = {"increasing": np.arange(T, dtype=np.int32) + (B if T == 1 else 0),
                               "too big": np.full(T, B + 1, np.int32),
                               "negative": np.full(T, -1, np.int32),
                               "long": np.full(T + 1, B, np.int32),
                               "int64": np.full(T, B, np.int64)}[bs]
    elif change == "training" and "training" in kwargs:
        kwargs["training"] = not training
    for k in outs:
        if args[k] is not outs[k]:
            bufs.pop(k, None)  # replaced: no guard around it
    before = {k: np.array(v, copy=True) for k, v in args.items() if isinstance(v, np.ndarray)}

    _, err = attempt(lambda: fn(**args, **kwargs), change)

    for k, buf in bufs.items():
        assert canaries_intact(buf), f"{fn.__name__} wrote outside {k} ({change} of {target})"
    for k, v in before.items():
        if k not in outs:
            np.testing.assert_array_equal(args[k], v, err_msg=f"input {k} changed")
    if err is not None:
        assert change != "none", f"consistent arguments refused: {err!r}"
        assert isinstance(err, (ValueError, TypeError)), err
        for k in outs:
            if k in before:
                np.testing.assert_array_equal(args[k], before[k],
                                              err_msg=f"refused, yet {k} was written")
        return
    # Accepted: the reference gives the same from the same (plainly converted) arguments.
    want = {k: None if v is None else
            np.array(before.get(k, v), dtype=np.int32 if k == "batch_sizes" else dt)
            for k, v in args.items()}
    ref_fn(**want, **kwargs)
    inference = not kwargs.get("training", True)
    for k in outs:
        if inference and k in ("acts", "tanh_c", "ms"):
            continue  # scratch, or not touched, in inference
        assert_close(record_error, f"engine {k}", dt, args[k], want[k])


# --------------------------------------------------------------------------
# regressions found by the properties above (each once, plainly)

def test_scalar_input_is_named_as_zero_d():
    """A scalar x was reported as "1-D shape (1,)" (np.ascontiguousarray makes 0-D 1-D)."""
    with pytest.raises(ValueError, match=r"x: expected a 3-D array.*got 0-D shape \(\)"):
        LSTM(3, 4)(1.0)
    with pytest.raises(ValueError, match=r"x: expected a 2-D array.*got 0-D shape \(\)"):
        LSTMCell(3, 4)(1.0)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(input_size=2**31), r"input_size must be at most 2147483647"),
    (dict(hidden_size=2**29), r"hidden_size must be at most 536870911"),
    (dict(hidden_size=2**40), r"hidden_size must be at most"),
])
def test_sizes_past_the_blas_limit_are_refused_at_construction(kwargs, pattern):
    """hidden_size=2**40 raised numpy's MemoryError "Unable to allocate 96 TiB ..." (no name)."""
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    for cls in (LSTM, LSTMCell):
        with pytest.raises(ValueError, match=pattern):
            cls(**args)


def test_parameters_beyond_memory_are_refused_before_allocating():
    """num_layers=2**40 allocated layer after layer until the machine ran out of memory."""
    with bounded_address_space(), pytest.raises(MemoryError, match=r"num_layers=1099511627776"):
        LSTM(3, 3, 2**40)
    with bounded_address_space(), pytest.raises(MemoryError, match=r"hidden_size=268435456"):
        LSTMCell(3, 2**28)


def test_parameter_count_is_exact(monkeypatch):
    """The count checked against memory is that of the parameters and gradients made."""
    seen = []
    monkeypatch.setattr(check, "check_memory", lambda what, n: seen.append(n))
    for kw in [dict(num_layers=3, bidirectional=True, proj_size=2, peephole=True),
               dict(num_layers=2, bias=False), dict()]:
        seen.clear()
        m = LSTM(5, 4, dtype=np.float64, **kw)
        assert seen == [sum(p.nbytes + m.grads[k].nbytes for k, p in m.parameters().items())]
    seen.clear()
    c = LSTMCell(5, 4, bias=False, dtype=np.float32)
    assert seen == [sum(p.nbytes * 2 for p in c.parameters().values())]


def test_a_step_of_gates_past_int_offsets_is_refused():
    """B * 4H above 2**31 - 1 reached the engine, whose per-step offsets (m * G, B * H) are C ints."""
    x = np.broadcast_to(np.zeros((1, 1, 2), np.float32), (1, 2**28, 2))
    with bounded_address_space(), pytest.raises(ValueError, match=r"x: .*B \* 4 \* hidden_size"):
        LSTM(2, 3)(x)
    with bounded_address_space(), pytest.raises(ValueError, match=r"B=268435456, hidden_size=3"):
        LSTMCell(2, 3)(x[0])


def test_huge_zero_stride_input_is_refused_before_copying():
    """A zero-stride x with T*B = 2**31 was copied first: numpy's "Unable to allocate 24 GiB"."""
    x = np.broadcast_to(np.zeros((1, 1, 3), np.float32), (2**31, 1, 3))
    with bounded_address_space(), \
            pytest.raises(ValueError, match=r"x: expected at most 2147483647.*T=2147483648"):
        LSTM(3, 4)(x)


def test_forward_beyond_memory_is_refused_before_allocating(monkeypatch):
    """A forward that needs more than the machine's memory: MemoryError naming x, nothing allocated."""
    monkeypatch.setattr(check, "physical_memory", lambda: 2**20)
    x = np.broadcast_to(np.zeros((1, 1, 3), np.float32), (2**12, 2**10, 3))
    with bounded_address_space(), \
            pytest.raises(MemoryError, match=r"forward over x of shape \(4096, 1024, 3\)"):
        LSTM(3, 4)(x)
    with bounded_address_space(), pytest.raises(MemoryError, match=r"step over x of shape"):
        LSTMCell(3, 4)(np.broadcast_to(np.zeros((1, 3), np.float32), (2**20, 3)))


def test_wrong_shaped_huge_state_is_refused_before_copying():
    """hx, dy, state_dict entries are checked for shape before being converted (copied)."""
    m = LSTM(2, 3)
    huge = np.broadcast_to(np.zeros((1, 1, 1)), (1, 2**40, 3))
    with bounded_address_space():
        with pytest.raises(ValueError, match=r"hx h: expected shape \(1, 2, 3\)"):
            m(np.ones((2, 2, 2)), (huge, huge))
        y, _ = m(np.ones((2, 2, 2)))
        with pytest.raises(ValueError, match=r"dy: expected shape \(2, 2, 3\)"):
            m.backward(huge)
        with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\]: expected shape"):
            m.load_state_dict({**m.state_dict(), "weight_hh_l0": huge[0]})


def test_load_state_dict_with_swapped_parameters():
    """Loading a model's own bias_hh as bias_ih and vice versa gave both the old bias_hh."""
    m = LSTM(2, 3, seed=0, dtype=np.float64)
    p = m.parameters()
    old_ih, old_hh = p["bias_ih_l0"].copy(), p["bias_hh_l0"].copy()
    m.load_state_dict({**p, "bias_ih_l0": p["bias_hh_l0"], "bias_hh_l0": p["bias_ih_l0"]})
    np.testing.assert_array_equal(p["bias_ih_l0"], old_hh)
    np.testing.assert_array_equal(p["bias_hh_l0"], old_ih)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_padding_never_matters(backend):
    """NaN past a sequence's end made all of dW_ih NaN (its GEMM reads all T*B rows of x)."""
    runs = []
    for pad in (np.nan, 0.0):
        m = LSTM(2, 3, seed=0, dtype=np.float64, backend=backend)
        x = np.ones((3, 2, 2))
        x[2, 1] = pad  # past the end of sequence 1 (length 2)
        y, (h, c) = m(x, lengths=[3, 2])
        dx, _ = m.backward(np.ones_like(y))
        runs.append([y, h, c, dx] + list(m.grads.values()))
    for got, want in zip(*runs):
        np.testing.assert_array_equal(got, want)


def test_state_dict_keys_of_several_types_are_listed():
    """Unexpected keys 1 and "extra" raised "'<' not supported between 'str' and 'int'"."""
    m = LSTM(2, 3)
    with pytest.raises(ValueError, match=r"state_dict keys do not match LSTM: missing \[\], "
                                         r"unexpected \['extra', 1\]"):
        m.load_state_dict({**m.state_dict(), 1: 0, "extra": 0})


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (np.int64(-3), ValueError),
                                         (True, TypeError)])
def test_seed_is_checked(seed, error):
    """seed=-1 raised numpy's "expected non-negative integer" (no name); seed=True was taken as 1."""
    with pytest.raises(error, match=r"seed must be"):
        LSTM(2, 3, seed=seed)


def test_forget_bias_must_fit_the_dtype():
    """forget_bias=1e300 in a float32 model became inf (a RuntimeWarning, then an inf bias)."""
    with pytest.raises(ValueError, match=r"forget_bias must be finite in float32, got 1e\+300"):
        LSTM(2, 3, forget_bias=1e300)
    m = LSTM(2, 3, dtype=np.float64, forget_bias=1e300)
    assert (m.parameters()["bias_ih_l0"][3:6] == 1e300).all()


def test_numpy_integers_are_rates_like_ints():
    """dropout=np.int64(0) and forget_bias=np.int8(1) were refused while 0 and 1 were taken."""
    m = LSTM(2, 3, dropout=np.int64(0), recurrent_dropout=np.int32(0), forget_bias=np.int8(1))
    assert m.dropout == 0.0 and (m.parameters()["bias_ih_l0"][3:6] == 1).all()


def test_freeze_past_64_layers():
    """freeze() of a 65-layer model raised the engine's "expected 1 to 64 layers"."""
    m = LSTM(1, 1, 65, seed=0).eval()
    x = np.ones((2, 1, 1), np.float32)
    y, (h, c) = m.freeze()(x)
    want, (wh, wc) = m(x, grad=False)
    np.testing.assert_allclose(y, want, rtol=1e-5)
    np.testing.assert_allclose(c, wc, rtol=1e-5)


def test_set_num_threads_refuses_past_the_engine_limit():
    """set_num_threads(2**40) was taken; the next forward raised OverflowError (no name)."""
    old = lstm_c.get_num_threads()
    try:
        for n in (257, 2**40):
            with pytest.raises(ValueError, match=r"threads must be at most 256"):
                lstm_c.set_num_threads(n)
        assert lstm_c.get_num_threads() == old
        lstm_c.set_num_threads(256)
    finally:
        lstm_c.set_num_threads(old)
