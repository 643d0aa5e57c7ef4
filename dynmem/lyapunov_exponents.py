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

Flows are integrated with :func:`scipy.integrate.solve_ivp` on the state and
frame together (the model's batched ``vector_field`` and ``jacobian`` are the
only capabilities needed, so a user-written model works), a batch of
trajectories at once: the exponents are ergodic averages, and B trajectories
of length T estimate them as well as one of length B T, at a fraction of the
per-call overhead.

References
----------
.. [BEN] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, Meccanica 15, 9-20 and 21-30, 1980.
.. [ENG] R. Engelken, F. Wolf, L. F. Abbott, *Lyapunov spectra of chaotic recurrent
   neural networks*, Phys. Rev. Research 5, 043044, 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.integrate

from ._validation import as_float_array, check_int, check_positive, check_rng, describe
from .models import DiscreteMap

__all__ = ["LyapunovSpectrum", "lyapunov_spectrum", "kaplan_yorke_dimension"]


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
    """``j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|`` for the descending ``exponents``.

    j is the largest index with a non-negative partial sum; 0 if ``lambda_1 < 0``
    and ``len(exponents)`` if every partial sum is non-negative.
    """
    lam = np.sort(as_float_array("exponents", exponents, ndim=1))[::-1]
    c = np.cumsum(lam)
    nonneg = np.flatnonzero(c >= 0)
    if nonneg.size == 0:
        return 0.0
    j = int(nonneg[-1]) + 1
    if j == lam.size:
        return float(j)
    return float(j + c[j - 1] / abs(lam[j]))


def _qr_step(M):
    """Batched QR with a positive diagonal; returns (Q, log|diag R|)."""
    Q, R = np.linalg.qr(M)
    d = np.diagonal(R, axis1=1, axis2=2)
    sign = np.where(d < 0, -1.0, 1.0)
    return Q * sign[:, None, :], np.log(np.abs(d))


def _blocks(incr: np.ndarray, weights: np.ndarray, n_blocks: int):
    """Block means of per-interval increments (r, k) with durations (r,) -> mean, stderr."""
    r = incr.shape[0]
    nb = max(1, min(n_blocks, r))
    edges = np.linspace(0, r, nb + 1).astype(int)
    means = np.array([incr[a:b].sum(axis=0) / weights[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    est = incr.sum(axis=0) / weights.sum()
    se = means.std(axis=0, ddof=1) / np.sqrt(nb) if nb > 1 else np.full(incr.shape[1], np.nan)
    return est, se


def _frame(n, k, batch, rng):
    Q0 = np.linalg.qr(rng.standard_normal((batch, n, k)))[0]
    return Q0


def lyapunov_spectrum(model, *, X=None, x=None, s0=None, k: int | None = None, t_end: float | None = None,
                      transient: float = 0.0, reorth: float = 1.0, n_blocks: int = 10, method: str = "DOP853",
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
    method, rtol, atol
        :func:`scipy.integrate.solve_ivp` settings for flows.
    rng : None, int or Generator
        The random initial frame (and flow start).

    Returns
    -------
    LyapunovSpectrum
        For a map, per step divided by ``model.dt``.
    """
    rng = check_rng("rng", rng)
    n_blocks = check_int("n_blocks", n_blocks, minimum=1)
    if isinstance(model, DiscreteMap):
        return _discrete(model, X, s0, k, int(transient), n_blocks, rng)
    if not (hasattr(model, "vector_field") and hasattr(model, "jacobian") and hasattr(model, "hidden")):
        raise TypeError("`model` must be a discrete model with step/step_jacobian or a continuous model with "
                        f"vector_field(H, X), jacobian(H, X) and hidden; got {describe(model)}.")
    if X is not None:
        raise ValueError("`X` is for discrete models; a flow takes the constant input `x`.")
    if t_end is None:
        raise ValueError("`t_end` must be given (the averaging time) for a continuous model.")
    return _flow(model, x, s0, k, check_positive("t_end", t_end), float(transient), check_positive("reorth", reorth),
                 n_blocks, method, rtol, atol, rng)


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
        Q, lr = _qr_step(J @ Q)
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
    XB = np.broadcast_to(xv, (B, d))
    Q = _frame(n, k, B, rng)

    def rhs(_, y):
        h = y[: B * n].reshape(B, n)
        q = y[B * n: B * n * (k + 1)].reshape(B, n, k)
        J = np.asarray(model.jacobian(h, XB), dtype=float)
        dh = np.asarray(model.vector_field(h, XB), dtype=float)
        tr = np.trace(J, axis1=1, axis2=2)
        return np.concatenate([dh.ravel(), (J @ q).ravel(), tr])

    def advance(H, Q, dt):
        y0 = np.concatenate([H.ravel(), Q.ravel(), np.zeros(B)])
        sol = scipy.integrate.solve_ivp(rhs, (0.0, dt), y0, method=method, rtol=rtol, atol=atol)
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            return None
        y = sol.y[:, -1]
        return y[: B * n].reshape(B, n), y[B * n: B * n * (k + 1)].reshape(B, n, k), y[B * n * (k + 1):]

    n_trans = int(np.ceil(transient / reorth)) if transient > 0 else 0
    for _ in range(n_trans):
        out = advance(H, Q, transient / n_trans)
        if out is None:
            return _result(np.zeros((0, k)), np.zeros(0), np.nan, n_blocks, B, False, "integration failed in the transient")
        H, Q, _ = out
        Q, _ = _qr_step(Q)
    n_int = max(1, int(np.ceil(t_end / reorth)))
    dt = t_end / n_int
    logs = np.empty((n_int, k))
    trace = 0.0
    for i in range(n_int):
        out = advance(H, Q, dt)
        if out is None:
            return _result(logs[:i], np.full(i, dt), trace / max(i * dt, 1e-300), n_blocks, B, False,
                           f"integration failed at t = {transient + i * dt:.6g}")
        H, Q, tr = out
        Q, lr = _qr_step(Q)
        logs[i] = lr.mean(axis=0)
        trace += float(tr.mean())
    return _result(logs, np.full(n_int, dt), trace / t_end, n_blocks, B, True, "done")
