"""Spectral quantities of a recurrent matrix and the bounds they give.

Everything here is about a single real square matrix ``W`` (the recurrent
weight of a linear RNN, or the Jacobian of a CTRNN at an equilibrium) and the
flow ``e^{W t}`` it generates (docs/theory.md sections 3 and 6):

=========================  ====================================================
spectral abscissa          ``alpha(W) = max Re lambda(W)``; ``W`` is *Hurwitz*
                           when ``alpha(W) < 0``
spectral radius            ``rho(W) = max |lambda(W)|`` (discrete time)
logarithmic norm           ``mu(W) = lim_{h->0+} (|I + h W| - 1) / h``
stability radius           ``r(W) = min_omega sigma_min(W - i omega I)``
Lyapunov solution          ``P`` with ``W^T P + P W = -Q``
transient growth           ``|e^{W t}|_2`` and its supremum over ``t >= 0``
eigenvector condition      ``kappa(V) = |V|_2 |V^{-1}|_2``
=========================  ====================================================

For a *normal* ``W`` (``W W^T = W^T W``) all of these agree with the spectrum:
``|e^{Wt}|_2 = e^{alpha t}``, ``r(W) = -alpha(W)``, ``|P|_2 = 1 / (2 beta)``
with ``beta = -alpha(W)`` and ``kappa(V) = 1``.  For a non-normal ``W`` they
do not, which is why [WLL] Lemma A.8 (``|P|_2 <= 1 / (2 beta)``) holds for
normal matrices only (:func:`lemma_a8_ratio`).

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
.. [Byers] R. Byers, *A bisection method for measuring the distance of a
   stable matrix to the unstable matrices*, SIAM J. Sci. Stat. Comput. 9(5),
   875-881, 1988.
.. [BB] S. Boyd, V. Balakrishnan, *A regularity result for the singular
   values of a transfer matrix and a quadratically convergent algorithm for
   computing its L-infinity norm*, Systems & Control Letters 15(1), 1-7, 1990.
.. [TE] L. N. Trefethen, M. Embree, *Spectra and Pseudospectra*, Princeton
   University Press, 2005 (chapters 14-17: transient growth and its bounds).
.. [Sod] G. Soederlind, *The logarithmic norm. History and modern theory*,
   BIT 46, 631-652, 2006.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from ._validation import as_float_array, as_square_matrix, check_nonnegative, check_positive, describe
from .errors import FloatOverflowError

__all__ = [
    "spectral_abscissa",
    "spectral_radius",
    "departure_from_normality",
    "log_norm",
    "is_hurwitz",
    "check_hurwitz",
    "StabilityRadius",
    "stability_radius",
    "lyapunov",
    "LyapunovBound",
    "lyapunov_decay_bound",
    "lemma_a8_ratio",
    "transient_growth",
    "TransientGrowth",
    "max_transient_growth",
    "eigenvector_condition",
    "SpectralSummary",
    "spectral_summary",
]

_EPS = np.finfo(np.float64).eps

# Batched expm: cap each batch at about 2**21 float64 entries (16 MB).
_EXPM_BATCH_ENTRIES = 2**21

# max_transient_growth: the grid certificate is closed when no grid interval
# can hide a value above (1 + _GROWTH_CERT_RTOL) * best; evaluation budget.
_GROWTH_CERT_RTOL = 1e-2
_GROWTH_MAX_EVALUATIONS = 20_000
_GROWTH_GRID_POINTS = 128

# Relative residual above which a Lyapunov solve is reported as failed.
# Bartels-Stewart has residual ~ m eps (|W| |P| + |Q|); this is 1e7 times that.
_LYAPUNOV_RESIDUAL_RTOL = 1e-8


# -- validation -------------------------------------------------------------


def _square(name: str, value) -> np.ndarray:
    """A real, finite, non-empty square float64 matrix (the shared entry check)."""
    return as_square_matrix(name, value)


def _symmetric_psd(name: str, value, m: int, *, definite: bool) -> np.ndarray:
    """A symmetric positive (semi-)definite (m, m) matrix, symmetrised exactly."""
    Q = as_float_array(name, value, shape=(m, m))
    scale = float(np.max(np.abs(Q))) if Q.size else 0.0
    asym = float(np.max(np.abs(Q - Q.T)))
    if asym > 1e-10 * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(f"`{name}` must be symmetric; got max |{name} - {name}^T| = {asym:.3g}.")
    Q = 0.5 * (Q + Q.T)
    lam_min = float(scipy.linalg.eigvalsh(Q, check_finite=False)[0])
    if definite and not lam_min > 0:
        raise ValueError(f"`{name}` must be positive definite; got smallest eigenvalue {lam_min:.6g}.")
    if not definite and lam_min < -100 * m * _EPS * scale:
        raise ValueError(f"`{name}` must be positive semi-definite; got smallest eigenvalue {lam_min:.6g}.")
    return Q


def _eigvals(W: np.ndarray) -> np.ndarray:
    """Eigenvalues of a finite real square matrix, robust to the scale of its entries.

    A triangular (in particular diagonal) ``W`` gets its diagonal, exactly.
    Otherwise ``W`` is scaled by a power of two near ``1 / max |W_ij|`` (exact
    in binary floating point, so no rounding is added and ``W W`` cannot
    overflow inside LAPACK) and handed to LAPACK ``geev`` through
    :func:`numpy.linalg.eigvals`, which balances (permutes and scales) first;
    the eigenvalues are scaled back.  ``scipy.linalg.eigvals`` returned
    1.5e138 for ``diag(1e200, -1)`` (issue 16); this path returns 1e200.
    Eigenvalues are backward stable with respect to ``max |W_ij|``: an
    eigenvalue much smaller than the largest entry of a dense ``W`` is only
    known to ``~ eps * max |W_ij|``.
    """
    if W.shape[0] == 1 or not np.any(np.tril(W, -1)) or not np.any(np.triu(W, 1)):
        return np.diag(W).astype(np.complex128)
    big = float(np.max(np.abs(W)))
    if big == 0.0:
        return np.zeros(W.shape[0], dtype=np.complex128)
    e = int(np.frexp(big)[1])
    scaled = np.ldexp(W, -e)
    lam = np.linalg.eigvals(scaled)
    with np.errstate(over="ignore"):
        lam = np.ldexp(lam.real, e) + 1j * np.ldexp(lam.imag, e)
    if not np.all(np.isfinite(lam)):
        raise FloatingPointError(f"an eigenvalue of `W` is not finite (max |W_ij| = {big:.3g}).")
    return lam.astype(np.complex128)


def _mu2(W: np.ndarray) -> float:
    return float(scipy.linalg.eigvalsh(0.5 * (W + W.T), check_finite=False)[-1])


def _hurwitz_error(name: str, alpha: float, margin: float) -> ValueError:
    bound = "0" if margin == 0 else f"-{margin:g}"
    return ValueError(
        f"`{name}` must be Hurwitz (every eigenvalue with real part < {bound}); got spectral abscissa "
        f"alpha({name}) = max Re lambda({name}) = {alpha:.6g}. Shift it, e.g. {name} - s*I with "
        f"s > {alpha + margin:.3g}."
    )


# -- spectrum ---------------------------------------------------------------


def spectral_abscissa(W) -> float:
    r"""Largest real part of the eigenvalues, ``alpha(W)``.

    .. math:: \alpha(W) = \max_i \operatorname{Re} \lambda_i(W)

    Parameters
    ----------
    W : array_like, shape (m, m)
        Real square matrix.

    Returns
    -------
    float
        ``W`` is Hurwitz (the flow ``dh/dt = W h`` decays) iff ``alpha(W) < 0``.
        ``-alpha(W)`` is the spectral gap ``beta`` of [WLL] Theorem 3.9: the
        shift ``W + beta I`` loses stability exactly at ``beta = -alpha(W)``.
    """
    W = _square("W", W)
    return float(np.max(_eigvals(W).real))


def spectral_radius(W) -> float:
    r"""Largest modulus of the eigenvalues, ``rho(W)`` (discrete-time stability).

    .. math:: \rho(W) = \max_i |\lambda_i(W)| = \lim_{k \to \infty} \|W^k\|^{1/k}

    The recurrence ``h_{k+1} = W h_k`` is asymptotically stable iff ``rho(W) < 1``.

    Parameters
    ----------
    W : array_like, shape (m, m)

    Returns
    -------
    float
    """
    W = _square("W", W)
    return float(np.max(np.abs(_eigvals(W))))


def departure_from_normality(W) -> float:
    r"""Henrici's departure from normality (Frobenius norm).

    .. math::

        \operatorname{dep}_F(W) = \Big(\|W\|_F^2 - \sum_i |\lambda_i(W)|^2\Big)^{1/2},

    the Frobenius norm of the strictly upper part of any Schur form of ``W``;
    0 iff ``W`` is normal.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Real, finite, square.

    Returns
    -------
    float
        ``dep_F(W) >= 0`` (rounding can make ``|W|_F^2 - sum |lambda|^2``
        slightly negative for a normal ``W``; it is clipped at 0).
    """
    W = _square("W", W)
    lam = np.linalg.eigvals(W)
    return float(math.sqrt(max(0.0, float(np.sum(W * W)) - float(np.sum(np.abs(lam) ** 2)))))


def log_norm(W, ord=2) -> float:
    r"""Logarithmic norm ``mu(W)`` induced by the vector 1-, 2- or inf-norm.

    .. math::

        \mu(W) = \lim_{h \to 0^+} \frac{\|I + h W\| - 1}{h}, \qquad
        \|e^{W t}\| \le e^{\mu(W) t} \quad (t \ge 0),

    with the closed forms ([Sod])

    .. math::

        \mu_2(W) = \lambda_{\max}\Big(\frac{W + W^T}{2}\Big), \quad
        \mu_1(W) = \max_j \Big(w_{jj} + \sum_{i \ne j} |w_{ij}|\Big), \quad
        \mu_\infty(W) = \max_i \Big(w_{ii} + \sum_{j \ne i} |w_{ij}|\Big).

    Always ``alpha(W) <= mu(W)``, with equality for ``ord=2`` when ``W`` is normal.

    Parameters
    ----------
    W : array_like, shape (m, m)
    ord : {2, 1, numpy.inf}
        The vector norm (as in :func:`numpy.linalg.norm`).

    Returns
    -------
    float
    """
    W = _square("W", W)
    known = not isinstance(ord, (bool, np.bool_)) and isinstance(ord, numbers.Real) and ord in (1, 2, np.inf)
    if not known:
        raise ValueError(f"`ord` must be one of 1, 2, numpy.inf; got {describe(ord)}.")
    if ord == 2:
        return _mu2(W)
    A = np.abs(W)
    diag = np.diag(W)
    if ord == 1:  # column sums: the induced 1-norm is the max column sum
        return float(np.max(diag + A.sum(axis=0) - np.abs(diag)))
    return float(np.max(diag + A.sum(axis=1) - np.abs(diag)))


def is_hurwitz(W, margin: float = 0.0) -> bool:
    """Whether ``alpha(W) < -margin``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    margin : float
        Non-negative stability margin; ``margin=0`` tests plain Hurwitz stability.

    Returns
    -------
    bool
    """
    W = _square("W", W)
    margin = check_nonnegative("margin", margin)
    return bool(np.max(_eigvals(W).real) < -margin)


def check_hurwitz(W, margin: float = 0.0, name: str = "W") -> float:
    """Raise unless ``alpha(W) < -margin``; return ``alpha(W)``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    margin : float
        Non-negative stability margin.
    name : str
        The argument name quoted in the error message.

    Returns
    -------
    float
        The spectral abscissa ``alpha(W)``, so that callers get ``beta = -alpha`` for free.

    Raises
    ------
    ValueError
        If ``W`` is not Hurwitz with the margin; the message gives the measured ``alpha(W)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string; got {describe(name)}.")
    W = _square(name, W)
    margin = check_nonnegative("margin", margin)
    alpha = float(np.max(_eigvals(W).real))
    if not alpha < -margin:
        raise _hurwitz_error(name, alpha, margin)
    return alpha


