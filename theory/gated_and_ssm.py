"""Gated and state-space models: the CTGRU's linearisation at h* = 0 ([WLL] App. J) and the diagonal SSM's memory.

Claims about :class:`dynmem.gated.CTGRU` (``dh/dt = (1 - z)(n - h)``, the
continuous-time GRU whose forward-Euler step with dt = 1 is the GRU cell)
and :class:`dynmem.ssm.DiagonalSSM` (``dh/dt = Lambda h + B x``,
``y = Re(C^T h) + D^T x``).
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.integrate

from ._claim import Claim, Outcome, decide

MODULE = "gated_and_ssm"


# ---------------------------------------------------------------------------
# the GRU's linearisation at h* = 0


def gru_linearisation_symbolic(m: int = 2, d: int = 1):
    """Derive ``J = df/dh`` and ``B = df/dx`` of the CTGRU at ``(h, x) = (0, 0)`` with sympy; compare with the closed form.

    The n-gate biases vanish (``b_in = b_hn = 0``), so ``h* = 0`` is a rest
    state.  Closed form (App. J): with ``r_0 = sigma(b_ir + b_hr)``,
    ``z_0 = sigma(b_iz + b_hz)``,

        J = diag(1 - z_0) (diag(r_0) W_hn - I),      B = diag(1 - z_0) W_in.

    Returns ``(residual_J, residual_B)``: sympy matrices that simplify to zero
    when the derivation agrees with the closed form.
    """
    import sympy as sp

    sig = lambda v: 1 / (1 + sp.exp(-v))  # noqa: E731
    h = sp.Matrix(sp.symbols(f"h0:{m}"))
    x = sp.Matrix(sp.symbols(f"x0:{d}"))
    W = {k: sp.Matrix(m, m, sp.symbols(f"W_h{k}0:{m * m}")) for k in "rzn"}
    U = {k: sp.Matrix(m, d, sp.symbols(f"W_i{k}0:{m * d}")) for k in "rzn"}
    b = {k: sp.Matrix(sp.symbols(f"b_{k}0:{m}")) for k in ("ir", "hr", "iz", "hz")}
    r = (U["r"] * x + b["ir"] + W["r"] * h + b["hr"]).applyfunc(sig)
    z = (U["z"] * x + b["iz"] + W["z"] * h + b["hz"]).applyfunc(sig)
    q = W["n"] * h  # b_hn = 0
    n = (U["n"] * x + sp.Matrix([r[i] * q[i] for i in range(m)])).applyfunc(sp.tanh)  # b_in = 0
    f = sp.Matrix([(1 - z[i]) * (n[i] - h[i]) for i in range(m)])
    at0 = {s: 0 for s in list(h) + list(x)}
    J = f.jacobian(h).subs(at0)
    Bm = f.jacobian(x).subs(at0)
    r0 = (b["ir"] + b["hr"]).applyfunc(sig)
    z0 = (b["iz"] + b["hz"]).applyfunc(sig)
    one_minus_z = sp.diag(*[1 - z0[i] for i in range(m)])
    J_closed = one_minus_z * (sp.diag(*list(r0)) * W["n"] - sp.eye(m))
    B_closed = one_minus_z * U["n"]
    return (J - J_closed).applyfunc(sp.simplify), (Bm - B_closed).applyfunc(sp.simplify), f.subs(at0)


def gru_linearisation_closed_form(cell):
    """``(J, B)`` of App. J's formula for a CTGRU with zero n-gate biases (numpy)."""
    m = cell.hidden
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    r0 = sig(cell.bias_ih[:m] + cell.bias_hh[:m])
    z0 = sig(cell.bias_ih[m:2 * m] + cell.bias_hh[m:2 * m])
    J = (1 - z0)[:, None] * (r0[:, None] * cell.weight_hh[2 * m:] - np.eye(m))
    B = (1 - z0)[:, None] * cell.weight_ih[2 * m:]
    return J, B


