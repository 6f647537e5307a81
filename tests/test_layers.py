"""Tests of lstm_c.LSTM and lstm_c.LSTMCell (python/lstm_c/layers.py).

The compiled backend ("cython") is compared with the NumPy reference backend
("numpy") built from the same seed, so with the same weights and the same
dropout masks; finite differences check the whole multi-layer stack; then the
API contract: dropout, gradient accumulation, the inference path, state dicts,
parameters, initialisation, input conversion, the error for every kind of bad
input, and memory that stays flat over many calls.
"""

import gc
import os
import resource
import tracemalloc

import numpy as np
import pytest

import lstm_c
from lstm_c import LSTM, LSTMCell

# Relative error max|cython - numpy| / max|numpy| per dtype (same dtype on both sides).
TOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = (np.float64, np.float32)
# Central finite differences of the float64 model (step FD_EPS): (rtol, atol).
FD_EPS = 1e-6
FD_TOL = (1e-6, 1e-8)


# --------------------------------------------------------------------------
# helpers

def _rand(rng, shape, dtype=np.float64, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _shapes(T, B, H, L, batch_first, unbatched):
    """(x shape without I, state shape): where T and B go for this layout."""
    if unbatched:
        return (T,), (L, H)
    return ((B, T) if batch_first else (T, B)), (L, B, H)


def _make_inputs(seed, T, B, I, H, L, dtype, batch_first=False, unbatched=False):
    """x, hx, dy, dhx in the layout the model expects; h0 != c0, both non-zero."""
    rng = np.random.default_rng(seed)
    lead, state = _shapes(T, B, H, L, batch_first, unbatched)
    x = _rand(rng, lead + (I,), dtype)
    hx = (_rand(rng, state, dtype, 0.5), _rand(rng, state, dtype))
    dy = _rand(rng, lead + (H,), dtype)
    dhx = (_rand(rng, state, dtype), _rand(rng, state, dtype))
    return x, hx, dy, dhx


def _run(m, x, hx=None, dy=None, dhx=None):
    """forward + backward; returns every output and a copy of every gradient."""
    y, (h_n, c_n) = m(x, hx)
    out = {"y": y.copy(), "h_n": h_n.copy(), "c_n": c_n.copy()}
    if dy is not None:
        dx, (dh0, dc0) = m.backward(dy, dhx)
        out.update(dx=dx.copy(), dh0=dh0.copy(), dc0=dc0.copy())
        out.update({"grad " + k: g.copy() for k, g in m.grads.items()})
    return out


def _compare(got, want, dtype, record_error, comparison="cython vs numpy backend"):
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert got[k].dtype == dtype, k
        err = record_error(comparison, dtype, got[k], want[k], k)
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g} > {TOL[dtype]}"


def _pair(I, H, L=1, dtype=np.float64, seed=0, **kw):
    """The same model twice: the compiled backend and the NumPy reference."""
    cy = LSTM(I, H, L, dtype=dtype, backend="cython", seed=seed, **kw)
    ref = LSTM(I, H, L, dtype=dtype, backend="numpy", seed=seed, **kw)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(cy.state_dict()[k], v, err_msg=k)
    return cy, ref


def _params_copy(m):
    return {k: v.copy() for k, v in m.parameters().items()}


# --------------------------------------------------------------------------
# LSTM: the compiled backend against the reference backend