def eigenvector_condition(W, *, rtol: float | None = None) -> float:
    r"""Condition number ``kappa(V)`` of the eigenvector matrix, columns normalised.

    .. math::

        W = V \Lambda V^{-1}, \quad \|v_i\|_2 = 1, \qquad
        \kappa(V) = \|V\|_2 \|V^{-1}\|_2
                   = \frac{\sigma_{\max}(V)}{\sigma_{\min}(V)} \ge 1,

    and ``|e^{Wt}|_2 <= kappa(V) e^{alpha(W) t}`` ([TE] section 15).
    ``kappa(V) = 1`` iff ``W`` is normal (orthonormal eigenvectors).

    Parameters
    ----------
    W : array_like, shape (m, m)
    rtol : float, optional
        ``V`` counts as singular, and ``kappa(V) = inf`` is returned, when
        ``sigma_min(V) <= rtol * sigma_max(V)``.  Default ``m * eps``.

    Returns
    -------
    float
        ``inf`` for a defective ``W`` whose eigenvectors come out parallel to
        working precision (an exact Jordan block in triangular form gives
        this).  Caveat: rounding usually *splits* a repeated eigenvalue of a
        defective matrix that is not triangular, so it returns a large finite
        value instead (about ``eps^{-(k-1)/k}`` for a Jordan block of size
        ``k``, e.g. ``~1e8`` for ``k = 2``).  Pass ``rtol=1e-8`` (or so) to
        report those as ``inf`` as well, at the price of also flagging
        genuinely diagonalisable matrices that are that ill-conditioned.
    """
    W = _square("W", W)
    m = W.shape[0]
    rtol = m * _EPS if rtol is None else check_positive("rtol", rtol)
    _, V = scipy.linalg.eig(W, check_finite=False)
    V = V / np.linalg.norm(V, axis=0)
    s = scipy.linalg.svdvals(V, check_finite=False)
    if s[-1] <= rtol * s[0]:
        return math.inf
    return float(s[0] / s[-1])


