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
<= 4 ulp; libm's scalar tanh was ~70% of the right-hand side at m = 32); the
stages are formed in pre-activation space (``W y`` and ``W K_j`` kept beside
``y`` and ``K_j``: one matrix product per stage, and none for the exact field
at a dense-output point, which ``output_derivative`` evaluates); the segment
tables of an input path are cached per path and span (paths are frozen); the
continuous adjoint's parameter quadrature is summed by one matrix product per
256 nodes, the discrete adjoint's by two products over all the stored steps.

Gradients (:func:`ctrnn_loss_gradient`): the discrete adjoint (the transpose
of the stored steps; the default for smooth activations) or the continuous
adjoint (a backward DOPRI5 solve of the adjoint ODE reading the forward
interpolant; the default for kinked activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import math
import threading
import weakref

import numba
import numpy as np

from ._validation import (as_float_array, check_choice, check_finite, check_increasing, check_int, check_nonnegative,
                          check_positive, describe)
from .activations import act_scalar, dact_scalar, get_activation, tanh_block
from .inputs import InputPath
from .solvers import ADJOINT_COMPILED_METHODS, COMPILED_METHODS, DOP853_COEFFICIENTS, SimulationError, as_ctrnn

__all__ = ["solve_ctrnn", "solve_ctrnn_constant", "ctrnn_loss_gradient", "AdjointODEResult", "ODEResult",
           "STATUS_MESSAGES", "DOPRI5_TABLEAU", "TSIT5_TABLEAU", "ADJOINTS", "resolve_adjoint", "loss_gradient_validated"]

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
def _initial_step(hh, d1, d2, cap, expo=0.2):
    # scipy's select_initial_step, from the trial step hh and the second-derivative estimate d2;
    # expo = 1 / (error-estimator order + 1): 0.2 for the 5(4) pairs, 0.125 for DOP853
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, hh * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** expo
    return min(100.0 * hh, h1, cap)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _accept_factor(err, expo, rejected):
    # scipy's step-size factor after an accepted step (error norm err < 1, exponent 1/(order+1)); not
    # above 1 right after a rejection
    factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -expo)
    return min(1.0, factor) if rejected else factor


@numba.njit(cache=True, error_model="numpy", inline="always")
def _reject_factor(err, expo):
    # scipy's step-size factor after a rejected step (0.2 for err = inf)
    return max(0.2, 0.9 * err ** -expo)


