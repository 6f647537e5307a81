"""Optimizers for dicts of NumPy parameters: Adam, RMSprop, SGD; gradient clipping; lr decay.

Every update is done in place on the parameter arrays, in their dtype (a
float32 model stays float32: scalars are Python floats, which NumPy does not
let widen an array), through two scratch arrays per dtype the size of the
largest parameter, so a step allocates nothing as large as a parameter.

The update rules are ``torch.optim``'s (same hyperparameter names and
defaults where the contract does not say otherwise), so a run can be checked
against PyTorch step by step. ``weight_decay`` is torch's coupled L2 term:
``g + weight_decay * p`` enters the update, for every parameter given
(embeddings and biases included).

State dicts are ``{"kind", "step", "hyper", "arrays"}``: the arrays go to an
``.npz`` file and the rest to JSON; loading one and continuing gives exactly
(bit for bit) the numbers of a run that never stopped.

Where char-rnn (Karpathy's ``train.lua`` with torch7 ``optim.rmsprop``) differs
-------------------------------------------------------------------------------
- It clips each gradient entry to [-5, 5] (``grad_params:clamp``); here
  ``clip_grad_norm`` rescales the whole gradient to a maximum global norm, as
  torch does. Element-wise clipping is ``np.clip(g, -c, c, out=g)``.
- It sums the loss over the T steps (it does not divide by seq_length); our
  loss is a mean over T*B. RMSprop is nearly invariant to that scale: only eps
  weighs differently.
- Its RMSprop is the same rule as torch's and this one (eps added after the
  square root, mean square starting at zero), with alpha = decay_rate = 0.95
  and lr = 2e-3, the defaults here.
"""

import math
import numbers

import numpy as np

__all__ = ["Optimizer", "Adam", "RMSprop", "SGD", "make_optimizer", "clip_grad_norm",
           "decayed_lr", "cosine_lr"]


