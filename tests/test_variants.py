"""Cell variants, each off by default: peephole connections and recurrent (variational) dropout.

Each, and the projection (proj_size) on the same engine path, is checked
against the NumPy reference (its own plain code), against central finite
differences in float64, and for what it must reduce to.
"""

import numpy as np
import pytest
from conftest import check_finite_differences

from lstm_c import LSTM, _lstm, reference

DTYPES = (np.float64, np.float32)
TOL = {np.float64: 1e-11, np.float32: 2e-5}


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("variant", ["proj", "peephole", "rec_mask", "both+proj"])
@pytest.mark.parametrize("sizes", [None, [4, 3, 3, 1, 0]])
@pytest.mark.parametrize("B", [1, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_matches_reference(variant, sizes, B, dtype, record_error):
    rng = np.random.default_rng(B)
    T, I, H = 5, 3, 4
    P = 2 if "proj" in variant else H
    bs = None if sizes is None else np.minimum(np.array(sizes, np.int32), B)
    x = _rand(rng, (T, B, I), dtype)
    w_ih, w_hh = _rand(rng, (4 * H, I), dtype, 0.5), _rand(rng, (4 * H, P), dtype, 0.5)
    bias = _rand(rng, (4 * H,), dtype, 0.5)
    kw = {}
    if "proj" in variant:
        kw["w_hr"] = _rand(rng, (P, H), dtype, 0.5)
    if variant in ("peephole", "both+proj"):
        kw["peephole"] = _rand(rng, (3 * H,), dtype, 0.5)
    if variant in ("rec_mask", "both+proj"):
        kw["rec_mask"] = ((rng.random((B, P)) > 0.3) / 0.7).astype(dtype)
    h0, c0 = _rand(rng, (B, P), dtype), _rand(rng, (B, H), dtype)
    dy, dh_n, dc_n = _rand(rng, (T, B, P), dtype), _rand(rng, (B, P), dtype), _rand(rng, (B, H), dtype)
    results = []
    for engine in (_lstm, reference):
        hs, cs = np.zeros((T + 1, B, P), dtype), np.zeros((T + 1, B, H), dtype)
        hs[0], cs[0] = h0, c0
        acts, tanh_c = np.zeros((T, B, 4 * H), dtype), np.zeros((T, B, H), dtype)
        extra = dict(kw)
        if "w_hr" in kw:
            extra["ms"] = np.zeros((T, B, H), dtype)
        engine.forward_layer(x, w_ih, w_hh, bias, hs, cs, acts, tanh_c, True, batch_sizes=bs,
                             **extra)
        out = dict(hs=hs, cs=cs, acts=acts, **({"ms": extra["ms"]} if "ms" in extra else {}),
                   dx=np.zeros((T, B, I), dtype),
                   dh0=np.zeros((B, P), dtype), dc0=np.zeros((B, H), dtype),
                   dw_ih=np.zeros_like(w_ih), dw_hh=np.zeros_like(w_hh), db=np.zeros_like(bias))
        grads = {}
        if "w_hr" in kw:
            grads["dw_hr"] = out["dw_hr"] = np.zeros_like(kw["w_hr"])
        if "peephole" in kw:
            grads["dpeephole"] = out["dpeephole"] = np.zeros_like(kw["peephole"])
        engine.backward_layer(x, w_ih, w_hh, hs, cs, acts, tanh_c, dy, dh_n, dc_n, out["dx"],
                              out["dh0"], out["dc0"], out["dw_ih"], out["dw_hh"], out["db"],
                              np.zeros((T, B, 4 * H), dtype), batch_sizes=bs, **extra, **grads)
        # inference gives the same h and final c
        hs_i, cs_i = np.zeros((T + 1, B, P), dtype), np.zeros((1, B, H), dtype)
        hs_i[0], cs_i[0] = h0, c0
        if "w_hr" in kw:
            extra["ms"] = np.zeros((1, B, H), dtype)
        engine.forward_layer(x, w_ih, w_hh, bias, hs_i, cs_i, np.zeros((T, B, 4 * H), dtype),
                             np.zeros((0, B, H), dtype), False, batch_sizes=bs, **extra)
        out.update(infer_hs=hs_i, infer_c=cs_i)
        results.append(out)
    for k in results[1]:
        err = record_error(f"{variant}: engine vs reference", dtype, results[0][k],
                           results[1][k], k)
        assert err <= TOL[dtype], f"{k}: {err:.3g}"


def test_zero_peepholes_are_the_plain_lstm():
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    plain = LSTM(4, 5, 2, dtype=np.float64, seed=1)
    peep = LSTM(4, 5, 2, dtype=np.float64, peephole=True)
    state = plain.state_dict()
    state.update({k: np.zeros(15) for k in peep.state_dict() if "peephole" in k})
    peep.load_state_dict(state)
    y1, _ = plain(x)
    y2, _ = peep(x)
    np.testing.assert_allclose(y2, y1, rtol=1e-13)
    assert list(peep.state_dict())[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                           "bias_hh_l0", "weight_peephole_l0"]


def _finite_differences(m, x, names, rng, **kw):
    wy = rng.standard_normal(m(x, **kw)[0].shape)
    state = m.rng_state()

    def loss():
        m.set_rng_state(state)  # the same recurrent dropout masks every call
        y, (h, c) = m(x, grad=False, **kw)
        return float((wy * y).sum() + h.sum() + 0.5 * c.sum())

    m.zero_grad()
    m.set_rng_state(state)
    y, (h, c) = m(x, **kw)
    m.backward(wy, (np.ones_like(h), 0.5 * np.ones_like(c)))
    check_finite_differences(m, names, loss, rng, points=3)


@pytest.mark.parametrize("kw", [dict(peephole=True), dict(recurrent_dropout=0.4),
                                dict(peephole=True, recurrent_dropout=0.3, proj_size=2,
                                     bidirectional=True)])
def test_finite_differences(kw):
    rng = np.random.default_rng(7)
    m = LSTM(3, 4, 2, dtype=np.float64, seed=2, **kw)
    x = rng.standard_normal((5, 3, 3))
    names = [n for n in m.parameters() if n.endswith("_l1") or "peephole" in n
             or n.startswith("weight_hh")]
    _finite_differences(m, x, names, rng, lengths=[5, 2, 4])


@pytest.mark.parametrize("kw", [dict(peephole=True), dict(recurrent_dropout=0.5),
                                dict(peephole=True, recurrent_dropout=0.5, bidirectional=True)])
def test_numpy_backend_gives_the_same(kw):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, 3))
    a = LSTM(3, 5, 2, dtype=np.float64, seed=9, **kw)
    b = LSTM(3, 5, 2, dtype=np.float64, seed=9, backend="numpy", **kw)
    ya, _ = a(x)
    yb, _ = b(x)
    np.testing.assert_allclose(ya, yb, rtol=1e-12, atol=1e-13)
    dxa, _ = a.backward(np.cos(ya))
    dxb, _ = b.backward(np.cos(yb))
    np.testing.assert_allclose(dxa, dxb, rtol=1e-12, atol=1e-13)
    for k in a.grads:
        np.testing.assert_allclose(a.grads[k], b.grads[k], rtol=1e-11, atol=1e-13, err_msg=k)


