"""Batches of sequences of different lengths: ``LSTM.forward(x, lengths=...)`` or ``mask=...``.

The engine runs such a batch the way PyTorch's PackedSequence does: the rows
sorted longest first, and step t runs only the first ``batch_sizes[t]`` of
them (_lstm.pyx). So no step past a sequence's end is computed, its output
there is 0, h_n and c_n are taken at its own last step, and its gradients are
those of running it alone. This module turns the user's lengths (or a Keras
style mask) into that order and those counts, and back; and converts to and
from torch's PackedSequence where torch is installed.
"""

import numbers

import numpy as np


class Lengths:
    """The lengths of the B sequences of a padded (T, B, .) batch, and what the engine needs.

    ``order`` sorts the rows longest first (stable, so equal lengths keep their
    order); every array handed to the engine is in that order, and ``unsort``
    puts results back. ``batch_sizes[t]`` counts the rows still running at step t.
    """

    def __init__(self, lengths, T):
        self.T = T
        self.order = np.argsort(-lengths, kind="stable")
        self.sorted = lengths[self.order]
        self._inverse = np.argsort(self.order)
        self._identity = bool(np.array_equal(self.order, np.arange(len(lengths))))
        self.batch_sizes = np.ascontiguousarray(
            (self.sorted[None, :] > np.arange(T)[:, None]).sum(axis=1), dtype=np.int32)
        # Reversing each sequence within its own length (the backward direction
        # of a bidirectional layer): step t of row b reads step len_b - 1 - t;
        # steps past the end stay where they are. Applied twice it is the identity.
        t = np.arange(T)[:, None]
        self._reversed_steps = np.where(t < self.sorted[None, :], self.sorted[None, :] - 1 - t, t)

    def sort(self, a, axis):
        """Rows of a (batch along axis) in the engine's order."""
        return a if self._identity else np.ascontiguousarray(np.take(a, self.order, axis=axis))

    def unsort(self, a, axis):
        """Rows of a back in the caller's order."""
        return a if self._identity else np.take(a, self._inverse, axis=axis)

    def reverse(self, a):
        """a (T, B, .) in the engine's order, each sequence reversed within its length."""
        return np.ascontiguousarray(np.take_along_axis(a, self._reversed_steps[:, :, None], 0))

    def zero_padding(self, a):
        """a (T, B, .) in the engine's order, with each row's steps past its end set to 0 (a new array).

        The engine never reads them but in backward's dW_ih, one GEMM over all
        T*B rows, where their zero dgates times a NaN or inf padding would
        still give NaN: padding must not matter, whatever it holds.
        """
        pad = np.arange(self.T)[:, None] >= self.sorted[None, :]
        return np.where(pad[:, :, None], a.dtype.type(0), a) if pad.any() else a

    def last(self, hs):
        """h at each row's last step from hs (T+1, B, H), where hs[0] is h0."""
        return hs[self.sorted, np.arange(hs.shape[1])]


def reverse_steps(a, seq):
    """a (T, B, .) reversed in time: each sequence within its length when seq is given."""
    return seq.reverse(a) if seq is not None else np.ascontiguousarray(a[::-1])


def from_arguments(lengths, mask, T, B, unbatched, batch_first):
    """Lengths from forward's ``lengths`` or ``mask`` argument (at most one), or None."""
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    if mask is not None:
        lengths = _lengths_of_mask(mask, T, B, unbatched, batch_first)
    elif lengths is not None:
        lengths = _checked_lengths(lengths, T, B, unbatched)
    else:
        return None
    return Lengths(lengths, T)


def _checked_lengths(lengths, T, B, unbatched):
    if hasattr(lengths, "detach") and hasattr(lengths, "cpu"):  # a torch tensor
        lengths = lengths.detach().cpu().numpy()
    if isinstance(lengths, numbers.Integral) and not isinstance(lengths, (bool, np.bool_)):
        lengths = [lengths]
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    want = (1,) if unbatched else (B,)
    if arr.shape != want:
        raise ValueError(f"lengths: expected shape {want}, one length per sequence, "
                         f"got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"lengths: expected values between 0 and T = {T}, got "
                         f"{arr.min()} .. {arr.max()}")
    return arr.astype(np.int64)


def _lengths_of_mask(mask, T, B, unbatched, batch_first):
    """A boolean mask, True on each sequence's steps, must be True first and False after."""
    if hasattr(mask, "detach") and hasattr(mask, "cpu"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask: expected a boolean array, got dtype {m.dtype}")
    want = (T,) if unbatched else ((B, T) if batch_first else (T, B))
    if m.shape != want:
        raise ValueError(f"mask: expected shape {want}, got {m.shape}")
    m = m.reshape(T, 1) if unbatched else (m.T if batch_first else m)
    lengths = m.sum(axis=0)
    prefix = np.arange(T)[:, None] < lengths[None, :]
    if not np.array_equal(m, prefix):
        b = int(np.argmax((m != prefix).any(axis=0)))
        raise ValueError(f"mask: expected True for the first steps of each sequence and False "
                         f"after (padding at the end), but sequence {b} has a False step "
                         f"before a True one")
    return lengths.astype(np.int64)


def from_packed_sequence(packed, dtype=None):
    """(x (T, B, I) zero-padded NumPy array, lengths (B,)) from a torch PackedSequence.

    The rows come back in the order of the original batch (torch's
    ``unsorted_indices``), as ``torch.nn.utils.rnn.pad_packed_sequence`` gives them.
    """
    from torch.nn.utils.rnn import pad_packed_sequence

    padded, lengths = pad_packed_sequence(packed)
    x = padded.detach().cpu().numpy()
    return (x if dtype is None else x.astype(dtype, copy=False)), lengths.numpy().astype(np.int64)


def to_packed_sequence(y, lengths):
    """A torch PackedSequence of y (T, B, H) with each sequence cut at its length."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    return pack_padded_sequence(torch.from_numpy(np.ascontiguousarray(y)),
                                torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
                                enforce_sorted=False)
