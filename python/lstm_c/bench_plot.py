"""``lstm-c bench --plot FILE.png``: lstm-c's speed-up over torch against H, at 1 thread.

One line per workload (dtype, batch, mode; T and I where they differ from
most rows', L when above 1), speed-up = torch's time / lstm-c's time, so above the line at 1.0
lstm-c is faster. Two panels: inference (with the streaming step, against
``nn.LSTM`` solid and ``nn.LSTMCell`` dashed, and the frozen step, ``m.freeze()``,
against ``nn.LSTM`` dotted) and training. matplotlib is imported only here, and
only when a plot is asked for.
"""
from __future__ import annotations

from .cli import UsageError

INSTALL_HINT = "pip install matplotlib (or pip install 'lstm-c[plot]')"


def import_pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a UsageError naming the install."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {INSTALL_HINT}") from None
    return plt


def _label(dtype, mode, B, T, I, L, usual, frozen=False, D=1, P=0):
    """'f32 B=16 train', plus T, I where they differ from the usual row's, L > 1,
    'bidir' (D = 2, bidirectional) and P=.. (proj_size > 0).

    Stream rows are 'f32 stream', or 'f32 stream (frozen)' for the frozen call's series.
    """
    stream = "stream (frozen)" if frozen else "stream"
    parts = [f"f{dtype[-2:]}", stream if mode == "stream" else f"B={B} {mode}"]
    if mode != "stream":
        parts += [f"{name}={value}" for name, value in (("T", T), ("I", I))
                  if value != usual[name]]
    if L > 1:
        parts.append(f"L={L}")
    if D == 2:
        parts.append("bidir")
    if P:
        parts.append(f"P={P}")
    return " ".join(parts)


def _most_common(values):
    values = list(values)
    return max(set(values), key=values.count) if values else None


def speedup_series(rows, threads=1):
    """{(panel, label): [(H, torch / lstm-c)]} per workload, from the rows at ``threads``.

    panel is "train" or "infer" (the streaming step is inference). Stream rows
    give up to three series: lstm-c against nn.LSTM and (one layer) nn.LSTMCell,
    and lstm-c frozen against nn.LSTM ("stream (frozen)", drawn when the row has
    a frozen time).
    """
    rows = [r for r in rows if r["threads"] == threads and r.get("torch") and r.get("lstm_c")]
    sequence_rows = [r for r in rows if r["mode"] != "stream"]
    usual = {name: _most_common(r[name] for r in sequence_rows) for name in ("T", "I")}
    series = {}
    for r in rows:
        panel = "train" if r["mode"] == "train" else "infer"
        label = _label(r["dtype"], r["mode"], r["B"], r["T"], r["I"], r["L"], usual,
                       D=r.get("D", 1), P=r.get("P", 0))
        speedup = r["torch"]["median"] / r["lstm_c"]["median"]
        series.setdefault((panel, label), []).append((r["H"], speedup))
        if r["mode"] == "stream" and r.get("torch_cell"):
            series.setdefault((panel, label + " vs LSTMCell"), []).append(
                (r["H"], r["torch_cell"]["median"] / r["lstm_c"]["median"]))
        if r["mode"] == "stream" and r.get("lstm_c_frozen"):
            frozen = _label(r["dtype"], r["mode"], r["B"], r["T"], r["I"], r["L"], usual,
                            frozen=True)
            series.setdefault((panel, frozen), []).append(
                (r["H"], r["torch"]["median"] / r["lstm_c_frozen"]["median"]))
    return {k: sorted(v) for k, v in series.items()}


def plot_speedup(rows, path, title=None):
    """Write the PNG; returns the number of series drawn. Raises UsageError when none can be."""
    series = speedup_series(rows)
    if not series:
        raise UsageError("--plot: no 1-thread row has both a torch and an lstm-c time")
    plt = import_pyplot()
    from matplotlib.ticker import FormatStrFormatter, NullFormatter
    fig, axes = plt.subplots(1, 2, figsize=(14, 8), sharey=True)
    panels = {"infer": axes[0], "train": axes[1]}
    all_h = sorted({h for points in series.values() for h, _ in points})
    for ax, name in zip(axes, ("inference and streaming step", "training step (fwd + bwd)")):
        ax.set_title(name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xlabel("hidden size H")
        ax.set_xticks(all_h)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("speed-up over torch (torch time / lstm-c time), 1 thread")
    # 20 distinct colours: the anchors grid has up to 17 workloads per panel
    colours = plt.get_cmap("tab20").colors
    drawn = {"infer": 0, "train": 0}
    for (panel, label), points in series.items():
        hs, ratios = zip(*points)
        style = ("--" if label.endswith("LSTMCell") else ":" if "(frozen)" in label else "-")
        panels[panel].plot(hs, ratios, color=colours[drawn[panel] % len(colours)],
                           marker="s" if label.startswith("f64") else "o",
                           linestyle=style, label=label)
        drawn[panel] += 1
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
                      frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(series)
