"""Argument checks shared by every public entry point.

Every message names the argument, the rule it broke and the value it got, so
that a user can fix the call without reading the source.  Checks run once, at
the public boundary; kernels behind it trust their inputs.
"""

from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "as_float_array",
    "as_square_matrix",
    "check_choice",
    "check_finite",
    "check_increasing",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_rng",
    "describe",
]


def describe(value) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return f"array {np.array2string(value, precision=4, separator=', ')} of shape {value.shape}"
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(
    name: str,
    value,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    copy: bool = False,
) -> np.ndarray:
    """Convert ``value`` to a C-contiguous float64 array and check it.

    Parameters
    ----------
    name : str
        The argument's name, quoted in error messages.
    value : array_like
        Real numbers. Complex, boolean-free object arrays and strings are refused.
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    shape : sequence of (int or None), optional
        Required shape; ``None`` entries match any length.
    finite : bool
        Refuse NaN and infinities.
    copy : bool
        Always return a fresh array (so a frozen object owns its data).
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be an array of real numbers; got the string {value!r}.")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds
        raise TypeError(f"`{name}` must be an array of real numbers; got {describe(value)}.") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "c":
            raise TypeError(f"`{name}` must be real; got complex dtype {arr.dtype}.")
        raise TypeError(f"`{name}` must be an array of real numbers; got dtype {arr.dtype} from {describe(value)}.")
    # np.asarray(order="C") keeps 0-d arrays 0-d (np.ascontiguousarray would promote them to 1-d).
    arr = np.array(arr, dtype=np.float64, order="C", copy=True) if copy else np.asarray(arr, dtype=np.float64, order="C")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, numbers.Integral) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"`{name}` must have {want} dimension(s); got shape {arr.shape}.")
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"`{name}` must have shape {want}; got shape {arr.shape}.")
    if finite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(
            f"`{name}` must be finite; got {arr[tuple(bad)] if arr.ndim else arr} at index {where}."
        )
    return arr


def check_finite(name: str, value: float) -> float:
    """Return ``value`` as a finite Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {describe(value)}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    return value


def check_positive(name: str, value: float, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking ``value > 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number; got {describe(value)}.")
    value = float(value)
    if np.isnan(value) or value <= 0 or (not allow_inf and np.isinf(value)):
        rule = "a positive number" if allow_inf else "a positive finite number"
        raise ValueError(f"`{name}` must be {rule}; got {value}.")
    return value


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as a float after checking ``0 <= value < inf``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a non-negative number; got {describe(value)}.")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"`{name}` must be a non-negative finite number; got {value}.")
    return value


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, refusing floats and booleans (and values outside ``[minimum, maximum]``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {describe(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value}.")
    return value


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices`` (strings)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}; got {describe(value)}.")
    return value


def as_square_matrix(name: str, value, *, copy: bool = False, rows_hint: str = "") -> np.ndarray:
    """A real, finite, non-empty square float64 matrix: the package's one square-matrix check.

    ``rows_hint`` is added to the message for an empty matrix (e.g.
    ``" (hidden width m >= 1)"``).
    """
    arr = as_float_array(name, value, ndim=2, copy=copy)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"`{name}` must be square; got shape {arr.shape}.")
    if arr.shape[0] < 1:
        raise ValueError(f"`{name}` must have at least one row{rows_hint}; got shape {arr.shape}.")
    return arr


def check_increasing(name: str, t: np.ndarray, *, strict: bool = True) -> np.ndarray:
    """Check that a 1-D time grid is (strictly) increasing."""
    if t.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional; got shape {t.shape}.")
    if t.size >= 2:
        d = np.diff(t)
        bad = np.flatnonzero(d <= 0) if strict else np.flatnonzero(d < 0)
        if bad.size:
            i = int(bad[0])
            rule = "strictly increasing" if strict else "non-decreasing"
            raise ValueError(
                f"`{name}` must be {rule}; got {name}[{i}] = {float(t[i])!r} followed by {name}[{i + 1}] = {float(t[i + 1])!r}."
            )
    return t


def check_rng(name: str, value) -> np.random.Generator:
    """``numpy.random.default_rng(value)``, with an error that names the argument.

    Accepts what :func:`numpy.random.default_rng` accepts: ``None``, a
    non-negative int (or a sequence of them), a :class:`numpy.random.SeedSequence`,
    a :class:`numpy.random.BitGenerator` or a :class:`numpy.random.Generator`.
    """
    if isinstance(value, np.random.Generator):
        return value
    if isinstance(value, (bool, np.bool_, str, bytes, float, complex)) or (
        isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    ):
        raise TypeError(
            f"`{name}` must be None, a non-negative int, a SeedSequence, a BitGenerator or a numpy Generator "
            f"(anything numpy.random.default_rng accepts); got {describe(value)}."
        )
    try:
        return np.random.default_rng(value)
    except (TypeError, ValueError, OverflowError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(
            f"`{name}` must be None, a non-negative int, a SeedSequence, a BitGenerator or a numpy Generator "
            f"(anything numpy.random.default_rng accepts); got {describe(value)} ({exc})."
        ) from None
