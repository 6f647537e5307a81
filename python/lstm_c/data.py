"""Character-level data: vocabulary, corpus with a contiguous split, char-rnn batches.

Two ways to read a text file (``Corpus.open(path, vocab=...)``):

``"bytes"`` (the default, as char-rnn and Karpathy et al. 2015 count)
    One symbol per byte. The file is mapped with ``np.memmap`` and never read
    into a Python object: the vocabulary (the sorted distinct bytes) is
    counted over fixed-size chunks, and ids are made per batch through a
    256-entry lookup table. A file larger than memory works.
``"chars"``
    One symbol per Unicode code point. The file is decoded as UTF-8 (strict)
    and its ids are held in memory as one int32 array (4 bytes per
    character).

The split is contiguous, train / validation / test, at byte offsets
``floor(N * p)`` of the N-byte file (cumulative fractions, computed exactly
from the decimal fractions given, so (0.9, 0.05, 0.05) reproduces the table in
``shared/data/README.md``). Both modes split at the same byte offsets, so a
piece holds the same text in either mode; in chars mode a boundary that falls
inside a multi-byte character moves forward to the next character start.

Batching (``Batches``) follows char-rnn: the source of N ids is cut into B
contiguous streams of length ``L = N // B`` (stream b covers
``[b*L, (b+1)*L)``; the last ``N % B`` ids are not used), each column of a
batch is one stream, and batch k holds ``x[t, b] = source[b*L + k*T + t]``,
``y[t, b] = source[b*L + k*T + t + 1]``. There are ``(L - 1) // T`` batches per
epoch, so targets never cross into the next stream and every id of a stream
is an input exactly once per epoch, except its last ``L - ((L - 1) // T) * T``
ids (at least one: the last id of a stream is only ever a target). Carry the
hidden state from batch k to batch k + 1 and reset it at the start of an epoch.
"""

import math
import numbers
import os
import stat
from fractions import Fraction

import numpy as np

from lstm_c import _validate as check

__all__ = ["Vocab", "Corpus", "Source", "Batches", "byte_counts", "DEFAULT_SPLIT", "SPLIT_NAMES"]

DEFAULT_SPLIT = (0.90, 0.05, 0.05)
SPLIT_NAMES = ("train", "val", "test")
KINDS = ("bytes", "chars")

# Bytes counted per np.bincount call. Small on purpose: bincount converts its
# input to intp, so a chunk of n bytes costs a temporary of 8n bytes.
_CHUNK = 1 << 20
_MAX_CODE_POINT = 0x10FFFF
_SHOW_UNKNOWN = 10  # at most this many unknown symbols are listed in an error


def _show_symbol(kind, s):
    """A readable name for one symbol: b'\\n' (0x0a) or 'é' (U+00E9)."""
    if kind == "bytes":
        return f"{bytes([s])!r} (0x{s:02x})"
    return f"{s!r} (U+{ord(s):04X})"


