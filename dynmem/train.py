r"""Gradient training of models on sequences (docs/theory.md section 5).

The gradient-free exponential-sum fit of a memory kernel
(:func:`fit_exponential_sum`) is in :mod:`dynmem.expsum` and re-exported here.

* :func:`train` - gradient training of a discrete recurrence
  (:class:`~dynmem.models.DiscreteRNN`, :class:`~dynmem.models.EulerRNN`) on
  input / output sequences with Adam ([KB]) or L-BFGS, using the hand-written
  BPTT gradients of :func:`dynmem.recurrences.value_and_grad` (never finite
  differences), optionally through a stable diagonal reparameterisation
  ``W = diag(f(w))`` ([WLL] eq. (16), docs/theory.md section 5).
  :func:`train_ctrnn` does the same for continuous-time models with the
  adjoint gradients of :func:`dynmem.adjoint.adjoint_gradient`.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [KB] D. P. Kingma, J. Ba, *Adam: A Method for Stochastic Optimization*,
   ICLR 2015, arXiv:1412.6980, Algorithm 1.
"""

from __future__ import annotations

import sys
import time as _time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.optimize

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_nonnegative, check_positive, describe, check_rng
from .models import CTRNN, DiscreteModel, DiscreteRNN, EulerRNN, LinearRNN, Trainable
from .recurrences import forward, value_and_grad

# The exponential-sum fits moved to dynmem.expsum; re-exported here, where they were.
from .expsum import ExpSumFit, fit_exponential_sum  # noqa: E402,F401

try:  # reparam.py is developed alongside; train works without it.
    from .reparam import REPARAMS as _REPARAMS
    from .reparam import Reparam, diagonal_W, get_reparam, grad_w_diagonal
except ImportError:  # pragma: no cover - only while reparam.py is absent
    _REPARAMS = ()
    Reparam = None  # type: ignore[assignment,misc]

__all__ = ["ExpSumFit", "fit_exponential_sum", "TrainResult", "train", "train_ctrnn"]


