"""dynmem's numerical-failure policy and its warning class.

The policy, which every public entry point follows:

* **Bad arguments** (wrong type, shape, dtype, NaN/inf where a finite number is
  required, a rule such as "strictly increasing" broken) raise
  :class:`TypeError` or :class:`ValueError` whose message names the argument,
  the rule and the value that was passed.
* **An integrator that cannot finish** (step size underflow, budget exhausted,
  a non-finite state) raises :class:`dynmem.SimulationError`, or is reported in
  the result with ``on_failure="report"``.
* **A computation whose intermediate state becomes non-finite from finite
  inputs** - a diverging recurrence (any state, not only the last), an
  exploding gradient, a loss that overflows - raises
  :class:`FloatingPointError`, saying where it happened.
* **A finite, well-defined quantity whose value exceeds the float64 range**
  (the memory of a non-Hurwitz linear RNN at large ``t``, a kernel entry
  ``c^T e^{W t} U`` that is a finite number times a huge exponential) is
  computed overflow-aware (in log space) and returned as ``+-inf`` with a
  :class:`DynmemOverflowWarning`, a :class:`RuntimeWarning`.  The warning
  says which entries overflowed.
* **NaN is never returned from finite inputs.**  Where NaN is part of a
  documented result (e.g. an undetermined fit parameter, or "no value" in a
  table column of a failed task) the docstring says so.
* **Training** that meets a non-finite loss or gradient stops: at the initial
  parameters :func:`dynmem.train` raises :class:`FloatingPointError`; later it
  returns the last finite iterate with ``success=False`` and a message, and
  never takes a step from an infinite loss.
* **Stored results that do not load** (a truncated or damaged task file of a
  sweep store) are reported by name, never guessed at; see
  :mod:`dynmem.sweep`.
"""

from __future__ import annotations

import warnings

__all__ = ["DynmemOverflowWarning", "FloatOverflowError", "SimulationError", "warn_overflow"]


class SimulationError(RuntimeError):
    """The integrator failed (step size collapse, divergence or a non-finite state)."""


class DynmemOverflowWarning(RuntimeWarning):
    """A finite quantity exceeded the float64 range and is returned as ``inf``.

    Raised as a warning (not an error) because the sign and the order of
    magnitude of the result are still correct: the exact value is larger
    than ``numpy.finfo(float).max`` (about 1.8e308).  Filter it with
    ``warnings.simplefilter("error", dm.DynmemOverflowWarning)`` to turn it
    into an exception.
    """


class FloatOverflowError(FloatingPointError, OverflowError):
    """A quantity that must be returned finite overflowed float64.

    A :class:`FloatingPointError` (the policy's error for non-finite
    intermediates) that is also an :class:`OverflowError`, for code that
    caught the latter.
    """


def warn_overflow(what: str, n_inf: int, n_total: int, detail: str = "", stacklevel: int = 3) -> None:
    """Issue the :class:`DynmemOverflowWarning` for ``n_inf`` of ``n_total`` entries of ``what``."""
    msg = f"{what}: {n_inf} of {n_total} values exceed the float64 range and are returned as inf"
    if detail:
        msg += f" ({detail})"
    warnings.warn(msg + ".", DynmemOverflowWarning, stacklevel=stacklevel)
