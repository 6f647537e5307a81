"""Numerics (issue 7, item 6): extreme inputs through the LSTM layer, on both
recurrent kernels (per-step BLAS and packed) and both dtypes, against the
NumPy reference (``backend="numpy"``).

- exploding inputs (x = +-1e30): the gates saturate, every output and
  gradient is finite and matches the reference;
- inf and NaN in the input propagate as IEEE arithmetic (and torch) make
  them: the engine neither refuses them (checking would cost a pass over x on
  every call) nor hides them; its NaN and inf land where the reference's do;
- all-zero weights; denormal inputs, weights and states (the engine flushes
  denormals to zero inside its calls, an absolute error below the smallest
  normal number);
- sigmoid and tanh of any finite pre-activation, up to the dtype's largest,
  are finite and in range on every gate kernel (the fused C kernels, the
  packed kernels and the peephole path);
- T = 100,000 steps at small H: forward and backward finite, and matching the
  reference on windows at the start, the middle and the end (the reference,
  started from the engine's state there, over 200 steps; Python would take
  minutes over all 100,000).
"""

import numpy as np
import pytest

import lstm_c
from lstm_c import _lstm
from conftest import rel_err

TOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = (np.float32, np.float64)
KERNELS = ("blas", "packed")


@pytest.fixture(params=KERNELS)
def kernel(request):
    if request.param == "packed" and not _lstm.packed_panel_units("float32"):
        pytest.skip("this build has no packed kernels")
    _lstm.set_recurrent_kernel(request.param)
    yield request.param
    _lstm.set_recurrent_kernel("auto")


def _pair(I, H, dtype, seed=0, params=None, **kw):
    """The engine's LSTM and the reference's, with the same weights."""
    m = lstm_c.LSTM(I, H, dtype=dtype, seed=seed, **kw)
    if params is not None:
        m.load_state_dict(params(m.state_dict()))
    r = lstm_c.LSTM(I, H, dtype=dtype, backend="numpy", **kw)
    r.load_state_dict(m.state_dict())
    return m, r


def _step(model, x, dy, hx=None, dhx=None):
    """forward + backward; every array that comes out, by name."""
    model.zero_grad()
    y, (h, c) = model.forward(x, hx)
    dx, (dh0, dc0) = model.backward(dy, dhx)
    out = {"y": y, "h_n": h, "c_n": c, "dx": dx, "dh0": dh0, "dc0": dc0}
    out.update({"grad " + k: g.copy() for k, g in model.grads.items()})
    return out


def _assert_matches(got, want, dtype, atol=0.0):
    """Non-finite entries at the same places (same values: +-inf or NaN);
    the finite ones within TOL of the reference's scale, or atol."""
    for k in want:
        a, b = np.asarray(got[k], np.float64), np.asarray(want[k], np.float64)
        assert a.shape == b.shape, k
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=f"{k}: finite")
        bad = ~np.isfinite(b)
        np.testing.assert_array_equal(a[bad], b[bad], err_msg=f"{k}: non-finite values")
        ok = ~bad
        if ok.any():
            scale = np.max(np.abs(b[ok]))
            err = np.max(np.abs(a[ok] - b[ok]))
            assert err <= max(TOL[dtype] * scale, atol), f"{k}: error {err:.3g}, scale {scale:.3g}"


def _finite(out):
    for k, a in out.items():
        assert np.isfinite(a).all(), f"{k} is not finite"