# -- stability radius -------------------------------------------------------


@dataclass(frozen=True)
class StabilityRadius:
    """Result of :func:`stability_radius`.

    Attributes
    ----------
    value : float
        ``sigma_min(W - i omega I)`` at the returned ``omega``: an upper bound
        for ``r(W)`` that is attained, within ``2 * rtol`` relative of ``r(W)``
        on success.
    omega : float
        A minimising frequency, ``omega >= 0`` (the function is even in ``omega``
        for real ``W``, so ``-omega`` minimises too).
    lower_bound : float
        ``gamma`` with ``r(W) >= gamma`` certified by the Hamiltonian matrix
        ``H(gamma)`` having no imaginary eigenvalue ([Byers]); 0 (the
        trivial bound) when the iteration stopped on stagnation instead.
    iterations : int
        Hamiltonian eigenvalue solves.
    method : str
    success : bool
    message : str
    """

    value: float
    omega: float
    lower_bound: float
    iterations: int
    method: str
    success: bool
    message: str


def _sigma_min(W: np.ndarray, omega) -> np.ndarray:
    """``sigma_min(W - i omega I)`` for an array of frequencies (batched SVD)."""
    omega = np.atleast_1d(np.asarray(omega, dtype=np.float64))
    m = W.shape[0]
    A = np.broadcast_to(W.astype(np.complex128), (omega.size, m, m)).copy()
    idx = np.arange(m)
    A[:, idx, idx] -= 1j * omega[:, None]
    return np.linalg.svd(A, compute_uv=False)[:, -1]


