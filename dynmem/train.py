r"""Fitting models to targets (THEORY.md sections 4 and 5).

Two kinds of fitting live here.

* :func:`fit_exponential_sum` - the gradient-free least-squares fit of a
  memory kernel by an ``m``-term exponential sum, realised as a diagonal
  :class:`~dynmem.models.LinearRNN` ([WLL] Fig. 1; THEORY.md section 4):

  .. math::

      \rho(t) \approx \hat\rho(t) = \sum_{k=1}^m a_k e^{-\mu_k t},
      \qquad a_k \ge 0,\ \mu_k > 0,

  which is the kernel ``c^T e^{W t} U`` of ``W = -diag(mu)``,
  ``U = c = sqrt(a)`` (``d = 1``).

* :func:`train` - gradient training of a discrete recurrence
  (:class:`~dynmem.models.DiscreteRNN`, :class:`~dynmem.models.EulerRNN`) on
  input / output sequences with Adam ([KB]) or L-BFGS, using the hand-written
  BPTT gradients of :func:`dynmem.recurrences.value_and_grad` (never finite
  differences), optionally through a stable diagonal reparameterisation
  ``W = diag(f(w))`` ([WLL] eq. (16), THEORY.md section 5).
  :func:`train_ctrnn` does the same for continuous-time models with the
  adjoint gradients of :func:`dynmem.adjoint.adjoint_gradient`.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [KB] D. P. Kingma, J. Ba, *Adam: A Method for Stochastic Optimization*,
   ICLR 2015, arXiv:1412.6980, Algorithm 1.
.. [GP] G. Golub, V. Pereyra, *Separable nonlinear least squares: the variable
   projection method and its applications*, Inverse Problems 19 (2003) R1-R26.
.. [K] L. Kaufman, *A variable projection method for solving separable
   nonlinear least squares problems*, BIT 15 (1975) 49-57.
"""

from __future__ import annotations

import sys
import time as _time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.optimize

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_nonnegative, check_positive, describe, check_rng
from .models import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from .recurrences import forward, value_and_grad

try:  # reparam.py is developed alongside; train works without it.
    from .reparam import REPARAMS as _REPARAMS
    from .reparam import Reparam, diagonal_W, get_reparam, grad_w_diagonal
except ImportError:  # pragma: no cover - only while reparam.py is absent
    _REPARAMS = ()
    Reparam = None  # type: ignore[assignment,misc]

__all__ = ["ExpSumFit", "fit_exponential_sum", "TrainResult", "train", "train_ctrnn"]

# Bounds of the free exponents (THEORY.md section 4): mu in [0.1 / T, 50].
_MU_LOWER_FACTOR = 0.1
_MU_UPPER = 50.0
# Coefficients at or below this fraction of the largest are pruned as zero.
_PRUNE_RTOL = 1e-12
# Tolerances of the outer least-squares solve; above machine epsilon, which
# scipy refuses with a warning.
_LSQ_TOL = 1e-15


# =============================================================================
# Exponential-sum fits
# =============================================================================


