"""A numba-compiled Dormand-Prince 5(4) integrator for CTRNNs.

The vector field is the CTRNN's ``dh/dt = sigma(W h + U x(t) + b) - leak h``
with an input path that is affine on each piece (every path in
:mod:`dynmem.inputs` except :class:`~dynmem.inputs.FunctionPath`).  The whole solve of a
batch of sequences runs inside one compiled call: no Python between steps.

Method
------
Explicit Runge-Kutta pair of Dormand and Prince (1980), fifth-order
propagation with the fourth-order embedded error estimate, FSAL, and the
fourth-order continuous extension used by scipy's ``RK45`` for dense output
(Hairer, Norsett & Wanner, *Solving ODEs I*, sec. II.5-II.6).  The controls are
those of :class:`scipy.integrate.RK45`, so ``rtol``/``atol`` mean what they
mean in :func:`scipy.integrate.solve_ivp`:

* error norm ``||e||`` = RMS over components of
  ``e_i / (atol + rtol * max(|y_old,i|, |y_new,i|))``, with
  ``e = h * sum_j E_j k_j``; a step is accepted when ``||e|| < 1``;
* new step ``h * min(10, 0.9 ||e||^(-1/5))`` after acceptance (not above ``h``
  right after a rejection), ``h * max(0.2, 0.9 ||e||^(-1/5))`` after a
  rejection;
* the first step is scipy's ``select_initial_step`` (Hairer et al. II.4) on
  the first knot-to-knot piece;
* a step is too small below ``10 * spacing(t)`` (step-size underflow).

Every knot of the input path inside the span ends a step exactly (the input,
or its slope, may jump there), and the stage derivative at the knot is
re-evaluated with the new piece.  After a step cut short to land on a knot,
the next step starts from the larger of the controller's proposal and the
step size the controller had wanted before the cut.  Observation times are
filled by the dense-output interpolant of the step that contains them (the
step's end value itself when they coincide), so observations never shorten
steps.

Status codes (:data:`STATUS_MESSAGES`): 0 success, 1 step-size underflow,
2 non-finite state (a trial step or derivative produced inf/NaN and no
smaller step helped), 3 ``max_steps`` step attempts exceeded, 4 ``max|h|``
reached ``divergence_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numba
import numpy as np

from ._validation import as_float_array, check_finite, check_increasing, check_int, check_positive, describe
from .activations import act_scalar, get_activation
from .inputs import InputPath

__all__ = ["solve_ctrnn", "ODEResult", "STATUS_MESSAGES", "DOPRI5_TABLEAU"]

SUCCESS, STEP_UNDERFLOW, NONFINITE, MAX_STEPS, DIVERGED = 0, 1, 2, 3, 4
STATUS_MESSAGES = {
    SUCCESS: "the solver reached the last requested time",
    STEP_UNDERFLOW: "the step size fell below 10 * spacing(t) (step-size underflow)",
    NONFINITE: "the state or its derivative became non-finite",
    MAX_STEPS: "the number of step attempts exceeded max_steps",
    DIVERGED: "max|h| reached divergence_threshold",
}

# Dormand & Prince (1980) tableau; dense-output polynomial coefficients of the
# fourth-order continuous extension as used by scipy's RK45 (Shampine 1986).
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1 / 5, 0.0, 0.0, 0.0, 0.0],
    [3 / 40, 9 / 40, 0.0, 0.0, 0.0],
    [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
# error weights: fifth-order minus fourth-order solution, incl. the FSAL stage
_E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P = np.array([
    [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])
DOPRI5_TABLEAU = {"C": _C, "A": _A, "B": _B, "E": _E, "P": _P}
for _arr in DOPRI5_TABLEAU.values():
    _arr.flags.writeable = False


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _rhs(W, code, leak, p, q, tau, h, out):
    # out = sigma(W h + p + tau q) - leak h
    m = h.shape[0]
    for i in range(m):
        z = p[i] + tau * q[i]
        for j in range(m):
            z += W[i, j] * h[j]
        out[i] = act_scalar(code, z) - leak * h[i]


@numba.njit(cache=True, error_model="numpy")
def _rms_scaled(v, y, rtol, atol):
    # RMS of v / (atol + rtol |y|)
    s = 0.0
    for i in range(v.shape[0]):
        r = v[i] / (atol + rtol * abs(y[i]))
        s += r * r
    return math.sqrt(s / v.shape[0])


@numba.njit(cache=True, error_model="numpy")
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def _solve_one(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold,
               C, A, B, E, Pd, H):
    """One sequence; fills H (n, m) up to the failure; returns (status, t_reached, nfev, naccept, nreject)."""
    m = h0.shape[0]
    n = t_eval.shape[0]
    nseg = breaks.shape[0] - 1
    K = np.empty((7, m))
    y = h0.copy()
    ynew = np.empty(m)
    ytmp = np.empty(m)
    t = breaks[0]
    nfev = 0
    nacc = 0
    nrej = 0
    i_obs = 0
    if not _all_finite(y):
        return NONFINITE, t, nfev, nacc, nrej
    while i_obs < n and t_eval[i_obs] <= t:
        H[i_obs, :] = y
        i_obs += 1
    if nseg == 0:
        return SUCCESS, t, nfev, nacc, nrej

    # scipy's select_initial_step on the first piece (order 4 error estimator)
    _rhs(W, code, leak, P[0], Q[0], 0.0, y, K[0])
    nfev += 1
    if not _all_finite(K[0]):
        return NONFINITE, t, nfev, nacc, nrej
    span = breaks[1] - breaks[0]
    d0 = _rms_scaled(y, y, rtol, atol)
    d1 = _rms_scaled(K[0], y, rtol, atol)
    if d0 < 1e-5 or d1 < 1e-5:
        hh = 1e-6
    else:
        hh = 0.01 * d0 / d1
    hh = min(hh, span)
    for i in range(m):
        ytmp[i] = y[i] + hh * K[0, i]
    _rhs(W, code, leak, P[0], Q[0], hh, ytmp, K[1])
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = _rms_scaled(ynew, y, rtol, atol) / hh
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, hh * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.2
    h_abs = min(100.0 * hh, h1, span, max_step)
    if not math.isfinite(h_abs):  # a NaN from the derivative estimate
        return NONFINITE, t, nfev, nacc, nrej

    attempts = 0
    for seg in range(nseg):
        a = breaks[seg]
        bnd = breaks[seg + 1]
        p = P[seg]
        q = Q[seg]
        if seg > 0:
            _rhs(W, code, leak, p, q, 0.0, y, K[0])  # the input may jump at the knot
            nfev += 1
            if not _all_finite(K[0]):
                return NONFINITE, t, nfev, nacc, nrej
        while t < bnd:
            min_step = 10.0 * abs(np.nextafter(t, np.inf) - t)
            if h_abs > max_step:
                h_abs = max_step
            elif h_abs < min_step:
                h_abs = min_step
            rejected = False
            bad_trial = False
            while True:
                if h_abs < min_step:
                    return (NONFINITE if bad_trial else STEP_UNDERFLOW), t, nfev, nacc, nrej
                if attempts >= max_steps:
                    return MAX_STEPS, t, nfev, nacc, nrej
                attempts += 1
                t_new = t + h_abs
                if t_new >= bnd:
                    t_new = bnd
                hs = t_new - t
                for st in range(1, 6):
                    for i in range(m):
                        acc = 0.0
                        for j in range(st):
                            acc += A[st, j] * K[j, i]
                        ytmp[i] = y[i] + hs * acc
                    _rhs(W, code, leak, p, q, t + C[st] * hs - a, ytmp, K[st])
                for i in range(m):
                    acc = 0.0
                    for j in range(6):
                        acc += B[j] * K[j, i]
                    ynew[i] = y[i] + hs * acc
                _rhs(W, code, leak, p, q, t_new - a, ynew, K[6])
                nfev += 6
                s = 0.0
                for i in range(m):
                    e = 0.0
                    for j in range(7):
                        e += E[j] * K[j, i]
                    sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
                    r = hs * e / sc
                    s += r * r
                err = math.sqrt(s / m)  # inf when the squares overflow, NaN for a non-finite trial
                finite_trial = _all_finite(ynew) and _all_finite(K[6])
                if finite_trial and err < 1.0:
                    if err == 0.0:
                        factor = 10.0
                    else:
                        factor = min(10.0, 0.9 * err ** -0.2)
                    if rejected:
                        factor = min(1.0, factor)
                    break
                nrej += 1
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= max(0.2, 0.9 * err ** -0.2)  # 0.2 for err = inf
                else:
                    bad_trial = True
                    h_abs *= 0.2
            # accepted step [t, t_new] of length hs
            nacc += 1
            big = 0.0
            for i in range(m):
                big = max(big, abs(ynew[i]))
            if big >= threshold:
                return DIVERGED, t_new, nfev, nacc, nrej
            while i_obs < n and t_eval[i_obs] <= t_new:
                te = t_eval[i_obs]
                if te == t_new:
                    H[i_obs, :] = ynew
                else:
                    x = (te - t) / hs
                    x2 = x * x
                    x3 = x2 * x
                    x4 = x3 * x
                    for i in range(m):
                        acc = 0.0
                        for j in range(7):
                            acc += K[j, i] * (Pd[j, 0] * x + Pd[j, 1] * x2 + Pd[j, 2] * x3 + Pd[j, 3] * x4)
                        H[i_obs, i] = y[i] + hs * acc
                i_obs += 1
            wanted = h_abs  # the step size before any cut onto the knot
            t = t_new
            for i in range(m):
                y[i] = ynew[i]
                K[0, i] = K[6, i]
            h_abs = hs * factor
            if t == bnd and wanted > hs:
                h_abs = max(h_abs, wanted)
    return SUCCESS, t, nfev, nacc, nrej


@numba.njit(cache=True, error_model="numpy")
def _solve_batch(W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold,
                 C, A, B, E, Pd, H, status, t_reached, counts):
    for s in range(P.shape[0]):
        st, tr, nfev, nacc, nrej = _solve_one(W, code, leak, P[s], Q[s], breaks, t_eval, H0[s], rtol, atol,
                                              max_step, max_steps, threshold, C, A, B, E, Pd, H[s])
        status[s] = st
        t_reached[s] = tr
        counts[s, 0] = nfev
        counts[s, 1] = nacc
        counts[s, 2] = nrej


@dataclass(frozen=True, eq=False)
class ODEResult:
    """Result of :func:`solve_ctrnn` for a batch of ``B`` sequences.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Observation times.
    h : ndarray, shape (B, n, m)
        States at ``t``; NaN at the times a failed sequence did not reach.
    status : ndarray of int, shape (B,)
        Per-sequence status code (keys of :data:`STATUS_MESSAGES`; 0 = success).
    t_reached : ndarray, shape (B,)
        Time the integration reached (the failure time when it failed).
    nfev, naccept, nreject : ndarray of int, shape (B,)
        Right-hand-side evaluations, accepted and rejected steps.
    success : bool
        All sequences succeeded.
    message : str
        The first failure (sequence index, time, cause), or the success message.
    """

    t: np.ndarray
    h: np.ndarray
    status: np.ndarray
    t_reached: np.ndarray
    nfev: np.ndarray
    naccept: np.ndarray
    nreject: np.ndarray
    success: bool
    message: str


def _affine_pieces(model, paths, breaks):
    """``P[s, k] = U x_s(a_k) + b`` and ``Q[s, k] = U x_s'`` on each segment ``[a_k, a_{k+1}]``."""
    starts = breaks[:-1]
    U, b = np.asarray(model.U), np.asarray(model.b)
    B, nseg, m = len(paths), starts.size, model.hidden
    P = np.empty((B, nseg, m))
    Q = np.empty((B, nseg, m))
    for s, x in enumerate(paths):
        k = x.piece_index(starts)
        xa = x.offsets[k] + (starts - x.knots[k])[:, None] * x.slopes[k]
        P[s] = xa @ U.T + b
        Q[s] = x.slopes[k] @ U.T
    return P, Q


