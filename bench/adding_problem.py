"""The adding problem: steps to MSE < 0.01 for an LSTM against a plain tanh RNN (issue 8).

    python bench/adding_problem.py [--T 100 200 500] [--seeds 0 1 2] [--hidden 64]
        [--batch 50] [--lr-lstm 1e-3] [--lr-rnn 1e-3] [--lr-grid 1e-2 3e-3 1e-3]
        [--grid-T 100] [--grid-steps 3000] [--clip 1.0] [--max-steps 10000]
        [--rnn-max-steps N] [--eval-every 100] [--eval-n 1000]
        [--rnn-init orthogonal|torch] [--models lstm rnn] [--md adding.md] [--json adding.json]

For each T and seed, trains a one-layer LSTM (``lstm_c.LSTM``, the Cython
engine, float32, torch's U(-1/sqrt(H), 1/sqrt(H)) init, forget-gate bias 1)
and a plain tanh RNN (``lstm_c.reference.rnn_forward`` / ``rnn_backward``, in
NumPy, float32), each with a linear head on the last hidden state
(y_hat = w . h_T + b) and the mean squared error as the loss. Both get Adam at
their learning rate, the same batch size, gradient clipping by global norm
(head included) and the same training batches: batch k of seed s is the k-th
draw of ``tasks.adding_problem(batch, T, rng=Generator(s))`` for both models.
Every --eval-every steps the MSE on a fixed set of --eval-n fresh sequences
(seed 1_000_003 + T, never trained on) is measured; a run stops at the first
evaluation below ``tasks.ADDING_SUCCESS_MSE`` (0.01) and records that step, or
at its step cap, recording the best evaluation MSE it reached.

RNN init (--rnn-init): "orthogonal" (default) draws W_hh as a random
orthogonal matrix (torch.nn.init.orthogonal_, the stronger baseline: every
singular value 1, so gradients neither vanish nor explode at the start);
"torch" is torch.nn.RNN's default U(-1/sqrt(H), 1/sqrt(H)), whose spectral
radius is about 0.58. W_ih and the bias are U(-1/sqrt(H), 1/sqrt(H)) either way.

With --lr-grid, each model first trains at T = --grid-T, seed --grid-seed, for
at most --grid-steps steps at every rate of the grid; the rate that solves
the task in the fewest steps (or, when none does, reaches the lowest MSE) is
then that model's rate for every run. A grid run that is also a run of the
benchmark (same T, seed and rate, and solved or capped at the same step count)
is reused, not trained again.

Results: a markdown table (--md) and every run's evaluation curve (--json).
Single-threaded (lstm-c's engine at 1 thread; set OMP_NUM_THREADS=1 and
OPENBLAS_NUM_THREADS=1 for NumPy's BLAS).
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time

import numpy as np

import lstm_c
from lstm_c import reference, tasks
from lstm_c.optim import Adam, clip_grad_norm

EVAL_CHUNK = 250  # sequences per forward pass in evaluation (bounds memory at T = 500)
DTYPE = np.float32


def _uniform(rng, shape, H):
    k = 1.0 / math.sqrt(H)
    return rng.uniform(-k, k, size=shape).astype(DTYPE)


def _orthogonal(rng, n):
    """A random n x n orthogonal matrix (torch.nn.init.orthogonal_: QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.sign(np.diag(r))).astype(DTYPE)


class Head:
    """y_hat = h_T @ w + b, torch nn.Linear(H, 1)'s init."""

    def __init__(self, H, rng):
        self.params = {"head_w": _uniform(rng, (H,), H), "head_b": _uniform(rng, (1,), H)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, h):
        return h @ self.params["head_w"] + self.params["head_b"][0]

    def backward(self, h, dyhat):
        """dL/dh from dL/dy_hat (B,); sets (does not add to) the head's grads."""
        self.grads["head_w"][...] = h.T @ dyhat
        self.grads["head_b"][0] = dyhat.sum()
        return np.outer(dyhat, self.params["head_w"]).astype(DTYPE)


class LSTMModel:
    def __init__(self, H, seed):
        self.lstm = lstm_c.LSTM(2, H, dtype=DTYPE, seed=seed, forget_bias=1.0)
        self.head = Head(H, np.random.default_rng([seed, 1]))
        self.params = {**self.lstm.parameters(), **self.head.params}
        self.grads = {**self.lstm.grads, **self.head.grads}

    def predict(self, x):  # x (T, B, 2)
        _, (h_n, _) = self.lstm.forward(x, grad=False)
        return self.head.forward(h_n[0])

    def loss_and_grads(self, x, y):
        self.lstm.zero_grad()
        out, (h_n, _) = self.lstm.forward(x)
        hT = h_n[0]
        err = self.head.forward(hT) - y
        dh = self.head.backward(hT, (2.0 / len(y)) * err)
        self.lstm.backward(np.zeros(out.shape, DTYPE), (dh[None], np.zeros_like(dh)[None]))
        return float(np.mean(err.astype(np.float64) ** 2))


