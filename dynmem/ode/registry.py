"""The method registry: every integrator name the continuous-time routines take, with what it can do.

One :class:`Method` record a name: scipy's :func:`~scipy.integrate.solve_ivp`
methods and the compiled pairs of :mod:`dynmem.ode` (a compiled method is its
:class:`~dynmem.ode.pair.Pair` plus this line).  :func:`dynmem.simulate`,
:func:`dynmem.adjoint_gradient` and :func:`dynmem.memory_function` read the
capabilities here instead of checking names.  The name tuples below
(:data:`METHODS`, :data:`COMPILED_METHODS` ...) are derived from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validation import check_choice, describe
from ..activations import get_activation
from ..inputs import InputPath
from ..models.contract import CTRNNForm
from . import dop853, dopri5, tsit5
from .pair import Pair

__all__ = ["Method", "REGISTRY", "method_info", "METHODS", "COMPILED_METHODS", "ADJOINT_COMPILED_METHODS",
           "STIFF_METHODS", "EVALS_PER_STEP", "AUTO", "ADJOINTS", "check_method", "check_compiled_method",
           "resolve_method", "pair_of"]


@dataclass(frozen=True)
class Method:
    """What an integrator can do.

    Attributes
    ----------
    name : str
    pair : Pair or None
        The compiled pair (None for a scipy method).
    stiff : bool
        Implicit: receives the analytic Jacobian.
    adjoints : tuple of str
        The adjoint gradients it computes (``"continuous"``: the adjoint ODE,
        ``"discrete"``: the transpose of the stored steps).
    running_loss : tuple of str
        The adjoints that carry a running loss.
    dense_output : bool
        :func:`dynmem.simulate` can return a dense solution.
    evals_per_step : int
        Right-hand-side evaluations per step (the step budget of scipy solves;
        1 for the implicit methods, whose evaluations are mostly Newton iterations).
    warm_start : bool
        A scipy solve starts each segment from the previous segment's step.
    """

    name: str
    pair: Pair | None = None
    stiff: bool = False
    adjoints: tuple = ("continuous",)
    running_loss: tuple = ("continuous",)
    dense_output: bool = True
    evals_per_step: int = 1
    warm_start: bool = False

    @property
    def compiled(self) -> bool:
        """Runs on dynmem's compiled engine (CTRNN fields, affine inputs)."""
        return self.pair is not None


def _compiled(pair: Pair, adjoints: tuple) -> Method:
    return Method(pair.name, pair=pair, adjoints=adjoints, running_loss=("discrete",) if adjoints else (),
                  dense_output=False, evals_per_step=1)


REGISTRY = {m.name: m for m in (
    Method("RK45", evals_per_step=6, warm_start=True),
    Method("RK23", evals_per_step=3, warm_start=True),
    Method("DOP853", evals_per_step=12),
    Method("Radau", stiff=True),
    Method("BDF", stiff=True),
    Method("LSODA", stiff=True),
    _compiled(dopri5.PAIR, ("discrete", "continuous")),
    _compiled(tsit5.PAIR, ("discrete", "continuous")),
    _compiled(dop853.PAIR, ()),
)}
"""name -> :class:`Method`; a new compiled pair is one line here."""

AUTO = "auto"
"""The default method name: see :func:`resolve_method`."""
METHODS = tuple(n for n, m in REGISTRY.items() if not m.compiled)
"""scipy's :func:`~scipy.integrate.solve_ivp` methods, accepted by name."""
COMPILED_METHODS = tuple(n for n, m in REGISTRY.items() if m.compiled)
"""Compiled methods of :mod:`dynmem.ode`: Dormand-Prince 5(4), Tsitouras 5(4), Hairer's DOP853 (8(5,3))."""
ADJOINT_COMPILED_METHODS = tuple(n for n in COMPILED_METHODS if REGISTRY[n].adjoints)
"""Compiled methods that have compiled adjoints (:func:`dynmem.ode.ctrnn_loss_gradient`)."""
STIFF_METHODS = tuple(n for n, m in REGISTRY.items() if m.stiff)
"""Implicit scipy methods (they receive the analytic Jacobian)."""
EVALS_PER_STEP = {n: m.evals_per_step for n, m in REGISTRY.items() if not m.compiled and not m.stiff}
"""Right-hand-side evaluations per step of scipy's explicit methods (1 assumed for the others)."""
ADJOINTS = ("auto", "discrete", "continuous")
"""The gradients the compiled adjoint computes (its ``adjoint`` argument)."""


def method_info(method: str) -> Method:
    """The record of a method name (already checked by :func:`check_method`)."""
    return REGISTRY[method]


def pair_of(method: str) -> Pair:
    """The pair of a compiled method."""
    return REGISTRY[method].pair


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


def check_compiled_method(method, *, adjoint: bool = False) -> str:
    """Validate the ``method`` of the engine's own calls: a compiled pair (with ``adjoint``, one with adjoints)."""
    choices = ADJOINT_COMPILED_METHODS if adjoint else COMPILED_METHODS
    if method not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`method` must be one of {listed} (the compiled pairs); got {describe(method)}.")
    return method


def resolve_method(method: str, model, x=None, *, dense_output: bool = False, running_loss: bool = False) -> str:
    """The integrator ``method="auto"`` stands for; any other name is returned unchanged.

    ``"auto"`` resolves to the compiled ``"dopri5"`` (:mod:`dynmem.ode`:
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
    ok = isinstance(model, CTRNNForm) and not dense_output
    if ok:
        model = model.as_ctrnn()
    ok = ok and (not running_loss or get_activation(model.activation).smooth)
    if x is not None:
        ok = ok and isinstance(x, InputPath) and bool(x.affine)
    return "dopri5" if ok else "RK45"
