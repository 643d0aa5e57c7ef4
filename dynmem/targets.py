"""Target functionals with known memory ([WLL] Def. 3.1; THEORY.md sections 2, 4, 6).

A target is a causal, time-homogeneous functional ``H`` of an input path
``x`` that is zero before the path's ``t_start`` (the time origin of the
functional).  Linear targets are convolutions with a kernel ``rho``
([LHEL]; THEORY.md section 1):

.. math::

    H_t(x) = \\int_0^{t - t_\\mathrm{start}} \\rho(s)^\\top x(t - s)\\, ds,
    \\qquad \\rho : [0, \\infty) \\to \\mathbb{R}^d .

The memory function ([WLL] Def. 3.1) is built from the Heaviside input
``u^x(t) = x 1[t >= 0]``:

.. math::

    M(H)(t) = \\sup_{x \\ne 0} \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty}
    \\quad\\text{or}\\quad
    \\sup_{x \\ne 0} \\frac{|\\tfrac{d}{dt} H_t(u^x)|}{\\|x\\|_\\infty + 1} .

For a linear target ``d/dt H_t(u^x) = rho(t)^T x`` and ``M(t) = |rho(t)|_1``,
attained at the vertex ``x = sign(rho(t))``.  With the ``|x|_inf + 1``
normalisation the ratio ``|rho^T x| / (|x|_inf + 1)`` increases with the
amplitude, so the sup is the limit ``|x|_inf -> inf``: again ``|rho(t)|_1``
(approached, not attained).  Pass ``radius=r`` to
:meth:`Target.exact_memory` for the sup over ``0 < |x|_inf <= r``, which is
attained.

Every target has the interface of :class:`Target`: ``dim``, ``output``,
``output_sequence``, ``step_derivative``, ``exact_memory`` and ``decay``.

Targets:

* linear, closed form: :class:`ExponentialKernel` (with
  :meth:`ExponentialKernel.discrete` for [WLL]'s ``0.9^t``),
  :class:`PowerLawKernel`, :class:`ExponentialSum`, :class:`ShiftedBump`,
  :class:`AiryKernel`, :class:`TwoPartKernel`, :class:`BoxKernel`,
  :class:`SineKernel`, sums (:class:`LinearSum`, or ``A + B``);
* linear, user kernel: :class:`LinearFunctional`;
* nonlinear: :class:`PointwiseNonlinear` (``f(L_t(x))``), :class:`Volterra2`
  (second order, separable kernel), :class:`TeacherRNN` (a CTRNN);
* registries: :func:`wll_targets` (the paper's experiments, THEORY.md
  section 4) and :func:`wll_code_targets` (the public code's kernels).

How outputs are computed
------------------------
On an affine piece of the input, ``x(t - s) = x(u_hi) - (s - s_a) x'`` for
``s`` in ``[s_a, s_b]`` (input times ``u`` in ``[u_lo, u_hi]``), so the
piece contributes ``m_0 x(u_hi) - m_1 x'`` with the kernel moments

.. math::

    m_0 = \\int_{s_a}^{s_b} \\rho(s)\\, ds, \\qquad
    m_1 = \\int_{s_a}^{s_b} (s - s_a)\\, \\rho(s)\\, ds .

* Closed forms (exponential, power law, exponential sums, Gaussian bump,
  two-part, box, sine kernels): the moments come from the antiderivatives,
  written to avoid cancellation (``expm1``, ``log1p``, ``exprel``, ``erfc``
  and short series for short pieces).  Observed agreement with
  :func:`scipy.integrate.quad` references is ~1e-14 relative to
  ``sum |m_0| |x|`` (the tests allow 1e-10).
* Airy and user kernels (:class:`LinearFunctional`): a piece no longer than
  one quadrature panel gets one 16-point Gauss-Legendre rule (relative
  accuracy, no cancellation).  Longer pieces use cached cumulative integrals
  ``F(s) = int_0^s rho`` and ``G(s) = int_0^s s' rho(s') ds'`` (composite
  16-point Gauss-Legendre on panels at most ``panel`` long, or for Airy at
  most one radian of the local phase ``(2/3)|z|^{3/2}``), then
  ``m_0 = F(s_b) - F(s_a)`` and ``m_1 = G(s_b) - G(s_a) - s_a m_0``: rounding
  level in absolute terms (``~1e-16 |F|``; observed ~1e-14 against quad).
  Kernels with kinks or jumps must declare them (``breaks``) so that no
  panel straddles one.  ``scipy.special.itairy`` is *not* used: it is only
  ~1e-5 accurate near ``|z| = 5`` (checked against ``quad``).
* Closed-form kernels whose first moment cancels on short pieces (the
  Gaussian bump) also switch to the direct rule there.
* Paths that are not affine (:class:`~dynmem.inputs.FunctionPath`):
  :func:`scipy.integrate.quad_vec` on every knot interval,
  ``epsrel = 1e-10``.

The cost is one moment evaluation per (output time, earlier piece) pair,
``O(n P)`` for ``n`` times and ``P`` pieces (vectorised in blocks); for long
sampled sequences prefer :meth:`Target.output_sequence` (FFT, ``O(T log T)``).

Sampled inputs (``output_sequence``) use the discrete convolution

.. math::

    y_k = \\sum_{j=0}^{k} \\Delta t\\, \\rho(j \\Delta t)^\\top x_{k-j},

computed with :func:`scipy.signal.fftconvolve` along the time axis: the left
Riemann sum of ``H`` at time ``(k + 1) dt`` for the piecewise-constant path
``from_sequence(X, dt)``, error ``O(dt)``.  With ``rho = 0.9^t`` and
``dt = 1`` it is the discrete target of [WLL] Fig. 1.  (The public [WLL]
code omits the ``dt`` factor but draws inputs already multiplied by ``dt``;
the two agree.)  Nonlinear targets apply their nonlinearity to the same
discrete sums.

References
----------
[WLL] S. Wang, Z. Li, Q. Li, Inverse Approximation Theory for Nonlinear
Recurrent Neural Networks, ICLR 2024 (arXiv 2305.19190).
[LHEL] Z. Li, J. Han, W. E, Q. Li, On the Curse of Memory in Recurrent Neural
Networks: Approximation and Optimization Analysis, ICLR 2021; JMLR 23(42), 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np
import scipy.special as sp
from scipy.integrate import quad_vec
from scipy.signal import fftconvolve

from ._validation import (
    as_float_array,
    check_choice,
    check_finite,
    check_increasing,
    check_int,
    check_nonnegative,
    check_positive,
    describe,
)
from .inputs import InputPath, from_sequence
from .models import CTRNN, LinearRNN
from .recurrences import forward
from .simulate import METHODS, simulate

__all__ = [
    "Decay",
    "Target",
    "LinearTarget",
    "ExponentialKernel",
    "PowerLawKernel",
    "ExponentialSum",
    "ShiftedBump",
    "AiryKernel",
    "TwoPartKernel",
    "BoxKernel",
    "SineKernel",
    "LinearSum",
    "LinearFunctional",
    "PointwiseNonlinear",
    "Volterra2",
    "TeacherRNN",
    "wll_targets",
    "wll_code_targets",
]

NORMALIZATIONS = ("x", "x+1")
DECAY_KINDS = ("exponential", "polynomial", "non-decaying", "unknown")
_GL_NODES = 16
_PAIR_CHUNK = 1 << 18  # (time, piece) pairs per vectorised block
_PANEL_CHUNK = 1 << 13  # quadrature panels per vectorised block
_MAX_PANELS = 20_000_000  # cumulative tables beyond this would take minutes and gigabytes


class Decay(NamedTuple):
    """The known decay class of a target's memory function.

    A named tuple, so ``Decay("exponential", 0.5) == ("exponential", 0.5)``.

    Attributes
    ----------
    kind : {"exponential", "polynomial", "non-decaying", "unknown"}
        ``"exponential"``: ``M(t) <= C e^{-value t}`` and no faster rate works
        (``value = inf`` for kernels decaying faster than any exponential:
        compact support, Gaussian, ``Ai(+t)``).
        ``"polynomial"``: ``M(t) ~ C t^{-value}`` (for oscillating kernels, the
        envelope).  ``"non-decaying"``: ``M`` does not tend to 0 (or is infinite).
        ``"unknown"``: not known in closed form.
    value : float or None
        The rate or exponent; ``None`` for the last two kinds.
    """

    kind: str
    value: float | None


_UNKNOWN = Decay("unknown", None)
_NON_DECAYING = Decay("non-decaying", None)
_SUPER_EXPONENTIAL = Decay("exponential", math.inf)


def _slowest(decays) -> Decay:
    """The decay class of a sum: the slowest of its terms."""
    decays = list(decays)
    if not decays:
        return _SUPER_EXPONENTIAL  # rho == 0
    if any(d.kind == "unknown" for d in decays):
        return _UNKNOWN
    if any(d.kind == "non-decaying" for d in decays):
        return _NON_DECAYING
    poly = [d.value for d in decays if d.kind == "polynomial"]
    if poly:
        return Decay("polynomial", float(min(poly)))
    return Decay("exponential", float(min(d.value for d in decays)))


# --------------------------------------------------------------------------
# numerically careful pieces of the closed forms


def _series_u_exp(x: np.ndarray) -> np.ndarray:
    """``int_0^1 u e^{-x u} du = (1 - e^{-x}(1 + x)) / x^2`` for ``x >= 0``, without cancellation."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    small = x < 0.5
    xs = x[small]
    # sum_n (-x)^n / (n! (n + 2)); 20 terms reach 0.5^20 / 20! << eps.
    acc = np.zeros_like(xs)
    term = np.ones_like(xs)
    for n in range(20):
        acc += term / (n + 2)
        term = term * (-xs) / (n + 1)
    out[small] = acc
    xl = x[~small]
    out[~small] = (sp.exprel(-xl) - np.exp(-xl)) / xl
    return out


