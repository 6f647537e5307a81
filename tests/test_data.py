"""Vocabulary, corpus split and char-rnn batching (lstm_c.data)."""

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lstm_c import data
from lstm_c.data import Batches, Corpus, Vocab

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# shared/data/README.md: N and the split boundaries, byte offsets, copied from its table.
README_SPLITS = {
    "tinyshakespeare": (1_115_394, 65, {
        (0.90, 0.05, 0.05): [(0, 1003854), (1003854, 1059624), (1059624, 1115394)],
        (0.80, 0.10, 0.10): [(0, 892315), (892315, 1003854), (1003854, 1115394)],
    }),
    "warpeace": (3_258_246, 87, {
        (0.90, 0.05, 0.05): [(0, 2932421), (2932421, 3095333), (3095333, 3258246)],
        (0.80, 0.10, 0.10): [(0, 2606596), (2606596, 2932421), (2932421, 3258246)],
    }),
}


def write(tmp_path, content, name="corpus.txt"):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


TEXT = "Hello, wörld!\nÀ bientôt, señor.\r\n" * 5  # multi-byte characters, CRLF


# -- Vocab --------------------------------------------------------------------


def test_vocab_bytes_is_sorted_distinct_bytes():
    raw = TEXT.encode("utf-8")
    v = Vocab.from_data(raw)
    assert v.kind == "bytes"
    assert v.symbols == sorted(set(raw))
    assert v.size == len(v) == len(set(raw))
    assert v.table.shape == (256,)
    assert all(v.table[b] == i for i, b in enumerate(v.symbols))
    assert np.count_nonzero(v.table >= 0) == v.size


def test_vocab_bytes_counted_in_chunks(monkeypatch):
    raw = np.random.default_rng(0).integers(0, 200, size=10_001, dtype=np.uint8)
    whole = Vocab.from_data(raw)
    monkeypatch.setattr(data, "_CHUNK", 7)
    assert Vocab.from_data(raw) == whole
    assert whole.symbols == sorted(set(raw.tolist()))


def test_vocab_chars_is_sorted_distinct_code_points():
    v = Vocab.from_data(TEXT)
    assert v.kind == "chars"
    assert v.symbols == sorted(set(TEXT))
    assert all(isinstance(s, str) and len(s) == 1 for s in v.symbols)
    assert Vocab.from_data(TEXT.encode("utf-8"), kind="chars") == v


@pytest.mark.parametrize("kind", ["bytes", "chars"])
def test_encode_decode_round_trip(kind):
    v = Vocab.from_data(TEXT, kind=kind)
    ids = v.encode(TEXT)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.min() >= 0 and ids.max() < v.size
    out = v.decode(ids)
    if kind == "bytes":
        assert isinstance(out, bytes) and out == TEXT.encode("utf-8")
        assert len(ids) == len(TEXT.encode("utf-8"))
        assert np.array_equal(v.encode(TEXT.encode("utf-8")), ids)
    else:
        assert isinstance(out, str) and out == TEXT
        assert len(ids) == len(TEXT)
    assert v.decode(np.stack([ids, ids])) == out + out  # any shape, read in C order
    assert v.decode([]) == out[:0]


@pytest.mark.parametrize("kind", ["bytes", "chars"])
def test_encode_unknown_symbols(kind):
    v = Vocab.from_data("abc", kind=kind)
    with pytest.raises(ValueError, match="not in the vocabulary") as e:
        v.encode("abXcYX")
    msg = str(e.value)
    assert "'X'" in msg and "'Y'" in msg and "training file" in msg and "unknown='skip'" in msg
    assert v.decode(v.encode("abXcYX", unknown="skip")) == ("abc" if kind == "chars" else b"abc")
    with pytest.raises(ValueError, match="unknown must be"):
        v.encode("a", unknown="ignore")


def test_encode_unknown_lists_at_most_ten():
    v = Vocab.from_data(b"a")
    with pytest.raises(ValueError, match="and 5 more"):
        v.encode(bytes(range(98, 113)))