class Vocab:
    """The symbols of a corpus, each with an integer id (its position in ``symbols``).

    Parameters
    ----------
    symbols : sequence
        Distinct symbols in id order: ints in [0, 256) for ``kind="bytes"``,
        one-character strings (or a string, one symbol per character) for
        ``kind="chars"``. ``Vocab.from_data`` builds them sorted.
    kind : {"bytes", "chars"}

    Attributes
    ----------
    kind : str
    symbols : list of int (bytes) or list of str (chars)
    size : int
    """

    def __init__(self, symbols, kind="bytes"):
        if kind not in KINDS:
            raise ValueError(f"kind must be 'bytes' or 'chars', got {kind!r}")
        if kind == "bytes":
            if isinstance(symbols, (bytes, bytearray, memoryview)):
                symbols = list(bytes(symbols))
            syms = []
            for s in symbols:
                if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
                    raise ValueError(f"a bytes vocabulary holds ints in [0, 256), got {s!r} "
                                     f"({type(s).__name__})")
                if not 0 <= s < 256:
                    raise ValueError(f"a bytes vocabulary holds ints in [0, 256), got {s}")
                syms.append(int(s))
            codes = np.array(syms, dtype=np.int64)
        else:
            syms = []
            for s in symbols:
                if isinstance(s, (bool, np.bool_)):
                    raise ValueError(f"a chars vocabulary holds characters, got {s!r}")
                if isinstance(s, numbers.Integral):  # a code point
                    if not 0 <= s <= _MAX_CODE_POINT or 0xD800 <= s <= 0xDFFF:
                        raise ValueError(f"a chars vocabulary holds Unicode code points in "
                                         f"[0, 0x10FFFF] other than surrogates, got {s}")
                    s = chr(s)
                if not isinstance(s, str) or len(s) != 1:
                    raise ValueError(f"a chars vocabulary holds single characters, got {s!r}")
                if 0xD800 <= ord(s) <= 0xDFFF:
                    raise ValueError(f"a chars vocabulary cannot hold the surrogate {s!r}")
                syms.append(s)
            codes = np.array([ord(s) for s in syms], dtype=np.int64)
        if not syms:
            raise ValueError("a vocabulary needs at least one symbol, got none")
        uniq, counts = np.unique(codes, return_counts=True)
        if uniq.size != codes.size:
            dup = [s for s, c in zip(uniq.tolist(), counts.tolist()) if c > 1]
            shown = ", ".join(_show_symbol(kind, d if kind == "bytes" else chr(d))
                              for d in dup[:_SHOW_UNKNOWN])
            raise ValueError(f"vocabulary symbols must be distinct, got duplicates: {shown}")
        self.kind = kind
        self.symbols = syms
        self.size = len(syms)
        self._codes = codes  # byte value or code point of each id
        if kind == "bytes":
            self._table = np.full(256, -1, dtype=np.int32)
            self._table[codes] = np.arange(self.size, dtype=np.int32)
        else:
            order = np.argsort(codes, kind="stable")
            self._sorted_codes = codes[order]
            self._sorted_ids = order.astype(np.int32)

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_data(cls, data, kind=None):
        """The sorted distinct symbols of `data`.

        Parameters
        ----------
        data : bytes-like, 1-D uint8 array (e.g. a memmap), or str
            bytes and arrays give a bytes vocabulary (counted in chunks, so a
            memmap is never read whole into memory); str gives a chars
            vocabulary.
        kind : {"bytes", "chars"} or None
            None: from the type of `data`. ``kind="chars"`` with bytes decodes
            them as UTF-8; ``kind="bytes"`` with a str encodes it as UTF-8.
        """
        if kind is None:
            kind = "chars" if isinstance(data, str) else "bytes"
        if kind not in KINDS:
            raise ValueError(f"kind must be 'bytes' or 'chars', got {kind!r}")
        if kind == "bytes":
            arr = _as_uint8(data, "data")
            counts = np.zeros(256, dtype=np.int64)
            for i in range(0, arr.size, _CHUNK):
                counts += np.bincount(arr[i:i + _CHUNK], minlength=256)
            return cls(np.flatnonzero(counts).tolist(), "bytes")
        text = _as_text(data, "data")
        cps = np.unique(_code_points(text))
        return cls([chr(c) for c in cps.tolist()], "chars")

    @classmethod
    def from_json(cls, d):
        """Inverse of `to_json`; refuses anything that is not a valid vocabulary."""
        if not isinstance(d, dict):
            raise ValueError(f"vocabulary JSON: expected an object with 'kind' and 'symbols', "
                             f"got {type(d).__name__}")
        missing = [k for k in ("kind", "symbols") if k not in d]
        if missing:
            raise ValueError(f"vocabulary JSON: missing {', '.join(map(repr, missing))} "
                             f"(got keys {sorted(map(str, d))})")
        unknown = sorted(set(map(str, d)) - {"kind", "symbols", "size"})
        if unknown:
            raise ValueError(f"vocabulary JSON: unexpected keys {unknown}")
        kind, symbols = d["kind"], d["symbols"]
        if kind not in KINDS:
            raise ValueError(f"vocabulary JSON: kind must be 'bytes' or 'chars', got {kind!r}")
        if kind == "bytes" and not isinstance(symbols, list):
            raise ValueError(f"vocabulary JSON: a bytes vocabulary's symbols must be a list of "
                             f"ints in [0, 256), got {type(symbols).__name__}")
        if kind == "chars" and not isinstance(symbols, (str, list)):
            raise ValueError(f"vocabulary JSON: a chars vocabulary's symbols must be a string or "
                             f"a list of code points, got {type(symbols).__name__}")
        if kind == "chars" and isinstance(symbols, list):
            for s in symbols:  # a list holds code points, not strings
                if isinstance(s, bool) or not isinstance(s, int):
                    raise ValueError(f"vocabulary JSON: a chars vocabulary's list of symbols must "
                                     f"hold int code points, got {s!r}")
        try:
            v = cls(symbols, kind)
        except ValueError as e:
            raise ValueError(f"vocabulary JSON: {e}") from None
        if "size" in d and (isinstance(d["size"], bool) or d["size"] != v.size):
            raise ValueError(f"vocabulary JSON: size is {d['size']!r} but {v.size} symbols are "
                             f"listed")
        return v

    def to_json(self):
        """A JSON-able dict: ``{"kind", "size", "symbols"}``.

        symbols: a list of byte values (bytes) or one string holding the
        characters in id order (chars).
        """
        symbols = list(self.symbols) if self.kind == "bytes" else "".join(self.symbols)
        return {"kind": self.kind, "size": self.size, "symbols": symbols}

    # -- mapping --------------------------------------------------------------

    @property
    def table(self):
        """Bytes vocabularies: int32 array of shape (256,), byte -> id, -1 where absent."""
        if self.kind != "bytes":
            raise AttributeError("only a bytes vocabulary has a 256-entry lookup table")
        return self._table

    def encode(self, data, unknown="error"):
        """Ids of the symbols of `data`.

        Parameters
        ----------
        data : bytes-like, uint8 array or str
            A bytes vocabulary encodes a str as UTF-8 first; a chars
            vocabulary decodes bytes as UTF-8 (strict) first.
        unknown : {"error", "skip"}
            A symbol not in the vocabulary raises ValueError naming it
            ("error") or is dropped ("skip").

        Returns
        -------
        ids : int32 array of shape (n,)
        """
        if unknown not in ("error", "skip"):
            raise ValueError(f"unknown must be 'error' or 'skip', got {unknown!r}")
        if self.kind == "bytes":
            raw = _as_uint8(data, "data")
            ids = self._table[raw]
            bad = ids < 0
            if bad.any():
                if unknown == "skip":
                    return np.ascontiguousarray(ids[~bad])
                self._raise_unknown(np.unique(raw[bad]).tolist())
            return ids
        cps = _code_points(_as_text(data, "data"))
        pos = np.searchsorted(self._sorted_codes, cps)
        pos_c = np.minimum(pos, self.size - 1)
        bad = self._sorted_codes[pos_c] != cps
        ids = self._sorted_ids[pos_c]
        if bad.any():
            if unknown == "skip":
                return np.ascontiguousarray(ids[~bad])
            self._raise_unknown([chr(c) for c in np.unique(cps[bad]).tolist()])
        return ids

    def _raise_unknown(self, symbols):
        shown = ", ".join(_show_symbol(self.kind, s) for s in symbols[:_SHOW_UNKNOWN])
        more = f" and {len(symbols) - _SHOW_UNKNOWN} more" if len(symbols) > _SHOW_UNKNOWN else ""
        raise ValueError(f"{len(symbols)} distinct symbol(s) not in the vocabulary: {shown}{more}. "
                         f"The {self.size}-symbol {self.kind} vocabulary was built from the "
                         f"training file; pass unknown='skip' to drop them")

    def decode(self, ids):
        """The symbols of `ids`: bytes (bytes vocabulary) or str (chars vocabulary)."""
        arr = check.to_numpy(ids, "ids")
        if arr.size == 0:
            return b"" if self.kind == "bytes" else ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integer ids, got dtype {arr.dtype}")
        arr = arr.reshape(-1)
        bad = (arr < 0) | (arr >= self.size)
        if bad.any():
            raise ValueError(f"ids: expected ids in [0, {self.size}), got {arr[bad][0]} "
                             f"(at position {int(np.flatnonzero(bad)[0])})")
        codes = self._codes[arr]
        if self.kind == "bytes":
            return codes.astype(np.uint8).tobytes()
        return codes.astype("<u4").tobytes().decode("utf-32-le")

    def __len__(self):
        return self.size

    def __eq__(self, other):
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.kind == other.kind and self.symbols == other.symbols

    def __hash__(self):
        return hash((self.kind, tuple(self.symbols)))

    def __repr__(self):
        head = repr(self.decode(np.arange(min(self.size, 20))))
        more = "..." if self.size > 20 else ""
        return f"Vocab(kind={self.kind!r}, size={self.size}, symbols={head}{more})"


