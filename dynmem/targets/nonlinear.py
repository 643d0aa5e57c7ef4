"""Nonlinear targets: a pointwise nonlinearity of a linear target, and a teacher CTRNN."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._validation import check_choice, check_nonnegative, check_positive, describe
from ..inputs import from_sequence
from ..models import CTRNNForm
from ..recurrences import forward
from ..simulate import METHODS, simulate
from .numerics import Decay, UNKNOWN_DECAY
from .base import LinearTarget, Target

__all__ = ["PointwiseNonlinear", "TeacherRNN"]

# --------------------------------------------------------------------------
# nonlinear targets


def _tanh_prime(z):
    th = np.tanh(z)
    return 1.0 - th * th


@dataclass(frozen=True, eq=False)
class PointwiseNonlinear(Target):
    """``H_t(x) = f(L_t(x))``: a pointwise nonlinearity after a linear target.

    Parameters
    ----------
    linear : LinearTarget
        ``L``, with kernel ``rho``.
    f, fprime : callable
        Vectorised ``f`` and its derivative ``f'``.
    fprime_sup : float, optional
        ``sup_z |f'(z)|`` (with ``f'`` continuous).  Needed for
        :meth:`exact_memory`.

    Notes
    -----
    With ``R(t) = int_0^t rho``, ``L_t(u^x) = R(t)^T x`` and exactly

    .. math::

        \\frac{d}{dt} H_t(u^x) = f'(R(t)^\\top x)\\, \\rho(t)^\\top x .

    Memory (``normalize="x"``, all amplitudes): writing ``x = r e`` with
    ``|e|_inf = 1``, ``r > 0``, the argument ``r R^T e`` sweeps a whole line
    through 0 as ``r`` and ``+-e`` vary, so when ``R(t) != 0``

    .. math::

        M(t) = \\|\\rho(t)\\|_1 \\sup_z |f'(z)|

    (``e`` ranges over the dense set ``R^T e != 0`` of the cube), and
    ``M(t) = |rho(t)|_1 |f'(0)|`` when ``R(t) = 0`` (e.g. ``t = 0``).  For
    ``tanh`` the sup is approached as ``x -> 0``.  The ``|x| + 1`` and
    bounded-radius variants depend on the shape of ``f'`` and raise
    :class:`NotImplementedError`.  Decay: that of ``linear`` when
    ``fprime_sup`` is given, else unknown.  ``output_sequence`` is ``f``
    of the linear discrete sums.
    """

    linear: LinearTarget
    f: Callable
    fprime: Callable
    fprime_sup: float | None = None

    def __post_init__(self):
        if not isinstance(self.linear, LinearTarget):
            raise TypeError(f"`linear` must be a LinearTarget; got {describe(self.linear)}.")
        for name in ("f", "fprime"):
            fn = getattr(self, name)
            if not callable(fn):
                raise TypeError(f"`{name}` must be callable (vectorised over arrays); got {describe(fn)}.")
            probe = np.asarray(fn(np.zeros(3)), dtype=float)
            if probe.shape != (3,):
                raise ValueError(f"`{name}` must be vectorised: for z of shape (3,) it returned shape {probe.shape}.")
        if self.fprime_sup is not None:
            object.__setattr__(self, "fprime_sup", check_nonnegative("fprime_sup", self.fprime_sup))

    @classmethod
    def tanh(cls, linear: LinearTarget) -> "PointwiseNonlinear":
        """``H = tanh(L)`` with ``f' = 1 - tanh^2`` and ``sup |f'| = 1``."""
        return cls(linear, np.tanh, _tanh_prime, 1.0)

    @property
    def dim(self) -> int:
        return self.linear.dim

    @property
    def decay(self) -> Decay:
        return self.linear.decay if self.fprime_sup is not None else UNKNOWN_DECAY

    def _output(self, x, t):
        return np.asarray(self.f(self.linear._output(x, t)), dtype=float)

    def _output_sequence(self, X, dt):
        return np.asarray(self.f(self.linear._output_sequence(X, dt)), dtype=float)

    def _step_derivative(self, x, t):
        R = self.linear._moments(np.zeros_like(t), t)[0]  # (n, d)
        return np.asarray(self.fprime(x @ R.T), dtype=float) * (x @ self.linear._rho(t).T)

    def _exact_memory(self, t, normalize, radius):
        if normalize != "x" or radius is not None:
            raise NotImplementedError(
                "PointwiseNonlinear has a closed-form memory only for normalize='x' over all amplitudes "
                "(radius=None); use dynmem.memory.memory_function, which uses the exact step derivative."
            )
        if self.fprime_sup is None:
            raise NotImplementedError(
                "PointwiseNonlinear needs `fprime_sup` (sup |f'|) for its closed-form memory; "
                "dynmem.memory.memory_function uses the exact step derivative instead."
            )
        R = self.linear._moments(np.zeros_like(t), t)[0]
        f0 = abs(float(np.asarray(self.fprime(np.zeros(1)), dtype=float)[0]))
        factor = np.where(np.abs(R).sum(axis=1) > 0, self.fprime_sup, f0)
        return np.abs(self.linear._rho(t)).sum(axis=1) * factor


@dataclass(frozen=True, eq=False)
class TeacherRNN(Target):
    """A target realised by a continuous-time RNN (a "teacher").

    Parameters
    ----------
    model : CTRNN or LinearRNN
        Started from ``h = 0`` at the path's ``t_start`` (use ``b = 0`` so that
        ``h = 0`` is the rest state and ``H_t(0) = 0``).
    sequence_mode : {"euler", "simulate"}
        How :meth:`output_sequence` runs: ``"euler"`` (default) the model's
        forward-Euler recurrence ``model.discretize(dt)`` (numba,
        ``y_k = c^T h_{k+1}``, ``h_{k+1} = h_k + dt sigma(W h_k + U x_k + b)``,
        first-order accurate, what [WLL]'s code runs); ``"simulate"`` the exact
        output at ``(k + 1) dt`` on the piecewise-constant path
        ``from_sequence(X[b], dt)`` (one :func:`~dynmem.simulate.simulate` per
        sequence).  Both approximate ``H_{(k+1) dt}`` like the linear targets'
        discrete convolution.
    method : str
        scipy integrator for :func:`~dynmem.simulate.simulate`.
    rtol, atol : float
        Its tolerances.

    Notes
    -----
    ``step_derivative`` and ``exact_memory`` raise
    :class:`NotImplementedError`: :func:`dynmem.memory.memory_function`
    handles teacher RNNs through their ``.model`` (the exact flow of
    docs/theory.md section 2).  Decay: unknown (for tanh the memory need not decay
    even for Hurwitz ``W``, docs/theory.md section 2).
    """

    model: CTRNN
    sequence_mode: str = "euler"
    method: str = "DOP853"
    rtol: float = 1e-10
    atol: float = 1e-12

    def __post_init__(self):
        if not isinstance(self.model, CTRNNForm):
            raise TypeError(
                f"`model` must be a CTRNN or a LinearRNN (a continuous-time teacher); got {describe(self.model)}."
            )
        check_choice("sequence_mode", self.sequence_mode, ("euler", "simulate"))
        check_choice("method", self.method, METHODS)
        object.__setattr__(self, "rtol", check_positive("rtol", self.rtol))
        object.__setattr__(self, "atol", check_positive("atol", self.atol))

    @property
    def dim(self) -> int:
        return self.model.inputs

    def _simulate(self, x, t):
        return simulate(self.model, x, t, method=self.method, rtol=self.rtol, atol=self.atol).y

    def _output(self, x, t):
        return self._simulate(x, t)

    def _output_sequence(self, X, dt):
        B, T, _ = X.shape
        if self.sequence_mode == "euler":
            return forward(self.model.discretize(dt), X).y
        times = dt * np.arange(1, T + 1)
        return np.stack([self._simulate(from_sequence(X[b], dt), times) for b in range(B)])

    _delegate = (
        "TeacherRNN has no closed-form {what}; dynmem.memory.memory_function handles teacher RNNs "
        "through their `.model` (exact nonlinear flow)."
    )

    def _step_derivative(self, x, t):
        raise NotImplementedError(self._delegate.format(what="step derivative"))

    def _exact_memory(self, t, normalize, radius):
        raise NotImplementedError(self._delegate.format(what="memory function"))
