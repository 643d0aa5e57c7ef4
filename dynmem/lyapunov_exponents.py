"""Lyapunov spectra by the QR (Benettin) method, for discrete maps along an input sequence and for flows.

An orthonormal frame ``Q`` (n, k) is carried along a trajectory by the
variational equation and re-orthonormalised by QR ([BEN]; docs/theory.md section 9)::

    maps:   Q <- J_t Q = Q' R,   J_t = dF/ds (s_t, x_t)             every step
    flows:  dQ/dt = J(h(t)) Q,   Q(t + tau) = Q' R                  every tau

    lambda_i = lim_{T -> inf} (1/T) sum log |R_ii|                  (per step, or per unit time)

For an input-driven discrete model this is the *conditional* spectrum along
the given input sequence ([ENG]).  With the full frame (k = n) the sum of the
exponents is, identically in T, the average of ``log |det J_t|`` (maps) or of
``tr J`` along the trajectory (flows, Liouville); both are returned to check
against.  Convergence is reported as running estimates at every
re-orthonormalisation and a standard error from ``n_blocks`` consecutive
blocks of the averaging window (batch members averaged within a block): the
increments of ``log |R_ii|`` are correlated over short times only, so block
means are close to independent.

The Kaplan-Yorke dimension is ``D = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|``
with j the largest index whose partial sum is non-negative.

Flows are integrated on the state and frame together, a batch of
trajectories at once (the exponents are ergodic averages, and B trajectories
of length T estimate them as well as one of length B T, at a fraction of the
per-call overhead), on one of two paths:

* the general one, :func:`scipy.integrate.solve_ivp` (``DOP853`` by default)
  on the stacked ``(h, Q, int tr J)``: the model's batched ``vector_field``
  and ``jacobian`` are the only capabilities needed, so a user-written model
  works;
* a compiled one (``method="dop853"``, what ``"auto"`` picks) for models
  that declare the CTRNN field (:class:`~dynmem.models.CTRNNField`: CTRNN,
  LinearRNN).  A numba kernel integrates ``Y = [h | Q]`` (m, k + 1) and the
  trace with the same DOP853 pair, read from :class:`scipy.integrate.DOP853`,
  and scipy's error norm and step controller, so ``rtol``/``atol`` mean what
  they mean on the general path; each trajectory keeps its own step size, one
  product ``W Y`` per stage (BLAS) gives the field and the variational
  equation together::

      z = W h + U x + b,   dh/dt = sigma(z) - leak h,
      dQ/dt = diag(sigma'(z)) (W Q) - leak Q,   d(int tr J)/dt = sum_i sigma'(z_i) W_ii - leak m

  and the QR at each re-orthonormalisation is numpy's, batched.  The kernel
  is this module's own (it does not share the simulation engine's loops).

References
----------
.. [BEN] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, Meccanica 15, 9-20 and 21-30, 1980.
.. [ENG] R. Engelken, F. Wolf, L. F. Abbott, *Lyapunov spectra of chaotic recurrent
   neural networks*, Phys. Rev. Research 5, 043044, 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.integrate

from ._validation import (as_float_array, check_choice, check_int, check_nonnegative, check_positive, check_rng,
                          describe)
from .activations import act_and_deriv_scalar, available_activations, get_activation
from .models import CTRNNField, DiscreteMap

__all__ = ["LyapunovSpectrum", "lyapunov_spectrum", "kaplan_yorke_dimension", "has_compiled_flow", "FLOW_METHODS",
           "COMPILED_METHOD"]

SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
COMPILED_METHOD = "dop853"
"""The compiled path's name: scipy's DOP853 pair in this module's numba kernel (CTRNN-field models)."""
FLOW_METHODS = ("auto", COMPILED_METHOD) + SCIPY_METHODS
"""Values of ``method`` for flows: ``"auto"``, the compiled ``"dop853"`` and :func:`scipy.integrate.solve_ivp`'s."""
MAX_STEPS = 1_000_000
"""Accepted steps the compiled path allows per trajectory in one re-orthonormalisation interval."""
STATUS_MESSAGES = {1: f"more than {MAX_STEPS} steps in one re-orthonormalisation interval",
                   2: "the step size fell below 10 ulp of the time (a stiff or blowing-up trajectory)",
                   3: "the state became non-finite"}
