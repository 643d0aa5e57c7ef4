"""The old import path of the compiled engine, which now lives in :mod:`dynmem.ode` (issue 24).

Every public name of the former module, re-exported: the batched calls
(:func:`solve_ctrnn`, :func:`solve_ctrnn_constant`), the compiled adjoint
(:func:`ctrnn_loss_gradient`), their result types and status codes, and the
tables of the 5(4) pairs as dicts (``DOPRI5_TABLEAU``, ``TSIT5_TABLEAU``: the
arrays of :data:`dynmem.ode.dopri5.PAIR` and :data:`dynmem.ode.tsit5.PAIR`).
"""

from __future__ import annotations

from .ode import (ADJOINTS, STATUS_MESSAGES, AdjointODEResult, ODEResult, ctrnn_loss_gradient,
                  loss_gradient_validated, resolve_adjoint, solve_ctrnn, solve_ctrnn_constant)
from .ode import dopri5 as _dopri5
from .ode import tsit5 as _tsit5
from .ode.control import DIVERGED, MAX_STEPS, NONFINITE, STEP_UNDERFLOW, SUCCESS
from .ode.solve import solve_path_validated

__all__ = ["solve_ctrnn", "solve_ctrnn_constant", "ctrnn_loss_gradient", "AdjointODEResult", "ODEResult",
           "STATUS_MESSAGES", "DOPRI5_TABLEAU", "TSIT5_TABLEAU", "ADJOINTS", "resolve_adjoint", "loss_gradient_validated"]

DOPRI5_TABLEAU = {k: getattr(_dopri5.PAIR, k) for k in "CABEP"}
"""The Dormand-Prince 5(4) pair's arrays (read-only), by name."""
TSIT5_TABLEAU = {k: getattr(_tsit5.PAIR, k) for k in "CABEP"}
"""The Tsitouras 5(4) pair's arrays (read-only), by name."""
