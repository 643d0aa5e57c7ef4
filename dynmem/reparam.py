r"""Stable reparameterisations of the recurrent weight (docs/theory.md section 5).

A reparameterisation writes the recurrent matrix as ``W = g(w)`` with ``g``
mapping the trainable parameters into Hurwitz matrices, so that no gradient
step can leave the stable set ([WLL] eq. (16); [SSM]).  In scalar / diagonal
form an eigenvalue is ``lambda = f(w) < 0``:

===================  =======================  =================================
name                 ``f(w)``                 stability bound ``g(beta)``
===================  =======================  =================================
``"direct"``         ``w``                    ``inf`` (not stable)
``"exp"``            ``-e^w``                 ``e^beta - 1``
``"softplus"``       ``-log(1 + e^w)``        ``e^beta - 1``
``"best"``           ``-1 / (a w^2 + b)``     ``beta sqrt(a/b) + a beta^2 / b``
``"best_discrete"``  ``1 - 1 / (a w^2 + b)``  as ``"best"`` (on ``f - 1``)
===================  =======================  =================================

Stability functional ([WLL] Sec. 3.3, [SSM] Thm 3.3).  For ``f < 0``,

.. math::

    S(w, \tilde w) = |f(w)| \int_0^\infty \big| e^{f(\tilde w) t} - e^{f(w) t} \big| \, dt
                   = \Big| \frac{f(w)}{f(\tilde w)} - 1 \Big| ,

and ``g(beta)`` bounds ``sup_{|w~ - w| <= beta} S(w, w~)`` uniformly in ``w``.
For ``"exp"`` the bound is attained at every ``w`` (``f(w) / f(w~) = e^{w - w~}``);
for ``"softplus"`` it is approached as ``w -> -inf``; for ``"best"``
``S = a |w~^2 - w^2| / (a w^2 + b) <= (2 a beta |w| + a beta^2) / (a w^2 + b)``
and the two terms peak at ``|w| = sqrt(b / a)`` and ``w = 0`` respectively,
so the bound is a (not attained) upper bound.

Gradient scale ([SSM] Thm 3.5): ``|dL/dw| <= C |f'(w)| / f(w)^2``.  "best" is
the unique ``f`` (up to the constant ``b``) with ``|f'| / f^2 = L |w|``:
``d/dw (-1/f) = L w`` gives ``-1/f = L w^2 / 2 + b``, i.e. ``a = L / 2``
(derived symbolically in :func:`dynmem.symbolic.best_reparam_derivation`).
In discrete time the factor is ``|f'| / (1 - f)^2`` and the analogue is
``f = 1 - 1 / (a w^2 + b)``.  dynmem treats a discrete-time parameterisation
through its *rate* ``r(w) = f(w) - 1`` (the first-order continuous image of
``h_{k+1} = f h_k``), so that the gradient scale is ``|r'| / r^2`` and the
stability functional and bound are those of ``r`` (identical to ``"best"``).
This is dynmem's stated choice; [SSM] states only the gradient-scale factor.

Matrix forms (docs/theory.md section 5):

* :func:`diagonal_W` - ``W = diag(f(w))``.
* :func:`orthogonal_W` - ``W = P diag(f(w)) P^T`` with ``P`` orthogonal.
  docs/theory.md writes ``-P diag(f(w)) P^T`` with a *positive* ``f``; dynmem's
  ``f`` is already negative, so the sign is carried by ``f`` and no minus
  sign appears.  The two conventions give the same matrices.
* :func:`expm_W` - ``W = -expm(M)``.  Since ``eig(-e^M) = -e^{mu}`` for the
  eigenvalues ``mu`` of ``M`` (spectral mapping, also for defective ``M``),
  ``Re(-e^{mu}) = -e^{Re mu} cos(Im mu)``, so ``W`` is Hurwitz iff
  ``cos(Im mu) > 0`` for every ``mu``, i.e. ``|Im mu| < pi/2`` modulo
  ``2 pi``.  Real eigenvalues always qualify.

Chain rules (given ``G = dL/dW`` return the gradient in the parameters):
:func:`grad_w_diagonal`, :func:`grad_w_orthogonal`, :func:`grad_M_expm`, and the
dispatcher :func:`grad_w_from_grad_W`.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190, eq. (16).
.. [SSM] S. Wang, Q. Li, *StableSSM: Alleviating the Curse of Memory in
   State-space Models through Stable Reparameterization*, ICML 2024,
   arXiv:2311.14495.
.. [AMH] A. H. Al-Mohy, N. J. Higham, *Computing the Frechet derivative of the
   matrix exponential, with an application to condition number estimation*,
   SIAM J. Matrix Anal. Appl. 30(4), 1639-1657, 2009.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.optimize
import scipy.special

from ._validation import as_float_array, as_square_matrix, check_choice, check_finite, check_nonnegative, check_positive, describe
from .errors import warn_overflow

__all__ = [
    "REPARAMS",
    "Reparam",
    "get_reparam",
    "stability_functional",
    "StabilitySup",
    "sup_stability_functional",
    "diagonal_W",
    "orthogonal_W",
    "expm_W",
    "expm_hurwitz_margin",
    "grad_w_diagonal",
    "grad_w_orthogonal",
    "grad_M_expm",
    "grad_w_from_grad_W",
]

REPARAMS = ("direct", "exp", "softplus", "best", "best_discrete")

# Orthogonality check for P: max |P^T P - I| must stay below this (a float64
# QR factor is orthogonal to ~1e-15; 1e-10 leaves room for user round-offs).
_ORTHO_ATOL = 1e-10

# Sup of the stability functional: grid points on [w - beta, w + beta] before
# the bounded local refinement.
_SUP_GRID = 401


def _out(x: np.ndarray):
    """Return a Python float for a 0-d result, the array otherwise."""
    return float(x) if np.ndim(x) == 0 else x


def _policy(what: str, compute, exempt=None):
    """Evaluate ``compute()`` under dynmem's failure policy (:mod:`dynmem.errors`).

    An entry beyond float64 comes back as ``+-inf`` with a
    :class:`~dynmem.errors.DynmemOverflowWarning` (``exempt`` marks the
    documented infinities, which are not warned about); a NaN from finite
    input raises :class:`FloatingPointError`.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out = np.asarray(compute(), dtype=float)
    if np.any(np.isnan(out)):
        raise FloatingPointError(f"{what} is not defined in float64 here (NaN from finite input).")
    inf = np.isinf(out) if exempt is None else np.isinf(out) & ~np.asarray(exempt, dtype=bool)
    if np.any(inf):
        warn_overflow(what, int(np.sum(inf)), out.size, stacklevel=4)
    return _out(out)


