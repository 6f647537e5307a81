"""NumPy reference for one LSTM layer: the math written plainly.

This module is the oracle every kernel is tested against. Its functions have
the same names, arguments and in/out semantics as the compiled engine
``lstm_c._lstm`` (documented in ``src/lstm_c/_lstm.pyx``); it is chosen with
``backend="numpy"``. It depends on NumPy only and can be imported on its own.

Notation
--------
T : number of time steps
B : batch size
I : input size
H : hidden size
x_t : input at step t, array of shape (B, I)
h_prev, c_prev : h_{t-1}, c_{t-1}, arrays of shape (B, H)
h_t, c_t : hidden and cell state after step t
gates : pre-activations, array of shape (B, 4H), gate order [i|f|g|o] as
    in PyTorch (input, forget, cell candidate, output)

Forward, per step::

    gates = x_t W_ih^T + h_prev W_hh^T + bias                       # 1a, 1b
    i, f, g, o = sig(gates_i), sig(gates_f), tanh(gates_g), sig(gates_o)  # 2
    c_t = f * c_prev + i * g                                        # 3a
    h_t = o * tanh(c_t)                                             # 3b

Backward runs the same steps in reverse (labels with a prime: ``# 3b'`` ...).
All arithmetic is done in the dtype of the inputs (float32 in, float32 math).

For comparison only, a plain tanh RNN (``rnn_forward``, ``rnn_backward``): the
baseline the long-time-lag tasks of ``lstm_c.tasks`` are measured against, as
in Hochreiter & Schmidhuber (1997). It has no engine counterpart. Per step::

    h_t = tanh(x_t W_ih^T + h_prev W_hh^T + bias)                    # r1
"""

import numpy as np

__all__ = ["forward_layer", "backward_layer", "rnn_forward", "rnn_backward"]


def _sigmoid(z):
    # With e = exp(-|z|) <= 1: 1 / (1 + e) for z >= 0, e / (1 + e) below. It
    # never overflows, keeps the dtype of z, and keeps its relative accuracy
    # in the negative tail, where (1 + tanh(z/2)) / 2 loses it (2e-4 at -30
    # in float64, 0 below -37).
    with np.errstate(under="ignore"):  # e underflowing to 0 is the right limit
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _running(batch_sizes, t, B):
    """(B, 1) bool: which rows are inside their sequence at step t (all without batch_sizes)."""
    if batch_sizes is None:
        return np.ones((B, 1), bool)
    return (np.arange(B) < batch_sizes[t])[:, None]


def forward_layer(x, w_ih, w_hh, bias, hs, cs, acts, tanh_c, training, threads=1,
                  batch_sizes=None, w_hr=None, ms=None, peephole=None, rec_mask=None):
    """Run one LSTM layer over a whole sequence.

    Parameters
    ----------
    x : array of shape (T, B, I)
        Inputs. IN.
    w_ih : array of shape (4H, I)
        Input-to-hidden weights, torch layout, gate order [i|f|g|o]. IN.
    w_hh : array of shape (4H, H)
        Hidden-to-hidden weights. IN.
    bias : array of shape (4H,)
        ``b_ih + b_hh`` (zeros when the module has no bias). IN.
    hs : array of shape (T + 1, B, H)
        IN/OUT. ``hs[0]`` holds h0 on entry; on exit ``hs[t + 1] = h_t``,
        so the layer output is ``hs[1:]``.
    cs : array of shape (T + 1, B, H) if training, else (1, B, H)
        IN/OUT. Training: ``cs[0]`` holds c0, on exit ``cs[t + 1] = c_t``.
        Inference: holds c0 on entry and c_T on exit (updated in place).
    acts : array of shape (T, B, 4H)
        OUT. Training: activations [i|f|g|o] of every step. Inference:
        scratch, contents unspecified on exit.
    tanh_c : array of shape (T, B, H)
        OUT. Training: ``tanh(c_t)`` of every step. Inference: not touched
        (any shape, e.g. (0, B, H)).
    training : bool
        Keep everything ``backward_layer`` needs.
    threads : int
        Accepted for the engine's signature; the reference runs on one.
    batch_sizes : int array of shape (T,), optional
        Sequences of different lengths, rows sorted longest first: step t
        runs rows [0, batch_sizes[t]). A row past its end has h = 0, keeps
        its c, and stores zero activations.
    w_hr : array of shape (P, H), optional
        A projection of h (torch's proj_size): h_t = m_t @ w_hr.T with
        m_t = o * tanh(c_t); h, hs and w_hh's columns are then P wide. IN.
    ms : array of shape (T, B, H) if training, else (1, B, H); with w_hr
        OUT. Training: m_t of every step; inference: scratch.
    peephole : array of shape (3H,), optional
        Peephole weights [p_i | p_f | p_o] (Gers & Schmidhuber): i and f see
        c_{t-1}, o sees c_t. IN.
    rec_mask : array of shape (B, P), optional
        Recurrent (variational) dropout, Gal & Ghahramani: the recurrent
        product reads h_{t-1} * rec_mask at every step. IN.

    Returns
    -------
    None
        Results are written into `hs`, `cs`, `acts` and `tanh_c`.
    """
    T, B, _ = x.shape
    H = acts.shape[2] // 4
    for t in range(T):
        run = _running(batch_sizes, t, B)
        h_prev = hs[t]
        c_prev = cs[t] if training else cs[0]
        gates = x[t] @ w_ih.T + bias                                    # 1a
        h_rec = h_prev if rec_mask is None else h_prev * rec_mask
        gates += h_rec @ w_hh.T                                         # 1b
        a_i, a_f, a_o = gates[:, 0:H], gates[:, H:2 * H], gates[:, 3 * H:4 * H]
        if peephole is not None:  # only then: no 0 * inf where there are none
            p_i, p_f, p_o = np.split(peephole, 3)
            a_i, a_f = a_i + p_i * c_prev, a_f + p_f * c_prev
        i = _sigmoid(a_i)                                               # 2
        f = _sigmoid(a_f)
        g = np.tanh(gates[:, 2 * H:3 * H])
        c_t = np.where(run, f * c_prev + i * g, c_prev)                 # 3a
        o = _sigmoid(a_o if peephole is None else a_o + p_o * c_t)
        acts[t] = np.where(run, np.concatenate((i, f, g, o), axis=1), 0)
        tc = np.where(run, np.tanh(c_t), 0)
        if w_hr is None:
            hs[t + 1] = np.where(run, o * tc, 0)                        # 3b
        else:
            m_t = np.where(run, o * tc, 0)
            ms[t if training else 0] = m_t
            hs[t + 1] = m_t @ w_hr.T                                    # 3c
        if training:
            cs[t + 1] = c_t
            tanh_c[t] = tc
        else:
            cs[0] = c_t


