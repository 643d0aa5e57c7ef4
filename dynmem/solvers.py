"""Solver layer shared by :mod:`dynmem.simulate`, :mod:`dynmem.adjoint`, :mod:`dynmem.memory` and :mod:`dynmem.odeint`.

The pieces every continuous-time routine needs and that used to live as
private names of :mod:`dynmem.simulate`:

* the method names (:data:`METHODS` of scipy, :data:`COMPILED_METHODS` of
  :mod:`dynmem.odeint`, :data:`STIFF_METHODS`) and the default ``"auto"``
  with its resolution rule (:func:`resolve_method`);
* the model and input checks at the public boundary (:func:`as_ctrnn`,
  :func:`check_path`);
* knot-to-knot segmentation of an input path (:func:`segments`);
* the step budget of scipy solves (:class:`EvalBudget`,
  :class:`BudgetExceeded`, :data:`EVALS_PER_STEP`) and the stiffness scale
  quoted in its message (:func:`stiffness_scale`);
* packing of scipy's Runge-Kutta dense output into plain arrays
  (:func:`pack_rk_interpolant`) - the one place a private scipy class
  (``scipy.integrate._ivp.rk.RkDenseOutput``) is referred to;
* the coefficients of the DOP853 pair (:data:`DOP853_COEFFICIENTS`), read
  from scipy's private ``scipy.integrate._ivp.dop853_coefficients`` here and
  nowhere else;
* :class:`SimulationError`, re-exported by :mod:`dynmem.simulate` (same class).

These names are public within the package but not re-exported from
``dynmem`` itself.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _dop853
from scipy.integrate._ivp.rk import RkDenseOutput

from ._validation import check_choice, describe
from .activations import get_activation
from .inputs import InputPath
from .models import CTRNN, ContinuousModel, LinearRNN

__all__ = [
    "SimulationError", "METHODS", "COMPILED_METHODS", "STIFF_METHODS", "AUTO", "EVALS_PER_STEP",
    "as_ctrnn", "check_path", "segments", "EvalBudget", "BudgetExceeded", "stiffness_scale", "stiffness_hint", "MAX_STEPS_LIMIT",
    "pack_rk_interpolant", "check_method", "resolve_method", "ADJOINT_COMPILED_METHODS", "DOP853_COEFFICIENTS",
]

METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
"""scipy's :func:`~scipy.integrate.solve_ivp` methods, accepted by name."""
COMPILED_METHODS = ("dopri5", "tsit5", "dop853")
"""Compiled methods of :mod:`dynmem.odeint`: Dormand-Prince 5(4), Tsitouras 5(4), Hairer's DOP853 (8(5,3))."""
ADJOINT_COMPILED_METHODS = ("dopri5", "tsit5")
"""Compiled methods that :func:`dynmem.odeint.ctrnn_loss_gradient` (the compiled adjoint) takes."""
STIFF_METHODS = ("Radau", "BDF", "LSODA")
"""Implicit scipy methods (they receive the analytic Jacobian)."""
AUTO = "auto"
"""The default method name: see :func:`resolve_method`."""
EVALS_PER_STEP = {"RK45": 6, "RK23": 3, "DOP853": 12}
"""Right-hand-side evaluations per step of scipy's explicit methods (1 assumed for the others)."""


def _frozen(a) -> np.ndarray:
    out = np.array(a, dtype=float)
    out.flags.writeable = False
    return out


# Hairer, Norsett & Wanner, *Solving ODEs I* (2nd ed.), sec. II.5 and II.10, and Hairer's DOP853 Fortran code:
# the coefficients as scipy ships them (scipy.integrate._ivp.dop853_coefficients, used by its DOP853).
DOP853_COEFFICIENTS = {
    "C": _frozen(_dop853.C),  # (16,): 12 stages, the FSAL stage (index 12) and 3 dense-output stages
    "A": _frozen(_dop853.A),  # (16, 16)
    "B": _frozen(_dop853.B),  # (12,): eighth-order weights
    "E3": _frozen(_dop853.E3),  # (13,): third-order error weights (incl. the FSAL stage)
    "E5": _frozen(_dop853.E5),  # (13,): fifth-order error weights
    "D": _frozen(_dop853.D),  # (4, 16): the seventh-order dense output's higher coefficients
}
"""Read-only arrays of the DOP853 pair (the numbers of scipy's ``DOP853``)."""


class SimulationError(RuntimeError):
    """The integrator failed (step size collapse, divergence or a non-finite state)."""


def check_method(method, *, compiled: bool = True) -> str:
    """Validate a ``method`` argument: ``"auto"``, a scipy method or (with ``compiled``) a compiled one."""
    if method == AUTO:
        return method
    choices = METHODS + (COMPILED_METHODS if compiled else ())
    try:
        return check_choice("method", method, choices)
    except ValueError as exc:
        raise ValueError(f"{exc} The default {AUTO!r} picks the compiled 'dopri5' where it applies and 'RK45' "
                         "otherwise.") from None


def resolve_method(method: str, model, x=None, *, dense_output: bool = False, running_loss: bool = False) -> str:
    """The integrator ``method="auto"`` stands for; any other name is returned unchanged.

    ``"auto"`` resolves to the compiled ``"dopri5"`` (:mod:`dynmem.odeint`:
    the same Dormand-Prince 5(4) pair and step-size controls as scipy's
    ``RK45``, the whole solve in one compiled call) when all of these hold:

    * the model is a :class:`~dynmem.models.CTRNN` (a LinearRNN counts, as
      its CTRNN form);
    * the input path is affine on each piece (``x.affine``; every path of
      :mod:`dynmem.inputs` except :class:`~dynmem.inputs.FunctionPath`), or
      there is no path (constant inputs);
    * no dense output is asked for, and no running loss unless the
      activation is smooth (the compiled running loss rides on the discrete
      adjoint, which ``adjoint="auto"`` uses for smooth activations only).

    Otherwise it resolves to scipy's ``"RK45"``.  Both are explicit methods:
    a stiff model needs ``"Radau"`` or ``"BDF"`` by name under either (the
    step budget reports it).
    """
    if method != AUTO:
        return method
    if isinstance(model, LinearRNN):
        model = model.as_ctrnn()
    ok = isinstance(model, CTRNN) and not dense_output
    ok = ok and (not running_loss or get_activation(model.activation).smooth)
    if x is not None:
        ok = ok and isinstance(x, InputPath) and bool(x.affine)
    return "dopri5" if ok else "RK45"


def as_ctrnn(model):
    """A CTRNN for a LinearRNN, the model itself for a CTRNN or another ContinuousModel; TypeError otherwise."""
    if isinstance(model, CTRNN):
        return model
    if isinstance(model, LinearRNN):
        return model.as_ctrnn()
    if isinstance(model, ContinuousModel):
        return model  # any model of the contract: integrated through its vector_field / jacobian
    raise TypeError(
        f"`model` must be a CTRNN or a LinearRNN (discrete models run with dynmem.recurrences.forward); got "
        f"{describe(model)}. Any other dynmem.models.ContinuousModel (e.g. dynmem.CTGRU) is accepted too."
    )


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
    if method in STIFF_METHODS or method in ("Radau", "BDF"):
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
