"""The table and the Markdown page of ``lstm-c bench``.

One table for every timed row: sequence rows (infer, train) in ms, streaming
rows in µs; each time cell carries its unit. The page starts with what is
needed to trust and rerun it: the exact command, the date, the machine, the
versions of everything timed (with the BLAS libraries threadpoolctl finds),
and the GEMM peak the "% of peak" column divides by.
"""
from __future__ import annotations

import platform
import re
import time

from .bench_common import BUSY, cores_available


# --------------------------------------------------------------------------- cells

def _num(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def format_time(r, mode):
    """'12.3 ms' (sequence rows) or '45.6 µs' (stream rows); '-' when not timed."""
    if r is None:
        return "-"
    if mode == "stream":
        return f"{_num(r['median'] * 1e6)} µs"
    return f"{_num(r['median'] * 1e3)} ms"


def _ratio(a, b):
    return f"{a['median'] / b['median']:.2f}" if a and b else "-"


def _check_cell(r):
    c = r["check"]
    mark = ("-" if c["ok"] is None else
            f"ok ({c['against']})" if c["ok"] else
            f"**MISMATCH** {c['worst']} {c['max_rel_err']:.1e} vs {c['against']}")
    if (r.get("others") or 0) > BUSY:
        mark += f"; busy {r['others']:.0%}"
    return mark


def format_table(rows):
    """Markdown table of the timed rows.

    Columns that no row fills are left out: the NumPy reference (when not
    timed), lstm-c frozen and torch's LSTMCell (only streaming rows have
    them), with their ratios, and D (directions) and P (proj_size), shown
    only when a row is bidirectional or projected.
    """
    has_ref = any(r.get("reference") for r in rows)
    has_stream = any(r["mode"] == "stream" for r in rows)
    has_variant = any(r.get("D", 1) != 1 or r.get("P", 0) for r in rows)
    cols = [("mode", lambda r: r["mode"]), ("dtype", lambda r: r["dtype"]),
            *[(k, (lambda k: lambda r: r[k])(k)) for k in ("T", "B", "I", "H", "L")]]
    if has_variant:   # bidirectional (D = 2) and proj_size (P) rows: lstm-c bench --help
        cols += [("D", lambda r: r.get("D", 1)), ("P", lambda r: r.get("P", 0))]
    cols += [("threads", lambda r: r["threads"]),
            ("lstm-c", lambda r: format_time(r["lstm_c"], r["mode"]))]
    if has_stream:
        cols.append(("lstm-c frozen", lambda r: format_time(r.get("lstm_c_frozen"), r["mode"])))
    if has_ref:
        cols.append(("reference", lambda r: format_time(r.get("reference"), r["mode"])))
    cols.append(("torch", lambda r: format_time(r["torch"], r["mode"])))
    if has_stream:
        cols.append(("torch LSTMCell", lambda r: format_time(r.get("torch_cell"), r["mode"])))
    cols += [("BLAS floor", lambda r: format_time(r["floor"], r["mode"])),
             ("torch / lstm-c", lambda r: _ratio(r["torch"], r["lstm_c"]))]
    if has_stream:
        cols += [("torch / lstm-c frozen", lambda r: _ratio(r["torch"], r.get("lstm_c_frozen"))),
                 ("LSTMCell / lstm-c", lambda r: _ratio(r.get("torch_cell"), r["lstm_c"])),
                 ("LSTMCell / lstm-c frozen",
                  lambda r: _ratio(r.get("torch_cell"), r.get("lstm_c_frozen")))]
    if has_ref:
        cols.append(("reference / lstm-c", lambda r: _ratio(r.get("reference"), r["lstm_c"])))
    cols.append(("lstm-c / floor", lambda r: _ratio(r["lstm_c"], r["floor"])))
    if has_stream:
        cols.append(("lstm-c frozen / floor",
                     lambda r: _ratio(r.get("lstm_c_frozen"), r["floor"])))
    cols += [("lstm-c GFLOP/s", lambda r: _gflops(r.get("lstm_c_gflops"))),
             ("torch GFLOP/s", lambda r: _gflops(r.get("torch_gflops"))),
             ("% of peak", lambda r: "-" if r.get("pct_peak") is None
              else f"{r['pct_peak']:.0f}%"),
             ("check", _check_cell)]
    out = ["| " + " | ".join(name for name, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(cell(r)) for _, cell in cols) + " |")
    return "\n".join(out)


def _gflops(v):
    return "-" if v is None else f"{v:.1f}" if v < 10 else f"{v:.0f}"


def format_peaks(peaks):
    """One line: the measured square-GEMM rate per dtype and thread count."""
    if not peaks:
        return "GEMM peak: not measured (no timed rows)."
    parts = [f"{p['dtype']} {p['threads']} thread{'s' if p['threads'] > 1 else ''}: "
             f"**{p['gflops']:.1f} GFLOP/s** (N={p['n']})" for p in peaks.values()]
    return ("GEMM peak (square ?gemm with scipy.linalg.blas, best sample; the '% of peak' "
            "column divides lstm-c's GFLOP/s by it): " + "; ".join(parts) + ".")


# --------------------------------------------------------------------------- page header

def _torch_libraries(torch):
    """'MKL 2024.2, oneDNN v3.12.0' from torch's build configuration (linked statically,
    so threadpoolctl does not list them)."""
    try:
        config = torch.__config__.show()
    except Exception:
        return ""
    found = []
    m = re.search(r"Math Kernel Library Version (\S+)", config)
    if m:
        found.append(f"MKL {m.group(1).split('-')[0]}")
    m = re.search(r"MKL-DNN (v\S+)", config)
    if m:
        found.append(f"oneDNN {m.group(1)}")
    return ", ".join(found)


def header_lines(command, info, torch, resolved=None):
    """The page's first lines: command, date, machine, versions (with the BLAS libraries)."""
    import threadpoolctl
    lines = [f"Command: `{command}`"]
    if resolved and resolved != command:
        lines.append(f"(all options: `{resolved}`)")
    lines += ["", f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
              f"Machine: {info['cpu']}; {cores_available()} cores available to this process "
              f"(os.sched_getaffinity), {info['cpu_count']} logical CPUs; "
              f"{platform.platform()}", ""]
    t = info["torch"]
    versions = [f"python {platform.python_version()}", f"numpy {info['numpy']}",
                f"scipy {info['scipy']}", f"threadpoolctl {threadpoolctl.__version__}",
                f"lstm-c {info['lstm_c']}"]
    if t["importable"]:
        extra = _torch_libraries(torch) if torch is not None else ""
        versions.append(f"torch {t['version']}" + (f" ({extra})" if extra else ""))
    else:
        versions.append("torch: not importable")
    lines.append("Versions: " + ", ".join(versions))
    lines.append("")
    pools = []
    for p in info["threadpools"]:
        who = "lstm-c's engine calls it" if p.get("engine") else f"{p['owner']}'s"
        what = f"{p.get('internal_api')} {p.get('version') or p.get('prefix') or ''}".strip()
        arch = p.get("architecture")
        pools.append(f"{what} ({who}" + (f", {arch}" if arch not in (None, "unknown") else "")
                     + ")")
    lines.append("BLAS and OpenMP libraries (threadpoolctl): "
                 + ("; ".join(pools) if pools else "none found"))
    return lines


def markdown(rows, info, command, notes, peaks, torch, resolved=None, memory_table=None,
             charlm_table=None):
    """The whole ``--md`` page."""
    from .cli import format_info
    out = ["# lstm-c benchmark", "", *header_lines(command, info, torch, resolved), ""]
    if rows:
        out += [format_peaks(peaks), "",
                "Times are medians: ms for infer and train rows, µs for stream rows "
                "(B = T = 1, the state carried between calls). `torch / lstm-c` above 1 means "
                "lstm-c is faster; `lstm-c / floor` is how far lstm-c is from the unavoidable "
                "BLAS calls alone (see `lstm-c bench --help`). `lstm-c frozen` (stream rows) is "
                "the same step on `m.freeze()`: the weights packed once, not on every call. "
                "GFLOP/s count GEMM FLOPs only "
                "(forward 2·T·B·4H·(I+H) per layer, training 3x"
                + ("; rows with D = 2 or P > 0: see the notes below" if any(
                    r.get("D", 1) != 1 or r.get("P", 0) for r in rows) else "") + ").", "",
                format_table(rows), ""]
    if memory_table:
        out += [memory_table, ""]
    if charlm_table:
        out += [charlm_table, ""]
    out += [*notes, "", "Environment (`lstm-c info`):", "", "```", format_info(info), "```", ""]
    return "\n".join(out)