def backward_layer(x, w_ih, w_hh, hs, cs, acts, tanh_c, dy, dh_n, dc_n,
                   dx, dh0, dc0, dw_ih, dw_hh, db, dgates, threads=1, batch_sizes=None,
                   w_hr=None, ms=None, dw_hr=None, peephole=None, dpeephole=None,
                   rec_mask=None):
    """Backpropagate through one LSTM layer over a whole sequence.

    Parameters
    ----------
    x, w_ih, w_hh, hs, cs, acts, tanh_c : arrays
        IN, as left by ``forward_layer(..., training=True)``; shapes
        (T, B, I), (4H, I), (4H, H), (T + 1, B, H), (T + 1, B, H),
        (T, B, 4H), (T, B, H).
    dy : array of shape (T, B, H)
        dL/dy_t for every step, from outside the layer. IN.
    dh_n : array of shape (B, H)
        dL/dh_T from outside (zeros when not given). IN.
    dc_n : array of shape (B, H)
        dL/dc_T from outside. IN.
    dx : array of shape (T, B, I)
        OUT, overwritten.
    dh0 : array of shape (B, H)
        OUT, overwritten.
    dc0 : array of shape (B, H)
        OUT, overwritten.
    dw_ih : array of shape (4H, I)
        IN/OUT, the gradient is added (+=).
    dw_hh : array of shape (4H, H)
        IN/OUT, the gradient is added (+=).
    db : array of shape (4H,)
        IN/OUT, the gradient is added (+=); it is the gradient of both
        ``b_ih`` and ``b_hh``.
    dgates : array of shape (T, B, 4H)
        Scratch; on exit dL/d(pre-activation gates) of every step.
    threads, batch_sizes
        As given to ``forward_layer``. Past a row's end its dgates are 0 and
        its dh and dc pass through unchanged.
    w_hr, ms : as given to and left by ``forward_layer``, with a projection
    dw_hr : array of shape (P, H), with a projection
        IN/OUT, the gradient is added (+=).
    peephole, rec_mask : as given to ``forward_layer``
    dpeephole : array of shape (3H,), with peephole
        IN/OUT, the gradient is added (+=).

    Returns
    -------
    None
        Results are written into the OUT and IN/OUT arrays.
    """
    T, B, I = x.shape
    H, P = acts.shape[2] // 4, w_hh.shape[1]
    dh_next = dh_n.copy()
    dc_next = dc_n.copy()
    for t in range(T - 1, -1, -1):
        i = acts[t, :, 0:H]
        f = acts[t, :, H:2 * H]
        g = acts[t, :, 2 * H:3 * H]
        o = acts[t, :, 3 * H:4 * H]
        tc = tanh_c[t]
        c_prev = cs[t]
        run = _running(batch_sizes, t, B)
        dh = np.where(run, dy[t] + dh_next, 0)  # dy past a sequence's end is not read
        if w_hr is not None:
            dw_hr += dh.T @ ms[t]                                       # 3c'
            dh = dh @ w_hr
        da_o = dh * tc * o * (1 - o)
        dc_total = dc_next + dh * o * (1 - tc * tc)                     # 3b'
        if peephole is not None:
            p_i, p_f, p_o = np.split(peephole, 3)
            dc_total = dc_total + da_o * p_o
        dgates[t, :, 0:H] = dc_total * g * i * (1 - i)                  # 2'
        dgates[t, :, H:2 * H] = dc_total * c_prev * f * (1 - f)
        dgates[t, :, 2 * H:3 * H] = dc_total * i * (1 - g * g)
        dgates[t, :, 3 * H:4 * H] = da_o
        dgates[t] = np.where(run, dgates[t], 0)
        da_i, da_f = dgates[t, :, 0:H], dgates[t, :, H:2 * H]
        dc_prev = dc_total * f
        if peephole is not None:
            dc_prev = dc_prev + da_i * p_i + da_f * p_f
        dc_next = np.where(run, dc_prev, dc_next)                       # 3a'
        if peephole is not None:
            dpeephole += np.concatenate([(da_i * c_prev).sum(0), (da_f * c_prev).sum(0),
                                         (dgates[t, :, 3 * H:] * cs[t + 1]).sum(0)])
        dh_rec = dgates[t] @ w_hh                                       # 1b'
        if rec_mask is not None:
            dh_rec = dh_rec * rec_mask
        dh_next = np.where(run, dh_rec, dh_next)
    dh0[...] = dh_next
    dc0[...] = dc_next
    dG = dgates.reshape(T * B, 4 * H)                                   # 1a'
    dx[...] = (dG @ w_ih).reshape(T, B, I)
    dw_ih += dG.T @ x.reshape(T * B, I)
    h_rec = hs[:T] if rec_mask is None else hs[:T] * rec_mask
    dw_hh += dG.T @ h_rec.reshape(T * B, P)
    db += dG.sum(axis=0)


