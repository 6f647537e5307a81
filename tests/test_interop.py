"""lstm_c.interop: weights to and from PyTorch, Keras and ONNX.

torch: the converted models are run on both sides and every output and
gradient compared. Keras and ONNX: each layout is checked against a small
NumPy evaluator of its own equations, written here from the Keras source and
the ONNX operator spec, in both directions; and, when keras / onnxruntime are
installed, against the real libraries.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import lstm_c
from lstm_c import LSTM, LSTMCell, interop

TOL = {np.float32: 1e-5, np.float64: 1e-12}  # relative: max|a - b| / max|b|
DTYPES = (np.float32, np.float64)


def _rand(rng, shape, dtype=np.float64, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _close(record_error, comparison, dtype, got, want, what=""):
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    err = record_error(comparison, dtype, got, want, what)
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]}"


def test_import_does_not_import_optional_libraries():
    code = ("import sys, lstm_c, lstm_c.interop; print(sorted(m for m in "
            "('torch', 'keras', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert lstm_c.interop is interop


# --- PyTorch -------------------------------------------------------------------------


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny shapes: a thread pool only adds contention
    yield torch
    torch.set_num_threads(n)


def _tdtype(torch, dtype):
    return {np.float32: torch.float32, np.float64: torch.float64}[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_torch_lstm_round_trip(torch, L, bias, batch_first, dtype, record_error):
    T, B, I, H = 5, 3, 4, 6
    torch.manual_seed(L + 10 * bias)
    tm = torch.nn.LSTM(I, H, L, bias=bias, batch_first=batch_first, dtype=_tdtype(torch, dtype))
    m = LSTM.from_torch(tm) if L == 2 else interop.from_torch(tm)  # both entry points
    assert type(m) is LSTM and m.dtype == dtype
    assert (m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first, m.dropout) == (
        I, H, L, bias, batch_first, 0.0)

    rng = np.random.default_rng(L)
    x = _rand(rng, (B, T, I) if batch_first else (T, B, I), dtype)
    h0, c0 = _rand(rng, (L, B, H), dtype, 0.5), _rand(rng, (L, B, H), dtype)
    dy, dh, dc = (_rand(rng, s, dtype) for s in (x.shape[:2] + (H,), (L, B, H), (L, B, H)))

    y, (h_n, c_n) = m(x, (h0, c0))
    dx, (dh0, dc0) = m.backward(dy, (dh, dc))

    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    yt, (hnt, cnt) = tm(xt, (h0t, c0t))
    torch.autograd.backward([yt, hnt, cnt], [torch.from_numpy(a) for a in (dy, dh, dc)])
    name = "from_torch LSTM"
    for what, ours, theirs in (("y", y, yt), ("h_n", h_n, hnt), ("c_n", c_n, cnt),
                               ("dx", dx, xt.grad), ("dh0", dh0, h0t.grad),
                               ("dc0", dc0, c0t.grad)):
        _close(record_error, name, dtype, ours, theirs, what)
    for k, p in tm.named_parameters():
        _close(record_error, name, dtype, m.grads[k], p.grad, k)

    # And back: the same module, weights equal to the bit, on torch's side.
    back = m.to_torch() if L == 2 else interop.to_torch(m)
    assert type(back) is torch.nn.LSTM
    for a in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional", "proj_size", "training"):
        assert getattr(back, a) == getattr(tm, a), a
    want = tm.state_dict()
    assert list(back.state_dict()) == list(want)
    for k, v in back.state_dict().items():
        assert v.dtype == want[k].dtype and torch.equal(v, want[k]), k
    with torch.no_grad():
        yb, _ = back(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    _close(record_error, "to_torch LSTM", dtype, yb.numpy(), y, "y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_torch_cell_round_trip(torch, bias, dtype, record_error):
    B, I, H = 4, 3, 5
    torch.manual_seed(bias)
    tc = torch.nn.LSTMCell(I, H, bias=bias, dtype=_tdtype(torch, dtype))
    cell = LSTMCell.from_torch(tc) if bias else interop.from_torch(tc)
    assert type(cell) is LSTMCell and cell.dtype == dtype and cell.bias == bias

    rng = np.random.default_rng(7)
    x, h, c, dh, dc = (_rand(rng, s, dtype) for s in ((B, I),) + ((B, H),) * 4)
    h1, c1 = cell(x, (h, c))
    dx, (dh_prev, dc_prev) = cell.backward(dh, dc)

    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    h1t, c1t = tc(xt, (ht, ct))
    torch.autograd.backward([h1t, c1t], [torch.from_numpy(dh), torch.from_numpy(dc)])
    for what, ours, theirs in (("h", h1, h1t), ("c", c1, c1t), ("dx", dx, xt.grad),
                               ("dh_prev", dh_prev, ht.grad), ("dc_prev", dc_prev, ct.grad)):
        _close(record_error, "from_torch LSTMCell", dtype, ours, theirs, what)
    for k, p in tc.named_parameters():
        _close(record_error, "from_torch LSTMCell", dtype, cell.grads[k], p.grad, k)

    back = cell.to_torch() if bias else interop.to_torch(cell)
    assert type(back) is torch.nn.LSTMCell and back.bias == bias
    for k, v in back.state_dict().items():
        assert torch.equal(v, tc.state_dict()[k]), k


def test_torch_configuration_and_mode(torch):
    tm = torch.nn.LSTM(3, 4, 2, dropout=0.25, batch_first=True, dtype=torch.float64).eval()
    m = interop.from_torch(tm, backend="numpy")
    assert (m.dropout, m.batch_first, m.training, m.backend) == (0.25, True, False, "numpy")
    back = interop.to_torch(m.train())
    assert (back.dropout, back.batch_first, back.training, back.weight_hh_l1.dtype) == (
        0.25, True, True, torch.float64)


def test_torch_weights_are_not_shared(torch):
    tm = torch.nn.LSTM(3, 4, 2)
    m = interop.from_torch(tm)
    before = m.state_dict()
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(1.0)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())

    back = interop.to_torch(m)
    before_t = {k: v.clone() for k, v in back.state_dict().items()}
    for p in m.parameters().values():
        p += 1.0
    assert all(torch.equal(before_t[k], v) for k, v in back.state_dict().items())
    with torch.no_grad():
        back.weight_ih_l0.zero_()
    assert np.all(m.parameters()["weight_ih_l0"] != 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{"bidirectional": True}, {"proj_size": 2},
                                    {"bidirectional": True, "proj_size": 3, "num_layers": 2}])
def test_torch_bidirectional_and_projections_round_trip(torch, kwargs, dtype, record_error):
    tm = torch.nn.LSTM(3, 4, dtype=getattr(torch, np.dtype(dtype).name), **kwargs)
    m = interop.from_torch(tm)
    assert (m.bidirectional, m.proj_size) == (tm.bidirectional, tm.proj_size)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(dtype)
    with torch.no_grad():
        yt, (ht, ct) = tm(torch.from_numpy(x))
    y, (h, c) = m(x, grad=False)
    for what, ours, theirs in (("y", y, yt), ("h_n", h, ht), ("c_n", c, ct)):
        _close(record_error, "from_torch LSTM", dtype, ours, theirs, what)
    back = m.to_torch()
    assert (back.bidirectional, back.proj_size) == (tm.bidirectional, tm.proj_size)
    for k, v in back.state_dict().items():
        assert torch.equal(v, tm.state_dict()[k]), k


def test_torch_wrong_modules_are_refused(torch):
    with pytest.raises(TypeError, match="expected a torch.nn.LSTM or torch.nn.LSTMCell, got GRU"):
        interop.from_torch(torch.nn.GRU(3, 4))
    with pytest.raises(TypeError, match="expected a torch.nn.LSTM, got LSTMCell"):
        LSTM.from_torch(torch.nn.LSTMCell(3, 4))
    with pytest.raises(TypeError, match="expected a torch.nn.LSTMCell, got LSTM"):
        LSTMCell.from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="float32 or float64 parameters, got torch.float16"):
        interop.from_torch(torch.nn.LSTM(3, 4, dtype=torch.float16))
    with pytest.raises(TypeError, match="expected an lstm_c.LSTM or lstm_c.LSTMCell, got dict"):
        interop.to_torch({})


def test_to_torch_without_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match=r"pip install 'lstm-c\[torch\]'"):
        LSTM(3, 4).to_torch()
    with pytest.raises(ImportError, match=r"pip install 'lstm-c\[torch\]'"):
        interop.from_torch(object())


# torch has bidirectional and proj_size (converted above), not peepholes.
UNMAPPED = [("to_torch", {"peephole": True})] + [
    (convert, option) for convert in ("to_keras", "to_onnx", "to_onnx_model")
    for option in ({"bidirectional": True}, {"proj_size": 2}, {"peephole": True})]


@pytest.mark.parametrize("convert, option", UNMAPPED)
def test_models_with_unmapped_options_are_refused(convert, option):
    name, value = next(iter(option.items()))
    with pytest.raises(ValueError, match=f"{name}={value!r} has no equivalent in"):
        getattr(interop, convert)(LSTM(3, 4, **option))


# --- Keras layout, by its equations ----------------------------------------------------


def keras_eval(layers, x, h0, c0):
    """A stack of keras.layers.LSTM over x (B, T, I), from their get_weights() lists.

    z = x @ kernel + h @ recurrent_kernel + bias, split into i, f, c, o
    (keras/src/layers/rnn/lstm.py). Returns y (B, T, H) and per-layer h, c.
    """
    hs, cs = [], []
    for k, w in enumerate(layers):
        kernel, rk = w[0], w[1]
        bias = w[2] if len(w) > 2 and w[2] is not None else 0.0
        h, c, out = h0[k], c0[k], []
        for t in range(x.shape[1]):
            z = x[:, t] @ kernel + h @ rk + bias
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            out.append(h)
        x = np.stack(out, axis=1)
        hs.append(h)
        cs.append(c)
    return x, np.stack(hs), np.stack(cs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("L", [1, 3])
def test_to_keras_layout(L, bias, record_error):
    B, T, I, H = 3, 6, 4, 5
    m = LSTM(I, H, L, bias=bias, batch_first=True, dtype=np.float64, seed=L)
    rng = np.random.default_rng(1)
    x, h0, c0 = _rand(rng, (B, T, I)), _rand(rng, (L, B, H)), _rand(rng, (L, B, H))
    w = interop.to_keras(m)
    assert [[a.shape for a in layer] for layer in w] == (
        [[(I, 4 * H), (H, 4 * H)] + [(4 * H,)] * bias]
        + [[(H, 4 * H), (H, 4 * H)] + [(4 * H,)] * bias] * (L - 1))
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    for what, ours, want in zip(("y", "h_n", "c_n"), (y, h_n, c_n), keras_eval(w, x, h0, c0)):
        _close(record_error, "to_keras vs Keras equations", np.float64, ours, want, what)


@pytest.mark.parametrize("bias", ["all", "none", "mixed"])
def test_from_keras_layout(bias, record_error):
    B, T, I, H, L = 2, 5, 3, 4, 2
    rng = np.random.default_rng(2)
    w = [[_rand(rng, (I if k == 0 else H, 4 * H), scale=0.5), _rand(rng, (H, 4 * H), scale=0.5)]
         for k in range(L)]
    for k, layer in enumerate(w):
        if bias == "all" or (bias == "mixed" and k == 1):
            layer.append(_rand(rng, (4 * H,)))
        elif bias == "mixed":
            layer.append(None)  # a use_bias=False layer among biased ones
    m = interop.from_keras(w, backend="numpy")
    assert (m.dtype, m.batch_first, m.num_layers, m.bias) == (np.float64, True, L, bias != "none")
    if m.bias:
        assert not any(np.any(m.parameters()[f"bias_hh_l{k}"]) for k in range(L))
    x, h0, c0 = _rand(rng, (B, T, I)), _rand(rng, (L, B, H)), _rand(rng, (L, B, H))
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    for what, ours, want in zip(("y", "h_n", "c_n"), (y, h_n, c_n), keras_eval(w, x, h0, c0)):
        _close(record_error, "from_keras vs Keras equations", np.float64, ours, want, what)
    # and back: the same arrays (a missing bias comes back as zeros)
    for theirs, ours in zip(w, interop.to_keras(m)):
        for a, b in zip(theirs, ours):
            np.testing.assert_array_equal(b, 0 if a is None else a)


def test_from_keras_single_layer_and_float32():
    rng = np.random.default_rng(3)
    w = [_rand(rng, (3, 8), np.float32), _rand(rng, (2, 8), np.float32)]
    m = interop.from_keras(w, batch_first=False)
    assert (m.input_size, m.hidden_size, m.num_layers, m.bias, m.dtype, m.batch_first) == (
        3, 2, 1, False, np.float32, False)
    assert interop.from_keras(w, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("weights, match", [
    ([], "expected at least one layer"),
    ([[np.zeros((3, 8))]], r"expected \[kernel, recurrent_kernel, bias\], got 1 arrays"),
    ([[np.zeros((3, 7)), np.zeros((2, 8))]],
     r"kernel: expected shape \(input_size, 4 \* units\)"),
    ([[np.zeros((3, 8)), np.zeros((3, 8))]],
     r"recurrent_kernel: expected shape \(2, 8\), got \(3, 8\)"),
    ([[np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(4)]],
     r"bias: expected shape \(8,\), got \(4,\)"),
    ([[np.zeros((3, 8)), np.zeros((2, 8))], [np.zeros((3, 8)), np.zeros((2, 8))]],
     r"weights\[1\] kernel: expected shape \(2, 8\), got \(3, 8\)"),
])
def test_from_keras_refuses_bad_shapes(weights, match):
    with pytest.raises(ValueError, match=match):
        interop.from_keras(weights)


# --- ONNX layout, by its equations -----------------------------------------------------


def onnx_eval(layers, X, h0, c0):
    """ONNX LSTM nodes (forward, default activations) chained over X (T, B, I).

    From the operator spec: gates in order i, o, f, c; B = [Wb | Rb];
    Y is (T, num_directions, B, H), Y_h and Y_c (num_directions, B, H).
    Returns y (T, B, H) of the last node and Y_h, Y_c stacked (L, B, H).
    """
    Yh, Yc = [], []
    for k, layer in enumerate(layers):
        W, R = layer["W"][0], layer["R"][0]
        H = R.shape[1]
        B = layer["B"][0] if layer.get("B") is not None else np.zeros(8 * H)
        Wb, Rb = B[:4 * H], B[4 * H:]
        Ht, Ct, Y = h0[k], c0[k], []
        for Xt in X:
            gates = Xt @ W.T + Ht @ R.T + Wb + Rb
            i, o, f, c = np.split(gates, 4, axis=-1)
            Ct = _sigmoid(f) * Ct + _sigmoid(i) * np.tanh(c)
            Ht = _sigmoid(o) * np.tanh(Ct)
            Y.append(Ht[None])  # num_directions = 1
        Y = np.stack(Y)
        assert Y.shape == (X.shape[0], 1, X.shape[1], H)
        X = Y[:, 0]
        Yh.append(Ht)
        Yc.append(Ct)
    return X, np.stack(Yh), np.stack(Yc)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("L", [1, 3])
def test_to_onnx_layout(L, bias, record_error):
    T, B, I, H = 6, 3, 4, 5
    m = LSTM(I, H, L, bias=bias, dtype=np.float64, seed=L)
    rng = np.random.default_rng(4)
    x, h0, c0 = _rand(rng, (T, B, I)), _rand(rng, (L, B, H)), _rand(rng, (L, B, H))
    layers = interop.to_onnx(m)
    for k, layer in enumerate(layers):
        assert layer["W"].shape == (1, 4 * H, I if k == 0 else H)
        assert layer["R"].shape == (1, 4 * H, H)
        assert ("B" in layer) == bias and (not bias or layer["B"].shape == (1, 8 * H))
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    for what, ours, want in zip(("y", "h_n", "c_n"), (y, h_n, c_n), onnx_eval(layers, x, h0, c0)):
        _close(record_error, "to_onnx vs ONNX equations", np.float64, ours, want, what)


@pytest.mark.parametrize("bias", [True, False])
def test_from_onnx_layout(bias, record_error):
    T, B, I, H, L = 5, 2, 3, 4, 2
    rng = np.random.default_rng(5)
    layers = [{"W": _rand(rng, (1, 4 * H, I if k == 0 else H), scale=0.5),
               "R": _rand(rng, (1, 4 * H, H), scale=0.5)} for k in range(L)]
    if bias:
        for layer in layers:
            layer["B"] = _rand(rng, (1, 8 * H))
    layers[0]["P"] = np.zeros((1, 3 * H))  # zero peepholes are no peepholes
    m = interop.from_onnx(layers, batch_first=True)
    assert (m.dtype, m.batch_first, m.num_layers, m.bias) == (np.float64, True, L, bias)
    x, h0, c0 = _rand(rng, (T, B, I)), _rand(rng, (L, B, H)), _rand(rng, (L, B, H))
    y, (h_n, c_n) = m(x.transpose(1, 0, 2), (h0, c0), grad=False)
    want = onnx_eval(layers, x, h0, c0)
    for what, ours, w in zip(("y", "h_n", "c_n"), (y.transpose(1, 0, 2), h_n, c_n), want):
        _close(record_error, "from_onnx vs ONNX equations", np.float64, ours, w, what)
    for theirs, ours in zip(layers, interop.to_onnx(m)):  # and back, exactly
        assert set(ours) == {"W", "R"} | ({"B"} if bias else set())
        for n, a in ours.items():
            np.testing.assert_array_equal(a, theirs[n])


def test_onnx_and_torch_agree_on_the_gate_order():
    # The permutation, on labelled blocks: torch i f g o -> ONNX i o f c -> back.
    m = LSTM(1, 1, bias=True, dtype=np.float64)
    m.load_state_dict({"weight_ih_l0": [[0], [1], [2], [3]], "weight_hh_l0": np.zeros((4, 1)),
                       "bias_ih_l0": [0, 1, 2, 3], "bias_hh_l0": [4, 5, 6, 7]})
    (layer,) = interop.to_onnx(m)
    assert layer["W"].ravel().tolist() == [0, 3, 1, 2]  # i, o, f, c
    assert layer["B"].ravel().tolist() == [0, 3, 1, 2, 4, 7, 5, 6]
    (kernel, _, bias), = interop.to_keras(m)
    assert kernel.ravel().tolist() == [0, 1, 2, 3] and bias.tolist() == [4, 6, 8, 10]


def test_cells_convert_as_one_layer(record_error):
    B, I, H = 3, 4, 5
    cell = LSTMCell(I, H, dtype=np.float64, seed=12)
    rng = np.random.default_rng(12)
    x, h, c = _rand(rng, (B, I)), _rand(rng, (B, H)), _rand(rng, (B, H))
    h1, c1 = cell(x, (h, c), grad=False)
    _, hk, ck = keras_eval(interop.to_keras(cell), x[:, None], h[None], c[None])
    _, ho, co = onnx_eval(interop.to_onnx(cell), x[None], h[None], c[None])
    for what, ours, want in (("keras h", h1, hk[0]), ("keras c", c1, ck[0]),
                             ("onnx h", h1, ho[0]), ("onnx c", c1, co[0])):
        _close(record_error, "LSTMCell vs Keras / ONNX equations", np.float64, ours, want, what)


@pytest.mark.parametrize("layers, match", [
    ([], "expected at least one layer"),
    ([{"W": np.zeros((1, 8, 3))}], "expected a dict with W, R and optionally B, got keys"),
    ([{"W": np.zeros((2, 8, 3)), "R": np.zeros((2, 8, 2))}],
     r"\(num_directions = 1\), got \(2, 8, 3\)"),
    ([{"W": np.zeros((1, 8, 3)), "R": np.zeros((1, 8, 2)), "P": np.ones((1, 6))}], "peepholes"),
    ([{"W": np.zeros((1, 8, 3)), "R": np.zeros((1, 8, 3))}], r"R: expected shape \(1, 8, 2\)"),
    ([{"W": np.zeros((1, 8, 3)), "R": np.zeros((1, 8, 2)), "B": np.zeros((1, 8))}],
     r"B: expected shape \(1, 16\), got \(1, 8\)"),
])
def test_from_onnx_refuses_bad_layers(layers, match):
    with pytest.raises(ValueError, match=match):
        interop.from_onnx(layers)


# --- the real libraries, when installed ------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on torch: no tensorflow or jax
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras runs on {keras.backend.backend()}, these tests use torch")
    return keras


def _keras_stack(keras, weights, x, h0, c0, dtype):
    """Run keras.layers.LSTM layers set from `weights` over x (B, T, I)."""
    hs, cs = [], []
    for k, w in enumerate(weights):
        layer = keras.layers.LSTM(w[1].shape[0], return_sequences=True, return_state=True,
                                  use_bias=len(w) == 3, dtype=np.dtype(dtype).name)
        layer.build(x.shape)
        layer.set_weights(w)
        x, h, c = (keras.ops.convert_to_numpy(a) for a in layer(x, initial_state=[h0[k], c0[k]]))
        hs.append(h)
        cs.append(c)
    return x, np.stack(hs), np.stack(cs)


# Keras 3.15 on NumPy 2.4 warns about its own __array__; nothing of ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_real_keras(keras, bias, dtype, record_error):
    B, T, I, H, L = 3, 6, 4, 5, 2
    m = LSTM(I, H, L, bias=bias, batch_first=True, dtype=dtype, seed=8)
    rng = np.random.default_rng(8)
    x = _rand(rng, (B, T, I), dtype)
    h0, c0 = _rand(rng, (L, B, H), dtype), _rand(rng, (L, B, H), dtype)
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    want = _keras_stack(keras, interop.to_keras(m), x, h0, c0, dtype)
    for what, ours, w in zip(("y", "h_n", "c_n"), (y, h_n, c_n), want):
        _close(record_error, "to_keras vs keras", dtype, ours, w, what)

    # From a freshly initialised Keras layer (unit_forget_bias: a non-zero bias).
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True, use_bias=bias,
                              dtype=np.dtype(dtype).name)
    yk, hk, ck = (keras.ops.convert_to_numpy(a) for a in layer(x))
    m = interop.from_keras(layer.get_weights(), dtype=dtype)
    y, (h_n, c_n) = m(x, grad=False)
    for what, ours, w in zip(("y", "h_n", "c_n"), (y, h_n[0], c_n[0]), (yk, hk, ck)):
        _close(record_error, "from_keras vs keras", dtype, ours, w, what)


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _session(ort, model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("L", [1, 3])
def test_real_onnxruntime_runs_the_exported_model(ort, L, bias, batch_first, record_error):
    T, B, I, H = 6, 3, 4, 5
    dtype = np.float32  # onnxruntime's CPU LSTM kernel is float32 only
    m = LSTM(I, H, L, bias=bias, batch_first=batch_first, dropout=0.5 * (L > 1), dtype=dtype,
             seed=9).eval()
    rng = np.random.default_rng(9)
    x = _rand(rng, (B, T, I) if batch_first else (T, B, I), dtype)
    h0, c0 = _rand(rng, (L, B, H), dtype), _rand(rng, (L, B, H), dtype)
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    got = _session(ort, interop.to_onnx_model(m)).run(None, {"x": x, "h0": h0, "c0": c0})
    for what, ours, theirs in zip(("y", "h_n", "c_n"), (y, h_n, c_n), got):
        _close(record_error, "to_onnx_model vs onnxruntime", dtype, ours, theirs, what)


def test_real_onnxruntime_node_into_from_onnx(ort, record_error):
    # A hand-built LSTM node with random weights, independent of to_onnx_model.
    from onnx import TensorProto, helper, numpy_helper

    T, B, I, H = 7, 2, 3, 4
    rng = np.random.default_rng(10)
    layer = {"W": _rand(rng, (1, 4 * H, I), np.float32, 0.5),
             "R": _rand(rng, (1, 4 * H, H), np.float32, 0.5),
             "B": _rand(rng, (1, 8 * H), np.float32)}
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=H)
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "one_lstm", [helper.make_tensor_value_info("X", f, [T, B, I])],
        [helper.make_tensor_value_info("Y", f, [T, 1, B, H]),
         helper.make_tensor_value_info("Y_h", f, [1, B, H]),
         helper.make_tensor_value_info("Y_c", f, [1, B, H])],
        [numpy_helper.from_array(a, n) for n, a in layer.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = _rand(rng, (T, B, I), np.float32)
    Y, Y_h, Y_c = _session(ort, model).run(None, {"X": x})
    y, (h_n, c_n) = interop.from_onnx([layer])(x, grad=False)
    for what, ours, theirs in (("y", y, Y[:, 0]), ("h_n", h_n, Y_h), ("c_n", c_n, Y_c)):
        _close(record_error, "from_onnx vs onnxruntime", np.float32, ours, theirs, what)


@pytest.mark.parametrize("batch_first", [False, True])
def test_onnx_reference_runs_the_exported_model_float64(batch_first, record_error):
    # onnx's own NumPy evaluator of the spec, for the float64 onnxruntime lacks.
    reference = pytest.importorskip("onnx.reference")
    T, B, I, H, L = 5, 2, 3, 4, 2
    m = LSTM(I, H, L, batch_first=batch_first, dtype=np.float64, seed=11)
    rng = np.random.default_rng(11)
    x = _rand(rng, (B, T, I) if batch_first else (T, B, I))
    h0, c0 = _rand(rng, (L, B, H)), _rand(rng, (L, B, H))
    y, (h_n, c_n) = m(x, (h0, c0), grad=False)
    got = reference.ReferenceEvaluator(interop.to_onnx_model(m)).run(
        None, {"x": x, "h0": h0, "c0": c0})
    for what, ours, theirs in zip(("y", "h_n", "c_n"), (y, h_n, c_n), got):
        _close(record_error, "to_onnx_model vs onnx.reference", np.float64, ours, theirs, what)
