"""The ``lstm-c`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that builds its
parser and sets ``func`` (called with the parsed arguments, returns the exit
status). Add the char-LM commands (demo, train, sample, eval, viz) the same
way and list them in ``_COMMANDS``.

User errors (bad arguments, missing files) raise :class:`UsageError`: ``main``
prints ``lstm-c: error: ...`` and returns 2, with no traceback. Anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

PROG = "lstm-c"
DTYPES = ("float32", "float64")


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


# --------------------------------------------------------------------------- info

def _version():
    try:
        import lstm_c
        return lstm_c.__version__
    except Exception:  # a broken build must not stop `lstm-c info` from saying so
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("lstm-c")
        except PackageNotFoundError:
            return "unknown"


def _owner(filepath):
    """Which installed package ships a shared library: scipy, numpy, torch, or the system."""
    parts = os.path.normpath(filepath).split(os.sep)
    for i, p in enumerate(parts[:-1]):
        if p in ("site-packages", "dist-packages"):
            top = parts[i + 1]
            if top.endswith(".libs"):
                top = top[: -len(".libs")]
            return "scipy" if top == "scipy_openblas32" else top
    return "system"


def _engine():
    """The compiled engine: where it is and how it was built (tolerates its absence)."""
    import sysconfig
    try:
        from lstm_c import _lstm
    except Exception as e:
        return {"importable": False, "error": f"{type(e).__name__}: {e}"}
    import lstm_c
    out = {"importable": True, "path": getattr(_lstm, "__file__", None),
           "threads": lstm_c.get_num_threads()}
    build = getattr(_lstm, "BUILD_INFO", None)
    out["build"] = {} if build is None else dict(build)
    debug = out["build"].get("debug")
    # setup.py appends -O3 (release) or -O0 -g (LSTM_C_DEBUG_CYTHON=1) to Python's CFLAGS
    extra = "" if debug is None else (" -O0 -g" if debug else " -O3") + " -ffp-contract=off"
    out["cflags"] = (sysconfig.get_config_var("CFLAGS") or "") + extra
    return out


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_info():
    """Everything ``lstm-c info`` reports, as a JSON-able dict. Also used by the benchmark."""
    import numpy
    import scipy
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, the one the engine calls)

    info = {
        "lstm_c": _version(),
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "engine": _engine(),
        "dtypes": list(DTYPES),
    }
    if info["engine"].get("build", {}).get("dtypes"):
        info["dtypes"] = [str(d) for d in info["engine"]["build"]["dtypes"]]
    try:
        import torch
        info["torch"] = {"importable": True, "version": torch.__version__,
                         "num_threads": torch.get_num_threads()}
    except Exception as e:
        info["torch"] = {"importable": False, "error": f"{type(e).__name__}: {e}"}
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except Exception as e:  # threadpoolctl is a dependency, but say so rather than crash
        pools, info["threadpool_error"] = [], f"{type(e).__name__}: {e}"
    for p in pools:
        p["owner"] = _owner(p.get("filepath") or "")
    blas = [p for p in pools if p.get("user_api") == "blas"]
    engine = [p for p in blas if p["owner"] == "scipy"]
    if not engine:  # unusual layout: fall back to the version scipy says it was built with
        try:
            v = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"].get("version")
        except Exception:
            v = None
        engine = [p for p in blas if v and p.get("version") == v][:1]
    for p in pools:
        p["engine"] = any(p is q for q in engine)
    info["threadpools"] = pools
    return info


def format_info(info):
    lines = [f"lstm-c {info['lstm_c']}",
             f"python {info['python']}",
             f"platform {info['platform']}",
             f"cpu {info['cpu']} ({info['cpu_count']} logical CPUs)",
             f"numpy {info['numpy']}",
             f"scipy {info['scipy']}"]
    pools = info["threadpools"]
    if not any(p.get("user_api") == "blas" for p in pools):
        lines.append("BLAS: none found by threadpoolctl"
                     + (f" ({info['threadpool_error']})" if "threadpool_error" in info else ""))
    for p in pools:
        kind = "BLAS" if p.get("user_api") == "blas" else "OpenMP"
        role = "used by lstm-c" if p["engine"] else f"{p['owner']}'s"
        what = [f"{p.get('internal_api')} {p.get('version') or p.get('prefix')}",
                f"{p.get('num_threads')} threads"]
        what += [str(p[k]) for k in ("threading_layer", "architecture")
                 if p.get(k) not in (None, "unknown")]
        lines.append(f"{kind} ({role}): {', '.join(what)}\n    {p.get('filepath')}")
    eng = info["engine"]
    if not eng["importable"]:
        lines.append(f"engine: NOT importable: {eng['error']}")
    else:
        lines.append(f"engine: {eng['path']}")
        lines.append(f"engine threads: {eng['threads']} (its BLAS runs at this count during "
                     f"lstm-c's calls; lstm_c.set_num_threads(n) changes it)")
        b = {k: v for k, v in eng["build"].items() if k != "dtypes"}
        lines.append("build: " + (", ".join(f"{k} {v}" for k, v in b.items()) or
                                  "not recorded by the engine"))
        lines.append(f"CFLAGS: {eng['cflags']}")
    lines.append("dtypes: " + ", ".join(info["dtypes"]))
    t = info["torch"]
    lines.append(f"torch {t['version']} ({t['num_threads']} threads)" if t["importable"]
                 else f"torch: not importable ({t['error']})")
    return "\n".join(lines)


def _info(args):
    info = collect_info()
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return 0


def _add_info(sub):
    p = sub.add_parser("info", help="version, BLAS, threads, build flags, torch",
                       description="Print what lstm-c runs on: versions, the BLAS library "
                                   "and its threads, build flags, supported dtypes, torch.")
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=_info)


# --------------------------------------------------------------------------- bench

def _add_bench(sub):
    from . import bench
    p = sub.add_parser("bench", help="time lstm-c against the NumPy reference and PyTorch",
                       description=bench.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)


# --------------------------------------------------------------------------- char-LM

def _user_errors(func):
    """Bad files, options or checkpoints surface from the library as ValueError: one line, exit 2."""
    def run(args):
        from lstm_c.distributed import MPIUnavailable
        from lstm_c.train import TrainingDiverged
        try:
            return func(args)
        except (ValueError, OSError, MPIUnavailable) as e:
            raise UsageError(str(e)) from None
        except TrainingDiverged as e:
            print(f"{PROG} {args.command}: stopped: {e}", file=sys.stderr)
            return 1
    return run


def _duration(text):
    """Seconds from '90', '90s', '10m' or '2h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 90, 90s, 10m or 2h, "
                                         f"got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return value


