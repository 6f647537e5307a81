"""Time lstm-c against the NumPy reference and torch, same weights, same threads.

Points (dtype, T, B, I, H, layers) come from a grid (``--grid``): ``default``,
the product of --dtype, --B and --H at one --T, --I, --layers; ``quick``, a
few small points in seconds (``--quick`` is the same); ``anchors``, the 22
LSTM points and 5 streaming points of the perf-anchors tables, so lstm-c's
numbers sit beside those of torch and the BLAS floor measured there. Each point
is measured at every thread count, in each mode (``--mode``):

  infer   forward only: lstm-c ``forward(x, hx, grad=False)``; torch under
          ``torch.inference_mode()``.
  train   forward + backward: lstm-c ``forward(x, hx)`` then ``backward(dy)``;
          torch forward then ``torch.autograd.backward(y, dy)`` with x, h0, c0
          requiring grad (so dx, dh0, dc0 and every parameter gradient are made).
  stream  one step at B = T = 1 with the state carried between calls (text
          generation): lstm-c ``m.eval(); y, (h, c) = m.forward(x, (h, c))``;
          lstm-c frozen, the same call on ``frozen = m.freeze()`` (made once,
          before timing: weights packed once, not per call); torch's nn.LSTM
          and nn.LSTMCell under inference_mode; times in µs.
  memory  peak memory growth of one training step, lstm-c and torch each in a
          fresh process, beside the bytes lstm-c keeps for backward by formula.
  charlm  end-to-end char-LM training in chars/s: ``lstm-c train``'s own step
          (embedding, LSTM stack, softmax, clip, Adam) against the PyTorch
          script of the same model, same weights and batches, the first losses
          compared (bench_charlm). It runs alone, on the default grid's
          options with its own defaults: T=100, B=64, embedding (--I) 64,
          H=512, 2 layers; --steps, --warmup and --data (a text file; else
          random bytes) are its own.

Variants (default grid, --mode infer and train only): ``--bidirectional``
and ``--proj-size P`` give every point's three LSTMs (lstm-c, the reference,
torch.nn.LSTM) torch's ``bidirectional=True`` and ``proj_size=P`` (P below
every --H), with the same weights and the same check against torch. Their
rows carry D (directions, 1 or 2) and P (0: none), shown in the table as
columns D and P.

Columns: lstm-c (backend "cython"), the NumPy reference (backend "numpy"; slow,
so few repetitions; timed on the default and quick grids unless
--no-reference), torch (when importable), and the BLAS floor: only the BLAS
calls an LSTM cannot avoid, made with ``scipy.linalg.blas`` (the OpenBLAS the
engine links) on preallocated arrays, fastest call layout per segment:
forward = one (T*B, I)x(I, 4H) GEMM + T per-step (B, H)x(H, 4H) products per
layer; backward = T per-step (B, 4H)x(4H, H) products + one GEMM each for dX,
dW_ih, dW_hh; a streaming step = two gemv calls per layer. It leaves out the
gate math but includes Python's cost per BLAS call (a fraction of a
microsecond), which a compiled caller does not pay: at tiny sizes
lstm-c/floor can dip below 1. Bidirectional: the same calls once per
direction, layers above the first reading 2H inputs. With --proj-size the
floor is not measured ("-"): its calls assume a 4H x H W_hh and no projection.

GFLOP/s count GEMM FLOPs as perf-anchors does (forward 2*T*B*4H*(I+H) per
layer, training 3x; bidirectional doubles it; with proj_size P the recurrent
product is 4H x P, each step adds the P x H projection, 2*T*B*H*P, and layers
above the first read D*P inputs: bench_grid.gemm_flops). "% of peak" divides lstm-c's rate by the square-GEMM
rate (?gemm, N=2048; --grid quick 1024) measured once per run at the same
dtype and thread count.

All models get torch's weights (or lstm-c's own when torch is missing). Before
timing a point, lstm-c's outputs and gradients (stream: the outputs of both
calls, plain and frozen) are checked against torch (or the reference); a row
whose check fails is marked and the exit status is 1.

Timing: ``time.perf_counter``, one warm-up call, then samples until at least
``--min-time`` seconds and 5 samples; the median is reported. Calls under 1 ms
are batched per sample. BLAS threads are pinned with threadpoolctl and torch with
``torch.set_num_threads``; with more than one thread each measurement starts
after a 0.15 s pause, because OpenBLAS workers busy-wait after a call and would
steal cores from the next library timed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys

import numpy as np

from . import bench_charlm, bench_grid, bench_memory, bench_report
from .bench_common import (BUSY, MIN_REPS, SETTLE_S, cpu_snapshot, import_torch,  # noqa: F401
                           others_share, pinned_threads, rel_err, timeit, to_numpy)
from .bench_peak import measure_peaks
from .bench_stream import StreamPoint
from .cli import UsageError

# The explicit (default) grid's shape; mode, threads and timings per grid: bench_grid.GRID_DEFAULTS
DEFAULTS = dict(T=100, B=[1, 32], H=[128, 512], I=65, layers=1, dtype=["float32"])
SHAPE_OPTIONS = ("T", "B", "H", "I", "layers")     # the default grid's only
VARIANT_OPTIONS = ("bidirectional", "proj_size")    # the default grid's, infer and train only
VARIANT_MODES = ("infer", "train")
MODES = ("infer", "train", "stream", "memory", "charlm")
CHARLM_OPTIONS = ("steps", "warmup", "data")    # --mode charlm's only
VARIANT_NOTE = (
    "Columns D and P: directions (2: bidirectional=True) and proj_size (0: none), the same "
    "in torch.nn.LSTM, lstm-c and the reference; their GFLOP/s count both directions and, "
    "with P > 0, a recurrent product 4H x P, the P x H projection of every step and "
    "D*P inputs above layer 0 (bench_grid.gemm_flops). BLAS floor: with D = 2, the plain "
    "floor's calls once per direction; with P > 0 it is not measured ('-'): its calls "
    "assume W_hh is 4H x H and no projection.")
REF_REPS = 3            # the NumPy reference is slow: at most this many samples
TOL = {"float32": 1e-3, "float64": 1e-9}   # max |a - b| / max |b|, loose on purpose


# --------------------------------------------------------------------------- arguments

def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _non_negative_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
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
    d, g = DEFAULTS, bench_grid.GRID_DEFAULTS
    p.add_argument("--grid", choices=bench_grid.GRIDS,
                   help="which points: default (the --T/--B/--H/--I/--layers product), quick "
                        "(seconds), anchors (the perf-anchors points: 22 LSTM + 5 streaming)")
    p.add_argument("--quick", action="store_true", help="the same as --grid quick")
    p.add_argument("--T", type=_positive_int, metavar="N",
                   help=f"sequence length (default grid; default {d['T']})")
    p.add_argument("--B", type=_positive_int, nargs="+", metavar="N",
                   help=f"batch sizes (default grid; default {' '.join(map(str, d['B']))})")
    p.add_argument("--H", type=_positive_int, nargs="+", metavar="N",
                   help=f"hidden sizes (default grid; default {' '.join(map(str, d['H']))})")
    p.add_argument("--I", type=_positive_int, metavar="N",
                   help=f"input size (default grid; default {d['I']})")
    p.add_argument("--layers", type=_positive_int, metavar="N",
                   help=f"stacked layers (default grid; default {d['layers']})")
    p.add_argument("--bidirectional", action="store_true", default=None,
                   help="default grid, infer and train: time bidirectional LSTMs "
                        "(torch.nn.LSTM's bidirectional=True beside lstm-c's)")
    p.add_argument("--proj-size", type=_non_negative_int, metavar="P",
                   help="default grid, infer and train: time LSTMs with a projection of h to "
                        "P < every --H (torch.nn.LSTM's proj_size; default 0, none)")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                   help="dtypes (default float32; with --grid quick/anchors: keep only the "
                        "points of these dtypes)")
    p.add_argument("--threads", type=_positive_int, nargs="+", metavar="N",
                   help=f"thread counts (default {' '.join(map(str, g['default']['threads']))}; "
                        "--grid quick 1)")
    p.add_argument("--mode", nargs="+", choices=MODES,
                   help="what to measure (default: infer train; --grid quick and anchors: "
                        "infer train stream). memory: one training step's peak memory, "
                        "lstm-c and torch each in a fresh process. charlm: end-to-end "
                        "char-LM training, chars/s of lstm-c train's step and of the "
                        "PyTorch script of the same model")
    p.add_argument("--min-time", type=_seconds, metavar="S",
                   help=f"seconds of samples per measurement (default "
                        f"{g['default']['min_time']}; --grid quick {g['quick']['min_time']})")
    p.add_argument("--peak-n", type=_positive_int, metavar="N",
                   help=f"size of the square GEMM whose rate is the peak (default "
                        f"{g['default']['peak_n']}; --grid quick {g['quick']['peak_n']})")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=None,
                   help="time the NumPy reference (default: yes, but not on --grid anchors)")
    p.add_argument("--steps", type=_positive_int, metavar="N",
                   help=f"--mode charlm: timed training steps per row (default "
                        f"{bench_charlm.STEPS})")
    p.add_argument("--warmup", type=_positive_int, metavar="N",
                   help=f"--mode charlm: untimed steps before them (default "
                        f"{bench_charlm.WARMUP})")
    p.add_argument("--data", metavar="FILE",
                   help="--mode charlm: train on this text file's bytes (its training split, "
                        "as lstm-c train reads it; default: random bytes, V=256)")
    p.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument("--json", metavar="FILE", help="also write every timing and the environment")
    p.add_argument("--md", metavar="FILE",
                   help="also write the table as Markdown, after the command, date, machine "
                        "and versions")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw lstm-c's speed-up over torch against H at 1 thread "
                        "(needs matplotlib)")


def _config(args):
    """Resolve the grid and the defaults into one plain dict; UsageError on conflicts."""
    grid = args.grid or ("quick" if args.quick else "default")
    if args.quick and grid != "quick":
        raise UsageError(f"--quick is --grid quick; it cannot go with --grid {grid}")
    if grid != "default":
        given = [f"--{k}" for k in SHAPE_OPTIONS if getattr(args, k) is not None]
        given += [_flag(k) for k in VARIANT_OPTIONS if getattr(args, k) is not None]
        if given:
            raise UsageError(f"--grid {grid} has fixed points; {', '.join(given)} "
                             "apply only to --grid default")
    cfg = dict(grid=grid)
    for k, v in DEFAULTS.items():
        given = getattr(args, k)
        cfg[k] = given if given is not None else v
    for k, v in bench_grid.GRID_DEFAULTS[grid].items():
        given = getattr(args, k)
        cfg[k] = given if given is not None else v
    cfg["mode"] = list(dict.fromkeys(cfg["mode"]))   # in the order given, once each
    cfg["directions"] = 2 if args.bidirectional else 1
    cfg["proj_size"] = args.proj_size or 0
    variants = [_flag(k) for k in VARIANT_OPTIONS if getattr(args, k)]
    if variants:
        other = [m for m in cfg["mode"] if m not in VARIANT_MODES]
        if other:
            raise UsageError(f"{' and '.join(variants)} apply to --mode infer and train only, "
                             f"not {' '.join(other)}: the streaming step, the memory "
                             "measurement and the char-LM time plain one-direction LSTMs "
                             "without a projection")
        if cfg["proj_size"] and cfg["proj_size"] >= min(cfg["H"]):
            raise UsageError(f"--proj-size {cfg['proj_size']} must be below every --H "
                             f"(as torch.nn.LSTM's proj_size < hidden_size); smallest --H is "
                             f"{min(cfg['H'])}")
    cfg["charlm"] = None
    if "charlm" in cfg["mode"]:
        if len(cfg["mode"]) > 1 or grid != "default":
            raise UsageError("--mode charlm runs alone, without --grid or --quick: its "
                             "--T/--B/--H/--I/--layers are its model's, with their own "
                             "defaults; time the other modes in another run")
        unused = [f"--{k.replace('_', '-')}" for k in ("min_time", "peak_n", "reference")
                  if getattr(args, k) is not None]
        if unused:
            raise UsageError(f"{', '.join(unused)} do not apply to --mode charlm "
                             "(it times --steps training steps)")
        cfg["charlm"] = _charlm_config(args)
    for opt in ("json", "md", "plot"):
        path = getattr(args, opt)
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise UsageError(f"--{opt} {path}: directory {parent} does not exist")
    if cfg["charlm"] is None:
        given = [f"--{k}" for k in CHARLM_OPTIONS if getattr(args, k) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} apply only to --mode charlm")
    if args.plot:
        if args.no_torch:
            raise UsageError("--plot draws the speed-up over torch: it cannot go with --no-torch")
        if 1 not in cfg["threads"]:
            raise UsageError("--plot draws the 1-thread rows: add 1 to --threads")
        if not {"infer", "train", "stream"} & set(cfg["mode"]):
            raise UsageError("--plot needs timed rows: add infer, train or stream to --mode")
        from .bench_plot import import_pyplot
        import_pyplot()   # a missing matplotlib is reported now, not after the timings
    reference = args.reference if args.reference is not None else grid != "anchors"
    cfg.update(reference=reference, seed=args.seed, json=args.json, md=args.md, plot=args.plot,
               dtype_filter=args.dtype)
    return cfg


def _flag(name):
    """'--proj-size' for the argparse destination 'proj_size'."""
    return "--" + name.replace("_", "-")


def _charlm_config(args):
    """--mode charlm's shape (its own defaults, or the shape options given) and options."""
    c = dict(bench_charlm.DEFAULTS, B=[bench_charlm.DEFAULTS["B"]],
             H=[bench_charlm.DEFAULTS["H"]], steps=bench_charlm.STEPS,
             warmup=bench_charlm.WARMUP, data=None)
    for k in SHAPE_OPTIONS + CHARLM_OPTIONS:
        if getattr(args, k) is not None:
            c[k] = getattr(args, k)
    if c["data"] and not os.path.isfile(c["data"]):
        raise UsageError(f"--data {c['data']}: no such file")
    return c