@numba.njit(cache=True, error_model="numpy")
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _matvec(W, v, out):
    # out = W v (rows contiguous; the row sums are reassociated into SIMD lanes)
    m = v.shape[0]
    for i in range(m):
        z = 0.0
        for j in range(m):
            z += W[i, j] * v[j]
        out[i] = z


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _field_from_z(code, leak, TS, z, y, out, dout, want_d):
    # out = sigma(z) - leak y for the pre-activation z; with want_d, dout = sigma'(z).  out may be z.
    m = y.shape[0]
    if code == 0:
        tanh_block(z, out, TS[0])  # TS[0] = 1 - tanh^2
        if want_d:
            for i in range(m):
                dout[i] = TS[0, i]
    else:
        for i in range(m):
            zi = z[i]
            if want_d:
                dout[i] = dact_scalar(code, zi)
            out[i] = act_scalar(code, zi)
    if leak != 0.0:  # y is not read for leak = 0 (it may be scratch)
        for i in range(m):
            out[i] -= leak * y[i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _combine2(coef, K, ZK, nst, out, zout):
    # out = sum_{j < nst} coef[j] K[j], zout = the same sum of ZK[j] (in increasing j for every component)
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
        zout[i] = 0.0
    for j in range(nst):
        cj = coef[j]
        for i in range(m):
            out[i] += cj * K[j, i]
            zout[i] += cj * ZK[j, i]


@numba.njit(cache=True, error_model="numpy")
def _grown_store(S_t, S_h, S_y, S_K, S_D, S_seg):
    # the step storage with twice the room, the stored steps copied over
    n = S_t.shape[0]
    n2 = 2 * n + 16
    m = S_y.shape[1]
    T_t, T_h, T_y, T_K = np.empty(n2), np.empty(n2), np.empty((n2, m)), np.empty((n2, 7, m))
    T_D, T_seg = np.empty((n2, 7, m)), np.empty(n2, dtype=np.int64)
    T_t[:n] = S_t
    T_h[:n] = S_h
    T_y[:n] = S_y
    T_K[:n] = S_K
    T_D[:n] = S_D
    T_seg[:n] = S_seg
    return T_t, T_h, T_y, T_K, T_D, T_seg


@numba.njit(cache=True, error_model="numpy")
def _solve_one(W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold,
               C, A, B, E, Pd, H, store, S_t, S_h, S_y, S_K, S_D, S_seg, want_dy, cv, DY):
    """One sequence; fills H (n, m) up to the failure; returns (status, t_reached, nfev, naccept, nreject,
    S_t, S_h, S_y, S_K, S_D, S_seg).

    The stages are formed in pre-activation space: with ``zy = W y`` and
    ``ZK[j] = W K[j]`` kept alongside ``y`` and the stage derivatives ``K[j]``,
    the pre-activation of any linear combination ``y + hs sum_j a_j K[j]`` is
    ``zy + hs sum_j a_j ZK[j] + p + tau q`` with no matrix product: one
    product ``W K[j]`` per stage (as many as a field evaluation costs), and
    none for the exact field at a dense-output point.

    With ``store`` the accepted steps are written to ``S_t`` (start), ``S_h``
    (length), ``S_y`` (start state), ``S_K`` (the 7 stage derivatives), ``S_D``
    (``sigma'`` at the 7 stage pre-activations) and ``S_seg`` (the input piece):
    the dense output of the whole solve and what its discrete adjoint needs.
    Full arrays are replaced by arrays of twice the length (the returned ones
    hold the steps; without ``store`` the given ones are returned untouched).  With ``want_dy``,
    ``DY[i] = cv . f(h(t_eval[i]))``, the exact field at the interpolated
    state, is written instead of ``H``, which is left untouched (it may be (1, m)).
    """
    m = h0.shape[0]
    n = t_eval.shape[0]
    nseg = breaks.shape[0] - 1
    K = np.empty((7, m))
    ZK = np.empty((7, m))  # W K[j]
    D = np.empty((7, m))   # sigma' at the stage pre-activations (written with store only)
    y = h0.copy()
    zy = np.empty(m)       # W y
    ynew = np.empty(m)
    zynew = np.empty(m)
    ytmp = np.empty(m)
    ztmp = np.empty(m)
    acc_v = np.empty(m)
    acc_z = np.empty(m)
    TS = np.empty((1, m))  # tanh_block's 1 - tanh^2
    t = breaks[0]
    nfev = 0
    nacc = 0
    nrej = 0
    i_obs = 0
    if not _all_finite(y):
        return NONFINITE, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
    while i_obs < n and t_eval[i_obs] <= t:
        if not want_dy:
            H[i_obs, :] = y
        i_obs += 1
    n_first = i_obs
    if nseg == 0 and not want_dy:
        return SUCCESS, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg

    # scipy's select_initial_step on the first piece (order 4 error estimator)
    _matvec(W, y, zy)
    p = P[0]
    q = Q[0]
    for i in range(m):
        ztmp[i] = zy[i] + p[i]
    _field_from_z(code, leak, TS, ztmp, y, K[0], D[0], store)
    nfev += 1
    if not _all_finite(K[0]):
        return NONFINITE, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
    if want_dy:
        acc = 0.0
        for i in range(m):
            acc += cv[i] * K[0, i]
        for r in range(n_first):
            DY[r] = acc
    if nseg == 0:
        return SUCCESS, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
    _matvec(W, K[0], ZK[0])
    span = breaks[1] - breaks[0]
    d0 = _rms_scaled(y, y, rtol, atol)
    d1 = _rms_scaled(K[0], y, rtol, atol)
    hh = _first_trial_step(d0, d1, span)
    for i in range(m):
        ytmp[i] = y[i] + hh * K[0, i]
        ztmp[i] = zy[i] + hh * ZK[0, i] + p[i] + hh * q[i]
    _field_from_z(code, leak, TS, ztmp, ytmp, K[1], D[1], False)
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = _rms_scaled(ynew, y, rtol, atol) / hh
    h_abs = _initial_step(hh, d1, d2, min(span, max_step))
    if not math.isfinite(h_abs):  # a NaN from the derivative estimate
        return NONFINITE, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg

    attempts = 0
    for seg in range(nseg):
        a = breaks[seg]
        bnd = breaks[seg + 1]
        p = P[seg]
        q = Q[seg]
        if seg > 0:  # the input may jump at the knot: the stage derivative there is re-evaluated
            for i in range(m):
                ztmp[i] = zy[i] + p[i]
            _field_from_z(code, leak, TS, ztmp, y, K[0], D[0], store)
            nfev += 1
            if not _all_finite(K[0]):
                return NONFINITE, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
            _matvec(W, K[0], ZK[0])
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
                    return ((NONFINITE if bad_trial else STEP_UNDERFLOW), t, nfev, nacc, nrej,
                            S_t, S_h, S_y, S_K, S_D, S_seg)
                if attempts >= max_steps:
                    return MAX_STEPS, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
                attempts += 1
                t_new = t + h_abs
                if t_new >= bnd:
                    t_new = bnd
                hs = t_new - t
                for st in range(1, 6):
                    _combine2(A[st], K, ZK, st, acc_v, acc_z)
                    tau = t + C[st] * hs - a
                    for i in range(m):
                        ytmp[i] = y[i] + hs * acc_v[i]
                        ztmp[i] = zy[i] + hs * acc_z[i] + p[i] + tau * q[i]
                    _field_from_z(code, leak, TS, ztmp, ytmp, K[st], D[st], store)
                    _matvec(W, K[st], ZK[st])
                _combine2(B, K, ZK, 6, acc_v, acc_z)
                tau = t_new - a
                for i in range(m):
                    ynew[i] = y[i] + hs * acc_v[i]
                    zynew[i] = zy[i] + hs * acc_z[i]
                    ztmp[i] = zynew[i] + p[i] + tau * q[i]
                _field_from_z(code, leak, TS, ztmp, ynew, K[6], D[6], store)
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
                    factor = _accept_factor(err, 0.2, rejected)
                    break
                nrej += 1
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= _reject_factor(err, 0.2)
                else:
                    bad_trial = True
                    h_abs *= 0.2
            # accepted step [t, t_new] of length hs
            _matvec(W, K[6], ZK[6])
            if store:
                if nacc == S_t.shape[0]:  # full: twice the room, the stored steps copied over
                    S_t, S_h, S_y, S_K, S_D, S_seg = _grown_store(S_t, S_h, S_y, S_K, S_D, S_seg)
                S_t[nacc] = t
                S_h[nacc] = hs
                S_seg[nacc] = seg
                for i in range(m):
                    S_y[nacc, i] = y[i]
                for j in range(7):
                    for i in range(m):
                        S_K[nacc, j, i] = K[j, i]
                        S_D[nacc, j, i] = D[j, i]
            nacc += 1
            big = 0.0
            for i in range(m):
                big = max(big, abs(ynew[i]))
            if big >= threshold:
                return DIVERGED, t_new, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg
            while i_obs < n and t_eval[i_obs] <= t_new:
                te = t_eval[i_obs]
                if want_dy:
                    # cv . f(h(te)): the exact field at the interpolated state (K[6] = f(ynew) at the step end);
                    # its pre-activation interpolated from zy and ZK like the state from y and K
                    if te == t_new:
                        for i in range(m):
                            acc_v[i] = K[6, i]
                    else:
                        x = (te - t) / hs
                        _interpolate(ZK, zy, hs, x, Pd, ztmp)
                        if leak != 0.0:
                            _interpolate(K, y, hs, x, Pd, ytmp)
                        tau = te - a
                        for i in range(m):
                            ztmp[i] += p[i] + tau * q[i]
                        _field_from_z(code, leak, TS, ztmp, ytmp, acc_v, acc_z, False)  # leak = 0: ytmp unused
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
                zy[i] = zynew[i]
                K[0, i] = K[6, i]
                ZK[0, i] = ZK[6, i]
                D[0, i] = D[6, i]
            h_abs = hs * factor
            if t == bnd and wanted > hs:
                h_abs = max(h_abs, wanted)
    return SUCCESS, t, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg


@numba.njit(cache=True, error_model="numpy")
def _solve_batch(W, code, leak, P, Q, breaks, t_eval, H0, rtol, atol, max_step, max_steps, threshold,
                 C, A, B, E, Pd, H, status, t_reached, counts, want_dy, cv, DY):
    no_t, no_y, no_k = np.zeros(1), np.zeros((1, 1)), np.zeros((1, 7, 1))  # no dense-output storage
    no_seg = np.zeros(1, dtype=np.int64)
    for s in range(P.shape[0]):
        out = _solve_one(W, code, leak, P[s], Q[s], breaks, t_eval, H0[s], rtol, atol, max_step, max_steps,
                         threshold, C, A, B, E, Pd, H[s], False, no_t, no_t, no_y, no_k, no_k, no_seg, want_dy, cv,
                         DY[s])
        st, tr, nfev, nacc, nrej = out[0], out[1], out[2], out[3], out[4]
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
    max_steps = check_int("max_steps", max_steps, minimum=1, maximum=2**62)  # counted in int64
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
    max_steps = check_int("max_steps", max_steps, minimum=1, maximum=2**62)  # counted in int64
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
def _adj_rhs(W, code, leak, TS, p, q, tau, h, a, out, v):
    # v = sigma'(W h + p + tau q) * a ;  out = leak a - W^T v
    m = h.shape[0]
    for i in range(m):
        z = p[i] + tau * q[i]
        for j in range(m):
            z += W[i, j] * h[j]
        v[i] = z
    if code == 0:
        tanh_block(v, v, TS[0])  # TS[0] = 1 - tanh^2
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
    TS = np.empty((1, m))  # tanh_block's 1 - tanh^2
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
        _adj_rhs(W, code, leak, TS, p, q, t - base, Hst[0], a, K[0], V[0])
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
            _adj_rhs(W, code, leak, TS, p, q, t - hh - base, Hst[1], atmp, K[1], V[1])
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
                    _adj_rhs(W, code, leak, TS, p, q, ts - base, Hst[st], atmp, K[st], V[st])
                _combine(B, K, 6, acc_v)
                for i in range(m):
                    anew[i] = a[i] + hs * acc_v[i]
                _dense_eval(t_new, S_t, S_h, S_y, S_K, Pd, nsteps, Hst[6])
                _adj_rhs(W, code, leak, TS, p, q, t_new - base, Hst[6], anew, K[6], V[6])
                nfev += 6
                _combine(E, K, 7, acc_v)
                ssum = 0.0
                for i in range(m):
                    r = hs * acc_v[i] / (atol + rtol * max(abs(a[i]), abs(anew[i])))
                    ssum += r * r
                err = math.sqrt(ssum / m)
                finite_trial = _all_finite(anew) and _all_finite(K[6])
                if finite_trial and err < 1.0:
                    factor = _accept_factor(err, 0.2, rejected)
                    break
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= _reject_factor(err, 0.2)
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
                   C, A, B, E, Pd, H, S_t, S_h, S_y, S_K, S_D, S_seg):
    # the solve with its steps stored in the given arrays (replaced by larger ones when they fill up)
    st, tr, nfev, nacc, nrej, S_t, S_h, S_y, S_K, S_D, S_seg = _solve_one(
        W, code, leak, P, Q, breaks, t_eval, h0, rtol, atol, max_step, max_steps, threshold, C, A, B, E, Pd, H,
        True, S_t, S_h, S_y, S_K, S_D, S_seg, False, S_t, S_t)
    return st, tr, nfev, nacc, S_t, S_h, S_y, S_K, S_D, S_seg


