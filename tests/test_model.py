"""CharLM (lstm_c.model): gradients, learning, the step() path, state and config, bad input, torch.

The whole model (embedding, LSTM stack, linear head, softmax cross-entropy)
is checked in float64 against central finite differences for every entry of
every parameter, through a carried non-zero state; then the two LSTM
backends against each other, step() against the whole-sequence path, and,
when torch is installed, loss and every gradient against the same model
built from torch.nn modules.
"""

import json

import numpy as np
import pytest

from lstm_c.model import BITS_PER_NAT, CharLM
from lstm_c.optim import Adam, clip_grad_norm

BACKENDS = ("cython", "numpy")
DTYPES = (np.float64, np.float32)
# Relative error max|a - b| / max|b|, per comparison and dtype.
TOL = {"backends": {np.float64: 1e-12, np.float32: 1e-5},
       "torch": {np.float64: 1e-10, np.float32: 1e-4},
       "step": {np.float64: 1e-12, np.float32: 1e-5}}

TINY = dict(vocab_size=5, embed_size=3, hidden_size=4, num_layers=2)   # T=4, B=2 below
TEXT = b"the quick brown fox jumps over the lazy dog. " * 50


def _batch(rng, V, T, B):
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def _state(rng, L, B, H, dtype):
    # Non-zero and h0 != c0, so a wrong use of the carried state shows.
    return ((0.5 * rng.standard_normal((L, B, H))).astype(dtype),
            (0.8 * rng.standard_normal((L, B, H))).astype(dtype))


# ----------------------------------------------------------------- (a) gradients


@pytest.mark.parametrize("dropout", (0.0, 0.4))
@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_model_gradient_matches_finite_differences(backend, dropout):
    """Every entry of every parameter, float64, central differences, carried state.

    With dropout every forward replays the same masks (the generators are
    rewound), so the check covers backpropagation through them too.
    """
    rng = np.random.default_rng(1)
    m = CharLM(**TINY, dropout=dropout, dtype=np.float64, seed=3, backend=backend)
    masks = m.rng_state()
    T, B, V = 4, 2, TINY["vocab_size"]
    x, y = _batch(rng, V, T, B)
    x[0, 0] = x[2, 1] = x[3, 0] = 1  # a repeated id: its embedding gradient sums over positions
    state = _state(rng, TINY["num_layers"], B, TINY["hidden_size"], np.float64)
    m.zero_grad()
    m.forward(x, y, state)
    m.backward()

    def loss():
        m.set_rng_state(masks)
        return m.forward(x, y, state, grad=False)[0]

    assert (loss() != m.forward(x, y, state, grad=False)[0]) == (dropout > 0)
    eps = 1e-6
    for name, p in m.parameters().items():
        numeric = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            plus = loss()
            p[idx] = old - eps
            minus = loss()
            p[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        analytic = m.grads[name]
        err = np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12)
        assert err < 1e-6, f"{name}: relative error {err:.3g} against finite differences"


@pytest.mark.parametrize("dtype", DTYPES)
def test_cython_and_numpy_backends_agree(dtype, record_error):
    rng = np.random.default_rng(2)
    T, B, V, H, L = 7, 3, 11, 6, 2
    x, y = _batch(rng, V, T, B)
    state = _state(rng, L, B, H, dtype)
    results = {}
    for backend in BACKENDS:
        m = CharLM(V, H, L, embed_size=5, dtype=dtype, seed=4, backend=backend)
        loss, (h, c) = m.forward(x, y, state)
        m.backward()
        results[backend] = (loss, h, c, {k: g.copy() for k, g in m.grads.items()})
    (l1, h1, c1, g1), (l2, h2, c2, g2) = results["cython"], results["numpy"]
    tol = TOL["backends"][dtype]
    assert abs(l1 - l2) <= tol * abs(l2)
    for what, a, b in [("h_n", h1, h2), ("c_n", c1, c2)] + [(k, g1[k], g2[k]) for k in g2]:
        err = record_error("CharLM cython vs numpy", dtype, a, b, what)
        assert err <= tol, f"{what}: relative error {err:.3g}"