def _command(cfg, torch_used):
    """The command with every option spelled out (what the run measured)."""
    if cfg["charlm"]:
        return _charlm_command(cfg, torch_used)
    parts = ["lstm-c bench", f"--grid {cfg['grid']}"]
    if cfg["grid"] == "default":
        parts += [f"--T {cfg['T']}", "--B " + " ".join(map(str, cfg["B"])),
                  "--H " + " ".join(map(str, cfg["H"])), f"--I {cfg['I']}",
                  f"--layers {cfg['layers']}", "--dtype " + " ".join(cfg["dtype"])]
        if cfg["directions"] == 2 or cfg["proj_size"]:
            parts += (["--bidirectional"] if cfg["directions"] == 2 else []) + \
                [f"--proj-size {cfg['proj_size']}"]
    elif cfg["dtype_filter"]:
        parts.append("--dtype " + " ".join(cfg["dtype_filter"]))
    parts += ["--threads " + " ".join(map(str, cfg["threads"])),
              "--mode " + " ".join(cfg["mode"]), f"--min-time {cfg['min_time']:g}",
              f"--peak-n {cfg['peak_n']}", "--reference" if cfg["reference"] else "--no-reference"]
    if not torch_used:
        parts.append("--no-torch")
    if cfg["seed"]:
        parts.append(f"--seed {cfg['seed']}")
    for opt in ("json", "md", "plot"):
        if cfg[opt]:
            parts.append(f"--{opt} {shlex.quote(cfg[opt])}")
    return " ".join(parts)


