"""Numerically careful pieces of the closed-form targets: moments, quadrature tables, scalar kernel terms.

The building blocks of :mod:`dynmem.targets.kernels`: decay classes (:class:`Decay`), series and
moment formulas that avoid cancellation, Gauss-Legendre panels and cumulative tables, and the scalar
kernels ``k(s)`` with closed-form moments (``ExpTerm``, ``PowTerm``, ...) whose weighted sums are the
linear targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import scipy.special as sp

__all__ = ["Decay"]

GL_NODES = 16
PAIR_CHUNK = 1 << 18  # (time, piece) pairs per vectorised block
PANEL_CHUNK = 1 << 13  # quadrature panels per vectorised block
MAX_PANELS = 20_000_000  # cumulative tables beyond this would take minutes and gigabytes


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


UNKNOWN_DECAY = Decay("unknown", None)
NON_DECAYING = Decay("non-decaying", None)
SUPER_EXPONENTIAL = Decay("exponential", math.inf)


def slowest_decay(decays) -> Decay:
    """The decay class of a sum: the slowest of its terms."""
    decays = list(decays)
    if not decays:
        return SUPER_EXPONENTIAL  # rho == 0
    if any(d.kind == "unknown" for d in decays):
        return UNKNOWN_DECAY
    if any(d.kind == "non-decaying" for d in decays):
        return NON_DECAYING
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


def gauss_legendre_direct(fn, sa: np.ndarray, L: np.ndarray, nodes: int = GL_NODES):
    """Moments over short intervals by one Gauss-Legendre rule each (no cancellation).

    ``m0 = int_{sa}^{sa+L} fn``, ``m1 = int_{sa}^{sa+L} (s - sa) fn(s) ds``; ``fn``
    maps (M,) to (M, k).  Accurate when ``fn`` is smooth on the scale of ``L``.
    """
    u, w = _gauss_legendre(nodes)
    m0_parts, m1_parts = [], []
    for lo in range(0, sa.size, PANEL_CHUNK):
        a, h = sa[lo:lo + PANEL_CHUNK, None], L[lo:lo + PANEL_CHUNK, None]
        off = h * u[None, :]  # s - sa at the nodes, exactly
        vals = np.asarray(fn((a + off).ravel()), dtype=float).reshape(a.shape[0], nodes, -1)
        wv = vals * (w[None, :, None] * h[:, :, None])
        m0_parts.append(wv.sum(axis=1))
        m1_parts.append((wv * off[:, :, None]).sum(axis=1))
    if not m0_parts:
        k = np.asarray(fn(np.zeros(1)), dtype=float).reshape(1, -1).shape[1]
        return np.zeros((0, k)), np.zeros((0, k))
    return np.concatenate(m0_parts), np.concatenate(m1_parts)


class CumulativeTable:
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
        if npan.sum() > MAX_PANELS and new_top > top:
            new_top = top
            e0, e1, npan = layout(new_top)
        if npan.sum() > MAX_PANELS:
            raise ValueError(
                f"`t` reaches s = {top:.6g}, where this kernel needs {int(npan.sum())} quadrature panels "
                f"(more than {MAX_PANELS}); shorten the horizon (or use a longer `panel`)."
            )
        gap = np.repeat(np.arange(e0.size), npan)
        first = np.concatenate([[0], np.cumsum(npan)[:-1]])
        local = np.arange(gap.size) - np.repeat(first, npan)
        h = ((e1 - e0) / npan)[gap]
        starts = e0[gap] + local * h
        ends = np.append(starts[1:], new_top)
        m0, m1 = gauss_legendre_direct(self.fn, starts, ends - starts)
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
        p0, p1 = gauss_legendre_direct(self.fn, base, pts - base)
        F = self.F[j] + p0
        G = self.G[j] + p1 + base[:, None] * p0
        return F[inv.reshape(-1)], G[inv.reshape(-1)]


def unique_pairs(sa: np.ndarray, L: np.ndarray):
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
class ExpTerm:
    rate: float

    def value(self, s):
        return np.exp(-self.rate * s)

    def moments(self, sa, L):
        x = self.rate * L
        scale = np.exp(-self.rate * sa)
        return scale * L * sp.exprel(-x), scale * L**2 * _series_u_exp(x)

    @property
    def decay(self):
        return Decay("exponential", self.rate) if self.rate > 0 else NON_DECAYING


@dataclass(frozen=True)
class PowTerm:
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
class BumpTerm:
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
            a0, a1 = gauss_legendre_direct(self._column, sa[short], L[short])
            m0[short], m1[short] = a0[:, 0], a1[:, 0]
        return m0, m1

    @property
    def decay(self):
        return SUPER_EXPONENTIAL


@dataclass(frozen=True)
class BoxTerm:
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
        return SUPER_EXPONENTIAL


@dataclass(frozen=True)
class SineTerm:
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
        return NON_DECAYING


@dataclass(frozen=True)
class TwoPartTerm:
    rate: float
    p: float
    T0: float

    def value(self, s):
        s = np.asarray(s, dtype=float)
        head = np.exp(-self.rate * np.minimum(s, self.T0))
        tail = (1.0 + (self.rate / self.p) * np.maximum(s - self.T0, 0.0)) ** (-self.p)
        return head * tail

    def moments(self, sa, L):
        e, pw, c = ExpTerm(self.rate), PowTerm(self.p, self.rate / self.p), self.T0
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
class AiryTerm:
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
        sa, L, inv = unique_pairs(sa, L)
        m0, m1 = np.empty_like(sa), np.empty_like(sa)
        short = L <= self._width(sa, sa + L)
        if short.any():
            a0, a1 = gauss_legendre_direct(self._column, sa[short], L[short])
            m0[short], m1[short] = a0[:, 0], a1[:, 0]
        lg = ~short
        if lg.any():
            s_a, s_b = sa[lg], sa[lg] + L[lg]
            F, _ = airy_table(self)(np.concatenate([s_a, s_b]))
            m0[lg] = F[s_a.size:, 0] - F[: s_a.size, 0]
            # int (s - s0) Ai(kappa (s - s0)) ds = Ai'(z) / kappa^2, since Ai'' = z Ai.
            za, zb = self.scale * (s_a - self.shift), self.scale * (s_b - self.shift)
            m1[lg] = (sp.airy(zb)[1] - sp.airy(za)[1]) / self.scale**2 + (self.shift - s_a) * m0[lg]
        return m0[inv], m1[inv]

    @property
    def decay(self):
        return Decay("polynomial", 0.25) if self.scale < 0 else SUPER_EXPONENTIAL


@lru_cache(maxsize=32)
def airy_table(term: AiryTerm) -> CumulativeTable:
    return CumulativeTable(term._column, term._width, term._edges)
