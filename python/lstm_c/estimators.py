"""scikit-learn-style estimators: ``LSTMRegressor`` and ``LSTMClassifier``.

An LSTM and a linear head (``lstm_c.sequence_model``) behind scikit-learn's
estimator conventions, for forecasting and sequence classification on your
own arrays without writing a training loop::

    from lstm_c import LSTMClassifier
    clf = LSTMClassifier(hidden_size=64, max_epochs=30, random_state=0)
    clf.fit(X_train, y_train)          # X (n, T, F), (n, T) or a list of (T_i, F)
    clf.score(X_test, y_test)          # accuracy

Conventions kept (scikit-learn's "developing estimators" guide):
- ``__init__`` only stores its arguments; ``fit`` checks them, so
  ``set_params`` and ``sklearn.base.clone`` work, and a bad value is reported
  when fitting;
- what fitting learns ends in ``_`` (``model_``, ``classes_``,
  ``n_features_in_``, ``loss_curve_``, ...); using an unfitted estimator
  raises ``NotFittedError``;
- ``random_state`` (an int) makes ``fit`` repeatable: the same data and
  parameters give the same weights, bit for bit;
- ``fit`` starts over each time; ``partial_fit`` trains one more epoch.

scikit-learn is not needed, but where it is installed the estimators work in
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` (``__sklearn_tags__``),
and pass its conformance suite (``sklearn.utils.estimator_checks``), where a
2-D X of n univariate sequences of T steps is n samples of T features.

Training: minibatches of ``batch_size`` sequences, shuffled every epoch;
Adam (or RMSprop, SGD) with gradient clipping to a global norm; it stops
after ``max_epochs``, or earlier once the loss (the validation loss with
``early_stopping``, when the best weights are restored) has not improved by
``tol`` for ``n_iter_no_change`` epochs, as ``MLPRegressor`` does.
"""

import functools
import inspect
import math
import numbers
import sys
import warnings

import numpy as np
from tqdm.auto import tqdm

from lstm_c import _validate as check
from lstm_c import optim
from lstm_c.sequence_data import as_sequences, real_numbers, sequence_targets, step_targets
from lstm_c.sequence_model import SequenceModel

__all__ = ["LSTMRegressor", "LSTMClassifier", "NotFittedError"]

_PREDICT_BATCH = 512  # sequences per inference call: bounds the memory of predict


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``; the bases are those of scikit-learn's own.

    Where scikit-learn has been imported, the error raised is also an instance
    of ``sklearn.exceptions.NotFittedError``, so either ``except`` catches it.
    """


def _not_fitted(message):
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")  # never imported here
    if sklearn_exceptions is None:
        return NotFittedError(message)
    return _with_sklearns(sklearn_exceptions.NotFittedError)(message)


@functools.cache
def _with_sklearns(sklearn_error):
    """NotFittedError that is also scikit-learn's, one class for the process."""
    return type("NotFittedError", (NotFittedError, sklearn_error), {"__module__": __name__})


def _sklearn_warning(name):
    """scikit-learn's warning class `name` where it is imported, else UserWarning."""
    return getattr(sys.modules.get("sklearn.exceptions"), name, UserWarning)


def _generator(random_state):
    """A numpy Generator from None, an int >= 0, a Generator or a RandomState."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state,
                                                                     numbers.Integral):
        raise TypeError("random_state must be None, an int, a numpy Generator or RandomState, "
                        f"got {random_state!r}")
    if random_state < 0:
        raise ValueError(f"random_state must be >= 0, got {random_state}")
    return np.random.default_rng(int(random_state))


def _real(name, value, lo, hi=math.inf, lo_open=False, hi_open=True):
    """A finite real in the interval, as a float; the message names the interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    inside = ((v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi))
    if not (math.isfinite(v) and inside):
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {value!r}")
    return v


