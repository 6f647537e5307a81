"""Weights in and out of PyTorch, Keras and ONNX.

lstm-c keeps torch's parameter layout, so torch needs only its configuration
read and its tensors copied; Keras and ONNX store the same LSTM differently
(transposed matrices, one bias, another gate order), and this module is the
one place that knows those layouts. Every converter copies: a converted model
never shares memory with its source.

torch's converters take everything torch has (bidirectional, proj_size);
Keras and ONNX cover the standard one-direction LSTM: sigmoid gates, tanh cell
and output activations, no peepholes, no clipping, no projection. Models with
other options are refused, never converted wrongly. recurrent_dropout, a
training setting and no weight, is not carried over. torch, keras and onnx are optional: each
is imported only by the functions that need it.
"""

import numpy as np

from lstm_c import _validate as check
from lstm_c.layers import LSTM, LSTMCell

TORCH_HINT = "pip install 'lstm-c[torch]'"

# ONNX orders the four gate blocks i, o, f, c; torch and lstm-c i, f, g, o.
# ONNX block j is torch block _IOFC[j]; torch block j is ONNX block _IFGO[j].
_IOFC = [0, 3, 1, 2]
_IFGO = [0, 2, 3, 1]


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError(f"this needs PyTorch, which is not installed: {TORCH_HINT}") from None
    return torch


def _check_model(model, kinds=(LSTM, LSTMCell), unsupported=("bidirectional", "proj_size",
                                                            "peephole"), target="this layout"):
    if not isinstance(model, kinds):
        names = " or ".join(f"lstm_c.{k.__name__}" for k in kinds)
        raise TypeError(f"model: expected an {names}, got {type(model).__name__}")
    # Options whose weights or equations the target does not have: refused,
    # never dropped silently.
    found = [f"{name}={getattr(model, name)!r}" for name in unsupported
             if getattr(model, name, False)]
    if found:
        raise ValueError(f"model: {', '.join(found)} has no equivalent in {target}")


def _layers(model):
    """The parameter name suffix of each layer: "_l0", "_l1", ... ("" for a cell).

    For one-direction models without projection (Keras and ONNX here)."""
    if isinstance(model, LSTMCell):
        return [""]
    return [f"_l{k}" for k in range(model.num_layers)]


def _blocks(a, order):
    """The four gate blocks of a (4H, ...) array, reordered."""
    H = a.shape[0] // 4
    return np.ascontiguousarray(a.reshape(4, H, *a.shape[1:])[order].reshape(a.shape))


# --- PyTorch -------------------------------------------------------------------------

def from_torch(module, *, backend="cython"):
    """An lstm_c.LSTM (or LSTMCell) copying a ``torch.nn.LSTM`` (or ``nn.LSTMCell``).

    The configuration (sizes, num_layers, bias, batch_first, dropout,
    bidirectional, proj_size), the dtype of the parameters (float32 or
    float64), the weights and the train/eval mode are copied. The torch
    module is only read.
    """
    return _from_torch(module, backend, None)


def _from_torch(module, backend, kind):
    """from_torch; kind (a class, or None for either) is what the caller asked for."""
    torch = _import_torch()
    torch_kinds = {LSTM: torch.nn.LSTM, LSTMCell: torch.nn.LSTMCell}
    bases = [k for k in torch_kinds if kind is None or issubclass(kind, k)]
    base = next((k for k in bases if isinstance(module, torch_kinds[k])), None)
    if base is None:
        want = " or ".join(f"torch.nn.{k.__name__}" for k in bases)
        raise TypeError(f"module: expected a {want}, got {type(module).__name__}")
    dtype = next(module.parameters()).dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"module: expected float32 or float64 parameters, got {dtype}")
    kind = kind or base
    if base is LSTM:
        model = kind(module.input_size, module.hidden_size, module.num_layers, bias=module.bias,
                     batch_first=module.batch_first, dropout=module.dropout, dtype=dtype,
                     backend=backend, bidirectional=module.bidirectional,
                     proj_size=module.proj_size)
    else:
        model = kind(module.input_size, module.hidden_size, bias=module.bias, dtype=dtype,
                     backend=backend)
    # getattr rather than state_dict(): it also gives the effective weight
    # of a parametrized module (e.g. weight norm), under torch's plain name.
    model.load_state_dict({name: getattr(module, name) for name in model.parameters()})
    return model.train(module.training)


