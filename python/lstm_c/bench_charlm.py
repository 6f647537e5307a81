"""End-to-end char-LM training: ``lstm-c train``'s step against the same model in PyTorch.

The infer and train rows time the LSTM layer alone. A user trains a whole
model, and around the layer lstm-c's step is NumPy (embedding, softmax,
clipping, Adam) where torch's is fused kernels; this mode measures what that
user sees, in characters per second (issue 5: "end-to-end char-LM training
(embedding, 2x512 LSTM, softmax, Adam; T=100, B=64)"). Per point and thread count:

  lstm-c  ``train._Run.train_step``, the very step ``lstm-c train`` runs, on a
          ``CharLM`` with ``optim.Adam`` and ``data.Batches``: forward, loss,
          backward, ``clip_grad_norm``, the Adam update, the hidden state carried
          to the next batch; the steps run inside
          ``_threads.other_blas_single_threaded()``, as ``train()``'s loop does.
  torch   the script a PyTorch user writes: ``nn.Embedding(V, E) -> nn.LSTM(E, H, L)
          -> nn.Linear(H, V)``, ``F.cross_entropy``, ``torch.optim.Adam`` (its
          defaults), ``clip_grad_norm_``, the state detached and carried.

Both start from the same weights (lstm-c's init, copied into torch: the names
and layouts are torch's) and read the same batches (two ``data.Batches`` over
one source). Same lr (2e-3) and max gradient norm (5), ``lstm-c train``'s
defaults; the lr is held constant and there is no dropout, so the two runs are
the same computation: before timing, the losses of their first
``CHECK_STEPS`` steps are compared.

Data: the bytes of ``--data FILE`` (its training split, vocabulary = the bytes
it uses, as ``lstm-c train`` reads it), else random bytes (V = 256).

Timing: ``--warmup`` steps, then ``--steps`` steps, each timed; chars/s is
B*T / the median step time.
"""
from __future__ import annotations

import numpy as np

from .bench_common import SETTLE_S, cpu_snapshot, others_share, timeit

CHECK_STEPS = 3        # steps whose losses are compared with torch's
DEFAULTS = dict(T=100, B=64, I=64, H=512, layers=2)   # issue 5's row; I is the embedding size
STEPS, WARMUP = 10, 2
RANDOM_BATCHES = 64    # batches per epoch of the random source


# --------------------------------------------------------------------------- data

def make_source(path, B, T, seed):
    """(source, V, label): the training split of ``path`` as ``lstm-c train`` reads it,
    or random bytes when path is None (the package needs no data file)."""
    from . import data
    if path:
        corpus = data.Corpus.open(path, vocab="bytes")
        return corpus.train, corpus.vocab.size, str(path)
    ids = np.random.default_rng(seed).integers(0, 256, B * (T * RANDOM_BATCHES + 1), np.uint8)
    return data.Source(ids), 256, "random bytes"


# --------------------------------------------------------------------------- lstm-c

def _train_run():
    """A class holding what ``train._Run.train_step`` reads, whose step IS that method.

    ``_Run`` itself opens a corpus file and a run directory; the step needs
    neither, so it is borrowed rather than copied.
    """
    from . import train

    class TrainStep:
        train_step = train._Run.train_step
        progress = train._Run.progress
    return TrainStep


def lstm_c_run(source, V, T, B, E, H, L, dtype, seed):
    """The model, optimizer, batches and carried state ``lstm-c train`` would build."""
    from . import data, optim, train
    from .model import CharLM
    # The epoch schedule with no decay holds the lr constant, as the torch script does.
    cfg = train.TrainConfig(hidden_size=H, num_layers=L, embed_size=E, dropout=0.0,
                            seq_len=T, batch_size=B, lr_schedule="epoch", lr_decay=1.0,
                            max_steps=1, dtype=dtype, seed=seed)
    cfg.check()
    run = _train_run()()
    run.cfg, run.run_dir, run.step = cfg, "(bench)", 0
    run.model = CharLM(V, hidden_size=H, num_layers=L, embed_size=E, dropout=0.0,
                       dtype=dtype, seed=seed)
    run.opt = optim.make_optimizer(cfg.optimizer, run.model.parameters(), lr=cfg.lr,
                                   weight_decay=cfg.weight_decay)
    run.batches = data.Batches(source, B, T)
    run.rows, run.flat, run.stop_all = B, None, False  # one process: no cluster
    run.state = run.model.init_state(B)
    return run


# --------------------------------------------------------------------------- torch

def _torch_model(torch, V, E, H, L):
    nn = torch.nn

    class TorchCharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, E)
            self.lstm = nn.LSTM(E, H, L)
            self.head = nn.Linear(H, V)

        def forward(self, x, state=None):
            y, state = self.lstm(self.embed(x), state)
            return self.head(y), state
    return TorchCharLM()


class TorchRun:
    """The PyTorch training script, one step per call of :meth:`train_step`."""

    def __init__(self, torch, weights, source, V, T, B, E, H, L, dtype, lr, clip):
        from . import data
        self.torch, self.V, self.clip = torch, V, clip
        self.model = _torch_model(torch, V, E, H, L).to(getattr(torch, np.dtype(dtype).name))
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.batches = data.Batches(source, B, T)
        self.state = None

    def train_step(self):
        torch = self.torch
        if self.batches.position == 0:   # a new epoch: the streams start over
            self.state = None
        x, y = self.batches.next_batch()
        x, y = torch.from_numpy(x).long(), torch.from_numpy(y).long()
        logits, state = self.model(x, self.state)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, self.V), y.view(-1))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.state = tuple(s.detach() for s in state)
        return loss.item()


