"""lstm_c.LSTM and lstm_c.LSTMCell against torch.nn.LSTM and torch.nn.LSTMCell.

torch's state dict is loaded into lstm-c as torch tensors, directly, and
lstm-c's into torch; then every output and every gradient is compared. The
worst relative error per dtype is printed in the terminal summary (see
conftest.py).
"""

import numpy as np
import pytest

from lstm_c import LSTM, LSTMCell

torch = pytest.importorskip("torch")

# Relative error max|lstm_c - torch| / max|torch|, per dtype.
TOL = {np.float64: 1e-10, np.float32: 1e-4}
DTYPES = (np.float64, np.float32)
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The shapes are tiny: torch's thread pool only adds spin-up and contention.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _check(got, want, dtype, record_error, comparison="lstm_c vs torch"):
    for k, theirs in want.items():
        theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
        ours = got[k]
        assert ours.shape == theirs.shape, f"{k}: shape {ours.shape} vs torch {theirs.shape}"
        assert ours.dtype == dtype, k
        err = record_error(comparison, dtype, ours, theirs, k)
        assert err <= TOL[dtype], f"{k}: relative error {err:.3g} > {TOL[dtype]}"


def _torch_lstm(I, H, L, dtype, seed, **kw):
    torch.manual_seed(seed)
    return torch.nn.LSTM(I, H, L, dtype=TORCH_DTYPE[dtype], **kw)


#                  T, B, I, H, L, batch_first, unbatched, hx, dhx, bias
CASES = [
    pytest.param(1, 1, 1, 1, 1, False, False, True, True, True, id="T1-B1-I1-H1"),
    pytest.param(6, 3, 4, 5, 1, False, False, True, True, True, id="L1"),
    pytest.param(5, 2, 7, 3, 2, False, False, True, True, True, id="L2-I>H"),
    pytest.param(4, 3, 2, 6, 3, False, False, True, True, True, id="L3-I<H"),
    pytest.param(5, 4, 3, 4, 2, True, False, True, True, True, id="batch_first"),
    pytest.param(3, 2, 3, 5, 3, True, False, False, False, True, id="batch_first-no-hx"),
    pytest.param(6, 1, 4, 3, 2, False, True, True, True, True, id="unbatched"),
    pytest.param(4, 1, 2, 4, 1, False, True, False, True, True, id="unbatched-no-hx"),
    pytest.param(5, 2, 3, 4, 2, False, False, False, True, True, id="no-hx"),
    pytest.param(5, 3, 4, 4, 2, False, False, True, False, True, id="no-dhx"),
    pytest.param(4, 2, 3, 5, 2, False, False, True, True, False, id="bias=False"),
    pytest.param(20, 8, 16, 32, 2, True, False, True, True, True, id="larger"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, B, I, H, L, batch_first, unbatched, use_hx, use_dhx, bias", CASES)
def test_lstm_matches_torch(T, B, I, H, L, batch_first, unbatched, use_hx, use_dhx, bias,
                            dtype, record_error):
    tm = _torch_lstm(I, H, L, dtype, seed=T + 10 * H, batch_first=batch_first, bias=bias)
    m = LSTM(I, H, L, bias=bias, batch_first=batch_first, dtype=dtype, seed=1)
    m.load_state_dict(tm.state_dict())  # torch tensors, directly

    rng = np.random.default_rng(T * 1000 + B * 100 + L)
    lead = (T,) if unbatched else ((B, T) if batch_first else (T, B))
    state = (L, H) if unbatched else (L, B, H)
    x = _rand(rng, lead + (I,), dtype)
    h0, c0 = _rand(rng, state, dtype, 0.5), _rand(rng, state, dtype)
    if not use_hx:
        h0[...] = 0
        c0[...] = 0
    dy = _rand(rng, lead + (H,), dtype)
    dhn, dcn = _rand(rng, state, dtype), _rand(rng, state, dtype)

    # torch: zeros that require grad stand for "no hx", so dh0 and dc0 exist too.
    tx, th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h0, c0))
    ty, (thn, tcn) = tm(tx, (th0, tc0))
    if use_dhx:
        torch.autograd.backward([ty, thn, tcn],
                                [torch.from_numpy(a) for a in (dy, dhn, dcn)])
    else:
        torch.autograd.backward([ty], [torch.from_numpy(dy)])

    y, (h_n, c_n) = m(x, (h0, c0) if use_hx else None)
    dx, (dh0, dc0) = m.backward(dy, (dhn, dcn) if use_dhx else None)
    got = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": dh0, "dc0": dc0,
           **{"grad " + k: g for k, g in m.grads.items()}}
    want = {"y": ty, "h_n": thn, "c_n": tcn, "dx": tx.grad, "dh0": th0.grad, "dc0": tc0.grad,
            **{"grad " + k: p.grad for k, p in tm.named_parameters()}}
    assert got.keys() == want.keys()
    _check(got, want, dtype, record_error)

    # inference path and eval mode give the same forward
    m.eval()
    y2, (h2, c2) = m(x, (h0, c0) if use_hx else None, grad=False)
    _check({"y": y2, "h_n": h2, "c_n": c2}, {"y": ty, "h_n": thn, "c_n": tcn}, dtype,
           record_error)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_lstm_c_state_dict_loads_into_torch(L, bias, dtype, record_error):
    I, H, T, B = 4, 6, 5, 3
    m = LSTM(I, H, L, bias=bias, dtype=dtype, seed=L)
    tm = _torch_lstm(I, H, L, dtype, seed=0, bias=bias)
    sd = m.state_dict()
    tsd = tm.state_dict()
    assert list(sd) == list(tsd)
    assert {k: v.shape for k, v in sd.items()} == {k: tuple(v.shape) for k, v in tsd.items()}
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})  # strict

    rng = np.random.default_rng(L)
    x = _rand(rng, (T, B, I), dtype)
    hx = (_rand(rng, (L, B, H), dtype, 0.5), _rand(rng, (L, B, H), dtype))
    y, (h_n, c_n) = m(x, hx)
    with torch.no_grad():
        ty, (thn, tcn) = tm(torch.from_numpy(x), tuple(torch.from_numpy(a) for a in hx))
    _check({"y": y, "h_n": h_n, "c_n": c_n}, {"y": ty, "h_n": thn, "c_n": tcn}, dtype,
           record_error)