def _power_first_moment(p: float, r: np.ndarray) -> np.ndarray:
    """``D(p, r) = int_0^r (e^v - 1) e^{(1 - p) v} dv = int_1^{e^r} (w - 1) w^{-p} dw``."""
    r = np.asarray(r, dtype=float)
    out = np.empty_like(r)
    q1, q2 = 1.0 - p, 2.0 - p
    big = max(1.0, abs(q1), abs(q2))
    small = r * big < 0.5
    rs = r[small]
    # sum_{n>=2} r^n / n! (q2^{n-1} - q1^{n-1}); the ratio of terms is <= 0.5 / n.
    acc = np.zeros_like(rs)
    pw = rs.copy()  # r^n / n! at n = 1
    a, b = 1.0, 1.0  # q2^{n-1}, q1^{n-1} at n = 1
    for n in range(2, 30):
        pw = pw * rs / n
        a, b = a * q2, b * q1
        acc += pw * (a - b)
    out[small] = acc
    rl = r[~small]
    out[~small] = rl * (sp.exprel(q2 * rl) - sp.exprel(q1 * rl))
    return out


def _erf_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``erf(b) - erf(a)``, through ``erfc`` in the tails where ``erf`` is ~ +-1."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    out = sp.erf(b) - sp.erf(a)
    pos = a >= 0.5
    out[pos] = sp.erfc(a[pos]) - sp.erfc(b[pos])
    neg = b <= -0.5
    out[neg] = sp.erfc(-b[neg]) - sp.erfc(-a[neg])
    return out