def _zero_rest_cell(seed: int, m: int, d: int):
    from dynmem.gated import CTGRU

    cell = CTGRU.random(m, d, rng=seed)
    bih, bhh = cell.bias_ih.copy(), cell.bias_hh.copy()
    bih[2 * m:] = 0.0
    bhh[2 * m:] = 0.0
    return cell.replace(bias_ih=bih, bias_hh=bhh)


def small_amplitude_memory_error(cell, t, amplitudes=(1e-2, 1e-3)):
    """Relative sup-distance of the CTGRU's Heaviside memory at each small amplitude from its linearisation's memory.

    The linear model is App. J's ``(J, B)`` read out by ``c``; the nonlinear
    memory comes from :func:`dynmem.memory.memory_function` on the exact
    vector field (``rtol = 1e-12``).  The field is smooth, so the error is
    O(amplitude): returns ``(errors, slope)`` with ``slope`` the log-log slope
    of error against amplitude.
    """
    from dynmem.memory import memory_function
    from dynmem.models import LinearRNN

    J, B = gru_linearisation_closed_form(cell)
    lin = LinearRNN(J, B, cell.c)
    ref = memory_function(lin, t).values
    errs = []
    for a in amplitudes:
        M = memory_function(cell, t, amplitudes=[a], rtol=1e-12, atol=1e-15).values
        errs.append(float(np.max(np.abs(M - ref)) / np.max(ref)))
    errs = np.array(errs)
    slope = float(np.polyfit(np.log(amplitudes), np.log(errs), 1)[0])
    return errs, slope


def _gru_linearisation() -> Outcome:
    import sympy as sp

    rJ, rB, f0 = gru_linearisation_symbolic(2, 1)
    sym_ok = rJ == sp.zeros(2, 2) and rB == sp.zeros(2, 1) and f0 == sp.zeros(2, 1)
    worst_formula, worst_small, slopes = 0.0, 0.0, []
    t = np.linspace(0.0, 12.0, 25)
    for seed, m, d in ((0, 3, 1), (1, 4, 2), (2, 6, 1)):
        cell = _zero_rest_cell(seed, m, d)
        J, B = gru_linearisation_closed_form(cell)
        lin = cell.linearize(np.zeros(m))
        worst_formula = max(worst_formula, float(np.max(np.abs(lin.W - J))), float(np.max(np.abs(lin.U - B))))
        errs, slope = small_amplitude_memory_error(cell, t)
        worst_small = max(worst_small, float(errs[-1]))
        slopes.append(slope)
    ok = sym_ok and worst_formula < 1e-13 and worst_small < 1e-2 and all(0.8 <= s <= 1.2 for s in slopes)
    numbers = dict(sympy_residual_zero=bool(sym_ok), max_abs_formula_vs_CTGRU_linearize=worst_formula,
                   max_rel_memory_error_at_amplitude_1e_3=worst_small, error_vs_amplitude_slopes=slopes)
    return decide(ok, numbers,
                  "sympy's Jacobian of (1 - z)(n - h) at (0, 0) equals diag(1 - z0)(diag(r0) W_hn - I), "
                  "diag(1 - z0) W_in; CTGRU.linearize agrees to rounding; the nonlinear Heaviside memory at amplitude "
                  f"1e-3 is within {worst_small:.2g} of the linearisation's and the gap shrinks like amplitude^1 "
                  f"(slopes {', '.join(f'{s:.3f}' for s in slopes)})",
                  f"sympy residual zero: {sym_ok}; formula gap {worst_formula:.3g}; small-amplitude gap "
                  f"{worst_small:.3g}; slopes {slopes}")


# ---------------------------------------------------------------------------
# the SSM's memory in closed form