def _as_uint8(data, name):
    """A 1-D uint8 view of bytes-like data (no copy for bytes, arrays and memmaps)."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{name}: cannot encode the str as UTF-8 for a bytes vocabulary "
                             f"({e.reason} at character {e.start})") from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"{name}: expected bytes, str or a uint8 array, got an array of "
                            f"dtype {data.dtype}")
        return data.reshape(-1)
    raise TypeError(f"{name}: expected bytes, str or a uint8 array, got {type(data).__name__}")


def _as_text(data, name):
    if isinstance(data, str):
        return data
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        data = data.tobytes()
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{name}: not valid UTF-8 at byte offset {e.start} ({e.reason})") \
                from None
    raise TypeError(f"{name}: expected str or UTF-8 bytes, got {type(data).__name__}")


def _code_points(text):
    """int64 array of the code points of a str (lone surrogates included)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)


# -- sources ------------------------------------------------------------------


class Source:
    """A 1-D sequence of ids, read on demand.

    ``raw`` holds the stored values: a ``np.memmap`` view of the file's bytes
    (bytes corpora, mapped through ``table`` on each read) or an int array of
    ids (chars corpora, ``table`` None). ``source[i]`` gives an int,
    ``source[a:b]`` and ``source.take(index_array)`` give int32 arrays; only
    the entries asked for are read. ``np.asarray(source)`` converts the whole
    source (explicitly asked for, so allowed).
    """

    def __init__(self, raw, table=None):
        raw = np.asarray(raw) if not isinstance(raw, np.ndarray) else raw
        if raw.ndim != 1:
            raise ValueError(f"source: expected a 1-D array of ids, got shape {raw.shape}")
        if raw.dtype.kind not in "iu":
            raise TypeError(f"source: expected integer ids, got dtype {raw.dtype}")
        if table is not None:
            table = np.asarray(table)
            if raw.dtype != np.uint8 or table.shape != (256,):
                raise ValueError("source: a lookup table must have shape (256,) and map a "
                                 "uint8 array")
        self.raw = raw
        self.table = table

    def __len__(self):
        return self.raw.shape[0]

    def _map(self, values):
        if self.table is not None:
            ids = self.table[values]
            if (ids < 0).any():  # only if the file changed since its vocabulary was counted
                raise ValueError("source: a byte not in the vocabulary; did the file change "
                                 "after it was opened?")
            return ids
        return np.asarray(values).astype(np.int32, copy=False)

    def take(self, index):
        """int32 ids at the positions in `index` (any shape)."""
        return self._map(self.raw[np.asarray(index, dtype=np.intp)])

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._map(self.raw[key])
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
            n, k = len(self), int(key)
            if not -n <= k < n:
                raise IndexError(f"source index {k} out of range for length {n}")
            k %= n
            return int(self._map(self.raw[k:k + 1])[0])
        return self.take(key)

    def __array__(self, dtype=None, copy=None):
        ids = self[:]
        return ids if dtype is None else ids.astype(dtype)

    def __repr__(self):
        where = "memmap" if isinstance(self.raw, np.memmap) else "array"
        return f"Source(length={len(self)}, {where})"


