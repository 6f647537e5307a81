"""Show what a recorded character LM does: an HTML page and terminal colouring.

`page` turns a `lstm_c.record.Recording` into one self-contained HTML page:
a summary, the text coloured by chosen cells' tanh(c), the model's top-5
guesses for each next character, and gate-saturation scatter plots as in
Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding Recurrent
Networks" (2015, Fig. 3). `terminal` colours the text by one cell with ANSI
24-bit colours. Both use the char-rnn convention: tanh(c) = -1 red, 0 white,
+1 blue.

The page loads nothing from the network (no scripts, stylesheets, fonts or
images) and needs no JavaScript. Colours are computed here, in Python, so the
page, the terminal and the tests agree on them.
"""

import html
import os
import re
import secrets
from pathlib import Path

import numpy as np

from lstm_c import _validate as check
from lstm_c.cells import find_cells  # noqa: F401  re-exported: lstm_c.viz.find_cells, the table
from lstm_c.record import GATES

TOP_K = 5
TOP_CHARS = 400  # characters in the top-5 strip unless told: ~6 boxes each, keeps the page small
NAN_RGB = (160, 160, 160)
LAYER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PLOTTED_GATES = ("input", "forget", "output")  # the cell gate is tanh, so 0.1/0.9 mean nothing for it
MONO = 'ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono","Liberation Mono",monospace'

CSS = f"""
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;max-width:80em}}
h1{{font-size:1.4em}} h2{{font-size:1.2em;margin-top:1.6em}} h3{{font-size:1em;margin:1.2em 0 .3em}}
table.summary td{{padding:.1em .8em .1em 0}} .note{{color:#555;font-size:.9em}}
.text{{font-family:{MONO};font-size:14px;line-height:1.35;white-space:pre-wrap;overflow-wrap:anywhere}}
.d{{color:#fff}}
.legend span{{font-family:{MONO};padding:0 .5em}}
.strip{{display:flex;flex-wrap:wrap;font-family:{MONO};font-size:12px;line-height:1.3}}
.k{{display:flex;flex-direction:column;min-width:1.5em;text-align:center;margin:0 1px 8px 0}}
.k .q{{font-weight:bold;border-bottom:1px solid #999}}
.k .t{{font-weight:bold;outline:2px solid #e6007e;outline-offset:-2px}}
.plots svg{{margin:0 1em 1em 0;font-family:system-ui,sans-serif;font-size:11px}}
.plots circle{{fill-opacity:.6}}
"""


# ---------------------------------------------------------------- colours

def cell_rgb(values):
    """The red-white-blue colour of tanh(c) values, as integers 0..255.

    Parameters
    ----------
    values : float or array of shape (...)
        Clamped to [-1, 1]; NaN gives grey.

    Returns
    -------
    int array of shape (..., 3)
        -1 is (255, 0, 0), 0 is white, +1 is (0, 0, 255).
    """
    v = np.asarray(values, dtype=np.float64)
    bad = np.isnan(v)
    v = np.clip(np.where(bad, 0.0, v), -1.0, 1.0)
    fade = np.rint(255.0 * (1.0 - np.abs(v))).astype(np.int64)  # the two channels that go to 0
    full = np.full_like(fade, 255)
    rgb = np.stack([np.where(v < 0, full, fade), fade, np.where(v < 0, fade, full)], axis=-1)
    rgb[bad] = NAN_RGB
    return rgb


def cell_colour(v):
    """The colour of one tanh(c) value as "#rrggbb": -1 red, 0 white, +1 blue, NaN grey."""
    return _hex(cell_rgb(v))


