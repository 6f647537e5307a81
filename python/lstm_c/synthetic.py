"""A synthetic corpus whose hidden state is known at every character.

`generate` writes lines of short words, wraps some runs of words in double
quotes and some in parentheses (nested up to `MAX_DEPTH`), and records, as it
writes each character, the state it is in: inside double quotes, bracket
depth, line position. A small character LSTM learns this text in seconds, so
the cell search (`lstm_c.cells.find_cells`) can be checked against the truth
instead of against features parsed from the text.

The recorded state follows `lstm_c.features`: a span is half-open, so an
opening quote or parenthesis already counts as inside and the closing one as
outside, and ``latent["inside double quotes"]`` equals
``text_features(text)["inside double quotes"]`` exactly.
"""

import numpy as np

from lstm_c import _validate as check

# Ten letters make every word; with space, quote, parentheses and newline the
# vocabulary has 15 symbols. Quoted speech has words of its own, so that
# knowing whether it is inside quotes helps the model predict, as in prose.
WORDS = ("a", "an", "the", "cat", "sat", "on", "hat", "ten", "rats", "ate", "tin", "cans")
QUOTED_WORDS = ("in", "this", "nest", "not", "so", "its", "ties", "tore", "hens", "share",
                "ice", "race")
MAX_DEPTH = 3                 # deepest nesting of parentheses
LINE_LENGTHS = (20, 70)       # a line is cut before the word that would pass its drawn length
P_OPEN_QUOTE = 0.06           # per word, when not already inside quotes
P_OPEN_PAREN = 0.08           # per word, when shallower than MAX_DEPTH
P_CLOSE = 0.25                # per word, for the innermost span once it holds a word
LATENTS = ("inside double quotes", "bracket depth", "line position")


def generate(n_chars, seed=0):
    """Generate `n_chars` characters of text and the state behind each one.

    Parameters
    ----------
    n_chars : int >= 1
        Length of the text; the last span or line may be cut off.
    seed : int
        The same seed gives the same text.

    Returns
    -------
    text : str of length n_chars
    latent : dict of str to float64 array of shape (n_chars,)
        ``"inside double quotes"`` (1 from an opening quote up to, not
        including, its closing quote), ``"bracket depth"`` (open parentheses,
        an opening one counted already, a closing one no longer) and
        ``"line position"`` (0 at the first character of a line).
    """
    n_chars = check.positive_int("n_chars", n_chars)
    rng = np.random.default_rng(seed)
    writer = _Writer()
    open_spans = []    # the delimiters still open, innermost last
    words_in_span = 0  # words written since the innermost span opened
    line_length = rng.integers(LINE_LENGTHS[0], LINE_LENGTHS[1] + 1)
    while len(writer.chars) < n_chars:
        if open_spans and words_in_span and rng.random() < P_CLOSE:
            closer = ")" if open_spans[-1] == "(" else '"'
            open_spans.pop()
            writer.write(closer, open_spans)
            words_in_span = 1  # the enclosing span now holds this one, so it may close
            continue

        opener = ""
        if '"' not in open_spans and rng.random() < P_OPEN_QUOTE:
            opener = '"'
        elif open_spans.count("(") < MAX_DEPTH and rng.random() < P_OPEN_PAREN:
            opener = "("
        words = QUOTED_WORDS if '"' in open_spans else WORDS
        word = words[rng.integers(len(words))]

        if writer.column and writer.column + 1 + len(opener) + len(word) > line_length:
            writer.write("\n", open_spans)
            line_length = rng.integers(LINE_LENGTHS[0], LINE_LENGTHS[1] + 1)
        elif writer.column:
            writer.write(" ", open_spans)
        if opener:
            open_spans.append(opener)
            writer.write(opener, open_spans)
            words_in_span = 0
        for ch in word:
            writer.write(ch, open_spans)
        words_in_span += 1

    text = "".join(writer.chars[:n_chars])
    latent = {name: np.array(values[:n_chars], np.float64)
              for name, values in writer.latent.items()}
    return text, latent


class _Writer:
    """Appends characters and, with each one, the state after writing it."""

    def __init__(self):
        self.chars = []
        self.latent = {name: [] for name in LATENTS}
        self.column = 0

    def write(self, ch, open_spans):
        self.chars.append(ch)
        self.latent["inside double quotes"].append(1 if '"' in open_spans else 0)
        self.latent["bracket depth"].append(open_spans.count("("))
        self.latent["line position"].append(self.column)
        self.column = 0 if ch == "\n" else self.column + 1
