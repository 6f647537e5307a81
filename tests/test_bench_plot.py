"""`lstm-c bench --plot`: a PNG of the speed-up over torch against H."""
import builtins

import pytest

from lstm_c import bench_plot
from lstm_c.cli import main


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    png = tmp_path / "speedup.png"
    assert main(["bench", "--T", "4", "--B", "1", "--H", "8", "16", "--I", "3",
                 "--threads", "1", "--min-time", "0.001", "--peak-n", "64", "--no-reference",
                 "--mode", "infer", "stream", "--plot", str(png)]) == 0
    assert f"plot: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_series_per_workload_at_one_thread():
    def row(mode, B, H, threads=1, torch=2.0, L=1, T=100, I=65):
        stream = mode == "stream"
        return dict(mode=mode, dtype="float32", T=T, B=B, I=I, H=H, L=L, threads=threads,
                    lstm_c={"median": 1.0}, torch={"median": torch},
                    torch_cell={"median": 1.5} if stream and L == 1 else None,
                    lstm_c_frozen={"median": 0.5} if stream else None)
    rows = [row("train", 1, 128), row("train", 1, 256, torch=4.0), row("infer", 16, 128),
            row("train", 1, 128, threads=2, torch=9.0), row("stream", 1, 512, torch=10.0),
            row("stream", 1, 512, torch=3.0, L=2), row("infer", 16, 512, T=50)]
    series = bench_plot.speedup_series(rows)
    assert series == {("train", "f32 B=1 train"): [(128, 2.0), (256, 4.0)],
                      ("infer", "f32 B=16 infer"): [(128, 2.0)],
                      ("infer", "f32 B=16 infer T=50"): [(512, 2.0)],
                      ("infer", "f32 stream"): [(512, 10.0)],
                      ("infer", "f32 stream vs LSTMCell"): [(512, 1.5)],
                      ("infer", "f32 stream (frozen)"): [(512, 20.0)],
                      ("infer", "f32 stream L=2"): [(512, 3.0)],
                      ("infer", "f32 stream (frozen) L=2"): [(512, 6.0)]}


def test_missing_matplotlib_names_the_install(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    # reported before any timing starts
    assert main(["bench", "--plot", "p.png", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib: pip install matplotlib" in err
