r"""Stability margins of a trained recurrent model, measured the way the inverse approximation theorem needs them.

The proof of [WLL] Thm 3.9 turns on one number: how far the recurrent
matrix ``W`` can be pushed along ``W + beta I`` before the model loses
stability.  This module measures that number, and the ones that are easily
confused with it, for continuous models and for their forward-Euler images:

* :func:`shift_threshold`: the ``beta`` at which ``W + beta I`` becomes
  unstable, for the continuous model (``-alpha(W)``) or for the Euler map
  ``h <- h + dt sigma(W h + ...)`` (solved exactly from the eigenvalues);
* :func:`discrete_margin`: ``1 - rho(I + dt W)``, the Euler model's margin
  (``-alpha(W)`` is not: at ``dt = 1`` a rate above 2 or a complex pair can be
  Euler-unstable while ``-alpha(W) > 0``);
* :func:`discrete_stability_radius`: ``min_theta sigma_min(A - e^{i theta} I)``,
  the smallest complex perturbation of ``A = I + dt W`` that reaches the unit
  circle (the discrete twin of :func:`dynmem.spectra.stability_radius`);
* :func:`modal_decomposition` and :func:`effective_margin`: the linearised
  kernel ``r = sum_k R_k lambda_k^j`` (or ``e^{lambda_k t}``) split into modes,
  and the margin of the slowest mode that carries a stated share of the
  kernel's mass on a window: ``-alpha(W)`` also counts modes the read-out
  never sees;
* :func:`linear_frontier`: the reference curve ``mu*(E; H, B)``, the largest
  margin that any linear recurrence with ``sum |residues| <= B`` reaches at
  relative error ``E`` on a window of ``H`` steps.

References: [WLL] S. Wang, Z. Li, Q. Li, ICLR 2024 (Thm 3.9 and its proof);
[LHEL] Z. Li et al., JMLR 2022 (the linear frontier's setting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar, nnls

from ._validation import as_float_array, as_square_matrix, check_int, check_positive

__all__ = [
    "shift_threshold",
    "discrete_margin",
    "discrete_stability_radius",
    "ModalDecomposition",
    "modal_decomposition",
    "EffectiveMargin",
    "effective_margin",
    "FrontierFit",
    "frontier_error",
    "linear_frontier",
    "window_weights",
]


def _dt(dt) -> float | None:
    return None if dt is None else check_positive("dt", dt)


def shift_threshold(W, *, dt: float | None = None) -> float:
    r"""The shift ``beta*`` at which ``W + beta I`` loses stability.

    Continuous model (``dt=None``): ``beta* = -alpha(W)``.  Forward-Euler map
    ``A(beta) = I + dt (W + beta I)``: an eigenvalue ``lambda = a + i b`` of
    ``W`` reaches the unit circle on the right where

    .. math::

        \bigl(1 + dt (a + \beta)\bigr)^2 + (dt\, b)^2 = 1
        \;\Longrightarrow\;
        \beta_\lambda = \frac{\sqrt{1 - (dt\, b)^2} - 1}{dt} - a ,

    and ``beta* = min_lambda beta_lambda``.  For a real dominant eigenvalue
    ``beta* = -alpha(W) = (1 - rho(I + dt W)) / dt``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    dt : float, optional
        Euler step; ``None`` for the continuous model.

    Returns
    -------
    float
        ``beta*``; negative if ``W`` itself is unstable to the right, ``-inf``
        for an Euler map with ``|dt Im lambda| >= 1`` (no real shift makes it
        stable).  A mode left of the Euler disc (``1 + dt a < -sqrt(1 - (dt b)^2)``,
        too fast for the step) is unstable at ``beta = 0`` although ``beta*``
        may be positive: :func:`discrete_margin` is negative then.
    """
    W = as_square_matrix("W", W)
    dt = _dt(dt)
    lam = np.linalg.eigvals(W)
    if dt is None:
        return float(-lam.real.max())
    y = dt * lam.imag
    if np.any(np.abs(y) >= 1.0):
        return -math.inf
    return float(np.min((np.sqrt(1.0 - y * y) - 1.0) / dt - lam.real))


def discrete_margin(W, *, dt: float = 1.0) -> float:
    r"""The Euler model's margin ``1 - rho(I + dt W)``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    dt : float

    Returns
    -------
    float
        Positive iff the linearised map ``h <- (I + dt W) h`` is a contraction
        in some norm (Schur stable).  For ``dt -> 0``, ``margin / dt -> -alpha(W)``.
    """
    W = as_square_matrix("W", W)
    dt = check_positive("dt", dt)
    A = np.eye(W.shape[0]) + dt * W
    return float(1.0 - np.abs(np.linalg.eigvals(A)).max())


def discrete_stability_radius(A, *, n_grid: int = 721) -> float:
    r"""Complex stability radius of a Schur-stable matrix (distance to the unit circle).

    .. math::

        r_d(A) = \min\{\|E\|_2 : \rho(A + E) \ge 1\}
               = \min_{\theta \in [0, \pi]} \sigma_{\min}(A - e^{i\theta} I)

    (real ``A``: the function of ``theta`` is even).  ``r_d(A) = 1 - rho(A)``
    for normal ``A`` and smaller for non-normal ``A``.

    Method: ``sigma_min`` on a grid of ``n_grid`` angles, then bounded scalar
    minimisation (:func:`scipy.optimize.minimize_scalar`) around the best
    grid point; tested against a dense grid.

    Parameters
    ----------
    A : array_like, shape (m, m)
        For an Euler model, ``A = I + dt W``.
    n_grid : int

    Returns
    -------
    float
        ``r_d(A)``; 0.0 if ``A`` is not Schur stable (``rho(A) >= 1``).
    """
    A = as_square_matrix("A", A)
    n_grid = check_int("n_grid", n_grid, minimum=8)
    if np.abs(np.linalg.eigvals(A)).max() >= 1.0:
        return 0.0
    m = A.shape[0]
    Ac = A.astype(np.complex128)
    idx = np.arange(m)

    def smin(theta):
        th = np.atleast_1d(theta)
        M = np.broadcast_to(Ac, (th.size, m, m)).copy()
        M[:, idx, idx] -= np.exp(1j * th)[:, None]
        return np.linalg.svd(M, compute_uv=False)[:, -1]

    grid = np.linspace(0.0, math.pi, n_grid)
    vals = smin(grid)
    k = int(np.argmin(vals))
    h = grid[1] - grid[0]
    lo, hi = max(0.0, grid[k] - h), min(math.pi, grid[k] + h)
    res = minimize_scalar(lambda th: float(smin(th)[0]), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-12})
    return float(min(vals[k], res.fun))


@dataclass(frozen=True)
class ModalDecomposition:
    r"""The linearised kernel of a recurrence, mode by mode.

    Discrete: ``r_j = c^T A^j B = sum_k R_k lambda_k^j``; continuous:
    ``rho(t) = c^T e^{W t} U = sum_k R_k e^{lambda_k t}``.

    Attributes
    ----------
    poles : ndarray, shape (m,), complex
        ``lambda_k`` (eigenvalues of ``A`` or of ``W``).
    residues : ndarray, shape (m, d), complex
        ``R_k = (c^T v_k)(w_k^T B)`` with right and left eigenvectors
        ``V``, ``V^{-1}``.
    margins : ndarray, shape (m,)
        Per mode, ``1 - |lambda_k|`` (discrete, per step) or ``-Re lambda_k``.
    discrete : bool
    condition : float
        Condition number of the eigenvector matrix (large: residues cancel).
    """

    poles: np.ndarray
    residues: np.ndarray
    margins: np.ndarray
    discrete: bool
    condition: float

    def kernel(self, n: int) -> np.ndarray:
        """The reconstructed discrete kernel ``r_j``, ``j = 0..n-1``, shape (n, d) (discrete only)."""
        if not self.discrete:
            raise ValueError("`kernel(n)` is the discrete kernel; this decomposition is continuous.")
        n = check_int("n", n, minimum=1)
        P = self.poles[None, :] ** np.arange(n)[:, None]
        return (P @ self.residues).real

    def mass(self, horizon: float) -> np.ndarray:
        r"""Each mode's l1 mass on the window: ``|R_k|_1 sum_{j<H} |lambda_k|^j`` or ``|R_k|_1 int_0^H e^{Re lambda_k t} dt``."""
        a = np.abs(self.residues).sum(axis=1)
        if self.discrete:
            n = int(math.ceil(horizon))
            q = np.abs(self.poles)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                geo = np.where(np.isclose(q, 1.0, rtol=0, atol=1e-14), float(n), (1.0 - q ** n) / (1.0 - q))
            return a * geo
        s = self.poles.real
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            integ = np.where(np.abs(s * horizon) < 1e-12, horizon, np.expm1(s * horizon) / s)
        return a * integ


