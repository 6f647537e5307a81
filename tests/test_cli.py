"""The lstm-c command line: info, a tiny bench, and user errors (exit status 2)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstm_c
from lstm_c import bench
from lstm_c.cli import main

# A grid small enough for a test: one point, one thread, a few samples, a tiny GEMM peak.
TINY = ["bench", "--T", "5", "--B", "2", "--H", "8", "--I", "3", "--threads", "1",
        "--min-time", "0.001", "--peak-n", "64"]
RUN_PY = Path(__file__).resolve().parents[1] / "bench" / "run.py"
# the console script of the environment running the tests (not some other lstm-c on PATH)
SCRIPT = shutil.which("lstm-c", path=str(Path(sys.executable).parent))
needs_script = pytest.mark.skipif(SCRIPT is None, reason="no lstm-c script beside sys.executable")


def _torch_importable():
    try:
        import torch  # noqa: F401
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- info

def test_info_prints_version_and_blas(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lstm-c {lstm_c.__version__}\n")
    blas = [line for line in out.splitlines() if line.startswith("BLAS")]
    assert blas, out
    assert any("used by lstm-c" in line for line in blas), out
    assert "dtypes: float32, float64" in out
    assert "engine: " in out and "NOT importable" not in out


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["lstm_c"] == lstm_c.__version__
    assert info["engine"]["importable"] is True
    assert [p for p in info["threadpools"] if p["engine"] and p["user_api"] == "blas"]
    assert info["torch"]["importable"] == _torch_importable()


@needs_script
def test_info_console_script():
    r = subprocess.run([SCRIPT, "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"lstm-c {lstm_c.__version__}" in r.stdout
    assert "BLAS" in r.stdout


# --------------------------------------------------------------------------- bench

def test_bench_tiny_grid(capsys, tmp_path):
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    assert main(TINY + ["--json", str(js), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| mode"))
    for col in ("lstm-c", "reference", "torch", "BLAS floor", "reference / lstm-c",
                "lstm-c / floor", "lstm-c GFLOP/s", "torch GFLOP/s", "% of peak", "check"):
        assert f"| {col} |" in header
    rows = [line for line in out.splitlines() if line.startswith(("| infer", "| train"))]
    assert len(rows) == 2
    against = "torch" if _torch_importable() else "reference"
    assert all(f"ok ({against})" in r for r in rows), out
    assert all(" ms |" in r for r in rows)

    data = json.loads(js.read_text())
    assert {r["mode"] for r in data["rows"]} == {"infer", "train"}
    for r in data["rows"]:
        assert r["lstm_c"]["median"] > 0 and r["lstm_c"]["reps"] >= bench.MIN_REPS
        assert r["reference"]["median"] > 0
        assert r["floor"]["median"] > 0
        assert (r["torch"] is not None) == _torch_importable()
        assert r["check"]["ok"] is True
        assert r["gemm_flops"] == 2 * 5 * 2 * 4 * 8 * (3 + 8) * (3 if r["mode"] == "train" else 1)
        assert r["lstm_c_gflops"] > 0 and r["pct_peak"] > 0
    assert [(p["dtype"], p["threads"], p["n"]) for p in data["peaks"]] == [("float32", 1, 64)]
    assert data["command"].startswith("lstm-c bench --T 5 --B 2 --H 8 --I 3")
    assert data["resolved_command"].startswith("lstm-c bench --grid default --T 5 --B 2")
    text = md.read_text()
    assert "| infer | float32 | 5 | 2 | 3 | 8 | 1 | 1 |" in text
    assert f"lstm-c {lstm_c.__version__}" in text


def test_bench_without_reference_or_torch(capsys):
    assert main(TINY + ["--no-reference", "--no-torch", "--mode", "train",
                        "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(x for x in lines if x.startswith("| mode"))
    head = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in lines if line.startswith("| train"))
    cells = dict(zip(head, (c.strip() for c in row.strip("|").split("|"))))
    # lstm-c and floor timed; reference not timed (no column), torch and its ratio empty;
    # nothing to check against
    assert cells["dtype"] == "float64"
    assert "reference" not in cells
    assert cells["lstm-c"].endswith(" ms") and cells["BLAS floor"].endswith(" ms")
    assert cells["torch"] == cells["torch / lstm-c"] == cells["torch GFLOP/s"] == "-"
    assert cells["check"].split(";")[0] == "-"


def test_bench_marks_a_failed_check(capsys, monkeypatch):
    monkeypatch.setattr(bench, "TOL", {"float32": -1.0, "float64": -1.0})
    assert main(TINY + ["--mode", "infer", "--no-torch"]) == 1
    captured = capsys.readouterr()
    assert "**MISMATCH**" in captured.out
    assert "MISMATCH" in captured.err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, B, I, H, L", [(3, 1, 4, 5, 1), (4, 3, 2, 6, 2), (2, 6, 3, 4, 1)])
def test_blas_floor_calls_write_in_place(T, B, I, H, L, dtype):
    # every floor call must compute its product into the preallocated output (no copy)
    fl = bench.BlasFloor(T, B, I, H, L, dtype, np.random.default_rng(0))
    ok = fl.check()
    assert ok and all(ok.values()), ok
    assert ("rec:gemv" in ok) == (B <= fl.GEMV_MAX_B)


def test_timeit_counts_samples():
    calls = []
    r = bench.timeit(lambda: calls.append(1), min_time=0.0, min_reps=5)
    assert r["reps"] >= 5 and r["median"] >= 0 and r["min"] <= r["median"]
    r = bench.timeit(lambda: None, min_time=1.0, min_reps=1, max_reps=3)
    assert r["reps"] == 3


@pytest.mark.skipif(not RUN_PY.exists(), reason="needs the source tree (bench/run.py)")
def test_bench_run_py_is_lstm_c_bench():
    r = subprocess.run([sys.executable, str(RUN_PY), "--T", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert "lstm-c bench: error: argument --T" in r.stderr


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("argv, message", [
    ([], "choose a command"),
    (["frobnicate"], "invalid choice"),
    (["info", "--bogus"], "unrecognized arguments"),
    (["bench", "--T", "0"], "expected a positive integer"),
    (["bench", "--B", "two"], "expected a positive integer"),
    (["bench", "--dtype", "float16"], "invalid choice"),
    (["bench", "--min-time", "-1"], "expected seconds"),
    (["bench", "--min-time", "nan"], "expected seconds"),
    (["bench", "--json", "/nonexistent-dir/r.json"], "does not exist"),
])
def test_user_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0
    assert "--min-time" in capsys.readouterr().out


@needs_script
def test_console_script_user_error():
    r = subprocess.run([SCRIPT, "bench", "--threads", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "error" in r.stderr and "Traceback" not in r.stderr