class _LSTMEstimator:
    """What the regressor and the classifier share: parameters, training loop, inference."""

    _loss = None  # "mse" or "cross_entropy"

    # ------------------------------------------------------------------ parameters

    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def _store(self, arguments):
        """__init__'s whole work: keep each argument as it was given (scikit-learn's rule)."""
        for name in self._param_names():
            setattr(self, name, arguments[name])

    def get_params(self, deep=True):
        """The constructor's arguments, as a dict (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments by name; returns self. Checked at the next ``fit``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (v is defaults[k] or (type(v) is type(defaults[k]) and v == defaults[k]))]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _checked_params(self):
        """The parameters checked and normalised, as a dict (fit's first step)."""
        p = self.get_params()
        out = dict(p)
        for name in ("hidden_size", "num_layers", "max_epochs", "batch_size", "n_iter_no_change"):
            out[name] = check.positive_int(name, p[name])
        for name in ("bidirectional", "return_sequences", "early_stopping"):
            out[name] = check.flag(name, p[name])
        out["dropout"] = _real("dropout", p["dropout"], 0.0, 1.0)
        out["learning_rate"] = _real("learning_rate", p["learning_rate"], 0.0, lo_open=True)
        out["weight_decay"] = _real("weight_decay", p["weight_decay"], 0.0)
        out["tol"] = _real("tol", p["tol"], 0.0)
        out["validation_fraction"] = _real("validation_fraction", p["validation_fraction"],
                                           0.0, 1.0, lo_open=True)
        if p["clip_norm"] is not None:
            out["clip_norm"] = _real("clip_norm", p["clip_norm"], 0.0, lo_open=True)
        if p["forget_bias"] is not None:
            out["forget_bias"] = _real("forget_bias", p["forget_bias"], -math.inf)
        if p["optimizer"] not in ("adam", "rmsprop", "sgd"):
            raise ValueError("optimizer must be 'adam', 'rmsprop' or 'sgd', "
                             f"got {p['optimizer']!r}")
        out["dtype"] = check.float_dtype(p["dtype"])
        if isinstance(p["verbose"], (bool, np.bool_)) or isinstance(p["verbose"], numbers.Integral):
            out["verbose"] = bool(p["verbose"])
        else:
            raise TypeError(f"verbose must be a bool or an int, got {p['verbose']!r}")
        _generator(p["random_state"])  # type check only: a Generator must not be drawn from here
        return out

    # ------------------------------------------------------------------ scikit-learn integration

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise _not_fitted(f"This {type(self).__name__} instance is not fitted yet: "
                              "call fit (or partial_fit) with appropriate arguments first")

    def _base_tags(self, estimator_type):
        from sklearn.utils import InputTags, Tags, TargetTags  # only scikit-learn calls this

        return Tags(estimator_type=estimator_type,
                    target_tags=TargetTags(required=True, multi_output=True),
                    input_tags=InputTags(two_d_array=True, three_d_array=True),
                    non_deterministic=self.random_state is None)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, lengths=None):
        """Train from scratch on sequences X and targets y; returns self.

        Parameters
        ----------
        X : array (n_samples, T, n_features), array (n_samples, T), or a list
            of n_samples arrays (T_i, n_features) or (T_i,) of their own lengths
        y : one target per sequence, (n_samples,) or (n_samples, k); with
            ``return_sequences=True`` one per step, shaped like X without its
            feature axis (plus k), or a list of (T_i,) / (T_i, k)
        lengths : int array (n_samples,), optional
            Each sequence's own length when X is a padded array; the steps
            past it are not read.
        """
        self._params = params = self._checked_params()
        self._require_y(y)
        seq = as_sequences(X, params["dtype"], lengths)
        targets, valid = self._targets(y, seq, params["return_sequences"], first=True)
        rng = _generator(self.random_state)
        self._start(params, seq, targets, rng)
        rows = np.arange(len(seq))
        val_rows = None
        if params["early_stopping"]:
            rows, val_rows = self._split(rows, targets, params["validation_fraction"], rng)
        best, best_state, stale = math.inf, None, 0
        bar = tqdm(range(params["max_epochs"]), desc=type(self).__name__, unit="epoch",
                   disable=not params["verbose"], leave=False)
        for _ in bar:
            train_loss = self._epoch(seq, targets, valid, rows)
            watched = train_loss
            if val_rows is not None:
                watched = self._mean_loss(seq, targets, valid, val_rows)
                self.validation_loss_curve_.append(watched)
                bar.set_postfix(loss=f"{train_loss:.4g}", val_loss=f"{watched:.4g}")
            else:
                bar.set_postfix(loss=f"{train_loss:.4g}")
            stale = stale + 1 if watched > best - params["tol"] else 0
            if watched < best:
                best = watched
                self.best_epoch_ = self.n_epochs_ - 1
                if val_rows is not None:
                    best_state = self.model_.state_dict()
            if stale >= params["n_iter_no_change"]:
                break
        bar.close()
        self.best_loss_ = best
        if best_state is not None:  # early stopping keeps the best epoch's weights
            self.model_.load_state_dict(best_state)
        return self

    def partial_fit(self, X, y, lengths=None, **kwargs):
        """One epoch over X, y (all of it: no validation split); starts a model if none.

        The first call fixes the model's shapes (n_features_in_, the outputs or
        ``classes``) and, for the regressor with ``normalize_y``, the target
        scaling, from its data. Returns self.
        """
        first = not hasattr(self, "model_")
        if first:
            self._params = self._checked_params()
        params = self._params
        self._require_y(y)
        seq = as_sequences(X, params["dtype"], lengths)
        if not first:
            self._check_features(seq)
        targets, valid = self._targets(y, seq, params["return_sequences"], first=first, **kwargs)
        if first:
            self._start(params, seq, targets, _generator(self.random_state))
        self._epoch(seq, targets, valid, np.arange(len(seq)))
        return self

    def _require_y(self, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None")

    def _start(self, params, seq, targets, rng):
        """A new model and optimizer; clears what an earlier fit learnt."""
        self._rng = rng
        # scikit-learn's count: a 2-D X's columns (here its steps), else the features per step.
        self.n_features_in_ = seq.columns or seq.n_features
        self._columns_fixed = seq.columns is not None
        self.model_ = SequenceModel(
            seq.n_features, self._n_outputs(), params["hidden_size"], params["num_layers"],
            params["bidirectional"], params["dropout"], params["forget_bias"], params["dtype"],
            params["return_sequences"], self._loss, rng)
        self._optimizer = optim.make_optimizer(params["optimizer"], self.model_.parameters(),
                                               lr=params["learning_rate"],
                                               weight_decay=params["weight_decay"])
        self.loss_curve_, self.validation_loss_curve_ = [], []
        self.n_epochs_, self.n_steps_, self.best_epoch_ = 0, 0, None

    def _split(self, rows, targets, fraction, rng):
        """(train rows, validation rows): a shuffled split, stratified by class when classifying."""
        groups = self._strata(targets)
        val = []
        for g in np.unique(groups):
            members = rng.permutation(rows[groups == g])
            val.extend(members[:int(round(fraction * len(members)))])
        val = np.sort(np.array(val, np.intp))
        if len(val) == 0 or len(val) == len(rows):
            raise ValueError(f"validation_fraction={fraction} of {len(rows)} samples leaves an "
                             "empty training or validation set; use more samples or another "
                             "fraction, or early_stopping=False")
        return np.setdiff1d(rows, val), val

    def _strata(self, targets):
        return np.zeros(len(targets), np.intp)  # the regressor: one group

    def _epoch(self, seq, targets, valid, rows):
        """One shuffled pass over `rows`; returns the epoch's mean training loss."""
        model, p = self.model_, self._params
        model.train(True)
        order = rows[self._rng.permutation(len(rows))]
        total = 0.0
        for start in range(0, len(order), p["batch_size"]):
            batch = order[start:start + p["batch_size"]]
            x, lengths = seq.batch(batch)
            target, steps = self._batch_targets(targets, valid, batch, x.shape[0], lengths)
            model.zero_grad()
            total += len(batch) * model.loss(x, target, lengths, steps)
            model.backward()
            if p["clip_norm"] is not None:
                optim.clip_grad_norm(model.grads, p["clip_norm"])
            self._optimizer.step(model.grads)
            self.n_steps_ += 1
        loss = total / len(order)
        self.loss_curve_.append(loss)
        self.n_epochs_ += 1
        return loss

    def _mean_loss(self, seq, targets, valid, rows):
        """The mean loss over `rows` in evaluation mode (no dropout), without gradients."""
        model = self.model_
        model.train(False)
        total = 0.0
        for start in range(0, len(rows), _PREDICT_BATCH):
            batch = rows[start:start + _PREDICT_BATCH]
            x, lengths = seq.batch(batch)
            target, steps = self._batch_targets(targets, valid, batch, x.shape[0], lengths)
            total += len(batch) * model.loss(x, target, lengths, steps, grad=False)
        return total / len(rows)

    def _batch_targets(self, targets, valid, batch, T_b, lengths):
        """(target, valid steps) for model.loss, for the sequences `batch` run T_b steps long."""
        if not self._params["return_sequences"]:
            return targets[batch], None
        t = np.ascontiguousarray(np.swapaxes(targets[batch, :T_b], 0, 1))
        v = None if lengths is None else np.ascontiguousarray(valid[batch, :T_b].T)
        return t, v

    # ------------------------------------------------------------------ inference

    def _check_features(self, seq):
        name = type(self).__name__
        if self._columns_fixed and seq.columns is not None and seq.columns != self.n_features_in_:
            raise ValueError(f"X has {seq.columns} features, but {name} is expecting "
                             f"{self.n_features_in_} features as input (the columns of a 2-D X, "
                             "its steps)")
        if seq.n_features != self.model_.lstm.input_size:
            raise ValueError(f"X has {seq.n_features} features per step, but {name} was "
                             f"fitted with {self.model_.lstm.input_size}")

    def _raw_outputs(self, X, lengths):
        """(the head's outputs z as float64, (n, k) or (n, T, k); the Sequences).

        Per step, past a sequence's end z means nothing: each caller masks it
        (seq.valid()) in its own units.
        """
        self._check_fitted()
        seq = as_sequences(X, self._params["dtype"], lengths)
        self._check_features(seq)
        model = self.model_
        model.train(False)
        n, T = seq.X.shape[:2]
        k = model.head["bias"].shape[0]
        per_step = self._params["return_sequences"]
        out = np.zeros((n, T, k) if per_step else (n, k))
        for start in range(0, n, _PREDICT_BATCH):
            batch = np.arange(start, min(n, start + _PREDICT_BATCH))
            x, lens = seq.batch(batch)
            z = model.outputs(x, lens)
            if per_step:
                out[batch, :x.shape[0]] = np.swapaxes(z, 0, 1)
            else:
                out[batch] = z
        return out, seq

    def _per_step_like_input(self, X, out, seq):
        """Per-step results as X came: a list of (T_i, ...) arrays for a list, else padded."""
        if not isinstance(X, (list, tuple)):
            return out
        return [out[i, :T_i] for i, T_i in enumerate(seq.steps())]


class LSTMRegressor(_LSTMEstimator):
    """Sequence regression with an LSTM: one real-valued output (or k) per sequence or per step.

    Parameters
    ----------
    hidden_size : int, default 64
    num_layers : int, default 1
    bidirectional : bool, default False
    dropout : float in [0, 1), default 0.0
        Between LSTM layers (num_layers > 1), in training.
    return_sequences : bool, default False
        False: one output per sequence (many-to-one), from the last step.
        True: one per step (many-to-many), y shaped as X is.
    max_epochs : int, default 100
    batch_size : int, default 32
        Sequences per optimizer step.
    learning_rate : float, default 3e-3
    optimizer : {"adam", "rmsprop", "sgd"}, default "adam"
    weight_decay : float, default 0.0
        L2, as ``torch.optim``'s weight_decay.
    clip_norm : float or None, default 1.0
        The gradient's global norm is clipped to this; None: no clipping.
    forget_bias : float or None, default 1.0
        The forget gates' initial bias, so that cells remember from the start.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the sequences; stop when their loss
        has not improved by ``tol`` for ``n_iter_no_change`` epochs, and keep
        the weights of the best epoch.
    validation_fraction : float in (0, 1), default 0.1
    n_iter_no_change : int, default 10
        Without early_stopping, the training loss is watched instead.
    tol : float, default 1e-4
    normalize_y : bool, default True
        Train on the targets standardised per output (their mean and standard
        deviation on the training data); predictions are in y's own units.
    dtype : {"float32", "float64"}, default "float32"
    random_state : int, numpy Generator, RandomState or None, default None
        Seeds the weights, the shuffling, the validation split and dropout. An
        int makes fit repeatable.
    verbose : bool, default False
        A progress bar over the epochs (tqdm), with the losses.

    Attributes
    ----------
    model_ : lstm_c.sequence_model.SequenceModel
        The network: ``model_.lstm`` (an ``lstm_c.LSTM``) and ``model_.head``.
    n_features_in_ : int
        scikit-learn's count: the columns of a 2-D X (the steps of its
        univariate sequences; predict then takes as many), else the features
        per step (``model_.lstm.input_size``).
    n_outputs_ : int
    loss_curve_ : list of float
        Each epoch's mean training loss (MSE of the standardised targets with
        normalize_y).
    validation_loss_curve_ : list of float
        The same on the validation set, with early_stopping.
    best_loss_ : float
        The best watched loss (validation with early_stopping, else training).
    best_epoch_ : int
        Its epoch, from 0.
    n_epochs_, n_steps_ : int
        Epochs run and optimizer steps taken.

    Examples
    --------
    >>> from lstm_c.tasks import adding_problem
    >>> X, y = adding_problem(2000, 30, rng=0)
    >>> reg = LSTMRegressor(hidden_size=32, max_epochs=20, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _estimator_type = "regressor"  # scikit-learn before 1.6
    _loss = "mse"

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=False, max_epochs=100, batch_size=32, learning_rate=3e-3,
                 optimizer="adam", weight_decay=0.0, clip_norm=1.0, forget_bias=1.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 normalize_y=True, dtype="float32", random_state=None, verbose=False):
        self._store(locals())

    def __sklearn_tags__(self):
        from sklearn.utils import RegressorTags

        tags = self._base_tags("regressor")
        tags.regressor_tags = RegressorTags()
        return tags

    def _checked_params(self):
        out = super()._checked_params()
        out["normalize_y"] = check.flag("normalize_y", self.normalize_y)
        return out

    def _n_outputs(self):
        return self.n_outputs_

    def _targets(self, y, seq, per_step, first):
        """(targets as the model's dtype, standardised; valid (n, T) bool or None)."""
        dtype = self._params["dtype"]
        if per_step:
            t = step_targets(y, seq)
            valid = None if seq.lengths is None else seq.valid()
            one_d = t.ndim == 2
        else:
            t = sequence_targets(y, len(seq))
            valid = None if seq.lengths is None else seq.valid()
            one_d = t.ndim == 1
        t = np.array(real_numbers(t, "y"), dtype=np.float64)
        if one_d:
            t = t[..., None]
        counted = t if not per_step or valid is None else t[valid]
        check.check_finite("y", counted)
        if per_step and valid is not None:
            t[~valid] = 0  # padding: any finite value, never counted
        if first:
            self.n_outputs_, self._single_output = t.shape[-1], one_d
            flat = counted.reshape(-1, t.shape[-1])
            normalize = self._params["normalize_y"]
            self._y_mean = flat.mean(axis=0) if normalize else np.zeros(t.shape[-1])
            scale = flat.std(axis=0) if normalize else np.ones(t.shape[-1])
            self._y_scale = np.where(scale > 0, scale, 1.0)
        elif t.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {t.shape[-1]} outputs, but {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        return ((t - self._y_mean) / self._y_scale).astype(dtype), valid

    def predict(self, X, lengths=None):
        """Predictions in y's units: (n,) or (n, k); per step (n, T) / (n, T, k) or a list."""
        out, seq = self._raw_outputs(X, lengths)
        out = out * self._y_scale + self._y_mean
        if self._params["return_sequences"] and seq.lengths is not None:
            out[~seq.valid()] = 0
        if self._single_output:
            out = out[..., 0]
        if self._params["return_sequences"]:
            return self._per_step_like_input(X, out, seq)
        return out

    def score(self, X, y, lengths=None):
        """R^2 (coefficient of determination), averaged over outputs, over every valid step.

        As ``sklearn.metrics.r2_score`` with its default uniform average: a
        constant target predicted exactly scores 1, otherwise 0.
        """
        out, seq = self._raw_outputs(X, lengths)
        pred = out * self._y_scale + self._y_mean
        per_step = self._params["return_sequences"]
        t = step_targets(y, seq) if per_step else sequence_targets(y, len(seq))
        t = np.asarray(real_numbers(t, "y"), np.float64)
        if t.ndim == pred.ndim - 1:
            t = t[..., None]
        if t.shape != pred.shape:
            raise ValueError(f"y: expected targets of shape {pred.shape[:-1]} or {pred.shape}, "
                             f"got {t.shape}")
        if per_step and seq.lengths is not None:
            t, pred = t[seq.valid()], pred[seq.valid()]
        t, pred = t.reshape(-1, t.shape[-1]), pred.reshape(-1, pred.shape[-1])
        check.check_finite("y", t)
        ss_res = ((t - pred) ** 2).sum(axis=0)
        ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                      np.where(ss_res == 0, 1.0, 0.0))
        return float(r2.mean())


class LSTMClassifier(_LSTMEstimator):
    """Sequence classification with an LSTM: one label per sequence, or per step.

    Labels may be of any type ``np.unique`` sorts (ints, strings); the model
    has one softmax output per class in ``classes_`` and is trained on the
    cross-entropy. The parameters are those of ``LSTMRegressor`` (without
    normalize_y); the validation split of early_stopping is stratified by
    class (for per-step labels, by each sequence's first label).

    Attributes
    ----------
    classes_ : array (n_classes,)
    model_, n_features_in_, loss_curve_, validation_loss_curve_, best_loss_,
    best_epoch_, n_epochs_, n_steps_
        As ``LSTMRegressor``'s (the losses are mean cross-entropies, in nats).

    Examples
    --------
    >>> from lstm_c.tasks import temporal_order
    >>> X, y = temporal_order(1000, 30, rng=0)
    >>> clf = LSTMClassifier(hidden_size=32, max_epochs=15, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 4)
    """

    _estimator_type = "classifier"  # scikit-learn before 1.6
    _loss = "cross_entropy"

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=False, max_epochs=100, batch_size=32, learning_rate=3e-3,
                 optimizer="adam", weight_decay=0.0, clip_norm=1.0, forget_bias=1.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 dtype="float32", random_state=None, verbose=False):
        self._store(locals())

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags

        tags = self._base_tags("classifier")
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.multi_output = False  # one label per sequence (or per step)
        return tags

    def _n_outputs(self):
        return len(self.classes_)

    def _strata(self, targets):
        return targets if targets.ndim == 1 else targets[:, 0]  # per step: the first label

    def partial_fit(self, X, y, lengths=None, classes=None):
        """One epoch over X, y; ``classes`` (every label y may hold) is required the first time."""
        if classes is None and not hasattr(self, "model_"):
            raise ValueError("classes= is required on the first call to partial_fit: "
                             "every label that y may hold")
        return super().partial_fit(X, y, lengths, classes=classes)

    def _labels(self, y, seq, per_step):
        """(labels as an array (n,) or (n, T) padded, valid (n, T) or None)."""
        if per_step:
            labels = step_targets(y, seq)
            if labels.ndim != 2:
                raise ValueError(f"y: expected one label per step, shape (n, T) or a list of "
                                 f"(T_i,), got shape {labels.shape}")
        else:
            labels = sequence_targets(y, len(seq))
            if labels.ndim == 2 and labels.shape[1] == 1:
                warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                              "change the shape of y to (n_samples,), for example using ravel().",
                              _sklearn_warning("DataConversionWarning"), stacklevel=4)
                labels = labels[:, 0]
            if labels.ndim != 1:
                raise ValueError(f"y: expected one label per sequence, shape ({len(seq)},), "
                                 f"got shape {labels.shape}")
        if labels.dtype.kind == "f":  # labels 0.0, 1.0, ... are fine; 0.5 is a regression target
            if not np.all(np.isfinite(labels)):
                raise ValueError("Input y contains NaN or infinity: expected class labels")
            if np.any(labels != np.round(labels)):
                raise ValueError("Unknown label type: continuous. y holds fractional numbers, "
                                 "a regression target: use LSTMRegressor")
        elif labels.dtype.kind not in "iubUSO":
            raise ValueError(f"Unknown label type: y of dtype {labels.dtype}; expected class "
                             "labels (ints, strings)")
        valid = None if not per_step or seq.lengths is None else seq.valid()
        return labels, valid

    def _targets(self, y, seq, per_step, first, classes=None):
        """(class ids (n,) or (n, T) in classes_, valid (n, T) bool or None)."""
        labels, valid = self._labels(y, seq, per_step)
        counted = labels if valid is None else labels[valid]
        if first:
            try:
                found = np.unique(counted if classes is None
                                  else check.to_numpy(classes, "classes"))
            except TypeError as e:  # e.g. ints and strings mixed in an object array
                raise ValueError(f"Unknown label type: labels that do not sort ({e})") from None
            if len(found) < 2:
                raise ValueError(f"y: expected at least 2 classes, got {len(found)} class "
                                 f"({found.tolist()})")
            self.classes_ = found
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the first call's {self.classes_}")
        ids = np.searchsorted(self.classes_, labels)
        ids = np.minimum(ids, len(self.classes_) - 1)
        unknown = self.classes_[ids] != labels
        if valid is not None:
            unknown &= valid
            ids[~valid] = 0
        if unknown.any():
            bad = np.unique(labels[unknown])[:5]
            raise ValueError(f"y: labels {bad.tolist()} are not among the classes "
                             f"{self.classes_.tolist()}")
        return ids.astype(np.intp), valid

    def predict_proba(self, X, lengths=None):
        """Class probabilities, columns in classes_ order: (n, n_classes).

        Per step: (n, T, n_classes), or a list of (T_i, n_classes) for a list.
        """
        z, seq = self._raw_outputs(X, lengths)
        z -= z.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        if self._params["return_sequences"]:
            if seq.lengths is not None:
                p[~seq.valid()] = 0
            return self._per_step_like_input(X, p, seq)
        return p

    def predict(self, X, lengths=None):
        """The most probable class: (n,) labels; per step (n, T) or a list of (T_i,).

        Per step for a padded X with lengths=, the labels past each sequence's
        end are placeholders: read only each sequence's own steps.
        """
        z, seq = self._raw_outputs(X, lengths)
        labels = self.classes_[z.argmax(axis=-1)]
        if self._params["return_sequences"]:
            return self._per_step_like_input(X, labels, seq)
        return labels

    def score(self, X, y, lengths=None):
        """Accuracy: the fraction of labels predicted right, over every sequence (or valid step)."""
        z, seq = self._raw_outputs(X, lengths)
        labels, valid = self._labels(y, seq, self._params["return_sequences"])
        right = self.classes_[z.argmax(axis=-1)] == labels
        return float(right.mean() if valid is None else right[valid].mean())