class RNNModel:
    def __init__(self, H, seed, init):
        rng = np.random.default_rng([seed, 0])
        self.params = {
            "w_ih": _uniform(rng, (H, 2), H),
            "w_hh": _orthogonal(rng, H) if init == "orthogonal" else _uniform(rng, (H, H), H),
            "bias": _uniform(rng, (H,), H),
        }
        self.head = Head(H, np.random.default_rng([seed, 1]))
        self.params.update(self.head.params)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.grads.update(self.head.grads)
        self.H = H

    def _hs(self, x):
        p = self.params
        return reference.rnn_forward(x, p["w_ih"], p["w_hh"], p["bias"],
                                     np.zeros((x.shape[1], self.H), DTYPE))

    def predict(self, x):
        return self.head.forward(self._hs(x)[-1])

    def loss_and_grads(self, x, y):
        p, g = self.params, self.grads
        hs = self._hs(x)
        err = self.head.forward(hs[-1]) - y
        dh = self.head.backward(hs[-1], (2.0 / len(y)) * err)
        dy = np.zeros((x.shape[0],) + dh.shape, DTYPE)
        _, _, g["w_ih"][...], g["w_hh"][...], g["bias"][...] = reference.rnn_backward(
            x, p["w_ih"], p["w_hh"], hs, dy, dh)
        return float(np.mean(err.astype(np.float64) ** 2))


def evaluate(model, X, y):
    pred = np.concatenate([model.predict(X[:, i:i + EVAL_CHUNK])
                           for i in range(0, X.shape[1], EVAL_CHUNK)])
    return float(np.mean((pred.astype(np.float64) - y) ** 2))


def eval_set(T, n):
    X, y = tasks.adding_problem(n, T, rng=1_000_003 + T)
    return np.ascontiguousarray(X.transpose(1, 0, 2)), y.astype(np.float64)


def train(kind, T, seed, lr, args, max_steps, evalset, tag=""):
    """One run; returns its record (steps to solve or None, best MSE, curve, time)."""
    model = LSTMModel(args.hidden, seed) if kind == "lstm" else RNNModel(args.hidden, seed,
                                                                         args.rnn_init)
    opt = Adam(model.params, lr=lr)
    data = np.random.default_rng(seed)  # the same batches for both models
    Xe, ye = evalset
    curve, best, solved, skipped = [], math.inf, None, 0
    train_losses = []
    t0 = time.perf_counter()
    for step in range(1, max_steps + 1):
        X, y = tasks.adding_problem(args.batch, T, rng=data)
        train_losses.append(model.loss_and_grads(np.ascontiguousarray(X.transpose(1, 0, 2)), y))
        norm = clip_grad_norm(model.grads, args.clip)
        if math.isfinite(norm):
            opt.step(model.grads)
        else:
            skipped += 1
        if step % args.eval_every == 0 or step == max_steps:
            mse = evaluate(model, Xe, ye)
            best = min(best, mse)
            elapsed = time.perf_counter() - t0
            curve.append([step, mse, float(np.mean(train_losses)), round(elapsed, 2)])
            train_losses = []
            print(f"{tag}[{kind} T={T} seed={seed} lr={lr:g}] step {step:6d}  eval MSE "
                  f"{mse:.5f}  best {best:.5f}  {elapsed:7.1f} s", flush=True)
            if mse < tasks.ADDING_SUCCESS_MSE:
                solved = step
                break
            if not math.isfinite(mse):
                print(f"{tag}[{kind} T={T} seed={seed}] diverged (eval MSE {mse}); stopping",
                      flush=True)
                break
    return {"model": kind, "T": T, "seed": seed, "lr": lr, "max_steps": max_steps,
            "solved_at": solved, "best_mse": best, "final_mse": curve[-1][1],
            "steps_run": curve[-1][0], "seconds": round(time.perf_counter() - t0, 2),
            "skipped_nonfinite": skipped, "curve": curve}


def _pick(records):
    """The grid's best rate: fewest steps to solve, else lowest best MSE."""
    def key(r):
        return (r["solved_at"] is None, r["solved_at"] or 0, r["best_mse"])
    return min(records, key=key)["lr"]


def _cell(r):
    if r["solved_at"] is not None:
        return f"{r['solved_at']}"
    if r["steps_run"] < r["max_steps"]:
        return f"diverged at {r['steps_run']} (best {r['best_mse']:.4f})"
    return f"not solved in {r['max_steps']} (best {r['best_mse']:.4f})"


def _median(rs):
    vals = [r["solved_at"] if r["solved_at"] is not None else math.inf for r in rs]
    m = statistics.median(vals)
    if math.isinf(m):
        return f"> {max(r['max_steps'] for r in rs)}"
    return f"{m:g}"


