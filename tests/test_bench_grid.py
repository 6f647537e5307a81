"""lstm-c bench's grids: the perf-anchors points exactly, the quick grid, GEMM FLOPs."""
import pytest

from lstm_c import bench_grid
from lstm_c.cli import main

# perf-anchors.md section 4, written out by hand: (dtype, T, B, I, H, L)
ANCHORS = [
    ("float32", 100, 1, 65, 128, 1), ("float32", 100, 1, 65, 256, 1),
    ("float32", 100, 1, 65, 512, 1), ("float32", 100, 1, 65, 1024, 1),
    ("float32", 100, 16, 65, 128, 1), ("float32", 100, 16, 65, 256, 1),
    ("float32", 100, 16, 65, 512, 1), ("float32", 100, 16, 65, 1024, 1),
    ("float32", 100, 64, 65, 128, 1), ("float32", 100, 64, 65, 256, 1),
    ("float32", 100, 64, 65, 512, 1), ("float32", 100, 64, 65, 1024, 1),
    ("float32", 50, 16, 128, 256, 1), ("float32", 50, 64, 128, 512, 1),
    ("float32", 50, 1, 128, 1024, 1),
    ("float32", 100, 1, 65, 512, 3), ("float32", 100, 16, 65, 512, 3),
    ("float32", 100, 64, 65, 256, 3), ("float32", 50, 64, 65, 512, 3),
    ("float64", 100, 1, 65, 256, 1), ("float64", 100, 16, 65, 512, 1),
    ("float64", 100, 64, 65, 256, 1),
]
STREAM = [("float32", 65, 128, 1), ("float32", 65, 512, 1), ("float32", 65, 1024, 1),
          ("float32", 65, 512, 3), ("float64", 65, 512, 1)]


def test_anchor_points_are_perf_anchors_section_4():
    assert bench_grid.lstm_points("anchors") == ANCHORS
    assert len(ANCHORS) == 22 and len(set(ANCHORS)) == 22
    assert bench_grid.stream_points("anchors") == STREAM
    assert bench_grid.GRID_DEFAULTS["anchors"]["mode"] == ["infer", "train", "stream"]
    assert bench_grid.GRID_DEFAULTS["anchors"]["threads"] == [1, 2]


def test_dtype_keeps_only_those_points():
    assert bench_grid.lstm_points("anchors", dtypes=["float64"]) == ANCHORS[-3:]
    assert bench_grid.stream_points("anchors", dtypes=["float64"]) == STREAM[-1:]


def test_quick_grid_is_small():
    points = bench_grid.lstm_points("quick")
    assert 0 < len(points) <= 4
    # per call at most T*B*H = 50*32*128 numbers: milliseconds
    assert all(T * B * H <= 50 * 32 * 128 and L == 1 for _, T, B, _, H, L in points)
    assert bench_grid.GRID_DEFAULTS["quick"]["threads"] == [1]
    assert bench_grid.GRID_DEFAULTS["quick"]["peak_n"] <= 1024


def test_default_grid_is_the_product():
    assert bench_grid.lstm_points("default", dtypes=["float32", "float64"], T=5, B=[1, 2],
                                  I=3, H=[8], L=2) == [
        ("float32", 5, 1, 3, 8, 2), ("float32", 5, 2, 3, 8, 2),
        ("float64", 5, 1, 3, 8, 2), ("float64", 5, 2, 3, 8, 2)]
    assert bench_grid.stream_points("default", dtypes=["float32"], I=3, H=[8, 16], L=1) == [
        ("float32", 3, 8, 1), ("float32", 3, 16, 1)]


def test_gemm_flops_as_perf_anchors_counts_them():
    # one layer: 2 * T * B * 4H * (I + H)
    assert bench_grid.gemm_flops(100, 16, 65, 512, 1, "infer") == 2 * 100 * 16 * 2048 * 577
    assert bench_grid.gemm_flops(100, 16, 65, 512, 1, "train") == 3 * 2 * 100 * 16 * 2048 * 577
    # layers above the first take H inputs
    assert bench_grid.gemm_flops(2, 1, 3, 4, 2, "infer") == 2 * 2 * 16 * (3 + 4) + 2 * 2 * 16 * 8
    # perf-anchors: torch at 40.5 ms for f32 B=16 H=512 infer is 93 GFLOP/s
    assert bench_grid.gemm_flops(100, 16, 65, 512, 1, "infer") / 40.5e-3 / 1e9 == \
        pytest.approx(93, abs=1)


@pytest.mark.parametrize("argv, message", [
    (["--grid", "everything"], "invalid choice: 'everything'"),
    (["--grid", "anchors", "--H", "64"], "--grid anchors has fixed points; --H apply only"),
    (["--grid", "anchors", "--quick"], "--quick is --grid quick"),
    (["--mode", "fast"], "invalid choice: 'fast'"),
    (["--peak-n", "0"], "expected a positive integer"),
    (["--plot", "/nonexistent-dir/p.png"], "does not exist"),
    (["--plot", "p.png", "--no-torch"], "cannot go with --no-torch"),
    (["--plot", "p.png", "--threads", "2"], "add 1 to --threads"),
])
def test_bad_bench_options_exit_2(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