def _imaginary_crossings(W: np.ndarray, gamma: float) -> np.ndarray:
    """Sorted ``omega`` with ``i omega`` an eigenvalue of ``H(gamma)`` (numerically).

    ``H(gamma) = [[W, -gamma I], [gamma I, -W^T]]`` has the eigenvalue
    ``i omega`` iff ``gamma`` is a singular value of ``W - i omega I``.  The
    test ``|Re lambda| <= tol`` is generous on purpose: a spurious crossing only
    adds a trial frequency, a missed one could stop the iteration early.
    """
    m = W.shape[0]
    I = np.eye(m)
    H = np.block([[W, -gamma * I], [gamma * I, -W.T]])
    lam = _eigvals(H)
    tol = 1e-8 * max(float(np.linalg.norm(H, 1)), np.finfo(np.float64).tiny)
    return np.sort(lam.imag[np.abs(lam.real) <= tol])


def stability_radius(W, *, rtol: float = 1e-10, maxiter: int = 100) -> StabilityRadius:
    r"""Complex stability radius (distance to instability) of a Hurwitz matrix.

    .. math::

        r(W) = \min\{\|E\|_2 : W + E \text{ not Hurwitz}, E \in \mathbb{C}^{m \times m}\}
             = \min_{\omega \in \mathbb{R}} \sigma_{\min}(W - i \omega I),

    so ``-mu_2(W) <= r(W) <= -alpha(W)``, with ``r(W) = -alpha(W)`` for
    normal ``W``.  It is measure 4 of the stability boundary in docs/theory.md
    section 3; [WLL] uses the spectral gap ``-alpha(W)``, which overstates the
    robustness of a non-normal ``W``.

    Method: the level-set iteration of [BB] on the criterion of [Byers].
    ``gamma`` is a singular value of ``W - i omega I`` iff ``i omega`` is an
    eigenvalue of the Hamiltonian matrix

    .. math:: H(\gamma) = \begin{bmatrix} W & -\gamma I \\ \gamma I & -W^T \end{bmatrix},

    so ``r(W) < gamma`` iff ``H(gamma)`` has imaginary eigenvalues.  Start
    from the best of ``omega in {0} U {|Im lambda_i(W)|}``; at each step take
    ``gamma`` just below the current best value, read off the imaginary
    eigenvalues ``i omega_1 < ... < i omega_k`` of ``H(gamma)`` and evaluate
    ``sigma_min`` at the midpoints of consecutive ``omega_j``.  The sequence
    decreases to ``r(W)`` quadratically; it stops when ``H(gamma)`` has no
    imaginary eigenvalue (a certificate ``r(W) >= gamma``).  A bounded Brent
    search (:func:`scipy.optimize.minimize_scalar`) then polishes ``omega``.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Hurwitz matrix.
    rtol : float
        Relative accuracy of ``value``.
    maxiter : int
        Cap on Hamiltonian eigenvalue solves.

    Returns
    -------
    StabilityRadius

    Raises
    ------
    ValueError
        If ``W`` is not Hurwitz (the message gives ``alpha(W)``).
    """
    W = _square("W", W)
    rtol = check_positive("rtol", rtol)
    if isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral) or maxiter < 1:
        raise ValueError(f"`maxiter` must be a positive integer; got {describe(maxiter)}.")
    lam = _eigvals(W)
    alpha = float(np.max(lam.real))
    if not alpha < 0:
        raise _hurwitz_error("W", alpha, 0.0)

    cand = np.unique(np.concatenate([[0.0], np.abs(lam.imag)]))
    vals = _sigma_min(W, cand)
    k = int(np.argmin(vals))
    gamma, omega = float(vals[k]), float(cand[k])
    bracket = None  # the crossing interval whose midpoint gave the current best
    lower, success, message, it = 0.0, False, "", 0  # r(W) >= 0: the trivial certificate
    for it in range(1, maxiter + 1):
        level = gamma * (1.0 - 2.0 * rtol)
        pts = _imaginary_crossings(W, level)
        if pts.size == 0:
            lower, success = level, True
            message = "certified: H(gamma) has no imaginary eigenvalue at gamma = (1 - 2 rtol) * value."
            break
        if pts.size == 1:
            mids, lo, hi = pts, pts, pts
        else:
            lo, hi = pts[:-1], pts[1:]
            mids = 0.5 * (lo + hi)
        vals = _sigma_min(W, mids)
        k = int(np.argmin(vals))
        if vals[k] < gamma * (1.0 - rtol):
            gamma, omega, bracket = float(vals[k]), abs(float(mids[k])), (abs(float(lo[k])), abs(float(hi[k])))
            continue
        if vals[k] < gamma:
            gamma, omega = float(vals[k]), abs(float(mids[k]))
        success = True
        message = "converged: the level-set update changed the value by less than rtol."
        break
    else:
        message = f"not converged within maxiter = {maxiter} Hamiltonian eigenvalue solves."

    # Polish omega (sigma_min is flat at its minimum, so this mostly moves omega, not the value).
    if bracket is not None:
        a, b = sorted(bracket)
    else:
        width = max(gamma, abs(omega) * 1e-3, np.finfo(np.float64).tiny)
        a, b = omega - width, omega + width
    if b > a:
        res = scipy.optimize.minimize_scalar(
            lambda w: float(_sigma_min(W, w)[0]), bounds=(a, b), method="bounded",
            options={"xatol": max(1e-12, 1e-10 * abs(omega)) },
        )
        if res.success and res.fun < gamma:
            gamma, omega = float(res.fun), abs(float(res.x))
    return StabilityRadius(
        value=gamma,
        omega=omega,
        lower_bound=lower,
        iterations=it,
        method="Boyd-Balakrishnan level sets of the Byers Hamiltonian, Brent polish",
        success=success,
        message=message,
    )


# -- Lyapunov ---------------------------------------------------------------


