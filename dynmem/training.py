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
* :func:`train_epochs` - the epoch-based protocol trainer of the trained
  experiments: Adam / AdamW, cosine or plateau schedules, clipping by total
  norm, a penalty hook, snapshots, a validation threshold, and atomic
  checkpoints (:func:`dynmem.io.atomic_savez`) from which an interrupted run
  resumes with the same numbers; its knobs are one :class:`TrainOptions`.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [KB] D. P. Kingma, J. Ba, *Adam: A Method for Stochastic Optimization*,
   ICLR 2015, arXiv:1412.6980, Algorithm 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time as _time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.optimize

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_nonnegative, check_positive, describe, check_rng
from .io import atomic_savez
from .models import CTRNNForm, DiscreteModel, Trainable
from .models.sequences import value_and_grad  # the one door: every model's own gradient
from .recurrences import Recurrence, forward

# The exponential-sum fits moved to dynmem.expsum; re-exported here, where they were.
from .expsum import ExpSumFit, fit_exponential_sum  # noqa: E402,F401

try:  # reparam.py is developed alongside; train works without it.
    from .reparam import REPARAMS as _REPARAMS
    from .reparam import Reparam, diagonal_W, get_reparam, grad_w_diagonal
except ImportError:  # pragma: no cover - only while reparam.py is absent
    _REPARAMS = ()
    Reparam = None  # type: ignore[assignment,misc]

__all__ = ["ExpSumFit", "fit_exponential_sum", "TrainResult", "train", "train_ctrnn", "TrainOptions", "EpochResult",
           "train_epochs", "cosine_lr"]


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
        # W = diag(f(w)) needs the recurrence's arrays (dynmem.recurrences.Recurrence); every model brings its
        # own gradient (Trainable: the RNNs through dynmem.recurrences).
        if reparam is not None and not isinstance(model, Recurrence):
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
        res = value_and_grad(model, X, Y, loss=loss)
        return res.loss, self.grad_theta(theta, res.flat)


def _outputs(model, X) -> np.ndarray:
    if isinstance(model, Recurrence):
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
    if not (isinstance(model, Trainable) and isinstance(model, DiscreteModel)):  # the RNNs too
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
        print(f"[dynmem.training] step {step}: loss {value:.6g}{extra}", file=sys.stderr)


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
        with np.errstate(over="ignore"):
            vel = b2 * vel + (1.0 - b2) * g * g
        if not np.all(np.isfinite(vel)):
            # g * g overflowed: the step would be 0 in those entries and the run would stall in silence.
            success, message, k = False, (f"diverged at step {k}: the gradient's second moment overflowed "
                                          f"(max |g| = {np.max(np.abs(g)):.3g}; the model is the last finite "
                                          "iterate)"), k - 1
            break
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
        if not np.all(np.isfinite(theta)):
            # scipy's line search can propose a non-finite point after an overflowing gradient;
            # an infinite value makes it backtrack or stop, as for a diverging recurrence.
            state["why"] = "the line search proposed non-finite parameters (the gradient overflowed)"
            return np.inf, np.zeros_like(theta)
        try:
            return prob.value_and_grad(theta, X, Y, loss)
        except FloatingPointError as exc:
            # The line search backtracks from an infinite value.
            state["why"] = str(exc)
            return np.inf, np.zeros_like(theta)

    def cb(intermediate_result):
        value = float(intermediate_result.fun)
        if not np.isfinite(value):  # an accepted non-finite iterate: stop before counting it
            raise StopIteration
        state["k"] += 1
        k = state["k"]
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
    if not np.isfinite(res.fun):
        message = f"diverged: {state['why'] or 'a non-finite loss'} (the model is the last finite iterate)"
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
    from .errors import SimulationError

    if not isinstance(model, CTRNNForm):
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


# =============================================================================
# Epoch-based protocol training
# =============================================================================


def cosine_lr(lr0: float, lr_min: float, epoch: int, epochs: int) -> float:
    r"""The cosine schedule: ``lr_min + (lr0 - lr_min) (1 + cos(pi e / E)) / 2`` for epoch ``e`` (from 0) of ``E``."""
    return float(lr_min) + 0.5 * (float(lr0) - float(lr_min)) * (1.0 + math.cos(math.pi * int(epoch) / int(epochs)))


_SCHEDULES = (None, "plateau", "cosine")


