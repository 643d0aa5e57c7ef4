"""Linear targets with closed forms: convolution kernels, their sums and linear functionals; the [WLL] registries."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import (as_float_array, check_choice, check_finite, check_int, check_nonnegative, check_positive,
    describe)
from .numerics import (AiryTerm, BoxTerm, BumpTerm, CumulativeTable, Decay, ExpTerm, PowTerm, SineTerm, TwoPartTerm,
    UNKNOWN_DECAY, gauss_legendre_direct, slowest_decay, unique_pairs)
from .base import DECAY_KINDS, LinearSum, LinearTarget, TermKernel, channel_weights

__all__ = [
    "ExponentialKernel", "PowerLawKernel", "ExponentialSum", "ShiftedBump", "AiryKernel", "TwoPartKernel",
    "BoxKernel", "SineKernel", "LinearSum", "LinearFunctional", "wll_targets", "wll_code_targets"
]

# --------------------------------------------------------------------------
# linear targets with closed forms


@dataclass(frozen=True, eq=False)
class ExponentialKernel(TermKernel):
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
        object.__setattr__(self, "a", channel_weights("a", self.a))
        self._set_terms([(self.a, ExpTerm(self.rate))])

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
class PowerLawKernel(TermKernel):
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
    (docs/theory.md section 6).
    """

    p: float
    a: np.ndarray = 1.0
    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "p", check_positive("p", self.p))
        object.__setattr__(self, "a", channel_weights("a", self.a))
        object.__setattr__(self, "scale", check_positive("scale", self.scale))
        self._set_terms([(self.a, PowTerm(self.p, self.scale))])


@dataclass(frozen=True, eq=False)
class ExponentialSum(TermKernel):
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
    (docs/theory.md section 4).
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
        self._set_terms([(W[i], ExpTerm(float(r))) for i, r in enumerate(rates)])


@dataclass(frozen=True, eq=False)
class ShiftedBump(TermKernel):
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
    plateau identity of docs/theory.md section 6 is
    ``int_0^inf e^{-wt} e^{-(t-T)^2} dt = (sqrt(pi)/2) e^{w^2/4 - wT} (1 + erf(T - w/2))``.
    """

    center: float
    width: float
    a: np.ndarray = 1.0

    def __post_init__(self):
        object.__setattr__(self, "center", check_finite("center", self.center))
        object.__setattr__(self, "width", check_positive("width", self.width))
        object.__setattr__(self, "a", channel_weights("a", self.a))
        self._set_terms([(self.a, BumpTerm(self.center, self.width))])


@dataclass(frozen=True, eq=False)
class AiryKernel(TermKernel):
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
        object.__setattr__(self, "a", channel_weights("a", self.a))
        scale = check_finite("scale", self.scale)
        if scale == 0:
            raise ValueError(f"`scale` must be non-zero; got {scale}.")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "shift", check_finite("shift", self.shift))
        self._set_terms([(self.a, AiryTerm(self.scale, self.shift))])

    @classmethod
    def public_code(cls, a=1.0) -> "AiryKernel":
        """``rho(t) = a Ai(t - 6)``, the "airy" target of the public [WLL] code."""
        return cls(a, scale=1.0, shift=6.0)


@dataclass(frozen=True, eq=False)
class TwoPartKernel(TermKernel):
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
        object.__setattr__(self, "a", channel_weights("a", self.a))
        self._set_terms([(self.a, TwoPartTerm(self.rate, self.p, self.T0))])


@dataclass(frozen=True, eq=False)
class BoxKernel(TermKernel):
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
        object.__setattr__(self, "a", channel_weights("a", self.a))
        self._set_terms([(self.a, BoxTerm(start, stop))])


@dataclass(frozen=True, eq=False)
class SineKernel(TermKernel):
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
        object.__setattr__(self, "a", channel_weights("a", self.a))
        object.__setattr__(self, "phase", check_finite("phase", self.phase))
        self._set_terms([(self.a, SineTerm(self.freq, self.phase))])


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
            decay = UNKNOWN_DECAY
        if not (isinstance(decay, tuple) and len(decay) == 2):
            raise TypeError(f"`decay` must be a Decay or a (kind, value) pair; got {describe(decay)}.")
        check_choice("decay[0]", decay[0], DECAY_KINDS)
        object.__setattr__(self, "_decay", Decay(decay[0], None if decay[1] is None else float(decay[1])))
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "antiderivative", antiderivative)
        panel_width = self._panel
        breaks_arr = np.asarray(self._breaks)
        object.__setattr__(self, "_table", CumulativeTable(
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
        sa, L, inv = unique_pairs(sa, L)
        sb = sa + L
        m0 = np.empty((sa.size, self._dim))
        m1 = np.empty((sa.size, self._dim))
        brk = np.asarray(self._breaks)
        inside = np.zeros(sa.size, dtype=bool)
        if brk.size:
            inside = ((brk[None, :] > sa[:, None]) & (brk[None, :] < sb[:, None])).any(axis=1)
        short = (L <= self._panel) & ~inside
        if np.any(short):
            m0[short], m1[short] = gauss_legendre_direct(self._rho, sa[short], L[short])
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
# registries


def wll_targets() -> dict:
    """The linear targets of the [WLL] experiments (docs/theory.md section 4), by name.

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