def _hex(rgb):
    r, g, b = (int(x) for x in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _is_dark(rgb):
    """True where a background needs white text (perceived lightness below about half)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114]) < 140.0


def _grey(p):
    """Probability p in [0, 1] as a grey: white at 0, black at 1."""
    level = int(round(255.0 * (1.0 - min(max(float(p), 0.0), 1.0))))
    return (level, level, level)


# ---------------------------------------------------------------- characters

def glyph(ch):
    """One visible character for `ch`: '↵' newline, '→' tab, '·' any other control.

    Other controls (the '\\r' of CRLF text, C1 bytes, which HTML forbids raw)
    get a middle dot: the Unicode control pictures are missing from common fonts.
    """
    if ch == "\n":
        return "\u21b5"
    if ch == "\t":
        return "\u2192"
    code = ord(ch)
    if code < 32 or 127 <= code < 0xA0:
        return "\u00b7"
    return ch


def shown(ch):
    """What the coloured text shows for `ch`: a space stays a (coloured) space, a newline
    becomes '↵' plus a real line break, other invisible characters their `glyph`."""
    if ch == " ":
        # a plain space, not &nbsp;: under pre-wrap it keeps its background and lets lines wrap
        return " "
    if ch == "\n":
        return "\u21b5\n"
    return glyph(ch)


# ---------------------------------------------------------------- cells

_CELL_FORM = "LAYER:UNIT, e.g. '1:7' (both 0-based)"


def _shape_of(recording_or_num_layers, hidden_size):
    if hasattr(recording_or_num_layers, "num_layers"):
        return recording_or_num_layers.num_layers, recording_or_num_layers.hidden_size
    if hidden_size is None:
        raise TypeError("parse_cell: give a Recording, or num_layers and hidden_size")
    return int(recording_or_num_layers), int(hidden_size)


def check_cell(layer, unit, num_layers, hidden_size, what="cell"):
    """Return (layer, unit) as ints, or raise ValueError naming the valid ranges."""
    if not 0 <= layer < num_layers:
        raise ValueError(f"{what}: layer {layer} is out of range; the model has {num_layers} "
                         f"layer(s), numbered 0 to {num_layers - 1}")
    if not 0 <= unit < hidden_size:
        raise ValueError(f"{what}: unit {unit} is out of range; each layer has {hidden_size} "
                         f"units, numbered 0 to {hidden_size - 1}")
    return int(layer), int(unit)


def parse_cell(spec, recording_or_num_layers, hidden_size=None):
    """Parse "LAYER:UNIT" (0-based) into (layer, unit), checked against the model's shape.

    Parameters
    ----------
    spec : str
        For example "1:7", layer 1, unit 7.
    recording_or_num_layers : Recording or int
        A recording gives both sizes; an int is the number of layers.
    hidden_size : int, optional
        Units per layer, needed when the second argument is an int.

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        When `spec` is not of the form LAYER:UNIT or names a cell the model lacks;
        the message gives the expected form and the valid ranges.
    """
    num_layers, hidden_size = _shape_of(recording_or_num_layers, hidden_size)
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(spec))
    if m is None:
        raise ValueError(f"cell {spec!r}: expected {_CELL_FORM}, with layer 0 to "
                         f"{num_layers - 1} and unit 0 to {hidden_size - 1}")
    return check_cell(int(m.group(1)), int(m.group(2)), num_layers, hidden_size,
                      what=f"cell {spec!r}")


# ---------------------------------------------------------------- gate saturation

def gate_saturation(recording, low=0.1, high=0.9):
    """How often each gate of each unit is saturated over the recorded text.

    Parameters
    ----------
    recording : Recording
        Uses ``recording.gates``, float array of shape (L, N, 4, H).
    low, high : float
        A gate is left-saturated below `low`, right-saturated above `high`.

    Returns
    -------
    left, right : float64 arrays of shape (L, 4, H)
        The fraction of the N characters at which the gate was left- or
        right-saturated, in the gate order of `lstm_c.record.GATES`. The cell
        gate (a tanh in [-1, 1]) gets the same thresholds; the plots leave it out.
    """
    gates = np.asarray(recording.gates)
    return (np.mean(gates < low, axis=1, dtype=np.float64),
            np.mean(gates > high, axis=1, dtype=np.float64))


# ---------------------------------------------------------------- HTML sections

def _summary(recording):
    cfg = recording.model_config or {}
    L = cfg.get("num_layers", recording.num_layers)
    H = cfg.get("hidden_size", recording.hidden_size)
    V = cfg.get("vocab_size", recording.probs.shape[1])
    model = f"{L} layer(s) \u00d7 {H} hidden, vocabulary {V}"
    if cfg.get("embed_size") is not None:
        model += f", embedding {cfg['embed_size']}"
    if cfg.get("dtype"):
        model += f", {cfg['dtype']}"
    rows = [("source", recording.source or "(unnamed)"), ("model", model),
            ("characters", f"{len(recording):,}"),
            ("bits/char", f"{recording.bits_per_char:.4f}"),
            ("nats/char", f"{recording.nats_per_char:.4f}")]
    cells = "".join(f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Summary</h2><table class="summary">{cells}</table></section>'


def _panels(recording, cells, matches):
    """Ordered {(layer, unit): [descriptions]}: the user's cells, then the matches.
    A match on a cell already listed adds its feature to that cell's heading."""
    L, H = recording.num_layers, recording.hidden_size
    panels = {}
    for k, cell in enumerate(cells):
        if isinstance(cell, str):
            panels.setdefault(parse_cell(cell, L, H), [])
            continue
        layer, unit = cell
        panels.setdefault(check_cell(layer, unit, L, H, what=f"cells[{k}]"), [])
    for k, m in enumerate(matches):
        key = check_cell(m.layer, m.unit, L, H, what=f"matches[{k}] ({m.feature})")
        panels.setdefault(key, []).append(f"{m.feature} (correlation {m.correlation:+.3f})")
    return panels


def _legend():
    stops = ((-1.0, "-1"), (-0.5, "-0.5"), (0.0, "0"), (0.5, "+0.5"), (1.0, "+1"))
    dark = ' class="d"'
    parts = "".join(f'<span{dark if _is_dark(cell_rgb(v)) else ""} '
                    f'style="background:{cell_colour(v)}">{label}</span>' for v, label in stops)
    return f'<p class="legend">tanh(c): {parts} (hover a character for its value)</p>'


def _cell_text(recording, layer, unit, n):
    values = np.asarray(recording.tanh_c[layer, :n, unit], dtype=np.float64)
    rgb = cell_rgb(values)
    dark = _is_dark(rgb)
    out = []
    for ch, v, colour, d in zip(recording.text[:n], values.tolist(), rgb.tolist(), dark.tolist()):
        out.append(f'<span class="c{" d" if d else ""}" style="background:{_hex(colour)}" '
                   f'title="tanh(c)={v:.3f}">{html.escape(shown(ch))}</span>')
    return "".join(out)


def _cells_section(recording, panels, n):
    if not panels:
        return ""
    N = len(recording)
    cut = "" if n == N else f" (the first {n:,} of {N:,} characters)"
    nav = "".join(f'<li><a href="#cell-{l}-{u}">layer {l}, unit {u}</a>'
                  f'{html.escape(": " + "; ".join(d)) if d else ""}</li>'
                  for (l, u), d in panels.items())
    body = [f'<section id="cells"><h2>Cells: tanh(c) over the text{cut}</h2>{_legend()}<ul>{nav}</ul>']
    for (layer, unit), descriptions in panels.items():
        title = f"layer {layer}, unit {unit}"
        if descriptions:
            title += " \u2014 " + "; ".join(descriptions)
        body.append(f'<div class="cell" id="cell-{layer}-{unit}"><h3>{html.escape(title)}</h3>'
                    f'<div class="text">{_cell_text(recording, layer, unit, n)}</div></div>')
    body.append("</section>")
    return "".join(body)


def _box(cls, rgb, title, text):
    classes = cls + (" d" if _is_dark(rgb) else "")
    return (f'<div class="{classes}" style="background:{_hex(rgb)}" title="{html.escape(title)}">'
            f'{html.escape(text)}</div>')


def _top5_section(recording, n):
    probs = np.asarray(recording.probs[:n], dtype=np.float64)
    k = min(TOP_K, probs.shape[1])
    # stable sort of -p: ties keep the lower id first, so the order is reproducible
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    ids, labels, text, N = recording.ids, recording.labels, recording.text, len(recording)
    columns = []
    for i in range(n):
        nxt = int(ids[i + 1]) if i + 1 < N else None
        if nxt is None:
            head = "end of text"
        else:
            rank = int(np.sum(probs[i] > probs[i, nxt])) + 1
            head = f"next {glyph(labels[nxt])!r}: p={probs[i, nxt]:.3f}, rank {rank}"
        col = [f'<div class="k"><div class="q" title="{html.escape(head)}">'
               f'{html.escape(_guess_glyph(text[i]))}</div>']
        for j in top[i].tolist():
            p = probs[i, j]
            col.append(_box("p t" if j == nxt else "p", _grey(p), f"p={p:.3f}",
                            _guess_glyph(labels[j])))
        col.append("</div>")
        columns.append("".join(col))
    cut = "" if n == N else f" (the first {n:,} of {N:,} characters)"
    return (f'<section id="top5"><h2>Top-{k} guesses for the next character{cut}</h2>'
            f'<p class="note">Under each character, the model\'s {k} most likely next characters, '
            f'most likely first; darker = more probable; outlined = the character that actually '
            f'came next. Hover for probabilities.</p><div class="strip">{"".join(columns)}</div>'
            f'</section>')


def _guess_glyph(ch):
    # in a one-character box a plain space would look like an empty box
    return "\u2423" if ch == " " else glyph(ch)


def _scatter(gate, left, right, size=240):
    """One inline SVG: a dot per unit of every layer, x = left-, y = right-saturated fraction."""
    ml, mt, inner = 44, 24, size - 44 - 14

    def x(t):
        return ml + t * inner

    def y(t):
        return mt + (1.0 - t) * inner

    svg = [f'<svg width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" '
           f'aria-label="{gate} gate saturation">',
           f'<text x="{ml + inner / 2:.0f}" y="15" text-anchor="middle" font-weight="bold">'
           f'{gate} gate</text>',
           f'<rect x="{ml}" y="{mt}" width="{inner}" height="{inner}" fill="none" stroke="#888"/>',
           # left + right <= 1, so every dot lies below this diagonal
           f'<line x1="{x(0):.1f}" y1="{y(1):.1f}" x2="{x(1):.1f}" y2="{y(0):.1f}" '
           f'stroke="#ccc" stroke-dasharray="3,3"/>']
    for t in (0.0, 0.5, 1.0):
        svg.append(f'<text x="{x(t):.1f}" y="{mt + inner + 13}" text-anchor="middle">{t:g}</text>')
        svg.append(f'<text x="{ml - 4}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    svg.append(f'<text x="{ml + inner / 2:.0f}" y="{size - 4}" text-anchor="middle">'
               f'fraction left-saturated</text>')
    svg.append(f'<text transform="translate(12,{mt + inner / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">fraction right-saturated</text>')
    for layer in range(left.shape[0]):
        colour = LAYER_COLOURS[layer % len(LAYER_COLOURS)]
        for unit, (a, b) in enumerate(zip(left[layer].tolist(), right[layer].tolist())):
            svg.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.5" fill="{colour}">'
                       f'<title>layer {layer}, unit {unit}: left {a:.3f}, right {b:.3f}</title>'
                       f'</circle>')
    svg.append("</svg>")
    return "".join(svg)


