"""proj_size > 0 (LSTMP): h_t = W_hr (o * tanh(c_t)), torch's names, shapes and numbers.

The engine against the reference with a projection: tests/test_variants.py.
"""

import numpy as np
import pytest
from conftest import check_finite_differences

from lstm_c import LSTM, _lstm

DTYPES = (np.float64, np.float32)


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def test_parameters_are_torchs():
    m = LSTM(3, 5, 2, proj_size=2, bidirectional=True)
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    want = {}
    for k in range(2):
        for s in (f"_l{k}", f"_l{k}_reverse"):
            want.update({f"weight_ih{s}": (20, 3 if k == 0 else 4), f"weight_hh{s}": (20, 2),
                         f"bias_ih{s}": (20,), f"bias_hh{s}": (20,), f"weight_hr{s}": (2, 5)})
    assert list(shapes) == list(want) and shapes == want
    y, (h, c) = m(np.zeros((4, 3, 3), np.float32))
    assert y.shape == (4, 3, 4) and h.shape == (4, 3, 2) and c.shape == (4, 3, 5)
    assert "proj_size=2" in repr(m)


@pytest.mark.parametrize("bad, exc", [(5, ValueError), (-1, ValueError), (7, ValueError),
                                      (1.0, TypeError), (True, TypeError)])
def test_bad_proj_sizes_are_refused(bad, exc):
    with pytest.raises(exc, match="proj_size"):
        LSTM(3, 5, proj_size=bad)


def test_hx_shapes_are_checked_apart():
    m = LSTM(3, 5, proj_size=2)
    x = np.zeros((4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"expected shape \(1, 3, 2\)"):
        m(x, (np.zeros((1, 3, 5)), np.zeros((1, 3, 5))))
    y, _ = m(x, (np.zeros((1, 3, 2)), np.zeros((1, 3, 5))))
    assert y.shape == (4, 3, 2)


def test_engine_refuses_a_projection_of_the_wrong_shape():
    T, B, I, H, P = 2, 3, 2, 4, 2
    z = np.zeros
    with pytest.raises(ValueError, match=r"w_hr: expected shape \(2, 5\)"):
        _lstm.forward_layer(z((T, B, I)), z((4 * 5, I)), z((4 * 5, P)), z(20), z((T + 1, B, P)),
                            z((T + 1, B, 5)), z((T, B, 20)), z((T, B, 5)), True,
                            w_hr=z((3, 5)), ms=z((T, B, 5)))
    with pytest.raises(ValueError, match="ms: expected an array"):
        _lstm.forward_layer(z((T, B, I)), z((4 * H, I)), z((4 * H, P)), z(4 * H),
                            z((T + 1, B, P)), z((T + 1, B, H)), z((T, B, 4 * H)), z((T, B, H)),
                            True, w_hr=z((P, H)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L, bidirectional, batch_first, lengths", [
    (1, False, False, None), (2, True, True, None), (2, False, False, [5, 2, 4]),
    (2, True, False, [3, 5, 1])])
def test_matches_torch(L, bidirectional, batch_first, lengths, dtype, record_error):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, B, I, H, P = 5, 3, 4, 6, 3
    D = 2 if bidirectional else 1
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    torch.manual_seed(L)
    tm = torch.nn.LSTM(I, H, L, batch_first=batch_first, bidirectional=bidirectional,
                       proj_size=P, dtype=tdtype)
    m = LSTM(I, H, L, batch_first=batch_first, bidirectional=bidirectional, proj_size=P,
             dtype=dtype)
    m.load_state_dict(tm.state_dict())
    rng = np.random.default_rng(L + D)
    lead = (B, T) if batch_first else (T, B)
    x, dy = _rand(rng, lead + (I,), dtype), _rand(rng, lead + (D * P,), dtype)
    h0, c0 = _rand(rng, (L * D, B, P), dtype), _rand(rng, (L * D, B, H), dtype)
    dhn, dcn = _rand(rng, (L * D, B, P), dtype), _rand(rng, (L * D, B, H), dtype)
    if lengths is not None:  # torch's output past the end is a constant 0
        for b, n in enumerate(lengths):
            (dy[b, n:] if batch_first else dy[n:, b])[...] = 0

    tx, th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h0, c0))
    inp = tx if lengths is None else pack_padded_sequence(tx, torch.tensor(lengths),
                                                          batch_first=batch_first,
                                                          enforce_sorted=False)
    ty, (thn, tcn) = tm(inp, (th0, tc0))
    if lengths is not None:
        ty, _ = pad_packed_sequence(ty, batch_first=batch_first, total_length=T)
    torch.autograd.backward([ty, thn, tcn], [torch.from_numpy(a) for a in (dy, dhn, dcn)])
    y, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
    dx, (dh0, dc0) = m.backward(dy, (dhn, dcn))
    got = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0,
           **{"grad " + k: g for k, g in m.grads.items()}}
    want = {"y": ty, "h_n": thn, "c_n": tcn, "dx": tx.grad, "dh0": th0.grad, "dc0": tc0.grad,
            **{"grad " + k: p.grad for k, p in tm.named_parameters()}}
    assert got.keys() == want.keys()
    tol = {np.float64: 1e-10, np.float32: 1e-4}[dtype]
    for k, theirs in want.items():
        err = record_error("proj_size vs torch", dtype, got[k], theirs.detach().numpy(), k)
        assert err <= tol, f"{k}: {err:.3g}"


def test_finite_differences():
    rng = np.random.default_rng(1)
    m = LSTM(2, 4, 2, proj_size=3, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 2, 2))
    wy, wh, wc = (rng.standard_normal(s) for s in ((4, 2, 3), (2, 2, 3), (2, 2, 4)))

    def loss():
        y, (h, c) = m(x, grad=False)
        return float((wy * y).sum() + (wh * h).sum() + (wc * c).sum())

    m(x)
    m.backward(wy, (wh, wc))
    check_finite_differences(m, ("weight_hr_l0", "weight_hr_l1", "weight_hh_l1", "weight_ih_l0"), loss, rng)


def test_freeze_and_numpy_backend_agree():
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    m = LSTM(3, 6, 2, proj_size=2, dtype=np.float64, seed=3)
    ref = LSTM(3, 6, 2, proj_size=2, dtype=np.float64, backend="numpy")
    ref.load_state_dict(m.state_dict())
    y, (h, c) = m(x, grad=False)
    for other in (m.freeze(), ref):
        y2, (h2, c2) = other(x) if other is not ref else other(x, grad=False)
        np.testing.assert_allclose(y2, y, rtol=1e-12)
        np.testing.assert_allclose(c2, c, rtol=1e-12)
