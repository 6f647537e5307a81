"""SequenceModel: an LSTM stack and a linear head, with one output per sequence or per step.

The network behind ``LSTMRegressor`` and ``LSTMClassifier``::

    y, (h_n, c_n) = lstm(x, lengths=lengths)             x (T, B, F), time-major
    one per sequence:  f = h_n of the last layer          (B, D*H)   # its last step
    one per step:      f = y                              (T, B, D*H)
    z = f W^T + b                                         (..., k)

With ``bidirectional`` the last layer's two h_n are concatenated, forward
(after each sequence's last step) then backward (after its first), as with
torch's ``torch.cat((h_n[-2], h_n[-1]), 1)``.

Losses, means over the rows that count (every sequence, or every step inside
its sequence; padding counts for nothing):

- ``"mse"``: mean over rows and the k outputs of (z - t)^2, t real (rows, k);
- ``"cross_entropy"``: mean over rows of -log softmax(z)[t], t class ids.
"""

import numpy as np

from lstm_c.layers import LSTM

__all__ = ["SequenceModel", "LOSSES"]

LOSSES = ("mse", "cross_entropy")


class SequenceModel:
    """An LSTM (``lstm_c.LSTM``) with a linear head ``head.weight`` (k, D*H), ``head.bias`` (k,).

    Parameters
    ----------
    input_size, output_size : int
        F features per step in; k outputs (regression targets, or classes).
    hidden_size, num_layers, bidirectional, dropout, forget_bias, dtype
        As ``lstm_c.LSTM``.
    per_step : bool
        One output per step (True) or per sequence (False).
    loss : {"mse", "cross_entropy"}
    rng : numpy.random.Generator
        Draws the LSTM's seed and the head's initial weights, torch's
        ``nn.Linear`` init U(-1/sqrt(D*H), 1/sqrt(D*H)).

    Attributes
    ----------
    lstm : lstm_c.LSTM
    grads : dict
        Same keys as ``parameters()``; ``backward`` adds to them.
    """

    def __init__(self, input_size, output_size, hidden_size, num_layers, bidirectional,
                 dropout, forget_bias, dtype, per_step, loss, rng):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.per_step, self.loss_name = bool(per_step), loss
        self.lstm = LSTM(input_size, hidden_size, num_layers, dropout=dropout, dtype=dtype,
                         seed=int(rng.integers(2**31)), bidirectional=bidirectional,
                         forget_bias=forget_bias)
        self.dtype = self.lstm.dtype
        width = self.lstm.num_directions * hidden_size
        bound = 1.0 / np.sqrt(width)
        self.head = {"weight": rng.uniform(-bound, bound, (output_size, width)).astype(self.dtype),
                     "bias": rng.uniform(-bound, bound, output_size).astype(self.dtype)}
        self._params = {"lstm." + k: v for k, v in self.lstm.parameters().items()}
        self._params.update({"head." + k: v for k, v in self.head.items()})
        self.grads = {"lstm." + k: v for k, v in self.lstm.grads.items()}
        self.grads.update({"head." + k: np.zeros_like(v) for k, v in self.head.items()})
        self._saved = None

    def parameters(self):
        """Dict name -> array (``lstm.<torch name>``, ``head.weight``, ``head.bias``), updated in place."""
        return self._params

    def state_dict(self):
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state):
        for k, v in state.items():
            self._params[k][...] = v

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode=True):
        self.lstm.train(mode)
        return self

    def _features(self, x, lengths, grad):
        """The head's input: (B, D*H) per sequence, or (T, B, D*H) per step."""
        y, (h_n, _) = self.lstm.forward(x, grad=grad, lengths=lengths)
        if self.per_step:
            return y
        D = self.lstm.num_directions
        return h_n[-1] if D == 1 else np.concatenate((h_n[-2], h_n[-1]), axis=1)

    def outputs(self, x, lengths=None):
        """The head's outputs z for x (T, B, F), inference: (B, k), or (T, B, k) per step."""
        f = self._features(x, lengths, grad=False)
        return f @ self.head["weight"].T + self.head["bias"]

    def loss(self, x, target, lengths=None, valid=None, grad=True):
        """The mean loss of predicting `target` from x (T, B, F), a float.

        target: (B, k) floats or (B,) class ids per sequence; (T, B, k) or
        (T, B) per step, where `valid` (T, B) bool marks the steps that count
        (None: all). With grad, keeps what ``backward`` needs.
        """
        f = self._features(x, lengths, grad)
        z = f @ self.head["weight"].T + self.head["bias"]
        k = z.shape[-1]
        z2, f2 = z.reshape(-1, k), f.reshape(-1, f.shape[-1])
        # Each row's share of the mean: 1 / (rows that count), 0 on padding.
        rows = z2.shape[0] if valid is None else int(valid.sum())
        weight = (np.full(z2.shape[0], 1.0 / rows, self.dtype) if valid is None
                  else valid.reshape(-1).astype(self.dtype) / self.dtype.type(rows))
        if self.loss_name == "mse":
            diff = z2 - target.reshape(-1, k)
            value = float((diff * diff).sum(axis=1, dtype=np.float64) @ weight) / k
            dz = diff * (weight[:, None] * self.dtype.type(2.0 / k)) if grad else None
        else:
            ids = target.reshape(-1)
            picked = np.arange(len(ids)), ids
            z2 = z2 - z2.max(axis=1, keepdims=True)  # a stable softmax
            p = np.exp(z2)
            s = p.sum(axis=1, keepdims=True)
            value = float((np.log(s[:, 0]) - z2[picked]).astype(np.float64) @ weight)
            dz = None
            if grad:
                p /= s
                p[picked] -= 1
                dz = p * weight[:, None]
        if grad:
            self._saved = (f2, dz, f.shape, x.shape[:2])
        return value

    def backward(self):
        """Add the gradients of the last ``loss`` to ``self.grads``."""
        if self._saved is None:
            raise ValueError("backward() needs a loss(...) first")
        f2, dz, f_shape, (T, B) = self._saved
        self._saved = None
        W = self.head["weight"]
        self.grads["head.weight"] += dz.T @ f2
        self.grads["head.bias"] += dz.sum(axis=0)
        df = (dz @ W).reshape(f_shape)
        lstm = self.lstm
        if self.per_step:
            lstm.backward(df)
            return
        D, H = lstm.num_directions, lstm.hidden_size
        # Only the last layer's h_n fed the head; y fed nothing.
        dy = np.zeros((T, B, D * H), self.dtype)
        dh_n = np.zeros((lstm.num_layers * D, B, H), self.dtype)
        dh_n[-D:] = df.reshape(B, D, H).transpose(1, 0, 2)
        lstm.backward(dy, (dh_n, np.zeros_like(dh_n)))