def modal_decomposition(W, U, c, *, dt: float | None = None, gain: float = 1.0) -> ModalDecomposition:
    r"""Poles and residues of the linearised kernel of ``h' = sigma(W h + U x + b)`` or of its Euler map.

    At an equilibrium with ``sigma'(z*) = gain`` (``gain = 1`` for tanh at
    ``z* = 0``), the continuous model's kernel is ``c^T e^{gain W t} gain U``
    and the Euler model's (``h <- h + dt sigma(W h + U x + b)``, ``y_k = c^T h_{k+1}``)
    is ``r_j = c^T A^j B`` with ``A = I + dt gain W``, ``B = dt gain U``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    U : array_like, shape (m, d) or (m,)
    c : array_like, shape (m,)
    dt : float, optional
        ``None``: continuous model; otherwise the Euler step.
    gain : float
        ``sigma'`` at the equilibrium.

    Returns
    -------
    ModalDecomposition
    """
    W = as_square_matrix("W", W)
    m = W.shape[0]
    U = as_float_array("U", U)
    if U.ndim == 1:
        U = U[:, None]
    if U.ndim != 2 or U.shape[0] != m:
        raise ValueError(f"`U` must have shape ({m}, d) to match `W`; got {U.shape}.")
    c = as_float_array("c", c, shape=(m,))
    gain = check_positive("gain", gain)
    dt = _dt(dt)
    if dt is None:
        A, B = gain * W, gain * U
    else:
        A, B = np.eye(m) + dt * gain * W, dt * gain * U
    lam, V = np.linalg.eig(A)
    cond = float(np.linalg.cond(V))
    Vinv = np.linalg.solve(V, np.eye(m)) if np.isfinite(cond) and cond < 1e14 else np.linalg.pinv(V)
    R = (c @ V)[:, None] * (Vinv @ B)
    margins = 1.0 - np.abs(lam) if dt is not None else -lam.real
    return ModalDecomposition(lam, R, margins, dt is not None, cond)


