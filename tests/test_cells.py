"""Tests for the interpretable-cell search: text features, the synthetic corpus, find_cells.

Feature expectations are written as a string of 0/1 (or digits) lined up under
the text, one mark per character. No model is trained here: find_cells runs on
fake recordings with planted cells.
"""

import warnings

import numpy as np
import pytest

from lstm_c.cells import CellMatch, correlations, find_cells
from lstm_c.features import FEATURES, text_features
from lstm_c.record import Recording
from lstm_c.synthetic import generate


def marks(s):
    """'0112' -> array([0., 1., 1., 2.]): one digit per character."""
    return np.array([int(ch) for ch in s], np.float64)


def feature(text, name):
    return text_features(text, [name])[name]


# ---------------------------------------------------------------- features


def test_every_feature_is_float64_with_one_value_per_character():
    text = 'if (x) {\n\ty = "a" # c\n}'
    out = text_features(text)
    assert tuple(out) == FEATURES
    for name, values in out.items():
        assert values.dtype == np.float64, name
        assert values.shape == (len(text),), name


def test_empty_text_gives_empty_features():
    assert all(v.shape == (0,) for v in text_features("").values())


def test_line_position():
    assert np.array_equal(feature("ab\ncd\n\ne", "line position"), [0, 1, 2, 0, 1, 2, 0, 0])


def test_double_quotes_open_at_the_quote_close_after_it_and_span_lines():
    text = 'a "b c" d\n"e\nf"'
    want = '001111000011110'
    assert np.array_equal(feature(text, "inside double quotes"), marks(want))


def test_single_quotes_skip_apostrophes_and_reset_at_newline():
    text = "don't 'x'\n'a\nb"
    want = "00000011001100"
    assert np.array_equal(feature(text, "inside single quotes"), marks(want))


def test_bracket_depth_counts_all_kinds_and_never_goes_negative():
    text = "f(a[b]{c}) )x("
    want = "01122122100001"
    assert np.array_equal(feature(text, "bracket depth"), marks(want))


def test_if_condition_needs_the_whole_keyword_and_ends_at_the_matching_paren():
    text = "if (a(b)) x; elif(c) gif (d) while  (e) z if(f)"
    want = "00011111" + "0" * 28 + "11" + "0" * 6 + "11" + "0"
    assert np.array_equal(feature(text, "if condition"), marks(want))


def test_indentation_counts_spaces_and_tabs_as_four_on_every_character():
    text = "a\n  b c\n\tx\n    \n"
    want = [0, 0] + [2] * 6 + [4] * 3 + [4] * 5
    assert np.array_equal(feature(text, "indentation"), want)


@pytest.mark.parametrize("text, string, comment", [
    ('x = "# not a comment"  # a comment',
     '0000111111111111111100000000000000',
     '0000000000000000000000011111111111'),
    (r's = "a\"b" + ' + "'c'",
     r'0000111110000110',
     r'0000000000000000'),
    ('x = """a\n"b"\n""" # c',
     '00001111111110000000',
     '00000000000000000111'),
    ('a /* "x" */ "/* y */" // z',
     '00000000000011111111000000',
     '00111111100000000000001111'),
    ("x = \"abc\ny = 'd' # don't",
     "000011110000011000000000",
     "000000000000000001111111"),
    ('x = "a\\\nb" z',
     '000011111000',
     '000000000000'),
])
def test_comments_and_strings_are_not_confused(text, string, comment):
    assert len(text) == len(string) == len(comment), "the test's marks are misaligned"
    out = text_features(text, ["inside string", "inside comment"])
    assert np.array_equal(out["inside string"], marks(string))
    assert np.array_equal(out["inside comment"], marks(comment))


def test_kinds_selects_in_the_order_given():
    out = text_features("a(b)", kinds=["bracket depth", "line position"])
    assert list(out) == ["bracket depth", "line position"]
    assert list(text_features("a", "indentation")) == ["indentation"]


def test_unknown_feature_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid names.*line position"):
        text_features("abc", ["line position", "inside parens"])


def test_features_of_a_long_text_repeat_with_the_text():
    unit = ('def f(x):\n    if (x > 1):  # "big"\n        return \'a\\\'b\' + "(c)"\n'
            '/* block */ while (y) { z[i] = 0; }\n')
    one, many = text_features(unit), text_features(unit * 250)
    assert len(unit) * 250 > 20_000
    for name in FEATURES:  # every state closes within the unit, so nothing leaks across copies
        assert np.array_equal(many[name], np.tile(one[name], 250)), name


# ---------------------------------------------------------------- synthetic corpus


def test_synthetic_corpus_is_deterministic_in_the_seed():
    text, latent = generate(3000, seed=5)
    again, latent_again = generate(3000, seed=5)
    assert text == again
    for name in latent:
        assert np.array_equal(latent[name], latent_again[name])
    assert generate(3000, seed=6)[0] != text


def test_synthetic_corpus_has_a_small_vocabulary_and_the_asked_length():
    text, latent = generate(5000, seed=1)
    assert len(text) == 5000
    assert set(text) <= set('abcdefghijklmnopqrstuvwxyz "()\n')
    assert len(set(text)) <= 20
    assert {'"', "(", ")", "\n"} <= set(text)
    for values in latent.values():
        assert values.dtype == np.float64 and values.shape == (5000,)
    assert max(len(line) for line in text.split("\n")) <= 80
    assert latent["bracket depth"].max() == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_latents_agree_with_the_features_of_the_text(seed):
    text, latent = generate(4000, seed=seed)
    parsed = text_features(text, list(latent))
    for name in latent:
        assert np.array_equal(latent[name], parsed[name]), name
    assert latent["inside double quotes"].any()


