"""Continuous-time simulation of CTRNNs on scipy's integrators.

The system ``dh/dt = sigma(W h + U x(t) + b) - leak h`` is integrated with
:func:`scipy.integrate.solve_ivp` *knot to knot*: every knot of the input
path that lies inside the time span ends one call and starts the next, so no
step ever straddles a jump of ``x`` (or of ``x'``).  On each piece the input
is affine, ``U x(t) + b = p + (t - a) q``, and the vector field and its
Jacobian ``diag(sigma'(z)) W - leak I`` are numba-compiled.  Stiff methods
(Radau, BDF, LSODA) receive the analytic Jacobian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ._validation import as_float_array, check_choice, check_finite, check_increasing, check_int, check_positive
from .compiling import announce_compilation
from .activations import get_activation
from .errors import SimulationError
from .inputs import InputPath
from .models.contract import CTRNNForm
from .ode.control import DIVERGED, MAX_STEPS, STATUS_MESSAGES, SUCCESS
from .ode.field import ctrnn_jac, ctrnn_rhs
from .ode.registry import AUTO, COMPILED_METHODS, METHODS, check_method, method_info, resolve_method
from .ode.solve import solve_path_validated
from .solvers import BudgetExceeded, EvalBudget, as_ctrnn, check_path, segments, stiffness_hint, MAX_STEPS_LIMIT

__all__ = ["simulate", "SimulationResult", "PiecewiseSolution", "SimulationError", "METHODS"]

class _Field:
    """Vector field and Jacobian of a CTRNN on one piece of the input."""

    def __init__(self, model, x: InputPath):
        self.model = model
        self.x = x
        self.W = np.array(model.W)  # writeable copy: one numba signature
        self.code = get_activation(model.activation).code
        self.leak = float(model.leak)
        self.act = get_activation(model.activation)

    def on_piece(self, a: float, k: int):
        """``(fun, jac)`` for solve_ivp on the piece k starting at time a."""
        model, W, code, leak = self.model, self.W, self.code, self.leak
        if self.x.affine:
            xa = self.x.offsets[k] + (a - self.x.knots[k]) * self.x.slopes[k]
            p = model.U @ xa + model.b
            q = model.U @ self.x.slopes[k]

            def fun(t, h):
                return ctrnn_rhs(t, h, W, p, q, a, code, leak)

            def jac(t, h):
                return ctrnn_jac(t, h, W, p, q, a, code, leak)

            return fun, jac
        act, U, b, xfn = self.act, model.U, model.b, self.x.fn

        def fun(t, h):
            z = W @ h + U @ np.asarray(xfn(t), dtype=float).reshape(-1) + b
            return act.fn(z) - leak * h

        def jac(t, h):
            z = W @ h + U @ np.asarray(xfn(t), dtype=float).reshape(-1) + b
            J = act.deriv(z)[:, None] * W
            J[np.diag_indices_from(J)] -= leak
            return J

        return fun, jac


class _ContractField:
    """Vector field and Jacobian of any :class:`~dynmem.models.ContinuousModel` on one piece of the input."""

    def __init__(self, model, x: InputPath):
        self.model = model
        self.x = x

    def on_piece(self, a: float, k: int):
        model, x = self.model, self.x
        if x.affine:
            x0, slope, t0 = x.offsets[k], x.slopes[k], x.knots[k]

            def xt(t):
                return (x0 + (t - t0) * slope)[None]
        else:
            def xt(t):
                return np.asarray(x.fn(t), dtype=float).reshape(1, -1)

        def fun(t, h):
            return model.vector_field(h[None], xt(t))[0]

        def jac(t, h):
            return model.jacobian(h[None], xt(t))[0]

        return fun, jac


@dataclass(frozen=True, eq=False)
class PiecewiseSolution:
    """Dense output of a knot-to-knot solve: one scipy ``OdeSolution`` per segment.

    Attributes
    ----------
    breaks : ndarray, shape (n_segments + 1,)
        Segment end points, increasing.
    segments : tuple of scipy.integrate.OdeSolution
    steps : tuple of ndarray
        The integrator's step times within each segment.
    """

    breaks: np.ndarray
    segments: tuple
    steps: tuple

    def __call__(self, t) -> np.ndarray:
        """State at time(s) ``t``: shape (m,) for a scalar, (n, m) for an array."""
        scalar = np.ndim(t) == 0
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if t.size and (t.min() < self.breaks[0] or t.max() > self.breaks[-1]):
            raise ValueError(
                f"`t` must lie in [{self.breaks[0]}, {self.breaks[-1]}]; got values in [{t.min()}, {t.max()}]."
            )
        idx = np.clip(np.searchsorted(self.breaks, t, side="right") - 1, 0, len(self.segments) - 1)
        m = self.segments[0](self.breaks[0]).shape[0]
        out = np.empty((t.size, m))
        for k in np.unique(idx):
            sel = idx == k
            out[sel] = self.segments[k](t[sel]).T
        return out[0] if scalar else out


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Result of :func:`simulate`.

    Note for ``scipy.integrate.solve_ivp`` users: there ``sol.y`` is the
    *state*, shape ``(m, n)``; here the state is ``h``, shape ``(n, m)``
    (time first), and ``y`` is the model's read-out ``c^T h``.

    Attributes
    ----------
    t : ndarray, shape (n,)
        The requested times.
    h : ndarray, shape (n, m)
        Hidden states, time first (NaN after a reported failure).  This is
        what ``solve_ivp`` calls ``y`` (transposed).
    y : ndarray, shape (n,)
        Outputs ``c^T h`` (the read-out, not the state).
    success : bool
    message : str
    nfev, njev, nlu : int
        Right-hand-side evaluations, Jacobian evaluations and LU decompositions, summed over segments.
    n_segments : int
        Number of knot-to-knot solver calls.
    sol : PiecewiseSolution or None
        Dense output when ``dense_output=True``.
    method : str
        The integrator that ran (what ``method="auto"`` resolved to).
    """

    t: np.ndarray
    h: np.ndarray
    y: np.ndarray
    success: bool
    message: str
    nfev: int
    njev: int
    nlu: int
    n_segments: int
    sol: PiecewiseSolution | None = None
    method: str = ""


