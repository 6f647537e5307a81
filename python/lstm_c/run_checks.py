"""What a training run's checkpoint must hold before a model is built from it.

A checkpoint's config.json sizes everything a loaded model allocates, and a
resume reads much more from it (step, history, optimizer and data state).
These checks tie every size to an array the checkpoint holds, so what loading
allocates is bounded by the file's own size whoever wrote it, and they refuse
anything else with a ValueError naming the file (train.py calls them).
"""

import math

import numpy as np

from lstm_c import _validate as check
from lstm_c import data

_SIZES = ("vocab_size", "hidden_size", "num_layers", "embed_size")
_MODEL_KEYS = frozenset(_SIZES + ("dropout", "dtype", "seed", "backend"))


def _shape(arr):
    return None if arr is None else list(arr.shape)


def check_run(where, meta, arrays):
    """A run checkpoint's vocabulary and model_config, checked against its weights.

    Everything a loaded model allocates is sized by config.json; tying each
    size to an array the checkpoint holds bounds that by the checkpoint's own
    size, whoever wrote it. Anything else is a ValueError naming `where`.
    """
    def bad(problem):
        return ValueError(f"{where}: {problem}")

    try:
        vocab = data.Vocab.from_json(meta.get("vocab"))
    except ValueError as e:
        raise bad(e) from None
    mc = meta.get("model_config")
    if not isinstance(mc, dict) or not set(_SIZES) <= set(mc) <= _MODEL_KEYS:
        raise bad(f"\"model_config\" must be an object with the keys {list(_SIZES)} "
                  f"(and optionally {sorted(_MODEL_KEYS - set(_SIZES))})")
    V, H, L, E = (mc[k] for k in ("vocab_size", "hidden_size", "num_layers", "embed_size"))
    emb, head = arrays.get("model:embed.weight"), arrays.get("model:head.weight")
    layers = sum(1 for k in arrays if k.startswith("model:lstm.weight_ih_l"))
    if emb is None or head is None or emb.shape != (V, E) or head.shape != (V, H) or layers != L:
        raise bad(f"model_config (vocab_size {V!r}, hidden_size {H!r}, num_layers {L!r}, "
                  f"embed_size {E!r}) does not match the weights (embed.weight {_shape(emb)}, "
                  f"head.weight {_shape(head)}, {layers} LSTM layers)")
    if V != vocab.size:
        raise bad(f"the model's vocabulary size ({V!r}) does not match the saved vocabulary "
                  f"({vocab.size})")
    tc = meta.get("train_config")
    if not isinstance(tc, dict):
        raise bad("\"train_config\" must be an object")
    for k in ("batch_size", "seq_len"):  # `lstm-c eval` reads these
        try:
            check.positive_int(f"train_config {k}", tc.get(k))
        except (TypeError, ValueError) as e:
            raise bad(e) from None
    return vocab, mc


def _finite(value, low=-math.inf):
    """Whether value is a JSON number (not a bool), finite and >= low."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and value >= low
    except OverflowError:
        return False


def check_resume(where, meta, cfg, mc, arrays):
    """What the training loop reads from a checkpoint beyond the model: refused if not as saved."""
    def bad(problem):
        return ValueError(f"{where}: {problem}")

    sizes = (cfg.hidden_size, cfg.num_layers, cfg.embed_size)
    if sizes != (mc["hidden_size"], mc["num_layers"], mc["embed_size"]):
        raise bad(f"train_config (hidden_size, num_layers, embed_size) {sizes} does not match "
                  f"model_config's")
    state, dtype = (cfg.num_layers, cfg.batch_size, cfg.hidden_size), np.dtype(cfg.dtype)
    for k in ("state:h", "state:c"):
        if k not in arrays or arrays[k].shape != state or arrays[k].dtype != dtype:
            got = None if k not in arrays else f"{arrays[k].dtype} {_shape(arrays[k])}"
            raise bad(f"array {k!r} is {got}, expected {dtype} {list(state)} "
                      f"(num_layers, batch_size, hidden_size)")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise bad(f"\"step\" must be an int >= 0, got {step!r}")
    if not _finite(meta.get("elapsed"), 0):
        raise bad(f"\"elapsed\" must be a number of seconds >= 0, got {meta.get('elapsed')!r}")
    if "best_val" not in meta or meta["best_val"] is not None and not _finite(meta["best_val"]):
        raise bad(f"\"best_val\" must be a number or null, got {meta.get('best_val')!r}")
    history = meta.get("history")
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and _finite(h.get("val_bpc")) for h in history):
        raise bad("\"history\" must be a list of objects with a number \"val_bpc\"")
    if not isinstance(meta.get("data_path"), str) or not meta["data_path"]:
        raise bad(f"\"data_path\" must be a non-empty string, got {meta.get('data_path')!r}")
    for k in ("optim", "batches", "rng"):
        if not isinstance(meta.get(k), dict):
            raise bad(f"\"{k}\" must be an object, got {type(meta.get(k)).__name__}")