def test_backward_adds_to_the_grads_until_zero_grad():
    rng = np.random.default_rng(5)
    m = CharLM(7, 5, 2, 4, dtype=np.float64, seed=0)
    x, y = _batch(rng, 7, 3, 2)
    m.forward(x, y)
    m.backward()
    once = {k: g.copy() for k, g in m.grads.items()}
    m.backward()  # the same forward again: everything doubles
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-13, atol=1e-300, err_msg=k)
    m.zero_grad()
    assert all(not g.any() for g in m.grads.values())


def test_an_evaluation_forward_between_forward_and_backward_changes_nothing():
    rng = np.random.default_rng(6)
    m = CharLM(7, 5, 2, 4, dtype=np.float64, seed=0)
    x, y = _batch(rng, 7, 3, 2)
    x2, y2 = _batch(rng, 7, 3, 2)
    m.forward(x, y)
    m.backward()
    want = {k: g.copy() for k, g in m.grads.items()}
    m.zero_grad()
    m.forward(x, y)
    m.forward(x2, y2, grad=False)
    m.logits(x2)
    m.step(x2[0], m.init_state(2))
    m.backward()
    for k, g in m.grads.items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)


def test_changing_the_ids_after_forward_does_not_change_the_gradients():
    rng = np.random.default_rng(7)
    m = CharLM(7, 5, 1, 4, dtype=np.float64, seed=0)
    x, y = _batch(rng, 7, 3, 2)
    m.forward(x, y)
    m.backward()
    want = {k: g.copy() for k, g in m.grads.items()}
    m.zero_grad()
    m.forward(x, y)
    x[...] = 0
    y[...] = 0
    m.backward()
    for k, g in m.grads.items():
        np.testing.assert_array_equal(g, want[k], err_msg=k)


def test_backward_before_forward_is_refused():
    with pytest.raises(ValueError, match="needs a forward"):
        CharLM(5, 4, 1, 3).backward()


# ----------------------------------------------------------------- (b) learning


def test_learns_a_repetitive_text():
    """Truncated BPTT with carried state and Adam: < 0.3 nats/char within 300 steps."""
    symbols = sorted(set(TEXT))
    lut = np.zeros(256, np.int32)
    lut[symbols] = np.arange(len(symbols))
    ids = lut[np.frombuffer(TEXT, np.uint8)]
    B, T = 8, 25
    n = (len(ids) - 1) // B
    X, Y = ids[:n * B].reshape(B, n).T, ids[1:n * B + 1].reshape(B, n).T
    m = CharLM(len(symbols), hidden_size=32, num_layers=2, embed_size=16, seed=0)
    opt = Adam(m.parameters(), lr=1e-2)
    state, pos, losses = m.init_state(B), 0, []
    for _ in range(300):
        if pos + T > n:
            pos, state = 0, m.init_state(B)
        m.zero_grad()
        loss, state = m.forward(X[pos:pos + T], Y[pos:pos + T], state)
        m.backward()
        clip_grad_norm(m.grads, 5.0)
        opt.step(m.grads)
        losses.append(loss)
        pos += T
        if len(losses) >= 10 and np.mean(losses[-10:]) < 0.1:
            break
    assert losses[0] > 2.5  # about ln(V) = 3.3 at the start
    assert np.mean(losses[-10:]) < 0.3, f"mean of the last 10 losses {np.mean(losses[-10:]):.3f}"
    # Greedy decoding with step() now continues the sentence.
    m.eval()
    state = m.init_state(1)
    for i in lut[np.frombuffer(b"the quick brown ", np.uint8)]:
        logits, state = m.step(np.array([i]), state)
    out = []
    for _ in range(12):
        i = int(np.argmax(logits[0]))
        out.append(symbols[i])
        logits, state = m.step(np.array([i]), state)
    assert bytes(out) == b"fox jumps ov"


def test_bits_per_nat():
    assert BITS_PER_NAT == pytest.approx(1 / np.log(2))