@dataclass(frozen=True, eq=False)
class Reparam:
    r"""A scalar stable reparameterisation ``lambda = f(w)``.

    Build one with :func:`get_reparam`.

    Attributes
    ----------
    name : str
        One of :data:`REPARAMS`.
    params : dict
        The parameters (``a``, ``b`` for ``"best"`` and ``"best_discrete"``).
    discrete : bool
        ``True`` for a discrete-time eigenvalue (``|f| < 1`` is stable);
        quantities then use the rate ``r = f - 1`` (module notes).
    """

    name: str
    params: dict
    discrete: bool
    _f: Callable = field(repr=False)
    _fprime: Callable = field(repr=False)
    _bound: Callable = field(repr=False)
    _inverse: Callable | None = field(repr=False)
    _inverse_range: str = field(repr=False, default="")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Reparam({self.name!r}{', ' + args if args else ''})"

    def f(self, w):
        """The eigenvalue ``f(w)``; ``w`` is a float or an array (elementwise).

        A value beyond float64 (``"exp"`` at ``w > 709``) is ``-inf`` with a
        :class:`~dynmem.errors.DynmemOverflowWarning`; NaN is never returned.
        """
        w = as_float_array("w", w)
        return _policy(f"{self.name} f(w)", lambda: self._f(w))

    def fprime(self, w):
        """The derivative ``f'(w)`` (analytic); overflow as in :meth:`f`."""
        w = as_float_array("w", w)
        return _policy(f"{self.name} f'(w)", lambda: self._fprime(w))

    def rate(self, w):
        """The continuous-time rate: ``f(w)`` (continuous) or ``f(w) - 1`` (discrete)."""
        w = as_float_array("w", w)
        return _policy(f"{self.name} rate(w)", lambda: self._f(w) - 1.0 if self.discrete else self._f(w))

    def gradient_scale(self, w):
        r"""``|f'(w)| / f(w)^2`` (continuous) or ``|f'(w)| / (1 - f(w))^2`` (discrete).

        .. math:: \gamma(w) = \frac{|r'(w)|}{r(w)^2},\qquad r = f \text{ or } f - 1,

        the factor in [SSM]'s gradient bound ``|dL/dw| <= C gamma(w)``.
        ``inf`` where ``r(w) = 0`` (``"direct"`` at ``w = 0``).
        """
        w = as_float_array("w", w)
        with np.errstate(over="ignore", invalid="ignore"):
            r = self._f(w) - 1.0 if self.discrete else self._f(w)
            num = np.abs(self._fprime(w))

        def compute():
            # |f'| / r^2 as exp(log|f'| - 2 log|r|): no inf/inf when both overflow.
            rr = np.where((r == 0) | ~np.isfinite(r), 1.0, np.abs(r))
            nn = np.where((num == 0) | ~np.isfinite(num), 1.0, num)
            val = np.exp(np.log(nn) - 2.0 * np.log(rr))
            r2 = rr * rr
            plain = np.isfinite(num) & np.isfinite(r2) & (r2 > np.finfo(float).tiny)
            val = np.where(plain, nn / np.where(plain, r2, 1.0), val)  # the direct quotient where it is safe
            val = np.where(num == 0, 0.0, val)
            val = np.where(np.isinf(num) & np.isfinite(r), np.inf, val)
            val = np.where(np.isinf(r) & np.isfinite(num), 0.0, val)
            both = np.isinf(r) & np.isinf(num)
            if np.any(both):
                raise FloatingPointError(f"{self.name} gradient_scale(w): f(w) and f'(w) both overflow float64 "
                                         f"at w = {describe(w)}.")
            return np.where(r == 0, np.inf, val)

        # Only "direct" (f(w) = w) has a true pole; elsewhere r = 0 is an underflow and inf an overflow.
        return _policy(f"{self.name} gradient_scale(w)", compute, exempt=(r == 0) & (self.name == "direct"))

    def stability_bound(self, beta):
        r"""``g(beta)``, the bound on ``sup_{|w~ - w| <= beta} S(w, w~)`` (uniform in ``w``).

        ``e^beta - 1`` for ``"exp"`` and ``"softplus"``,
        ``beta sqrt(a/b) + a beta^2 / b`` for ``"best"`` and ``"best_discrete"``,
        ``inf`` for ``"direct"``.

        Parameters
        ----------
        beta : float or array_like
            Perturbation radius, ``beta >= 0``.
        """
        b = as_float_array("beta", beta)
        if np.any(b < 0):
            raise ValueError(f"`beta` must be non-negative; got {describe(beta)}.")
        documented = np.full(b.shape, self.name == "direct")
        return _policy(f"{self.name} stability_bound(beta)", lambda: self._bound(b), exempt=documented)

    def inverse(self, lam):
        """The parameter ``w`` with ``f(w) = lam`` (the branch ``w >= 0`` for ``"best"``).

        Raises
        ------
        ValueError
            If ``lam`` lies outside the range of ``f`` (stated in the message).
        """
        lam = as_float_array("lam", lam)
        with np.errstate(all="ignore"):
            w = self._inverse(lam)
        if not np.all(np.isfinite(w)):
            bad = np.flatnonzero(~np.isfinite(np.atleast_1d(w)))[0]
            got = np.atleast_1d(lam)[bad]
            raise ValueError(f"`lam` must lie in {self._inverse_range} (the range of f for {self.name!r}); got {got}.")
        return _out(w)