@dataclass(frozen=True, eq=False)
class ExpSumFit:
    r"""Result of :func:`fit_exponential_sum`.

    Attributes
    ----------
    mu : ndarray, shape (m,)
        Decay rates ``mu_k > 0`` (ascending).
    a : ndarray, shape (m,)
        Weights ``a_k >= 0``.
    sup_error : float
        ``max_i |rho_hat(t_i) - rho(t_i)|`` on the fitting grid.
    rmse : float
        ``sqrt(mean_i (rho_hat(t_i) - rho(t_i))^2)``.
    variant : str
        ``"free"`` or ``"grid"``.
    n_terms : int
        Number of non-zero terms before padding (``<= m``).
    success : bool
        Whether the outer solve of the best start converged (always ``True``
        for ``"grid"``).
    message : str
        What happened.
    """

    mu: np.ndarray
    a: np.ndarray
    sup_error: float
    rmse: float
    variant: str
    n_terms: int
    success: bool
    message: str

    @property
    def m(self) -> int:
        """Width of the realisation."""
        return int(self.mu.size)

    def __call__(self, t) -> np.ndarray:
        r"""The fitted kernel ``rho_hat(t) = sum_k a_k e^{-mu_k t}``.

        Parameters
        ----------
        t : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n,)
        """
        t = as_float_array("t", t, ndim=1)
        return np.exp(-np.outer(t, self.mu)) @ self.a

    def to_linear_rnn(self) -> LinearRNN:
        r"""The diagonal linear RNN whose kernel is the fit.

        .. math::

            W = -\operatorname{diag}(\mu), \quad U = c = \sqrt{a}, \qquad
            c^\top e^{W t} U = \sum_k a_k e^{-\mu_k t} .

        Returns
        -------
        LinearRNN
            Hidden width ``m``, input dimension ``d = 1``.
        """
        s = np.sqrt(self.a)
        return LinearRNN(-np.diag(self.mu), s[:, None], s)


def _nnls(A: np.ndarray, rho: np.ndarray) -> np.ndarray:
    # Scale columns to unit norm: NNLS is then better conditioned and the
    # answer is unchanged (a_k >= 0 iff scaled a_k >= 0).
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    a, _ = scipy.optimize.nnls(A / norms, rho, maxiter=50 * A.shape[1] + 100)
    return a / norms


def _vp_fit(t, rho, x0, lo, hi):
    """One variable-projection solve from ``x0 = log mu``; returns (mu, a, ls_result)."""

    def inner(x):
        mu = np.exp(x)
        E = np.exp(-np.outer(t, mu))
        return mu, E, _nnls(E, rho)

    def residual(x):
        _, E, a = inner(x)
        return E @ a - rho

    def jacobian(x):
        # Kaufman's approximation of the variable-projection Jacobian ([K], [GP]):
        # J_k = P_perp (dE/dx_k) a_k, with P_perp projecting out the active columns.
        mu, E, a = inner(x)
        dE = -(t[:, None] * mu[None, :]) * E * a[None, :]
        active = a > 0
        if np.any(active):
            Q, _ = np.linalg.qr(E[:, active])
            dE = dE - Q @ (Q.T @ dE)
        return dE

    res = scipy.optimize.least_squares(
        residual, x0, jac=jacobian, bounds=(np.log(lo), np.log(hi)), method="trf",
        ftol=_LSQ_TOL, xtol=_LSQ_TOL, gtol=_LSQ_TOL, max_nfev=200 * (x0.size + 1),
    )
    mu, _, a = inner(res.x)
    return mu, a, res


def _starts(m: int, lo: float, hi: float, n_starts: int, rng) -> list[np.ndarray]:
    """``n_starts`` log-spaced initial exponents inside ``(lo, hi)``.

    Start ``j`` spreads ``m`` log-equally spaced rates over a window whose
    centre slides across ``[log lo, log hi]``; starts beyond the deterministic
    set are jittered with ``rng``.
    """
    llo, lhi = np.log(lo), np.log(hi)
    span = lhi - llo
    width = 0.6 * span if m > 1 else 0.0
    centres = np.linspace(llo + 0.5 * width + 0.05 * span, lhi - 0.5 * width - 0.05 * span, n_starts)
    out = []
    for ctr in centres:
        x = ctr + width * (np.linspace(-0.5, 0.5, m) if m > 1 else np.zeros(1))
        if rng is not None:
            x = x + rng.normal(scale=0.05 * span, size=m)
        out.append(np.clip(x, llo + 1e-9 * span, lhi - 1e-9 * span))
    return out


