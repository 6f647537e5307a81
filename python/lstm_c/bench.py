"""Time lstm-c against the NumPy reference and torch.nn.LSTM, same weights, same threads.

For every grid point (dtype, T, B, I, H, layers) and thread count, two modes:

  infer  forward only: lstm-c ``forward(x, hx, grad=False)``; torch under
         ``torch.inference_mode()``.
  train  forward + backward: lstm-c ``forward(x, hx)`` then ``backward(dy)``;
         torch forward then ``torch.autograd.backward(y, dy)`` with x, h0, c0
         requiring grad (so dx, dh0, dc0 and every parameter gradient are made).

Columns: lstm-c (backend "cython"), the NumPy reference (backend "numpy"; slow, so
few repetitions), torch (when importable), and the BLAS floor: only the BLAS
calls an LSTM cannot avoid, made with ``scipy.linalg.blas`` (the OpenBLAS the
engine links) on preallocated arrays, fastest call layout per segment:
forward = one (T*B, I)x(I, 4H) GEMM + T per-step (B, H)x(H, 4H) products per
layer; backward = T per-step (B, 4H)x(4H, H) products + one GEMM each for dX,
dW_ih, dW_hh. It leaves out the gate math but includes Python's cost per BLAS
call (a fraction of a microsecond), which a compiled caller does not pay: at tiny
sizes lstm-c/floor can dip below 1.

All models get torch's weights (or lstm-c's own when torch is missing). Before
timing a point, lstm-c's outputs and gradients are checked against torch (or
the reference); a row whose check fails is marked and the exit status is 1.

Timing: ``time.perf_counter``, one warm-up call, then samples until at least
``--min-time`` seconds and 5 samples; the median is reported. Calls under 1 ms
are batched per sample. BLAS threads are pinned with threadpoolctl and torch with
``torch.set_num_threads``; with more than one thread each measurement starts
after a 0.15 s pause, because OpenBLAS workers busy-wait after a call and would
steal cores from the next library timed.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import sys
import time

import numpy as np

from .cli import UsageError

DEFAULTS = dict(T=100, B=[1, 32], H=[128, 512], I=65, layers=1, dtype=["float32"],
                threads=[1, 2], mode=["infer", "train"], min_time=0.25)
QUICK = dict(T=50, B=[1, 32], H=[128], threads=[1], min_time=0.05)
MIN_REPS = 5
REF_REPS = 3            # the NumPy reference is slow: at most this many samples
SETTLE_S = 0.15         # pause before each multi-thread measurement
TOL = {"float32": 1e-3, "float64": 1e-9}   # max |a - b| / max |b|, loose on purpose
BUSY = 0.10             # rows during which other work used more of the machine are marked


# --------------------------------------------------------------------------- arguments

def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _seconds(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0), got {s!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0), got {s!r}")
    return v


def add_arguments(p):
    """Add the ``lstm-c bench`` options to an argparse parser."""
    d = DEFAULTS
    p.add_argument("--T", type=_positive_int, metavar="N",
                   help=f"sequence length (default {d['T']}; --quick {QUICK['T']})")
    p.add_argument("--B", type=_positive_int, nargs="+", metavar="N",
                   help=f"batch sizes (default {' '.join(map(str, d['B']))})")
    p.add_argument("--H", type=_positive_int, nargs="+", metavar="N",
                   help=f"hidden sizes (default {' '.join(map(str, d['H']))}; "
                        f"--quick {' '.join(map(str, QUICK['H']))})")
    p.add_argument("--I", type=_positive_int, metavar="N", help=f"input size (default {d['I']})")
    p.add_argument("--layers", type=_positive_int, metavar="N",
                   help=f"stacked layers (default {d['layers']})")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                   help="dtypes (default float32)")
    p.add_argument("--threads", type=_positive_int, nargs="+", metavar="N",
                   help=f"thread counts (default {' '.join(map(str, d['threads']))}; --quick 1)")
    p.add_argument("--mode", nargs="+", choices=["infer", "train"],
                   help="what to time (default: infer train)")
    p.add_argument("--min-time", type=_seconds, metavar="S",
                   help=f"seconds of samples per measurement (default {d['min_time']}; "
                        f"--quick {QUICK['min_time']})")
    p.add_argument("--quick", action="store_true",
                   help="a smaller grid and shorter timings, for a first look")
    p.add_argument("--no-reference", action="store_true", help="skip the NumPy reference")
    p.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument("--json", metavar="FILE", help="also write every timing and the environment")
    p.add_argument("--md", metavar="FILE", help="also write the table and environment as Markdown")


def _config(args):
    """Resolve defaults (--quick changes some) into one plain dict."""
    cfg = {}
    for k, v in DEFAULTS.items():
        given = getattr(args, k)
        cfg[k] = given if given is not None else (QUICK.get(k, v) if args.quick else v)
    for opt in ("json", "md"):
        path = getattr(args, opt)
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise UsageError(f"--{opt} {path}: directory {parent} does not exist")
    cfg.update(reference=not args.no_reference, seed=args.seed, json=args.json, md=args.md)
    return cfg


def _command(cfg, torch_used):
    parts = ["lstm-c bench", f"--T {cfg['T']}", "--B " + " ".join(map(str, cfg["B"])),
             "--H " + " ".join(map(str, cfg["H"])), f"--I {cfg['I']}",
             f"--layers {cfg['layers']}", "--dtype " + " ".join(cfg["dtype"]),
             "--threads " + " ".join(map(str, cfg["threads"])),
             "--mode " + " ".join(cfg["mode"]), f"--min-time {cfg['min_time']:g}"]
    if not cfg["reference"]:
        parts.append("--no-reference")
    if not torch_used:
        parts.append("--no-torch")
    if cfg["seed"]:
        parts.append(f"--seed {cfg['seed']}")
    return " ".join(parts)


# --------------------------------------------------------------------------- timing

def timeit(fn, min_time, min_reps=MIN_REPS, max_reps=None, settle=0.0, warmup=True):
    """Median seconds per call of ``fn()``: samples until >= min_time and >= min_reps.

    Calls shorter than 1 ms are repeated ``number`` times per sample. ``settle``
    seconds of sleep come first (lets other thread pools' spinning workers stop).
    """
    if settle:
        time.sleep(settle)
    t0 = time.perf_counter()
    if warmup:
        fn()
    first = time.perf_counter() - t0
    number = max(1, int(1e-3 / first)) if first > 0 else 1
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while (len(samples) < min_reps or time.perf_counter() - start < min_time) and \
                (max_reps is None or len(samples) < max_reps):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    return {"median": float(np.median(samples)), "min": float(min(samples)),
            "reps": len(samples), "number": number}


@contextlib.contextmanager
def pinned_threads(n, torch):
    """lstm-c's engine, BLAS / OpenMP pools (threadpoolctl) and torch's intra-op pool, all at n threads."""
    from threadpoolctl import threadpool_limits

    import lstm_c
    old = torch.get_num_threads() if torch is not None else None
    old_engine = lstm_c.get_num_threads()
    with threadpool_limits(limits=n):
        lstm_c.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            lstm_c.set_num_threads(old_engine)
            if torch is not None:
                torch.set_num_threads(old)


# --------------------------------------------------------------------------- BLAS floor

class BlasFloor:
    """The BLAS calls an L-layer LSTM cannot avoid, on preallocated arrays.

    Segments (per layer): fwd = ``xgemm`` (G = X W_ih^T over all T*B rows) and
    ``rec`` (T products G_t += h_{t-1} W_hh^T); bwd = ``dh`` (T products
    dh_{t-1} = dG_t W_hh), ``dx`` (dX = dG W_ih), ``dwih`` (dG^T X), ``dwhh``
    (dG^T H). Per-step segments come in call layouts, the fastest counts:
    ``rowmajor`` (C-order (B, .) rows), ``featmajor`` (per-step arrays stored
    (features, B), so Fortran sees plain NN/NT products) and, for B <= 4,
    ``gemv`` (one matrix-vector product per batch row).

    Every call writes into its output in place (``overwrite_c``/``overwrite_y``
    on Fortran-ordered views), so no call copies; :meth:`check` verifies that.
    """

    GEMV_MAX_B = 4

    def __init__(self, T, B, I, H, L, dtype, rng):
        from scipy.linalg import blas
        p = "s" if np.dtype(dtype) == np.float32 else "d"
        gemm, gemv = getattr(blas, p + "gemm"), getattr(blas, p + "gemv")
        self.T, self.B = T, B
        self.segments = {"fwd": {}, "bwd": {}}
        self.arrays = []

        def add(which, seg, variant, calls):
            self.segments[which].setdefault(seg, {}).setdefault(variant, []).extend(calls)

        def mm(A, Bm, C, ta=0, tb=0, beta=0.0):
            # C = op(A) op(Bm) (+ beta C) for C-ordered arrays, as the Fortran
            # product C^T = op(Bm)^T op(A)^T on the transposed (Fortran) views.
            return gemm, (1.0, Bm.T, A.T, beta, C.T, tb, ta, 1)

        for layer in range(L):
            In = I if layer == 0 else H
            r = lambda *s: (0.1 * rng.standard_normal(s)).astype(dtype)  # noqa: E731
            a = dict(X=r(T * B, In), Wih=r(4 * H, In), Whh=r(4 * H, H), G=r(T * B, 4 * H),
                     Hs=r(T * B, H), dG=r(T * B, 4 * H), dX=r(T * B, In), dHs=r(T * B, H),
                     dWih=r(4 * H, In), dWhh=r(4 * H, H),
                     HsF=r(T, H, B), GF=r(T, 4 * H, B), dGF=r(T, 4 * H, B), dHsF=r(T, H, B))
            self.arrays.append(a)
            W = a["Whh"]
            rows = [slice(t * B, (t + 1) * B) for t in range(T)]
            add("fwd", "xgemm", "rowmajor", [mm(a["X"], a["Wih"], a["G"], 0, 1)])
            add("fwd", "rec", "rowmajor",
                [mm(a["Hs"][s], W, a["G"][s], 0, 1, 1.0) for s in rows])
            add("fwd", "rec", "featmajor",   # (B,H) . (H,4H) with W.T Fortran (H,4H)
                [(gemm, (1.0, a["HsF"][t].T, W.T, 1.0, a["GF"][t].T, 0, 0, 1))
                 for t in range(T)])
            add("bwd", "dh", "rowmajor",
                [mm(a["dG"][s], W, a["dHs"][s]) for s in reversed(rows)])
            add("bwd", "dh", "featmajor",    # (B,4H) . (4H,H): op(W.T) = W
                [(gemm, (1.0, a["dGF"][t].T, W.T, 0.0, a["dHsF"][t].T, 0, 1, 1))
                 for t in reversed(range(T))])
            if B <= self.GEMV_MAX_B:
                n = T * B
                add("fwd", "rec", "gemv",    # G_i (4H) += W h_i: W.T is Fortran (H, 4H)
                    [(gemv, (1.0, W.T, a["Hs"][i], 1.0, a["G"][i], 0, 1, 0, 1, 1, 1))
                     for i in range(n)])
                add("bwd", "dh", "gemv",     # dh_i (H) = W^T dG_i
                    [(gemv, (1.0, W.T, a["dG"][i], 0.0, a["dHs"][i], 0, 1, 0, 1, 0, 1))
                     for i in reversed(range(n))])
            add("bwd", "dx", "rowmajor", [mm(a["dG"], a["Wih"], a["dX"])])
            add("bwd", "dwih", "rowmajor", [mm(a["dG"], a["X"], a["dWih"], 1, 0)])
            add("bwd", "dwhh", "rowmajor", [mm(a["dG"], a["Hs"], a["dWhh"], 1, 0)])
            if layer == 0:  # what check() runs
                self._layer0 = {w: {seg: {v: list(c) for v, c in vs.items()}
                                    for seg, vs in segs.items()}
                                for w, segs in self.segments.items()}

    @staticmethod
    def _runner(calls):
        def run():
            for f, a in calls:
                f(*a)
        return run

    def time(self, which, min_time, settle=0.0):
        """Sum over segments of the fastest variant's median; also the variants chosen."""
        total, chosen = 0.0, {}
        for seg, variants in self.segments[which].items():
            best = None
            for v, calls in variants.items():
                r = timeit(self._runner(calls), min_time, settle=settle)
                if best is None or r["median"] < best[1]:
                    best = (v, r["median"])
            chosen[seg] = best[0]
            total += best[1]
        return {"median": total, "variants": chosen}

    def check(self, rtol=1e-3):
        """Run each of layer 0's calls once (the last time step) and compare with NumPy.

        Returns {"segment:variant": bool}; False means the call did not write the
        right product into its output (for example because a copy was made)."""
        a, T, B = self.arrays[0], self.T, self.B
        W = a["Whh"].astype(np.float64)
        last = {"rowmajor": lambda k: a[k][-B:], "featmajor": lambda k: a[k + "F"][T - 1].T,
                "gemv": lambda k: a[k][-1:]}
        f64 = lambda k: a[k].astype(np.float64)  # noqa: E731
        ok = {}
        for which in ("fwd", "bwd"):
            for seg, variants in self._layer0[which].items():
                for v, calls in variants.items():
                    # rec runs steps forward, dh backward: the last step is at either end
                    f, args = calls[0] if which == "bwd" else calls[-1]
                    if seg == "rec":
                        dst, src = last[v]("G"), last[v]("Hs")
                        want = dst.astype(np.float64) + src @ W.T
                    elif seg == "dh":
                        dst, src = last[v]("dHs"), last[v]("dG")
                        want = src @ W
                    else:
                        dst, want = {"xgemm": (a["G"], f64("X") @ f64("Wih").T),
                                     "dx": (a["dX"], f64("dG") @ f64("Wih")),
                                     "dwih": (a["dWih"], f64("dG").T @ f64("X")),
                                     "dwhh": (a["dWhh"], f64("dG").T @ f64("Hs"))}[seg]
                    f(*args)
                    ok[f"{seg}:{v}"] = _rel_err(dst, want) <= rtol
        return ok


# --------------------------------------------------------------------------- one point

def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def _to_numpy(t):
    return t.detach().cpu().numpy()


class Point:
    """One (dtype, T, B, I, H, L): the models with identical weights, inputs, the check."""

    def __init__(self, dtype, T, B, I, H, L, torch, seed, reference):
        import lstm_c
        self.key = dict(dtype=dtype, T=T, B=B, I=I, H=H, L=L)
        npdt = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((T, B, I)).astype(npdt)
        self.h0 = (0.5 * rng.standard_normal((L, B, H))).astype(npdt)
        self.c0 = (0.5 * rng.standard_normal((L, B, H))).astype(npdt)
        self.dy = rng.standard_normal((T, B, H)).astype(npdt)
        self.torch = torch
        self.m = lstm_c.LSTM(I, H, num_layers=L, dtype=npdt, backend="cython", seed=seed)
        if torch is not None:
            torch.manual_seed(seed)
            self.tm = torch.nn.LSTM(I, H, num_layers=L, dtype=getattr(torch, dtype))
            state = {k: _to_numpy(v) for k, v in self.tm.state_dict().items()}
            self.m.load_state_dict(state)
        else:
            state = {k: np.array(v) for k, v in self.m.state_dict().items()}
        self.ref = None
        if reference:
            self.ref = lstm_c.LSTM(I, H, num_layers=L, dtype=npdt, backend="numpy", seed=seed)
            self.ref.load_state_dict(state)
        self.floor = BlasFloor(T, B, I, H, L, npdt, rng)

    # --- the timed calls
    def model_fn(self, m, mode):
        """lstm-c (``self.m``) or the reference (``self.ref``): infer or train, as a call."""
        x, hx, dy = self.x, (self.h0, self.c0), self.dy
        if mode == "infer":
            return lambda: m.forward(x, hx, grad=False)

        def train():
            m.forward(x, hx)
            m.backward(dy)
        return train

    def torch_fn(self, mode):
        torch, tm = self.torch, self.tm
        x, h0, c0, g = (torch.from_numpy(a) for a in (self.x, self.h0, self.c0, self.dy))
        if mode == "infer":
            def infer():
                with torch.inference_mode():
                    tm(x, (h0, c0))
            return infer
        x, h0, c0 = (a.clone().requires_grad_(True) for a in (x, h0, c0))

        def train():
            y, _ = tm(x, (h0, c0))
            torch.autograd.backward(y, g)
        return train

    # --- the check
    def _oracle(self):
        """Outputs and gradients of torch (or the reference) on this point's data."""
        if self.torch is not None:
            torch = self.torch
            x, h0, c0 = (torch.from_numpy(a).clone().requires_grad_(True)
                         for a in (self.x, self.h0, self.c0))
            self.tm.zero_grad()
            with torch.inference_mode():
                y_inf, _ = self.tm(x.detach(), (h0.detach(), c0.detach()))
            y, (hn, cn) = self.tm(x, (h0, c0))
            torch.autograd.backward(y, torch.from_numpy(self.dy))
            grads = {k: _to_numpy(p.grad) for k, p in self.tm.named_parameters()}
            return "torch", dict(y_infer=_to_numpy(y_inf), y=_to_numpy(y), h_n=_to_numpy(hn),
                                 c_n=_to_numpy(cn), dx=_to_numpy(x.grad),
                                 dh0=_to_numpy(h0.grad), dc0=_to_numpy(c0.grad)), grads
        if self.ref is not None:
            return ("reference",) + self._run(self.ref)
        return None, None, None

    def _run(self, m):
        hx = (self.h0, self.c0)
        y_inf, _ = m.forward(self.x, hx, grad=False)
        y_inf = np.array(y_inf)
        m.zero_grad()
        y, (hn, cn) = m.forward(self.x, hx)
        out = dict(y_infer=y_inf, y=np.array(y), h_n=np.array(hn), c_n=np.array(cn))
        dx, (dh0, dc0) = m.backward(self.dy)
        out.update(dx=np.array(dx), dh0=np.array(dh0), dc0=np.array(dc0))
        return out, {k: np.array(v) for k, v in m.grads.items()}

    def check(self):
        """Compare lstm-c with the oracle: {"against", "max_rel_err", "worst", "ok"}."""
        against, want, want_g = self._oracle()
        if against is None:
            return {"against": None, "ok": None}
        got, got_g = self._run(self.m)
        errs = {k: _rel_err(got[k], want[k]) for k in want}
        errs.update({k: _rel_err(got_g[k], want_g[k]) for k in want_g})
        worst = max(errs, key=errs.get)
        ok = all(math.isfinite(e) and e <= TOL[self.key["dtype"]] for e in errs.values())
        return {"against": against, "max_rel_err": errs[worst], "worst": worst, "ok": ok,
                "errors": errs}


# --------------------------------------------------------------------------- report

def _ms(r):
    if r is None:
        return "-"
    v = r["median"] * 1e3
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def _ratio(a, b):
    return f"{a['median'] / b['median']:.2f}" if a and b else "-"


def format_table(rows):
    head = ["mode", "dtype", "T", "B", "I", "H", "L", "threads", "lstm-c ms", "reference ms",
            "torch ms", "BLAS floor ms", "torch / lstm-c", "reference / lstm-c",
            "lstm-c / floor", "check"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c = r["check"]
        mark = ("-" if c["ok"] is None else
                f"ok ({c['against']})" if c["ok"] else
                f"**MISMATCH** {c['worst']} {c['max_rel_err']:.1e} vs {c['against']}")
        if (r.get("others") or 0) > BUSY:
            mark += f"; busy {r['others']:.0%}"
        cells = [r["mode"], r["dtype"], r["T"], r["B"], r["I"], r["H"], r["L"], r["threads"],
                 _ms(r["lstm_c"]), _ms(r["reference"]), _ms(r["torch"]), _ms(r["floor"]),
                 _ratio(r["torch"], r["lstm_c"]), _ratio(r["reference"], r["lstm_c"]),
                 _ratio(r["lstm_c"], r["floor"]), mark]
        out.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(out)


def _markdown(rows, info, command, notes):
    from .cli import format_info
    return "\n".join([
        "# lstm-c benchmark", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}`", "",
        "Rerun: the same command (or `python bench/run.py` with the same options) "
        "plus `--md FILE` writes this page.", "",
        "Times are medians in ms. Ratios above 1 in `torch / lstm-c` and "
        "`reference / lstm-c` mean lstm-c is faster; `lstm-c / floor` is how far lstm-c is "
        "from the unavoidable BLAS calls alone (see `lstm-c bench --help`).", "",
        format_table(rows), "", *notes, "",
        "Environment (`lstm-c info`):", "", "```", format_info(info), "```", ""])


# --------------------------------------------------------------------------- run

def _cpu_snapshot():
    """(wall s, machine busy CPU-s, this process's CPU-s); None where /proc/stat is missing.

    Busy includes steal time: on a VM, the host running someone else is contention too."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    t = os.times()
    return (time.perf_counter(), (user + nice + system + irq + softirq + steal) / tick,
            t.user + t.system)


def _others(before, after):
    """Share of the machine (0..1) used by anything but this process between two snapshots."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other / ((after[0] - before[0]) * (os.cpu_count() or 1)))


def _import_torch():
    try:
        import torch
        return torch
    except Exception:
        return None


def _time_row(pt, mode, threads, min_time, with_torch):
    """Time every column of one row; threads are already pinned by the caller."""
    settle = SETTLE_S if threads > 1 else 0.0
    row = dict(mode=mode, **pt.key, threads=threads)
    snap = _cpu_snapshot()
    row["lstm_c"] = timeit(pt.model_fn(pt.m, mode), min_time, settle=settle)
    row["torch"] = (timeit(pt.torch_fn(mode), min_time, settle=settle)
                    if with_torch else None)
    row["reference"] = (timeit(pt.model_fn(pt.ref, mode), min(min_time, 0.1), min_reps=1,
                               max_reps=REF_REPS, settle=settle)
                        if pt.ref is not None else None)
    fl = pt.floor.time("fwd", min_time, settle=settle)
    if mode == "train":
        bwd = pt.floor.time("bwd", min_time, settle=settle)
        fl = {"median": fl["median"] + bwd["median"],
              "variants": {**fl["variants"], **bwd["variants"]}}
    row["floor"] = fl
    row["others"] = _others(snap, _cpu_snapshot())
    return row


def run(args):
    """``lstm-c bench``: returns 0, or 1 when a correctness check failed."""
    cfg = _config(args)
    try:
        import lstm_c  # loads the engine and its BLAS, so threadpoolctl can pin it
    except Exception as e:
        raise UsageError(f"cannot import the lstm-c engine ({type(e).__name__}: {e}); "
                         "is the package built? (pip install .)") from None
    torch = None if args.no_torch else _import_torch()
    notes = []
    if torch is None and not args.no_torch:
        notes.append("torch is not installed: no torch column (pip install 'lstm-c[torch]').")
    points = [(dt, cfg["T"], B, cfg["I"], H, cfg["layers"])
              for dt in cfg["dtype"] for B in cfg["B"] for H in cfg["H"]]
    n_total = len(points) * len(cfg["threads"]) * len(cfg["mode"])
    rows, failed, k = [], False, 0
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    for i, (dt, T, B, I, H, L) in enumerate(points):
        pt = Point(dt, T, B, I, H, L, torch, cfg["seed"] + i, cfg["reference"])
        with pinned_threads(1, torch):
            check = pt.check()
        if check["ok"] is False:
            failed = True
            log(f"bench: MISMATCH {dt} T={T} B={B} I={I} H={H} L={L}: {check['worst']} "
                f"max rel err {check['max_rel_err']:.2e} vs {check['against']} "
                f"(tolerance {TOL[dt]:g})")
        for n in cfg["threads"]:
            with pinned_threads(n, torch):
                for mode in cfg["mode"]:
                    k += 1
                    log(f"bench: [{k}/{n_total}] {mode} {dt} T={T} B={B} I={I} H={H} L={L} "
                        f"threads={n}")
                    row = _time_row(pt, mode, n, cfg["min_time"], torch is not None)
                    row["check"] = check
                    if (row["others"] or 0) > BUSY:
                        log(f"bench: warning: other processes used {row['others']:.0%} of the "
                            "machine while this row was timed")
                    rows.append(row)
    seen = [r["others"] for r in rows if r["others"] is not None]
    if seen:
        notes.append(f"Other processes used at most {max(seen):.0%} of the machine's CPU time "
                     "while any row was timed (from /proc/stat, steal time included).")
    if any(x > BUSY for x in seen):
        notes.append("Rows marked 'busy N%': other processes (or the VM host: steal time) "
                     "used N% of the machine's CPU time while they were timed; their times "
                     "are unreliable, above all with several threads.")
    if failed:
        notes.append("Rows marked MISMATCH: lstm-c disagrees with "
                     f"{'torch' if torch is not None else 'the reference'}; "
                     "their times mean little.")
    print(format_table(rows))
    for note in notes:
        print(note)
    if cfg["json"] or cfg["md"]:
        from .cli import collect_info
        info = collect_info()
        command = _command(cfg, torch is not None)
        if cfg["json"]:
            with open(cfg["json"], "w") as f:
                json.dump({"command": command, "config": cfg, "environment": info,
                           "rows": rows}, f, indent=1, default=str)
        if cfg["md"]:
            with open(cfg["md"], "w") as f:
                f.write(_markdown(rows, info, command, notes))
    return 1 if failed else 0

