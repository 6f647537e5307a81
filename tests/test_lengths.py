"""Variable-length batches: forward(x, lengths=...) and mask=..., in the engine and the layer.

The promise: each sequence stops at its own length. Its outputs past the end
are 0, h_n and c_n are those of its last step, and every gradient is the one
of running that sequence alone; the same as torch with a PackedSequence.
"""

import numpy as np
import pytest
from conftest import check_finite_differences

from lstm_c import LSTM, _lstm, lengths as seq_lengths, reference

TOL = {np.float64: 1e-11, np.float32: 2e-5}
DTYPES = (np.float64, np.float32)


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.fixture(params=["packed", "blas"])
def kernel(request):
    old = _lstm.get_recurrent_kernel()
    _lstm.set_recurrent_kernel(request.param)
    yield request.param
    _lstm.set_recurrent_kernel(old)


# ----------------------------------------------------------------- the engine

ENGINE_CASES = [  # T, batch_sizes (non-increasing, <= B), B, I, H
    (5, [3, 3, 2, 2, 1], 3, 4, 5),
    (6, [9, 9, 7, 4, 4, 0], 9, 3, 6),      # a step with no rows, 9 rows: a partial row block
    (4, [1, 1, 1, 0], 2, 2, 3),            # a row that never runs
    (7, [20, 17, 16, 9, 8, 8, 1], 20, 5, 17),  # long enough to split over 2 threads
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("T, sizes, B, I, H", ENGINE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_engine_matches_reference_with_batch_sizes(T, sizes, B, I, H, dtype, threads, kernel,
                                                   record_error):
    rng = np.random.default_rng(T * 100 + B)
    bs = np.array(sizes, np.int32)
    x = _rand(rng, (T, B, I), dtype)
    w_ih, w_hh = _rand(rng, (4 * H, I), dtype, 0.5), _rand(rng, (4 * H, H), dtype, 0.5)
    bias = _rand(rng, (4 * H,), dtype, 0.5)
    h0, c0 = _rand(rng, (B, H), dtype), _rand(rng, (B, H), dtype)
    dy = _rand(rng, (T, B, H), dtype)
    dh_n, dc_n = _rand(rng, (B, H), dtype), _rand(rng, (B, H), dtype)

    results = []
    for engine, kw in ((_lstm, {"threads": threads}), (reference, {})):
        hs = np.zeros((T + 1, B, H), dtype)
        cs = np.zeros((T + 1, B, H), dtype)
        hs[0], cs[0] = h0, c0
        acts, tanh_c = np.zeros((T, B, 4 * H), dtype), np.zeros((T, B, H), dtype)
        engine.forward_layer(x, w_ih, w_hh, bias, hs, cs, acts, tanh_c, True,
                             batch_sizes=bs, **kw)
        out = dict(hs=hs, cs=cs, acts=acts, tanh_c=tanh_c)
        for name in ("dx", "dgates"):
            out[name] = np.full((T, B, I if name == "dx" else 4 * H), np.nan, dtype)
        out.update(dh0=np.zeros((B, H), dtype), dc0=np.zeros((B, H), dtype),
                   dw_ih=np.zeros_like(w_ih), dw_hh=np.zeros_like(w_hh),
                   db=np.zeros_like(bias))
        engine.backward_layer(x, w_ih, w_hh, hs, cs, acts, tanh_c, dy, dh_n, dc_n, out["dx"],
                              out["dh0"], out["dc0"], out["dw_ih"], out["dw_hh"], out["db"],
                              out["dgates"], batch_sizes=bs, **kw)
        # inference: h and the carried c of the same run
        hs_i = np.zeros((T + 1, B, H), dtype)
        cs_i = np.zeros((1, B, H), dtype)
        hs_i[0], cs_i[0] = h0, c0
        engine.forward_layer(x, w_ih, w_hh, bias, hs_i, cs_i, np.zeros((T, B, 4 * H), dtype),
                             np.zeros((0, B, H), dtype), False, batch_sizes=bs, **kw)
        out.update(infer_hs=hs_i, infer_c=cs_i[0])
        results.append(out)

    ours, want = results
    for k in want:
        assert np.isfinite(ours[k]).all(), k
        err = record_error("lengths: engine vs reference", dtype, ours[k], want[k], k)
        assert err <= TOL[dtype], f"{k}: {err:.3g}"
    # past the end: h is 0, c carried, dgates and dx 0; rows that never run keep dh_n
    for t in range(T):
        assert not ours["hs"][t + 1, sizes[t]:].any()
        assert not ours["dgates"][t, sizes[t]:].any()
        assert not ours["dx"][t, sizes[t]:].any()
    np.testing.assert_array_equal(ours["infer_c"], ours["cs"][T])
    never = slice(sizes[0], B)
    np.testing.assert_array_equal(ours["dh0"][never], dh_n[never])
    np.testing.assert_array_equal(ours["dc0"][never], dc_n[never])


@pytest.mark.parametrize("bad, match", [
    ([3, 4, 2], "non-increasing"), ([5, 2, 1], "between 0 and B = 4"), ([2, 1, -1], "between 0"),
    ([2, 1], r"expected shape \(3,\)")])
def test_engine_refuses_bad_batch_sizes(bad, match):
    T, B, I, H = 3, 4, 2, 3
    z = np.zeros
    with pytest.raises(ValueError, match=match):
        _lstm.forward_layer(z((T, B, I)), z((4 * H, I)), z((4 * H, H)), z(4 * H),
                            z((T + 1, B, H)), z((T + 1, B, H)), z((T, B, 4 * H)), z((T, B, H)),
                            True, batch_sizes=np.array(bad, np.int32))


# ----------------------------------------------------------------- the layer

LAYER_CASES = [  # T, lengths, I, H, L, bidirectional, batch_first
    (6, [6, 3, 5, 1], 3, 4, 1, False, False),
    (5, [2, 5, 5, 0, 4], 4, 3, 2, False, True),     # unsorted, a zero length, batch_first
    (7, [4, 7, 1], 2, 5, 2, True, False),           # bidirectional: each reversed in its length
    (18, [18, 3, 11, 17, 9, 2, 18, 5, 12, 14, 7, 1, 16, 4, 8, 10, 13, 6], 3, 9, 2, True, True),
]


def _alone(m, x_b, h0_b, c0_b, dy_b, dhn_b, dcn_b):
    """One sequence through a copy of m: (y, h_n, c_n, dx, dh0, dc0, grads)."""
    one = LSTM(m.input_size, m.hidden_size, m.num_layers, dtype=m.dtype,
               bidirectional=m.bidirectional, backend=m.backend)
    one.load_state_dict(m.state_dict())
    y, (h, c) = one(x_b[:, None], (h0_b[:, None], c0_b[:, None]))
    dx, (dh0, dc0) = one.backward(dy_b[:, None], (dhn_b[:, None], dcn_b[:, None]))
    return y[:, 0], h[:, 0], c[:, 0], dx[:, 0], dh0[:, 0], dc0[:, 0], one.grads


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("T, lengths, I, H, L, bidirectional, batch_first", LAYER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_sequence_is_as_if_run_alone(T, lengths, I, H, L, bidirectional, batch_first,
                                          dtype, threads, kernel, record_error, monkeypatch):
    import lstm_c

    monkeypatch.setattr(lstm_c._threads, "_num_threads", threads)
    B = len(lengths)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(T + 10 * B)
    m = LSTM(I, H, L, batch_first=batch_first, bidirectional=bidirectional, dtype=dtype, seed=2)
    x = _rand(rng, (T, B, I), dtype)
    h0, c0 = _rand(rng, (L * D, B, H), dtype), _rand(rng, (L * D, B, H), dtype)
    dy = _rand(rng, (T, B, D * H), dtype)
    dhn, dcn = _rand(rng, (L * D, B, H), dtype), _rand(rng, (L * D, B, H), dtype)
    tb = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)

    y, (h_n, c_n) = m(tb(x), (h0, c0), lengths=np.array(lengths))
    dx, (dh0, dc0) = m.backward(tb(dy), (dhn, dcn))
    y, dx = tb(y), tb(dx)
    grads = {k: np.zeros_like(g) for k, g in m.grads.items()}
    for b, n in enumerate(lengths):
        assert not y[n:, b].any() and not dx[n:, b].any(), f"sequence {b}: not 0 past its end"
        if n == 0:  # nothing ran: the state passes through
            np.testing.assert_array_equal(h_n[:, b], h0[:, b])
            np.testing.assert_array_equal(dh0[:, b], dhn[:, b])
            continue
        ay, ah, ac, adx, adh0, adc0, agrads = _alone(m, x[:n, b], h0[:, b], c0[:, b],
                                                     dy[:n, b], dhn[:, b], dcn[:, b])
        for k, ours, want in (("y", y[:n, b], ay), ("h_n", h_n[:, b], ah),
                              ("c_n", c_n[:, b], ac), ("dx", dx[:n, b], adx),
                              ("dh0", dh0[:, b], adh0), ("dc0", dc0[:, b], adc0)):
            err = record_error("lengths: batch vs alone", dtype, ours, want, k)
            assert err <= TOL[dtype], f"sequence {b} {k}: {err:.3g}"
        for k in grads:
            grads[k] += agrads[k]
    for k in grads:
        err = record_error("lengths: batch vs alone", dtype, m.grads[k], grads[k], k)
        assert err <= TOL[dtype], f"grad {k}: {err:.3g}"

    # inference path: the same outputs and final states
    y2, (h2, c2) = m(tb(x), (h0, c0), lengths=lengths, grad=False)
    np.testing.assert_allclose(tb(y2), y, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(h2, h_n, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(c2, c_n, rtol=TOL[dtype], atol=TOL[dtype])


def test_numpy_backend_gives_the_same_as_the_engine():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4, 3))
    kw = dict(dtype=np.float64, seed=1, bidirectional=True)
    a, b = LSTM(3, 5, 2, **kw), LSTM(3, 5, 2, backend="numpy", **kw)
    lengths = [3, 6, 1, 4]
    ya, _ = a(x, lengths=lengths)
    yb, _ = b(x, lengths=lengths)
    np.testing.assert_allclose(ya, yb, rtol=1e-12, atol=1e-12)
    da, _ = a.backward(np.cos(ya))
    db, _ = b.backward(np.cos(yb))
    np.testing.assert_allclose(da, db, rtol=1e-12, atol=1e-12)


def test_full_lengths_change_nothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    m = LSTM(4, 6, 2, seed=0)
    y, (h, c) = m(x)
    y2, (h2, c2) = m(x, lengths=[5, 5, 5])
    for a, b in ((y, y2), (h, h2), (c, c2)):
        np.testing.assert_array_equal(a, b)


def test_finite_differences_through_lengths():
    """d(sum of w * outputs)/d(weights) against central differences, float64."""
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 3, 2, 3
    m = LSTM(I, H, 1, dtype=np.float64, seed=4, bidirectional=True)
    x = rng.standard_normal((T, B, I))
    lengths = [2, 5, 4]
    wy, wh = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((2, B, H))

    def loss():
        y, (h, c) = m(x, lengths=lengths, grad=False)
        return float((wy * y).sum() + (wh * (h + c)).sum())

    m.zero_grad()
    m(x, lengths=lengths)
    m.backward(wy, (wh, wh))
    check_finite_differences(m, ("weight_hh_l0", "weight_ih_l0_reverse", "bias_hh_l0_reverse"), loss, rng)


# ----------------------------------------------------------------- mask and bad input

def test_mask_is_the_same_as_lengths():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)  # batch_first (B, T, I)
    lengths = np.array([6, 2, 5, 0])
    mask = np.arange(6)[None, :] < lengths[:, None]         # (B, T)
    m = LSTM(3, 4, batch_first=True, seed=0)
    y1, (h1, c1) = m(x, lengths=lengths, grad=False)
    y2, (h2, c2) = m(x, mask=mask, grad=False)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(lengths=[3, 1.5]), TypeError, "lengths: expected integers"),
    (dict(lengths=[3, 1, 2]), ValueError, r"lengths: expected shape \(2,\)"),
    (dict(lengths=[4, 1]), ValueError, "between 0 and T = 3"),
    (dict(lengths=[3, -1]), ValueError, "between 0 and T = 3"),
    (dict(mask=np.ones((3, 2), int)), TypeError, "mask: expected a boolean array"),
    (dict(mask=np.ones((2, 3), bool)), ValueError, r"mask: expected shape \(3, 2\)"),
    (dict(mask=np.array([[True, True], [False, True], [True, True]])), ValueError,
     "sequence 0 has a False step before a True one"),
    (dict(lengths=[3, 1], mask=np.ones((3, 2), bool)), ValueError, "lengths or mask, not both"),
])
def test_bad_lengths_and_masks_are_refused(kw, exc, match):
    m = LSTM(2, 3)
    with pytest.raises(exc, match=match):
        m(np.zeros((3, 2, 2), np.float32), **kw)