def _prune_and_pad(mu: np.ndarray, a: np.ndarray, m: int):
    keep = a > _PRUNE_RTOL * (a.max() if a.size and a.max() > 0 else 1.0)
    mu, a = mu[keep], a[keep]
    n_terms = int(mu.size)
    if n_terms == 0:
        return np.full(m, np.nan), np.zeros(m), 0
    mu, a = list(mu), list(a)
    while len(mu) < m:
        # Splitting a term a e^{-mu t} into two halves leaves the kernel unchanged.
        k = int(np.argmax(a))
        a[k] *= 0.5
        mu.append(mu[k])
        a.append(a[k])
    order = np.argsort(mu, kind="stable")
    return np.asarray(mu)[order], np.asarray(a)[order], n_terms


def fit_exponential_sum(t, rho, m: int, *, variant: str = "free", n_starts: int = 6, rng=None) -> ExpSumFit:
    r"""Fit a kernel sampled on a grid by a non-negative ``m``-term exponential sum.

    .. math::

        \min_{\mu, a \ge 0} \sum_i \Big( \sum_{k=1}^m a_k e^{-\mu_k t_i} - \rho(t_i) \Big)^2

    Parameters
    ----------
    t : array_like, shape (n,)
        Strictly increasing, non-negative sample times with ``t[-1] > 0``
        (THEORY.md section 4 uses the integer grid ``0..1000``).
    rho : array_like, shape (n,)
        Kernel values ``rho(t_i)``.
    m : int
        Number of terms (hidden width of the realisation), ``m >= 1``.
    variant : {"free", "grid"}
        ``"free"``: variable projection ([GP]) - an outer
        :func:`scipy.optimize.least_squares` over ``log mu`` within
        ``[0.1 / T, 50]`` (``T = t[-1]``) whose residual solves for ``a`` by
        non-negative least squares (:func:`scipy.optimize.nnls`), with
        Kaufman's Jacobian ([K]); ``n_starts`` log-spaced starts, the one with
        the smallest sup error kept; zero terms are pruned and the width
        padded back to ``m`` by splitting the largest term (which leaves the
        kernel unchanged).  ``"grid"``: the paper-style constrained fit -
        NNLS on the fixed rates ``mu_k = 0.5 k / m``, ``k = 1..m``
        (THEORY.md section 4), zero weights kept.
    n_starts : int
        Starts of the ``"free"`` fit (``>= 1``; THEORY.md recommends ``>= 6``).
    rng : None, int or numpy.random.Generator, optional
        ``None`` gives deterministic starts; otherwise the starts are
        jittered with ``np.random.default_rng(rng)``.

    Returns
    -------
    ExpSumFit

    Notes
    -----
    The free fit recovers an exact exponential sum (``0.9^t`` at ``m = 1``
    to ~1e-11) and shows the mechanism of [WLL] Thm 3.3: for a power law its
    slowest rate (the spectral margin) falls towards ``1/T`` as ``m`` grows.
    It cannot reproduce [WLL] Fig. 1's exponential-target error curve, for
    which the ``"grid"`` variant is offered.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1001.0)
    >>> fit = fit_exponential_sum(t, 0.9 ** t, 1)
    >>> bool(fit.sup_error < 1e-10), round(float(fit.mu[0]), 6)
    (True, 0.105361)
    """
    t = check_increasing("t", as_float_array("t", t, ndim=1))
    if t.size < 2:
        raise ValueError(f"`t` must hold at least two times; got {t.size}.")
    if t[0] < 0:
        raise ValueError(f"`t` must be non-negative; got t[0] = {t[0]}.")
    rho = as_float_array("rho", rho, shape=(t.size,))
    m = check_int("m", m, minimum=1)
    check_choice("variant", variant, ("free", "grid"))
    n_starts = check_int("n_starts", n_starts, minimum=1)
    gen = None if rng is None else check_rng("rng", rng)

    if variant == "grid":
        mu = 0.5 * np.arange(1, m + 1) / m
        a = _nnls(np.exp(-np.outer(t, mu)), rho)
        r = np.exp(-np.outer(t, mu)) @ a - rho
        return ExpSumFit(mu, a, float(np.max(np.abs(r))), float(np.sqrt(np.mean(r * r))), "grid", int(np.sum(a > 0)),
                         True, "NNLS on the fixed grid mu_k = 0.5 k / m.")

    T = float(t[-1])
    lo, hi = _MU_LOWER_FACTOR / T, _MU_UPPER
    if lo >= hi:
        raise ValueError(f"`t` must span more than {_MU_LOWER_FACTOR / _MU_UPPER} so that the rate bounds [0.1/T, 50] are non-empty; got T = {T}.")
    best = None
    for x0 in _starts(m, lo, hi, n_starts, gen):
        mu, a, res = _vp_fit(t, rho, x0, lo, hi)
        sup = float(np.max(np.abs(np.exp(-np.outer(t, mu)) @ a - rho)))
        if best is None or sup < best[0]:
            best = (sup, mu, a, res)
    sup, mu, a, res = best
    mu, a, n_terms = _prune_and_pad(mu, a, m)
    if n_terms == 0:
        # rho <= 0 everywhere: the best non-negative fit is zero.
        mu = np.full(m, lo)
    r = np.exp(-np.outer(t, mu)) @ a - rho
    msg = f"variable projection, best of {n_starts} starts: {res.message}"
    return ExpSumFit(mu, a, float(np.max(np.abs(r))), float(np.sqrt(np.mean(r * r))), "free", n_terms,
                     bool(res.success), msg)


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
        res = value_and_grad(self.model(theta), X, Y, loss=loss)
        return res.loss, self.grad_theta(theta, res.flat)


