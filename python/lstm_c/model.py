"""CharLM: a character language model (embedding -> LSTM stack -> linear -> softmax).

The LSTM stack is ``lstm_c.LSTM``; everything around it is NumPy, written so
that it never dominates a training step: one GEMM for the output layer over
all T*B rows, one for its weight gradient, one for the gradient flowing back
into the LSTM, a single ``exp`` pass for the softmax, float32 throughout when
the model is float32, and the embedding gradient as a sorted segment sum
(``np.add.reduceat``) rather than a scatter-add.

Notation
--------
T : steps per batch (truncated-BPTT length)
B : batch size
N : T * B, the rows of the output layer
V : vocabulary size
E : embedding size
H : hidden size
L : number of LSTM layers

Forward::

    e = embed.weight[x]                       (T, B, E)     # 1
    y, (h_n, c_n) = lstm(e, (h0, c0))         (T, B, H)     # 2
    z = y W_head^T + b_head                   (N, V)        # 3
    loss = mean_n [logsumexp(z_n) - z_n[y_n]]               # 4

Backward (truncated BPTT: the carried state is a constant, so nothing flows
into h0, c0 and nothing comes back from h_n, c_n)::

    dz = (softmax(z) - onehot(y)) / N                       # 4'
    dW_head += dz^T y,  db_head += sum_n dz,  dy = dz W_head # 3'
    de = lstm.backward(dy)                                  # 2'
    d embed.weight[v] += sum of de over the positions with x == v   # 1'
"""


import numpy as np

from lstm_c import _validate as check
from lstm_c.layers import LSTM, Workspace, dropout_mask

__all__ = ["CharLM", "BITS_PER_NAT"]

BITS_PER_NAT = 1.0 / np.log(2.0)
"""Multiply a loss in nats per character by this to get bits per character."""


def _ids(value, name, vocab_size, ndim, hint):
    """Integer ids as an intp array of `ndim` dims, every id in [0, vocab_size). Always a copy."""
    arr = check.to_numpy(value, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of symbol ids, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {hint}, "
                         f"got {arr.ndim}-D shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one id, got shape {arr.shape}")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name}: ids must be in [0, {vocab_size}) (vocab_size {vocab_size}), "
                         f"got {int(bad)}")
    return arr.astype(np.intp)  # a private copy: the caller may reuse its array