def test_load_state_dict_takes_tensors_that_require_grad_and_other_dtypes():
    tm = _torch_lstm(3, 4, 2, np.float32, seed=0)
    params = dict(tm.named_parameters())
    assert all(p.requires_grad for p in params.values())
    m64 = LSTM(3, 4, 2, dtype=np.float64, seed=1)
    m64.load_state_dict(params)
    for k, p in params.items():
        v = m64.parameters()[k]
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v, p.detach().numpy().astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, I, H, unbatched, use_hx, bias", [
    pytest.param(1, 1, 1, False, True, True, id="B1-I1-H1"),
    pytest.param(4, 3, 5, False, True, True, id="I<H"),
    pytest.param(3, 6, 2, False, False, True, id="I>H-no-hx"),
    pytest.param(1, 4, 3, True, True, True, id="unbatched"),
    pytest.param(2, 3, 4, False, True, False, id="bias=False"),
])
def test_cell_matches_torch(B, I, H, unbatched, use_hx, bias, dtype, record_error):
    torch.manual_seed(B + I + H)
    tcell = torch.nn.LSTMCell(I, H, bias=bias, dtype=TORCH_DTYPE[dtype])
    cell = LSTMCell(I, H, bias=bias, dtype=dtype, seed=0)
    cell.load_state_dict(tcell.state_dict())
    assert list(cell.state_dict()) == list(tcell.state_dict())

    rng = np.random.default_rng(B * 10 + H)
    lead = () if unbatched else (B,)
    x = _rand(rng, lead + (I,), dtype)
    h0, c0 = _rand(rng, lead + (H,), dtype, 0.5), _rand(rng, lead + (H,), dtype)
    if not use_hx:
        h0[...] = 0
        c0[...] = 0
    dh, dc = _rand(rng, lead + (H,), dtype), _rand(rng, lead + (H,), dtype)

    tx, th0, tc0 = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h0, c0))
    th, tc = tcell(tx, (th0, tc0))
    torch.autograd.backward([th, tc], [torch.from_numpy(dh), torch.from_numpy(dc)])

    h, c = cell(x, (h0, c0) if use_hx else None)
    dx, (dh_prev, dc_prev) = cell.backward(dh, dc)
    got = {"h": h, "c": c, "dx": dx, "dh_prev": dh_prev, "dc_prev": dc_prev,
           **{"grad " + k: g for k, g in cell.grads.items()}}
    want = {"h": th, "c": tc, "dx": tx.grad, "dh_prev": th0.grad, "dc_prev": tc0.grad,
            **{"grad " + k: p.grad for k, p in tcell.named_parameters()}}
    assert got.keys() == want.keys()
    _check(got, want, dtype, record_error, "cell: lstm_c vs torch")

    # and the other way: lstm_c's weights in torch
    tcell2 = torch.nn.LSTMCell(I, H, bias=bias, dtype=TORCH_DTYPE[dtype])
    tcell2.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
    with torch.no_grad():
        th2, tc2 = tcell2(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    _check({"h": h, "c": c}, {"h": th2, "c": tc2}, dtype, record_error, "cell: lstm_c vs torch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_training_loop_tracks_torch(dtype, record_error):
    # Several SGD steps on the same data: small differences must not grow.
    T, B, I, H, L, lr = 8, 4, 5, 6, 2, 0.1
    tm = _torch_lstm(I, H, L, dtype, seed=3)
    m = LSTM(I, H, L, dtype=dtype)
    m.load_state_dict(tm.state_dict())
    rng = np.random.default_rng(3)
    x, target = _rand(rng, (T, B, I), dtype), _rand(rng, (T, B, H), dtype, 0.5)
    for _ in range(10):
        tm.zero_grad()
        ty, _ = tm(torch.from_numpy(x))
        ((ty - torch.from_numpy(target)) ** 2).sum().backward()
        with torch.no_grad():
            for p in tm.parameters():
                p -= lr * p.grad
        m.zero_grad()
        y, _ = m(x)
        m.backward(2 * (y - target))
        for k, p in m.parameters().items():
            p -= dtype(lr) * m.grads[k]
    _check(m.state_dict(), tm.state_dict(), dtype, record_error, "lstm_c vs torch, 10 SGD steps")


def test_torch_dtypes_are_accepted_as_dtype():
    assert LSTM(3, 4, dtype=torch.float64).dtype == np.float64
    assert LSTM(3, 4, dtype=torch.float32).dtype == np.float32
    assert LSTMCell(3, 4, dtype=torch.float64).dtype == np.float64


@pytest.mark.parametrize("tdtype", ["float16", "bfloat16", "int64", "complex64"])
def test_other_torch_dtypes_are_refused(tdtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        LSTM(3, 4, dtype=getattr(torch, tdtype))