def _charlm_command(cfg, torch_used):
    """_command for --mode charlm: its shape and steps; no grid, peak or time options."""
    c = cfg["charlm"]
    parts = ["lstm-c bench --mode charlm", f"--T {c['T']}", "--B " + " ".join(map(str, c["B"])),
             "--H " + " ".join(map(str, c["H"])), f"--I {c['I']}", f"--layers {c['layers']}",
             "--dtype " + " ".join(cfg["dtype"]),
             "--threads " + " ".join(map(str, cfg["threads"])),
             f"--steps {c['steps']}", f"--warmup {c['warmup']}"]
    if c["data"]:
        parts.append(f"--data {shlex.quote(c['data'])}")
    if not torch_used:
        parts.append("--no-torch")
    if cfg["seed"]:
        parts.append(f"--seed {cfg['seed']}")
    for opt in ("json", "md"):
        if cfg[opt]:
            parts.append(f"--{opt} {shlex.quote(cfg[opt])}")
    return " ".join(parts)


def _typed_command(args, resolved):
    """What was typed (``lstm-c`` and its arguments), else the resolved command."""
    argv = getattr(args, "argv", None)
    return "lstm-c " + shlex.join(argv) if argv else resolved


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

    ``directions=2`` (bidirectional) makes every layer's calls twice, one set
    per direction (the reverse direction's calls are the same products on the
    steps in reverse order), and the layers above the first read 2H inputs.
    There is no floor of a projected LSTM (proj_size): its W_hh is 4H x P and
    each step adds the P x H projection, calls this class does not make.
    """

    GEMV_MAX_B = 4

    def __init__(self, T, B, I, H, L, dtype, rng, directions=1):
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

        for unit in range(L * directions):
            layer = unit // directions
            In = I if layer == 0 else directions * H
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
            if unit == 0:  # what check() runs
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
                    ok[f"{seg}:{v}"] = rel_err(dst, want) <= rtol
        return ok


# --------------------------------------------------------------------------- one point

class Point:
    """One (dtype, T, B, I, H, L): the models with identical weights, inputs, the check.

    D = 2 makes the three models bidirectional, P > 0 gives them torch's
    proj_size = P; both are in the key (D, P), and the BLAS floor is None
    with a projection (BlasFloor).
    """

    def __init__(self, dtype, T, B, I, H, L, torch, seed, reference, D=1, P=0):
        import lstm_c
        self.key = dict(dtype=dtype, T=T, B=B, I=I, H=H, L=L, D=D, P=P)
        npdt = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        width = P or H   # of h (y holds D of them), c stays H wide
        self.x = rng.standard_normal((T, B, I)).astype(npdt)
        self.h0 = (0.5 * rng.standard_normal((L * D, B, width))).astype(npdt)
        self.c0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(npdt)
        self.dy = rng.standard_normal((T, B, D * width)).astype(npdt)
        self.torch = torch
        variant = dict(bidirectional=D == 2, proj_size=P)
        self.m = lstm_c.LSTM(I, H, num_layers=L, dtype=npdt, backend="cython", seed=seed,
                             **variant)
        if torch is not None:
            torch.manual_seed(seed)
            self.tm = torch.nn.LSTM(I, H, num_layers=L, dtype=getattr(torch, dtype), **variant)
            state = {k: to_numpy(v) for k, v in self.tm.state_dict().items()}
            self.m.load_state_dict(state)
        else:
            state = {k: np.array(v) for k, v in self.m.state_dict().items()}
        self.ref = None
        if reference:
            self.ref = lstm_c.LSTM(I, H, num_layers=L, dtype=npdt, backend="numpy", seed=seed,
                                   **variant)
            self.ref.load_state_dict(state)
        self.floor = None if P else BlasFloor(T, B, I, H, L, npdt, rng, directions=D)

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
            grads = {k: to_numpy(p.grad) for k, p in self.tm.named_parameters()}
            return "torch", dict(y_infer=to_numpy(y_inf), y=to_numpy(y), h_n=to_numpy(hn),
                                 c_n=to_numpy(cn), dx=to_numpy(x.grad),
                                 dh0=to_numpy(h0.grad), dc0=to_numpy(c0.grad)), grads
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
        errs = {k: rel_err(got[k], want[k]) for k in want}
        errs.update({k: rel_err(got_g[k], want_g[k]) for k in want_g})
        worst = max(errs, key=errs.get)
        ok = all(math.isfinite(e) and e <= TOL[self.key["dtype"]] for e in errs.values())
        return {"against": against, "max_rel_err": errs[worst], "worst": worst, "ok": ok,
                "errors": errs}


# --------------------------------------------------------------------------- one row

def _time_row(pt, mode, threads, min_time, with_torch, with_reference):
    """Time every column of one row; threads are already pinned by the caller."""
    settle = SETTLE_S if threads > 1 else 0.0
    row = dict(mode=mode, **pt.key, threads=threads)
    snap = cpu_snapshot()
    row["lstm_c"] = timeit(pt.model_fn(pt.m, mode), min_time, settle=settle)
    row["torch"] = (timeit(pt.torch_fn(mode), min_time, settle=settle)
                    if with_torch else None)
    row["reference"] = (timeit(pt.model_fn(pt.ref, mode), min(min_time, 0.1), min_reps=1,
                               max_reps=REF_REPS, settle=settle)
                        if with_reference and pt.ref is not None else None)
    fl = pt.floor.time("fwd", min_time, settle=settle) if pt.floor is not None else None
    if mode == "train" and fl is not None:
        bwd = pt.floor.time("bwd", min_time, settle=settle)
        fl = {"median": fl["median"] + bwd["median"],
              "variants": {**fl["variants"], **bwd["variants"]}}
    row["floor"] = fl   # None: no floor for this variant (proj_size), shown as "-"
    row["others"] = others_share(snap, cpu_snapshot())
    return row


def _add_rates(row, peaks):
    """GEMM FLOPs of the row's call, lstm-c's and torch's GFLOP/s, and lstm-c's % of the peak."""
    T, B, I, H, L = (row[k] for k in ("T", "B", "I", "H", "L"))
    flops = bench_grid.gemm_flops(T, B, I, H, L, "train" if row["mode"] == "train" else "infer",
                                  D=row.get("D", 1), P=row.get("P", 0))
    row["gemm_flops"] = flops
    row["lstm_c_gflops"] = flops / row["lstm_c"]["median"] / 1e9
    row["torch_gflops"] = flops / row["torch"]["median"] / 1e9 if row["torch"] else None
    peak = peaks.get((row["dtype"], row["threads"]))
    row["pct_peak"] = 100 * row["lstm_c_gflops"] / peak["gflops"] if peak else None


# --------------------------------------------------------------------------- run

def _log(s):
    print(s, file=sys.stderr, flush=True)


def _mismatch(check, k):
    """Log a failed check of the point with key ``k``; returns True when it failed."""
    if check["ok"] is not False:
        return False
    _log(f"bench: MISMATCH {k['dtype']} T={k['T']} B={k['B']} I={k['I']} H={k['H']} L={k['L']}"
         f"{_variant_label(k)}: "
         f"{check['worst']} max rel err {check['max_rel_err']:.2e} vs {check['against']} "
         f"(tolerance {TOL[k['dtype']]:g})")
    return True


def _variant_label(k):
    """' D=2 P=64' for a bidirectional, projected point; '' for a plain one."""
    return "".join(f" {name}={k[name]}" for name, plain in (("D", 1), ("P", 0))
                   if k.get(name, plain) != plain)


def _points(cfg):
    """(LSTM points, streaming points) of the run's grid."""
    if cfg["grid"] == "default":
        shape = dict(dtypes=cfg["dtype"], T=cfg["T"], B=cfg["B"], I=cfg["I"], H=cfg["H"],
                     L=cfg["layers"])
        stream = dict(dtypes=cfg["dtype"], I=cfg["I"], H=cfg["H"], L=cfg["layers"])
    else:
        shape = stream = dict(dtypes=cfg["dtype_filter"])
    return (bench_grid.lstm_points(cfg["grid"], **shape),
            bench_grid.stream_points(cfg["grid"], **stream))


