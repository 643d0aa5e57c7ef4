"""Tsitouras (2011) 5(4): a record and its registry line.

Seven stages with FSAL, fifth-order propagation, fourth-order estimate and
continuous extension; run with the controls of scipy's RK45.
"""

from __future__ import annotations

import numpy as np

from .pair import Pair

__all__ = ["PAIR"]

# Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62, 770-775: Table 1 (c, a, b and the embedded b-hat, with c2 = 0.161,
# c3 = 0.327, c4 = 0.9, c5 = 0.9800255409045097 free and the rest solved from the order conditions), given
# there to more digits than float64 holds.  The digits below are those transcribed from the paper in diffrax
# 0.7.2 (diffrax/_solver/tsit5.py, which cites it; OrdinaryDiffEq.jl's Tsit5 has the same numbers), rounded to
# 19 significant digits; the tests verify them instead of trusting the transcription.
# Seven stages, FSAL (the seventh row of a is b), fifth-order propagation, fourth-order estimate.
# tests/test_odeint_pairs.py checks them: the order conditions up to 5 for b and up to 4 for b-hat.
C = np.array([0.0, 0.161, 0.327, 0.9, 0.9800255409045096857, 1.0])
A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [0.161, 0.0, 0.0, 0.0, 0.0],
    [-0.8480655492356988544e-2, 0.3354806554923569885, 0.0, 0.0, 0.0],
    [2.897153057105493432, -6.359448489975074843, 4.362295432869581411, 0.0, 0.0],
    [5.325864828439256604, -11.74888356406282788, 7.495539342889836208, -0.9249506636175524926e-1, 0.0],
    [5.861455442946420029, -12.92096931784710929, 8.159367898576158643, -0.7158497328140099722e-1,
     -0.2826905039406838291e-1],
])
B = np.array([0.9646076681806522952e-1, 0.01, 0.4798896504144995748, 1.379008574103741893,
                  -3.290069515436080680, 2.324710524099773982])
BHAT = np.array([0.9468075576583945807e-1, 0.9183565540343253097e-2, 0.4877705284247615708,
                     1.234297566930478986, -2.707712349983525455, 1.866628418170587036, 1 / 66])
E = np.append(B, 0.0) - BHAT  # error weights: fifth- minus fourth-order solution, incl. FSAL


def _dense():
    # Tsitouras (2011), sec. 3: the fourth-order continuous extension b_i(theta), degree-4 polynomials with
    # b_i(0) = 0 and b_i(1) = b_i, given there in factored form (the factors below); expanded here into the
    # monomial coefficients of theta, ..., theta^4 that _interpolate reads (checked by the tests: b(1) = b
    # and the dense order conditions sum_i b_i(theta) Phi_i(t) = theta^|t| / gamma(t) for |t| <= 4).
    P = np.polynomial.polynomial
    th = np.array([0.0, 1.0])
    fac = [
        (-1.0530884977290216, [th, [-1.3299890189751412, 1.0], [0.7139816917074209, -1.4364028541716351, 1.0]]),
        (0.1017, [th, th, [1.2949852507374631, -2.1966568338249754, 1.0]]),
        (2.490627285651252793, [th, th, [1.57803468208092486, -2.38535645472061657, 1.0]]),
        (-16.54810288924490272, [th, th, [-1.21712927295533244, 1.0], [-0.61620406037800089, 1.0]]),
        (47.37952196281928122, [th, th, [-1.203071208372362603, 1.0], [-0.658047292653547382, 1.0]]),
        (-34.87065786149660974, [th, th, [-1.2, 1.0], [-2.0 / 3.0, 1.0]]),
        (2.5, [th, th, [-1.0, 1.0], [-0.6, 1.0]]),
    ]
    out = np.zeros((len(fac), 4))
    for i, (k, factors) in enumerate(fac):
        poly = np.array([k])
        for f in factors:
            poly = P.polymul(poly, f)
        out[i] = np.pad(poly, (0, 5 - poly.size))[1:5]
    return out


P = _dense()

PAIR = Pair("tsit5", C=C, A=A, B=B, E=E, P=P, order=5, error_order=4)
"""The Tsitouras 5(4) pair."""