@numba.njit(cache=True, error_model="numpy", inline="always")
def _stage_transpose(WT, leak, Dst, Kbst, v, g):
    # the transpose of one stage K = sigma(z) - leak Y, z = W Y + U x + b:  v = sigma'(z) * Kbar (the
    # adjoint of z) and g = Ybar = W^T v - leak Kbar
    m = v.shape[0]
    for i in range(m):
        v[i] = Dst[i] * Kbst[i]
    _matvec(WT, v, g)
    if leak != 0.0:
        for i in range(m):
            g[i] -= leak * Kbst[i]


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _discrete_adjoint(WT, leak, breaks, t_obs, r, c, C, A, B, Pd, S_t, S_h, S_K, S_D, S_seg, nsteps,
                      Uk, Vs, Vt, a_out):
    """Reverse pass through the stored DOPRI5 steps: the exact gradient of the computed loss.

    The forward solve is a composition of step maps ``y_{n+1} = y_n + hs sum_j B_j K_j`` with stages
    ``K_j = f(Y_j)``, ``Y_j = y_n + hs sum_{l<j} A_jl K_l`` (``K_6 = f(y_{n+1})``, the FSAL stage) and
    dense-output observations ``y_n + hs sum_j w_j(x) K_j``; this is its transpose, step by step from the
    last, with the steps held as the forward controller chose them.  ``WT = W^T``; one ``W^T`` product
    per stage.  ``a_out`` receives ``dL/dh0``.

    The parameter sums are left in factored form, so that no stage argument is rebuilt: with
    ``v_j = sigma'(z_j) * Kbar_j`` (the adjoint of the stage pre-activation),
    ``sum_j v_j Y_j^T = Vs[n] y_n^T + sum_l Uk[n, l] K_l^T`` where ``Vs[n] = sum_j v_j`` and
    ``Uk[n, l] = hs sum_j A_jl v_j``; ``Vt[n] = sum_j tau_j v_j`` (``tau_j`` the stage time from the
    piece's start) carries the input slope.  The caller contracts them with the stored ``y_n``, ``K``
    and the piece tables by BLAS.  Returns the number of stage transposes (vector-Jacobian products).
    """
    m = WT.shape[0]
    n = t_obs.shape[0]
    Kb = np.empty((7, m))   # adjoints of the stage derivatives
    v = np.empty(m)
    yb = np.empty(m)
    g = np.empty(m)
    beta = np.empty(7)
    abar = np.zeros(m)      # adjoint of y_{n+1}
    i_obs = n - 1
    nvjp = 0
    for s in range(nsteps - 1, -1, -1):
        t = S_t[s]
        hs = S_h[s]
        base = breaks[S_seg[s]]
        t_new = S_t[s + 1] if s + 1 < nsteps else breaks[breaks.shape[0] - 1]
        Ds = S_D[s]
        U = Uk[s]
        vs = Vs[s]
        vt = Vt[s]
        # observations in (t, t_new]: at t_new they are y_{n+1}, inside they are the dense output
        for j in range(7):
            beta[j] = 0.0
        rsum = 0.0
        interior = False
        while i_obs >= 0 and t_obs[i_obs] > t:
            te = t_obs[i_obs]
            ri = r[i_obs]
            if te >= t_new:
                for i in range(m):
                    abar[i] += ri * c[i]
            else:
                x = (te - t) / hs
                x2 = x * x
                for j in range(7):
                    beta[j] += hs * ri * (Pd[j, 0] * x + Pd[j, 1] * x2 + Pd[j, 2] * x2 * x + Pd[j, 3] * x2 * x2)
                rsum += ri
                interior = True
            i_obs -= 1
        for j in range(7):
            bj = beta[j]
            for i in range(m):
                Kb[j, i] = bj * c[i]
                U[j, i] = 0.0
        for i in range(m):
            yb[i] = rsum * c[i]
            vs[i] = 0.0
            vt[i] = 0.0
        nvjp += 6
        if interior:  # K_6 = f(y_{n+1}) feeds only this step's dense output
            nvjp += 1
            _stage_transpose(WT, leak, Ds[6], Kb[6], v, g)
            tau = t_new - base
            for i in range(m):
                abar[i] += g[i]
                vs[i] += v[i]
                vt[i] += tau * v[i]
            for l in range(6):  # Y_6 = y_{n+1} = y_n + hs sum_l B_l K_l
                w = hs * B[l]
                if w != 0.0:
                    for i in range(m):
                        U[l, i] += w * v[i]
        # y_{n+1} = y_n + hs sum_{l<6} B_l K_l: its adjoint, now complete, flows to y_n and to the K_l
        for i in range(m):
            yb[i] += abar[i]
        for l in range(6):
            w = hs * B[l]
            if w != 0.0:
                for i in range(m):
                    Kb[l, i] += w * abar[i]
        for st in range(5, -1, -1):
            _stage_transpose(WT, leak, Ds[st], Kb[st], v, g)
            tau = t + C[st] * hs - base
            for i in range(m):
                yb[i] += g[i]
                vs[i] += v[i]
                vt[i] += tau * v[i]
            for l in range(st):  # Y_st = y_n + hs sum_{l<st} A_st,l K_l
                w = hs * A[st, l]
                if w != 0.0:
                    for i in range(m):
                        Kb[l, i] += w * g[i]
                        U[l, i] += w * v[i]
        for i in range(m):
            abar[i] = yb[i]
    while i_obs >= 0:  # observations at t0: the initial state itself
        for i in range(m):
            abar[i] += r[i_obs] * c[i]
        i_obs -= 1
    for i in range(m):
        a_out[i] = abar[i]
    return nvjp