def test_recurrent_dropout_only_in_training_and_reproducible():
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    a = LSTM(4, 5, recurrent_dropout=0.5, seed=3)
    b = LSTM(4, 5, recurrent_dropout=0.5, seed=3)
    plain = LSTM(4, 5, seed=3)
    ya, _ = a(x)
    yb, _ = b(x)
    np.testing.assert_array_equal(ya, yb)          # masks from the seed
    ya2, _ = a(x)
    assert not np.array_equal(ya, ya2)             # a new mask per call
    y_eval, _ = a.eval()(x)
    np.testing.assert_allclose(y_eval, plain.eval()(x)[0], rtol=1e-6)  # no mask in eval
    assert "recurrent_dropout=0.5" in repr(a)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(recurrent_dropout=1.0), ValueError, "recurrent_dropout must be in"),
    (dict(recurrent_dropout="0.1"), TypeError, "recurrent_dropout must be a float"),
    (dict(peephole="yes"), TypeError, "peephole must be a bool")])
def test_bad_options_are_refused(kw, exc, match):
    with pytest.raises(exc, match=match):
        LSTM(3, 4, **kw)


def test_freeze_runs_a_peephole_model():
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    m = LSTM(3, 4, peephole=True, dtype=np.float64, seed=0).eval()
    y, _ = m(x, grad=False)
    np.testing.assert_allclose(m.freeze()(x)[0], y, rtol=1e-13)