@dataclass(frozen=True)
class EffectiveMargin:
    """Result of :func:`effective_margin`.

    Attributes
    ----------
    value : float
        Margin of the slowest mode whose share of the window's mass is at
        least ``share``.
    spectral : float
        Margin of the slowest mode of all (``1 - rho(A)`` or ``-alpha(W)``).
    used : ndarray of bool, shape (m,)
        The modes counted.
    shares : ndarray, shape (m,)
        Every mode's share of the summed mass.
    l1_residues : float
        ``sum_k |R_k|_1`` (bounded weights: [WLL]'s uniformly bounded parameters).
    """

    value: float
    spectral: float
    used: np.ndarray
    shares: np.ndarray
    l1_residues: float


def effective_margin(decomposition: ModalDecomposition, horizon: float, *, share: float = 1e-3) -> EffectiveMargin:
    r"""The margin of the slowest mode the kernel actually uses on a window.

    .. math::

        \mu_{\text{eff}} = \min\{ \mu_k : m_k \ge \text{share} \cdot \textstyle\sum_l m_l \},

    with ``m_k`` the l1 mass of mode ``k`` on the window
    (:meth:`ModalDecomposition.mass`).  A mode with a negligible residue
    (a read-out that ignores it) does not set the margin; ``spectral`` keeps
    the margin of all modes.

    Parameters
    ----------
    decomposition : ModalDecomposition
    horizon : float
        The window: steps (discrete) or time (continuous), ``> 0``.
    share : float
        In ``(0, 1]``.

    Returns
    -------
    EffectiveMargin
    """
    if not isinstance(decomposition, ModalDecomposition):
        raise TypeError(f"`decomposition` must be a ModalDecomposition; got {type(decomposition).__name__}.")
    horizon = check_positive("horizon", horizon)
    share = check_positive("share", share)
    if share > 1:
        raise ValueError(f"`share` must be in (0, 1]; got {share}.")
    mass = decomposition.mass(horizon)
    total = float(np.sum(mass))
    shares = mass / total if total > 0 and np.isfinite(total) else np.zeros_like(mass)
    used = shares >= share
    mu = decomposition.margins
    value = float(mu[used].min()) if used.any() else float(mu.min())
    return EffectiveMargin(value, float(mu.min()), used, shares, float(np.abs(decomposition.residues).sum()))


