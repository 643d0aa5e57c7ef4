r"""Linear RNN kernels with a spectral reparameterisation ``W = -f(M)`` of a symmetric ``M`` ([WLL] Fig. 4).

For a symmetric ``M = V diag(mu) V^T`` and a scalar function ``f`` with
``f > 0`` on the real line, the matrix function

.. math:: W = -f(M) = -V \operatorname{diag}(f(\mu)) V^\top

is symmetric negative definite, hence Hurwitz, **for every** symmetric ``M``
(up to floating-point underflow of ``f(mu)`` at ``mu < -700``).  Two
functions are offered, the two of [WLL] Fig. 4:

``"exp"``
    ``f(mu) = e^mu``: ``W = -expm(M)`` (the matrix exponential; for a
    symmetric ``M`` it equals the spectral definition used here).
``"softplus"``
    ``f(mu) = log(1 + e^mu)`` applied to the eigenvalues of ``M`` (there is
    no power-series "matrix softplus" in common use; the spectral one is the
    natural extension and the one whose output is always Hurwitz).

Why symmetric ``M``: the spectral definition needs a real spectrum, and for
a symmetric ``M`` both functions map every ``M`` to a Hurwitz ``W``, so the
perturbations of the trained variables ``(M, U, c)`` can never leave the
stable set.  (A general ``M`` keeps ``-expm(M)`` Hurwitz only while every
eigenvalue has ``|Im mu| < pi/2``; :func:`dynmem.reparam.expm_W`.)

The linear RNN ``dh/dt = W h + U x``, ``y = c^T h`` (``d = 1``) has the kernel

.. math:: \hat\rho(t) = c^\top e^{W t} U = \sum_k \hat c_k \hat u_k e^{-f(\mu_k) t},
          \quad \hat c = V^\top c,\ \hat u = V^\top U .

Its gradient with respect to ``M`` is the Daleckii-Krein formula: for
``g_t(mu) = e^{-t f(mu)}``, ``d(c^T g_t(M) U)[E] = sum_ij c_i u_j
Gamma_ij (V^T E V)_ij`` with the divided differences ``Gamma_ij = (g_t(mu_i) -
g_t(mu_j)) / (mu_i - mu_j)`` (``g_t'(mu_i)`` on the diagonal).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import as_float_array, check_choice

__all__ = ["FUNCTIONS", "rates", "rates_inverse", "recurrent_matrix", "kernel", "kernel_loss_and_grad", "symmetric"]

FUNCTIONS = ("exp", "softplus")


def symmetric(M) -> np.ndarray:
    """``(M + M^T) / 2`` of a square array (checked)."""
    M = as_float_array("M", M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"`M` must be a square matrix; got shape {M.shape}.")
    return 0.5 * (M + M.T)


def rates(mu, kind: str) -> np.ndarray:
    """``f(mu)``: the decay rates (``-eigenvalues of W``) of eigenvalues ``mu`` of ``M``."""
    check_choice("kind", kind, FUNCTIONS)
    mu = np.asarray(mu, dtype=float)
    if kind == "exp":
        return np.exp(mu)
    return np.logaddexp(0.0, mu)


def rate_derivative(mu, kind: str) -> np.ndarray:
    """``f'(mu)``."""
    check_choice("kind", kind, FUNCTIONS)
    mu = np.asarray(mu, dtype=float)
    if kind == "exp":
        return np.exp(mu)
    return 0.5 * (1.0 + np.tanh(0.5 * mu))  # the logistic function, overflow-free


def rates_inverse(lam, kind: str) -> np.ndarray:
    """``f^{-1}(lam)`` for ``lam > 0``."""
    check_choice("kind", kind, FUNCTIONS)
    lam = np.asarray(lam, dtype=float)
    if np.any(~(lam > 0)):
        raise ValueError(f"`lam` must be positive; got min {np.min(lam)!r}.")
    if kind == "exp":
        return np.log(lam)
    return lam + np.log(-np.expm1(-lam))


def recurrent_matrix(M, kind: str) -> np.ndarray:
    """``W = -f(M)`` of the symmetric part of ``M``."""
    mu, V = np.linalg.eigh(symmetric(M))
    return -(V * rates(mu, kind)) @ V.T


def kernel(M, U, c, t, kind: str) -> np.ndarray:
    """``c^T e^{W t} U`` on the times ``t`` (shape (n,)), ``W = -f(M)``."""
    mu, V = np.linalg.eigh(symmetric(M))
    lam = rates(mu, kind)
    w = (V.T @ np.asarray(c, float).ravel()) * (V.T @ np.asarray(U, float).ravel())
    return np.exp(-np.outer(np.asarray(t, float), lam)) @ w


def _divided(g: np.ndarray, dg: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Divided differences ``(g_i - g_j) / (mu_i - mu_j)`` per time row, ``dg`` on (near-)ties."""
    d = mu[:, None] - mu[None, :]
    tie = np.abs(d) <= 1e-9 * (1.0 + np.abs(mu[:, None]))
    safe = np.where(tie, 1.0, d)
    G = (g[:, :, None] - g[:, None, :]) / safe[None]
    mean_dg = 0.5 * (dg[:, :, None] + dg[:, None, :])
    return np.where(tie[None], mean_dg, G)


def kernel_loss_and_grad(M, U, c, t, rho, kind: str, weights=None) -> tuple[float, dict]:
    r"""``L = 1/2 sum_i w_i (rho_hat(t_i) - rho(t_i))^2`` and its gradients in ``M`` (symmetric), ``U``, ``c``.

    ``weights`` default to ``1 / n``.  The ``M`` gradient is the symmetric
    matrix ``V (S o sum_i w_i r_i Gamma_i) V^T`` with ``S = (c_hat u_hat^T +
    u_hat c_hat^T) / 2`` (Daleckii-Krein; see the module docstring).
    """
    t = np.asarray(t, float).ravel()
    rho = np.asarray(rho, float).ravel()
    wts = np.full(t.size, 1.0 / t.size) if weights is None else np.asarray(weights, float).ravel()
    mu, V = np.linalg.eigh(symmetric(M))
    lam, dlam = rates(mu, kind), rate_derivative(mu, kind)
    ch, uh = V.T @ np.asarray(c, float).ravel(), V.T @ np.asarray(U, float).ravel()
    E = np.exp(-np.outer(t, lam))                      # g_t(mu_k)
    r = E @ (ch * uh) - rho
    loss = 0.5 * float(np.sum(wts * r * r))
    wr = wts * r
    dE = -(t[:, None] * dlam[None, :]) * E             # g_t'(mu_k)
    Gam = np.einsum("i,ijk->jk", wr, _divided(E, dE, mu))
    S = 0.5 * (np.outer(ch, uh) + np.outer(uh, ch))
    gM = V @ (S * Gam) @ V.T
    s = wr @ E                                          # sum_i w_i r_i g_t(mu_k)
    gU = V @ (ch * s)
    gc = V @ (uh * s)
    return loss, {"M": 0.5 * (gM + gM.T), "U": gU, "c": gc}


def sup_error(M, U, c, t, rho, kind: str) -> float:
    """``max_i |rho_hat(t_i) - rho(t_i)|`` (inf when not finite)."""
    e = np.abs(kernel(M, U, c, t, kind) - np.asarray(rho, float))
    v = float(np.max(e))
    return v if math.isfinite(v) else math.inf
