"""Activation functions: one registry for numpy code and numba kernels.

Each activation has a numpy form (vectorised, any shape) and a scalar numba
form selected inside kernels by an integer code, so that one compiled kernel
serves every activation (numba compiles once per signature, not once per
activation).

Derivatives at kinks follow one convention, stated here once:
``relu'(0) = 0`` and ``hardtanh'(+-1) = 0`` (the derivative of the flat side).
Gradient checks against finite differences must stay away from kinks.

[WLL] classes (docs/theory.md section 1): ``identity`` and ``hardtanh`` are in A0
(sigma(z) = z near 0); ``tanh`` is in A1 (sigma' = 1 - sigma^2).  ``relu`` is
in neither (it is not odd), but it is a common baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from scipy.special import erf as _sp_erf

from ._validation import check_choice, describe

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

__all__ = ["Activation", "get_activation", "available_activations", "kernel_activations", "get_kernel_activation",
           "sup_derivative", "TANH", "HARDTANH", "RELU", "IDENTITY", "ERF"]

# Integer codes used inside numba kernels.  ERF is known to the kernel limits only
# (dynmem.kernel.recurrent_ntk's numba kernel), not to the model kernels below.
TANH, HARDTANH, RELU, IDENTITY = 0, 1, 2, 3
ERF = 100


@numba.njit(cache=True, inline="always")
def act_scalar(code, z):
    """sigma(z) for the activation with integer ``code`` (numba scalar)."""
    if code == 0:
        return math.tanh(z)
    elif code == 1:
        return min(1.0, max(-1.0, z))
    elif code == 2:
        return z if z > 0.0 else 0.0
    return z


@numba.njit(cache=True, inline="always")
def dact_scalar(code, z):
    """sigma'(z) for the activation with integer ``code`` (numba scalar)."""
    if code == 0:
        th = math.tanh(z)
        return 1.0 - th * th
    elif code == 1:
        return 1.0 if -1.0 < z < 1.0 else 0.0
    elif code == 2:
        return 1.0 if z > 0.0 else 0.0
    return 1.0


@numba.njit(cache=True, inline="always")
def act_and_deriv_scalar(code, z):
    """``(sigma(z), sigma'(z))`` in one evaluation (tanh is computed once)."""
    if code == 0:
        th = math.tanh(z)
        return th, 1.0 - th * th
    elif code == 1:
        if z <= -1.0:
            return -1.0, 0.0
        if z >= 1.0:
            return 1.0, 0.0
        return z, 1.0
    elif code == 2:
        if z > 0.0:
            return z, 1.0
        return 0.0, 0.0
    return z, 1.0


# ----------------------------------------------------------------------------
# A vectorisable tanh for numba kernels.
#
# ``math.tanh`` inside a numba loop is a scalar libm call (~10-20 ns per
# element) that LLVM cannot vectorise; numpy's SIMD ``np.tanh`` is ~2 ns per
# element but costs a Python call per block.  ``tanh_block`` is written in
# plain arithmetic that LLVM vectorises (~2 ns per element inside a kernel):
#
#     tanh|x| = -expm1(y) / (2 + expm1(y)),   y = -2|x|   (clamped at -40:
#                                               e^{-40} < eps / 2, tanh = 1)
#     expm1(y) = 2^k expm1(r) + (2^k - 1),    y = k ln 2 + r, |r| <= ln(2) / 2
#
# with Cody-Waite reduction (ln 2 split in two), expm1(r) by its Taylor series
# to r^13 (truncation < 1e-17 relative), and 2^k (k in [-58, 0]) read from a
# table of exact powers (one loop, a vector gather: ~1.6 ns per element at
# m = 64 against 2.2 ns when 2^k was assembled from exponent bits in a second
# loop, the same values bit for bit).  expm1 keeps small arguments accurate (no 1 - e^y cancellation).
# Measured accuracy: <= 4 ulp against a long-double reference over
# |x| in [1e-300, 1e3] (tested in tests/test_activations.py).

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_EXPM1_C = tuple(1.0 / math.factorial(n) for n in range(2, 14))  # 1/2!, ..., 1/13!


_POW2_NEG = np.array([2.0 ** -i for i in range(64)])  # 2^-i, exact; 2^k for the k <= 0 of tanh_block
_POW2_NEG.flags.writeable = False


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def tanh_block(z, a, s):
    """``a = tanh(z)`` and ``s = 1 - a^2`` for 1-D float arrays, vectorised.

    NaN propagates; ``+-inf`` gives ``+-1``.  ``a`` may be ``z`` (in place).
    (``error_model="numpy"`` drops the division-by-zero checks that would
    stop LLVM from vectorising; the divisor is always >= 1.  The only fast-math
    flag is ``contract``: multiply-adds fused into FMAs, which rounds less.)
    """
    c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = _EXPM1_C
    for i in range(z.size):
        x = z[i]
        y = max(-2.0 * abs(x), -40.0)
        ki = math.floor(y * _INV_LN2 + 0.5)  # in [-58, 0]
        p2 = _POW2_NEG[-np.int64(ki)]
        r = (y - ki * _LN2_HI) - ki * _LN2_LO
        q = c13 * r + c12
        q = q * r + c11
        q = q * r + c10
        q = q * r + c9
        q = q * r + c8
        q = q * r + c7
        q = q * r + c6
        q = q * r + c5
        q = q * r + c4
        q = q * r + c3
        q = q * r + c2
        em1 = p2 * (r + r * r * q) + (p2 - 1.0)
        t = -em1 / (2.0 + em1)
        t = math.copysign(t, x)
        t = x if x != x else t
        a[i] = t
        s[i] = 1.0 - t * t


def _np_tanh(z):
    return np.tanh(z)