def _as_source(source):
    if isinstance(source, Source):
        return source
    arr = check.to_numpy(source, "source")
    return Source(arr)


# -- corpus -------------------------------------------------------------------


def _split_bounds(n, split):
    """Check the split fractions; return the 4 cumulative boundaries floor(n * p) as ints."""
    try:
        parts = tuple(split)
    except TypeError:
        raise TypeError(f"split: expected 3 fractions (train, val, test), got {split!r}") from None
    if len(parts) != 3:
        raise ValueError(f"split: expected 3 fractions (train, val, test), got {len(parts)}: "
                         f"{split!r}")
    for name, p in zip(SPLIT_NAMES, parts):
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
            raise TypeError(f"split: the {name} fraction must be a number, got {p!r}")
    values = [float(p) for p in parts]
    if all(math.isfinite(p) and p >= 0 for p in values) and abs(sum(values) - 100) < 1e-6:
        shown = tuple(p / 100 for p in values)
        raise ValueError(f"split: expected fractions summing to 1, not percentages: got {split!r}, "
                         f"use {shown!r}")
    fracs = []
    for name, p in zip(SPLIT_NAMES, values):
        if not math.isfinite(p) or p < 0 or p > 1:
            raise ValueError(f"split: each fraction must be in [0, 1], got {name}={p!r} "
                             f"in {split!r}")
        # The shortest decimal that prints as p (0.9 -> 9/10), so floor(n * p) is exact.
        fracs.append(Fraction(repr(p)))
    total = sum(fracs)
    if abs(total - 1) > Fraction(1, 10**9):
        raise ValueError(f"split: fractions must sum to 1, got {split!r} (sum {float(total):g})")
    if fracs[0] == 0:
        raise ValueError(f"split: the train fraction must be > 0, got {split!r}")
    a = math.floor(n * fracs[0])
    b = min(math.floor(n * (fracs[0] + fracs[1])), n)
    if fracs[2] == 0:
        b = n
    return (0, a, b, n), tuple(float(p) for p in parts)