def _lstm_rows(cfg, points, torch, peaks, counter):
    """infer / train rows of every point and thread count; returns (rows, any check failed)."""
    modes = [m for m in cfg["mode"] if m in ("infer", "train")]
    rows, failed = [], False
    if not modes:
        return rows, failed
    for i, (dt, T, B, I, H, L) in enumerate(points):
        pt = Point(dt, T, B, I, H, L, torch, cfg["seed"] + i, cfg["reference"],
                   D=cfg.get("directions", 1), P=cfg.get("proj_size", 0))
        with pinned_threads(1, torch):
            check = pt.check()
        failed |= _mismatch(check, pt.key)
        for n in cfg["threads"]:
            with pinned_threads(n, torch):
                for mode in modes:
                    _log(f"bench: [{next(counter)}] {mode} {dt} T={T} B={B} I={I} H={H} L={L}"
                         f"{_variant_label(pt.key)} threads={n}")
                    row = _time_row(pt, mode, n, cfg["min_time"], torch is not None,
                                    cfg["reference"])
                    row["check"] = check
                    _add_rates(row, peaks)
                    _warn_busy(row)
                    rows.append(row)
        del pt   # its BLAS-floor arrays are large: free them before the next point
    return rows, failed


def _stream_rows(cfg, points, torch, peaks, counter):
    """stream rows of every streaming point and thread count; returns (rows, failed)."""
    rows, failed = [], False
    for i, (dt, I, H, L) in enumerate(points):
        sp = StreamPoint(dt, I, H, L, torch, cfg["seed"] + i, cfg["reference"])
        with pinned_threads(1, torch):
            check = sp.check(TOL[dt])
        failed |= _mismatch(check, sp.key)
        for n in cfg["threads"]:
            _log(f"bench: [{next(counter)}] stream {dt} I={I} H={H} L={L} threads={n}")
            with pinned_threads(n, torch):
                snap = cpu_snapshot()
                row = sp.time_row(n, cfg["min_time"])
                row["others"] = others_share(snap, cpu_snapshot())
            row.setdefault("D", 1)   # a streaming step is one direction, no projection
            row.setdefault("P", 0)
            row["check"] = check
            _add_rates(row, peaks)
            _warn_busy(row)
            rows.append(row)
    return rows, failed