def test_decode_refuses_out_of_range_ids():
    v = Vocab.from_data("abc")
    with pytest.raises(ValueError, match=r"\[0, 3\), got 3"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match="got -1"):
        v.decode([-1])
    with pytest.raises(TypeError, match="integer ids"):
        v.decode([0.5])


@pytest.mark.parametrize("kind", ["bytes", "chars"])
def test_vocab_json_round_trip(kind):
    v = Vocab.from_data(TEXT, kind=kind)
    d = json.loads(json.dumps(v.to_json()))
    assert Vocab.from_json(d) == v
    assert d["kind"] == kind and d["size"] == v.size


def test_vocab_json_chars_as_code_point_list():
    v = Vocab.from_json({"kind": "chars", "symbols": [10, 97, 0xE9]})
    assert v.symbols == ["\n", "a", "é"]


@pytest.mark.parametrize("bad, match", [
    ([], "expected an object"),
    ({"kind": "bytes"}, "missing 'symbols'"),
    ({"kind": "words", "symbols": [1]}, "kind must be"),
    ({"kind": "bytes", "symbols": [1, 2, 2]}, "duplicates"),
    ({"kind": "bytes", "symbols": [1, 256]}, r"\[0, 256\)"),
    ({"kind": "bytes", "symbols": [-1]}, r"\[0, 256\)"),
    ({"kind": "bytes", "symbols": [1.0]}, "ints"),
    ({"kind": "bytes", "symbols": [True]}, "ints"),
    ({"kind": "bytes", "symbols": "abc"}, "list of ints"),
    ({"kind": "bytes", "symbols": []}, "at least one"),
    ({"kind": "chars", "symbols": "abca"}, "duplicates"),
    ({"kind": "chars", "symbols": ["ab"]}, "code points"),
    ({"kind": "chars", "symbols": [0x110000]}, "code points"),
    ({"kind": "chars", "symbols": [0xD800]}, "surrogates"),
    ({"kind": "chars", "symbols": 5}, "string or a list"),
    ({"kind": "bytes", "symbols": [1, 2], "size": 3}, "size is 3"),
    ({"kind": "bytes", "symbols": [1], "extra": 0}, "unexpected keys"),
])
def test_vocab_json_corrupt(bad, match):
    with pytest.raises(ValueError, match=match):
        Vocab.from_json(bad)


# -- split --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(README_SPLITS))
@pytest.mark.parametrize("split", [(0.90, 0.05, 0.05), (0.80, 0.10, 0.10)])
def test_split_boundaries_match_readme(name, split):
    n, _, table = README_SPLITS[name]
    bounds, _ = data._split_bounds(n, split)
    assert [(bounds[i], bounds[i + 1]) for i in range(3)] == table[split]
    # floor(N * p / 100) with integer percentages, exactly as the README says
    pct = [round(p * 100) for p in split]
    assert bounds[1] == n * pct[0] // 100 and bounds[2] == n * (pct[0] + pct[1]) // 100


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared/data corpora not present")
@pytest.mark.parametrize("name", sorted(README_SPLITS))
def test_real_corpora(name):
    path = SHARED_DATA / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    n, distinct, table = README_SPLITS[name]
    for split, expected in table.items():
        c = Corpus.open(path, split=split)
        assert c.n_bytes == n and c.vocab.size == distinct and c.kind == "bytes"
        assert [c.bounds[k] for k in data.SPLIT_NAMES] == expected
        assert [len(c.train), len(c.val), len(c.test)] == [b - a for a, b in expected]
        assert isinstance(c.train.raw, np.memmap)
    # chars mode splits at the same byte offsets (they fall on character starts)
    c = Corpus.open(path, vocab="chars")
    assert [c.bounds[k] for k in data.SPLIT_NAMES] == table[(0.90, 0.05, 0.05)]
    raw = path.read_bytes()
    for k, src in zip(data.SPLIT_NAMES, (c.train, c.val, c.test)):
        a, b = c.bounds[k]
        assert c.vocab.decode(src[:]) == raw[a:b].decode("utf-8")


