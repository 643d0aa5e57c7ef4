"""Initialisers of diagonal state-space models: the LRU ring ([LRU]) and S5's HiPPO-N ([S5]).

docs/theory.md section 9.

* :func:`lru_ring` - ``lambda = exp(-exp(nu) + i theta)`` with
  ``nu = log(-log(u (r_max^2 - r_min^2) + r_min^2) / 2)``, u ~ U(0, 1), so that
  ``|lambda|^2`` is uniform on ``[r_min^2, r_max^2]`` (``lambda`` uniform in area
  on the annulus): ``P(|lambda| <= r) = (r^2 - r_min^2) / (r_max^2 - r_min^2)``;
  ``theta ~ U(0, max_phase)``; ``B`` complex normal normalised by
  ``gamma = sqrt(1 - |lambda|^2)``, ``C`` complex normal.
* :func:`hippo_n` - the normal part of HiPPO-LegS,
  ``A_nk = -sqrt(2n+1) sqrt(2k+1)`` (n > k), ``-(n+1)`` (n = k), ``0`` (n < k),
  plus ``P P^T / 2`` with ``P_n = sqrt(n + 1/2)``: ``-I/2`` plus a skew-symmetric
  matrix, diagonalised exactly (``Re Lambda = -1/2``); ``B``, ``C`` random in the
  original coordinates and carried into the eigenbasis; per-state time scales
  ``Delta`` log-uniform on ``[dt_min, dt_max]`` folded into ``Lambda Delta``,
  ``B Delta`` (so ``discretize(1.0)`` is S5's ZOH with steps ``Delta``).

References
----------
.. [LRU] A. Orvieto et al., *Resurrecting recurrent neural networks for long sequences*, ICML 2023, arXiv:2303.06349.
.. [S5] J. T. H. Smith, A. Warrington, S. W. Linderman, *Simplified state space layers for sequence modeling*,
   ICLR 2023, arXiv:2208.04933.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_nonnegative, check_positive, check_rng
from .models.ssm import DiagonalSSM, DiscreteDiagonalSSM

__all__ = ["lru_ring", "hippo_n", "hippo_legs"]


def lru_ring(hidden: int, inputs: int = 1, *, r_min: float = 0.0, r_max: float = 1.0, max_phase: float = 2 * np.pi,
             normalize: bool = True, rng=None) -> DiscreteDiagonalSSM:
    """An LRU layer's recurrence with eigenvalues uniform on the ring ``r_min <= |lambda| <= r_max``.

    Parameters
    ----------
    hidden : int
        State width m.
    inputs : int
        Input dimension d.
    r_min, r_max : float
        ``0 <= r_min < r_max <= 1`` ([LRU] uses e.g. 0.9 and 0.999 for long memory).
    max_phase : float
        ``theta = arg lambda`` uniform on ``[0, max_phase]``.
    normalize : bool
        Multiply row j of B by ``gamma_j = sqrt(1 - |lambda_j|^2)`` (unit stationary variance per state
        under unit white noise with unit-norm rows).
    rng : None, int or Generator

    Returns
    -------
    DiscreteDiagonalSSM
        ``Lambda_bar = lambda``, ``B_bar = gamma B`` with ``B_jl ~ CN(0, 1/d)``,
        ``C_j ~ CN(0, 1/m)``, ``D = 0``, ``dt = 1``.
    """
    m = check_int("hidden", hidden, minimum=1)
    d = check_int("inputs", inputs, minimum=1)
    r_min = check_nonnegative("r_min", r_min)
    r_max = check_positive("r_max", r_max)
    if not r_min < r_max <= 1.0:
        raise ValueError(f"`r_min`, `r_max` must satisfy 0 <= r_min < r_max <= 1; got r_min = {r_min!r}, r_max = {r_max!r}.")
    max_phase = check_positive("max_phase", max_phase)
    rng = check_rng("rng", rng)
    u1, u2 = rng.uniform(size=m), rng.uniform(size=m)
    with np.errstate(divide="ignore"):
        nu = np.log(-0.5 * np.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2))
    theta = max_phase * u2
    lam = np.exp(-np.exp(nu) + 1j * theta)
    B = (rng.standard_normal((m, d)) + 1j * rng.standard_normal((m, d))) / np.sqrt(2 * d)
    if normalize:
        B = B * np.sqrt(1.0 - np.abs(lam) ** 2)[:, None]
    C = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2 * m)
    return DiscreteDiagonalSSM(lam, B, C, np.zeros(d), dt=1.0, method="zoh")


def hippo_legs(n: int) -> np.ndarray:
    """The HiPPO-LegS matrix ``A`` (n, n): ``-sqrt(2i+1) sqrt(2k+1)`` below the diagonal, ``-(i+1)`` on it."""
    n = check_int("n", n, minimum=1)
    q = np.sqrt(2 * np.arange(n) + 1.0)
    A = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(1, n + 1.0))
    return A


def hippo_n(hidden: int, inputs: int = 1, *, dt_min: float = 1e-3, dt_max: float = 1e-1, rng=None) -> DiagonalSSM:
    """S5's HiPPO-N initialisation as a :class:`~dynmem.ssm.DiagonalSSM`.

    Parameters
    ----------
    hidden : int
        State width m.
    inputs : int
    dt_min, dt_max : float
        Per-state time scales ``Delta_j`` log-uniform on ``[dt_min, dt_max]``.
    rng : None, int or Generator

    Returns
    -------
    DiagonalSSM
        ``Lambda_j Delta_j`` with ``Lambda = eig(A + P P^T / 2)`` (real parts exactly -1/2),
        ``B = V^{-1} B0 * Delta`` and ``C = V^T C0`` for ``B0`` (m, d) and ``C0`` (m,) normal
        (LeCun scaling); ``V`` unitary.
    """
    m = check_int("hidden", hidden, minimum=1)
    d = check_int("inputs", inputs, minimum=1)
    dt_min, dt_max = check_positive("dt_min", dt_min), check_positive("dt_max", dt_max)
    if dt_min > dt_max:
        raise ValueError(f"`dt_min` must not exceed `dt_max`; got {dt_min!r} > {dt_max!r}.")
    rng = check_rng("rng", rng)
    p = np.sqrt(np.arange(m) + 0.5)
    An = hippo_legs(m) + np.outer(p, p)  # = -I/2 + skew-symmetric
    S = (An - An.T) / 2
    # eigenvalues of a skew-symmetric matrix: i * eig of the Hermitian -i S, diagonalised unitarily by eigh
    w, V = np.linalg.eigh(-1j * S)
    Lambda = -0.5 + 1j * w
    B0 = rng.standard_normal((m, d)) / np.sqrt(d)
    C0 = rng.standard_normal(m) / np.sqrt(m)
    delta = np.exp(rng.uniform(np.log(dt_min), np.log(dt_max), m))
    B = (V.conj().T @ B0) * delta[:, None]
    C = V.T @ C0
    return DiagonalSSM(Lambda * delta, B, C, np.zeros(d))
