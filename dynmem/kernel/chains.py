r"""Ergodic data sequences for the kernel limit of [LSS] (docs/theory.md section 7).

[LSS] (Lam, Sirignano, Spiliopoulos, arXiv 2308.14555) train an RNN online
along one stream :math:`X_0, X_1, \dots` of an ergodic Markov chain, with a
target that is a function of the recent past.  This module provides

:class:`MarkovChain`
    A finite-state chain ``P`` on the values ``states``: exact stationary law,
    spectral gap, relaxation and total-variation mixing times, the asymptotic
    (CLT) variance of ergodic averages, numba-sampled streams, and the exact
    enumeration of histories of length ``L`` with their stationary weights.
:class:`AR1Chain`
    The Gaussian AR(1) chain :math:`X_{k+1} = \phi X_k + \sigma\varepsilon_k`,
    ``|phi| < 1``; stationary samples of histories (no enumeration exists).
:class:`HistoryTarget`
    ``Y_k = g(X_{k-L+1}, ..., X_k) (+ noise)`` with built-ins
    (:meth:`HistoryTarget.lag`, :meth:`~HistoryTarget.linear`,
    :meth:`~HistoryTarget.product`, :meth:`~HistoryTarget.tanh_linear`) and a
    user callable (:meth:`HistoryTarget.from_callable`).

Conventions
-----------
* Values are vectors in :math:`\mathbb{R}^d`; scalar states are stored with
  ``d = 1``.
* A history is stored **oldest first**, in time order: ``values[j, -1]`` is the
  current value :math:`X_k` and ``values[j, 0]`` is :math:`X_{k-L+1}`.
* Histories of probability zero (an impossible transition) are left out of the
  enumeration, so every weight of :meth:`MarkovChain.histories` is positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
import scipy.linalg
from scipy.sparse.csgraph import breadth_first_order, connected_components

from .._validation import as_float_array, as_square_matrix, check_finite, check_int, check_nonnegative, check_positive, describe, check_rng

__all__ = ["MarkovChain", "AR1Chain", "HistoryGrid", "HistoryTarget"]

_ROW_TOL = 1e-10


@dataclass(frozen=True)
class HistoryGrid:
    """Histories of length ``L`` with weights (a discrete law on histories).

    Attributes
    ----------
    values : ndarray, shape (n_hist, L, d)
        The histories, oldest value first (``values[:, -1]`` is the present).
    weights : ndarray, shape (n_hist,)
        Positive weights summing to 1: the exact stationary probabilities for
        :meth:`MarkovChain.histories`, ``1 / n_hist`` for stationary samples.
    index : ndarray of int, shape (n_hist, L) or None
        State indices for a finite chain, ``None`` otherwise.
    exact : bool
        True for an exact enumeration, False for a Monte Carlo sample.
    """

    values: np.ndarray
    weights: np.ndarray
    index: np.ndarray | None = None
    exact: bool = False

    @property
    def n(self) -> int:
        """Number of histories."""
        return int(self.values.shape[0])

    @property
    def length(self) -> int:
        """History length ``L``."""
        return int(self.values.shape[1])

    @property
    def dim(self) -> int:
        """Dimension ``d`` of each value."""
        return int(self.values.shape[2])


def as_histories(name: str, values) -> np.ndarray:
    """Histories as a (n, L, d) float64 array; (n, L) is read as d = 1."""
    if isinstance(values, HistoryGrid):
        return values.values
    arr = as_float_array(name, values, ndim=(2, 3))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"`{name}` must hold at least one history of length >= 1; got shape {arr.shape}.")
    return np.ascontiguousarray(arr)


@numba.njit(cache=True)
def _sample_chain(cum, start, uniforms, out):
    """Inverse-CDF sampling of a finite chain: out[k] = state index at step k."""
    n = out.shape[0]
    m = cum.shape[1]
    x = start
    out[0] = x
    for k in range(1, n):
        r = uniforms[k - 1]
        j = 0
        while j < m - 1 and r >= cum[x, j]:
            j += 1
        x = j
        out[k] = x
    return out


@numba.njit(cache=True)
def _sample_ar1(phi, sigma, x0, eps, out):
    n = out.shape[0]
    x = x0
    out[0] = x
    for k in range(1, n):
        x = phi * x + sigma * eps[k - 1]
        out[k] = x
    return out


def _period(adj: np.ndarray) -> int:
    """Period of an irreducible chain: gcd over edges (u -> v) of level(u) + 1 - level(v)."""
    n = adj.shape[0]
    order, pred = breadth_first_order(adj.astype(float), 0, directed=True, return_predecessors=True)
    level = np.full(n, -1, dtype=np.int64)
    level[0] = 0
    for v in order[1:]:
        level[v] = level[pred[v]] + 1
    g = 0
    us, vs = np.nonzero(adj)
    for u, v in zip(us, vs):
        g = math.gcd(g, int(abs(level[u] + 1 - level[v])))
    return g


class MarkovChain:
    r"""A finite-state, irreducible, aperiodic Markov chain on values ``states``.

    Parameters
    ----------
    P : array_like, shape (m, m)
        Transition matrix, ``P[i, j] = Pr(X_{k+1} = states[j] | X_k = states[i])``:
        non-negative, rows summing to 1 (to ``1e-10``; rows are renormalised),
        irreducible and aperiodic (so the chain is ergodic and mixes).
    states : array_like, shape (m,) or (m, d), optional
        The value of each state (default ``0, 1, ..., m - 1``).

    Notes
    -----
    The stationary law solves :math:`\pi^\top P = \pi^\top`,
    :math:`\sum_i \pi_i = 1` (a linear solve, :meth:`stationary`).  Mixing:
    with :math:`\lambda_\star` the second-largest eigenvalue modulus,
    :math:`\max_x \mathrm{TV}(P^k(x, \cdot), \pi) \le C \lambda_\star^k`; the
    relaxation time is :math:`1 / (1 - \lambda_\star)`.  Histories of length
    ``L`` have the stationary weights
    :math:`\nu(x_0, \dots, x_{L-1}) = \pi(x_0) \prod_{j} P(x_j, x_{j+1})`.
    """

    def __init__(self, P, states=None):
        P = as_square_matrix("P", P, rows_hint=" (an m x m transition matrix)")
        m = P.shape[0]
        if np.any(P < 0):
            i, j = (int(v) for v in np.argwhere(P < 0)[0])
            raise ValueError(f"`P` must be non-negative; got P[{i}, {j}] = {float(P[i, j])!r}.")
        rows = P.sum(axis=1)
        bad = np.flatnonzero(np.abs(rows - 1.0) > _ROW_TOL)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"`P` must have rows summing to 1; got row {i} summing to {float(rows[i])!r}.")
        adj = P > 0
        n_comp, _ = connected_components(adj.astype(float), directed=True, connection="strong")
        if n_comp != 1:
            raise ValueError(
                f"`P` must be irreducible (every state reachable from every other); got {n_comp} strongly "
                f"connected components for P = {describe(P)}.")
        period = _period(adj)
        if period != 1:
            raise ValueError(f"`P` must be aperiodic; got a chain of period {period} for P = {describe(P)}.")
        self.P = P / rows[:, None]
        self.P.setflags(write=False)
        if states is None:
            states = np.arange(m, dtype=float)
        states = as_float_array("states", states, ndim=(1, 2), copy=True)
        if states.shape[0] != m:
            raise ValueError(f"`states` must have one value per state ({m}); got shape {states.shape}.")
        self.states = states if states.ndim == 2 else states[:, None]
        self.states.setflags(write=False)
        self._pi = None

    def __repr__(self) -> str:
        return f"MarkovChain(m={self.n_states}, d={self.dim})"

    def __getstate__(self):
        return {"P": np.array(self.P), "states": np.array(self.states)}

    def __setstate__(self, state):
        self.__init__(state["P"], state["states"])

    @property
    def n_states(self) -> int:
        return int(self.P.shape[0])

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the values."""
        return int(self.states.shape[1])

    # ------------------------------------------------------------------ laws
    def stationary(self) -> np.ndarray:
        r"""The stationary law :math:`\pi`, shape (m,), from one linear solve.

        Solves :math:`(P^\top - I)\pi = 0` with the last equation replaced by
        :math:`\sum_i \pi_i = 1` (non-singular for an irreducible chain).
        """
        if self._pi is None:
            m = self.n_states
            M = self.P.T - np.eye(m)
            M[-1, :] = 1.0
            rhs = np.zeros(m)
            rhs[-1] = 1.0
            pi = scipy.linalg.solve(M, rhs)
            pi = np.clip(pi, 0.0, None)
            pi /= pi.sum()
            pi.setflags(write=False)
            self._pi = pi
        return self._pi

    def slem(self) -> float:
        """Second-largest eigenvalue modulus of ``P`` (0 for a one-state chain)."""
        ev = np.sort(np.abs(np.linalg.eigvals(self.P)))[::-1]
        return float(ev[1]) if ev.size > 1 else 0.0

    def relaxation_time(self) -> float:
        r"""The relaxation time :math:`1 / (1 - \lambda_\star)`."""
        return 1.0 / (1.0 - self.slem())

    def tv_to_stationarity(self, k_max: int) -> np.ndarray:
        r"""Worst-case total-variation distance to :math:`\pi` after ``k`` steps.

        Returns
        -------
        ndarray, shape (k_max + 1,)
            :math:`d(k) = \max_x \tfrac12 \sum_y |P^k(x, y) - \pi(y)|`, ``k = 0..k_max``.
        """
        k_max = check_int("k_max", k_max, minimum=0)
        pi = self.stationary()
        Pk = np.eye(self.n_states)
        out = np.empty(k_max + 1)
        for k in range(k_max + 1):
            out[k] = 0.5 * np.abs(Pk - pi[None]).sum(axis=1).max()
            Pk = Pk @ self.P
        return out

    def mixing_time(self, eps: float = 0.25, *, k_max: int = 100_000) -> int:
        r"""Smallest ``k`` with :math:`d(k) \le \varepsilon` (exact matrix powers).

        Raises
        ------
        RuntimeError
            When ``d(k) > eps`` for every ``k <= k_max``.
        """
        eps = check_positive("eps", eps)
        if eps >= 1:
            raise ValueError(f"`eps` must be in (0, 1); got {eps}.")
        k_max = check_int("k_max", k_max, minimum=1)
        pi = self.stationary()
        Pk = np.eye(self.n_states)
        for k in range(k_max + 1):
            if 0.5 * np.abs(Pk - pi[None]).sum(axis=1).max() <= eps:
                return k
            Pk = Pk @ self.P
        raise RuntimeError(f"the chain did not mix to TV <= {eps} within k_max = {k_max} steps.")

    def is_reversible(self, *, tol: float = 1e-12) -> bool:
        r"""Detailed balance :math:`\pi_i P_{ij} = \pi_j P_{ji}` (to ``tol``)."""
        F = self.stationary()[:, None] * self.P
        return bool(np.max(np.abs(F - F.T)) <= tol)

    def spectral_mixing_bound(self, eps: float = 0.25) -> float:
        r"""Upper bound on the TV mixing time from the spectral gap (reversible chains).

        .. math::

            t_{\rm mix}(\varepsilon) \le \Big\lceil \frac{\log(1 / (\varepsilon\,\pi_{\min}))}
            {1 - \lambda_\star} \Big\rceil

        (Levin-Peres-Wilmer, Thm 12.4).  For a non-reversible chain this is
        only an estimate; it is returned all the same, and
        :meth:`mixing_time` gives the exact value.
        """
        eps = check_positive("eps", eps)
        if eps >= 1:
            raise ValueError(f"`eps` must be in (0, 1); got {eps}.")
        gap = 1.0 - self.slem()
        if gap <= 0:
            return float("inf")
        return float(math.ceil(math.log(1.0 / (eps * float(self.stationary().min()))) / gap))

    def asymptotic_variance(self, f) -> float:
        r"""CLT variance of ergodic averages of ``f(X_k)``.

        .. math::

            \sigma^2(f) = \lim_n n\,\mathrm{Var}\Big(\frac1n \sum_{k<n} f(X_k)\Big)
            = 2\langle \bar f, Z \bar f\rangle_\pi - \langle \bar f, \bar f\rangle_\pi,

        with :math:`\bar f = f - \pi^\top f` and the fundamental matrix
        :math:`Z = (I - P + \mathbf 1 \pi^\top)^{-1}`.

        Parameters
        ----------
        f : array_like, shape (m,)
            A function of the state index.
        """
        f = as_float_array("f", f, shape=(self.n_states,))
        pi = self.stationary()
        fb = f - pi @ f
        Z = np.linalg.inv(np.eye(self.n_states) - self.P + np.outer(np.ones(self.n_states), pi))
        return float(2.0 * pi @ (fb * (Z @ fb)) - pi @ (fb * fb))

    # --------------------------------------------------------------- samples
    def sample_indices(self, n: int, *, start=None, rng=None) -> np.ndarray:
        """State indices of a stream of length ``n`` (``start`` index, default drawn from ``pi``)."""
        n = check_int("n", n, minimum=1)
        rng = check_rng("rng", rng)
        if start is None:
            start = int(rng.choice(self.n_states, p=self.stationary()))
        else:
            start = check_int("start", start, minimum=0)
            if start >= self.n_states:
                raise ValueError(f"`start` must be a state index < {self.n_states}; got {start}.")
        cum = np.cumsum(self.P, axis=1)
        u = rng.random(max(n - 1, 1))
        return _sample_chain(cum, np.int64(start), u, np.empty(n, dtype=np.int64))

    def sample(self, n: int, *, start=None, rng=None) -> np.ndarray:
        """A stream of values, shape (n, d); stationary start unless ``start`` (an index) is given."""
        return self.states[self.sample_indices(n, start=start, rng=rng)]

    def histories(self, L: int) -> HistoryGrid:
        r"""Every history of length ``L`` of positive stationary probability.

        Returns
        -------
        HistoryGrid
            ``values`` (n_hist, L, d) oldest first, ``index`` (n_hist, L) and
            ``weights`` :math:`\pi(x_0)\prod_j P(x_j, x_{j+1})` (summing to 1).
        """
        L = check_int("L", L, minimum=1)
        m = self.n_states
        if m ** L > 5_000_000:
            raise ValueError(f"`L` is too long to enumerate: m^L = {m}^{L} histories; use history_sample.")
        pi = self.stationary()
        idx = np.arange(m)[:, None]
        w = pi.copy()
        for _ in range(L - 1):
            last = idx[:, -1]
            w_new = (w[:, None] * self.P[last]).ravel()
            idx = np.concatenate([np.repeat(idx, m, axis=0), np.tile(np.arange(m), idx.shape[0])[:, None]], axis=1)
            keep = w_new > 0
            idx, w = idx[keep], w_new[keep]
        w = w / w.sum()
        return HistoryGrid(np.ascontiguousarray(self.states[idx]), w, idx, True)

    def history_sample(self, L: int, n: int, *, rng=None) -> HistoryGrid:
        """``n`` independent stationary histories of length ``L`` (equal weights)."""
        L = check_int("L", L, minimum=1)
        n = check_int("n", n, minimum=1)
        rng = check_rng("rng", rng)
        idx = np.empty((n, L), dtype=np.int64)
        idx[:, 0] = rng.choice(self.n_states, size=n, p=self.stationary())
        cum = np.cumsum(self.P, axis=1)
        for j in range(1, L):
            r = rng.random(n)
            idx[:, j] = np.minimum((r[:, None] >= cum[idx[:, j - 1]]).sum(axis=1), self.n_states - 1)
        return HistoryGrid(np.ascontiguousarray(self.states[idx]), np.full(n, 1.0 / n), idx, False)


