"""Optimizers, gradient clipping and the lr schedule (lstm_c.optim).

Each optimizer runs 10 steps on the same parameters and gradients as its
torch.optim counterpart (when torch is installed) and must end at the same
parameters; state dicts must resume bit for bit; updates must be in place
and keep the parameters' dtype.
"""

import io
import json

import numpy as np
import pytest

from lstm_c import optim
from lstm_c.optim import (SGD, Adam, RMSprop, clip_grad_norm, cosine_lr, decayed_lr,
                         make_optimizer)

SHAPES = {"embed.weight": (7, 3), "lstm.weight_ih_l0": (8, 3), "head.bias": (7,)}
DTYPES = (np.float64, np.float32)
TOL = {np.float64: 1e-12, np.float32: 1e-5}  # relative to max|torch|, after 10 steps

# (our class, our kwargs, torch class name, torch kwargs)
CONFIGS = {
    "adam": (Adam, {}, "Adam", {"lr": 2e-3}),
    "adam-wd-betas-eps": (Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                          "Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "rmsprop": (RMSprop, {}, "RMSprop", dict(lr=2e-3, alpha=0.95, eps=1e-8)),
    "rmsprop-wd": (RMSprop, dict(lr=1e-2, alpha=0.9, eps=1e-4, weight_decay=0.05),
                   "RMSprop", dict(lr=1e-2, alpha=0.9, eps=1e-4, weight_decay=0.05)),
    "sgd-momentum": (SGD, {}, "SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-nesterov-wd": (SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                        "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "sgd-plain": (SGD, dict(lr=0.3, momentum=0.0), "SGD", dict(lr=0.3, momentum=0.0)),
}


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def _grads(dtype, n, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(n)]


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ----------------------------------------------------------------- against torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_torch_optim_after_10_steps(config, dtype):
    torch = pytest.importorskip("torch")
    cls, kw, tname, tkw = CONFIGS[config]
    params = _params(dtype)
    tparams = {k: torch.tensor(p.copy(), requires_grad=True) for k, p in params.items()}
    opt = cls(params, **kw)
    topt = getattr(torch.optim, tname)(list(tparams.values()), foreach=False, **tkw)
    for i, grads in enumerate(_grads(dtype, 10)):
        if i == 6:  # a schedule changing lr between steps
            opt.lr = opt.lr * 0.5
            for group in topt.param_groups:
                group["lr"] *= 0.5
        opt.step(grads)
        for k, t in tparams.items():
            t.grad = torch.from_numpy(grads[k].copy())
        topt.step()
    for k, p in params.items():
        assert p.dtype == dtype
        err = _rel(p.astype(np.float64), tparams[k].detach().numpy().astype(np.float64))
        assert err <= TOL[dtype], f"{k}: relative difference {err:.3g} from torch"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype, 1)[0]
    tgrads = {k: torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
              for k, g in grads.items()}
    for k, t in tgrads.items():
        t.grad = torch.from_numpy(grads[k].copy())
    before = {k: g.copy() for k, g in grads.items()}
    norm = clip_grad_norm(grads, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(list(tgrads.values()), max_norm)
    assert norm == pytest.approx(float(tnorm), rel=TOL[dtype])
    for k, g in grads.items():
        assert g.dtype == dtype
        err = _rel(g, tgrads[k].grad.numpy())
        assert err <= TOL[dtype], k
        if max_norm > norm:
            np.testing.assert_array_equal(g, before[k])  # untouched, not multiplied by ~1


def test_clip_grad_norm_scales_to_max_norm_in_place():
    grads = {"a": np.full((4, 4), 3.0), "b": np.full(9, -4.0)}
    arrays = dict(grads)
    total = np.sqrt(16 * 9 + 9 * 16)
    assert clip_grad_norm(grads, 2.0) == pytest.approx(total)
    new = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    assert new == pytest.approx(2.0, rel=1e-6)
    assert all(grads[k] is arrays[k] for k in grads)


def test_clip_grad_norm_with_a_non_finite_gradient_leaves_grads_alone():
    grads = {"a": np.array([1.0, np.inf]), "b": np.array([2.0])}
    assert clip_grad_norm(grads, 1.0) == np.inf
    np.testing.assert_array_equal(grads["b"], [2.0])


# ----------------------------------------------------------------- state dicts


def _through_files(sd):
    """What a checkpoint does: arrays to npz, the rest to JSON, and back."""
    buf = io.BytesIO()
    np.savez(buf, **sd["arrays"])
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    rest = json.loads(json.dumps({k: v for k, v in sd.items() if k != "arrays"}))
    return {**rest, "arrays": arrays}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_resume_from_state_dict_is_bit_identical(config, dtype):
    cls, kw, _, _ = CONFIGS[config]
    grads = _grads(dtype, 10)
    straight = _params(dtype)
    opt = cls(straight, **kw)
    for g in grads:
        opt.step(g)

    params = _params(dtype)
    first = cls(params, **kw)
    for g in grads[:4]:
        first.step(g)
    sd = _through_files(first.state_dict())
    saved = {k: p.copy() for k, p in params.items()}  # a checkpoint saves these with it
    for g in grads[4:6]:  # the state dict is a copy: later steps do not reach it
        first.step(g)
    second = cls(saved, **{**kw, "lr": 0.5})  # lr comes back from the state dict
    second.load_state_dict(sd)
    assert second.step_count == 4 and second.lr == opt.lr
    for g in grads[4:]:
        second.step(g)
    for k in straight:
        np.testing.assert_array_equal(saved[k], straight[k], err_msg=k)


@pytest.mark.parametrize("config", ["adam", "rmsprop", "sgd-nesterov-wd"])
def test_state_dict_layout(config):
    cls, kw, _, _ = CONFIGS[config]
    opt = cls(_params(np.float32), **kw)
    opt.step(_grads(np.float32, 1)[0])
    sd = opt.state_dict()
    assert set(sd) == {"kind", "step", "hyper", "arrays"}
    assert sd["kind"] == opt.kind and sd["step"] == 1
    json.dumps({k: v for k, v in sd.items() if k != "arrays"})
    for key, arr in sd["arrays"].items():
        slot, name = key.split(".", 1)
        assert name in SHAPES and arr.shape == SHAPES[name] and arr.dtype == np.float32
        assert not np.shares_memory(arr, opt.state[slot][name])


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    p = _params(np.float64)
    opt = Adam(p, lr=1e-3)
    opt.step(_grads(np.float64, 1)[0])
    good = opt.state_dict()
    other = RMSprop(_params(np.float64)).state_dict()
    with pytest.raises(ValueError, match="is for 'rmsprop', this optimizer is 'adam'"):
        opt.load_state_dict(other)
    bad = {**good, "arrays": dict(good["arrays"])}
    del bad["arrays"]["exp_avg.head.bias"]
    with pytest.raises(ValueError, match=r"missing \['exp_avg.head.bias'\]"):
        opt.load_state_dict(bad)
    bad = {**good, "arrays": {**good["arrays"], "exp_avg.head.bias": np.zeros(3)}}
    with pytest.raises(ValueError, match=r"exp_avg.head.bias.*expected shape \(7,\)"):
        opt.load_state_dict(bad)
    bad = {**good, "arrays": {**good["arrays"], "exp_avg.head.bias": np.full(7, np.nan)}}
    with pytest.raises(ValueError, match="finite"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        opt.load_state_dict({**good, "step": -1})
    with pytest.raises(ValueError, match="lr must be"):
        opt.load_state_dict({**good, "step": 9, "hyper": {**good["hyper"], "lr": -1.0}})
    with pytest.raises(ValueError, match="missing entries"):
        opt.load_state_dict({"kind": "adam"})
    after = opt.state_dict()
    assert after["step"] == 1 and after["hyper"] == good["hyper"]
    for k, a in good["arrays"].items():
        np.testing.assert_array_equal(after["arrays"][k], a)


# ----------------------------------------------------------------- in place, dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_updates_are_in_place_in_the_parameters_dtype(config, dtype):
    cls, kw, _, _ = CONFIGS[config]
    params = _params(dtype)
    arrays = dict(params)
    start = {k: p.copy() for k, p in params.items()}
    grads = _grads(dtype, 3)
    kept = [{k: g.copy() for k, g in gs.items()} for gs in grads]
    opt = cls(params, **kw)
    for g in grads:
        opt.step(g)
    for k, p in params.items():
        assert p is arrays[k] and opt.params[k] is p and np.shares_memory(p, arrays[k])
        assert p.dtype == dtype
        assert not np.array_equal(p, start[k])
    for slot in opt.state.values():
        assert all(a.dtype == dtype for a in slot.values())
    for g, k in zip(grads, kept):  # the gradients are read, never changed
        for name in g:
            np.testing.assert_array_equal(g[name], k[name])


def test_works_on_a_charlm():
    from lstm_c.model import CharLM

    m = CharLM(6, 5, 2, 3, seed=0)
    params = m.parameters()
    ids = {k: id(p) for k, p in params.items()}
    opt = make_optimizer("adam", params, lr=1e-2)
    x = np.arange(8).reshape(4, 2) % 6
    loss0, _ = m.forward(x, (x + 1) % 6)
    for _ in range(20):
        m.zero_grad()
        m.forward(x, (x + 1) % 6)
        m.backward()
        opt.step(m.grads)
    assert m.forward(x, (x + 1) % 6)[0] < loss0
    assert {k: id(p) for k, p in m.parameters().items()} == ids
    assert m.lstm.parameters()["weight_hh_l1"] is params["lstm.weight_hh_l1"]


# ----------------------------------------------------------------- schedule, factory, input


def test_decayed_lr_is_char_rnns_rule():
    # char-rnn: when epoch e ends (e = completed epochs, 1-based), if e >= 10: lr *= 0.97
    lr, want = 2e-3, []
    for completed in range(15):
        want.append(lr)  # the lr used during the epoch after `completed` epochs
        if completed + 1 >= 10:
            lr *= 0.97
    got = [decayed_lr(2e-3, e) for e in range(15)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got[9] == 2e-3 and got[10] == pytest.approx(2e-3 * 0.97)
    assert decayed_lr(1.0, 5, decay=0.5, start_epoch=0) == 0.5 ** 6
    assert decayed_lr(1.0, 100, decay=1.0) == 1.0
    with pytest.raises(ValueError, match="decay"):
        decayed_lr(1.0, 3, decay=0.0)
    with pytest.raises(TypeError, match="epoch must be an int >= 0"):
        decayed_lr(1.0, -1)


def test_cosine_lr_anneals_from_the_base_rate_to_the_final_fraction():
    assert cosine_lr(2e-3, 0.0) == 2e-3
    assert cosine_lr(2e-3, 0.5) == pytest.approx(1e-3, rel=1e-12)
    assert cosine_lr(2e-3, 1.0) == pytest.approx(0.0, abs=1e-18)
    assert cosine_lr(1.0, 1.0, final=0.1) == pytest.approx(0.1, rel=1e-12)
    assert cosine_lr(1.0, 0.25) == pytest.approx((1 + np.cos(np.pi / 4)) / 2, rel=1e-12)
    rates = [cosine_lr(1.0, p) for p in np.linspace(0, 1, 50)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ValueError, match="progress"):
        cosine_lr(1.0, 1.5)
    with pytest.raises(ValueError, match="final"):
        cosine_lr(1.0, 0.5, final=-0.1)


def test_make_optimizer():
    p = _params(np.float64)
    assert type(make_optimizer("adam", p)) is Adam
    assert type(make_optimizer("RMSprop", p, alpha=0.9)) is RMSprop
    sgd = make_optimizer("sgd", p, lr=0.01, nesterov=True)
    assert type(sgd) is SGD and sgd.lr == 0.01 and sgd.nesterov
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adam', 'rmsprop', 'sgd'\)"):
        make_optimizer("adagrad", p)
    with pytest.raises(TypeError):
        make_optimizer("adam", p, momentum=0.9)


def test_defaults_are_the_contracts():
    p = _params(np.float64)
    a, r, s = Adam(p), RMSprop(p), SGD(p)
    assert (a.lr, a.betas, a.eps, a.weight_decay) == (2e-3, (0.9, 0.999), 1e-8, 0.0)
    assert (r.lr, r.alpha, r.eps, r.weight_decay) == (2e-3, 0.95, 1e-8, 0.0)
    assert (s.lr, s.momentum, s.weight_decay, s.nesterov) == (0.1, 0.9, 0.0, False)


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: Adam(p, lr=-1.0), ValueError, "lr must be a finite number"),
    (lambda p: Adam(p, lr="fast"), TypeError, "lr must be a number"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (lambda p: Adam(p, betas=0.9), TypeError, "betas must be a pair"),
    (lambda p: RMSprop(p, alpha=1.5), ValueError, "alpha"),
    (lambda p: SGD(p, momentum=0.0, nesterov=True), ValueError,
     "nesterov momentum needs momentum > 0"),
    (lambda p: SGD(p, weight_decay=np.nan), ValueError, "weight_decay"),
    (lambda p: Adam([1, 2]), TypeError, "params: expected a dict"),
    (lambda p: Adam({}), ValueError, "at least one parameter"),
    (lambda p: Adam({"w": np.zeros(3, int)}), TypeError,
     r"params\['w'\]: expected a float ndarray"),
    (lambda p: Adam({"w": np.zeros(3)}).step({"v": np.zeros(3)}), ValueError,
     r"missing \['w'\], unexpected \['v'\]"),
    (lambda p: Adam(p).step({**p, "head.bias": np.zeros(3)}), ValueError,
     r"grads\['head.bias'\]: expected shape \(7,\)"),
    (lambda p: clip_grad_norm({"a": np.ones(3)}, 0.0), ValueError, "max_norm"),
    (lambda p: clip_grad_norm({"a": [1.0]}, 1.0), TypeError, "expected a float ndarray"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_params(np.float64))


def test_read_only_parameters_are_refused():
    w = np.zeros(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        SGD({"w": w})


def test_lr_is_settable_and_checked():
    opt = SGD(_params(np.float64), lr=0.1)
    opt.lr = 0.01
    assert opt.lr == 0.01
    with pytest.raises(ValueError):
        opt.lr = float("inf")
    assert opt.lr == 0.01


def test_module_exports():
    assert set(optim.__all__) >= {"Adam", "RMSprop", "SGD", "make_optimizer", "clip_grad_norm",
                                  "decayed_lr", "cosine_lr", "Optimizer"}
