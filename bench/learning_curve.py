"""Plot a training run's learning curve (validation and training bits/char against time).

    python bench/learning_curve.py RUN [--out RUN/learning_curve.png] [--baseline NATS LABEL]
                                       [--also RUN2 LABEL]

Reads RUN/last/config.json (the history every validation appends) and writes a
PNG; needs matplotlib (pip install matplotlib), which lstm-c itself does not.
"""

import argparse
import math
import sys

from lstm_c import checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--out", help="PNG path (default RUN/learning_curve.png)")
    p.add_argument("--baseline", nargs=2, action="append", default=[], metavar=("NATS", "LABEL"),
                   help="a horizontal reference line, in nats/char (repeatable)")
    p.add_argument("--also", nargs=2, action="append", default=[], metavar=("RUN", "LABEL"),
                   help="another run's validation curve, for comparison (repeatable)")
    args = p.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("learning_curve.py needs matplotlib: pip install matplotlib")
    _, meta = checkpoint.load(args.run, "last")
    hist = meta["history"]
    if not hist:
        sys.exit(f"{args.run}: no validation recorded yet")
    minutes = [h["elapsed_s"] / 60 for h in hist]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(minutes, [h["train_bpc"] for h in hist], label="training (last 20 batches)",
            color="#999999")
    ax.plot(minutes, [h["val_bpc"] for h in hist], label="validation", color="#1f5fa8", lw=2)
    for other, label in args.also:
        h2 = checkpoint.load(other, "last")[1]["history"]
        ax.plot([h["elapsed_s"] / 60 for h in h2], [h["val_bpc"] for h in h2],
                label=f"validation, {label}", color="#7fa7d6", lw=1.5, ls=":")
    for nats, label in args.baseline:
        ax.axhline(float(nats) / math.log(2), ls="--", lw=1, color="#b03030")
        ax.text(minutes[-1], float(nats) / math.log(2), f" {label}", va="bottom", ha="right",
                fontsize=8, color="#b03030")
    cfg = meta["train_config"]
    ax.set_title(f"{meta['data_path'].rsplit('/', 1)[-1]}: {cfg['num_layers']}x"
                 f"{cfg['hidden_size']} LSTM, B={cfg['batch_size']}, T={cfg['seq_len']}, "
                 f"dropout {cfg['dropout']:g}, {cfg['optimizer']} {cfg['lr']:g} "
                 f"({cfg.get('lr_schedule', 'epoch')})", fontsize=10)
    ax.set_xlabel("training time (minutes, 2-core machine)")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = args.out or f"{args.run}/learning_curve.png"
    fig.savefig(out)
    print(out)


if __name__ == "__main__":
    main()
