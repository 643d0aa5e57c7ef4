"""Memory capacity ([JAE]): how much of its i.i.d. input past a discrete model's state can linearly recall.

For a discrete model ``s_{k+1} = F(s_k, x_k)`` driven by an i.i.d. scalar
input ``x_t`` (docs/theory.md section 9), the state after reading ``x_t`` is
``s_{t+1}``, and

.. math::

    MC_k = \\max_w \\operatorname{corr}^2(x_{t-k},\\, w^T s_{t+1} + w_0), \\qquad
    MC = \\sum_{k \\ge 0} MC_k \\le n .

Two estimators:

* :func:`memory_capacity` - regression, for any :class:`~dynmem.models.DiscreteMap`
  model: simulate ``n_samples`` steps after a washout, regress ``x_{t-k}`` on
  ``(s_{t+1}, 1)`` by least squares and report the coefficient of
  determination.  In-sample R^2 of a regression with ``n + 1`` features on N
  samples is biased upwards by about ``n / N`` per delay even when there is
  nothing to recall; the result states N and this bias.  It is also the
  *naive* estimator of [BGO]: the state covariance of a linear model is
  nearly singular (its Krylov basis is ill-conditioned), and the least-squares
  solve cannot see the directions of tiny variance, so the total falls short
  of the truth.
* :func:`linear_memory_capacity` - exact, for a linear recurrence
  ``s_{k+1} = A s_k + b x_k`` (A Schur stable).  With ``u_k = A^k b`` and the
  controllability Gramian ``P = sum_k u_k u_k^T`` (``A P A^T - P + b b^T = 0``),
  ``MC_k = u_k^T P^+ u_k`` (for unit-variance input) and the total is
  ``tr(P^+ P) = rank P``: the rank of the Kalman controllability matrix
  ``[b, A b, ..., A^{n-1} b]`` ([BGO], Theorem).  That rank is computed
  from an Arnoldi (orthogonalised Krylov) basis with re-orthogonalisation,
  whose subdiagonal entries are the distances of each new direction
  ``A v_j`` from the span so far; the rank is where one drops below
  ``tol * |A|``.  The monomial Krylov matrix itself is never formed.

References
----------
.. [JAE] H. Jaeger, *Short term memory in echo state networks*, GMD report 152, 2001.
.. [BGO] G. Ballarin, L. Grigoryeva, J.-P. Ortega, *Memory of recurrent networks:
   do we compute it right?*, JMLR 25, 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ._validation import as_float_array, check_int, check_positive, describe, check_rng
from .models import DiscreteMap
from .norms import state_space

__all__ = ["MemoryCapacity", "memory_capacity", "LinearMemoryCapacity", "linear_memory_capacity", "krylov_basis",
           "run_states"]


def run_states(model, X, s0=None) -> np.ndarray:
    """The states ``s_1`` to ``s_T`` of a :class:`~dynmem.models.DiscreteMap` model; shape (k, T, n).

    Parameters
    ----------
    model : DiscreteMap
    X : array_like, shape (k, T, d)
        Inputs; step t reads ``X[:, t]`` and produces ``s_{t+1}``.
    s0 : array_like, shape (k, n) or (n,), optional
        Initial states (zeros by default).
    """
    if not isinstance(model, DiscreteMap):
        raise TypeError(f"`model` must be a discrete model with step(S, X) and step_jacobian(S, X); got {describe(model)}.")
    X = as_float_array("X", X, ndim=3)
    k, T, d = X.shape
    if d != model.inputs:
        raise ValueError(f"`X` must have shape (k, T, {model.inputs}); got shape {X.shape}.")
    n = model.state_size
    S = np.zeros((k, n)) if s0 is None else np.array(np.broadcast_to(as_float_array("s0", s0), (k, n)))
    out = np.empty((k, T, n))
    for t in range(T):
        S = model.step(S, X[:, t])
        out[:, t] = S
    return out


@dataclass(frozen=True, eq=False)
class MemoryCapacity:
    """Result of :func:`memory_capacity` (regression estimate).

    Attributes
    ----------
    delays : ndarray of int, shape (K,)
        ``0 .. max_delay``.
    mc : ndarray, shape (K,)
        ``MC_k`` (in-sample R^2).
    total : float
        ``sum_k MC_k``.
    n_samples : int
        Regression samples N (after the washout).
    bias_per_delay : float
        ``n_features / N``: the expected in-sample R^2 of a delay the state cannot recall.
    total_bias : float
        ``K * bias_per_delay``.
    input_scale : float
        The input was uniform on ``[-input_scale, input_scale]``.
    """

    delays: np.ndarray
    mc: np.ndarray
    total: float
    n_samples: int
    bias_per_delay: float
    total_bias: float
    input_scale: float


def memory_capacity(model, *, max_delay: int | None = None, n_samples: int = 20000, washout: int = 1000,
                    input_scale: float = 1.0, direction=None, rng=None) -> MemoryCapacity:
    """Memory capacity of a discrete model by regression from i.i.d. uniform input.

    Parameters
    ----------
    model : DiscreteMap
        A discrete model with ``step`` (:class:`~dynmem.models.DiscreteMap`).
    max_delay : int, optional
        Largest delay K - 1 (default ``2 * state_size``).
    n_samples : int
        Regression samples N.
    washout : int
        Steps discarded before the samples (the state forgets its start).
    input_scale : float
        The scalar input is i.i.d. uniform on ``[-input_scale, input_scale]``.
    direction : array_like, shape (d,), optional
        Input channel pattern: ``x_t = u_t * direction`` (default the first channel).
    rng : None, int or Generator

    Returns
    -------
    MemoryCapacity

    Notes
    -----
    ``MC_k = 1 - |r_k|^2 / |x_{.-k} - mean|^2`` with ``r_k`` the least-squares
    residual of ``x_{t-k}`` on ``(s_{t+1}, 1)`` (``numpy.linalg.lstsq``), which
    is the squared correlation of the best linear read-out.
    """
    if not isinstance(model, DiscreteMap):
        raise TypeError(f"`model` must be a discrete model with step(S, X) and step_jacobian(S, X); got {describe(model)}.")
    n = model.state_size
    K = 2 * n if max_delay is None else check_int("max_delay", max_delay, minimum=0)
    N = check_int("n_samples", n_samples, minimum=1)
    washout = check_int("washout", washout, minimum=0)
    scale = check_positive("input_scale", input_scale)
    if N <= n + 1:
        raise ValueError(f"`n_samples` must exceed state_size + 1 = {n + 1} for a regression; got {N}.")
    d = model.inputs
    e = np.eye(d)[0] if direction is None else as_float_array("direction", direction, shape=(d,))
    rng = check_rng("rng", rng)
    T = washout + K + N
    u = rng.uniform(-scale, scale, T)
    S = run_states(model, (u[:, None] * e)[None])[0]
    feats = S[washout + K:]  # state after reading x_t for t = washout + K .. T-1
    F = np.hstack([feats, np.ones((N, 1))])
    targets = np.stack([u[washout + K - k: T - k] for k in range(K + 1)], axis=1)  # (N, K+1)
    coef = np.linalg.lstsq(F, targets, rcond=None)[0]
    resid = targets - F @ coef
    centred = targets - targets.mean(axis=0)
    mc = np.clip(1.0 - np.sum(resid ** 2, axis=0) / np.sum(centred ** 2, axis=0), 0.0, 1.0)
    bias = (n + 1) / N
    return MemoryCapacity(np.arange(K + 1), mc, float(mc.sum()), N, bias, bias * (K + 1), scale)


def krylov_basis(A, b, *, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal basis of the Krylov space ``span{b, A b, A^2 b, ...}`` by Arnoldi.

    Each new direction is orthogonalised twice against the basis (classical
    Gram-Schmidt, repeated: "twice is enough"), so the basis stays orthonormal
    to rounding whatever the conditioning of the monomial basis.

    Parameters
    ----------
    A : array_like, shape (n, n)
    b : array_like, shape (n,)
    tol : float
        The space ends when the new direction's distance from it is
        ``<= tol * max(|A|_2, 1) * |b|`` scaled as in the Notes.

    Returns
    -------
    V : ndarray, shape (n, r)
        Orthonormal columns, r the Krylov dimension.
    H : ndarray, shape (r + 1, r)
        Arnoldi relation ``A V = V_{+} H``; ``H[j + 1, j]`` the distances.
    distances : ndarray, shape (r,)
        ``H[j + 1, j] / |A|_2`` for j < r; the last one is the breakdown value (below ``tol``
        unless ``r = n``, where it is exactly 0).

    Notes
    -----
    The numerical rank is ``r``; its margin is ``distances[r - 2] / distances[r - 1]``.
    """
    A = as_float_array("A", A, ndim=2)
    n = A.shape[0]
    b = as_float_array("b", b, shape=(n,))
    tol = check_positive("tol", tol)
    nb = float(np.linalg.norm(b))
    if nb == 0:
        return np.zeros((n, 0)), np.zeros((1, 0)), np.zeros(0)
    scale = max(float(np.linalg.norm(A, 2)), np.finfo(float).tiny)
    V = np.zeros((n, n + 1))
    H = np.zeros((n + 1, n))
    V[:, 0] = b / nb
    r = n
    for j in range(n):
        w = A @ V[:, j]
        for _ in range(2):
            h = V[:, : j + 1].T @ w
            w = w - V[:, : j + 1] @ h
            H[: j + 1, j] += h
        H[j + 1, j] = np.linalg.norm(w)
        if j == n - 1:
            r = n
            break
        if H[j + 1, j] <= tol * scale:
            r = j + 1
            break
        V[:, j + 1] = w / H[j + 1, j]
    return V[:, :r], H[: r + 1, :r], H[1: r + 1, np.arange(r)].diagonal().copy() / scale if r else np.zeros(0)