def rnn_forward(x, w_ih, w_hh, bias, h0):
    """Run a plain tanh RNN layer over a whole sequence (for comparison only).

    Parameters
    ----------
    x : array of shape (T, B, I)
        Inputs. IN.
    w_ih : array of shape (H, I)
        Input-to-hidden weights, torch layout (as ``torch.nn.RNN``). IN.
    w_hh : array of shape (H, H)
        Hidden-to-hidden weights. IN.
    bias : array of shape (H,)
        ``b_ih + b_hh``. IN.
    h0 : array of shape (B, H)
        Initial hidden state. IN.

    Returns
    -------
    hs : array of shape (T + 1, B, H), in the dtype of x
        ``hs[0] = h0`` and ``hs[t + 1] = h_t``, so the layer output is
        ``hs[1:]``; ``rnn_backward`` takes it as is.
    """
    T, B, _ = x.shape
    hs = np.empty((T + 1, B, w_hh.shape[0]), x.dtype)
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = np.tanh(x[t] @ w_ih.T + hs[t] @ w_hh.T + bias)     # r1
    return hs


def rnn_backward(x, w_ih, w_hh, hs, dy, dh_n=None):
    """Backpropagate through a plain tanh RNN layer (for comparison only).

    Parameters
    ----------
    x, w_ih, w_hh : arrays
        IN, as given to ``rnn_forward``; shapes (T, B, I), (H, I), (H, H).
    hs : array of shape (T + 1, B, H)
        IN, as returned by ``rnn_forward``.
    dy : array of shape (T, B, H)
        dL/dy_t for every step, from outside the layer. IN.
    dh_n : array of shape (B, H), optional
        dL/dh_T from outside (zeros when None). IN.

    Returns
    -------
    dx : array of shape (T, B, I)
    dh0 : array of shape (B, H)
    dw_ih : array of shape (H, I)
    dw_hh : array of shape (H, H)
    db : array of shape (H,)
        The gradient of both ``b_ih`` and ``b_hh``.
    """
    T, B, I = x.shape
    H = w_hh.shape[0]
    da = np.empty((T, B, H), x.dtype)  # dL/d(pre-activation) of every step
    dh_next = np.zeros((B, H), x.dtype) if dh_n is None else dh_n.copy()
    for t in range(T - 1, -1, -1):
        dh = dy[t] + dh_next
        da[t] = dh * (1 - hs[t + 1] * hs[t + 1])                        # r1' (tanh)
        dh_next = da[t] @ w_hh                                          # r1' (h_prev)
    dA = da.reshape(T * B, H)
    dx = (dA @ w_ih).reshape(T, B, I)
    dw_ih = dA.T @ x.reshape(T * B, I)
    dw_hh = dA.T @ hs[:T].reshape(T * B, H)
    db = dA.sum(axis=0)
    return dx, dh_next, dw_ih, dw_hh, db