# -- the registry -------------------------------------------------------------


def _softplus(w):
    return np.logaddexp(0.0, w)


def _softplus_inverse(lam):
    # w = log(e^{-lam} - 1) = -lam + log1p(-e^{lam}), stable for every lam < 0.
    return np.where(lam < 0, -lam + np.log1p(-np.exp(np.minimum(lam, 0.0))), np.nan)


def _best_bound(a, b):
    return lambda beta: beta * math.sqrt(a / b) + a * beta**2 / b


def get_reparam(name: str, **params) -> Reparam:
    r"""A reparameterisation by name.

    Parameters
    ----------
    name : {"direct", "exp", "softplus", "best", "best_discrete"}
    **params
        ``a`` and ``b`` (both ``> 0``; defaults ``a = 1``, ``b = 0.5`` as in
        [SSM]'s code) for ``"best"`` and ``"best_discrete"``; none otherwise.

    Returns
    -------
    Reparam

    Examples
    --------
    >>> r = get_reparam("best", a=2.0, b=1.0)
    >>> r.f(0.0), r.gradient_scale(1.5)   # gradient scale = 2 a |w|
    (-1.0, 6.0)
    """
    check_choice("name", name, REPARAMS)
    allowed = ("a", "b") if name.startswith("best") else ()
    extra = sorted(set(params) - set(allowed))
    if extra:
        what = "takes no parameters" if not allowed else "takes only `a` and `b`"
        raise TypeError(f"`params` for {name!r} {what}; got unexpected {', '.join(repr(k) for k in extra)}.")
    if name == "direct":
        return Reparam(name, {}, False, lambda w: w.copy(), lambda w: np.ones_like(w),
                       lambda beta: np.full_like(beta, np.inf), lambda lam: lam.copy(), "(-inf, inf)")
    if name == "exp":
        return Reparam(name, {}, False, lambda w: -np.exp(w), lambda w: -np.exp(w),
                       lambda beta: np.expm1(beta), lambda lam: np.where(lam < 0, np.log(-lam), np.nan), "(-inf, 0)")
    if name == "softplus":
        return Reparam(name, {}, False, lambda w: -_softplus(w), lambda w: -scipy.special.expit(w),
                       lambda beta: np.expm1(beta), _softplus_inverse, "(-inf, 0)")
    a = check_positive("a", params.get("a", 1.0))
    b = check_positive("b", params.get("b", 0.5))
    q = lambda w: a * w * w + b  # noqa: E731
    if name == "best":
        inv = lambda lam: np.sqrt(np.where((lam < 0) & (-1.0 / lam >= b), (-1.0 / lam - b) / a, np.nan))  # noqa: E731
        return Reparam(name, {"a": a, "b": b}, False, lambda w: -1.0 / q(w), lambda w: 2 * a * w / q(w) ** 2,
                       _best_bound(a, b), inv, f"[-1/b, 0) = [{-1.0 / b:g}, 0)")
    inv = lambda lam: np.sqrt(np.where((lam < 1) & (1.0 / (1.0 - lam) >= b), (1.0 / (1.0 - lam) - b) / a, np.nan))  # noqa: E731
    return Reparam(name, {"a": a, "b": b}, True, lambda w: 1.0 - 1.0 / q(w), lambda w: 2 * a * w / q(w) ** 2,
                   _best_bound(a, b), inv, f"[1 - 1/b, 1) = [{1.0 - 1.0 / b:g}, 1)")


