"""The cell page as a person sees it: headless Chromium opens it.

Skips where no Chromium is installed, unless LSTM_C_REQUIRE_BROWSER is set
(`.ci/run` installs Debian's chromium and sets it, so there it really runs).
"""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from lstm_c import cells, record, viz
from lstm_c.data import Vocab
from lstm_c.model import CharLM

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome"))), None)
if BROWSER is None:
    if os.environ.get("LSTM_C_REQUIRE_BROWSER"):
        pytest.fail("LSTM_C_REQUIRE_BROWSER is set but no chromium is on PATH",
                    pytrace=False)
    pytest.skip("no chromium on PATH", allow_module_level=True)

CODE = b'def f(x):\n    if (x > 1):\n        return "a (b) c"\n    return x  # done\n' * 12

# Appended to a copy of the page: counts the spans that show a colour and
# take up room on screen, and puts the counts in the title, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const spans = [...document.querySelectorAll("span.c")];
  const shown = spans.filter(s => {
    const r = s.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  });
  const colours = new Set(shown.map(s => getComputedStyle(s).backgroundColor));
  document.title = `probe spans=${spans.length} shown=${shown.length} colours=${colours.size}`;
});
</script>"""


def _chromium(tmp_path, *args):
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _console(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    vocab = Vocab.from_data(CODE)
    model = CharLM(vocab.size, 16, 2, 8, seed=0).eval()
    rec = record.record(model, vocab, CODE, source="code.py")
    matches = cells.find_cells(rec, top=1)
    path = tmp_path_factory.mktemp("page") / "viz.html"
    viz.write_page(path, rec, cells=[(1, 3)], matches=matches[:2])
    return path, rec, len({(m.layer, m.unit) for m in matches[:2]} | {(1, 3)})


def test_the_page_renders_coloured_spans_without_console_errors(page_file, tmp_path):
    path, rec, n_panels = page_file
    result = _chromium(tmp_path, "--dump-dom", path.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<title>" in result.stdout
    assert _console(result.stderr) == [], _console(result.stderr)

    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    result = _chromium(tmp_path, "--dump-dom", probed.as_uri())
    m = re.search(r"probe spans=(\d+) shown=(\d+) colours=(\d+)", result.stdout)
    assert m, "the probe did not run: " + result.stderr[-2000:]
    spans, shown, colours = map(int, m.groups())
    assert spans == n_panels * len(rec)
    assert shown == spans  # every character's span has a box on screen
    assert colours > 20    # a range of activations, not one flat colour


def test_console_errors_would_be_seen(tmp_path):
    # The check above could fail: a page that logs an error is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><title>x</title><script>console.error('boom')</script>")
    result = _chromium(tmp_path, "--dump-dom", bad.as_uri())
    assert any("boom" in line for line in _console(result.stderr))


def test_a_screenshot_of_the_page(page_file, tmp_path):
    path, _, _ = page_file
    shot = tmp_path / "page.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600",
                       "--hide-scrollbars", path.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = np.frombuffer(data[16:24], ">u4")
    assert (width, height) == (1200, 1600)
    assert len(data) > 20_000  # a rendered page, not a blank one
