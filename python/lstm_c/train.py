"""Train a character-level language model: the loop behind `lstm-c train` and `lstm-c demo`.

A run is a directory. ``RUN/last`` is written at every evaluation, at the end,
on Ctrl-C and on a stop for time; ``RUN/best`` whenever the validation loss
improves (checkpoint.py writes both atomically). A checkpoint holds everything
the next step depends on: weights, optimizer state, the data position, the
hidden state carried between batches and the dropout generator. So
``train(..., resume=True)`` continues exactly: a run stopped at step k and
resumed ends with the same weights, bit for bit, as one that never stopped
(at the same thread count, which fixes the BLAS summation order).
"""

import dataclasses
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from lstm_c import _threads, checkpoint, data, optim, run_checks
from lstm_c import _validate as check
from lstm_c.distributed import Cluster, FlatGradients
from lstm_c.model import BITS_PER_NAT, CharLM


LR_SCHEDULES = ("epoch", "cosine")


def _default_threads():
    # Two engine threads train the default 2x256, B=32 model 1.7x faster than
    # one (26,600 against 15,300 chars/s: lstm-c bench --mode charlm --B 32
    # --H 256 --threads 1 2); the machines this is built on have two cores.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2, cores or 1)


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters of a run; saved with it, so a resume needs none of them again.

    The defaults are the configuration that did best on War and Peace within an
    hour on 2 cores (bench/RESULTS.md): 2x256, dropout 0.2, B=32, T=100, Adam
    2e-3 annealed to 0 over the run by a cosine.
    """

    vocab: str = "bytes"                # "bytes" (as char-rnn) or "chars" (Unicode code points)
    split: tuple = (0.90, 0.05, 0.05)   # train / validation / test, contiguous
    num_layers: int = 2
    hidden_size: int = 256
    embed_size: int = 64
    dropout: float = 0.2
    seq_len: int = 100                  # T: truncated-BPTT length
    batch_size: int = 32                # B: contiguous streams
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_schedule: str = "cosine"         # "epoch" (char-rnn's) or "cosine": to 0 at the end
                                        # of the run, as its stopping rule sets it
    lr_decay: float = 1.0               # "epoch": multiply lr by this every epoch from
    lr_decay_start: int = 10            # lr_decay_start on
    weight_decay: float = 0.0
    clip: float = 5.0                   # max global gradient norm; 0 turns clipping off
    epochs: int = None                  # stop after this many epochs ...
    max_steps: int = None               # ... or steps ...
    time_budget: float = None           # ... or seconds of training, whichever comes first
    eval_every: int = 200               # steps between validations (and saves of RUN/last)
    eval_chars: int = 200_000           # validate on at most this many characters
    seed: int = 0
    dtype: str = "float32"
    threads: int = dataclasses.field(default_factory=_default_threads)

    def to_json(self):
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_json(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"train config: unknown keys {unknown}")
        d = dict(d)
        if "split" in d:
            d["split"] = tuple(d["split"])
        return cls(**d)

    def check(self):
        """Refuse impossible settings before any work starts."""
        for name in ("num_layers", "hidden_size", "embed_size", "seq_len", "batch_size",
                     "eval_every", "eval_chars", "threads"):
            check.positive_int(name, getattr(self, name))
        if int(self.lr_decay_start) < 0:
            raise ValueError(f"lr_decay_start must be >= 0, got {self.lr_decay_start}")
        for name in ("epochs", "max_steps"):
            if getattr(self, name) is not None:
                check.positive_int(name, getattr(self, name))
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, "
                             f"got {self.lr_schedule!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not self.clip >= 0:
            raise ValueError(f"clip must be >= 0, got {self.clip}")
        if self.epochs is None and self.max_steps is None and self.time_budget is None:
            raise ValueError("say when to stop: epochs, max_steps or time_budget")
        check.float_dtype(self.dtype)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or inf."""