def test_unbatched_input_takes_one_length():
    m = LSTM(2, 3, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 2))
    y, (h, c) = m(x, lengths=3)
    y3, (h3, c3) = m(x[:3])
    np.testing.assert_allclose(y[:3], y3, rtol=1e-13)
    assert not y[3:].any()
    np.testing.assert_allclose(h, h3, rtol=1e-13)


# ----------------------------------------------------------------- torch

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_packed_sequence(bidirectional, dtype, record_error):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, I, H, L = 6, 3, 4, 2
    lengths = [4, 6, 1, 3, 6]
    B, D = len(lengths), 2 if bidirectional else 1
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    torch.manual_seed(0)
    tm = torch.nn.LSTM(I, H, L, bidirectional=bidirectional, dtype=tdtype)
    m = LSTM(I, H, L, bidirectional=bidirectional, dtype=dtype)
    m.load_state_dict(tm.state_dict())
    rng = np.random.default_rng(2)
    x = _rand(rng, (T, B, I), dtype)
    h0, c0 = _rand(rng, (L * D, B, H), dtype), _rand(rng, (L * D, B, H), dtype)
    dy = _rand(rng, (T, B, D * H), dtype)
    for t, n in np.ndindex(T, B):
        if t >= lengths[n]:
            dy[t, n] = 0  # torch's padded output there is a constant

    tx, th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h0, c0))
    packed = pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    ty, (thn, tcn) = tm(packed, (th0, tc0))
    ty, _ = pad_packed_sequence(ty, total_length=T)
    (ty * torch.from_numpy(dy)).sum().add((thn + tcn).sum()).backward()

    y, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
    ones = np.ones_like(h_n)
    dx, (dh0, dc0) = m.backward(dy, (ones, ones))
    got = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0,
           **{"grad " + k: g for k, g in m.grads.items()}}
    want = {"y": ty, "h_n": thn, "c_n": tcn, "dx": tx.grad, "dh0": th0.grad, "dc0": tc0.grad,
            **{"grad " + k: p.grad for k, p in tm.named_parameters()}}
    tol = {np.float64: 1e-10, np.float32: 1e-4}[dtype]
    for k, theirs in want.items():
        err = record_error("lengths vs torch PackedSequence", dtype, got[k],
                           theirs.detach().numpy(), k)
        assert err <= tol, f"{k}: {err:.3g}"


def test_packed_sequence_round_trip():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    y = rng.standard_normal((5, 3, 2)).astype(np.float32)
    lengths = [2, 5, 3]
    packed = seq_lengths.to_packed_sequence(y, lengths)
    assert isinstance(packed, torch.nn.utils.rnn.PackedSequence)
    back, got_lengths = seq_lengths.from_packed_sequence(packed)
    np.testing.assert_array_equal(got_lengths, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(back[:n, b], y[:n, b])
        assert not back[n:, b].any()
