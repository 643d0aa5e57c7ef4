"""The engine's batched calls: a batch of CTRNN solves, one compiled step loop per sequence.

:func:`solve_ctrnn` (affine input paths) and :func:`solve_ctrnn_constant`
(constant inputs, the probes of :func:`dynmem.memory_function`) validate their
arguments, build the input pieces ``p + tau q`` between the knots and run the
step loop of :mod:`dynmem.ode.loop` with the pair of ``method``; these are the
engine's own API (:func:`dynmem.simulate` is the public door for one path).

Status codes (:data:`~dynmem.ode.control.STATUS_MESSAGES`): 0 success, 1
step-size underflow, 2 non-finite state (a trial step or derivative produced
inf/NaN and no smaller step helped), 3 ``max_steps`` step attempts exceeded,
4 ``max|h|`` reached ``divergence_threshold``.

The segment tables of an input path are cached per path and span (paths are frozen).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .._validation import (as_float_array, check_finite, check_increasing, check_int, check_positive, describe)
from ..activations import get_activation
from ..inputs import InputPath
from .control import STATUS_MESSAGES, SUCCESS
from .field import as_ctrnn
from .loop import solve_one
from .registry import check_compiled_method, pair_of

__all__ = ["ODEResult", "solve_ctrnn", "solve_ctrnn_constant", "solve_path_validated", "path_tables", "prepare",
           "run_batch", "batch_result", "kernel_field", "PATH_TABLES", "NO_READOUT"]


def kernel_field(model) -> tuple:
    """``(W, code, leak)`` of a CTRNN as the compiled loops take it (a fresh writeable W: one signature)."""
    return np.array(model.W, dtype=float), np.int64(get_activation(model.activation).code), float(model.leak)


def run_batch(method, model, P, Q, breaks, t_eval, H0, ctrl, H, status, t_reached, counts, cv, DY):
    """The step loop for every sequence ``s`` of a batch (``P[s], Q[s], H0[s]``), with the pair of ``method``.

    ``cv`` None: no readout (``DY`` unread), else ``DY[s]`` receives sequence ``s``'s readouts
    (:func:`~dynmem.ode.loop.solve_one`).  The loop over the sequences is Python's: a compiled one around
    the step loop would compile the step loop's whole code a second time (numba links every callee into
    its caller and optimises it there again: ~1.3 s of a cold first call), for ~3 us per sequence saved.
    """
    pair = pair_of(method)
    field, tabs = kernel_field(model), pair.tables()
    E2, hairer, state = pair.hooks()
    preact = True if state is None else None
    for s in range(P.shape[0]):
        out = solve_one(field, tabs, E2, hairer, state, ctrl, P[s], Q[s], breaks, t_eval, H0[s], H[s], None, cv,
                        DY[s], None, preact)
        status[s], t_reached[s], counts[s, 0], counts[s, 1], counts[s, 2] = out[:5]


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


def affine_pieces(model, paths, breaks):
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
PATH_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SPANS_PER_PATH = 8


def path_tables(x, t0: float, t1: float, t_obs=None):
    """``(breaks, Xa, Xs)`` of one affine path on ``[t0, t1]``, cached per path.

    ``breaks`` are ``t0``, the knots inside ``(t0, t1)`` and ``t1`` (and, with
    ``t_obs``, the observation times inside ``(t0, t1]`` too: the backward
    grid of the adjoint); ``Xa[k]`` is ``x`` at ``breaks[k]`` on the piece
    that starts there and ``Xs[k]`` its slope.  Shared arrays: not to be written to.
    """
    key = (t0, t1, None if t_obs is None else t_obs.tobytes())
    try:
        per = PATH_TABLES[x]
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
        per = PATH_TABLES.setdefault(x, {})
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
    :data:`~dynmem.ode.registry.COMPILED_METHODS`.  Returns
    ``(H, status, t_reached, nfev)`` with ``H`` of shape (n, m) (NaN where not
    reached); same kernels as :func:`solve_ctrnn`.
    """
    m = h.shape[0]
    breaks, Xa, Xs = path_tables(x, float(t0), float(t_eval[-1]))
    U = np.asarray(model.U)
    if breaks.size > 1:
        P = (Xa @ U.T + np.asarray(model.b))[None]
        Q = (Xs @ U.T)[None]
    else:
        P = Q = np.zeros((1, 1, m))
    H = np.full((t_eval.size, m), np.nan)
    pair = pair_of(method)
    E2, hairer, state = pair.hooks()
    # the loop itself, not the batch call around it: one compiled layer less on a cold first call
    status, t_reached, nfev, _, _ = solve_one(
        kernel_field(model), pair.tables(), E2, hairer, state,
        (float(rtol), float(atol), float(max_step), np.int64(max_steps), float(threshold)), P[0], Q[0], breaks,
        np.array(t_eval, dtype=float), np.array(h, dtype=float), H, None, None, NO_READOUT, None,
        True if state is None else None)
    return H, int(status), float(t_reached), int(nfev)