def _trig_moments(x: np.ndarray):
    """``(C, S, A, B)`` = ``int_0^1 (cos xu, sin xu, u cos xu, u sin xu) du``."""
    x = np.asarray(x, dtype=float)
    C, S, A, B = (np.empty_like(x) for _ in range(4))
    small = np.abs(x) < 1.0
    xs = x[small]
    # Even/odd series: int_0^1 u^k (xu)^m / m! du = x^m / (m! (m + k + 1)).
    c = np.zeros_like(xs)
    s = np.zeros_like(xs)
    a = np.zeros_like(xs)
    bb = np.zeros_like(xs)
    pw = np.ones_like(xs)  # x^m / m!
    for m in range(24):
        sign = (-1) ** (m // 2)
        if m % 2 == 0:
            c += sign * pw / (m + 1)
            a += sign * pw / (m + 2)
        else:
            s += sign * pw / (m + 1)
            bb += sign * pw / (m + 2)
        pw = pw * xs / (m + 1)
    C[small], S[small], A[small], B[small] = c, s, a, bb
    xl = x[~small]
    sx, cx = np.sin(xl), np.cos(xl)
    C[~small] = sx / xl
    S[~small] = 2.0 * np.sin(0.5 * xl) ** 2 / xl
    A[~small] = (cx + xl * sx - 1.0) / xl**2
    B[~small] = (sx - xl * cx) / xl**2
    return C, S, A, B


@lru_cache(maxsize=4)
def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w  # nodes and weights on [0, 1]


def _gl_direct(fn, sa: np.ndarray, L: np.ndarray, nodes: int = _GL_NODES):
    """Moments over short intervals by one Gauss-Legendre rule each (no cancellation).

    ``m0 = int_{sa}^{sa+L} fn``, ``m1 = int_{sa}^{sa+L} (s - sa) fn(s) ds``; ``fn``
    maps (M,) to (M, k).  Accurate when ``fn`` is smooth on the scale of ``L``.
    """
    u, w = _gauss_legendre(nodes)
    m0_parts, m1_parts = [], []
    for lo in range(0, sa.size, _PANEL_CHUNK):
        a, h = sa[lo:lo + _PANEL_CHUNK, None], L[lo:lo + _PANEL_CHUNK, None]
        off = h * u[None, :]  # s - sa at the nodes, exactly
        vals = np.asarray(fn((a + off).ravel()), dtype=float).reshape(a.shape[0], nodes, -1)
        wv = vals * (w[None, :, None] * h[:, :, None])
        m0_parts.append(wv.sum(axis=1))
        m1_parts.append((wv * off[:, :, None]).sum(axis=1))
    if not m0_parts:
        k = np.asarray(fn(np.zeros(1)), dtype=float).reshape(1, -1).shape[1]
        return np.zeros((0, k)), np.zeros((0, k))
    return np.concatenate(m0_parts), np.concatenate(m1_parts)


class _CumulativeTable:
    """``F(p) = int_0^p fn`` and ``G(p) = int_0^p s fn(s) ds`` from a cached panel grid.

    The grid of panels is built once (and extended on demand, doubling its
    reach): gaps between ``edges_fn(lo, hi)`` (kinks of ``fn`` and points where
    its local scale changes) are split into equal panels no longer than
    ``width_fn(e0, e1)``, each integrated by 16-point Gauss-Legendre and
    accumulated.  A point then costs one partial panel.  Not thread-safe
    (the cache grows in place); results do not depend on the cache state
    beyond rounding of the accumulated sums.
    """

    def __init__(self, fn, width_fn, edges_fn):
        self.fn, self.width_fn, self.edges_fn = fn, width_fn, edges_fn
        self.knots = np.zeros(1)
        self.F = None
        self.G = None

    def _extend(self, top: float) -> None:
        cur = float(self.knots[-1])
        if self.F is not None and top <= cur:
            return

        def layout(upper):
            grid = np.unique(np.concatenate([[cur, upper], np.asarray(self.edges_fn(cur, upper), dtype=float)]))
            grid = grid[(grid >= cur) & (grid <= upper)]
            e0, e1 = grid[:-1], grid[1:]
            return e0, e1, np.maximum(1, np.ceil((e1 - e0) / self.width_fn(e0, e1))).astype(np.int64)

        # Grow geometrically (so that rising horizons cost O(log) rebuilds), but never past the cap.
        new_top = max(top, 2.0 * cur, 1.0)
        e0, e1, npan = layout(new_top)
        if npan.sum() > _MAX_PANELS and new_top > top:
            new_top = top
            e0, e1, npan = layout(new_top)
        if npan.sum() > _MAX_PANELS:
            raise ValueError(
                f"`t` reaches s = {top:.6g}, where this kernel needs {int(npan.sum())} quadrature panels "
                f"(more than {_MAX_PANELS}); shorten the horizon (or use a longer `panel`)."
            )
        gap = np.repeat(np.arange(e0.size), npan)
        first = np.concatenate([[0], np.cumsum(npan)[:-1]])
        local = np.arange(gap.size) - np.repeat(first, npan)
        h = ((e1 - e0) / npan)[gap]
        starts = e0[gap] + local * h
        ends = np.append(starts[1:], new_top)
        m0, m1 = _gl_direct(self.fn, starts, ends - starts)
        I1 = m1 + starts[:, None] * m0  # int s fn over the panel
        if self.F is None:
            k = m0.shape[1]
            self.F, self.G = np.zeros((1, k)), np.zeros((1, k))
        self.F = np.concatenate([self.F, self.F[-1] + np.cumsum(m0, axis=0)])
        self.G = np.concatenate([self.G, self.G[-1] + np.cumsum(I1, axis=0)])
        self.knots = np.concatenate([self.knots, ends])

    def __call__(self, points: np.ndarray):
        """``(F, G)`` at ``points >= 0``, each of shape (len(points), k)."""
        pts, inv = np.unique(np.asarray(points, dtype=float), return_inverse=True)
        self._extend(float(pts[-1]) if pts.size else 0.0)
        j = np.clip(np.searchsorted(self.knots, pts, side="right") - 1, 0, self.knots.size - 1)
        base = self.knots[j]
        p0, p1 = _gl_direct(self.fn, base, pts - base)
        F = self.F[j] + p0
        G = self.G[j] + p1 + base[:, None] * p0
        return F[inv.reshape(-1)], G[inv.reshape(-1)]


def _unique_pairs(sa: np.ndarray, L: np.ndarray):
    """Unique ``(sa, L)`` pairs and the inverse map (sequences repeat them many times)."""
    # A complex view sorts lexicographically and is much faster than np.unique(axis=0).
    uniq, inv = np.unique(sa + 1j * L, return_inverse=True)
    return uniq.real.copy(), uniq.imag.copy(), inv.reshape(-1)


def _split_moments(sa, L, c, left, right):
    """Moments over ``[sa, sa + L]`` of a kernel defined by ``left`` below ``c`` and ``right`` above.

    ``left(sa, L)`` and ``right(sa - c, L)`` give ``(m0, m1)``; on a straddling
    interval ``m1 = m1_left + m1_right + (c - sa) m0_right``.
    """
    sb = sa + L
    m0 = np.zeros_like(sa)
    m1 = np.zeros_like(sa)
    lm = sb <= c
    rm = (sa >= c) & ~lm
    st = ~(lm | rm)
    if lm.any():
        m0[lm], m1[lm] = left(sa[lm], L[lm])
    if rm.any():
        m0[rm], m1[rm] = right(sa[rm] - c, L[rm])
    if st.any():
        la = c - sa[st]
        l0, l1 = left(sa[st], la)
        r0, r1 = right(np.zeros_like(la), L[st] - la)
        m0[st] = l0 + r0
        m1[st] = l1 + r1 + la * r0
    return m0, m1


# --------------------------------------------------------------------------
# scalar kernels k(s) with closed-form moments; linear targets are sums w_i (x) k_i


@dataclass(frozen=True)
class _Exp:
    rate: float

    def value(self, s):
        return np.exp(-self.rate * s)

    def moments(self, sa, L):
        x = self.rate * L
        scale = np.exp(-self.rate * sa)
        return scale * L * sp.exprel(-x), scale * L**2 * _series_u_exp(x)

    @property
    def decay(self):
        return Decay("exponential", self.rate) if self.rate > 0 else _NON_DECAYING


@dataclass(frozen=True)
class _Pow:
    p: float
    scale: float

    def value(self, s):
        return (1.0 + self.scale * s) ** (-self.p)

    def moments(self, sa, L):
        c, p = self.scale, self.p
        wa = 1.0 + c * sa
        r = np.log1p(c * L / wa)
        m0 = wa ** (1.0 - p) / c * r * sp.exprel((1.0 - p) * r)
        m1 = wa ** (2.0 - p) / c**2 * _power_first_moment(p, r)
        return m0, m1

    @property
    def decay(self):
        return Decay("polynomial", self.p)


@dataclass(frozen=True)
class _Bump:
    center: float
    width: float

    def value(self, s):
        return np.exp(-(((s - self.center) / self.width) ** 2))

    def _column(self, s):
        return self.value(s)[:, None]

    def moments(self, sa, L):
        c, w = self.center, self.width
        za, zb = (sa - c) / w, (sa + L - c) / w
        m0 = 0.5 * math.sqrt(math.pi) * w * _erf_diff(za, zb)
        # int (s - c) e^{-z^2} ds = -(w^2 / 2) e^{-z^2}
        m1 = 0.5 * w**2 * (np.exp(-(za**2)) - np.exp(-(zb**2))) + (c - sa) * m0
        # On pieces shorter than the width the closed form cancels (m1 ~ L^2 against
        # terms ~ L |c - sa|); one Gauss-Legendre rule is exact to rounding there.
        short = L <= w
        if short.any():
            a0, a1 = _gl_direct(self._column, sa[short], L[short])
            m0[short], m1[short] = a0[:, 0], a1[:, 0]
        return m0, m1

    @property
    def decay(self):
        return _SUPER_EXPONENTIAL


@dataclass(frozen=True)
class _Box:
    start: float
    stop: float

    def value(self, s):
        # Open interval, as the public [WLL] code: at integer samples rho(start) = rho(stop) = 0.
        return ((s > self.start) & (s < self.stop)).astype(float)

    def moments(self, sa, L):
        lo = np.maximum(sa, self.start)
        hi = np.minimum(sa + L, self.stop)
        ok = hi > lo
        m0 = np.where(ok, hi - lo, 0.0)
        m1 = np.where(ok, 0.5 * ((hi - sa) ** 2 - (lo - sa) ** 2), 0.0)
        return m0, m1

    @property
    def breaks(self):
        return (self.start, self.stop)

    @property
    def decay(self):
        return _SUPER_EXPONENTIAL


@dataclass(frozen=True)
class _Sine:
    freq: float
    phase: float

    def value(self, s):
        return np.sin(self.freq * s + self.phase)

    def moments(self, sa, L):
        th = self.freq * sa + self.phase
        C, S, A, B = _trig_moments(self.freq * L)
        st, ct = np.sin(th), np.cos(th)
        # sin(th + x u) = sin th cos xu + cos th sin xu
        return L * (st * C + ct * S), L**2 * (st * A + ct * B)

    @property
    def decay(self):
        return _NON_DECAYING


@dataclass(frozen=True)
class _TwoPart:
    rate: float
    p: float
    T0: float

    def value(self, s):
        s = np.asarray(s, dtype=float)
        head = np.exp(-self.rate * np.minimum(s, self.T0))
        tail = (1.0 + (self.rate / self.p) * np.maximum(s - self.T0, 0.0)) ** (-self.p)
        return head * tail

    def moments(self, sa, L):
        e, pw, c = _Exp(self.rate), _Pow(self.p, self.rate / self.p), self.T0
        k = math.exp(-self.rate * c)

        def right(sa_, L_):
            m0, m1 = pw.moments(sa_, L_)
            return k * m0, k * m1

        return _split_moments(sa, L, c, e.moments, right)

    @property
    def breaks(self):
        return (self.T0,)

    @property
    def decay(self):
        return Decay("polynomial", self.p)


@dataclass(frozen=True)
class _Airy:
    scale: float
    shift: float

    def value(self, s):
        return sp.airy(self.scale * (np.asarray(s, dtype=float) - self.shift))[0]

    def _width(self, e0, e1):
        # At most one radian of the local phase (2/3)|z|^{3/2}, i.e. |dz| <= 1 / sqrt(|z|).
        zmax = np.maximum(np.abs(self.scale * (e0 - self.shift)), np.abs(self.scale * (e1 - self.shift)))
        return 1.0 / (abs(self.scale) * np.sqrt(np.maximum(1.0, zmax)))

    def _edges(self, lo, hi):
        # Edges where |z| crosses 2^j let the panel width follow the local frequency.
        zs = 2.0 ** np.arange(0, 60)
        pts = np.concatenate([[self.shift], self.shift + zs / self.scale, self.shift - zs / self.scale])
        return pts[(pts > lo) & (pts < hi)]

    def _column(self, s):
        return self.value(s)[:, None]

    def moments(self, sa, L):
        sa, L, inv = _unique_pairs(sa, L)
        m0, m1 = np.empty_like(sa), np.empty_like(sa)
        short = L <= self._width(sa, sa + L)
        if short.any():
            a0, a1 = _gl_direct(self._column, sa[short], L[short])
            m0[short], m1[short] = a0[:, 0], a1[:, 0]
        lg = ~short
        if lg.any():
            s_a, s_b = sa[lg], sa[lg] + L[lg]
            F, _ = _airy_table(self)(np.concatenate([s_a, s_b]))
            m0[lg] = F[s_a.size:, 0] - F[: s_a.size, 0]
            # int (s - s0) Ai(kappa (s - s0)) ds = Ai'(z) / kappa^2, since Ai'' = z Ai.
            za, zb = self.scale * (s_a - self.shift), self.scale * (s_b - self.shift)
            m1[lg] = (sp.airy(zb)[1] - sp.airy(za)[1]) / self.scale**2 + (self.shift - s_a) * m0[lg]
        return m0[inv], m1[inv]

    @property
    def decay(self):
        return Decay("polynomial", 0.25) if self.scale < 0 else _SUPER_EXPONENTIAL


@lru_cache(maxsize=32)
def _airy_table(term: _Airy) -> _CumulativeTable:
    return _CumulativeTable(term._column, term._width, term._edges)


# --------------------------------------------------------------------------
# validation helpers


def _weights(name: str, a) -> np.ndarray:
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
        return _UNKNOWN

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
    Exact identities ([WLL] Def. 3.1; THEORY.md section 2):

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
        step = max(1, _PAIR_CHUNK // P)
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


class _TermKernel(LinearTarget):
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
        return _slowest(k.decay for k, w in merged.items() if np.any(w != 0))


# --------------------------------------------------------------------------
# linear targets with closed forms


@dataclass(frozen=True, eq=False)
class ExponentialKernel(_TermKernel):
    """``rho(t) = a e^{-rate t}``: exponentially decaying memory ([WLL] Fig. 1, [LHEL]).

    Parameters
    ----------
    rate : float
        ``rate >= 0`` (0 gives the non-decaying constant kernel).
    a : float or array_like, shape (d,)
        Channel weights; ``d = a.size``.

    Notes
    -----
    .. math::

        \\rho(t) = a\\, e^{-\\lambda t}, \\qquad
        H_t(u^x) = \\frac{a^\\top x}{\\lambda} (1 - e^{-\\lambda t}), \\qquad
        M(t) = \\|a\\|_1 e^{-\\lambda t} .

    Decay: ``("exponential", rate)``.  :meth:`discrete` builds the [WLL]
    target ``rho = 0.9^t``.
    """

    rate: float
    a: np.ndarray = 1.0

    def __post_init__(self):
        object.__setattr__(self, "rate", check_nonnegative("rate", self.rate))
        object.__setattr__(self, "a", _weights("a", self.a))
        self._set_terms([(self.a, _Exp(self.rate))])

    @classmethod
    def discrete(cls, base: float = 0.9, a=1.0) -> "ExponentialKernel":
        """``rho(t) = a base^t``, i.e. ``rate = -log(base)`` ([WLL] Fig. 1 uses ``0.9^t``).

        Parameters
        ----------
        base : float
            In ``(0, 1]``.
        a : float or array_like, shape (d,)
        """
        base = check_positive("base", base)
        if base > 1.0:
            raise ValueError(f"`base` must lie in (0, 1] (a decaying kernel base^t); got {base}.")
        return cls(-math.log(base) if base < 1.0 else 0.0, a)


@dataclass(frozen=True, eq=False)
class PowerLawKernel(_TermKernel):
    """``rho(t) = a (1 + scale t)^{-p}``: polynomially decaying memory ([WLL] Figs. 1, 2).

    ``scale = 1`` gives ``(t + 1)^{-p}`` (the paper); ``p = 1.1, scale = 0.1``
    gives ``(1 + 0.1 t)^{-1.1}`` (the public code).

    Parameters
    ----------
    p : float
        Exponent, ``p > 0``.
    a : float or array_like, shape (d,)
    scale : float
        ``scale > 0``.

    Notes
    -----
    .. math::

        \\int_0^t \\rho = a\\, \\frac{(1 + c t)^{1 - p} - 1}{c (1 - p)}
        \\ (\\log(1 + c t) / c \\text{ at } p = 1), \\qquad
        M(t) = \\|a\\|_1 (1 + c t)^{-p} .

    Decay: ``("polynomial", p)``.  As an exponential mixture,
    ``(1 + t)^{-p} = Gamma(p)^{-1} int_0^inf s^{p-1} e^{-s} e^{-st} ds``
    (THEORY.md section 6).
    """

    p: float
    a: np.ndarray = 1.0
    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "p", check_positive("p", self.p))
        object.__setattr__(self, "a", _weights("a", self.a))
        object.__setattr__(self, "scale", check_positive("scale", self.scale))
        self._set_terms([(self.a, _Pow(self.p, self.scale))])


@dataclass(frozen=True, eq=False)
class ExponentialSum(_TermKernel):
    """``rho(t) = sum_i w_i e^{-lambda_i t}``: the kernels a width-k linear RNN realises exactly.

    Parameters
    ----------
    rates : array_like, shape (k,)
        ``lambda_i >= 0``.
    weights : array_like, shape (k,) or (k, d)
        ``w_i``; a 1-D array means ``d = 1``.

    Notes
    -----
    .. math::

        \\rho(t) = \\sum_{i=1}^k w_i e^{-\\lambda_i t}, \\qquad
        M(t) = \\Big\\| \\sum_i w_i e^{-\\lambda_i t} \\Big\\|_1 .

    Decay: ``("exponential", min lambda_i)`` over the rates whose (merged)
    weight is non-zero.  Realised by ``W = -diag(lambda)``, ``U = w``, ``c = 1``
    (THEORY.md section 4).
    """

    rates: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        rates = as_float_array("rates", np.atleast_1d(self.rates), ndim=1, copy=True)
        if rates.size < 1:
            raise ValueError(f"`rates` must hold at least one rate; got shape {rates.shape}.")
        if np.any(rates < 0):
            i = int(np.flatnonzero(rates < 0)[0])
            raise ValueError(f"`rates` must be non-negative; got rates[{i}] = {rates[i]}.")
        W = as_float_array("weights", self.weights, ndim=(1, 2), copy=True)
        if W.ndim == 1:
            W = W[:, None]
        if W.shape[0] != rates.size or W.shape[1] < 1:
            raise ValueError(
                f"`weights` must have shape ({rates.size},) or ({rates.size}, d) to match `rates`; got shape {W.shape}."
            )
        rates.flags.writeable = False
        W.flags.writeable = False
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "weights", W)
        self._set_terms([(W[i], _Exp(float(r))) for i, r in enumerate(rates)])


