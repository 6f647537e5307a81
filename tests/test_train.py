"""The training loop, run directories, sampling and the char-LM commands, on tiny configurations."""

import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from lstm_c import checkpoint
from lstm_c.cli import main
from lstm_c.model import BITS_PER_NAT
from lstm_c.sample import generate, next_distribution, sample_text
from lstm_c.train import TrainConfig, TrainingDiverged, evaluate, load_model, train

TINY = dict(hidden_size=24, num_layers=2, embed_size=8, seq_len=16, batch_size=4, eval_every=7)
TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    x = 'quote'\n" * 25


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "code.py.txt"
    path.write_text(TEXT)
    return str(path)


def _weights(run_dir, name="last"):
    arrays, meta = checkpoint.load(str(run_dir), name)
    return arrays, meta


def test_a_run_is_saved_with_everything_needed_to_continue(corpus, tmp_path):
    run = tmp_path / "run"
    summary = train(corpus, str(run), TrainConfig(max_steps=20, **TINY), progress=False)
    assert summary["steps"] == 20 and summary["stopped"] == "finished"
    arrays, meta = _weights(run)
    assert meta["step"] == 20
    assert {"state:h", "state:c", "model:head.weight", "model:lstm.weight_hh_l1"} <= set(arrays)
    assert any(k.startswith("optim:") for k in arrays)
    assert meta["vocab"]["kind"] == "bytes"
    assert len(meta["history"]) == 3  # validations at steps 7, 14 and the end
    assert all(math.isfinite(h["val_bpc"]) for h in meta["history"])
    best_arrays, best_meta = _weights(run, "best")
    assert best_meta["best_val"] * BITS_PER_NAT == pytest.approx(min(h["val_bpc"] for h in meta["history"]))


@pytest.mark.parametrize("dropout, schedule", [(0.0, "epoch"), (0.3, "epoch"), (0.3, "cosine")])
def test_resume_ends_bit_identical_to_an_uninterrupted_run(corpus, tmp_path, dropout, schedule):
    # Interrupted at step 13 (mid-epoch, between validations) and resumed to
    # 40, across epoch boundaries and a learning-rate decay: the same weights,
    # optimizer state and carried hidden state as 40 steps in one go.
    kw = dict(TINY, dropout=dropout, lr_schedule=schedule, lr_decay=0.9, lr_decay_start=1)
    train(corpus, str(tmp_path / "a"), TrainConfig(max_steps=40, **kw), progress=False)

    def interrupt(r):
        if r.step == 13:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train(corpus, str(tmp_path / "b"), TrainConfig(max_steps=40, **kw),
                    progress=False, _after_step=interrupt)
    assert stopped["steps"] == 13
    train(None, str(tmp_path / "b"), TrainConfig(max_steps=40), resume=True, progress=False)
    a, meta_a = _weights(tmp_path / "a")
    b, meta_b = _weights(tmp_path / "b")
    assert meta_a["batches"]["epoch"] >= 1, "the test should cross an epoch boundary"
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert meta_a["rng"] == meta_b["rng"]
    assert meta_a["batches"] == meta_b["batches"]


@pytest.mark.parametrize("stop", [dict(max_steps=20), dict(epochs=2)])
def test_the_cosine_schedule_anneals_over_the_whole_run(corpus, tmp_path, stop):
    rates = []
    summary = train(corpus, str(tmp_path / "run"),
                    TrainConfig(lr=1e-2, lr_schedule="cosine", **stop, **TINY),
                    progress=False, _after_step=lambda r: rates.append(r.opt.lr))
    n = summary["steps"]
    assert len(rates) == n and n >= 10
    assert rates[0] == 1e-2  # the first step runs at the full rate
    assert all(a > b for a, b in zip(rates, rates[1:]))
    # step k (1-based) ran at progress (k - 1) / n; the last one close to zero
    assert rates[-1] == pytest.approx(1e-2 * (1 + math.cos(math.pi * (n - 1) / n)) / 2)