# -- the linear frontier ------------------------------------------------------


def window_weights(n: int) -> np.ndarray:
    r"""Weights ``w_j = (n - j) / n``, shape (n,): on i.i.d. unit-variance inputs of length ``n``
    from rest, a linear kernel ``r`` has output mean square ``sum_j w_j r_j^2``.

    So the relative MSE of a linear model with kernel ``r`` against a target
    with kernel ``rho`` is ``sum_j w_j (r_j - rho_j)^2 / sum_j w_j rho_j^2``.
    """
    n = check_int("n", n, minimum=1)
    return (n - np.arange(n, dtype=float)) / n


_FRONTIER_RATE_MAX = 20.0   # poles e^{-20} ~ 2e-9: faster modes act within one step
_FRONTIER_POLES = 160


def _pole_grid(margin: float, n_poles: int) -> np.ndarray:
    """Poles in ``[0, 1 - margin]``: ``1 - margin`` itself, a log grid of rates beyond, and 0."""
    if margin >= 1.0:
        return np.array([0.0])
    r0 = -math.log1p(-margin) if margin > 0 else 1e-6
    rates = np.geomspace(r0, max(_FRONTIER_RATE_MAX, 2 * r0), n_poles)
    return np.concatenate([np.exp(-rates), [0.0]])


@dataclass(frozen=True)
class FrontierFit:
    """Result of :func:`frontier_error`.

    Attributes
    ----------
    error : float
        Smallest relative MSE (window-weighted) reached.
    l1 : float
        ``sum |a_k|`` of the fit (``<= l1_bound``).
    poles, weights : ndarray
        The fit ``r_j = sum_k a_k p_k^j`` (zero weights dropped).
    """

    error: float
    l1: float
    poles: np.ndarray
    weights: np.ndarray


def _nnls_l1(M: np.ndarray, y: np.ndarray, bound: float) -> np.ndarray:
    """``min |M x - y|`` over ``x >= 0`` with ``sum x <= bound``, as one NNLS.

    A slack ``s >= 0`` turns the bound into ``sum x + s = bound``, enforced by
    a row of weight ``K = 1e4 |M|_2``: the equality then holds to about
    ``1e-12`` relative, and the error matches a bisection on a penalty row's
    weight and an SLSQP solve (tests/test_margins.py) while costing one NNLS.
    """
    k = M.shape[1]
    K = 1e4 * max(float(np.linalg.norm(M, 2)), 1e-300)
    A = np.vstack([np.hstack([M, np.zeros((M.shape[0], 1))]), np.full((1, k + 1), K)])
    x, _ = nnls(A, np.concatenate([y, [K * bound]]), maxiter=50 * (k + 1))
    x = x[:k]
    s = float(x.sum())
    return x * (bound / s) if s > bound else x


