"""LSTM and LSTMCell: the torch.nn.LSTM API over NumPy arrays.

Parameters have torch's names, shapes, gate order [i|f|g|o] and default
initialisation, so a state dict moves between torch and lstm-c unchanged.
This layer validates and converts inputs once, owns parameters, gradients and
reusable workspaces, and makes one engine call per layer: the compiled engine
(`lstm_c._lstm`) or, with ``backend="numpy"``, the NumPy reference, which has
the same functions and signatures.
"""

import contextlib
import functools
import numbers
import threading

import numpy as np

from lstm_c import _lstm, _threads, reference
from lstm_c import lengths as seq_lengths
from lstm_c import _validate as check

BACKENDS = {"cython": _lstm, "numpy": reference}


def _engine(backend):
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
    return BACKENDS[backend]


def _refuse(model):
    name = type(model).__name__
    shared = " (LSTM.freeze()'s FrozenLSTM may be shared)" if name == "LSTM" else ""
    raise RuntimeError(
        f"this {name} is in use by another thread: it keeps its last forward's state for "
        f"backward, so it runs one call at a time; use one model per thread, or a lock "
        f"around its calls{shared}")


def _one_thread_at_a_time(method):
    """Refuse a call while another thread is inside this model's forward or backward.

    A model keeps the forward's saved state, its workspaces and its dropout
    generator on itself, so two calls at once would silently corrupt each
    other. The check is a non-blocking acquire of a re-entrant lock (the same
    thread may nest calls, as trace() does). The forwards, the calls made per
    step, do the same inline: this wrapper's *args, **kwargs cost about 0.5 us more.
    """
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        in_use = self._in_use
        if not in_use.acquire(False):
            _refuse(self)
        try:
            return method(self, *args, **kwargs)
        finally:
            in_use.release()
    return guarded


class Workspace:
    """Scratch buffers kept between calls while their shape stays the same."""

    def __init__(self, dtype):
        self.dtype = dtype
        self._buffers = {}

    def get(self, key, shape):
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape, self.dtype)
            self._buffers[key] = buf
        return buf


def dropout_mask(rng, shape, rate, dtype, share=None):
    """A dropout mask of `shape` (batch on axis -2): 1 / (1 - rate) where kept, else 0.

    With ``share = (lo, hi, B)`` the caller runs rows lo:hi of a batch of B
    (one process of a data-parallel run): the mask is drawn for all B rows and
    these are kept, so it equals the mask of one process running the whole
    batch, and every process's generator stays in the same state.
    """
    full = shape if share is None else shape[:-2] + (share[2],) + shape[-1:]
    keep = rng.random(full) >= rate
    if share is not None:
        keep = keep[..., share[0]:share[1], :]
    return keep.astype(dtype) / dtype.type(1.0 - rate)


def _init_uniform(rng, shape, hidden_size, dtype):
    # torch's default for nn.LSTM and nn.LSTMCell: U(-1/sqrt(H), 1/sqrt(H)).
    k = 1.0 / np.sqrt(hidden_size)
    return rng.uniform(-k, k, size=shape).astype(dtype)


