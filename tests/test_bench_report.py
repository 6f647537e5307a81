"""The page `lstm-c bench --md` writes: command, date, machine and versions first."""
import os
import platform
import re

import numpy as np
import pytest
import scipy

import lstm_c
from lstm_c import bench_report
from lstm_c.cli import main

TINY = ["bench", "--T", "4", "--B", "1", "--H", "8", "--I", "3", "--threads", "1",
        "--min-time", "0.001", "--peak-n", "64", "--mode", "infer", "stream"]


def _torch_version():
    try:
        import torch
        return torch.__version__
    except Exception:
        return None


def test_markdown_starts_with_command_date_machine_versions(tmp_path, capsys):
    md = tmp_path / "r.md"
    argv = TINY + ["--md", str(md)]
    assert main(argv) == 0
    capsys.readouterr()
    lines = md.read_text().splitlines()
    assert lines[0] == "# lstm-c benchmark"
    # the exact command, as typed
    assert lines[2] == "Command: `lstm-c " + " ".join(argv) + "`"
    top = "\n".join(lines[:14])
    assert re.search(r"^Date: \d{4}-\d\d-\d\d \d\d:\d\d", top, re.M), top
    machine = next(x for x in lines if x.startswith("Machine: "))
    assert f"{len(os.sched_getaffinity(0))} cores available" in machine
    with open("/proc/cpuinfo") as f:
        model = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    assert model in machine
    versions = next(x for x in lines if x.startswith("Versions: "))
    for want in (f"python {platform.python_version()}", f"numpy {np.__version__}",
                 f"scipy {scipy.__version__}", f"lstm-c {lstm_c.__version__}"):
        assert want in versions, versions
    torch_version = _torch_version()
    assert (f"torch {torch_version}" if torch_version else "torch: not importable") in versions
    blas = next(x for x in lines if x.startswith("BLAS and OpenMP libraries (threadpoolctl): "))
    assert re.search(r"openblas \d+\.\d+\.\d+[^;]*lstm-c's engine calls it", blas), blas
    # then the peak and one table with both kinds of rows
    assert any(x.startswith("GEMM peak") and "float32 1 thread" in x for x in lines)
    assert any(x.startswith("| infer | float32 | 4 | 1 | 3 | 8 | 1 | 1 |") for x in lines)
    assert any(x.startswith("| stream | float32 | 1 | 1 | 3 | 8 | 1 | 1 |") for x in lines)
    assert sum(x.startswith("| mode |") for x in lines) == 1


def test_times_carry_their_unit():
    assert bench_report.format_time({"median": 0.0123}, "infer") == "12.3 ms"
    assert bench_report.format_time({"median": 45.6e-6}, "stream") == "45.6 µs"
    assert bench_report.format_time(None, "train") == "-"


def test_table_leaves_out_columns_no_row_fills():
    row = dict(mode="infer", dtype="float32", T=1, B=1, I=1, H=1, L=1, threads=1,
               lstm_c={"median": 1e-3}, torch=None, reference=None, floor={"median": 5e-4},
               check={"ok": None}, others=None)
    head = bench_report.format_table([row]).splitlines()[0]
    assert "reference" not in head and "LSTMCell" not in head and "frozen" not in head
    assert "| lstm-c / floor | lstm-c GFLOP/s | torch GFLOP/s | % of peak | check |" in head


def test_stream_rows_add_the_frozen_column_and_its_ratios():
    stream = dict(mode="stream", dtype="float32", T=1, B=1, I=3, H=8, L=1, threads=1,
                  lstm_c={"median": 4e-6}, lstm_c_frozen={"median": 2e-6},
                  torch={"median": 8e-6}, torch_cell={"median": 6e-6}, reference=None,
                  floor={"median": 1e-6}, check={"ok": None}, others=None)
    infer = dict(mode="infer", dtype="float32", T=1, B=1, I=1, H=1, L=1, threads=1,
                 lstm_c={"median": 1e-3}, torch=None, reference=None, floor={"median": 5e-4},
                 check={"ok": None}, others=None)
    lines = bench_report.format_table([infer, stream]).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [dict(zip(head, (c.strip() for c in x.strip("|").split("|")))) for x in lines[2:]]
    # the frozen ratios sit beside lstm-c's own, as in the rest of the table
    assert head.index("lstm-c frozen") == head.index("lstm-c") + 1
    assert head.index("torch / lstm-c frozen") == head.index("torch / lstm-c") + 1
    assert head.index("LSTMCell / lstm-c frozen") == head.index("LSTMCell / lstm-c") + 1
    assert head.index("lstm-c frozen / floor") == head.index("lstm-c / floor") + 1
    assert cells[1]["lstm-c frozen"] == "2 µs"
    assert (cells[1]["torch / lstm-c frozen"], cells[1]["LSTMCell / lstm-c frozen"],
            cells[1]["lstm-c frozen / floor"]) == ("4.00", "3.00", "2.00")
    # a sequence row has no frozen call: its cells are empty, not an error
    assert all(cells[0][c] == "-" for c in head if "frozen" in c)


def test_no_point_for_the_dtype_is_a_usage_error(capsys):
    pytest.importorskip("torch")
    assert main(["bench", "--grid", "quick", "--dtype", "float64", "--mode", "infer"]) == 2
    assert "has no point of dtype float64" in capsys.readouterr().err
