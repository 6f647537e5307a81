"""Tests of the compiled engine (src/lstm_c/_lstm.pyx) against the NumPy reference.

``lstm_c._lstm`` and ``lstm_c.reference`` share one contract
(documented in src/lstm_c/_lstm.pyx): same functions, arguments and in/out semantics. The
reference is checked on its own in test_reference.py (finite differences,
torch); here every output of the engine, forward and backward, training and
inference, is compared with the reference's over a grid of shapes and both
dtypes, and the engine's argument checks are exercised one argument at a time.
"""

import numpy as np
import pytest

from lstm_c import reference as ref

_lstm = pytest.importorskip("lstm_c._lstm", reason="compiled engine not built")

# Relative error max|engine - reference| / max|reference|, per dtype. Both
# sides compute in the same dtype, so float32 differs only by rounding order.
TOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = (np.float64, np.float32)

#        T, B, I, H
SHAPES = [(1, 1, 1, 1),
          (1, 1, 4, 3),
          (1, 5, 3, 2),
          (6, 1, 2, 5),
          (4, 3, 1, 6),
          (3, 4, 5, 1),
          (5, 3, 4, 4),
          (30, 7, 13, 33),
          (3, 9, 3, 70)]
SHAPE_IDS = ["T{}-B{}-I{}-H{}".format(*s) for s in SHAPES]

FORWARD_IN = ("x", "w_ih", "w_hh", "bias")
FORWARD_OUT = ("hs", "cs", "acts", "tanh_c")
BACKWARD_IN = ("x", "w_ih", "w_hh", "hs", "cs", "acts", "tanh_c", "dy", "dh_n", "dc_n")
BACKWARD_OUT = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db", "dgates")
ACCUMULATED = ("dw_ih", "dw_hh", "db")



@pytest.fixture(autouse=True, params=["blas", "packed-avx512", "packed-avx2", "packed-baseline"])
def recurrent_kernel(request):
    """Run every test on each recurrent product: per-step BLAS, and the packed
    kernels of every instruction set this CPU can run (one wheel carries all)."""
    kernel, _, level = request.param.partition("-")
    if kernel == "packed":
        if _lstm.packed_panel_units("float32") == 0:
            pytest.skip("this build has no packed kernels")
        if _lstm.use_packed_level(level) != level:
            pytest.skip(f"this CPU cannot run the {level} kernels")
    _lstm.set_recurrent_kernel(kernel)
    yield request.param
    _lstm.set_recurrent_kernel("auto")
    _lstm.use_packed_level("avx512")


# --------------------------------------------------------------------------
# helpers

def _readonly(a):
    v = a.view()
    v.flags.writeable = False
    return v