def test_resume_keeps_the_runs_own_settings(corpus, tmp_path):
    run = str(tmp_path / "run")
    train(corpus, run, TrainConfig(max_steps=5, **TINY), progress=False)
    train(None, run, TrainConfig(max_steps=9, hidden_size=999), resume=True, progress=False)
    _, meta = _weights(run)
    assert meta["train_config"]["hidden_size"] == TINY["hidden_size"]
    assert meta["step"] == 9


def test_a_nan_loss_stops_with_a_clear_message_and_the_last_checkpoint_intact(corpus, tmp_path):
    run = str(tmp_path / "run")
    train(corpus, run, TrainConfig(max_steps=7, **TINY), progress=False)
    before, _ = _weights(run)
    def poison(r):
        if r.step == 9:
            r.model.parameters()["head.weight"][0, 0] = np.nan

    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(None, run, TrainConfig(max_steps=30), resume=True, progress=False,
              _after_step=poison)
    after, meta = _weights(run)
    assert meta["step"] == 7
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)


def test_an_interrupt_saves_a_consistent_checkpoint_and_resume_continues(corpus, tmp_path):
    run = str(tmp_path / "run")
    interrupted = {}

    def interrupt_once(r):
        if r.step == 5 and not interrupted:
            interrupted["at"] = r.step
            os.kill(os.getpid(), signal.SIGINT)

    summary = train(corpus, run, TrainConfig(max_steps=50, **TINY), progress=False,
                    _after_step=interrupt_once)
    assert summary["stopped"] == "interrupted"
    _, meta = _weights(run)
    assert meta["step"] == summary["steps"] >= 5
    train(None, run, TrainConfig(max_steps=12), resume=True, progress=False)
    assert _weights(run)[1]["step"] == 12


def test_evaluate_matches_the_mean_of_forward_losses(corpus, tmp_path):
    run = str(tmp_path / "run")
    train(corpus, run, TrainConfig(max_steps=10, **TINY), progress=False)
    model, vocab, _ = load_model(run)
    ids = vocab.encode(TEXT[:801])
    nats, n = evaluate(model, ids, batch_size=4, seq_len=50)
    assert n == 800
    # the same text as 4 streams of 200, scored in one pass
    x = ids[:800].reshape(4, 200).T
    y = ids[1:801].reshape(4, 200).T
    loss, _ = model.forward(np.ascontiguousarray(x), np.ascontiguousarray(y), grad=False)
    assert nats == pytest.approx(loss, rel=1e-5)


