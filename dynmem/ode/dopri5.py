"""Dormand & Prince (1980) 5(4): the default pair (scipy's ``RK45``), a record and its registry line.

Seven stages with FSAL, fifth-order propagation, fourth-order error estimate,
the fourth-order continuous extension of Shampine (1986) as scipy's RK45 uses it
(Hairer, Norsett & Wanner, *Solving ODEs I*, sec. II.5-II.6).
"""

from __future__ import annotations

import numpy as np

from .pair import Pair

__all__ = ["PAIR"]

# Dormand & Prince (1980) tableau; dense-output polynomial coefficients of the
# fourth-order continuous extension as used by scipy's RK45 (Shampine 1986).
C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1 / 5, 0.0, 0.0, 0.0, 0.0],
    [3 / 40, 9 / 40, 0.0, 0.0, 0.0],
    [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
# error weights: fifth-order minus fourth-order solution, incl. the FSAL stage
E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
P = np.array([
    [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])

PAIR = Pair("dopri5", C=C, A=A, B=B, E=E, P=P, order=5, error_order=4)
"""The Dormand-Prince 5(4) pair."""
