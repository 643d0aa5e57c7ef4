"""Continuous adjoint gradients of CTRNN losses (docs/theory.md section 8).

For ``dh/dt = sigma(z) - leak h``, ``z = W h + U x(t) + b``, ``y = c^T h`` and
the loss::

    L = 1/2 sum_i w_i (y(t_i) - y_i^obs)^2  +  rho/2 int_{t0}^{T} (y(t) - r(t))^2 dt,   T = t_obs[-1]

the adjoint ``a(t) = dL/dh(t)`` solves, backwards from ``a(T^+) = 0``::

    da/dt = leak a - W^T (s * a) - rho (y - r) c,        s = sigma'(z(t)),
    a(t_i^-) = a(t_i^+) + w_i (y(t_i) - y_i^obs) c        (jump at each observation),

and the gradients are::

    dL/dW = int (s*a) h^T dt,   dL/dU = int (s*a) x^T dt,   dL/db = int (s*a) dt,
    dL/dc = sum_i w_i (y(t_i) - y_i^obs) h(t_i) + rho int (y - r) h dt,   dL/dh0 = a(t0).

How it is computed:

* the forward solve keeps scipy's dense output; the backward solve reads
  ``h(t)`` from it and never integrates ``h`` backwards (that is unstable for
  contracting systems: errors grow like ``e^{|alpha| T}``);
* the backward ODE is m-dimensional; the parameter integrals are *not*
  appended to it but computed afterwards by Gauss-Legendre quadrature on every
  interval between consecutive forward or backward steps (both interpolants
  are polynomials there), as a few matrix products over all nodes at once;
* both directions stop at every input knot, and the backward direction also
  at every observation time (where the adjoint jumps).

For RK45 and RK23 the forward interpolant is packed into arrays and the
backward vector field is numba-compiled; other methods use scipy's
interpolant from Python.  The gradient is exact for the discretised
solution up to ``O(rtol)``: its error falls in proportion to ``rtol``.

With the compiled ``method="dopri5"`` (the default for affine inputs and no
running loss) both solves run in :mod:`dynmem.ode`, and ``adjoint=``
chooses between this continuous adjoint and the *discrete* one, the
transpose of the stored forward steps (the exact gradient of the computed
loss, no backward solve); ``"auto"`` takes the discrete adjoint for smooth
activations and the continuous one for kinked ones
(:func:`dynmem.ode.resolve_adjoint`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.integrate import solve_ivp

from ._validation import as_float_array, check_choice, check_finite, check_increasing, check_int, check_nonnegative, check_positive, describe
from .compiling import announce_compilation
from .activations import get_activation
from .models import CTRNNForm
from .errors import SimulationError
from .ode.adjoint import loss_gradient_validated, resolve_adjoint
from .ode.field import ctrnn_adjoint
from .ode.registry import ADJOINT_COMPILED_METHODS, ADJOINTS, AUTO, check_method, method_info, resolve_method
from .simulate import simulate
from .solvers import BudgetExceeded, EvalBudget, as_ctrnn, check_path, pack_rk_interpolant, segments

__all__ = ["adjoint_gradient", "AdjointResult"]


@numba.njit(cache=True)
def _rk_eval(t, t_lo, t_old, hs, Y0, Q, h):
    """Evaluate a packed scipy RK interpolant at t into h (m,).

    Steps are sorted by their left end ``t_lo`` (ascending); a step starts at
    ``t_old`` and has signed length ``hs`` (negative for a backward solve).
    """
    n = t_lo.shape[0]
    lo, hi = 0, n - 1
    while lo < hi:  # last step with t_lo <= t
        mid = (lo + hi + 1) // 2
        if t_lo[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    k = lo
    x = (t - t_old[k]) / hs[k]
    m, order = Q.shape[1], Q.shape[2]
    for i in range(m):
        acc = 0.0
        xp = 1.0
        for j in range(order):
            xp *= x
            acc += Q[k, i, j] * xp
        h[i] = Y0[k, i] + hs[k] * acc


@numba.njit(cache=True)
def _rk_eval_many(ts, t_lo, t_old, hs, Y0, Q, out):
    """:func:`_rk_eval` at every time of ``ts`` into the rows of ``out``."""
    for r in range(ts.shape[0]):
        _rk_eval(ts[r], t_lo, t_old, hs, Y0, Q, out[r])


@numba.njit(cache=True)
def _adjoint_rhs(t, a, W, p, q, tp, code, leak, t_lo, t_old, hs, Y0, Q):
    # da/dt = leak a - W^T (sigma'(z) * a), the forward state from the packed interpolant
    h = np.empty(a.shape[0])
    _rk_eval(t, t_lo, t_old, hs, Y0, Q, h)
    return ctrnn_adjoint(t - tp, h, a, W, p, q, code, leak)


def _evaluate(sol, packed, ts: np.ndarray) -> np.ndarray:
    """Dense output at times ``ts``, shape (n, m): compiled for packed RK interpolants, scipy otherwise."""
    if packed is None:
        return sol(ts).T
    out = np.empty((ts.size, packed[3].shape[1]))
    _rk_eval_many(ts, *packed, out)
    return out


@dataclass(frozen=True, eq=False)
class AdjointResult:
    """Result of :func:`adjoint_gradient`.

    Attributes
    ----------
    loss : float
    grad : CTRNN or LinearRNN
        Same class as the model; its arrays hold ``dL/dW, dL/dU, dL/db, dL/dc``
        (no ``b`` for a LinearRNN), so ``grad.flatten()`` lines up with
        ``model.flatten()``.
    dh0 : ndarray, shape (m,)
        ``dL/dh(t0)``.
    y : ndarray, shape (n_obs,)
        Model outputs at the observation times.
    nfev_forward, nfev_backward : int
        Right-hand-side evaluations of the two solves.
    n_quadrature_nodes : int
        Nodes used for the parameter integrals.
    method : str
        The integrator that ran (what ``method="auto"`` resolved to).
    adjoint : str
        ``"continuous"`` (the adjoint ODE) or ``"discrete"`` (the transpose of
        the compiled forward steps): what ``adjoint="auto"`` resolved to.
    """

    loss: float
    grad: object
    dh0: np.ndarray
    y: np.ndarray
    nfev_forward: int
    nfev_backward: int
    n_quadrature_nodes: int
    method: str = ""
    adjoint: str = "continuous"

    @property
    def flat(self) -> np.ndarray:
        """The parameter gradient as one vector (order of ``model.flatten()``)."""
        return self.grad.flatten()


def _own_gradient(model, dW, dU, db, dc):
    """The gradient as a model of ``model``'s class: its own parameters (``param_names``) of the CTRNN form's."""
    grads = {"W": dW, "U": dU, "b": db, "c": dc}
    return model.replace(**{name: grads[name] for name in model.param_names})


@announce_compilation("adjoint_gradient")
def adjoint_gradient(
    model,
    x,
    t_obs,
    y_obs,
    *,
    h0=None,
    t0: float | None = None,
    weights=None,
    running_target=None,
    running_weight: float = 1.0,
    method: str = AUTO,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    quadrature_nodes: int = 4,
    max_steps: int = 20_000,
    adjoint: str = "auto",
) -> AdjointResult:
    """Loss on CTRNN outputs and its gradient by an adjoint method (continuous, or discrete when compiled).

    Parameters
    ----------
    model : CTRNN or LinearRNN
    x : InputPath
    t_obs : array_like, shape (n,)
        Strictly increasing observation times in ``(t0, x.t_end]``
        (``t_obs[0] == t0`` is allowed too).
    y_obs : array_like, shape (n,)
        Observed outputs.
    h0 : array_like, shape (m,), optional
        State at ``t0`` (zeros by default).
    t0 : float, optional
        Initial time, ``x.t_start`` by default.
    weights : array_like, shape (n,), optional
        ``w_i`` (ones by default).
    running_target : callable, optional
        ``r(t)`` for the running loss ``rho/2 int (y - r)^2 dt`` on ``[t0, t_obs[-1]]``;
        vectorised over a 1-D array of times.  ``None``: no running loss.
    running_weight : float
        ``rho``.
    method : str
        ``"auto"`` (default: ``"dopri5"`` for an affine input path without a
        running loss, ``"RK45"`` otherwise; ``result.method`` says which ran),
        a scipy integrator for both solves, or ``"dopri5"``: the compiled
        forward and adjoint solves of :func:`dynmem.ode.ctrnn_loss_gradient`
        (affine input paths; a running loss with the discrete adjoint only;
        ``n_quadrature_nodes`` reports the backward stage points or stage
        transposes, which carry the parameter sums); ``"tsit5"`` runs the
        compiled solves with the Tsitouras 5(4) pair (``"dop853"`` has no
        compiled adjoint: ValueError).
    rtol, atol : float
        Tolerances for both solves.
    quadrature_nodes : int
        Gauss-Legendre nodes per interval for the parameter integrals (scipy
        methods), or per forward step for the running loss (``"dopri5"``,
        whose discrete adjoint needs no parameter quadrature).
    max_steps : int
        Step budget of the forward solve and of the backward solve, each
        (see :func:`dynmem.simulate`): exceeding it raises
        :class:`SimulationError` instead of running for minutes.
    adjoint : {"auto", "discrete", "continuous"}
        With ``method="dopri5"``: ``"discrete"`` transposes the forward
        solve's stored steps (the exact gradient of the computed loss; no
        backward solve), ``"continuous"`` solves the adjoint ODE;
        ``"auto"`` takes the discrete one for smooth activations and the
        continuous one for kinked ones (:func:`dynmem.ode.resolve_adjoint`,
        with the measurements behind the choice).  The scipy methods compute
        the continuous adjoint only (``"auto"`` or ``"continuous"``).

    Raises
    ------
    SimulationError
        A solve failed, diverged or exceeded its budget.
    FloatOverflowError
        The loss overflowed float64 (for example ``y_obs`` near 1e300).

    Returns
    -------
    AdjointResult
    """
    original = model
    if not isinstance(model, CTRNNForm):
        # simulate() takes any ContinuousModel; the adjoint equations here are the CTRNN's only.
        raise TypeError(
            f"`model` must be a CTRNN or a LinearRNN (the adjoint is written for dh/dt = sigma(W h + U x + b) - leak h; "
            f"discrete models run with dynmem.recurrences.value_and_grad); got {describe(model)}."
        )
    model = as_ctrnn(model)
    x = check_path(model, x)
    check_method(method)
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    nq = check_int("quadrature_nodes", quadrature_nodes, minimum=1)
    t_obs = check_increasing("t_obs", as_float_array("t_obs", t_obs, ndim=1))
    n = t_obs.size
    if n == 0:
        raise ValueError("`t_obs` must hold at least one time; got an empty array.")
    y_obs = as_float_array("y_obs", y_obs, shape=(n,))
    w = np.ones(n) if weights is None else as_float_array("weights", weights, shape=(n,))
    if np.any(w < 0):
        raise ValueError(f"`weights` must be non-negative; got min(weights) = {w.min()}.")
    if running_target is not None and not callable(running_target):
        raise TypeError(f"`running_target` must be callable r(t) or None; got {describe(running_target)}.")
    rho = check_nonnegative("running_weight", running_weight)
    if running_target is None:
        rho = 0.0
    t0 = x.t_start if t0 is None else check_finite("t0", t0)
    if t_obs[0] < t0 or t_obs[-1] > x.t_end:
        raise ValueError(
            f"`t_obs` must lie in [t0, x.t_end] = [{t0}, {x.t_end}]; got values in [{t_obs[0]}, {t_obs[-1]}]."
        )

    if h0 is not None:
        h0 = as_float_array("h0", h0, shape=(model.hidden,))  # one state: the same rule for every method
    adjoint = check_choice("adjoint", adjoint, ADJOINTS)
    method = resolve_method(method, model, x, running_loss=rho != 0.0)
    info = method_info(method)  # what the method can do: compiled, its adjoints, which of them carry a running loss
    if info.compiled:
        adjoint = resolve_adjoint(adjoint, model)
    elif adjoint != "auto" and adjoint not in info.adjoints:
        raise ValueError(f"`adjoint` = {adjoint!r} needs a compiled method ('dopri5'); got method={method!r}, "
                         "whose adjoint is the continuous one.")
    if info.compiled:
        if not info.adjoints:
            raise ValueError(f"`method` = {method!r} has no compiled adjoint: the compiled gradients take "
                             f"{', '.join(repr(c) for c in ADJOINT_COMPILED_METHODS)} (or use a scipy method such as "
                             "'DOP853').")
        if rho != 0.0 and adjoint not in info.running_loss:
            raise ValueError(f"`running_target` with method={method!r} needs adjoint='discrete' (the compiled "
                             f"continuous adjoint has no running loss); got adjoint={adjoint!r}; or use a scipy method.")
        if not x.affine:
            raise TypeError(f"`x` must be affine on each piece (x.affine) for method={method!r}; got {describe(x)}.")
        # every argument is validated above or here: the compiled core directly (no second validation pass)
        max_steps = check_int("max_steps", max_steps, minimum=1, maximum=2**62)
        if not (x.t_start <= t0 <= x.t_end):
            raise ValueError(f"`t0` must lie in the input's domain [{x.t_start}, {x.t_end}]; got {t0}.")
        h0c = np.zeros(model.hidden) if h0 is None else h0
        res = loss_gradient_validated(model, x, t_obs, y_obs, h0c, t0, w, rtol, atol, max_steps, 1e12, adjoint,
                                      running_target, rho, nq, method)
        if not np.isfinite(res.loss):
            from .errors import FloatOverflowError

            raise FloatOverflowError(f"the loss overflowed float64 (0.5 sum w (y - y_obs)^2 = {res.loss}): max|y_obs| = "
                                     f"{np.max(np.abs(y_obs)):.3g}; rescale `y_obs`.")
        grad = _own_gradient(original, res.dW, res.dU, res.db, res.dc)
        return AdjointResult(loss=res.loss, grad=grad, dh0=res.dh0, y=res.y, nfev_forward=res.nfev_forward,
                             nfev_backward=res.nfev_backward, n_quadrature_nodes=res.nfev_backward,
                             method=method, adjoint=res.adjoint)

    m, d = model.hidden, model.inputs
    fwd = simulate(model, x, t_obs, h0=h0, t0=t0, method=method, rtol=rtol, atol=atol, dense_output=True,
                   max_steps=max_steps)
    budget = EvalBudget(int(max_steps) * info.evals_per_step)
    t0 = float(fwd.sol.breaks[0]) if fwd.sol is not None else float(t0)
    y = fwd.y
    r_obs = w * (y - y_obs)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = 0.5 * float(np.sum(w * (y - y_obs) ** 2))
    if not (np.isfinite(loss) and np.all(np.isfinite(r_obs))):
        from .errors import FloatOverflowError

        raise FloatOverflowError(f"the loss overflowed float64 (0.5 sum w (y - y_obs)^2 = {loss}): max|y_obs| = "
                                 f"{np.max(np.abs(y_obs)):.3g}, max|y| = {np.max(np.abs(y)):.3g}; rescale `y_obs`.")
    dc = r_obs @ fwd.h

    W = np.array(model.W)
    code = get_activation(model.activation).code
    dact = get_activation(model.activation).deriv
    leak = float(model.leak)
    c = np.asarray(model.c)
    T = float(t_obs[-1])

    # Backward segments: input knots and observation times.
    segs = segments(x, t0, T) if T > t0 else []
    cuts = np.unique(np.concatenate([[s[0] for s in segs], t_obs[(t_obs > t0) & (t_obs < T)]]))
    bounds = np.append(cuts, T) if segs else np.array([t0])
    obs_index = {float(t): i for i, t in enumerate(t_obs)}

    gl_x, gl_w = np.polynomial.legendre.leggauss(nq)
    dW = np.zeros((m, m))
    dU = np.zeros((m, d))
    db = np.zeros(m)
    a = np.zeros(m)
    nfev_b = 0
    n_nodes = 0
    fsol = fwd.sol
    packed = {}
    last_step = None
    for j in range(len(bounds) - 1, 0, -1):
        lo, hi = float(bounds[j - 1]), float(bounds[j])
        if hi in obs_index:
            a = a + r_obs[obs_index[hi]] * c
        k_piece = int(x.piece_index(lo))
        fk = min(int(np.searchsorted(fsol.breaks, lo, side="right") - 1), len(fsol.segments) - 1)
        fseg = fsol.segments[fk]
        tp = lo
        if x.affine:
            xa = x.offsets[k_piece] + (tp - x.knots[k_piece]) * x.slopes[k_piece]
            p = model.U @ xa + model.b
            q = model.U @ x.slopes[k_piece]
        if fk not in packed:
            packed[fk] = pack_rk_interpolant(fseg)
        pk = packed[fk]
        # On an affine path the input comes from this piece's (p, q): evaluating
        # x(t) at the segment's right end would give the next piece's value.
        if x.affine:
            def u_of(t, p=p, q=q, tp=tp):
                return p + (t - tp) * q
        else:
            def u_of(t):
                return model.U @ x(t) + model.b

        if x.affine and pk is not None and rho == 0.0:
            t_lo, t_old, hs, Y0, Q = pk

            def fun(t, av, p=p, q=q, tp=tp):
                return _adjoint_rhs(t, av, W, p, q, tp, code, leak, t_lo, t_old, hs, Y0, Q)
        else:
            # Python field (other methods, running loss, or a FunctionPath).
            def fun(t, av, fseg=fseg, u_of=u_of):
                h = fseg(t)
                z = W @ h + u_of(t)
                out = leak * av - W.T @ (dact(z) * av)
                if rho:
                    out -= rho * (c @ h - float(running_target(np.array([t]))[0])) * c
                return out

        kwargs = dict(method=method, rtol=rtol, atol=atol, dense_output=True)
        if last_step is not None and info.warm_start:
            # Start from the previous segment's step instead of scipy's fresh guess
            # (measured to save ~15% on the adjoint benchmark; for DOP853 it made the
            # error's dependence on rtol irregular, so the others keep scipy's guess).
            kwargs["first_step"] = min(last_step, hi - lo)
        if info.stiff:
            def jac(t, av, fseg=fseg, u_of=u_of):
                z = W @ fseg(t) + u_of(t)
                J = -W.T * dact(z)[None, :]
                J[np.diag_indices_from(J)] += leak
                return J

            kwargs["jac"] = jac
        try:
            bsol = solve_ivp(budget.wrap(fun), (hi, lo), a, **kwargs)
        except BudgetExceeded:
            raise SimulationError(f"the adjoint solve ({method}) used its budget of max_steps = {max_steps} steps on "
                                  f"[{lo:.6g}, {hi:.6g}] (raise `max_steps`; a stiff model needs method='Radau' or "
                                  f"'BDF').") from None
        if bsol.status != 0 or not np.all(np.isfinite(bsol.y[:, -1])):
            raise SimulationError(f"the adjoint solve ({method}) failed on [{lo:.6g}, {hi:.6g}]: {bsol.message}")
        nfev_b += bsol.nfev
        a = bsol.y[:, -1]
        if bsol.t.size >= 2:
            # the final step was cut short to land on the segment end; the one before it was not
            last_step = float(np.max(np.abs(np.diff(bsol.t[-3:]))))

        # Quadrature on the union of forward and backward steps inside [lo, hi].
        fts = fsol.steps[fk]
        edges = np.unique(np.concatenate([[lo, hi], bsol.sol.ts, fts[(fts > lo) & (fts < hi)]]))
        edges = edges[(edges >= lo) & (edges <= hi)]
        mid = 0.5 * (edges[1:] + edges[:-1])
        half = 0.5 * np.diff(edges)
        tn = (mid[:, None] + half[:, None] * gl_x[None, :]).ravel()
        wn = (half[:, None] * gl_w[None, :]).ravel()
        Hn = _evaluate(fseg, pk, tn)  # (N, m)
        An = _evaluate(bsol.sol, pack_rk_interpolant(bsol.sol), tn)  # (N, m)
        Xn = x(tn)  # (N, d)
        Zn = Hn @ W.T + Xn @ model.U.T + model.b
        G = dact(Zn) * An * wn[:, None]
        dW += G.T @ Hn
        dU += G.T @ Xn
        db += G.sum(axis=0)
        if rho:
            rn = running_target(tn)
            en = Hn @ c - np.asarray(rn, dtype=float).reshape(tn.shape)
            dc += rho * ((wn * en) @ Hn)
            loss += 0.5 * rho * float(wn @ (en * en))
        n_nodes += tn.size
    if t0 in obs_index:
        a = a + r_obs[obs_index[t0]] * c  # an observation at the initial time
    if not (np.all(np.isfinite(dW)) and np.all(np.isfinite(a))):
        raise SimulationError("the adjoint gradient is non-finite.")
    grad = _own_gradient(original, dW, dU, db, dc)
    return AdjointResult(loss=loss, grad=grad, dh0=a, y=y, nfev_forward=fwd.nfev, nfev_backward=int(nfev_b),
                         n_quadrature_nodes=int(n_nodes), method=method)
