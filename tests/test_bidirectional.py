"""bidirectional=True: torch's names, shapes, output layout and numbers."""

import numpy as np
import pytest

from lstm_c import LSTM

DTYPES = (np.float64, np.float32)


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def test_parameters_are_torchs():
    m = LSTM(3, 4, 2, bidirectional=True)
    names = []
    for k in range(2):
        for s in (f"_l{k}", f"_l{k}_reverse"):
            names += [f"weight_ih{s}", f"weight_hh{s}", f"bias_ih{s}", f"bias_hh{s}"]
    assert list(m.state_dict()) == names
    assert m.parameters()["weight_ih_l1"].shape == (16, 8)  # layer 1 reads both directions
    assert m.parameters()["weight_ih_l0_reverse"].shape == (16, 3)
    y, (h, c) = m(np.zeros((5, 2, 3), np.float32))
    assert y.shape == (5, 2, 8) and h.shape == (4, 2, 4) and c.shape == (4, 2, 4)
    assert "bidirectional=True" in repr(m)


def test_the_reverse_direction_reads_the_sequence_backwards():
    """The backward half of y at step t is a forward LSTM's over x reversed, at T-1-t."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 3))
    m = LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=1)
    one = LSTM(3, 4, dtype=np.float64)
    p = m.parameters()
    one.load_state_dict({k: p[k + "_reverse"] for k in one.state_dict()})
    y, (h, c) = m(x)
    y_rev, (h_rev, c_rev) = one(x[::-1])
    np.testing.assert_allclose(y[:, :, 4:], y_rev[::-1], rtol=1e-13)
    np.testing.assert_allclose(h[1], h_rev[0], rtol=1e-13)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, B, I, H, L, batch_first, unbatched", [
    (5, 3, 4, 3, 1, False, False), (4, 2, 3, 5, 2, True, False), (6, 1, 2, 4, 3, False, True),
    (12, 16, 8, 10, 2, False, False)])
def test_matches_torch(T, B, I, H, L, batch_first, unbatched, dtype, backend, record_error):
    torch = pytest.importorskip("torch")
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    torch.manual_seed(T + H)
    tm = torch.nn.LSTM(I, H, L, batch_first=batch_first, bidirectional=True, dtype=tdtype)
    m = LSTM(I, H, L, batch_first=batch_first, bidirectional=True, dtype=dtype,
             backend=backend)
    m.load_state_dict(tm.state_dict())
    rng = np.random.default_rng(T * 10 + B)
    lead = (T,) if unbatched else ((B, T) if batch_first else (T, B))
    state = (2 * L, H) if unbatched else (2 * L, B, H)
    x = _rand(rng, lead + (I,), dtype)
    h0, c0 = _rand(rng, state, dtype, 0.5), _rand(rng, state, dtype)
    dy = _rand(rng, lead + (2 * H,), dtype)
    dhn, dcn = _rand(rng, state, dtype), _rand(rng, state, dtype)

    tx, th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h0, c0))
    ty, (thn, tcn) = tm(tx, (th0, tc0))
    torch.autograd.backward([ty, thn, tcn], [torch.from_numpy(a) for a in (dy, dhn, dcn)])
    y, (h_n, c_n) = m(x, (h0, c0))
    dx, (dh0, dc0) = m.backward(dy, (dhn, dcn))
    got = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0,
           **{"grad " + k: g for k, g in m.grads.items()}}
    want = {"y": ty, "h_n": thn, "c_n": tcn, "dx": tx.grad, "dh0": th0.grad, "dc0": tc0.grad,
            **{"grad " + k: p.grad for k, p in tm.named_parameters()}}
    assert got.keys() == want.keys()
    tol = {np.float64: 1e-10, np.float32: 1e-4}[dtype]
    for k, theirs in want.items():
        assert got[k].shape == tuple(theirs.shape), k
        err = record_error("bidirectional vs torch", dtype, got[k], theirs.detach().numpy(), k)
        assert err <= tol, f"{k}: {err:.3g}"


def test_dropout_between_layers_is_reproducible_and_applied_to_both_directions():
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    a = LSTM(3, 4, 2, dropout=0.5, bidirectional=True, seed=7)
    b = LSTM(3, 4, 2, dropout=0.5, bidirectional=True, seed=7)
    ya, _ = a(x)
    yb, _ = b(x)
    np.testing.assert_array_equal(ya, yb)
    y_eval, _ = a.eval()(x)
    assert not np.allclose(ya, y_eval)


def test_freeze_gives_the_same_outputs():
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    m = LSTM(3, 4, 2, bidirectional=True, seed=0).eval()
    y, (h, c) = m(x, grad=False)
    y2, (h2, c2) = m.freeze()(x)
    np.testing.assert_allclose(y2, y, rtol=1e-6)
    np.testing.assert_allclose(h2, h, rtol=1e-6)


def test_trace_gives_each_direction_in_input_order():
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    m = LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=0)
    y, _, layers = m.trace(x)
    assert len(layers) == 2
    np.testing.assert_allclose(layers[0]["h"], y[:, :, :4], rtol=1e-13)
    np.testing.assert_allclose(layers[1]["h"], y[:, :, 4:], rtol=1e-13)