# --------------------------------------------------------------------------- huge inputs

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sign", ["+", "-", "mixed"])
@pytest.mark.parametrize("B", [1, 5])
def test_exploding_inputs_saturate_finite_and_match_the_reference(B, sign, dtype, kernel):
    rng = np.random.default_rng(1)
    T, I, H = 7, 3, 6
    x = np.full((T, B, I), 1e30)
    if sign == "-":
        x = -x
    elif sign == "mixed":
        x *= rng.choice([-1.0, 1.0], size=x.shape)
        x[3] = rng.standard_normal((B, I))   # one ordinary step in between
    x = x.astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    for num_layers in (1, 2):
        m, r = _pair(I, H, dtype, num_layers=num_layers)
        got = _step(m, x, dy)
        with np.errstate(all="ignore"):
            want = _step(r, x, dy)
        _finite(got)
        assert np.abs(got["y"]).max() <= 1
        _assert_matches(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_and_nan_inputs_propagate_as_in_the_reference(dtype, kernel):
    T, B, I, H = 6, 4, 3, 5
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype(dtype)
    x[1, 0, 1] = np.inf       # one inf: its pre-activations are +-inf, the gates saturate
    x[2, 1, 0] = -np.inf
    x[3, 2, 2] = np.nan       # NaN: that sequence is NaN from there on
    m, r = _pair(I, H, dtype)
    y, (h, c) = m.forward(x, grad=False)
    with np.errstate(all="ignore"):
        y_ref, (h_ref, c_ref) = r.forward(x, grad=False)
    _assert_matches({"y": y, "h": h, "c": c}, {"y": y_ref, "h": h_ref, "c": c_ref}, dtype)
    assert np.isfinite(y[:, [0, 1, 3]]).all()    # inf alone saturates: finite out
    assert np.isnan(y[3:, 2]).all() and np.isfinite(y[:3, 2]).all()
    # training too: the forward the same; backward's gradients non-finite
    # (0 * inf), as they are in torch, never an error or a crash
    y2, _ = m.forward(x)
    np.testing.assert_array_equal(y2, y)
    dx, _ = m.backward(np.ones_like(y2))
    assert np.isnan(dx[:4, 2]).all()


# --------------------------------------------------------------------------- zero and denormal

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 3])
def test_all_zero_weights(B, dtype, kernel):
    T, I, H = 9, 4, 5
    rng = np.random.default_rng(3)
    m, r = _pair(I, H, dtype, num_layers=2,
                 params=lambda sd: {k: np.zeros_like(v) for k, v in sd.items()})
    x = (1e30 * rng.standard_normal((T, B, I))).astype(dtype)   # 0 * 1e30 = 0
    c0 = np.ones((2, B, H), dtype)
    hx = (np.zeros((2, B, H), dtype), c0)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    got = _step(m, x, dy, hx)
    _finite(got)
    _assert_matches(got, _step(r, x, dy, hx), dtype)
    # every gate at sigmoid(0) = 1/2 and g = tanh(0) = 0: c halves each step
    t = np.arange(1, T + 1, dtype=np.float64)
    want_h = 0.5 * np.tanh(0.5 ** t)[:, None, None] * np.ones((T, B, H))
    y, (h, c) = m.forward(x, hx, grad=False)
    # layer 2 sees h of layer 1 through zero weights: its c halves too
    np.testing.assert_allclose(y, want_h, rtol=TOL[dtype] * 10)
    np.testing.assert_allclose(c[0], 0.5 ** T * np.ones((B, H)), rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("what", ["x", "weights", "state", "all"])
def test_denormals(what, dtype, kernel):
    T, B, I, H = 6, 3, 4, 5
    tiny = np.finfo(dtype).smallest_normal
    rng = np.random.default_rng(4)

    def denormal(shape):
        return (rng.uniform(0.01, 0.99, size=shape) * rng.choice([-1, 1], size=shape)
                * tiny).astype(dtype)

    def weights(sd):
        return {k: denormal(v.shape) for k, v in sd.items()}

    m, r = _pair(I, H, dtype, params=weights if what in ("weights", "all") else None)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    if what in ("x", "all"):
        x = denormal((T, B, I))
    if what in ("state", "all"):
        hx = (denormal((1, B, H)), denormal((1, B, H)))
    else:
        hx = (rng.standard_normal((1, B, H)).astype(dtype),) * 2
    assert np.all(np.abs(x) < tiny) or what not in ("x", "all")
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    got = _step(m, x, dy, hx)
    _finite(got)
    # the engine flushes denormals to 0: an absolute difference of a few
    # smallest normals, times the sizes of the sums (weights up to 1/sqrt(H))
    _assert_matches(got, _step(r, x, dy, hx), dtype, atol=100 * tiny)
    # and the caller's arithmetic keeps them after the call
    assert dtype(tiny / 4) * dtype(1) == dtype(tiny / 4) != 0


# --------------------------------------------------------------------------- the gate functions

def _extremes(dtype):
    """Pre-activations from -max to max: the clamps of exp, the branch point of
    tanh (0.625), where float rounds sigmoid to exactly 0 or 1, denormals."""
    fi = np.finfo(dtype)
    pos = [fi.max, fi.max / 2, 1e30, 1e20, 710.0, 709.0, 100.0, 89.0, 88.72, 88.0, 87.0, 44.0,
           40.0, 20.0, 17.0, 10.0, 1.0, 0.625, 0.6249, 0.3, 1e-4, 1e-20, fi.smallest_normal,
           fi.smallest_normal / 8]
    return np.array(pos + [0.0, -0.0] + [-v for v in pos], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["blas", "packed-avx512", "packed-avx2", "packed-baseline",
                                  "peephole"])
def test_sigmoid_and_tanh_never_overflow(path, dtype):
    """Every extreme value as every gate's pre-activation and as c: the
    activations are finite, in range, and within a few ulp of the exact ones,
    on every gate kernel (the packed kernels of each instruction set this CPU
    runs, the fused gate pass of per-step BLAS, the peephole pass)."""
    kernel, _, level = path.partition("-")
    if kernel == "packed":
        if not _lstm.packed_panel_units("float32"):
            pytest.skip("this build has no packed kernels")
        if _lstm.use_packed_level(level) != level:
            pytest.skip(f"this CPU cannot run the {level} kernels")
    try:
        _lstm.set_recurrent_kernel("packed" if kernel == "packed" else "blas")
        _check_gates(path, dtype)
    finally:
        _lstm.set_recurrent_kernel("auto")
        _lstm.use_packed_level("avx512")


def _check_gates(path, dtype):
    v = _extremes(dtype)
    n = len(v)
    H, B = n, 2
    # I = 4H inputs, W_ih the identity: the gate pre-activations are x itself, exactly
    x = np.empty((2, B, 4 * H), dtype)
    x[0, 0] = np.tile(v, 4)                    # every gate sees every value
    x[0, 1] = np.concatenate([np.roll(v, k) for k in range(4)])
    x[1] = x[0, ::-1]                          # and c_prev extreme at step 2
    w_ih = np.eye(4 * H, dtype=dtype)
    w_hh = np.zeros((4 * H, H), dtype)
    hs = np.zeros((3, B, H), dtype)
    cs = np.zeros((3, B, H), dtype)
    cs[0] = v[::-1]
    acts = np.zeros((2, B, 4 * H), dtype)
    tanh_c = np.zeros((2, B, H), dtype)
    extra = {"peephole": np.zeros(3 * H, dtype)} if path == "peephole" else {}
    _lstm.forward_layer(x, w_ih, w_hh, np.zeros(4 * H, dtype), hs, cs, acts, tanh_c, True,
                        **extra)
    for name, a in (("hs", hs), ("cs", cs), ("acts", acts), ("tanh_c", tanh_c)):
        assert np.isfinite(a).all(), name
    z = x.astype(np.float64)
    with np.errstate(over="ignore"):
        sig = 1.0 / (1.0 + np.exp(-z))
    exact = np.concatenate([sig[..., :2 * H], np.tanh(z[..., 2 * H:3 * H]), sig[..., 3 * H:]],
                           axis=-1)
    ulp = {np.float32: 1e-6, np.float64: 2e-15}[dtype]
    # absolute error: the activations lie in [-1, 1]; past the smallest
    # normal the engine's results flush to 0
    err = np.abs(acts.astype(np.float64) - exact)
    assert err.max() <= 4 * ulp, err.max()
    assert np.all((acts[..., :2 * H] >= 0) & (acts[..., :2 * H] <= 1))
    assert np.all(np.abs(acts[..., 2 * H:3 * H]) <= 1)
    np.testing.assert_allclose(tanh_c, np.tanh(cs[1:].astype(np.float64)), rtol=0, atol=4 * ulp)
    # sigmoid saturates to exactly 1 (and tanh to +-1), never past it
    assert acts.max() == 1 and acts.min() == -1


# --------------------------------------------------------------------------- long sequences

LONG_T = 100_000
WINDOW = 200


@pytest.mark.parametrize("kernel_name, dtype, H, B", [("blas", np.float32, 16, 1),
                                                      ("blas", np.float64, 4, 2),
                                                      ("packed", np.float32, 8, 2),
                                                      ("packed", np.float64, 16, 1)])
def test_100000_steps(kernel_name, dtype, H, B):
    if kernel_name == "packed" and not _lstm.packed_panel_units("float32"):
        pytest.skip("this build has no packed kernels")
    T, I = LONG_T, 3
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    m, r = _pair(I, H, dtype, seed=6, forget_bias=1.0)   # long memory: c can grow
    _lstm.set_recurrent_kernel(kernel_name)
    try:
        y, (h_n, c_n), cells = m.forward(x, return_cells=True)
        c = cells[0]["c"]
        dx, (dh0, dc0) = m.backward(dy)
    finally:
        _lstm.set_recurrent_kernel("auto")
    _finite({"y": y, "c": c, "dx": dx, "dh0": dh0, "dc0": dc0, **m.grads})
    np.testing.assert_array_equal(h_n[0], y[-1])
    np.testing.assert_array_equal(c_n[0], c[-1])

    def state(t):   # the engine's (h, c) before step t, as an hx
        if t == 0:
            return None
        return y[t - 1][None].copy(), c[t - 1][None].copy()

    # forward: windows at the start, the middle and the end, each run by the
    # reference from the engine's state there
    for t0 in (0, T // 2, T - WINDOW):
        want, _ = r.forward(x[t0:t0 + WINDOW], state(t0), grad=False)
        err = rel_err(y[t0:t0 + WINDOW], want)
        assert err <= TOL[dtype], f"forward window at {t0}: {err:.3g}"

    # backward: the last two windows, chained by dh, dc at their boundary
    dhx = None
    for t0 in (T - WINDOW, T - 2 * WINDOW):
        r.forward(x[t0:t0 + WINDOW], state(t0))
        dx_w, dhx = r.backward(dy[t0:t0 + WINDOW], dhx)
        err = rel_err(dx[t0:t0 + WINDOW], dx_w)
        assert err <= 10 * TOL[dtype], f"backward window at {t0}: {err:.3g}"