def _memory_rows(cfg, points, with_torch, counter):
    """One training step's memory per point: two fresh processes each (bench_memory)."""
    rows = []
    for dt, T, B, I, H, L in points:
        _log(f"bench: [{next(counter)}] memory {dt} T={T} B={B} I={I} H={H} L={L} (subprocesses)")
        rows.append(bench_memory.memory_row(dt, T, B, I, H, L, cfg["seed"], with_torch))
    return rows


def _charlm_rows(cfg, torch, counter):
    """charlm rows of every (dtype, B, H) and thread count; returns (rows, any check failed)."""
    c = cfg["charlm"]
    rows, failed = [], False
    points = [(dt, b, h) for dt in cfg["dtype"] for b in c["B"] for h in c["H"]]
    for i, (dt, B, H) in enumerate(points):
        pt = bench_charlm.CharLMPoint(dt, c["T"], B, c["I"], H, c["layers"], torch,
                                      cfg["seed"] + i, c["data"])
        with pinned_threads(1, torch):
            check = pt.check(TOL[dt])
        if check["ok"] is False:
            _log(f"bench: MISMATCH charlm {dt} T={c['T']} B={B} H={H} L={c['layers']}: "
                 f"losses differ from torch's by {check['max_rel_err']:.2e} (relative; "
                 f"tolerance {TOL[dt]:g})")
            failed = True
        for n in cfg["threads"]:
            _log(f"bench: [{next(counter)}] charlm {dt} T={c['T']} B={B} E={c['I']} H={H} "
                 f"L={c['layers']} V={pt.key['V']} threads={n} ({c['warmup']} + "
                 f"{c['steps']} steps)")
            with pinned_threads(n, torch):
                row = pt.time_row(n, c["steps"], c["warmup"])
            row["check"] = check
            _warn_busy(row)
            rows.append(row)
    return rows, failed


