"""System norms of linear time-invariant models: Gramians, H2, H-infinity, Hankel singular values.

A module of its own (not :mod:`dynmem.spectra`): spectra is ground-level
linear algebra on one matrix ``W``, while a system norm is a property of the
whole input-output map ``(A, B, C, D)`` of a *model* (docs/theory.md section 9).
The functions take any model with the :class:`~dynmem.models.LinearSystem`
capability (``LinearRNN``, ``DiagonalSSM``, ``DiscreteDiagonalSSM``, an
identity-activation ``DiscreteRNN`` / ``EulerRNN``) or a tuple
``(A, B, C[, D])`` with ``discrete=`` stating the time base.

Continuous time (``A`` Hurwitz), transfer ``G(s) = C (s I - A)^{-1} B + D``::

    A P + P A^T + B B^T = 0,        A^T Q + Q A + C^T C = 0          (Gramians)
    |G|_2^2   = tr(C P C^T) = int_0^inf |C e^{A t} B|_F^2 dt           (D = 0; infinite otherwise)
    |G|_inf   = sup_omega sigma_max(G(i omega))
    sigma_i^H = sqrt(lambda_i(P Q))                                   (Hankel singular values)

Discrete time (``A`` Schur stable), ``G(z) = C (z I - A)^{-1} B + D``::

    A P A^T - P + B B^T = 0,        A^T Q A - Q + C^T C = 0          (Stein equations)
    |G|_2^2   = tr(C P C^T) + tr(D D^T) = sum_k |g_k|_F^2,  g_0 = D, g_k = C A^{k-1} B
    |G|_inf   = sup_theta sigma_max(G(e^{i theta}))

The H-infinity norm is computed by the Boyd-Balakrishnan / Bruinsma-Steinbuch
iteration: ``gamma`` is a singular value of ``G(i omega)`` exactly when
``i omega`` is an eigenvalue of the Hamiltonian matrix ``H(gamma)``; the
imaginary eigenvalues bracket the frequency intervals where
``sigma_max > gamma``, whose midpoints raise the lower bound (quadratic
convergence).  A discrete system is first mapped by the bilinear map
``z = (1 + s) / (1 - s)``, which preserves the norm and sends
``theta = 2 arctan(omega)``.

References
----------
.. [BB] S. Boyd, V. Balakrishnan, Systems & Control Letters 15(1), 1-7, 1990.
.. [BS] N. A. Bruinsma, M. Steinbuch, *A fast algorithm to compute the
   H-infinity norm of a transfer function matrix*, Systems & Control Letters
   14(4), 287-293, 1990.
.. [ZDG] K. Zhou, J. Doyle, K. Glover, *Robust and Optimal Control*, 1996
   (chapters 4 and 21: Gramians, Hankel singular values, the bilinear map).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ._validation import as_float_array, check_int, check_positive, describe
from .models import DiscreteModel, LinearSystem

__all__ = ["StateSpace", "state_space", "Gramians", "gramians", "h2_norm", "HinfNorm", "hinf_norm",
           "hankel_singular_values", "frequency_response"]


@dataclass(frozen=True, eq=False)
class StateSpace:
    """A real LTI system ``(A, B, C, D)`` and its time base.

    Attributes
    ----------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, d)
    C : ndarray, shape (p, n)
    D : ndarray, shape (p, d)
    discrete : bool
        ``s_{k+1} = A s_k + B x_k`` if True, ``ds/dt = A s + B x`` otherwise; ``y = C s + D x``.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    discrete: bool

    @property
    def order(self) -> int:
        """State dimension n."""
        return self.A.shape[0]


