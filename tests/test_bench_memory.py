"""lstm-c's memory formula against the arrays a model really holds, and the RSS runner."""
import numpy as np
import pytest

import lstm_c
from lstm_c import bench_memory


def _owner(a):
    """The array that owns a's memory (views point at it through .base)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def held_bytes(model):
    """Bytes of the distinct buffers the model holds beyond its parameters and gradients:
    what forward saved for backward, and its workspaces."""
    owners = {}

    def visit(obj):
        if isinstance(obj, np.ndarray):
            owner = _owner(obj)
            owners[id(owner)] = owner.nbytes
        elif isinstance(obj, (tuple, list)):
            for o in obj:
                visit(o)
    visit(model._saved)
    visit(list(model._workspace._buffers.values()))
    return sum(owners.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, B, I, H, L", [(1, 1, 1, 1, 1), (7, 3, 5, 4, 1), (6, 2, 3, 5, 3),
                                           (4, 5, 9, 2, 2)])
def test_saved_bytes_is_what_forward_keeps(T, B, I, H, L, dtype):
    rng = np.random.default_rng(0)
    m = lstm_c.LSTM(I, H, num_layers=L, dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    m.forward(x, grad=True)
    assert held_bytes(m) == bench_memory.saved_bytes(T, B, I, H, L, dtype)


def test_saved_bytes_counts_dropout_masks_and_dropped_inputs():
    T, B, I, H, L = 5, 2, 3, 4, 3
    m = lstm_c.LSTM(I, H, num_layers=L, dropout=0.5, seed=0)
    m.forward(np.ones((T, B, I), np.float32), grad=True)
    assert held_bytes(m) == bench_memory.saved_bytes(T, B, I, H, L, np.float32, dropout=True)
    assert held_bytes(m) > bench_memory.saved_bytes(T, B, I, H, L, np.float32)
    m.eval()   # no dropout at inference
    m2 = lstm_c.LSTM(I, H, num_layers=L, dropout=0.5, seed=0).eval()
    m2.forward(np.ones((T, B, I), np.float32), grad=True)
    assert held_bytes(m2) == bench_memory.saved_bytes(T, B, I, H, L, np.float32)


def test_saved_bytes_counts_x_once_when_converted():
    # float64 x into a float32 model: the conversion is the private copy, not a second one
    T, B, I, H = 3, 2, 4, 5
    m = lstm_c.LSTM(I, H, seed=0)
    m.forward(np.ones((T, B, I)), grad=True)
    assert held_bytes(m) == bench_memory.saved_bytes(T, B, I, H, 1, np.float32)


@pytest.mark.parametrize("L", [1, 3])
def test_backward_bytes_dgates_and_grads(L):
    T, B, I, H = 4, 3, 5, 6
    m = lstm_c.LSTM(I, H, num_layers=L, seed=0)
    y, _ = m.forward(np.ones((T, B, I), np.float32), grad=True)
    m.backward(np.ones_like(y))
    parts = bench_memory.backward_bytes(T, B, I, H, L, np.float32)
    dgates = sum(b.nbytes for k, b in m._workspace._buffers.items() if k[0] == "dgates")
    assert parts["dgates"] == dgates
    assert parts["grads"] == sum(g.nbytes for g in m.grads.values())
    # layer 0's dx is alive at the end, and with layers above, the gradient they passed down
    assert parts["dx"] == 4 * T * B * I if L == 1 else parts["dx"] >= 4 * T * B * (I + H)


def test_child_measures_an_lstm_c_step():
    # fresh process, lstm-c only (torch's import takes seconds); the step's growth must
    # cover at least the arrays the formula names (here about 4 MB)
    T, B, I, H = 40, 8, 65, 256
    r = bench_memory.measure("lstm-c", "float32", T, B, I, H, 1)
    assert "error" not in r, r
    saved = bench_memory.saved_bytes(T, B, I, H, 1, "float32")
    assert r["peak_bytes"] >= 0.8 * saved, (r, saved)
    assert r["peak_bytes"] < 20 * saved + 50e6, (r, saved)


def test_memory_child_command_line():
    r = bench_memory.measure("lstm-c", "float32", 1, 1, 1, 1, 1, timeout=60)
    assert "error" not in r
    with pytest.raises(SystemExit):
        bench_memory.main(["--impl", "lstm-c", "--point", "float16,1,1,1,1,1"])


def test_bench_mode_memory_prints_the_table(capsys, tmp_path):
    from lstm_c.cli import main
    md = tmp_path / "m.md"
    assert main(["bench", "--mode", "memory", "--T", "20", "--B", "4", "--H", "32", "--I", "5",
                 "--no-torch", "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert "| lstm-c step MB | torch step MB |" in out
    saved = bench_memory.saved_bytes(20, 4, 5, 32, 1, "float32")
    row = next(x for x in out.splitlines() if x.startswith("| float32 | 20 | 4 | 5 | 32 | 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[6]) > 0 and cells[7] == "-"          # measured; torch not run
    assert cells[9] == f"{saved / 1e6:.1f}"
    assert "| mode |" not in out                             # no timed rows: no timing table
    assert "peak resident growth" in md.read_text()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("T, B, I, H, L, dropout, recurrent_dropout",
                         [(5, 3, 4, 6, 1, 0.0, 0.0), (4, 2, 3, 5, 3, 0.5, 0.0),
                          (3, 4, 2, 4, 2, 0.0, 0.3)])
def test_saved_bytes_with_the_options(T, B, I, H, L, dropout, recurrent_dropout, lengths,
                                      peephole, proj_size, bidirectional, dtype):
    m = lstm_c.LSTM(I, H, num_layers=L, dropout=dropout, bidirectional=bidirectional,
                    proj_size=proj_size, peephole=peephole,
                    recurrent_dropout=recurrent_dropout, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I))
    lens = np.array([T - 1, T, 1, 2][:B]) if lengths else None   # rows out of order: sorted copy
    y, _ = m.forward(x, lengths=lens, grad=True)
    assert held_bytes(m) == bench_memory.saved_bytes(
        T, B, I, H, L, dtype, dropout=dropout > 0 and L > 1, bidirectional=bidirectional,
        proj_size=proj_size, recurrent_dropout=recurrent_dropout > 0)
    m.backward(np.ones_like(y))
    parts = bench_memory.backward_bytes(T, B, I, H, L, dtype, bidirectional=bidirectional,
                                        proj_size=proj_size, peephole=peephole)
    assert parts["dgates"] == sum(b.nbytes for k, b in m._workspace._buffers.items()
                                  if k[0] == "dgates")
    assert parts["grads"] == sum(g.nbytes for g in m.grads.values())