class _Recurrent:
    """What LSTM and LSTMCell share: parameters, gradients, state dicts, modes."""

    proj_size = 0  # LSTM's projection of h (LSTMP); 0: none, h is hidden_size wide

    def _setup(self, input_size, hidden_size, bias, dtype, backend, seed):
        # Harnesses build models as LSTM(I, H, L, np.float64), torch's dtype
        # keyword given positionally; where bias holds a float dtype, it is one.
        if check.is_float_dtype(bias):
            bias, dtype = True, bias
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        # Sizes the engine's BLAS cannot take are refused here, not at the first call.
        if self.input_size > check.INT_MAX:
            raise ValueError(f"input_size must be at most {check.INT_MAX} (a BLAS dimension), "
                             f"got {self.input_size}")
        if 4 * self.hidden_size > check.INT_MAX:
            raise ValueError(f"hidden_size must be at most {check.INT_MAX // 4} (4 * hidden_size "
                             f"is a BLAS dimension), got {self.hidden_size}")
        self.bias = check.flag("bias", bias)
        self.dtype = check.float_dtype(dtype)
        self._engine = _engine(backend)
        self.backend = backend
        # The reference runs NumPy's own BLAS, whose threads are the caller's business.
        self._threads = _threads.engine_threads if backend == "cython" else contextlib.nullcontext
        if seed is not None and (isinstance(seed, (bool, np.bool_))
                                 or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed}")
        self.seed = seed
        init_seq, dropout_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self._dropout_rng = np.random.default_rng(dropout_seq)
        self._workspace = Workspace(self.dtype)
        self._params = {}
        self.grads = {}
        self._saved = None
        self.training = True
        self.batch_share = None  # (lo, hi, B): rows of a larger batch (see dropout_mask)
        self._layer_done = None  # called with k once backward has finished layer k
        self._in_use = threading.RLock()  # held by the thread inside forward or backward

    def __getstate__(self):
        # Picklable (joblib, multiprocessing, scikit-learn's n_jobs): the
        # parameters, gradients, generators and settings; not the engine module,
        # the lock, the workspaces or a forward's saved state, made anew on load.
        state = dict(self.__dict__)
        for name in ("_engine", "_threads", "_in_use", "_workspace"):
            del state[name]
        state["_saved"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._engine = _engine(self.backend)
        self._threads = (_threads.engine_threads if self.backend == "cython"
                         else contextlib.nullcontext)
        self._workspace = Workspace(self.dtype)
        self._in_use = threading.RLock()

    def _add_param(self, name, shape):
        self._params[name] = _init_uniform(self._init_rng, shape, self.hidden_size, self.dtype)
        self.grads[name] = np.zeros(shape, self.dtype)

    def parameters(self):
        """Dict name -> array: the parameters themselves, for in-place updates."""
        return self._params

    def state_dict(self):
        """Dict name -> a copy of each parameter, with torch's keys and shapes."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters in from arrays or anything np.asarray takes (torch tensors too).

        The keys must be exactly those of ``state_dict()``; shapes must match and
        values be finite. Nothing is changed unless every entry is valid.
        """
        check.load_parameters(self._params, state_dict, type(self).__name__, self.dtype)

    def rng_state(self):
        """The dropout generator's state (JSON-able), to resume a training run exactly."""
        return self._dropout_rng.bit_generator.state

    def set_rng_state(self, state):
        """Restore a state from ``rng_state()``."""
        try:
            self._dropout_rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"rng state: not a state of this generator ({e})") from None

    def _dropout_mask(self, shape, rate):
        return dropout_mask(self._dropout_rng, shape, rate, self.dtype, self.batch_share)

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode=True):
        self.training = check.flag("mode", mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _as_input(self, x, grad):
        """x converted once to the model's dtype; private when backward will read it."""
        converted = check.as_array(x, "x", self.dtype)
        if grad and converted is x:
            converted = converted.copy()  # a later in-place change must not reach backward
        return converted

    def _bias(self, suffix):
        if not self.bias:
            return np.zeros(4 * self.hidden_size, self.dtype)
        return self._params["bias_ih" + suffix] + self._params["bias_hh" + suffix]

    def _layer_forward(self, layer, x, h0, c0, grad, fresh=False, batch_sizes=None,
                       rec_mask=None):
        """Run the engine over one layer (inside self._threads()). Returns (hs, cs, acts, tanh_c).

        layer: the index of its parameters (layer * directions + direction).
        fresh: what backward would read goes to new arrays, not the workspaces.
        batch_sizes: rows running per step (lengths.Lengths), or None for all.
        rec_mask: the recurrent dropout mask (B, P) on h_{t-1}, or None.
        """
        suffix = self._suffix(layer)
        T, B, _ = x.shape
        H, P = self.hidden_size, self.proj_size or self.hidden_size
        ws = self._workspace
        # hs is returned to the user (y is hs[1:]), so it is new on every call;
        # what only backward reads lives in workspaces reused between calls.
        hs = np.empty((T + 1, B, P), self.dtype)
        hs[0] = h0
        ms = None  # m_t = o * tanh(c_t), before the projection
        if grad:
            get = (lambda key, shape: np.empty(shape, self.dtype)) if fresh else ws.get
            cs = get(("cs", layer), (T + 1, B, H))
            acts = get(("acts", layer), (T, B, 4 * H))
            tanh_c = get(("tanh_c", layer), (T, B, H))
            if self.proj_size:
                ms = get(("ms", layer), (T, B, H))
        else:
            # Separate scratch, so an inference call between forward and
            # backward leaves the saved training state alone.
            cs = np.empty((1, B, H), self.dtype)
            acts = ws.get(("infer_acts", layer), (T, B, 4 * H))
            tanh_c = np.empty((0, B, H), self.dtype)
            if self.proj_size:
                ms = np.empty((1, B, H), self.dtype)
        cs[0] = c0
        self._engine.forward_layer(
            x=x, w_ih=self._params["weight_ih" + suffix],
            w_hh=self._params["weight_hh" + suffix], bias=self._bias(suffix),
            hs=hs, cs=cs, acts=acts, tanh_c=tanh_c, training=grad,
            threads=_threads.get_num_threads(), batch_sizes=batch_sizes,
            w_hr=self._params.get("weight_hr" + suffix), ms=ms,
            peephole=self._params.get("weight_peephole" + suffix), rec_mask=rec_mask)
        return hs, cs, acts, tanh_c, ms

    def _layer_backward(self, layer, x, saved, dy, dh_n, dc_n, batch_sizes=None,
                        rec_mask=None):
        """Backpropagate one layer (inside self._threads()); adds to the grads.

        Returns (dx, dh0, dc0).
        """
        suffix = self._suffix(layer)
        hs, cs, acts, tanh_c, ms = saved
        T, B, I = x.shape
        H, P = self.hidden_size, self.proj_size or self.hidden_size
        dx = np.empty((T, B, I), self.dtype)
        dh0 = np.empty((B, P), self.dtype)
        dc0 = np.empty((B, H), self.dtype)
        db = np.zeros(4 * H, self.dtype)
        self._engine.backward_layer(
            x=x, w_ih=self._params["weight_ih" + suffix],
            w_hh=self._params["weight_hh" + suffix], hs=hs, cs=cs, acts=acts,
            tanh_c=tanh_c, dy=dy, dh_n=dh_n, dc_n=dc_n, dx=dx, dh0=dh0, dc0=dc0,
            dw_ih=self.grads["weight_ih" + suffix], dw_hh=self.grads["weight_hh" + suffix],
            db=db, dgates=self._workspace.get(("dgates", layer), (T, B, 4 * H)),
            threads=_threads.get_num_threads(), batch_sizes=batch_sizes,
            w_hr=self._params.get("weight_hr" + suffix), ms=ms,
            dw_hr=self.grads.get("weight_hr" + suffix),
            peephole=self._params.get("weight_peephole" + suffix),
            dpeephole=self.grads.get("weight_peephole" + suffix), rec_mask=rec_mask)
        if self.bias:
            self.grads["bias_ih" + suffix] += db
            self.grads["bias_hh" + suffix] += db
        return dx, dh0, dc0

    def _state_pair(self, pair, name, shape, hint, c_shape=None):
        """Validate an (h, c) pair; each converted to `shape` (c to c_shape if given)."""
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name}: expected a pair (h, c) of arrays, got {type(pair).__name__}")
        out = []
        shapes = (shape, c_shape or shape)
        for i, value in enumerate(pair):
            shape = shapes[i]
            if (type(value) is np.ndarray and value.dtype == self.dtype
                    and value.shape == shape and value.flags.c_contiguous):
                out.append(value)  # the usual case, passed without building messages
                continue
            label = "hc"[i]
            arr = check.real_array(value, f"{name}[{i}] ({label})", self.dtype)
            check.check_shape(f"{name} {label}", arr, shape, hint)  # before any copy
            out.append(np.asarray(arr, dtype=self.dtype, order="C"))
        return out