def _divergence_event(threshold: float):
    def event(t, h):
        return threshold - np.max(np.abs(h))

    event.terminal = True
    event.direction = -1
    return event


@announce_compilation("simulate")
def simulate(
    model,
    x: InputPath,
    t_eval,
    *,
    h0=None,
    t0: float | None = None,
    method: str = AUTO,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_step: float = np.inf,
    dense_output: bool = False,
    divergence_threshold: float = 1e12,
    on_failure: str = "raise",
    max_steps: int = 20_000,
) -> SimulationResult:
    """Integrate a CTRNN driven by an input path.

    Parameters
    ----------
    model : CTRNN, LinearRNN or any dynmem.models.ContinuousModel
        (e.g. :class:`dynmem.gated.CTGRU`; those run through their
        ``vector_field`` / ``jacobian``, not the compiled CTRNN field).
    x : InputPath
        The input; its knots split the integration.
    t_eval : array_like, shape (n,)
        Strictly increasing output times in ``[t0, x.t_end]``.
    h0 : array_like, shape (m,), optional
        State at ``t0`` (zeros by default).
    t0 : float, optional
        Initial time; defaults to ``x.t_start``.
    method : {"auto", "RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA", "dopri5", "tsit5", "dop853"}
        scipy integrator (stiff ones get the analytic Jacobian), or
        ``"dopri5"``: the numba-compiled Dormand-Prince 5(4) of
        :mod:`dynmem.ode` (same pair and step-size controls as scipy's
        RK45, the whole solve in one compiled call; CTRNN/LinearRNN models,
        affine input paths, no ``dense_output``); ``"tsit5"`` (Tsitouras
        5(4), the same controls) and ``"dop853"`` (scipy's DOP853 pair and
        controls) are compiled the same way.  The default ``"auto"`` is
        ``"dopri5"`` where it applies and ``"RK45"`` otherwise
        (:func:`dynmem.solvers.resolve_method`); ``result.method`` says which
        ran.  Both are explicit: give ``"Radau"`` or ``"BDF"`` for a stiff
        model.
    rtol, atol : float
        Tolerances passed to every solver call.
    max_step : float
        Largest step the solver may take.
    dense_output : bool
        Also return a :class:`PiecewiseSolution` on ``[t0, t_eval[-1]]``.
    divergence_threshold : float
        The solve stops and fails when ``max|h|`` reaches this value.
    on_failure : {"raise", "report"}
        Raise :class:`SimulationError`, or return ``success=False`` with the
        states after the failure set to NaN.
    max_steps : int
        Step budget of the whole call, counted as right-hand-side
        evaluations divided by the method's evaluations per step (6 for
        RK45, 3 for RK23, 12 for DOP853, 1 for the implicit methods, whose
        evaluations are mostly Newton iterations).  Exceeding it is a
        failure (with a hint when an explicit method meets a stiff model),
        never a hang; a ``max_step`` that cannot reach ``t_eval[-1]`` within
        the budget is refused before integrating.  For ``method="dopri5"``
        it counts step attempts.

    Returns
    -------
    SimulationResult
        ``.h`` the states, shape ``(n, m)``; ``.y`` the read-out ``c^T h``, shape ``(n,)``
        (``solve_ivp``'s ``sol.y`` is the state: here read ``.h``).

    Notes
    -----
    Accuracy at activation kinks.  For ``relu`` and ``hardtanh`` the field's
    derivative jumps where a component of ``z = W h + U x + b`` crosses a
    kink; no event location is done there, so the step that contains a switch
    loses order and the global error is larger than for smooth activations.
    Measured against scipy DOP853 at ``rtol = 1e-13, atol = 1e-15`` on 20
    random models (m = 6, d = 2, T = 10, 6 input pieces), relative error
    ``max|h - h_ref| / max|h_ref|``, median / max over the models:

    ==========  =============  =================  =================
    activation  rtol (atol)    dopri5             RK45
    ==========  =============  =================  =================
    tanh        1e-8 (1e-10)   9.4e-9 / 5.8e-8    1.0e-8 / 1.5e-7
    relu        1e-8 (1e-10)   1.5e-7 / 3.2e-6    1.0e-7 / 3.2e-6
    relu        1e-10 (1e-12)  2.0e-9 / 2.6e-8    1.3e-9 / 9.4e-9
    hardtanh    1e-8 (1e-10)   6.1e-7 / 2.3e-6    5.8e-7 / 1.4e-6
    hardtanh    1e-10 (1e-12)  5.8e-9 / 1.2e-7    6.0e-9 / 3.8e-8
    ==========  =============  =================  =================

    so a kinked model is about ``10 - 1000 rtol`` accurate where a smooth one
    is ``~ 10 rtol`` (tested bound for relu/hardtanh: ``3e3 rtol`` relative at
    rtol 1e-8 and 1e-10, tests/test_simulate.py);
    lower ``rtol`` where more is needed.
    """
    model = as_ctrnn(model)
    x = check_path(model, x)
    check_method(method)
    check_choice("on_failure", on_failure, ("raise", "report"))
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    max_step = check_positive("max_step", max_step, allow_inf=True)
    threshold = check_positive("divergence_threshold", divergence_threshold)
    max_steps = check_int("max_steps", max_steps, minimum=1, maximum=MAX_STEPS_LIMIT)
    if not isinstance(dense_output, (bool, np.bool_)):
        raise TypeError(f"`dense_output` must be True or False; got {dense_output!r}.")
    method = resolve_method(method, model, x, dense_output=bool(dense_output))
    t_eval = check_increasing("t_eval", as_float_array("t_eval", t_eval, ndim=1))
    if t_eval.size == 0:
        raise ValueError("`t_eval` must hold at least one time; got an empty array.")
    t0 = x.t_start if t0 is None else check_finite("t0", t0)
    if not (x.t_start <= t0 <= x.t_end):
        raise ValueError(f"`t0` must lie in the input's domain [{x.t_start}, {x.t_end}]; got {t0}.")
    if t_eval[0] < t0 or t_eval[-1] > x.t_end:
        raise ValueError(
            f"`t_eval` must lie in [t0, x.t_end] = [{t0}, {x.t_end}]; got values in [{t_eval[0]}, {t_eval[-1]}]."
        )
    if np.isfinite(max_step) and (t_eval[-1] - t0) / max_step > max_steps:
        raise ValueError(f"`max_step` = {max_step:g} needs at least {(t_eval[-1] - t0) / max_step:.3g} steps to reach "
                         f"t = {t_eval[-1]:g} from t0 = {t0:g}, more than `max_steps` = {max_steps}.")
    m = model.hidden
    h = np.zeros(m) if h0 is None else as_float_array("h0", h0, shape=(m,)).copy()

    info = method_info(method)
    if info.compiled:
        if not isinstance(model, CTRNNForm):
            raise ValueError(f"`method` = {method!r} is written for CTRNN and LinearRNN models; got a "
                             f"{type(model).__name__}: use a scipy method such as 'RK45'.")
        return _simulate_compiled(model, x, t_eval, h, t0, rtol, atol, max_step, dense_output, threshold, on_failure,
                                  max_steps, method)
    field = _Field(model, x) if isinstance(model, CTRNNForm) else _ContractField(model, x)
    budget = EvalBudget(max_steps * info.evals_per_step)
    H = np.full((t_eval.size, m), np.nan)
    done = np.zeros(t_eval.size, dtype=bool)
    nfev = njev = nlu = 0
    success, message = True, "The solver reached the last requested time."
    sols, steps, breaks = [], [], [t0]
    t1 = float(t_eval[-1])
    segs = segments(x, t0, t1) if t1 > t0 else []
    event = _divergence_event(threshold)
    last_step = None
    for a, b, k in segs:
        fun, jac = field.on_piece(a, k)
        sel = (~done) & (t_eval >= a) & (t_eval <= b)
        te = t_eval[sel]
        n_req = te.size
        if n_req == 0 or te[-1] != b:
            te = np.append(te, b)  # the end state seeds the next segment
        kwargs = dict(method=method, rtol=rtol, atol=atol, max_step=max_step, dense_output=dense_output,
                      t_eval=te, events=event)
        if info.stiff:
            kwargs["jac"] = jac
        if last_step is not None and info.warm_start:
            # Start from the previous segment's step instead of scipy's fresh guess
            # (measured to save ~15% on the adjoint benchmark; for DOP853 it made the
            # error's dependence on rtol irregular, so the others keep scipy's guess).
            kwargs["first_step"] = min(last_step, b - a)
        try:
            sol = solve_ivp(budget.wrap(fun), (a, b), h, **kwargs)
        except BudgetExceeded:
            success = False
            hint = stiffness_hint(model, float(t_eval[-1]) - t0, max_steps, method) if not info.stiff else ""
            message = (f"{method} used its budget of max_steps = {max_steps} steps on the segment "
                       f"[{a:.6g}, {b:.6g}] (raise `max_steps` to allow more){hint}.")
            break
        nfev, njev, nlu = nfev + sol.nfev, njev + sol.njev, nlu + sol.nlu
        if sol.status != 0:
            success = False
            t_fail = float(sol.t_events[0][0]) if sol.status == 1 and len(sol.t_events[0]) else a
            if sol.status == 1:
                message = f"the state diverged: max|h| reached {threshold:g} at t = {t_fail:.6g} (method {method})."
            else:
                message = f"{method} failed on the segment [{a:.6g}, {b:.6g}]: {sol.message}"
            ts = np.asarray(sol.t, dtype=float).ravel() if not isinstance(sol.t, list) or sol.t else np.zeros(0)
            ys = sol.y if isinstance(sol.y, np.ndarray) else (np.column_stack(sol.y) if len(sol.y) else np.zeros((m, 0)))
            n_got = min(ts.size, ys.shape[-1] if ys.ndim == 2 else 0, n_req)
            if n_got:
                H[np.flatnonzero(sel)[:n_got]] = ys[:, :n_got].T
            break
        H[sel] = sol.y[:, :n_req].T
        done |= sel
        h = sol.y[:, -1]
        if dense_output and sol.sol.ts.size >= 2:
            # the final step was cut short to land on the knot; the one before it was not
            last_step = float(np.max(np.diff(sol.sol.ts[-3:])))
        if not np.all(np.isfinite(h)):
            success, message = False, f"the state became non-finite on [{a:.6g}, {b:.6g}] (method {method})."
            break
        if dense_output:
            sols.append(sol.sol)
            steps.append(sol.sol.ts)
            breaks.append(b)
    if t_eval[0] == t0 and not done[0] and success:
        H[0] = np.zeros(m) if h0 is None else as_float_array("h0", h0, shape=(m,))
        done[0] = True
    if success and not done.all():  # pragma: no cover - guards the bookkeeping above
        success, message = False, "internal error: some requested times were not reached."
    if not success and on_failure == "raise":
        raise SimulationError(message)
    y = H @ model.c
    dense = PiecewiseSolution(np.array(breaks), tuple(sols), tuple(steps)) if (dense_output and success and sols) else None
    return SimulationResult(t=t_eval, h=H, y=y, success=success, message=message, nfev=int(nfev), njev=int(njev),
                            nlu=int(nlu), n_segments=len(segs), sol=dense, method=method)