"""Failure codes of the compiled kernel (0 is success)."""

# The DOP853 pair (Hairer, Norsett & Wanner, Solving ODEs I, sec. II.10) as scipy's public class carries it:
# 12 stages (A, B), the FSAL stage as the 13th, error weights E5 (fifth order) and E3 (third order).
_DOP = scipy.integrate.DOP853
_A = np.ascontiguousarray(_DOP.A[:_DOP.n_stages, :_DOP.n_stages], dtype=float)
_B = np.ascontiguousarray(_DOP.B, dtype=float)
_E3 = np.ascontiguousarray(_DOP.E3, dtype=float)
_E5 = np.ascontiguousarray(_DOP.E5, dtype=float)
_ERROR_ORDER = int(_DOP.error_estimator_order)  # 7: the error is O(h^8), steps scale by err^(-1/8)


@dataclass(frozen=True, eq=False)
class LyapunovSpectrum:
    """Result of :func:`lyapunov_spectrum`.

    Attributes
    ----------
    exponents : ndarray, shape (k,)
        Descending Lyapunov exponents (per unit time; per step for a map with ``dt = 1``).
    stderr : ndarray, shape (k,)
        Standard error from block means.
    times : ndarray, shape (r,)
        Elapsed averaging time at each re-orthonormalisation.
    running : ndarray, shape (r, k)
        The running estimates at those times.
    volume_rate : float
        Average of ``log |det J|`` per unit time (maps) or of ``tr J`` (flows) over the same window;
        equals ``exponents.sum()`` when k = n.
    kaplan_yorke : float
        :func:`kaplan_yorke_dimension` of ``exponents``.
    n_trajectories : int
    success : bool
    message : str
    """

    exponents: np.ndarray
    stderr: np.ndarray
    times: np.ndarray
    running: np.ndarray
    volume_rate: float
    kaplan_yorke: float
    n_trajectories: int
    success: bool
    message: str


def kaplan_yorke_dimension(exponents) -> float:
    """The Kaplan-Yorke dimension of a Lyapunov spectrum ``exponents``.

    ``D = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|`` with the exponents
    sorted in descending order; j is the largest index with a non-negative partial sum; 0 if ``lambda_1 < 0``
    and ``len(exponents)`` if every partial sum is non-negative.
    """
    lam = np.sort(as_float_array("exponents", exponents, ndim=1))[::-1]
    if lam.size == 0:
        raise ValueError("`exponents` must hold at least one exponent; got an empty array.")
    c = np.cumsum(lam)
    nonneg = np.flatnonzero(c >= 0)
    if nonneg.size == 0:
        return 0.0
    j = int(nonneg[-1]) + 1
    if j == lam.size:
        return float(j)
    return float(j + c[j - 1] / abs(lam[j]))


def _qr_step(M):
    """Batched QR ``M = Q R`` (B, n, k) with a positive diagonal: M <- Q in place; returns log|diag R| (B, k)."""
    Q, R = np.linalg.qr(M)
    d = np.diagonal(R, axis1=1, axis2=2)
    np.multiply(Q, np.where(d < 0, -1.0, 1.0)[:, None, :], out=M)
    return np.log(np.abs(d))


