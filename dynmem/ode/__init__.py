"""The compiled Runge-Kutta engine for CTRNNs, as data: pair records, one step loop, the adjoints, a registry.

The vector field is the CTRNN's ``dh/dt = sigma(W h + U x(t) + b) - leak h``
with an input path that is affine on each piece (every path in
:mod:`dynmem.inputs` except :class:`~dynmem.inputs.FunctionPath`).  The whole
solve of a sequence runs inside one compiled call: no Python between steps.
:func:`dynmem.simulate` and :func:`dynmem.adjoint_gradient` are the public
doors; the batched calls below are the engine's own API.

Layout
------
``pair.py``       :class:`Pair`, the validated record of a pair (tableau, error weights, dense output, orders)
``dopri5.py``, ``tsit5.py``, ``dop853.py``   one module per pair: its tables and its record
``registry.py``   every method name with its capabilities (compiled, stiff, adjoints, running loss, dense output)
``control.py``    status codes and scipy's error norm and step-size controller
``field.py``      the CTRNN field and its adjoint, for the compiled and the scipy paths
``loop.py``       the one step loop, parameterised by the pair (forward solves and the step store)
``solve.py``      the batched forward calls (:func:`solve_ctrnn`, :func:`solve_ctrnn_constant`)
``adjoint.py``    the compiled discrete and continuous adjoints (:func:`ctrnn_loss_gradient`)

Method
------
Explicit Runge-Kutta pairs with FSAL and a continuous extension: Dormand and
Prince (1980) 5(4) (the default; scipy's ``RK45``), Tsitouras (2011) 5(4) and
Hairer's DOP853.  The controls are those of scipy's ``RK45`` (``DOP853`` for
that pair), so ``rtol``/``atol`` mean what they mean in
:func:`scipy.integrate.solve_ivp`: see :mod:`dynmem.ode.control`.  Every knot of
the input path inside the span ends a step exactly; observation times are
filled by the dense output of the step that contains them (see
:mod:`dynmem.ode.loop`).

Status codes (:data:`STATUS_MESSAGES`): 0 success, 1 step-size underflow,
2 non-finite state, 3 ``max_steps`` step attempts exceeded, 4 ``max|h|``
reached ``divergence_threshold``.
"""

from .adjoint import AdjointODEResult, ctrnn_loss_gradient, loss_gradient_validated, resolve_adjoint
from .control import DIVERGED, MAX_STEPS, NONFINITE, STATUS_MESSAGES, STEP_UNDERFLOW, SUCCESS
from .pair import Pair
from .registry import (ADJOINT_COMPILED_METHODS, ADJOINTS, AUTO, COMPILED_METHODS, EVALS_PER_STEP, METHODS, REGISTRY,
                       STIFF_METHODS, Method, check_method, method_info, pair_of, resolve_method)
from .solve import ODEResult, solve_ctrnn, solve_ctrnn_constant, solve_path_validated

__all__ = ["solve_ctrnn", "solve_ctrnn_constant", "ctrnn_loss_gradient", "ODEResult", "AdjointODEResult",
           "STATUS_MESSAGES", "ADJOINTS", "resolve_adjoint", "Pair", "Method", "REGISTRY", "method_info", "pair_of",
           "METHODS", "COMPILED_METHODS", "ADJOINT_COMPILED_METHODS", "STIFF_METHODS", "EVALS_PER_STEP", "AUTO",
           "check_method", "resolve_method"]