# --------------------------------------------------------------------------- one point

class CharLMPoint:
    """One (dtype, T, B, E, H, L) char-LM: lstm-c's run and torch's, same weights and batches."""

    def __init__(self, dtype, T, B, E, H, L, torch, seed, data_path=None):
        source, V, self.data = make_source(data_path, B, T, seed)
        self.key = dict(dtype=dtype, T=T, B=B, I=E, H=H, L=L, V=V)
        self.lstm_c = lstm_c_run(source, V, T, B, E, H, L, dtype, seed)
        self.torch = None
        if torch is not None:
            cfg = self.lstm_c.cfg
            self.torch = TorchRun(torch, self.lstm_c.model.state_dict(), source, V, T, B, E,
                                  H, L, dtype, cfg.lr, cfg.clip)

    def lstm_c_step(self):
        return self.lstm_c.train_step()

    def _lstm_c_loop(self):
        """The context ``train()`` runs its whole loop in: NumPy's BLAS on one thread."""
        from . import _threads
        return _threads.other_blas_single_threaded()

    def check(self, tol, steps=CHECK_STEPS):
        """The first ``steps`` losses of both runs: {"against", "max_rel_err", "ok", "losses"}.

        Run on the fresh models (so from identical weights); these steps also warm both up.
        """
        if self.torch is None:
            return {"against": None, "ok": None}
        with self._lstm_c_loop():
            mine = [self.lstm_c_step() for _ in range(steps)]
        theirs = [self.torch.train_step() for _ in range(steps)]
        err = max(abs(a - b) / abs(b) for a, b in zip(mine, theirs))
        return {"against": "torch", "max_rel_err": float(err), "ok": bool(err <= tol),
                "worst": "loss", "losses": {"lstm_c": mine, "torch": theirs}}

    def time_row(self, threads, steps=STEPS, warmup=WARMUP):
        """Time both runs at ``threads`` (already pinned by the caller): one table row."""
        settle = SETTLE_S if threads > 1 else 0.0
        chars = self.key["T"] * self.key["B"]
        row = dict(mode="charlm", **self.key, threads=threads, data=self.data, steps=steps)
        snap = cpu_snapshot()
        with self._lstm_c_loop():
            row["lstm_c"] = _time_steps(self.lstm_c_step, steps, warmup, settle)
        row["torch"] = (_time_steps(self.torch.train_step, steps, warmup, settle)
                        if self.torch is not None else None)
        row["others"] = others_share(snap, cpu_snapshot())
        row["lstm_c_chars_per_s"] = chars / row["lstm_c"]["median"]
        row["torch_chars_per_s"] = chars / row["torch"]["median"] if row["torch"] else None
        return row


def _time_steps(step, steps, warmup, settle):
    """Median seconds per step over ``steps`` samples after ``warmup`` (>= 1) untimed steps."""
    for _ in range(warmup - 1):
        step()
    # timeit makes the last warm-up call, and sizes its samples by it: a step
    # under 1 ms (tiny test models) is repeated within each sample
    return timeit(step, 0.0, min_reps=steps, max_reps=steps, settle=settle)


# --------------------------------------------------------------------------- report

def _rate(v):
    return "-" if v is None else f"{v:,.0f}"


def _check_cell(row):
    c = row["check"]
    if c["ok"] is None:
        return "-"
    return (f"ok, {c['max_rel_err']:.1e}" if c["ok"]
            else f"**MISMATCH** {c['max_rel_err']:.1e}")


def format_charlm_table(rows, busy=0.10):
    """Markdown table of the charlm rows; the torch columns stay, '-' when torch was absent."""
    cols = [("dtype", lambda r: r["dtype"]),
            *[(k, (lambda k: lambda r: r[k])(k)) for k in ("T", "B")],
            ("E", lambda r: r["I"]), ("H", lambda r: r["H"]), ("L", lambda r: r["L"]),
            ("V", lambda r: r["V"]), ("threads", lambda r: r["threads"]),
            ("lstm-c chars/s", lambda r: _rate(r["lstm_c_chars_per_s"])),
            ("torch chars/s", lambda r: _rate(r["torch_chars_per_s"])),
            ("lstm-c ms/step", lambda r: f"{r['lstm_c']['median'] * 1e3:.1f}"),
            ("torch ms/step", lambda r: "-" if not r["torch"]
             else f"{r['torch']['median'] * 1e3:.1f}"),
            ("torch / lstm-c", lambda r: "-" if not r["torch"]
             else f"{r['torch']['median'] / r['lstm_c']['median']:.2f}"),
            ("loss check (max rel diff)", lambda r: _check_cell(r)
             + (f"; busy {r['others']:.0%}" if (r.get("others") or 0) > busy else ""))]
    out = ["| " + " | ".join(name for name, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(cell(r)) for _, cell in cols) + " |")
    return "\n".join(out)


CHARLM_NOTE = (
    "charlm rows: one training step of a whole char-LM (embedding, LSTM stack, linear, "
    "softmax cross-entropy, clip to norm 5, Adam lr 2e-3, state carried), `lstm-c train`'s "
    "own step against the PyTorch script of the same model, same initial weights and "
    "batches; chars/s = B*T / median step time; `torch / lstm-c` above 1 means lstm-c is "
    "faster. The loss check is the largest relative difference of the two runs' losses "
    f"over their first {CHECK_STEPS} steps.")