def prepare(model, x, t_eval, h0, t0, rtol, atol, max_step, max_steps, divergence_threshold, t_name):
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
        breaks, Xa, Xs = path_tables(paths[0], float(t0), t1)
        if breaks.size > 1:
            U = np.asarray(model.U)
            P, Q = (Xa @ U.T + np.asarray(model.b))[None], (Xs @ U.T)[None]
        else:
            P = Q = np.zeros((nb, 1, m))
        return model, paths, t_eval, H0, t0, rtol, atol, max_step, max_steps, threshold, breaks, P, Q
    knots = np.unique(np.concatenate([xs.knots for xs in paths]))
    breaks = np.concatenate([[t0], knots[(knots > t0) & (knots < t1)], [t1]]) if t1 > t0 else np.array([t0])
    if breaks.size > 1:
        P, Q = affine_pieces(model, paths, breaks)
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
    """Integrate a CTRNN for a batch of input paths, each in one compiled call (an explicit Runge-Kutta pair).

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
        (:mod:`dynmem.ode.tsit5`, the same controls), or Hairer's DOP853
        (scipy's ``DOP853``: eighth order, the combined 5th/3rd-order error
        estimate with exponent -1/8, the seventh-order dense output with its
        3 extra stages, evaluated only for steps that hold an observation).

    Returns
    -------
    ODEResult
        Failures are reported in ``status``/``success``/``message``, never
        as silent numbers (unreached states are NaN).
    """
    method = check_compiled_method(method)
    model, paths, t_eval, H0, t0, rtol, atol, max_step, max_steps, threshold, breaks, P, Q = prepare(
        model, x, t_eval, h0, t0, rtol, atol, max_step, max_steps, divergence_threshold, "t_eval")
    m, nb = model.hidden, len(paths)
    H = np.full((nb, t_eval.size, m), np.nan)
    status = np.zeros(nb, dtype=np.int64)
    t_reached = np.zeros(nb)
    counts = np.zeros((nb, 3), dtype=np.int64)
    # fresh writeable C-contiguous arrays everywhere: one compiled signature
    run_batch(method, model, P, Q, breaks, np.array(t_eval), H0, (rtol, atol, max_step, np.int64(max_steps), threshold),
              H, status, t_reached, counts, None, np.zeros((nb, 1)))
    return batch_result(t_eval, H, status, t_reached, counts, method)


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
    """Integrate a CTRNN from ``t = 0`` under constant inputs, a batch of ``B`` of them, each in one compiled call.

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
    method = check_compiled_method(method)
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
    cv = None if output_derivative is None else as_float_array("output_derivative", output_derivative, shape=(m,)).copy()
    DY = np.full((nb, t_eval.size if want_dy else 1), np.nan)
    t1 = float(t_eval[-1])
    breaks = np.array([0.0, t1]) if t1 > 0 else np.array([0.0])
    P = np.ascontiguousarray((X @ np.asarray(model.U).T + np.asarray(model.b))[:, None, :])
    Q = np.zeros_like(P)
    H = np.full((nb, 1 if want_dy else t_eval.size, m), np.nan)
    status = np.zeros(nb, dtype=np.int64)
    t_reached = np.zeros(nb)
    counts = np.zeros((nb, 3), dtype=np.int64)
    run_batch(method, model, P, Q, breaks, np.array(t_eval), H0, (rtol, atol, np.inf, np.int64(max_steps), threshold),
              H, status, t_reached, counts, cv, DY)
    res = batch_result(t_eval, H, status, t_reached, counts, method)
    return (res, DY) if want_dy else res


def batch_result(t_eval, H, status, t_reached, counts, method="dopri5"):
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


NO_READOUT = np.zeros(1)
"""The unread ``DY`` of a solve without a readout (``cv`` None): the type the batch call passes there too."""