#                  T, B, I, H, L, batch_first, unbatched, hx, dhx, bias
LSTM_CASES = [
    pytest.param(1, 1, 1, 1, 1, False, False, True, True, True, id="T1-B1-I1-H1"),
    pytest.param(1, 4, 3, 5, 2, False, False, True, True, True, id="T1-L2"),
    pytest.param(6, 1, 5, 3, 1, False, False, True, False, True, id="B1-I>H"),
    pytest.param(5, 3, 2, 7, 3, False, False, False, True, True, id="L3-I<H-no-hx"),
    pytest.param(4, 3, 4, 4, 2, True, False, True, True, True, id="batch_first"),
    pytest.param(3, 5, 6, 2, 2, True, False, False, False, True, id="batch_first-no-hx-no-dhx"),
    pytest.param(7, 1, 3, 4, 2, False, True, True, True, True, id="unbatched"),
    pytest.param(1, 1, 2, 3, 3, False, True, False, False, True, id="unbatched-T1-no-hx"),
    pytest.param(5, 2, 3, 4, 2, False, False, True, True, False, id="bias=False"),
    pytest.param(12, 6, 9, 17, 3, True, False, True, True, True, id="larger"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, B, I, H, L, batch_first, unbatched, use_hx, use_dhx, bias",
                         LSTM_CASES)
def test_lstm_cython_matches_numpy_backend(T, B, I, H, L, batch_first, unbatched, use_hx,
                                           use_dhx, bias, dtype, record_error):
    cy, ref = _pair(I, H, L, dtype, seed=T * 100 + H, batch_first=batch_first, bias=bias)
    x, hx, dy, dhx = _make_inputs(1, T, B, I, H, L, dtype, batch_first, unbatched)
    hx = hx if use_hx else None
    dhx = dhx if use_dhx else None
    got = _run(cy, x, hx, dy, dhx)
    want = _run(ref, x, hx, dy, dhx)
    _compare(got, want, dtype, record_error)
    lead, state = _shapes(T, B, H, L, batch_first, unbatched)
    assert got["y"].shape == lead + (H,)
    assert got["h_n"].shape == got["c_n"].shape == state
    assert got["dx"].shape == x.shape
    assert got["dh0"].shape == got["dc0"].shape == state
    assert np.abs(got["dx"]).max() > 0 and np.abs(got["grad weight_ih_l0"]).max() > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_and_unbatched_are_layouts_of_the_same_computation(dtype):
    T, B, I, H, L = 5, 3, 4, 6, 2
    m = LSTM(I, H, L, dtype=dtype, seed=3)
    mb = LSTM(I, H, L, dtype=dtype, seed=3, batch_first=True)
    x, hx, dy, dhx = _make_inputs(4, T, B, I, H, L, dtype)
    base = _run(m, x, hx, dy, dhx)
    bf = _run(mb, x.transpose(1, 0, 2), hx, dy.transpose(1, 0, 2), dhx)
    np.testing.assert_array_equal(bf["y"], base["y"].transpose(1, 0, 2))
    np.testing.assert_array_equal(bf["dx"], base["dx"].transpose(1, 0, 2))
    for k in ("h_n", "c_n", "dh0", "dc0"):
        np.testing.assert_array_equal(bf[k], base[k], err_msg=k)

    # unbatched (T, I) is batch 1 without the batch axis
    m1 = LSTM(I, H, L, dtype=dtype, seed=3)
    one = _run(m1, x[:, :1], tuple(a[:, :1] for a in hx), dy[:, :1],
               tuple(a[:, :1] for a in dhx))
    m2 = LSTM(I, H, L, dtype=dtype, seed=3)
    unb = _run(m2, x[:, 0], tuple(a[:, 0] for a in hx), dy[:, 0], tuple(a[:, 0] for a in dhx))
    for k in ("y", "dx"):
        np.testing.assert_array_equal(unb[k], one[k][:, 0], err_msg=k)
    for k in ("h_n", "c_n", "dh0", "dc0"):
        np.testing.assert_array_equal(unb[k], one[k][:, 0], err_msg=k)
    for k in m1.grads:
        np.testing.assert_array_equal(m2.grads[k], m1.grads[k], err_msg=k)


def test_call_is_forward():
    m = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    x, hx, _, _ = _make_inputs(0, 4, 2, 3, 4, 2, np.float64)
    y1, (h1, c1) = m(x, hx)
    y2, (h2, c2) = m.forward(x=x, hx=hx)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# LSTMCell: the compiled backend against the reference backend

#                  B, I, H, unbatched, hx, dc, bias
CELL_CASES = [
    pytest.param(1, 1, 1, False, True, True, True, id="B1-I1-H1"),
    pytest.param(4, 3, 5, False, True, True, True, id="I<H"),
    pytest.param(2, 6, 3, False, False, False, True, id="I>H-no-hx-no-dc"),
    pytest.param(1, 4, 4, True, True, True, True, id="unbatched"),
    pytest.param(1, 2, 3, True, False, False, True, id="unbatched-no-hx"),
    pytest.param(3, 4, 2, False, True, True, False, id="bias=False"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, I, H, unbatched, use_hx, use_dc, bias", CELL_CASES)
def test_cell_cython_matches_numpy_backend(B, I, H, unbatched, use_hx, use_dc, bias, dtype,
                                           record_error):
    rng = np.random.default_rng(5)
    lead = () if unbatched else (B,)
    x = _rand(rng, lead + (I,), dtype)
    hx = (_rand(rng, lead + (H,), dtype, 0.5), _rand(rng, lead + (H,), dtype)) if use_hx else None
    dh = _rand(rng, lead + (H,), dtype)
    dc = _rand(rng, lead + (H,), dtype) if use_dc else None
    out = {}
    for backend in ("cython", "numpy"):
        cell = LSTMCell(I, H, bias=bias, dtype=dtype, backend=backend, seed=6)
        h, c = cell(x, hx)
        dx, (dh_prev, dc_prev) = cell.backward(dh, dc)
        out[backend] = {"h": h.copy(), "c": c.copy(), "dx": dx.copy(), "dh_prev": dh_prev.copy(),
                        "dc_prev": dc_prev.copy(),
                        **{"grad " + k: g.copy() for k, g in cell.grads.items()}}
    _compare(out["cython"], out["numpy"], dtype, record_error, "cell: cython vs numpy")
    assert out["cython"]["h"].shape == lead + (H,)
    assert out["cython"]["dx"].shape == lead + (I,)
    assert set(k for k in out["cython"] if k.startswith("grad ")) == {
        "grad weight_ih", "grad weight_hh"} | ({"grad bias_ih", "grad bias_hh"} if bias else set())


@pytest.mark.parametrize("dtype", DTYPES)
def test_cell_is_a_one_step_lstm(dtype):
    B, I, H = 3, 4, 5
    cell = LSTMCell(I, H, dtype=dtype, seed=0)
    lstm = LSTM(I, H, dtype=dtype, seed=1)
    lstm.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(1)
    x, h0, c0, dh, dc = (_rand(rng, s, dtype) for s in ((B, I), (B, H), (B, H), (B, H), (B, H)))
    h, c = cell(x, (h0, c0))
    y, (h_n, c_n) = lstm(x[None], (h0[None], c0[None]))
    np.testing.assert_array_equal(h, y[0])
    np.testing.assert_array_equal(c, c_n[0])
    dx, (dh_prev, dc_prev) = cell.backward(dh, dc)
    dx2, (dh0, dc0) = lstm.backward(dh[None], (np.zeros_like(h_n), dc[None]))
    np.testing.assert_array_equal(dx, dx2[0])
    np.testing.assert_array_equal(dh_prev, dh0[0])
    np.testing.assert_array_equal(dc_prev, dc0[0])
    for k, g in cell.grads.items():
        np.testing.assert_array_equal(g, lstm.grads[k + "_l0"], err_msg=k)


# --------------------------------------------------------------------------
# finite differences of the whole stack (float64, compiled backend)

@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_lstm_gradients_match_finite_differences(dropout):
    T, B, I, H, L, seed = 4, 2, 3, 4, 3, 11
    x, hx, dy, dhx = _make_inputs(12, T, B, I, H, L, np.float64)
    x, hx, dy, dhx = x.copy(), [a.copy() for a in hx], dy, dhx

    def fresh():
        # Dropout masks come from the seed: the first forward of a fresh model
        # always draws the same mask, so every evaluation sees the same one.
        m = LSTM(I, H, L, dtype=np.float64, dropout=dropout, seed=seed)
        m.load_state_dict(params)
        return m

    def loss():
        y, (h_n, c_n) = fresh()(x, hx, grad=False)
        return np.sum(y * dy) + np.sum(h_n * dhx[0]) + np.sum(c_n * dhx[1])

    params = LSTM(I, H, L, dtype=np.float64, seed=seed).state_dict()
    m = fresh()
    m(x, hx)
    dx, (dh0, dc0) = m.backward(dy, dhx)
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **m.grads}
    arrays = {"x": x, "h0": hx[0], "c0": hx[1], **params}

    rng = np.random.default_rng(13)
    checked = 0
    for name, arr in arrays.items():
        for _ in range(3):
            idx = tuple(int(rng.integers(n)) for n in arr.shape)
            old = arr[idx]
            arr[idx] = old + FD_EPS
            plus = loss()
            arr[idx] = old - FD_EPS
            minus = loss()
            arr[idx] = old
            numeric = (plus - minus) / (2 * FD_EPS)
            np.testing.assert_allclose(analytic[name][idx], numeric, rtol=FD_TOL[0],
                                       atol=FD_TOL[1], err_msg=f"{name}{idx}")
            checked += 1
    assert checked == 3 * (3 + 4 * L)


# --------------------------------------------------------------------------
# dropout

def test_dropout_masks_come_from_the_seed():
    T, B, I, H, L = 6, 4, 3, 8, 3
    x, hx, dy, _ = _make_inputs(0, T, B, I, H, L, np.float32)
    a = LSTM(I, H, L, dropout=0.5, seed=7)
    b = LSTM(I, H, L, dropout=0.5, seed=7)
    plain = LSTM(I, H, L, dropout=0.0, seed=7)  # same weights, no dropout
    for k, v in plain.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[k], v, err_msg=k)

    ya, yb = _run(a, x, hx, dy), _run(b, x, hx, dy)
    for k in ya:
        np.testing.assert_array_equal(ya[k], yb[k], err_msg=k)
    y_plain = plain(x, hx)[0]
    assert not np.allclose(ya["y"], y_plain), "dropout changed nothing in training mode"
    # The next call draws a new mask, identically in both models.
    ya2, yb2 = a(x, hx)[0], b(x, hx)[0]
    np.testing.assert_array_equal(ya2, yb2)
    assert not np.array_equal(ya2, ya["y"])
    # A different seed gives different weights and masks.
    assert not np.allclose(LSTM(I, H, L, dropout=0.5, seed=8)(x, hx)[0], ya["y"])


def test_eval_disables_dropout():
    T, B, I, H, L = 5, 3, 4, 6, 2
    x, hx, dy, dhx = _make_inputs(1, T, B, I, H, L, np.float64)
    m = LSTM(I, H, L, dtype=np.float64, dropout=0.6, seed=2)
    plain = LSTM(I, H, L, dtype=np.float64, seed=2)
    assert m.eval() is m and not m.training
    got, want = _run(m, x, hx, dy, dhx), _run(plain, x, hx, dy, dhx)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert m.train() is m and m.training
    assert not np.allclose(m(x, hx)[0], want["y"])


def test_dropout_is_only_between_layers():
    x, hx, _, _ = _make_inputs(2, 5, 3, 4, 6, 1, np.float64)
    m = LSTM(4, 6, 1, dtype=np.float64, dropout=0.5, seed=3)
    plain = LSTM(4, 6, 1, dtype=np.float64, seed=3)
    np.testing.assert_array_equal(m(x, hx)[0], plain(x, hx)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_gradients_match_between_backends(dtype, record_error):
    T, B, I, H, L = 5, 3, 4, 6, 3
    cy, ref = _pair(I, H, L, dtype, seed=9, dropout=0.3)
    x, hx, dy, dhx = _make_inputs(3, T, B, I, H, L, dtype)
    for _ in range(2):  # the second call uses a second mask, the same in both
        got, want = _run(cy, x, hx, dy, dhx), _run(ref, x, hx, dy, dhx)
        _compare(got, want, dtype, record_error)


# --------------------------------------------------------------------------
# gradients: accumulation, the inference path

@pytest.mark.parametrize("cls", ["LSTM", "LSTMCell"])
def test_grads_accumulate_until_zero_grad(cls):
    rng = np.random.default_rng(4)
    if cls == "LSTM":
        m = LSTM(3, 5, 2, dtype=np.float64, seed=0)
        x, hx, dy, dhx = _make_inputs(4, 4, 2, 3, 5, 2, np.float64)
        args, bargs = (x, hx), (dy, dhx)
    else:
        m = LSTMCell(3, 5, dtype=np.float64, seed=0)
        args = (_rand(rng, (2, 3)), (_rand(rng, (2, 5)), _rand(rng, (2, 5))))
        bargs = (_rand(rng, (2, 5)), _rand(rng, (2, 5)))
    assert all(not g.any() for g in m.grads.values())
    m(*args)
    m.backward(*bargs)
    once = {k: g.copy() for k, g in m.grads.items()}
    assert all(g.any() for g in once.values())
    m.backward(*bargs)  # the same forward again: added
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14, atol=0, err_msg=k)
    m(*args)
    m.backward(*bargs)
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, 3 * once[k], rtol=1e-14, atol=0, err_msg=k)
    grads = dict(m.grads)
    m.zero_grad()
    for k, g in m.grads.items():
        assert g is grads[k], "zero_grad replaced the gradient arrays"
        assert not g.any(), k
    m(*args)
    m.backward(*bargs)
    for k, g in m.grads.items():
        np.testing.assert_array_equal(g, once[k], err_msg=k)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_grad_false_stores_nothing(backend):
    x, _, dy, _ = _make_inputs(5, 4, 2, 3, 5, 2, np.float32)
    m = LSTM(3, 5, 2, backend=backend, seed=0)
    y, _ = m(x, grad=False)
    with pytest.raises(ValueError, match="forward"):
        m.backward(dy)
    assert all(not g.any() for g in m.grads.values())
    cell = LSTMCell(3, 5, backend=backend, seed=0)
    cell(x[0], grad=False)
    with pytest.raises(ValueError, match="forward"):
        cell.backward(dy[0])


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_inference_between_forward_and_backward_changes_nothing(backend, dropout):
    T, B, I, H, L = 4, 3, 3, 5, 2
    x, hx, dy, dhx = _make_inputs(6, T, B, I, H, L, np.float64)
    x2, hx2, _, _ = _make_inputs(7, T, B, I, H, L, np.float64)  # same shape: same workspaces
    x3, hx3, _, _ = _make_inputs(8, T + 2, B + 1, I, H, L, np.float64)  # another shape
    a = LSTM(I, H, L, dtype=np.float64, backend=backend, dropout=dropout, seed=1)
    b = LSTM(I, H, L, dtype=np.float64, backend=backend, dropout=dropout, seed=1)
    want = _run(a, x, hx, dy, dhx)

    y, (h_n, c_n) = b(x, hx)
    b(x2, hx2, grad=False)
    b(x3, hx3, grad=False)
    dx, (dh0, dc0) = b.backward(dy, dhx)
    np.testing.assert_array_equal(y, want["y"])
    for k, v in (("dx", dx), ("dh0", dh0), ("dc0", dc0)):
        np.testing.assert_array_equal(v, want[k], err_msg=k)
    for k, g in b.grads.items():
        np.testing.assert_array_equal(g, want["grad " + k], err_msg=k)