def _saturation_section(recording, low=0.1, high=0.9):
    left, right = gate_saturation(recording, low, high)
    plots = "".join(_scatter(g, left[:, GATES.index(g)], right[:, GATES.index(g)])
                    for g in PLOTTED_GATES)
    key = " ".join(f'<span style="color:{LAYER_COLOURS[l % len(LAYER_COLOURS)]}">\u25cf layer {l}'
                   f'</span>' for l in range(left.shape[0]))
    return (f'<section id="saturation"><h2>Gate saturation</h2>'
            f'<p class="note">One dot per unit: x = fraction of characters at which the gate is '
            f'below {low:g} (left-saturated), y = fraction above {high:g} (right-saturated), as in '
            f'Karpathy, Johnson &amp; Fei-Fei (2015), Fig. 3. {key}</p>'
            f'<div class="plots">{plots}</div></section>')


def page(recording, cells=(), matches=(), max_chars=None, cell_chars=None):
    """One self-contained HTML page about a recording.

    Parameters
    ----------
    recording : lstm_c.record.Recording
    cells : sequence of (layer, unit) or "LAYER:UNIT" strings
        Cells to colour the text by (0-based), in this order.
    matches : sequence of CellMatch
        Anything with ``feature``, ``layer``, ``unit`` and ``correlation``
        (`lstm_c.cells.find_cells` returns these); each is shown after `cells`
        with its feature and correlation in the heading. A cell listed twice
        is shown once, with every description.
    max_chars : int, optional
        Characters in the top-5 view (default 400; it takes ~6 boxes per character).
    cell_chars : int, optional
        Characters in each cell panel (default: the whole text).

    Returns
    -------
    str
        The page. Sections have the ids ``summary``, ``cells``, ``top5`` and
        ``saturation``; each cell panel is ``<div class="cell" id="cell-L-U">``
        with one ``<span class="c">`` per character.
    """
    N = len(recording)
    top_n = min(N, TOP_CHARS if max_chars is None else check.positive_int("max_chars", max_chars))
    cell_n = N if cell_chars is None else min(N, check.positive_int("cell_chars", cell_chars))
    panels = _panels(recording, cells, matches)
    title = html.escape(f"lstm-c: {recording.source or 'recording'}")
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{CSS}</style></head><body>\n",
        f"<h1>{title}</h1>\n", _summary(recording), "\n",
        _cells_section(recording, panels, cell_n), "\n",
        _top5_section(recording, top_n), "\n",
        _saturation_section(recording), "\n</body></html>\n"])