def _lyapunov(W: np.ndarray, Q: np.ndarray) -> np.ndarray:
    # scipy solves A X + X A^H = q; A = W^T, q = -Q gives W^T P + P W = -Q.
    P = scipy.linalg.solve_continuous_lyapunov(W.T, -Q)
    P = 0.5 * (P + P.T)
    residual = np.linalg.norm(W.T @ P + P @ W + Q)
    scale = 2 * np.linalg.norm(W) * np.linalg.norm(P) + np.linalg.norm(Q)
    if not (np.all(np.isfinite(P)) and residual <= _LYAPUNOV_RESIDUAL_RTOL * scale):
        raise np.linalg.LinAlgError(
            f"the Lyapunov solve W^T P + P W = -Q failed: relative residual {residual / scale:.3g} "
            f"exceeds {_LYAPUNOV_RESIDUAL_RTOL:g} (W is too close to non-Hurwitz for float64)."
        )
    return P


def lyapunov(W, Q=None) -> np.ndarray:
    r"""Solution ``P`` of the continuous Lyapunov equation ``W^T P + P W = -Q``.

    .. math::

        W^T P + P W = -Q, \qquad P = \int_0^\infty e^{W^T t} Q e^{W t} \, dt,

    solved by Bartels-Stewart (:func:`scipy.linalg.solve_continuous_lyapunov`,
    called as ``solve_continuous_lyapunov(W.T, -Q)`` because scipy solves
    ``A X + X A^H = q``).  ``V(h) = h^T P h`` is a Lyapunov function of
    ``dh/dt = W h``: ``dV/dt = -h^T Q h``.  With ``Q = c c^T`` ``P`` is the
    observability Gramian.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Hurwitz matrix.
    Q : array_like, shape (m, m), optional
        Symmetric positive semi-definite; the identity by default ([WLL]
        Lemma A.8 uses ``Q = I``).

    Returns
    -------
    ndarray, shape (m, m)
        Symmetric ``P``; positive definite when ``Q`` is.

    Raises
    ------
    ValueError
        If ``W`` is not Hurwitz or ``Q`` is not symmetric positive semi-definite.
    numpy.linalg.LinAlgError
        If the computed ``P`` has a relative residual above 1e-8 (``W`` too
        close to the imaginary axis for float64).
    """
    W = _square("W", W)
    m = W.shape[0]
    Q = np.eye(m) if Q is None else _symmetric_psd("Q", Q, m, definite=False)
    check_hurwitz(W)
    return _lyapunov(W, Q)


@dataclass(frozen=True, eq=False)
class LyapunovBound:
    """The exponential bound ``|e^{Wt}|_2 <= constant * exp(-rate * t)`` of :func:`lyapunov_decay_bound`.

    Call it with times ``t`` to evaluate the bound.

    Attributes
    ----------
    constant : float
        ``sqrt(kappa(P)) = sqrt(lambda_max(P) / lambda_min(P)) >= 1``.
    rate : float
        ``lambda_min(Q) / (2 lambda_max(P))``; never exceeds ``-alpha(W)``.
    P : ndarray, shape (m, m)
        The Lyapunov solution (read-only).
    """

    constant: float
    rate: float
    P: np.ndarray

    def __call__(self, t) -> np.ndarray:
        """The bound at non-negative times ``t`` (array_like, any shape); returns an array of that shape."""
        t = as_float_array("t", t)
        if t.size and np.min(t) < 0:
            raise ValueError(f"`t` must be non-negative; got min(t) = {float(np.min(t))!r}.")
        return self.constant * np.exp(-self.rate * t)


def lyapunov_decay_bound(W, Q=None) -> LyapunovBound:
    r"""Exponential decay bound for ``e^{Wt}`` from a quadratic Lyapunov function.

    With ``P`` from :func:`lyapunov` and ``V(h) = h^T P h`` along ``dh/dt = W h``,

    .. math::

        \dot V = -h^T Q h \le -\lambda_{\min}(Q) |h|^2
                \le -\frac{\lambda_{\min}(Q)}{\lambda_{\max}(P)} V,

    so ``V(t) <= e^{-c t} V(0)`` with ``c = lambda_min(Q) / lambda_max(P)``, and
    ``lambda_min(P) |h(t)|^2 <= V(t)``, ``V(0) <= lambda_max(P) |h_0|^2`` give

    .. math::

        \|e^{W t}\|_2 \le \sqrt{\kappa(P)} \,
            \exp\Big(-\frac{\lambda_{\min}(Q)}{2 \lambda_{\max}(P)} t\Big),
        \qquad \kappa(P) = \frac{\lambda_{\max}(P)}{\lambda_{\min}(P)},

    which for ``Q = I`` is ``sqrt(kappa(P)) exp(-t / (2 lambda_max(P)))``.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Hurwitz matrix.
    Q : array_like, shape (m, m), optional
        Symmetric positive definite; the identity by default.

    Returns
    -------
    LyapunovBound
    """
    W = _square("W", W)
    m = W.shape[0]
    Q = np.eye(m) if Q is None else _symmetric_psd("Q", Q, m, definite=True)
    check_hurwitz(W)
    return _decay_bound(W, Q)