def test_cell_inference_between_forward_and_backward_changes_nothing():
    rng = np.random.default_rng(9)
    x, h, c, dh = (_rand(rng, (3, 4)) for _ in range(4))
    a = LSTMCell(4, 4, dtype=np.float64, seed=2)
    b = LSTMCell(4, 4, dtype=np.float64, seed=2)
    a(x, (h, c))
    want = a.backward(dh)
    b(x, (h, c))
    b(2 * x, (c, h), grad=False)
    got = b.backward(dh)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1][0], want[1][0])
    np.testing.assert_array_equal(got[1][1], want[1][1])
    for k in a.grads:
        np.testing.assert_array_equal(b.grads[k], a.grads[k], err_msg=k)


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_outputs_are_not_overwritten_by_the_next_call(backend, grad):
    T, B, I, H, L = 4, 2, 3, 5, 2
    m = LSTM(I, H, L, dtype=np.float64, backend=backend, seed=0)
    x, hx, dy, dhx = _make_inputs(0, T, B, I, H, L, np.float64)
    x2, hx2, dy2, dhx2 = _make_inputs(1, T, B, I, H, L, np.float64)
    y, (h_n, c_n) = m(x, hx, grad=grad)
    kept = [a.copy() for a in (y, h_n, c_n)]
    m(x2, hx2, grad=grad)
    for a, b in zip((y, h_n, c_n), kept):
        np.testing.assert_array_equal(a, b)
    if grad:
        dx, (dh0, dc0) = m.backward(dy2, dhx2)
        kept = [a.copy() for a in (dx, dh0, dc0)]
        m(x, hx)
        m.backward(dy, dhx)
        for a, b in zip((dx, dh0, dc0), kept):
            np.testing.assert_array_equal(a, b)

    cell = LSTMCell(I, H, dtype=np.float64, backend=backend, seed=0)
    h, c = cell(x[0], (hx[0][0], hx[1][0]), grad=grad)
    kept = (h.copy(), c.copy())
    cell(x2[0], (hx2[0][0], hx2[1][0]), grad=grad)
    np.testing.assert_array_equal(h, kept[0])
    np.testing.assert_array_equal(c, kept[1])


