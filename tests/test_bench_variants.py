"""lstm-c bench --bidirectional / --proj-size: rows beside torch's, checked, FLOPs counted."""
import json

import numpy as np
import pytest

from lstm_c import bench, bench_grid, bench_plot, bench_report
from lstm_c.cli import main

TINY = ["bench", "--T", "4", "--B", "2", "--H", "8", "--I", "3", "--threads", "1",
        "--min-time", "0.001", "--peak-n", "64", "--mode", "infer", "train"]


def _torch_importable():
    try:
        import torch  # noqa: F401
        return True
    except Exception:
        return False


def _table(out):
    """The printed table as a list of {column: cell} dicts."""
    lines = [x for x in out.splitlines() if x.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return head, [dict(zip(head, (c.strip() for c in x.strip("|").split("|"))))
                  for x in lines[2:]]


# --------------------------------------------------------------------------- FLOPs

def test_gemm_flops_of_the_variants():
    T, B, I, H = 100, 16, 65, 512
    plain = bench_grid.gemm_flops(T, B, I, H, 1, "infer")
    # the defaults are the plain LSTM's count
    assert bench_grid.gemm_flops(T, B, I, H, 1, "infer", D=1, P=0) == plain
    # one layer: bidirectional is twice the work
    assert bench_grid.gemm_flops(T, B, I, H, 1, "infer", D=2) == 2 * plain
    # proj_size: the recurrent product is 4H x P, plus a P x H projection per step
    P = 128
    assert bench_grid.gemm_flops(T, B, I, H, 1, "infer", P=P) == \
        2 * T * B * 4 * H * (I + P) + 2 * T * B * H * P
    # layers above the first read D * P inputs (D * H without a projection)
    T, B, I, H, L, P = 3, 2, 5, 8, 2, 4
    layer0 = 2 * T * B * 4 * H * (I + P) + 2 * T * B * H * P
    layer1 = 2 * T * B * 4 * H * (2 * P + P) + 2 * T * B * H * P
    assert bench_grid.gemm_flops(T, B, I, H, L, "infer", D=2, P=P) == 2 * (layer0 + layer1)
    assert bench_grid.gemm_flops(T, B, I, H, L, "infer", D=2) == \
        2 * (2 * T * B * 4 * H * (I + H) + 2 * T * B * 4 * H * (2 * H + H))
    # training is 3x the forward, as for the plain LSTM
    assert bench_grid.gemm_flops(T, B, I, H, L, "train", D=2, P=P) == \
        3 * bench_grid.gemm_flops(T, B, I, H, L, "infer", D=2, P=P)


# --------------------------------------------------------------------------- rows

@pytest.mark.parametrize("variant, D, P", [(["--bidirectional"], 2, 0),
                                           (["--proj-size", "3"], 1, 3),
                                           (["--bidirectional", "--proj-size", "3"], 2, 3)])
def test_variant_rows_are_checked_against_torch(variant, D, P, tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(TINY + ["--layers", "2", *variant, "--json", str(js)]) == 0
    out = capsys.readouterr().out
    data = json.loads(js.read_text())
    against = "torch" if _torch_importable() else "reference"
    assert [r["mode"] for r in data["rows"]] == ["infer", "train"]
    for r in data["rows"]:
        assert (r["D"], r["P"], r["L"], r["H"]) == (D, P, 2, 8)
        assert r["check"]["ok"] is True and r["check"]["against"] == against
        # every parameter, the reverse direction's and the projection's too, was compared
        errors = r["check"]["errors"]
        assert ("weight_hh_l1_reverse" in errors) == (D == 2)
        assert ("weight_hr_l1" in errors) == bool(P)
        assert r["reference"]["median"] > 0
        assert (r["torch"] is not None) == _torch_importable()
        assert r["gemm_flops"] == bench_grid.gemm_flops(4, 2, 3, 8, 2, r["mode"], D=D, P=P)
        # the BLAS floor: per direction when bidirectional, none with a projection
        assert (r["floor"] is None) == bool(P)
    head, cells = _table(out)
    assert head[head.index("L") + 1: head.index("L") + 3] == ["D", "P"]
    assert all((c["D"], c["P"]) == (str(D), str(P)) for c in cells)
    assert all(c["check"].startswith(f"ok ({against})") for c in cells)
    if P:
        assert all(c["BLAS floor"] == "-" and c["lstm-c / floor"] == "-" for c in cells)
        assert "with P > 0 it is not measured ('-')" in out
    else:
        assert all(c["BLAS floor"].endswith(" ms") for c in cells)
    resolved = data["resolved_command"]
    assert ("--bidirectional" in resolved) == (D == 2)
    assert f"--proj-size {P}" in resolved


def test_plain_rows_carry_d1_p0_and_no_variant_columns(tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(TINY + ["--mode", "infer", "--no-torch", "--no-reference",
                        "--json", str(js)]) == 0
    head, _ = _table(capsys.readouterr().out)
    assert "D" not in head and "P" not in head
    data = json.loads(js.read_text())
    assert all((r["D"], r["P"]) == (1, 0) for r in data["rows"])
    assert "--bidirectional" not in data["resolved_command"]
    assert "--proj-size" not in data["resolved_command"]


def test_report_shows_variant_columns_only_when_a_row_has_them():
    row = dict(mode="infer", dtype="float32", T=1, B=1, I=1, H=4, L=1, threads=1,
               lstm_c={"median": 1e-3}, torch={"median": 2e-3}, reference=None, floor=None,
               check={"ok": None}, others=None)
    plain = bench_report.format_table([dict(row, D=1, P=0)]).splitlines()
    assert "| D |" not in plain[0]
    lines = bench_report.format_table([dict(row, D=2, P=2)]).splitlines()
    assert lines[0].startswith("| mode | dtype | T | B | I | H | L | D | P | threads |")
    assert lines[2].startswith("| infer | float32 | 1 | 1 | 1 | 4 | 1 | 2 | 2 | 1 |")
    head, cells = _table("\n".join(lines))
    assert cells[0]["BLAS floor"] == "-" and cells[0]["torch / lstm-c"] == "2.00"


def test_plot_labels_name_the_variant():
    usual = {"T": 100, "I": 65}
    assert bench_plot._label("float32", "train", 16, 100, 65, 1, usual, D=2, P=128) == \
        "f32 B=16 train bidir P=128"
    assert bench_plot._label("float32", "train", 16, 100, 65, 1, usual) == "f32 B=16 train"


@pytest.mark.parametrize("T, B, I, H, L", [(3, 1, 4, 5, 1), (4, 3, 2, 6, 2)])
def test_bidirectional_floor_makes_each_direction_s_calls(T, B, I, H, L):
    one = bench.BlasFloor(T, B, I, H, L, np.float32, np.random.default_rng(0))
    two = bench.BlasFloor(T, B, I, H, L, np.float32, np.random.default_rng(0), directions=2)
    ok = two.check()
    assert ok and all(ok.values()), ok
    for which in ("fwd", "bwd"):
        for seg, variants in one.segments[which].items():
            for v, calls in variants.items():
                assert len(two.segments[which][seg][v]) == 2 * len(calls)
    # layers above the first read both directions' outputs
    assert [a["X"].shape[1] for a in two.arrays] == [I, I] + [2 * H, 2 * H] * (L - 1)


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("argv, message", [
    (["--mode", "stream", "--bidirectional"],
     "--bidirectional apply to --mode infer and train only, not stream"),
    (["--mode", "infer", "memory", "--proj-size", "4"],
     "--proj-size apply to --mode infer and train only, not memory"),
    (["--mode", "charlm", "--bidirectional", "--proj-size", "4"],
     "--bidirectional and --proj-size apply to --mode infer and train only, not charlm"),
    (["--grid", "quick", "--bidirectional"], "--grid quick has fixed points; --bidirectional"),
    (["--grid", "anchors", "--proj-size", "4"], "--grid anchors has fixed points; --proj-size"),
    (["--H", "8", "16", "--proj-size", "8"], "--proj-size 8 must be below every --H"),
    (["--proj-size", "-1"], "expected an integer >= 0"),
])
def test_unsupported_variant_options_exit_2(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
