"""The streaming step of ``lstm-c bench``: B = 1, T = 1, the state carried between calls.

This is generation one character at a time, the case where torch is furthest
from the BLAS floor (perf-anchors section 4, "Streaming step"). Per point:

  lstm-c         ``m.eval(); y, (h, c) = m.forward(x, (h, c))``, x of shape (1, 1, I)
                 (the call perf-anchors' anchor_bench times);
  lstm-c frozen  the same carried call on ``frozen = m.freeze()``, made once before
                 timing: ``y, (h, c) = frozen(x, (h, c))``, the weights packed once
                 instead of on every call (the way to sample text one step at a time);
  torch LSTM     ``nn.LSTM`` on the same (1, 1, I) input, under ``torch.inference_mode()``;
  torch LSTMCell ``nn.LSTMCell`` on (1, I), same mode (one layer only: a stack of
                 cells is user code);
  gemv floor     per layer, the two matrix-vector products no LSTM step can avoid
                 (W_ih x and W_hh h, with ``scipy.linalg.blas`` ?gemv into a
                 preallocated 4H vector), in two layouts: the torch layout, and a
                 pre-transposed copy of the weights. The faster layout counts.

All three models get the same weights (lstm-c is frozen after it gets them);
before timing, lstm-c's y, h and c over a few carried steps, from both of its
calls, are checked against torch's (or the NumPy reference's when torch is
missing).
"""
from __future__ import annotations

import numpy as np

from .bench_common import SETTLE_S, rel_err, timeit, to_numpy

CHECK_STEPS = 3     # carried steps compared with torch before timing


class GemvFloor:
    """The 2 gemv calls per layer of one streaming step, on preallocated vectors.

    Variants: ``gemv`` (torch's (4H, K) C-order weights, read as the
    transposed Fortran (K, 4H) matrix: trans=1) and ``gemv_pt`` (a
    pre-transposed C-order (K, 4H) copy, read as Fortran (4H, K): trans=0).
    Which is faster depends on H and the BLAS, so both are timed.
    """

    def __init__(self, weights, dtype, rng):
        from scipy.linalg import blas
        dt = np.dtype(dtype)
        self.gemv = blas.sgemv if dt == np.float32 else blas.dgemv
        self.layers = []
        for w_ih, w_hh in weights:
            four_h, k = w_ih.shape
            self.layers.append(dict(
                w_ih=np.ascontiguousarray(w_ih, dt), w_hh=np.ascontiguousarray(w_hh, dt),
                w_ih_t=np.ascontiguousarray(w_ih.T, dt), w_hh_t=np.ascontiguousarray(w_hh.T, dt),
                x=rng.standard_normal(k).astype(dt),
                h=rng.standard_normal(w_hh.shape[1]).astype(dt),
                g=np.zeros(four_h, dt)))

    def calls(self, variant):
        """The (args) of every gemv call of one step, in order, for ``variant``."""
        out = []
        for a in self.layers:
            # gemv(alpha, A, x, beta, y, offx, incx, offy, incy, trans, overwrite_y)
            if variant == "gemv":
                out.append((1.0, a["w_ih"].T, a["x"], 0.0, a["g"], 0, 1, 0, 1, 1, 1))
                out.append((1.0, a["w_hh"].T, a["h"], 1.0, a["g"], 0, 1, 0, 1, 1, 1))
            else:
                out.append((1.0, a["w_ih_t"].T, a["x"], 0.0, a["g"], 0, 1, 0, 1, 0, 1))
                out.append((1.0, a["w_hh_t"].T, a["h"], 1.0, a["g"], 0, 1, 0, 1, 0, 1))
        return out

    VARIANTS = ("gemv", "gemv_pt")

    def runner(self, variant):
        gemv, calls = self.gemv, self.calls(variant)

        def run():
            for args in calls:
                gemv(*args)
        return run

    def check(self, rtol=1e-3):
        """{variant: bool}: one step of each variant writes W_ih x + W_hh h into g in place."""
        ok = {}
        for v in self.VARIANTS:
            self.runner(v)()
            ok[v] = all(rel_err(a["g"], a["w_ih"].astype(np.float64) @ a["x"]
                                + a["w_hh"].astype(np.float64) @ a["h"]) <= rtol
                        for a in self.layers)
        return ok

    def time(self, min_time, settle=0.0):
        """{"median": fastest variant's median, "variants": {"step": its name}}."""
        best = None
        for v in self.VARIANTS:
            r = timeit(self.runner(v), min_time, settle=settle)
            if best is None or r["median"] < best[1]["median"]:
                best = (v, r)
        return {**best[1], "variants": {"step": best[0]}}


