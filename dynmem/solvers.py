"""Solver layer shared by :mod:`dynmem.simulate`, :mod:`dynmem.adjoint` and :mod:`dynmem.memory` (scipy side).

The pieces every continuous-time routine needs and that used to live as
private names of :mod:`dynmem.simulate`:

* the method names and the default ``"auto"`` with its resolution rule,
  re-exported from the method registry :mod:`dynmem.ode.registry`
  (:data:`METHODS` of scipy, :data:`COMPILED_METHODS`, :data:`STIFF_METHODS`,
  :func:`check_method`, :func:`resolve_method`);
* the model and input checks at the public boundary (:func:`as_ctrnn`, from
  :mod:`dynmem.ode.field`, and :func:`check_path`);
* knot-to-knot segmentation of an input path (:func:`segments`);
* the step budget of scipy solves (:class:`EvalBudget`,
  :class:`BudgetExceeded`, :data:`EVALS_PER_STEP`) and the stiffness scale
  quoted in its message (:func:`stiffness_scale`);
* packing of scipy's Runge-Kutta dense output into plain arrays
  (:func:`pack_rk_interpolant`) - the one place a private scipy class
  (``scipy.integrate._ivp.rk.RkDenseOutput``) is referred to;
* the coefficients of the DOP853 pair (:data:`DOP853_COEFFICIENTS`,
  re-exported from :mod:`dynmem.ode.dop853`, which reads them from scipy);
* :class:`SimulationError` (defined in :mod:`dynmem.errors`), re-exported here
  and by :mod:`dynmem.simulate` (same class).

These names are public within the package but not re-exported from
``dynmem`` itself.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate._ivp.rk import RkDenseOutput

from ._validation import describe
from .errors import SimulationError
from .inputs import InputPath
from .ode.dop853 import COEFFICIENTS as DOP853_COEFFICIENTS
from .ode.field import as_ctrnn
from .ode.registry import (ADJOINT_COMPILED_METHODS, AUTO, COMPILED_METHODS, EVALS_PER_STEP, METHODS, STIFF_METHODS,
                           check_method, method_info, resolve_method)

__all__ = [
    "SimulationError", "METHODS", "COMPILED_METHODS", "STIFF_METHODS", "AUTO", "EVALS_PER_STEP",
    "as_ctrnn", "check_path", "segments", "EvalBudget", "BudgetExceeded", "stiffness_scale", "stiffness_hint", "MAX_STEPS_LIMIT",
    "pack_rk_interpolant", "check_method", "resolve_method", "ADJOINT_COMPILED_METHODS", "DOP853_COEFFICIENTS",
]


def check_path(model, x) -> InputPath:
    """Check that ``x`` is an :class:`~dynmem.inputs.InputPath` of the model's input dimension."""
    if not isinstance(x, InputPath):
        raise TypeError(
            f"`x` must be an input path from dynmem.inputs (e.g. inputs.step(x) for a Heaviside input); got {describe(x)}."
        )
    if x.dim != model.inputs:
        raise ValueError(f"`x` must have dimension {model.inputs} to match the model's inputs; got dimension {x.dim}.")
    return x


def segments(x: InputPath, t0: float, t1: float) -> list[tuple[float, float, int]]:
    """Knot-to-knot segments ``(a, b, piece)`` covering ``[t0, t1]`` (``piece`` indexes x's pieces)."""
    inner = x.knots[(x.knots > t0) & (x.knots < t1)]
    bounds = np.concatenate([[t0], inner, [t1]])
    pieces = x.piece_index(bounds[:-1])
    return [(float(a), float(b), int(k)) for a, b, k in zip(bounds[:-1], bounds[1:], pieces)]


class BudgetExceeded(Exception):
    """Raised inside a right-hand side when a call used up its evaluation budget."""


class EvalBudget:
    """Counts right-hand-side evaluations across every solver call of one simulation.

    ``wrap(fun)`` returns ``fun`` counted; the call that exceeds ``limit``
    raises :class:`BudgetExceeded` (which ``solve_ivp`` propagates).
    """

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0

    def wrap(self, fun):
        def counted(t, h):
            self.used += 1
            if self.used > self.limit:
                raise BudgetExceeded
            return fun(t, h)

        return counted


def stiffness_scale(model) -> float:
    """Largest eigenvalue modulus of W (the stiffness scale of sigma(W h + ...)); NaN if it cannot be computed."""
    try:
        return float(np.max(np.abs(np.linalg.eigvals(np.asarray(model.W, dtype=float)))))
    except (np.linalg.LinAlgError, AttributeError, ValueError):  # pragma: no cover
        return float("nan")


#: The largest ``max_steps`` accepted: the compiled kernels count step attempts in int64.
MAX_STEPS_LIMIT = 2**62


def stiffness_hint(model, span: float, max_steps: int, method: str) -> str:
    """The "use Radau/BDF" hint of a used-up step budget, only when a stiff ``W`` explains it.

    An explicit Runge-Kutta step is stable for ``|lambda| h`` up to about 3,
    so ``W`` alone forces about ``rho(W) span / 3`` steps over ``span``; the
    hint is given when ``rho(W) >= 100`` (a hundred times the leak's rate:
    stiff) and those steps are at least half the budget.  Otherwise the span
    or the budget is the reason, and the message says so.
    """
    if method_info(method).stiff:
        return ""
    scale = stiffness_scale(model)
    # stiff: W's fastest rate is far (100x) beyond the leak's unit rate, and its stability limit alone spends the budget
    if np.isfinite(scale) and scale >= 100.0 and scale * abs(span) / 3.0 >= 0.5 * max_steps:
        return (f"; the model is stiff for this budget (W has an eigenvalue of modulus {scale:.3g}, which alone "
                f"needs about {scale * abs(span) / 3.0:.3g} explicit steps): use method='Radau' or 'BDF'")
    return (f"; W is not stiff enough to explain it (largest eigenvalue modulus {scale:.3g}): the span of "
            f"{abs(span):.3g} or the accuracy asked needs more steps than the budget")


def pack_rk_interpolant(sol):
    """Arrays ``(t_lo, t_old, hs, Y0, Q)`` of a scipy OdeSolution made of RK interpolants, or None.

    Each step ``k`` starts at ``t_old[k]`` with signed length ``hs[k]``
    (negative for a backward solve); on it the state is
    ``Y0[k] + hs[k] * sum_j Q[k, :, j] x^(j+1)``, ``x = (t - t_old[k]) / hs[k]``.
    Steps are sorted by their left end ``t_lo = min(t_old, t_old + hs)``.
    None when any interpolant is not scipy's ``RkDenseOutput`` (implicit methods).
    """
    ints = sol.interpolants
    if not ints or not all(isinstance(it, RkDenseOutput) for it in ints):
        return None
    t_old = np.array([it.t_old for it in ints])
    hs = np.array([it.h for it in ints])
    t_lo = np.minimum(t_old, t_old + hs)
    order = np.argsort(t_lo, kind="stable")
    Y0 = np.ascontiguousarray(np.stack([it.y_old for it in ints])[order])
    Q = np.ascontiguousarray(np.stack([it.Q for it in ints])[order])
    return np.ascontiguousarray(t_lo[order]), np.ascontiguousarray(t_old[order]), np.ascontiguousarray(hs[order]), Y0, Q