def _blocks(incr: np.ndarray, weights: np.ndarray, n_blocks: int):
    """Block means of per-interval increments (r, k) with durations (r,) -> mean, stderr."""
    r = incr.shape[0]
    nb = max(1, min(n_blocks, r))
    edges = np.linspace(0, r, nb + 1).astype(int)
    means = np.array([incr[a:b].sum(axis=0) / weights[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    est = incr.sum(axis=0) / weights.sum()
    se = means.std(axis=0, ddof=1) / np.sqrt(nb) if nb > 1 else np.full(incr.shape[1], np.nan)
    return est, se


# ---------------------------------------------------------------------------
# the compiled path: state and frame of CTRNN-field models, DOP853, scipy's controller


@numba.njit(cache=True)
def _field(W, wdiag, code, leak, drive, Y, out, WY):
    # out = F(Y) for Y = [h | Q] (m, k + 1): column 0 the field, columns 1.. the variational equation;
    # returns tr J(h).  One BLAS product W Y serves both.
    np.dot(W, Y, WY)
    m, kp1 = Y.shape
    tr = 0.0
    for i in range(m):
        a, s = act_and_deriv_scalar(code, WY[i, 0] + drive[i])
        out[i, 0] = a - leak * Y[i, 0]
        for j in range(1, kp1):
            out[i, j] = s * WY[i, j] - leak * Y[i, j]
        tr += s * wdiag[i]
    return tr - leak * m


@numba.njit(cache=True)
def _initial_step(W, wdiag, code, leak, drive, Y, f0, tr0, tau, rtol, atol, order, Yt, f1, WY):
    # the initial-step rule of solve_ivp (scipy's select_initial_step; Hairer, Norsett & Wanner sec. II.4) on (Y, int tr = 0)
    m, kp1 = Y.shape
    size = m * kp1 + 1
    tsc = 1.0 / atol if atol > 0.0 else 0.0  # the trace component starts at 0: its scale is atol
    d0 = 0.0
    d1 = (tr0 * tsc) ** 2
    for i in range(m):
        for j in range(kp1):
            sc = atol + abs(Y[i, j]) * rtol
            d0 += (Y[i, j] / sc) ** 2
            d1 += (f0[i, j] / sc) ** 2
    d0 = np.sqrt(d0 / size)
    d1 = np.sqrt(d1 / size)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, tau)
    for i in range(m):
        for j in range(kp1):
            Yt[i, j] = Y[i, j] + h0 * f0[i, j]
    tr1 = _field(W, wdiag, code, leak, drive, Yt, f1, WY)
    d2 = ((tr1 - tr0) * tsc) ** 2
    for i in range(m):
        for j in range(kp1):
            d2 += ((f1[i, j] - f0[i, j]) / (atol + abs(Y[i, j]) * rtol)) ** 2
    d2 = np.sqrt(d2 / size) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1, tau)


@numba.njit(cache=True)
def _advance_one(W, wdiag, code, leak, drive, Y, tau, h_abs, rtol, atol, A, Bw, E3, E5, order, max_steps,
                 K, Ktr, Yt, WY):
    # Y (m, k + 1) <- its value after time tau (in place); returns (status, int_0^tau tr J dt, next step, steps).
    # One accepted DOP853 step per pass: stages 0..11, the new point, its field as stage 12 (FSAL), scipy's
    # error norm  |h| e5^2 / sqrt((e5^2 + 0.01 e3^2) N)  and controller (safety 0.9, factors in [0.2, 10]),
    # over the N = m (k + 1) + 1 components of (Y, int tr J).
    m, kp1 = Y.shape
    ns = Bw.shape[0]
    size = m * kp1 + 1
    err_exp = -1.0 / (order + 1)
    Yn = K[ns + 1]  # scratch slot after the FSAL stage
    Ktr[0] = _field(W, wdiag, code, leak, drive, Y, K[0], WY)
    if not h_abs > 0.0:
        h_abs = _initial_step(W, wdiag, code, leak, drive, Y, K[0], Ktr[0], tau, rtol, atol, order, Yt, K[1], WY)
    t = 0.0
    tr_y = 0.0
    steps = 0
    while t < tau:
        if steps >= max_steps:
            return 1, tr_y, h_abs, steps
        min_step = 10.0 * max(abs(t) * 2.220446049250313e-16, 5e-324)
        rejected = False
        while True:
            if h_abs < min_step:
                return 2, tr_y, h_abs, steps
            t_new = min(t + h_abs, tau)
            h = t_new - t
            for st in range(1, ns + 1):  # stages 1..11 into Yt, then the new point (weights B) into Yn
                Z = Yt if st < ns else Yn
                for i in range(m):
                    for j in range(kp1):
                        Z[i, j] = Y[i, j]
                for r in range(st):  # stage by stage: contiguous rows, vectorised
                    a = h * (A[st, r] if st < ns else Bw[r])
                    if a != 0.0:
                        for i in range(m):
                            for j in range(kp1):
                                Z[i, j] += a * K[r, i, j]
                if st < ns:
                    Ktr[st] = _field(W, wdiag, code, leak, drive, Yt, K[st], WY)
            trn = tr_y
            for r in range(ns):
                trn += h * Bw[r] * Ktr[r]
            Ktr[ns] = _field(W, wdiag, code, leak, drive, Yn, K[ns], WY)
            for i in range(m):  # the two error estimates into the free scratch Yt (fifth order), WY (third)
                for j in range(kp1):
                    Yt[i, j] = 0.0
                    WY[i, j] = 0.0
            for r in range(ns + 1):
                a5 = E5[r]
                a3 = E3[r]
                for i in range(m):
                    for j in range(kp1):
                        Yt[i, j] += a5 * K[r, i, j]
                        WY[i, j] += a3 * K[r, i, j]
            e5 = 0.0
            e3 = 0.0
            for i in range(m):
                for j in range(kp1):
                    sc = atol + max(abs(Y[i, j]), abs(Yn[i, j])) * rtol
                    e5 += (Yt[i, j] / sc) ** 2
                    e3 += (WY[i, j] / sc) ** 2
            sc = atol + max(abs(tr_y), abs(trn)) * rtol
            u5 = 0.0
            u3 = 0.0
            for r in range(ns + 1):
                u5 += E5[r] * Ktr[r]
                u3 += E3[r] * Ktr[r]
            e5 += (u5 / sc) ** 2
            e3 += (u3 / sc) ** 2
            if e5 == 0.0 and e3 == 0.0:
                err = 0.0
            else:
                err = h * e5 / np.sqrt((e5 + 0.01 * e3) * size)
            if err < 1.0:
                factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** err_exp)
                if rejected:
                    factor = min(1.0, factor)
                h_abs = h * factor
                break
            h_abs = h * max(0.2, 0.9 * err ** err_exp) if err == err else 0.2 * h  # NaN: shrink
            rejected = True
        t = t_new
        tr_y = trn
        finite = np.isfinite(tr_y)
        for i in range(m):
            for j in range(kp1):
                Y[i, j] = Yn[i, j]
                K[0, i, j] = K[ns, i, j]
                finite = finite and np.isfinite(Yn[i, j])
        Ktr[0] = Ktr[ns]
        steps += 1
        if not finite:
            return 3, tr_y, h_abs, steps
    return 0, tr_y, h_abs, steps


