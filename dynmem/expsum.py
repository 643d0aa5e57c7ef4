r"""Exponential-sum fits of memory kernels ([WLL] Fig. 1; docs/theory.md section 4).

:func:`fit_exponential_sum` is the gradient-free least-squares fit of a
memory kernel by an ``m``-term exponential sum, realised as a diagonal
:class:`~dynmem.models.LinearRNN`:

.. math::

    \rho(t) \approx \hat\rho(t) = \sum_{k=1}^m a_k e^{-\mu_k t},
    \qquad a_k \ge 0,\ \mu_k > 0,

which is the kernel ``c^T e^{W t} U`` of ``W = -diag(mu)``,
``U = c = sqrt(a)`` (``d = 1``).  (Part of :mod:`dynmem.training` before; it is
re-exported there.)

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [GP] G. Golub, V. Pereyra, *Separable nonlinear least squares: the variable
   projection method and its applications*, Inverse Problems 19 (2003) R1-R26.
.. [K] L. Kaufman, *A variable projection method for solving separable
   nonlinear least squares problems*, BIT 15 (1975) 49-57.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ._validation import as_float_array, check_choice, check_increasing, check_int, check_rng
from .models import LinearRNN

__all__ = ["ExpSumFit", "fit_exponential_sum"]

# Bounds of the free exponents (docs/theory.md section 4): mu in [0.1 / T, 50].
_MU_LOWER_FACTOR = 0.1
_MU_UPPER = 50.0
# Coefficients at or below this fraction of the largest are pruned as zero.
_PRUNE_RTOL = 1e-12
# Tolerances of the outer least-squares solve; above machine epsilon, which
# scipy refuses with a warning.
_LSQ_TOL = 1e-15



@dataclass(frozen=True, eq=False)
class ExpSumFit:
    r"""Result of :func:`fit_exponential_sum`.

    Attributes
    ----------
    mu : ndarray, shape (m,)
        Decay rates ``mu_k > 0`` (ascending).
    a : ndarray, shape (m,)
        Weights ``a_k >= 0``.
    sup_error : float
        ``max_i |rho_hat(t_i) - rho(t_i)|`` on the fitting grid.
    rmse : float
        ``sqrt(mean_i (rho_hat(t_i) - rho(t_i))^2)``.
    variant : str
        ``"free"`` or ``"grid"``.
    n_terms : int
        Number of non-zero terms before padding (``<= m``).
    success : bool
        Whether the outer solve of the best start converged (always ``True``
        for ``"grid"``).
    message : str
        What happened.
    """

    mu: np.ndarray
    a: np.ndarray
    sup_error: float
    rmse: float
    variant: str
    n_terms: int
    success: bool
    message: str

    @property
    def m(self) -> int:
        """Width of the realisation."""
        return int(self.mu.size)

    def __call__(self, t) -> np.ndarray:
        r"""The fitted kernel ``rho_hat(t) = sum_k a_k e^{-mu_k t}``.

        Parameters
        ----------
        t : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n,)
        """
        t = as_float_array("t", t, ndim=1)
        return np.exp(-np.outer(t, self.mu)) @ self.a

    def to_linear_rnn(self) -> LinearRNN:
        r"""The diagonal linear RNN whose kernel is the fit.

        .. math::

            W = -\operatorname{diag}(\mu), \quad U = c = \sqrt{a}, \qquad
            c^\top e^{W t} U = \sum_k a_k e^{-\mu_k t} .

        Returns
        -------
        LinearRNN
            Hidden width ``m``, input dimension ``d = 1``.
        """
        s = np.sqrt(self.a)
        return LinearRNN(-np.diag(self.mu), s[:, None], s)


def _nnls(A: np.ndarray, rho: np.ndarray) -> np.ndarray:
    # Scale columns to unit norm: NNLS is then better conditioned and the
    # answer is unchanged (a_k >= 0 iff scaled a_k >= 0).
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    a, _ = scipy.optimize.nnls(A / norms, rho, maxiter=50 * A.shape[1] + 100)
    return a / norms


def _vp_fit(t, rho, x0, lo, hi):
    """One variable-projection solve from ``x0 = log mu``; returns (mu, a, ls_result)."""

    def inner(x):
        mu = np.exp(x)
        E = np.exp(-np.outer(t, mu))
        return mu, E, _nnls(E, rho)

    def residual(x):
        _, E, a = inner(x)
        return E @ a - rho

    def jacobian(x):
        # Kaufman's approximation of the variable-projection Jacobian ([K], [GP]):
        # J_k = P_perp (dE/dx_k) a_k, with P_perp projecting out the active columns.
        mu, E, a = inner(x)
        dE = -(t[:, None] * mu[None, :]) * E * a[None, :]
        active = a > 0
        if np.any(active):
            Q, _ = np.linalg.qr(E[:, active])
            dE = dE - Q @ (Q.T @ dE)
        return dE

    res = scipy.optimize.least_squares(
        residual, x0, jac=jacobian, bounds=(np.log(lo), np.log(hi)), method="trf",
        ftol=_LSQ_TOL, xtol=_LSQ_TOL, gtol=_LSQ_TOL, max_nfev=200 * (x0.size + 1),
    )
    mu, _, a = inner(res.x)
    return mu, a, res


def _starts(m: int, lo: float, hi: float, n_starts: int, rng) -> list[np.ndarray]:
    """``n_starts`` log-spaced initial exponents inside ``(lo, hi)``.

    Start ``j`` spreads ``m`` log-equally spaced rates over a window whose
    centre slides across ``[log lo, log hi]``; starts beyond the deterministic
    set are jittered with ``rng``.
    """
    llo, lhi = np.log(lo), np.log(hi)
    span = lhi - llo
    width = 0.6 * span if m > 1 else 0.0
    centres = np.linspace(llo + 0.5 * width + 0.05 * span, lhi - 0.5 * width - 0.05 * span, n_starts)
    out = []
    for ctr in centres:
        x = ctr + width * (np.linspace(-0.5, 0.5, m) if m > 1 else np.zeros(1))
        if rng is not None:
            x = x + rng.normal(scale=0.05 * span, size=m)
        out.append(np.clip(x, llo + 1e-9 * span, lhi - 1e-9 * span))
    return out


def _prune_and_pad(mu: np.ndarray, a: np.ndarray, m: int):
    keep = a > _PRUNE_RTOL * (a.max() if a.size and a.max() > 0 else 1.0)
    mu, a = mu[keep], a[keep]
    n_terms = int(mu.size)
    if n_terms == 0:
        return np.full(m, np.nan), np.zeros(m), 0
    mu, a = list(mu), list(a)
    while len(mu) < m:
        # Splitting a term a e^{-mu t} into two halves leaves the kernel unchanged.
        k = int(np.argmax(a))
        a[k] *= 0.5
        mu.append(mu[k])
        a.append(a[k])
    order = np.argsort(mu, kind="stable")
    return np.asarray(mu)[order], np.asarray(a)[order], n_terms


def fit_exponential_sum(t, rho, m: int, *, variant: str = "free", n_starts: int = 6, rng=None) -> ExpSumFit:
    r"""Fit a kernel sampled on a grid by a non-negative ``m``-term exponential sum.

    .. math::

        \min_{\mu, a \ge 0} \sum_i \Big( \sum_{k=1}^m a_k e^{-\mu_k t_i} - \rho(t_i) \Big)^2

    Parameters
    ----------
    t : array_like, shape (n,)
        Strictly increasing, non-negative sample times with ``t[-1] > 0``
        (docs/theory.md section 4 uses the integer grid ``0..1000``).
    rho : array_like, shape (n,)
        Kernel values ``rho(t_i)``.
    m : int
        Number of terms (hidden width of the realisation), ``m >= 1``.
    variant : {"free", "grid"}
        ``"free"``: variable projection ([GP]) - an outer
        :func:`scipy.optimize.least_squares` over ``log mu`` within
        ``[0.1 / T, 50]`` (``T = t[-1]``) whose residual solves for ``a`` by
        non-negative least squares (:func:`scipy.optimize.nnls`), with
        Kaufman's Jacobian ([K]); ``n_starts`` log-spaced starts, the one with
        the smallest sup error kept; zero terms are pruned and the width
        padded back to ``m`` by splitting the largest term (which leaves the
        kernel unchanged).  ``"grid"``: the paper-style constrained fit -
        NNLS on the fixed rates ``mu_k = 0.5 k / m``, ``k = 1..m``
        (docs/theory.md section 4), zero weights kept.
    n_starts : int
        Starts of the ``"free"`` fit (``>= 1``; docs/theory.md recommends ``>= 6``).
    rng : None, int or numpy.random.Generator, optional
        ``None`` gives deterministic starts; otherwise the starts are
        jittered with ``np.random.default_rng(rng)``.

    Returns
    -------
    ExpSumFit

    Notes
    -----
    The free fit recovers an exact exponential sum (``0.9^t`` at ``m = 1``
    to ~1e-11) and shows the mechanism of [WLL] Thm 3.3: for a power law its
    slowest rate (the spectral margin) falls towards ``1/T`` as ``m`` grows.
    It cannot reproduce [WLL] Fig. 1's exponential-target error curve, for
    which the ``"grid"`` variant is offered.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1001.0)
    >>> fit = fit_exponential_sum(t, 0.9 ** t, 1)
    >>> bool(fit.sup_error < 1e-10), round(float(fit.mu[0]), 6)
    (True, 0.105361)
    """
    t = check_increasing("t", as_float_array("t", t, ndim=1))
    if t.size < 2:
        raise ValueError(f"`t` must hold at least two times; got {t.size}.")
    if t[0] < 0:
        raise ValueError(f"`t` must be non-negative; got t[0] = {t[0]}.")
    rho = as_float_array("rho", rho, shape=(t.size,))
    m = check_int("m", m, minimum=1)
    check_choice("variant", variant, ("free", "grid"))
    n_starts = check_int("n_starts", n_starts, minimum=1)
    gen = None if rng is None else check_rng("rng", rng)

    if variant == "grid":
        mu = 0.5 * np.arange(1, m + 1) / m
        a = _nnls(np.exp(-np.outer(t, mu)), rho)
        r = np.exp(-np.outer(t, mu)) @ a - rho
        return ExpSumFit(mu, a, float(np.max(np.abs(r))), float(np.sqrt(np.mean(r * r))), "grid", int(np.sum(a > 0)),
                         True, "NNLS on the fixed grid mu_k = 0.5 k / m.")

    T = float(t[-1])
    lo, hi = _MU_LOWER_FACTOR / T, _MU_UPPER
    if lo >= hi:
        raise ValueError(f"`t` must span more than {_MU_LOWER_FACTOR / _MU_UPPER} so that the rate bounds [0.1/T, 50] are non-empty; got T = {T}.")
    best = None
    for x0 in _starts(m, lo, hi, n_starts, gen):
        mu, a, res = _vp_fit(t, rho, x0, lo, hi)
        sup = float(np.max(np.abs(np.exp(-np.outer(t, mu)) @ a - rho)))
        if best is None or sup < best[0]:
            best = (sup, mu, a, res)
    sup, mu, a, res = best
    mu, a, n_terms = _prune_and_pad(mu, a, m)
    if n_terms == 0:
        # rho <= 0 everywhere: the best non-negative fit is zero.
        mu = np.full(m, lo)
    r = np.exp(-np.outer(t, mu)) @ a - rho
    msg = f"variable projection, best of {n_starts} starts: {res.message}"
    return ExpSumFit(mu, a, float(np.max(np.abs(r))), float(np.sqrt(np.mean(r * r))), "free", n_terms,
                     bool(res.success), msg)
