"""The step loop of the compiled engine: one explicit Runge-Kutta loop, parameterised by the pair's record.

:func:`solve_one` integrates a CTRNN on one sequence with any
:class:`~dynmem.ode.pair.Pair` (its :meth:`~dynmem.ode.pair.Pair.tables`
come in as arrays; the number of stages is read from their shapes), with
scipy's error norm and controller (:mod:`dynmem.ode.control`), and optionally
keeps its accepted steps (the store the adjoints of :mod:`dynmem.ode.adjoint`
read).  Every knot of the input path inside the span ends a step exactly (the
input, or its slope, may jump there), and the stage derivative at the knot is
re-evaluated with the new piece.  After a step cut short to land on a knot,
the next step starts from the larger of the controller's proposal and the step
size the controller had wanted before the cut.  Observation times are filled by
the dense output of the step that contains them (the step's end value itself
when they coincide), so observations never shorten steps.

The pair's record selects three small hooks (:meth:`~dynmem.ode.pair.Pair.hooks`),
each passed as its own argument that is ``None`` when the pair does not use it:
numba prunes the branches of an absent hook when it compiles the loop (a test
on an argument against ``None`` is decided from its type), so a 5(4) pair's
specialisation holds none of DOP853's code, and DOP853 has a specialisation of
its own, compiled only when it is used:

* ``state`` (``None`` for a pre-activation pair): a 5(4) pair's stages are formed
  in pre-activation space: with ``zy = W y`` and ``ZK[j] = W K[j]`` kept
  alongside ``y`` and ``K[j]``, the pre-activation of ``y + hs sum_j a_j K[j]``
  is ``zy + hs sum_j a_j ZK[j] + p + tau q`` with no matrix product: one product
  per stage, and none for the exact field at a dense-output point.  DOP853's
  are formed from the state;
* ``E2``: a second error estimate selects Hairer's combined norm;
* ``hairer``: Hairer's dense output with extra stages (computed only for a step
  that holds an observation) in place of the polynomial continuous extension
  of the 5(4) pairs.

So are the step store ``S`` and the readout ``cv`` of the field at the
observations: a solve without them compiles none of their code.  A test of a
present hook is not decided (numba prunes on ``None`` only), so each field has
a hook of its own that is ``None`` wherever it is not used: ``preact`` (True for
the pre-activation stages), ``state`` (True for stages from the state, DOP853)
and ``adj``, the continuous adjoint's hook.  With ``adj`` (and ``preact``,
``state``, ``t_eval``, ``H`` all ``None``) the loop is the adjoint's backward
solve: from the last knot to the first, its field the adjoint field at the
forward state that the forward solve's step store interpolates, a jump added at
every knot, and the parameter integrals of every accepted step accumulated from
the step's own stages.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .control import (DIVERGED, MAX_STEPS, NONFINITE, STEP_UNDERFLOW, STORE_FULL, SUCCESS, all_finite,
                      first_trial_step, initial_step, rms_error, rms_scaled, step_verdict)
from .field import adjoint_rhs, field_from_z, matvec, rhs

__all__ = ["solve_one", "interpolate", "combine", "empty_store"]


@numba.njit(cache=True, error_model="numpy", inline="always")
def combine(coef, K, nst, out):
    # out[i] = sum_{j < nst} coef[j] K[j, i], summed over j in increasing order for every i
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
    for j in range(nst):
        cj = coef[j]
        for i in range(m):
            out[i] += cj * K[j, i]


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


@numba.njit(cache=True, error_model="numpy", inline="always")
def interpolate(K, y, hs, x, Pd, out):
    # out = h(t + x hs): the polynomial dense output y + hs sum_j K[j] sum_k Pd[j, k] x^(k+1) (degree 4 here),
    # the loop over components innermost (contiguous), each component summed over j in increasing order
    x2 = x * x
    x3 = x2 * x
    x4 = x3 * x
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
    for j in range(Pd.shape[0]):
        wj = Pd[j, 0] * x + Pd[j, 1] * x2 + Pd[j, 2] * x3 + Pd[j, 3] * x4
        for i in range(m):
            out[i] += K[j, i] * wj
    for i in range(m):
        out[i] = y[i] + hs * out[i]


@numba.njit(cache=True, error_model="numpy")
def _dense_hairer(F, y, x, out):
    # y + x (F0 + (1-x) (F1 + x (F2 + ...))): scipy's Dop853DenseOutput, Horner from the last coefficient
    # coefficient by coefficient over the state (each entry takes the same operations in the same order as
    # the per-entry Horner loop, so the bits are the same; the inner loops vectorise)
    m = out.shape[0]
    nf = F.shape[0]
    for i in range(m):
        out[i] = 0.0
    for r in range(nf):
        f = x if r % 2 == 0 else 1.0 - x
        for i in range(m):
            out[i] = (out[i] + F[nf - 1 - r, i]) * f
    for i in range(m):
        out[i] = y[i] + out[i]


def empty_store(n: int, stages: int, m: int) -> tuple:
    """Step storage for ``n`` accepted steps of a pair with ``stages`` stage derivatives, width ``m``."""
    return (np.empty(n), np.empty(n), np.empty((n, m)), np.empty((n, stages, m)), np.empty((n, stages, m)),
            np.empty(n, dtype=np.int64))


@numba.njit(cache=True, error_model="numpy")
def dense_eval(t, S_t, S_h, S_y, S_K, nsteps, Pd, out):
    # out = h(t) from the dense output of the first nsteps stored steps of a polynomial pair (binary search on the
    # step starts)
    lo = 0
    hi = nsteps - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if S_t[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    hs = S_h[lo]
    interpolate(S_K[lo], S_y[lo], hs, (t - S_t[lo]) / hs, Pd, out)


QUAD_ROWS = 256
"""Quadrature nodes of the adjoint solve buffered before one matrix product sums them (:func:`flush_quadrature`)."""


@numba.njit(cache=True, error_model="numpy")
def flush_quadrature(QV, QZ, nq, gW, gU, gb):
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


# _stage and _knot_stage are inlined by numba (their tests of `state` are then decided in the loop's
# specialisation, as the loop's own are): no compiled layer of their own, whose code numba would link into
# the loop and optimise there a second time
@numba.njit(cache=True, error_model="numpy", inline="always")
def _stage(field, state, preact, coef, nst, hs, tau, y, zy, K, ZK, p, q, TS, ytmp, ztmp, acc_v, acc_z, out, dout, want_d):
    # out = f(y + hs sum_{j<nst} coef_j K_j) at the stage time (tau from the piece's start); for a pre-activation
    # pair (state None) from the pre-activations (dout = sigma' there when want_d), else from the state
    W, code, leak = field
    m = y.shape[0]
    if preact is not None:
        _combine2(coef, K, ZK, nst, acc_v, acc_z)
        for i in range(m):
            ytmp[i] = y[i] + hs * acc_v[i]
            ztmp[i] = zy[i] + hs * acc_z[i] + p[i] + tau * q[i]
        field_from_z(code, leak, TS, ztmp, ytmp, out, dout, want_d)
    if state is not None:
        combine(coef, K, nst, acc_v)
        for i in range(m):
            ytmp[i] = y[i] + hs * acc_v[i]
        rhs(W, code, leak, TS, p, q, tau, ytmp, out)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _knot_stage(field, state, preact, adj, Pd, t, a, y, zy, p, q, TS, ztmp, out, dout, want_d):
    # out = f(t, y), the first stage on the piece [a, ...]: forward at its start (tau = 0), from zy = W y for a
    # pre-activation pair; with the adjoint hook at its end, the adjoint field at the forward state there (into
    # the hook's Hst[0]; dout = sigma' * y).  Once a piece: the hook's arrays are unpacked here
    W, code, leak = field
    if preact is not None:
        for i in range(y.shape[0]):
            ztmp[i] = zy[i] + p[i]
        field_from_z(code, leak, TS, ztmp, y, out, dout, want_d)
    if state is not None:
        rhs(W, code, leak, TS, p, q, 0.0, y, out)
    if adj is not None:
        S_a, nsteps, Hst = adj[0], adj[1], adj[2]
        dense_eval(t, S_a[0], S_a[1], S_a[2], S_a[3], nsteps, Pd, Hst[0])
        adjoint_rhs(W, code, leak, TS, p, q, t - a, Hst[0], y, out, dout)


@numba.njit(cache=True, error_model="numpy")
def solve_one(field, tabs, E2, hairer, state, ctrl, P, Q, breaks, t_eval, h0, H, S, cv, DY, adj, preact):
    """One sequence; fills H (n, m) up to the failure; returns (status, t_reached, nfev, naccept, nreject).

    ``field = (W, code, leak)``, ``tabs`` the pair's :meth:`~dynmem.ode.pair.Pair.tables`,
    ``E2, hairer, state`` its :meth:`~dynmem.ode.pair.Pair.hooks` (``None`` where absent),
    ``ctrl = (rtol, atol, max_step, max_steps, threshold)``; ``P[k], Q[k]``
    the input piece ``p + tau q`` on ``[breaks[k], breaks[k+1]]``.

    With a step store ``S = (S_t, S_h, S_y, S_K, S_D, S_seg)`` (a pre-activation
    pair; ``None`` for none) the accepted steps are written to it: start,
    length, start state, the stage derivatives, ``sigma'`` at the stage
    pre-activations and the input piece - the dense output of the whole solve
    and what its discrete adjoint needs.  A full store ends the solve with
    :data:`~dynmem.ode.control.STORE_FULL` (``t_reached`` where it filled up):
    the caller solves again with a larger one (the store is never replaced
    here: carrying a growing tuple of arrays through the loop cost ~2 s of
    compilation).  With a readout ``cv`` (else ``None``),
    ``DY[i] = cv . f(h(t_eval[i]))``, the exact field at the interpolated state,
    is written instead of ``H``, which is left untouched (it may be (1, m)).

    ``preact`` is True for a pre-activation pair's forward solve (``state`` None), else None.
    With the adjoint hook ``adj = (S, nsteps, Hst, jumps, Xo, Xs, (gW, gU, gb), a_out)`` (else ``None``;
    ``state``, ``preact``, ``t_eval``, ``H``, ``S`` and ``cv`` None) the loop is the continuous adjoint's backward solve
    (:mod:`dynmem.ode.adjoint`): from ``breaks[-1]`` down to ``breaks[0]``, ``h0`` the adjoint at the end, the
    field the adjoint field at the forward state read from the forward store ``S[:nsteps]`` (``Hst`` (stages, m)
    holds it at the stages), ``jumps[k]`` added to the adjoint on arriving at ``breaks[k]``, and on every
    accepted step the parameter integrals by the step's own weights accumulated into ``gW, gU, gb`` (``Xo[k] +
    tau Xs[k]`` the input on piece ``k``); ``a_out`` receives the adjoint at ``breaks[0]``.
    """
    W, code, leak = field
    C, A, B, E, Pd, expo = tabs
    rtol, atol, max_step, max_steps, threshold = ctrl
    keep = S is not None  # sigma' at the stages is wanted for the store only (one type for every call below)
    m = h0.shape[0]
    n = 0                  # observations (none without t_eval: the adjoint's solve)
    if t_eval is not None:
        n = t_eval.shape[0]
    nseg = breaks.shape[0] - 1
    nb = B.shape[0]                   # the step's own stages; stage nb is the FSAL one, f(t + h, y_new)
    ns = max(A.shape[0], nb + 1)      # stage derivatives kept, with any dense-output stages
    K = np.empty((ns, m))
    ZK = np.empty((ns, m))  # W K[j] (pre-activation pairs)
    D = np.empty((ns, m))   # sigma' at the stage pre-activations (with a store); the adjoint's sigma' * a there
    F = np.empty((Pd.shape[0] + 3, m))  # Hairer's dense-output coefficients
    y = h0.copy()
    zy = np.empty(m)       # W y
    ynew = np.empty(m)
    zynew = np.empty(m)
    ytmp = np.empty(m)
    ztmp = np.empty(m)
    acc_v = np.empty(m)
    acc_z = np.empty(m)
    TS = np.empty((1, m))  # tanh_block's 1 - tanh^2
    nq = 0                 # quadrature rows buffered (the adjoint hook)
    if adj is None:        # forward in time, piece by piece from the first
        dirn = 1.0
        t = breaks[0]
        seg = 0
    else:                  # the adjoint: backward from the last piece
        # its arrays unpacked once, here, and read only under `adj is not None` (a variable that were None on
        # the forward path would be an optional in this specialisation, where `adj is None` is not pruned)
        dirn = -1.0
        t = breaks[nseg]
        seg = nseg - 1
        S_a, nsteps, Hst, jumps, Xo, Xs, grads, a_out = adj
        fS_t, fS_h, fS_y, fS_K = S_a[0], S_a[1], S_a[2], S_a[3]  # the forward solution
        # The adjoint's field, wherever the loop evaluates one: dense_eval (the forward state at the time, into
        # Hst[j]) and adjoint_rhs (K[j] = leak a - W^T (sigma' * a), D[j] = sigma' * a), called as they are: an
        # inlined helper would take a reference to each of its thirteen arrays per stage (measured: +25% of the
        # solve at m = 8)
        QV = np.empty((QUAD_ROWS, m))
        QZ = np.empty((QUAD_ROWS, m + Xo.shape[1] + 1))
    nfev = 0
    nacc = 0
    nrej = 0
    i_obs = 0
    if not all_finite(y):
        return NONFINITE, t, nfev, nacc, nrej
    if t_eval is not None:
        while i_obs < n and t_eval[i_obs] <= t:
            if cv is None:
                for i in range(m):
                    H[i_obs, i] = y[i]
            i_obs += 1
    n_first = i_obs
    if nseg == 0 and cv is None:
        return SUCCESS, t, nfev, nacc, nrej

    # scipy's select_initial_step on the first piece
    p = P[seg]
    q = Q[seg]
    a = breaks[seg]
    if preact is not None:
        matvec(W, y, zy)
    _knot_stage(field, state, preact, adj, Pd, t, a, y, zy, p, q, TS, ztmp, K[0], D[0], keep)
    nfev += 1
    if not all_finite(K[0]):
        return NONFINITE, t, nfev, nacc, nrej
    if cv is not None:
        acc = 0.0
        for i in range(m):
            acc += cv[i] * K[0, i]
        for r in range(n_first):
            DY[r] = acc
    if nseg == 0:
        return SUCCESS, t, nfev, nacc, nrej
    if preact is not None:
        matvec(W, K[0], ZK[0])
    span = breaks[seg + 1] - a
    d0 = rms_scaled(y, y, rtol, atol)
    d1 = rms_scaled(K[0], y, rtol, atol)
    hh = first_trial_step(d0, d1, span)
    if preact is not None:
        for i in range(m):
            ytmp[i] = y[i] + hh * K[0, i]
            ztmp[i] = zy[i] + hh * ZK[0, i] + p[i] + hh * q[i]
        field_from_z(code, leak, TS, ztmp, ytmp, K[1], D[1], keep)  # (D[1] rewritten by the first step)
    if state is not None:
        for i in range(m):
            ytmp[i] = y[i] + hh * K[0, i]
        rhs(W, code, leak, TS, p, q, hh, ytmp, K[1])
    if adj is not None:  # backwards: the trial step is -hh
        for i in range(m):
            ytmp[i] = y[i] - hh * K[0, i]
        dense_eval(t - hh, fS_t, fS_h, fS_y, fS_K, nsteps, Pd, Hst[1])
        adjoint_rhs(W, code, leak, TS, p, q, t - hh - a, Hst[1], ytmp, K[1], D[1])
    nfev += 1
    for i in range(m):
        ynew[i] = K[1, i] - K[0, i]
    d2 = rms_scaled(ynew, y, rtol, atol) / hh
    h_abs = initial_step(hh, d1, d2, min(span, max_step), expo)
    if not math.isfinite(h_abs):  # a NaN from the derivative estimate
        return NONFINITE, t, nfev, nacc, nrej

    attempts = 0
    for k in range(nseg):
        if adj is None:
            seg = k
            a = breaks[seg]
            end = breaks[seg + 1]  # where this piece's steps end
        else:
            seg = nseg - 1 - k
            a = breaks[seg]
            end = a
        p = P[seg]
        q = Q[seg]
        if k > 0:  # the input may jump at the knot: the stage derivative there is re-evaluated
            _knot_stage(field, state, preact, adj, Pd, t, a, y, zy, p, q, TS, ztmp, K[0], D[0], keep)
            nfev += 1
            if not all_finite(K[0]):
                return NONFINITE, t, nfev, nacc, nrej
            if preact is not None:
                matvec(W, K[0], ZK[0])
        while dirn * (end - t) > 0.0:
            min_step = 10.0 * abs(np.nextafter(t, end) - t)
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
                t_new = t + dirn * h_abs
                if dirn * (t_new - end) >= 0.0:
                    t_new = end
                hs = t_new - t  # signed
                for st in range(1, nb):
                    if adj is None:
                        _stage(field, state, preact, A[st], st, hs, t + C[st] * hs - a, y, zy, K, ZK, p, q, TS, ytmp, ztmp,
                               acc_v, acc_z, K[st], D[st], keep)
                        if preact is not None:
                            matvec(W, K[st], ZK[st])
                    else:  # the adjoint hook: the stage from the state, its field the adjoint's
                        combine(A[st], K, st, acc_v)
                        for i in range(m):
                            ytmp[i] = y[i] + hs * acc_v[i]
                        ts = t + C[st] * hs
                        dense_eval(ts, fS_t, fS_h, fS_y, fS_K, nsteps, Pd, Hst[st])
                        adjoint_rhs(W, code, leak, TS, p, q, ts - a, Hst[st], ytmp, K[st], D[st])
                # the new state and the FSAL stage f(t_new, y_new)
                tau = t_new - a
                if preact is not None:
                    _combine2(B, K, ZK, nb, acc_v, acc_z)
                    for i in range(m):
                        ynew[i] = y[i] + hs * acc_v[i]
                        zynew[i] = zy[i] + hs * acc_z[i]
                        ztmp[i] = zynew[i] + p[i] + tau * q[i]
                    field_from_z(code, leak, TS, ztmp, ynew, K[nb], D[nb], keep)
                if state is not None or adj is not None:  # (a test of each: pruned where both are None)
                    combine(B, K, nb, acc_v)
                    for i in range(m):
                        ynew[i] = y[i] + hs * acc_v[i]
                if state is not None:
                    rhs(W, code, leak, TS, p, q, tau, ynew, K[nb])
                if adj is not None:
                    dense_eval(t_new, fS_t, fS_h, fS_y, fS_K, nsteps, Pd, Hst[nb])
                    adjoint_rhs(W, code, leak, TS, p, q, tau, Hst[nb], ynew, K[nb], D[nb])
                nfev += nb
                combine(E, K, E.shape[0], acc_v)
                if E2 is None:  # scipy's RMS norm of hs * e
                    err = rms_error(hs, acc_v, y, ynew, rtol, atol)
                else:  # Hairer's combined norm of two estimates (DOP853)
                    combine(E2, K, E2.shape[0], acc_z)
                    s5 = 0.0
                    s3 = 0.0
                    for i in range(m):
                        sc = atol + rtol * max(abs(y[i]), abs(ynew[i]))
                        e5 = acc_v[i] / sc
                        e3 = acc_z[i] / sc
                        s5 += e5 * e5
                        s3 += e3 * e3
                    if s5 == 0.0 and s3 == 0.0:
                        err = 0.0
                    else:
                        err = abs(hs) * s5 / math.sqrt((s5 + 0.01 * s3) * m)  # NaN / inf for a non-finite trial
                finite_trial = all_finite(ynew) and all_finite(K[nb])
                if finite_trial and math.isnan(err):
                    err = math.inf  # inf / inf: the squares overflowed
                accepted, factor, h_abs, bad_trial = step_verdict(err, finite_trial, rejected, h_abs, expo)
                if accepted:
                    break
                nrej += 1
                rejected = True
            # accepted step [t, t_new] of length |hs|
            if preact is not None:
                matvec(W, K[nb], ZK[nb])
            if S is not None:
                S_t, S_h, S_y, S_K, S_D, S_seg = S
                if nacc == S_t.shape[0]:  # full: the caller gives a larger store and solves again
                    return STORE_FULL, t, nfev, nacc, nrej
                S_t[nacc] = t
                S_h[nacc] = hs
                S_seg[nacc] = seg
                for i in range(m):
                    S_y[nacc, i] = y[i]
                for j in range(nb + 1):
                    for i in range(m):
                        S_K[nacc, j, i] = K[j, i]
                        S_D[nacc, j, i] = D[j, i]
            if adj is not None:
                # the parameter integrals over the step by its own weights: int f dt = |hs| sum_j B_j f(t + C_j hs,
                # a_j), a_j the stage arguments; the nodes are buffered as rows (weighted sigma' * a, from D) and
                # (h, x, 1) and summed by one matrix product per QUAD_ROWS nodes: [dW | dU | db] += QV^T QZ.
                # (Written out here: as an inlined helper its eleven arrays cost a reference count each per step.)
                d = Xo.shape[1]
                w = abs(hs)
                for st in range(nb):
                    bw = w * B[st]
                    if bw == 0.0:
                        continue
                    if nq == QV.shape[0]:
                        flush_quadrature(QV, QZ, nq, grads[0], grads[1], grads[2])
                        nq = 0
                    ts = t + C[st] * hs
                    for i in range(m):
                        QV[nq, i] = bw * D[st, i]
                        QZ[nq, i] = Hst[st, i]
                    for kk in range(d):
                        QZ[nq, m + kk] = Xo[seg, kk] + (ts - a) * Xs[seg, kk]
                    QZ[nq, m + d] = 1.0
                    nq += 1
            nacc += 1
            big = 0.0
            for i in range(m):
                big = max(big, abs(ynew[i]))
            if big >= threshold:
                return DIVERGED, t_new, nfev, nacc, nrej
            if t_eval is not None:
                dense_ready = False
                while i_obs < n and t_eval[i_obs] <= t_new:
                    te = t_eval[i_obs]
                    if te == t_new:
                        if cv is not None:
                            acc = 0.0
                            for i in range(m):
                                acc += cv[i] * K[nb, i]
                            DY[i_obs] = acc
                        else:
                            for i in range(m):
                                H[i_obs, i] = ynew[i]
                        i_obs += 1
                        continue
                    if hairer is not None and not dense_ready:
                        # Hairer's extra stages and the interpolant's coefficients of this step
                        for st in range(nb + 1, ns):
                            _stage(field, state, preact, A[st], st, hs, t + C[st] * hs - a, y, zy, K, ZK, p, q, TS, ytmp, ztmp,
                                   acc_v, acc_z, K[st], D[st], keep)
                            if preact is not None:
                                matvec(W, K[st], ZK[st])
                        nfev += ns - nb - 1
                        for i in range(m):
                            dlt = ynew[i] - y[i]
                            F[0, i] = dlt
                            F[1, i] = hs * K[0, i] - dlt
                            F[2, i] = 2.0 * dlt - hs * (K[nb, i] + K[0, i])
                        for r in range(Pd.shape[0]):
                            combine(Pd[r], K, ns, acc_v)
                            for i in range(m):
                                F[3 + r, i] = hs * acc_v[i]
                        dense_ready = True
                    x = (te - t) / hs
                    if cv is not None:
                        # cv . f(h(te)): the exact field at the interpolated state
                        if state is None and hairer is None:
                            # its pre-activation interpolated from zy and ZK like the state from y and K
                            interpolate(ZK, zy, hs, x, Pd, ztmp)
                            if leak != 0.0:
                                interpolate(K, y, hs, x, Pd, ytmp)
                            tau = te - a
                            for i in range(m):
                                ztmp[i] += p[i] + tau * q[i]
                            field_from_z(code, leak, TS, ztmp, ytmp, acc_v, acc_z, keep)  # leak = 0: ytmp unused; acc_z scratch
                        else:
                            if hairer is not None:
                                _dense_hairer(F, y, x, ytmp)
                            else:
                                interpolate(K, y, hs, x, Pd, ytmp)
                            rhs(W, code, leak, TS, p, q, te - a, ytmp, acc_v)
                        nfev += 1
                        acc = 0.0
                        for i in range(m):
                            acc += cv[i] * acc_v[i]
                        DY[i_obs] = acc
                    elif hairer is not None:
                        _dense_hairer(F, y, x, H[i_obs])
                    else:
                        interpolate(K, y, hs, x, Pd, H[i_obs])
                    i_obs += 1
            wanted = h_abs  # the step size before any cut onto the knot
            t = t_new
            for i in range(m):
                y[i] = ynew[i]
                K[0, i] = K[nb, i]
            if preact is not None:
                for i in range(m):
                    zy[i] = zynew[i]
                    ZK[0, i] = ZK[nb, i]
                    D[0, i] = D[nb, i]
            if adj is not None:  # the FSAL stage's sigma' * a and forward state
                for i in range(m):
                    D[0, i] = D[nb, i]
                    Hst[0, i] = Hst[nb, i]
            h_abs = abs(hs) * factor
            if t == end and wanted > abs(hs):
                h_abs = max(h_abs, wanted)
        if adj is not None:  # the adjoint jumps at the knot it arrived at
            for i in range(m):
                y[i] += jumps[seg, i]
    if adj is not None:
        flush_quadrature(QV, QZ, nq, grads[0], grads[1], grads[2])
        for i in range(m):
            a_out[i] = y[i]
    return SUCCESS, t, nfev, nacc, nrej