def test_corpus_split_pieces(tmp_path):
    raw = bytes(range(32, 127)) * 3  # 285 bytes
    c = Corpus.open(write(tmp_path, raw), split=(0.5, 0.3, 0.2))
    a, b = math.floor(285 * Fraction(1, 2)), math.floor(285 * Fraction(4, 5))
    assert c.bounds == {"train": (0, a), "val": (a, b), "test": (b, 285)}
    joined = np.concatenate([c.train[:], c.val[:], c.test[:]])
    assert c.vocab.decode(joined) == raw
    assert c.split == (0.5, 0.3, 0.2)


def test_corpus_chars_boundary_moves_to_char_start(tmp_path):
    raw = ("b" + "aé" * 10).encode("utf-8")  # 31 bytes; byte 15 = floor(31 * 0.5) ends an "é"
    assert (raw[15] & 0xC0) == 0x80
    c = Corpus.open(write(tmp_path, raw), vocab="chars", split=(0.5, 0.5, 0.0))
    a = c.bounds["train"][1]
    assert a == 16
    assert raw[:a].decode("utf-8") == c.vocab.decode(c.train[:])
    assert raw[a:].decode("utf-8") == c.vocab.decode(c.val[:])
    assert len(c.test) == 0


@pytest.mark.parametrize("split, exc, match", [
    ((0.9, 0.05), ValueError, "3 fractions"),
    ((0.9, 0.1, 0.1), ValueError, "sum to 1"),
    ((90, 5, 5), ValueError, "not percentages"),
    ((1.2, -0.1, -0.1), ValueError, r"in \[0, 1\]"),
    ((0.0, 0.5, 0.5), ValueError, "train fraction must be > 0"),
    ((float("nan"), 0.5, 0.5), ValueError, r"in \[0, 1\]"),
    (("0.9", 0.05, 0.05), TypeError, "must be a number"),
    (0.9, TypeError, "3 fractions"),
])
def test_bad_split_fractions(tmp_path, split, exc, match):
    with pytest.raises(exc, match=match):
        Corpus.open(write(tmp_path, "abcdefghij" * 10), split=split)


def test_split_piece_too_short(tmp_path):
    p = write(tmp_path, "abcdefghij")
    with pytest.raises(ValueError, match="val piece .* is empty"):
        Corpus.open(p, split=(0.95, 0.04, 0.01))
    c = Corpus.open(p, split=(1, 0, 0))  # a zero fraction is allowed to be empty
    assert len(c.train) == 10 and len(c.val) == len(c.test) == 0
    with pytest.raises(ValueError, match="too short for one batch"):
        Batches(c.val, 1, 1)
    with pytest.raises(ValueError, match="train piece .* at least 2"):
        Corpus.open(write(tmp_path, "a", "one.txt"))


