"""HTML page and terminal colouring of a recording (lstm_c.viz), on a fake Recording."""

import collections
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lstm_c import viz
from lstm_c.record import GATES, Recording

# Every character that needs care in HTML or on screen, plus two plain letters.
LABELS = ["a", "b", " ", "\n", "\t", "<", "&", '"', "'", ">"]
# What a panel shows for each character, written out here rather than taken from viz.
SHOWN = {"\n": "\u21b5\n", "\t": "\u2192"}
IN_BOX = {" ": "\u2423", "\n": "\u21b5", "\t": "\u2192"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CellMatch = collections.namedtuple("CellMatch", "feature layer unit correlation")


def fake_recording(N=300, L=2, H=8, seed=0):
    rng = np.random.default_rng(seed)
    V = len(LABELS)
    ids = rng.integers(0, V, N).astype(np.int32)
    c = rng.normal(0.0, 1.5, (L, N, H)).astype(np.float32)
    tanh_c = np.tanh(c)
    h = (tanh_c * rng.uniform(0.0, 1.0, (L, N, H))).astype(np.float32)
    gates = rng.uniform(0.0, 1.0, (L, N, 4, H)).astype(np.float32)
    # distinct logits: no ties, so the top-5 order is unambiguous
    z = rng.normal(0.0, 2.0, (N, V))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    probs = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    nats = -np.mean(np.log(probs[np.arange(N - 1), ids[1:]]))
    config = {"vocab_size": V, "hidden_size": H, "num_layers": L, "embed_size": 4,
              "dropout": 0.0, "dtype": "float32"}
    return Recording(text="".join(LABELS[i] for i in ids), ids=ids, h=h, c=c, tanh_c=tanh_c,
                     gates=gates, probs=probs, labels=list(LABELS), nats_per_char=float(nats),
                     model_config=config, source='fake <"test"> & co.txt')


@pytest.fixture(scope="module")
def rec():
    r = fake_recording()
    assert set(r.text) == set(LABELS)
    return r


# ---------------------------------------------------------------- a small DOM

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}


class Node:
    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children = tag, dict(attrs), []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag=None, cls=None):
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and (cls is None or cls in c.classes):
                    yield c
                yield from c.find_all(tag, cls)

    def by_id(self, id_):
        return next(n for n in self.find_all() if n.attrs.get("id") == id_)

    def elements(self):
        return [c for c in self.children if isinstance(c, Node)]


