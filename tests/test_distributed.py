"""Data-parallel training over MPI (python/lstm_c/distributed.py, train(distributed=True)).

Real runs of ``mpiexec -n N lstm-c train --distributed`` on loopback, compared
with one process on the whole batch: the same validation curve and the same
weights up to summation order (float64: 1e-12 relative; float32: 1e-4), with
dropout on, with and without overlapping the all-reduce with backward; resume
across a change of N, and a clear error where the batch does not split; a
failing or killed rank ends every rank, with the last checkpoint intact.

The pieces that need no MPI (a rank's streams, whole-batch dropout masks) are
tested in-process. The runs need mpi4py and an mpiexec beside the Python
running the tests (the `mpi` extra, which CI installs) and skip without them.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lstm_c import checkpoint, data
from lstm_c.layers import dropout_mask
from lstm_c.model import CharLM
from lstm_c.train import TrainConfig, train

BIN = os.path.dirname(sys.executable)
MPIEXEC = os.path.join(BIN, "mpiexec")
LSTM_C = os.path.join(BIN, "lstm-c")


def _text(tmp_path):
    # Any text will do; Python's own source, as the demo uses, is always at hand.
    import json
    import textwrap

    src = (textwrap.dedent(json.__doc__) + open(json.__file__).read()) * 4
    path = tmp_path / "text.txt"
    path.write_text(src)
    return str(path)


ARGS = ["--layers", "2", "--hidden", "32", "--embed", "8", "--batch", "8", "--seq-len", "16",
        "--eval-every", "5", "--eval-chars", "2000", "--dropout", "0.2", "--no-progress"]


def _needs_mpi():
    pytest.importorskip("mpi4py")
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec beside {sys.executable} (pip install 'lstm-c[mpi]')")


def _lstm_c(*args, ranks=None, timeout=300):
    cmd = [LSTM_C, "train", *args]
    if ranks is not None:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd, "--distributed"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _compare(run_a, run_b, rtol):
    a, meta_a = checkpoint.load(run_a, "last")
    b, meta_b = checkpoint.load(run_b, "last")
    assert sorted(a) == sorted(b) and meta_a["step"] == meta_b["step"]
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol,
                                   atol=rtol * float(np.max(np.abs(b[name]))), err_msg=name)
    curve_a = [h["val_bpc"] for h in meta_a["history"]]
    curve_b = [h["val_bpc"] for h in meta_b["history"]]
    np.testing.assert_allclose(curve_a, curve_b, rtol=rtol)
    return meta_a


# --------------------------------------------------------------------------
# without MPI

def test_a_rank_reads_its_own_streams():
    ids = np.arange(1000) % 50
    whole = data.Batches(ids, batch_size=8, seq_len=10)
    part = data.Batches(ids, batch_size=8, seq_len=10, streams=(2, 6))
    assert len(part) == len(whole)
    for k in (0, 3, len(whole) - 1):
        np.testing.assert_array_equal(part.batch(k)[0], whole.batch(k)[0][:, 2:6])
        np.testing.assert_array_equal(part.batch(k)[1], whole.batch(k)[1][:, 2:6])
    with pytest.raises(ValueError, match=r"streams: expected a range \(lo, hi\)"):
        data.Batches(ids, 8, 10, streams=(4, 9))


def test_byte_counts_of_the_parts_sum_to_the_whole_file(tmp_path):
    path = _text(tmp_path)
    whole = data.byte_counts(path)
    parts = [data.byte_counts(path, (k, 3)) for k in range(3)]
    np.testing.assert_array_equal(sum(parts), whole)
    assert whole.sum() == os.path.getsize(path) and all(p.sum() > 0 for p in parts)
    given = data.Corpus.open(path, counts=sum(parts))
    read = data.Corpus.open(path)
    assert given.vocab.to_json() == read.vocab.to_json()
    np.testing.assert_array_equal(given.train.take(np.arange(100)), read.train.take(np.arange(100)))


def test_dropout_masks_of_a_share_are_rows_of_the_whole_batch():
    full = dropout_mask(np.random.default_rng(0), (5, 8, 3), 0.3, np.dtype(np.float32))
    rng = np.random.default_rng(0)
    part = dropout_mask(rng, (5, 2, 3), 0.3, np.dtype(np.float32), share=(4, 6, 8))
    np.testing.assert_array_equal(part, full[:, 4:6])
    # and the generator moved as far as for the whole batch
    whole = np.random.default_rng(0)
    whole.random((5, 8, 3))
    assert rng.random() == whole.random()


def test_a_charlm_share_equals_its_rows_of_the_whole_batch():
    # Two halves with batch_share give the loss, outputs and (summed) gradients
    # of the whole batch, dropout included: what the ranks compute.
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (6, 8)), rng.integers(0, 20, (6, 8))
    whole = CharLM(20, hidden_size=16, num_layers=2, embed_size=8, dropout=0.3,
                   dtype=np.float64, seed=1)
    loss, _ = whole.forward(x, y)
    whole.zero_grad()
    whole.backward()
    losses, grads = [], None
    for lo, hi in ((0, 4), (4, 8)):
        half = CharLM(20, hidden_size=16, num_layers=2, embed_size=8, dropout=0.3,
                      dtype=np.float64, seed=1)
        half.lstm.batch_share = (lo, hi, 8)
        part_loss, _ = half.forward(x[:, lo:hi], y[:, lo:hi])
        half.zero_grad()
        half.backward()
        losses.append(part_loss)
        grads = ({k: v / 2 for k, v in half.grads.items()} if grads is None
                 else {k: grads[k] + v / 2 for k, v in half.grads.items()})
    assert np.mean(losses) == pytest.approx(loss, rel=1e-13)
    for name, g in whole.grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)


def test_without_mpi4py_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(RuntimeError, match=r'pip install "lstm-c\[mpi\]"'):
        train(_text(tmp_path), str(tmp_path / "run"), TrainConfig(max_steps=1),
              distributed=True, progress=False)


# --------------------------------------------------------------------------
# under mpiexec

@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-4)])
@pytest.mark.parametrize("overlap", [True, False])
def test_two_ranks_equal_one_process_on_the_whole_batch(tmp_path, dtype, rtol, overlap):
    _needs_mpi()
    text = _text(tmp_path)
    args = [text, *ARGS, "--dtype", dtype, "--max-steps", "15"]
    one = _lstm_c(*args, "--run", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = _lstm_c(*args, "--run", str(tmp_path / "two"), *([] if overlap else ["--no-overlap"]),
                  ranks=2)
    assert two.returncode == 0, two.stderr[-2000:]
    meta = _compare(str(tmp_path / "two"), str(tmp_path / "one"), rtol)
    assert len(meta["history"]) == 3
    assert two.stdout.count("finished: 15 steps") == 1  # rank 0 alone reports


def test_resume_across_a_change_of_ranks(tmp_path):
    _needs_mpi()
    text = _text(tmp_path)
    args = [text, *ARGS, "--dtype", "float64"]
    # the reference: one process, stopped at 10 steps and resumed to 20
    assert _lstm_c(*args, "--max-steps", "10", "--run", str(tmp_path / "ref")).returncode == 0
    assert _lstm_c("--resume", str(tmp_path / "ref"), "--max-steps", "20",
                   "--no-progress").returncode == 0
    # 2 ranks, then 4 (oversubscribed) from the same checkpoint
    r = _lstm_c(*args, "--max-steps", "10", "--run", str(tmp_path / "run"), ranks=2)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _lstm_c("--resume", str(tmp_path / "run"), "--max-steps", "20", "--no-progress",
                ranks=4)
    assert r.returncode == 0, r.stderr[-2000:]
    _compare(str(tmp_path / "run"), str(tmp_path / "ref"), 1e-12)
    # 3 ranks cannot share 8 streams: a clear error, and the run is untouched
    r = _lstm_c("--resume", str(tmp_path / "run"), "--max-steps", "30", "--no-progress",
                ranks=3)
    assert r.returncode != 0
    assert "the batch of 8 streams does not split evenly over 3 processes" in r.stderr
    assert checkpoint.load(str(tmp_path / "run"), "last")[1]["step"] == 20


FAIL_ON_RANK_1 = """
import sys
from lstm_c.train import TrainConfig, train

