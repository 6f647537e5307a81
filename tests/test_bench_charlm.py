"""lstm-c bench --mode charlm: lstm-c train's step against the torch script, same computation."""
import json

import numpy as np
import pytest

from lstm_c import bench, bench_charlm, train
from lstm_c.cli import main

TINY = dict(T=8, B=4, E=10, H=16, L=2)
TINY_CLI = ["bench", "--mode", "charlm", "--T", "8", "--B", "4", "--I", "10", "--H", "16",
            "--threads", "1", "--steps", "3", "--warmup", "1"]
ROW_KEYS = {"mode", "dtype", "T", "B", "I", "H", "L", "V", "threads", "data", "steps",
            "lstm_c", "torch", "others", "lstm_c_chars_per_s", "torch_chars_per_s"}


def _point(torch, dtype="float32", data_path=None, seed=0):
    t = TINY
    return bench_charlm.CharLMPoint(dtype, t["T"], t["B"], t["E"], t["H"], t["L"], torch,
                                    seed, data_path)


def _cells(out):
    """{column: cell} of the first row of the charlm table printed in ``out``."""
    lines = out.splitlines()
    head = [c.strip() for c in next(x for x in lines if x.startswith("| dtype"))
            .strip("|").split("|")]
    row = next(x for x in lines if x.startswith("| float"))
    return dict(zip(head, (c.strip() for c in row.strip("|").split("|"))))


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-10)])
def test_losses_agree_with_torch(dtype, tol, tmp_path):
    torch = pytest.importorskip("torch")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    pt = _point(torch, dtype, str(text))
    assert pt.key["V"] == len(set(text.read_bytes()))    # the bytes the text uses
    check = pt.check(bench.TOL[dtype])
    assert check["ok"] and check["against"] == "torch", check
    assert check["max_rel_err"] <= tol, check
    mine, theirs = check["losses"]["lstm_c"], check["losses"]["torch"]
    assert len(mine) == len(theirs) == bench_charlm.CHECK_STEPS
    assert mine[0] != mine[-1]                           # the weights did change between steps


def test_both_start_from_the_same_weights_and_batches():
    torch = pytest.importorskip("torch")
    pt = _point(torch)
    mine = pt.lstm_c.model.state_dict()
    theirs = pt.torch.model.state_dict()
    assert set(mine) == set(theirs)
    for k, v in mine.items():
        np.testing.assert_array_equal(v, theirs[k].numpy(), err_msg=k)
    for _ in range(3):
        np.testing.assert_array_equal(pt.lstm_c.batches.next_batch(),
                                      pt.torch.batches.next_batch())


def test_lstm_c_side_is_the_train_step_and_carries_the_state():
    pt = _point(None)
    assert type(pt.lstm_c).train_step is train._Run.train_step
    assert not np.any(pt.lstm_c.state[0])
    loss = pt.lstm_c_step()
    assert np.isfinite(loss) and pt.lstm_c.step == 1 and pt.lstm_c.batches.position == 1
    assert np.any(pt.lstm_c.state[0])                    # the state goes on to the next batch
    assert pt.lstm_c.opt.step_count == 1 and pt.lstm_c.opt.lr == train.TrainConfig.lr


def test_row_has_the_keys_and_positive_rates():
    torch = pytest.importorskip("torch")
    pt = _point(torch)
    row = pt.time_row(1, steps=3, warmup=1)
    assert set(row) == ROW_KEYS
    assert row["mode"] == "charlm" and row["V"] == 256 and row["data"] == "random bytes"
    assert row["lstm_c"]["reps"] == row["torch"]["reps"] == 3
    for k in ("lstm_c_chars_per_s", "torch_chars_per_s"):
        assert row[k] > 0
    assert row["lstm_c_chars_per_s"] == pytest.approx(8 * 4 / row["lstm_c"]["median"])


def test_bench_mode_charlm_prints_the_table(capsys, tmp_path):
    pytest.importorskip("torch")
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    assert main(TINY_CLI + ["--json", str(js), "--md", str(md)]) == 0
    cells = _cells(capsys.readouterr().out)
    assert (cells["T"], cells["B"], cells["E"], cells["H"], cells["L"], cells["V"]) == \
        ("8", "4", "10", "16", "2", "256")
    for col in ("lstm-c chars/s", "torch chars/s", "torch / lstm-c"):
        assert float(cells[col].replace(",", "")) > 0, cells
    assert cells["loss check (max rel diff)"].startswith("ok, ")
    saved = json.loads(js.read_text())
    r = saved["charlm"][0]
    assert ROW_KEYS | {"check"} <= set(r) and r["check"]["ok"]
    assert "--mode charlm --T 8 --B 4 --H 16 --I 10 --layers 2" in saved["resolved_command"]
    assert "| lstm-c chars/s |" in md.read_text()


def test_without_torch_lstm_c_column_only(capsys, monkeypatch):
    monkeypatch.setattr(bench, "import_torch", lambda: None)   # torch treated as absent
    assert main(TINY_CLI) == 0
    cells = _cells(capsys.readouterr().out)
    assert float(cells["lstm-c chars/s"].replace(",", "")) > 0
    for col in ("torch chars/s", "torch ms/step", "torch / lstm-c"):
        assert cells[col] == "-", cells
    assert cells["loss check (max rel diff)"].startswith("-")


def test_a_loss_mismatch_is_marked(capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(bench, "TOL", {"float32": -1.0, "float64": -1.0})
    assert main(TINY_CLI) == 1
    captured = capsys.readouterr()
    assert "**MISMATCH**" in captured.out and "MISMATCH charlm" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "3"], "--steps apply only to --mode charlm"),
    (["--mode", "charlm", "train"], "--mode charlm runs alone"),
    (["--mode", "charlm", "--quick"], "--mode charlm runs alone"),
    (["--mode", "charlm", "--min-time", "1"], "--min-time do not apply to --mode charlm"),
    (["--mode", "charlm", "--data", "/nonexistent/t.txt"], "no such file"),
    (["--mode", "charlm", "--warmup", "0"], "expected a positive integer"),
])
def test_bad_charlm_options_exit_2(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