def byte_counts(path, part=(0, 1)):
    """How often each byte value occurs in part k of n of the file (k, n): int64 (256,).

    The parts are n contiguous, nearly equal byte ranges, so the counts of
    all parts sum to the whole file's; each of n processes can count its own.
    Plain reads, a chunk at a time: nothing stays mapped or resident.
    """
    k, n = part
    size = os.stat(path).st_size
    lo, hi = size * k // n, size * (k + 1) // n
    counts = np.zeros(256, dtype=np.int64)
    buf = np.empty(_CHUNK, dtype=np.uint8)
    with open(path, "rb") as f:
        f.seek(lo)
        left = hi - lo
        while left > 0:
            got = f.readinto(memoryview(buf)[:min(left, _CHUNK)])
            if not got:
                break
            counts += np.bincount(buf[:got], minlength=256)
            left -= got
    return counts


class Corpus:
    """A text file as ids, split contiguously into train / val / test.

    Use ``Corpus.open(path, vocab="bytes", split=(0.90, 0.05, 0.05))``.

    Attributes
    ----------
    path : str
    kind : {"bytes", "chars"}
    vocab : Vocab
        Built from the whole file (char-rnn does the same), or the one given.
    train, val, test : Source
        1-D id sources. Bytes corpora: views of one ``np.memmap``.
    split : tuple of 3 floats
    n_bytes : int
        Size of the file.
    bounds : dict name -> (start, stop)
        Byte offsets of each piece in the file: ``floor(n_bytes * p)``
        (cumulative). In chars mode a boundary inside a multi-byte character
        moves forward to the next character start.
    """

    def __init__(self, path, kind, vocab, sources, bounds, split, n_bytes):
        self.path = path
        self.kind = kind
        self.vocab = vocab
        self.train, self.val, self.test = sources
        self.bounds = bounds
        self.split = split
        self.n_bytes = n_bytes

    @classmethod
    def open(cls, path, vocab="bytes", split=DEFAULT_SPLIT, counts=None):
        """Open a text file.

        Parameters
        ----------
        path : str or path-like
        vocab : "bytes", "chars" or Vocab
            "bytes"/"chars": build the vocabulary from this file. A Vocab
            (e.g. a trained model's): use it; a symbol of the file that is
            not in it raises ValueError naming it.
        split : 3 fractions (train, val, test)
            Each in [0, 1], summing to 1, train > 0. A piece with a fraction
            > 0 must not come out empty. Use (1, 0, 0) to train on the whole
            file.
        counts : int array (256,), optional
            bytes only: how often each byte value occurs in the whole file,
            when the caller has them (``byte_counts`` of every part, summed);
            the file is then not read through to count them.

        Raises
        ------
        ValueError
            Missing or unreadable file, a directory, an empty file, invalid
            UTF-8 (chars), bad split fractions, pieces too short.
        """
        path = os.fspath(path)
        if isinstance(vocab, Vocab):
            given, kind = vocab, vocab.kind
        elif vocab in KINDS:
            given, kind = None, vocab
        else:
            raise ValueError(f"vocab must be 'bytes', 'chars' or a Vocab, got {vocab!r}")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except OSError as e:
            raise ValueError(f"{path}: cannot open ({e.strerror or e})") from None
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{path}: is a directory, expected a text file")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a regular file")
        if st.st_size == 0:
            raise ValueError(f"{path}: the file is empty; a corpus needs at least 2 characters")
        if kind == "bytes":
            return cls._open_bytes(path, given, split, counts)
        return cls._open_chars(path, given, split)

    @classmethod
    def _open_bytes(cls, path, given, split, counts):
        try:
            if counts is None:
                counts = byte_counts(path)
            counts = np.asarray(counts)
            n = int(counts.sum())
            mm = np.memmap(path, dtype=np.uint8, mode="r")
        except OSError as e:
            raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
        if n == 0:
            raise ValueError(f"{path}: the file is empty; a corpus needs at least 2 characters")
        if mm.shape[0] != n:
            raise ValueError(f"{path}: the file changed while it was being opened")
        present = np.flatnonzero(counts).tolist()
        if given is None:
            vocab = Vocab(present, "bytes")
        else:
            vocab = given
            missing = [b for b in present if vocab.table[b] < 0]
            if missing:
                try:
                    vocab._raise_unknown(missing)
                except ValueError as e:
                    raise ValueError(f"{path}: {e}") from None
        bounds, split = _split_bounds(n, split)
        cls._check_pieces(path, bounds, split, "bytes")
        sources = [Source(mm[bounds[i]:bounds[i + 1]], vocab.table) for i in range(3)]
        named = {name: (bounds[i], bounds[i + 1]) for i, name in enumerate(SPLIT_NAMES)}
        return cls(path, "bytes", vocab, sources, named, split, n)

    @classmethod
    def _open_chars(cls, path, given, split):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not valid UTF-8 at byte offset {e.start} ({e.reason}); "
                             f"open it with vocab='bytes' to model its raw bytes") from None
        n = len(data)
        if n == 0:
            raise ValueError(f"{path}: the file is empty; a corpus needs at least 2 characters")
        vocab = Vocab.from_data(text) if given is None else given
        try:
            ids = vocab.encode(text)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        del text
        raw = np.frombuffer(data, dtype=np.uint8)
        bounds, split = _split_bounds(n, split)
        # Move each boundary forward to a character start (not a 10xxxxxx continuation byte).
        is_start = (raw & 0xC0) != 0x80
        byte_bounds = []
        for o in bounds:
            while o < n and not is_start[o]:
                o += 1
            byte_bounds.append(o)
        char_bounds = [int(np.count_nonzero(is_start[:o])) for o in byte_bounds]
        cls._check_pieces(path, char_bounds, split, "characters")
        sources = [Source(ids[char_bounds[i]:char_bounds[i + 1]]) for i in range(3)]
        named = {name: (byte_bounds[i], byte_bounds[i + 1]) for i, name in enumerate(SPLIT_NAMES)}
        return cls(path, "chars", vocab, sources, named, split, n)

    @staticmethod
    def _check_pieces(path, bounds, split, unit):
        lengths = [bounds[i + 1] - bounds[i] for i in range(3)]
        if lengths[0] < 2:
            raise ValueError(f"{path}: the train piece of split {split} has {lengths[0]} {unit}; "
                             f"it needs at least 2 (one input and its target)")
        for name, p, length in zip(SPLIT_NAMES[1:], split[1:], lengths[1:]):
            if p > 0 and length == 0:
                raise ValueError(f"{path}: the {name} piece of split {split} is empty "
                                 f"({bounds[-1]} {unit} in all); use a larger file or a "
                                 f"{name} fraction of 0")

    def __repr__(self):
        sizes = ", ".join(f"{n}={len(getattr(self, n))}" for n in SPLIT_NAMES)
        return (f"Corpus({self.path!r}, kind={self.kind!r}, vocab size {self.vocab.size}, "
                f"{sizes})")