def _decay_bound(W: np.ndarray, Q: np.ndarray) -> LyapunovBound:
    P = _lyapunov(W, Q)
    p = scipy.linalg.eigvalsh(P, check_finite=False)
    q_min = float(scipy.linalg.eigvalsh(Q, check_finite=False)[0])
    if not p[0] > 0:  # pragma: no cover - Q > 0 and W Hurwitz make P > 0 unless rounding wins
        raise np.linalg.LinAlgError(f"the Lyapunov solution is not positive definite (smallest eigenvalue {p[0]:.3g}).")
    P.flags.writeable = False
    return LyapunovBound(constant=float(np.sqrt(p[-1] / p[0])), rate=q_min / (2.0 * float(p[-1])), P=P)


def lemma_a8_ratio(W) -> float:
    r"""``|P|_2`` over the bound ``1 / (2 beta)`` of [WLL] Lemma A.8.

    .. math::

        \text{ratio} = 2 \beta \|P\|_2, \qquad
        W^T P + P W = -I, \quad \beta = -\alpha(W) > 0.

    Lemma A.8 claims ``|P|_2 <= 1 / (2 beta)``, i.e. ``ratio <= 1``.  In fact
    ``ratio >= 1`` for every Hurwitz ``W`` (take a unit eigenvector ``v`` of
    the rightmost eigenvalue: ``v^* P v = int |e^{lambda t}|^2 dt = 1 / (2 beta)``),
    with equality for normal ``W`` (then ``P = -(W + W^T)^{-1}``).  So the
    lemma holds exactly when the ratio is 1, which is the case for normal
    ``W`` but fails for most non-normal ones: ``W = [[-1, 20], [0, -1]]`` has
    ``|P|_2 = 100.75`` against ``1 / (2 beta) = 0.5`` (docs/theory.md section 3).

    Parameters
    ----------
    W : array_like, shape (m, m)
        Hurwitz matrix.

    Returns
    -------
    float
    """
    W = _square("W", W)
    alpha = check_hurwitz(W)
    P = _lyapunov(W, np.eye(W.shape[0]))
    return float(np.linalg.norm(P, 2)) * 2.0 * (-alpha)


# -- transient growth -------------------------------------------------------


