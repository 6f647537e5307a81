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


# --------------------------------------------------------------------------- main

_COMMANDS = (_add_info, _add_bench)


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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help/--version (0) or a bad argument (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
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