def test_a_refused_call_keeps_the_last_forward_for_backward():
    T, B, I, H, L = 4, 2, 3, 5, 2
    x, hx, dy, dhx = _make_inputs(2, T, B, I, H, L, np.float64)
    a = LSTM(I, H, L, dtype=np.float64, seed=0)
    b = LSTM(I, H, L, dtype=np.float64, seed=0)
    want = _run(a, x, hx, dy, dhx)
    b(x, hx)
    with pytest.raises(ValueError):
        b(x, (hx[0][:1], hx[1]))
    with pytest.raises(ValueError):
        b.backward(dy[:, :1], dhx)
    dx, _ = b.backward(dy, dhx)
    np.testing.assert_array_equal(dx, want["dx"])
    for k, g in b.grads.items():
        np.testing.assert_array_equal(g, want["grad " + k], err_msg=k)


# In-place changes by the caller between forward and backward. torch gives
# the right gradient when y is changed in place and refuses when x is. lstm-c
# makes y of a training forward read-only (backward reads it) and copies an
# x it would otherwise keep by reference.
def test_y_of_a_training_forward_is_read_only_and_its_copy_is_free_to_change():
    x, hx, dy, dhx = _make_inputs(3, 5, 2, 3, 4, 1, np.float64)
    a = LSTM(3, 4, dtype=np.float64, seed=0)
    b = LSTM(3, 4, dtype=np.float64, seed=0)
    want = _run(a, x, hx, dy, dhx)
    y, _ = b(x, hx)
    with pytest.raises(ValueError, match="read-only"):
        y *= 2
    y2 = y.copy()
    y2 *= 2
    b.backward(dy, dhx)
    for k, g in b.grads.items():
        np.testing.assert_array_equal(g, want["grad " + k], err_msg=k)
    y_inf, _ = b(x, hx, grad=False)
    y_inf *= 2  # inference output keeps nothing for backward: writable


def test_changing_x_in_place_does_not_change_the_gradients():
    x, hx, dy, dhx = _make_inputs(4, 5, 2, 3, 4, 1, np.float64)
    a = LSTM(3, 4, dtype=np.float64, seed=0)
    b = LSTM(3, 4, dtype=np.float64, seed=0)
    want = _run(a, x, hx, dy, dhx)
    x = x.copy()
    b(x, hx)
    x += 1  # e.g. a caller reusing its input buffer for the next batch
    b.backward(dy, dhx)
    for k, g in b.grads.items():
        np.testing.assert_array_equal(g, want["grad " + k], err_msg=k)


# --------------------------------------------------------------------------
# state dicts and parameters