# ----------------------------------------------------------------- (c) step()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_step_equals_the_whole_sequence(dtype, backend, record_error):
    rng = np.random.default_rng(8)
    T, B, V, H, L = 6, 3, 9, 7, 2
    m = CharLM(V, H, L, embed_size=4, dropout=0.3, dtype=dtype, seed=1, backend=backend).eval()
    x, y = _batch(rng, V, T, B)
    state0 = _state(rng, L, B, H, dtype)
    want_logits, (want_h, want_c) = m.logits(x, state0)
    loss, (fh, fc) = m.forward(x, y, state0, grad=False)
    state = state0
    tol = TOL["step"][dtype]
    for t in range(T):
        logits, state = m.step(x[t], state)
        assert logits.shape == (B, V) and logits.dtype == dtype
        err = record_error("CharLM step vs sequence", dtype, logits, want_logits[t], f"t={t}")
        assert err <= tol, f"logits at t={t}: relative error {err:.3g}"
    for what, got, want in (("h", state[0], want_h), ("c", state[1], want_c),
                            ("h (forward)", state[0], fh), ("c (forward)", state[1], fc)):
        err = record_error("CharLM step vs sequence", dtype, got, want, what)
        assert err <= tol, f"{what}: relative error {err:.3g}"
    # forward's loss is the cross-entropy of these logits
    z = want_logits.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, y[..., None], -1).mean()
    assert loss == pytest.approx(ce, rel=10 * tol)
    # the states returned are the caller's own: the next step leaves them alone
    h_prev, c_prev = state[0].copy(), state[1].copy()
    _, state2 = m.step(x[0], state)
    np.testing.assert_array_equal(state[0], h_prev)
    np.testing.assert_array_equal(state[1], c_prev)
    assert not np.shares_memory(state2[0], state[0]) and not np.shares_memory(state2[1], state[1])


def test_step_does_not_modify_the_given_state_and_follows_weight_updates():
    rng = np.random.default_rng(9)
    m = CharLM(6, 5, 2, 3, dtype=np.float64, seed=2)
    state = _state(rng, 2, 1, 5, np.float64)
    before = (state[0].copy(), state[1].copy())
    logits, _ = m.step(np.array([2]), state)
    np.testing.assert_array_equal(state[0], before[0])
    np.testing.assert_array_equal(state[1], before[1])
    # parameters changed in place (as an optimizer does) are seen by the next step
    m.parameters()["lstm.bias_hh_l1"] += 0.5
    m.parameters()["head.bias"] -= 1.0
    logits2, _ = m.step(np.array([2]), state)
    want, _ = m.logits(np.array([[2]]), state)
    np.testing.assert_allclose(logits2, want[0], rtol=1e-12)
    assert not np.allclose(logits, logits2)


def test_step_batch_size_can_change():
    m = CharLM(6, 5, 2, 3, dtype=np.float64, seed=2)
    for B in (1, 4, 1, 2):
        logits, (h, c) = m.step(np.arange(B) % 6, m.init_state(B))
        assert logits.shape == (B, 6) and h.shape == c.shape == (2, B, 5)


def test_forward_state_is_the_callers_copy():
    rng = np.random.default_rng(10)
    m = CharLM(6, 5, 2, 3, dtype=np.float64, seed=2)
    x, y = _batch(rng, 6, 4, 2)
    _, (h, c) = m.forward(x, y)
    keep = h.copy(), c.copy()
    m.forward(x, y, (h, c))
    m.backward()
    np.testing.assert_array_equal(h, keep[0])
    np.testing.assert_array_equal(c, keep[1])
    h[...] = 0  # writable, and changing it changes nothing inside
    m.backward()


def test_eval_turns_dropout_off_and_train_back_on():
    rng = np.random.default_rng(11)
    m = CharLM(6, 8, 2, 3, dropout=0.5, dtype=np.float64, seed=2)
    x, y = _batch(rng, 6, 5, 3)
    a, _ = m.forward(x, y, grad=False)
    b, _ = m.forward(x, y, grad=False)
    assert a != b  # fresh masks each call
    m.eval()
    assert not m.training and not m.lstm.training
    c, _ = m.forward(x, y, grad=False)
    d, _ = m.forward(x, y, grad=False)
    assert c == d
    assert m.train() is m and m.training and m.lstm.training


# ----------------------------------------------------------------- (d) state, config, bad input


