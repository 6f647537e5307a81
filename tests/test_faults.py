"""Faults in long runs (issue 7, item 5): a training process killed with SIGKILL at random
moments, again and again, resumes from its last checkpoint each time with no corrupt file and
no progress lost beyond one save interval; a full disk while saving leaves the previous
checkpoint intact, says so, and leaves no temporary files behind."""

import errno
import io
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lstm_c import checkpoint
from lstm_c.cli import main
from lstm_c.train import TrainConfig, load_model, train

TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    x = 'quote'\n" * 200

# -- SIGKILL at random moments ------------------------------------------------------------

EVERY = 5        # --eval-every: RUN/last (and RUN/best when it improves) saved every 5 steps
STEPS = 1200     # the whole run; uninterrupted it takes ~2.5 s here, most of it saving
KILLS = 6
MODEL = ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "16", "--batch", "4",
         "--eval-every", str(EVERY), "--eval-chars", "256", "--threads", "1"]

# The real `lstm-c train` (lstm_c.cli.main), in its own process, reporting each step it
# completes as it completes it: the train() it calls gets an _after_step hook that prints
# "STEP n" unbuffered (after step n, before the validation and saves of step n).
CHILD = """
import sys
import lstm_c.train as t
_train = t.train
def train(*args, **kwargs):
    kwargs["_after_step"] = lambda run: print("STEP", run.step, flush=True)
    return _train(*args, **kwargs)
t.train = train
from lstm_c.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start(argv, out_path):
    out = open(out_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "train", *argv, "--no-progress"],
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return proc


def _steps(out_path):
    with open(out_path) as f:
        return [int(line.split()[1]) for line in f if line.startswith("STEP ")]


def _wait_for_step(proc, out_path, at_least, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = _steps(out_path)
        if steps and steps[-1] >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {open(out_path).read()[-2000:]}")
        time.sleep(0.005)
    raise AssertionError(f"no step {at_least} within {timeout} s")


def _check_run_dir(run):
    """Every checkpoint in the run loads (none is half-written); returns RUN/last's meta."""
    names = checkpoint.list_checkpoints(run)
    assert "last" in names, os.listdir(run)
    metas = {}
    for name in names:
        arrays, metas[name] = checkpoint.load(run, name)  # raises on a half-written one
        load_model(str(run), name)
    if "best" in metas:
        assert metas["best"]["step"] <= metas["last"]["step"]
    return metas["last"]


def test_sigkill_at_random_moments_always_resumes_from_the_last_checkpoint(tmp_path):
    corpus = tmp_path / "code.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    rng = random.Random(7)
    t_start = time.monotonic()
    figures = []  # (killed after step, saved step, steps lost, leftovers in run/)

    out = tmp_path / "child-0.txt"
    proc = _start([str(corpus), "--run", str(run), *MODEL, "--max-steps", str(STEPS)], out)
    _wait_for_step(proc, out, EVERY + 1)  # RUN/last exists from here on
    for kill in range(KILLS):
        if kill:  # a resumed process: kill it anywhere, also inside its first saves
            _wait_for_step(proc, out, 0)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, open(out).read()[-2000:]
        reached = _steps(out)[-1]  # the process had completed this step, or one more

        meta = _check_run_dir(run)
        saved = meta["step"]
        assert saved % EVERY == 0 and saved <= reached + 1
        # Lost: the steps since the last completed save, at most one interval (all of it
        # when the kill hit the save of step `reached` itself).
        assert reached - saved <= EVERY, (reached, saved)
        leftovers = sorted(e for e in os.listdir(run) if e not in ("last", "best"))
        figures.append((reached, saved, reached - saved, leftovers))

        out = tmp_path / f"child-{kill + 1}.txt"
        proc = _start(["--resume", str(run), "--max-steps", str(STEPS)], out)
        if kill == KILLS - 1:
            break
        _wait_for_step(proc, out, 0)
        assert _steps(out)[0] == saved + 1, "the resumed run did not start after its checkpoint"

    assert proc.wait(timeout=120) == 0, open(out).read()[-2000:]
    steps = _steps(out)
    assert steps[0] == figures[-1][1] + 1 and steps[-1] == STEPS
    assert f"finished: {STEPS} steps" in open(out).read()
    meta = _check_run_dir(run)
    assert meta["step"] == STEPS
    assert sorted(os.listdir(run)) == ["best", "last"]  # every leftover was tidied

    # Killed six times and resumed, the run ends exactly where one that never stopped does.
    cfg = TrainConfig(hidden_size=16, num_layers=1, embed_size=8, seq_len=16, batch_size=4,
                      eval_every=EVERY, eval_chars=256, threads=1, max_steps=STEPS)
    train(str(corpus), str(tmp_path / "straight"), cfg, progress=False)
    killed, _ = checkpoint.load(run, "last")
    straight, straight_meta = checkpoint.load(tmp_path / "straight", "last")
    assert sorted(killed) == sorted(straight)
    for k in killed:
        np.testing.assert_array_equal(killed[k], straight[k], err_msg=k)
    assert meta["rng"] == straight_meta["rng"] and meta["batches"] == straight_meta["batches"]

    seconds = time.monotonic() - t_start
    lost = max(f[2] for f in figures)
    print(f"\n{KILLS} SIGKILLs over {seconds:.1f} s; (reached, saved, lost, leftovers): "
          f"{figures}; at most {lost} steps lost (save interval {EVERY})")


# -- a full disk while saving -------------------------------------------------------------