def state_space(system, *, discrete: bool | None = None) -> StateSpace:
    """The real ``(A, B, C, D)`` of a linear model or of a tuple.

    Parameters
    ----------
    system : LinearSystem model or tuple
        A model with ``linear_system()`` (its time base is read from the
        :class:`~dynmem.models.DiscreteModel` capability), or ``(A, B, C)`` /
        ``(A, B, C, D)`` arrays of shapes (n, n), (n, d), (p, n) or (n,), (p, d).
    discrete : bool, optional
        Required for a tuple; for a model it must agree with the model if given.

    Returns
    -------
    StateSpace
    """
    if isinstance(system, tuple):
        if discrete is None:
            raise ValueError("`discrete` must be given (True or False) when `system` is a tuple (A, B, C[, D]).")
        if len(system) not in (3, 4):
            raise ValueError(f"`system` must be a tuple (A, B, C) or (A, B, C, D); got a tuple of length {len(system)}.")
        A, B, C = system[:3]
        D = system[3] if len(system) == 4 else None
        is_discrete = bool(discrete)
    elif isinstance(system, LinearSystem):
        A, B, C, D = system.linear_system()
        is_discrete = isinstance(system, DiscreteModel)
        if discrete is not None and bool(discrete) != is_discrete:
            raise ValueError(f"`discrete` must match the model: {type(system).__name__} is "
                             f"{'discrete' if is_discrete else 'continuous'}; got discrete={discrete!r}.")
    else:
        raise TypeError(f"`system` must be a model with linear_system() or a tuple (A, B, C[, D]); got {describe(system)}.")
    A = as_float_array("A", A, ndim=2)
    n = A.shape[0]
    if A.shape != (n, n) or n < 1:
        raise ValueError(f"`A` must be square (n, n) with n >= 1; got shape {A.shape}.")
    B = as_float_array("B", B, ndim=(1, 2))
    B = B[:, None] if B.ndim == 1 else B
    if B.shape[0] != n:
        raise ValueError(f"`B` must have shape ({n}, d) to match `A`; got shape {B.shape}.")
    C = as_float_array("C", C, ndim=(1, 2))
    C = C[None, :] if C.ndim == 1 else C
    if C.shape[1] != n:
        raise ValueError(f"`C` must have shape (p, {n}) to match `A`; got shape {C.shape}.")
    D = np.zeros((C.shape[0], B.shape[1])) if D is None else as_float_array("D", D, ndim=(0, 1, 2))
    D = np.atleast_2d(D)
    if D.shape != (C.shape[0], B.shape[1]):
        raise ValueError(f"`D` must have shape ({C.shape[0]}, {B.shape[1]}) to match `C` and `B`; got shape {D.shape}.")
    return StateSpace(A, B, C, D, is_discrete)


def _check_stable(ss: StateSpace) -> None:
    lam = np.linalg.eigvals(ss.A)
    if ss.discrete:
        r = float(np.max(np.abs(lam)))
        if not r < 1.0:
            raise ValueError(f"`A` must be Schur stable (spectral radius < 1) for a discrete-time norm; got radius {r:.6g}.")
    else:
        a = float(np.max(lam.real))
        if not a < 0.0:
            raise ValueError(f"`A` must be Hurwitz (spectral abscissa < 0) for a continuous-time norm; got abscissa {a:.6g}.")


@dataclass(frozen=True, eq=False)
class Gramians:
    """Controllability and observability Gramians.

    Attributes
    ----------
    P : ndarray, shape (n, n)
        Controllability Gramian (``A P + P A^T + B B^T = 0``, or the Stein equation).
    Q : ndarray, shape (n, n)
        Observability Gramian (``A^T Q + Q A + C^T C = 0``, or the Stein equation).
    discrete : bool
    residual : float
        The larger relative residual of the two equations.
    """

    P: np.ndarray
    Q: np.ndarray
    discrete: bool
    residual: float


def _gramians(ss: StateSpace) -> Gramians:
    A, B, C = ss.A, ss.B, ss.C
    BB, CC = B @ B.T, C.T @ C
    if ss.discrete:
        P = scipy.linalg.solve_discrete_lyapunov(A, BB)
        Q = scipy.linalg.solve_discrete_lyapunov(A.T, CC)
        rp = A @ P @ A.T - P + BB
        rq = A.T @ Q @ A - Q + CC
    else:
        P = scipy.linalg.solve_continuous_lyapunov(A, -BB)
        Q = scipy.linalg.solve_continuous_lyapunov(A.T, -CC)
        rp = A @ P + P @ A.T + BB
        rq = A.T @ Q + Q @ A + CC
    P, Q = (P + P.T) / 2, (Q + Q.T) / 2
    scale_p = max(np.linalg.norm(BB), np.linalg.norm(A) ** 2 * np.linalg.norm(P), 1e-300)
    scale_q = max(np.linalg.norm(CC), np.linalg.norm(A) ** 2 * np.linalg.norm(Q), 1e-300)
    res = max(np.linalg.norm(rp) / scale_p, np.linalg.norm(rq) / scale_q)
    return Gramians(P, Q, ss.discrete, float(res))


def gramians(system, *, discrete: bool | None = None) -> Gramians:
    """Controllability and observability Gramians of a stable LTI system.

    Parameters
    ----------
    system, discrete
        As in :func:`state_space`.

    Returns
    -------
    Gramians

    Notes
    -----
    .. math:: A P + P A^T + B B^T = 0, \\qquad A^T Q + Q A + C^T C = 0

    (continuous, :func:`scipy.linalg.solve_continuous_lyapunov`), or
    :math:`A P A^T - P + B B^T = 0`, :math:`A^T Q A - Q + C^T C = 0`
    (discrete, :func:`scipy.linalg.solve_discrete_lyapunov`).  ``A`` must be
    Hurwitz (Schur stable).
    """
    ss = state_space(system, discrete=discrete)
    _check_stable(ss)
    return _gramians(ss)