@dataclass(frozen=True, eq=False)
class ShiftedBump(_TermKernel):
    """``rho(t) = a exp(-((t - center) / width)^2)``: memory concentrated at a delay.

    Parameters
    ----------
    center : float
        Delay of the peak (any real; a negative centre gives a half bump).
    width : float
        ``width > 0``.
    a : float or array_like, shape (d,)

    Notes
    -----
    .. math::

        \\int_{s_a}^{s_b} \\rho = a\\, \\frac{\\sqrt{\\pi}\\, w}{2}
        \\Big[\\operatorname{erf}\\tfrac{s_b - c}{w} - \\operatorname{erf}\\tfrac{s_a - c}{w}\\Big] .

    Decay: faster than any exponential, ``("exponential", inf)``.  The
    plateau identity of THEORY.md section 6 is
    ``int_0^inf e^{-wt} e^{-(t-T)^2} dt = (sqrt(pi)/2) e^{w^2/4 - wT} (1 + erf(T - w/2))``.
    """

    center: float
    width: float
    a: np.ndarray = 1.0

    def __post_init__(self):
        object.__setattr__(self, "center", check_finite("center", self.center))
        object.__setattr__(self, "width", check_positive("width", self.width))
        object.__setattr__(self, "a", _weights("a", self.a))
        self._set_terms([(self.a, _Bump(self.center, self.width))])


