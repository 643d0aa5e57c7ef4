"""Fixed and slow points of a model at a constant input ([SB], [GOL]; docs/theory.md section 9).

For a flow ``dh/dt = F(h, x*)`` (a continuous model) or a map
``s -> F(s, x*)`` (a discrete model, for which the residual is
``F(s, x*) - s``), minimise the speed

.. math:: q(h) = \\tfrac12 |R(h)|^2,\\qquad R(h) = F(h, x^*) \\;(\\text{flow}),\\; F(h, x^*) - h \\;(\\text{map}),

from many starts (states visited on real inputs plus noise: pass them as
``starts``), with L-BFGS-B and the exact gradient ``dR/dh^T R``; refine every
candidate by Newton's method on ``R(h) = 0`` with the model's analytic
Jacobian until ``|R| <= newton_tol``; merge points closer than ``dedup_tol``
(relative); classify by the eigenvalues of ``dF/dh`` (flows: the sign of
their real parts; maps: their modulus against 1) as ``"stable"``,
``"saddle"`` (with its number of unstable directions), ``"unstable"`` or
``"marginal"`` (an eigenvalue within ``marginal_tol`` of the boundary).
Minima of q that Newton cannot bring to zero are *slow points* and are
reported apart, with their q.

References
----------
.. [SB] D. Sussillo, O. Barak, *Opening the black box: low-dimensional dynamics in
   high-dimensional recurrent neural networks*, Neural Computation 25(3), 2013.
.. [GOL] M. D. Golub, D. Sussillo, *FixedPointFinder*, JOSS 3(31), 1003, 2018.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ._validation import as_float_array, check_int, check_positive, check_rng, describe
from .models import DiscreteMap

__all__ = ["FixedPoints", "find_fixed_points"]


@dataclass(frozen=True, eq=False)
class FixedPoints:
    """Result of :func:`find_fixed_points`.

    Attributes
    ----------
    points : ndarray, shape (p, n)
        Distinct fixed points, sorted by their number of unstable directions, then by norm.
    residuals : ndarray, shape (p,)
        ``|R(h)|_2`` after Newton (``<= newton_tol``).
    eigenvalues : ndarray of complex, shape (p, n)
        Eigenvalues of ``dF/dh`` (flow) or of the step Jacobian (map), sorted by decreasing
        real part (flow) or modulus (map).
    kinds : tuple of str, length p
        ``"stable"``, ``"saddle"``, ``"unstable"`` or ``"marginal"``.
    unstable_dims : ndarray of int, shape (p,)
        Number of eigenvalues with positive real part (flow) or modulus above 1 (map).
    slow_points : ndarray, shape (s, n)
        Local minima of q with ``q > 0`` that Newton could not refine.
    slow_q : ndarray, shape (s,)
    discrete : bool
    n_starts : int
    message : str
    """

    points: np.ndarray
    residuals: np.ndarray
    eigenvalues: np.ndarray
    kinds: tuple
    unstable_dims: np.ndarray
    slow_points: np.ndarray
    slow_q: np.ndarray
    discrete: bool
    n_starts: int
    message: str

    @property
    def stable(self) -> np.ndarray:
        """The stable fixed points, shape (s, n)."""
        return self.points[np.array([k == "stable" for k in self.kinds], dtype=bool)]


def _system(model, x):
    if isinstance(model, DiscreteMap):
        n, d = model.state_size, model.inputs
        xv = np.zeros(d) if x is None else as_float_array("x", x, shape=(d,))

        def R(h):
            return model.step(h[None], xv[None])[0] - h

        def J(h):
            return model.step_jacobian(h[None], xv[None])[0] - np.eye(n)

        return n, R, J, True
    if hasattr(model, "vector_field") and hasattr(model, "jacobian") and hasattr(model, "hidden"):
        n, d = int(model.hidden), int(model.inputs)
        xv = np.zeros(d) if x is None else as_float_array("x", x, shape=(d,))

        def R(h):
            return np.asarray(model.vector_field(h[None], xv[None]), dtype=float)[0]

        def J(h):
            return np.asarray(model.jacobian(h[None], xv[None]), dtype=float)[0]

        return n, R, J, False
    raise TypeError("`model` must be a discrete model with step/step_jacobian or a continuous model with "
                    f"vector_field(H, X), jacobian(H, X) and hidden; got {describe(model)}.")


def find_fixed_points(model, *, x=None, starts=None, n_starts: int = 64, noise: float = 0.0, init_scale: float = 1.0,
                      newton_tol: float = 1e-12, dedup_tol: float = 1e-6, slow_tol: float = 1e-8,
                      marginal_tol: float = 1e-9, max_newton: int = 50, rng=None) -> FixedPoints:
    """Fixed points (and slow points) of a model at the constant input ``x``.

    Parameters
    ----------
    model : DiscreteMap or continuous model
        A discrete model with ``step``/``step_jacobian`` or an object with batched
        ``vector_field``, ``jacobian`` and ``hidden``, ``inputs``.
    x : array_like, shape (d,), optional
        The constant input (zeros by default).
    starts : array_like, shape (k, n), optional
        Initial states, e.g. states of trajectories on real inputs; ``noise``
        (standard deviation) is added.  Default: ``n_starts`` draws from
        ``N(0, init_scale^2 I)``.
    n_starts : int
    noise, init_scale : float
    newton_tol : float
        Newton stops when ``|R(h)|_2 <= newton_tol``; points that do not reach it are not fixed points.
    dedup_tol : float
        Points within ``dedup_tol * max(1, |h|)`` are one point.
    slow_tol : float
        A minimum that Newton cannot refine is a slow point when its ``q > slow_tol``
        (below it, a near-miss that is dropped).
    marginal_tol : float
        Eigenvalues this close to the stability boundary make the point ``"marginal"``.
    max_newton : int
    rng : None, int or Generator

    Returns
    -------
    FixedPoints
    """
    n, R, J, discrete = _system(model, x)
    rng = check_rng("rng", rng)
    newton_tol = check_positive("newton_tol", newton_tol)
    dedup_tol = check_positive("dedup_tol", dedup_tol)
    max_newton = check_int("max_newton", max_newton, minimum=1)
    if starts is None:
        S0 = check_positive("init_scale", init_scale) * rng.standard_normal((check_int("n_starts", n_starts, minimum=1), n))
    else:
        S0 = as_float_array("starts", starts, ndim=2, shape=(None, n))
    if noise:
        S0 = S0 + float(noise) * rng.standard_normal(S0.shape)

    def q_and_grad(h):
        r = R(h)
        return 0.5 * float(r @ r), J(h).T @ r

    found, slow, slow_q = [], [], []
    for h0 in S0:
        opt = scipy.optimize.minimize(q_and_grad, h0, jac=True, method="L-BFGS-B",
                                      options={"gtol": 1e-14, "ftol": 1e-30, "maxiter": 2000})
        h = opt.x
        q = float(opt.fun)
        ok = False
        hn = h.copy()  # Newton from every minimiser: it decides what is a fixed point, q only reports
        for _ in range(max_newton):
            r = R(hn)
            if np.linalg.norm(r) <= newton_tol:
                ok = True
                break
            try:
                step = np.linalg.solve(J(hn), r)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)):
                break
            hn = hn - step
        if ok:
            found.append(hn)
            continue
        if q > slow_tol:
            slow.append(h)
            slow_q.append(q)

    def dedup(P):
        out = []
        for p in P:
            if not any(np.linalg.norm(p - o) <= dedup_tol * max(1.0, np.linalg.norm(o)) for o in out):
                out.append(p)
        return out

    pts = dedup(found)
    rows = []
    for p in pts:
        Jf = J(p)
        M = Jf + np.eye(n) if discrete else Jf
        ev = np.linalg.eigvals(M)
        if discrete:
            ev = ev[np.argsort(-np.abs(ev))]
            dist = np.abs(ev) - 1.0
        else:
            ev = ev[np.argsort(-ev.real)]
            dist = ev.real
        n_unst = int(np.sum(dist > marginal_tol))
        if np.any(np.abs(dist) <= marginal_tol):
            kind = "marginal"
        elif n_unst == 0:
            kind = "stable"
        elif n_unst == n:
            kind = "unstable"
        else:
            kind = "saddle"
        rows.append((n_unst, float(np.linalg.norm(p)), p, float(np.linalg.norm(R(p))), ev, kind))
    rows.sort(key=lambda r: (r[0], r[1]))
    slow_pts, sq = [], []
    for p, qv in sorted(zip(slow, slow_q), key=lambda t: t[1]):
        if not any(np.linalg.norm(p - o) <= dedup_tol * max(1.0, np.linalg.norm(o)) for o in slow_pts):
            slow_pts.append(p)
            sq.append(qv)
    if rows:
        points = np.array([r[2] for r in rows])
        res = np.array([r[3] for r in rows])
        eigs = np.array([r[4] for r in rows])
        kinds = tuple(r[5] for r in rows)
        unst = np.array([r[0] for r in rows], dtype=int)
    else:
        points, res, eigs, kinds, unst = (np.zeros((0, n)), np.zeros(0), np.zeros((0, n), complex), (),
                                          np.zeros(0, int))
    msg = f"{len(rows)} fixed point(s) and {len(slow_pts)} slow point(s) from {S0.shape[0]} starts"
    return FixedPoints(points, res, eigs, kinds, unst, np.array(slow_pts).reshape(-1, n), np.array(sq), discrete,
                       S0.shape[0], msg)
