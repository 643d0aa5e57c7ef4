r"""The limit ODE of the [LSS] kernel limit on a grid of histories.

docs/theory.md section 7; [LSS] arXiv 2308.14555.  On histories
:math:`z_1, \dots, z_n` with stationary weights :math:`\nu_j > 0` the limit of
the network output solves the linear ODE

.. math::

    \frac{d h_t(z)}{dt} = \alpha\, E_\nu\big[(Y - h_t(Z'))\,A(z, Z')\big]
    = \alpha \sum_j \nu_j A(z, z_j)\,(y_j - h_t(z_j)),

with :math:`y_j = E[Y \mid Z = z_j]`; in matrix form
:math:`\dot h = \alpha A D (y - h)`, :math:`D = \mathrm{diag}(\nu)`.  With the
symmetrisation :math:`S = D^{1/2} A D^{1/2} = Q \Lambda Q^\top`
(:func:`numpy.linalg.eigh`) the exact solution is

.. math::

    h_t = y - D^{-1/2} Q e^{-\alpha t \Lambda} Q^\top D^{1/2} (y - h_0),

i.e. :math:`h_t = (I - e^{-\alpha t A D})\, y` for :math:`h_0 = 0`.  Off the
grid, integrating the right-hand side in time,

.. math::

    h_t(z) = h_0(z) + A(z, \cdot)\, D^{1/2} Q\,
             \mathrm{diag}\Big(\frac{1 - e^{-\alpha t\lambda_k}}{\lambda_k}\Big)
             Q^\top D^{1/2}(y - h_0),

(the factor is :math:`\alpha t` for :math:`\lambda_k = 0`), which reproduces
the grid solution at grid points.  :func:`solve_limit_ode_ivp` integrates the
same ODE with :func:`scipy.integrate.solve_ivp` as an independent check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.integrate

from .._validation import as_float_array, check_positive

__all__ = ["LimitSolution", "solve_limit_ode", "solve_limit_ode_ivp", "l2_nu"]

_SYM_TOL = 1e-8


def _check_problem(A, weights, y, h0):
    A = as_float_array("A", A, ndim=2)
    n = A.shape[0]
    if A.shape != (n, n) or n < 1:
        raise ValueError(f"`A` must be a square matrix; got shape {A.shape}.")
    asym = float(np.max(np.abs(A - A.T))) if n else 0.0
    if asym > _SYM_TOL * max(1.0, float(np.max(np.abs(A)))):
        raise ValueError(f"`A` must be symmetric (a kernel Gram matrix); got max|A - A^T| = {asym:.3g}.")
    w = as_float_array("weights", weights, shape=(n,))
    if np.any(w <= 0):
        j = int(np.flatnonzero(w <= 0)[0])
        raise ValueError(f"`weights` must be positive (drop histories of probability 0); got weights[{j}] = {float(w[j])!r}.")
    if abs(w.sum() - 1.0) > 1e-8:
        raise ValueError(f"`weights` must sum to 1; got sum {float(w.sum())!r}.")
    y = as_float_array("y", y, shape=(n,))
    h0 = np.zeros(n) if h0 is None else as_float_array("h0", h0, shape=(n,))
    return 0.5 * (A + A.T), w, y, h0


@dataclass(frozen=True)
class LimitSolution:
    r"""The exact solution of the limit ODE on a grid (eigendecomposition).

    Attributes
    ----------
    A : ndarray, shape (n, n)
        Kernel on the grid.
    weights : ndarray, shape (n,)
        :math:`\nu`.
    y : ndarray, shape (n,)
        :math:`E[Y \mid Z]` on the grid.
    h0 : ndarray, shape (n,)
        Initial condition.
    alpha : float
    eigvals : ndarray, shape (n,)
        :math:`\Lambda` of :math:`D^{1/2} A D^{1/2}`; eigenvalues below
        :math:`100\,n\,\epsilon\,\lambda_{\max}` (rounding) are set to 0.
    eigvecs : ndarray, shape (n, n)
        :math:`Q`.
    min_eigval_raw : float
        Smallest eigenvalue before clipping (a check that ``A`` is PSD).
    """

    A: np.ndarray
    weights: np.ndarray
    y: np.ndarray
    h0: np.ndarray
    alpha: float
    eigvals: np.ndarray
    eigvecs: np.ndarray
    min_eigval_raw: float

    def _coeffs(self):
        sq = np.sqrt(self.weights)
        return sq, self.eigvecs.T @ (sq * (self.y - self.h0))

    def __call__(self, t) -> np.ndarray:
        r""":math:`h_t` on the grid; ``t`` scalar or shape (n_t,), returns (n, ) or (n_t, n)."""
        t_arr = np.asarray(t, dtype=float)
        tt = np.atleast_1d(t_arr)
        sq, a = self._coeffs()
        decay = np.exp(-self.alpha * tt[:, None] * self.eigvals[None, :]) * a[None, :]
        h = self.y[None, :] - (decay @ self.eigvecs.T) / sq[None, :]
        return h[0] if t_arr.ndim == 0 else h

    def evaluate(self, t, A_cross, h0_cross=None) -> np.ndarray:
        r""":math:`h_t(z)` at off-grid histories from the kernel ``A_cross[m, j] = A(z_m, z_j)``.

        Parameters
        ----------
        t : float or array_like, shape (n_t,)
        A_cross : array_like, shape (m, n)
        h0_cross : array_like, shape (m,), optional
            :math:`h_0` at the new histories (default 0, the paired initialisation).

        Returns
        -------
        ndarray, shape (m,) or (n_t, m)
        """
        A_cross = as_float_array("A_cross", A_cross, ndim=2)
        if A_cross.shape[1] != self.y.size:
            raise ValueError(f"`A_cross` must have shape (m, {self.y.size}); got shape {A_cross.shape}.")
        m = A_cross.shape[0]
        h0c = np.zeros(m) if h0_cross is None else as_float_array("h0_cross", h0_cross, shape=(m,))
        t_arr = np.asarray(t, dtype=float)
        tt = np.atleast_1d(t_arr)
        sq, a = self._coeffs()
        lam = self.eigvals
        at = self.alpha * tt[:, None] * lam[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(lam[None, :] > 0, -np.expm1(-at) / np.where(lam > 0, lam, 1.0)[None, :],
                           self.alpha * tt[:, None])
        B = A_cross @ (sq[:, None] * self.eigvecs)  # (m, n)
        h = h0c[None, :] + (phi * a[None, :]) @ B.T
        return h[0] if t_arr.ndim == 0 else h

    def limit(self) -> np.ndarray:
        r""":math:`h_\infty`: equals ``y`` when ``A`` is positive definite on the grid."""
        sq, a = self._coeffs()
        keep = self.eigvals > 0
        return self.y - (self.eigvecs[:, ~keep] @ a[~keep]) / sq


def solve_limit_ode(A, weights, y, *, alpha: float = 1.0, h0=None) -> LimitSolution:
    r"""Solve :math:`\dot h = \alpha A D (y - h)` exactly by a symmetric eigendecomposition.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Symmetric positive semi-definite kernel on the grid.
    weights : array_like, shape (n,)
        Positive weights summing to 1 (:math:`\nu`).
    y : array_like, shape (n,)
        :math:`E[Y \mid Z]` on the grid.
    alpha : float
    h0 : array_like, shape (n,), optional
        Initial condition (default 0).

    Returns
    -------
    LimitSolution

    Raises
    ------
    ValueError
        If ``A`` is not symmetric or has an eigenvalue below
        ``-1e-8 * max eigenvalue`` (not a kernel).
    """
    A, w, y, h0 = _check_problem(A, weights, y, h0)
    alpha = check_positive("alpha", alpha)
    sq = np.sqrt(w)
    S = sq[:, None] * A * sq[None, :]
    lam, Q = np.linalg.eigh(0.5 * (S + S.T))
    lmin = float(lam[0])
    if lmin < -1e-8 * max(float(lam[-1]), 1e-300):
        raise ValueError(f"`A` must be positive semi-definite; got eigenvalue {lmin:.3g} of D^1/2 A D^1/2 "
                         f"(largest {float(lam[-1]):.3g}).")
    # Eigenvalues at rounding level (100 n eps lambda_max) are the kernel's null space: set to 0 exactly.
    lam = np.where(lam > 100 * lam.size * np.finfo(float).eps * max(float(lam[-1]), 0.0), lam, 0.0)
    return LimitSolution(A, w, y, h0, alpha, lam, Q, lmin)


def solve_limit_ode_ivp(A, weights, y, t, *, alpha: float = 1.0, h0=None, rtol: float = 1e-10,
                        atol: float = 1e-12, method: str = "DOP853") -> np.ndarray:
    r"""The limit ODE by :func:`scipy.integrate.solve_ivp` (independent check).

    Returns
    -------
    ndarray, shape (n_t, n)
        :math:`h_t` at the requested increasing times ``t >= 0``.

    Raises
    ------
    RuntimeError
        If the integrator fails.
    """
    A, w, y, h0 = _check_problem(A, weights, y, h0)
    alpha = check_positive("alpha", alpha)
    t = as_float_array("t", t, ndim=1)
    if t.size == 0 or t[0] < 0 or np.any(np.diff(t) < 0):
        raise ValueError(f"`t` must be a non-empty non-decreasing array of times >= 0; got {t!r}.")
    M = alpha * A * w[None, :]

    def rhs(_t, h):
        return M @ (y - h)

    extra = {"jac": -M} if method in ("Radau", "BDF", "LSODA") else {}
    sol = scipy.integrate.solve_ivp(rhs, (0.0, float(t[-1])), h0, t_eval=t, rtol=rtol, atol=atol, method=method,
                                    **extra)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed on the limit ODE: {sol.message}")
    return sol.y.T


def l2_nu(h, weights) -> np.ndarray:
    r""":math:`\|h\|_{L^2(\nu)} = (\sum_j \nu_j h_j^2)^{1/2}` along the last axis."""
    h = np.asarray(h, dtype=float)
    return np.sqrt(np.sum(np.asarray(weights, float) * h * h, axis=-1))