@numba.njit(cache=True)
def _advance_batch(W, code, leak, drive, Y, tau, hstep, rtol, atol, A, Bw, E3, E5, order, max_steps,
                   trace, status, nsteps):
    # every trajectory b with status[b] == 0 over time tau: Y[b] in place, trace[b] = int tr J, hstep[b] the
    # step to try next (<= 0: select one), nsteps[b] += accepted steps
    nb, m, kp1 = Y.shape
    ns = Bw.shape[0]
    K = np.empty((ns + 2, m, kp1))
    Ktr = np.empty(ns + 1)
    Yt = np.empty((m, kp1))
    WY = np.empty((m, kp1))
    wdiag = np.empty(m)
    for i in range(m):
        wdiag[i] = W[i, i]
    for b in range(nb):
        if status[b] != 0:
            continue
        st, tr, h, n_acc = _advance_one(W, wdiag, code, leak, drive, Y[b], tau, hstep[b], rtol, atol, A, Bw, E3,
                                        E5, order, max_steps, K, Ktr, Yt, WY)
        status[b] = st
        trace[b] = tr
        hstep[b] = h
        nsteps[b] += n_acc


def _frame(n, k, batch, rng):
    Q0 = np.linalg.qr(rng.standard_normal((batch, n, k)))[0]
    return Q0


