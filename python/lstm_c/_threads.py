"""How many threads the engine's BLAS runs on.

The engine calls the OpenBLAS that SciPy ships, through scipy.linalg.cython_blas.
Its per-step products are small: split over threads, OpenBLAS spends more on
waking and syncing its workers than it saves (T=50, B=1, H=128 on this 2-core
machine kind: 16.8 ms on OpenBLAS's default 2 threads against 0.6 ms on 1).
So, during its own calls, lstm-c sets that BLAS to ``get_num_threads()``
threads (1 unless ``set_num_threads`` says otherwise) and then puts back what
the caller had, so the caller's own SciPy calls are left as they were.
"""

import contextlib

from lstm_c import _validate as check

_num_threads = 1
_controllers = None


def set_num_threads(n):
    """Set how many threads lstm-c's engine uses for BLAS (default 1)."""
    global _num_threads
    _num_threads = check.positive_int("threads", n)


def get_num_threads():
    """How many threads lstm-c's engine uses for BLAS."""
    return _num_threads


def _engine_blas():
    """threadpoolctl controllers of the BLAS the engine calls (found once)."""
    global _controllers
    if _controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  loads the library, so threadpoolctl sees it

        blas = _all_blas()
        # SciPy's wheels ship their own OpenBLAS under scipy.libs; elsewhere
        # (a system or conda BLAS) set every BLAS the process has loaded.
        own = [c for c in blas if "scipy" in c.filepath and "numpy" not in c.filepath]
        _controllers = own or blas
    return _controllers


def _all_blas():
    from threadpoolctl import ThreadpoolController

    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


@contextlib.contextmanager
def _threads_of(controllers, n):
    """Run the block with these BLAS libraries at n threads, then put back what they had."""
    changed = []
    for c in controllers:
        old = c.get_num_threads()
        if old != n:
            c.set_num_threads(n)
            changed.append((c, old))
    try:
        yield
    finally:
        for c, old in changed:
            c.set_num_threads(old)


def engine_threads():
    """Run the block with the engine's BLAS at get_num_threads() threads."""
    return _threads_of(_engine_blas(), _num_threads)


def other_blas_single_threaded():
    """Run the block with every BLAS but the engine's at one thread.

    NumPy ships a second OpenBLAS. After each call its workers busy-wait for a
    while, so with two threads each, the two pools take the cores from each
    other: a char-LM training step (B=32, 2x256) on 2 engine threads ran at
    11,000 chars/s, and at 22,000 with NumPy's BLAS (the model's head, a small
    share of the work) on one.
    """
    engine = {c.filepath for c in _engine_blas()}
    return _threads_of([c for c in _all_blas() if c.filepath not in engine], 1)
