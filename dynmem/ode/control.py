"""Status codes and scipy's step-size controls, compiled: what every loop of the engine shares.

The controls are those of :class:`scipy.integrate.RK45` (and ``DOP853``), so
``rtol``/``atol`` mean what they mean in :func:`scipy.integrate.solve_ivp`:
the error norm is scaled by ``atol + rtol * max(|y_old|, |y_new|)``; a step is
accepted when the norm is below 1; the new step is ``h * min(10, 0.9 err^-e)``
after acceptance (not above ``h`` right after a rejection) and
``h * max(0.2, 0.9 err^-e)`` after a rejection, ``e = 1 / (error order + 1)``;
the first step is scipy's ``select_initial_step`` (Hairer et al. II.4).
"""

from __future__ import annotations

import math

import numba

__all__ = ["SUCCESS", "STEP_UNDERFLOW", "NONFINITE", "MAX_STEPS", "DIVERGED", "STORE_FULL", "STATUS_MESSAGES",
           "rms_scaled", "first_trial_step", "initial_step", "accept_factor", "reject_factor", "all_finite"]

SUCCESS, STEP_UNDERFLOW, NONFINITE, MAX_STEPS, DIVERGED = 0, 1, 2, 3, 4
STATUS_MESSAGES = {
    SUCCESS: "the solver reached the last requested time",
    STEP_UNDERFLOW: "the step size fell below 10 * spacing(t) (step-size underflow)",
    NONFINITE: "the state or its derivative became non-finite",
    MAX_STEPS: "the number of step attempts exceeded max_steps",
    DIVERGED: "max|h| reached divergence_threshold",
}
STORE_FULL = 5
"""Internal to the engine, never in a result: the step store is full, the caller gives a larger one and solves
again (:func:`dynmem.ode.adjoint.forward_store`)."""


@numba.njit(cache=True, error_model="numpy")
def rms_scaled(v, y, rtol, atol):
    # RMS of v / (atol + rtol |y|)
    s = 0.0
    for i in range(v.shape[0]):
        r = v[i] / (atol + rtol * abs(y[i]))
        s += r * r
    return math.sqrt(s / v.shape[0])


@numba.njit(cache=True, error_model="numpy", inline="always")
def first_trial_step(d0, d1, span):
    # scipy's select_initial_step, first guess h0 from ||y|| and ||f(y)|| (scaled norms d0, d1)
    hh = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    return min(hh, span)


@numba.njit(cache=True, error_model="numpy", inline="always")
def initial_step(hh, d1, d2, cap, expo=0.2):
    # scipy's select_initial_step, from the trial step hh and the second-derivative estimate d2;
    # expo = 1 / (error-estimator order + 1): 0.2 for the 5(4) pairs, 0.125 for DOP853
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, hh * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** expo
    return min(100.0 * hh, h1, cap)


@numba.njit(cache=True, error_model="numpy", inline="always")
def accept_factor(err, expo, rejected):
    # scipy's step-size factor after an accepted step (error norm err < 1, exponent 1/(order+1)); not
    # above 1 right after a rejection
    factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -expo)
    return min(1.0, factor) if rejected else factor


@numba.njit(cache=True, error_model="numpy", inline="always")
def reject_factor(err, expo):
    # scipy's step-size factor after a rejected step (0.2 for err = inf)
    return max(0.2, 0.9 * err ** -expo)


@numba.njit(cache=True, error_model="numpy")
def all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def rms_error(hs, e, y, ynew, rtol, atol):
    # scipy's error norm: RMS of hs e_i / (atol + rtol max(|y_i|, |ynew_i|)); inf when the squares overflow,
    # NaN for a non-finite trial
    s = 0.0
    m = y.shape[0]
    for i in range(m):
        sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
        r = hs * e[i] / sc
        s += r * r
    return math.sqrt(s / m)


@numba.njit(cache=True, error_model="numpy")
def step_verdict(err, finite_trial, rejected, h_abs, expo):
    # scipy's controller on a trial step: (accepted, factor for the next step, h_abs to retry with, bad_trial);
    # a non-finite trial is retried with a fifth of the step
    if finite_trial and err < 1.0:
        return True, accept_factor(err, expo, rejected), h_abs, False
    if finite_trial:
        return False, 1.0, h_abs * reject_factor(err, expo), False
    return False, 1.0, h_abs * 0.2, True