def evaluate(model, source, batch_size=64, seq_len=100, max_chars=None, streams=None):
    """Mean cross-entropy of `source` under `model`, in nats per character.

    The text is cut into `batch_size` contiguous streams, each read in chunks
    of `seq_len` with the hidden state carried, so nearly every character is
    predicted with its full context (at most batch_size - 1 at the end are left
    out). `streams` (lo, hi) scores only those streams (one process's share).
    Returns (nats_per_char, characters_scored).
    """
    source = source if isinstance(source, data.Source) else data.Source(np.asarray(source))
    n = len(source) - 1
    if max_chars is not None:
        n = min(n, int(max_chars))
    if n < 1:
        raise ValueError("evaluate: the text needs at least two characters")
    B = min(batch_size, n)
    L = n // B
    lo, hi = (0, B) if streams is None else (min(streams[0], B), min(streams[1], B))
    starts = np.arange(lo, hi) * L
    if len(starts) == 0:  # more processes than streams of this text: nothing to score here
        return 0.0, 0
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        state = model.init_state(len(starts))
        for t0 in range(0, L, seq_len):
            T = min(seq_len, L - t0)
            ids = source.take(starts[None, :] + t0 + np.arange(T + 1)[:, None])
            loss, state = model.forward(ids[:-1], ids[1:], state, grad=False)
            total += loss * T * len(starts)
            count += T * len(starts)
    finally:
        model.train(was_training)
    return total / count, count


def _arrays(model, opt, state):
    arrays = {"model:" + k: v for k, v in model.parameters().items()}
    arrays.update({"optim:" + k: v for k, v in opt.state_dict()["arrays"].items()})
    arrays["state:h"], arrays["state:c"] = state
    return arrays