class AR1Chain:
    r"""The Gaussian AR(1) chain :math:`X_{k+1} = \phi X_k + \sigma \varepsilon_k`.

    Parameters
    ----------
    phi : float
        Autoregression coefficient, ``|phi| < 1`` (geometric ergodicity).
    sigma : float
        Innovation standard deviation, ``> 0``.

    Notes
    -----
    Stationary law :math:`N(0, \sigma^2 / (1 - \phi^2))`; the correlation at
    lag ``k`` is :math:`\phi^k` and the chain started at ``x`` is at TV
    distance :math:`O(|\phi|^k |x|)` from stationarity, so
    :meth:`relaxation_time` is :math:`1 / (1 - |\phi|)`.
    """

    def __init__(self, phi: float, sigma: float = 1.0):
        phi = check_finite("phi", phi)
        if not abs(phi) < 1:
            raise ValueError(f"`phi` must satisfy |phi| < 1 (an ergodic AR(1) chain); got {phi}.")
        self.phi = phi
        self.sigma = check_positive("sigma", sigma)

    def __repr__(self) -> str:
        return f"AR1Chain(phi={self.phi}, sigma={self.sigma})"

    @property
    def dim(self) -> int:
        return 1

    def stationary_std(self) -> float:
        r""":math:`\sigma / \sqrt{1 - \phi^2}`."""
        return self.sigma / math.sqrt(1.0 - self.phi ** 2)

    def slem(self) -> float:
        return abs(self.phi)

    def relaxation_time(self) -> float:
        return 1.0 / (1.0 - abs(self.phi))

    def sample(self, n: int, *, start=None, rng=None) -> np.ndarray:
        """A stream of values, shape (n, 1); stationary start unless ``start`` (a value) is given."""
        n = check_int("n", n, minimum=1)
        rng = check_rng("rng", rng)
        x0 = rng.standard_normal() * self.stationary_std() if start is None else check_finite("start", start)
        eps = rng.standard_normal(max(n - 1, 1))
        return _sample_ar1(self.phi, self.sigma, float(x0), eps, np.empty(n))[:, None]

    def history_sample(self, L: int, n: int, *, rng=None) -> HistoryGrid:
        """``n`` independent stationary histories of length ``L`` (equal weights)."""
        L = check_int("L", L, minimum=1)
        n = check_int("n", n, minimum=1)
        rng = check_rng("rng", rng)
        X = np.empty((n, L))
        X[:, 0] = rng.standard_normal(n) * self.stationary_std()
        for j in range(1, L):
            X[:, j] = self.phi * X[:, j - 1] + self.sigma * rng.standard_normal(n)
        return HistoryGrid(np.ascontiguousarray(X[:, :, None]), np.full(n, 1.0 / n), None, False)


