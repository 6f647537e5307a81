"""Tests of the NumPy reference (python/lstm_c/reference.py) on its own.

The reference is the oracle for the compiled engine, so it is checked against
things that do not share its code: central finite differences in float64,
one random-direction identity <J v, u> = <v, J^T u>, and torch.nn.LSTM.
These tests never need the compiled extension.
"""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

# Per-dtype tolerances, (rtol, atol). Finite differences run in float64 only.
#   fd:    analytic gradient vs central finite differences (step FD_EPS)
#   torch: forward outputs and gradients vs torch.nn.LSTM in the same dtype
#   ref64: float32 reference vs the float64 reference
#   accum: accumulated gradient buffers vs init + 2 * gradient
FD_EPS = 1e-6
TOL = {
    np.float64: {"fd": (1e-7, 1e-9), "torch": (1e-10, 1e-12),
                 "accum": (1e-14, 1e-15)},
    np.float32: {"torch": (1e-5, 1e-6), "ref64": (1e-5, 1e-6),
                 "accum": (1e-6, 1e-7)},
}

INPUTS = ("x", "h0", "c0", "w_ih", "w_hh", "bias")
GRAD_OF = {"x": "dx", "h0": "dh0", "c0": "dc0",
           "w_ih": "dw_ih", "w_hh": "dw_hh", "bias": "db"}


def _load_reference():
    """Return the reference module, from the package or else by file path."""
    try:
        from lstm_c import reference
    except ImportError:  # package not built/installed: load the file itself
        path = Path(__file__).resolve().parents[1] / "python" / "lstm_c" / "reference.py"
        spec = importlib.util.spec_from_file_location("_lstm_c_reference", path)
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
    return reference


ref = _load_reference()


# --------------------------------------------------------------------------
# helpers

def _readonly(a):
    """A read-only view of `a`: any write by the function under test raises."""
    v = a.view()
    v.flags.writeable = False
    return v