def _split(text):
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.9,0.05,0.05, "
                                         f"got {text!r}")
    return parts


def _train(args):
    from lstm_c.train import TrainConfig, train
    if args.resume is None and args.file is None:
        raise UsageError("give the text FILE to train on (or --resume RUN)")
    overrides = {k: v for k, v in vars(args).items()
                 if k in {f for f in TrainConfig.__dataclass_fields__} and v is not None}
    if args.resume is not None:
        run_dir = args.resume
        cfg = TrainConfig(**{k: v for k, v in overrides.items()
                             if k in ("epochs", "max_steps", "time_budget")})
    else:
        run_dir = args.run or os.path.join("runs", os.path.splitext(os.path.basename(args.file))[0])
        cfg = TrainConfig(**overrides)
        if cfg.epochs is None and cfg.max_steps is None and cfg.time_budget is None:
            cfg.time_budget = 600.0
    summary = train(args.file, run_dir, cfg, resume=args.resume is not None,
                    progress=not args.no_progress, distributed=args.distributed,
                    overlap=not args.no_overlap)
    if args.distributed and summary["rank"] != 0:
        return 0
    print(f"{summary['stopped']}: {summary['steps']} steps, {summary['elapsed_s']:.0f} s, "
          f"{summary['chars_per_s']:,.0f} chars/s; best validation "
          f"{summary['best_val_bpc']:.3f} bits/char; run saved in {run_dir}")
    if args.distributed:
        print(f"{summary['ranks']} ranks; rank 0 waited {summary['allreduce_wait_s']:.2f} s for "
              f"the gradient sums ({'overlapped with' if not args.no_overlap else 'after'} "
              f"backward)")
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train a character-level language model on a text file",
                       description="Train a char-LM (embedding, LSTM stack, softmax) on FILE, "
                                   "read as bytes by default. Checkpoints: RUN/last, RUN/best.")
    p.add_argument("file", nargs="?", help="the text to train on")
    p.add_argument("--run", help="run directory (default runs/<file name>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN exactly")
    g = p.add_argument_group("model")
    g.add_argument("--layers", dest="num_layers", type=int)
    g.add_argument("--hidden", dest="hidden_size", type=int)
    g.add_argument("--embed", dest="embed_size", type=int)
    g.add_argument("--dropout", type=float)
    g.add_argument("--dtype", choices=DTYPES)
    g = p.add_argument_group("data")
    g.add_argument("--vocab", choices=("bytes", "chars"))
    g.add_argument("--split", type=_split, help="train,val,test fractions (default 0.9,0.05,0.05)")
    g.add_argument("--seq-len", dest="seq_len", type=int, help="BPTT length T (default 100)")
    g.add_argument("--batch", dest="batch_size", type=int, help="streams B (default 32)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=("adam", "rmsprop", "sgd"))
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-schedule", dest="lr_schedule", choices=("epoch", "cosine"),
                   help="cosine (the default): down to 0 at the end of the run; epoch: "
                        "times --lr-decay every epoch from --lr-decay-start on (char-rnn's)")
    g.add_argument("--lr-decay", dest="lr_decay", type=float)
    g.add_argument("--lr-decay-start", dest="lr_decay_start", type=int)
    g.add_argument("--weight-decay", dest="weight_decay", type=float)
    g.add_argument("--clip", type=float, help="max global gradient norm (0: off)")
    g.add_argument("--seed", type=int)
    g.add_argument("--threads", type=int, help="engine threads (default: 2, or 1 on one core)")
    g = p.add_argument_group("when to stop (default: 10 minutes)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", dest="max_steps", type=int)
    g.add_argument("--time", dest="time_budget", type=_duration,
                   help="training time of the whole run, e.g. 600, 10m, 1h")
    g.add_argument("--eval-every", dest="eval_every", type=int)
    g.add_argument("--eval-chars", dest="eval_chars", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("across processes (MPI)")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of mpiexec -n N: the batch's streams "
                        "are shared out and gradients summed, equal to one process on the "
                        "whole batch (needs the mpi extra)")
    g.add_argument("--no-overlap", action="store_true",
                   help="--distributed: send all gradients after backward, not layer by layer "
                        "during it")
    p.set_defaults(func=_user_errors(_train))


