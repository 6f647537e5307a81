"""How many threads the engine runs on, and its BLAS kept at one.

``set_num_threads(n)`` (default 1) is the number of threads the engine splits
its own work over, at a coarse grain: batch row ranges through the whole time
loop, then shares of the rows of the backward's GEMMs (_lstm.pyx, "threads").

The BLAS it calls (the OpenBLAS that SciPy ships, through
scipy.linalg.cython_blas) runs at one thread inside lstm-c's calls, whatever
n is. Its per-step products are small: split over threads, OpenBLAS spends more
on waking and syncing its workers than it saves (T=50, B=1, H=128 on this
2-core machine kind: 16.8 ms on OpenBLAS's default 2 threads against 0.6 ms on
1). And its idle workers busy-wait after a call, taking the second core from
the engine's own threads (a B=16, H=256 training step: 58.8 ms on one thread,
60.5 with both kinds of threads at 2, 49.3 with the engine's alone at 2).
After each call the caller's setting is put back, so the caller's own SciPy
calls are left as they were.

Both settings are process-global, not per Python thread: ``set_num_threads``
sets one number that every thread's calls read, and the BLAS library has one
thread count. When several Python threads are inside engine calls at once,
the first to enter sets the engine's BLAS to one thread and the last to leave
puts the caller's setting back (a count under a lock), so one thread leaving
never sets it back under another still inside.
"""

import ctypes
import threading

from lstm_c import _validate as check

_num_threads = 1
_controllers = None
MAX_THREADS = 256  # the engine's limit (MAX_THREADS in _lstm.pyx)


def set_num_threads(n):
    """Set how many threads lstm-c's engine splits its work over (default 1, at most 256)."""
    global _num_threads
    n = check.positive_int("threads", n)
    if n > MAX_THREADS:  # refused here, not at the next engine call
        raise ValueError(f"threads must be at most {MAX_THREADS}, got {n}")
    _num_threads = n


def get_num_threads():
    """How many threads lstm-c's engine splits its work over."""
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


def _direct_calls(controller):
    """(get, set) as plain ctypes functions of an OpenBLAS, or None.

    threadpoolctl looks its functions up on every call (5 us a switch, as much
    as a whole streaming step at H=128); these calls cost well under one.
    """
    symbol = getattr(controller, "_get_symbol", None)  # threadpoolctl >= 3.2, OpenBLAS only
    if controller.internal_api != "openblas" or symbol is None:
        return None
    get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
    if get is None or set_ is None:
        return None
    get = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.cast(get, ctypes.c_void_p).value)
    set_ = ctypes.CFUNCTYPE(None, ctypes.c_int)(ctypes.cast(set_, ctypes.c_void_p).value)
    return get, set_


def _calls_of(controllers):
    return [_direct_calls(c) or (c.get_num_threads, c.set_num_threads) for c in controllers]


class _ThreadsOf:
    """A context that runs its block with these BLAS libraries at n threads,
    then puts back what each had. A small class, not a generator: one is made
    and entered on every engine call, so its own cost counts."""

    __slots__ = ("_calls", "_n", "_changed")

    def __init__(self, calls, n):
        self._calls = calls
        self._n = n
        self._changed = ()

    def __enter__(self):
        n, changed = self._n, []
        for get, set_ in self._calls:
            old = get()
            if old != n:
                set_(n)
                changed.append((set_, old))
        self._changed = changed
        return self

    def __exit__(self, *exc):
        for set_, old in self._changed:
            set_(old)
        return False


def _threads_of(controllers, n):
    return _ThreadsOf(_calls_of(controllers), n)


class _EngineThreads:
    """engine_threads()'s context (one, process-wide): the BLAS at one thread
    while any thread is inside an engine call; the caller's setting back when
    the last one leaves."""

    __slots__ = ("_lock", "_inside", "_changed", "calls")

    def __init__(self):
        self._lock = threading.Lock()
        self._inside = 0      # threads (or nested calls) inside engine calls now
        self._changed = ()    # (set, old) to put back when the last one leaves
        self.calls = None     # the engine BLAS's (get, set), found on first use

    def __enter__(self):
        with self._lock:
            if self._inside == 0:
                changed = []
                for get, set_ in self.calls:
                    old = get()
                    if old != 1:
                        set_(1)
                        changed.append((set_, old))
                self._changed = changed
            self._inside += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                for set_, old in self._changed:
                    set_(old)
                self._changed = ()
        return False


_ENGINE_THREADS = _EngineThreads()


def engine_threads():
    """Run the block with the engine's BLAS at one thread (the engine splits its own work).

    Safe with several Python threads: the caller's setting comes back when the
    last of them leaves.
    """
    if _ENGINE_THREADS.calls is None:
        _ENGINE_THREADS.calls = _calls_of(_engine_blas())
    return _ENGINE_THREADS


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
