"""Stable reparameterisations ([WLL] eq. 16; [SSM]; docs/theory.md section 5)."""

from __future__ import annotations

import numpy as np

from ._claim import Claim, Outcome, decide, with_symbolic

MODULE = "stable_reparameterisation"


def _reparam():
    from dynmem import reparam  # built with the stability issue; inconclusive until it exists

    return reparam


def _stability_bound(name: str, expected_formula, attained: bool) -> Outcome:
    rp = _reparam()
    r = rp.get_reparam(name)
    worst = 0.0
    cases = 0
    for w in (-2.0, -0.5, 0.0, 0.7, 1.5):
        for beta in (0.05, 0.3, 1.0):
            sup = float(rp.sup_stability_functional(r, w, beta).value)
            g = float(r.stability_bound(beta))
            closed = float(expected_formula(beta))
            worst = max(worst, (sup - g) / g, abs(g - closed) / closed)
            if attained:  # the sup is the bound itself, not just below it
                worst = max(worst, abs(sup - g) / g)
            cases += 1
    return with_symbolic(decide(worst <= 1e-6, dict(cases=cases, max_excess_over_bound=worst),
                  f"{name}: the numeric sup of |f(w)| int |e^(f(w~)t) - e^(f(w)t)| dt over |w~ - w| <= beta never "
                  f"exceeds g(beta), which equals the closed form",
                  f"{name}: excess {worst:.3g}"), "stability_functional_identity", ("stability_bound", name))


def _best_gradient_scale() -> Outcome:
    rp = _reparam()
    a, b = 1.0, 0.5
    r = rp.get_reparam("best", a=a, b=b)
    w = np.linspace(-3, 3, 61)
    scale = np.asarray(r.gradient_scale(w), dtype=float)
    L = 2 * a
    err = float(np.max(np.abs(scale - L * np.abs(w))))
    others = {}
    for name in ("exp", "softplus"):
        s = np.asarray(rp.get_reparam(name).gradient_scale(w), dtype=float)
        others[name] = float(s[-1] / s[len(w) // 2 + 10])  # growth across w in [1, 3]
    return with_symbolic(decide(err < 1e-9, dict(max_abs_error=err, L=L, growth_exp=others["exp"],
                                                 growth_softplus=others["softplus"]),
                                "|f'(w)| / f(w)^2 = L |w| with L = 2a for f = -1/(a w^2 + b) (linear growth)",
                                f"gradient scale off by {err:.3g}"), "best_reparam_derivation")


def _direct_unbounded() -> Outcome:
    rp = _reparam()
    r = rp.get_reparam("direct")
    g = float(r.stability_bound(0.1))
    # For f(w) = w near w = -0.1 a perturbation of 0.1 reaches the imaginary axis: the functional blows up.
    sup = float(rp.sup_stability_functional(r, -0.1, 0.099).value)
    return decide(not np.isfinite(g) and sup > 10, dict(g=g, sup_near_axis=sup),
                  "direct f(w) = w has no uniform bound: g = inf, and the functional exceeds 10 near the axis",
                  f"g = {g}, sup = {sup}")


CLAIMS = [
    Claim("stable_reparameterisation.exp_bound",
          r"f(w) = -e^w:\ \sup_{|\tilde w - w| \le \beta} |f(w)/f(\tilde w) - 1| = e^\beta - 1",
          "scalar/diagonal reparameterisation", "[WLL] eq. 16; docs/theory.md sec. 5", "symbolic+numeric", "verified",
          lambda: _stability_bound("exp", lambda b: np.expm1(b), attained=True), MODULE),
    Claim("stable_reparameterisation.softplus_bound",
          r"f(w) = -\log(1 + e^w):\ g(\beta) \le e^\beta - 1",
          "scalar/diagonal reparameterisation", "[WLL] eq. 16; docs/theory.md sec. 5", "symbolic+numeric", "verified",
          lambda: _stability_bound("softplus", lambda b: np.expm1(b), attained=False), MODULE),
    Claim("stable_reparameterisation.best_bound",
          r"f(w) = -\frac{1}{a w^2 + b}:\ g(\beta) = \beta\sqrt{a/b} + a\beta^2/b",
          "a, b > 0 (a = 1, b = 0.5)", "[SSM]; docs/theory.md sec. 5", "symbolic+numeric", "verified",
          lambda: _stability_bound("best", lambda b: b * np.sqrt(1 / 0.5) + b * b / 0.5, attained=False), MODULE),
    Claim("stable_reparameterisation.best_gradient_scale",
          r"\frac{|f'(w)|}{f(w)^2} = L|w| \iff \frac{d}{dw}\left(-\frac{1}{f}\right) = L w",
          "f = -1/(a w^2 + b)", "[SSM]; docs/theory.md sec. 5", "symbolic+numeric", "verified", _best_gradient_scale, MODULE),
    Claim("stable_reparameterisation.direct_unbounded",
          r"f(w) = w:\ g(\beta) = \infty", "direct parameterisation", "docs/theory.md sec. 5", "numeric", "verified",
          _direct_unbounded, MODULE),
]