def frontier_error(rho, margin: float, *, l1_bound: float = math.inf, n_poles: int = _FRONTIER_POLES) -> FrontierFit:
    r"""The best window-weighted relative MSE of a discrete linear kernel whose poles keep a margin.

    .. math::

        E(\mu) = \min \frac{\sum_j w_j (r_j - \rho_j)^2}{\sum_j w_j \rho_j^2},
        \quad r_j = \sum_k a_k p_k^j, \; 0 \le p_k \le 1 - \mu, \; \sum_k |a_k| \le B,

    with ``w_j`` from :func:`window_weights`: NNLS on ``[P, -P]`` (both signs)
    over a grid of real poles (``1 - mu`` itself, ``n_poles`` log-spaced rates
    up to 20 per step, and 0), the l1 bound as an equality with a slack
    enforced by a heavily weighted row.  Real non-negative poles are a choice: completely
    monotone targets need no others.

    Parameters
    ----------
    rho : array_like, shape (n,)
        Target kernel on ``j = 0..n-1``.
    margin : float
        ``mu`` in ``[0, 1]``.
    l1_bound : float
        ``B > 0`` (``inf``: no bound).
    n_poles : int

    Returns
    -------
    FrontierFit
    """
    rho = as_float_array("rho", rho, ndim=1)
    margin = float(margin)
    if not (0.0 <= margin <= 1.0):
        raise ValueError(f"`margin` must be in [0, 1]; got {margin}.")
    l1_bound = check_positive("l1_bound", l1_bound, allow_inf=True)
    n_poles = check_int("n_poles", n_poles, minimum=2)
    n = rho.size
    w = np.sqrt(window_weights(n))
    poles = _pole_grid(margin, n_poles)
    P = poles[None, :] ** np.arange(n)[:, None]
    M = w[:, None] * np.hstack([P, -P])
    y = w * rho
    x = _nnls_l1(M, y, l1_bound) if math.isfinite(l1_bound) else nnls(M, y, maxiter=50 * M.shape[1])[0]
    a = x[:poles.size] - x[poles.size:]
    keep = a != 0
    scale = float(np.max(np.abs(y))) or 1.0  # relative error computed on scaled vectors: no overflow for huge rho
    err = float(np.sum(((M @ x - y) / scale) ** 2) / np.sum((y / scale) ** 2))
    return FrontierFit(err, float(np.abs(a).sum()), poles[keep], a[keep])


def linear_frontier(rho, errors, *, l1_bound: float = math.inf, n_poles: int = _FRONTIER_POLES, tol: float = 1e-4) -> np.ndarray:
    r"""``mu*(E; H, B)``: the largest margin at which a linear recurrence reaches each error.

    ``E(mu)`` (:func:`frontier_error`) is non-decreasing in ``mu`` up to the
    pole grid; ``mu*(E) = max{mu : E(mu) <= E}`` is found by bisection on
    ``mu`` in ``[0, 1]`` to ``tol``.

    Parameters
    ----------
    rho : array_like, shape (n,)
        Target kernel on the window ``j = 0..H-1``.
    errors : array_like, shape (k,)
        Relative MSEs ``E > 0``.
    l1_bound : float
        ``B``.
    n_poles : int
    tol : float
        Absolute tolerance on ``mu``.

    Returns
    -------
    ndarray, shape (k,)
        ``mu*``; 0.0 where even ``mu = 0`` does not reach ``E``.
    """
    rho = as_float_array("rho", rho, ndim=1)
    errors = as_float_array("errors", errors, ndim=1)
    if np.any(errors <= 0):
        raise ValueError("`errors` must be positive.")
    tol = check_positive("tol", tol)
    cache: dict = {}

    def E(mu):
        key = round(mu, 12)
        if key not in cache:
            cache[key] = frontier_error(rho, mu, l1_bound=l1_bound, n_poles=n_poles).error
        return cache[key]

    out = np.zeros(errors.size)
    for i, target in enumerate(errors):
        if E(0.0) > target:
            continue
        lo, hi = 0.0, 1.0
        if E(1.0) <= target:
            out[i] = 1.0
            continue
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            if E(mid) <= target:
                lo = mid
            else:
                hi = mid
        out[i] = lo
    return out