def _expm_norms(W: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``|e^{W t_k}|_2`` for a 1-D array of times, batched over ``t``."""
    m = W.shape[0]
    out = np.empty(t.size)
    step = max(1, _EXPM_BATCH_ENTRIES // (m * m))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, t.size, step):
            chunk = t[start : start + step]
            E = scipy.linalg.expm(chunk[:, None, None] * W)
            ok = np.all(np.isfinite(E), axis=(1, 2))
            if not ok.all():
                bad = float(chunk[int(np.flatnonzero(~ok)[0])])
                raise FloatOverflowError(f"|e^(W t)| overflows float64 at t = {bad!r} (alpha(W) t is too large).")
            out[start : start + chunk.size] = np.linalg.norm(E, ord=2, axis=(1, 2))
    if not np.all(np.isfinite(out)):  # the norm of a finite huge matrix can still overflow
        bad = float(t[int(np.flatnonzero(~np.isfinite(out))[0])])
        raise FloatOverflowError(f"|e^(W t)| overflows float64 at t = {bad!r} (alpha(W) t is too large).")
    return out


def transient_growth(W, t) -> np.ndarray:
    r"""Operator 2-norm of the flow, ``|e^{W t}|_2``, at the times ``t``.

    .. math::

        e^{\alpha(W) t} \le \|e^{W t}\|_2 \le
            \min\big(e^{\mu_2(W) t}, \; \kappa(V) e^{\alpha(W) t}\big),

    with equality on the left for normal ``W``.  For a linear RNN this is the
    worst-case gain of the memory kernel ``c^T e^{Wt} U`` over unit ``c, U``.

    Each ``e^{W t_k}`` is :func:`scipy.linalg.expm` (scaling and squaring)
    applied to the whole stack ``t[:, None, None] * W`` at once, in batches.
    A one-off eigendecomposition would not be cheaper in order: the 2-norm
    needs an SVD per time anyway (``O(m^3)`` each), and ``V e^{Lambda t} V^{-1}``
    loses about ``kappa(V)^2 eps`` relative accuracy on non-normal ``W``,
    where transient growth matters.  The values equal per-time ``expm``.

    Parameters
    ----------
    W : array_like, shape (m, m)
    t : array_like, shape () or (n,)
        Non-negative times.

    Returns
    -------
    ndarray, same shape as ``t``

    Raises
    ------
    FloatOverflowError
        (a :class:`FloatingPointError` and an :class:`OverflowError`)
        If ``e^{W t}`` overflows float64 (non-Hurwitz ``W`` and large ``t``).
    """
    W = _square("W", W)
    t = as_float_array("t", t, ndim=(0, 1))
    if t.size and np.min(t) < 0:
        raise ValueError(f"`t` must be non-negative; got min(t) = {float(np.min(t))!r}.")
    return _expm_norms(W, t.reshape(-1)).reshape(t.shape)


@dataclass(frozen=True)
class TransientGrowth:
    """Result of :func:`max_transient_growth`.

    Attributes
    ----------
    value : float
        ``|e^{W t}|_2`` at ``t``: the largest value found (a lower bound for the sup).
    t : float
        Where it is attained (0 when there is no growth).
    upper_bound : float
        Rigorous (up to rounding) upper bound for the sup over ``[0, horizon]``
        (and over ``t >= 0`` when ``t_max`` was not given): the largest
        per-interval bound ``min(G(t_k) e^{mu_2 h_k}, C e^{-r t_k})`` on the
        final grid (see :func:`max_transient_growth`).
    horizon : float
        End of the searched window.
    n_evaluations : int
        Matrix exponentials computed.
    success : bool
        Whether ``upper_bound <= 1.01 * value`` was reached within the budget.
    message : str
    """

    value: float
    t: float
    upper_bound: float
    horizon: float
    n_evaluations: int
    success: bool
    message: str


def max_transient_growth(W, t_max=None) -> TransientGrowth:
    r"""Peak transient growth ``sup_{t >= 0} |e^{W t}|_2`` and where it occurs.

    .. math::

        G^* = \sup_{0 \le t \le T} \|e^{W t}\|_2, \qquad
        1 \le G^* \le \sqrt{\kappa(P)}, \quad G^* \le \kappa(V).

    If ``mu_2(W) <= 0`` then ``|e^{Wt}|_2 <= e^{mu_2 t} <= 1`` and the answer is
    exactly ``G* = 1`` at ``t = 0``.  Otherwise:

    1. Tail bounds (Hurwitz ``W``): ``|e^{Wt}| <= C e^{-r t}`` for all
       ``t >= 0`` with ``(C, r) = (sqrt(kappa(P)), 1 / (2 lambda_max(P)))`` from
       :func:`lyapunov_decay_bound` and, if ``W`` is diagonalisable,
       ``(kappa(V), -alpha(W))`` from :func:`eigenvector_condition`.
    2. Window ``[0, T]``: ``T = t_max`` if given; else ``W`` must be Hurwitz and
       ``T = min ln(C) / r`` over the tail bounds, beyond which a bound is
       below ``1 <= G*``, so nothing is missed.
    3. Coarse grid: 128 linear plus 128 geometric points on ``[0, T]``.
    4. Certificate: since ``|e^{W(t + s)}| <= |e^{W t}| e^{mu_2 s}``, the sup on
       a grid interval ``[t_k, t_{k+1}]`` is at most
       ``min(G(t_k) e^{mu_2 h_k}, min C e^{-r t_k})``.  Intervals where that
       exceeds ``1.01 * max_k G(t_k)`` are bisected until none is left (or
       20 000 evaluations are spent).
    5. Polish: bounded Brent (:func:`scipy.optimize.minimize_scalar`) on the
       neighbours of each grid local maximum within 1% of the best.

    Parameters
    ----------
    W : array_like, shape (m, m)
        Hurwitz unless ``t_max`` is given.
    t_max : float, optional
        Search ``[0, t_max]`` only (then ``W`` need not be Hurwitz).

    Returns
    -------
    TransientGrowth

    Raises
    ------
    ValueError
        If ``t_max`` is None and ``W`` is not Hurwitz.
    """
    W = _square("W", W)
    mu = _mu2(W)
    alpha = float(np.max(_eigvals(W).real))
    if t_max is None:
        if not alpha < 0:
            raise _hurwitz_error("W", alpha, 0.0)
        horizon = None
    else:
        horizon = check_positive("t_max", t_max)
    if mu <= 0:
        return TransientGrowth(
            value=1.0, t=0.0, upper_bound=1.0, horizon=math.inf if horizon is None else horizon, n_evaluations=0,
            success=True, message="no growth: mu_2(W) <= 0, so |e^(Wt)| <= e^(mu_2 t) <= 1 = |e^(W 0)|.",
        )
    # Exponential tail bounds |e^{Wt}| <= C e^{-r t}, valid for all t >= 0 (log C, r).
    tails = []
    if alpha < 0:
        bound = _decay_bound(W, np.eye(W.shape[0]))
        tails.append((math.log(bound.constant), bound.rate))
        kappa = eigenvector_condition(W)
        if math.isfinite(kappa):
            tails.append((math.log(kappa), -alpha))
    if horizon is None:
        # Past this time a tail bound is below 1 = |e^{W 0}| <= G*, so nothing is missed.
        horizon = min(lc / r for lc, r in tails)
        if not horizon > 0:  # rounding: mu_2 > 0 forces kappa(P), kappa(V) > 1
            horizon = 1.0 / float(np.linalg.norm(W, 2))

    # Coarse grid: linear for long transients, geometric for fast initial ones.
    t_fast = min(horizon, 1.0 / float(np.linalg.norm(W, 2))) / 64.0
    grid = np.unique(np.concatenate([
        [0.0, horizon],
        np.linspace(0.0, horizon, _GROWTH_GRID_POINTS),
        np.geomspace(t_fast, horizon, _GROWTH_GRID_POINTS),
    ]))
    grid = grid[grid <= horizon]
    G = _expm_norms(W, grid)
    n_eval = grid.size
    log_slack = math.log1p(_GROWTH_CERT_RTOL)
    tiny = np.finfo(np.float64).tiny

    def log_upper(tg, Gg):
        # log of a bound for sup |e^{Wt}| on [t_k, t_{k+1}]: the log-norm step
        # G(t_k) e^{mu h_k}, or a tail bound at t_k (which covers all t >= t_k).
        # Logs, so long intervals cannot overflow.
        out = np.log(np.maximum(Gg[:-1], tiny)) + mu * np.diff(tg)
        for lc, r in tails:
            out = np.minimum(out, lc - r * tg[:-1])
        return out

    success = True
    while True:
        logU = log_upper(grid, G)
        flag = logU > math.log(G.max()) + log_slack
        if not flag.any():
            break
        if n_eval + int(flag.sum()) > _GROWTH_MAX_EVALUATIONS:
            success = False
            break
        mids = 0.5 * (grid[:-1][flag] + grid[1:][flag])
        Gm = _expm_norms(W, mids)
        n_eval += mids.size
        grid = np.concatenate([grid, mids])
        order = np.argsort(grid, kind="stable")
        grid, G = grid[order], np.concatenate([G, Gm])[order]

    best_k = int(np.argmax(G))
    value, t_best = float(G[best_k]), float(grid[best_k])
    upper = max(value, float(np.exp(log_upper(grid, G).max())) if grid.size > 1 else value)
    # Polish every grid local maximum that could still be the global one.
    n = G.size
    is_peak = np.ones(n, dtype=bool)
    is_peak[1:] &= G[1:] >= G[:-1]
    is_peak[:-1] &= G[:-1] >= G[1:]
    peaks = np.flatnonzero(is_peak & (G >= value / (1 + _GROWTH_CERT_RTOL)))
    peaks = peaks[np.argsort(G[peaks])[::-1][:8]]
    for k in peaks:
        a, b = grid[max(k - 1, 0)], grid[min(k + 1, n - 1)]
        if not b > a:
            continue
        res = scipy.optimize.minimize_scalar(
            lambda s: -float(_expm_norms(W, np.array([s]))[0]), bounds=(a, b), method="bounded",
            options={"xatol": max(1e-12, 1e-10 * b)},
        )
        n_eval += int(res.nfev)
        if -res.fun > value:
            value, t_best = float(-res.fun), float(res.x)
    upper = max(upper, value)
    if success:
        message = "certified: no grid interval can exceed 1.01 * value (log-norm bound); peak polished by Brent."
    else:
        message = (f"evaluation budget ({_GROWTH_MAX_EVALUATIONS}) spent before the grid certificate closed to 1%; "
                   "value is a lower and upper_bound an upper bound for the sup.")
    return TransientGrowth(value=value, t=t_best, upper_bound=upper, horizon=float(horizon), n_evaluations=n_eval,
                           success=success, message=message)


# -- summary ----------------------------------------------------------------


@dataclass(frozen=True)
class SpectralSummary:
    """Result of :func:`spectral_summary`.

    Attributes
    ----------
    alpha : float
        Spectral abscissa ``max Re lambda(W)``.
    spectral_radius : float
        ``max |lambda(W)|``.
    mu_2 : float
        Logarithmic 2-norm ``lambda_max((W + W^T) / 2)``.
    stability_radius : float
        ``min_omega sigma_min(W - i omega I)``; 0 if ``W`` is not Hurwitz
        (it is unstable already: no perturbation is needed).
    kappa_V : float
        Eigenvector condition number (``inf`` if numerically defective).
    norm_P : float
        ``|P|_2`` for ``W^T P + P W = -I``; ``inf`` if ``W`` is not Hurwitz
        (``P = int_0^inf e^{W^T t} e^{W t} dt`` diverges).
    nonnormality : float
        ``|W W^T - W^T W|_F`` (zero iff ``W`` is normal; not Henrici's departure).
    hurwitz : bool
        ``alpha < 0``.
    """

    alpha: float
    spectral_radius: float
    mu_2: float
    stability_radius: float
    kappa_V: float
    norm_P: float
    nonnormality: float
    hurwitz: bool

    @property
    def lemma_a8_ratio(self) -> float:
        """``2 beta |P|_2`` with ``beta = -alpha`` (see :func:`lemma_a8_ratio`); ``inf`` if not Hurwitz."""
        if not self.hurwitz:
            return math.inf
        return self.norm_P * 2.0 * (-self.alpha)


def _nonnormality(W: np.ndarray) -> float:
    """``|W W^T - W^T W|_F``, scaled by a power of two so that it neither overflows early nor underflows."""
    big = float(np.max(np.abs(W)))
    if big == 0.0:
        return 0.0
    e = int(np.frexp(big)[1])
    V = np.ldexp(W, -e)
    val = float(np.linalg.norm(V @ V.T - V.T @ V))
    with np.errstate(over="ignore"):
        out = float(np.ldexp(val, 2 * e))
    if math.isinf(out):
        from .errors import warn_overflow

        warn_overflow("spectral_summary nonnormality", 1, 1, f"max |W_ij| = {big:.3g}")
    return out


def spectral_summary(W) -> SpectralSummary:
    """All the spectral diagnostics of ``W`` at once.

    Parameters
    ----------
    W : array_like, shape (m, m)

    Returns
    -------
    SpectralSummary
        When ``alpha(W) >= 0`` the Hurwitz-only fields take their limiting
        values: ``stability_radius = 0`` and ``norm_P = inf`` (never NaN).
    """
    W = _square("W", W)
    lam = _eigvals(W)
    alpha = float(np.max(lam.real))
    hurwitz = alpha < 0
    if hurwitz:
        r = stability_radius(W).value
        norm_P = float(np.linalg.norm(_lyapunov(W, np.eye(W.shape[0])), 2))
    else:
        r, norm_P = 0.0, math.inf
    return SpectralSummary(
        alpha=alpha,
        spectral_radius=float(np.max(np.abs(lam))),
        mu_2=_mu2(W),
        stability_radius=float(r),
        kappa_V=eigenvector_condition(W),
        norm_P=norm_P,
        nonnormality=_nonnormality(W),
        hurwitz=bool(hurwitz),
    )
