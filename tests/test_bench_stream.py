"""lstm-c bench's streaming step (B = T = 1, state carried): the row, the floor, the check."""
import json
import math

import numpy as np
import pytest

import lstm_c
from lstm_c import bench, bench_stream
from lstm_c.cli import main

TINY_STREAM = ["bench", "--mode", "stream", "--H", "8", "--I", "3", "--threads", "1",
               "--min-time", "0.001", "--peak-n", "64"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("L", [1, 2])
def test_gemv_floor_writes_both_products_in_place(dtype, L):
    rng = np.random.default_rng(0)
    H, I = 6, 3
    weights = [(rng.standard_normal((4 * H, I if k == 0 else H)),
                rng.standard_normal((4 * H, H))) for k in range(L)]
    fl = bench_stream.GemvFloor(weights, dtype, rng)
    assert fl.check() == {"gemv": True, "gemv_pt": True}
    assert len(fl.calls("gemv")) == len(fl.calls("gemv_pt")) == 2 * L


def test_stream_row_has_lstm_c_frozen_and_the_floor(capsys, tmp_path):
    pytest.importorskip("torch")
    js = tmp_path / "r.json"
    assert main(TINY_STREAM + ["--json", str(js)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(x for x in lines if x.startswith("| mode"))
    head = [c.strip() for c in header.strip("|").split("|")]
    row = next(x for x in lines if x.startswith("| stream"))
    cells = dict(zip(head, (c.strip() for c in row.strip("|").split("|"))))
    assert (cells["T"], cells["B"], cells["I"], cells["H"], cells["L"]) == ("1", "1", "3", "8", "1")
    for col in ("lstm-c", "lstm-c frozen", "torch", "torch LSTMCell", "BLAS floor"):
        assert cells[col].endswith(" µs"), cells
    # every ratio of the frozen call is filled: a number, not '-'
    for col in ("torch / lstm-c frozen", "LSTMCell / lstm-c frozen", "lstm-c frozen / floor"):
        assert float(cells[col]) > 0, cells
    assert cells["check"].startswith("ok (torch)")
    r = json.loads(js.read_text())["rows"][0]
    assert r["mode"] == "stream" and r["torch"] and r["torch_cell"]
    assert r["lstm_c"]["median"] > 0 and r["floor"]["median"] > 0
    assert math.isfinite(r["lstm_c_frozen"]["median"]) and r["lstm_c_frozen"]["median"] > 0
    # the check the row carries covered the frozen call too
    assert {"frozen y", "frozen h_n", "frozen c_n"} <= set(r["check"]["errors"])
    assert r["floor"]["variants"]["step"] in bench_stream.GemvFloor.VARIANTS
    assert r["gemm_flops"] == 2 * 4 * 8 * (3 + 8)


def test_stream_point_carries_the_state_and_matches_torch():
    torch = pytest.importorskip("torch")
    sp = bench_stream.StreamPoint("float32", 3, 5, 2, torch, seed=1)
    assert sp.cell is None            # nn.LSTMCell is one layer only
    assert not sp.m.training
    check = sp.check(bench.TOL["float32"])
    assert check["ok"] and check["against"] == "torch", check
    assert all(check["errors"][f"frozen {k}"] <= bench.TOL["float32"] for k in ("y", "h_n", "c_n"))
    # the timed calls carry (h, c) from call to call, and compute the same thing
    mine, frozen, theirs = sp.lstm_c_fn(), sp.frozen_fn(), sp.torch_fn()
    seen = [np.array(frozen.state[0])]
    with torch.inference_mode():
        for _ in range(3):
            mine()
            frozen()
            theirs()
            seen.append(np.array(frozen.state[0]))
    assert all(not np.array_equal(a, b) for a, b in zip(seen, seen[1:]))
    for k in (0, 1):
        np.testing.assert_allclose(mine.state[k], theirs.state[k].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(frozen.state[k], theirs.state[k].numpy(), rtol=1e-4, atol=1e-5)


def test_stream_cell_matches_torch_lstm():
    torch = pytest.importorskip("torch")
    sp = bench_stream.StreamPoint("float64", 3, 4, 1, torch, seed=2)
    cell, lstm = sp.cell_fn(), sp.torch_fn()
    with torch.inference_mode():
        for _ in range(2):
            cell()
            lstm()
    np.testing.assert_allclose(cell.state[0].numpy(), lstm.state[0][0].numpy(), rtol=1e-12)


def test_stream_check_without_torch_uses_the_reference():
    sp = bench_stream.StreamPoint("float64", 3, 4, 1, None, seed=0)
    check = sp.check(bench.TOL["float64"])
    assert check["ok"] and check["against"] == "reference", check
    assert check["errors"]["frozen y"] <= bench.TOL["float64"], check
    row = sp.time_row(1, 0.001)
    assert row["torch"] is None and row["torch_cell"] is None and row["lstm_c"]["median"] > 0
    assert math.isfinite(row["lstm_c_frozen"]["median"]) and row["lstm_c_frozen"]["median"] > 0


def test_stream_point_freezes_after_loading_torch_weights():
    torch = pytest.importorskip("torch")
    sp = bench_stream.StreamPoint("float64", 3, 4, 1, torch, seed=4)
    # frozen before load_state_dict, the copy would hold lstm-c's own init, not torch's
    x, hx = sp.xs[0], (sp.h0, sp.c0)
    y, _ = sp.frozen(x, hx)
    with torch.inference_mode():
        want, _ = sp.tm(torch.from_numpy(x), (torch.from_numpy(sp.h0), torch.from_numpy(sp.c0)))
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-9, atol=1e-12)


def test_a_wrong_frozen_call_fails_the_check():
    """The check fails when only the frozen call is wrong, and names it as the worst."""
    sp = bench_stream.StreamPoint("float64", 3, 4, 1, None, seed=0)
    # a frozen copy of slightly different weights: m.forward stays right, frozen does not
    other = lstm_c.LSTM(3, 4, dtype=np.float64, backend="cython").eval()
    state = sp.m.state_dict()
    state["weight_hh_l0"] = state["weight_hh_l0"] * 1.01
    other.load_state_dict(state)
    sp.frozen = other.freeze()
    check = sp.check(bench.TOL["float64"])
    assert check["ok"] is False, check
    assert check["worst"].startswith("frozen "), check
    assert max(check["errors"][k] for k in ("y", "h_n", "c_n")) <= bench.TOL["float64"]


def test_a_failed_stream_check_is_marked(capsys, monkeypatch):
    monkeypatch.setattr(bench, "TOL", {"float32": -1.0, "float64": -1.0})
    assert main(TINY_STREAM + ["--no-torch"]) == 1
    captured = capsys.readouterr()
    assert "**MISMATCH**" in captured.out and "MISMATCH" in captured.err