class LSTM(_Recurrent):
    """A multi-layer LSTM with the API, parameters and numbers of ``torch.nn.LSTM``.

    Parameters
    ----------
    input_size, hidden_size : int
        At most 2**31 - 1 and (2**31 - 1) // 4, the engine's BLAS limits
        (ValueError); parameters and gradients that would not fit in this
        machine's memory raise MemoryError before anything is allocated.
    num_layers : int, default 1
    bias : bool, default True
        Whether the layers have ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Inputs and outputs are (B, T, feature) instead of (T, B, feature).
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    dtype : {np.float32, np.float64}
    backend : {"cython", "numpy"}
        The compiled engine, or the NumPy reference.
    seed : int >= 0 or None
        Seeds the initial weights and the dropout masks.
    bidirectional : bool, default False (keyword only)
        Each layer also runs the sequence backwards, with its own parameters
        (``..._l{k}_reverse``); the outputs of both directions are
        concatenated (2H features), h_n and c_n hold num_layers * 2 states
        ordered layer by layer, forward then backward, as torch's.
    proj_size : int, default 0 (keyword only)
        > 0: h is projected to this size, h_t = W_hr (o * tanh(c_t)) with
        ``weight_hr_l{k}`` (proj_size, H) (LSTMP, as torch's); h0, h_n and y
        are then proj_size wide, c stays H wide.
    peephole : bool, default False (keyword only)
        Peephole connections (Gers & Schmidhuber): the input and forget gates
        also see c_{t-1}, the output gate c_t, through ``weight_peephole_l{k}``
        (3H,) = [p_i | p_f | p_o] (ONNX's P holds the same, ordered i, o, f). Not in torch.
    recurrent_dropout : float, default 0.0 (keyword only)
        Variational dropout on h_{t-1} in the recurrent product, one mask per
        sequence, layer and direction, the same at every step (Gal &
        Ghahramani; Keras' recurrent_dropout), in training mode. Not in torch.
    forget_bias : float or None, default None (keyword only)
        Start the forget gate's bias at this value (1.0 as char-rnn and Keras'
        unit_forget_bias do, so that cells remember from the start): it goes
        in ``bias_ih``'s forget part, ``bias_hh``'s is 0. None: torch's init.

    Threads
    -------
    The engine releases the GIL, so separate models in separate threads run
    at once, with the same bits as the same calls made one after another.
    One model runs one call at a time: it keeps its last forward's state and
    its workspaces on itself, so ``forward``, ``backward`` or ``trace`` called
    while another thread is inside one of them raises ``RuntimeError`` at once
    (nothing is changed). Use one model per thread, or a lock. Changing a model
    (``load_state_dict``, ``zero_grad``, an optimizer step) while another thread
    runs it is the caller's to prevent. ``freeze()``'s ``FrozenLSTM`` may be
    shared between threads. ``lstm_c.set_num_threads`` is process-global.

    Examples
    --------
    >>> m = LSTM(10, 20, num_layers=2, seed=0)
    >>> y, (h_n, c_n) = m(np.ones((5, 3, 10)))
    >>> y.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, dtype=np.float32, backend="cython", seed=None, *,
                 bidirectional=False, proj_size=0, forget_bias=None, peephole=False,
                 recurrent_dropout=0.0):
        self._setup(input_size, hidden_size, bias, dtype, backend, seed)
        self.num_layers = check.positive_int("num_layers", num_layers)
        self.batch_first = check.flag("batch_first", batch_first)
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if (isinstance(recurrent_dropout, (bool, np.bool_))
                or not isinstance(recurrent_dropout, numbers.Real)):
            raise TypeError(f"recurrent_dropout must be a float in [0, 1), got {recurrent_dropout!r}")
        if not 0.0 <= recurrent_dropout < 1.0:
            raise ValueError(f"recurrent_dropout must be in [0, 1), got {recurrent_dropout}")
        self.recurrent_dropout = float(recurrent_dropout)
        self.peephole = check.flag("peephole", peephole)
        self.bidirectional = check.flag("bidirectional", bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size, (int, np.integer)):
            raise TypeError(f"proj_size must be an int, got {proj_size!r}")
        if not 0 <= proj_size < self.hidden_size:
            raise ValueError(f"proj_size must be 0 (none) or between 1 and hidden_size - 1 = "
                             f"{self.hidden_size - 1}, got {proj_size}")
        self.proj_size = int(proj_size)
        H, D = self.hidden_size, self.num_directions
        P = self.proj_size or H
        # Parameters and their gradients, counted before any is allocated.
        per_unit = (4 * H * P + 8 * H * self.bias + P * H * bool(self.proj_size)
                    + 3 * H * self.peephole)
        count = D * (4 * H * self.input_size + (self.num_layers - 1) * 4 * H * D * P
                     + self.num_layers * per_unit)
        check.check_memory(f"the parameters and gradients of {self!r} (input_size="
                           f"{self.input_size}, hidden_size={H})", 2 * count * self.dtype.itemsize)
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * P
            for d in range(D):
                suffix = self._suffix(k * D + d)
                self._add_param("weight_ih" + suffix, (4 * H, in_k))
                self._add_param("weight_hh" + suffix, (4 * H, P))
                if self.bias:
                    self._add_param("bias_ih" + suffix, (4 * H,))
                    self._add_param("bias_hh" + suffix, (4 * H,))
                if self.proj_size:
                    self._add_param("weight_hr" + suffix, (P, H))
                if self.peephole:
                    self._add_param("weight_peephole" + suffix, (3 * H,))
        self._init_forget_bias(forget_bias)

    def _init_forget_bias(self, value):
        # The whole forget-gate bias starts at `value`: in bias_ih, with bias_hh's part 0.
        if value is None:
            return
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"forget_bias must be a number or None, got {value!r}")
        if not np.isfinite(value) or abs(value) > np.finfo(self.dtype).max:
            raise ValueError(f"forget_bias must be finite in {self.dtype.name}, got {value}")
        if not self.bias:
            raise ValueError("forget_bias needs bias=True")
        H = self.hidden_size
        for name, p in self._params.items():
            if name.startswith("bias_"):
                p[H:2 * H] = value if name.startswith("bias_ih") else 0

    def _suffix(self, unit):
        """torch's name suffix of a layer and direction (unit = layer * directions + direction)."""
        layer, direction = divmod(unit, self.num_directions)
        return f"_l{layer}" + ("_reverse" if direction else "")

    def __repr__(self):
        return (f"LSTM({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
                + ("bidirectional=True, " if self.bidirectional else "")
                + (f"proj_size={self.proj_size}, " if self.proj_size else "")
                + ("peephole=True, " if self.peephole else "")
                + (f"recurrent_dropout={self.recurrent_dropout}, "
                   if self.recurrent_dropout else "")
                + f"dtype={self.dtype.name}, backend={self.backend!r})")

    def forward(self, x, hx=None, *, grad=True, lengths=None, mask=None, return_cells=False):
        """Run the whole sequence.

        Parameters
        ----------
        x : array of shape (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched
            Anything np.asarray takes (lists, torch tensors, any strides or
            order). Ints, unsigned ints and float16 convert to the model's
            dtype; bool, complex, object and strings raise TypeError. T = 0
            or B = 0 raises ValueError, and so do T * B or B * 4 * hidden_size
            above 2**31 - 1 (the engine's C int limits); a call that needs more
            memory than the machine has raises MemoryError. Both are checked
            before x is copied. NaN and inf are not checked: they propagate
            as in torch.
        hx : pair (h0, c0) of arrays of shape (num_layers * num_directions, B, H), or
            (num_layers * num_directions, H) unbatched; zeros when None.
            Converted as x is.
        grad : bool, default True
            Keep what ``backward`` needs; y is then read-only, since backward
            reads it (``y.copy()`` to change it). False is the inference path:
            it stores nothing and leaves the state of an earlier forward for
            backward alone.
        lengths : int array of shape (B,), optional
            Each sequence's own length (<= T) in a padded batch: it stops
            there, and what the padding holds (even NaN) does not matter. Its
            outputs past the end are 0, its h_n and c_n are those of its last
            step, and its gradients are those of running it alone (as torch
            with a PackedSequence; see ``lstm_c.lengths``).
        mask : bool array shaped like x without its last axis, optional
            The same as lengths, Keras style: True on each sequence's steps,
            which must come first (padding at the end).
        return_cells : bool, default False
            Also return every step's cell state and gates, for every layer
            and direction (what torch cannot give: pytorch issue 8938).

        Returns
        -------
        y : array of shape (T, B, D*P) (batch_first: (B, T, D*P); unbatched: (T, D*P)),
            D = 2 when bidirectional, else 1; P = proj_size, or H without one
        (h_n, c_n) : arrays of shape (num_layers * D, B, P) and (num_layers * D, B, H)
            (unbatched: without the B axis)
        cells : list, with return_cells only
            One dict per layer and direction (index layer * D + direction) of
            arrays shaped as y's leading axes: "c" and "tanh_c" (H wide), "h"
            (P wide) and "gates" (4H wide: the activations of i, f, g, o, in
            torch's order), in the input's time order. Past a sequence's end
            (lengths), h and the gates are 0 and c keeps its last value. They
            are read-only when grad=True (backward reads them).
        """
        in_use = self._in_use  # one thread at a time (see _one_thread_at_a_time)
        if not in_use.acquire(False):
            _refuse(self)
        try:
            return self._forward(x, hx, grad, lengths, mask, return_cells)
        finally:
            in_use.release()

    def _forward(self, x, hx, grad, lengths, mask, return_cells):
        grad = check.flag("grad", grad)
        return_cells = check.flag("return_cells", return_cells)
        x, h0, c0, unbatched = self._inputs(x, hx, grad)
        T, B, _ = x.shape
        seq = seq_lengths.from_arguments(lengths, mask, T, B, unbatched, self.batch_first)
        # Every step's cells live in fresh arrays (not the workspaces) when returned.
        y, h_n, c_n, saved = self._run(x, h0, c0, seq, grad or return_cells, fresh=return_cells)
        if grad:
            self._saved = (saved, unbatched, B, seq)
            y.flags.writeable = False  # y is the state backward reads; copy it to change it
        out = self._outputs(y, h_n, c_n, unbatched)
        if not return_cells:
            return out
        return (*out, self._cells(saved, seq, unbatched, read_only=grad))

    def _run(self, x, h0, c0, seq, grad, fresh=False):
        """Every layer and direction over x (T, B, I): (y, h_n, c_n, saved), in the caller's row order.

        saved, per layer: (its input, per direction (the engine's input, its
        state), the dropout mask on its output or None); in the engine's order.
        """
        T, B, _ = x.shape
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if seq is not None:
            x, h0, c0 = seq.zero_padding(seq.sort(x, 1)), seq.sort(h0, 1), seq.sort(c0, 1)
        bs = seq.batch_sizes if seq is not None else None
        h_n = np.empty((LD, B, self.proj_size or H), self.dtype)
        c_n = np.empty((LD, B, H), self.dtype)
        saved, inp = [], x
        with self._threads():  # once per call: switching OpenBLAS's threads is not free
            for k in range(self.num_layers):
                outputs, runs = [], []
                for d in range(self.num_directions):
                    u = k * self.num_directions + d
                    x_u = inp if d == 0 else seq_lengths.reverse_steps(inp, seq)
                    rmask = None
                    if self.training and self.recurrent_dropout > 0:
                        rmask = self._dropout_mask((B, h_n.shape[2]), self.recurrent_dropout)
                    state = self._layer_forward(u, x_u, h0[u], c0[u], grad, fresh, bs, rmask)
                    hs, cs = state[0], state[1]
                    h_n[u] = hs[T] if seq is None else seq.last(hs)
                    c_n[u] = cs[-1]
                    outputs.append(hs[1:] if d == 0 else seq_lengths.reverse_steps(hs[1:], seq))
                    runs.append((x_u, state, rmask))
                y = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
                mask = None
                if self.training and self.dropout > 0 and k < self.num_layers - 1:
                    mask = self._dropout_mask(y.shape, self.dropout)
                saved.append((inp, runs, mask))
                inp = y if mask is None else y * mask
        if seq is not None:
            y, h_n, c_n = seq.unsort(y, 1), seq.unsort(h_n, 1), seq.unsort(c_n, 1)
        return y, h_n, c_n, saved

    def freeze(self):
        """A FrozenLSTM: inference with these weights packed once (see lstm_c.frozen).

        The fast way to run one step at a time, as when sampling text. It does
        not see later changes to this model's weights: freeze again for those.
        """
        from lstm_c.frozen import FrozenLSTM

        return FrozenLSTM(self)

    @_one_thread_at_a_time
    def trace(self, x, hx=None, *, lengths=None, mask=None):
        """``forward(x, hx, grad=False, return_cells=True)`` as inference (no dropout).

        For looking inside a trained model (``lstm_c.record``): leaves the
        state saved for ``backward`` alone.
        """
        training, self.training = self.training, False
        try:
            return self.forward(x, hx, grad=False, lengths=lengths, mask=mask, return_cells=True)
        finally:
            self.training = training

    def _cells(self, saved, seq, unbatched, read_only):
        """forward's ``cells`` from what _run saved (fresh arrays, in the engine's order)."""
        layers = []
        for _, runs, _ in saved:
            for d, (_, (hs, cs, acts, tanh_c, _), _) in enumerate(runs):
                steps = {"h": hs[1:], "c": cs[1:], "tanh_c": tanh_c, "gates": acts}
                if d == 1:  # back to the input's time order
                    steps = {k: seq_lengths.reverse_steps(v, seq) for k, v in steps.items()}
                if seq is not None:
                    steps = {k: seq.unsort(v, 1) for k, v in steps.items()}
                if unbatched:
                    steps = {k: v[:, 0] for k, v in steps.items()}
                elif self.batch_first:
                    steps = {k: v.transpose(1, 0, 2) for k, v in steps.items()}
                if read_only:
                    for v in steps.values():
                        v.flags.writeable = False
                layers.append(steps)
        return layers

    def _outputs(self, y, h_n, c_n, unbatched):
        if unbatched:
            return y[:, 0, :], (h_n[:, 0, :], c_n[:, 0, :])
        if self.batch_first:
            y = y.transpose(1, 0, 2)
        return y, (h_n, c_n)

    def _inputs(self, x, hx, grad):
        """x as (T, B, I) in the model's dtype, h0 and c0 as (L*D, B, H), and whether x was 2-D."""
        # The shape is checked on the caller's array, before x is copied, so
        # that a huge (e.g. zero-stride) view is refused without being expanded.
        x = check.real_array(x, "x", self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected a 3-D array (T, B, I) or (B, T, I) with batch_first, "
                             f"or 2-D (T, I) unbatched, got {x.ndim}-D shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            T, B = x.shape[0], 1
        else:
            T, B = (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input size {self.input_size} in the last dimension, "
                             f"got shape {x.shape}")
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one step and one sequence, got T={T}, B={B}")
        if T * B > check.INT_MAX:
            raise ValueError(f"x: expected at most {check.INT_MAX} steps of all sequences "
                             f"(T * B, a BLAS dimension), got T={T}, B={B}")
        check.check_gate_rows("x", B, self.hidden_size)
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        P = self.proj_size or H
        # At least x's copy, and per layer and direction h and the gates of every step.
        check.check_memory(f"a forward over x of shape {x.shape}",
                           T * B * (self.input_size + LD * (P + 4 * H)) * self.dtype.itemsize)
        x = self._as_input(x, grad)
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        if hx is None:
            h0 = np.zeros((LD, B, P), self.dtype)
            c0 = np.zeros((LD, B, H), self.dtype)
        else:
            lead = (LD,) if unbatched else (LD, B)
            size = "proj_size" if self.proj_size else "hidden_size"
            h0, c0 = self._state_pair(hx, "hx", lead + (P,), f" (num_layers * num_directions"
                                      f"{'' if unbatched else ', batch'}, {size} for h, "
                                      f"hidden_size for c)", c_shape=lead + (H,))
            h0, c0 = h0.reshape(LD, B, P), c0.reshape(LD, B, H)
        return x, h0, c0, unbatched

    @_one_thread_at_a_time
    def backward(self, dy, dhx=None):
        """Backpropagate through the last ``forward(..., grad=True)``.

        Parameter gradients are added to ``self.grads``.

        Parameters
        ----------
        dy : array shaped like that forward's y
            dL/dy. With lengths, its entries past a sequence's end are not read.
        dhx : pair (dh_n, dc_n) shaped like (h_n, c_n), optional
            dL/dh_n and dL/dc_n; zeros when None.

        Returns
        -------
        dx : array shaped like x (0 past a sequence's end)
        (dh0, dc0) : arrays shaped like (h0, c0)
        """
        if self._saved is None:
            raise ValueError("backward() needs a forward(x, grad=True) first; "
                             "none has run since this model was made")
        saved, unbatched, B, seq = self._saved
        T = saved[0][0].shape[0]
        D, H = self.num_directions, self.hidden_size
        P = self.proj_size or H
        LD = self.num_layers * D
        y_shape = (T, D * P) if unbatched else ((B, T, D * P) if self.batch_first
                                                else (T, B, D * P))
        dy = check.as_array(dy, "dy", self.dtype, y_shape, " (the shape of the last forward's y)")
        if unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        if dhx is None:
            dh_n = np.zeros((LD, B, P), self.dtype)
            dc_n = np.zeros((LD, B, H), self.dtype)
        else:
            lead = (LD,) if unbatched else (LD, B)
            dh_n, dc_n = self._state_pair(dhx, "dhx", lead + (P,), " (the shape of h_n, c_n)",
                                          c_shape=lead + (H,))
            dh_n, dc_n = dh_n.reshape(LD, B, P), dc_n.reshape(LD, B, H)
        bs = None
        if seq is not None:
            dy, dh_n, dc_n = seq.sort(dy, 1), seq.sort(dh_n, 1), seq.sort(dc_n, 1)
            bs = seq.batch_sizes

        dh0 = np.empty((LD, B, P), self.dtype)
        dc0 = np.empty((LD, B, H), self.dtype)
        d_out = dy
        with self._threads():
            for k in range(self.num_layers - 1, -1, -1):
                _, runs, _ = saved[k]
                d_in = None
                for d, (x_u, state, rmask) in enumerate(runs):
                    u = k * D + d
                    dy_u = np.ascontiguousarray(d_out[:, :, d * P:(d + 1) * P])
                    if d == 1:
                        dy_u = seq_lengths.reverse_steps(dy_u, seq)
                    dx_u, dh0[u], dc0[u] = self._layer_backward(u, x_u, state, dy_u, dh_n[u],
                                                                dc_n[u], bs, rmask)
                    if d == 1:
                        dx_u = seq_lengths.reverse_steps(dx_u, seq)
                    d_in = dx_u if d_in is None else d_in + dx_u
                if self._layer_done is not None:  # layer k's gradients are final
                    self._layer_done(k)
                if k > 0:
                    mask = saved[k - 1][2]
                    d_out = d_in if mask is None else d_in * mask
        dx = d_in
        if seq is not None:
            dx, dh0, dc0 = seq.unsort(dx, 1), seq.unsort(dh0, 1), seq.unsort(dc0, 1)
        if unbatched:
            return dx[:, 0, :], (dh0[:, 0, :], dc0[:, 0, :])
        if self.batch_first:
            dx = dx.transpose(1, 0, 2)
        return dx, (dh0, dc0)

    @classmethod
    def from_torch(cls, module, *, backend="cython"):
        """A copy of a ``torch.nn.LSTM``: configuration, dtype and weights (see lstm_c.interop)."""
        from lstm_c import interop  # here, not at the top: interop imports this module

        return interop._from_torch(module, backend, cls)

    def to_torch(self):
        """A new ``torch.nn.LSTM`` with this model's configuration, dtype and weights."""
        from lstm_c import interop

        return interop.to_torch(self)


class LSTMCell(_Recurrent):
    """One LSTM step with the API and parameters of ``torch.nn.LSTMCell``.

    Parameters ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``,
    ``bias_hh`` (4H,). ``cell(x, (h, c))`` returns the next ``(h, c)``;
    ``cell.backward(dh, dc)`` returns ``dx, (dh_prev, dc_prev)`` and adds to
    ``cell.grads``.
    """

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32,
                 backend="cython", seed=None):
        self._setup(input_size, hidden_size, bias, dtype, backend, seed)
        H = self.hidden_size
        count = 4 * H * (self.input_size + H + 2 * self.bias)
        check.check_memory(f"the parameters and gradients of {self!r} (input_size="
                           f"{self.input_size}, hidden_size={H})", 2 * count * self.dtype.itemsize)
        self._add_param("weight_ih", (4 * H, self.input_size))
        self._add_param("weight_hh", (4 * H, H))
        if self.bias:
            self._add_param("bias_ih", (4 * H,))
            self._add_param("bias_hh", (4 * H,))

    @staticmethod
    def _suffix(layer):
        return ""

    def __repr__(self):
        return (f"LSTMCell({self.input_size}, {self.hidden_size}, bias={self.bias}, "
                f"dtype={self.dtype.name}, backend={self.backend!r})")

    def forward(self, x, hx=None, *, grad=True):
        """One step.

        Parameters
        ----------
        x : array of shape (B, I), or (I,) unbatched
        hx : pair (h, c) of arrays of shape (B, H) (unbatched: (H,)); zeros when None.
        grad : bool, default True
            Keep what ``backward`` needs.

        Returns
        -------
        (h, c) : arrays of shape (B, H) (unbatched: (H,))
        """
        in_use = self._in_use  # one thread at a time (see _one_thread_at_a_time)
        if not in_use.acquire(False):
            _refuse(self)
        try:
            return self._forward(x, hx, grad)
        finally:
            in_use.release()

    def _forward(self, x, hx, grad):
        grad = check.flag("grad", grad)
        # Checked on the caller's array, before it is copied (see LSTM._inputs).
        x = check.real_array(x, "x", self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"x: expected a 2-D array (B, I) or 1-D (I,) unbatched, "
                             f"got {x.ndim}-D shape {x.shape}")
        unbatched = x.ndim == 1
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input size {self.input_size} in the last dimension, "
                             f"got shape {x.shape}")
        B, H = 1 if unbatched else x.shape[0], self.hidden_size
        if B == 0:
            raise ValueError("x: expected at least one row, got B=0")
        check.check_gate_rows("x", B, H)
        check.check_memory(f"a step over x of shape {x.shape}",
                           B * (self.input_size + 8 * H) * self.dtype.itemsize)
        x = self._as_input(x, grad).reshape(1, B, self.input_size)
        if hx is None:
            h = np.zeros((B, H), self.dtype)
            c = np.zeros((B, H), self.dtype)
        else:
            h, c = self._state_pair(hx, "hx", (H,) if unbatched else (B, H),
                                    "" if unbatched else " (batch, hidden_size)")
        with self._threads():
            state = self._layer_forward(0, x, h.reshape(B, H), c.reshape(B, H), grad)
        hs, cs = state[0], state[1]
        if grad:
            self._saved = (x, state, unbatched)
        h1, c1 = hs[1, :, :], cs[-1].copy()
        return (h1[0], c1[0]) if unbatched else (h1, c1)

    @_one_thread_at_a_time
    def backward(self, dh, dc=None):
        """Backpropagate the last ``forward(..., grad=True)``; adds to ``self.grads``.

        Returns
        -------
        dx : array shaped like x
        (dh_prev, dc_prev) : arrays shaped like the h and c given to forward
        """
        if self._saved is None:
            raise ValueError("backward() needs a forward(x, grad=True) first; "
                             "none has run since this cell was made")
        x, state, unbatched = self._saved
        B, H = x.shape[1], self.hidden_size
        shape = (H,) if unbatched else (B, H)
        dh = check.as_array(dh, "dh", self.dtype, shape, " (the shape of the last forward's h)")
        if dc is None:
            dc = np.zeros((B, H), self.dtype)
        else:
            dc = check.as_array(dc, "dc", self.dtype, shape, " (the shape of the last forward's c)")
        with self._threads():
            dx, dh_prev, dc_prev = self._layer_backward(
                0, x, state, dh.reshape(1, B, H), np.zeros((B, H), self.dtype),
                dc.reshape(B, H))
        if unbatched:
            return dx[0, 0], (dh_prev[0], dc_prev[0])
        return dx[0], (dh_prev, dc_prev)

    @classmethod
    def from_torch(cls, module, *, backend="cython"):
        """A copy of a ``torch.nn.LSTMCell``: sizes, bias, dtype, weights (see lstm_c.interop)."""
        from lstm_c import interop

        return interop._from_torch(module, backend, cls)

    def to_torch(self):
        """A new ``torch.nn.LSTMCell`` with this cell's sizes, bias, dtype and weights."""
        from lstm_c import interop

        return interop.to_torch(self)
