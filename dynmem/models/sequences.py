"""One door for every discrete model: :func:`forward`, :func:`value_and_grad`, :func:`outputs_many`.

``dm.forward``, ``dm.value_and_grad`` and ``dm.outputs_many`` take any
discrete model - :class:`~dynmem.models.DiscreteRNN`,
:class:`~dynmem.models.EulerRNN`, :class:`~dynmem.models.GRUCell`,
:class:`~dynmem.models.LSTMCell`, :class:`~dynmem.models.DiscreteDiagonalSSM`,
a :class:`~dynmem.models.Stack`, the residual net - and return one result
type each (:class:`~dynmem.recurrences.Trajectory`,
:class:`~dynmem.recurrences.GradientResult`, a ``(y, finite)`` pair).  They
dispatch on capabilities, never on classes:

* ``model.forward(X, **state)`` runs the model (each family on its own
  compiled kernel); its record is returned as a :class:`Trajectory` with the
  family's own record as ``detail`` (an RNN's record already is one);
* ``model.value_and_grad(X, Y, loss=..., **state)`` (the
  :class:`~dynmem.models.Trainable` contract) gives the loss and its gradient,
  returned as a :class:`GradientResult` with the family's record as ``detail``;
* ``model.outputs_many(params, X)`` (the RNNs: all K variants in one compiled
  kernel) or else the :class:`~dynmem.models.Parametrized` and
  :class:`~dynmem.models.DiscreteModel` contracts (one variant at a time).

``**state`` are the model's own initial-state and discretisation keywords,
passed through unchanged: ``h0`` (RNN, GRU, SSM), ``s0`` (LSTM), ``S0``
(Stack), ``dt`` / ``method`` (a continuous :class:`~dynmem.models.DiagonalSSM`
trained through its discretisation), ``weights`` (the residual net).  The
family's own functions (``gated_forward``, ``ssm_value_and_grad``, ...) return
exactly what this door wraps, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_float_array, describe
from ..compiling import announce_compilation
from ..recurrences import GradientResult, Trajectory
from .contract import DiscreteModel, Parametrized

__all__ = ["forward", "value_and_grad", "outputs_many"]

_FAMILIES = "DiscreteRNN, EulerRNN, GRUCell, LSTMCell, DiscreteDiagonalSSM, Stack, ResidualRNN"


def _capability(model, name: str, rule: str):
    method = getattr(model, name, None)
    if not callable(method):
        raise TypeError(f"`model` must be a discrete model with {rule} ({_FAMILIES}; for a CTRNN use "
                        f"CTRNN.discretize(dt), or the continuous doors simulate / adjoint_gradient); got "
                        f"{describe(model)}.")
    return method


@announce_compilation("forward")
def forward(model, X, **state) -> Trajectory:
    """Run a discrete model over a batch of input sequences.

    Parameters
    ----------
    model : discrete model with a ``forward`` method
        DiscreteRNN, EulerRNN, GRUCell, LSTMCell, DiscreteDiagonalSSM or Stack.
    X : array_like, shape (batch, T, d)
    **state
        The model's initial-state keywords (``h0``; ``s0`` for an LSTM; ``S0`` for a Stack).

    Returns
    -------
    Trajectory
        ``y`` (batch, T), ``h`` (the states ``h_0 .. h_T`` of a single recurrence; None for a Stack),
        ``model`` and ``detail`` (the family's own record: :class:`~dynmem.models.GatedTrajectory`
        with an LSTM's cell states, :class:`~dynmem.models.StackTrajectory` with every layer's features;
        None for an RNN, whose record this is).

    Raises
    ------
    TypeError
        If ``model`` has no ``forward`` method (the message names the families that have one).
    FloatingPointError
        If a state becomes non-finite.
    """
    run = _capability(model, "forward", "a `forward` method")
    record = run(X, **state)
    if isinstance(record, Trajectory):
        return record
    return Trajectory(y=record.y, h=getattr(record, "h", None), model=model, _X=None, _H=None, _S=None,
                      _h0_shape=None, detail=record)


@announce_compilation("value_and_grad")
def value_and_grad(model, X, Y, *, loss: str = "mse", **state) -> GradientResult:
    """Loss of a discrete model on ``(X, Y)`` and its gradient with respect to every parameter.

    Parameters
    ----------
    model : Trainable
        Any model with a ``value_and_grad(X, Y, loss=...)`` method (DiscreteRNN, EulerRNN, GRUCell,
        LSTMCell, DiscreteDiagonalSSM or DiagonalSSM, Stack, ResidualRNN).
    X : array_like, shape (batch, T, d)
    Y : array_like, shape (batch, T)
    loss : {"mse", "sse"}
    **state
        Passed through: ``h0``, ``s0``, ``S0``, ``dt`` / ``method`` (DiagonalSSM), ``weights`` (ResidualRNN).

    Returns
    -------
    GradientResult
        ``loss``, ``grad`` (the gradient in the family's own form: a model of the same class for the
        RNNs and gated cells, a dict for an SSM or the residual net, None for a Stack), ``dh0`` (the
        cotangent of the initial state; None where the family has none), ``flat`` (the gradient in
        ``model.flatten()`` order, for every family) and ``detail`` (the family's record).

    Raises
    ------
    TypeError
        If ``model`` has no ``value_and_grad`` method.
    FloatingPointError
        If the forward pass diverges or the gradient is non-finite.
    """
    grad = _capability(model, "value_and_grad", "its own gradient (a `value_and_grad` method)")
    record = grad(X, Y, loss=loss, **state)
    if isinstance(record, GradientResult):
        return record
    dh0 = getattr(record, "dh0", getattr(record, "dS0", None))
    return GradientResult(loss=record.loss, grad=getattr(record, "grad", getattr(record, "grads", None)), dh0=dh0,
                          detail=record)


def outputs_many(model, params, X) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of K variants of ``model`` (stacked parameters) on the same inputs, from the zero state.

    Parameters
    ----------
    model : discrete model
        With ``outputs_many(params, X)`` (the RNNs: one compiled kernel for all K variants), or
        :class:`~dynmem.models.Parametrized` and :class:`~dynmem.models.DiscreteModel` (every other
        family: one variant at a time through ``unflatten`` and ``outputs``).
    params : dict or array_like
        For the compiled RNN path ``{"W": (K, m, m), "U": (K, m, d), "b": (K, m), "c": (K, m)}``;
        for any other model an array (K, n_params) of flat parameter vectors (``model.flatten()`` order)
        or a dict ``name -> (K, *shape)`` over ``model.param_names`` (real arrays; concatenated in that order).
    X : array_like, shape (batch, T, d)

    Returns
    -------
    y : ndarray, shape (K, batch, T)
    finite : ndarray of bool, shape (K,)
        False where a variant diverged; its outputs are ``inf`` from the step of divergence on
        (the compiled path) or throughout (a variant whose forward pass raised).

    Raises
    ------
    TypeError
        If ``model`` has neither capability.
    """
    many = getattr(model, "outputs_many", None)
    if callable(many):
        return many(params, X)
    if not (isinstance(model, Parametrized) and isinstance(model, DiscreteModel)):
        raise TypeError(f"`model` must be a discrete model with stacked outputs (an `outputs_many` method) or a "
                        f"Parametrized DiscreteModel (flatten / unflatten and outputs: {_FAMILIES}); got "
                        f"{describe(model)}.")
    X = as_float_array("X", X, ndim=3)
    if isinstance(params, dict):
        if set(params) != set(model.param_names):
            raise ValueError(f"`params` must be a dict with exactly the keys {list(model.param_names)} (stacked) or "
                             f"an array (K, {model.n_params}); got keys {sorted(params)}.")
        stacked = [as_float_array(f"params[{n!r}]", params[n]) for n in model.param_names]
        K = stacked[0].shape[0]
        theta = np.concatenate([s.reshape(K, -1) for s in stacked], axis=1)
    else:
        theta = as_float_array("params", params, ndim=2)
    if theta.shape[1] != model.n_params:
        raise ValueError(f"`params` must hold {model.n_params} parameters per variant (n_params of this model); "
                         f"got shape {theta.shape}.")
    B, T = X.shape[0], X.shape[1]
    S0 = np.zeros((B, model.state_size))
    y = np.full((theta.shape[0], B, T), np.inf)
    finite = np.zeros(theta.shape[0], dtype=bool)
    for q, th in enumerate(theta):
        try:
            out = model.unflatten(th).outputs(X, S0)
        except FloatingPointError:
            continue
        y[q], finite[q] = out, bool(np.all(np.isfinite(out)))
    return y, finite