def _np_dtanh(z):
    th = np.tanh(z)
    return 1.0 - th * th


def _np_hardtanh(z):
    return np.clip(z, -1.0, 1.0)


def _np_dhardtanh(z):
    z = np.asarray(z, dtype=float)
    return ((z > -1.0) & (z < 1.0)).astype(float)


def _np_relu(z):
    return np.maximum(z, 0.0)


def _np_drelu(z):
    return (np.asarray(z, dtype=float) > 0.0).astype(float)


def _np_identity(z):
    return np.array(z, dtype=float, copy=True)


def _np_didentity(z):
    return np.ones_like(np.asarray(z, dtype=float))


def _np_erf(z):
    return _sp_erf(z)


def _np_derf(z):
    return _TWO_OVER_SQRT_PI * np.exp(-np.square(z))


@dataclass(frozen=True)
class Activation:
    """An activation function and its derivative.

    Attributes
    ----------
    name : str
        Registry name.
    code : int
        Integer used to select the activation inside numba kernels.
    fn, deriv : callable
        Vectorised numpy sigma and sigma'.
    kinks : tuple of float
        Points where sigma' is discontinuous (empty for smooth activations).
    wll_class : str
        "A0", "A1" or "" ([WLL] Section 3 activation classes).
    sup_deriv : float or None
        :math:`\\sup_z |\\sigma'(z)|`, used by contraction checks
        (:class:`dynmem.kernel.LSSNetwork`).  ``None`` means not known: the
        analyses that need it refuse the activation (:func:`sup_derivative`).
    odd : bool
        ``sigma(-z) = -sigma(z)`` exactly, in the numba kernels too (then a
        CTRNN with ``b = 0`` has an odd field, ``f(-h, -x) = -f(h, x)``).
    gaussian_closed_form : bool
        Whether :math:`E[\\sigma(u)\\sigma(v)]` and :math:`E[\\sigma'(u)\\sigma'(v)]`
        for a centred bivariate Gaussian ``(u, v)`` have a closed form in
        :mod:`dynmem.kernel.recurrent_ntk` (otherwise it uses quadrature).
    """

    name: str
    code: int
    fn: Callable[[np.ndarray], np.ndarray]
    deriv: Callable[[np.ndarray], np.ndarray]
    kinks: tuple[float, ...]
    wll_class: str
    sup_deriv: float | None = None
    gaussian_closed_form: bool = False
    odd: bool = False

    def __call__(self, z):
        return self.fn(z)

    @property
    def smooth(self) -> bool:
        """True when sigma is continuously differentiable everywhere."""
        return not self.kinks


# Every fact about an activation is recorded here, once:
# name, numba code, sigma, sigma', kinks, [WLL] class, sup|sigma'|, Gaussian-kernel closed form, oddness.
_REGISTRY: dict[str, Activation] = {
    "tanh": Activation("tanh", TANH, _np_tanh, _np_dtanh, (), "A1", sup_deriv=1.0, odd=True),
    "hardtanh": Activation("hardtanh", HARDTANH, _np_hardtanh, _np_dhardtanh, (-1.0, 1.0), "A0", sup_deriv=1.0,
                           odd=True),
    # relu: arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009)
    "relu": Activation("relu", RELU, _np_relu, _np_drelu, (0.0,), "", sup_deriv=1.0, gaussian_closed_form=True),
    "identity": Activation("identity", IDENTITY, _np_identity, _np_didentity, (), "A0", sup_deriv=1.0,
                           gaussian_closed_form=True, odd=True),
}
# Activations of the kernel limits only (no model kernel evaluates them).
# erf: sup|erf'| = erf'(0) = 2/sqrt(pi); arcsine kernel of Williams (1998).
_KERNEL_ONLY: dict[str, Activation] = {
    "erf": Activation("erf", ERF, _np_erf, _np_derf, (), "", sup_deriv=_TWO_OVER_SQRT_PI, gaussian_closed_form=True,
                      odd=True),
}
_KERNEL_REGISTRY: dict[str, Activation] = {**_REGISTRY, **_KERNEL_ONLY}


def _lookup(activation, registry: dict, example: str) -> Activation:
    if isinstance(activation, Activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"`activation` must be a name such as {example!r}; got {describe(activation)}.")
    check_choice("activation", activation, registry)
    return registry[activation]


def available_activations() -> tuple[str, ...]:
    """Names accepted wherever an ``activation=`` argument is taken."""
    return tuple(_REGISTRY)


def get_activation(activation) -> Activation:
    """Look up an activation by name (or pass an :class:`Activation` through).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    return _lookup(activation, _REGISTRY, "tanh")


def kernel_activations() -> tuple[str, ...]:
    """Names accepted by the kernel limits (:mod:`dynmem.kernel.recurrent_ntk`): the registry plus ``"erf"``."""
    return tuple(_KERNEL_REGISTRY)


def get_kernel_activation(activation) -> Activation:
    """Like :func:`get_activation`, over :func:`kernel_activations` (which adds ``"erf"``)."""
    return _lookup(activation, _KERNEL_REGISTRY, "relu")


def sup_derivative(activation) -> float:
    """:math:`\\sup_z |\\sigma'(z)|` of an activation (a name or an :class:`Activation`).

    Raises
    ------
    ValueError
        For an unknown name, or an :class:`Activation` whose ``sup_deriv`` is
        ``None``: a contraction check cannot assume a bound it was not given.
    """
    act = get_kernel_activation(activation)
    if act.sup_deriv is None:
        raise ValueError(f"`activation` {act.name!r} has no recorded derivative bound sup|sigma'| "
                         f"(Activation.sup_deriv is None); give one to use it where a contraction is checked.")
    return float(act.sup_deriv)