@dataclass(frozen=True, eq=False)
class AiryKernel(_TermKernel):
    """``rho(t) = a Ai(scale (t - shift))``: an oscillatory kernel.

    With the default ``scale = -1, shift = 0``, ``rho(t) = a Ai(-t)``.  For
    ``z -> +inf``

    .. math::

        \\operatorname{Ai}(-z) = \\pi^{-1/2} z^{-1/4}
        \\big[\\sin(\\tfrac23 z^{3/2} + \\tfrac{\\pi}{4}) + O(z^{-3/2})\\big],

    so the kernel oscillates with a rising frequency (a chirp) inside an
    envelope that decays only like ``t^{-1/4}``: oscillatory with slow
    (polynomial, not integrable) decay; ``M(t) = |a|_1 |Ai(-t)|`` has
    zeros and a ``t^{-1/4}`` envelope.  This is why this orientation is the
    default: it is the hard case for approximation by decaying exponentials.

    ``scale > 0`` mirrors it: ``Ai(t - 6)`` (``scale = 1, shift = 6``, the
    public [WLL] code's "airy" target, :meth:`public_code`) oscillates on
    ``[0, 6]`` and then decays like ``e^{-(2/3) (t - 6)^{3/2}}``, faster than
    any exponential.

    Parameters
    ----------
    a : float or array_like, shape (d,)
    scale : float
        Non-zero.
    shift : float

    Notes
    -----
    Moments: ``int rho`` by composite Gauss-Legendre (panels of at most one
    radian of phase; ``scipy.special.itairy`` is too inaccurate near
    ``|z| = 5``), and ``int (s - s0) Ai(kappa (s - s0)) ds = Ai'(z) / kappa^2``
    exactly (``Ai'' = z Ai``).  Decay: ``("polynomial", 0.25)`` (the
    envelope) for ``scale < 0``, ``("exponential", inf)`` for ``scale > 0``.
    """

    a: np.ndarray = 1.0
    scale: float = -1.0
    shift: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "a", _weights("a", self.a))
        scale = check_finite("scale", self.scale)
        if scale == 0:
            raise ValueError(f"`scale` must be non-zero; got {scale}.")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "shift", check_finite("shift", self.shift))
        self._set_terms([(self.a, _Airy(self.scale, self.shift))])

    @classmethod
    def public_code(cls, a=1.0) -> "AiryKernel":
        """``rho(t) = a Ai(t - 6)``, the "airy" target of the public [WLL] code."""
        return cls(a, scale=1.0, shift=6.0)


@dataclass(frozen=True, eq=False)
class TwoPartKernel(_TermKernel):
    """Exponential head, power-law tail, joined with matching value and slope at ``T0``.

    .. math::

        \\rho(t) = a \\begin{cases}
            e^{-\\lambda t}, & t < T_0, \\\\
            e^{-\\lambda T_0} \\big(1 + \\tfrac{\\lambda}{p} (t - T_0)\\big)^{-p}, & t \\ge T_0 .
        \\end{cases}

    Both pieces have value ``e^{-lambda T0}`` and slope ``-lambda e^{-lambda T0}``
    at ``T0`` (the choice ``lambda / p`` inside the tail makes the join C^1,
    so nothing but the decay class changes at ``T0``).  A decay fit on
    ``[0, T0]`` sees an exponential at rate ``lambda``; beyond ``T0`` the memory
    is a power law ``~ t^{-p}``: the memory function's class is decided by the
    tail, ``("polynomial", p)``.

    (The public [WLL] code's "twoparts" target is a different kernel,
    ``e^{-t} + e^{-(t-9)^2}``; see :func:`wll_code_targets`.)

    Parameters
    ----------
    rate : float
        ``lambda > 0``.
    p : float
        Tail exponent, ``p > 0``.
    T0 : float
        Switch time, ``T0 >= 0`` (``T0 = 0`` is a pure power law).
    a : float or array_like, shape (d,)
    """

    rate: float
    p: float
    T0: float
    a: np.ndarray = 1.0

    def __post_init__(self):
        object.__setattr__(self, "rate", check_positive("rate", self.rate))
        object.__setattr__(self, "p", check_positive("p", self.p))
        object.__setattr__(self, "T0", check_nonnegative("T0", self.T0))
        object.__setattr__(self, "a", _weights("a", self.a))
        self._set_terms([(self.a, _TwoPart(self.rate, self.p, self.T0))])


@dataclass(frozen=True, eq=False)
class BoxKernel(_TermKernel):
    """``rho(t) = a 1[start < t < stop]``: a pure delay window (the public code's "shift").

    .. math::

        H_t(x) = a^\\top \\int_{\\min(\\mathrm{start}, \\tau)}^{\\min(\\mathrm{stop}, \\tau)} x(t - s)\\, ds
        \\ (\\tau = t - t_\\mathrm{start}),
        \\qquad M(t) = \\|a\\|_1 \\mathbb{1}[\\mathrm{start} < t < \\mathrm{stop}] .

    The interval is open, as in the public [WLL] code, so sampled at whole
    steps ``rho(start) = rho(stop) = 0``.  Decay ``("exponential", inf)``
    (compact support).

    Parameters
    ----------
    start, stop : float
        ``0 <= start < stop``.
    a : float or array_like, shape (d,)
    """

    start: float
    stop: float
    a: np.ndarray = 1.0

    def __post_init__(self):
        start = check_nonnegative("start", self.start)
        stop = check_finite("stop", self.stop)
        if not stop > start:
            raise ValueError(f"`stop` must be greater than start = {start}; got {stop}.")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "a", _weights("a", self.a))
        self._set_terms([(self.a, _Box(start, stop))])