def lyapunov_spectrum(model, *, X=None, x=None, s0=None, k: int | None = None, t_end: float | None = None,
                      transient: float = 0.0, reorth: float = 1.0, n_blocks: int = 10, method: str = "auto",
                      rtol: float = 1e-9, atol: float = 1e-12, rng=None) -> LyapunovSpectrum:
    """The leading k Lyapunov exponents of a discrete map along inputs, or of a flow at a constant input.

    Parameters
    ----------
    model : DiscreteMap or continuous model
        A discrete model with ``step`` and ``step_jacobian``
        (:class:`~dynmem.models.DiscreteMap`), or any object with batched
        ``vector_field(H, X)``, ``jacobian(H, X)`` and ``hidden``, ``inputs``
        (a :class:`~dynmem.models.ContinuousModel` or a user's own).
    X : array_like, shape (T, d) or (B, T, d)
        Discrete models: the input sequence (one per trajectory, or shared).
        The first ``transient`` steps align the frame and are not averaged.
    x : array_like, shape (d,), optional
        Flows: the constant input (zeros by default).
    s0 : array_like, shape (B, n) or (n,), optional
        Initial states (B trajectories).  Default: one zero state for a map;
        for a flow, one state (zeros plus N(0, 1e-2) noise, ``rng``).
    k : int, optional
        Number of exponents (default all, n).
    t_end : float
        Flows: averaging time after the transient (required for flows).
    transient : float
        Flows: time integrated before averaging (frame alignment, attractor); maps: steps.
    reorth : float
        Flows: time between re-orthonormalisations (maps re-orthonormalise every step).
    n_blocks : int
        Blocks for the standard error.
    method : str
        Flows: one of :data:`FLOW_METHODS`.  ``"dop853"`` is the compiled path
        (models with :class:`~dynmem.models.CTRNNField`); a scipy name
        (``"DOP853"``, ``"RK45"``, ...) integrates with
        :func:`scipy.integrate.solve_ivp` (any continuous model); ``"auto"``
        (default) is ``"dop853"`` where it applies and ``"DOP853"`` otherwise.
        The two DOP853 paths share the pair, the error norm and the step
        controller (the compiled one per trajectory, scipy's over the stacked
        batch), so ``rtol`` and ``atol`` mean the same on both.  Ignored for maps.
    rtol, atol : float
        Flows: the integrator's tolerances on the stacked ``(h, Q, int tr J)``.
    rng : None, int or Generator
        The random initial frame (and flow start).

    Returns
    -------
    LyapunovSpectrum
        For a map, per step divided by ``model.dt``.
    """
    rng = check_rng("rng", rng)
    n_blocks = check_int("n_blocks", n_blocks, minimum=1)
    method = check_choice("method", method, FLOW_METHODS)
    if isinstance(model, DiscreteMap):
        return _discrete(model, X, s0, k, int(transient), n_blocks, rng)
    if not (hasattr(model, "vector_field") and hasattr(model, "jacobian") and hasattr(model, "hidden")):
        raise TypeError("`model` must be a discrete model with step/step_jacobian or a continuous model with "
                        f"vector_field(H, X), jacobian(H, X) and hidden; got {describe(model)}.")
    if X is not None:
        raise ValueError("`X` is for discrete models; a flow takes the constant input `x`.")
    if t_end is None:
        raise ValueError("`t_end` must be given (the averaging time) for a continuous model.")
    compiled = has_compiled_flow(model)
    if method == COMPILED_METHOD and not compiled:
        raise TypeError(f"`method` {COMPILED_METHOD!r} (the compiled path) needs a model with the CTRNN field "
                        "(dynmem.models.CTRNNField: attributes W, U, b, leak and a registered `activation`); got "
                        f"{describe(model)}. A scipy method such as 'DOP853' takes any continuous model.")
    if method == "auto":
        method = COMPILED_METHOD if compiled else "DOP853"
    rtol = check_positive("rtol", rtol)
    atol = check_nonnegative("atol", atol)
    return _flow(model, x, s0, k, check_positive("t_end", t_end), check_nonnegative("transient", transient),
                 check_positive("reorth", reorth), n_blocks, method, rtol, atol, rng)