class FullDisk:
    """Stands in for `open` in lstm_c.checkpoint: files opened for writing take `budget` bytes
    in all (then a short write, then ENOSPC, as a real full disk does); reads are untouched."""

    def __init__(self, budget):
        self.budget = budget
        self.failures = 0

    def __call__(self, path, mode="r", *args, **kwargs):
        if not any(c in mode for c in "wxa+"):
            return open(path, mode, *args, **kwargs)
        disk = self

        class Raw(io.FileIO):
            def write(self, b):
                b = memoryview(b).cast("B")
                if disk.budget <= 0:
                    disk.failures += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                n = min(len(b), disk.budget)
                disk.budget -= n
                return super().write(b[:n])

        return io.BufferedWriter(Raw(path, mode.replace("b", "")))


def _reference_sizes(tmp_path):
    save = checkpoint.save(tmp_path / "ref", "ck", {"w": np.arange(4000.0), "b": np.ones(3)},
                           {"step": 2})
    npz = os.path.getsize(os.path.join(save, "weights.npz"))
    return npz, npz + os.path.getsize(os.path.join(save, "config.json"))


@pytest.mark.parametrize("where", ["nothing fits", "1 byte", "npz header", "half the npz",
                                   "all but the npz's last byte", "npz, not config.json",
                                   "all but the last byte"])
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
    npz, total = _reference_sizes(tmp_path)
    budget = {"nothing fits": 0, "1 byte": 1, "npz header": 100, "half the npz": npz // 2,
              "all but the npz's last byte": npz - 1, "npz, not config.json": npz + 10,
              "all but the last byte": total - 1}[where]
    old = {"w": np.arange(4000.0) * 2, "b": np.zeros(3)}
    run = tmp_path / "run"
    checkpoint.save(run, "ck", old, {"step": 1})
    disk = FullDisk(budget)
    monkeypatch.setattr(checkpoint, "open", disk, raising=False)
    with pytest.raises(OSError) as e:
        checkpoint.save(run, "ck", {"w": np.arange(4000.0), "b": np.ones(3)}, {"step": 2})
    assert disk.failures >= 1  # the fault really fired
    assert e.value.errno == errno.ENOSPC
    assert f"cannot save checkpoint {run / 'ck'} (No space left on device); the previous " \
           f"checkpoint is intact" in str(e.value)
    assert sorted(os.listdir(run)) == ["ck"]  # no temporary files left behind
    arrays, meta = checkpoint.load(run, "ck")
    assert meta == {"step": 1}
    for k in old:
        np.testing.assert_array_equal(arrays[k], old[k])
    monkeypatch.undo()  # space again: the next save goes through
    checkpoint.save(run, "ck", {"w": np.ones(1)}, {"step": 3})
    assert checkpoint.load(run, "ck")[1] == {"step": 3} and sorted(os.listdir(run)) == ["ck"]


def test_a_full_disk_at_fsync_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    # Some file systems report a full disk only when the data is flushed.
    run = tmp_path / "run"
    checkpoint.save(run, "ck", {"w": np.zeros(3)}, {"step": 1})
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "weights.npz":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("no /proc/self/fd here")
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="previous checkpoint is intact"):
        checkpoint.save(run, "ck", {"w": np.ones(3)}, {"step": 2})
    monkeypatch.undo()
    assert checkpoint.load(run, "ck")[1] == {"step": 1}
    assert sorted(os.listdir(run)) == ["ck"]


def test_a_full_disk_during_training_stops_it_with_the_last_checkpoint_intact(
        tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "code.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    args = ["train", str(corpus), "--run", str(run), *MODEL, "--max-steps", "40",
            "--no-progress"]
    disk = FullDisk(10**12)

    def fill_the_disk_after_step_12(r):
        if r.step == 12:
            disk.budget = 0

    real_train = train
    monkeypatch.setattr(checkpoint, "open", disk, raising=False)
    monkeypatch.setattr("lstm_c.train.train", lambda *a, **k: real_train(
        *a, **k, _after_step=fill_the_disk_after_step_12))
    assert main(args) == 2  # the command's one-line error, not a traceback
    err = capsys.readouterr().err
    assert "No space left on device" in err and "previous checkpoint is intact" in err
    assert f"{run / 'last'}" in err
    assert sorted(os.listdir(run)) == ["best", "last"]  # no temporary files left behind
    _, meta = checkpoint.load(run, "last")
    assert meta["step"] == 10  # the save at step 15 failed; step 10's is intact
    load_model(str(run), "best")

    monkeypatch.undo()  # space again: resume and finish
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert checkpoint.load(run, "last")[1]["step"] == 40


def test_resume_tidies_what_a_killed_save_left(tmp_path):
    # A kill inside a save of "best" leaves .best~tmp-* (or .best~old); if the validation
    # loss never improves again, no later save of "best" would remove it. Resuming does.
    corpus = tmp_path / "code.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    cfg = TrainConfig(hidden_size=16, num_layers=1, embed_size=8, seq_len=16, batch_size=4,
                      eval_every=EVERY, eval_chars=256, threads=1, max_steps=10)
    train(str(corpus), str(run), cfg, progress=False)
    (run / ".best~tmp-killed").mkdir()
    (run / ".best~tmp-killed" / "weights.npz").write_bytes(b"PK\x03\x04 half")
    os.replace(run / "last", run / ".last~old")  # killed between the two renames of "last"
    assert checkpoint.list_checkpoints(run) == ["best", "last"]
    train(None, str(run), TrainConfig(max_steps=12), resume=True, progress=False)
    assert sorted(os.listdir(run)) == ["best", "last"]
    assert checkpoint.load(run, "last")[1]["step"] == 12
