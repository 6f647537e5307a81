"""Memory of one training step (forward + backward): measured, and lstm-c's by formula.

``lstm-c bench --mode memory`` runs, for every point of the grid, one training
step of lstm-c and one of torch, each in a fresh Python process (this module
run as ``python -m lstm_c.bench_memory``), and reports the step's peak resident
memory growth beside what lstm-c keeps for backward by formula
(:func:`saved_bytes`, :func:`backward_bytes`).

How the child measures, and why:

1. It builds the model and the inputs, then runs one training step on a
   1 x 1 input. That loads the code of the paths the real step takes (torch
   pages in several tens of MB of library code on its first oneDNN call) and
   allocates the parameter gradients, so neither is counted as the step's.
2. It resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, "5") and
   reads the current RSS; then runs the step; the step's peak extra memory is
   the peak mark (``VmHWM``) minus that RSS.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` alone is not enough: a child
started from a large parent (this benchmark has torch loaded) inherits the
parent's peak in ru_maxrss, so the difference before/after the step reads 0.
It is used only where /proc is missing (then the child's import peaks may
hide part of the step, and the numbers are marked as such).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys

import numpy as np

IMPLS = ("lstm-c", "torch")
CHILD_TIMEOUT_S = 600


# --------------------------------------------------------------------------- formula

def saved_bytes(T, B, I, H, L, dtype, dropout=False, *, bidirectional=False, proj_size=0,
                recurrent_dropout=False):
    """Bytes lstm-c's ``LSTM.forward(x, hx, grad=True)`` keeps for ``backward``.

    With D directions (2 when bidirectional) and P = proj_size (H without a
    projection), per layer and direction the engine's forward keeps
    (``layers._layer_forward``):

    - ``hs``: (T + 1, B, P), h_0 .. h_T (its last T steps are the layer's output y);
    - ``cs``: (T + 1, B, H), c_0 .. c_T;
    - ``acts``: (T, B, 4H), the gate activations;
    - ``tanh_c``: (T, B, H);
    - with a projection, ``ms``: (T, B, H), m_t = o * tanh(c_t) before it;
    - with recurrent dropout (training mode), its (B, P) mask;

    plus the layers' inputs: for layer 0 the (T, B, I) x, which ``forward``
    copies when it is the caller's own array (a later in-place change must not
    reach backward; with ``lengths`` the rows' sorted copy takes its place);
    for the layers above, one direction: the output ``hs[1:]`` of the layer
    below, a view that costs nothing; two: both directions' outputs
    concatenated, a new (T, B, 2P) array. The reverse direction of every
    layer also keeps its input reversed in time: (T, B, I) for layer 0,
    (T, B, 2P) above. With dropout (training mode, ``dropout > 0``) every
    layer but the last also keeps its (T, B, D*P) mask, and the layer above
    its own input ``y * mask`` (T, B, D*P) in place of y.

    Peephole weights and ``lengths`` add nothing of size T. Small arrays
    (h_n, c_n: L * D * B * H numbers) are not counted.

    Parameters
    ----------
    T, B, I, H, L : int
        Sequence length, batch, input size, hidden size, layers.
    dtype : float32 or float64 (anything ``np.dtype`` takes)
    dropout : bool
        Whether dropout is active (a model in training mode with dropout > 0).
    bidirectional : bool
    proj_size : int
        0: no projection.
    recurrent_dropout : bool
        Whether recurrent dropout is active (training mode, recurrent_dropout > 0).

    Returns
    -------
    int, bytes
    """
    D = 2 if bidirectional else 1
    P = proj_size or H
    per_unit = (T + 1) * B * P + (T + 1) * B * H + T * B * 4 * H + T * B * H
    if proj_size:
        per_unit += T * B * H
    if recurrent_dropout:
        per_unit += B * P
    numbers = L * D * per_unit + D * T * B * I
    above = (L - 1) * T * B * D * P       # one (T, B, D*P) array per layer above the first
    if D == 2:
        numbers += 2 * above              # the concatenated input and its reversed copy
    if dropout:
        numbers += above * (2 if D == 1 else 1)   # the mask, and y * mask in place of a view
    return numbers * np.dtype(dtype).itemsize


def backward_bytes(T, B, I, H, L, dtype, dropout=False, *, bidirectional=False, proj_size=0,
                   peephole=False):
    """Peak bytes lstm-c's ``backward`` adds to what forward kept, by part.

    Returns a dict of bytes:

    - ``dgates``: the (T, B, 4H) workspace of gate gradients, one per layer
      and direction, kept between calls (``layers._layer_backward``);
    - ``dx``: the input gradients alive at once. Layer k returns its own dx
      ((T, B, I) for layer 0, (T, B, H) above) while the (T, B, H) gradient
      from the layer above is still held (with dropout, also that gradient
      times the mask); the largest such sum over the layers. Counted for one
      direction without a projection (bidirectional and projected layers
      hold a few more (T, B, P) copies, reversed and sliced);
    - ``grads``: the parameter gradients (the size of the parameters: per
      layer and direction 4H * (input + P) + 8H, plus P * H with a
      projection and 3H with peepholes). lstm-c allocates them when the model
      is made, but the pages are first written by the first backward.

    The engine's own scratch (a packed copy of W_hh per call when B > 1, a few
    rows of gate scratch) and the BLAS library's buffers are not counted.
    """
    size = np.dtype(dtype).itemsize
    D = 2 if bidirectional else 1
    P = proj_size or H
    tbh, carried = T * B * H, T * B * H * (2 if dropout else 1)
    alive = [T * B * (H if L > 1 else I)]                # the top layer: dy is the caller's
    alive += [carried + T * B * (I if k == 0 else H) for k in range(L - 1)]
    unit = [4 * H * ((I if k == 0 else D * P) + P) + 8 * H
            + (P * H if proj_size else 0) + (3 * H if peephole else 0) for k in range(L)]
    return {"dgates": L * D * 4 * tbh * size, "dx": max(alive) * size,
            "grads": D * sum(unit) * size}


# --------------------------------------------------------------------------- measuring (child)

def _proc_status():
    """{"VmRSS", "VmHWM"} in bytes from /proc/self/status, or None without /proc."""
    try:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
        return out if len(out) == 2 else None
    except OSError:
        return None


def _reset_peak():
    """Set the peak-RSS mark to the current RSS (Linux >= 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024   # Linux reports KiB, macOS bytes


def _training_step(impl, dtype, T, B, I, H, L, seed):
    """A function running one forward + backward of ``impl`` on (T, B, I) data."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    arrays = dict(x=rng.standard_normal((T, B, I)).astype(dt),
                  h0=(0.5 * rng.standard_normal((L, B, H))).astype(dt),
                  c0=(0.5 * rng.standard_normal((L, B, H))).astype(dt),
                  dy=rng.standard_normal((T, B, H)).astype(dt))
    if impl == "lstm-c":
        import lstm_c
        m = lstm_c.LSTM(I, H, num_layers=L, dtype=dt, seed=seed)

        def step(x, h0, c0, dy):
            m.forward(x, (h0, c0))
            m.backward(dy)
        wrap = lambda a, grad: a  # noqa: E731
    else:
        import torch
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        m = torch.nn.LSTM(I, H, num_layers=L, dtype=getattr(torch, dt.name))

        def step(x, h0, c0, dy):
            y, _ = m(x, (h0, c0))
            torch.autograd.backward(y, dy)

        def wrap(a, grad):
            t = torch.from_numpy(a)
            return t.requires_grad_(True) if grad else t
    grad = dict(x=True, h0=True, c0=True, dy=False)
    full = {k: wrap(a, grad[k]) for k, a in arrays.items()}
    tiny = {k: wrap(np.ascontiguousarray(a[:1, :1]), grad[k]) for k, a in arrays.items()}
    return lambda: step(**full), lambda: step(**tiny)


def measure_step(impl, dtype, T, B, I, H, L, seed=0):
    """In this process: the peak extra resident bytes of one training step of ``impl``.

    Returns {"impl", "peak_bytes", "kept_bytes" (still resident after the
    step), "method"}. Run it in a fresh process (``python -m
    lstm_c.bench_memory``); :func:`measure` does that.
    """
    from threadpoolctl import threadpool_limits
    step, warmup = _training_step(impl, dtype, T, B, I, H, L, seed)
    with threadpool_limits(limits=1):
        warmup()
        gc.collect()
        status = _proc_status()
        if status is not None and _reset_peak():
            before = _proc_status()["VmRSS"]
            step()
            after = _proc_status()
            peak, kept, method = after["VmHWM"] - before, after["VmRSS"] - before, "VmHWM"
        else:
            before = _maxrss_bytes()
            step()
            peak, kept, method = _maxrss_bytes() - before, None, "ru_maxrss"
    return {"impl": impl, "peak_bytes": peak, "kept_bytes": kept, "method": method}


# --------------------------------------------------------------------------- the parent

def measure(impl, dtype, T, B, I, H, L, seed=0, timeout=CHILD_TIMEOUT_S):
    """:func:`measure_step` in a fresh ``python -m lstm_c.bench_memory`` process.

    Returns its dict, or {"impl", "error"} when the child failed.
    """
    cmd = [sys.executable, "-m", "lstm_c.bench_memory", "--impl", impl,
           "--point", f"{dtype},{T},{B},{I},{H},{L}", "--seed", str(seed)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": f"no answer in {timeout} s"}
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        return {"impl": impl, "error": f"exit status {r.returncode}: {last}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def memory_row(dtype, T, B, I, H, L, seed, with_torch):
    """One row of the memory table: both measurements and lstm-c's formula."""
    row = dict(mode="memory", dtype=dtype, T=T, B=B, I=I, H=H, L=L,
               saved_bytes=saved_bytes(T, B, I, H, L, dtype),
               backward_bytes=backward_bytes(T, B, I, H, L, dtype))
    row["lstm_c"] = measure("lstm-c", dtype, T, B, I, H, L, seed)
    row["torch"] = measure("torch", dtype, T, B, I, H, L, seed) if with_torch else None
    return row


def _mb(n):
    return "-" if n is None else f"{n / 1e6:.1f}"


def _measured(m):
    """The table cell of one measurement: MB, '-' (not run) or the child's error."""
    if m is None:
        return "-"
    return f"error: {m['error']}" if "error" in m else _mb(m["peak_bytes"])


def format_memory_table(rows):
    """Markdown table of memory rows (MB = 10^6 bytes)."""
    head = ["dtype", "T", "B", "I", "H", "L", "lstm-c step MB", "torch step MB",
            "torch / lstm-c", "lstm-c saved for backward MB (formula)",
            "lstm-c step MB (formula)", "lstm-c kept after MB"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mine, theirs = r["lstm_c"], r["torch"]
        ratio = "-"
        if mine.get("peak_bytes") and theirs and theirs.get("peak_bytes"):
            ratio = f"{theirs['peak_bytes'] / mine['peak_bytes']:.2f}"
        step = r["saved_bytes"] + r["backward_bytes"]["dgates"] + r["backward_bytes"]["dx"]
        cells = [r["dtype"], r["T"], r["B"], r["I"], r["H"], r["L"], _measured(mine),
                 _measured(theirs), ratio, _mb(r["saved_bytes"]), _mb(step),
                 _mb(mine.get("kept_bytes"))]
        out.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(out)


MEMORY_NOTE = (
    "Memory: peak resident growth of one training step (forward + backward, 1 thread), "
    "each library in its own fresh process, after a 1 x 1 warm-up step (library code "
    "loaded, parameter gradients allocated). The formula columns are lstm-c's arrays "
    "(`lstm_c.bench_memory.saved_bytes`, `backward_bytes`, gradients excluded); the measured "
    "step also holds the engine's scratch (a packed W_hh copy when B > 1) and BLAS buffers. "
    "'kept after' is what lstm-c still holds when the step is done: its saved state and "
    "workspaces, reused by the next step.")


def _point(text):
    parts = text.split(",")
    if len(parts) != 6 or parts[0] not in ("float32", "float64"):
        raise argparse.ArgumentTypeError(f"expected dtype,T,B,I,H,L like float32,100,16,65,512,1, "
                                         f"got {text!r}")
    try:
        return (parts[0], *(int(p) for p in parts[1:]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers after the dtype, "
                                         f"got {text!r}") from None


def main(argv=None):
    """``python -m lstm_c.bench_memory --impl lstm-c --point float32,100,16,65,512,1``.

    Prints :func:`measure_step`'s result as one JSON line."""
    p = argparse.ArgumentParser(prog="python -m lstm_c.bench_memory",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", choices=IMPLS, required=True)
    p.add_argument("--point", type=_point, required=True, metavar="DTYPE,T,B,I,H,L")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(measure_step(args.impl, *args.point, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