def fail(run):
    if run.cluster.rank == 1 and run.step == 7:
        raise RuntimeError("injected failure on rank 1")

cfg = TrainConfig(num_layers=1, hidden_size=16, embed_size=8, batch_size=4, seq_len=8,
                  max_steps=1000, eval_every=5, eval_chars=500)
train(sys.argv[1], sys.argv[2], cfg, distributed=True, progress=False, _after_step=fail)
"""


def test_an_error_on_one_rank_ends_every_rank(tmp_path):
    _needs_mpi()
    script = tmp_path / "fail.py"
    script.write_text(FAIL_ON_RANK_1)
    run = tmp_path / "run"
    t0 = time.monotonic()
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), _text(tmp_path),
                        str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "rank 1 of 2: RuntimeError: injected failure on rank 1; stopping all ranks" in r.stderr
    assert time.monotonic() - t0 < 60  # not a hang
    assert checkpoint.load(str(run), "last")[1]["step"] == 5  # the last save, intact


def test_a_killed_rank_ends_every_rank(tmp_path):
    _needs_mpi()
    run = tmp_path / "run"
    proc = subprocess.Popen([MPIEXEC, "-n", "2", LSTM_C, "train", _text(tmp_path), *ARGS,
                             "--max-steps", "100000", "--run", str(run), "--distributed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last").exists():  # the first checkpoint is written
            assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint"
            time.sleep(0.1)
        rank1 = [pid for pid in _children(proc.pid) if _env(pid).get("PMI_RANK") == "1"]
        assert len(rank1) == 1
        os.kill(rank1[0], signal.SIGKILL)
        proc.wait(timeout=60)  # every rank ends: no hang
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert checkpoint.load(str(run), "last")[1]["step"] > 0


def _children(pid):
    """Every descendant process of pid (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _env(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return {}
    return dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)