class TreeBuilder(HTMLParser):
    """Builds a tree and fails on any end tag that does not close the innermost open one."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs)
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, attrs))

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(page):
    b = TreeBuilder()
    b.feed(page)
    b.close()
    assert [n.tag for n in b.stack] == ["#root"], "unclosed tags"
    return b.root


@pytest.fixture(scope="module")
def matches():
    return [CellMatch("inside quotes", 0, 3, 0.8123), CellMatch("line position", 1, 7, -0.456)]


@pytest.fixture(scope="module")
def html_page(rec, matches):
    return viz.page(rec, cells=[(0, 0), (1, 7)], matches=matches)


@pytest.fixture(scope="module")
def dom(html_page):
    return parse(html_page)


# ---------------------------------------------------------------- the page

def test_page_is_balanced_html_with_its_sections(dom):
    assert [n.tag for n in dom.elements()] == ["html"]
    for section in ("summary", "cells", "top5", "saturation"):
        assert dom.by_id(section).tag == "section"


def test_page_loads_nothing_from_outside(html_page):
    lower = html_page.lower()
    for needle in ("http://", "https://", "<link", "src=", "@import", "url(", "<script"):
        assert needle not in lower


def test_summary_names_source_model_and_rates(rec, dom):
    text = dom.by_id("summary").text()
    assert rec.source in text  # escaped in the markup, restored by the parser
    assert "2 layer(s) \u00d7 8 hidden" in text and "vocabulary 10" in text
    assert "embedding 4" in text and "300" in text
    assert f"{rec.bits_per_char:.4f}" in text and f"{rec.nats_per_char:.4f}" in text


def test_one_coloured_span_per_character_per_cell(rec, dom):
    panels = list(dom.find_all("div", "cell"))
    # (1, 7) is both asked for and matched: shown once
    assert [p.attrs["id"] for p in panels] == ["cell-0-0", "cell-1-7", "cell-0-3"]
    for p in panels:
        assert len(list(p.find_all("span", "c"))) == len(rec)


def test_match_headings_name_feature_and_correlation(dom):
    assert "inside quotes (correlation +0.812)" in dom.by_id("cell-0-3").find_all("h3").__next__().text()
    heading = next(dom.by_id("cell-1-7").find_all("h3")).text()
    assert heading.startswith("layer 1, unit 7") and "line position (correlation -0.456)" in heading


def test_panel_text_is_the_text_with_visible_whitespace(rec, dom, html_page):
    expected = "".join(SHOWN.get(ch, ch) for ch in rec.text)
    for p in dom.find_all("div", "cell"):
        spans = list(p.find_all("span", "c"))
        assert "".join(s.text() for s in spans) == expected
        assert [s.text() for s in spans[:20]] == [SHOWN.get(ch, ch) for ch in rec.text[:20]]
    # the raw markup escapes what the text holds
    assert ">&lt;</span>" in html_page and ">&amp;</span>" in html_page
    assert ">&quot;</span>" in html_page and ">&#x27;</span>" in html_page
    assert "><</span>" not in html_page and ">&</span>" not in html_page


def test_hover_value_and_colour_are_the_cells(rec, dom):
    spans = list(dom.by_id("cell-1-7").find_all("span", "c"))
    for n in (0, 1, 57, 150, len(rec) - 1):
        v = float(rec.tanh_c[1, n, 7])
        assert spans[n].attrs["title"] == f"tanh(c)={v:.3f}"
        assert f"background:{viz.cell_colour(v)}" in spans[n].attrs["style"]


def test_top5_are_the_argmax_in_order_with_the_next_char_marked(rec, dom):
    columns = list(dom.by_id("top5").find_all("div", "k"))
    assert len(columns) == min(viz.TOP_CHARS, len(rec))
    marked = 0
    for n, col in enumerate(columns):
        head, *boxes = col.elements()
        assert head.text() == IN_BOX.get(rec.text[n], rec.text[n])
        order = np.argsort(-rec.probs[n].astype(np.float64))[:5]
        assert [b.text() for b in boxes] == [IN_BOX.get(LABELS[i], LABELS[i]) for i in order]
        assert [b.attrs["title"] for b in boxes] == [f"p={rec.probs[n, i]:.3f}" for i in order]
        is_next = [n + 1 < len(rec) and i == rec.ids[n + 1] for i in order]
        assert ["t" in b.classes for b in boxes] == is_next
        marked += any(is_next)
    assert marked > 0


def test_max_chars_limits_the_top5_view(rec):
    dom = parse(viz.page(rec, max_chars=25))
    assert len(list(dom.by_id("top5").find_all("div", "k"))) == 25
    assert len(list(dom.find_all("span", "c"))) == 0  # no cells asked for: no panels


def test_cell_chars_limits_the_panels(rec):
    dom = parse(viz.page(rec, cells=["1:2"], cell_chars=40))
    assert len(list(dom.by_id("cell-1-2").find_all("span", "c"))) == 40


def test_saturation_plots_one_dot_per_unit_and_layer(rec, dom):
    svgs = list(dom.by_id("saturation").find_all("svg"))
    assert len(svgs) == 3  # input, forget, output
    for svg in svgs:
        assert len(list(svg.find_all("circle"))) == rec.num_layers * rec.hidden_size
    left, right = viz.gate_saturation(rec)
    forget = list(svgs[1].find_all("circle"))
    L1U5 = rec.hidden_size + 5
    assert forget[L1U5].text() == (f"layer 1, unit 5: left {left[1, 1, 5]:.3f}, "
                                   f"right {right[1, 1, 5]:.3f}")


def test_page_rejects_cells_the_model_lacks(rec):
    with pytest.raises(ValueError, match="layer 2 is out of range"):
        viz.page(rec, cells=[(2, 0)])
    with pytest.raises(ValueError, match="unit 8 is out of range"):
        viz.page(rec, matches=[CellMatch("x", 0, 8, 0.5)])


def test_page_for_5000_characters_stays_small():
    big = fake_recording(N=5000, seed=1)
    size = len(viz.page(big, cells=[(0, 1), (1, 2), (1, 3), (0, 7)]).encode("utf-8"))
    assert size < 3_000_000


def test_write_page_is_atomic(rec, tmp_path):
    target = tmp_path / "cells.html"
    target.write_text("old")
    out = viz.write_page(target, rec, cells=[(0, 1)])
    assert out == target
    assert target.read_text(encoding="utf-8") == viz.page(rec, cells=[(0, 1)])
    assert os.listdir(tmp_path) == ["cells.html"]  # no temporary file left behind


# ---------------------------------------------------------------- pure pieces

def test_gate_saturation_exact_fractions():
    L, N, H = 2, 300, 5
    gates = np.full((L, N, 4, H), 0.5, np.float32)
    gates[:, :, :, 0] = 0.05
    gates[:, :, :, 1] = 0.95
    gates[:, ::2, :, 2] = 0.05
    gates[:, 1::2, :, 2] = 0.95
    gates[1, :30, 2, 3] = 0.0    # 30 of 300 characters on layer 1's cell gate
    gates[0, :, 1, 4] = 0.1      # the thresholds themselves are not saturated
    gates[1, :, 1, 4] = 0.9
    r = fake_recording(N=N, L=L, H=H)
    r.gates = gates
    left, right = viz.gate_saturation(r)
    assert left.shape == right.shape == (L, len(GATES), H)
    np.testing.assert_array_equal(left[..., 0], 1.0)
    np.testing.assert_array_equal(right[..., 0], 0.0)
    np.testing.assert_array_equal(left[..., 1], 0.0)
    np.testing.assert_array_equal(right[..., 1], 1.0)
    np.testing.assert_array_equal(left[..., 2], 0.5)
    np.testing.assert_array_equal(right[..., 2], 0.5)
    assert left[1, 2, 3] == 30 / 300 and left[0, 2, 3] == 0.0
    np.testing.assert_array_equal(left[:, 1, 4], 0.0)
    np.testing.assert_array_equal(right[:, 1, 4], 0.0)


def test_cell_colour_scale():
    assert viz.cell_colour(-1.0) == "#ff0000"
    assert viz.cell_colour(0.0) == "#ffffff"
    assert viz.cell_colour(1.0) == "#0000ff"
    assert viz.cell_colour(-5.0) == "#ff0000" and viz.cell_colour(7.0) == "#0000ff"  # clamped
    assert viz.cell_colour(0.5) == "#8080ff" and viz.cell_colour(-0.5) == "#ff8080"
    r, g, b = (int(viz.cell_colour(float("nan"))[i:i + 2], 16) for i in (1, 3, 5))
    assert r == g == b and 0 < r < 255  # grey
    np.testing.assert_array_equal(viz.cell_rgb([-1.0, 1.0]), [[255, 0, 0], [0, 0, 255]])


def test_terminal_plain_text_is_the_recording_text(rec):
    out = viz.terminal(rec, 1, 7, colour=False)
    assert "\x1b" not in out
    header, body = out.split("\n", 1)
    assert "layer 1, unit 7" in header and "red" in header and "blue" in header
    assert body == "".join(SHOWN.get(ch, ch) for ch in rec.text) + "\n"


def test_terminal_colours_each_character(rec):
    out = viz.terminal(rec, 0, 2)
    plain = viz.terminal(rec, 0, 2, colour=False)
    assert ANSI.sub("", out).split("\n", 1)[1] == plain.split("\n", 1)[1]
    r, g, b = viz.cell_rgb(rec.tanh_c[0, 0, 2])
    assert f"\x1b[48;2;{r};{g};{b}m" in out.split("\n", 1)[1][:40]
    # every character gets a background; white text on the dark ends
    body = out.split("\n", 1)[1]
    assert body.count("\x1b[48;2;") == len(rec)
    assert "\x1b[38;2;255;255;255m" in viz.terminal(fake_recording(N=50, seed=3), 0, 0)


def test_terminal_width_breaks_long_lines():
    r = fake_recording(N=200, seed=2)
    r.text = "x" * 200
    lines = viz.terminal(r, 0, 0, width=50, colour=False).split("\n")[1:-1]
    assert lines == ["x" * 50] * 4


def test_parse_cell():
    assert viz.parse_cell("1:7", 2, 8) == (1, 7)
    assert viz.parse_cell(" 0 : 0 ", fake_recording(N=10)) == (0, 0)
    with pytest.raises(ValueError, match=r"layer 2 is out of range.*0 to 1"):
        viz.parse_cell("2:0", 2, 8)
    with pytest.raises(ValueError, match=r"unit 8 is out of range.*0 to 7"):
        viz.parse_cell("0:8", 2, 8)
    for bad in ("x", "1", "1:", "-1:3", "1:2:3", ""):
        with pytest.raises(ValueError, match=r"expected LAYER:UNIT.*layer 0 to 1 and unit 0 to 7"):
            viz.parse_cell(bad, 2, 8)
