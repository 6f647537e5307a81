"""Features of a text read off the text itself, one number per character.

These are the quantities Karpathy, Johnson & Fei-Fei (2015, "Visualizing and
Understanding Recurrent Networks") found single LSTM cells tracking: position
in the line, inside quotes, bracket depth, inside an ``if`` condition,
indentation, inside comments and strings. `lstm_c.cells` correlates them with
every cell of a recording.

One convention for every span feature: a span is half-open, from its opening
delimiter up to, but not including, its closing delimiter. So an opening
quote, bracket or ``/*`` already counts as inside and the closing one as
outside. This is the state *after reading* the character, which is what the
LSTM's state at that character can know (the opening delimiter has been seen;
the closing one has ended the span).

Every feature is one left-to-right pass in linear time; a 20,000-character
text takes milliseconds.
"""

import re

import numpy as np

FEATURES = (
    "line position",
    "inside double quotes",
    "inside single quotes",
    "bracket depth",
    "if condition",
    "indentation",
    "inside comment",
    "inside string",
)

TAB_WIDTH = 4  # columns a leading tab adds to the indentation (a count, not tab stops)
OPENERS, CLOSERS = "([{", ")]}"

# `if`/`while` as a whole word, optional spaces, then the "(" that opens the condition.
_CONDITION_START = re.compile(r"(?<!\w)(?:if|while)[ \t]*\(")


def text_features(text, kinds=None):
    """Compute features of `text`, one float per character.

    Parameters
    ----------
    text : str
    kinds : str, iterable of str, or None
        Names from `FEATURES` to compute; None computes all of them. An unknown
        name raises ValueError listing the valid ones.

    Returns
    -------
    dict of str to float64 array of shape (len(text),)
        In the order of `kinds` (of `FEATURES` when None). The features:

        ``"line position"``
            Characters since the last newline: 0 at the first character of a
            line; a newline gets the position it occupies in its own line.
        ``"inside double quotes"``
            1 from a ``"`` to its closing ``"`` (opening quote 1, closing
            quote 0). Every ``"`` toggles; prose quotes may span lines, so
            nothing resets the state.
        ``"inside single quotes"``
            The same for ``'``, except that an apostrophe between two letters
            (``don't``) does not toggle, and a newline closes any open quote
            (the newline is 0): single-quoted code strings end on their line,
            and a stray apostrophe (``dogs'``) must not flip the rest of the
            text.
        ``"bracket depth"``
            Open ``( [ {`` minus closed ``) ] }``, counted together, never
            below 0 (an unmatched closer is ignored). An opener already has
            the deeper depth, a closer the shallower one.
        ``"if condition"``
            1 from the ``(`` of ``if (...)`` or ``while (...)`` (the keyword a
            whole word, then optional spaces or tabs) up to, not including,
            its matching ``)``. Strings and comments are not looked at; an
            unclosed condition runs to the end of the text.
        ``"indentation"``
            Leading spaces of the current line, a leading tab counting 4, at
            every character of the line including its newline.
        ``"inside comment"``
            1 inside ``# ...`` and ``// ...`` (to, not including, the newline)
            and ``/* ... */`` (the ``*/`` is 0); never inside a string.
        ``"inside string"``
            1 inside ``'...'``, ``"..."`` (backslash escapes the next
            character; an unescaped newline ends the string and is 0) and
            Python's ``'''...'''`` and ``\"\"\"...\"\"\"`` (which span lines); the
            closing quotes are 0. Never inside a comment. Python and C are
            read alike, so a C ``#include`` line counts as a comment.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    names = _check_kinds(kinds)
    # Features computed together share one pass; compute each group only if asked.
    groups = {}
    out = {}
    for name in names:
        compute = _GROUP_OF[name]
        if compute not in groups:
            groups[compute] = compute(text)
        out[name] = groups[compute][name]
    return out


def _check_kinds(kinds):
    if kinds is None:
        return FEATURES
    if isinstance(kinds, str):
        kinds = (kinds,)
    names = tuple(dict.fromkeys(kinds))  # drop repeats, keep order
    unknown = [k for k in names if k not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; valid names are {list(FEATURES)}")
    return names


def _codes(text):
    """The text as an array of code points, for vectorised comparisons."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _lines(text):
    n = len(text)
    codes = _codes(text)
    newline_at = np.where(codes == ord("\n"), np.arange(n), -1)
    # The last newline strictly before each character (-1 on the first line).
    previous = np.concatenate(([-1], np.maximum.accumulate(newline_at)[:-1])) if n else newline_at
    position = np.arange(n) - previous - 1

    lines = text.split("\n")
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines]
    indent = [w + (TAB_WIDTH - 1) * line[:w].count("\t") for line, w in zip(lines, widths)]
    lengths = [len(line) + 1 for line in lines]  # each line owns its newline
    lengths[-1] -= 1  # the text does not end with one more newline
    return {"line position": position.astype(np.float64),
            "indentation": np.repeat(np.array(indent, np.float64), lengths)}


def _quotes(text):
    codes = _codes(text)
    double = np.cumsum(codes == ord('"')) % 2

    single = []
    inside = 0
    for i, ch in enumerate(text):
        if ch == "\n":
            inside = 0
        elif ch == "'" and not (0 < i < len(text) - 1 and text[i - 1].isalpha()
                                and text[i + 1].isalpha()):
            inside = 1 - inside
        single.append(inside)
    return {"inside double quotes": double.astype(np.float64),
            "inside single quotes": np.array(single, np.float64)}


def _brackets(text):
    depths = []
    depth = 0
    for ch in text:
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS and depth > 0:
            depth -= 1
        depths.append(depth)

    condition = np.zeros(len(text))
    end = 0  # a start inside a condition already marked belongs to that condition
    for match in _CONDITION_START.finditer(text):
        start = match.end() - 1
        if start < end:
            continue
        end = _matching_paren(text, start)
        condition[start:end] = 1.0
    return {"bracket depth": np.array(depths, np.float64), "if condition": condition}


def _matching_paren(text, start):
    """Index of the ")" closing the "(" at `start`, or len(text) if it never closes."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _code(text):
    """Comments and strings from one scan, so that neither is seen inside the other."""
    n = len(text)
    comment = np.zeros(n)
    string = np.zeros(n)
    i = 0
    while i < n:
        ch = text[i]
        if ch == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            comment[i:end] = 1.0
            i = end  # the newline is code again
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end
            comment[i:end] = 1.0
            i = end + 2
        elif ch in "'\"":
            delimiter = ch * 3 if text.startswith(ch * 3, i) else ch
            end, closed = _string_end(text, i + len(delimiter), delimiter)
            string[i:end] = 1.0
            i = end + len(delimiter) if closed else end
        else:
            i += 1
    return {"inside comment": comment, "inside string": string}


def _string_end(text, i, delimiter):
    """Where the string whose body starts at `i` ends: (index, closed by `delimiter`).

    A single-quoted or double-quoted string also ends, unclosed, at an unescaped
    newline, so that one unbalanced quote cannot swallow the rest of the file.
    """
    n = len(text)
    one_line = len(delimiter) == 1
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
        elif text.startswith(delimiter, i):
            return i, True
        elif one_line and ch == "\n":
            return i, False
        else:
            i += 1
    return n, False


_GROUP_OF = {
    "line position": _lines,
    "indentation": _lines,
    "inside double quotes": _quotes,
    "inside single quotes": _quotes,
    "bracket depth": _brackets,
    "if condition": _brackets,
    "inside comment": _code,
    "inside string": _code,
}
