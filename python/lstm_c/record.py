"""Record what a trained character LM does inside, character by character.

`record(model, vocab, text)` runs the model over a text as one stream (B=1)
and keeps, for every character, every layer's h, c, tanh(c) and the four gate
activations, and the softmax over the next character. This is what the cell
pages and the interpretable-cell search read (`lstm_c.viz`, `lstm_c.cells`).
Nothing here runs during training or sampling.

Memory is bounded by `max_chars` (default 20,000): a recording holds
(7H·L + V) float32 numbers per character, about 15 KB for a 2x256 model with
a byte vocabulary, so 300 MB at the default limit.
"""

import dataclasses

import numpy as np

from lstm_c import _validate as check

MAX_CHARS = 20_000
CHUNK = 1000  # characters per engine call; the state is carried between chunks
GATES = ("input", "forget", "cell", "output")  # torch's order i, f, g, o


def symbol_label(vocab, i):
    """The text of vocabulary id `i` as a str of one character.

    Bytes vocabularies map each byte to the character of the same number
    (Latin-1), so a recording's text has exactly one character per symbol.
    """
    s = vocab.symbols[i]
    return chr(s) if vocab.kind == "bytes" else s


@dataclasses.dataclass
class Recording:
    """A model's internals over a text, one row per character.

    Attributes
    ----------
    text : str
        The recorded characters, one per symbol (bytes as Latin-1).
    ids : int32 array of shape (N,)
    h, c, tanh_c : float32 arrays of shape (L, N, H)
        Each layer's hidden state, cell state and tanh of the cell state after
        reading character n.
    gates : float32 array of shape (L, N, 4, H)
        The gate activations [input, forget, cell, output] (sigmoid, sigmoid,
        tanh, sigmoid) at character n.
    probs : float32 array of shape (N, V)
        The model's distribution over the character that follows character n.
    labels : list of str
        ``labels[v]`` is the character of vocabulary id v.
    nats_per_char : float
        Mean cross-entropy of predicting ``ids[1:]``; ``bits_per_char`` in bits.
    model_config : dict
        ``CharLM.config()`` of the recorded model.
    source : str
        Where the text came from (a file name), for titles.
    """

    text: str
    ids: np.ndarray
    h: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    gates: np.ndarray
    probs: np.ndarray
    labels: list
    nats_per_char: float
    model_config: dict
    source: str = ""

    @property
    def bits_per_char(self):
        return self.nats_per_char / np.log(2)

    @property
    def num_layers(self):
        return self.h.shape[0]

    @property
    def hidden_size(self):
        return self.h.shape[2]

    def __len__(self):
        return len(self.ids)


def record(model, vocab, text, max_chars=MAX_CHARS, source=""):
    """Run `model` over `text` (B=1, from a zero state) and record its internals.

    Parameters
    ----------
    model : lstm_c.model.CharLM
    vocab : lstm_c.data.Vocab
        The model's vocabulary (``lstm_c.train.load_model`` returns both).
    text : str or bytes
        Encoded with `vocab`; a symbol the vocabulary lacks raises ValueError
        naming it.
    max_chars : int
        Refuse longer texts (cut them first): a recording costs about
        ``(7 * H * L + V) * 4`` bytes per character.
    source : str
        A name for the text, shown in titles.

    Returns
    -------
    Recording
    """
    max_chars = check.positive_int("max_chars", max_chars)
    ids = vocab.encode(text)
    N = len(ids)
    if N < 2:
        raise ValueError(f"record: the text needs at least 2 characters, got {N}")
    if N > max_chars:
        raise ValueError(f"record: the text has {N:,} characters, more than max_chars="
                         f"{max_chars:,}; cut it, or raise max_chars (a recording takes "
                         f"about {(7 * model.hidden_size * model.num_layers + model.vocab_size) * 4:,}"
                         f" bytes per character)")
    L, H, V = model.num_layers, model.hidden_size, model.vocab_size
    out = {name: np.empty((L, N, H), np.float32) for name in ("h", "c", "tanh_c")}
    gates = np.empty((L, N, 4, H), np.float32)
    probs = np.empty((N, V), np.float32)
    params = model.parameters()
    W_T = params["head.weight"].T.astype(np.float64)  # the softmax is taken in float64
    b = params["head.bias"]
    state, nll = None, 0.0
    for start in range(0, N, CHUNK):
        chunk = ids[start:start + CHUNK]
        n = len(chunk)
        emb = params["embed.weight"][chunk][:, None, :]            # (n, 1, E)
        y, state, layers = model.lstm.trace(emb, state)
        for k, d in enumerate(layers):
            for name in out:
                out[name][k, start:start + n] = d[name][:, 0]
            gates[k, start:start + n] = d["gates"][:, 0].reshape(n, 4, H)
        z = y[:, 0].astype(np.float64) @ W_T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        probs[start:start + n] = p
        nxt = ids[start + 1:start + n + 1]  # the characters these rows predict
        nll += -np.log(np.maximum(p[np.arange(len(nxt)), nxt], np.finfo(np.float64).tiny)).sum()
    labels = [symbol_label(vocab, i) for i in range(vocab.size)]
    return Recording(text="".join(labels[i] for i in ids), ids=ids, h=out["h"], c=out["c"],
                     tanh_c=out["tanh_c"], gates=gates, probs=probs, labels=labels,
                     nats_per_char=float(nll / (N - 1)), model_config=model.config(),
                     source=str(source))