# -- stability functional ---------------------------------------------------


def _rate_fn(f) -> Callable[[float], float]:
    if isinstance(f, Reparam):
        return lambda w: float(f.rate(w))
    if not callable(f):
        raise TypeError(f"`f` must be a Reparam or a callable w -> f(w); got {describe(f)}.")
    return lambda w: float(f(w))


def stability_functional(f, w: float, w_tilde: float, *, rtol: float = 1e-10) -> float:
    r"""The stability functional by quadrature.

    .. math::

        S(w, \tilde w) = |f(w)| \int_0^\infty \big| e^{f(\tilde w) t} - e^{f(w) t} \big| \, dt ,

    computed with :func:`scipy.integrate.quad` after the substitution
    ``s = |f(w)| t`` (so the integrand is ``|e^{-r s} - e^{-s}|`` with
    ``r = f(w~) / f(w)``, evaluated as ``e^{-min(r,1) s} |expm1(-|1-r| s)|``
    so that nearby rates lose no digits), split at ``s = max(1, 1/r)``.  Its closed form
    ``|f(w)/f(w~) - 1|`` is the symbolic twin
    (:func:`dynmem.symbolic.stability_functional_identity`).

    Parameters
    ----------
    f : Reparam or callable
        ``f(w) -> float``; a :class:`Reparam` contributes its rate (``f - 1``
        in discrete time).
    w, w_tilde : float
        Nominal and perturbed parameter.
    rtol : float
        Relative tolerance passed to ``quad``.

    Returns
    -------
    float
        ``inf`` when ``f(w~) >= 0`` (the perturbed mode does not decay).

    Raises
    ------
    ValueError
        If ``f(w) >= 0`` (the functional is defined for a decaying nominal mode).
    """
    fn = _rate_fn(f)
    w = check_finite("w", w)
    w_tilde = check_finite("w_tilde", w_tilde)
    rtol = check_positive("rtol", rtol)
    lam, mu = fn(w), fn(w_tilde)
    if not lam < 0:
        raise ValueError(f"`w` must give a decaying mode, f(w) < 0; got f({w}) = {lam}.")
    if not mu < 0:
        return math.inf
    r = mu / lam
    # |e^{-r s} - e^{-s}| = e^{-min(r, 1) s} |expm1(-|1 - r| s)|: no cancellation
    # when r is close to 1 and no overflow when r is far from it.
    lo, gap = min(r, 1.0), abs(1.0 - r)
    integrand = lambda s: -math.exp(-lo * s) * math.expm1(-gap * s)  # noqa: E731
    split = max(1.0, 1.0 / r)
    opts = dict(epsabs=0.0, epsrel=rtol, limit=200)
    head = scipy.integrate.quad(integrand, 0.0, split, **opts)[0]
    tail = scipy.integrate.quad(integrand, split, math.inf, **opts)[0]
    return head + tail


