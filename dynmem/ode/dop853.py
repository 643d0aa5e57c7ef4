"""Hairer's DOP853, 8(5,3): a record and its registry line.

The coefficients as scipy ships them (``scipy.integrate._ivp.dop853_coefficients``,
used by its ``DOP853``; Hairer, Norsett & Wanner, *Solving ODEs I*, sec. II.5
and II.10, and Hairer's Fortran DOP853): 12 stages and the FSAL stage
``K[12] = f(t + h, y_new)``, ``y_new = y + h sum_{j<12} B_j K_j``; the error
norm combines the fifth-order estimate ``E`` with the third-order one ``E2``
(``|h| ||e5||^2 / sqrt(m (||e5||^2 + 0.01 ||e3||^2))``, exponent -1/8); the
seventh-order dense output takes three more stages ``K[13..15]`` (only for a
step that holds an observation) and ``P`` (scipy's ``D``), in Hairer's form.
Its stages are formed from the state (as when the pair was first compiled): it
keeps no step store, so the compiled adjoints do not take it.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _dop853

from .pair import DENSE_HAIRER, Pair

__all__ = ["PAIR", "COEFFICIENTS"]

COEFFICIENTS = {
    "C": _dop853.C,  # (16,): 12 stages, the FSAL stage (index 12) and 3 dense-output stages
    "A": _dop853.A,  # (16, 16)
    "B": _dop853.B,  # (12,): eighth-order weights
    "E3": _dop853.E3,  # (13,): third-order error weights (incl. the FSAL stage)
    "E5": _dop853.E5,  # (13,): fifth-order error weights
    "D": _dop853.D,  # (4, 16): the seventh-order dense output's higher coefficients
}

PAIR = Pair("dop853", C=COEFFICIENTS["C"], A=COEFFICIENTS["A"], B=COEFFICIENTS["B"], E=COEFFICIENTS["E5"],
            E2=COEFFICIENTS["E3"], P=COEFFICIENTS["D"], order=8, error_order=7, dense=DENSE_HAIRER,
            preactivation=False)
"""The DOP853 pair."""

COEFFICIENTS = {k: getattr(PAIR, a) for k, a in (("C", "C"), ("A", "A"), ("B", "B"), ("E3", "E2"), ("E5", "E"),
                                                  ("D", "P"))}
"""Read-only arrays of the pair under scipy's names."""