def _torch_keys(L, bias=True, suffix=True):
    keys = []
    for k in range(L):
        s = f"_l{k}" if suffix else ""
        keys += [f"weight_ih{s}", f"weight_hh{s}"] + ([f"bias_ih{s}", f"bias_hh{s}"] if bias else [])
    return keys


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_keys_and_shapes_are_torchs(dtype, bias):
    I, H, L = 3, 5, 3
    sd = LSTM(I, H, L, bias=bias, dtype=dtype).state_dict()
    assert list(sd) == _torch_keys(L, bias)
    for k in range(L):
        assert sd[f"weight_ih_l{k}"].shape == (4 * H, I if k == 0 else H)
        assert sd[f"weight_hh_l{k}"].shape == (4 * H, H)
        if bias:
            assert sd[f"bias_ih_l{k}"].shape == sd[f"bias_hh_l{k}"].shape == (4 * H,)
    assert all(isinstance(v, np.ndarray) and v.dtype == dtype for v in sd.values())
    csd = LSTMCell(I, H, bias=bias, dtype=dtype).state_dict()
    assert list(csd) == _torch_keys(1, bias, suffix=False)
    assert csd["weight_ih"].shape == (4 * H, I) and csd["weight_hh"].shape == (4 * H, H)
    m = LSTM(I, H, L, bias=bias, dtype=dtype)
    assert list(m.grads) == list(sd)
    assert all(m.grads[k].shape == v.shape for k, v in sd.items())


def test_state_dict_is_a_copy():
    m = LSTM(3, 4, seed=0)
    sd = m.state_dict()
    sd["weight_ih_l0"][...] = 0
    assert m.parameters()["weight_ih_l0"].any()


@pytest.mark.parametrize("cls", [LSTM, LSTMCell])
def test_load_state_dict_round_trip(cls):
    a = cls(3, 4, dtype=np.float64, seed=0)
    b = cls(3, 4, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3) if cls is LSTM else (2, 3))
    assert not np.allclose(a(x)[0], b(x)[0])
    live = b.parameters()
    live_ids = {k: id(v) for k, v in live.items()}
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
        assert id(b.parameters()[k]) == live_ids[k], "load_state_dict replaced the arrays"
        np.testing.assert_array_equal(live[k], v)  # references kept by an optimizer see it
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    # Other dtypes and lists convert.
    c = cls(3, 4, dtype=np.float32, seed=2)
    c.load_state_dict({k: v.tolist() for k, v in a.state_dict().items()})
    for k, v in c.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, a.state_dict()[k].astype(np.float32))


def test_parameters_are_the_live_arrays():
    m = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    x, hx, _, _ = _make_inputs(0, 5, 2, 3, 4, 2, np.float64)
    p = m.parameters()
    assert p is m.parameters() or all(p[k] is v for k, v in m.parameters().items())
    y0 = m(x, hx)[0]
    p["bias_ih_l1"] += 0.5
    p["weight_hh_l0"] *= -1
    y1 = m(x, hx)[0]
    assert not np.allclose(y0, y1)
    other = LSTM(3, 4, 2, dtype=np.float64, seed=5)
    other.load_state_dict({k: v.copy() for k, v in p.items()})
    np.testing.assert_array_equal(other(x, hx)[0], y1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [1, 4, 64])
def test_default_init_is_torchs_uniform(H, dtype):
    k = 1 / np.sqrt(H)
    for m in (LSTM(7, H, 2, dtype=dtype, seed=0), LSTMCell(7, H, dtype=dtype, seed=0)):
        params = m.parameters()
        everything = np.concatenate([v.ravel() for v in params.values()])
        assert all(v.dtype == dtype for v in params.values())
        assert np.all(np.abs(everything) <= k * (1 + 1e-6))
        # spread over the whole interval, not a constant
        assert everything.min() < -0.8 * k and everything.max() > 0.8 * k
        assert abs(everything.mean()) < 0.2 * k


def test_seeded_init_is_reproducible():
    def weights(**kw):
        return LSTM(3, 6, 2, **kw).state_dict()

    a, b, c = weights(seed=42), weights(seed=42), weights(seed=43)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["weight_hh_l1"], c["weight_hh_l1"])
    assert not np.array_equal(weights()["weight_hh_l0"], weights()["weight_hh_l0"])
    # The backend does not change the weights.
    for k, v in weights(seed=42, backend="numpy").items():
        np.testing.assert_array_equal(v, a[k])
    assert np.array_equal(LSTM(3, 6, seed=np.int64(42)).state_dict()["weight_ih_l0"],
                          a["weight_ih_l0"])


def test_positional_dtype_form():
    m = LSTM(3, 5, 2, np.float64)
    assert m.dtype == np.float64 and m.bias is True and m.num_layers == 2
    assert all(v.dtype == np.float64 for v in m.parameters().values())
    y, (h, c) = m(np.ones((4, 2, 3)))
    assert y.dtype == h.dtype == c.dtype == np.float64
    assert LSTM(3, 5, 1, np.float32).dtype == np.float32
    assert LSTM(3, 5, dtype="float64").dtype == np.float64
    assert LSTMCell(3, 5, dtype=np.float64).dtype == np.float64
    cell = LSTMCell(3, 5, np.float64)
    assert cell.dtype == np.float64 and cell.bias is True
    assert cell(np.ones((2, 3)))[0].dtype == np.float64


# --------------------------------------------------------------------------
# input conversion

def _variants(a):
    """The same values as other layouts, flags and dtypes the model must accept."""
    yield "fortran", np.asfortranarray(a)
    yield "strided", np.repeat(a, 2, axis=-1)[..., ::2]
    ro = a.copy()
    ro.flags.writeable = False
    yield "read-only", ro
    yield "list", a.tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_inputs_of_any_layout_are_accepted(dtype, batch_first):
    T, B, I, H, L = 4, 3, 5, 2, 2
    x, hx, dy, dhx = _make_inputs(0, T, B, I, H, L, dtype, batch_first)
    m = LSTM(I, H, L, dtype=dtype, batch_first=batch_first, seed=0)
    want = _run(m, x, hx, dy, dhx)
    for name, xv in _variants(x):
        hxv = tuple(dict(_variants(a))[name] for a in hx)
        dyv = dict(_variants(dy))[name]
        dhxv = [dict(_variants(a))[name] for a in dhx]
        m.zero_grad()
        got = _run(m, xv, hxv, dyv, dhxv)
        for k in want:
            assert got[k].dtype == dtype
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{name}: {k}")


