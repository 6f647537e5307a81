"""forward(..., return_cells=True): every step's c and gates, which torch cannot give;
and forget_bias, the forget gate's initial bias."""

import numpy as np
import pytest

from lstm_c import LSTM, LSTMCell


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_cells_are_those_of_stepping_a_cell(backend):
    """c and the gates of every step equal LSTMCell's, run one step at a time."""
    rng = np.random.default_rng(0)
    T, B, I, H = 6, 3, 4, 5
    m = LSTM(I, H, 2, dtype=np.float64, seed=1, backend=backend)
    x = rng.standard_normal((T, B, I))
    y, (h_n, c_n), cells = m(x, return_cells=True)
    assert len(cells) == 2
    inp = x
    p = m.parameters()
    for k in range(2):
        cell = LSTMCell(inp.shape[2], H, dtype=np.float64)
        cell.load_state_dict({n: p[n + f"_l{k}"] for n in cell.state_dict()})
        h = c = np.zeros((B, H))
        hs = []
        for t in range(T):
            h, c = cell(inp[t], (h, c))
            np.testing.assert_allclose(cells[k]["c"][t], c, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(cells[k]["h"][t], h, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(cells[k]["tanh_c"][t], np.tanh(c), rtol=1e-12, atol=1e-14)
            hs.append(h)
        inp = np.stack(hs)
        gates = cells[k]["gates"]
        assert gates.shape == (T, B, 4 * H)
        sig = np.delete(gates, np.s_[2 * H:3 * H], axis=2)
        assert (sig > 0).all() and (sig < 1).all() and (np.abs(gates[..., 2 * H:3 * H]) < 1).all()
    np.testing.assert_array_equal(cells[1]["h"], y)
    np.testing.assert_array_equal(cells[1]["c"][-1], c_n[1])


def test_backward_is_unchanged_and_the_cells_are_read_only():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 2, 8)).astype(np.float32)
    a = LSTM(3, 4, 2, seed=0, bidirectional=True)
    b = LSTM(3, 4, 2, seed=0, bidirectional=True)
    a(x)
    ga = a.backward(dy)[0]
    _, _, cells = b(x, return_cells=True)
    gb = b.backward(dy)[0]
    np.testing.assert_array_equal(ga, gb)
    for k in a.grads:
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    with pytest.raises(ValueError):
        cells[0]["c"][0, 0, 0] = 1
    # inference: no backward state, writable arrays
    _, _, cells = b(x, grad=False, return_cells=True)
    cells[0]["c"][0, 0, 0] = 1


def test_cells_follow_batch_first_unbatched_and_lengths():
    rng = np.random.default_rng(2)
    m = LSTM(3, 4, batch_first=True, seed=0, dtype=np.float64)
    x = rng.standard_normal((2, 6, 3))
    y, (h, c), cells = m(x, lengths=[6, 3], return_cells=True)
    assert cells[0]["c"].shape == (2, 6, 4)
    np.testing.assert_array_equal(cells[0]["h"], y)
    # past its end a sequence keeps its last c, and its gates are 0
    np.testing.assert_array_equal(cells[0]["c"][1, 3:], np.broadcast_to(cells[0]["c"][1, 2], (3, 4)))
    assert not cells[0]["gates"][1, 3:].any()
    np.testing.assert_array_equal(c[0, 1], cells[0]["c"][1, 2])
    u = LSTM(3, 4, seed=0, dtype=np.float64)
    _, _, cu = u(x[0], return_cells=True)
    assert cu[0]["c"].shape == (6, 4)


def test_trace_is_inference_without_dropout():
    x = np.random.default_rng(3).standard_normal((5, 2, 3)).astype(np.float32)
    m = LSTM(3, 4, 2, dropout=0.5, seed=0)
    y_eval, _ = m.eval()(x, grad=False)
    m.train()
    y, _, cells = m.trace(x)
    np.testing.assert_array_equal(y, y_eval)
    assert m.training


@pytest.mark.parametrize("value", [1.0, 2.5, 0])
def test_forget_bias_sets_the_forget_gates_bias(value):
    m = LSTM(3, 4, 2, forget_bias=value, bidirectional=True)
    for name, p in m.parameters().items():
        if name.startswith("bias_ih"):
            assert (p[4:8] == value).all()
        elif name.startswith("bias_hh"):
            assert (p[4:8] == 0).all()
    plain = LSTM(3, 4, 2, seed=0)
    assert not (plain.parameters()["bias_ih_l0"][4:8] == 1).all()


@pytest.mark.parametrize("kw, exc, match", [
    (dict(forget_bias="1"), TypeError, "forget_bias must be a number"),
    (dict(forget_bias=float("nan")), ValueError, "finite"),
    (dict(forget_bias=1.0, bias=False), ValueError, "needs bias=True")])
def test_bad_forget_bias_is_refused(kw, exc, match):
    with pytest.raises(exc, match=match):
        LSTM(3, 4, **kw)
