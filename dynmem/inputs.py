"""Input paths ``x : [t_start, t_end] -> R^d`` with first-class knots.

A path is a sequence of pieces separated by knots ``t_0 < t_1 < ... < t_n``.
Integrators stop at every knot (they never step across a jump in ``x`` or in
``x'``), so the pieces are what the solver sees.  Paths built here are
*affine on each piece*::

    x(t) = x_k + (t - t_k) s_k     for t in [t_k, t_{k+1})

which lets compiled vector fields evaluate ``U x(t) + b`` from two
precomputed vectors per piece.  The last knot may be ``+inf`` (a step that
lasts for ever).  Paths are right-continuous: at a knot the value of the
piece that starts there is returned; at a finite ``t_end`` the left limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._validation import as_float_array, check_finite, check_increasing, check_int, check_nonnegative, check_positive, describe, check_rng

__all__ = [
    "InputPath",
    "PiecewiseConstant",
    "PiecewiseLinear",
    "FunctionPath",
    "step",
    "impulse",
    "white_noise",
    "from_sequence",
]


class InputPath:
    """Base class: a path on ``[t_start, t_end]`` with knots."""

    knots: np.ndarray

    @property
    def t_start(self) -> float:
        """Left end of the domain."""
        return float(self.knots[0])

    @property
    def t_end(self) -> float:
        """Right end of the domain (may be ``inf``)."""
        return float(self.knots[-1])

    @property
    def dim(self) -> int:
        """Input dimension d."""
        raise NotImplementedError

    @property
    def affine(self) -> bool:
        """True when the path is affine on every piece (compiled fast path)."""
        return False

    def _check_times(self, t: np.ndarray, name: str = "t") -> None:
        if t.size and (t.min() < self.t_start or t.max() > self.t_end):
            raise ValueError(
                f"`{name}` must lie in the input's domain [{self.t_start}, {self.t_end}]; "
                f"got values in [{t.min()}, {t.max()}]."
            )

    def piece_index(self, t) -> np.ndarray:
        """Index k of the piece ``[t_k, t_{k+1})`` containing each time (last piece includes ``t_end``)."""
        t = np.asarray(t, dtype=float)
        n = self.knots.size - 1
        return np.clip(np.searchsorted(self.knots, t, side="right") - 1, 0, n - 1)

    def __call__(self, t) -> np.ndarray:
        """Evaluate the path.

        Parameters
        ----------
        t : float or array_like, shape (n,)

        Returns
        -------
        ndarray, shape (d,) or (n, d)
        """
        scalar = np.ndim(t) == 0
        tt = as_float_array("t", np.atleast_1d(t), ndim=1)
        self._check_times(tt)
        out = self._evaluate(tt)
        return out[0] if scalar else out

    def _evaluate(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class _AffinePath(InputPath):
    knots: np.ndarray
    offsets: np.ndarray  # (n, d): x at the left end of each piece
    slopes: np.ndarray  # (n, d): dx/dt on each piece

    def __post_init__(self):
        # A path owns its data: copies, made read-only.
        for name in ("knots", "offsets", "slopes"):
            arr = np.array(getattr(self, name), dtype=float)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def dim(self) -> int:
        return self.offsets.shape[1]

    @property
    def affine(self) -> bool:
        return True

    def _evaluate(self, t):
        k = self.piece_index(t)
        dt = t - self.knots[k]
        # On an infinite last piece the slope is zero; avoid inf * 0.
        return self.offsets[k] + np.where(np.isfinite(dt), dt, 0.0)[:, None] * self.slopes[k]


def _knots(knots, *, allow_inf_end: bool) -> np.ndarray:
    k = as_float_array("knots", knots, ndim=1, finite=False, copy=True)
    if k.size < 2:
        raise ValueError(f"`knots` must hold at least two times (one piece); got {k.size}.")
    if not np.all(np.isfinite(k[:-1])) or np.isnan(k[-1]) or (np.isinf(k[-1]) and not (allow_inf_end and k[-1] > 0)):
        rule = "finite except for a last knot of +inf" if allow_inf_end else "finite"
        raise ValueError(f"`knots` must be {rule}; got {describe(k)}.")
    check_increasing("knots", k)
    return k


def _values2d(values, n_rows: int, name: str = "values") -> np.ndarray:
    v = as_float_array(name, values, ndim=(1, 2), copy=True)
    if v.ndim == 1:
        v = v[:, None]
    if v.shape[0] != n_rows:
        raise ValueError(f"`{name}` must have {n_rows} rows (one per piece / knot as documented); got shape {v.shape}.")
    if v.shape[1] < 1:
        raise ValueError(f"`{name}` must have at least one column; got shape {v.shape}.")
    return v


class PiecewiseConstant(_AffinePath):
    """``x(t) = values[k]`` for ``t`` in ``[knots[k], knots[k+1])``.

    Parameters
    ----------
    knots : array_like, shape (n + 1,)
        Strictly increasing; the last may be ``inf``.
    values : array_like, shape (n, d) or (n,)
    """

    def __init__(self, knots, values):
        k = _knots(knots, allow_inf_end=True)
        v = _values2d(values, k.size - 1)
        super().__init__(k, v, np.zeros_like(v))

    @property
    def values(self) -> np.ndarray:
        """The value on each piece, shape (n, d)."""
        return self.offsets


class PiecewiseLinear(_AffinePath):
    """Linear interpolation of ``values`` at ``knots``.

    Parameters
    ----------
    knots : array_like, shape (n + 1,)
        Strictly increasing and finite.
    values : array_like, shape (n + 1, d) or (n + 1,)
    """

    def __init__(self, knots, values):
        k = _knots(knots, allow_inf_end=False)
        v = _values2d(values, k.size)
        slopes = np.diff(v, axis=0) / np.diff(k)[:, None]
        super().__init__(k, v[:-1].copy(), slopes)
        v.flags.writeable = False
        object.__setattr__(self, "_node_values", v)

    @property
    def values(self) -> np.ndarray:
        """The values at the knots, shape (n + 1, d)."""
        return self._node_values


@dataclass(frozen=True, eq=False)
class FunctionPath(InputPath):
    """A user function ``fn(t) -> (d,)``, smooth between the given knots.

    Simulation calls ``fn`` from Python at every right-hand-side evaluation,
    so it is slower than the affine paths; prefer :class:`PiecewiseLinear`
    when the input is sampled.

    Parameters
    ----------
    fn : callable
        ``fn(t)`` returns an array of shape (d,).
    knots : array_like, shape (n + 1,)
        Domain end points and any points where ``fn`` or its derivative jumps.
    dim : int
        d.
    """

    fn: Callable[[float], np.ndarray]
    knots: np.ndarray
    dim_: int

    def __init__(self, fn, knots, dim):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; got {describe(fn)}.")
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "knots", _knots(knots, allow_inf_end=True))
        object.__setattr__(self, "dim_", check_int("dim", dim, minimum=1))
        probe = np.asarray(fn(self.t_start), dtype=float).reshape(-1)
        if probe.shape != (self.dim_,):
            raise ValueError(f"`fn` must return an array of shape ({self.dim_},); got shape {probe.shape} at t = {self.t_start}.")

    @property
    def dim(self) -> int:
        return self.dim_

    def _evaluate(self, t):
        return np.stack([np.asarray(self.fn(ti), dtype=float).reshape(self.dim_) for ti in t])


def _amplitude(x) -> np.ndarray:
    x = as_float_array("x", np.atleast_1d(x) if not isinstance(x, (str, bytes)) else x, ndim=1)
    if x.size < 1:
        raise ValueError(f"`x` must hold at least one amplitude (input dimension d >= 1); got shape {x.shape}.")
    return x


# More pieces than this would not fit in memory (and a path of them could not be simulated).
_MAX_PIECES = 10**8


def step(x, *, t_jump: float = 0.0, t_start: float | None = None, t_end: float = np.inf) -> PiecewiseConstant:
    """Heaviside input ``u^x(t) = x * 1[t >= t_jump]`` ([WLL] Def. 3.1).

    Parameters
    ----------
    x : array_like, shape (d,) or scalar
        Step amplitude.
    t_jump : float
        Time of the jump.
    t_start : float, optional
        Start of the domain; defaults to ``t_jump`` (the path is then the
        constant ``x``).  A value below ``t_jump`` adds a zero piece first.
    t_end : float
        End of the domain (``inf`` by default).
    """
    x = _amplitude(x)
    t_jump = check_finite("t_jump", t_jump)
    if not (isinstance(t_end, (int, float, np.floating, np.integer)) and t_end > t_jump):
        raise ValueError(f"`t_end` must be greater than t_jump = {t_jump}; got {describe(t_end)}.")
    if t_start is not None:
        t_start = check_finite("t_start", t_start)
    if t_start is None or t_start == t_jump:
        return PiecewiseConstant([t_jump, t_end], x[None, :])
    if t_start > t_jump:
        raise ValueError(f"`t_start` must be <= `t_jump` = {t_jump}; got {t_start}.")
    return PiecewiseConstant([t_start, t_jump, t_end], np.stack([np.zeros_like(x), x]))


def impulse(x, *, width: float, t0: float = 0.0, t_end: float = np.inf) -> PiecewiseConstant:
    """A rectangular pulse of area ``x``: ``x / width`` on ``[t0, t0 + width)``, then 0.

    As ``width -> 0`` a linear system's response tends to its impulse
    response ``c^T e^{W t} U x``; the error is ``O(width)``.
    """
    x = _amplitude(x)
    width = check_positive("width", width)
    t0 = check_finite("t0", t0)
    if not t_end > t0 + width:
        raise ValueError(f"`t_end` must exceed t0 + width = {t0 + width}; got {t_end}.")
    return PiecewiseConstant([t0, t0 + width, t_end], np.stack([x / width, np.zeros_like(x)]))


def white_noise(dim: int, t_end: float, dt: float, *, scale: float = 1.0, t_start: float = 0.0, rng=None) -> PiecewiseConstant:
    """Piecewise-constant white noise on a grid of step ``dt``.

    Each piece holds an independent N(0, scale^2 / dt) vector, so the
    integral of the path over a piece has variance ``scale^2 dt``: the path is
    the derivative of a piecewise-linear Brownian motion with intensity
    ``scale``.  The last piece is shortened to end exactly at ``t_end``.
    """
    d = check_int("dim", dim, minimum=1)
    dt = check_positive("dt", dt)
    scale = check_nonnegative("scale", scale)
    t_start = check_finite("t_start", t_start)
    if not (np.isfinite(t_end) and t_end > t_start):
        raise ValueError(f"`t_end` must be finite and greater than t_start = {t_start}; got {t_end}.")
    with np.errstate(over="ignore"):
        n_pieces = (t_end - t_start) / dt
    if not n_pieces <= _MAX_PIECES:
        raise ValueError(
            f"`dt` must be at least (t_end - t_start) / {_MAX_PIECES:.0e} so that the noise has at most "
            f"{_MAX_PIECES:.0e} pieces; got dt = {dt!r} on [{t_start!r}, {t_end!r}] ({n_pieces:.3g} pieces)."
        )
    grid = t_start + dt * np.arange(int(np.ceil(n_pieces)) + 1)
    # Drop grid points that rounding put at (or a hair before) t_end, then end exactly there.
    knots = np.append(grid[grid < t_end - 1e-9 * dt], t_end)
    n = knots.size - 1
    rng = check_rng("rng", rng)
    values = rng.standard_normal((n, d)) * (scale / np.sqrt(dt))
    return PiecewiseConstant(knots, values)


def from_sequence(X, dt: float, *, t_start: float = 0.0, kind: str = "constant") -> _AffinePath:
    """A path from samples ``X[k]`` at times ``t_start + k dt``.

    ``kind="constant"`` holds ``X[k]`` on ``[t_start + k dt, t_start + (k+1) dt)``,
    matching the discrete recurrences (``x_k`` drives step k of
    :meth:`CTRNN.discretize`); ``kind="linear"`` interpolates linearly
    between the samples.

    Parameters
    ----------
    X : array_like, shape (T, d) or (T,)
    """
    dt = check_positive("dt", dt)
    t_start = check_finite("t_start", t_start)
    X = as_float_array("X", X, ndim=(1, 2))
    if X.ndim == 1:
        X = X[:, None]
    T = X.shape[0]
    if X.shape[1] < 1:
        raise ValueError(f"`X` must have at least one column (input dimension d >= 1); got shape {X.shape}.")
    if kind == "constant":
        if T < 1:
            raise ValueError(f"`X` must hold at least one sample; got shape {X.shape}.")
        return PiecewiseConstant(t_start + dt * np.arange(T + 1), X)
    if kind == "linear":
        if T < 2:
            raise ValueError(f"`X` must hold at least two samples for kind='linear'; got {T}.")
        return PiecewiseLinear(t_start + dt * np.arange(T), X)
    raise ValueError(f"`kind` must be one of 'constant', 'linear'; got {describe(kind)}.")
