"""FrozenLSTM: an LSTM's weights packed once, for fast inference and one-step streaming.

``LSTM.forward`` packs the weights on every call, and at B = 1 it runs on BLAS,
because a call cannot know whether the weights changed since the last one (an
optimizer updates them in place). When they will not change, as while sampling
text from a trained model, ``LSTM.freeze()`` packs them once: each call then
makes no packing, no BLAS call and no thread switch, and runs all layers and
steps in one call into the engine. This is torch.jit.freeze's idea: the frozen
copy does not see later changes to the model's weights; freeze again for those.
"""

import threading

import numpy as np

from lstm_c import _lstm


class FrozenLSTM:
    """Inference with an LSTM's weights as they were when it was frozen.

    Made by ``LSTM.freeze()``. Calls take and return what
    ``LSTM.forward(x, hx, grad=False)`` does, with the same numbers (to float
    rounding: the packed kernels sum in another order than BLAS).

    One FrozenLSTM may be shared between threads: its packed weights are
    read-only and each call allocates its own scratch, so calls run at once
    (the engine releases the GIL). Models without packed kernels (bidirectional,
    projection, peepholes, the NumPy backend) run through a private copy of the
    LSTM, whose calls are serialised by a lock.

    Examples
    --------
    >>> from lstm_c import LSTM
    >>> frozen = LSTM(8, 16, seed=0).eval().freeze()
    >>> state = None
    >>> for t in range(3):  # one step at a time, state carried
    ...     y, state = frozen(np.ones((1, 1, 8), np.float32), state)
    >>> y.shape
    (1, 1, 16)
    """

    def __init__(self, lstm):
        self._lstm = lstm  # for its input checks and shape conventions only
        self.num_layers, self.hidden_size = lstm.num_layers, lstm.hidden_size
        self.input_size, self.dtype = lstm.input_size, lstm.dtype
        suffixes = [lstm._suffix(k) for k in range(lstm.num_layers)]
        params = lstm.parameters()
        self._packed = None
        self._copy = None
        # Packed: one direction per layer, no projection, no peepholes, at most
        # the 64 layers a PackedLSTM holds (other models run through a copy).
        if (lstm.backend == "cython" and _lstm.packed_panel_units(self.dtype.name)
                and not lstm.bidirectional and not lstm.proj_size and not lstm.peephole
                and lstm.num_layers <= 64):
            self._packed = _lstm.PackedLSTM([params["weight_ih" + s] for s in suffixes],
                                            [params["weight_hh" + s] for s in suffixes],
                                            [lstm._bias(s) for s in suffixes])
        else:
            # No packed kernels (the NumPy reference backend, or a build
            # without them): a private copy keeps the snapshot's meaning.
            self._copy = type(lstm)(lstm.input_size, lstm.hidden_size, lstm.num_layers,
                                    bias=lstm.bias, batch_first=lstm.batch_first,
                                    dtype=self.dtype, backend=lstm.backend,
                                    bidirectional=lstm.bidirectional,
                                    proj_size=lstm.proj_size, peephole=lstm.peephole).eval()
            self._copy.load_state_dict(lstm.state_dict())
            self._copy_lock = threading.Lock()  # the copy keeps workspaces: one call at a time

    @property
    def nbytes(self):
        """Bytes of packed weights this object holds."""
        return self._packed.nbytes if self._packed is not None else 0

    def __repr__(self):
        return f"FrozenLSTM({self._lstm!r})"

    def forward(self, x, hx=None):
        """Run the sequence (inference); see ``LSTM.forward`` for shapes."""
        if self._copy is not None:
            with self._copy_lock:
                return self._copy.forward(x, hx, grad=False)
        x, h0, c0, unbatched = self._lstm._inputs(x, hx, grad=False)
        T, B, _ = x.shape
        # The engine updates h and c in place: copies, so the caller's hx stays.
        h, c = h0.copy(), c0.copy()
        y = np.empty((T, B, self.hidden_size), self.dtype)
        _lstm.packed_forward(self._packed, x, h, c, y)
        return self._lstm._outputs(y, h, c, unbatched)

    __call__ = forward
