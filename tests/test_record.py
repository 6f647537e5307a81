"""LSTM.trace and lstm_c.record: a model's internals, character by character."""

import numpy as np
import pytest

from lstm_c import LSTM, record
from lstm_c.data import Vocab
from lstm_c.model import CharLM

TEXT = b'print("hello, world")\nif (x > 1) { y = \'a\'; }\n' * 30


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trace_gives_forwards_outputs_and_consistent_internals(backend, dtype):
    rng = np.random.default_rng(0)
    T, B, I, H, L = 9, 3, 5, 6, 2
    m = LSTM(I, H, L, dropout=0.5, dtype=dtype, backend=backend, seed=1)  # training mode
    x = rng.standard_normal((T, B, I)).astype(dtype)
    hx = tuple(0.5 * rng.standard_normal((L, B, H)).astype(dtype) for _ in range(2))
    m.eval()
    want_y, (want_h, want_c) = m.forward(x, hx, grad=False)
    m.train()
    y, (h_n, c_n), layers = m.trace(x, hx)  # no dropout, even in training mode
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(h_n, want_h)
    np.testing.assert_array_equal(c_n, want_c)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k, d in enumerate(layers):
        assert set(d) == {"h", "c", "tanh_c", "gates"}
        assert d["gates"].shape == (T, B, 4 * H) and d["h"].shape == (T, B, H)
        i, f, g, o = np.split(d["gates"].astype(np.float64), 4, axis=-1)
        c_prev = np.concatenate([hx[1][k][None], d["c"][:-1]]).astype(np.float64)
        np.testing.assert_allclose(d["c"], f * c_prev + i * g, atol=tol)
        np.testing.assert_allclose(d["tanh_c"], np.tanh(d["c"].astype(np.float64)), atol=tol)
        np.testing.assert_allclose(d["h"], o * d["tanh_c"], atol=tol)
        assert ((i > 0) & (i < 1) & (f > 0) & (f < 1) & (np.abs(g) < 1)).all()
    np.testing.assert_array_equal(layers[-1]["h"], y)


def test_trace_leaves_a_pending_backward_alone():
    rng = np.random.default_rng(1)
    m = LSTM(4, 5, 2, dtype=np.float64, seed=0)
    x, dy = rng.standard_normal((6, 2, 4)), rng.standard_normal((6, 2, 5))
    m.forward(x)
    m.backward(dy)
    want = {k: g.copy() for k, g in m.grads.items()}
    m.zero_grad()
    m.forward(x)
    m.trace(rng.standard_normal((8, 2, 4)))
    m.backward(dy)
    for k, g in m.grads.items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)


def test_trace_unbatched_and_batch_first_shapes():
    m = LSTM(3, 4, 2, batch_first=True, dtype=np.float64, seed=0)
    x = np.ones((2, 7, 3))
    y, _, layers = m.trace(x)
    assert y.shape == (2, 7, 4) and layers[0]["gates"].shape == (2, 7, 16)
    np.testing.assert_array_equal(layers[1]["h"], y)
    y1, _, layers1 = m.trace(np.ones((7, 3)))
    assert y1.shape == (7, 4) and layers1[1]["c"].shape == (7, 4)


@pytest.fixture
def model_and_vocab():
    vocab = Vocab.from_data(TEXT)
    return CharLM(vocab.size, 12, 2, 6, dropout=0.3, seed=0).eval(), vocab


def test_record_matches_the_models_own_loss_and_the_chunks_join_exactly(model_and_vocab,
                                                                        monkeypatch):
    model, vocab = model_and_vocab
    r = record.record(model, vocab, TEXT, source="t.py")
    N, L, H, V = len(TEXT), 2, 12, vocab.size
    assert len(r) == N and r.text == TEXT.decode("latin-1")
    assert r.h.shape == r.c.shape == r.tanh_c.shape == (L, N, H)
    assert r.gates.shape == (L, N, 4, H) and r.probs.shape == (N, V)
    np.testing.assert_allclose(r.probs.sum(axis=1), 1.0, rtol=1e-5)
    ids = vocab.encode(TEXT)
    loss, _ = model.forward(ids[:-1, None], ids[1:, None], grad=False)
    assert r.nats_per_char == pytest.approx(loss, rel=1e-5)
    assert r.bits_per_char == pytest.approx(loss / np.log(2), rel=1e-5)
    assert [r.labels[i] for i in ids[:5]] == list("print")
    # 1000-character chunks (state carried) equal one pass over the whole text
    monkeypatch.setattr(record, "CHUNK", N)
    whole = record.record(model, vocab, TEXT)
    for name in ("h", "c", "tanh_c", "gates"):
        np.testing.assert_allclose(getattr(r, name), getattr(whole, name), atol=2e-6,
                                   err_msg=name)


def test_record_refuses_long_texts_and_unknown_symbols(model_and_vocab):
    model, vocab = model_and_vocab
    with pytest.raises(ValueError, match="max_chars"):
        record.record(model, vocab, TEXT, max_chars=100)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        record.record(model, vocab, b"print(\xff)")
    with pytest.raises(ValueError, match="at least 2"):
        record.record(model, vocab, b"p")


def test_read_text_starts_at_the_next_paragraph_or_line(tmp_path):
    from lstm_c.cell_report import read_text
    path = tmp_path / "t.txt"
    path.write_bytes(b'He said "no.\r\n\r\n"Yes," she said.\r\nEnd\n')
    assert read_text(path) == b'He said "no.\r\n\r\n"Yes," she said.\r\nEnd\n'
    assert read_text(path, offset=3) == b'"Yes," she said.\r\nEnd\n'   # not inside the quote
    assert read_text(path, offset=20, max_chars=4) == b"End\n"          # no blank line: next line
    assert read_text(path, offset=3, kind="chars", max_chars=5) == '"Yes,'