def test_corpus_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file") as e:
        Corpus.open(tmp_path / "missing.txt")
    assert "missing.txt" in str(e.value)
    with pytest.raises(ValueError, match="is a directory"):
        Corpus.open(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        Corpus.open(write(tmp_path, b"", "empty.txt"))
    with pytest.raises(ValueError, match="empty"):
        Corpus.open(write(tmp_path, b"", "empty.txt"), vocab="chars")
    bad = write(tmp_path, b"abc\xff\xfedef" * 20, "latin.txt")
    with pytest.raises(ValueError, match=r"latin.txt: not valid UTF-8 at byte offset 3"):
        Corpus.open(bad, vocab="chars")
    assert Corpus.open(bad).vocab.size == 8  # bytes mode reads anything
    with pytest.raises(ValueError, match="vocab must be"):
        Corpus.open(bad, vocab="words")


def test_corpus_with_given_vocab(tmp_path):
    v = Vocab.from_data("abc ")
    c = Corpus.open(write(tmp_path, "cab abc " * 10), vocab=v)
    assert c.vocab is v
    with pytest.raises(ValueError, match=r"other.txt: .*'z'.*training file"):
        Corpus.open(write(tmp_path, "abcz" * 10, "other.txt"), vocab=v)
    vc = Vocab.from_data("abcé")
    c = Corpus.open(write(tmp_path, "éa" * 20, "c.txt"), vocab=vc, split=(1, 0, 0))
    assert c.vocab.decode(c.train[:]) == "éa" * 20


def test_bytes_corpus_is_a_memmap_and_not_loaded(tmp_path):
    size = 50 << 20
    p = tmp_path / "big.txt"
    block = (b"The quick brown fox jumps over the lazy dog.\n" * 1000)[:1 << 16]
    with open(p, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    before = _rss_anon()
    c = Corpus.open(p)
    after = _rss_anon()
    for src in (c.train, c.val, c.test):
        assert isinstance(src.raw, np.memmap) and src.raw.dtype == np.uint8
    assert Path(c.train.raw.filename) == p.resolve()
    assert not np.shares_memory(c.train.raw, c.val.raw)  # disjoint views of one map
    assert c.vocab.size == len(set(block))
    x, y = Batches(c.train, 4, 64).next_batch()
    assert c.vocab.decode(x[:, 0]) == block[:64]
    if before is not None:
        assert after - before < 24 << 20, f"opening grew anonymous memory by {after - before} B"


def _rss_anon():
    """Resident anonymous memory (not file pages) of this process in bytes, Linux only."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- Source -------------------------------------------------------------------


def test_source_maps_through_table(tmp_path):
    c = Corpus.open(write(tmp_path, "hello world"), split=(1, 0, 0))
    s = c.train
    assert len(s) == 11
    ids = c.vocab.encode("hello world")
    assert np.array_equal(s[:], ids) and s[:].dtype == np.int32
    assert s[4] == ids[4] and s[-1] == ids[-1] and isinstance(s[0], int)
    assert np.array_equal(s.take([[0, 1], [2, 3]]), ids[[[0, 1], [2, 3]]])
    assert np.array_equal(np.asarray(s), ids)
    with pytest.raises(IndexError):
        s[11]


# -- Batches ------------------------------------------------------------------


def test_batches_layout():
    n, B, T = 103, 4, 5
    src = np.arange(n) + 1000
    bt = Batches(src, B, T)
    L = n // B
    assert bt.stream_len == L == 25 and len(bt) == (L - 1) // T == 4
    for k in range(len(bt)):
        x, y = bt.batch(k)
        assert x.shape == y.shape == (T, B) and x.dtype == y.dtype == np.int32
        assert x.flags.c_contiguous and y.flags.c_contiguous
        for b in range(B):
            for t in range(T):
                assert x[t, b] == src[b * L + k * T + t]
                assert y[t, b] == src[b * L + k * T + t + 1]
        assert np.array_equal(x[1:], y[:-1])  # y is x shifted by one
    x0, _ = bt.batch(0)
    assert np.array_equal(x0[0], src[np.arange(B) * L])  # stream b starts at b * (N // B)


@pytest.mark.parametrize("n, B, T", [(103, 4, 5), (100, 4, 5), (26, 1, 25), (50, 5, 1),
                                     (97, 3, 7), (12, 2, 5)])
def test_batches_no_crossing_and_coverage(n, B, T):
    bt = Batches(np.arange(n), B, T)
    L = n // B
    used = np.zeros(n, dtype=int)
    for x, y in bt:
        assert np.array_equal(y, x + 1)
        stream_of_x, stream_of_y = x // L, y // L
        assert np.array_equal(stream_of_x, stream_of_y)  # no target in the next stream
        assert np.array_equal(stream_of_x[0], np.arange(B))  # column b is stream b
        np.add.at(used, x.ravel(), 1)
    assert bt.epoch == 1 and bt.position == 0
    assert used.max() == 1  # each id an input at most once per epoch
    per_stream = len(bt) * T
    for b in range(B):
        assert used[b * L: b * L + per_stream].all()  # every id before the tail is used
        assert not used[b * L + per_stream: (b + 1) * L].any()  # the tail, >= 1 id, is not
        assert 1 <= L - per_stream <= T
    assert not used[B * L:].any()


def test_batches_columns_continue_across_batches():
    bt = Batches(np.arange(200), 3, 6)
    prev = None
    for x, y in bt:
        if prev is not None:
            assert np.array_equal(x[0], prev[-1])  # carry the state: the text continues
        prev = y
    assert prev is not None


def test_batches_epochs_and_resume():
    src = np.random.default_rng(1).integers(0, 50, size=997)
    ref = Batches(src, 4, 7)
    per = len(ref)
    full = [ref.next_batch() for _ in range(3 * per + 5)]
    assert ref.epoch == 3 and ref.position == 5
    # every epoch gives the same batches
    for k in range(per):
        assert np.array_equal(full[k][0], full[per + k][0])
    for stop in (0, 1, per - 1, per, per + 3, 2 * per + per // 2):
        a = Batches(src, 4, 7)
        for _ in range(stop):
            a.next_batch()
        saved = json.loads(json.dumps(a.state_dict()))
        b = Batches(src, 4, 7)
        b.load_state_dict(saved)
        assert (b.epoch, b.position) == (stop // per, stop % per)
        for i in range(stop, len(full)):
            x, y = b.next_batch()
            assert np.array_equal(x, full[i][0]) and np.array_equal(y, full[i][1]), (stop, i)


def test_batches_iter_epochs():
    bt = Batches(np.arange(60), 2, 4)
    per = len(bt)
    got = list(bt.iter_epochs(3))
    assert len(got) == 3 * per
    assert [(e, k) for e, k, _, _ in got] == [(e, k) for e in range(3) for k in range(per)]
    assert bt.epoch == 3 and list(bt.iter_epochs(3)) == []
    # resumed mid-run, the count is absolute: it still ends after epoch 2
    bt2 = Batches(np.arange(60), 2, 4)
    bt2.load_state_dict({**bt2.state_dict(), "epoch": 1, "position": 2})
    rest = list(bt2.iter_epochs(3))
    assert [(e, k) for e, k, _, _ in rest] == [(e, k) for e, k, _, _ in got[per + 2:]]
    forever = bt2.iter_epochs()
    for _ in range(5 * per):
        next(forever)
    assert bt2.epoch == 8


def test_batches_iter_is_rest_of_epoch():
    bt = Batches(np.arange(60), 2, 4)
    bt.next_batch()
    assert len(list(bt)) == len(bt) - 1 and bt.epoch == 1
    assert len(list(bt)) == len(bt) and bt.epoch == 2


def test_batches_from_corpus_decode(tmp_path):
    text = "".join(chr(97 + i % 26) for i in range(500))
    c = Corpus.open(write(tmp_path, text), vocab="chars", split=(1, 0, 0))
    bt = Batches(c.train, 5, 9)
    x, y = bt.batch(2)
    L = 100
    assert c.vocab.decode(x[:, 3]) == text[3 * L + 18: 3 * L + 27]
    assert c.vocab.decode(y[:, 3]) == text[3 * L + 19: 3 * L + 28]


def test_batches_errors():
    with pytest.raises(ValueError, match=r"too short .* batch_size \* \(seq_len \+ 1\) = 12"):
        Batches(np.arange(11), 2, 5)
    Batches(np.arange(12), 2, 5)
    with pytest.raises(TypeError, match="batch_size"):
        Batches(np.arange(100), 2.0, 5)
    with pytest.raises(ValueError, match="seq_len"):
        Batches(np.arange(100), 2, 0)
    with pytest.raises(ValueError, match="1-D"):
        Batches(np.zeros((10, 10), dtype=int), 2, 2)
    with pytest.raises(TypeError, match="integer ids"):
        Batches(np.zeros(100), 2, 2)
    bt = Batches(np.arange(100), 2, 5)
    with pytest.raises(IndexError):
        bt.batch(len(bt))
    good = bt.state_dict()
    for bad, match in [({**good, "seq_len": 6}, "seq_len=6"),
                       ({**good, "length": 99}, "length=99"),
                       ({**good, "position": len(bt)}, "out of range"),
                       ({**good, "epoch": -1}, "epoch must be"),
                       ({**good, "format": "x"}, "format marker"),
                       ([], "expected a dict")]:
        with pytest.raises(ValueError, match=match):
            bt.load_state_dict(bad)
    assert (bt.epoch, bt.position) == (0, 0)