def _number(name, value, lo=0.0, hi=math.inf, lo_open=False, hi_open=True):
    """A finite float in the interval, with a message naming what was given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be a finite number in {lb}{lo}, {hi}{rb}, got {value!r}")
    return v


class Optimizer:
    """Base class: holds the parameters, the step count and per-parameter state arrays.

    Parameters
    ----------
    params : dict name -> ndarray
        Float arrays (float32 or float64), updated in place by ``step``.
    lr : float >= 0
        Learning rate; ``opt.lr`` can be set between steps (for a schedule).
    weight_decay : float >= 0, default 0.0
        L2 penalty added to the gradient (torch's coupled weight decay).
    """

    kind = None
    _slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, lr, weight_decay=0.0):
        if not hasattr(params, "items"):
            raise TypeError(f"params: expected a dict name -> array, got {type(params).__name__}")
        if not params:
            raise ValueError("params: expected at least one parameter, got an empty dict")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                what = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
                raise TypeError(f"params[{name!r}]: expected a float ndarray (updated in place), "
                                f"got {what}")
            if not p.flags.writeable:
                raise ValueError(f"params[{name!r}]: the array is read-only; "
                                 f"it is updated in place")
        self.params = dict(params)
        self.lr = lr
        self.weight_decay = _number("weight_decay", weight_decay)
        self.step_count = 0
        self.state = {slot: {name: np.zeros_like(p) for name, p in self.params.items()}
                      for slot in self._slots}
        # Two scratch arrays per dtype, each the size of the largest parameter of that dtype.
        sizes = {}
        for p in self.params.values():
            sizes[p.dtype] = max(sizes.get(p.dtype, 0), p.size)
        self._scratch = {dt: (np.empty(n, dt), np.empty(n, dt)) for dt, n in sizes.items()}

    @property
    def lr(self):
        """The learning rate (a float >= 0); settable."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _number("lr", value)

    def _tmps(self, p):
        """Two scratch arrays shaped like p (views of the per-dtype buffers)."""
        return tuple(buf[:p.size].reshape(p.shape) for buf in self._scratch[p.dtype])

    def _grad(self, name, p, grads):
        g = grads[name]
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype:
            g = np.asarray(g, dtype=p.dtype)  # converted once; the common case is no copy
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}]: expected shape {p.shape} (the parameter's), "
                             f"got {g.shape}")
        return g

    def _decayed(self, p, g, tmp):
        """g + weight_decay * p, into tmp (g itself when there is no decay; g is never modified)."""
        if self.weight_decay == 0.0:
            return g
        np.multiply(p, self.weight_decay, out=tmp)
        tmp += g
        return tmp

    def step(self, grads):
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : dict name -> array
            Exactly the keys of the parameters, same shapes. Not modified.
        """
        if not hasattr(grads, "keys"):
            raise TypeError(f"grads: expected a dict name -> array, got {type(grads).__name__}")
        if set(grads) != set(self.params):
            missing = sorted(set(self.params) - set(grads))
            unexpected = sorted(set(grads) - set(self.params))
            raise ValueError(f"grads keys do not match the parameters: missing {missing}, "
                             f"unexpected {unexpected}")
        checked = {name: self._grad(name, p, grads) for name, p in self.params.items()}
        self.step_count += 1
        for name, p in self.params.items():
            a, b = self._tmps(p)
            self._update(name, p, self._decayed(p, checked[name], a), a, b)

    def _update(self, name, p, g, a, b):
        """Update p in place from g (which may be `a`); a and b are scratch shaped like p."""
        raise NotImplementedError

    def _hyper(self):
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def _set_hyper(self, hyper):
        self.lr = hyper["lr"]
        self.weight_decay = _number("weight_decay", hyper["weight_decay"])

    def state_dict(self):
        """Everything needed to continue exactly where this optimizer is.

        Returns
        -------
        dict
            ``{"kind": str, "step": int, "hyper": {...}, "arrays": {key: ndarray}}``;
            "kind", "step" and "hyper" are JSON-able; the arrays (copies) are named
            ``"<slot>.<parameter name>"``, e.g. ``"exp_avg.head.weight"``.
        """
        arrays = {f"{slot}.{name}": a.copy()
                  for slot, per_param in self.state.items() for name, a in per_param.items()}
        return {"kind": self.kind, "step": self.step_count, "hyper": self._hyper(),
                "arrays": arrays}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` of the same kind of optimizer over the same parameters.

        The hyperparameters (lr included) are restored too. Nothing changes
        unless the whole state dict is valid.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        missing = sorted({"kind", "step", "hyper", "arrays"} - set(state_dict))
        if missing:
            raise ValueError(f"optimizer state_dict: missing entries {missing}")
        if state_dict["kind"] != self.kind:
            raise ValueError(f"optimizer state_dict is for {state_dict['kind']!r}, "
                             f"this optimizer is {self.kind!r}")
        step = state_dict["step"]
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"optimizer state_dict: step must be an int >= 0, got {step!r}")
        hyper = dict(state_dict["hyper"])
        expected_hyper = set(self._hyper())
        if set(hyper) != expected_hyper:
            raise ValueError(f"optimizer state_dict: hyper keys {sorted(hyper)}, "
                             f"expected {sorted(expected_hyper)}")
        arrays = state_dict["arrays"]
        wanted = {f"{slot}.{name}": (slot, name) for slot in self._slots for name in self.params}
        if set(arrays) != set(wanted):
            raise ValueError(f"optimizer state_dict arrays do not match the parameters: "
                             f"missing {sorted(set(wanted) - set(arrays))}, "
                             f"unexpected {sorted(set(arrays) - set(wanted))}")
        new = {}
        for key, (slot, name) in wanted.items():
            p = self.params[name]
            arr = np.asarray(arrays[key])
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"optimizer state_dict[{key!r}]: expected a float array, "
                                f"got dtype {arr.dtype}")
            if arr.shape != p.shape:
                raise ValueError(f"optimizer state_dict[{key!r}]: expected shape {p.shape}, "
                                 f"got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"optimizer state_dict[{key!r}]: expected finite values")
            new[(slot, name)] = arr
        old_hyper = self._hyper()
        try:
            self._set_hyper(hyper)
        except (TypeError, ValueError):
            self._set_hyper(old_hyper)
            raise
        self.step_count = int(step)
        for (slot, name), arr in new.items():
            self.state[slot][name][...] = arr

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return (f"{type(self).__name__}({len(self.params)} parameters, {hyper}, "
                f"step={self.step_count})")


class Adam(Optimizer):
    """Adam with ``torch.optim.Adam`` semantics (amsgrad off, coupled weight decay).

    For each parameter, with g the gradient (plus ``weight_decay * p``) at step t::

        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Parameters
    ----------
    params : dict name -> ndarray
    lr : float, default 2e-3
    betas : pair of floats in [0, 1), default (0.9, 0.999)
    eps : float >= 0, default 1e-8
    weight_decay : float >= 0, default 0.0
    """

    kind = "adam"
    _slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self._set_betas_eps(betas, eps)

    def _set_betas_eps(self, betas, eps):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        self.betas = (_number("betas[0]", betas[0], 0.0, 1.0),
                      _number("betas[1]", betas[1], 0.0, 1.0))
        self.eps = _number("eps", eps)

    def _hyper(self):
        return {**super()._hyper(), "betas": list(self.betas), "eps": self.eps}

    def _set_hyper(self, hyper):
        super()._set_hyper(hyper)
        self._set_betas_eps(hyper["betas"], hyper["eps"])

    def _update(self, name, p, g, a, b):
        # The operations and their order are torch's (_single_tensor_adam), so
        # float64 runs agree to rounding.
        b1, b2 = self.betas
        t = self.step_count
        m = self.state["exp_avg"][name]
        v = self.state["exp_avg_sq"][name]
        np.subtract(g, m, out=b)            # m.lerp_(g, 1 - b1) = m + (1 - b1)(g - m)
        b *= 1.0 - b1
        m += b
        v *= b2                             # v.mul_(b2).addcmul_(g, g, value=1 - b2)
        np.multiply(g, 1.0 - b2, out=b)
        b *= g
        v += b
        np.sqrt(v, out=b)                   # denom = sqrt(v) / sqrt(1 - b2^t) + eps
        b /= math.sqrt(1.0 - b2 ** t)
        b += self.eps
        np.multiply(m, -(self.lr / (1.0 - b1 ** t)), out=a)   # g (maybe in a) is done with
        a /= b
        p += a


class RMSprop(Optimizer):
    """RMSprop with ``torch.optim.RMSprop`` semantics (not centered, no momentum).

    For each parameter, with g the gradient (plus ``weight_decay * p``)::

        v = alpha v + (1 - alpha) g^2
        p -= lr * g / (sqrt(v) + eps)

    eps is added after the square root, as in torch and in torch7's
    ``optim.rmsprop`` that char-rnn uses (TensorFlow/Keras put it inside); v
    starts at zero. The defaults are char-rnn's: lr 2e-3, alpha (its
    ``decay_rate``) 0.95; torch's are 1e-2 and 0.99.

    Parameters
    ----------
    params : dict name -> ndarray
    lr : float, default 2e-3
    alpha : float in [0, 1), default 0.95
    eps : float >= 0, default 1e-8
    weight_decay : float >= 0, default 0.0
    """

    kind = "rmsprop"
    _slots = ("square_avg",)

    def __init__(self, params, lr=2e-3, alpha=0.95, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.alpha = _number("alpha", alpha, 0.0, 1.0)
        self.eps = _number("eps", eps)

    def _hyper(self):
        return {**super()._hyper(), "alpha": self.alpha, "eps": self.eps}

    def _set_hyper(self, hyper):
        super()._set_hyper(hyper)
        self.alpha = _number("alpha", hyper["alpha"], 0.0, 1.0)
        self.eps = _number("eps", hyper["eps"])

    def _update(self, name, p, g, a, b):
        v = self.state["square_avg"][name]
        v *= self.alpha                     # v.mul_(alpha).addcmul_(g, g, value=1 - alpha)
        np.multiply(g, 1.0 - self.alpha, out=b)
        b *= g
        v += b
        np.sqrt(v, out=b)                   # avg = sqrt(v) + eps
        b += self.eps
        np.multiply(g, -self.lr, out=a)     # p.addcdiv_(g, avg, value=-lr)
        a /= b
        p += a


class SGD(Optimizer):
    """Stochastic gradient descent with ``torch.optim.SGD`` semantics (dampening 0).

    For each parameter, with g the gradient (plus ``weight_decay * p``)::

        buf = g at the first step, then buf = momentum buf + g
        d = g + momentum buf  (nesterov)  or  buf
        p -= lr d

    With ``momentum=0`` it is plain SGD (``p -= lr g``). Note the default
    ``momentum=0.9`` (torch's is 0).

    Parameters
    ----------
    params : dict name -> ndarray
    lr : float, default 0.1
    momentum : float >= 0, default 0.9
    weight_decay : float >= 0, default 0.0
    nesterov : bool, default False
        Needs ``momentum > 0``.
    """

    kind = "sgd"
    _slots = ("momentum_buffer",)

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr, weight_decay)
        self._set_momentum(momentum, nesterov)

    def _set_momentum(self, momentum, nesterov):
        momentum = _number("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov momentum needs momentum > 0, got momentum=0")
        self.momentum, self.nesterov = momentum, bool(nesterov)

    def _hyper(self):
        return {**super()._hyper(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _set_hyper(self, hyper):
        super()._set_hyper(hyper)
        self._set_momentum(hyper["momentum"], hyper["nesterov"])

    def _update(self, name, p, g, a, b):
        mu = self.momentum
        if mu != 0.0:
            buf = self.state["momentum_buffer"][name]
            if self.step_count == 1:
                np.copyto(buf, g)           # torch: the buffer starts as the first gradient
            else:
                buf *= mu
                buf += g
            if self.nesterov:
                np.multiply(buf, mu, out=b)     # d = g + mu buf
                b += g
                g = b
            else:
                g = buf
        np.multiply(g, -self.lr, out=a)     # p.add_(d, alpha=-lr)
        p += a


_OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def make_optimizer(name, params, **kw):
    """Build an optimizer by name.

    Parameters
    ----------
    name : {"adam", "rmsprop", "sgd"}
        Case-insensitive.
    params : dict name -> ndarray
    **kw
        Passed to the optimizer (lr, weight_decay, betas, alpha, momentum, ...).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(_OPTIMIZERS)}, got {name!r}")
    return _OPTIMIZERS[key](params, **kw)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their global L2 norm is at most `max_norm`.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is over every entry of every
    array together, and the scale is ``min(1, max_norm / (norm + 1e-6))``.
    When the norm is not finite (a NaN or inf gradient) nothing is scaled; the
    returned norm tells the caller (torch would turn the gradients into NaN).

    Parameters
    ----------
    grads : dict name -> ndarray
    max_norm : float > 0

    Returns
    -------
    float
        The total norm before clipping.
    """
    if not hasattr(grads, "values"):
        raise TypeError(f"grads: expected a dict name -> array, got {type(grads).__name__}")
    max_norm = _number("max_norm", max_norm, lo_open=True)
    total = 0.0
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"grads[{name!r}]: expected a float ndarray, got "
                            f"{g.dtype if isinstance(g, np.ndarray) else type(g).__name__}")
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    norm = math.sqrt(total)
    if math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            for g in grads.values():
                g *= coef
    return norm


def decayed_lr(base_lr, epoch, decay=0.97, start_epoch=10):
    """char-rnn's learning-rate schedule: times `decay` after every epoch from `start_epoch` on.

    char-rnn multiplies the rate by ``learning_rate_decay`` (0.97) each time an
    epoch ends, once ``learning_rate_decay_after`` (10) epochs are complete. So
    the rate used during the epoch that follows `epoch` completed epochs is::

        base_lr * decay ** max(0, epoch - start_epoch + 1)

    e.g. ``base_lr`` for epochs 0..9, ``base_lr * 0.97`` for epoch 10 (the
    11th), ``base_lr * 0.97**2`` for epoch 11.

    Parameters
    ----------
    base_lr : float >= 0
    epoch : int >= 0
        Completed epochs (the 0-based index of the current epoch).
    decay : float in (0, 1], default 0.97
    start_epoch : int >= 0, default 10

    Returns
    -------
    float
    """
    base_lr = _number("base_lr", base_lr)
    decay = _number("decay", decay, 0.0, 1.0, lo_open=True, hi_open=False)
    for label, value in (("epoch", epoch), ("start_epoch", start_epoch)):
        if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
                or value < 0):
            raise TypeError(f"{label} must be an int >= 0, got {value!r}")
    return base_lr * decay ** max(0, int(epoch) - int(start_epoch) + 1)


def cosine_lr(base_lr, progress, final=0.0):
    """Cosine annealing: ``base_lr`` at the start of a run, ``final * base_lr`` at its end.

    Parameters
    ----------
    base_lr : float >= 0
    progress : float in [0, 1]
        How far through the run (0 at the first step, 1 at the end).
    final : float in [0, 1], default 0.0
        The rate at the end, as a fraction of ``base_lr``.

    Returns
    -------
    float
        ``base_lr * (final + (1 - final) * (1 + cos(pi * progress)) / 2)``
    """
    base_lr = _number("base_lr", base_lr)
    progress = _number("progress", progress, 0.0, 1.0, hi_open=False)
    final = _number("final", final, 0.0, 1.0, hi_open=False)
    return base_lr * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))