def _unpack(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


class _Run:
    """One training run: the model, its optimizer, the data and where they are.

    With a cluster (lstm_c.distributed), this process's share of one: it
    reads its streams of the batch, sums gradients with the others, and
    writes checkpoints only on rank 0.
    """

    def __init__(self, data_path, run_dir, cfg, resume, log, cluster=None, overlap=True):
        self.run_dir, self.log, self.cluster, self.overlap = run_dir, log, cluster, overlap
        self.main = cluster is None or cluster.rank == 0  # writes checkpoints and progress
        saved = None
        if resume:
            if self.main and os.path.isdir(run_dir):  # what a killed run left mid-save
                for name in ("last", "best"):
                    checkpoint.recover(run_dir, name)
            if cluster is not None:
                cluster.comm.Barrier()  # the others read only what rank 0 has put in order
            arrays, meta = checkpoint.load(run_dir, "last")
            if meta.get("kind") != "lstm-c char-lm run":
                raise ValueError(f"{run_dir}/last: not a char-LM training checkpoint")
            where = os.path.join(run_dir, "last", checkpoint.CONFIG)
            _, mc = run_checks.check_run(where, meta, arrays)
            try:
                # Runs saved before there was a choice of schedule used char-rnn's.
                saved_cfg = TrainConfig.from_json({"lr_schedule": "epoch",
                                                   **meta["train_config"]})
                # Only the stopping rules may change on resume; everything else is the run's own.
                for name in ("epochs", "max_steps", "time_budget"):
                    if getattr(cfg, name) is not None:
                        setattr(saved_cfg, name, getattr(cfg, name))
                saved_cfg.check()
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: train_config: {e}") from None
            cfg = saved_cfg
            run_checks.check_resume(where, meta, cfg, mc, arrays)
            data_path = data_path or meta["data_path"]
            saved = (arrays, meta, where)
        cfg.check()
        self.cfg, self.data_path = cfg, data_path
        try:
            self._build(saved)
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            if not saved:
                raise
            # what the checks in _check_resume leave to the parts themselves (the text,
            # the optimizer's settings, the generators' states) refuses as they do
            raise ValueError(f"{saved[2]}: cannot resume from it: {e}") from None

    def _build(self, saved):
        cfg, data_path = self.cfg, self.data_path
        vocab = data.Vocab.from_json(saved[1]["vocab"]) if saved else cfg.vocab
        counts = None
        kind = vocab.kind if isinstance(vocab, data.Vocab) else vocab
        if self.cluster is not None and kind == "bytes":  # each rank counts 1/N of the file
            cluster = self.cluster
            try:
                part = data.byte_counts(data_path, (cluster.rank, cluster.size))
            except OSError as e:
                raise ValueError(f"{data_path}: cannot read ({e.strerror or e})") from None
            counts = cluster.sum(part)
        self.corpus = data.Corpus.open(data_path, vocab=vocab, split=cfg.split, counts=counts)
        if len(self.corpus.val) < 2:
            raise ValueError(f"the validation split of {data_path} is empty: training needs "
                             f"one to pick the best checkpoint (split {cfg.split})")
        self.model = CharLM(self.corpus.vocab.size, hidden_size=cfg.hidden_size,
                            num_layers=cfg.num_layers, embed_size=cfg.embed_size,
                            dropout=cfg.dropout, dtype=cfg.dtype, seed=cfg.seed)
        self.opt = optim.make_optimizer(cfg.optimizer, self.model.parameters(), lr=cfg.lr,
                                        weight_decay=cfg.weight_decay)
        B, cluster = cfg.batch_size, self.cluster
        self.streams = (0, B) if cluster is None else cluster.streams(B)
        self.batches = data.Batches(self.corpus.train, B, cfg.seq_len, streams=self.streams)
        self.rows = self.streams[1] - self.streams[0]
        self.flat = None
        if cluster is not None:
            self.model.lstm.batch_share = (*self.streams, B)  # whole-batch dropout masks
            self.flat = FlatGradients(self.model, cluster, extras=3)
        self.stop_all = False  # a rank asked the run to stop (Ctrl-C): all stop after the step
        self.state = self.model.init_state(self.rows)
        self.step, self.elapsed, self.best_val, self.history = 0, 0.0, math.inf, []
        if saved:
            self._restore(*saved[:2])

    def _restore(self, arrays, meta):
        self.model.load_state_dict(_unpack(arrays, "model:"))
        opt_state = dict(meta["optim"])
        opt_state["arrays"] = _unpack(arrays, "optim:")
        self.opt.load_state_dict(opt_state)
        self.batches.load_state_dict(meta["batches"])
        lo, hi = self.streams  # a checkpoint holds the whole batch's state
        self.state = (arrays["state:h"][:, lo:hi].copy(), arrays["state:c"][:, lo:hi].copy())
        self.model.set_rng_state(meta["rng"])
        self.step, self.elapsed = meta["step"], meta["elapsed"]
        self.best_val = meta["best_val"] if meta["best_val"] is not None else math.inf
        self.history = meta["history"]

    def save(self, name):
        state = self.state
        if self.cluster is not None:  # every rank sends its rows; rank 0 writes
            state = tuple(self.cluster.gather_rows(a) for a in self.state)
            if not self.main:
                return
        opt_state = self.opt.state_dict()
        meta = {"kind": "lstm-c char-lm run", "data_path": str(self.data_path),
                "train_config": self.cfg.to_json(), "model_config": self.model.config(),
                "vocab": self.corpus.vocab.to_json(), "step": self.step,
                "elapsed": self.elapsed, "batches": self.batches.state_dict(),
                "rng": self.model.rng_state(),
                "optim": {k: v for k, v in opt_state.items() if k != "arrays"},
                "best_val": None if math.isinf(self.best_val) else self.best_val,
                "history": self.history}
        arrays = _arrays(self.model, self.opt, state)
        checkpoint.save(self.run_dir, name, arrays, meta)

    def done(self):
        c = self.cfg
        return ((c.max_steps is not None and self.step >= c.max_steps)
                or (c.epochs is not None and self.batches.epoch >= c.epochs)
                or (c.time_budget is not None and self.elapsed >= c.time_budget))

    def progress(self):
        """How far through the run, in [0, 1], by whichever stopping rule ends it first.

        By a time budget this follows the training time measured so far, so a
        timed run (and its resume) is only as reproducible as its stopping point.
        """
        c = self.cfg
        done = [0.0]
        if c.max_steps is not None:
            done.append(self.step / c.max_steps)
        if c.epochs is not None:
            done.append(self.step / (c.epochs * len(self.batches)))
        if c.time_budget is not None:
            done.append(self.elapsed / c.time_budget)
        return min(1.0, max(done))

    def train_step(self, stop=False, last_dt=0.0):
        """One optimizer step; returns the loss (the whole batch's, over every rank).

        Distributed, `stop` (this rank was asked to stop) and `last_dt` (the
        seconds its previous step took) travel with the gradients, so that all
        ranks agree on ``stop_all`` and ``elapsed``.
        """
        cfg, model = self.cfg, self.model
        if self.batches.position == 0:  # a new epoch: the streams start over
            self.state = model.init_state(self.rows)
        if cfg.lr_schedule == "cosine":
            self.opt.lr = optim.cosine_lr(cfg.lr, self.progress())
        else:
            self.opt.lr = optim.decayed_lr(cfg.lr, self.batches.epoch, cfg.lr_decay,
                                           cfg.lr_decay_start)
        x, y = self.batches.next_batch()
        loss, state = model.forward(x, y, self.state)
        model.zero_grad()
        if self.flat is None:
            model.backward()
        else:
            self.flat.during_backward(self.overlap)
            model.backward()
            self.flat.extras[:] = (loss, stop, last_dt)
            self.flat.reduce(self.overlap)
            size = self.cluster.size
            loss = float(self.flat.extras[0]) / size
            self.stop_all = bool(self.flat.extras[1] > 0)
            self.elapsed += float(self.flat.extras[2]) / size
        norm = optim.clip_grad_norm(model.grads, cfg.clip) if cfg.clip > 0 else 0.0
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise TrainingDiverged(
                f"the {'loss' if not math.isfinite(loss) else 'gradient norm'} became "
                f"{loss if not math.isfinite(loss) else norm} at step {self.step + 1}; "
                f"the last good checkpoint ({self.run_dir}/last) is intact. "
                f"Try a lower learning rate (--lr) or gradient clipping (--clip).")
        self.opt.step(model.grads)
        self.state = state
        self.step += 1
        return loss

    def validate(self):
        nats, n = evaluate(self.model, self.corpus.val, self.cfg.batch_size, self.cfg.seq_len,
                           self.cfg.eval_chars, streams=self.streams)
        if self.cluster is None:
            return nats
        total, count = self.cluster.sum([nats * n, n])
        return total / count


def train(data_path, run_dir, cfg=None, *, resume=False, progress=True, log=None,
          distributed=False, overlap=True, _after_step=None):
    """Train (or, with resume=True, continue) a run; returns a summary dict.

    Parameters
    ----------
    data_path : str or None
        The text file. On resume, None means the file the run was trained on.
    run_dir : str
        Where the checkpoints go (RUN/last, RUN/best).
    cfg : TrainConfig
        On resume only its stopping rules (epochs, max_steps, time_budget) are used.
    progress : bool
        Show a progress bar (tqdm) with loss, bits/char, chars/s and ETA.
    distributed : bool
        One process of a data-parallel run started by ``mpiexec -n N``
        (lstm_c.distributed): the batch's streams are shared out, gradients
        summed, and rank 0 alone writes the run and shows progress. cfg.threads
        is then the machine's, shared among its ranks. Needs mpi4py.
    overlap : bool
        Distributed: send each layer's gradients while backward goes on below it.
    _after_step : callable(run) or None
        Test hook, called after every step.
    """
    cluster = Cluster() if distributed else None
    try:
        return _train(data_path, run_dir, cfg, resume, progress, log, cluster, overlap,
                      _after_step)
    except BaseException as e:
        if cluster and cluster.size > 1:  # the others would wait for this rank for ever
            cluster.abort(f"{type(e).__name__}: {e}")
        raise


def _train(data_path, run_dir, cfg, resume, progress, log, cluster, overlap, _after_step):
    from tqdm import tqdm

    main = cluster is None or cluster.rank == 0
    if main:
        log = log or (lambda msg: print(msg, file=sys.stderr))
    else:
        log, progress = (lambda msg: None), False
    run = _Run(data_path, run_dir, cfg or TrainConfig(), resume, log, cluster, overlap)
    cfg = run.cfg
    old_threads = _threads.get_num_threads()
    _threads.set_num_threads(cfg.threads if not cluster else cluster.threads(cfg.threads))
    chars_per_step = cfg.batch_size * cfg.seq_len
    total, unit = ((cfg.time_budget, "s") if cfg.max_steps is None and cfg.epochs is None
                   else (cfg.max_steps or cfg.epochs * len(run.batches), "step"))
    # A time budget counts seconds, which tqdm would print as raw floats.
    fmt = ("{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
           if unit == "s" else None)
    bar = tqdm(total=total, unit=unit, disable=not progress, file=sys.stderr,
               dynamic_ncols=True, bar_format=fmt,
               initial=min(run.elapsed if unit == "s" else run.step, total))
    stopped = "finished"
    t_last = time.perf_counter()
    dt = 0.0
    window = []  # (loss, seconds) of recent steps for the bar
    try:
        with _StopOnInterrupt() as interrupt, _threads.other_blas_single_threaded():
            while not run.done():
                if interrupt.requested and not cluster:
                    stopped = "interrupted"
                    bar.clear()
                    log(f"interrupted at step {run.step}: saving {run_dir}/last")
                    run.save("last")
                    break
                loss = run.train_step(interrupt.requested, dt)
                if _after_step is not None:
                    _after_step(run)
                now = time.perf_counter()
                dt, t_last = now - t_last, now
                if not cluster:
                    run.elapsed += dt  # distributed: the ranks' mean, in train_step
                if run.stop_all:  # a rank was interrupted: all save and stop together
                    stopped = "interrupted"
                    bar.clear()
                    log(f"interrupted at step {run.step}: saving {run_dir}/last")
                    run.save("last")
                    break
                window = (window + [(loss, dt)])[-20:]
                mean_loss = sum(w[0] for w in window) / len(window)
                speed = chars_per_step * len(window) / max(sum(w[1] for w in window), 1e-9)
                bar.update(min(dt, max(total - bar.n, 0)) if unit == "s" else 1)
                postfix = {"loss": f"{mean_loss:.3f}", "bpc": f"{mean_loss * BITS_PER_NAT:.3f}",
                           "chars/s": f"{speed:,.0f}"}
                if run.history:
                    postfix["val bpc"] = f"{run.history[-1]['val_bpc']:.3f}"
                bar.set_postfix(postfix, refresh=False)
                if run.step % cfg.eval_every == 0 or run.done():
                    _checkpoint(run, mean_loss, speed, bar)
                    t_last = time.perf_counter()  # validation time is not training time
    finally:
        bar.close()
        _threads.set_num_threads(old_threads)
    summary = {"run_dir": str(run_dir), "steps": run.step, "epochs": run.batches.epoch,
               "elapsed_s": run.elapsed, "best_val_nats": run.best_val,
               "best_val_bpc": float(run.best_val * BITS_PER_NAT), "stopped": stopped,
               "chars_per_s": (run.step * chars_per_step / run.elapsed if run.elapsed else 0.0),
               "rank": cluster.rank if cluster else 0, "ranks": cluster.size if cluster else 1,
               "allreduce_wait_s": run.flat.blocked_s if cluster else 0.0}
    return summary


class _StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the step in progress (so that the
    checkpoint it saves is consistent); a second Ctrl-C stops at once."""

    def __enter__(self):
        self.requested = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _checkpoint(run, train_loss, speed, bar):
    """Validate, record the learning curve, save RUN/last (and RUN/best if it improved)."""
    val = run.validate()
    run.history.append({"step": run.step, "elapsed_s": round(run.elapsed, 3),
                        "epoch": run.batches.epoch, "train_bpc": train_loss * BITS_PER_NAT,
                        "val_bpc": val * BITS_PER_NAT, "chars_per_s": speed})
    improved = val < run.best_val
    if improved:
        run.best_val = val
    run.save("last")
    if improved:
        run.save("best")
    if not run.main:
        return
    bar.write(f"step {run.step}: train {train_loss * BITS_PER_NAT:.3f} bits/char, "
              f"validation {val * BITS_PER_NAT:.3f} bits/char"
              + (" (best, saved)" if improved else ""))


def load_model(run_dir, name="best"):
    """The model and vocabulary of a run's checkpoint: (model, vocab, meta), model in eval mode."""
    arrays, meta = checkpoint.load(run_dir, name)
    if meta.get("kind") != "lstm-c char-lm run":
        raise ValueError(f"{run_dir}/{name}: not a char-LM checkpoint of lstm-c")
    where = os.path.join(run_dir, name, checkpoint.CONFIG)
    vocab, mc = run_checks.check_run(where, meta, arrays)  # before CharLM allocates what mc says
    try:
        model = CharLM(**mc)
        model.load_state_dict(_unpack(arrays, "model:"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the model does not load: {e}") from None
    return model.eval(), vocab, meta