def h2_norm(system, *, discrete: bool | None = None) -> float:
    """The H2 norm: the root mean square output under unit white-noise input.

    .. math:: \\|G\\|_2^2 = \\operatorname{tr}(C P C^T) = \\int_0^\\infty \\|C e^{At} B\\|_F^2\\,dt

    (continuous; ``inf`` when ``D != 0``), and
    :math:`\\operatorname{tr}(C P C^T) + \\operatorname{tr}(D D^T) = \\sum_k \\|g_k\\|_F^2` (discrete).
    For a scalar-output model it is the L2 norm of the memory kernel ``rho``.

    Parameters
    ----------
    system, discrete
        As in :func:`state_space`.

    Returns
    -------
    float
    """
    ss = state_space(system, discrete=discrete)
    _check_stable(ss)
    if not ss.discrete and np.any(ss.D != 0):
        return float("inf")
    P = _gramians(ss).P
    val = float(np.trace(ss.C @ P @ ss.C.T))
    if ss.discrete:
        val += float(np.sum(ss.D ** 2))
    return float(np.sqrt(max(val, 0.0)))


def hankel_singular_values(system, *, discrete: bool | None = None) -> np.ndarray:
    """Hankel singular values ``sqrt(eig(P Q))``, descending; shape (n,).

    Computed as the singular values of ``L_Q^T L_P`` with ``P = L_P L_P^T``,
    ``Q = L_Q L_Q^T`` (symmetric square roots through the eigen-decomposition,
    so a singular Gramian is fine), which is what ``sqrt(eig(P Q))`` is
    without forming the non-symmetric product.

    Parameters
    ----------
    system, discrete
        As in :func:`state_space`.
    """
    ss = state_space(system, discrete=discrete)
    _check_stable(ss)
    g = _gramians(ss)

    def root(M):
        w, V = np.linalg.eigh(M)
        return V * np.sqrt(np.clip(w, 0.0, None))

    return np.linalg.svd(root(g.Q).T @ root(g.P), compute_uv=False)


def frequency_response(system, omega, *, discrete: bool | None = None) -> np.ndarray:
    """``G(i omega)`` (continuous) or ``G(e^{i omega})`` (discrete) at each frequency; shape (k, p, d), complex.

    Parameters
    ----------
    system, discrete
        As in :func:`state_space`.
    omega : array_like, shape (k,)
        Angular frequencies (radians per unit time, or per step for a discrete system).
    """
    ss = state_space(system, discrete=discrete)
    omega = as_float_array("omega", omega, ndim=1)
    return _freq(ss, omega)


def _freq(ss: StateSpace, omega: np.ndarray) -> np.ndarray:
    s = np.exp(1j * omega) if ss.discrete else 1j * omega
    # eigen-decomposition once when A is diagonalisable and well conditioned; a solve per frequency otherwise
    n = ss.order
    out = np.empty((omega.size, ss.C.shape[0], ss.B.shape[1]), dtype=complex)
    for i, si in enumerate(s):
        out[i] = ss.C @ np.linalg.solve(si * np.eye(n) - ss.A, ss.B) + ss.D
    return out


def _sigma_max(ss: StateSpace, omega: float) -> float:
    return float(np.linalg.svd(_freq(ss, np.array([omega]))[0], compute_uv=False)[0])


def _to_continuous(ss: StateSpace) -> StateSpace:
    """The bilinear image ``z = (1 + s)/(1 - s)`` of a Schur-stable discrete system (same H-infinity norm)."""
    n = ss.order
    M = np.linalg.inv(ss.A + np.eye(n))
    Ac = M @ (ss.A - np.eye(n))
    Bc = np.sqrt(2.0) * M @ ss.B
    Cc = np.sqrt(2.0) * ss.C @ M
    Dc = ss.D - ss.C @ M @ ss.B
    return StateSpace(Ac, Bc, Cc, Dc, False)


def _hamiltonian_crossings(ss: StateSpace, gamma: float, tol: float) -> np.ndarray:
    """The frequencies omega >= 0 at which gamma is a singular value of G(i omega)."""
    A, B, C, D = ss.A, ss.B, ss.C, ss.D
    R = gamma ** 2 * np.eye(D.shape[1]) - D.T @ D
    S = gamma ** 2 * np.eye(D.shape[0]) - D @ D.T
    Ri = np.linalg.inv(R)
    F = A + B @ Ri @ D.T @ C
    H = np.block([[F, B @ Ri @ B.T], [-gamma ** 2 * C.T @ np.linalg.inv(S) @ C, -F.T]])
    lam = np.linalg.eigvals(H)
    scale = max(1.0, np.max(np.abs(lam)))
    on_axis = np.abs(lam.real) <= tol * scale
    w = np.sort(np.abs(lam[on_axis].imag))
    if w.size:  # conjugate pairs give each frequency twice; keep one of each cluster
        keep = np.concatenate([[True], np.diff(w) > tol * scale])
        w = w[keep]
    return w