@dataclass(frozen=True)
class TrainOptions:
    r"""Every knob of :func:`train_epochs`, in one record.

    Attributes
    ----------
    lr : float
        Initial learning rate ``eta_0``.
    batch_size : int
        Minibatch size; epoch ``e`` visits the training sequences in the order
        ``default_rng([seed, e]).permutation(N)``, each batch sorted.
    max_epochs : int
    min_epochs : int
        No threshold stop before this many epochs.
    optimizer : {"adam", "adamw"}
        [KB] Algorithm 1 per parameter entry; ``"adamw"`` first decays the
        parameters by ``1 - lr * weight_decay`` (decoupled weight decay,
        Loshchilov & Hutter).  ``"adam"`` takes no weight decay.
    weight_decay : float
    betas, eps
        Adam's ``beta_1, beta_2`` and ``epsilon``.
    schedule : {None, "plateau", "cosine"}
        ``"cosine"``: :func:`cosine_lr` from ``lr`` to ``lr_min`` over
        ``max_epochs``, set at the start of each epoch.  ``"plateau"``: after an
        epoch whose validation loss is not below ``best * (1 - plateau_threshold)``
        a counter grows; when it exceeds ``plateau_patience`` the rate is
        multiplied by ``plateau_factor`` and the counter reset (PyTorch's
        ``ReduceLROnPlateau`` in ``"rel"`` mode).
    lr_min, plateau_factor, plateau_patience, plateau_threshold
        The schedules' constants.
    clip_norm : float, optional
        Rescale the gradient by ``clip_norm / (|g| + 1e-6)`` when its total
        Euclidean norm ``|g|`` (summed block by block in ``param_names``
        order) exceeds it.
    time_weight_power : float
        ``p`` of the squared time weights (:func:`dynmem.residual.time_weights`);
        ``p != 0`` needs a model whose ``value_and_grad`` takes ``weights``
        (:class:`~dynmem.residual.ResidualRNN`).
    penalty : callable, optional
        ``penalty(model) -> (value, {name: gradient})`` added to the loss
        gradient at every step (e.g. :class:`dynmem.residual.MarginPenalty`).
        The value is not part of the reported training loss.
    snapshots : tuple of int
        Epochs after which the parameters are kept.
    threshold : float, optional
        Stop once ``epoch >= min_epochs`` and the validation loss is below it.
    checkpoint : str, optional
        ``.npz`` path, written atomically at most every ``save_every`` seconds
        and at the end; if it holds a run with the same ``key`` the run resumes
        from it (a finished run returns at once).
    key : str
        Identifies the run in its checkpoint (another run's checkpoint is ignored).
    time_budget : float, optional
        Stop (``stopped="time_budget"``) after this many seconds of training
        in this call; the checkpoint lets a later call continue.
    save_every : float
        Seconds between checkpoints.
    """

    lr: float
    batch_size: int
    max_epochs: int
    min_epochs: int = 1
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str | None = None
    lr_min: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    clip_norm: float | None = None
    time_weight_power: float = 0.0
    penalty: Callable | None = None
    snapshots: tuple = ()
    threshold: float | None = None
    checkpoint: str | None = None
    key: str = ""
    time_budget: float | None = None
    save_every: float = 15.0

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("max_epochs", self.max_epochs, minimum=0)
        check_int("min_epochs", self.min_epochs, minimum=0)
        check_choice("optimizer", self.optimizer, ("adam", "adamw"))
        check_nonnegative("weight_decay", self.weight_decay)
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError(f"`weight_decay` = {self.weight_decay} needs optimizer 'adamw' (decoupled weight decay); "
                             "'adam' takes none.")
        if self.schedule is not None:
            check_choice("schedule", self.schedule, _SCHEDULES[1:])
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        if self.penalty is not None and not callable(self.penalty):
            raise TypeError(f"`penalty` must be callable(model) -> (value, grads) or None; got {describe(self.penalty)}.")
        object.__setattr__(self, "snapshots", tuple(int(e) for e in self.snapshots))


