"""What `lstm-c viz` and the demo do: record a trained model over a text, find
its interpretable cells and write the page.
"""

import re
from pathlib import Path

from lstm_c import cells, record, viz

DEFAULT_CHARS = 5000
MIN_SCORE = 0.3  # weaker matches are not worth a panel of their own
_LOOKAHEAD = 4000  # bytes searched for the paragraph or line to start at


def read_text(path, offset=0, max_chars=DEFAULT_CHARS, kind="bytes"):
    """At most `max_chars` symbols of a file: bytes, or str for kind "chars".

    From byte `offset` on, moved forward to the start of the next paragraph
    (after a blank line) or else the next line, so that the text does not
    start inside a quote or a statement, where features such as "inside
    double quotes", which count from the start, would be turned around.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read((max_chars + _LOOKAHEAD) * (4 if kind == "chars" else 1))
    if offset > 0:
        blank = re.search(rb"\r?\n[ \t]*\r?\n", raw[:_LOOKAHEAD])
        line = raw.find(b"\n", 0, _LOOKAHEAD)
        raw = raw[blank.end():] if blank else raw[line + 1:] if line >= 0 else raw
    if kind == "chars":
        return raw.decode("utf-8", errors="ignore")[:max_chars]
    return raw[:max_chars]


def report(model, vocab, text, out=None, shown=(), source="", max_chars=DEFAULT_CHARS):
    """Record `text` under the model, search its cells, write the page.

    Parameters
    ----------
    model, vocab : a run's CharLM and Vocab (``lstm_c.train.load_model``)
    text : bytes or str
    out : path or None
        The page; None writes no page.
    shown : sequence of (layer, unit)
        Cells to show besides the best one found per feature.
    source : str
        A name for the text, for the page's title.

    Returns
    -------
    (Recording, list of CellMatch, page path or None)
        The matches are the best cell per text feature whose |correlation| is
        at least MIN_SCORE.
    """
    rec = record.record(model, vocab, text, max_chars=max_chars, source=source)
    matches = [m for m in cells.find_cells(rec, top=1) if abs(m.correlation) >= MIN_SCORE]
    page = None
    if out is not None:
        page = viz.write_page(Path(out), rec, cells=list(shown), matches=matches)
    return rec, matches, page


def describe(matches):
    """One line per match: feature, cell and score."""
    if not matches:
        return f"no cell tracks a text feature with |correlation| >= {MIN_SCORE}"
    width = max(len(m.feature) for m in matches)
    return "\n".join(f"  {m.feature:<{width}}  cell {m.layer}:{m.unit:<4}  "
                     f"correlation {m.correlation:+.2f}" for m in matches)
