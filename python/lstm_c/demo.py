"""`lstm-c demo`: train a small model on Python's own source, then let it write Python.

Nothing is downloaded: the corpus is the standard library's source, which every
Python installation has (code, as in the Linux-kernel example of char-rnn).
"""

import os
import sys
import sysconfig
from pathlib import Path

from lstm_c import cell_report
from lstm_c.sample import sample_text
from lstm_c.train import TrainConfig, load_model, train

# Measured on 2 cores: about 20,800 chars/s on 2 engine threads (the training
# default there), 13,000 on 1.
DEMO_CONFIG = dict(num_layers=2, hidden_size=256, embed_size=64, seq_len=64, batch_size=32,
                   dropout=0.0, lr=3e-3, clip=5.0, eval_every=250, eval_chars=50_000, seed=0)


def stdlib_corpus(path, max_bytes=4_000_000):
    """Write the standard library's .py files, in sorted order, into one file.

    Tests, site-packages and generated or vendored trees are left out, so the
    text is ordinary hand-written Python. Returns (path, files used, bytes).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3",
            "__pycache__", "ensurepip", "turtledemo", "pydoc_data", "encodings"}
    files = sorted(p for p in root.rglob("*.py")
                   if not skip.intersection(p.relative_to(root).parts))
    if not files:
        raise RuntimeError(f"found no Python source under {root}: this Python installation "
                           f"ships no standard library source; use `lstm-c train FILE`")
    used, size = 0, 0
    with open(path, "wb") as out:
        for p in files:
            try:
                text = p.read_bytes()
            except OSError:
                continue
            if size + len(text) > max_bytes:
                break
            out.write(text)
            size += len(text)
            used += 1
    return path, used, size


def _held_out_code(corpus, n_bytes, chars=3000):
    """Lines from the test split (the last 5%), which training never reads."""
    text = cell_report.read_text(corpus, offset=int(n_bytes * 0.95), max_chars=chars)
    return text[:text.rfind(b"\n") + 1]


def run_demo(run_dir="lstm-c-demo", seconds=120.0, length=600, progress=True):
    """Train for `seconds` on the standard library's source, save the run, print a sample."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    say = print
    corpus, n_files, n_bytes = stdlib_corpus(run_dir / "corpus.py.txt")
    say(f"lstm-c demo: training a 2-layer LSTM (256 units) for {seconds:.0f} s on the Python "
        f"standard library's own source ({n_files} files, {n_bytes / 1e6:.1f} MB: {corpus}).")
    say("Bits per character start near 6.5 (a guess among the byte values) and fall as "
        "it learns; a plain zip of this text needs about 2.")
    cfg = TrainConfig(time_budget=seconds, **DEMO_CONFIG)
    summary = train(str(corpus), str(run_dir), cfg, progress=progress)
    say(f"\ntrained {summary['steps']} steps ({summary['chars_per_s']:,.0f} chars/s); best "
        f"validation {summary['best_val_bpc']:.3f} bits/char; saved in {run_dir}/best and "
        f"{run_dir}/last\n")
    model, vocab, _ = load_model(run_dir, "best")
    say("A sample (temperature 0.8), primed with 'def ':\n" + "-" * 72)
    sys.stdout.write("def ")
    sample_text(model, vocab, length, prime="def ", temperature=0.8, seed=0, stream=sys.stdout)
    say("\n" + "-" * 72)
    text = _held_out_code(corpus, n_bytes)
    rec, matches, page = cell_report.report(model, vocab, text, run_dir / "viz.html",
                                            source="held-out standard library source")
    say(f"Inside the model, on {len(rec):,} characters it did not train on "
        f"({rec.bits_per_char:.2f} bits/char), the cells that track features of the code:")
    say(cell_report.describe(matches))
    say(f"The text coloured by those cells, the model's top-5 guesses and its gates: {page}\n")
    steps = [(f"lstm-c sample {run_dir} --prime 'class ' --length 1000", "more text"),
             (f"lstm-c eval {run_dir} FILE", "bits/char on a file"),
             (f"lstm-c viz {run_dir} FILE --cell 1:0 --terminal", "one cell, in colour"),
             ("lstm-c train FILE --run RUN --time 600", "your own text"),
             (f"lstm-c train --resume {run_dir} --time 600", "keep training this one")]
    width = max(len(cmd) for cmd, _ in steps)
    say("What next:\n" + "\n".join(f"  {cmd:<{width}}   # {why}" for cmd, why in steps))
    return summary


if __name__ == "__main__":  # pragma: no cover
    run_demo(os.environ.get("LSTM_C_DEMO_DIR", "lstm-c-demo"))
