r"""Empirical and limit neural tangent kernels of the [LSS] network class.

docs/theory.md section 7; [LSS] arXiv 2308.14555.  Under the learning rate
:math:`\alpha / N^{2-2\beta}` and the time scale :math:`t = k/N` the network
output on a history ``z`` moves by

.. math::

    \frac{d h^N_t(z)}{dt} \approx \alpha\, E_\nu\big[(Y - h^N_t(Z'))\, K_N(z, Z')\big],\qquad
    K_N(z, z') = N^{2\beta - 1} \sum_{i=1}^N \nabla_{\theta^i}\hat y(z)\cdot\nabla_{\theta^i}\hat y(z')
              = \frac1N \sum_{i=1}^N g^i(z)\cdot g^i(z'),

with the unscaled unit gradients :math:`g^i = N^\beta \nabla_{\theta^i}\hat y`.
:func:`empirical_ntk` computes :math:`K_N` (this normalisation, so that it is
directly comparable with the limit); :func:`limit_kernel` computes

.. math::

    A(z, z') = E_\theta\big[g(\theta; z)\cdot g(\theta; z')\big]

with the memory state at its fixed point (the network's evaluation
convention, :mod:`dynmem.kernel.network`), by randomised quasi-Monte Carlo
over the initial law of :math:`(w, b, u)` (scrambled Sobol points,
:mod:`scipy.stats.qmc`) and exactly in ``c`` (the gradient is linear in
``c``, so :math:`E[c^2] = \sigma_c^2` factors out).  For M1 ("diagonal")
:math:`g = (s, c\,\partial s/\partial(w, b, u))`; for M2 ("mean-field") the
law of large numbers makes the mean state deterministic,
:math:`\bar s \to \bar m(z)`, and the cross-unit term
:math:`\Gamma M = O(N^{-1/2})` vanishes, so
:math:`g = (s, c\,\sigma'(a)(x_{L-1}, \bar m(z_{<L-1}), 1))` with :math:`\bar m`
computed from the quadrature units themselves.
The error estimate is the standard error over independent scrambles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

from .._validation import check_choice, check_int, describe, check_rng
from .network import RECURRENCES, LSSNetwork, ParamLaw, prefix_tree

__all__ = ["empirical_ntk", "limit_kernel", "LimitKernel", "kernel_error"]

_BLOCK_BYTES = 8 * 2**20


def _block_size(n_rows: int, P: int, block) -> int:
    if block is not None:
        return check_int("block", block, minimum=1)
    return max(1, _BLOCK_BYTES // (8 * max(n_rows, 1) * P))


def _gram(net: LSSNetwork, H1, H2, col_weights, block, gamma_zero=False) -> np.ndarray:
    """(1/N) sum_i g^i(z) . diag(col_weights) g^i(z'), streamed over blocks of units."""
    t1 = prefix_tree(H1)
    g1 = net._mean_field_globals(t1)
    same = H2 is None
    if not same:
        t2 = prefix_tree(H2)
        g2 = net._mean_field_globals(t2)
    if gamma_zero:
        g1[2][:] = 0.0
        if not same:
            g2[2][:] = 0.0
    N, P = net.width, net.dim + 3
    n1 = t1.leaf.shape[0]
    n2 = n1 if same else t2.leaf.shape[0]
    B = _block_size(max(n1, n2), P, block)
    K = np.zeros((n1, n2))
    sw = np.sqrt(col_weights)
    for i0 in range(0, N, B):
        i1 = min(N, i0 + B)
        J1 = (net._jacobian_block(t1, g1, i0, i1) * sw).reshape(n1, -1)
        if same:
            K += J1 @ J1.T
        else:
            J2 = (net._jacobian_block(t2, g2, i0, i1) * sw).reshape(n2, -1)
            K += J1 @ J2.T
    K /= N
    if same:
        K = 0.5 * (K + K.T)
    return K


def empirical_ntk(network: LSSNetwork, histories, histories2=None, *, block: int | None = None) -> np.ndarray:
    r"""The empirical NTK :math:`K_N(z, z') = \frac1N\sum_i g^i(z)\cdot g^i(z')` of a finite network.

    Parameters
    ----------
    network : LSSNetwork
    histories : HistoryGrid or array_like, shape (n1, L, d)
    histories2 : HistoryGrid or array_like, shape (n2, L', d), optional
        Second argument (default: ``histories``, giving a symmetric matrix).
    block : int, optional
        Units per Jacobian block (default: blocks of about 8 MB), so memory
        stays bounded whatever ``N``.

    Returns
    -------
    ndarray, shape (n1, n2)
    """
    if not isinstance(network, LSSNetwork):
        raise TypeError(f"`network` must be an LSSNetwork; got {describe(network)}.")
    H1 = network._histories(histories)
    H2 = None if histories2 is None else network._histories(histories2)
    return _gram(network, H1, H2, np.ones(network.dim + 3), block)


@dataclass(frozen=True)
class LimitKernel:
    r"""The limit kernel :math:`A(z, z')` by randomised QMC.

    Attributes
    ----------
    K : ndarray, shape (n1, n2)
        Mean over scrambles.
    stderr : ndarray, shape (n1, n2)
        Standard error over the ``n_scrambles`` independent scrambles.
    n_points : int
        Sobol points per scramble.
    n_scrambles : int
    """

    K: np.ndarray
    stderr: np.ndarray
    n_points: int
    n_scrambles: int

    @property
    def max_stderr(self) -> float:
        return float(np.max(self.stderr))


def limit_kernel(histories, histories2=None, *, d: int | None = None, law: ParamLaw | None = None,
                 recurrence: str = "diagonal", activation: str = "tanh", n_points: int = 4096,
                 n_scrambles: int = 8, block: int | None = None, rng=None) -> LimitKernel:
    r"""The [LSS] limit kernel :math:`A(z, z') = E_\theta[g(\theta;z)\cdot g(\theta;z')]`.

    Parameters
    ----------
    histories : HistoryGrid or array_like, shape (n1, L, d)
    histories2 : HistoryGrid or array_like, shape (n2, L', d), optional
    d : int, optional
        Input dimension (read from ``histories`` by default).
    law : ParamLaw
        Initial law of one unit (default :class:`ParamLaw()`).
    recurrence : {"diagonal", "mean-field"}
    activation : str
    n_points : int
        Scrambled Sobol points per scramble (a power of 2).
    n_scrambles : int
        Independent scrambles (>= 2 for an error estimate).
    block : int, optional
        Quadrature units per Jacobian block (default: blocks of about 8 MB).
    rng : seed or Generator
        Seeds the scrambles.

    Returns
    -------
    LimitKernel
    """
    from .chains import as_histories

    H1 = as_histories("histories", histories)
    H2 = None if histories2 is None else as_histories("histories2", histories2)
    d = H1.shape[2] if d is None else check_int("d", d, minimum=1)
    if H1.shape[2] != d or (H2 is not None and H2.shape[2] != d):
        raise ValueError(f"`histories` must have values of dimension d = {d}; got shape {H1.shape}.")
    law = ParamLaw() if law is None else law
    if not isinstance(law, ParamLaw):
        raise TypeError(f"`law` must be a ParamLaw; got {describe(law)}.")
    check_choice("recurrence", recurrence, RECURRENCES)
    n_points = check_int("n_points", n_points, minimum=2)
    if n_points & (n_points - 1):
        raise ValueError(f"`n_points` must be a power of 2 (Sobol balance); got {n_points}.")
    n_scrambles = check_int("n_scrambles", n_scrambles, minimum=1)
    rng = check_rng("rng", rng)
    cols = np.concatenate([[1.0], np.full(d + 2, law.c_std ** 2)])
    Ks = []
    for _ in range(n_scrambles):
        U = qmc.Sobol(d + 2, scramble=True, seed=rng).random(n_points)
        w, b, u = law.from_unit_cube(U, d)
        # c = 1 for every quadrature unit: E[c^2] enters through `cols`.
        pseudo = LSSNetwork(np.ones(n_points), w, b, u, beta=0.5, recurrence=recurrence, activation=activation)
        Ks.append(_gram(pseudo, H1, H2, cols, block, gamma_zero=True))
    Ks = np.asarray(Ks)
    K = Ks.mean(axis=0)
    se = Ks.std(axis=0, ddof=1) / np.sqrt(n_scrambles) if n_scrambles > 1 else np.full(K.shape, np.nan)
    return LimitKernel(K, se, n_points, n_scrambles)


def kernel_error(K, A, weights1=None, weights2=None) -> float:
    r"""Relative error :math:`\|K - A\|_{L^2(\nu\otimes\nu)} / \|A\|_{L^2(\nu\otimes\nu)}`.

    Parameters
    ----------
    K, A : ndarray, shape (n1, n2)
    weights1 : ndarray, shape (n1,), optional
        Weights of the rows (default uniform); ``weights2`` of the columns
        (default ``weights1`` when square).
    """
    K, A = np.asarray(K, float), np.asarray(A, float)
    if K.shape != A.shape or K.ndim != 2:
        raise ValueError(f"`K` and `A` must be matrices of one shape; got {K.shape} and {A.shape}.")
    w1 = np.full(K.shape[0], 1.0 / K.shape[0]) if weights1 is None else np.asarray(weights1, float)
    w2 = (w1 if K.shape[0] == K.shape[1] else np.full(K.shape[1], 1.0 / K.shape[1])) if weights2 is None else np.asarray(weights2, float)
    W = np.outer(w1, w2)
    return float(np.sqrt(np.sum(W * (K - A) ** 2) / np.sum(W * A ** 2)))