def test_parameter_names_and_shapes():
    m = CharLM(**TINY)
    V, E, H = TINY["vocab_size"], TINY["embed_size"], TINY["hidden_size"]
    want = {"embed.weight": (V, E), "head.weight": (V, H), "head.bias": (V,)}
    for k in range(TINY["num_layers"]):
        want.update({f"lstm.weight_ih_l{k}": (4 * H, E if k == 0 else H),
                     f"lstm.weight_hh_l{k}": (4 * H, H),
                     f"lstm.bias_ih_l{k}": (4 * H,), f"lstm.bias_hh_l{k}": (4 * H,)})
    assert {k: p.shape for k, p in m.parameters().items()} == want
    assert {k: g.shape for k, g in m.grads.items()} == want
    assert all(p.dtype == np.float32 for p in m.parameters().values())
    # the LSTM's arrays are shared, not copied
    for k, p in m.lstm.parameters().items():
        assert m.parameters()["lstm." + k] is p
        assert m.grads["lstm." + k] is m.lstm.grads[k]


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_and_config_round_trip(dtype):
    rng = np.random.default_rng(12)
    m = CharLM(9, 6, 2, 4, dropout=0.25, dtype=dtype, seed=5, backend="numpy")
    cfg = json.loads(json.dumps(m.config()))
    m2 = CharLM(**cfg)
    assert m2.config() == m.config()
    sd = m.state_dict()
    for p in sd.values():
        p += 1.0  # a copy: changing it leaves the model alone
    assert not np.array_equal(sd["head.bias"], m.parameters()["head.bias"])
    m2 = CharLM(**{**cfg, "seed": 99})
    m2.load_state_dict(m.state_dict())
    for k, p in m.state_dict().items():
        np.testing.assert_array_equal(m2.parameters()[k], p)
    m.eval()
    m2.eval()
    x, y = _batch(rng, 9, 5, 2)
    assert m.forward(x, y)[0] == m2.forward(x, y)[0]


def test_seed_makes_the_init_reproducible():
    a, b, c = CharLM(7, 5, seed=1), CharLM(7, 5, seed=1), CharLM(7, 5, seed=2)
    for k, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[k])
    assert not np.array_equal(a.parameters()["embed.weight"], c.parameters()["embed.weight"])
    assert not np.array_equal(a.parameters()["head.weight"], c.parameters()["head.weight"])