# -- batches ------------------------------------------------------------------

_BATCHES_FORMAT = "lstm-c batches"


class Batches:
    """char-rnn batching of one source: B contiguous streams, T steps per batch.

    Stream b covers ``source[b*L : (b+1)*L]`` with ``L = N // B``; batch k
    (k = 0 .. len - 1) is

        x[t, b] = source[b*L + k*T + t]
        y[t, b] = source[b*L + k*T + t + 1]      (t < T, b < B)

    with ``len = (L - 1) // T`` batches per epoch, so a target never crosses
    into the next stream, and column b of batch k + 1 continues column b of
    batch k: carry the hidden state across batches, reset it at an epoch
    start. Every epoch gives the same batches in the same order.

    Parameters
    ----------
    source : Source or 1-D integer array
    batch_size : int
        B, the number of streams.
    seq_len : int
        T, the steps per batch (the BPTT length).
    streams : (lo, hi), optional
        Read only streams lo .. hi - 1 (columns lo:hi of every batch): one
        process's share in data-parallel training. The layout (L, the batches
        per epoch) is still that of all B streams; only these are read from
        the source, whose memory map brings in just their pages.

    Attributes
    ----------
    epoch : int
        The epoch of the next batch.
    position : int
        The index within its epoch of the next batch.
    stream_len : int
        L.
    """

    def __init__(self, source, batch_size, seq_len, streams=None):
        self.source = _as_source(source)
        self.batch_size = check.positive_int("batch_size", batch_size)
        self.seq_len = check.positive_int("seq_len", seq_len)
        lo, hi = (0, self.batch_size) if streams is None else streams
        if not 0 <= lo < hi <= self.batch_size:
            raise ValueError(f"streams: expected a range (lo, hi) with 0 <= lo < hi <= "
                             f"batch_size={self.batch_size}, got {streams!r}")
        self.streams = (int(lo), int(hi))
        n = len(self.source)
        self.stream_len = n // self.batch_size
        self._len = (self.stream_len - 1) // self.seq_len if self.stream_len > 0 else 0
        if self._len < 1:
            need = self.batch_size * (self.seq_len + 1)
            raise ValueError(f"source of {n} ids is too short for one batch of batch_size="
                             f"{self.batch_size} x seq_len={self.seq_len}: it needs at least "
                             f"batch_size * (seq_len + 1) = {need} ids")
        self._starts = np.arange(lo, hi, dtype=np.intp) * self.stream_len
        self._steps = np.arange(self.seq_len + 1, dtype=np.intp)[:, None]
        self.epoch = 0
        self.position = 0

    def __len__(self):
        """Batches per epoch: (L - 1) // T."""
        return self._len

    def batch(self, k):
        """Batch k of an epoch as (x, y), int32 arrays (T, streams read); no state change."""
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"batch index must be an int, got {k!r}")
        if not 0 <= k < self._len:
            raise IndexError(f"batch index {k} out of range [0, {self._len})")
        idx = self._steps + (self._starts + k * self.seq_len)[None, :]  # (T + 1, B)
        ids = self.source.take(idx)
        return np.ascontiguousarray(ids[:-1]), np.ascontiguousarray(ids[1:])

    def next_batch(self):
        """The batch at (epoch, position) as (x, y); then advance (past the last: a new epoch)."""
        xy = self.batch(self.position)
        self.position += 1
        if self.position == self._len:
            self.position = 0
            self.epoch += 1
        return xy

    def __iter__(self):
        """The remaining batches of the current epoch (all of them from a fresh start)."""
        start_epoch = self.epoch
        while self.epoch == start_epoch:
            yield self.next_batch()

    def iter_epochs(self, epochs=None):
        """Yield (epoch, k, x, y) until `epochs` epochs are complete (None: forever).

        `epochs` counts from epoch 0, so after a resume the run still ends at
        the same epoch. ``k == 0`` marks an epoch start: reset the hidden state.
        """
        if epochs is not None:
            epochs = check.positive_int("epochs", epochs)
        while epochs is None or self.epoch < epochs:
            epoch, k = self.epoch, self.position
            x, y = self.next_batch()
            yield epoch, k, x, y

    def state_dict(self):
        """JSON-able position, plus the layout it belongs to (checked on load)."""
        return {"format": _BATCHES_FORMAT, "epoch": self.epoch, "position": self.position,
                "batch_size": self.batch_size, "seq_len": self.seq_len,
                "length": len(self.source)}

    def load_state_dict(self, d):
        """Continue at the saved position: the following batches equal those of the saved run."""
        if not isinstance(d, dict):
            raise ValueError(f"batches state: expected a dict, got {type(d).__name__}")
        if d.get("format") != _BATCHES_FORMAT:
            raise ValueError(f"batches state: missing or foreign format marker "
                             f"{d.get('format')!r} (expected {_BATCHES_FORMAT!r})")
        for key in ("epoch", "position", "batch_size", "seq_len", "length"):
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"batches state: {key} must be an int >= 0, got {v!r}")
        mine = self.state_dict()
        for key in ("batch_size", "seq_len", "length"):
            if d[key] != mine[key]:
                raise ValueError(f"batches state: saved with {key}={d[key]}, but these batches "
                                 f"have {key}={mine[key]}; resuming would give different batches")
        if not d["position"] < self._len:
            raise ValueError(f"batches state: position {d['position']} out of range "
                             f"[0, {self._len})")
        self.epoch = int(d["epoch"])
        self.position = int(d["position"])

    def __repr__(self):
        return (f"Batches(length={len(self.source)}, batch_size={self.batch_size}, "
                f"seq_len={self.seq_len}, per_epoch={self._len}, epoch={self.epoch}, "
                f"position={self.position})")