@dataclass(frozen=True, eq=False)
class LinearMemoryCapacity:
    """Result of :func:`linear_memory_capacity` (exact).

    Attributes
    ----------
    total : int
        ``MC = rank [b, A b, ..., A^{n-1} b]``, the dimension of the Krylov space.
    delays : ndarray of int, shape (K + 1,)
        ``0 .. max_delay``.
    mc : ndarray, shape (K + 1,)
        ``MC_k = u_k^T P^+ u_k`` in orthonormal coordinates of the Krylov space
        (a profile; its own sum is only as good as the Gramian's conditioning,
        the total is not).
    method : str
        ``"modal"`` or ``"arnoldi"``: how the rank was decided.
    margin : float
        How decisive the rank is: the smallest accepted modal weight over the
        largest rejected one (``"modal"``), or the last accepted Arnoldi
        distance over the breakdown value (``"arnoldi"``); ``inf`` when nothing
        was rejected.
    gramian_condition : float
        Condition number of the Gramian on the Krylov space (why regression
        and the Gramian formula fall short when it is large).
    """

    total: int
    delays: np.ndarray
    mc: np.ndarray
    method: str
    margin: float
    gramian_condition: float


def _modal_rank(A: np.ndarray, b: np.ndarray, tol: float):
    """Controllable modes of (A, b) from the eigenvector coordinates of b; None when A is far from diagonalisable."""
    lam, V = np.linalg.eig(A)
    V = V / np.linalg.norm(V, axis=0)
    kappa = np.linalg.cond(V)
    if not np.isfinite(kappa) or kappa > 1e8:
        return None
    n = A.shape[0]
    eps = np.finfo(float).eps
    w = np.abs(np.linalg.solve(V, b.astype(complex)))
    floor = max(tol, 100 * n * eps * kappa) * np.linalg.norm(b)
    # eigenvalues closer than rounding form one mode: a scalar input excites one direction of an eigenspace
    sep = 100 * n * eps * kappa * max(np.linalg.norm(A, 2), 1.0)
    order = np.argsort(lam.real + 1e-3 * lam.imag)
    groups, used = [], np.zeros(n, bool)
    for i in order:
        if used[i]:
            continue
        near = np.flatnonzero((np.abs(lam - lam[i]) <= sep) & ~used)
        used[near] = True
        groups.append(float(np.linalg.norm(w[near])))
    groups = np.array(groups)
    acc, rej = groups[groups > floor], groups[groups <= floor]
    margin = float(acc.min() / max(rej.max(), np.finfo(float).tiny)) if rej.size and acc.size else np.inf
    return int(acc.size), margin