def _simulate_compiled(model, x, t_eval, h0, t0, rtol, atol, max_step, dense_output, threshold, on_failure, max_steps,
                       method="dopri5"):
    if dense_output:
        raise ValueError(f"`dense_output` must be False for method={method!r} (the compiled solver keeps no dense "
                         "output).")
    if not x.affine:
        raise ValueError(
            f"`x` must be affine on each piece (x.affine) for method={method!r}; got {type(x).__name__}; "
            "use a scipy method such as 'RK45'."
        )
    # the arguments were validated by simulate: the compiled kernel is called without a second round of checks
    H, status, t_reached, nfev = solve_path_validated(model, x, t_eval, h0, t0, rtol, atol, max_step, max_steps,
                                                      threshold, method)
    if status == SUCCESS:
        message = "The solver reached the last requested time."
    else:
        if status == DIVERGED:
            message = (f"the state diverged: max|h| reached divergence_threshold = {threshold:g} by the end of the "
                       f"step at t = {t_reached:.6g} (method {method}).")
        elif status == MAX_STEPS:
            message = (f"{method} used its budget of max_steps = {max_steps} step attempts by t = "
                       f"{t_reached:.6g} (raise `max_steps` to allow more)"
                       f"{stiffness_hint(model, float(t_eval[-1]) - t0, max_steps, method)}.")
        else:
            message = f"{method} failed at t = {t_reached:.6g}: {STATUS_MESSAGES[status]}."
        if on_failure == "raise":
            raise SimulationError(message)
    t1 = float(t_eval[-1])
    n_segments = int(np.count_nonzero((x.knots > t0) & (x.knots < t1))) + 1 if t1 > t0 else 0
    return SimulationResult(t=t_eval, h=H, y=H @ model.c, success=status == SUCCESS, message=message,
                            nfev=nfev, njev=0, nlu=0, n_segments=n_segments, sol=None, method=method)
