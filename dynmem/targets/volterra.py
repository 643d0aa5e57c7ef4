"""Second-order Volterra targets with a separable kernel (:class:`Volterra2`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, describe
from .numerics import Decay, NON_DECAYING
from .base import LinearTarget, Target

__all__ = ["Volterra2"]

@dataclass(frozen=True, eq=False)
class Volterra2(Target):
    """A second-order Volterra functional with a separable symmetric second kernel.

    .. math::

        H_t(x) = \\int_0^{\\tau} \\rho_1(s)^\\top x(t-s)\\, ds
        + \\int_0^{\\tau}\\!\\!\\int_0^{\\tau} \\rho_2(s_1, s_2)\\,
          x(t-s_1)^\\top Q\\, x(t-s_2)\\, ds_1 ds_2,
        \\qquad \\rho_2(s_1, s_2) = g(s_1)\\, g(s_2),

    with ``tau = t - t_start``.  The double integral factorises:
    ``v_t = int_0^tau g(s) x(t - s) ds`` (``g`` applied to every channel) and
    ``H_t = rho1-part + v_t^T Q v_t``.

    Parameters
    ----------
    rho1 : LinearTarget
        First-order part, dimension d.
    g : LinearTarget
        A scalar kernel (dimension 1), e.g. ``ExponentialKernel(rate)``.
    weight : float or array_like, shape (d, d), optional
        ``Q`` (identity by default; only its symmetric part matters).

    Notes
    -----
    Step derivative.  For a symmetric ``rho2``,
    ``d/dt int_0^t int_0^t rho2 = int_0^t rho2(t, s) ds + int_0^t rho2(s, t) ds
    = 2 int_0^t rho2(t, s) ds``; with ``u^x = x`` on ``[0, t]`` and
    ``G(t) = int_0^t g``:

    .. math::

        \\frac{d}{dt} H_t(u^x) = \\rho_1(t)^\\top x + 2\\, g(t)\\, G(t)\\, x^\\top Q x .

    Memory.  The quadratic term grows like ``|x|^2``, so over all amplitudes
    ``M(t) = inf`` wherever ``g(t) G(t) Q_sym != 0`` (both normalisations) and
    ``|rho1(t)|_1`` elsewhere; accordingly ``decay`` is
    ``("non-decaying", None)`` unless the quadratic term vanishes.  Over
    ``0 < |x| <= r`` and ``d = 1`` (``b = 2 g G Q``):
    ``M = |rho1| + |b| r`` ("x") and ``(|rho1| + |b| r) r / (r + 1)``
    ("x+1"), attained at ``x = r sign(rho1 b)``; with a bounded radius the
    memory decays like the slower of ``rho1`` and ``g``.  For ``d > 1`` a
    bounded radius is a box-constrained indefinite quadratic problem and
    raises :class:`NotImplementedError`.
    """

    rho1: LinearTarget
    g: LinearTarget
    weight: np.ndarray = None

    def __post_init__(self):
        if not isinstance(self.rho1, LinearTarget):
            raise TypeError(f"`rho1` must be a LinearTarget; got {describe(self.rho1)}.")
        if not isinstance(self.g, LinearTarget):
            raise TypeError(f"`g` must be a LinearTarget with a scalar kernel (dim 1); got {describe(self.g)}.")
        if self.g.dim != 1:
            raise ValueError(f"`g` must have a scalar kernel (dim 1), applied to every channel; got dim {self.g.dim}.")
        d = self.rho1.dim
        if self.weight is None:
            Q = np.eye(d)
        else:
            Q = as_float_array("weight", self.weight, ndim=(0, 2), copy=True)
            if Q.ndim == 0:
                if d != 1:
                    raise ValueError(f"`weight` must have shape ({d}, {d}) for input dimension {d}; got a scalar.")
                Q = Q.reshape(1, 1)
            if Q.shape != (d, d):
                raise ValueError(f"`weight` must have shape ({d}, {d}) to match `rho1`; got shape {Q.shape}.")
        Q.flags.writeable = False
        object.__setattr__(self, "weight", Q)

    @property
    def dim(self) -> int:
        return self.rho1.dim

    @property
    def _Qsym(self) -> np.ndarray:
        return 0.5 * (self.weight + self.weight.T)

    def second_kernel(self, s1, s2) -> np.ndarray:
        """``rho2(s1, s2) Q = g(s1) g(s2) Q``.

        Parameters
        ----------
        s1, s2 : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n, d, d)
        """
        s1, s2 = self._check_lags(s1), self._check_lags(s2)
        if s1.shape != s2.shape:
            raise ValueError(f"`s1` and `s2` must have the same shape; got {s1.shape} and {s2.shape}.")
        gg = self.g._rho(s1)[:, 0] * self.g._rho(s2)[:, 0]
        return gg[:, None, None] * self.weight[None, :, :]

    @property
    def _quadratic_active(self) -> bool:
        return bool(np.any(self._Qsym != 0))

    @property
    def decay(self) -> Decay:
        if self._quadratic_active:
            return NON_DECAYING
        return self.rho1.decay

    def _quad(self, v):
        return np.einsum("...i,ij,...j->...", v, self.weight, v)

    def _output(self, x, t):
        return self.rho1._output(x, t) + self._quad(self.g._path_products(x, t))

    def _output_sequence(self, X, dt):
        return self.rho1._output_sequence(X, dt) + self._quad(self.g._sequence_products(X, dt))

    def _gG(self, t):
        return self.g._rho(t)[:, 0] * self.g._moments(np.zeros_like(t), t)[0][:, 0]

    def _step_derivative(self, x, t):
        lin = x @ self.rho1._rho(t).T
        xQx = np.einsum("ki,ij,kj->k", x, self.weight, x)
        return lin + 2.0 * xQx[:, None] * self._gG(t)[None, :]

    def _exact_memory(self, t, normalize, radius):
        a = np.abs(self.rho1._rho(t)).sum(axis=1)
        b = 2.0 * self._gG(t)
        if not self._quadratic_active:
            b = np.zeros_like(b)
        if radius is None:
            return np.where(b != 0, np.inf, a)
        if self.dim != 1:
            if np.all(b == 0):
                return a * (radius / (radius + 1.0)) if normalize == "x+1" else a
            raise NotImplementedError(
                "Volterra2 with d > 1 has no closed-form memory over a bounded radius "
                "(a box-constrained indefinite quadratic problem); use dynmem.memory.memory_function."
            )
        B = np.abs(b * self._Qsym[0, 0])
        M = a + B * radius
        return M * (radius / (radius + 1.0)) if normalize == "x+1" else M
