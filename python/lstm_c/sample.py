"""Generate text from a trained character LM, one symbol at a time.

`generate` yields ids; `sample_text` decodes them (bytes vocabularies through
an incremental UTF-8 decoder, so a character split over two bytes is printed
whole) and can stream each piece to a file as it is made. The same seed gives
the same text.
"""

import codecs

import numpy as np

from lstm_c import _validate as check


def next_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """Probabilities over the vocabulary from one row of logits.

    Parameters
    ----------
    logits : array of shape (V,)
    temperature : float > 0
        Below 1 sharpens the distribution, above 1 flattens it.
    top_k : int or None
        Keep only the k most likely symbols.
    top_p : float in (0, 1] or None
        Keep the smallest set of most likely symbols whose probability reaches p
        (nucleus sampling).

    Returns
    -------
    p : array of shape (V,), float64, summing to 1
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if top_k is not None and top_k < p.size:
        cut = np.partition(p, -top_k)[-top_k]
        p[p < cut] = 0.0
    if top_p is not None and top_p < 1.0:
        order = np.argsort(p)[::-1]
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
        mask = np.zeros(p.size, bool)
        mask[keep] = True
        p[~mask] = 0.0
    return p / p.sum()


def check_sampling_options(length, temperature, top_k, top_p):
    length = int(length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if top_k is not None:
        check.positive_int("top_k", top_k)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return length


def generate(model, length, *, prime_ids=(), temperature=1.0, top_k=None, top_p=None, seed=None):
    """Yield `length` new ids, each drawn from the model's next-symbol distribution.

    The priming ids are fed through the model first, from a zero state, and
    not yielded; the first new id is drawn from the prediction after the last
    of them. With no priming the first input is vocabulary id 0 (for a text
    file's byte vocabulary, usually the newline: its smallest byte).
    """
    length = check_sampling_options(length, temperature, top_k, top_p)
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        state = model.init_state(1)
        frozen = model.lstm.freeze()  # the weights packed once for all the steps
        prime_ids = list(prime_ids) or [0]
        for i in prime_ids:
            logits, state = model.step(np.array([i]), state, frozen)
        for _ in range(length):
            p = next_distribution(logits[0], temperature, top_k, top_p)
            # inverse CDF: one uniform draw per symbol, reproducible from the seed
            i = min(int(np.searchsorted(np.cumsum(p), rng.random(), side="right")), p.size - 1)
            yield i
            logits, state = model.step(np.array([i]), state, frozen)
    finally:
        model.train(was_training)


def sample_text(model, vocab, length, *, prime="", temperature=1.0, top_k=None, top_p=None,
                seed=None, stream=None):
    """Generate `length` symbols and return them decoded (prime not included).

    stream : a text file (e.g. sys.stdout) to write each piece to as it comes.
    """
    prime_ids = vocab.encode(prime) if prime else ()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if vocab.kind == "bytes" else None
    pieces = []
    for i in generate(model, length, prime_ids=prime_ids, temperature=temperature,
                      top_k=top_k, top_p=top_p, seed=seed):
        piece = vocab.decode([i])
        if decoder is not None:
            piece = decoder.decode(piece)
        pieces.append(piece)
        if stream is not None and piece:
            stream.write(piece)
            stream.flush()
    if decoder is not None:
        tail = decoder.decode(b"", final=True)
        pieces.append(tail)
        if stream is not None and tail:
            stream.write(tail)
            stream.flush()
    return "".join(pieces)