def to_torch(model):
    """A new ``torch.nn.LSTM`` (or ``nn.LSTMCell``) with the model's configuration and weights.

    Also its dtype and train/eval mode; torch must be installed.
    """
    _check_model(model, unsupported=("peephole",), target="torch.nn.LSTM")
    torch = _import_torch()
    dtype = getattr(torch, model.dtype.name)
    if isinstance(model, LSTM):
        module = torch.nn.LSTM(model.input_size, model.hidden_size, model.num_layers,
                               bias=model.bias, batch_first=model.batch_first,
                               dropout=model.dropout, bidirectional=model.bidirectional,
                               proj_size=model.proj_size, dtype=dtype)
    else:
        module = torch.nn.LSTMCell(model.input_size, model.hidden_size, bias=model.bias,
                                   dtype=dtype)
    # state_dict() copies, and load_state_dict copies again into torch's own storage.
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return module.train(model.training)


# --- Keras ---------------------------------------------------------------------------
# keras.layers.LSTM (Keras 3, keras/src/layers/rnn/lstm.py, checked in 3.15.1):
# kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,); z = x @ kernel +
# h @ recurrent_kernel + bias is split into i, f, c, o in that order (the
# fused path, LSTMCell.call), which is torch's i, f, g, o. So the matrices
# are torch's transposed, and the one bias is torch's two added together.

def to_keras(model):
    """Per layer ``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]``, as ``get_weights()``.

    For a stack of ``keras.layers.LSTM(H)`` layers (default activations) with
    ``set_weights``; without a bias (bias=False) each list is
    ``[kernel, recurrent_kernel]``, as for use_bias=False.
    """
    _check_model(model, target="keras.layers.LSTM")
    p = model.state_dict()
    out = []
    for s in _layers(model):
        layer = [np.ascontiguousarray(p["weight_ih" + s].T),
                 np.ascontiguousarray(p["weight_hh" + s].T)]
        if model.bias:
            layer.append(p["bias_ih" + s] + p["bias_hh" + s])
        out.append(layer)
    return out


def from_keras(weights, *, batch_first=True, dropout=0.0, dtype=None, backend="cython"):
    """An lstm_c.LSTM from Keras LSTM weights: one layer per ``get_weights()`` list.

    weights: a list of ``[kernel, recurrent_kernel, bias]`` lists (bias None or
    absent for use_bias=False), or one such list for a single layer. Keras
    has one bias where torch has two: it goes to ``bias_ih`` and ``bias_hh``
    is zero. batch_first defaults to True, Keras' (batch, time, features);
    dtype None takes the first kernel's when it is float64, else float32.
    The Keras layers must have the default activations (sigmoid and tanh).
    """
    if len(weights) and hasattr(weights[0], "shape"):  # a single layer's list
        weights = [weights]
    if not len(weights):
        raise ValueError("weights: expected at least one layer, got none")
    layers = []
    for k, w in enumerate(weights):
        if not 2 <= len(w) <= 3:
            raise ValueError(f"weights[{k}]: expected [kernel, recurrent_kernel, bias], "
                             f"got {len(w)} arrays")
        kernel, rk = (check.to_numpy(a, f"weights[{k}]") for a in w[:2])
        bias = None if len(w) < 3 or w[2] is None else check.to_numpy(w[2], f"weights[{k}]")
        layers.append((kernel, rk, bias))
    kernel0 = layers[0][0]
    if kernel0.ndim != 2 or kernel0.shape[1] % 4:
        raise ValueError(f"weights[0] kernel: expected shape (input_size, 4 * units), "
                         f"got {kernel0.shape}")
    I, H = kernel0.shape[0], kernel0.shape[1] // 4
    if dtype is None:
        dtype = np.float64 if kernel0.dtype == np.float64 else np.float32
    has_bias = any(b is not None for _, _, b in layers)
    model = LSTM(I, H, len(layers), bias=has_bias, batch_first=batch_first, dropout=dropout,
                 dtype=dtype, backend=backend)
    state = {}
    for k, (kernel, rk, bias) in enumerate(layers):
        for what, a, shape in (("kernel", kernel, (I if k == 0 else H, 4 * H)),
                               ("recurrent_kernel", rk, (H, 4 * H))):
            check.check_shape(f"weights[{k}] {what}", a, shape)
        state[f"weight_ih_l{k}"] = kernel.T
        state[f"weight_hh_l{k}"] = rk.T
        if has_bias:
            if bias is not None:
                check.check_shape(f"weights[{k}] bias", bias, (4 * H,))
            state[f"bias_ih_l{k}"] = np.zeros(4 * H) if bias is None else bias
            state[f"bias_hh_l{k}"] = np.zeros(4 * H)
    model.load_state_dict(state)
    return model