def _loss_only(model, X, Y, loss: str) -> float:
    """The loss (``inf`` when it overflows float64; a diverging recurrence raises FloatingPointError)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = forward(model, X).y - Y
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
    if not isinstance(model, (DiscreteRNN, EulerRNN)):
        raise TypeError(f"`model` must be a DiscreteRNN or an EulerRNN (for a CTRNN use train_ctrnn); got {describe(model)}.")
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
    model : DiscreteRNN or EulerRNN
        Initial model.
    X : array_like, shape (batch, T, d)
        Input sequences.
    Y : array_like, shape (batch, T)
        Targets for ``y_k = c^T h_{k+1}``.
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
        Train ``w`` with ``W = diag(f(w))`` (:func:`dynmem.reparam.diagonal_W`;
        [WLL] eq. (16), THEORY.md section 5).  ``model.W`` must be diagonal
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
        val = None
        if Xv is not None:
            try:
                val = _loss_only(prob.model(theta), Xv, Yv, loss)
            except FloatingPointError:
                val = np.inf
            val_history.append(val)
            improved, stop = monitor.update(val)
            if improved:
                best_theta = theta.copy()
        else:
            improved, stop = monitor.update(value)
        if progress and (k % report_every == 0 or k == 1):
            _say(progress, k, value, val)
        if callback is not None and callback(k, value, prob.model(theta)):
            message, stopped = f"stopped by the callback at step {k}", True
            break
        if stop:
            what = "validation loss" if Xv is not None else "training loss"
            message, stopped = f"early stopping at step {k}: the {what} did not improve for {patience} steps", True
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
        val = None
        if Xv is not None:
            try:
                val = _loss_only(prob.model(theta), Xv, Yv, loss)
            except FloatingPointError:
                val = np.inf
            val_history.append(val)
            improved, stop = monitor.update(val)
            if improved:
                state["best"] = theta.copy()
        else:
            improved, stop = monitor.update(value)
        if progress and (k % report_every == 0 or k == 1):
            _say(progress, k, value, val)
        if callback is not None and callback(k, value, prob.model(theta)):
            state["msg"] = f"stopped by the callback at iteration {k}"
            raise StopIteration
        if stop:
            what = "validation loss" if Xv is not None else "training loss"
            state["msg"] = f"early stopping at iteration {k}: the {what} did not improve for {patience} iterations"
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
    :func:`dynmem.adjoint.adjoint_gradient` (THEORY.md section 8).

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