def has_compiled_flow(model) -> bool:
    """True when ``model`` declares the CTRNN field (:class:`~dynmem.models.CTRNNField`) with a registered activation.

    Such a model's flow runs on the compiled path (``method="dop853"``).
    """
    if not isinstance(model, CTRNNField):
        return False
    act = getattr(model, "activation", None)
    return isinstance(act, str) and act in available_activations()


def _discrete(model, X, s0, k, transient, n_blocks, rng) -> LyapunovSpectrum:
    n, d = model.state_size, model.inputs
    if X is None:
        raise ValueError("`X` (the input sequence, shape (T, d) or (B, T, d)) must be given for a discrete model.")
    X = as_float_array("X", X, ndim=(2, 3))
    if X.ndim == 2:
        X = X[None]
    if X.shape[2] != d:
        raise ValueError(f"`X` must have {d} input channels in its last axis; got shape {X.shape}.")
    S = np.zeros((X.shape[0], n)) if s0 is None else as_float_array("s0", s0, ndim=(1, 2))
    S = np.array(np.broadcast_to(np.atleast_2d(S), (max(X.shape[0], np.atleast_2d(S).shape[0]), n)))
    B = S.shape[0]
    X = np.broadcast_to(X, (B,) + X.shape[1:])
    T = X.shape[1]
    if not 0 <= transient < T:
        raise ValueError(f"`transient` must be in [0, T) = [0, {T}) steps; got {transient}.")
    k = n if k is None else check_int("k", k, minimum=1, maximum=n)
    Q = _frame(n, k, B, rng)
    logs = np.empty((T - transient, k))
    logdet = 0.0
    for t in range(T):
        J = model.step_jacobian(S, X[:, t])
        S = model.step(S, X[:, t])
        Q = J @ Q
        lr = _qr_step(Q)
        if t >= transient:
            logs[t - transient] = lr.mean(axis=0)
            logdet += float(np.mean(np.linalg.slogdet(J)[1]))
        if not np.all(np.isfinite(S)):
            return _result(logs[: max(t - transient, 0)], np.ones(max(t - transient, 0)) * model.dt, np.nan,
                           n_blocks, B, False, f"the state became non-finite at step {t}")
    steps = T - transient
    return _result(logs, np.full(steps, float(model.dt)), logdet / (steps * model.dt), n_blocks, B, True, "done")


def _result(logs, durations, volume_rate, n_blocks, B, success, message) -> LyapunovSpectrum:
    if logs.shape[0] == 0:
        k = logs.shape[1]
        nan = np.full(k, np.nan)
        return LyapunovSpectrum(nan, nan, np.zeros(0), np.zeros((0, k)), np.nan, np.nan, B, False, message)
    est, se = _blocks(logs, durations, n_blocks)
    times = np.cumsum(durations)
    running = np.cumsum(logs, axis=0) / times[:, None]
    order = np.argsort(est)[::-1]  # QR order is descending once aligned; sort in case it is not yet
    est, se, running = est[order], se[order], running[:, order]
    return LyapunovSpectrum(est, se, times, running, float(volume_rate), kaplan_yorke_dimension(est), B, success, message)