@dataclass(frozen=True, eq=False)
class SineKernel(_TermKernel):
    """``rho(t) = a sin(freq t + phase)``: non-decaying memory (the public code's "sin").

    Parameters
    ----------
    freq : float
        ``freq > 0``.
    a : float or array_like, shape (d,)
    phase : float

    Notes
    -----
    .. math::

        \\int_{s_a}^{s_a + L} \\rho = a L \\Big[\\sin\\theta\\, \\frac{\\sin \\omega L}{\\omega L}
        + \\cos\\theta\\, \\frac{1 - \\cos \\omega L}{\\omega L}\\Big],
        \\qquad \\theta = \\omega s_a + \\varphi .

    Decay ``("non-decaying", None)``: ``M(t) = |a|_1 |sin(freq t + phase)|``
    does not tend to zero: the target lies outside the decaying-memory class
    that [WLL] Thm. 3.9 is about.
    """

    freq: float = 1.0
    a: np.ndarray = 1.0
    phase: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "freq", check_positive("freq", self.freq))
        object.__setattr__(self, "a", _weights("a", self.a))
        object.__setattr__(self, "phase", check_finite("phase", self.phase))
        self._set_terms([(self.a, _Sine(self.freq, self.phase))])


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
        return _slowest(term.decay for term in self.terms)


class LinearFunctional(LinearTarget):
    """A linear target from a user kernel ``rho(t) -> (n, d)``.

    Parameters
    ----------
    rho : callable
        Vectorised: called with a 1-D array ``s`` of shape (M,), returns shape
        (M, d) (or (M,) when ``d = 1``).
    antiderivative : callable, optional
        ``R(s)`` with ``R' = rho``, same calling convention; used for
        ``int_{sa}^{sb} rho = R(sb) - R(sa)`` (exact on piecewise-constant inputs).
    dim : int
        d.
    breaks : sequence of float
        Times where ``rho`` or its derivative jumps; no quadrature panel
        straddles one.
    panel : float
        Longest Gauss-Legendre panel (16 nodes).  The quadrature is at
        rounding level when ``rho`` is smooth (analytic) on this scale.
    decay : Decay or tuple, optional
        The decay class if you know it (default ``("unknown", None)``).

    Notes
    -----
    Without ``antiderivative`` both moments come from the cumulative
    Gauss-Legendre tables of the module notes; with it only the first moment
    ``int (s - sa) rho`` (needed on piecewise-linear inputs) does.
    """

    def __init__(self, rho, antiderivative=None, dim: int = 1, *, breaks=(), panel: float = 1.0, decay=None):
        if not callable(rho):
            raise TypeError(f"`rho` must be callable (vectorised: rho(s) with s of shape (M,)); got {describe(rho)}.")
        if antiderivative is not None and not callable(antiderivative):
            raise TypeError(f"`antiderivative` must be callable or None; got {describe(antiderivative)}.")
        object.__setattr__(self, "_dim", check_int("dim", dim, minimum=1))
        b = as_float_array("breaks", np.atleast_1d(np.asarray(breaks, dtype=float)), ndim=1)
        if np.any(b < 0):
            raise ValueError(f"`breaks` must be non-negative times; got {describe(b)}.")
        object.__setattr__(self, "_breaks", tuple(float(v) for v in np.unique(b)))
        object.__setattr__(self, "_panel", check_positive("panel", panel))
        if decay is None:
            decay = _UNKNOWN
        if not (isinstance(decay, tuple) and len(decay) == 2):
            raise TypeError(f"`decay` must be a Decay or a (kind, value) pair; got {describe(decay)}.")
        check_choice("decay[0]", decay[0], DECAY_KINDS)
        object.__setattr__(self, "_decay", Decay(decay[0], None if decay[1] is None else float(decay[1])))
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "antiderivative", antiderivative)
        panel_width = self._panel
        breaks_arr = np.asarray(self._breaks)
        object.__setattr__(self, "_table", _CumulativeTable(
            self._rho,
            lambda e0, e1: np.full(e0.shape, panel_width),
            lambda lo, hi: breaks_arr[(breaks_arr > lo) & (breaks_arr < hi)],
        ))
        self._call("rho", rho, np.array([0.0, 1.0]))
        if antiderivative is not None:
            self._call("antiderivative", antiderivative, np.array([0.0, 1.0]))

    def __setattr__(self, name, value):
        # Immutable like the dataclass targets: __init__ writes through object.__setattr__.
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one.")

    def __repr__(self) -> str:
        return f"LinearFunctional(rho={self.rho!r}, dim={self._dim}, breaks={self._breaks}, panel={self._panel})"

    def _call(self, name, fn, s):
        out = np.asarray(fn(s), dtype=float)
        if out.ndim == 1 and self._dim == 1:
            out = out[:, None]
        if out.shape != (s.size, self._dim):
            raise ValueError(
                f"`{name}` must return an array of shape ({s.size}, {self._dim}) for s of shape ({s.size},); "
                f"got shape {out.shape}."
            )
        return out

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def decay(self) -> Decay:
        return self._decay

    def _rho(self, s):
        return self._call("rho", self.rho, np.asarray(s, dtype=float))

    def _moments(self, sa, L):
        sa, L, inv = _unique_pairs(sa, L)
        sb = sa + L
        m0 = np.empty((sa.size, self._dim))
        m1 = np.empty((sa.size, self._dim))
        brk = np.asarray(self._breaks)
        inside = np.zeros(sa.size, dtype=bool)
        if brk.size:
            inside = ((brk[None, :] > sa[:, None]) & (brk[None, :] < sb[:, None])).any(axis=1)
        short = (L <= self._panel) & ~inside
        if np.any(short):
            m0[short], m1[short] = _gl_direct(self._rho, sa[short], L[short])
        lg = ~short
        if np.any(lg):
            s_a, s_b = sa[lg], sb[lg]
            F, G = self._table(np.concatenate([s_a, s_b]))
            m0[lg] = F[s_a.size:] - F[: s_a.size]
            m1[lg] = G[s_a.size:] - G[: s_a.size] - s_a[:, None] * (F[s_a.size:] - F[: s_a.size])
        if self.antiderivative is not None and np.any(lg):
            # Exact on long pieces; short pieces keep the cancellation-free direct rule.
            R = self._call("antiderivative", self.antiderivative, np.concatenate([sa[lg], sb[lg]]))
            m0[lg] = R[np.count_nonzero(lg):] - R[: np.count_nonzero(lg)]
        return m0[inv], m1[inv]


# --------------------------------------------------------------------------
# nonlinear targets


def _tanh_prime(z):
    th = np.tanh(z)
    return 1.0 - th * th