def test_bad_settings_are_refused_before_training(corpus, tmp_path):
    with pytest.raises(ValueError, match="when to stop"):
        train(corpus, str(tmp_path / "r"), TrainConfig(**TINY), progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(corpus, str(tmp_path / "r"), TrainConfig(max_steps=1, lr=-1.0, **TINY),
              progress=False)
    with pytest.raises(ValueError):
        train(str(tmp_path / "missing.txt"), str(tmp_path / "r"),
              TrainConfig(max_steps=1, **TINY), progress=False)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train(corpus, str(tmp_path / "r"), TrainConfig(max_steps=1, lr_schedule="linear", **TINY),
              progress=False)
    with pytest.raises(ValueError, match="validation split"):
        train(corpus, str(tmp_path / "r"), TrainConfig(max_steps=1, split=(1.0, 0.0, 0.0), **TINY),
              progress=False)
    with pytest.raises(ValueError, match="not a char-LM|checkpoint"):
        train(None, str(tmp_path / "nothing-here"), TrainConfig(max_steps=1), resume=True,
              progress=False)


# --------------------------------------------------------------------------- sampling

def test_next_distribution_temperature_top_k_top_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    np.testing.assert_allclose(next_distribution(logits), [0.5, 0.3, 0.15, 0.05])
    p = next_distribution(logits, top_k=2)
    np.testing.assert_allclose(p, [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    p = next_distribution(logits, top_p=0.7)
    np.testing.assert_allclose(p, [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    cold = next_distribution(logits, temperature=0.1)
    assert cold[0] > 0.99
    hot = next_distribution(logits, temperature=100.0)
    assert hot.max() - hot.min() < 0.01


def test_sampling_is_deterministic_by_seed_and_streams(corpus, tmp_path):
    import io
    run = str(tmp_path / "run")
    train(corpus, run, TrainConfig(max_steps=30, **TINY), progress=False)
    model, vocab, _ = load_model(run)
    a = sample_text(model, vocab, 200, prime="def ", seed=3)
    stream = io.StringIO()
    b = sample_text(model, vocab, 200, prime="def ", seed=3, stream=stream)
    c = sample_text(model, vocab, 200, prime="def ", seed=4)
    assert a == b == stream.getvalue()
    assert a != c
    assert len(vocab.encode(a)) == 200
    with pytest.raises(ValueError, match="temperature"):
        list(generate(model, 5, temperature=0))
    with pytest.raises(ValueError, match="not in the vocabulary|unknown|vocabulary"):
        sample_text(model, vocab, 5, prime="\u20ac")


# --------------------------------------------------------------------------- commands

def _tiny_args(corpus, run):
    return ["train", corpus, "--run", run, "--hidden", "16", "--layers", "1", "--embed", "8",
            "--seq-len", "16", "--batch", "4", "--max-steps", "12", "--eval-every", "6",
            "--no-progress"]


def test_cli_train_sample_eval(corpus, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(_tiny_args(corpus, run)) == 0
    assert "12 steps" in capsys.readouterr().out
    assert main(["sample", run, "--length", "50", "--seed", "1", "--prime", "def"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("def") and len(out) >= 50
    assert main(["eval", run, corpus]) == 0
    assert "bits/char" in capsys.readouterr().out
    assert main(["train", "--resume", run, "--max-steps", "15", "--no-progress"]) == 0
    assert _weights(run)[1]["step"] == 15


def test_cli_viz_writes_the_page_and_shows_a_cell_in_the_terminal(corpus, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(_tiny_args(corpus, run)) == 0
    capsys.readouterr()
    assert main(["viz", run, corpus, "--chars", "600", "--cell", "0:3"]) == 0
    out = capsys.readouterr().out
    page = tmp_path / "run" / "viz.html"
    assert f"page: {page}" in out and "bits/char" in out
    html = page.read_text(encoding="utf-8")
    assert 'id="cell-0-3"' in html and html.count('class="c') >= 600
    # every feature's best cell is named with its score, or none passed the bar
    assert "correlation" in out or "no cell tracks" in out
    assert main(["viz", run, corpus, "--chars", "200", "--cell", "0:1", "--terminal",
                 "--colour"]) == 0
    shown = capsys.readouterr().out
    assert "\x1b[48;2;" in shown and "\u21b5" in shown  # ANSI backgrounds, newlines marked
    assert main(["viz", run, corpus, "--cell", "1:0"]) == 2
    assert "layer" in capsys.readouterr().err
    assert main(["viz", run, corpus, "--terminal"]) == 2
    assert "--cell" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--max-steps", "3"], "FILE"),
    (["train", "/nonexistent/file.txt", "--max-steps", "3"], "nonexistent"),
    (["sample", "/nonexistent/run"], "nonexistent"),
    (["eval", "/nonexistent/run", "/nonexistent/file"], "nonexistent"),
    (["viz", "/nonexistent/run", "/nonexistent/file"], "nonexistent"),
    (["train", "x", "--time", "soon"], "duration"),
])
def test_cli_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_eval_names_symbols_the_model_never_saw(corpus, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(_tiny_args(corpus, run)) == 0
    other = tmp_path / "other.txt"
    other.write_text("zzz \u00e9\u00e9 ZZZ")
    assert main(["eval", run, str(other)]) == 2
    assert "vocabulary" in capsys.readouterr().err


def test_demo_runs_end_to_end_in_a_subprocess(tmp_path):
    # The real command, shortened: trains on the standard library's source,
    # saves the run, prints a sample and what to run next.
    out = subprocess.run([sys.executable, "-m", "lstm_c.cli", "demo", "--run",
                          str(tmp_path / "demo"), "--time", "3", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "standard library" in out.stdout
    assert "What next" in out.stdout
    assert (tmp_path / "demo" / "best" / "weights.npz").exists()
    page = tmp_path / "demo" / "viz.html"
    assert f"{page}" in out.stdout and page.stat().st_size > 10_000