@dataclass(frozen=True)
class StabilitySup:
    """Result of :func:`sup_stability_functional`.

    Attributes
    ----------
    value : float
        ``sup_{|w~ - w| <= beta} S(w, w~)``.
    w_tilde : float
        Where it is attained.
    bound : float
        ``g(beta)``, the reparameterisation's uniform bound.
    """

    value: float
    w_tilde: float
    bound: float


def sup_stability_functional(reparam: Reparam, w: float, beta: float) -> StabilitySup:
    r"""``sup_{|w~ - w| <= beta} S(w, w~)`` by grid search and bounded refinement.

    .. math:: \sup_{|\tilde w - w| \le \beta} \Big| \frac{r(w)}{r(\tilde w)} - 1 \Big| \le g(\beta)

    The functional is evaluated through its closed form (equal to the
    quadrature of :func:`stability_functional`, tested), on a grid of 401
    points then refined with :func:`scipy.optimize.minimize_scalar` on the
    neighbouring grid cell.  The value is ``inf`` when some ``w~`` in the
    interval gives a non-decaying mode (``"direct"`` with ``w + beta >= 0``).

    Parameters
    ----------
    reparam : Reparam
    w : float
        Nominal parameter, ``r(w) < 0``.
    beta : float
        Radius, ``beta >= 0``.

    Returns
    -------
    StabilitySup
    """
    if not isinstance(reparam, Reparam):
        raise TypeError(f"`reparam` must be a Reparam (see get_reparam); got {describe(reparam)}.")
    w = check_finite("w", w)
    beta = check_nonnegative("beta", beta)
    bound = float(reparam.stability_bound(beta))
    lam = float(reparam.rate(w))
    if not lam < 0:
        raise ValueError(f"`w` must give a decaying mode, f(w) < 0; got f({w}) = {lam}.")
    if beta == 0:
        return StabilitySup(0.0, w, bound)
    grid = np.linspace(w - beta, w + beta, _SUP_GRID)
    rates = np.asarray(reparam.rate(grid))
    if np.any(rates >= 0):
        return StabilitySup(math.inf, float(grid[np.argmax(rates)]), bound)
    vals = np.abs(lam / rates - 1.0)
    k = int(np.argmax(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    best_val, best_w = float(vals[k]), float(grid[k])
    if hi > lo:
        obj = lambda x: -abs(lam / float(reparam.rate(x)) - 1.0)  # noqa: E731
        res = scipy.optimize.minimize_scalar(obj, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * (1 + abs(w))})
        if -res.fun > best_val:
            best_val, best_w = float(-res.fun), float(np.clip(res.x, w - beta, w + beta))
    return StabilitySup(best_val, best_w, bound)


# -- matrix forms -------------------------------------------------------------


def _vector_w(reparam, w) -> np.ndarray:
    if not isinstance(reparam, Reparam):
        raise TypeError(f"`reparam` must be a Reparam (see get_reparam); got {describe(reparam)}.")
    w = as_float_array("w", w, ndim=1)
    if w.size < 1:
        raise ValueError(f"`w` must hold at least one parameter; got shape {w.shape}.")
    return w


def _orthogonal(P, m: int) -> np.ndarray:
    P = as_float_array("P", P, shape=(m, m))
    err = float(np.max(np.abs(P.T @ P - np.eye(m))))
    if err > _ORTHO_ATOL:
        raise ValueError(f"`P` must be orthogonal (P^T P = I); got max |P^T P - I| = {err:.3g} > {_ORTHO_ATOL:g}.")
    return P


def _square(name: str, value) -> np.ndarray:
    return as_square_matrix(name, value)


def diagonal_W(reparam: Reparam, w) -> np.ndarray:
    r"""``W = diag(f(w))``.

    Parameters
    ----------
    reparam : Reparam
    w : array_like, shape (m,)

    Returns
    -------
    ndarray, shape (m, m)
    """
    w = _vector_w(reparam, w)
    return np.diag(reparam._f(w))


def orthogonal_W(reparam: Reparam, w, P) -> np.ndarray:
    r"""``W = P diag(f(w)) P^T`` with ``P`` orthogonal.

    .. math:: W = P \operatorname{diag}(f(w)) P^\top

    Sign convention: docs/theory.md (following [WLL]'s public code) writes
    ``-P diag(f(w)) P^T`` with a positive ``f``; dynmem's ``f`` is already
    negative, so ``W`` is symmetric with eigenvalues ``f(w_i)`` and Hurwitz
    for every stable reparameterisation.

    Parameters
    ----------
    reparam : Reparam
    w : array_like, shape (m,)
    P : array_like, shape (m, m)
        Orthogonal (``max |P^T P - I| <= 1e-10``).

    Returns
    -------
    ndarray, shape (m, m)
    """
    w = _vector_w(reparam, w)
    P = _orthogonal(P, w.size)
    return (P * reparam._f(w)) @ P.T


def expm_hurwitz_margin(M) -> float:
    r"""``min_i cos(Im mu_i)`` over the eigenvalues ``mu_i`` of ``M``.

    ``-expm(M)`` is Hurwitz iff this is positive: ``eig(-e^M) = -e^{mu}`` and
    ``Re(-e^{mu}) = -e^{Re mu} cos(Im mu)``.

    Parameters
    ----------
    M : array_like, shape (m, m)
    """
    M = _square("M", M)
    mu = scipy.linalg.eigvals(M, check_finite=False)
    return float(np.min(np.cos(mu.imag)))


def expm_W(M) -> np.ndarray:
    r"""``W = -expm(M)``, checked to be Hurwitz.

    .. math:: W = -e^{M}, \qquad \lambda(W) = -e^{\mu(M)},
              \qquad \operatorname{Re}\lambda = -e^{\operatorname{Re}\mu}\cos(\operatorname{Im}\mu)

    so ``W`` is Hurwitz iff every eigenvalue ``mu`` of ``M`` has
    ``cos(Im mu) > 0`` (``|Im mu| < pi/2`` modulo ``2 pi``); real spectra
    (e.g. symmetric ``M``) always qualify.

    Parameters
    ----------
    M : array_like, shape (m, m)

    Returns
    -------
    ndarray, shape (m, m)

    Raises
    ------
    ValueError
        Naming ``M`` when the condition fails.
    """
    M = _square("M", M)
    margin = expm_hurwitz_margin(M)
    if not margin > 0:
        mu = scipy.linalg.eigvals(M, check_finite=False)
        worst = mu[np.argmin(np.cos(mu.imag))]
        raise ValueError(
            "`M` must have every eigenvalue mu with cos(Im mu) > 0 (|Im mu| < pi/2 mod 2 pi) for -expm(M) "
            f"to be Hurwitz; got mu = {worst:.6g} with cos(Im mu) = {margin:.6g}."
        )
    return -scipy.linalg.expm(M)


# -- chain rules --------------------------------------------------------------


def _grad(G, m: int) -> np.ndarray:
    return as_float_array("dL_dW", G, shape=(m, m))


def grad_w_diagonal(reparam: Reparam, w, dL_dW) -> np.ndarray:
    r"""``dL/dw`` for ``W = diag(f(w))``: ``diag(dL/dW) * f'(w)``.

    Parameters
    ----------
    reparam : Reparam
    w : array_like, shape (m,)
    dL_dW : array_like, shape (m, m)

    Returns
    -------
    ndarray, shape (m,)
    """
    w = _vector_w(reparam, w)
    G = _grad(dL_dW, w.size)
    return np.diag(G) * reparam._fprime(w)


def grad_w_orthogonal(reparam: Reparam, w, P, dL_dW) -> np.ndarray:
    r"""``dL/dw`` for ``W = P diag(f(w)) P^T``.

    .. math:: \frac{\partial L}{\partial w_i} = (P^\top G P)_{ii} \, f'(w_i),
              \qquad G = \partial L / \partial W

    (``P`` is held fixed.)

    Parameters
    ----------
    reparam : Reparam
    w : array_like, shape (m,)
    P : array_like, shape (m, m), orthogonal
    dL_dW : array_like, shape (m, m)

    Returns
    -------
    ndarray, shape (m,)
    """
    w = _vector_w(reparam, w)
    P = _orthogonal(P, w.size)
    G = _grad(dL_dW, w.size)
    return np.einsum("ji,jk,ki->i", P, G, P) * reparam._fprime(w)


def grad_M_expm(M, dL_dW) -> np.ndarray:
    r"""``dL/dM`` for ``W = -expm(M)``.

    .. math:: \frac{\partial L}{\partial M} = -L_{\exp}(M^\top, G),

    where ``L_exp(A, E)`` is the Frechet derivative of the matrix exponential
    (:func:`scipy.linalg.expm_frechet`, [AMH]); the adjoint of
    ``E -> L_exp(M, E)`` in the Frobenius inner product is ``E -> L_exp(M^T, E)``.

    Parameters
    ----------
    M : array_like, shape (m, m)
    dL_dW : array_like, shape (m, m)

    Returns
    -------
    ndarray, shape (m, m)
    """
    M = _square("M", M)
    G = _grad(dL_dW, M.shape[0])
    return -scipy.linalg.expm_frechet(M.T, G, compute_expm=False, check_finite=False)


_FORMS = ("diagonal", "orthogonal", "expm")


def grad_w_from_grad_W(form: str, dL_dW, *, reparam: Reparam | None = None, w=None, P=None, M=None) -> np.ndarray:
    """Dispatch to the chain rule of a matrix form.

    Parameters
    ----------
    form : {"diagonal", "orthogonal", "expm"}
        ``"diagonal"`` needs ``reparam`` and ``w``; ``"orthogonal"`` also ``P``;
        ``"expm"`` needs ``M``.
    dL_dW : array_like, shape (m, m)

    Returns
    -------
    ndarray
        Shape (m,) for the first two forms, (m, m) for ``"expm"``.
    """
    check_choice("form", form, _FORMS)
    needed = {"diagonal": ("reparam", "w"), "orthogonal": ("reparam", "w", "P"), "expm": ("M",)}[form]
    given = {"reparam": reparam, "w": w, "P": P, "M": M}
    missing = [k for k in needed if given[k] is None]
    if missing:
        raise TypeError(f"`{missing[0]}` is required for form={form!r}; got None.")
    if form == "diagonal":
        return grad_w_diagonal(reparam, w, dL_dW)
    if form == "orthogonal":
        return grad_w_orthogonal(reparam, w, P, dL_dW)
    return grad_M_expm(M, dL_dW)