def test_int_and_other_float_inputs_are_converted():
    T, B, I, H = 4, 2, 3, 5
    rng = np.random.default_rng(0)
    xi = rng.integers(-3, 4, size=(T, B, I))
    x64 = rng.standard_normal((T, B, I))
    for dtype in DTYPES:
        m = LSTM(I, H, dtype=dtype, seed=0)
        for x in (xi, xi.astype(np.int8), xi.astype(np.int32), (xi + 3).astype(np.uint8),
                  x64, x64.astype(np.float16), x64.astype(np.float32)):
            y, (h, c) = m(x)
            assert y.dtype == h.dtype == c.dtype == dtype
            np.testing.assert_array_equal(y, m(x.astype(dtype))[0])
    # float64 inputs into a float32 model, also for hx, dy and dhx
    m = LSTM(I, H, dtype=np.float32, seed=0)
    x, hx, dy, dhx = _make_inputs(1, T, B, I, H, 1, np.float64)
    got = _run(m, x, hx, dy, dhx)
    m.zero_grad()
    to32 = lambda a: a.astype(np.float32)  # noqa: E731
    want = _run(m, to32(x), tuple(map(to32, hx)), to32(dy), tuple(map(to32, dhx)))
    for k in want:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_torch_tensors_are_accepted_as_inputs():
    torch = pytest.importorskip("torch")
    m = LSTM(3, 4, dtype=np.float64, seed=0)
    x, hx, dy, _ = _make_inputs(0, 5, 2, 3, 4, 1, np.float64)
    want = _run(m, x, hx, dy)
    m.zero_grad()
    t = torch.from_numpy
    got = _run(m, t(x).requires_grad_(), (t(hx[0]), t(hx[1])), t(dy))
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# --------------------------------------------------------------------------
# bad input: the exception type and a message that says what was expected

def _model(**kw):
    return LSTM(3, 5, 2, seed=0, **kw)


def _after_forward(batch_first=False, unbatched=False):
    m = _model(batch_first=batch_first)
    x = np.ones((6, 3) if unbatched else ((4, 6, 3) if batch_first else (6, 4, 3)))
    m(x)
    return m


def _sd(**changes):
    sd = _model().state_dict()
    for k, v in changes.items():
        if v is None:
            del sd[k]
        else:
            sd[k] = v
    return sd


def _with_nan(k, value=np.nan):
    a = _model().state_dict()[k]
    a.flat[3] = value
    return a


H2 = np.zeros((2, 4, 5))  # a good h0 or c0 for _model() with batch 4
X = np.ones((6, 4, 3))
CELL = lambda: LSTMCell(3, 5, seed=0)  # noqa: E731