def linear_memory_capacity(system, *, max_delay: int | None = None, method: str = "auto",
                           tol: float = 1e-10) -> LinearMemoryCapacity:
    """Exact memory capacity of a linear recurrence ``s_{k+1} = A s_k + b x_k``.

    Parameters
    ----------
    system : LinearSystem model or tuple
        A discrete model with ``linear_system()`` (e.g. an identity-activation
        :class:`~dynmem.models.DiscreteRNN`, a
        :class:`~dynmem.ssm.DiscreteDiagonalSSM`), or ``(A, b)`` with A (n, n)
        Schur stable and b (n,) or (n, 1).  The input is scalar.
    max_delay : int, optional
        Largest delay of the profile (default ``2 n``).
    method : {"auto", "modal", "arnoldi"}
        How the rank is decided.  ``"modal"``: count the distinct eigenvalues
        of A whose eigenvector coordinate of b exceeds ``tol |b|`` (and the
        rounding floor ``100 n eps kappa(V) |b|``); needs a diagonalisable A
        (``kappa(V) <= 1e8``).  ``"arnoldi"``: the dimension of the
        re-orthogonalised Krylov basis (:func:`krylov_basis`), breaking down
        at ``tol |A|``; exact for Jordan chains and for full rank, but
        rounding that leaks out of an invariant subspace grows by about
        ``|A| / h_{j+1,j}`` per step, so a rank-deficient pair with a long
        Krylov space can be over-counted.  ``"auto"``: modal when possible.
    tol : float
        Relative rank tolerance.

    Returns
    -------
    LinearMemoryCapacity

    Notes
    -----
    .. math:: MC = \\sum_{k\\ge0} u_k^T P^+ u_k = \\operatorname{tr}(P^+ P)
              = \\operatorname{rank}\\,[b, Ab, \\dots, A^{n-1} b]

    with :math:`u_k = A^k b`, :math:`P = \\sum_k u_k u_k^T` ([BGO]); by the
    Popov-Belevitch-Hautus test the rank is the number of distinct
    eigenvalues whose (generalised) eigenspace b reaches.
    """
    from ._validation import check_choice

    check_choice("method", method, ("auto", "modal", "arnoldi"))
    tol = check_positive("tol", tol)
    if isinstance(system, tuple) and len(system) == 2:
        A = as_float_array("A", system[0], ndim=2)
        B = as_float_array("b", system[1], ndim=(1, 2))
        ss = state_space((A, B, np.zeros((1, A.shape[0]))), discrete=True)
    else:
        ss = state_space(system, discrete=True)
    if ss.B.shape[1] != 1:
        raise ValueError(f"`system` must have a scalar input (B of shape (n, 1)); got B of shape {ss.B.shape}.")
    rad = float(np.max(np.abs(np.linalg.eigvals(ss.A))))
    if not rad < 1:
        raise ValueError(f"`A` must be Schur stable (spectral radius < 1) for a stationary state; got radius {rad:.6g}.")
    n = ss.order
    b = ss.B[:, 0]
    K = 2 * n if max_delay is None else check_int("max_delay", max_delay, minimum=0)
    V, H, dist = krylov_basis(ss.A, b, tol=tol)
    modal = _modal_rank(ss.A, b, tol) if method in ("auto", "modal") else None
    if method == "modal" and modal is None:
        raise ValueError("`method` 'modal' needs a diagonalisable A (eigenvector condition <= 1e8); use 'arnoldi'.")
    if modal is not None:
        total, margin, used = modal[0], modal[1], "modal"
    else:
        total, used = V.shape[1], "arnoldi"
        margin = np.inf if total in (0, n) else float(dist[total - 2] / max(dist[total - 1], np.finfo(float).tiny)) \
            if total > 1 else np.inf
    r = min(total, V.shape[1])
    if r == 0:
        return LinearMemoryCapacity(0, np.arange(K + 1), np.zeros(K + 1), used, margin, np.nan)
    Vr = V[:, :r]
    Hr = Vr.T @ ss.A @ Vr
    br = Vr.T @ b
    Pr = scipy.linalg.solve_discrete_lyapunov(Hr, np.outer(br, br))
    Pr = (Pr + Pr.T) / 2
    w, Q = np.linalg.eigh(Pr)
    keep = w > w.max() * r * np.finfo(float).eps
    inv = (Q[:, keep] / w[keep]) @ Q[:, keep].T
    mc = np.empty(K + 1)
    u = br.copy()
    for k in range(K + 1):
        mc[k] = float(u @ inv @ u)
        u = Hr @ u
    cond = float(w.max() / w.min()) if w.min() > 0 else np.inf
    return LinearMemoryCapacity(int(total), np.arange(K + 1), np.clip(mc, 0.0, 1.0), used, margin, cond)