def _sample(args):
    from lstm_c.sample import sample_text
    from lstm_c.train import load_model
    model, vocab, _ = load_model(args.run, args.checkpoint)
    if args.prime:
        sys.stdout.write(args.prime)
    sample_text(model, vocab, args.length, prime=args.prime, temperature=args.temperature,
                top_k=args.top_k, top_p=args.top_p, seed=args.seed, stream=sys.stdout)
    sys.stdout.write("\n")
    return 0


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a trained run",
                       description="Generate text from RUN, streamed as it is made.")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", default="best", help="best (default) or last")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", dest="top_k", type=int)
    p.add_argument("--top-p", dest="top_p", type=float)
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--seed", type=int, help="same seed, same text")
    p.set_defaults(func=_user_errors(_sample))


def _eval(args):
    from lstm_c.data import Corpus
    from lstm_c.model import BITS_PER_NAT
    from lstm_c.train import evaluate, load_model
    model, vocab, meta = load_model(args.run, args.checkpoint)
    corpus = Corpus.open(args.file, vocab=vocab, split=(1.0, 0.0, 0.0))
    cfg = meta["train_config"]
    nats, n = evaluate(model, corpus.train, cfg["batch_size"], cfg["seq_len"])
    print(f"{args.file}: {nats:.4f} nats/char, {nats * BITS_PER_NAT:.4f} bits/char "
          f"({n:,} characters)")
    return 0