BAD_INPUTS = [
    # x
    ("x 1-D", lambda: _model()(np.ones(3)), ValueError, r"expected a 3-D array.*got 1-D"),
    ("x 4-D", lambda: _model()(np.ones((2, 6, 4, 3))), ValueError, r"3-D.*2-D \(T, I\).*got 4-D"),
    ("x 0-D", lambda: _model()(1.0), ValueError, r"expected a 3-D array"),
    ("x input size", lambda: _model()(np.ones((6, 4, 7))), ValueError,
     r"expected input size 3.*\(6, 4, 7\)"),
    ("x input size batch_first", lambda: _model(batch_first=True)(np.ones((4, 6, 2))),
     ValueError, r"expected input size 3"),
    ("x input size unbatched", lambda: _model()(np.ones((6, 4))), ValueError,
     r"expected input size 3"),
    ("x T=0", lambda: _model()(np.ones((0, 4, 3))), ValueError, r"at least one step.*T=0"),
    ("x B=0", lambda: _model()(np.ones((6, 0, 3))), ValueError, r"at least one.*B=0"),
    ("x B=0 batch_first", lambda: _model(batch_first=True)(np.ones((0, 6, 3))), ValueError,
     r"B=0"),
    ("x T=0 unbatched", lambda: _model()(np.ones((0, 3))), ValueError, r"T=0"),
    ("x complex", lambda: _model()(np.ones((6, 4, 3), complex)), TypeError,
     r"x: expected a real numeric array.*complex128"),
    ("x object", lambda: _model()(np.array([[[object()] * 3]] * 6)), TypeError,
     r"x: expected a real numeric array.*object"),
    ("x bool", lambda: _model()(np.ones((6, 4, 3), bool)), TypeError,
     r"x: expected a real numeric.*bool"),
    ("x strings", lambda: _model()(np.full((6, 4, 3), "a")), TypeError,
     r"x: expected a real numeric.*<U1"),
    ("x string", lambda: _model()("abc"), TypeError, r"x: expected a real numeric"),
    ("x ragged", lambda: _model()([[[1.0, 2.0, 3.0]], [[1.0]]]), TypeError, r"x: expected an array"),
    ("x None", lambda: _model()(None), TypeError, r"x: expected a real numeric"),
    # hx
    ("hx h layers", lambda: _model()(X, (np.zeros((1, 4, 5)), H2)), ValueError,
     r"hx h: expected shape \(2, 4, 5\).*got \(1, 4, 5\)"),
    ("hx c layers", lambda: _model()(X, (H2, np.zeros((3, 4, 5)))), ValueError,
     r"hx c: expected shape \(2, 4, 5\).*got \(3, 4, 5\)"),
    ("hx h batch", lambda: _model()(X, (np.zeros((2, 3, 5)), H2)), ValueError,
     r"hx h: expected shape \(2, 4, 5\)"),
    ("hx c batch", lambda: _model()(X, (H2, np.zeros((2, 1, 5)))), ValueError,
     r"hx c: expected shape \(2, 4, 5\)"),
    ("hx h hidden", lambda: _model()(X, (np.zeros((2, 4, 6)), H2)), ValueError,
     r"hx h: expected shape \(2, 4, 5\)"),
    ("hx c 2-D", lambda: _model()(X, (H2, np.zeros((4, 5)))), ValueError,
     r"hx c: expected shape \(2, 4, 5\)"),
    ("hx batched for unbatched x", lambda: _model()(np.ones((6, 3)), (H2[:, :1], H2[:, :1])),
     ValueError, r"hx h: expected shape \(2, 5\)"),
    ("hx batch_first layout", lambda: _model(batch_first=True)(
        np.ones((4, 6, 3)), (np.zeros((4, 2, 5)), np.zeros((4, 2, 5)))), ValueError,
     r"hx h: expected shape \(2, 4, 5\)"),
    ("hx not a pair (array)", lambda: _model()(X, np.zeros((2, 2, 4, 5))), TypeError,
     r"hx: expected a pair \(h, c\)"),
    ("hx one element", lambda: _model()(X, (H2,)), TypeError, r"hx: expected a pair \(h, c\)"),
    ("hx three elements", lambda: _model()(X, (H2, H2, H2)), TypeError, r"expected a pair"),
    ("hx complex", lambda: _model()(X, (H2, H2.astype(complex))), TypeError,
     r"hx\[1\] \(c\): expected a real numeric array"),
    ("grad not a bool", lambda: _model()(X, grad="no"), TypeError, r"grad must be a bool"),
    # backward
    ("backward before forward", lambda: _model().backward(np.ones((6, 4, 5))), ValueError,
     r"backward\(\) needs a forward\(x, grad=True\) first"),
    ("dy shape", lambda: _after_forward().backward(np.ones((6, 4, 4))), ValueError,
     r"dy: expected shape \(6, 4, 5\).*got \(6, 4, 4\)"),
    ("dy not batch_first", lambda: _after_forward(batch_first=True).backward(np.ones((6, 4, 5))),
     ValueError, r"dy: expected shape \(4, 6, 5\)"),
    ("dy batched after unbatched", lambda: _after_forward(unbatched=True).backward(
        np.ones((6, 1, 5))), ValueError, r"dy: expected shape \(6, 5\)"),
    ("dy complex", lambda: _after_forward().backward(np.ones((6, 4, 5), complex)), TypeError,
     r"dy: expected a real numeric array"),
    ("dhx h shape", lambda: _after_forward().backward(np.ones((6, 4, 5)),
                                                      (np.zeros((1, 4, 5)), H2)), ValueError,
     r"dhx h: expected shape \(2, 4, 5\)"),
    ("dhx c shape", lambda: _after_forward().backward(np.ones((6, 4, 5)),
                                                      (H2, np.zeros((2, 4, 3)))), ValueError,
     r"dhx c: expected shape \(2, 4, 5\)"),
    ("dhx not a pair", lambda: _after_forward().backward(np.ones((6, 4, 5)), H2), TypeError,
     r"dhx: expected a pair \(h, c\)"),
    # state dicts
    ("state_dict missing key", lambda: _model().load_state_dict(_sd(bias_hh_l1=None)),
     ValueError, r"missing \['bias_hh_l1'\]"),
    ("state_dict extra key", lambda: _model().load_state_dict(_sd(weight_ih_l2=np.ones((20, 5)))),
     ValueError, r"unexpected \['weight_ih_l2'\]"),
    ("state_dict of another layer count", lambda: LSTM(3, 5, 1).load_state_dict(_sd()),
     ValueError, r"unexpected \['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1'\]"),
    ("state_dict without bias", lambda: LSTM(3, 5, 2, bias=False).load_state_dict(_sd()),
     ValueError, r"unexpected \['bias_hh_l0'"),
    ("state_dict wrong shape", lambda: _model().load_state_dict(_sd(weight_ih_l0=np.ones((20, 4)))),
     ValueError, r"state_dict\['weight_ih_l0'\]: expected shape \(20, 3\).*got \(20, 4\)"),
    ("state_dict transposed", lambda: _model().load_state_dict(_sd(weight_hh_l1=np.ones((5, 20)))),
     ValueError, r"state_dict\['weight_hh_l1'\]: expected shape \(20, 5\)"),
    ("state_dict NaN", lambda: _model().load_state_dict(_sd(bias_ih_l1=_with_nan("bias_ih_l1"))),
     ValueError, r"state_dict\['bias_ih_l1'\]: expected finite values.*1 NaN or inf"),
    ("state_dict inf", lambda: _model().load_state_dict(
        _sd(weight_hh_l0=_with_nan("weight_hh_l0", -np.inf))),
     ValueError, r"state_dict\['weight_hh_l0'\]: expected finite"),
    ("state_dict complex", lambda: _model().load_state_dict(
        _sd(weight_hh_l0=np.ones((20, 5), complex))),
     TypeError, r"state_dict\['weight_hh_l0'\]: expected a real numeric array"),
    ("state_dict not a mapping", lambda: _model().load_state_dict([("weight_ih_l0", 1)]),
     TypeError, r"expected a mapping"),
    # constructor
    ("input_size=0", lambda: LSTM(0, 5), ValueError, r"input_size must be a positive int, got 0"),
    ("hidden_size=-1", lambda: LSTM(3, -1), ValueError, r"hidden_size must be a positive int"),
    ("num_layers=0", lambda: LSTM(3, 5, 0), ValueError, r"num_layers must be a positive int"),
    ("input_size=2.5", lambda: LSTM(2.5, 5), TypeError, r"input_size must be a positive int.*2.5"),
    ("hidden_size=True", lambda: LSTM(3, True), TypeError, r"hidden_size must be a positive int"),
    ("num_layers=2.0", lambda: LSTM(3, 5, 2.0), TypeError, r"num_layers must be a positive int"),
    ("num_layers='2'", lambda: LSTM(3, 5, "2"), TypeError, r"num_layers must be a positive int"),
    ("input_size=inf", lambda: LSTM(float("inf"), 5), TypeError, r"input_size must be a positive"),
    ("dropout=1", lambda: LSTM(3, 5, 2, dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    ("dropout=-0.1", lambda: LSTM(3, 5, 2, dropout=-0.1), ValueError, r"dropout must be in \[0, 1\)"),
    ("dropout=nan", lambda: LSTM(3, 5, 2, dropout=float("nan")), ValueError, r"dropout must be in"),
    ("dropout=True", lambda: LSTM(3, 5, 2, dropout=True), TypeError, r"dropout must be a float"),
    ("dropout='0.5'", lambda: LSTM(3, 5, 2, dropout="0.5"), TypeError, r"dropout must be a float"),
    ("backend unknown", lambda: LSTM(3, 5, backend="torch"), ValueError,
     r"backend must be one of \('cython', 'numpy'\), got 'torch'"),
    ("dtype float16", lambda: LSTM(3, 5, dtype=np.float16), TypeError,
     r"dtype must be float32 or float64"),
    ("dtype int", lambda: LSTM(3, 5, dtype=int), TypeError, r"dtype must be float32 or float64"),
    ("dtype complex64", lambda: LSTM(3, 5, dtype=np.complex64), TypeError, r"dtype must be float32"),
    ("dtype 'bogus'", lambda: LSTM(3, 5, dtype="bogus"), TypeError, r"dtype must be float32"),
    ("cell dtype 'bogus'", lambda: LSTMCell(3, 5, dtype="bogus"), TypeError,
     r"dtype must be float32"),
    ("bias='abc'", lambda: LSTM(3, 5, 1, "abc"), TypeError, r"bias must be a bool|dtype must be"),
    ("batch_first='yes'", lambda: LSTM(3, 5, batch_first="yes"), TypeError,
     r"batch_first must be a bool"),
    ("bias=2", lambda: LSTM(3, 5, bias=2), TypeError, r"bias must be a bool"),
    ("seed=1.5", lambda: LSTM(3, 5, seed=1.5), TypeError, r"seed must be an int or None"),
    # LSTMCell
    ("cell input_size=0", lambda: LSTMCell(0, 5), ValueError, r"input_size must be a positive"),
    ("cell hidden_size=2.5", lambda: LSTMCell(3, 2.5), TypeError, r"hidden_size must be a positive"),
    ("cell dtype float16", lambda: LSTMCell(3, 5, dtype=np.float16), TypeError, r"float32 or float64"),
    ("cell x 3-D", lambda: CELL()(np.ones((1, 4, 3))), ValueError,
     r"expected a 2-D array \(B, I\) or 1-D \(I,\).*got 3-D"),
    ("cell x input size", lambda: CELL()(np.ones((4, 2))), ValueError,
     r"expected input size 3.*\(4, 2\)"),
    ("cell x input size unbatched", lambda: CELL()(np.ones(4)), ValueError,
     r"expected input size 3"),
    ("cell x B=0", lambda: CELL()(np.ones((0, 3))), ValueError, r"at least one row"),
    ("cell x complex", lambda: CELL()(np.ones((4, 3), complex)), TypeError, r"real numeric"),
    ("cell hx h shape", lambda: CELL()(np.ones((4, 3)), (np.zeros((3, 5)), np.zeros((4, 5)))),
     ValueError, r"hx h: expected shape \(4, 5\)"),
    ("cell hx c shape", lambda: CELL()(np.ones((4, 3)), (np.zeros((4, 5)), np.zeros((4, 6)))),
     ValueError, r"hx c: expected shape \(4, 5\)"),
    ("cell hx not a pair", lambda: CELL()(np.ones((4, 3)), np.zeros((4, 5))), TypeError,
     r"expected a pair \(h, c\)"),
    ("cell backward before forward", lambda: CELL().backward(np.ones((4, 5))), ValueError,
     r"needs a forward"),
]


def _cell_after_forward():
    cell = CELL()
    cell(np.ones((4, 3)))
    return cell


BAD_INPUTS += [
    ("cell dh shape", lambda: _cell_after_forward().backward(np.ones((4, 6))), ValueError,
     r"dh: expected shape \(4, 5\)"),
    ("cell dc shape", lambda: _cell_after_forward().backward(np.ones((4, 5)), np.ones((3, 5))),
     ValueError, r"dc: expected shape \(4, 5\)"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0])
                                              for case in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


BAD_STATE_DICTS = {
    "NaN in the last entry": lambda: _sd(bias_hh_l1=_with_nan("bias_hh_l1")),
    "wrong shape in the last entry": lambda: _sd(bias_hh_l1=np.ones(19)),
    "missing key": lambda: _sd(weight_ih_l0=None),
    "extra key": lambda: _sd(foo=np.ones(3)),
    "complex values": lambda: _sd(bias_hh_l1=np.ones(20, complex)),
}


@pytest.mark.parametrize("make", BAD_STATE_DICTS.values(), ids=BAD_STATE_DICTS.keys())
def test_failed_load_state_dict_changes_nothing(make):
    m = LSTM(3, 5, 2, seed=1)
    live = m.parameters()
    before = _params_copy(m)
    bad = make()
    # every other entry is valid and different from the current values
    assert any(not np.array_equal(np.asarray(bad[k]), before[k]) for k in bad if k in before)
    with pytest.raises((ValueError, TypeError)):
        m.load_state_dict(bad)
    for k, v in m.parameters().items():
        assert v is live[k]
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# --------------------------------------------------------------------------
# memory

def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS, which can only show growth too
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_memory_stays_flat_over_many_calls():
    I, H, L = 6, 8, 2
    m = LSTM(I, H, L, dropout=0.2, seed=0)
    cell = LSTMCell(I, H, seed=0)
    rng = np.random.default_rng(0)
    # Two shapes in turn, so workspaces are also reallocated.
    cases = [_make_inputs(s, T, 3, I, H, L, np.float32) for s, T in ((0, 5), (1, 7))]
    cx, ch = _rand(rng, (3, I), np.float32), _rand(rng, (3, H), np.float32)

    def step(i):
        x, hx, dy, dhx = cases[i % 2]
        m(x, hx)
        m(x, hx, grad=False)
        m.backward(dy, dhx)
        m.zero_grad()
        cell(cx, (ch, ch))
        cell.backward(ch, ch)

    for i in range(300):  # warm-up
        step(i)
    gc.collect()
    rss0 = _rss_bytes()
    for i in range(2000):
        step(i)
    gc.collect()
    grown = _rss_bytes() - rss0
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB over 2000 calls"

    tracemalloc.start()
    try:
        for i in range(50):
            step(i)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(500):
            step(i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, f"Python allocations grew by {after - before} bytes"


def test_version_and_exports():
    assert set(lstm_c.__all__) >= {"LSTM", "LSTMCell"}
    assert isinstance(lstm_c.__version__, str)