# --- ONNX ----------------------------------------------------------------------------
# The LSTM operator (https://onnx.ai/onnx/operators/onnx__LSTM.html, and
# onnx.reference's op_lstm.py): W [num_directions, 4H, I], R [num_directions,
# 4H, H], B [num_directions, 8H] = [Wb | Rb], each in gate order i, o, f, c;
# torch's matrices with their gate blocks reordered, and its two biases.

def to_onnx(model):
    """Per layer a dict of the ONNX LSTM inputs W (1, 4H, I), R (1, 4H, H) and B (1, 8H).

    num_directions is 1. Without a bias (bias=False) B is left out, which
    ONNX reads as zeros. Default activations, no peepholes (P), no clip.
    """
    _check_model(model, target="the ONNX LSTM operator as converted here")
    p = model.state_dict()
    out = []
    for s in _layers(model):
        layer = {"W": _blocks(p["weight_ih" + s], _IOFC)[None],
                 "R": _blocks(p["weight_hh" + s], _IOFC)[None]}
        if model.bias:
            layer["B"] = np.concatenate([_blocks(p["bias_ih" + s], _IOFC),
                                         _blocks(p["bias_hh" + s], _IOFC)])[None]
        out.append(layer)
    return out


def from_onnx(layers, *, batch_first=False, dropout=0.0, dtype=None, backend="cython"):
    """An lstm_c.LSTM from a list of ONNX LSTM weight dicts {"W", "R", "B"}, one per layer.

    num_directions must be 1 (direction="forward"); B may be absent (zeros);
    a "P" (peepholes) other than zeros is refused. The nodes must use the
    default activations, no clip and input_forget=0: those are attributes,
    not weights, and are not seen here. dtype None takes W's when it is
    float64, else float32.
    """
    if not len(layers):
        raise ValueError("layers: expected at least one layer, got none")
    arrays = []
    for k, layer in enumerate(layers):
        if not hasattr(layer, "keys") or "W" not in layer or "R" not in layer:
            got = f"keys {sorted(layer)}" if hasattr(layer, "keys") else type(layer).__name__
            raise ValueError(f"layers[{k}]: expected a dict with W, R and optionally B, got {got}")
        a = {n: check.to_numpy(v, f"layers[{k}][{n!r}]") for n, v in layer.items()
             if v is not None}
        if "P" in a and np.any(a["P"]):
            raise ValueError(f"layers[{k}]: peepholes (P) are not supported by lstm-c")
        if a["W"].ndim != 3 or a["W"].shape[0] != 1:
            raise ValueError(f"layers[{k}] W: expected shape (1, 4 * hidden_size, input_size) "
                             f"(num_directions = 1), got {a['W'].shape}")
        arrays.append(a)
    W0 = arrays[0]["W"]
    if W0.shape[1] % 4:
        raise ValueError(f"layers[0] W: expected 4 * hidden_size rows, got shape {W0.shape}")
    I, H = W0.shape[2], W0.shape[1] // 4
    if dtype is None:
        dtype = np.float64 if W0.dtype == np.float64 else np.float32
    has_bias = any("B" in a for a in arrays)
    model = LSTM(I, H, len(arrays), bias=has_bias, batch_first=batch_first, dropout=dropout,
                 dtype=dtype, backend=backend)
    state = {}
    for k, a in enumerate(arrays):
        check.check_shape(f"layers[{k}] W", a["W"], (1, 4 * H, I if k == 0 else H))
        check.check_shape(f"layers[{k}] R", a["R"], (1, 4 * H, H))
        state[f"weight_ih_l{k}"] = _blocks(a["W"][0], _IFGO)
        state[f"weight_hh_l{k}"] = _blocks(a["R"][0], _IFGO)
        if has_bias:
            B = a.get("B", np.zeros((1, 8 * H)))
            check.check_shape(f"layers[{k}] B", B, (1, 8 * H))
            state[f"bias_ih_l{k}"] = _blocks(B[0, :4 * H], _IFGO)
            state[f"bias_hh_l{k}"] = _blocks(B[0, 4 * H:], _IFGO)
    model.load_state_dict(state)
    return model