# =============================================================================
# Gradient training
# =============================================================================


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Result of :func:`train` and :func:`train_ctrnn`.

    Attributes
    ----------
    model : model
        The trained model (same class and settings as the one given; with a
        validation split, the iterate with the smallest validation loss).
    history : ndarray, shape (n,)
        Training losses.  Adam: the (minibatch) loss at each step's iterate
        before its update.  L-BFGS: the loss at the start and after every
        accepted iteration (non-increasing).
    val_history : ndarray, shape (n_checks,)
        Validation losses (empty without a validation split).
    loss : float
        Loss of the returned model on the whole training set.
    n_steps : int
        Updates taken (Adam steps or L-BFGS iterations).
    success : bool
        ``False`` if the run failed (divergence, line-search failure).
    message : str
        Why it stopped.
    time : float
        Wall-clock seconds.
    stopped_early : bool
        Whether early stopping or the callback ended the run.
    theta : ndarray
        The final optimisation variables (the flattened parameters, with
        ``w`` in place of ``W`` under a reparameterisation).
    """

    model: object
    history: np.ndarray
    val_history: np.ndarray
    loss: float
    n_steps: int
    success: bool
    message: str
    time: float
    stopped_early: bool
    theta: np.ndarray


class _Problem:
    """Map optimisation variables to a model and back, and evaluate losses and gradients."""

    def __init__(self, model, reparam):
        self.template = model
        self.reparam = reparam
        self.m = model.hidden
        # The RNNs' gradients come from dynmem.recurrences; every other model brings its own (Trainable).
        self.own_grad = not isinstance(model, (DiscreteRNN, EulerRNN))
        if self.own_grad and reparam is not None:
            raise ValueError(f"`reparam` (W = diag(f(w))) applies to a DiscreteRNN or an EulerRNN only; got a "
                             f"{type(model).__name__}.")

    def theta0(self) -> np.ndarray:
        theta = self.template.flatten()
        if self.reparam is None:
            return theta
        W = np.asarray(self.template.W)
        off = W - np.diag(np.diag(W))
        if np.any(off != 0):
            raise ValueError(
                f"`model.W` must be diagonal when `reparam` is given (W = diag(f(w))); got max |W_ij| = {np.max(np.abs(off)):.3g} off the diagonal."
            )
        try:
            w = np.atleast_1d(self.reparam.inverse(np.diag(W)))
        except ValueError as exc:
            raise ValueError(f"`model.W` has a diagonal outside the range of the {self.reparam.name!r} reparameterisation: {exc}") from None
        return np.concatenate([w, theta[self.m * self.m:]])

    def model(self, theta: np.ndarray):
        if self.reparam is None:
            return self.template.unflatten(theta)
        m = self.m
        W = diagonal_W(self.reparam, theta[:m])
        return self.template.unflatten(np.concatenate([W.ravel(), theta[m:]]))

    def grad_theta(self, theta: np.ndarray, flat_grad: np.ndarray) -> np.ndarray:
        """Chain rule from the model's flat gradient to ``theta``: ``dL/dw = diag(dL/dW) f'(w)``."""
        if self.reparam is None:
            return flat_grad
        m = self.m
        gw = grad_w_diagonal(self.reparam, theta[:m], flat_grad[: m * m].reshape(m, m))
        return np.concatenate([gw, flat_grad[m * m:]])

    def value_and_grad(self, theta, X, Y, loss):
        model = self.model(theta)
        res = model.value_and_grad(X, Y, loss=loss) if self.own_grad else value_and_grad(model, X, Y, loss=loss)
        return res.loss, self.grad_theta(theta, res.flat)


def _outputs(model, X) -> np.ndarray:
    if isinstance(model, (DiscreteRNN, EulerRNN)):
        return forward(model, X).y
    return model.outputs(X, np.zeros((X.shape[0], model.state_size)))


def _loss_only(model, X, Y, loss: str) -> float:
    """The loss (``inf`` when it overflows float64; a diverging recurrence raises FloatingPointError)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = _outputs(model, X) - Y
        return float(np.mean(r * r)) if loss == "mse" else 0.5 * float(np.sum(r * r))


def _resolve_reparam(reparam):
    if reparam is None:
        return None
    if not _REPARAMS:  # pragma: no cover
        raise ValueError("`reparam` needs dynmem.reparam, which is not available in this installation.")
    if Reparam is not None and isinstance(reparam, Reparam):
        return reparam
    check_choice("reparam", reparam, _REPARAMS)
    return get_reparam(reparam)