def solve_ctrnn(
    model,
    x,
    t_eval,
    *,
    h0=None,
    t0: float | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_step: float = np.inf,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e12,
) -> ODEResult:
    """Integrate a CTRNN for a batch of input paths in one compiled call (Dormand-Prince 5(4)).

    Solves ``dh/dt = sigma(W h + U x_s(t) + b) - leak h``, ``h(t0) = h0_s``
    for every path ``x_s``; see the module docstring for the method and its
    controls (those of scipy's ``RK45``).

    Parameters
    ----------
    model : CTRNN or LinearRNN
    x : InputPath or sequence of InputPath, length B
        Paths affine on each piece (``x.affine``), dimension ``model.inputs``;
        the knots of all of them split the integration.
    t_eval : array_like, shape (n,)
        Strictly increasing times in ``[t0, t_end]``, ``t_end`` the smallest
        right end of the paths' domains.
    h0 : array_like, shape (m,) or (B, m), optional
        Initial states (zeros by default).
    t0 : float, optional
        Initial time; defaults to the largest left end of the paths' domains.
    rtol, atol : float
        Relative and absolute tolerance, as in :func:`scipy.integrate.solve_ivp`.
    max_step : float
        Largest step size.
    max_steps : int
        Largest number of step attempts (accepted or rejected) per sequence.
    divergence_threshold : float
        A sequence fails when ``max|h|`` reaches this value.

    Returns
    -------
    ODEResult
        Failures are reported in ``status``/``success``/``message``, never
        as silent numbers (unreached states are NaN).
    """
    from .simulate import _as_ctrnn  # local: simulate imports this module

    model = _as_ctrnn(model)
    paths = [x] if isinstance(x, InputPath) else list(x) if isinstance(x, (list, tuple)) else None
    if not paths:
        raise TypeError(f"`x` must be an InputPath or a non-empty list/tuple of them; got {describe(x)}.")
    for s, xs in enumerate(paths):
        if not isinstance(xs, InputPath):
            raise TypeError(f"`x[{s}]` must be an InputPath from dynmem.inputs; got {describe(xs)}.")
        if not xs.affine:
            raise ValueError(
                f"`x[{s}]` must be affine on each piece (x.affine) for the compiled solver; "
                f"got {type(xs).__name__}; use a scipy method instead."
            )
        if xs.dim != model.inputs:
            raise ValueError(f"`x[{s}]` must have dimension {model.inputs} to match the model's inputs; got {xs.dim}.")
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    max_step = check_positive("max_step", max_step, allow_inf=True)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    threshold = check_positive("divergence_threshold", divergence_threshold)
    t_eval = check_increasing("t_eval", as_float_array("t_eval", t_eval, ndim=1))
    if t_eval.size == 0:
        raise ValueError("`t_eval` must hold at least one time; got an empty array.")
    lo = max(xs.t_start for xs in paths)
    hi = min(xs.t_end for xs in paths)
    t0 = lo if t0 is None else check_finite("t0", t0)
    if not (lo <= t0 <= hi):
        raise ValueError(f"`t0` must lie in the inputs' common domain [{lo}, {hi}]; got {t0}.")
    if t_eval[0] < t0 or t_eval[-1] > hi:
        raise ValueError(f"`t_eval` must lie in [t0, t_end] = [{t0}, {hi}]; got values in [{t_eval[0]}, {t_eval[-1]}].")
    m, nb = model.hidden, len(paths)
    if h0 is None:
        H0 = np.zeros((nb, m))
    else:
        H0 = as_float_array("h0", h0, ndim=(1, 2))
        H0 = np.broadcast_to(H0, (nb, m)).copy() if H0.shape in ((m,), (1, m), (nb, m)) else None
        if H0 is None:
            raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {np.shape(h0)}.")
    t1 = float(t_eval[-1])
    knots = paths[0].knots if nb == 1 else np.unique(np.concatenate([xs.knots for xs in paths]))
    breaks = np.concatenate([[t0], knots[(knots > t0) & (knots < t1)], [t1]]) if t1 > t0 else np.array([t0])
    if breaks.size > 1:
        P, Q = _affine_pieces(model, paths, breaks)
    else:
        P = Q = np.zeros((nb, 1, m))
    H = np.full((nb, t_eval.size, m), np.nan)
    status = np.zeros(nb, dtype=np.int64)
    t_reached = np.zeros(nb)
    counts = np.zeros((nb, 3), dtype=np.int64)
    # fresh writeable C-contiguous arrays everywhere: one compiled signature
    _solve_batch(np.array(model.W, dtype=float), np.int64(get_activation(model.activation).code),
                 float(model.leak), P, Q, breaks, np.array(t_eval), H0, rtol, atol, max_step, np.int64(max_steps), threshold,
                 _C, _A, _B, _E, _P, H, status, t_reached, counts)
    bad = np.flatnonzero(status != SUCCESS)
    if bad.size:
        s = int(bad[0])
        message = (f"dopri5 failed for sequence {s} at t = {t_reached[s]:.6g}: {STATUS_MESSAGES[int(status[s])]}"
                   f" ({bad.size} of {nb} sequences failed).")
    else:
        message = "The solver reached the last requested time."
    return ODEResult(t=t_eval, h=H, status=status, t_reached=t_reached, nfev=counts[:, 0].copy(),
                     naccept=counts[:, 1].copy(), nreject=counts[:, 2].copy(), success=bad.size == 0, message=message)