@dataclass(frozen=True, eq=False)
class PointwiseNonlinear(Target):
    """``H_t(x) = f(L_t(x))``: a pointwise nonlinearity after a linear target.

    Parameters
    ----------
    linear : LinearTarget
        ``L``, with kernel ``rho``.
    f, fprime : callable
        Vectorised ``f`` and its derivative ``f'``.
    fprime_sup : float, optional
        ``sup_z |f'(z)|`` (with ``f'`` continuous).  Needed for
        :meth:`exact_memory`.

    Notes
    -----
    With ``R(t) = int_0^t rho``, ``L_t(u^x) = R(t)^T x`` and exactly

    .. math::

        \\frac{d}{dt} H_t(u^x) = f'(R(t)^\\top x)\\, \\rho(t)^\\top x .

    Memory (``normalize="x"``, all amplitudes): writing ``x = r e`` with
    ``|e|_inf = 1``, ``r > 0``, the argument ``r R^T e`` sweeps a whole line
    through 0 as ``r`` and ``+-e`` vary, so when ``R(t) != 0``

    .. math::

        M(t) = \\|\\rho(t)\\|_1 \\sup_z |f'(z)|

    (``e`` ranges over the dense set ``R^T e != 0`` of the cube), and
    ``M(t) = |rho(t)|_1 |f'(0)|`` when ``R(t) = 0`` (e.g. ``t = 0``).  For
    ``tanh`` the sup is approached as ``x -> 0``.  The ``|x| + 1`` and
    bounded-radius variants depend on the shape of ``f'`` and raise
    :class:`NotImplementedError`.  Decay: that of ``linear`` when
    ``fprime_sup`` is given, else unknown.  ``output_sequence`` is ``f``
    of the linear discrete sums.
    """

    linear: LinearTarget
    f: Callable
    fprime: Callable
    fprime_sup: float | None = None

    def __post_init__(self):
        if not isinstance(self.linear, LinearTarget):
            raise TypeError(f"`linear` must be a LinearTarget; got {describe(self.linear)}.")
        for name in ("f", "fprime"):
            fn = getattr(self, name)
            if not callable(fn):
                raise TypeError(f"`{name}` must be callable (vectorised over arrays); got {describe(fn)}.")
            probe = np.asarray(fn(np.zeros(3)), dtype=float)
            if probe.shape != (3,):
                raise ValueError(f"`{name}` must be vectorised: for z of shape (3,) it returned shape {probe.shape}.")
        if self.fprime_sup is not None:
            object.__setattr__(self, "fprime_sup", check_nonnegative("fprime_sup", self.fprime_sup))

    @classmethod
    def tanh(cls, linear: LinearTarget) -> "PointwiseNonlinear":
        """``H = tanh(L)`` with ``f' = 1 - tanh^2`` and ``sup |f'| = 1``."""
        return cls(linear, np.tanh, _tanh_prime, 1.0)

    @property
    def dim(self) -> int:
        return self.linear.dim

    @property
    def decay(self) -> Decay:
        return self.linear.decay if self.fprime_sup is not None else _UNKNOWN

    def _output(self, x, t):
        return np.asarray(self.f(self.linear._output(x, t)), dtype=float)

    def _output_sequence(self, X, dt):
        return np.asarray(self.f(self.linear._output_sequence(X, dt)), dtype=float)

    def _step_derivative(self, x, t):
        R = self.linear._moments(np.zeros_like(t), t)[0]  # (n, d)
        return np.asarray(self.fprime(x @ R.T), dtype=float) * (x @ self.linear._rho(t).T)

    def _exact_memory(self, t, normalize, radius):
        if normalize != "x" or radius is not None:
            raise NotImplementedError(
                "PointwiseNonlinear has a closed-form memory only for normalize='x' over all amplitudes "
                "(radius=None); use dynmem.memory.memory_function, which uses the exact step derivative."
            )
        if self.fprime_sup is None:
            raise NotImplementedError(
                "PointwiseNonlinear needs `fprime_sup` (sup |f'|) for its closed-form memory; "
                "dynmem.memory.memory_function uses the exact step derivative instead."
            )
        R = self.linear._moments(np.zeros_like(t), t)[0]
        f0 = abs(float(np.asarray(self.fprime(np.zeros(1)), dtype=float)[0]))
        factor = np.where(np.abs(R).sum(axis=1) > 0, self.fprime_sup, f0)
        return np.abs(self.linear._rho(t)).sum(axis=1) * factor


@dataclass(frozen=True, eq=False)
class Volterra2(Target):
    """A second-order Volterra functional with a separable symmetric second kernel.

    .. math::

        H_t(x) = \\int_0^{\\tau} \\rho_1(s)^\\top x(t-s)\\, ds
        + \\int_0^{\\tau}\\!\\!\\int_0^{\\tau} \\rho_2(s_1, s_2)\\,
          x(t-s_1)^\\top Q\\, x(t-s_2)\\, ds_1 ds_2,
        \\qquad \\rho_2(s_1, s_2) = g(s_1)\\, g(s_2),

    with ``tau = t - t_start``.  The double integral factorises:
    ``v_t = int_0^tau g(s) x(t - s) ds`` (``g`` applied to every channel) and
    ``H_t = rho1-part + v_t^T Q v_t``.

    Parameters
    ----------
    rho1 : LinearTarget
        First-order part, dimension d.
    g : LinearTarget
        A scalar kernel (dimension 1), e.g. ``ExponentialKernel(rate)``.
    weight : float or array_like, shape (d, d), optional
        ``Q`` (identity by default; only its symmetric part matters).

    Notes
    -----
    Step derivative.  For a symmetric ``rho2``,
    ``d/dt int_0^t int_0^t rho2 = int_0^t rho2(t, s) ds + int_0^t rho2(s, t) ds
    = 2 int_0^t rho2(t, s) ds``; with ``u^x = x`` on ``[0, t]`` and
    ``G(t) = int_0^t g``:

    .. math::

        \\frac{d}{dt} H_t(u^x) = \\rho_1(t)^\\top x + 2\\, g(t)\\, G(t)\\, x^\\top Q x .

    Memory.  The quadratic term grows like ``|x|^2``, so over all amplitudes
    ``M(t) = inf`` wherever ``g(t) G(t) Q_sym != 0`` (both normalisations) and
    ``|rho1(t)|_1`` elsewhere; accordingly ``decay`` is
    ``("non-decaying", None)`` unless the quadratic term vanishes.  Over
    ``0 < |x| <= r`` and ``d = 1`` (``b = 2 g G Q``):
    ``M = |rho1| + |b| r`` ("x") and ``(|rho1| + |b| r) r / (r + 1)``
    ("x+1"), attained at ``x = r sign(rho1 b)``; with a bounded radius the
    memory decays like the slower of ``rho1`` and ``g``.  For ``d > 1`` a
    bounded radius is a box-constrained indefinite quadratic problem and
    raises :class:`NotImplementedError`.
    """

    rho1: LinearTarget
    g: LinearTarget
    weight: np.ndarray = None

    def __post_init__(self):
        if not isinstance(self.rho1, LinearTarget):
            raise TypeError(f"`rho1` must be a LinearTarget; got {describe(self.rho1)}.")
        if not isinstance(self.g, LinearTarget):
            raise TypeError(f"`g` must be a LinearTarget with a scalar kernel (dim 1); got {describe(self.g)}.")
        if self.g.dim != 1:
            raise ValueError(f"`g` must have a scalar kernel (dim 1), applied to every channel; got dim {self.g.dim}.")
        d = self.rho1.dim
        if self.weight is None:
            Q = np.eye(d)
        else:
            Q = as_float_array("weight", self.weight, ndim=(0, 2), copy=True)
            if Q.ndim == 0:
                if d != 1:
                    raise ValueError(f"`weight` must have shape ({d}, {d}) for input dimension {d}; got a scalar.")
                Q = Q.reshape(1, 1)
            if Q.shape != (d, d):
                raise ValueError(f"`weight` must have shape ({d}, {d}) to match `rho1`; got shape {Q.shape}.")
        Q.flags.writeable = False
        object.__setattr__(self, "weight", Q)

    @property
    def dim(self) -> int:
        return self.rho1.dim

    @property
    def _Qsym(self) -> np.ndarray:
        return 0.5 * (self.weight + self.weight.T)

    def second_kernel(self, s1, s2) -> np.ndarray:
        """``rho2(s1, s2) Q = g(s1) g(s2) Q``.

        Parameters
        ----------
        s1, s2 : array_like, shape (n,)

        Returns
        -------
        ndarray, shape (n, d, d)
        """
        s1, s2 = self._check_lags(s1), self._check_lags(s2)
        if s1.shape != s2.shape:
            raise ValueError(f"`s1` and `s2` must have the same shape; got {s1.shape} and {s2.shape}.")
        gg = self.g._rho(s1)[:, 0] * self.g._rho(s2)[:, 0]
        return gg[:, None, None] * self.weight[None, :, :]

    @property
    def _quadratic_active(self) -> bool:
        return bool(np.any(self._Qsym != 0))

    @property
    def decay(self) -> Decay:
        if self._quadratic_active:
            return _NON_DECAYING
        return self.rho1.decay

    def _quad(self, v):
        return np.einsum("...i,ij,...j->...", v, self.weight, v)

    def _output(self, x, t):
        return self.rho1._output(x, t) + self._quad(self.g._path_products(x, t))

    def _output_sequence(self, X, dt):
        return self.rho1._output_sequence(X, dt) + self._quad(self.g._sequence_products(X, dt))

    def _gG(self, t):
        return self.g._rho(t)[:, 0] * self.g._moments(np.zeros_like(t), t)[0][:, 0]

    def _step_derivative(self, x, t):
        lin = x @ self.rho1._rho(t).T
        xQx = np.einsum("ki,ij,kj->k", x, self.weight, x)
        return lin + 2.0 * xQx[:, None] * self._gG(t)[None, :]

    def _exact_memory(self, t, normalize, radius):
        a = np.abs(self.rho1._rho(t)).sum(axis=1)
        b = 2.0 * self._gG(t)
        if not self._quadratic_active:
            b = np.zeros_like(b)
        if radius is None:
            return np.where(b != 0, np.inf, a)
        if self.dim != 1:
            if np.all(b == 0):
                return a * (radius / (radius + 1.0)) if normalize == "x+1" else a
            raise NotImplementedError(
                "Volterra2 with d > 1 has no closed-form memory over a bounded radius "
                "(a box-constrained indefinite quadratic problem); use dynmem.memory.memory_function."
            )
        B = np.abs(b * self._Qsym[0, 0])
        M = a + B * radius
        return M * (radius / (radius + 1.0)) if normalize == "x+1" else M


