"""The target interface: :class:`Target` and :class:`LinearTarget` (and the term-kernel base :class:`TermKernel`).

See :mod:`dynmem.targets` for the definitions (memory function, normalisations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad_vec
from scipy.signal import fftconvolve

from .._validation import as_float_array, check_choice, check_increasing, check_positive, describe
from ..inputs import InputPath, from_sequence
from .numerics import Decay, PAIR_CHUNK, UNKNOWN_DECAY, slowest_decay

__all__ = ["NORMALIZATIONS", "DECAY_KINDS", "Target", "LinearTarget", "TermKernel", "LinearSum"]

NORMALIZATIONS = ("x", "x+1")
DECAY_KINDS = ("exponential", "polynomial", "non-decaying", "unknown")


# --------------------------------------------------------------------------
# validation helpers


def channel_weights(name: str, a) -> np.ndarray:
    arr = as_float_array(name, np.atleast_1d(a), ndim=1, copy=True)
    if arr.size < 1:
        raise ValueError(f"`{name}` must hold at least one weight (one per input channel); got shape {arr.shape}.")
    arr.flags.writeable = False
    return arr


def _check_normalize(normalize) -> str:
    return check_choice("normalize", normalize, NORMALIZATIONS)


def _check_radius(radius):
    return None if radius is None else check_positive("radius", radius)


# --------------------------------------------------------------------------
# the interface


class Target:
    """A causal, time-homogeneous functional ``H`` with ``H_t(0) = 0``.

    Subclasses implement ``_output``, ``_output_sequence`` and, where they can,
    ``_step_derivative`` and ``_exact_memory``; the public methods validate
    their arguments once and dispatch.
    """

    @property
    def dim(self) -> int:
        """Input dimension d."""
        raise NotImplementedError

    @property
    def decay(self) -> Decay:
        """The known decay class of :meth:`exact_memory` (see :class:`Decay`)."""
        return UNKNOWN_DECAY

    # -- validation ----------------------------------------------------------
    def _check_path(self, x) -> InputPath:
        if not isinstance(x, InputPath):
            raise TypeError(
                f"`x` must be an input path from dynmem.inputs (e.g. dynmem.inputs.step(x)); got {describe(x)}."
            )
        if x.dim != self.dim:
            raise ValueError(f"`x` must have dimension {self.dim} to match the target; got dimension {x.dim}.")
        return x

    @staticmethod
    def _check_output_times(t, x: InputPath) -> np.ndarray:
        t = check_increasing("t", as_float_array("t", t, ndim=1))
        if t.size and (t[0] < x.t_start or t[-1] > x.t_end):
            raise ValueError(
                f"`t` must lie in the input's domain [{x.t_start}, {x.t_end}]; got values in [{t[0]}, {t[-1]}]."
            )
        return t

    @staticmethod
    def _check_lags(t) -> np.ndarray:
        t = as_float_array("t", t, ndim=1)
        if t.size and t.min() < 0:
            raise ValueError(f"`t` must be non-negative (times since the step); got min(t) = {t.min()}.")
        return t

    def _check_directions(self, x) -> np.ndarray:
        x = as_float_array("x", x, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(
                f"`x` must have shape (k, {self.dim}) (k step amplitudes of dimension {self.dim}); got shape {x.shape}."
            )
        return x

    def _check_sequence(self, X, dt):
        X = as_float_array("X", X, ndim=3)
        if X.shape[2] != self.dim:
            raise ValueError(f"`X` must have shape (batch, T, {self.dim}); got shape {X.shape}.")
        if X.shape[1] < 1:
            raise ValueError(f"`X` must hold at least one time step; got shape {X.shape}.")
        return X, check_positive("dt", dt)

    # -- public interface ------------------------------------------------------
    def output(self, x, t) -> np.ndarray:
        """The output ``H_t(x)`` on a path; ``x`` is zero before ``x.t_start``.

        Parameters
        ----------
        x : InputPath
            Input of dimension :attr:`dim`; ``x.t_start`` is the time origin.
        t : array_like, shape (n,)
            Strictly increasing times in ``[x.t_start, x.t_end]``.

        Returns
        -------
        ndarray, shape (n,)
        """
        x = self._check_path(x)
        t = self._check_output_times(t, x)
        if t.size == 0:
            return np.zeros(0)
        return self._output(x, t)

    def output_sequence(self, X, dt: float = 1.0) -> np.ndarray:
        """Outputs on sampled inputs (the discrete convolution of the module notes).

        .. math::

            y_k = \\sum_{j=0}^{k} \\Delta t\\, \\rho(j \\Delta t)^\\top x_{k-j}

        for linear targets (FFT convolution along time), approximating
        ``H_{(k+1) dt}`` on ``from_sequence(X, dt)``; nonlinear targets apply
        their nonlinearity to the same sums; :class:`TeacherRNN` runs its model.

        Parameters
        ----------
        X : array_like, shape (batch, T, d)
        dt : float
            Sampling step.

        Returns
        -------
        ndarray, shape (batch, T)
        """
        X, dt = self._check_sequence(X, dt)
        return self._output_sequence(X, dt)

    def step_derivative(self, x, t) -> np.ndarray:
        """The exact ``d/dt H_t(u^x)`` for the Heaviside inputs ``u^x(t) = x 1[t >= 0]``.

        Parameters
        ----------
        x : array_like, shape (k, d)
            Step amplitudes (directions times amplitudes).
        t : array_like, shape (n,)
            Times ``t >= 0`` since the step (right derivative at ``t = 0``).

        Returns
        -------
        ndarray, shape (k, n)

        Raises
        ------
        NotImplementedError
            If the target has no exact step derivative.
        """
        x = self._check_directions(x)
        t = self._check_lags(t)
        return self._step_derivative(x, t)

    def exact_memory(self, t, *, normalize: str = "x", radius: float | None = None) -> np.ndarray:
        """The exact memory function ([WLL] Def. 3.1) where a closed form exists.

        .. math::

            M(t) = \\sup_{0 < \\|x\\|_\\infty \\le r}
            \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty}
            \\ \\text{(normalize="x")} \\quad\\text{or}\\quad
            \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty + 1}
            \\ \\text{(normalize="x+1")}

        Parameters
        ----------
        t : array_like, shape (n,)
            Times ``t >= 0``.
        normalize : {"x", "x+1"}
        radius : float, optional
            ``r``, the largest amplitude in the sup; ``None`` (default) for
            all amplitudes, the definition of [WLL].

        Returns
        -------
        ndarray, shape (n,)

        Raises
        ------
        NotImplementedError
            Where no closed form is known.
        """
        normalize = _check_normalize(normalize)
        radius = _check_radius(radius)
        t = self._check_lags(t)
        return self._exact_memory(t, normalize, radius)

    # -- to implement ----------------------------------------------------------
    def _output(self, x: InputPath, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _output_sequence(self, X: np.ndarray, dt: float) -> np.ndarray:
        raise NotImplementedError

    def _step_derivative(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no exact step derivative.")

    def _exact_memory(self, t: np.ndarray, normalize: str, radius) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form memory function.")


class LinearTarget(Target):
    """A linear functional ``H_t(x) = int_0^{t - t_start} rho(s)^T x(t - s) ds`` ([LHEL]).

    Subclasses provide ``_rho(s) -> (n, d)`` and ``_moments(sa, L)``, the
    kernel moments ``int_{sa}^{sa+L} rho`` and ``int_{sa}^{sa+L} (s - sa) rho``
    of shape (N, d) (see the module notes).

    Notes
    -----
    Exact identities ([WLL] Def. 3.1; docs/theory.md section 2):

    .. math::

        \\frac{d}{dt} H_t(u^x) = \\rho(t)^\\top x, \\qquad
        M(t) = \\|\\rho(t)\\|_1 \\ \\text{attained at}\\ x = \\operatorname{sign} \\rho(t).
    """

    _breaks: tuple = ()

    def __add__(self, other):
        if not isinstance(other, LinearTarget):
            return NotImplemented
        return LinearSum((self, other))

    # -- kernel access ---------------------------------------------------------
    def kernel(self, t) -> np.ndarray:
        """The kernel ``rho(t)``.

        Parameters
        ----------
        t : array_like, shape (n,)
            Times ``t >= 0``.

        Returns
        -------
        ndarray, shape (n, d)
        """
        t = self._check_lags(t)
        return self._rho(t)

    def integral(self, t) -> np.ndarray:
        """``R(t) = int_0^t rho(s) ds``, the step response per unit input in each channel.

        Parameters
        ----------
        t : array_like, shape (n,)
            Times ``t >= 0``.

        Returns
        -------
        ndarray, shape (n, d)
        """
        t = self._check_lags(t)
        return self._moments(np.zeros_like(t), t)[0]

    def extremal_direction(self, t) -> np.ndarray:
        """The vertex ``x = sign(rho(t))`` attaining ``M(t) = |rho(t)|_1`` (``sign(0) := +1``).

        Parameters
        ----------
        t : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n, d)
        """
        rho = self.kernel(t)
        return np.where(rho < 0, -1.0, 1.0)

    # -- internals ---------------------------------------------------------------
    def _rho(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _moments(self, sa: np.ndarray, L: np.ndarray):
        raise NotImplementedError

    def _path_products(self, x: InputPath, t: np.ndarray) -> np.ndarray:
        """Per-channel outputs ``int rho_c(s) x_c(t - s) ds``, shape (n, x.dim).

        A kernel of dimension 1 is applied to every channel of ``x`` (used by
        :class:`Volterra2`).
        """
        if x.affine:
            return self._affine_products(x, t)
        return self._quad_products(x, t)

    def _affine_products(self, x, t):
        knots, off, slo = x.knots, x.offsets, x.slopes
        P, d = knots.size - 1, x.dim
        out = np.zeros((t.size, d))
        step = max(1, PAIR_CHUNK // P)
        for lo in range(0, t.size, step):
            tc = t[lo:lo + step]
            ii, kk = np.nonzero(knots[:-1][None, :] < tc[:, None])
            if ii.size == 0:
                continue
            ti, tk = tc[ii], knots[kk]
            u_hi = np.minimum(knots[kk + 1], ti)
            sa, L = ti - u_hi, u_hi - tk
            # Left limit of x at u_hi; a last piece may be infinite, where u_hi = t is finite.
            xa = off[kk] + L[:, None] * slo[kk]
            m0, m1 = self._moments(sa, L)
            contrib = m0 * xa - m1 * slo[kk]
            for c in range(d):
                out[lo:lo + step, c] = np.bincount(ii, weights=contrib[:, c], minlength=tc.size)
        return out

    def _quad_products(self, x, t):
        knots = x.knots
        out = np.zeros((t.size, x.dim))
        for i, ti in enumerate(t):
            bounds = np.concatenate([[x.t_start], knots[(knots > x.t_start) & (knots < ti)], [ti]])
            pts = [ti - b for b in self._breaks if x.t_start < ti - b < ti]

            def integrand(u, ti=ti):
                return self._rho(np.array([ti - u]))[0] * np.asarray(x.fn(u), dtype=float).reshape(x.dim)

            for a, b in zip(bounds[:-1], bounds[1:]):
                if b > a:
                    inner = [p for p in pts if a < p < b] or None
                    val, _ = quad_vec(integrand, a, b, epsabs=1e-13, epsrel=1e-10, points=inner)
                    out[i] += val
        return out

    def _sequence_products(self, X: np.ndarray, dt: float) -> np.ndarray:
        """Per-channel discrete convolutions ``dt sum_j rho_c(j dt) x_{k-j, c}``, shape (batch, T, d)."""
        T = X.shape[1]
        K = self._rho(dt * np.arange(T))  # (T, d_kernel), broadcast over channels
        return dt * fftconvolve(X, K[None, :, :], axes=1)[:, :T, :]

    # -- Target implementation ---------------------------------------------------
    def _output(self, x, t):
        return self._path_products(x, t).sum(axis=1)

    def _output_sequence(self, X, dt):
        return self._sequence_products(X, dt).sum(axis=2)

    def _step_derivative(self, x, t):
        return x @ self._rho(t).T

    def _exact_memory(self, t, normalize, radius):
        M = np.abs(self._rho(t)).sum(axis=1)
        if normalize == "x+1" and radius is not None:
            # |rho^T x| / (|x| + 1) grows with |x|: the sup sits at |x|_inf = r.
            M = M * (radius / (radius + 1.0))
        return M


class TermKernel(LinearTarget):
    """``rho(t) = sum_i w_i k_i(t)`` with scalar kernels ``k_i`` of closed-form moments."""

    def _set_terms(self, terms):
        terms = tuple((np.asarray(w, dtype=float), k) for w, k in terms)
        object.__setattr__(self, "_terms", terms)
        object.__setattr__(self, "_breaks", tuple(b for _, k in terms for b in getattr(k, "breaks", ())))

    @property
    def dim(self) -> int:
        return int(self._terms[0][0].size)

    def _rho(self, s):
        s = np.asarray(s, dtype=float)
        out = np.zeros((s.size, self.dim))
        for w, k in self._terms:
            out += k.value(s)[:, None] * w[None, :]
        return out

    def _moments(self, sa, L):
        m0 = np.zeros((sa.size, self.dim))
        m1 = np.zeros((sa.size, self.dim))
        for w, k in self._terms:
            a0, a1 = k.moments(sa, L)
            m0 += a0[:, None] * w[None, :]
            m1 += a1[:, None] * w[None, :]
        return m0, m1

    @property
    def decay(self) -> Decay:
        # Merge equal kernels first so that cancelling weights are seen.
        merged: dict = {}
        for w, k in self._terms:
            merged[k] = merged.get(k, 0.0) + w
        return slowest_decay(k.decay for k, w in merged.items() if np.any(w != 0))


@dataclass(frozen=True, eq=False)
class LinearSum(LinearTarget):
    """The sum of linear targets of one input dimension: ``rho = sum_i rho_i``.

    ``A + B`` of two linear targets builds one.  Decay: the slowest term's
    (an exact cancellation between different classes is not detected).

    Parameters
    ----------
    terms : sequence of LinearTarget
    """

    terms: tuple

    def __post_init__(self):
        terms = tuple(self.terms) if not isinstance(self.terms, LinearTarget) else (self.terms,)
        if not terms:
            raise ValueError("`terms` must hold at least one linear target; got an empty sequence.")
        for i, term in enumerate(terms):
            if not isinstance(term, LinearTarget):
                raise TypeError(f"`terms[{i}]` must be a LinearTarget; got {describe(term)}.")
            if term.dim != terms[0].dim:
                raise ValueError(
                    f"`terms` must share one input dimension; terms[0] has {terms[0].dim}, terms[{i}] has {term.dim}."
                )
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "_breaks", tuple(b for term in terms for b in term._breaks))

    @property
    def dim(self) -> int:
        return self.terms[0].dim

    def _rho(self, s):
        return sum(term._rho(s) for term in self.terms)

    def _moments(self, sa, L):
        m0 = np.zeros((sa.size, self.dim))
        m1 = np.zeros((sa.size, self.dim))
        for term in self.terms:
            a0, a1 = term._moments(sa, L)
            m0 += a0
            m1 += a1
        return m0, m1

    @property
    def decay(self) -> Decay:
        return slowest_decay(term.decay for term in self.terms)
