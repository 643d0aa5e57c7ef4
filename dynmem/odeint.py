"""Numba-compiled explicit Runge-Kutta integrators for CTRNNs: Dormand-Prince 5(4), Tsitouras 5(4), DOP853.

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

The same kernels run Tsitouras' 5(4) pair (``method="tsit5"``,
:data:`TSIT5_TABLEAU`: 7 stages, FSAL, fourth-order estimate and continuous
extension; Tsitouras 2011) with these controls, forward and in the adjoint.
``method="dop853"`` runs Hairer's eighth-order pair with scipy's ``DOP853``
controls in kernels of their own (forward solves only; see the last section
of this module).

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

Cost notes: tanh goes through :func:`dynmem.activations.tanh_block` (vectorised,
<= 4 ulp; libm's scalar tanh was ~70% of the right-hand side at m = 32), the
stage sums run with the component index innermost (the same sums as the
textbook loop, bit for bit), the segment tables of an input path are cached
per path and span (paths are frozen), and the adjoint's parameter quadrature
is summed by one matrix product per 256 nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import math
import weakref

import numba
import numpy as np

from ._validation import as_float_array, check_finite, check_increasing, check_int, check_positive, describe
from .activations import act_scalar, dact_scalar, get_activation, tanh_block
from .inputs import InputPath
from .solvers import ADJOINT_COMPILED_METHODS, COMPILED_METHODS, DOP853_COEFFICIENTS, SimulationError, as_ctrnn

__all__ = ["solve_ctrnn", "solve_ctrnn_constant", "ctrnn_loss_gradient", "AdjointODEResult", "ODEResult", "STATUS_MESSAGES", "DOPRI5_TABLEAU",
           "TSIT5_TABLEAU"]

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

# Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62, 770-775: Table 1 (c, a, b and the embedded b-hat, with c2 = 0.161,
# c3 = 0.327, c4 = 0.9, c5 = 0.9800255409045097 free and the rest solved from the order conditions), given
# there to more digits than float64 holds.  The digits below are those transcribed from the paper in diffrax
# 0.7.2 (diffrax/_solver/tsit5.py, which cites it; OrdinaryDiffEq.jl's Tsit5 has the same numbers), rounded to
# 19 significant digits; the tests verify them instead of trusting the transcription.
# Seven stages, FSAL (the seventh row of a is b), fifth-order propagation, fourth-order estimate.
# tests/test_odeint_pairs.py checks them: the order conditions up to 5 for b and up to 4 for b-hat.
_TS_C = np.array([0.0, 0.161, 0.327, 0.9, 0.9800255409045096857, 1.0])
_TS_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [0.161, 0.0, 0.0, 0.0, 0.0],
    [-0.8480655492356988544e-2, 0.3354806554923569885, 0.0, 0.0, 0.0],
    [2.897153057105493432, -6.359448489975074843, 4.362295432869581411, 0.0, 0.0],
    [5.325864828439256604, -11.74888356406282788, 7.495539342889836208, -0.9249506636175524926e-1, 0.0],
    [5.861455442946420029, -12.92096931784710929, 8.159367898576158643, -0.7158497328140099722e-1,
     -0.2826905039406838291e-1],
])
_TS_B = np.array([0.9646076681806522952e-1, 0.01, 0.4798896504144995748, 1.379008574103741893,
                  -3.290069515436080680, 2.324710524099773982])
_TS_BHAT = np.array([0.9468075576583945807e-1, 0.9183565540343253097e-2, 0.4877705284247615708,
                     1.234297566930478986, -2.707712349983525455, 1.866628418170587036, 1 / 66])
_TS_E = np.append(_TS_B, 0.0) - _TS_BHAT  # error weights: fifth- minus fourth-order solution, incl. FSAL


def _tsit5_dense():
    # Tsitouras (2011), sec. 3: the fourth-order continuous extension b_i(theta), degree-4 polynomials with
    # b_i(0) = 0 and b_i(1) = b_i, given there in factored form (the factors below); expanded here into the
    # monomial coefficients of theta, ..., theta^4 that _interpolate reads (checked by the tests: b(1) = b
    # and the dense order conditions sum_i b_i(theta) Phi_i(t) = theta^|t| / gamma(t) for |t| <= 4).
    P = np.polynomial.polynomial
    th = np.array([0.0, 1.0])
    fac = [
        (-1.0530884977290216, [th, [-1.3299890189751412, 1.0], [0.7139816917074209, -1.4364028541716351, 1.0]]),
        (0.1017, [th, th, [1.2949852507374631, -2.1966568338249754, 1.0]]),
        (2.490627285651252793, [th, th, [1.57803468208092486, -2.38535645472061657, 1.0]]),
        (-16.54810288924490272, [th, th, [-1.21712927295533244, 1.0], [-0.61620406037800089, 1.0]]),
        (47.37952196281928122, [th, th, [-1.203071208372362603, 1.0], [-0.658047292653547382, 1.0]]),
        (-34.87065786149660974, [th, th, [-1.2, 1.0], [-2.0 / 3.0, 1.0]]),
        (2.5, [th, th, [-1.0, 1.0], [-0.6, 1.0]]),
    ]
    out = np.zeros((7, 4))
    for i, (k, factors) in enumerate(fac):
        poly = np.array([k])
        for f in factors:
            poly = P.polymul(poly, f)
        out[i] = np.pad(poly, (0, 5 - poly.size))[1:5]
    return out


_TS_P = _tsit5_dense()
TSIT5_TABLEAU = {"C": _TS_C, "A": _TS_A, "B": _TS_B, "E": _TS_E, "P": _TS_P}
for _arr in TSIT5_TABLEAU.values():
    _arr.flags.writeable = False
_TABLEAUS = {"dopri5": DOPRI5_TABLEAU, "tsit5": TSIT5_TABLEAU}


def _tableau(method):
    # (C, A, B, E, P) of a 7-stage FSAL pair run by _solve_one / _adjoint_backward
    tab = _TABLEAUS[method]
    return tab["C"], tab["A"], tab["B"], tab["E"], tab["P"]


def _check_compiled_method(method, choices=COMPILED_METHODS):
    if method not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`method` must be one of {listed} (the compiled pairs); got {describe(method)}.")
    return method


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _rhs(W, code, leak, TS, TB, p, q, tau, h, out):
    # out = sigma(W h + p + tau q) - leak h.  tanh through activations.tanh_block (vectorised, <= 4 ulp;
    # libm's scalar tanh was ~70% of the field at m = 32); TS (2, m) float and TB (m,) int64 are its scratch.
    m = h.shape[0]
    for i in range(m):
        z = p[i] + tau * q[i]
        for j in range(m):
            z += W[i, j] * h[j]
        out[i] = z
    if code == 0:
        tanh_block(out, out, TS[0], TS[1], TB)
        for i in range(m):
            out[i] -= leak * h[i]
    else:
        for i in range(m):
            out[i] = act_scalar(code, out[i]) - leak * h[i]


@numba.njit(cache=True, error_model="numpy")
def _rms_scaled(v, y, rtol, atol):
    # RMS of v / (atol + rtol |y|)
    s = 0.0
    for i in range(v.shape[0]):
        r = v[i] / (atol + rtol * abs(y[i]))
        s += r * r
    return math.sqrt(s / v.shape[0])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _combine(coef, K, nst, out):
    # out[i] = sum_{j < nst} coef[j] K[j, i], summed over j in increasing order for every i
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
    for j in range(nst):
        cj = coef[j]
        for i in range(m):
            out[i] += cj * K[j, i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _interpolate(K, y, hs, x, Pd, out):
    # out = h(t + x hs): the step's quartic dense output from its 7 stage derivatives K (7, m); the loop
    # over components is innermost (contiguous), each component summed over j in increasing order
    x2 = x * x
    x3 = x2 * x
    x4 = x3 * x
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
    for j in range(7):
        wj = Pd[j, 0] * x + Pd[j, 1] * x2 + Pd[j, 2] * x3 + Pd[j, 3] * x4
        for i in range(m):
            out[i] += K[j, i] * wj
    for i in range(m):
        out[i] = y[i] + hs * out[i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _first_trial_step(d0, d1, span):
    # scipy's select_initial_step, first guess h0 from ||y|| and ||f(y)|| (scaled norms d0, d1)
    hh = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    return min(hh, span)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _initial_step(hh, d1, d2, cap):
    # scipy's select_initial_step, from the trial step hh and the second-derivative estimate d2 (order 4)
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, hh * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.2
    return min(100.0 * hh, h1, cap)


@numba.njit(cache=True, error_model="numpy")
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def _solve_one(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold,
               C, A, B, E, Pd, H, store, S_t, S_h, S_y, S_K, want_dy, cv, DY):
    """One sequence; fills H (n, m) up to the failure; returns (status, t_reached, nfev, naccept, nreject).

    With ``store`` the accepted steps are written to ``S_t`` (start), ``S_h``
    (length), ``S_y`` (start state) and ``S_K`` (the 7 stage derivatives):
    the dense output of the whole solve.  The arrays must hold every step.
    With ``want_dy``, ``DY[i] = cv . f(h(t_eval[i]))``, the exact field at the
    interpolated state (one extra field evaluation per observation inside a
    step), is written instead of ``H``, which is left untouched (it may be (1, m)).
    """
    m = h0.shape[0]
    n = t_eval.shape[0]
    nseg = breaks.shape[0] - 1
    K = np.empty((7, m))
    y = h0.copy()
    ynew = np.empty(m)
    ytmp = np.empty(m)
    acc_v = np.empty(m)
    TS = np.empty((2, m))  # tanh_block scratch
    TB = np.empty(m, dtype=np.int64)
    t = breaks[0]
    nfev = 0
    nacc = 0
    nrej = 0
    i_obs = 0
    if not _all_finite(y):
        return NONFINITE, t, nfev, nacc, nrej
    while i_obs < n and t_eval[i_obs] <= t:
        if not want_dy:
            H[i_obs, :] = y
        i_obs += 1
    n_first = i_obs
    if nseg == 0 and not want_dy:
        return SUCCESS, t, nfev, nacc, nrej

    # scipy's select_initial_step on the first piece (order 4 error estimator)
    _rhs(W, code, leak, TS, TB, P[0], Q[0], 0.0, y, K[0])
    nfev += 1
    if not _all_finite(K[0]):
        return NONFINITE, t, nfev, nacc, nrej
    if want_dy:
        acc = 0.0
        for i in range(m):
            acc += cv[i] * K[0, i]
        for r in range(n_first):
            DY[r] = acc
    if nseg == 0:
        return SUCCESS, t, nfev, nacc, nrej
    span = breaks[1] - breaks[0]
    d0 = _rms_scaled(y, y, rtol, atol)
    d1 = _rms_scaled(K[0], y, rtol, atol)
    hh = _first_trial_step(d0, d1, span)
    for i in range(m):
        ytmp[i] = y[i] + hh * K[0, i]
    _rhs(W, code, leak, TS, TB, P[0], Q[0], hh, ytmp, K[1])
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = _rms_scaled(ynew, y, rtol, atol) / hh
    h_abs = _initial_step(hh, d1, d2, min(span, max_step))
    if not math.isfinite(h_abs):  # a NaN from the derivative estimate
        return NONFINITE, t, nfev, nacc, nrej

    attempts = 0
    for seg in range(nseg):
        a = breaks[seg]
        bnd = breaks[seg + 1]
        p = P[seg]
        q = Q[seg]
        if seg > 0:
            _rhs(W, code, leak, TS, TB, p, q, 0.0, y, K[0])  # the input may jump at the knot
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
                    # loops over i innermost (contiguous, vectorised); each component still sums over j
                    # in the same order, so the results are those of the j-inner form bit for bit
                    _combine(A[st], K, st, acc_v)
                    for i in range(m):
                        ytmp[i] = y[i] + hs * acc_v[i]
                    _rhs(W, code, leak, TS, TB, p, q, t + C[st] * hs - a, ytmp, K[st])
                _combine(B, K, 6, acc_v)
                for i in range(m):
                    ynew[i] = y[i] + hs * acc_v[i]
                _rhs(W, code, leak, TS, TB, p, q, t_new - a, ynew, K[6])
                nfev += 6
                _combine(E, K, 7, acc_v)
                s = 0.0
                for i in range(m):
                    sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
                    r = hs * acc_v[i] / sc
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
            if store and nacc < S_t.shape[0]:
                S_t[nacc] = t
                S_h[nacc] = hs
                for i in range(m):
                    S_y[nacc, i] = y[i]
                    for j in range(7):
                        S_K[nacc, j, i] = K[j, i]
            nacc += 1
            big = 0.0
            for i in range(m):
                big = max(big, abs(ynew[i]))
            if big >= threshold:
                return DIVERGED, t_new, nfev, nacc, nrej
            while i_obs < n and t_eval[i_obs] <= t_new:
                te = t_eval[i_obs]
                if want_dy:
                    # cv . f(h(te)): the exact field at the interpolated state (K[6] = f(ynew) at the step end)
                    if te == t_new:
                        for i in range(m):
                            acc_v[i] = K[6, i]
                    else:
                        _interpolate(K, y, hs, (te - t) / hs, Pd, ytmp)
                        _rhs(W, code, leak, TS, TB, p, q, te - a, ytmp, acc_v)
                        nfev += 1
                    acc = 0.0
                    for i in range(m):
                        acc += cv[i] * acc_v[i]
                    DY[i_obs] = acc
                    i_obs += 1
                    continue
                if te == t_new:
                    H[i_obs, :] = ynew
                else:
                    _interpolate(K, y, hs, (te - t) / hs, Pd, H[i_obs])
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
                 C, A, B, E, Pd, H, status, t_reached, counts, want_dy, cv, DY):
    no_t, no_y, no_k = np.zeros(1), np.zeros((1, 1)), np.zeros((1, 7, 1))  # no dense-output storage
    for s in range(P.shape[0]):
        st, tr, nfev, nacc, nrej = _solve_one(W, code, leak, P[s], Q[s], breaks, t_eval, H0[s], rtol, atol,
                                              max_step, max_steps, threshold, C, A, B, E, Pd, H[s],
                                              False, no_t, no_t, no_y, no_k, want_dy, cv, DY[s])
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


# Segment tables of an input path, by path and span: the paths of dynmem.inputs are frozen and own
# read-only arrays, so the tables stay valid as long as the path lives (weak keys; a few spans each).
_PATH_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SPANS_PER_PATH = 8


def _path_tables(x, t0: float, t1: float, t_obs=None):
    """``(breaks, Xa, Xs)`` of one affine path on ``[t0, t1]``, cached per path.

    ``breaks`` are ``t0``, the knots inside ``(t0, t1)`` and ``t1`` (and, with
    ``t_obs``, the observation times inside ``(t0, t1]`` too: the backward
    grid of the adjoint); ``Xa[k]`` is ``x`` at ``breaks[k]`` on the piece
    that starts there and ``Xs[k]`` its slope.  Shared arrays: not to be written to.
    """
    key = (t0, t1, None if t_obs is None else t_obs.tobytes())
    try:
        per = _PATH_TABLES[x]
    except (KeyError, TypeError):
        per = None
    if per is not None:
        hit = per.get(key)
        if hit is not None:
            return hit
    knots = x.knots
    if t1 > t0:
        breaks = np.concatenate([[t0], knots[(knots > t0) & (knots < t1)], [t1]])
        if t_obs is not None:
            breaks = np.unique(np.concatenate([breaks, t_obs[t_obs > t0]]))
        starts = breaks[:-1]
        k = x.piece_index(0.5 * (starts + breaks[1:]))  # the piece holding each segment
        Xa = x.offsets[k] + (starts - knots[k])[:, None] * x.slopes[k]
        Xs = np.ascontiguousarray(x.slopes[k])
    else:
        breaks = np.array([t0])
        Xa = Xs = np.zeros((0, x.dim))
    out = (breaks, Xa, Xs)  # left writeable: numba types read-only arrays as another signature
    try:
        per = _PATH_TABLES.setdefault(x, {})
    except TypeError:  # pragma: no cover - a path type without weak references: no caching
        return out
    if len(per) >= _SPANS_PER_PATH:
        per.pop(next(iter(per)))
    per[key] = out
    return out


def solve_path_validated(model, x, t_eval, h, t0, rtol, atol, max_step, max_steps, threshold, method="dopri5"):
    """One affine path, arguments already validated by the caller (:func:`dynmem.simulate`).

    No checks here: ``model`` a CTRNN, ``x`` an affine path of its input
    dimension, ``t_eval`` a strictly increasing float64 array in
    ``[t0, x.t_end]``, ``h`` the initial state (m,), the tolerances and
    limits positive floats / ints, ``method`` one of
    :data:`~dynmem.solvers.COMPILED_METHODS`.  Returns
    ``(H, status, t_reached, nfev)`` with ``H`` of shape (n, m) (NaN where not
    reached); same kernels as :func:`solve_ctrnn`.
    """
    m = h.shape[0]
    breaks, Xa, Xs = _path_tables(x, float(t0), float(t_eval[-1]))
    U = np.asarray(model.U)
    if breaks.size > 1:
        P = (Xa @ U.T + np.asarray(model.b))[None]
        Q = (Xs @ U.T)[None]
    else:
        P = Q = np.zeros((1, 1, m))
    H = np.full((1, t_eval.size, m), np.nan)
    status = np.zeros(1, dtype=np.int64)
    t_reached = np.zeros(1)
    counts = np.zeros((1, 3), dtype=np.int64)
    _run_batch(method, np.array(model.W, dtype=float), np.int64(get_activation(model.activation).code),
               float(model.leak), P, Q, breaks, np.array(t_eval, dtype=float), np.array(h, dtype=float)[None],
               float(rtol), float(atol), float(max_step), np.int64(max_steps), float(threshold), H, status, t_reached,
               counts, False, _NO_CV, _NO_DY)
    return H[0], int(status[0]), float(t_reached[0]), int(counts[0, 0])


_NO_CV = np.zeros(1)
_NO_DY = np.zeros((1, 1))


def _run_batch(method, W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold, H,
               status, t_reached, counts, want_dy, cv, DY):
    # the batch kernel of a compiled method: the 7-stage pairs share _solve_batch, DOP853 has its own
    if method == "dop853":
        k = DOP853_COEFFICIENTS
        _solve_batch_853(W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold,
                         k["C"], k["A"], k["B"], k["E3"], k["E5"], k["D"], H, status, t_reached, counts, want_dy, cv, DY)
    else:
        C, A, B, E, Pd = _tableau(method)
        _solve_batch(W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold,
                     C, A, B, E, Pd, H, status, t_reached, counts, want_dy, cv, DY)


def _prepare(model, x, t_eval, h0, t0, rtol, atol, max_step, max_steps, divergence_threshold, t_name):
    """Validate the public arguments and build the segment data shared by the compiled solves."""
    model = as_ctrnn(model)
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
    t_eval = check_increasing(t_name, as_float_array(t_name, t_eval, ndim=1))
    if t_eval.size == 0:
        raise ValueError(f"`{t_name}` must hold at least one time; got an empty array.")
    lo = max(xs.t_start for xs in paths)
    hi = min(xs.t_end for xs in paths)
    t0 = lo if t0 is None else check_finite("t0", t0)
    if not (lo <= t0 <= hi):
        raise ValueError(f"`t0` must lie in the inputs' common domain [{lo}, {hi}]; got {t0}.")
    if t_eval[0] < t0 or t_eval[-1] > hi:
        raise ValueError(f"`{t_name}` must lie in [t0, t_end] = [{t0}, {hi}]; got values in [{t_eval[0]}, {t_eval[-1]}].")
    m, nb = model.hidden, len(paths)
    if h0 is None:
        H0 = np.zeros((nb, m))
    else:
        H0 = as_float_array("h0", h0, ndim=(1, 2))
        H0 = np.broadcast_to(H0, (nb, m)).copy() if H0.shape in ((m,), (1, m), (nb, m)) else None
        if H0 is None:
            raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {np.shape(h0)}.")
    t1 = float(t_eval[-1])
    if nb == 1:
        breaks, Xa, Xs = _path_tables(paths[0], float(t0), t1)
        if breaks.size > 1:
            U = np.asarray(model.U)
            P, Q = (Xa @ U.T + np.asarray(model.b))[None], (Xs @ U.T)[None]
        else:
            P = Q = np.zeros((nb, 1, m))
        return model, paths, t_eval, H0, t0, rtol, atol, max_step, max_steps, threshold, breaks, P, Q
    knots = np.unique(np.concatenate([xs.knots for xs in paths]))
    breaks = np.concatenate([[t0], knots[(knots > t0) & (knots < t1)], [t1]]) if t1 > t0 else np.array([t0])
    if breaks.size > 1:
        P, Q = _affine_pieces(model, paths, breaks)
    else:
        P = Q = np.zeros((nb, 1, m))
    return model, paths, t_eval, H0, t0, rtol, atol, max_step, max_steps, threshold, breaks, P, Q


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
    method: str = "dopri5",
) -> ODEResult:
    """Integrate a CTRNN for a batch of input paths in one compiled call (an explicit Runge-Kutta pair).

    Solves ``dh/dt = sigma(W h + U x_s(t) + b) - leak h``, ``h(t0) = h0_s``
    for every path ``x_s``; see the module docstring for the method and its
    controls (those of scipy's ``RK45``, or of scipy's ``DOP853`` for
    ``method="dop853"``).

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
    method : {"dopri5", "tsit5", "dop853"}
        The pair: Dormand-Prince 5(4) (scipy's ``RK45``), Tsitouras 5(4)
        (:data:`TSIT5_TABLEAU`, the same controls), or Hairer's DOP853
        (scipy's ``DOP853``: eighth order, the combined 5th/3rd-order error
        estimate with exponent -1/8, the seventh-order dense output with its
        3 extra stages, evaluated only for steps that hold an observation).

    Returns
    -------
    ODEResult
        Failures are reported in ``status``/``success``/``message``, never
        as silent numbers (unreached states are NaN).
    """
    method = _check_compiled_method(method)
    model, paths, t_eval, H0, t0, rtol, atol, max_step, max_steps, threshold, breaks, P, Q = _prepare(
        model, x, t_eval, h0, t0, rtol, atol, max_step, max_steps, divergence_threshold, "t_eval")
    m, nb = model.hidden, len(paths)
    H = np.full((nb, t_eval.size, m), np.nan)
    status = np.zeros(nb, dtype=np.int64)
    t_reached = np.zeros(nb)
    counts = np.zeros((nb, 3), dtype=np.int64)
    # fresh writeable C-contiguous arrays everywhere: one compiled signature
    _run_batch(method, np.array(model.W, dtype=float), np.int64(get_activation(model.activation).code),
               float(model.leak), P, Q, breaks, np.array(t_eval), H0, rtol, atol, max_step, np.int64(max_steps),
               threshold, H, status, t_reached, counts, False, np.zeros(m), np.zeros((nb, 1)))
    return _batch_result(t_eval, H, status, t_reached, counts, method)


def solve_ctrnn_constant(
    model,
    X,
    t_eval,
    *,
    h0=None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e12,
    output_derivative=None,
    method: str = "dopri5",
):
    """Integrate a CTRNN from ``t = 0`` under constant inputs, a batch of ``B`` of them in one compiled call.

    Solves ``dh/dt = sigma(W h + U X[s] + b) - leak h``, ``h(0) = h0[s]``,
    for every row ``X[s]`` (the probes of :func:`dynmem.memory_function`);
    the same pairs and controls as :func:`solve_ctrnn`, without input paths
    (one piece ``[0, t_eval[-1]]``).

    Parameters
    ----------
    model : CTRNN or LinearRNN
    X : array_like, shape (B, d)
        The constant inputs.
    t_eval : array_like, shape (n,)
        Strictly increasing times ``>= 0``.
    h0 : array_like, shape (m,) or (B, m), optional
        Initial states (zeros by default).
    rtol, atol, max_steps, divergence_threshold
        As in :func:`solve_ctrnn`.
    output_derivative : array_like, shape (m,), optional
        A readout ``c``: also return ``c^T dh/dt = c^T f(h(t))`` at every
        ``t_eval``, the exact field evaluated inside the compiled call at the
        interpolated state (one extra right-hand side per observation that
        falls inside a step; the states are not kept).  Its error is that of
        the state, as on the scipy path.  (An earlier version read dy/dt off
        the interpolant's derivative: ~30x less accurate.)
    method : {"dopri5", "tsit5", "dop853"}
        As in :func:`solve_ctrnn`.

    Returns
    -------
    ODEResult, or (ODEResult, ndarray of shape (B, n)) with ``output_derivative``
        ``h`` of shape (B, n, m) (shape (B, 1, m), all NaN, when
        ``output_derivative`` is given: the states are not kept); failures in
        ``status``/``success``/``message`` (NaN derivatives where a sequence
        failed).
    """
    method = _check_compiled_method(method)
    model = as_ctrnn(model)
    m, d = model.hidden, model.inputs
    X = as_float_array("X", X, ndim=2)
    if X.shape[1] != d or X.shape[0] == 0:
        raise ValueError(f"`X` must have shape (B, {d}) with B >= 1 to match the model's inputs; got shape {X.shape}.")
    nb = X.shape[0]
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    threshold = check_positive("divergence_threshold", divergence_threshold)
    t_eval = check_increasing("t_eval", as_float_array("t_eval", t_eval, ndim=1))
    if t_eval.size == 0 or t_eval[0] < 0:
        raise ValueError(f"`t_eval` must hold at least one time, all >= 0; got {describe(t_eval)}.")
    if h0 is None:
        H0 = np.zeros((nb, m))
    else:
        H0 = as_float_array("h0", h0, ndim=(1, 2))
        if H0.shape not in ((m,), (1, m), (nb, m)):
            raise ValueError(f"`h0` must have shape ({m},) or ({nb}, {m}); got shape {H0.shape}.")
        H0 = np.ascontiguousarray(np.broadcast_to(H0, (nb, m)), dtype=float).copy()
    want_dy = output_derivative is not None
    cv = np.zeros(m) if output_derivative is None else as_float_array("output_derivative", output_derivative, shape=(m,)).copy()
    DY = np.full((nb, t_eval.size if want_dy else 1), np.nan)
    t1 = float(t_eval[-1])
    breaks = np.array([0.0, t1]) if t1 > 0 else np.array([0.0])
    P = np.ascontiguousarray((X @ np.asarray(model.U).T + np.asarray(model.b))[:, None, :])
    Q = np.zeros_like(P)
    H = np.full((nb, 1 if want_dy else t_eval.size, m), np.nan)
    status = np.zeros(nb, dtype=np.int64)
    t_reached = np.zeros(nb)
    counts = np.zeros((nb, 3), dtype=np.int64)
    _run_batch(method, np.array(model.W, dtype=float), np.int64(get_activation(model.activation).code),
               float(model.leak), P, Q, breaks, np.array(t_eval), H0, rtol, atol, np.inf, np.int64(max_steps),
               threshold, H, status, t_reached, counts, want_dy, cv, DY)
    res = _batch_result(t_eval, H, status, t_reached, counts, method)
    return (res, DY) if want_dy else res


def _batch_result(t_eval, H, status, t_reached, counts, method="dopri5"):
    nb = status.size
    bad = np.flatnonzero(status != SUCCESS)
    if bad.size:
        s = int(bad[0])
        message = (f"{method} failed for sequence {s} at t = {t_reached[s]:.6g}: {STATUS_MESSAGES[int(status[s])]}"
                   f" ({bad.size} of {nb} sequences failed).")
    else:
        message = "The solver reached the last requested time."
    return ODEResult(t=t_eval, h=H, status=status, t_reached=t_reached, nfev=counts[:, 0].copy(),
                     naccept=counts[:, 1].copy(), nreject=counts[:, 2].copy(), success=bad.size == 0, message=message)



# ---------------------------------------------------------------------------
# Continuous adjoint of the observation loss
# ---------------------------------------------------------------------------

@numba.njit(cache=True, error_model="numpy")
def _dense_eval(t, S_t, S_h, S_y, S_K, Pd, nsteps, out):
    # forward state h(t) from the stored DOPRI5 interpolant (binary search on the step starts)
    lo = 0
    hi = nsteps - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if S_t[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    hs = S_h[lo]
    _interpolate(S_K[lo], S_y[lo], hs, (t - S_t[lo]) / hs, Pd, out)


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _adj_rhs(W, code, leak, TS, TB, p, q, tau, h, a, out, v):
    # v = sigma'(W h + p + tau q) * a ;  out = leak a - W^T v
    m = h.shape[0]
    for i in range(m):
        z = p[i] + tau * q[i]
        for j in range(m):
            z += W[i, j] * h[j]
        v[i] = z
    if code == 0:
        tanh_block(v, v, TS[0], TS[1], TB)  # TS[0] = 1 - tanh^2
        for i in range(m):
            v[i] = TS[0, i] * a[i]
    else:
        for i in range(m):
            v[i] = dact_scalar(code, v[i]) * a[i]
    for i in range(m):
        out[i] = leak * a[i]
    for i in range(m):
        vi = v[i]
        for j in range(m):
            out[j] -= W[i, j] * vi


_QUAD_ROWS = 256


@numba.njit(cache=True, error_model="numpy")
def _flush_quadrature(QV, QZ, nq, gW, gU, gb):
    # [gW | gU | gb] += QV[:nq]^T QZ[:nq]  (one BLAS product)
    if nq == 0:
        return
    m = gW.shape[0]
    d = gU.shape[1]
    G = np.dot(QV[:nq].T, QZ[:nq])
    for i in range(m):
        for j in range(m):
            gW[i, j] += G[i, j]
        for k in range(d):
            gU[i, k] += G[i, m + k]
        gb[i] += G[i, m + d]


@numba.njit(cache=True, error_model="numpy")
def _adjoint_backward(W, code, leak, P, Q, Xo, Xs, bbreaks, jumps, a_T, rtol, atol, max_steps,
                      C, A, B, E, Pd, S_t, S_h, S_y, S_K, nsteps, gW, gU, gb, a_out):
    """Backward DOPRI5 solve of the adjoint from bbreaks[-1] to bbreaks[0], with parameter quadrature.

    ``jumps[k]`` (m,) is added to ``a`` on arriving at ``bbreaks[k]`` (k < nseg).
    Returns (status, t_reached, nfev).
    """
    m = a_T.shape[0]
    d = Xo.shape[1]
    nseg = bbreaks.shape[0] - 1
    K = np.empty((7, m))
    V = np.empty((7, m))   # sigma' * a at each stage
    Hst = np.empty((7, m))  # forward state at each stage
    QV = np.empty((_QUAD_ROWS, m))  # quadrature nodes, see below
    QZ = np.empty((_QUAD_ROWS, m + d + 1))
    nq = 0
    a = a_T.copy()
    anew = np.empty(m)
    atmp = np.empty(m)
    acc_v = np.empty(m)
    TS = np.empty((2, m))  # tanh_block scratch
    TB = np.empty(m, dtype=np.int64)
    t = bbreaks[nseg]
    nfev = 0
    attempts = 0
    h_abs = -1.0
    for seg in range(nseg - 1, -1, -1):
        lo = bbreaks[seg]
        base = bbreaks[seg]  # tau is measured from the segment's left end
        p = P[seg]
        q = Q[seg]
        _dense_eval(t, S_t, S_h, S_y, S_K, Pd, nsteps, Hst[0])
        _adj_rhs(W, code, leak, TS, TB, p, q, t - base, Hst[0], a, K[0], V[0])
        nfev += 1
        if not _all_finite(K[0]):
            return NONFINITE, t, nfev
        if h_abs < 0.0:  # scipy's initial step on the first backward piece
            span = t - lo
            d0 = _rms_scaled(a, a, rtol, atol)
            d1 = _rms_scaled(K[0], a, rtol, atol)
            hh = _first_trial_step(d0, d1, span)
            for i in range(m):
                atmp[i] = a[i] - hh * K[0, i]
            _dense_eval(t - hh, S_t, S_h, S_y, S_K, Pd, nsteps, Hst[1])
            _adj_rhs(W, code, leak, TS, TB, p, q, t - hh - base, Hst[1], atmp, K[1], V[1])
            nfev += 1
            for i in range(m):
                anew[i] = K[1, i] - K[0, i]
            d2 = _rms_scaled(anew, a, rtol, atol) / hh
            h_abs = _initial_step(hh, d1, d2, span)
        while t > lo:
            min_step = 10.0 * abs(np.nextafter(t, -np.inf) - t)
            if h_abs < min_step:
                h_abs = min_step
            rejected = False
            bad_trial = False
            while True:
                if h_abs < min_step:
                    return (NONFINITE if bad_trial else STEP_UNDERFLOW), t, nfev
                if attempts >= max_steps:
                    return MAX_STEPS, t, nfev
                attempts += 1
                t_new = t - h_abs
                if t_new <= lo:
                    t_new = lo
                hs = t_new - t  # negative
                for st in range(1, 6):
                    _combine(A[st], K, st, acc_v)
                    for i in range(m):
                        atmp[i] = a[i] + hs * acc_v[i]
                    ts = t + C[st] * hs
                    _dense_eval(ts, S_t, S_h, S_y, S_K, Pd, nsteps, Hst[st])
                    _adj_rhs(W, code, leak, TS, TB, p, q, ts - base, Hst[st], atmp, K[st], V[st])
                _combine(B, K, 6, acc_v)
                for i in range(m):
                    anew[i] = a[i] + hs * acc_v[i]
                _dense_eval(t_new, S_t, S_h, S_y, S_K, Pd, nsteps, Hst[6])
                _adj_rhs(W, code, leak, TS, TB, p, q, t_new - base, Hst[6], anew, K[6], V[6])
                nfev += 6
                _combine(E, K, 7, acc_v)
                ssum = 0.0
                for i in range(m):
                    r = hs * acc_v[i] / (atol + rtol * max(abs(a[i]), abs(anew[i])))
                    ssum += r * r
                err = math.sqrt(ssum / m)
                finite_trial = _all_finite(anew) and _all_finite(K[6])
                if finite_trial and err < 1.0:
                    factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.2)
                    if rejected:
                        factor = min(1.0, factor)
                    break
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= max(0.2, 0.9 * err ** -0.2)
                else:
                    bad_trial = True
                    h_abs *= 0.2
            # parameter integrals over [t_new, t] by the step's own fifth-order weights:
            # int f dt = |hs| sum_j B_j f(t + C_j hs, a_j), with a_j the stage arguments
            # The nodes are buffered as rows (weighted sigma' * a) and (h, x, 1) and summed by one matrix
            # product per _QUAD_ROWS nodes: [dW | dU | db] += QV^T QZ.
            w = -hs
            for st in range(6):
                bw = w * B[st]
                if bw == 0.0:
                    continue
                if nq == QV.shape[0]:
                    _flush_quadrature(QV, QZ, nq, gW, gU, gb)
                    nq = 0
                ts = t + C[st] * hs
                for i in range(m):
                    QV[nq, i] = bw * V[st, i]
                    QZ[nq, i] = Hst[st, i]
                for k in range(d):
                    QZ[nq, m + k] = Xo[seg, k] + (ts - base) * Xs[seg, k]
                QZ[nq, m + d] = 1.0
                nq += 1
            wanted = h_abs
            t = t_new
            for i in range(m):
                a[i] = anew[i]
                K[0, i] = K[6, i]
                V[0, i] = V[6, i]
                Hst[0, i] = Hst[6, i]
            h_abs = -hs * factor
            if t == lo and wanted > -hs:
                h_abs = max(h_abs, wanted)
        for i in range(m):
            a[i] += jumps[seg, i]
    _flush_quadrature(QV, QZ, nq, gW, gU, gb)
    for i in range(m):
        a_out[i] = a[i]
    return SUCCESS, t, nfev


@numba.njit(cache=True, error_model="numpy")
def _forward_store(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold,
                   C, A, B, E, Pd, H, capacity):
    # store up to `capacity` steps; if the solve took more, repeat the identical solve with room for all
    m = h0.shape[0]
    n = capacity
    while True:
        S_t, S_h, S_y, S_K = np.empty(n), np.empty(n), np.empty((n, m)), np.empty((n, 7, m))
        st, tr, nfev, nacc, nrej = _solve_one(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step,
                                              max_steps, threshold, C, A, B, E, Pd, H, True, S_t, S_h, S_y, S_K,
                                              False, S_t, S_t)
        if st != SUCCESS or nacc <= n:
            return st, tr, nfev, nacc, S_t, S_h, S_y, S_K
        n = nacc


_STORE_CAPACITY = 512  # forward steps stored before a solve is repeated with room for all of them


@dataclass(frozen=True, eq=False)
class AdjointODEResult:
    """Result of :func:`ctrnn_loss_gradient`.

    Attributes
    ----------
    loss : float
        ``L = 1/2 sum_i w_i (y(t_i) - y_i^obs)^2``.
    dW, dU, db, dc : ndarray
        Gradients of ``L``, shapes of ``W, U, b, c``.
    dh0 : ndarray, shape (m,)
        ``dL/dh(t0)``.
    y : ndarray, shape (n,)
        Outputs at the observation times.
    nfev_forward, nfev_backward : int
        Right-hand-side evaluations of the two solves (the forward count is of
        one pass; a forward solve of more than 512 steps is run twice, the
        second time storing every step).
    naccept_forward : int
        Accepted forward steps (the stored dense output).
    """

    loss: float
    dW: np.ndarray
    dU: np.ndarray
    db: np.ndarray
    dc: np.ndarray
    dh0: np.ndarray
    y: np.ndarray
    nfev_forward: int
    nfev_backward: int
    naccept_forward: int


def ctrnn_loss_gradient(
    model,
    x,
    t_obs,
    y_obs,
    *,
    h0=None,
    t0: float | None = None,
    weights=None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e12,
    method: str = "dopri5",
) -> AdjointODEResult:
    """Observation loss of a CTRNN and its gradient by the continuous adjoint, compiled.

    ``L = 1/2 sum_i w_i (c^T h(t_i) - y_i)^2``.  The forward DOPRI5 solve (see
    :func:`solve_ctrnn`) keeps its dense output in compiled storage; the
    adjoint ``a = dL/dh`` solves ``da/dt = leak a - W^T (sigma'(z) * a)``
    backwards from ``a(T^+) = 0`` with the same pair and controls (error norm
    on ``a`` only), reading ``h(t)`` from the forward interpolant (never by
    backsolving), jumping by ``w_i (y(t_i) - y_i) c`` at every observation and
    stopping at every input knot.  The parameter integrals
    ``dL/dW = int (sigma' * a) h^T dt``, ``dL/dU = int (sigma' * a) x^T dt``,
    ``dL/db = int sigma' * a dt`` are accumulated on each backward step with
    the step's fifth-order weights (they are the quadrature components of the
    augmented adjoint system).  ``dL/dc = sum_i w_i (y(t_i) - y_i) h(t_i)``.

    Parameters
    ----------
    model : CTRNN or LinearRNN
    x : InputPath
        Affine on each piece.
    t_obs, y_obs : array_like, shape (n,)
        Strictly increasing times in ``[t0, x.t_end]`` and observed outputs.
    h0, t0, rtol, atol, max_steps, divergence_threshold
        As in :func:`solve_ctrnn` (both solves use ``rtol``/``atol``).
    weights : array_like, shape (n,), optional
        ``w_i >= 0`` (ones by default).
    method : {"dopri5", "tsit5"}
        The pair of both solves (forward and backward); the backward
        quadrature uses its fifth-order weights.  ``"dop853"`` has no compiled
        adjoint (ValueError).

    Returns
    -------
    AdjointODEResult

    Raises
    ------
    dynmem.simulate.SimulationError
        When the forward or the backward solve fails.
    """
    if method == "dop853":
        raise ValueError("`method` = 'dop853' has no compiled adjoint: ctrnn_loss_gradient takes "
                         f"{', '.join(repr(c) for c in ADJOINT_COMPILED_METHODS)} (or use a scipy method such as "
                         "'DOP853' in dynmem.adjoint_gradient).")
    method = _check_compiled_method(method, ADJOINT_COMPILED_METHODS)
    C, A, B, E, Pd = _tableau(method)
    model = as_ctrnn(model)
    if not isinstance(x, InputPath):
        raise TypeError(f"`x` must be an InputPath from dynmem.inputs; got {describe(x)}.")
    model, _, t_obs, H0, t0, rtol, atol, _, max_steps, threshold, breaks, P, Q = _prepare(
        model, x, t_obs, h0, t0, rtol, atol, np.inf, max_steps, divergence_threshold, "t_obs")
    H0 = H0[0]
    m, d = model.hidden, model.inputs
    T = float(t_obs[-1])
    y_obs = as_float_array("y_obs", y_obs, shape=t_obs.shape)
    w = np.ones(t_obs.size) if weights is None else as_float_array("weights", weights, shape=t_obs.shape)
    if np.any(w < 0):
        raise ValueError(f"`weights` must be non-negative; got {describe(w)}.")
    W = np.array(model.W, dtype=float)
    code = np.int64(get_activation(model.activation).code)
    leak = float(model.leak)
    H = np.full((t_obs.size, m), np.nan)
    st, tr, nfev_f, nacc, S_t, S_h, S_y, S_K = _forward_store(
        W, code, leak, P[0], Q[0], breaks, np.array(t_obs), H0, rtol, atol, np.inf,
        np.int64(max_steps), threshold, C, A, B, E, Pd, H, np.int64(_STORE_CAPACITY))
    if st == DIVERGED:
        raise SimulationError(f"the state diverged: max|h| reached divergence_threshold = {threshold:g} by t = "
                              f"{tr:.6g} ({method} forward solve).")
    if st != SUCCESS:
        raise SimulationError(f"{method} forward solve failed at t = {tr:.6g}: {STATUS_MESSAGES[int(st)]}.")
    c = np.array(model.c)
    y = H @ c
    r = w * (y - y_obs)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = 0.5 * float(np.sum(w * (y - y_obs) ** 2))
    if not (np.isfinite(loss) and np.all(np.isfinite(r))):
        from .errors import FloatOverflowError

        raise FloatOverflowError(f"the loss overflowed float64 (0.5 sum w (y - y_obs)^2 = {loss}): max|y_obs| = "
                                 f"{np.max(np.abs(y_obs)):.3g}, max|y| = {np.max(np.abs(y)):.3g}; rescale `y_obs`.")
    dc = r @ H
    dW, dU, db = np.zeros((m, m)), np.zeros((m, d)), np.zeros(m)
    a0 = np.zeros(m)
    nfev_b = 0
    if T > t0:
        # backward grid: the forward breaks and the observation times (cached per path)
        bb, Xo, Xs = _path_tables(x, float(t0), T, t_obs)
        U = np.asarray(model.U)
        Pb = Xo @ U.T + np.asarray(model.b)
        Qb = Xs @ U.T
        jumps = np.zeros((bb.size, m))
        jumps[np.searchsorted(bb, t_obs)] = r[:, None] * c[None, :]  # distinct rows: t_obs strictly increases
        st, tr, nfev_b = _adjoint_backward(W, code, leak, Pb, Qb, Xo, Xs, bb, jumps,
                                           jumps[-1].copy(), float(rtol), float(atol), np.int64(max_steps),
                                           C, A, B, E, Pd, S_t, S_h, S_y, S_K, np.int64(nacc), dW, dU, db, a0)
        if st != SUCCESS:
            raise SimulationError(f"{method} adjoint (backward) solve failed at t = {tr:.6g}: {STATUS_MESSAGES[int(st)]}.")
    else:
        a0 = r.sum() * c  # all observations at t0
    return AdjointODEResult(loss=loss, dW=dW, dU=dU, db=db, dc=dc, dh0=a0, y=y, nfev_forward=int(nfev_f),
                            nfev_backward=int(nfev_b), naccept_forward=int(nacc))


# ---------------------------------------------------------------------------
# DOP853: Hairer's eighth-order pair, compiled (forward solves only)
# ---------------------------------------------------------------------------
# The pair, error estimate and controls of scipy's DOP853 (scipy/integrate/_ivp/rk.py; Hairer, Norsett &
# Wanner, *Solving ODEs I*, sec. II.5 and II.10, and Hairer's Fortran DOP853), written for the CTRNN field:
# * 12 stages and the FSAL stage K[12] = f(t + h, y_new); y_new = y + h sum_{j<12} B_j K_j;
# * with e5 = sum_j E5_j K_j / sc and e3 = sum_j E3_j K_j / sc (sc = atol + rtol max(|y|, |y_new|)), the
#   error norm is |h| ||e5||^2 / sqrt(m (||e5||^2 + 0.01 ||e3||^2)) (0 when both vanish): a step is accepted
#   when it is < 1; the step-size factors are those of the 5(4) pairs with the exponent -1/8;
# * the initial step is scipy's select_initial_step with error-estimator order 7 (exponent 1/8);
# * dense output of order 7: three more stages K[13..15] (computed only for a step that holds an
#   observation), then with x = (t - t_old) / h and F0 = y_new - y, F1 = h K_0 - F0,
#   F2 = 2 F0 - h (K_12 + K_0), F_{3+r} = h sum_j D_rj K_j (r < 4):
#   y(x) = y + x (F0 + (1-x) (F1 + x (F2 + (1-x) (F3 + x (F4 + (1-x) (F5 + x F6)))))).
# Statuses, knot handling, observation filling, output derivatives and failure reporting are those of
# _solve_one (see the module docstring).

@numba.njit(cache=True, error_model="numpy", inline="always")
def _initial_step_853(hh, d1, d2, cap):
    # scipy's select_initial_step with error-estimator order 7
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, hh * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.125
    return min(100.0 * hh, h1, cap)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _dense_853(F, y, x, out):
    # y + x (F0 + (1-x) (F1 + x (F2 + ...))): scipy's Dop853DenseOutput, Horner from the last coefficient
    m = out.shape[0]
    nf = F.shape[0]
    for i in range(m):
        v = 0.0
        for r in range(nf):
            v += F[nf - 1 - r, i]
            if r % 2 == 0:
                v *= x
            else:
                v *= 1.0 - x
        out[i] = y[i] + v


@numba.njit(cache=True, error_model="numpy")
def _solve_one_853(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold,
                   C, A, B, E3, E5, D, H, want_dy, cv, DY):
    """One sequence by DOP853; fills H (n, m) (or DY with ``want_dy``) as _solve_one does.

    Returns (status, t_reached, nfev, naccept, nreject).
    """
    m = h0.shape[0]
    n = t_eval.shape[0]
    nseg = breaks.shape[0] - 1
    K = np.empty((16, m))
    F = np.empty((7, m))
    y = h0.copy()
    ynew = np.empty(m)
    ytmp = np.empty(m)
    acc_v = np.empty(m)
    TS = np.empty((2, m))  # tanh_block scratch
    TB = np.empty(m, dtype=np.int64)
    t = breaks[0]
    nfev = 0
    nacc = 0
    nrej = 0
    i_obs = 0
    if not _all_finite(y):
        return NONFINITE, t, nfev, nacc, nrej
    while i_obs < n and t_eval[i_obs] <= t:
        if not want_dy:
            H[i_obs, :] = y
        i_obs += 1
    n_first = i_obs
    if nseg == 0 and not want_dy:
        return SUCCESS, t, nfev, nacc, nrej

    _rhs(W, code, leak, TS, TB, P[0], Q[0], 0.0, y, K[0])
    nfev += 1
    if not _all_finite(K[0]):
        return NONFINITE, t, nfev, nacc, nrej
    if want_dy:
        acc = 0.0
        for i in range(m):
            acc += cv[i] * K[0, i]
        for r in range(n_first):
            DY[r] = acc
    if nseg == 0:
        return SUCCESS, t, nfev, nacc, nrej
    span = breaks[1] - breaks[0]
    d0 = _rms_scaled(y, y, rtol, atol)
    d1 = _rms_scaled(K[0], y, rtol, atol)
    hh = _first_trial_step(d0, d1, span)
    for i in range(m):
        ytmp[i] = y[i] + hh * K[0, i]
    _rhs(W, code, leak, TS, TB, P[0], Q[0], hh, ytmp, K[1])
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = _rms_scaled(ynew, y, rtol, atol) / hh
    h_abs = _initial_step_853(hh, d1, d2, min(span, max_step))
    if not math.isfinite(h_abs):
        return NONFINITE, t, nfev, nacc, nrej

    attempts = 0
    for seg in range(nseg):
        a = breaks[seg]
        bnd = breaks[seg + 1]
        p = P[seg]
        q = Q[seg]
        if seg > 0:
            _rhs(W, code, leak, TS, TB, p, q, 0.0, y, K[0])  # the input may jump at the knot
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
                for st in range(1, 12):
                    _combine(A[st], K, st, acc_v)
                    for i in range(m):
                        ytmp[i] = y[i] + hs * acc_v[i]
                    _rhs(W, code, leak, TS, TB, p, q, t + C[st] * hs - a, ytmp, K[st])
                _combine(B, K, 12, acc_v)
                for i in range(m):
                    ynew[i] = y[i] + hs * acc_v[i]
                _rhs(W, code, leak, TS, TB, p, q, t_new - a, ynew, K[12])
                nfev += 12
                s5 = 0.0
                s3 = 0.0
                for i in range(m):
                    sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
                    e5 = 0.0
                    e3 = 0.0
                    for j in range(13):
                        e5 += E5[j] * K[j, i]
                        e3 += E3[j] * K[j, i]
                    e5 /= sc
                    e3 /= sc
                    s5 += e5 * e5
                    s3 += e3 * e3
                if s5 == 0.0 and s3 == 0.0:
                    err = 0.0
                else:
                    err = hs * s5 / math.sqrt((s5 + 0.01 * s3) * m)  # NaN / inf for a non-finite trial
                finite_trial = _all_finite(ynew) and _all_finite(K[12])
                if finite_trial and math.isnan(err):
                    err = math.inf  # inf / inf: the squares overflowed
                if finite_trial and err < 1.0:
                    if err == 0.0:
                        factor = 10.0
                    else:
                        factor = min(10.0, 0.9 * err ** -0.125)
                    if rejected:
                        factor = min(1.0, factor)
                    break
                nrej += 1
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= max(0.2, 0.9 * err ** -0.125)  # 0.2 for err = inf
                else:
                    bad_trial = True
                    h_abs *= 0.2
            nacc += 1
            big = 0.0
            for i in range(m):
                big = max(big, abs(ynew[i]))
            if big >= threshold:
                return DIVERGED, t_new, nfev, nacc, nrej
            dense_ready = False
            while i_obs < n and t_eval[i_obs] <= t_new:
                te = t_eval[i_obs]
                if te == t_new:
                    if want_dy:
                        acc = 0.0
                        for i in range(m):
                            acc += cv[i] * K[12, i]
                        DY[i_obs] = acc
                    else:
                        H[i_obs, :] = ynew
                    i_obs += 1
                    continue
                if not dense_ready:
                    # the three extra stages and the interpolant's coefficients of this step
                    for st in range(13, 16):
                        _combine(A[st], K, st, acc_v)
                        for i in range(m):
                            ytmp[i] = y[i] + hs * acc_v[i]
                        _rhs(W, code, leak, TS, TB, p, q, t + C[st] * hs - a, ytmp, K[st])
                    nfev += 3
                    for i in range(m):
                        dlt = ynew[i] - y[i]
                        F[0, i] = dlt
                        F[1, i] = hs * K[0, i] - dlt
                        F[2, i] = 2.0 * dlt - hs * (K[12, i] + K[0, i])
                    for r in range(4):
                        _combine(D[r], K, 16, acc_v)
                        for i in range(m):
                            F[3 + r, i] = hs * acc_v[i]
                    dense_ready = True
                x = (te - t) / hs
                if want_dy:
                    _dense_853(F, y, x, ytmp)
                    _rhs(W, code, leak, TS, TB, p, q, te - a, ytmp, acc_v)
                    nfev += 1
                    acc = 0.0
                    for i in range(m):
                        acc += cv[i] * acc_v[i]
                    DY[i_obs] = acc
                else:
                    _dense_853(F, y, x, H[i_obs])
                i_obs += 1
            wanted = h_abs  # the step size before any cut onto the knot
            t = t_new
            for i in range(m):
                y[i] = ynew[i]
                K[0, i] = K[12, i]
            h_abs = hs * factor
            if t == bnd and wanted > hs:
                h_abs = max(h_abs, wanted)
    return SUCCESS, t, nfev, nacc, nrej


@numba.njit(cache=True, error_model="numpy")
def _solve_batch_853(W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold,
                     C, A, B, E3, E5, D, H, status, t_reached, counts, want_dy, cv, DY):
    for s in range(P.shape[0]):
        st, tr, nfev, nacc, nrej = _solve_one_853(W, code, leak, P[s], Q[s], breaks, t_eval, H0[s], rtol, atol,
                                                  max_step, max_steps, threshold, C, A, B, E3, E5, D, H[s],
                                                  want_dy, cv, DY[s])
        status[s] = st
        t_reached[s] = tr
        counts[s, 0] = nfev
        counts[s, 1] = nacc
        counts[s, 2] = nrej