def _make_case(seed, T, B, I, H, dtype):
    """Non-degenerate inputs (random weights, h0 != c0, both non-zero) and cotangents."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    p = {"x": rand(T, B, I), "h0": rand(B, H, scale=0.5), "c0": rand(B, H),
         "w_ih": rand(4 * H, I, scale=1.5 / np.sqrt(I)),
         "w_hh": rand(4 * H, H, scale=1.5 / np.sqrt(H)),
         "bias": rand(4 * H, scale=0.5)}
    u = {"dy": rand(T, B, H), "dh_n": rand(B, H), "dc_n": rand(B, H)}
    return p, u


def _forward_args(p, training):
    """Keyword arguments for forward_layer: IN arrays read-only, fresh OUT buffers."""
    x = p["x"]
    T, B, _ = x.shape
    H = p["w_hh"].shape[1]
    hs = np.full((T + 1, B, H), np.nan, x.dtype)
    hs[0] = p["h0"]
    cs = np.full((T + 1 if training else 1, B, H), np.nan, x.dtype)
    cs[0] = p["c0"]
    return {"x": _readonly(x), "w_ih": _readonly(p["w_ih"]), "w_hh": _readonly(p["w_hh"]),
            "bias": _readonly(p["bias"]), "hs": hs, "cs": cs,
            "acts": np.full((T, B, 4 * H), np.nan, x.dtype),
            "tanh_c": np.full((T if training else 0, B, H), np.nan, x.dtype),
            "training": training}


def _forward(engine, p, training=True):
    args = _forward_args(p, training)
    engine.forward_layer(**args)
    return {k: args[k] for k in FORWARD_OUT}


def _backward_args(p, u, fwd, init=None):
    """Keyword arguments for backward_layer; accumulators start at `init` (zeros if None)."""
    x = p["x"]
    T, B, I = x.shape
    H = p["w_hh"].shape[1]
    args = {"x": x, "w_ih": p["w_ih"], "w_hh": p["w_hh"], **fwd, **u}
    args = {k: _readonly(a) for k, a in args.items()}
    out = {"dx": np.full((T, B, I), np.nan, x.dtype),
           "dh0": np.full((B, H), np.nan, x.dtype),
           "dc0": np.full((B, H), np.nan, x.dtype),
           "dw_ih": np.zeros((4 * H, I), x.dtype),
           "dw_hh": np.zeros((4 * H, H), x.dtype),
           "db": np.zeros(4 * H, x.dtype),
           "dgates": np.full((T, B, 4 * H), np.nan, x.dtype)}
    if init is not None:
        for k in ACCUMULATED:
            out[k][...] = init[k]
    args.update(out)
    return args


def _backward(engine, p, u, fwd, init=None):
    args = _backward_args(p, u, fwd, init)
    engine.backward_layer(**args)
    return {k: args[k] for k in BACKWARD_OUT}


def _random_accumulators(seed, p):
    rng = np.random.default_rng(seed)
    dtype = p["x"].dtype
    return {"dw_ih": rng.standard_normal(p["w_ih"].shape).astype(dtype),
            "dw_hh": rng.standard_normal(p["w_hh"].shape).astype(dtype),
            "db": rng.standard_normal(p["bias"].shape).astype(dtype)}


# --------------------------------------------------------------------------
# forward

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_forward_training_matches_reference(shape, dtype, record_error):
    p, _ = _make_case(0, *shape, dtype)
    got = _forward(_lstm, p, training=True)
    want = _forward(ref, p, training=True)
    for k in FORWARD_OUT:
        assert got[k].dtype == dtype
        err = record_error("engine vs reference", dtype, got[k], want[k], k)
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g}"
    # The initial state is left in place.
    np.testing.assert_array_equal(got["hs"][0], p["h0"])
    np.testing.assert_array_equal(got["cs"][0], p["c0"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_forward_inference_matches_reference(shape, dtype, record_error):
    p, _ = _make_case(1, *shape, dtype)
    got = _forward(_lstm, p, training=False)
    want = _forward(ref, p, training=False)
    assert got["cs"].shape == (1,) + p["c0"].shape
    assert got["tanh_c"].shape == (0,) + p["c0"].shape
    for k in ("hs", "cs"):  # acts is scratch in inference
        err = record_error("engine vs reference", dtype, got[k], want[k], f"inference {k}")
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g}"
    # Inference computes exactly what training computes.
    train = _forward(_lstm, p, training=True)
    np.testing.assert_array_equal(got["hs"], train["hs"])
    np.testing.assert_array_equal(got["cs"][0], train["cs"][-1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [30.0, 1e4, 1e30])
def test_saturated_gates_stay_finite_and_match_reference(scale, dtype, record_error):
    # float32 runs its own exp (_gates.h), clamped so that it never overflows:
    # pre-activations far past the sigmoid's and tanh's range must saturate
    # cleanly, forward and backward, with no inf or NaN.
    p, u = _make_case(7, 6, 3, 4, 5, dtype)
    p["x"] = (p["x"] * dtype(scale)).astype(dtype)
    with np.errstate(all="ignore"):  # the reference itself may warn on 1e30 * w
        want = _forward(ref, p)
        want_b = _backward(ref, p, u, want)
    got = _forward(_lstm, p)
    got_b = _backward(_lstm, p, u, got)
    for k in ("hs", "cs", "acts"):
        assert np.isfinite(got[k]).all(), k
    for k in BACKWARD_OUT:
        if np.isfinite(want_b[k]).all():
            assert np.isfinite(got_b[k]).all(), k
    acts = got["acts"]
    assert acts.min() >= -1 and acts.max() <= 1
    for k in ("hs", "cs"):
        err = record_error("engine vs reference, saturated", dtype, got[k], want[k],
                           f"scale {scale:g} {k}")
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_in_the_input_gives_nan_out_not_garbage(dtype):
    p, _ = _make_case(8, 3, 2, 3, 4, dtype)
    p["x"] = p["x"].copy()
    p["x"][1, 0, 2] = np.nan
    got = _forward(_lstm, p, training=False)
    hs = got["hs"]
    assert np.isfinite(hs[1]).all()          # before the NaN
    assert np.isnan(hs[2:, 0]).all()         # the NaN row, from its step on
    assert np.isfinite(hs[2:, 1]).all()      # the other sequence is untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_inference_does_not_touch_a_full_size_tanh_c(dtype):
    p, _ = _make_case(2, 4, 3, 2, 5, dtype)
    args = _forward_args(p, training=False)
    args["tanh_c"] = np.full((4, 3, 5), np.nan, dtype)
    _lstm.forward_layer(**args)
    assert np.isnan(args["tanh_c"]).all()
    assert np.isfinite(args["hs"]).all() and np.isfinite(args["cs"]).all()


# --------------------------------------------------------------------------
# backward

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_matches_reference(shape, dtype, record_error):
    p, u = _make_case(3, *shape, dtype)
    init = _random_accumulators(4, p)  # the weight gradients are added to these
    got = _backward(_lstm, p, u, _forward(_lstm, p), init)
    want = _backward(ref, p, u, _forward(ref, p), init)
    for k in BACKWARD_OUT:
        assert got[k].dtype == dtype
        if k in ACCUMULATED:  # compare the increments, not the random offset
            a, b = got[k] - init[k], want[k] - init[k]
        else:
            a, b = got[k], want[k]
        err = record_error("engine vs reference", dtype, a, b, k)
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_on_the_reference_state_matches_reference(dtype, record_error):
    # The engine's backward on its own: fed the state the reference's forward left.
    p, u = _make_case(5, 7, 3, 4, 6, dtype)
    fwd = _forward(ref, p)
    got = _backward(_lstm, p, u, fwd)
    want = _backward(ref, p, u, fwd)
    for k in BACKWARD_OUT:
        err = record_error("engine vs reference", dtype, got[k], want[k], k)
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 3, 5, 2), (3, 1, 2, 4)],
                         ids=["T1-B1-I1-H1", "T4-B3-I5-H2", "T3-B1-I2-H4"])
def test_backward_accumulates_weight_grads_and_overwrites_the_rest(shape, dtype):
    p, u = _make_case(6, *shape, dtype)
    fwd = _forward(_lstm, p)
    once = _backward(_lstm, p, u, fwd)  # from zero
    init = _random_accumulators(7, p)
    twice = _backward(_lstm, p, u, fwd, init)
    twice = _backward(_lstm, p, u, fwd, twice)
    for k in ACCUMULATED:
        err = np.max(np.abs(twice[k] - (init[k] + 2 * once[k]))) / np.max(np.abs(init[k] + 2 * once[k]))
        assert err <= TOL[dtype], f"{k}: not init + 2 * grad (relative error {err:.3g})"
    for k in ("dx", "dh0", "dc0", "dgates"):  # overwritten: the same as a single call
        np.testing.assert_array_equal(twice[k], once[k], err_msg=k)
    np.testing.assert_allclose(once["db"], once["dgates"].sum(axis=(0, 1)),
                               rtol=TOL[dtype], atol=TOL[dtype] * np.abs(once["db"]).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_are_not_written(dtype):
    # Read-only views already stop Python-level writes; the engine writes through
    # raw pointers, so compare the IN arrays' contents too.
    p, u = _make_case(8, 5, 3, 4, 6, dtype)
    p_before = {k: a.copy() for k, a in p.items()}
    u_before = {k: a.copy() for k, a in u.items()}
    fwd = _forward(_lstm, p)
    fwd_before = {k: a.copy() for k, a in fwd.items()}
    _backward(_lstm, p, u, fwd)
    for k in p:
        np.testing.assert_array_equal(p[k], p_before[k], err_msg=k)
    for k in u:
        np.testing.assert_array_equal(u[k], u_before[k], err_msg=k)
    for k in fwd:
        np.testing.assert_array_equal(fwd[k], fwd_before[k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_repeated_calls_are_deterministic(dtype):
    p, u = _make_case(9, 6, 4, 3, 5, dtype)
    a_fwd, b_fwd = _forward(_lstm, p), _forward(_lstm, p)
    for k in FORWARD_OUT:
        np.testing.assert_array_equal(a_fwd[k], b_fwd[k], err_msg=k)
    a, b = _backward(_lstm, p, u, a_fwd), _backward(_lstm, p, u, b_fwd)
    for k in BACKWARD_OUT:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_concurrent_calls_from_threads_match_serial_calls():
    # The engine releases the GIL and keeps no state between calls.
    from concurrent.futures import ThreadPoolExecutor

    cases = [_make_case(20 + k, 6, 3, 5, 7, dtype) for k in range(4) for dtype in DTYPES]

    def run(case):
        p, u = case
        fwd = _forward(_lstm, p)
        return {**{k: a.copy() for k, a in fwd.items()}, **_backward(_lstm, p, u, fwd)}

    serial = [run(c) for c in cases]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(run, cases), serial):
                for k in want:
                    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# --------------------------------------------------------------------------
# argument checks: every argument wrong in turn, never a crash

# All dimensions > 1, so that a Fortran-order copy is really not C-contiguous.
BAD_SHAPE = (3, 2, 4, 5)
BAD_ERRORS = (ValueError, TypeError)


def _good_forward_args(dtype=np.float64, training=True):
    p, _ = _make_case(10, *BAD_SHAPE, dtype)
    args = _forward_args(p, training)
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}


def _good_backward_args(dtype=np.float64):
    p, u = _make_case(11, *BAD_SHAPE, dtype)
    args = _backward_args(p, u, _forward(_lstm, p))
    return {k: a.copy() for k, a in args.items()}


def _assert_refused(fn, args, outputs, match=None):
    """fn(**args) raises ValueError/TypeError and leaves every output untouched."""
    before = {k: args[k].copy() for k in outputs if isinstance(args[k], np.ndarray)}
    with pytest.raises(BAD_ERRORS, match=match):
        fn(**args)
    for k, a in before.items():
        if args[k] is not None and args[k].shape == a.shape:
            np.testing.assert_array_equal(args[k], a, err_msg=f"{k} written by a refused call")


def _wrong_shapes(shape):
    """Each axis one too long, and one axis too few / too many."""
    for axis in range(len(shape)):
        yield shape[:axis] + (shape[axis] + 1,) + shape[axis + 1:]
    yield shape[:-1] if len(shape) > 1 else shape + (1,)
    yield shape + (1,)


def _non_contiguous(a):
    """Same shape and values, not C-contiguous: Fortran order and a strided view."""
    if a.ndim > 1:
        yield np.asfortranarray(a)
    wide = np.repeat(a, 2, axis=-1)
    yield wide[..., ::2]


@pytest.mark.parametrize("name, training",
                         [(n, True) for n in FORWARD_IN + FORWARD_OUT]
                         + [(n, False) for n in FORWARD_IN + FORWARD_OUT if n != "tanh_c"])
def test_forward_refuses_a_wrong_shape(name, training):
    good = _good_forward_args(training=training)
    for shape in _wrong_shapes(good[name].shape):
        args = {**good, name: np.ones(shape, good[name].dtype)}
        _assert_refused(_lstm.forward_layer, args, FORWARD_OUT)


def test_forward_refuses_a_cs_of_the_other_mode():
    train = _good_forward_args(training=True)
    infer = _good_forward_args(training=False)
    with pytest.raises(ValueError, match="cs"):
        _lstm.forward_layer(**{**train, "cs": infer["cs"]})
    with pytest.raises(ValueError, match="cs"):
        _lstm.forward_layer(**{**infer, "cs": train["cs"]})
    with pytest.raises(ValueError, match="tanh_c"):
        _lstm.forward_layer(**{**train, "tanh_c": infer["tanh_c"]})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FORWARD_IN + FORWARD_OUT)
def test_forward_refuses_a_dtype_mix(name, dtype):
    good = _good_forward_args(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    for bad in (other, np.int64, np.float16, np.complex128):
        _assert_refused(_lstm.forward_layer, {**good, name: np.nan_to_num(good[name]).astype(bad)}, FORWARD_OUT)


@pytest.mark.parametrize("name", FORWARD_IN + FORWARD_OUT)
def test_forward_refuses_non_contiguous_arrays(name):
    good = _good_forward_args()
    for bad in _non_contiguous(good[name]):
        assert not bad.flags.c_contiguous
        _assert_refused(_lstm.forward_layer, {**good, name: bad}, FORWARD_OUT,
                        match="contiguous")


@pytest.mark.parametrize("name", FORWARD_IN + ("hs", "cs", "acts"))
def test_forward_refuses_none_and_non_arrays(name):
    good = _good_forward_args()
    for bad in (None, "abc", [[1.0, 2.0]]):
        _assert_refused(_lstm.forward_layer, {**good, name: bad}, FORWARD_OUT)


@pytest.mark.parametrize("name", ("hs", "cs", "acts", "tanh_c"))
def test_forward_refuses_read_only_outputs(name):
    good = _good_forward_args()
    _assert_refused(_lstm.forward_layer, {**good, name: _readonly(good[name])}, FORWARD_OUT)


@pytest.mark.parametrize("name", BACKWARD_IN + BACKWARD_OUT)
def test_backward_refuses_a_wrong_shape(name):
    good = _good_backward_args()
    for shape in _wrong_shapes(good[name].shape):
        args = {**good, name: np.ones(shape, good[name].dtype)}
        _assert_refused(_lstm.backward_layer, args, BACKWARD_OUT)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BACKWARD_IN + BACKWARD_OUT)
def test_backward_refuses_a_dtype_mix(name, dtype):
    good = _good_backward_args(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    for bad in (other, np.int64, np.float16):
        _assert_refused(_lstm.backward_layer, {**good, name: np.nan_to_num(good[name]).astype(bad)},
                        BACKWARD_OUT)


@pytest.mark.parametrize("name", BACKWARD_IN + BACKWARD_OUT)
def test_backward_refuses_non_contiguous_arrays(name):
    good = _good_backward_args()
    for bad in _non_contiguous(good[name]):
        assert not bad.flags.c_contiguous
        _assert_refused(_lstm.backward_layer, {**good, name: bad}, BACKWARD_OUT,
                        match="contiguous")


@pytest.mark.parametrize("name", BACKWARD_IN + BACKWARD_OUT)
def test_backward_refuses_none(name):
    good = _good_backward_args()
    _assert_refused(_lstm.backward_layer, {**good, name: None}, BACKWARD_OUT)


@pytest.mark.parametrize("name", BACKWARD_OUT)
def test_backward_refuses_read_only_outputs(name):
    good = _good_backward_args()
    _assert_refused(_lstm.backward_layer, {**good, name: _readonly(good[name])}, BACKWARD_OUT)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(0, 2, 3, 4), (2, 0, 3, 4), (2, 2, 0, 4), (2, 2, 3, 0)],
                         ids=["T0", "B0", "I0", "H0"])
def test_empty_sizes_are_refused(shape, training):
    T, B, I, H = shape
    z = np.zeros
    with pytest.raises(ValueError, match="positive|expected shape"):
        _lstm.forward_layer(x=z((T, B, I)), w_ih=z((4 * H, I)), w_hh=z((4 * H, H)),
                            bias=z(4 * H), hs=z((T + 1, B, H)),
                            cs=z((T + 1 if training else 1, B, H)),
                            acts=z((T, B, 4 * H)), tanh_c=z((T if training else 0, B, H)),
                            training=training)
    if training:
        with pytest.raises(ValueError, match="positive|expected shape"):
            _lstm.backward_layer(x=z((T, B, I)), w_ih=z((4 * H, I)), w_hh=z((4 * H, H)),
                                 hs=z((T + 1, B, H)), cs=z((T + 1, B, H)),
                                 acts=z((T, B, 4 * H)), tanh_c=z((T, B, H)), dy=z((T, B, H)),
                                 dh_n=z((B, H)), dc_n=z((B, H)), dx=z((T, B, I)),
                                 dh0=z((B, H)), dc0=z((B, H)), dw_ih=z((4 * H, I)),
                                 dw_hh=z((4 * H, H)), db=z(4 * H), dgates=z((T, B, 4 * H)))


def test_engine_still_works_after_refused_calls(record_error):
    for name in FORWARD_IN:
        with pytest.raises(BAD_ERRORS):
            _lstm.forward_layer(**{**_good_forward_args(), name: None})
    p, u = _make_case(12, *BAD_SHAPE, np.float64)
    got = _backward(_lstm, p, u, _forward(_lstm, p))
    want = _backward(ref, p, u, _forward(ref, p))
    for k in BACKWARD_OUT:
        assert record_error("engine vs reference", np.float64, got[k], want[k], k) <= TOL[np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_denormals_are_flushed_inside_the_engine_and_kept_outside(dtype):
    """A denormal c0 carried by a forget gate of 1 comes out as 0 from the engine
    (flush-to-zero there, where they would cost a slow path), while NumPy's own
    arithmetic after the call still keeps denormals (the caller's setting is back)."""
    if "flushed" not in _lstm.BUILD_INFO["denormals"]:
        pytest.skip("this CPU keeps denormals in the engine")
    tiny = np.finfo(dtype).smallest_normal / 4   # a denormal
    T, B, I, H = 1, 2, 1, 3
    p = {"x": np.zeros((T, B, I), dtype), "h0": np.zeros((B, H), dtype),
         "c0": np.full((B, H), tiny, dtype), "w_ih": np.zeros((4 * H, I), dtype),
         "w_hh": np.zeros((4 * H, H), dtype), "bias": np.zeros(4 * H, dtype)}
    p["bias"][H:2 * H] = 50.0   # forget gate 1: c1 = c0 + i * tanh(0) = c0
    args = _forward_args(p, training=True)
    _lstm.forward_layer(**args)
    assert np.all(args["cs"][1] == 0)
    assert np.all(_reference_keeps_the_denormal(p))
    assert dtype(tiny) * dtype(1.0) == tiny   # NumPy after the call: denormals kept


def _reference_keeps_the_denormal(p):
    """The reference (IEEE arithmetic) carries the denormal through."""
    args = _forward_args(p, training=True)
    ref.forward_layer(**args)
    return args["cs"][1] == np.finfo(p["c0"].dtype).smallest_normal / 4