def _flow(model, x, s0, k, t_end, transient, reorth, n_blocks, method, rtol, atol, rng) -> LyapunovSpectrum:
    n, d = int(model.hidden), int(model.inputs)
    xv = np.zeros(d) if x is None else as_float_array("x", x, shape=(d,))
    if s0 is None:
        H = 1e-1 * rng.standard_normal((1, n))
    else:
        H = np.atleast_2d(as_float_array("s0", s0, ndim=(1, 2)))
        if H.shape[1] != n:
            raise ValueError(f"`s0` must have shape (B, {n}); got shape {H.shape}.")
    B = H.shape[0]
    k = n if k is None else check_int("k", k, minimum=1, maximum=n)
    Q = _frame(n, k, B, rng)
    if method == COMPILED_METHOD:
        advance = _compiled_advance(model, xv, H, Q, rtol, atol)
    else:
        advance = _scipy_advance(model, xv, H, Q, method, rtol, atol)

    n_trans = int(np.ceil(transient / reorth)) if transient > 0 else 0
    for _ in range(n_trans):
        out = advance(transient / n_trans)
        if isinstance(out, str):
            return _result(np.zeros((0, k)), np.zeros(0), np.nan, n_blocks, B, False,
                           f"integration failed in the transient: {out}")
        _qr_step(out[0])  # in place: the frame returned is a view of the integrator's state
    n_int = max(1, int(np.ceil(t_end / reorth)))
    dt = t_end / n_int
    logs = np.empty((n_int, k))
    trace = 0.0
    for i in range(n_int):
        out = advance(dt)
        if isinstance(out, str):
            return _result(logs[:i], np.full(i, dt), trace / max(i * dt, 1e-300), n_blocks, B, False,
                           f"integration failed at t = {transient + i * dt:.6g}: {out}")
        Qv, tr = out
        lr = _qr_step(Qv)
        logs[i] = lr.mean(axis=0)
        trace += float(tr.mean())
    return _result(logs, np.full(n_int, dt), trace / t_end, n_blocks, B, True, "done")


def _scipy_advance(model, xv, H, Q, method, rtol, atol):
    """``advance(dt)`` on :func:`scipy.integrate.solve_ivp`: returns (frame view (B, n, k), int tr J (B,)) or a message."""
    B, n, k = Q.shape
    XB = np.broadcast_to(xv, (B, xv.size))
    state = {"H": H, "Q": Q}

    def rhs(_, y):
        h = y[: B * n].reshape(B, n)
        q = y[B * n: B * n * (k + 1)].reshape(B, n, k)
        J = np.asarray(model.jacobian(h, XB), dtype=float)
        dh = np.asarray(model.vector_field(h, XB), dtype=float)
        tr = np.trace(J, axis1=1, axis2=2)
        return np.concatenate([dh.ravel(), (J @ q).ravel(), tr])

    def advance(dt):
        y0 = np.concatenate([state["H"].ravel(), state["Q"].ravel(), np.zeros(B)])
        sol = scipy.integrate.solve_ivp(rhs, (0.0, dt), y0, method=method, rtol=rtol, atol=atol)
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            return sol.message if not sol.success else "the state became non-finite"
        y = sol.y[:, -1]
        state["H"] = y[: B * n].reshape(B, n)
        state["Q"] = y[B * n: B * n * (k + 1)].reshape(B, n, k).copy()
        return state["Q"], y[B * n * (k + 1):]

    return advance


def _compiled_advance(model, xv, H, Q, rtol, atol):
    """``advance(dt)`` on the compiled kernel; ``Y = [h | Q]`` (B, n, k + 1) lives between calls."""
    B, n, k = Q.shape
    W = np.ascontiguousarray(as_float_array("model.W", model.W, shape=(n, n)))
    U = as_float_array("model.U", model.U, shape=(n, xv.size))
    drive = np.ascontiguousarray(U @ xv + as_float_array("model.b", model.b, shape=(n,)))
    code = np.int64(get_activation(model.activation).code)
    leak = check_nonnegative("model.leak", model.leak)
    Y = np.empty((B, n, k + 1))
    Y[:, :, 0] = H
    Y[:, :, 1:] = Q
    hstep = np.zeros(B)
    status = np.zeros(B, dtype=np.int64)
    nsteps = np.zeros(B, dtype=np.int64)
    trace = np.zeros(B)
    frame = Y[:, :, 1:]

    def advance(dt):
        _advance_batch(W, code, leak, drive, Y, float(dt), hstep, rtol, atol, _A, _B, _E3, _E5, _ERROR_ORDER,
                       MAX_STEPS, trace, status, nsteps)
        bad = np.flatnonzero(status)
        if bad.size:
            return f"{STATUS_MESSAGES[int(status[bad[0]])]} (trajectory {int(bad[0])})"
        return frame, trace

    return advance
