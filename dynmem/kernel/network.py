r"""The finite network of the [LSS] kernel limit and its online RTRL training.

docs/theory.md section 7; [LSS] = Lam, Sirignano, Spiliopoulos, *Kernel Limit of
Recurrent Neural Networks Trained on Ergodic Data Sequences*, arXiv
2308.14555.  The body of [LSS] could not be checked against this code: the
class below is the one documented in docs/theory.md, with its structural choices
exposed as options (``recurrence``, ``beta``, the parameter law).

Model
-----
Width ``N``, unit parameters :math:`\theta^i = (c^i, w^i, b^i, u^i)`
(:math:`w^i \in \mathbb{R}^d`), i.i.d. at initialisation, and

.. math::

    \text{M1 ("diagonal")}:\quad  s^i_{k+1} = \sigma(w^i\cdot x_{k+1} + b^i s^i_k + u^i),

    \text{M2 ("mean-field")}:\quad s^i_{k+1} = \sigma(w^i\cdot x_{k+1} + b^i \bar s_k + u^i),
    \quad \bar s_k = \tfrac1N \textstyle\sum_j s^j_k,

    \hat y_k = N^{-\beta} \textstyle\sum_i c^i s^i_k, \qquad \beta \in [1/2, 1).

Both recursions contract in the state when
:math:`\sup_i |b^i| \sup|\sigma'| < 1` (checked; a violation is an error).

Training ([LSS]; docs/theory.md section 7)
------------------------------------------
Online SGD on :math:`\tfrac12(\hat y_k - Y_k)^2` along one stream, one step per
sample, hidden state never reset, learning rate :math:`\alpha / N^{2-2\beta}`,
gradients from forward-mode real-time recurrent learning (RTRL) with the
sensitivities carried along the stream under the current parameters.  Time is
rescaled as :math:`t = k / N`.

*M1 sensitivities* (per unit, :math:`D = \partial s^i / \partial(w^i, b^i, u^i)`):

.. math::

    D_{k+1} = \sigma'(a^i_{k+1})\big((x_{k+1}, s^i_k, 1) + b^i D_k\big).

*M2 sensitivities* are not per unit (every state depends on every unit's
parameters through :math:`\bar s`), but the output gradient only needs, per
parameter ``p`` of unit ``j``, :math:`M_p = \partial \bar s / \partial p` and
:math:`G_p = \sum_i c^i \partial s^i / \partial p`:

.. math::

    G_{p,k+1} = \Gamma_{k+1} M_{p,k} + c^j \sigma'(a^j_{k+1}) e_{p,k+1},\qquad
    M_{p,k+1} = B_{k+1} M_{p,k} + \tfrac1N \sigma'(a^j_{k+1}) e_{p,k+1},

with :math:`e = (x_{k+1}, \bar s_k, 1)`, :math:`B = \frac1N\sum_i \sigma'(a^i) b^i`
and :math:`\Gamma = \sum_i c^i \sigma'(a^i) b^i`: exact RTRL at :math:`O(N d)`
per step (not :math:`O(N^2 d)`).

Evaluation on histories (a documented choice)
---------------------------------------------
The network output on a finite history :math:`z = (x_0, \dots, x_{L-1})`
(oldest first) is its output on the infinite history that repeats
:math:`x_0` into the past: the states start at the **memory fixed point**
driven by the constant input :math:`x_0` (a contraction, solved by Newton's
method to machine precision) and the recursion then reads
:math:`x_1, \dots, x_{L-1}`.  The training stream starts the same way (fixed
point of its first value, sensitivities at their fixed point) followed by a
burn-in without learning.  The difference from the output on the true
infinite past is at most :math:`O((\sup|b|\sup|\sigma'|)^{L})`.
Histories sharing a prefix share its computation (a prefix tree), so the
cost is proportional to the number of distinct prefixes times ``N``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
import scipy.stats

from .._validation import as_float_array, check_choice, check_finite, check_int, check_nonnegative, check_positive, describe, check_rng
from ..activations import act_and_deriv_scalar, get_activation, sup_derivative

__all__ = ["ParamLaw", "LSSNetwork", "TrainingResult", "train_online", "RECURRENCES"]

RECURRENCES = ("diagonal", "mean-field")
_MODE = {"diagonal": 0, "mean-field": 1}
_NEWTON_ITERS = 100


# ----------------------------------------------------------------------------- numba kernels


@numba.njit(cache=True, inline="always")
def _unit_fixed_point(drive, b, code):
    """Solve s = sigma(drive + b s) (|b| sup sigma' < 1) by Newton with a fixed-point fallback.

    Returns (s, sigma'(a)) at the fixed point.
    """
    s = 0.0
    for _ in range(_NEWTON_ITERS):
        a, ds = act_and_deriv_scalar(code, drive + b * s)
        step = (s - a) / (1.0 - b * ds)
        s -= step
        if abs(step) <= 1e-15 * (1.0 + abs(s)):
            break
    for _ in range(3):  # polish with the contraction itself (Newton can stall at kinks)
        s = act_and_deriv_scalar(code, drive + b * s)[0]
    a, ds = act_and_deriv_scalar(code, drive + b * s)
    return a, ds


@numba.njit(cache=True, inline="always")
def _pair_sum(c, s):
    """sum_i c_i s_i summed pair by pair (i, i + N/2): exactly 0 for a paired initialisation."""
    N = c.shape[0]
    half = N // 2
    f = 0.0
    for i in range(half):
        f += c[i] * s[i] + c[i + half] * s[i + half]
    if N % 2:
        f += c[N - 1] * s[N - 1]
    return f


@numba.njit(cache=True)
def _mean_fixed_point(W, b, u, x, code):
    """Solve m = (1/N) sum_i sigma(w_i . x + b_i m + u_i) by Newton; returns m."""
    N, d = W.shape
    drive = np.empty(N)
    for i in range(N):
        acc = u[i]
        for q in range(d):
            acc += W[i, q] * x[q]
        drive[i] = acc
    m = 0.0
    for it in range(_NEWTON_ITERS + 3):
        F = 0.0
        dF = 0.0
        for i in range(N):
            a, ds = act_and_deriv_scalar(code, drive[i] + b[i] * m)
            F += a
            dF += ds * b[i]
        F = m - F / N
        if it >= _NEWTON_ITERS:
            m = m - F  # contraction polish
            continue
        step = F / (1.0 - dF / N)
        m -= step
        if abs(step) <= 1e-15 * (1.0 + abs(m)):
            break
    return m


@numba.njit(cache=True)
def _init_state(W, b, u, x0, mode, code, s, D, mbuf):
    """States and sensitivities at the memory fixed point of the constant input x0."""
    N, d = W.shape
    if mode == 0:
        for i in range(N):
            drive = u[i]
            for q in range(d):
                drive += W[i, q] * x0[q]
            si, dsi = _unit_fixed_point(drive, b[i], code)
            s[i] = si
            r = dsi / (1.0 - b[i] * dsi)
            for q in range(d):
                D[i, q] = r * x0[q]
            D[i, d] = r * si
            D[i, d + 1] = r
        mbuf[0] = 0.0
    else:
        m = _mean_fixed_point(W, b, u, x0, code)
        Bsum = 0.0
        ds_all = np.empty(N)
        for i in range(N):
            drive = u[i] + b[i] * m
            for q in range(d):
                drive += W[i, q] * x0[q]
            a, ds = act_and_deriv_scalar(code, drive)
            s[i] = a
            ds_all[i] = ds
            Bsum += ds * b[i]
        Bbar = Bsum / N
        for i in range(N):
            r = ds_all[i] / (N * (1.0 - Bbar))
            for q in range(d):
                D[i, q] = r * x0[q]
            D[i, d] = r * m
            D[i, d + 1] = r
        mbuf[0] = m


@numba.njit(cache=True)
def _train_kernel(X, Y, lr, c, W, b, u, s, D, mbuf, mode, code, scale, errs, grad):
    """Run len(X) online steps (lr[k] = 0 for burn-in).  Returns -1, or the first step whose output is NaN or >= 1e100 in size.

    State: s (N,) unit states; D (N, d+2) = ds_i/d(w_i, b_i, u_i) for M1, or
    M = d sbar/d(w_j, b_j, u_j) for M2; mbuf[0] = sbar (M2).  errs[k] = yhat_k - Y_k.
    grad (N, d+3) is workspace: the unscaled output gradient (c, w, b, u) of the last step.
    """
    K, d = X.shape
    N = c.shape[0]
    dsv = np.empty(N)
    for k in range(K):
        f = 0.0
        if mode == 0:
            for i in range(N):
                drive = u[i] + b[i] * s[i]
                for q in range(d):
                    drive += W[i, q] * X[k, q]
                a, ds = act_and_deriv_scalar(code, drive)
                bi = b[i]
                for q in range(d):
                    D[i, q] = ds * (X[k, q] + bi * D[i, q])
                D[i, d] = ds * (s[i] + bi * D[i, d])
                D[i, d + 1] = ds * (1.0 + bi * D[i, d + 1])
                s[i] = a
                grad[i, 0] = a
                for p in range(d + 2):
                    grad[i, p + 1] = c[i] * D[i, p]
        else:
            m = mbuf[0]
            Bsum = 0.0
            Gam = 0.0
            for i in range(N):
                drive = u[i] + b[i] * m
                for q in range(d):
                    drive += W[i, q] * X[k, q]
                a, ds = act_and_deriv_scalar(code, drive)
                s[i] = a
                dsv[i] = ds
                Bsum += ds * b[i]
                Gam += c[i] * ds * b[i]
            Bbar = Bsum / N
            msum = 0.0
            for j in range(N):
                ds = dsv[j]
                cj = c[j]
                grad[j, 0] = s[j]
                for p in range(d + 2):
                    if p < d:
                        e = X[k, p]
                    elif p == d:
                        e = m
                    else:
                        e = 1.0
                    Mo = D[j, p]
                    grad[j, p + 1] = Gam * Mo + cj * ds * e
                    D[j, p] = Bbar * Mo + ds * e / N
                msum += s[j]
            mbuf[0] = msum / N
        f = scale * _pair_sum(c, s)
        if not (abs(f) < 1e100):  # diverged (or NaN): stop and report
            return k
        err = f - Y[k]
        errs[k] = err
        step = lr[k] * err * scale
        if step != 0.0:
            for i in range(N):
                c[i] -= step * grad[i, 0]
                for q in range(d):
                    W[i, q] -= step * grad[i, q + 1]
                b[i] -= step * grad[i, d + 1]
                u[i] -= step * grad[i, d + 2]
    return -1


@numba.njit(cache=True)
def _tree_output(c, W, b, u, vals, parent, leaf, mode, code, scale, out):
    """Output on histories through their prefix tree (nodes in topological order)."""
    N, d = W.shape
    n_nodes = vals.shape[0]
    out[:] = 0.0
    if mode == 0:
        st = np.empty(n_nodes)
        half = N // 2
        pairbuf = np.zeros(leaf.shape[0])
        for idx in range(N):
            # visit units in the order 0, half, 1, half + 1, ... so that partners are adjacent
            i = idx // 2 + (idx % 2) * half if idx < 2 * half else idx
            for n in range(n_nodes):
                drive = u[i]
                for q in range(d):
                    drive += W[i, q] * vals[n, q]
                if parent[n] < 0:
                    st[n] = _unit_fixed_point(drive, b[i], code)[0]
                else:
                    st[n] = act_and_deriv_scalar(code, drive + b[i] * st[parent[n]])[0]
            ci = c[i]
            if idx < 2 * half and idx % 2 == 0:  # held until its partner arrives: exact 0 for paired units
                for h in range(leaf.shape[0]):
                    pairbuf[h] = ci * st[leaf[h]]
            elif idx < 2 * half:
                for h in range(leaf.shape[0]):
                    out[h] += ci * st[leaf[h]] + pairbuf[h]
            else:
                for h in range(leaf.shape[0]):
                    out[h] += ci * st[leaf[h]]
        for h in range(leaf.shape[0]):
            out[h] *= scale
    else:
        mb = np.empty(n_nodes)
        fn = np.empty(n_nodes)
        sv = np.empty(N)
        for n in range(n_nodes):
            mp = _mean_fixed_point(W, b, u, vals[n], code) if parent[n] < 0 else mb[parent[n]]
            ms = 0.0
            for i in range(N):
                drive = u[i] + b[i] * mp
                for q in range(d):
                    drive += W[i, q] * vals[n, q]
                a = act_and_deriv_scalar(code, drive)[0]
                sv[i] = a
                ms += a
            mb[n] = ms / N
            fn[n] = scale * _pair_sum(c, sv)
        for h in range(leaf.shape[0]):
            out[h] = fn[leaf[h]]
    return out


@numba.njit(cache=True)
def _tree_mean_field(c, W, b, u, vals, parent, code, mprev, Bbar, Gam):
    """M2 global quantities per tree node: sbar before the node, B and Gamma at the node."""
    N, d = W.shape
    n_nodes = vals.shape[0]
    mnode = np.empty(n_nodes)
    for n in range(n_nodes):
        mp = _mean_fixed_point(W, b, u, vals[n], code) if parent[n] < 0 else mnode[parent[n]]
        mprev[n] = mp
        ms = 0.0
        bs = 0.0
        gs = 0.0
        for i in range(N):
            drive = u[i] + b[i] * mp
            for q in range(d):
                drive += W[i, q] * vals[n, q]
            a, ds = act_and_deriv_scalar(code, drive)
            ms += a
            bs += ds * b[i]
            gs += c[i] * ds * b[i]
        mnode[n] = ms / N
        Bbar[n] = bs / N
        Gam[n] = gs


@numba.njit(cache=True)
def _tree_jacobian(c, W, b, u, vals, parent, leaf, mode, code, i0, i1, mprev, Bbar, Gam, J):
    """Unscaled per-unit output gradients g^i(z) = N^beta d yhat(z) / d theta^i for units i0..i1-1.

    J has shape (n_hist, i1 - i0, d + 3), columns (c, w_1..w_d, b, u).
    """
    N, d = W.shape
    n_nodes = vals.shape[0]
    P = d + 2
    st = np.empty(n_nodes)
    Dt = np.empty((n_nodes, P))
    Gt = np.empty((n_nodes, P))
    for i in range(i0, i1):
        for n in range(n_nodes):
            if mode == 0:
                drive = u[i]
                for q in range(d):
                    drive += W[i, q] * vals[n, q]
                if parent[n] < 0:
                    a, ds = _unit_fixed_point(drive, b[i], code)
                    r = ds / (1.0 - b[i] * ds)
                    for q in range(d):
                        Dt[n, q] = r * vals[n, q]
                    Dt[n, d] = r * a
                    Dt[n, d + 1] = r
                else:
                    pn = parent[n]
                    a, ds = act_and_deriv_scalar(code, drive + b[i] * st[pn])
                    for q in range(d):
                        Dt[n, q] = ds * (vals[n, q] + b[i] * Dt[pn, q])
                    Dt[n, d] = ds * (st[pn] + b[i] * Dt[pn, d])
                    Dt[n, d + 1] = ds * (1.0 + b[i] * Dt[pn, d + 1])
                st[n] = a
                for p in range(P):
                    Gt[n, p] = c[i] * Dt[n, p]
            else:
                mp = mprev[n]
                drive = u[i] + b[i] * mp
                for q in range(d):
                    drive += W[i, q] * vals[n, q]
                a, ds = act_and_deriv_scalar(code, drive)
                st[n] = a
                root = parent[n] < 0
                r = ds / (N * (1.0 - Bbar[n])) if root else 0.0
                for p in range(P):
                    if p < d:
                        e = vals[n, p]
                    elif p == d:
                        e = mp
                    else:
                        e = 1.0
                    Mo = r * e if root else Dt[parent[n], p]
                    Gt[n, p] = Gam[n] * Mo + c[i] * ds * e
                    Dt[n, p] = Bbar[n] * Mo + ds * e / N
        for h in range(leaf.shape[0]):
            n = leaf[h]
            J[h, i - i0, 0] = st[n]
            for p in range(P):
                J[h, i - i0, p + 1] = Gt[n, p]
    return J


# ----------------------------------------------------------------------------- prefix tree


@dataclass(frozen=True)
class _Tree:
    vals: np.ndarray     # (n_nodes, d)
    parent: np.ndarray   # (n_nodes,) int64, -1 for roots
    leaf: np.ndarray     # (n_hist,) int64


def prefix_tree(H: np.ndarray) -> _Tree:
    """Distinct prefixes of the histories H (n, L, d), parents before children."""
    n, L, d = H.shape
    vals, parents = [], []
    offset = 0
    prev_inv = None
    for j in range(L):
        key = H[:, : j + 1, :].reshape(n, -1)
        uniq, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
        vals.append(H[first, j, :])
        if j == 0:
            parents.append(np.full(uniq.shape[0], -1, dtype=np.int64))
        else:
            parents.append(prev_offset + prev_inv[first])
        prev_inv, prev_offset = inv, offset
        offset += uniq.shape[0]
    return _Tree(np.ascontiguousarray(np.concatenate(vals)), np.ascontiguousarray(np.concatenate(parents)).astype(np.int64),
                 (prev_offset + prev_inv).astype(np.int64))


# ----------------------------------------------------------------------------- parameter law


@dataclass(frozen=True)
class ParamLaw:
    r"""The law of one unit's parameters at initialisation (a documented choice).

    .. math::

        c \sim N(0, \sigma_c^2),\quad w \sim N(0, \sigma_w^2 I_d),\quad
        b \sim U(-b_{\max}, b_{\max}),\quad u \sim N(0, \sigma_u^2),

    independent.  ``b_max * sup|sigma'| < 1`` makes every unit contract.
    """

    c_std: float = 1.0
    w_std: float = 1.0
    u_std: float = 1.0
    b_max: float = 0.5

    def __post_init__(self):
        for name in ("c_std", "w_std", "u_std"):
            object.__setattr__(self, name, check_nonnegative(name, getattr(self, name)))
        object.__setattr__(self, "b_max", check_nonnegative("b_max", self.b_max))

    def from_unit_cube(self, U: np.ndarray, d: int):
        """Map points of [0, 1)^(d+2) to ``(w (n, d), b (n,), u (n,))`` by inverse CDFs (for QMC)."""
        U = np.clip(np.asarray(U, dtype=float), 1e-12, 1 - 1e-12)
        w = self.w_std * scipy.stats.norm.ppf(U[:, :d])
        b = self.b_max * (2.0 * U[:, d] - 1.0)
        u = self.u_std * scipy.stats.norm.ppf(U[:, d + 1])
        return np.ascontiguousarray(w), np.ascontiguousarray(b), np.ascontiguousarray(u)

    def sample(self, n: int, d: int, rng):
        """``(c, w, b, u)`` for ``n`` i.i.d. units."""
        c = self.c_std * rng.standard_normal(n)
        w = self.w_std * rng.standard_normal((n, d))
        b = rng.uniform(-self.b_max, self.b_max, n)
        u = self.u_std * rng.standard_normal(n)
        return c, w, b, u


# ----------------------------------------------------------------------------- the network


def check_beta(beta) -> float:
    """`beta` as a float, checked to lie in [1/2, 1) (the output scale exponent)."""
    beta = check_finite("beta", beta)
    if not 0.5 <= beta < 1.0:
        raise ValueError(f"`beta` must be in [1/2, 1) (output scale N^-beta); got {beta}.")
    return beta


@dataclass(frozen=True)
class LSSNetwork:
    r"""A width-``N`` network of the [LSS] class (docs/theory.md section 7).

    Parameters
    ----------
    c : ndarray, shape (N,)
        Output weights.
    W : ndarray, shape (N, d)
        Input weights :math:`w^i`.
    b : ndarray, shape (N,)
        Recurrent weights :math:`b^i`; the contraction
        :math:`\sup_i|b^i|\sup|\sigma'| < 1` is required.
    u : ndarray, shape (N,)
        Biases.
    beta : float
        Output scale exponent, :math:`\hat y = N^{-\beta}\sum_i c^i s^i`, in [1/2, 1).
    recurrence : {"diagonal", "mean-field"}
        M1 (each unit feeds back its own state) or M2 (the mean state).
    activation : str
        A registered activation (``"tanh"`` by default).

    Notes
    -----
    Build one with :meth:`initialise`.  The arrays are copied and frozen.
    """

    c: np.ndarray
    W: np.ndarray
    b: np.ndarray
    u: np.ndarray
    beta: float = 0.5
    recurrence: str = "diagonal"
    activation: str = "tanh"

    def __post_init__(self):
        c = as_float_array("c", self.c, ndim=1, copy=True)
        N = c.shape[0]
        if N < 1:
            raise ValueError("`c` must hold at least one unit; got an empty array.")
        W = as_float_array("W", self.W, ndim=(1, 2), copy=True)
        if W.ndim == 1:
            W = W[:, None]
        if W.shape[0] != N:
            raise ValueError(f"`W` must have shape ({N}, d) to match `c`; got shape {W.shape}.")
        b = as_float_array("b", self.b, shape=(N,), copy=True)
        u = as_float_array("u", self.u, shape=(N,), copy=True)
        beta = check_beta(self.beta)
        check_choice("recurrence", self.recurrence, RECURRENCES)
        act = get_activation(self.activation)
        sup_d = sup_derivative(act)
        rho = float(np.max(np.abs(b))) * sup_d
        if not rho < 1.0:
            raise ValueError(
                f"`b` must satisfy the contraction sup|b| * sup|sigma'| < 1; got sup|b| = {float(np.max(np.abs(b)))!r} "
                f"and sup|sigma'| = {sup_d} for {act.name} (product {rho!r}).")
        for name, arr in (("c", c), ("W", W), ("b", b), ("u", u)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "activation", act.name)

    @classmethod
    def initialise(cls, N: int, d: int = 1, *, law: ParamLaw | None = None, paired: bool = True, beta: float = 0.5,
                   recurrence: str = "diagonal", activation: str = "tanh", rng=None) -> "LSSNetwork":
        r"""Draw i.i.d. units from ``law``.

        With ``paired=True`` (``N`` even) units ``i`` and ``i + N/2`` share
        :math:`(w, b, u)` and have opposite ``c``, so their states coincide
        and the initial output is exactly 0 on every input (in both
        recurrences: M2 sees the same mean either way; the output sums each
        pair before adding it, so the cancellation is exact in floating
        point).  Kernel averages then run over ``N/2`` independent units.

        Parameters
        ----------
        N : int
            Width.
        d : int
            Input dimension.
        law : ParamLaw, optional
            Law of one unit (default :class:`ParamLaw()`).
        paired : bool
        beta, recurrence, activation
            As the class.
        rng : seed or Generator
        """
        N = check_int("N", N, minimum=1)
        d = check_int("d", d, minimum=1)
        law = ParamLaw() if law is None else law
        if not isinstance(law, ParamLaw):
            raise TypeError(f"`law` must be a ParamLaw; got {describe(law)}.")
        rng = check_rng("rng", rng)
        if paired:
            if N % 2:
                raise ValueError(f"`N` must be even when paired=True (units i and i + N/2 are paired); got {N}.")
            c, w, b, u = law.sample(N // 2, d, rng)
            c, w, b, u = np.concatenate([c, -c]), np.concatenate([w, w]), np.concatenate([b, b]), np.concatenate([u, u])
        else:
            c, w, b, u = law.sample(N, d, rng)
        return cls(c, w, b, u, beta=beta, recurrence=recurrence, activation=activation)

    # --------------------------------------------------------------- basics
    @property
    def width(self) -> int:
        return int(self.c.shape[0])

    @property
    def dim(self) -> int:
        return int(self.W.shape[1])

    @property
    def scale(self) -> float:
        r""":math:`N^{-\beta}`."""
        return float(self.width) ** (-self.beta)

    @property
    def contraction(self) -> float:
        r""":math:`\sup_i |b^i| \sup|\sigma'|`."""
        return float(np.max(np.abs(self.b))) * sup_derivative(self.activation)

    def _code(self) -> int:
        return get_activation(self.activation).code

    def _mode(self) -> int:
        return _MODE[self.recurrence]

    def learning_rate(self, alpha: float) -> float:
        r""":math:`\alpha / N^{2 - 2\beta}`."""
        return alpha / float(self.width) ** (2.0 - 2.0 * self.beta)

    def flatten(self) -> np.ndarray:
        """Parameters as one (N, d + 3) array, columns (c, w_1..w_d, b, u)."""
        return np.column_stack([self.c, self.W, self.b, self.u])

    def unflatten(self, theta) -> "LSSNetwork":
        """The network with parameters ``theta`` (shape (N', d' + 3), the layout of :meth:`flatten`).

        ``beta``, ``recurrence`` and ``activation`` are this network's; the
        width and input dimension are ``theta``'s.
        """
        return LSSNetwork._from_columns(theta, beta=self.beta, recurrence=self.recurrence, activation=self.activation)

    @classmethod
    def _from_columns(cls, theta, *, beta, recurrence, activation) -> "LSSNetwork":
        theta = as_float_array("theta", theta, ndim=2)
        if theta.shape[1] < 4:
            raise ValueError(f"`theta` must have shape (N, d + 3) with d >= 1; got shape {theta.shape}.")
        return cls(theta[:, 0], theta[:, 1:-2], theta[:, -2], theta[:, -1], beta=beta, recurrence=recurrence,
                   activation=activation)

    def flat(self) -> np.ndarray:
        """Deprecated spelling of :meth:`flatten` (warns; removed in the next release)."""
        warnings.warn("LSSNetwork.flat() is deprecated; use flatten()", DeprecationWarning, stacklevel=2)
        return self.flatten()

    @classmethod
    def from_flat(cls, theta, *, beta=0.5, recurrence="diagonal", activation="tanh") -> "LSSNetwork":
        """Deprecated: ``network.unflatten(theta)`` (warns; removed in the next release)."""
        warnings.warn("LSSNetwork.from_flat(theta, ...) is deprecated; use network.unflatten(theta) on a network "
                      "with those options", DeprecationWarning, stacklevel=2)
        return cls._from_columns(theta, beta=beta, recurrence=recurrence, activation=activation)

    def replace(self, **kw) -> "LSSNetwork":
        args = dict(c=self.c, W=self.W, b=self.b, u=self.u, beta=self.beta, recurrence=self.recurrence,
                    activation=self.activation)
        args.update(kw)
        return LSSNetwork(**args)

    def _histories(self, H):
        from .chains import as_histories

        H = as_histories("histories", H)
        if H.shape[2] != self.dim:
            raise ValueError(f"`histories` must have values of dimension d = {self.dim}; got shape {H.shape}.")
        return H

    # --------------------------------------------------------------- outputs
    def output(self, histories) -> np.ndarray:
        r"""Network output on histories (memory fixed point of the oldest value, then the recursion).

        Parameters
        ----------
        histories : array_like, shape (n, L, d) or (n, L), or HistoryGrid
            Oldest value first.

        Returns
        -------
        ndarray, shape (n,)
        """
        tree = prefix_tree(self._histories(histories))
        out = np.empty(tree.leaf.shape[0])
        _tree_output(self.c, self.W, self.b, self.u, tree.vals, tree.parent, tree.leaf, self._mode(), self._code(),
                     self.scale, out)
        return _finite_or_raise(out, "network output")

    def unit_gradients(self, histories, *, units=None) -> np.ndarray:
        r"""Unscaled per-unit output gradients :math:`g^i(z) = N^{\beta}\,\partial \hat y(z)/\partial\theta^i`.

        Parameters
        ----------
        histories : array_like, shape (n, L, d) or (n, L), or HistoryGrid
        units : slice, optional
            A contiguous block of units (default all).

        Returns
        -------
        ndarray, shape (n, n_units, d + 3)
            Columns ``(c, w_1..w_d, b, u)``.
        """
        H = self._histories(histories)
        tree = prefix_tree(H)
        glob = self._mean_field_globals(tree)
        i0, i1, _ = (units or slice(0, self.width)).indices(self.width)
        return self._jacobian_block(tree, glob, i0, i1)

    def _mean_field_globals(self, tree: _Tree):
        n_nodes = tree.vals.shape[0]
        mprev, Bbar, Gam = np.zeros(n_nodes), np.zeros(n_nodes), np.zeros(n_nodes)
        if self._mode() == 1:
            _tree_mean_field(self.c, self.W, self.b, self.u, tree.vals, tree.parent, self._code(), mprev, Bbar, Gam)
        return mprev, Bbar, Gam

    def _jacobian_block(self, tree: _Tree, glob, i0: int, i1: int) -> np.ndarray:
        J = np.empty((tree.leaf.shape[0], i1 - i0, self.dim + 3))
        _tree_jacobian(self.c, self.W, self.b, self.u, tree.vals, tree.parent, tree.leaf, self._mode(), self._code(),
                       i0, i1, *glob, J)
        return _finite_or_raise(J, "output gradient")

    def rtrl(self, X) -> tuple[float, np.ndarray]:
        r"""Output and RTRL gradient after reading the sequence ``X`` with frozen parameters.

        The state starts at the memory fixed point of ``X[0]`` and reads
        ``X[1:]`` (so the output equals :meth:`output` on the history ``X``).

        Parameters
        ----------
        X : array_like, shape (L, d) or (L,)

        Returns
        -------
        (float, ndarray of shape (N, d + 3))
            :math:`\hat y` and :math:`\partial\hat y/\partial\theta` (columns ``(c, w, b, u)``).
        """
        X = as_float_array("X", X, ndim=(1, 2))
        X = np.ascontiguousarray(X[:, None] if X.ndim == 1 else X)
        if X.shape[1] != self.dim or X.shape[0] < 1:
            raise ValueError(f"`X` must have shape (L, {self.dim}) with L >= 1; got shape {X.shape}.")
        st = _State.at_fixed_point(self, X[0])
        net = _Mutable(self)
        if X.shape[0] == 1:  # no step: gradient at the fixed point through one identity step
            return float(self.output(X[None])[0]), self.unit_gradients(X[None])[0] * self.scale
        errs = np.empty(X.shape[0] - 1)
        grad = np.empty((self.width, self.dim + 3))
        fail = _train_kernel(X[1:], np.zeros(X.shape[0] - 1), np.zeros(X.shape[0] - 1), net.c, net.W, net.b, net.u,
                             st.s, st.D, st.m, self._mode(), self._code(), self.scale, errs, grad)
        if fail >= 0:
            raise FloatingPointError(f"the network output diverged (|yhat| >= 1e100 or NaN) at step {fail}.")
        return float(errs[-1]), grad * self.scale


def _finite_or_raise(a: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise FloatingPointError(f"the {what} is not finite ({int(np.sum(~np.isfinite(a)))} non-finite entries).")
    return a


class _Mutable:
    """Writable copies of a network's parameters (training state)."""

    def __init__(self, net: LSSNetwork):
        self.c, self.W, self.b, self.u = (np.array(a, dtype=np.float64, order="C") for a in (net.c, net.W, net.b, net.u))

    def flatten(self):
        return np.column_stack([self.c, self.W, self.b, self.u])


@dataclass
class _State:
    s: np.ndarray
    D: np.ndarray
    m: np.ndarray

    @classmethod
    def at_fixed_point(cls, net: LSSNetwork, x0: np.ndarray) -> "_State":
        N, d = net.width, net.dim
        st = cls(np.empty(N), np.empty((N, d + 2)), np.zeros(1))
        _init_state(net.W, net.b, net.u, np.ascontiguousarray(x0, dtype=np.float64), net._mode(), net._code(),
                    st.s, st.D, st.m)
        return st


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingResult:
    r"""Online RTRL training of one network along one stream.

    Attributes
    ----------
    times : ndarray, shape (n_rec,)
        Recording times :math:`t = k / N`.
    steps : ndarray of int, shape (n_rec,)
        Training steps ``k`` at the recordings.
    h : ndarray, shape (n_rec, n_hist)
        :math:`h^N_t` on the probe histories at each recording.
    drift : ndarray, shape (n_rec,)
        :math:`\max_i \|\theta^i(t) - \theta^i(0)\|_\infty` at each recording.
    loss : ndarray, shape (n_rec,)
        Mean of :math:`\tfrac12(\hat y_k - Y_k)^2` over the steps since the
        previous recording (NaN at the first).
    network : LSSNetwork
        The trained network (``None`` when training failed).
    learning_rate : float
    contraction : float
        :math:`\sup|b|\sup|\sigma'|` after training.
    success : bool
    message : str
    """

    times: np.ndarray
    steps: np.ndarray
    h: np.ndarray
    drift: np.ndarray
    loss: np.ndarray
    network: LSSNetwork | None
    learning_rate: float
    contraction: float
    success: bool
    message: str

    @property
    def max_drift(self) -> float:
        return float(np.nanmax(self.drift)) if self.drift.size else float("nan")


def train_online(network: LSSNetwork, chain, target, *, alpha: float = 1.0, t_final: float = 4.0,
                 record_times=None, histories=None, burn_in: int = 100, rng=None) -> TrainingResult:
    r"""Online SGD with RTRL along one stream of ``chain`` ([LSS]; docs/theory.md section 7).

    Parameters
    ----------
    network : LSSNetwork
        The initial network (width ``N``).
    chain : MarkovChain or AR1Chain
        Source of the stream (started from its stationary law).
    target : HistoryTarget
        :math:`Y_k = g(X_{k-L+1..k})` (+ noise).
    alpha : float
        Learning-rate constant; the step size is :math:`\alpha / N^{2-2\beta}`.
    t_final : float
        Train for :math:`\lceil t_{\rm final} N\rceil` steps.
    record_times : array_like, optional
        Increasing times in ``[0, t_final]`` at which :math:`h^N_t` is
        recorded (default 21 equispaced times).
    histories : HistoryGrid or array_like (n, L, d), optional
        Probe histories (default: none, ``h`` has zero columns).
    burn_in : int
        Steps run without learning after the fixed-point start, so the hidden
        state reflects the stream (at least ``target.length - 1``).
    rng : seed or Generator

    Returns
    -------
    TrainingResult
        An output that is NaN or exceeds ``1e100`` in size, a non-finite output
        on the probe histories, or a final ``sup|b| sup|sigma'| >= 1`` gives
        ``success=False`` and a message (never silent numbers).
    """
    from .chains import AR1Chain, HistoryTarget, MarkovChain

    if not isinstance(network, LSSNetwork):
        raise TypeError(f"`network` must be an LSSNetwork; got {describe(network)}.")
    if not isinstance(chain, (MarkovChain, AR1Chain)):
        raise TypeError(f"`chain` must be a MarkovChain or an AR1Chain; got {describe(chain)}.")
    if not isinstance(target, HistoryTarget):
        raise TypeError(f"`target` must be a HistoryTarget; got {describe(target)}.")
    alpha = check_positive("alpha", alpha)
    t_final = check_positive("t_final", t_final)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    if chain.dim != network.dim:
        raise ValueError(f"`chain` must produce values of dimension {network.dim}; got dimension {chain.dim}.")
    N = network.width
    if record_times is None:
        record_times = np.linspace(0.0, t_final, 21)
    from .._validation import check_increasing

    record_times = check_increasing("record_times", as_float_array("record_times", record_times, ndim=1), strict=True)
    if record_times.size == 0 or record_times[0] < 0 or record_times[-1] > t_final * (1 + 1e-12):
        raise ValueError(f"`record_times` must be non-empty and lie in [0, t_final = {t_final}]; got {describe(record_times)}.")
    H = network._histories(histories) if histories is not None else np.zeros((0, 1, network.dim))
    tree = prefix_tree(H) if H.shape[0] else None

    rng = check_rng("rng", rng)
    K = int(math.ceil(t_final * N))
    B = max(burn_in, target.length - 1)
    X = np.ascontiguousarray(chain.sample(B + 1 + K, rng=rng), dtype=np.float64)
    Y = target.stream(X, rng=rng)
    Y[: B + 1][np.isnan(Y[: B + 1])] = 0.0  # burn-in steps do not learn
    lr = network.learning_rate(alpha)
    lrs = np.zeros(B + K)
    lrs[B:] = lr

    net = _Mutable(network)
    theta0 = network.flatten()
    st = _State.at_fixed_point(network, X[0])
    mode, code, scale = network._mode(), network._code(), network.scale
    errs = np.empty(B + K)
    grad = np.empty((N, network.dim + 3))
    steps = np.minimum(np.round(record_times * N).astype(np.int64), K)
    hs = np.full((record_times.size, H.shape[0]), np.nan)
    drift = np.full(record_times.size, np.nan)
    loss = np.full(record_times.size, np.nan)
    out = np.empty(H.shape[0])

    def record(r):
        if tree is not None:
            _tree_output(net.c, net.W, net.b, net.u, tree.vals, tree.parent, tree.leaf, mode, code, scale, out)
            hs[r] = out
        drift[r] = float(np.max(np.abs(net.flatten() - theta0)))

    # burn-in: X[1 .. B] read without learning
    done = 0  # training steps done
    if B > 0:
        fail = _train_kernel(X[1:B + 1], Y[1:B + 1], lrs[:B], net.c, net.W, net.b, net.u, st.s, st.D, st.m, mode, code,
                             scale, errs[:B], grad)
        if fail >= 0:
            return _failed(record_times, steps, hs, drift, loss, lr, network, f"output diverged (|yhat| >= 1e100 or NaN) at burn-in step {fail}")
    ok, message = True, "ok"
    for r, k_r in enumerate(steps):
        if k_r > done:
            lo, hi = B + 1 + done, B + 1 + k_r
            e = errs[B + done: B + k_r]
            fail = _train_kernel(X[lo:hi], Y[lo:hi], lrs[B + done: B + k_r], net.c, net.W, net.b, net.u, st.s, st.D,
                                 st.m, mode, code, scale, e, grad)
            if fail >= 0:
                ok, message = False, f"the network output diverged (|yhat| >= 1e100 or NaN) at training step {done + fail} (t = {(done + fail) / N:.4g})"
                break
            loss[r] = 0.5 * float(np.mean(e * e))
            done = int(k_r)
        record(r)
        if not (np.all(np.isfinite(hs[r])) and np.isfinite(drift[r])):
            ok, message = False, f"non-finite network output on the probe histories at t = {record_times[r]:.4g}"
            break
    contraction = float(np.max(np.abs(net.b))) * sup_derivative(network.activation)
    if ok and not contraction < 1:
        ok, message = False, f"training left the contraction region: sup|b| sup|sigma'| = {contraction:.4g} >= 1"
    trained = network.replace(c=net.c, W=net.W, b=net.b, u=net.u) if ok else None
    return TrainingResult(record_times.copy(), steps, hs, drift, loss, trained, lr, contraction, ok, message)


def _failed(times, steps, hs, drift, loss, lr, network, message):
    return TrainingResult(times.copy(), steps, hs, drift, loss, None, lr, network.contraction, False, message)