def to_onnx_model(model, *, opset=17):
    """An ``onnx.ModelProto`` running the LSTM for inference (no dropout); needs ``onnx``.

    Inputs x (the model's layout), h0 and c0 (num_layers, B, H); outputs y,
    h_n and c_n, as ``model(x, (h0, c0))``. One ONNX LSTM node per layer.
    onnxruntime's LSTM kernel runs float32 only (1.32); onnx.reference runs
    float64 too.
    """
    _check_model(model, (LSTM,), target="the ONNX LSTM operator as converted here")
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("to_onnx_model needs the onnx package: pip install onnx") from None
    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    L, I, H = model.num_layers, model.input_size, model.hidden_size
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))

    x = "x"
    if model.batch_first:  # the nodes run time-major (layout=0), the most widely supported
        node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2])
        x = "x_tm"
    const("axis1", np.array([1], np.int64))
    for k, layer in enumerate(to_onnx(model)):
        # This layer's initial state: rows k:k+1 of h0 and c0.
        start = const(f"start{k}", np.array([k], np.int64))
        end = const(f"end{k}", np.array([k + 1], np.int64))
        for s in ("h0", "c0"):
            node("Slice", [s, start, end], [f"{s}_{k}"])
        bias = const(f"B{k}", layer["B"]) if "B" in layer else ""
        node("LSTM", [x, const(f"W{k}", layer["W"]), const(f"R{k}", layer["R"]), bias, "",
                      f"h0_{k}", f"c0_{k}"], [f"Y{k}", f"h_n{k}", f"c_n{k}"], hidden_size=H)
        # Y is (T, num_directions, B, H): drop the directions axis for the next layer.
        x = f"y{k}"
        node("Squeeze", [f"Y{k}", "axis1"], [x])
    if model.batch_first:
        node("Transpose", [x], ["y"], perm=[1, 0, 2])
    else:
        node("Identity", [x], ["y"])
    for s in ("h_n", "c_n"):
        node("Concat", [f"{s}{k}" for k in range(L)], [s], axis=0)
    xs = ["B", "T", I] if model.batch_first else ["T", "B", I]
    state = [L, "B", H]
    graph = helper.make_graph(
        nodes, "lstm_c",
        [helper.make_tensor_value_info(n, elem, shape)
         for n, shape in (("x", xs), ("h0", state), ("c0", state))],
        [helper.make_tensor_value_info(n, elem, shape)
         for n, shape in (("y", xs[:2] + [H]), ("h_n", state), ("c_n", state))],
        inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(onnx_model)
    return onnx_model