def _make_case(seed, T, B, I, H, dtype=np.float64):
    """Random non-degenerate inputs and output cotangents (gy, ghn, gcn)."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    p = {"x": rand(T, B, I), "h0": rand(B, H, scale=0.5),
         "c0": rand(B, H), "w_ih": rand(4 * H, I, scale=0.5),
         "w_hh": rand(4 * H, H, scale=0.5), "bias": rand(4 * H, scale=0.5)}
    u = {"gy": rand(T, B, H), "ghn": rand(B, H), "gcn": rand(B, H)}
    return p, u


def _forward(p, training=True):
    """Run forward_layer; return (hs, cs, acts, tanh_c)."""
    x = p["x"]
    T, B, _ = x.shape
    H = p["w_hh"].shape[1]
    hs = np.empty((T + 1, B, H), x.dtype)
    hs[0] = p["h0"]
    cs = np.empty((T + 1 if training else 1, B, H), x.dtype)
    cs[0] = p["c0"]
    acts = np.empty((T, B, 4 * H), x.dtype)
    tanh_c = np.empty((T if training else 0, B, H), x.dtype)
    ref.forward_layer(x=_readonly(x), w_ih=_readonly(p["w_ih"]),
                      w_hh=_readonly(p["w_hh"]), bias=_readonly(p["bias"]),
                      hs=hs, cs=cs, acts=acts, tanh_c=tanh_c, training=training)
    return hs, cs, acts, tanh_c


def _loss(p, u):
    """L = sum(y * gy) + sum(h_n * ghn) + sum(c_n * gcn)."""
    hs, cs, _, _ = _forward(p)
    return (np.sum(hs[1:] * u["gy"]) + np.sum(hs[-1] * u["ghn"])
            + np.sum(cs[-1] * u["gcn"]))


def _backward(p, u, fwd, out):
    """Run backward_layer on the forward state `fwd` into the buffers `out`."""
    hs, cs, acts, tanh_c = (_readonly(a) for a in fwd)
    ref.backward_layer(x=_readonly(p["x"]), w_ih=_readonly(p["w_ih"]),
                       w_hh=_readonly(p["w_hh"]), hs=hs, cs=cs, acts=acts,
                       tanh_c=tanh_c, dy=_readonly(u["gy"]),
                       dh_n=_readonly(u["ghn"]), dc_n=_readonly(u["gcn"]), **out)


def _zero_grads(p):
    T, B, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    out = {GRAD_OF[k]: np.zeros_like(p[k]) for k in INPUTS}
    out["dgates"] = np.empty((T, B, 4 * H), p["x"].dtype)
    return out


def _grads(p, u):
    """Analytic gradients of L, keyed like GRAD_OF (plus dgates)."""
    out = _zero_grads(p)
    _backward(p, u, _forward(p), out)
    return out


def _numerical_grad(p, u, name, eps=FD_EPS):
    """Central finite differences of L with respect to every element of p[name]."""
    g = np.empty_like(p[name])
    for idx in np.ndindex(g.shape):
        plus, minus = p[name].copy(), p[name].copy()
        plus[idx] += eps
        minus[idx] -= eps
        g[idx] = (_loss({**p, name: plus}, u) - _loss({**p, name: minus}, u)) / (2 * eps)
    return g


# --------------------------------------------------------------------------
# gradients

@pytest.mark.parametrize("T, B, I, H", [(3, 2, 3, 4), (1, 1, 1, 1), (1, 1, 5, 2),
                                        (4, 3, 2, 6)])
@pytest.mark.parametrize("name", INPUTS)
def test_backward_matches_finite_differences(T, B, I, H, name):
    p, u = _make_case(0, T, B, I, H)
    rtol, atol = TOL[np.float64]["fd"]
    np.testing.assert_allclose(_grads(p, u)[GRAD_OF[name]],
                               _numerical_grad(p, u, name), rtol=rtol, atol=atol)


def test_backward_random_direction():
    # <J v, u> (directional derivative of L along v, by central differences)
    # equals <v, J^T u> (the backward pass), for all inputs at once.
    p, u = _make_case(1, T=20, B=5, I=7, H=16)
    rng = np.random.default_rng(2)
    v = {k: rng.standard_normal(a.shape) for k, a in p.items()}
    norm = np.sqrt(sum(np.sum(a * a) for a in v.values()))
    v = {k: a / norm for k, a in v.items()}
    plus = {k: p[k] + FD_EPS * v[k] for k in INPUTS}
    minus = {k: p[k] - FD_EPS * v[k] for k in INPUTS}
    jv_u = (_loss(plus, u) - _loss(minus, u)) / (2 * FD_EPS)
    g = _grads(p, u)
    v_jtu = sum(np.sum(v[k] * g[GRAD_OF[k]]) for k in INPUTS)
    rtol, atol = TOL[np.float64]["fd"]
    np.testing.assert_allclose(v_jtu, jv_u, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_accumulates_weight_grads_and_overwrites_the_rest(dtype):
    p, u = _make_case(3, T=4, B=3, I=5, H=6, dtype=dtype)
    fwd = _forward(p)
    g = _zero_grads(p)
    _backward(p, u, fwd, g)

    rng = np.random.default_rng(4)
    init = {k: rng.standard_normal(a.shape).astype(dtype) for k, a in g.items()}
    out = {k: a.copy() for k, a in init.items()}
    _backward(p, u, fwd, out)
    _backward(p, u, fwd, out)

    rtol, atol = TOL[dtype]["accum"]
    for k in ("dw_ih", "dw_hh", "db"):  # ADDED (+=)
        np.testing.assert_allclose(out[k], init[k] + 2 * g[k], rtol=rtol, atol=atol,
                                   err_msg=k)
    for k in ("dx", "dh0", "dc0", "dgates"):  # overwritten
        np.testing.assert_array_equal(out[k], g[k], err_msg=k)
    np.testing.assert_allclose(g["db"], g["dgates"].sum(axis=(0, 1)),
                               rtol=rtol, atol=atol)


# --------------------------------------------------------------------------
# forward

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inference_matches_training(dtype):
    p, _ = _make_case(5, T=6, B=3, I=4, H=5, dtype=dtype)
    hs_train, cs_train, _, _ = _forward(p, training=True)
    hs_inf, cs_inf, _, tanh_c = _forward(p, training=False)  # tanh_c (0, B, H)
    assert tanh_c.shape == (0, 3, 5) and cs_inf.shape == (1, 3, 5)
    np.testing.assert_array_equal(hs_inf, hs_train)
    np.testing.assert_array_equal(cs_inf[0], cs_train[-1])

    # A full-size tanh_c is not touched either.
    T, B, H = 6, 3, 5
    hs = np.empty((T + 1, B, H), dtype)
    hs[0] = p["h0"]
    cs = p["c0"][None].copy()
    tanh_c = np.full((T, B, H), np.nan, dtype)
    ref.forward_layer(x=p["x"], w_ih=p["w_ih"], w_hh=p["w_hh"], bias=p["bias"],
                      hs=hs, cs=cs, acts=np.empty((T, B, 4 * H), dtype),
                      tanh_c=tanh_c, training=False)
    assert np.isnan(tanh_c).all()
    np.testing.assert_array_equal(hs, hs_train)


def test_forward_training_state_is_consistent():
    p, _ = _make_case(6, T=5, B=2, I=3, H=4)
    hs, cs, acts, tanh_c = _forward(p)
    H = 4
    i, f, g, o = (acts[..., k * H:(k + 1) * H] for k in range(4))
    np.testing.assert_array_equal(hs[0], p["h0"])
    np.testing.assert_array_equal(cs[0], p["c0"])
    np.testing.assert_allclose(cs[1:], f * cs[:-1] + i * g, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(tanh_c, np.tanh(cs[1:]), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(hs[1:], o * tanh_c, rtol=1e-15, atol=1e-15)


def test_float32_stays_float32_and_matches_float64():
    p64, u64 = _make_case(7, T=8, B=3, I=5, H=6)
    p32 = {k: a.astype(np.float32) for k, a in p64.items()}
    u32 = {k: a.astype(np.float32) for k, a in u64.items()}
    rtol, atol = TOL[np.float32]["ref64"]
    for a32, a64 in zip(_forward(p32), _forward(p64)):
        np.testing.assert_allclose(a32, a64, rtol=rtol, atol=atol)
    g32, g64 = _grads(p32, u32), _grads(p64, u64)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=rtol, atol=atol, err_msg=k)
    # Computing in float32 really happens in float32: not the float64 result rounded.
    assert not np.array_equal(_forward(p32)[0], _forward(p64)[0].astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturated_gates_do_not_overflow(dtype):
    p, u = _make_case(8, T=3, B=2, I=3, H=4, dtype=dtype)
    p["x"] = (1e4 * p["x"]).astype(dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        hs, cs, acts, tanh_c = _forward(p)
        g = _grads(p, u)
    assert all(np.isfinite(a).all() for a in (hs, cs, acts, tanh_c, *g.values()))
    sig = np.delete(acts, np.s_[8:12], axis=-1)  # i, f, o (H = 4)
    assert ((sig >= 0) & (sig <= 1)).all() and (np.abs(acts) <= 1).all()


# --------------------------------------------------------------------------
# against torch.nn.LSTM

@pytest.mark.parametrize("T, B, I, H", [(5, 3, 4, 6), (1, 1, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(T, B, I, H, dtype):
    torch = pytest.importorskip("torch")
    p, u = _make_case(9, T, B, I, H, dtype=dtype)
    # torch adds two biases; split ours in two random parts.
    b_ih = np.random.default_rng(10).standard_normal(4 * H).astype(dtype)
    b_hh = (p["bias"] - b_ih).astype(dtype)
    p["bias"] = b_ih + b_hh

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    lstm = torch.nn.LSTM(I, H, dtype=tdtype)
    with torch.no_grad():
        for name, a in (("weight_ih_l0", p["w_ih"]), ("weight_hh_l0", p["w_hh"]),
                        ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(lstm, name).copy_(torch.from_numpy(a))
    x, h0, c0 = (torch.from_numpy(p[k].copy()).requires_grad_() for k in ("x", "h0", "c0"))
    y, (h_n, c_n) = lstm(x, (h0[None], c0[None]))
    loss = ((y * torch.from_numpy(u["gy"])).sum() + (h_n[0] * torch.from_numpy(u["ghn"])).sum()
            + (c_n[0] * torch.from_numpy(u["gcn"])).sum())
    loss.backward()

    hs, cs, _, _ = _forward(p)
    g = _grads(p, u)
    expected = {
        "y": (hs[1:], y), "h_n": (hs[-1], h_n[0]), "c_n": (cs[-1], c_n[0]),
        "dx": (g["dx"], x.grad), "dh0": (g["dh0"], h0.grad), "dc0": (g["dc0"], c0.grad),
        "dw_ih": (g["dw_ih"], lstm.weight_ih_l0.grad),
        "dw_hh": (g["dw_hh"], lstm.weight_hh_l0.grad),
        "db (b_ih)": (g["db"], lstm.bias_ih_l0.grad),
        "db (b_hh)": (g["db"], lstm.bias_hh_l0.grad),
    }
    rtol, atol = TOL[dtype]["torch"]
    for k, (ours, theirs) in expected.items():
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=k)