@dataclass(frozen=True, eq=False)
class HinfNorm:
    """Result of :func:`hinf_norm`.

    Attributes
    ----------
    norm : float
        ``sup sigma_max(G)`` over the imaginary axis (unit circle).
    frequency : float
        A frequency where the supremum is attained (``omega``, or ``theta`` in
        ``[0, pi]`` for a discrete system; ``inf`` when it is approached as
        ``omega -> infinity``).
    lower, upper : float
        The final bracket, ``upper <= lower (1 + 2 rtol)``.
    iterations : int
    success : bool
    message : str
    """

    norm: float
    frequency: float
    lower: float
    upper: float
    iterations: int
    success: bool
    message: str


def hinf_norm(system, *, discrete: bool | None = None, rtol: float = 1e-10, maxiter: int = 100) -> HinfNorm:
    """The H-infinity norm ``sup_omega sigma_max(G(i omega))`` by Hamiltonian bisection.

    Parameters
    ----------
    system, discrete
        As in :func:`state_space`.  ``A`` must be Hurwitz (Schur stable).
    rtol : float
        Relative width of the final bracket.
    maxiter : int

    Returns
    -------
    HinfNorm

    Notes
    -----
    [BB]/[BS]: with :math:`R = \\gamma^2 I - D^T D`, :math:`S = \\gamma^2 I - D D^T`,

    .. math::

        H(\\gamma) = \\begin{pmatrix} A + B R^{-1} D^T C & B R^{-1} B^T \\\\
                     -\\gamma^2 C^T S^{-1} C & -(A + B R^{-1} D^T C)^T \\end{pmatrix}

    has the eigenvalue :math:`i\\omega` iff :math:`\\gamma` is a singular value
    of :math:`G(i\\omega)`.  The lower bound starts at the largest of
    ``sigma_max(D)``, ``sigma_max(G(0))`` and ``sigma_max(G(i |lambda|))`` at
    the eigenvalue of ``A`` with the smallest damping ratio; each iteration
    tests ``gamma = (1 + 2 rtol) * lower`` and moves the lower bound to the
    best midpoint of the crossing intervals until no crossing remains.
    Discrete systems go through the norm-preserving bilinear map.
    """
    ss = state_space(system, discrete=discrete)
    _check_stable(ss)
    rtol = check_positive("rtol", rtol)
    maxiter = check_int("maxiter", maxiter, minimum=1)
    cs = _to_continuous(ss) if ss.discrete else ss

    def back(w):
        return float(2 * np.arctan(w)) if ss.discrete else float(w)

    lam = np.linalg.eigvals(cs.A)
    cand = [0.0]
    damping = np.abs(lam.real) / np.maximum(np.abs(lam), 1e-300)
    cand.append(float(np.abs(lam[np.argmin(damping)])))
    cand.append(float(np.abs(lam).max()))
    vals = [_sigma_max(cs, w) for w in cand]
    i = int(np.argmax(vals))
    lower, w_best = vals[i], cand[i]
    d_norm = float(np.linalg.norm(cs.D, 2)) if cs.D.size else 0.0
    if d_norm > lower:
        lower, w_best = d_norm, np.inf
    if lower == 0.0:
        return HinfNorm(0.0, 0.0, 0.0, 0.0, 0, True, "G is identically zero")
    eig_tol = 1e-8
    for it in range(1, maxiter + 1):
        gamma = (1 + 2 * rtol) * lower
        w = _hamiltonian_crossings(cs, gamma, eig_tol)
        if w.size == 0:
            return HinfNorm(lower, back(w_best), lower, gamma, it, True, "converged")
        mids = (w[:-1] + w[1:]) / 2 if w.size > 1 else np.array([w[0]])
        mids = np.concatenate([mids, w])
        sv = np.array([_sigma_max(cs, m) for m in mids])
        j = int(np.argmax(sv))
        if sv[j] <= lower:
            # the crossings are rounding artefacts of a flat peak: the bracket is closed numerically
            return HinfNorm(lower, back(w_best), lower, gamma, it, True, "converged (flat peak)")
        lower, w_best = float(sv[j]), float(mids[j])
    return HinfNorm(lower, back(w_best), lower, np.inf, maxiter, False, f"no convergence in {maxiter} iterations")