@dataclass(frozen=True, eq=False)
class EpochResult:
    """The outcome of :func:`train_epochs` (also what a checkpoint holds).

    Attributes
    ----------
    model, best_model : model
        The last iterate and the one with the smallest validation loss (the
        initial model counts).
    history : ndarray, shape (epochs, 6)
        Per epoch: epoch, steps, mean training loss (data term, over the
        epoch's minibatches), validation loss, learning rate, seconds so far.
    snapshots : dict
        ``epoch -> model`` at the snapshot epochs.
    epochs, steps : int
    stopped : str
        ``"threshold"``, ``"max_epochs"``, ``"diverged"`` (the model is then
        the best one) or ``"time_budget"``.
    best_val, last_val : float
    seconds : float
        Training wall time, summed over resumptions.
    resumed : int
        How many times the run was resumed from a checkpoint.
    """

    model: object
    best_model: object
    history: np.ndarray
    snapshots: dict
    epochs: int
    steps: int
    stopped: str
    best_val: float
    last_val: float
    seconds: float
    resumed: int


def _blocks(model) -> list[tuple[str, tuple]]:
    """``(name, shape)`` of the flat parameter blocks: the model's ``param_shapes``, or one block ``theta``."""
    shapes = getattr(model, "param_shapes", None)
    if isinstance(shapes, dict) and sum(int(np.prod(s)) for s in shapes.values()) == model.n_params:
        return [(str(k), tuple(v)) for k, v in shapes.items()]
    return [("theta", (int(model.n_params),))]


def _slices(blocks) -> dict:
    out, i = {}, 0
    for name, shape in blocks:
        size = int(np.prod(shape))
        out[name] = slice(i, i + size)
        i += size
    return out


def _weighted(model) -> bool:
    """Whether the model trains on time-weighted errors (``weighted_error``; its ``value_and_grad`` takes ``weights``)."""
    return callable(getattr(model, "weighted_error", None))


def _epoch_grad(model, X, Y, wt2):
    if _weighted(model):
        res = model.value_and_grad(X, Y, weights=wt2)
    else:
        res = value_and_grad(model, X, Y)
    flat = np.asarray(res.flat, dtype=float)
    if not (math.isfinite(res.loss) and np.all(np.isfinite(flat))):
        raise FloatingPointError("the training loss or its gradient became non-finite.")
    return float(res.loss), flat.copy()


def _epoch_val(model, X, Y, wt2) -> float:
    if _weighted(model):
        return float(model.weighted_error(X, Y, wt2))
    try:
        with np.errstate(all="ignore"):
            r = _outputs(model, X) - Y
            v = float(np.mean(wt2[None, :] * r * r))
    except FloatingPointError:
        return math.inf
    return v if math.isfinite(v) else math.inf


def _save_epochs(path, blocks, theta, best, mom, vel, t, lr, plateau, history, snaps, epoch, steps, best_val, done,
                 stopped, seconds, resumed, key):
    arrays = {}
    sl = _slices(blocks)
    for name, shape in blocks:
        for prefix, vec in (("p", theta), ("best", best), ("m", mom), ("v", vel)):
            arrays[f"{prefix}/{name}"] = vec[sl[name]].reshape(shape)
    for e, vec in snaps.items():
        for name, shape in blocks:
            arrays[f"snap{int(e)}/{name}"] = vec[sl[name]].reshape(shape)
    arrays["history"] = np.asarray(history, dtype=float).reshape(-1, 6)
    meta = dict(key=key, t=int(t), lr=float(lr), plateau=plateau, epoch=int(epoch), steps=int(steps),
                best_val=float(best_val), done=bool(done), stopped=stopped, seconds=float(seconds),
                resumed=int(resumed), snapshots=[int(e) for e in snaps])
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def _load_epochs(path, key, blocks):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key:
                return None
            data = {k: z[k] for k in z.files}

        def vec(prefix):
            return np.concatenate([np.asarray(data[f"{prefix}/{name}"], dtype=float).reshape(-1) for name, _ in blocks])

        out = dict(meta=meta, p=vec("p"), best=vec("best"), m=vec("m"), v=vec("v"), history=data["history"],
                   snaps={int(e): vec(f"snap{int(e)}") for e in meta["snapshots"]})
    except (OSError, ValueError, KeyError, EOFError) as exc:  # unreadable: start again, say so
        print(f"[dynmem.training] checkpoint {path} unreadable ({type(exc).__name__}); training from the start",
              file=sys.stderr, flush=True)
        return None
    n = sum(int(np.prod(s)) for _, s in blocks)
    if out["p"].size != n:
        print(f"[dynmem.training] checkpoint {path} holds {out['p'].size} parameters, the model {n}; training from "
              "the start", file=sys.stderr, flush=True)
        return None
    return out