ADJOINTS = ("auto", "discrete", "continuous")
"""The gradients :func:`ctrnn_loss_gradient` computes (its ``adjoint`` argument)."""


def resolve_adjoint(adjoint, model) -> str:
    """``"discrete"`` or ``"continuous"`` for an ``adjoint`` argument; ``"auto"`` picks by the activation.

    ``"auto"`` is ``"discrete"`` for a smooth activation (tanh, identity): at
    equal achieved gradient error it is 1.3-1.6x faster than the continuous
    adjoint on the issue-13 problems (benchmarks/README.md).  It is
    ``"continuous"`` for a kinked one (relu, hardtanh): the derivative of the
    discrete solution converges slowly where steps straddle a kink (measured
    1e-4 relative at rtol 1e-10 on a relu CTRNN, against 6e-9 for the
    continuous adjoint, whose own step control sees the adjoint).
    """
    adjoint = check_choice("adjoint", adjoint, ADJOINTS)
    if adjoint == "auto":
        return "discrete" if get_activation(as_ctrnn(model).activation).smooth else "continuous"
    return adjoint

_STORE_CAPACITY = 512  # forward steps stored at first; the storage doubles when full
_STORE_MAX_BYTES = 64 * 2 ** 20  # larger step storage is not kept between calls
_STORE = threading.local()  # the last call's step storage, per thread (a fresh 512-step one at m = 32 costs
                            # ~0.08 ms of page faults, a quarter of the forward solve: measured)