def _check_training_data(model, X, Y):
    if not (isinstance(model, (DiscreteRNN, EulerRNN))
            or (isinstance(model, Trainable) and isinstance(model, DiscreteModel))):
        raise TypeError(
            "`model` must be a DiscreteRNN or an EulerRNN, or a discrete model with its own gradient (the "
            "dynmem.models.Trainable and DiscreteModel contracts: GRUCell, LSTMCell, DiscreteDiagonalSSM); for a "
            f"CTRNN use train_ctrnn; got {describe(model)}."
        )
    X = as_float_array("X", X, ndim=3)
    if X.shape[2] != model.inputs:
        raise ValueError(f"`X` must have shape (batch, T, {model.inputs}) to match the model's inputs; got shape {X.shape}.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"`X` must hold at least one sequence of at least one step; got shape {X.shape}.")
    Y = as_float_array("Y", Y, shape=X.shape[:2])
    return X, Y


class _Monitor:
    """Plateau / validation early stopping with patience."""

    def __init__(self, patience, tol):
        self.patience = patience
        self.tol = tol
        self.best = np.inf
        self.bad = 0

    def update(self, value: float) -> tuple[bool, bool]:
        """Return (improved, stop)."""
        improved = value < self.best - self.tol * max(abs(self.best), 1e-300) if np.isfinite(self.best) else True
        if improved:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        return improved, self.patience is not None and self.bad >= self.patience


def train(
    model,
    X,
    Y,
    *,
    optimizer: str = "adam",
    loss: str = "mse",
    steps: int = 1000,
    lr: float = 1e-2,
    batch_size: int | None = None,
    reparam=None,
    early_stopping: int | None = None,
    validation_split: float = 0.0,
    tol: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    rng=None,
    progress: bool = False,
    callback: Callable | None = None,
) -> TrainResult:
    r"""Train a discrete recurrence on input / target sequences.

    Parameters
    ----------
    model : DiscreteRNN, EulerRNN, GRUCell, LSTMCell, DiscreteDiagonalSSM or any Trainable DiscreteModel
        Initial model.  The RNNs' gradients come from
        :func:`dynmem.recurrences.value_and_grad`; every other model's from
        its own ``value_and_grad`` (:class:`dynmem.models.Trainable`: the
        cells' and the SSM's hand-written BPTT), on the flat parameters of
        ``flatten()`` (real and imaginary parts of the SSM's complex arrays),
        with zero initial state.
    X : array_like, shape (batch, T, d)
        Input sequences.
    Y : array_like, shape (batch, T)
        Targets for the model's outputs ``y_k`` (``c^T h_{k+1}``; plus
        ``D^T x_k`` for the SSM).
    optimizer : {"adam", "lbfgs"}
        ``"adam"``: [KB] Algorithm 1 on minibatches,

        .. math::

            m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t,\quad
            v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,\quad
            \theta_t = \theta_{t-1} - \eta\, \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} .

        ``"lbfgs"``: :func:`scipy.optimize.minimize` with ``method="L-BFGS-B"``
        and ``jac=True`` on the flattened parameters, full batch.
    loss : {"mse", "sse"}
        As in :func:`dynmem.recurrences.value_and_grad`, which supplies every
        gradient (hand-written BPTT).
    steps : int
        Maximum Adam steps or L-BFGS iterations.
    lr : float
        Adam step size ``eta`` (unused by L-BFGS).
    batch_size : int, optional
        Adam minibatch size; each step draws that many training sequences
        without replacement with ``rng``.  ``None``: full batch.
    reparam : {"exp", "softplus", "best", "best_discrete", "direct"} or Reparam, optional
        DiscreteRNN / EulerRNN only.  Train ``w`` with ``W = diag(f(w))`` (:func:`dynmem.reparam.diagonal_W`;
        [WLL] eq. (16), docs/theory.md section 5).  ``model.W`` must be diagonal
        with entries in the range of ``f``; ``w`` starts at ``f^{-1}(diag W)``.
        Chain rule: ``dL/dw = diag(dL/dW) * f'(w)``.
    early_stopping : int, optional
        Patience: stop when the monitored loss has not improved by a relative
        ``tol`` for this many consecutive steps (Adam) or iterations
        (L-BFGS).  The monitored loss is the validation loss with a
        validation split, the training loss otherwise (a plateau).
    validation_split : float
        Fraction in ``[0, 1)`` of the sequences held out (chosen with
        ``rng``) for validation; the returned model is then the iterate with
        the smallest validation loss.
    tol : float
        Relative improvement that counts for early stopping; for L-BFGS also
        scipy's ``tol`` (``ftol`` and ``gtol``).
    betas, eps : float
        Adam's ``beta_1, beta_2`` and ``epsilon`` ([KB] defaults).
    rng : None, int or numpy.random.Generator
        Randomness of minibatches and the validation split.
    progress : bool
        Print the loss about ten times to stderr.
    callback : callable, optional
        ``callback(step, loss, model)`` after each step; returning ``True`` stops.

    Returns
    -------
    TrainResult

    Raises
    ------
    TypeError, ValueError
        For invalid arguments (the message names the argument).

    Notes
    -----
    Numerical failures (see :mod:`dynmem.errors`): a diverging recurrence
    (any non-finite state), a loss that overflows float64 (e.g. targets of
    order 1e300) or a non-finite gradient ends an Adam run with
    ``success=False``, a message naming the cause, and the last finite
    iterate as ``model`` (no step is ever taken from a non-finite loss); for
    L-BFGS the value is reported as ``inf`` to the line search, which
    backtracks, and a failure at the initial parameters ends the run the same
    way.  ``loss`` is then the loss of the returned model, ``inf`` if even
    that overflows.
    """
    X, Y = _check_training_data(model, X, Y)
    check_choice("optimizer", optimizer, ("adam", "lbfgs"))
    check_choice("loss", loss, ("mse", "sse"))
    steps = check_int("steps", steps, minimum=1)
    lr = check_positive("lr", lr)
    tol = check_nonnegative("tol", tol)
    if early_stopping is not None:
        early_stopping = check_int("early_stopping", early_stopping, minimum=1)
    validation_split = check_nonnegative("validation_split", validation_split)
    if validation_split >= 1:
        raise ValueError(f"`validation_split` must lie in [0, 1); got {validation_split}.")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise TypeError(f"`betas` must be a pair (beta_1, beta_2); got {describe(betas)}.")
    for name, beta in zip(("betas[0]", "betas[1]"), betas):
        beta = check_nonnegative(name, beta)
        if beta >= 1:
            raise ValueError(f"`{name}` must lie in [0, 1); got {beta}.")
    eps = check_positive("eps", eps)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable(step, loss, model) or None; got {describe(callback)}.")
    rp = _resolve_reparam(reparam)
    gen = check_rng("rng", rng)

    B = X.shape[0]
    if validation_split > 0:
        n_val = max(1, int(round(validation_split * B)))
        if n_val >= B:
            raise ValueError(f"`validation_split` = {validation_split} leaves no training sequences out of batch {B}; lower it.")
        perm = gen.permutation(B)
        Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
        X, Y = X[perm[n_val:]], Y[perm[n_val:]]
        B = X.shape[0]
    else:
        Xv = Yv = None
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > B:
            raise ValueError(f"`batch_size` must be <= {B} (training sequences); got {batch_size}.")

    prob = _Problem(model, rp)
    theta0 = prob.theta0()
    report_every = max(1, steps // 10)
    start = _time.perf_counter()
    if optimizer == "adam":
        out = _adam(prob, theta0, X, Y, Xv, Yv, loss, steps, lr, batch_size, betas, eps, early_stopping, tol, gen,
                    progress, report_every, callback)
    else:
        out = _lbfgs(prob, theta0, X, Y, Xv, Yv, loss, steps, early_stopping, tol, progress, report_every, callback)
    theta, history, val_history, n_steps, success, message, stopped = out
    final = prob.model(theta)
    try:
        final_loss = _loss_only(final, X, Y, loss)
    except FloatingPointError:
        final_loss = np.inf
    return TrainResult(final, np.asarray(history, dtype=float), np.asarray(val_history, dtype=float), final_loss,
                       int(n_steps), bool(success), message, _time.perf_counter() - start, bool(stopped), theta)


def _say(progress, step, value, val=None):
    if progress:
        extra = "" if val is None else f"  val {val:.6g}"
        print(f"[dynmem.train] step {step}: loss {value:.6g}{extra}", file=sys.stderr)


def _after_step(prob, monitor, theta, k, value, Xv, Yv, loss, val_history, progress, report_every, callback, unit):
    """The bookkeeping after step ``k`` that Adam and L-BFGS share: validation loss, progress, callback, early stop.

    Returns ``(new_best, stop_message)``: ``new_best`` when the validation loss
    improved (the caller keeps ``theta`` as the best iterate), and the reason
    to stop (``None`` to go on).  ``unit`` names a step in the messages.
    """
    val = None
    if Xv is not None:
        try:
            val = _loss_only(prob.model(theta), Xv, Yv, loss)
        except FloatingPointError:
            val = np.inf
        val_history.append(val)
        improved, stop = monitor.update(val)
    else:
        improved, stop = monitor.update(value)
    if progress and (k % report_every == 0 or k == 1):
        _say(progress, k, value, val)
    new_best = improved and Xv is not None
    if callback is not None and callback(k, value, prob.model(theta)):
        return new_best, f"stopped by the callback at {unit} {k}"
    if stop:
        what = "validation loss" if Xv is not None else "training loss"
        return new_best, (f"early stopping at {unit} {k}: the {what} did not improve for {monitor.patience} "
                          f"{unit}s")
    return new_best, None


def _adam(prob, theta, X, Y, Xv, Yv, loss, steps, lr, batch_size, betas, eps, patience, tol, gen, progress,
          report_every, callback):
    b1, b2 = float(betas[0]), float(betas[1])
    mom = np.zeros_like(theta)
    vel = np.zeros_like(theta)
    history, val_history = [], []
    monitor = _Monitor(patience, tol)
    best_theta = theta.copy()
    B = X.shape[0]
    success, message, stopped = True, f"reached the step limit ({steps})", False
    k = 0
    for k in range(1, steps + 1):
        if batch_size is None or batch_size == B:
            Xb, Yb = X, Y
        else:
            idx = gen.choice(B, size=batch_size, replace=False)
            Xb, Yb = X[idx], Y[idx]
        try:
            value, g = prob.value_and_grad(theta, Xb, Yb, loss)
        except FloatingPointError as exc:
            # Never step from a non-finite loss or gradient: keep the last finite iterate.
            success, message, k = False, (f"diverged at step {k} (non-finite loss or gradient; the model is the "
                                          f"last finite iterate): {exc}"), k - 1
            break
        if not (np.isfinite(value) and np.all(np.isfinite(g))):  # pragma: no cover - value_and_grad raises first
            success, message, k = False, f"diverged at step {k}: the loss or gradient is not finite", k - 1
            break
        history.append(value)
        # [KB] Algorithm 1, with bias-corrected moments.
        mom = b1 * mom + (1.0 - b1) * g
        vel = b2 * vel + (1.0 - b2) * g * g
        m_hat = mom / (1.0 - b1**k)
        v_hat = vel / (1.0 - b2**k)
        new = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        if not np.all(np.isfinite(new)):
            success, message, k = False, f"the parameters became non-finite at step {k}", k - 1
            break
        theta = new
        new_best, stop_message = _after_step(prob, monitor, theta, k, value, Xv, Yv, loss, val_history, progress,
                                             report_every, callback, "step")
        if new_best:
            best_theta = theta.copy()
        if stop_message is not None:
            message, stopped = stop_message, True
            break
    if Xv is not None and len(val_history):
        theta = best_theta
    return theta, history, val_history, k, success, message, stopped


class _Stop(Exception):
    pass


def _lbfgs(prob, theta0, X, Y, Xv, Yv, loss, steps, patience, tol, progress, report_every, callback):
    history, val_history = [], []
    monitor = _Monitor(patience, tol)
    state = {"k": 0, "best": theta0.copy(), "msg": None, "why": ""}

    def fun(theta):
        try:
            return prob.value_and_grad(theta, X, Y, loss)
        except FloatingPointError as exc:
            # The line search backtracks from an infinite value.
            state["why"] = str(exc)
            return np.inf, np.zeros_like(theta)

    def cb(intermediate_result):
        state["k"] += 1
        k = state["k"]
        value = float(intermediate_result.fun)
        theta = intermediate_result.x
        history.append(value)
        new_best, stop_message = _after_step(prob, monitor, theta, k, value, Xv, Yv, loss, val_history, progress,
                                             report_every, callback, "iteration")
        if new_best:
            state["best"] = theta.copy()
        if stop_message is not None:
            state["msg"] = stop_message
            raise StopIteration

    f0, _ = fun(theta0)
    history.append(f0)
    if Xv is not None and np.isfinite(f0):
        v0 = _loss_only(prob.model(theta0), Xv, Yv, loss)
        val_history.append(v0)
        monitor.update(v0)
    else:
        monitor.update(f0)
    if not np.isfinite(f0):
        return (theta0, history, val_history, 0, False,
                f"the recurrence diverged or the loss overflowed at the initial parameters: {state['why']}", False)
    res = scipy.optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", tol=tol if tol > 0 else None,
                                  callback=cb, options={"maxiter": steps})
    stopped = state["msg"] is not None
    theta = state["best"] if Xv is not None else res.x
    if not (np.all(np.isfinite(theta)) and np.isfinite(res.fun)):  # pragma: no cover - scipy keeps the best iterate
        theta = state["best"]
    message = state["msg"] if stopped else str(res.message)
    # Hitting maxiter is not a numerical failure.
    success = (bool(res.success) or stopped or res.status == 1) and bool(np.isfinite(res.fun))
    return theta, history, val_history, state["k"], success, message, stopped


# =============================================================================
# Continuous time
# =============================================================================


def train_ctrnn(
    model,
    x,
    t_obs,
    y_obs,
    *,
    steps: int = 100,
    tol: float = 1e-8,
    h0=None,
    weights=None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "auto",
    progress: bool = False,
    callback: Callable | None = None,
) -> TrainResult:
    r"""Fit a continuous-time model to observed outputs by L-BFGS with adjoint gradients.

    Minimises ``L = 1/2 sum_i w_i (y(t_i) - y_i^obs)^2`` over all of
    ``model.flatten()`` with :func:`scipy.optimize.minimize`
    (``method="L-BFGS-B"``, ``jac=True``); loss and gradient come from
    :func:`dynmem.adjoint.adjoint_gradient` (docs/theory.md section 8).

    Parameters
    ----------
    model : CTRNN or LinearRNN
    x : InputPath
        Input path (see :mod:`dynmem.inputs`, e.g. :func:`~dynmem.inputs.from_sequence`).
    t_obs : array_like, shape (n,)
        Observation times.
    y_obs : array_like, shape (n,)
        Observed outputs.
    steps : int
        Maximum L-BFGS iterations.
    tol : float
        scipy's ``tol``.
    h0, weights, rtol, atol, method
        Passed to :func:`~dynmem.adjoint.adjoint_gradient` (``method="auto"``:
        its compiled dopri5 adjoint for affine input paths, scipy RK45 otherwise).
    progress : bool
        Print the loss about ten times.
    callback : callable, optional
        ``callback(iteration, loss, model)``; returning ``True`` stops.

    Returns
    -------
    TrainResult
        ``history`` holds the loss at the start and after each iteration.
    """
    from .adjoint import adjoint_gradient
    from .simulate import SimulationError

    if not isinstance(model, (CTRNN, LinearRNN)):
        raise TypeError(f"`model` must be a CTRNN or a LinearRNN (for discrete models use train); got {describe(model)}.")
    steps = check_int("steps", steps, minimum=1)
    tol = check_nonnegative("tol", tol)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable(step, loss, model) or None; got {describe(callback)}.")
    kw = dict(h0=h0, weights=weights, rtol=rtol, atol=atol, method=method)
    theta0 = model.flatten()
    first = adjoint_gradient(model, x, t_obs, y_obs, **kw)  # validates every argument once
    history = [first.loss]
    state = {"k": 0, "msg": None}
    report_every = max(1, steps // 10)

    def fun(theta):
        try:
            res = adjoint_gradient(model.unflatten(theta), x, t_obs, y_obs, **kw)
        except (SimulationError, FloatingPointError):
            return np.inf, np.zeros_like(theta)
        return res.loss, res.flat

    def cb(intermediate_result):
        state["k"] += 1
        value = float(intermediate_result.fun)
        history.append(value)
        if progress and (state["k"] % report_every == 0 or state["k"] == 1):
            _say(progress, state["k"], value)
        if callback is not None and callback(state["k"], value, model.unflatten(intermediate_result.x)):
            state["msg"] = f"stopped by the callback at iteration {state['k']}"
            raise StopIteration

    start = _time.perf_counter()
    res = scipy.optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", tol=tol if tol > 0 else None,
                                  callback=cb, options={"maxiter": steps})
    stopped = state["msg"] is not None
    final = model.unflatten(res.x)
    return TrainResult(final, np.asarray(history), np.zeros(0), float(res.fun), state["k"],
                       bool(res.success) or stopped or res.status == 1, state["msg"] or str(res.message),
                       _time.perf_counter() - start, stopped, res.x)