def ssm_simulated_memory(ssm, t, input: str = "heaviside"):
    """The memory of a diagonal SSM by solve_ivp (DOP853, rtol 1e-13) on its real form, sup over the 2^d input vertices.

    Heaviside: ``|dy/dt| = |Cr^T (A h(t) + Br x)|`` along ``dh/dt = A h + Br x``,
    ``h(0) = 0``; impulse: ``|y(t)| = |Cr^T h(t)|`` along ``dh/dt = A h``,
    ``h(0) = Br x``.  For a linear model the sup over ``|x|_inf <= 1`` of a
    linear function of x sits at a vertex.
    """
    A, Br, Cr, _ = ssm.as_real()
    n = A.shape[0]
    best = np.zeros(t.size)
    for signs in itertools.product((-1.0, 1.0), repeat=ssm.inputs):
        x = np.array(signs)
        u = Br @ x
        if input == "heaviside":
            rhs, h0 = (lambda _s, h: A @ h + u), np.zeros(n)
        else:
            rhs, h0 = (lambda _s, h: A @ h), u
        sol = scipy.integrate.solve_ivp(rhs, (0.0, float(t[-1])), h0, t_eval=t, method="DOP853", rtol=1e-13,
                                        atol=1e-16)
        H = sol.y
        v = np.abs(Cr @ (A @ H + u[:, None])) if input == "heaviside" else np.abs(Cr @ H)
        best = np.maximum(best, v)
    return best


def _ssm_memory() -> Outcome:
    from dynmem.memory import memory_function
    from dynmem.ssm import DiagonalSSM

    worst, cases = 0.0, 0
    t = np.linspace(0.05, 10.0, 40)
    for seed, m, d in ((0, 3, 1), (1, 5, 2), (2, 4, 3)):
        ssm = DiagonalSSM.random(m, d, feedthrough=True, rng=seed)
        closed = np.abs(ssm.kernel(t)).sum(axis=1)
        for inp in ("heaviside", "impulse"):
            sim = ssm_simulated_memory(ssm, t, inp)
            via = memory_function(ssm, t, input=inp).values  # the ClosedFormMemory path
            worst = max(worst, float(np.max(np.abs(sim - closed)) / np.max(closed)),
                        float(np.max(np.abs(via - closed)) / np.max(closed)))
            cases += 1
    return decide(worst <= 1e-8, dict(cases=cases, max_rel_error=worst),
                  "for t > 0 the Heaviside and impulse memories simulated by solve_ivp on the real form (sup over "
                  "the input vertices) equal |Re(C^T diag(e^(Lambda t)) B)|_1 to "
                  f"{worst:.2g} relative (feed-through D present: it does not enter for t > 0)",
                  f"largest relative gap {worst:.3g} > 1e-8")


CLAIMS = [
    Claim("gated_and_ssm.gru_linearisation_at_zero",
          r"f(h,x) = (1-z)\odot(n-h):\ \partial_h f(0,0) = \mathrm{diag}(1-z_0)\,(\mathrm{diag}(r_0) W_{hn} - I),\ "
          r"\partial_x f(0,0) = \mathrm{diag}(1-z_0)\, W_{in},\ z_0 = \sigma(b_{iz}+b_{hz}),\ r_0 = \sigma(b_{ir}+b_{hr})",
          "continuous-time GRU with zero n-gate biases (b_in = b_hn = 0, so h* = 0 is a rest state); small-amplitude "
          "memory: Heaviside probes of amplitude 1e-2, 1e-3",
          "[WLL] App. J; docs/theory.md sec. 1", "symbolic+numeric", "verified", _gru_linearisation, MODULE),
    Claim("gated_and_ssm.ssm_closed_form_memory",
          r"M_H(t) = M_I(t) = \big\|\mathrm{Re}\big(C^\top \mathrm{diag}(e^{\Lambda t}) B\big)\big\|_1,\ t > 0",
          "diagonal SSM dh/dt = Lambda h + B x, y = Re(C^T h) + D^T x, Re Lambda < 0, sup over |x|_inf <= 1",
          "[SSM]; [WLL] Def. 3.1; docs/theory.md sec. 2", "numeric", "verified", _ssm_memory, MODULE),
]