# ---------------------------------------------------------------------- targets
class _Lag:
    def __init__(self, lag, component):
        self.lag, self.component = lag, component

    def __call__(self, H):
        return H[:, H.shape[1] - 1 - self.lag, self.component]


class _Linear:
    def __init__(self, coeffs, component):
        self.coeffs, self.component = coeffs, component

    def __call__(self, H):
        # coeffs[l] multiplies X_{k-l}
        return H[:, ::-1, self.component][:, : self.coeffs.size] @ self.coeffs


class _Product:
    def __init__(self, lags, component):
        self.lags, self.component = lags, component

    def __call__(self, H):
        L = H.shape[1]
        out = np.ones(H.shape[0])
        for lag in self.lags:
            out = out * H[:, L - 1 - lag, self.component]
        return out


class _TanhLinear:
    def __init__(self, coeffs, component):
        self.lin = _Linear(coeffs, component)

    def __call__(self, H):
        return np.tanh(self.lin(H))


def _coefficients(coeffs) -> np.ndarray:
    a = as_float_array("coeffs", coeffs, ndim=1, copy=True)
    if a.size < 1:
        raise ValueError("`coeffs` must hold at least one coefficient; got an empty array.")
    return a


@dataclass(frozen=True)
class HistoryTarget:
    r"""A target :math:`Y_k = g(X_{k-L+1}, \dots, X_k) + \eta\,\xi_k` of the recent past.

    Attributes
    ----------
    fn : callable
        ``fn(H) -> y`` on histories ``H`` of shape (n, L, d) (oldest first),
        returning shape (n,); vectorised over the first axis.  Must be
        picklable (a module-level function or one of the built-ins) to be
        used with a process-pool executor.
    length : int
        ``L``, the number of values the target reads.
    noise_std : float
        :math:`\eta`: i.i.d. :math:`N(0, \eta^2)` noise added along the
        training stream, so :math:`E[Y | Z] = g(Z)` (the long-time limit of
        the kernel ODE when ``A`` is positive definite).
    name : str
    """

    fn: Callable[[np.ndarray], np.ndarray]
    length: int
    noise_std: float = 0.0
    name: str = "custom"

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"`fn` must be callable; got {describe(self.fn)}.")
        object.__setattr__(self, "length", check_int("length", self.length, minimum=1))
        object.__setattr__(self, "noise_std", check_nonnegative("noise_std", self.noise_std))

    @classmethod
    def from_callable(cls, fn, length: int, *, noise_std: float = 0.0, name: str = "custom") -> "HistoryTarget":
        """Wrap a user function ``fn(H (n, L, d)) -> (n,)``."""
        return cls(fn, length, noise_std, name)

    @classmethod
    def lag(cls, lag: int, *, component: int = 0, noise_std: float = 0.0) -> "HistoryTarget":
        r""":math:`Y_k = X_{k-\ell}` (one component)."""
        lag = check_int("lag", lag, minimum=0)
        return cls(_Lag(lag, check_int("component", component, minimum=0)), lag + 1, noise_std, f"lag({lag})")

    @classmethod
    def linear(cls, coeffs, *, component: int = 0, noise_std: float = 0.0) -> "HistoryTarget":
        r""":math:`Y_k = \sum_\ell a_\ell X_{k-\ell}` with ``coeffs[l] = a_l``."""
        a = _coefficients(coeffs)
        return cls(_Linear(a, check_int("component", component, minimum=0)), a.size, noise_std,
                   f"linear({np.array2string(a, precision=3, separator=', ')})")

    @classmethod
    def tanh_linear(cls, coeffs, *, component: int = 0, noise_std: float = 0.0) -> "HistoryTarget":
        r""":math:`Y_k = \tanh(\sum_\ell a_\ell X_{k-\ell})`."""
        a = _coefficients(coeffs)
        return cls(_TanhLinear(a, check_int("component", component, minimum=0)), a.size, noise_std,
                   f"tanh_linear({np.array2string(a, precision=3, separator=', ')})")

    @classmethod
    def product(cls, lags, *, component: int = 0, noise_std: float = 0.0) -> "HistoryTarget":
        r""":math:`Y_k = \prod_{\ell \in \text{lags}} X_{k-\ell}`."""
        lags = tuple(check_int("lags", v, minimum=0) for v in lags)
        if not lags:
            raise ValueError("`lags` must hold at least one lag; got an empty sequence.")
        return cls(_Product(lags, check_int("component", component, minimum=0)), max(lags) + 1, noise_std,
                   f"product{lags}")

    def __call__(self, H) -> np.ndarray:
        r"""The noiseless :math:`g` on histories ``H`` (n, L', d), ``L' >= L``: reads the last ``L`` values."""
        H = as_histories("H", H)
        if H.shape[1] < self.length:
            raise ValueError(f"`H` must have histories of length >= {self.length} for target {self.name}; "
                             f"got length {H.shape[1]}.")
        out = np.asarray(self.fn(np.ascontiguousarray(H[:, H.shape[1] - self.length:])), dtype=np.float64)
        if out.shape != (H.shape[0],):
            raise ValueError(f"`fn` must return shape ({H.shape[0]},); got shape {out.shape}.")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"target {self.name} returned non-finite values.")
        return out

    def stream(self, X, *, rng=None) -> np.ndarray:
        """Targets along a stream ``X`` (n, d): ``Y[k]`` for ``k >= L - 1`` (earlier entries are NaN)."""
        X = as_float_array("X", X, ndim=2)
        n, L = X.shape[0], self.length
        Y = np.full(n, np.nan)
        if n >= L:
            win = np.lib.stride_tricks.sliding_window_view(X, (L, X.shape[1]))[:, 0]  # (n-L+1, L, d)
            Y[L - 1:] = self(np.ascontiguousarray(win))
            if self.noise_std > 0:
                Y[L - 1:] += self.noise_std * np.random.default_rng(rng).standard_normal(n - L + 1)
        return Y