class StreamPoint:
    """One (dtype, I, H, L) streaming point: lstm-c, frozen, torch LSTM and LSTMCell, the floor."""

    def __init__(self, dtype, I, H, L, torch, seed, reference=True):
        import lstm_c
        self.key = dict(dtype=dtype, T=1, B=1, I=I, H=H, L=L)
        dt = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.torch = torch
        self.xs = rng.standard_normal((CHECK_STEPS, 1, 1, I)).astype(dt)
        self.h0 = (0.5 * rng.standard_normal((L, 1, H))).astype(dt)
        self.c0 = (0.5 * rng.standard_normal((L, 1, H))).astype(dt)
        self.m = lstm_c.LSTM(I, H, num_layers=L, dtype=dt, backend="cython", seed=seed).eval()
        self.tm = self.cell = None
        if torch is not None:
            torch.manual_seed(seed)
            self.tm = torch.nn.LSTM(I, H, num_layers=L, dtype=getattr(torch, dtype)).eval()
            state = {k: to_numpy(v) for k, v in self.tm.state_dict().items()}
            self.m.load_state_dict(state)
            if L == 1:
                self.cell = torch.nn.LSTMCell(I, H, dtype=getattr(torch, dtype)).eval()
                self.cell.load_state_dict({k[:-len("_l0")]: torch.from_numpy(v)
                                           for k, v in state.items()})
        else:
            state = self.m.state_dict()
        # Frozen only now, after torch's weights were loaded: the frozen copy
        # would not see them. Once per point, outside every timed call, as a
        # sampler freezes once before generating.
        self.frozen = self.m.freeze()
        self.ref = None
        if reference and torch is None:
            self.ref = lstm_c.LSTM(I, H, num_layers=L, dtype=dt, backend="numpy").eval()
            self.ref.load_state_dict(state)
        self.floor = GemvFloor([(state[f"weight_ih_l{k}"], state[f"weight_hh_l{k}"])
                                for k in range(L)], dt, rng)

    # --- the timed calls: each carries its own state from call to call
    def lstm_c_fn(self):
        m, x, st = self.m, self.xs[0], [self.h0.copy(), self.c0.copy()]

        def step():
            y, (st[0], st[1]) = m.forward(x, (st[0], st[1]))
        step.state = st   # for tests: the (h, c) carried between calls
        return step

    def frozen_fn(self):
        frozen, x, st = self.frozen, self.xs[0], [self.h0.copy(), self.c0.copy()]

        def step():
            y, (st[0], st[1]) = frozen(x, (st[0], st[1]))
        step.state = st
        return step

    def torch_fn(self):
        torch, tm = self.torch, self.tm
        x = torch.from_numpy(self.xs[0])
        st = [torch.from_numpy(self.h0.copy()), torch.from_numpy(self.c0.copy())]

        def step():
            y, (st[0], st[1]) = tm(x, (st[0], st[1]))
        step.state = st
        return step

    def cell_fn(self):
        torch, cell = self.torch, self.cell
        x = torch.from_numpy(self.xs[0][0])
        st = [torch.from_numpy(self.h0[0].copy()), torch.from_numpy(self.c0[0].copy())]

        def step():
            st[0], st[1] = cell(x, (st[0], st[1]))
        step.state = st
        return step

    # --- the check
    def _steps(self, forward):
        """y, h, c after CHECK_STEPS carried steps of ``forward(x, (h, c))``, as float64."""
        h, c, ys = self.h0, self.c0, []
        for x in self.xs:
            y, (h, c) = forward(x, (h, c))
            ys.append(np.array(y, np.float64))
        return {"y": np.concatenate(ys), "h_n": np.array(h, np.float64),
                "c_n": np.array(c, np.float64)}

    def check(self, tol):
        """Compare lstm-c's carried steps with torch's (or the reference's), like Point.check.

        Both of lstm-c's calls are compared, ``m.forward`` and the frozen call
        (its errors named "frozen y", "frozen h_n", "frozen c_n"); the check
        fails when either does, and reports the worst error of the two.
        """
        if self.tm is not None:
            torch = self.torch

            def oracle(x, hc):
                with torch.inference_mode():
                    y, (h, c) = self.tm(torch.from_numpy(x), tuple(map(torch.from_numpy, hc)))
                return to_numpy(y), (to_numpy(h), to_numpy(c))
            against = "torch"
        elif self.ref is not None:
            oracle, against = self.ref.forward, "reference"
        else:
            return {"against": None, "ok": None}
        want, got = self._steps(oracle), self._steps(self.m.forward)
        frozen = self._steps(self.frozen)
        errs = {k: rel_err(got[k], want[k]) for k in want}
        errs.update({f"frozen {k}": rel_err(frozen[k], want[k]) for k in want})
        worst = max(errs, key=errs.get)
        ok = all(np.isfinite(e) and e <= tol for e in errs.values())
        return {"against": against, "max_rel_err": errs[worst], "worst": worst, "ok": bool(ok),
                "errors": errs}

    def time_row(self, threads, min_time):
        """Time every column at ``threads`` (already pinned by the caller): one table row."""
        settle = SETTLE_S if threads > 1 else 0.0
        row = dict(mode="stream", **self.key, threads=threads, reference=None)
        row["lstm_c"] = timeit(self.lstm_c_fn(), min_time, settle=settle)
        row["lstm_c_frozen"] = timeit(self.frozen_fn(), min_time, settle=settle)
        row["torch"] = row["torch_cell"] = None
        if self.tm is not None:
            # entered once, outside the timed calls: the context itself costs a microsecond
            with self.torch.inference_mode():
                row["torch"] = timeit(self.torch_fn(), min_time, settle=settle)
                if self.cell is not None:
                    row["torch_cell"] = timeit(self.cell_fn(), min_time, settle=settle)
        row["floor"] = self.floor.time(min_time, settle=settle)
        return row
