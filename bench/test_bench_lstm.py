"""pytest-benchmark groups: lstm-c (backend "cython") against the NumPy reference.

Not part of the test suite (pyproject's testpaths = ["tests"]); run explicitly:

    pytest bench/ --benchmark-only
    pytest bench/ --benchmark-only -k forward --benchmark-columns=median,iqr,rounds

BLAS threads are pinned to 1. For torch and the BLAS floor side by side, use
`lstm-c bench` (python bench/run.py).
"""
import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
threadpoolctl = pytest.importorskip("threadpoolctl")
lstm_c = pytest.importorskip("lstm_c")

# (T, B, I, H): one step of the char-LM (B=1) and a training batch, two widths
SHAPES = [(50, 1, 65, 128), (50, 16, 65, 128), (50, 16, 65, 512)]
BACKENDS = ["cython", "numpy"]
DTYPES = ["float32", "float64"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The engine runs its BLAS at lstm_c.get_num_threads() (1 by default);
    # threadpoolctl pins numpy's, which the reference uses.
    import lstm_c  # noqa: F401  (loads both BLAS libraries, so threadpoolctl sees them)
    with threadpoolctl.threadpool_limits(limits=1):
        yield


def _setup(backend, dtype, shape, seed=0):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    m = lstm_c.LSTM(I, H, dtype=np.dtype(dtype), backend="cython", seed=seed)
    state = m.state_dict()
    if backend != "cython":
        m = lstm_c.LSTM(I, H, dtype=np.dtype(dtype), backend=backend, seed=seed)
        m.load_state_dict(state)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    hx = tuple((0.5 * rng.standard_normal((1, B, H))).astype(dtype) for _ in range(2))
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    return m, x, hx, dy


def _id(shape):
    return "T{}-B{}-I{}-H{}".format(*shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_forward(benchmark, shape, backend, dtype):
    benchmark.group = f"forward {_id(shape)} {dtype}"
    m, x, hx, _ = _setup(backend, dtype, shape)
    y, _ = benchmark(m.forward, x, hx, grad=False)
    assert y.shape == (shape[0], shape[1], shape[3])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_train(benchmark, shape, backend, dtype):
    benchmark.group = f"train {_id(shape)} {dtype}"
    m, x, hx, dy = _setup(backend, dtype, shape)

    def step():
        m.forward(x, hx)
        return m.backward(dy)

    dx, _ = benchmark(step)
    assert dx.shape == x.shape