def train_epochs(model, data, options: TrainOptions, *, seed: int, progress: bool = False,
                 label: str = "") -> EpochResult:
    r"""Train ``model`` epoch by epoch under ``options``, resumably.

    Parameters
    ----------
    model : ResidualRNN, DiscreteRNN, EulerRNN or any Trainable DiscreteModel
        The initial model; gradients from its ``value_and_grad`` (hand-written
        BPTT), the loss the (time-weighted) MSE.
    data : mapping
        ``X`` (N, T, d), ``Y`` (N, T): training sequences; ``Xv``, ``Yv``:
        validation sequences (default: the training set).  The validation
        loss picks ``best_model``, drives the plateau schedule and the threshold.
    options : TrainOptions
    seed : int
        Epoch ``e`` shuffles with ``default_rng([seed, e])``: the run depends
        on ``(seed, epoch)`` alone, so a resumed run repeats the numbers of an
        uninterrupted one.
    progress : bool
        Print epochs 1-3 and every tenth to stderr, tagged with ``label``.

    Returns
    -------
    EpochResult

    Notes
    -----
    A non-finite loss, gradient or parameter ends the run with
    ``stopped="diverged"`` and the best model so far as ``model``.
    """
    if not (isinstance(model, Trainable) and isinstance(model, DiscreteModel)):
        raise TypeError(f"`model` must be a discrete model with a gradient (ResidualRNN, DiscreteRNN, EulerRNN or a "
                        f"Trainable DiscreteModel); got {describe(model)}.")
    if not isinstance(options, TrainOptions):
        raise TypeError(f"`options` must be a TrainOptions; got {describe(options)}.")
    from .models.residual import time_weights

    o = options
    X = as_float_array("data['X']", data["X"], ndim=3)
    Y = as_float_array("data['Y']", data["Y"], shape=X.shape[:2])
    Xv = as_float_array("data['Xv']", data["Xv"], ndim=3) if "Xv" in data else X
    Yv = as_float_array("data['Yv']", data["Yv"], shape=Xv.shape[:2]) if "Yv" in data else Y
    wt2, wt2v = time_weights(X.shape[1], o.time_weight_power), time_weights(Xv.shape[1], o.time_weight_power)
    if o.time_weight_power != 0 and not _weighted(model):
        raise ValueError(f"`time_weight_power` = {o.time_weight_power} needs a model with time-weighted gradients "
                         f"(ResidualRNN); got {describe(model)}.")
    lr0, wd = float(o.lr), float(o.weight_decay)
    b1, b2, eps = float(o.betas[0]), float(o.betas[1]), float(o.eps)
    bs, max_epochs, min_epochs = int(o.batch_size), int(o.max_epochs), int(o.min_epochs)
    snap_at = set(o.snapshots)
    N = X.shape[0]
    blocks = _blocks(model)
    sl = _slices(blocks)
    spans = [sl[name] for name, _ in blocks]

    ck = _load_epochs(o.checkpoint, o.key, blocks) if o.checkpoint and os.path.exists(o.checkpoint) else None
    if ck is not None:
        meta = ck["meta"]
        theta, best, mom, vel = ck["p"], ck["best"], ck["m"], ck["v"]
        t, lr, plateau = meta["t"], meta["lr"], meta["plateau"]
        history = [list(r) for r in ck["history"]]
        snaps = ck["snaps"]
        epoch, steps, best_val = meta["epoch"], meta["steps"], meta["best_val"]
        seconds, resumed = meta["seconds"], meta["resumed"] + (0 if meta["done"] else 1)
        if meta["done"]:
            hist = np.asarray(history, dtype=float).reshape(-1, 6)
            return EpochResult(model.unflatten(theta), model.unflatten(best), hist,
                               {e: model.unflatten(v) for e, v in snaps.items()}, epoch, steps, meta["stopped"],
                               best_val, float(hist[-1, 3]) if hist.size else math.inf, seconds, meta["resumed"])
        if progress:
            print(f"[dynmem.training] {label}: resuming at epoch {epoch}", file=sys.stderr, flush=True)
    else:
        theta = np.array(model.flatten(), dtype=float)
        best = theta.copy()
        mom, vel = np.zeros_like(theta), np.zeros_like(theta)
        t, lr = 0, lr0
        plateau = {"best": math.inf, "bad": 0}
        history, snaps = [], {}
        epoch, steps = 0, 0
        seconds, resumed = 0.0, 0
        val0 = _epoch_val(model, Xv, Yv, wt2v)
        best_val = val0 if math.isfinite(val0) else math.inf
    start = _time.perf_counter()
    last_save = start
    stopped = "max_epochs"
    done = False
    while epoch < max_epochs:
        if o.schedule == "cosine":
            lr = cosine_lr(lr0, o.lr_min, epoch, max_epochs)
        perm = np.random.default_rng([int(seed), int(epoch)]).permutation(N)
        tot, nb = 0.0, 0
        try:
            for s in range(0, N, bs):
                idx = np.sort(perm[s:s + bs])
                current = model.unflatten(theta)
                loss, g = _epoch_grad(current, X[idx], Y[idx], wt2)
                if o.penalty is not None:
                    _, pg = o.penalty(current)
                    for name, v in pg.items():
                        g[sl[name]] = g[sl[name]] + np.asarray(v, dtype=float).reshape(-1)
                if o.clip_norm:
                    total = math.sqrt(sum(float(np.sum(g[span] * g[span])) for span in spans))
                    if total > o.clip_norm:
                        g = g * (float(o.clip_norm) / (total + 1e-6))
                t += 1
                bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
                if wd:
                    theta *= 1.0 - lr * wd
                mom = b1 * mom + (1 - b1) * g
                with np.errstate(over="ignore"):
                    vel = b2 * vel + (1 - b2) * g * g
                if not np.all(np.isfinite(vel)):
                    # g * g overflowed: those entries would take no step from now on, a silent stall.
                    raise FloatingPointError("the gradient's second moment overflowed.")
                theta = theta - lr * (mom / bc1) / (np.sqrt(vel / bc2) + eps)
                if not np.all(np.isfinite(theta)):
                    raise FloatingPointError("the parameters became non-finite.")
                tot += loss
                nb += 1
                steps += 1
        except FloatingPointError:
            stopped = "diverged"
            theta = best.copy()
            done = True
            break
        epoch += 1
        val = _epoch_val(model.unflatten(theta), Xv, Yv, wt2v)
        if val < best_val:
            best_val = val
            best = theta.copy()
        if o.schedule == "plateau":
            if val < plateau["best"] * (1.0 - float(o.plateau_threshold)):
                plateau["best"], plateau["bad"] = val, 0
            else:
                plateau["bad"] += 1
            if plateau["bad"] > int(o.plateau_patience):
                lr *= float(o.plateau_factor)
                plateau["bad"] = 0
        if epoch in snap_at:
            snaps[epoch] = theta.copy()
        now = _time.perf_counter()
        history.append([epoch, steps, tot / max(nb, 1), val, lr, seconds + now - start])
        if progress and (epoch <= 3 or epoch % 10 == 0):
            print(f"[dynmem.training] {label}: epoch {epoch} steps {steps} train {tot / max(nb, 1):.3e} "
                  f"val {val:.3e} lr {lr:.1e} ({seconds + now - start:.0f} s)", file=sys.stderr, flush=True)
        if not math.isfinite(val):
            stopped, done = "diverged", True
            break
        if o.threshold is not None and epoch >= min_epochs and val < o.threshold:
            stopped, done = "threshold", True
            break
        if o.time_budget is not None and now - start > o.time_budget:
            stopped = "time_budget"
            break
        if o.checkpoint and now - last_save > o.save_every:
            _save_epochs(o.checkpoint, blocks, theta, best, mom, vel, t, lr, plateau, history, snaps, epoch, steps,
                         best_val, False, stopped, seconds + now - start, resumed, o.key)
            last_save = now
    else:
        done = True
    seconds += _time.perf_counter() - start
    if epoch >= max_epochs:
        done = True
    if o.checkpoint:
        _save_epochs(o.checkpoint, blocks, theta, best, mom, vel, t, lr, plateau, history, snaps, epoch, steps,
                     best_val, done, stopped, seconds, resumed, o.key)
    hist = np.asarray(history, dtype=float).reshape(-1, 6)
    last_val = float(hist[-1, 3]) if hist.size else best_val
    return EpochResult(model.unflatten(theta), model.unflatten(best), hist,
                       {e: model.unflatten(v) for e, v in snaps.items()}, epoch, steps, stopped, best_val, last_val,
                       seconds, resumed)