def test_failed_load_state_dict_changes_nothing():
    m = CharLM(5, 4, 1, 3, seed=0)
    before = m.state_dict()
    bad = m.state_dict()
    for k in bad:
        bad[k] = bad[k] + 1
    bad["head.bias"][0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        m.load_state_dict(bad)
    missing = m.state_dict()
    del missing["head.bias"]
    with pytest.raises(ValueError, match="missing \\['head.bias'\\]"):
        m.load_state_dict(missing)
    wrong = m.state_dict()
    wrong["embed.weight"] = np.zeros((5, 4))
    with pytest.raises(ValueError, match="embed.weight.*shape"):
        m.load_state_dict(wrong)
    for k, p in m.parameters().items():
        np.testing.assert_array_equal(p, before[k])


def test_init_state():
    h, c = CharLM(5, 4, 3, 2).init_state(6)
    assert h.shape == c.shape == (3, 6, 4) and not h.any() and not c.any()
    assert not np.shares_memory(h, c)


_M = dict(vocab_size=5, hidden_size=4, num_layers=2, embed_size=3)
_X = np.zeros((3, 2), np.int64)


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: m.forward(np.array([[0, 5]] * 3), _X), ValueError,
     r"x: ids must be in \[0, 5\).*got 5"),
    (lambda m: m.forward(_X, np.full((3, 2), -1)), ValueError,
     r"y: ids must be in \[0, 5\).*got -1"),
    (lambda m: m.forward(_X.astype(float), _X), TypeError, "x: expected an integer array.*float64"),
    (lambda m: m.forward(_X, _X.astype(bool)), TypeError, "y: expected an integer array.*bool"),
    (lambda m: m.forward(_X[0], _X[0]), ValueError, r"x: expected a 2-D array \(T, B\).*1-D"),
    (lambda m: m.forward(_X[None], _X[None]), ValueError, "x: expected a 2-D array.*3-D"),
    (lambda m: m.forward(_X, _X[:2]), ValueError, r"y: expected the shape of x \(3, 2\).*\(2, 2\)"),
    (lambda m: m.forward(_X, _X.T), ValueError, "y: expected the shape of x"),
    (lambda m: m.forward(np.zeros((0, 2), int), np.zeros((0, 2), int)), ValueError,
     "at least one id"),
    (lambda m: m.forward(_X, _X, m.init_state(3)), ValueError,
     r"state h: expected shape \(2, 2, 4\)"),
    (lambda m: m.forward(_X, _X, m.init_state(2)[0]), TypeError, "state: expected a pair"),
    (lambda m: m.forward(_X, _X, grad="yes"), TypeError, "grad must be a bool"),
    (lambda m: m.step(np.array([7]), m.init_state(1)), ValueError, r"ids: ids must be in \[0, 5\)"),
    (lambda m: m.step(np.array([1.0]), m.init_state(1)), TypeError,
     "ids: expected an integer array"),
    (lambda m: m.step(np.array([[1]]), m.init_state(1)), ValueError,
     r"ids: expected a 1-D array \(B,\)"),
    (lambda m: m.step(np.array([1, 2]), m.init_state(1)), ValueError,
     r"state h: expected shape \(2, 2, 4\)"),
    (lambda m: m.init_state(0), ValueError, "batch_size must be a positive int"),
    (lambda m: CharLM(0), ValueError, "vocab_size must be a positive int"),
    (lambda m: CharLM(5.0), TypeError, "vocab_size must be a positive int"),
    (lambda m: CharLM(5, dropout=1.0), ValueError, "dropout"),
    (lambda m: CharLM(5, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (lambda m: CharLM(5, backend="gpu"), ValueError, "backend must be one of"),
    (lambda m: CharLM(5, seed=1.5), TypeError, "seed must be an int"),
    (lambda m: m.load_state_dict([1, 2]), TypeError, "expected a mapping"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, match):
    m = CharLM(**_M, seed=0)
    with pytest.raises(exc, match=match):
        call(m)


def test_ids_of_any_integer_dtype_are_accepted():
    rng = np.random.default_rng(13)
    m = CharLM(**_M, dtype=np.float64, seed=0)
    x, y = _batch(rng, 5, 4, 2)
    want, _ = m.forward(x, y, grad=False)
    for dt in (np.uint8, np.int16, np.int32, np.uint64):
        assert m.forward(x.astype(dt), y.astype(dt), grad=False)[0] == want
    assert m.forward(x.T.copy().T, y.tolist(), grad=False)[0] == want  # non-contiguous, lists


# ----------------------------------------------------------------- (e) against torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_and_gradients_match_torch(dtype, record_error):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    rng = np.random.default_rng(14)
    T, B, V, E, H, L = 9, 4, 13, 5, 8, 2
    m = CharLM(V, H, L, E, dtype=dtype, seed=6)
    x, y = _batch(rng, V, T, B)
    state = _state(rng, L, B, H, dtype)
    loss, (h_n, c_n) = m.forward(x, y, state)
    m.backward()

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embed = torch.nn.Embedding(V, E, dtype=tdtype)
        lstm = torch.nn.LSTM(E, H, L, dtype=tdtype)
        head = torch.nn.Linear(H, V, dtype=tdtype)
        modules = {"embed": embed, "lstm": lstm, "head": head}
        sd = m.state_dict()
        for prefix, mod in modules.items():
            mod.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in sd.items()
                                 if k.split(".", 1)[0] == prefix})
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        out, (th, tc) = lstm(embed(xt), tuple(torch.from_numpy(s) for s in state))
        tloss = F.cross_entropy(head(out).reshape(T * B, V), yt.reshape(T * B))
        tloss.backward()
    finally:
        torch.set_num_threads(n)

    tol = TOL["torch"][dtype]
    assert abs(loss - tloss.item()) <= tol * abs(tloss.item())
    want = {"h_n": th, "c_n": tc}
    got = {"h_n": h_n, "c_n": c_n}
    for prefix, mod in modules.items():
        for k, p in mod.named_parameters():
            want[f"{prefix}.{k}"] = p.grad
            got[f"{prefix}.{k}"] = m.grads[f"{prefix}.{k}"]
    assert set(got) == set(m.grads) | {"h_n", "c_n"}
    for k, theirs in want.items():
        err = record_error("CharLM vs torch", dtype, got[k], theirs.detach().numpy(), k)
        assert err <= tol, f"{k}: relative error {err:.3g} > {tol}"