def _warn_busy(row):
    if (row["others"] or 0) > BUSY:
        _log(f"bench: warning: other processes used {row['others']:.0%} of the machine while "
             "this row was timed")


def _count(total):
    k = 0
    while True:
        k += 1
        yield f"{k}/{total}"


def run(args):
    """``lstm-c bench``: returns 0, or 1 when a correctness check failed."""
    cfg = _config(args)
    try:
        import lstm_c  # noqa: F401  loads the engine and its BLAS, so threadpoolctl can pin it
    except Exception as e:
        raise UsageError(f"cannot import the lstm-c engine ({type(e).__name__}: {e}); "
                         "is the package built? (pip install .)") from None
    torch = None if args.no_torch else import_torch()
    notes = []
    if torch is None and not args.no_torch:
        notes.append("torch is not installed: no torch column (pip install 'lstm-c[torch]').")
    if cfg["plot"] and torch is None:
        raise UsageError("--plot draws the speed-up over torch, and torch is not installed "
                         "(pip install 'lstm-c[torch]')")
    if cfg["charlm"]:
        return _run_charlm(cfg, args, torch, notes)
    points, stream = _points(cfg)
    modes = cfg["mode"]
    timed = points if {"infer", "train"} & set(modes) else []
    stream = stream if "stream" in modes else []
    if not (timed or stream or ("memory" in modes and points)):
        raise UsageError(f"--grid {cfg['grid']} has no point of dtype "
                         f"{' '.join(cfg['dtype_filter'] or cfg['dtype'])} for --mode "
                         f"{' '.join(modes)}")
    n_seq = sum(m in ("infer", "train") for m in modes)
    total = (len(timed) * n_seq + len(stream)) * len(cfg["threads"]) + \
        (len(points) if "memory" in modes else 0)
    counter = _count(total)

    peaks = {}
    dtypes = sorted({p[0] for p in timed} | {p[0] for p in stream})
    if dtypes:
        _log(f"bench: GEMM peak, N={cfg['peak_n']}, {' '.join(dtypes)}, threads "
             f"{' '.join(map(str, cfg['threads']))}")
        peaks = measure_peaks(dtypes, cfg["threads"], cfg["peak_n"], cfg["min_time"],
                              lambda n: pinned_threads(n, torch))
    rows, failed = _lstm_rows(cfg, timed, torch, peaks, counter)
    stream_rows, stream_failed = _stream_rows(cfg, stream, torch, peaks, counter)
    rows += stream_rows
    failed |= stream_failed
    memory = (_memory_rows(cfg, points, torch is not None, counter)
              if "memory" in modes else [])

    _busy_notes(rows, notes)
    if failed:
        notes.append("Rows marked MISMATCH: lstm-c disagrees with "
                     f"{'torch' if torch is not None else 'the reference'}; "
                     "their times mean little.")
    if cfg.get("directions", 1) == 2 or cfg.get("proj_size", 0):
        notes.append(VARIANT_NOTE)
    memory_table = None
    if memory:
        memory_table = bench_memory.format_memory_table(memory)
        notes.append(bench_memory.MEMORY_NOTE)
    if rows:
        print(bench_report.format_peaks(peaks))
        print(bench_report.format_table(rows))
    if memory_table:
        print(memory_table)
    command = _write_files(cfg, args, torch, notes,
                           {"peaks": [dict(p) for p in peaks.values()], "rows": rows,
                            "memory": memory},
                           lambda info, command, resolved: bench_report.markdown(
                               rows, info, command, notes, peaks, torch, resolved=resolved,
                               memory_table=memory_table))
    if cfg["plot"]:
        from .bench_plot import plot_speedup
        plot_speedup(rows, cfg["plot"], title=command)
        print(f"plot: {cfg['plot']}")
    return 1 if failed else 0