def markdown(results, grid, args, lrs, wall):
    out = [f"Adding problem (modern version, `lstm_c.tasks.adding_problem`): steps to eval "
           f"MSE < {tasks.ADDING_SUCCESS_MSE} on {args.eval_n} fresh sequences, checked every "
           f"{args.eval_every} steps (baseline: always predicting 1 scores 1/6 = 0.167). "
           f"H={args.hidden}, B={args.batch}, Adam (LSTM lr {lrs['lstm']:g}, RNN lr "
           f"{lrs['rnn']:g}), clip {args.clip:g}, float32, RNN init {args.rnn_init}. "
           f"Seeds {', '.join(map(str, args.seeds))}; total wall time {wall / 60:.1f} min.", ""]
    models = [m for m in ("lstm", "rnn") if m in args.models]
    head = "| T |"
    rule = "|---|"
    for m in models:
        name = "LSTM" if m == "lstm" else "tanh RNN"
        head += f" {name}: steps per seed | {name}: median | {name}: time |"
        rule += "---|---|---|"
    out += [head, rule]
    for T in args.T:
        row = f"| {T} |"
        for m in models:
            rs = [results[(m, T, s)] for s in args.seeds]
            row += (f" {'; '.join(_cell(r) for r in rs)} | {_median(rs)} | "
                    f"{sum(r['seconds'] for r in rs) / 60:.1f} min |")
        out.append(row)
    if grid:
        out += ["", f"Learning-rate grid (T={args.grid_T}, seed {args.grid_seed}, at most "
                f"{args.grid_steps} steps; steps to MSE < 0.01, else the best MSE):", "",
                "| model | " + " | ".join(f"lr {lr:g}" for lr in args.lr_grid) + " | chosen |",
                "|---|" + "---|" * (len(args.lr_grid) + 1)]
        for m in models:
            cells = []
            for lr in args.lr_grid:
                r = grid[(m, lr)]
                cells.append(str(r["solved_at"]) if r["solved_at"] is not None
                             else f"best {r['best_mse']:.4f}")
            out.append(f"| {'LSTM' if m == 'lstm' else 'tanh RNN'} | " + " | ".join(cells)
                       + f" | {lrs[m]:g} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[100, 200, 500])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", choices=["lstm", "rnn"], default=["lstm", "rnn"])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--lr-lstm", type=float, default=1e-3)
    p.add_argument("--lr-rnn", type=float, default=1e-3)
    p.add_argument("--lr-grid", type=float, nargs="+",
                   help="try these rates at --grid-T first; each model then uses its best")
    p.add_argument("--grid-T", type=int, default=100)
    p.add_argument("--grid-seed", type=int, default=0)
    p.add_argument("--grid-steps", type=int, default=3000)
    p.add_argument("--clip", type=float, default=1.0, help="max global gradient norm")
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--rnn-max-steps", type=int, help="the RNN's step cap (default --max-steps)")
    p.add_argument("--rnn-max-steps-at", type=int, nargs=2, action="append", default=[],
                   metavar=("T", "STEPS"), help="the RNN's step cap at one T (repeatable)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--rnn-init", choices=["orthogonal", "torch"], default="orthogonal")
    p.add_argument("--md", help="write the markdown table here")
    p.add_argument("--json", help="write every run's record here")
    args = p.parse_args(argv)

    lstm_c.set_num_threads(1)
    t_start = time.perf_counter()
    caps = {"lstm": {T: args.max_steps for T in args.T},
            "rnn": {T: args.rnn_max_steps or args.max_steps for T in args.T}}
    for T, steps in args.rnn_max_steps_at:
        caps["rnn"][T] = steps
    evalsets = {}

    def evalset(T):
        if T not in evalsets:
            evalsets[T] = eval_set(T, args.eval_n)
        return evalsets[T]

    lrs = {"lstm": args.lr_lstm, "rnn": args.lr_rnn}
    grid = {}
    if args.lr_grid:
        for m in args.models:
            for lr in args.lr_grid:
                grid[(m, lr)] = train(m, args.grid_T, args.grid_seed, lr, args, args.grid_steps,
                                      evalset(args.grid_T), tag="grid ")
            lrs[m] = _pick([grid[(m, lr)] for lr in args.lr_grid])
            print(f"grid: {m} uses lr {lrs[m]:g}", flush=True)

    results = {}
    for T in args.T:
        for seed in args.seeds:
            for m in args.models:
                g = grid.get((m, lrs[m]))
                if (g is not None and T == args.grid_T and seed == args.grid_seed
                        and (g["solved_at"] is not None or args.grid_steps == caps[m][T])):
                    print(f"[{m} T={T} seed={seed}] reusing the grid run", flush=True)
                    results[(m, T, seed)] = {**g, "max_steps": caps[m][T]}
                    continue
                results[(m, T, seed)] = train(m, T, seed, lrs[m], args, caps[m][T], evalset(T))
    wall = time.perf_counter() - t_start
    md = markdown(results, grid, args, lrs, wall)
    print(md)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)
    if args.json:
        env = {"python": platform.python_version(), "numpy": np.__version__,
               "lstm_c": lstm_c.__version__, "machine": platform.processor() or platform.machine(),
               "argv": sys.argv}
        with open(args.json, "w") as f:
            json.dump({"config": vars(args), "lr": lrs, "env": env, "wall_seconds": wall,
                       "grid": [v for v in grid.values()],
                       "runs": list(results.values())}, f, indent=1)


if __name__ == "__main__":
    main()