@dataclass(frozen=True, eq=False)
class TeacherRNN(Target):
    """A target realised by a continuous-time RNN (a "teacher").

    Parameters
    ----------
    model : CTRNN or LinearRNN
        Started from ``h = 0`` at the path's ``t_start`` (use ``b = 0`` so that
        ``h = 0`` is the rest state and ``H_t(0) = 0``).
    sequence_mode : {"euler", "simulate"}
        How :meth:`output_sequence` runs: ``"euler"`` (default) the model's
        forward-Euler recurrence ``model.discretize(dt)`` (numba,
        ``y_k = c^T h_{k+1}``, ``h_{k+1} = h_k + dt sigma(W h_k + U x_k + b)``,
        first-order accurate, what [WLL]'s code runs); ``"simulate"`` the exact
        output at ``(k + 1) dt`` on the piecewise-constant path
        ``from_sequence(X[b], dt)`` (one :func:`~dynmem.simulate.simulate` per
        sequence).  Both approximate ``H_{(k+1) dt}`` like the linear targets'
        discrete convolution.
    method : str
        scipy integrator for :func:`~dynmem.simulate.simulate`.
    rtol, atol : float
        Its tolerances.

    Notes
    -----
    ``step_derivative`` and ``exact_memory`` raise
    :class:`NotImplementedError`: :func:`dynmem.memory.memory_function`
    handles teacher RNNs through their ``.model`` (the exact flow of
    THEORY.md section 2).  Decay: unknown (for tanh the memory need not decay
    even for Hurwitz ``W``, THEORY.md section 2).
    """

    model: CTRNN
    sequence_mode: str = "euler"
    method: str = "DOP853"
    rtol: float = 1e-10
    atol: float = 1e-12

    def __post_init__(self):
        if not isinstance(self.model, (CTRNN, LinearRNN)):
            raise TypeError(
                f"`model` must be a CTRNN or a LinearRNN (a continuous-time teacher); got {describe(self.model)}."
            )
        check_choice("sequence_mode", self.sequence_mode, ("euler", "simulate"))
        check_choice("method", self.method, METHODS)
        object.__setattr__(self, "rtol", check_positive("rtol", self.rtol))
        object.__setattr__(self, "atol", check_positive("atol", self.atol))

    @property
    def dim(self) -> int:
        return self.model.inputs

    def _simulate(self, x, t):
        return simulate(self.model, x, t, method=self.method, rtol=self.rtol, atol=self.atol).y

    def _output(self, x, t):
        return self._simulate(x, t)

    def _output_sequence(self, X, dt):
        B, T, _ = X.shape
        if self.sequence_mode == "euler":
            return forward(self.model.discretize(dt), X).y
        times = dt * np.arange(1, T + 1)
        return np.stack([self._simulate(from_sequence(X[b], dt), times) for b in range(B)])

    _delegate = (
        "TeacherRNN has no closed-form {what}; dynmem.memory.memory_function handles teacher RNNs "
        "through their `.model` (exact nonlinear flow)."
    )

    def _step_derivative(self, x, t):
        raise NotImplementedError(self._delegate.format(what="step derivative"))

    def _exact_memory(self, t, normalize, radius):
        raise NotImplementedError(self._delegate.format(what="memory function"))


# --------------------------------------------------------------------------
# registries


def wll_targets() -> dict:
    """The linear targets of the [WLL] experiments (THEORY.md section 4), by name.

    Returns
    -------
    dict
        ``"exp_0.9"``: ``rho = 0.9^t`` (Fig. 1);
        ``"pow_1.1"``: ``(t + 1)^{-1.1}`` (Fig. 1);
        ``"pow_1.5"``: ``(t + 1)^{-1.5}`` (Fig. 2, tanh RNN);
        ``"pow_1.1_code"``: ``(1 + 0.1 t)^{-1.1}`` (the public code's "pol").
        All with ``d = 1``; a fresh dict on every call.
    """
    return {
        "exp_0.9": ExponentialKernel.discrete(0.9),
        "pow_1.1": PowerLawKernel(1.1),
        "pow_1.5": PowerLawKernel(1.5),
        "pow_1.1_code": PowerLawKernel(1.1, scale=0.1),
    }


def wll_code_targets() -> dict:
    """The kernels of the public [WLL] code (``src/data/components/lf/datagen.py``), by its names.

    Returns
    -------
    dict
        ``"exp"``: ``e^{-t}``; ``"pol"``: ``(1 + 0.1 t)^{-1.1}``;
        ``"shift"``: ``1[9 < t < 11]``; ``"twoparts"``: ``e^{-t} + e^{-(t - 9)^2}``;
        ``"airy"``: ``Ai(t - 6)``; ``"sin"``: ``sin(t)``.  All with ``d = 1``.
    """
    return {
        "exp": ExponentialKernel(1.0),
        "pol": PowerLawKernel(1.1, scale=0.1),
        "shift": BoxKernel(9.0, 11.0),
        "twoparts": ExponentialKernel(1.0) + ShiftedBump(9.0, 1.0),
        "airy": AiryKernel.public_code(),
        "sin": SineKernel(1.0),
    }