def _run_charlm(cfg, args, torch, notes):
    """``lstm-c bench --mode charlm``: its table, notes and files; 0, or 1 on a loss mismatch."""
    c = cfg["charlm"]
    total = len(cfg["dtype"]) * len(c["B"]) * len(c["H"]) * len(cfg["threads"])
    rows, failed = _charlm_rows(cfg, torch, _count(total))
    _busy_notes(rows, notes)
    if failed:
        notes.append("Rows marked MISMATCH: lstm-c's losses disagree with torch's; "
                     "the two runs are not the same computation.")
    notes.insert(0, bench_charlm.CHARLM_NOTE)
    table = bench_charlm.format_charlm_table(rows, BUSY)
    print(table)
    _write_files(cfg, args, torch, notes, {"charlm": rows},
                 lambda info, command, resolved: bench_report.markdown(
                     [], info, command, notes, {}, torch, resolved=resolved,
                     charlm_table=table))
    return 1 if failed else 0


def _busy_notes(rows, notes):
    """Notes on how busy the machine was while the rows were timed."""
    seen = [r["others"] for r in rows if r["others"] is not None]
    if seen:
        notes.append(f"Other processes used at most {max(seen):.0%} of the machine's CPU time "
                     "while any row was timed (from /proc/stat, steal time included).")
    if any(x > BUSY for x in seen):
        notes.append("Rows marked 'busy N%': other processes (or the VM host: steal time) "
                     "used N% of the machine's CPU time while they were timed; their figures "
                     "are unreliable, above all with several threads.")


def _write_files(cfg, args, torch, notes, results, markdown):
    """Print the notes; write --json (the command, config, environment and `results`)
    and --md (markdown(info, command, resolved)). Returns the command as typed."""
    for note in notes:
        print(note)
    resolved = _command(cfg, torch is not None)
    command = _typed_command(args, resolved)
    if cfg["json"] or cfg["md"]:
        from .cli import collect_info
        info = collect_info()
        if cfg["json"]:
            with open(cfg["json"], "w") as f:
                json.dump({"command": command, "resolved_command": resolved, "config": cfg,
                           "environment": info, **results}, f, indent=1, default=str)
        if cfg["md"]:
            with open(cfg["md"], "w") as f:
                f.write(markdown(info, command, resolved))
    return command