def write_page(path, recording, **options):
    """Write `page(recording, **options)` to `path` atomically and return the path.

    The page goes to a temporary file in the same directory, then `os.replace`
    puts it in place, so a reader never sees half a page.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    text = page(recording, **options)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for a plain open();
    # tempfile would leave a private 0o600 page behind
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- terminal

def _ansi(rgb):
    r, g, b = (int(v) for v in rgb)
    fg = "255;255;255" if _is_dark(rgb) else "0;0;0"
    return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fg}m"


RESET = "\x1b[0m"


def terminal(recording, layer, unit, width=None, colour=True):
    """The text coloured by one cell's tanh(c), for a terminal with 24-bit colour.

    Parameters
    ----------
    recording : Recording
    layer, unit : int
        The cell, 0-based.
    width : int, optional
        Break lines after this many characters (the breaks carry no '↵');
        default: leave wrapping to the terminal.
    colour : bool
        False gives the same text with no escape codes.

    Returns
    -------
    str
        A header line naming the cell with a colour legend, then the text:
        newlines as '↵' plus a line break, tabs as '→', other control
        characters as their pictures.
    """
    layer, unit = check_cell(layer, unit, recording.num_layers, recording.hidden_size)
    colour = check.flag("colour", colour)
    width = None if width is None else check.positive_int("width", width)
    values = np.asarray(recording.tanh_c[layer, :, unit], dtype=np.float64)
    header = f"layer {layer}, unit {unit}: tanh(c) over {recording.source or 'the text'}"
    if colour:
        legend = "".join(f"{_ansi(cell_rgb(v))} {label} {RESET}"
                         for v, label in ((-1.0, "-1"), (0.0, "0"), (1.0, "+1")))
    else:
        legend = "-1 red, 0 white, +1 blue"
    out = [f"{header}  {legend}\n"]
    rgb = cell_rgb(values).tolist()
    column = 0
    for ch, c in zip(recording.text, rgb):
        if width is not None and column == width and ch != "\n":
            out.append("\n")
            column = 0
        mark = glyph(ch)
        # reset before a line break so the colour does not run on to the edge of the terminal
        out.append(f"{_ansi(c)}{mark}{RESET}" if colour else mark)
        if ch == "\n":
            out.append("\n")
            column = 0
        else:
            column += 1
    out.append("\n")
    return "".join(out)
