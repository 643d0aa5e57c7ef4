"""The compiled adjoints of the engine: the observation loss of a CTRNN and its gradient.

:func:`ctrnn_loss_gradient` runs the forward solve of the step loop
(:mod:`dynmem.ode.loop`) with its steps stored (start state, the stage
derivatives and ``sigma'`` at the stages), then either

* the discrete adjoint (the transpose of the stored steps; the default for
  smooth activations), or
* the continuous adjoint (a backward solve of the adjoint ODE with the same
  pair and controls, reading the forward interpolant; the default for kinked
  activations).

Any pair whose record keeps the step store (a pre-activation pair; see the
method registry, :mod:`dynmem.ode.registry`) runs both.  The continuous
adjoint's parameter quadrature is summed by one matrix product per 256 nodes,
the discrete adjoint's by two products over all the stored steps.
:func:`dynmem.adjoint_gradient` is the public door; this is the engine's own API.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from .._validation import as_float_array, check_choice, check_int, check_nonnegative, describe
from ..activations import get_activation
from ..errors import SimulationError
from ..inputs import InputPath
from .control import DIVERGED, STATUS_MESSAGES, STORE_FULL, SUCCESS
from .field import as_ctrnn, stage_transpose
from .loop import empty_store, solve_one
from .registry import ADJOINT_COMPILED_METHODS, ADJOINTS, REGISTRY, check_compiled_method, pair_of
from .solve import NO_READOUT, kernel_field, path_tables, prepare

__all__ = ["ctrnn_loss_gradient", "loss_gradient_validated", "AdjointODEResult", "resolve_adjoint", "forward_store",
           "step_storage"]


def forward_store(field, tabs, ctrl, P, Q, breaks, t_eval, h0, H, S, hooks=(None, None, None)):
    """The forward solve with its steps stored in ``S``, solved again with a larger store when it fills up.

    The step loop itself (:func:`~dynmem.ode.loop.solve_one`, called from Python: no compiled layer around it);
    ``hooks`` the pair's :meth:`~dynmem.ode.pair.Pair.hooks` (a pair that keeps the store has none).
    A full store stops the solve at ``t``; the next one has room for the whole span at the rate of steps so
    far, a quarter more, and at least twice the steps (the solve is deterministic: the same steps again).
    Returns ``(status, t_reached, nfev, naccept, S)``, ``S`` the store that holds the steps.
    """
    E2, hairer, state = hooks
    while True:
        st, tr, nfev, nacc, _ = solve_one(field, tabs, E2, hairer, state, ctrl, P, Q, breaks, t_eval, h0, H, S,
                                          None, NO_READOUT, None, True if state is None else None)
        if st != STORE_FULL:
            return st, tr, nfev, nacc, S
        t0, t1 = float(breaks[0]), float(breaks[-1])
        rate = nacc / (tr - t0) if tr > t0 else 0.0
        S = empty_store(max(2 * nacc + 16, int(1.25 * rate * (t1 - t0)) + 16), S[3].shape[1], S[3].shape[2])


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _discrete_adjoint(WT, leak, tabs, breaks, t_obs, r, c, S, nsteps, factors, a_out):
    """Reverse pass through the stored steps of a pre-activation pair: the exact gradient of the computed loss.

    The forward solve is a composition of step maps ``y_{n+1} = y_n + hs sum_j B_j K_j`` with stages
    ``K_j = f(Y_j)``, ``Y_j = y_n + hs sum_{l<j} A_jl K_l`` (``K_n = f(y_{n+1})``, the FSAL stage, ``n = B.size``) and
    dense-output observations ``y_n + hs sum_j w_j(x) K_j``; this is its transpose, step by step from the
    last, with the steps held as the forward controller chose them.  ``WT = W^T``; one ``W^T`` product
    per stage.  ``a_out`` receives ``dL/dh0``.

    The parameter sums are left in factored form, so that no stage argument is rebuilt: with
    ``v_j = sigma'(z_j) * Kbar_j`` (the adjoint of the stage pre-activation),
    ``sum_j v_j Y_j^T = Vs[n] y_n^T + sum_l Uk[n, l] K_l^T`` where ``Vs[n] = sum_j v_j`` and
    ``Uk[n, l] = hs sum_j A_jl v_j``; ``Vt[n] = sum_j tau_j v_j`` (``tau_j`` the stage time from the
    piece's start) carries the input slope.  The caller contracts them with the stored ``y_n``, ``K``
    and the piece tables by BLAS (``factors = (Uk, Vs, Vt)``).  Returns the number of stage transposes
    (vector-Jacobian products).
    """
    C, A, B, E, Pd, expo = tabs
    S_t, S_h, S_K, S_D, S_seg = S[0], S[1], S[3], S[4], S[5]
    Uk, Vs, Vt = factors
    nb = B.shape[0]  # the step's own stages; stage nb is the FSAL one
    nd = Pd.shape[0]
    m = WT.shape[0]
    n = t_obs.shape[0]
    Kb = np.empty((nb + 1, m))   # adjoints of the stage derivatives
    v = np.empty(m)
    yb = np.empty(m)
    g = np.empty(m)
    beta = np.empty(nb + 1)
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
        for j in range(nb + 1):
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
                for j in range(nd):
                    beta[j] += hs * ri * (Pd[j, 0] * x + Pd[j, 1] * x2 + Pd[j, 2] * x2 * x + Pd[j, 3] * x2 * x2)
                rsum += ri
                interior = True
            i_obs -= 1
        for j in range(nb + 1):
            bj = beta[j]
            for i in range(m):
                Kb[j, i] = bj * c[i]
                U[j, i] = 0.0
        for i in range(m):
            yb[i] = rsum * c[i]
            vs[i] = 0.0
            vt[i] = 0.0
        nvjp += nb
        if interior:  # K_nb = f(y_{n+1}) feeds only this step's dense output
            nvjp += 1
            stage_transpose(WT, leak, Ds[nb], Kb[nb], v, g)
            tau = t_new - base
            for i in range(m):
                abar[i] += g[i]
                vs[i] += v[i]
                vt[i] += tau * v[i]
            for l in range(nb):  # Y_nb = y_{n+1} = y_n + hs sum_l B_l K_l
                w = hs * B[l]
                if w != 0.0:
                    for i in range(m):
                        U[l, i] += w * v[i]
        # y_{n+1} = y_n + hs sum_{l<nb} B_l K_l: its adjoint, now complete, flows to y_n and to the K_l
        for i in range(m):
            yb[i] += abar[i]
        for l in range(nb):
            w = hs * B[l]
            if w != 0.0:
                for i in range(m):
                    Kb[l, i] += w * abar[i]
        for st in range(nb - 1, -1, -1):
            stage_transpose(WT, leak, Ds[st], Kb[st], v, g)
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

_STORE_CAPACITY = 512  # forward steps stored at first; a larger store when full (forward_store)
_STORE_MAX_BYTES = 64 * 2 ** 20  # larger step storage is not kept between calls
_STORE = threading.local()  # the last call's step storage, per thread (a fresh 512-step one at m = 32 costs
                            # ~0.08 ms of page faults, a quarter of the forward solve: measured)


def step_storage(m: int, stages: int):
    """Step storage for a forward solve of width ``m`` with ``stages`` stage derivatives: this thread's last one
    if it fits, else a fresh one."""
    buf = getattr(_STORE, "buf", None)
    if buf is not None and buf[3].shape[1:] == (stages, m):
        _STORE.buf = None  # held by this call until it hands it back (a re-entrant call gets its own)
        return buf
    return empty_store(_STORE_CAPACITY, stages, m)


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
    info = REGISTRY.get(method) if isinstance(method, str) else None
    if info is not None and info.compiled and not info.adjoints:
        raise ValueError(f"`method` = {method!r} has no compiled adjoint: ctrnn_loss_gradient takes "
                         f"{', '.join(repr(c) for c in ADJOINT_COMPILED_METHODS)} (or use a scipy method such as "
                         "'DOP853' in dynmem.adjoint_gradient).")
    method = check_compiled_method(method, adjoint=True)
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
    model, _, t_obs, H0, t0, rtol, atol, _, max_steps, threshold, _, _, _ = prepare(
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
    pair = pair_of(method)
    tabs = pair.tables()
    Pd = pair.P
    m, d = model.hidden, model.inputs
    t0 = float(t0)
    T = float(t_obs[-1])
    breaks, Xa, Xs = path_tables(x, t0, T)
    if breaks.size > 1:
        U = np.asarray(model.U)
        P, Q = Xa @ U.T + np.asarray(model.b), Xs @ U.T
    else:
        P = Q = np.zeros((1, m))
    H0 = np.array(h0, dtype=float)
    field = kernel_field(model)
    W, leak = field[0], field[2]
    H = np.full((t_obs.size, m), np.nan)
    st, tr, nfev_f, nacc, S = forward_store(
        field, tabs, (float(rtol), float(atol), np.inf, np.int64(max_steps), float(threshold)), P, Q, breaks,
        np.array(t_obs), H0, H, step_storage(m, pair.stages), pair.hooks())
    S_t, S_h, S_y, S_K, S_D, S_seg = S
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
        from ..errors import FloatOverflowError

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
        Wx = (Pd @ np.stack([gx, gx ** 2, gx ** 3, gx ** 4])).T  # (q, stages) dense-output weights at the nodes
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
            from ..errors import FloatOverflowError

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
        ns = pair.stages
        Uk, Vs, Vt = np.empty((nacc, ns, m)), np.empty((nacc, m)), np.empty((nacc, m))
        nfev_b = _discrete_adjoint(np.ascontiguousarray(W.T), leak, tabs, breaks, t_all, r_all, c, S, np.int64(nacc),
                                   (Uk, Vs, Vt), a0)
        # the factored parameter sums (see _discrete_adjoint), contracted by BLAS
        dW = Vs.T @ S_y[:nacc] + Uk.reshape(ns * nacc, m).T @ S_K[:nacc].reshape(ns * nacc, m)
        seg = S_seg[:nacc]
        dU = Vs.T @ Xa[seg] + Vt.T @ Xs[seg]
        db = Vs.sum(axis=0)
    elif T > t0:
        # backward grid: the forward breaks and the observation times (cached per path)
        bb, Xo, Xb = path_tables(x, t0, T, t_obs)
        U = np.asarray(model.U)
        Pb = Xo @ U.T + np.asarray(model.b)
        Qb = Xb @ U.T
        jumps = np.zeros((bb.size, m))
        jumps[np.searchsorted(bb, t_obs)] = r[:, None] * c[None, :]  # distinct rows: t_obs strictly increases
        # the step loop backwards with the adjoint hook (its field the adjoint's, the store's dense output giving the
        # forward state; the pair's own error norm), none of the CTRNN field's hooks, no observations, store,
        # readout or divergence threshold
        adj = (S, np.int64(nacc), np.empty((pair.stages, m)), jumps, Xo, Xb, (dW, dU, db), a0)
        st, tr, nfev_b, _, _ = solve_one(
            field, tabs, pair.hooks()[0], None, None,
            (float(rtol), float(atol), np.inf, np.int64(max_steps), np.inf), Pb, Qb, bb, None, jumps[-1], None, None,
            None, NO_READOUT, adj, None)
        if st != SUCCESS:
            raise SimulationError(f"{method} adjoint (backward) solve failed at t = {tr:.6g}: {STATUS_MESSAGES[int(st)]}.")
    else:
        a0 = r.sum() * c  # all observations at t0
    _keep_step_storage(S)  # nothing returned refers to it
    return AdjointODEResult(loss=loss, dW=dW, dU=dU, db=db, dc=dc, dh0=a0, y=y, nfev_forward=int(nfev_f),
                            nfev_backward=int(nfev_b), naccept_forward=int(nacc), adjoint=adjoint)