class CharLM:
    """A character-level language model: embedding, LSTM stack, linear head, softmax.

    Parameters
    ----------
    vocab_size : int
        V, the number of symbols.
    hidden_size : int, default 256
        H, the LSTM's hidden size.
    num_layers : int, default 2
        L, the number of stacked LSTM layers.
    embed_size : int, default 64
        E, the width of the embedding.
    dropout : float in [0, 1), default 0.0
        Dropout in training mode, where char-rnn has it: between LSTM layers
        (the LSTM's own) and on the last layer's output, before the head.
        There is none on the embedding.
    dtype : {np.float32, np.float64}, default np.float32
    seed : int or None
        Seeds the initial weights and the dropout masks.
    backend : {"cython", "numpy"}, default "cython"
        The LSTM engine: compiled, or the NumPy reference.

    Attributes
    ----------
    lstm : lstm_c.LSTM
    grads : dict name -> array
        Same keys and shapes as ``parameters()``; ``backward`` adds to them.
    training : bool

    Notes
    -----
    Initialisation follows torch: ``embed.weight`` ~ N(0, 1) (``nn.Embedding``),
    the LSTM and ``head`` ~ U(-1/sqrt(H), 1/sqrt(H)) (``nn.LSTM``, ``nn.Linear``).
    Parameter names are torch's, so a state dict loads into ``nn.Embedding`` +
    ``nn.LSTM`` + ``nn.Linear`` modules named ``embed``, ``lstm``, ``head``.

    Examples
    --------
    >>> m = CharLM(vocab_size=65, hidden_size=128, seed=0)
    >>> x = np.zeros((50, 32), np.int32); y = np.ones((50, 32), np.int32)
    >>> loss, state = m.forward(x, y)   # mean nats per character
    >>> m.backward()
    >>> loss, state = m.forward(x, y, state)   # carry the state (truncated BPTT)
    """

    def __init__(self, vocab_size, hidden_size=256, num_layers=2, embed_size=64, dropout=0.0,
                 dtype=np.float32, seed=None, backend="cython"):
        self.vocab_size = check.positive_int("vocab_size", vocab_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        self.num_layers = check.positive_int("num_layers", num_layers)
        self.embed_size = check.positive_int("embed_size", embed_size)
        self.dtype = check.float_dtype(dtype)
        if seed is not None and (isinstance(seed, (bool, np.bool_))
                                 or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        # The LSTM checks dropout and backend and names them in its messages.
        self.lstm = LSTM(self.embed_size, self.hidden_size, self.num_layers, dropout=dropout,
                         dtype=self.dtype, backend=backend, seed=self.seed)
        self.dropout = self.lstm.dropout
        self.backend = backend

        # The LSTM uses children 0 and 1 of SeedSequence(seed); these are 2, 3 and 4.
        embed_seq, head_seq, dropout_seq = np.random.SeedSequence(self.seed).spawn(5)[2:]
        self._dropout_rng = np.random.default_rng(dropout_seq)
        V, E, H = self.vocab_size, self.embed_size, self.hidden_size
        k = 1.0 / np.sqrt(H)
        head_rng = np.random.default_rng(head_seq)
        self._params = {"embed.weight": np.random.default_rng(embed_seq)
                        .standard_normal((V, E)).astype(self.dtype)}
        for name, p in self.lstm.parameters().items():
            self._params["lstm." + name] = p
        self._params["head.weight"] = head_rng.uniform(-k, k, (V, H)).astype(self.dtype)
        self._params["head.bias"] = head_rng.uniform(-k, k, V).astype(self.dtype)
        self.grads = {}
        for name, p in self._params.items():
            if name.startswith("lstm."):
                self.grads[name] = self.lstm.grads[name[len("lstm."):]]
            else:
                self.grads[name] = np.zeros_like(p)
        self.training = True
        self._saved = None
        self._buffers = Workspace(self.dtype)  # scratch kept while its shape repeats

    # ------------------------------------------------------------------ bookkeeping

    def __repr__(self):
        return (f"CharLM(vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, embed_size={self.embed_size}, "
                f"dropout={self.dropout}, dtype={self.dtype.name}, backend={self.backend!r})")

    def config(self):
        """Everything needed to rebuild this model: ``CharLM(**m.config())``.

        Returns
        -------
        dict
            JSON-able: ints, a float, strings and None.
        """
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "embed_size": self.embed_size,
                "dropout": self.dropout, "dtype": self.dtype.name, "seed": self.seed,
                "backend": self.backend}

    def parameters(self):
        """Dict name -> array: the parameters themselves (optimizers update them in place).

        Keys: ``embed.weight`` (V, E); ``lstm.weight_ih_l{k}`` (4H, E or H),
        ``lstm.weight_hh_l{k}`` (4H, H), ``lstm.bias_ih_l{k}``, ``lstm.bias_hh_l{k}``
        (4H,) for k < L; ``head.weight`` (V, H); ``head.bias`` (V,).
        """
        return self._params

    def state_dict(self):
        """Dict name -> a copy of each parameter (keys as ``parameters()``)."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters in from arrays (or anything np.asarray takes, torch tensors too).

        The keys must be exactly those of ``state_dict()``, the shapes equal and
        the values finite. Nothing changes unless every entry is valid.
        """
        check.load_parameters(self._params, state_dict, "CharLM", self.dtype)

    def zero_grad(self):
        """Set every gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode=True):
        """Training mode (dropout on) or, with ``mode=False``, evaluation mode. Returns self."""
        self.training = check.flag("mode", mode)
        self.lstm.train(self.training)
        return self

    def eval(self):
        """Evaluation mode: no dropout. Returns self."""
        return self.train(False)

    def rng_state(self):
        """The dropout generators' states (JSON-able), to resume a training run exactly."""
        return {"lstm": self.lstm.rng_state(),
                "output": self._dropout_rng.bit_generator.state}

    def set_rng_state(self, state):
        """Restore a state from ``rng_state()``."""
        if not isinstance(state, dict) or set(state) != {"lstm", "output"}:
            raise ValueError("rng state: expected a dict with keys 'lstm' and 'output' "
                             "(from CharLM.rng_state())")
        self.lstm.set_rng_state(state["lstm"])
        try:
            self._dropout_rng.bit_generator.state = state["output"]
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"rng state: not a state of this generator ({e})") from None

    def init_state(self, batch_size):
        """The zero state (h, c), each an array of shape (L, batch_size, H)."""
        B = check.positive_int("batch_size", batch_size)
        shape = (self.num_layers, B, self.hidden_size)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def _state(self, state, B):
        """Validate a carried state (h, c); returns arrays of shape (L, B, H), maybe not copies."""
        shape = (self.num_layers, B, self.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state: expected a pair (h, c) of arrays of shape {shape}, "
                            f"got {type(state).__name__}")
        out = []
        for i, label in enumerate("hc"):
            arr = check.as_array(state[i], f"state[{i}] ({label})", self.dtype)
            check.check_shape(f"state {label}", arr, shape, " (num_layers, batch, hidden_size)")
            out.append(arr)
        return out

    # ------------------------------------------------------------------ training path

    def forward(self, x, y, state=None, grad=True):
        """Mean cross-entropy of predicting `y` from `x`, and the state to carry on.

        Parameters
        ----------
        x : int array of shape (T, B)
            Input ids in [0, V).
        y : int array of shape (T, B)
            Target ids in [0, V) (for char-rnn batches, x shifted by one).
        state : pair (h0, c0) of arrays of shape (L, B, H), optional
            The state carried from the previous batch; zeros when None. It is
            treated as a constant: ``backward`` stops there (truncated BPTT).
        grad : bool, default True
            Keep what ``backward`` needs. False is the evaluation path; it
            leaves the saved state of an earlier ``forward(grad=True)`` alone.

        Returns
        -------
        loss : float
            Mean cross-entropy over the T*B predictions, in nats per character
            (times ``BITS_PER_NAT`` for bits).
        state : pair (h_n, c_n) of arrays of shape (L, B, H)
            New arrays the caller owns, to pass as the next batch's `state`.
        """
        grad = check.flag("grad", grad)
        x = _ids(x, "x", self.vocab_size, 2, "(T, B) of ids")
        y = _ids(y, "y", self.vocab_size, 2, "(T, B) of ids")
        if y.shape != x.shape:
            raise ValueError(f"y: expected the shape of x {x.shape} (T, B), got {y.shape}")
        T, B = x.shape
        N, V = T * B, self.vocab_size
        hx = None if state is None else self._state(state, B)

        emb = np.take(self._params["embed.weight"], x, axis=0)                 # 1
        out, (h_n, c_n) = self.lstm.forward(emb, hx, grad=grad)               # 2
        Y = out.reshape(N, self.hidden_size)
        mask = None
        if self.training and self.dropout > 0:  # char-rnn's dropout before the decoder
            mask = dropout_mask(self._dropout_rng, (T, B, self.hidden_size), self.dropout,
                                self.dtype, self.lstm.batch_share).reshape(Y.shape)
            Y = Y * mask
        # z is reused between calls; an evaluation forward gets its own, so the
        # dz that backward reads survives it.
        z = self._buffers.get("z" if grad else "z_eval", (N, V))
        np.dot(Y, self._params["head.weight"].T, out=z)                       # 3
        z += self._params["head.bias"]
        rows = np.arange(N)
        z -= z.max(axis=1, keepdims=True)                                      # 4: stable
        picked = z[rows, y.ravel()]             # z_n[y_n] - max_n
        np.exp(z, out=z)                        # the one exp pass
        s = z.sum(axis=1)                       # sum_v exp(z_nv - max_n)
        loss = (np.log(s).sum(dtype=np.float64) - picked.sum(dtype=np.float64)) / N
        if grad:
            # dz = (softmax - onehot) / N, in place                            # 4'
            np.reciprocal(s, out=s)
            s *= 1.0 / N
            z *= s[:, None]
            z[rows, y.ravel()] -= 1.0 / N
            self._saved = (x, Y, z, mask)
        return float(loss), (h_n.copy(), c_n.copy())

    def backward(self):
        """Add the gradients of the last ``forward(grad=True)``'s loss to ``self.grads``.

        The carried state is a constant (truncated BPTT); ``dropout`` masks are
        those of that forward.
        """
        if self._saved is None:
            raise ValueError("backward() needs a forward(x, y, grad=True) first; "
                             "none has run since this model was made")
        x, Y, dz, mask = self._saved
        T, B = x.shape
        N, V, H, E = T * B, self.vocab_size, self.hidden_size, self.embed_size
        W = self._params["head.weight"]
        dW = self._buffers.get("dW_head", (V, H))
        np.dot(dz.T, Y, out=dW)                                                # 3'
        self.grads["head.weight"] += dW
        self.grads["head.bias"] += dz.sum(axis=0)
        dy = self._buffers.get("dy", (T, B, H))
        np.dot(dz, W, out=dy.reshape(N, H))
        if mask is not None:
            dy *= mask.reshape(T, B, H)
        de, _ = self.lstm.backward(dy)                                         # 2'
        # 1': segment sums of de over equal ids (sorted), one row update per
        # distinct id; ~5x faster than np.add.at and exact for repeated ids.
        ids = x.ravel()
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        sums = np.add.reduceat(de.reshape(N, E)[order], starts, axis=0)
        self.grads["embed.weight"][sorted_ids[starts]] += sums

    # ------------------------------------------------------------------ inference path

    def logits(self, x, state=None):
        """The next-symbol logits after every position of `x` (inference, nothing saved).

        Parameters
        ----------
        x : int array of shape (T, B)
            Input ids in [0, V).
        state : pair (h0, c0) of arrays of shape (L, B, H), optional
            Zeros when None.

        Returns
        -------
        logits : array of shape (T, B, V)
            Unnormalised log-probabilities; ``logits[t]`` predicts ``x[t + 1]``.
        state : pair (h_n, c_n) of arrays of shape (L, B, H)
        """
        x = _ids(x, "x", self.vocab_size, 2, "(T, B) of ids")
        T, B = x.shape
        hx = None if state is None else self._state(state, B)
        emb = np.take(self._params["embed.weight"], x, axis=0)
        out, (h_n, c_n) = self.lstm.forward(emb, hx, grad=False)
        z = np.dot(out.reshape(T * B, self.hidden_size), self._params["head.weight"].T)
        z += self._params["head.bias"]
        return z.reshape(T, B, self.vocab_size), (h_n.copy(), c_n.copy())

    def step(self, ids, state, frozen=None):
        """One step of inference, the fast path for sampling.

        The LSTM's inference forward over one step: no dropout, whatever the
        mode, and nothing saved for backward.

        Parameters
        ----------
        ids : int array of shape (B,)
            The current symbol of each sequence.
        state : pair (h, c) of arrays of shape (L, B, H)
            From ``init_state(B)``, ``forward`` or a previous ``step``; not modified.
        frozen : FrozenLSTM, optional
            ``self.lstm.freeze()``, made once for many steps (as ``sample.generate``
            does): runs the step on weights packed once instead of per call.

        Returns
        -------
        logits : array of shape (B, V)
            Unnormalised log-probabilities of the next symbol.
        state : pair (h, c) of arrays of shape (L, B, H)
            New arrays the caller owns.
        """
        ids = _ids(ids, "ids", self.vocab_size, 1, "(B,) of ids")
        h0, c0 = self._state(state, ids.shape[0])
        x = self._params["embed.weight"][ids][None]  # (1, B, E)
        if frozen is not None:
            y, state = frozen(x, (h0, c0))
        else:
            training = self.lstm.training
            self.lstm.training = False  # no dropout, and no draw from its generator
            try:
                y, state = self.lstm.forward(x, (h0, c0), grad=False)
            finally:
                self.lstm.training = training
        logits = np.dot(y[0], self._params["head.weight"].T)
        logits += self._params["head.bias"]
        return logits, state
