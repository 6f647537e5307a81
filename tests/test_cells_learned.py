"""The cell search on ground truth: train a small model on text whose hidden
state is known, then ask the search, not the test, which cell tracks it."""

import numpy as np
import pytest

from lstm_c import cells, record, synthetic
from lstm_c.features import text_features
from lstm_c.train import TrainConfig, load_model, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synthetic")
    text, _ = synthetic.generate(100_000, seed=0)
    (tmp / "train.txt").write_text(text)
    cfg = TrainConfig(num_layers=1, hidden_size=32, embed_size=8, seq_len=50, batch_size=16,
                      lr=1e-2, max_steps=800, eval_every=800, eval_chars=5000, seed=0)
    summary = train(str(tmp / "train.txt"), str(tmp / "run"), cfg, progress=False,
                    log=lambda msg: None)
    model, vocab, _ = load_model(str(tmp / "run"))
    return model, vocab, summary


def test_the_search_finds_a_cell_that_tracks_the_quote_state(trained):
    model, vocab, summary = trained
    assert summary["best_val_bpc"] < 2.0  # it learned the text (a uniform guess: 3.9 bits)
    text, latent = synthetic.generate(5000, seed=1)  # text it never saw
    rec = record.record(model, vocab, text)
    best = {m.feature: m for m in cells.find_cells(rec, features=latent, top=1)}
    quote = best["inside double quotes"]
    assert abs(quote.correlation) >= 0.8, quote
    # The same cell is found from the text alone, with the features parsed from it.
    parsed = {m.feature: m for m in cells.find_cells(rec, top=1)}["inside double quotes"]
    assert (parsed.layer, parsed.unit) == (quote.layer, quote.unit)
    assert parsed.correlation == pytest.approx(quote.correlation)
    # and its activation really separates the two states
    value = rec.tanh_c[quote.layer, :, quote.unit]
    inside = latent["inside double quotes"] > 0
    gap = value[inside].mean() - value[~inside].mean()
    assert np.sign(gap) == np.sign(quote.correlation) and abs(gap) > 0.5
    np.testing.assert_array_equal(text_features(text)["inside double quotes"],
                                  latent["inside double quotes"])