# ---------------------------------------------------------------- find_cells


def fake_recording(tanh_c, text=None, h=None):
    """A Recording around given cell values (L, N, H); other fields are placeholders."""
    L, N, H = tanh_c.shape
    tanh_c = tanh_c.astype(np.float32)
    return Recording(
        text="a" * N if text is None else text,
        ids=np.zeros(N, np.int32),
        h=np.zeros_like(tanh_c) if h is None else h.astype(np.float32),
        c=np.arctanh(np.clip(tanh_c, -0.999, 0.999)),
        tanh_c=tanh_c,
        gates=np.zeros((L, N, 4, H), np.float32),
        probs=np.ones((N, 1), np.float32),
        labels=["a"],
        nats_per_char=0.0,
        model_config={},
    )


@pytest.fixture
def planted():
    """Two features and a recording with cells planted to track them, the rest noise."""
    rng = np.random.default_rng(0)
    N = 2000
    features = {"quote": (rng.random(N) < 0.3).astype(np.float64),
                "position": (np.arange(N) % 37).astype(np.float64)}
    cells = 0.5 * rng.standard_normal((2, N, 16))
    cells[1, :, 5] = features["quote"] + 0.2 * rng.standard_normal(N)           # strong, +
    cells[0, :, 2] = features["quote"] + 1.0 * rng.standard_normal(N)           # weaker, +
    cells[0, :, 9] = -features["position"] / 37 + 0.05 * rng.standard_normal(N)  # strong, -
    return fake_recording(cells), features


def test_find_cells_ranks_the_planted_cells_first_with_their_sign(planted):
    recording, features = planted
    found = find_cells(recording, features, top=2)
    assert [m[:3] for m in found] == [("quote", 1, 5), ("quote", 0, 2),
                                      ("position", 0, 9), found[3][:3]]
    assert all(isinstance(m, CellMatch) for m in found)
    assert found[0].correlation > 0.9 and 0.2 < found[1].correlation < found[0].correlation
    assert found[2].correlation < -0.9
    assert abs(found[3].correlation) < 0.2  # the best unplanted cell is noise


def test_correlations_match_numpy_corrcoef(planted):
    recording, features = planted
    r = correlations(recording, features)
    for name, values in features.items():
        assert r[name].shape == (2, 16)
        for k in range(2):
            for j in range(16):
                want = np.corrcoef(recording.tanh_c[k, :, j].astype(np.float64), values)[0, 1]
                assert r[name][k, j] == pytest.approx(want, abs=1e-10)


def test_top_none_keeps_every_cell_sorted_by_strength(planted):
    recording, features = planted
    found = find_cells(recording, {"quote": features["quote"]}, top=None)
    assert len(found) == 2 * 16
    strengths = [abs(m.correlation) for m in found]
    assert strengths == sorted(strengths, reverse=True)
    with pytest.raises(ValueError):
        find_cells(recording, features, top=0)


def test_value_selects_which_state_is_searched():
    rng = np.random.default_rng(1)
    N = 500
    target = rng.standard_normal(N)
    h = 0.1 * rng.standard_normal((1, N, 4))
    h[0, :, 3] = target
    recording = fake_recording(0.1 * rng.standard_normal((1, N, 4)), h=h)
    assert find_cells(recording, {"t": target}, value="h")[0][:3] == ("t", 0, 3)
    assert abs(find_cells(recording, {"t": target})[0].correlation) < 0.3
    with pytest.raises(ValueError, match="value"):
        find_cells(recording, {"t": target}, value="gates")


def test_constant_features_and_cells_score_zero_without_warnings():
    rng = np.random.default_rng(2)
    N = 300
    cells = rng.standard_normal((2, N, 3))
    cells[0, :, 1] = 0.7  # a constant cell, inexact in binary
    recording = fake_recording(cells)
    features = {"zero": np.zeros(N), "tenth": np.full(N, 0.1), "noise": rng.standard_normal(N)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = correlations(recording, features)
    assert np.array_equal(r["zero"], np.zeros((2, 3)))
    assert np.array_equal(r["tenth"], np.zeros((2, 3)))
    assert r["noise"][0, 1] == 0.0
    assert np.all(np.isfinite(r["noise"]))


def test_default_features_are_read_from_the_recorded_text():
    text, latent = generate(1500, seed=3)
    rng = np.random.default_rng(3)
    cells = rng.standard_normal((1, len(text), 8))
    cells[0, :, 6] = latent["inside double quotes"] + 0.3 * rng.standard_normal(len(text))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the code features of this prose are all constant 0
        found = find_cells(fake_recording(cells, text=text))
    assert [m.feature for m in found] == list(FEATURES)
    assert found[FEATURES.index("inside double quotes")][1:3] == (0, 6)
    assert found[FEATURES.index("inside comment")].correlation == 0.0


def test_a_feature_of_the_wrong_length_names_both_lengths(planted):
    recording, features = planted
    with pytest.raises(ValueError, match=r"\(1999,\).*2000 characters"):
        find_cells(recording, {"short": np.zeros(1999)})


def test_find_cells_is_also_lstm_c_viz_find_cells():
    from lstm_c import viz
    assert viz.find_cells is find_cells