def _step_storage(m: int):
    """Step storage for a forward solve of width ``m``: this thread's last one if it fits, else a fresh one."""
    buf = getattr(_STORE, "buf", None)
    if buf is not None and buf[2].shape[1] == m:
        _STORE.buf = None  # held by this call until it hands it back (a re-entrant call gets its own)
        return buf
    n = _STORE_CAPACITY
    return (np.empty(n), np.empty(n), np.empty((n, m)), np.empty((n, 7, m)), np.empty((n, 7, m)),
            np.empty(n, dtype=np.int64))


def _keep_step_storage(buf) -> None:
    if sum(a.nbytes for a in buf) <= _STORE_MAX_BYTES:
        _STORE.buf = buf


@dataclass(frozen=True, eq=False)
class AdjointODEResult:
    """Result of :func:`ctrnn_loss_gradient`.

    Attributes
    ----------
    loss : float
        ``L = 1/2 sum_i w_i (y(t_i) - y_i^obs)^2`` (plus the running loss, if any).
    dW, dU, db, dc : ndarray
        Gradients of ``L``, shapes of ``W, U, b, c``.
    dh0 : ndarray, shape (m,)
        ``dL/dh(t0)``.
    y : ndarray, shape (n,)
        Outputs at the observation times.
    nfev_forward, nfev_backward : int
        Right-hand-side evaluations of the forward solve and of the backward
        solve (``adjoint="continuous"``)
        or the number of stage transposes, vector-Jacobian products
        (``adjoint="discrete"``).
    naccept_forward : int
        Accepted forward steps (the stored dense output).
    adjoint : str
        ``"discrete"`` or ``"continuous"``: which gradient was computed.
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
    adjoint: str


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
    adjoint: str = "auto",
    running_target=None,
    running_weight: float = 1.0,
    quadrature_nodes: int = 4,
    method: str = "dopri5",
) -> AdjointODEResult:
    """Observation loss of a CTRNN and its gradient by a discrete or continuous adjoint, compiled.

    ``L = 1/2 sum_i w_i (c^T h(t_i) - y_i)^2``.  The forward DOPRI5 solve (see
    :func:`solve_ctrnn`) keeps its steps in compiled storage (start state,
    the seven stage derivatives and ``sigma'`` at the stages).

    ``adjoint="discrete"`` (what ``"auto"``, the default, picks for smooth
    activations: :func:`resolve_adjoint`) differentiates the computed solution:
    the reverse pass runs through the stored steps from the last, transposing
    each stage ``K_j = f(Y_j)`` (``Ybar = -leak Kbar + W^T (sigma'(z_j) * Kbar)``),
    each step update and each dense-output observation, with the steps held
    as the forward controller chose them.  The result is the gradient of the
    loss the forward solve returned, to rounding (what a checkpointed
    autodiff solver such as diffrax's ``RecursiveCheckpointAdjoint`` gives);
    it differs from the exact gradient by the order of the forward error.
    Cost: one ``W^T`` product per stage, no field evaluation, no step-size
    control.

    ``adjoint="continuous"`` (the ``"auto"`` choice for kinked activations)
    solves the adjoint ODE: ``a = dL/dh`` solves ``da/dt = leak a - W^T (sigma'(z) * a)``
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
        As in :func:`solve_ctrnn` (the continuous adjoint's backward solve uses ``rtol``/``atol`` too).
    weights : array_like, shape (n,), optional
        ``w_i >= 0`` (ones by default).
    adjoint : {"auto", "discrete", "continuous"}
        Which gradient: see above and :func:`resolve_adjoint`.
    running_target : callable, optional
        ``r(t)`` (vectorised over a 1-D array of times) for a running loss
        ``rho/2 int_{t0}^{T} (y - r)^2 dt`` added to ``L``; computed by
        Gauss-Legendre quadrature with ``quadrature_nodes`` nodes on every
        forward step of the computed solution (its dense output), whose
        nodes the discrete adjoint then treats as weighted observations.
        Needs the discrete adjoint (smooth activations under ``"auto"``).
    running_weight : float
        ``rho >= 0``.
    quadrature_nodes : int
        Gauss-Legendre nodes per forward step for the running loss.
    method : {"dopri5", "tsit5"}
        The pair of the forward solve and of the continuous adjoint's backward
        solve (whose quadrature uses its fifth-order weights); the discrete
        adjoint transposes the steps of that pair.  ``"dop853"`` has no
        compiled adjoint (ValueError).

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
    model = as_ctrnn(model)
    if not isinstance(x, InputPath):
        raise TypeError(f"`x` must be an InputPath from dynmem.inputs; got {describe(x)}.")
    adjoint = resolve_adjoint(adjoint, model)
    rho = check_nonnegative("running_weight", running_weight)
    nq = check_int("quadrature_nodes", quadrature_nodes, minimum=1)
    if running_target is not None and not callable(running_target):
        raise TypeError(f"`running_target` must be callable r(t) or None; got {describe(running_target)}.")
    if running_target is not None and rho and adjoint != "discrete":
        raise ValueError("`running_target` needs `adjoint` = 'discrete' (the compiled continuous adjoint has no "
                         f"running loss); got adjoint = {adjoint!r} (a kinked activation resolves 'auto' to it).")
    model, _, t_obs, H0, t0, rtol, atol, _, max_steps, threshold, _, _, _ = _prepare(
        model, x, t_obs, h0, t0, rtol, atol, np.inf, max_steps, divergence_threshold, "t_obs")
    y_obs = as_float_array("y_obs", y_obs, shape=t_obs.shape)
    w = np.ones(t_obs.size) if weights is None else as_float_array("weights", weights, shape=t_obs.shape)
    if np.any(w < 0):
        raise ValueError(f"`weights` must be non-negative; got {describe(w)}.")
    return loss_gradient_validated(model, x, t_obs, y_obs, H0[0], t0, w, rtol, atol, max_steps, threshold, adjoint,
                                   running_target, rho, nq, method)


def loss_gradient_validated(model, x, t_obs, y_obs, h0, t0, w, rtol, atol, max_steps, threshold, adjoint,
                            running_target=None, running_weight=0.0, quadrature_nodes=4, method="dopri5"):
    """:func:`ctrnn_loss_gradient` with its arguments already validated (by it, or by :func:`dynmem.adjoint_gradient`).

    No checks here: ``model`` a CTRNN, ``x`` an affine path of its input
    dimension, ``t_obs`` a strictly increasing float64 array in
    ``[t0, x.t_end]``, ``y_obs`` and ``w`` (``w >= 0``) float64 arrays of its
    shape, ``h0`` the initial state (m,), ``adjoint`` ``"discrete"`` or
    ``"continuous"``, the tolerances and limits positive floats / ints;
    ``running_target`` a callable or None, ``running_weight >= 0``,
    ``quadrature_nodes >= 1`` (a running loss needs ``adjoint="discrete"``),
    ``method`` ``"dopri5"`` or ``"tsit5"``.
    """
    C, A, B, E, Pd = _tableau(method)
    m, d = model.hidden, model.inputs
    t0 = float(t0)
    T = float(t_obs[-1])
    breaks, Xa, Xs = _path_tables(x, t0, T)
    if breaks.size > 1:
        U = np.asarray(model.U)
        P, Q = Xa @ U.T + np.asarray(model.b), Xs @ U.T
    else:
        P = Q = np.zeros((1, m))
    H0 = np.array(h0, dtype=float)
    W = np.array(model.W, dtype=float)
    code = np.int64(get_activation(model.activation).code)
    leak = float(model.leak)
    H = np.full((t_obs.size, m), np.nan)
    st, tr, nfev_f, nacc, S_t, S_h, S_y, S_K, S_D, S_seg = _forward_store(
        W, code, leak, P, Q, breaks, np.array(t_obs), H0, float(rtol), float(atol), np.inf,
        np.int64(max_steps), float(threshold), C, A, B, E, Pd, H, *_step_storage(m))
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
    t_all, r_all = t_obs, r
    if running_target is not None and running_weight and T > t0:
        # rho/2 int (y - r)^2 dt by Gauss-Legendre on every step of the computed solution: the nodes are
        # observations of its dense output with weights rho w_q (the adjoint below treats them so)
        gx, gw = np.polynomial.legendre.leggauss(int(quadrature_nodes))
        gx, gw = 0.5 * (gx + 1.0), 0.5 * gw
        hs = S_h[:nacc, None]
        tn = (S_t[:nacc, None] + hs * gx[None, :]).ravel()
        wn = (hs * gw[None, :]).ravel()
        Wx = (Pd @ np.stack([gx, gx ** 2, gx ** 3, gx ** 4])).T  # (q, 7) dense-output weights at the nodes
        Hn = (S_y[:nacc, None, :] + hs[:, :, None] * np.einsum("qj,sjm->sqm", Wx, S_K[:nacc])).reshape(-1, m)
        with np.errstate(all="ignore"):
            rn = np.asarray(running_target(tn), dtype=float)
        if rn.shape not in (tn.shape, (tn.size, 1)) or not np.all(np.isfinite(rn)):
            raise ValueError(f"`running_target` must return finite values of shape ({tn.size},) for times of shape "
                             f"({tn.size},); got {describe(rn)}.")
        en = Hn @ c - rn.reshape(tn.shape)
        rr = running_weight * wn * en
        with np.errstate(over="ignore", invalid="ignore"):
            loss += 0.5 * running_weight * float(wn @ (en * en))
        if not np.isfinite(loss):
            from .errors import FloatOverflowError

            raise FloatOverflowError(f"the running loss overflowed float64: max|r(t)| = {np.max(np.abs(rn)):.3g}; "
                                     "rescale `running_target`.")
        dc = dc + rr @ Hn
        order = np.argsort(np.concatenate([t_obs, tn]), kind="stable")
        t_all = np.concatenate([t_obs, tn])[order]
        r_all = np.concatenate([r, rr])[order]
    dW, dU, db = np.zeros((m, m)), np.zeros((m, d)), np.zeros(m)
    a0 = np.zeros(m)
    nfev_b = 0
    if T > t0 and adjoint == "discrete":
        Uk, Vs, Vt = np.empty((nacc, 7, m)), np.empty((nacc, m)), np.empty((nacc, m))
        nfev_b = _discrete_adjoint(np.ascontiguousarray(W.T), leak, breaks, t_all, r_all, c, C, A, B, Pd,
                                   S_t, S_h, S_K, S_D, S_seg, np.int64(nacc), Uk, Vs, Vt, a0)
        # the factored parameter sums (see _discrete_adjoint), contracted by BLAS
        dW = Vs.T @ S_y[:nacc] + Uk.reshape(7 * nacc, m).T @ S_K[:nacc].reshape(7 * nacc, m)
        seg = S_seg[:nacc]
        dU = Vs.T @ Xa[seg] + Vt.T @ Xs[seg]
        db = Vs.sum(axis=0)
    elif T > t0:
        # backward grid: the forward breaks and the observation times (cached per path)
        bb, Xo, Xb = _path_tables(x, t0, T, t_obs)
        U = np.asarray(model.U)
        Pb = Xo @ U.T + np.asarray(model.b)
        Qb = Xb @ U.T
        jumps = np.zeros((bb.size, m))
        jumps[np.searchsorted(bb, t_obs)] = r[:, None] * c[None, :]  # distinct rows: t_obs strictly increases
        st, tr, nfev_b = _adjoint_backward(W, code, leak, Pb, Qb, Xo, Xb, bb, jumps,
                                           jumps[-1].copy(), float(rtol), float(atol), np.int64(max_steps),
                                           C, A, B, E, Pd, S_t, S_h, S_y, S_K, np.int64(nacc), dW, dU, db, a0)
        if st != SUCCESS:
            raise SimulationError(f"{method} adjoint (backward) solve failed at t = {tr:.6g}: {STATUS_MESSAGES[int(st)]}.")
    else:
        a0 = r.sum() * c  # all observations at t0
    _keep_step_storage((S_t, S_h, S_y, S_K, S_D, S_seg))  # nothing returned refers to it
    return AdjointODEResult(loss=loss, dW=dW, dU=dU, db=db, dc=dc, dh0=a0, y=y, nfev_forward=int(nfev_f),
                            nfev_backward=int(nfev_b), naccept_forward=int(nacc), adjoint=adjoint)


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

@numba.njit(cache=True, error_model="numpy")
def _rhs(W, code, leak, TS, p, q, tau, h, out):
    # out = sigma(W h + p + tau q) - leak h: the field at a state (DOP853's stages are formed in state
    # space; the 5(4) pairs form theirs from pre-activations, see _solve_one)
    _matvec(W, h, out)
    for i in range(h.shape[0]):
        out[i] += p[i] + tau * q[i]
    _field_from_z(code, leak, TS, out, h, out, out, False)


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
    TS = np.empty((1, m))  # tanh_block's 1 - tanh^2
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

    _rhs(W, code, leak, TS, P[0], Q[0], 0.0, y, K[0])
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
    _rhs(W, code, leak, TS, P[0], Q[0], hh, ytmp, K[1])
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = _rms_scaled(ynew, y, rtol, atol) / hh
    h_abs = _initial_step(hh, d1, d2, min(span, max_step), 0.125)
    if not math.isfinite(h_abs):
        return NONFINITE, t, nfev, nacc, nrej

    attempts = 0
    for seg in range(nseg):
        a = breaks[seg]
        bnd = breaks[seg + 1]
        p = P[seg]
        q = Q[seg]
        if seg > 0:
            _rhs(W, code, leak, TS, p, q, 0.0, y, K[0])  # the input may jump at the knot
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
                    _rhs(W, code, leak, TS, p, q, t + C[st] * hs - a, ytmp, K[st])
                _combine(B, K, 12, acc_v)
                for i in range(m):
                    ynew[i] = y[i] + hs * acc_v[i]
                _rhs(W, code, leak, TS, p, q, t_new - a, ynew, K[12])
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
                    factor = _accept_factor(err, 0.125, rejected)
                    break
                nrej += 1
                rejected = True
                if finite_trial:
                    bad_trial = False
                    h_abs *= _reject_factor(err, 0.125)
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
                        _rhs(W, code, leak, TS, p, q, t + C[st] * hs - a, ytmp, K[st])
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
                    _rhs(W, code, leak, TS, p, q, te - a, ytmp, acc_v)
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