def _add_eval(sub):
    p = sub.add_parser("eval", help="cross-entropy of a text under a trained run",
                       description="Cross-entropy of FILE under RUN in nats and bits per char.")
    p.add_argument("run", help="run directory")
    p.add_argument("file", help="the text to score")
    p.add_argument("--checkpoint", default="best", help="best (default) or last")
    p.set_defaults(func=_user_errors(_eval))


def _viz(args):
    from lstm_c import cell_report, viz
    from lstm_c.train import load_model
    model, vocab, _ = load_model(args.run, args.checkpoint)
    shown = [viz.parse_cell(spec, model.num_layers, model.hidden_size) for spec in args.cell]
    if args.terminal and not shown:
        raise UsageError("--terminal shows one cell: name it with --cell LAYER:UNIT")
    text = cell_report.read_text(args.file, args.offset, args.chars, vocab.kind)
    out = None if args.terminal else (args.out or os.path.join(args.run, "viz.html"))
    rec, matches, page = cell_report.report(model, vocab, text, out, shown,
                                            source=os.path.basename(args.file),
                                            max_chars=args.chars)
    if args.terminal:
        for layer, unit in shown:
            sys.stdout.write(viz.terminal(rec, layer, unit, colour=sys.stdout.isatty()
                                          or args.colour) + "\n")
        return 0
    print(f"{rec.source}: {len(rec):,} characters, {rec.bits_per_char:.3f} bits/char")
    print("cells that track features of the text:")
    print(cell_report.describe(matches))
    print(f"page: {page}")
    return 0


def _add_viz(sub):
    p = sub.add_parser("viz", help="see what a trained run's cells do on a text",
                       description="Record RUN's model over (the start of) FILE and write "
                                   "one self-contained HTML page: the text coloured by "
                                   "cells, the top-5 next-character guesses, gate "
                                   "saturation, and the cells found to track features of "
                                   "the text (line position, quotes, nesting, ...).")
    p.add_argument("run", help="run directory")
    p.add_argument("file", help="the text to look at")
    p.add_argument("--checkpoint", default="best", help="best (default) or last")
    p.add_argument("--cell", action="append", default=[], metavar="LAYER:UNIT",
                   help="also show this cell (0-based; repeatable)")
    p.add_argument("--chars", type=int, default=5000,
                   help="characters of FILE to record (default 5000)")
    p.add_argument("--offset", type=int, default=0, help="start at this byte of FILE")
    p.add_argument("--out", help="the page (default RUN/viz.html)")
    p.add_argument("--terminal", action="store_true",
                   help="print the text coloured by the --cell cells instead (ANSI colours)")
    p.add_argument("--colour", action="store_true",
                   help="with --terminal: colours even when stdout is not a terminal")
    p.set_defaults(func=_user_errors(_viz))


def _demo(args):
    from lstm_c.demo import run_demo
    run_demo(args.run, seconds=args.time, progress=not args.no_progress)
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="train on Python's own source for 2 minutes, then sample",
                       description="Train a small model on the Python standard library's "
                                   "source (nothing is downloaded), then print a sample.")
    p.add_argument("--run", default="lstm-c-demo", help="run directory (default lstm-c-demo)")
    p.add_argument("--time", type=_duration, default=120.0, help="training time (default 2m)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_user_errors(_demo))


# --------------------------------------------------------------------------- main

_COMMANDS = (_add_demo, _add_train, _add_sample, _add_eval, _add_viz, _add_info, _add_bench)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="lstm-c: a fast LSTM for Python (Cython + BLAS).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    parser.commands = sorted(sub.choices)
    return parser


def main(argv=None):
    """Run the ``lstm-c`` command line; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help/--version (0) or a bad argument (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    args.argv = argv  # what was typed, for pages that must say how to rerun them
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: choose a command: {', '.join(parser.commands)}",
              file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lstm-c info | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
