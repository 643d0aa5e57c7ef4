"""Approximation by exponential sums ([LHEL]; docs/theory.md section 6)."""

from __future__ import annotations

import math

import numpy as np
import scipy.integrate
import scipy.special

from ._claim import Claim, Outcome, decide, with_symbolic

MODULE = "approximation_rates"


def _muntz_distance() -> Outcome:
    rng = np.random.default_rng(0)
    worst = 0.0
    cases = 0
    for n in (1, 2, 3, 4):
        for _ in range(5):
            w = np.sort(rng.uniform(0.2, 3.0, n))
            v = rng.uniform(0.2, 3.0)
            # Least squares in L2(0, inf): normal equations with Gram G_ij = 1/(w_i + w_j), rhs 1/(w_i + v).
            G = 1.0 / (w[:, None] + w[None, :])
            r = 1.0 / (w + v)
            a = np.linalg.solve(G, r)
            dist = 1.0 / (2 * v) - r @ a
            closed = (1.0 / (2 * v)) * np.prod(((v - w) / (v + w)) ** 2)
            worst = max(worst, abs(dist - closed) / max(closed, 1e-300))
            cases += 1
    # The Gram solve loses about cond(G) * eps; cond(G) < 1e6 for n <= 4 on these ranges.
    return with_symbolic(decide(worst < 1e-7, dict(cases=cases, max_rel_error=worst),
                                "the normal-equation residual equals (1/(2v)) prod ((v - w_i)/(v + w_i))^2",
                                f"relative error {worst:.3g}"), ("muntz_distance", 1), ("muntz_distance", 2))


def _power_law_mixture() -> Outcome:
    worst = 0.0
    for p in (0.5, 1.1, 1.5, 3.0):
        for t in (0.0, 0.5, 3.0, 20.0):
            # The s^{p-1} singularity at 0 goes into quad's algebraic weight on [0, 1].
            head, _ = scipy.integrate.quad(lambda s: np.exp(-s * (1 + t)), 0, 1, weight="alg", wvar=(p - 1, 0),
                                           epsabs=0, epsrel=1e-12)
            tail, _ = scipy.integrate.quad(lambda s: s ** (p - 1) * np.exp(-s * (1 + t)), 1, np.inf,
                                           epsabs=0, epsrel=1e-12, limit=200)
            val = (head + tail) / math.gamma(p)
            worst = max(worst, abs(val - (1 + t) ** (-p)) / (1 + t) ** (-p))
    return with_symbolic(decide(worst < 1e-9, dict(cases=16, max_rel_error=worst),
                                "quadrature of (1/Gamma(p)) int s^{p-1} e^{-s(1+t)} ds equals (1 + t)^{-p}",
                                f"relative error {worst:.3g}"), "power_law_mixture")


def _cauchy_determinant() -> Outcome:
    rng = np.random.default_rng(1)
    worst = 0.0
    for n in (2, 3, 5):
        for _ in range(5):
            w, v = rng.uniform(0.1, 2, n), rng.uniform(0.1, 2, n)
            G = 1.0 / (w[:, None] + v[None, :])
            num = np.prod([(w[j] - w[i]) * (v[j] - v[i]) for i in range(n) for j in range(i + 1, n)])
            closed = num / np.prod(w[:, None] + v[None, :])
            # np.linalg.det is backward stable: relative error ~ n eps cond(G); allow 100x that.
            allowed = 100 * n * np.finfo(float).eps * np.linalg.cond(G)
            worst = max(worst, abs(np.linalg.det(G) - closed) / abs(closed) / allowed)
    return with_symbolic(decide(worst <= 1.0, dict(cases=15, max_error_over_allowed=worst),
                                "det[1/(w_i + v_j)] = prod_{i<j}(w_j - w_i)(v_j - v_i) / prod_{i,j}(w_i + v_j)",
                                f"relative error {worst:.3g}"), ("cauchy_determinant", 2), ("cauchy_determinant", 3))


def _plateau_kernel() -> Outcome:
    worst = 0.0
    for w in (0.1, 1.0, 3.0):
        for T in (0.0, 2.0, 5.0):
            val, _ = scipy.integrate.quad(lambda t: np.exp(-w * t - (t - T) ** 2), 0, np.inf, epsabs=0, epsrel=1e-12)
            closed = 0.5 * np.sqrt(np.pi) * np.exp(w * w / 4 - w * T) * (1 + scipy.special.erf(T - w / 2))
            worst = max(worst, abs(val - closed) / closed)
    return with_symbolic(decide(worst < 1e-9, dict(cases=9, max_rel_error=worst),
                                "int_0^inf e^{-wt} e^{-(t-T)^2} dt = (sqrt(pi)/2) e^{w^2/4 - wT}(1 + erf(T - w/2))",
                                f"relative error {worst:.3g}"), "plateau_kernel")


def constrained_lower_bound_check(bound_factor: float = 1.0, *, n_rates: int = 30) -> Outcome:
    """No constrained exponential sum beats the bound, and a near-optimal one comes within 16% of it.

    The near-optimal constrained fit is the minimax (L-infinity) fit over sums with ``n_rates`` exponents
    geometrically spaced in [mu, 200 mu] and sum |a_i| <= A, a linear programme (HiGHS) on 4000 times; its
    error is then measured on a 10x finer grid out to t = 1e5.  ``bound_factor`` scales the stated bound: a
    value > 1.16 is a planted wrong statement (a bound too large) that the fit beats.
    """
    import scipy.optimize

    p, mu, A = 1.1, 0.5, 2.0
    t = np.concatenate([np.linspace(0, 10, 2001), np.geomspace(10, 1e4, 2000)[1:]])
    bound = bound_factor * float(np.max((1 + t) ** -p - A * np.exp(-mu * t)))
    f = (1 + t) ** -p
    lam = mu * np.geomspace(1.0, 200.0, n_rates)
    E = np.exp(-np.outer(t, lam))
    one, K = np.ones((t.size, 1)), n_rates
    # variables a+ >= 0, a- >= 0, e: minimise e subject to |f - E (a+ - a-)| <= e, sum(a+ + a-) <= A
    A_ub = np.block([[E, -E, -one], [-E, E, -one], [np.ones((1, 2 * K)), np.zeros((1, 1))]])
    res = scipy.optimize.linprog(np.r_[np.zeros(2 * K), 1.0], A_ub=A_ub, b_ub=np.r_[f, -f, A], bounds=(0, None),
                                 method="highs")
    if res.status != 0:
        return Outcome("inconclusive", dict(bound=bound), f"linprog failed: {res.message}")
    a = res.x[:K] - res.x[K:2 * K]
    tf = np.concatenate([np.linspace(0, 10, 20001), np.geomspace(10, 1e5, 20000)])
    err = float(np.max(np.abs((1 + tf) ** -p - np.exp(-np.outer(tf, lam)) @ a)))
    l1 = float(np.sum(np.abs(a)))
    # measured: err / bound = 1.156 (30 rates; 1.155 with 60); the fit's sum |a_i| = 2.0 = A
    ok = err >= bound * (1 - 1e-9) and l1 <= A * (1 + 1e-9)
    return decide(ok, dict(bound=bound, near_optimal_error=err, ratio=err / bound, sum_abs_a=l1, n_rates=K),
                  f"the minimax constrained fit over {K} rates in [mu, 200 mu] has sup error {err:.4g} >= the bound "
                  f"sup_t[(1+t)^-p - A e^(-mu t)] = {bound:.4g} (ratio {err / bound:.3f}: the bound is within 16% of "
                  f"the best constrained sum found)",
                  f"a constrained sum (sum |a_i| = {l1:.4g}) has sup error {err:.4g} < the bound {bound:.4g}")


def _constrained_lower_bound() -> Outcome:
    return constrained_lower_bound_check()


CLAIMS = [
    Claim("approximation_rates.muntz_distance",
          r"\min_a \|e^{-vt} - \sum_i a_i e^{-w_i t}\|_2^2 = \frac{1}{2v}\prod_i \left(\frac{v - w_i}{v + w_i}\right)^2",
          "v, w_i > 0 distinct", "docs/theory.md sec. 6 (Muntz)", "symbolic+numeric", "verified", _muntz_distance, MODULE),
    Claim("approximation_rates.power_law_mixture",
          r"(1+t)^{-p} = \frac{1}{\Gamma(p)}\int_0^\infty s^{p-1} e^{-s} e^{-st}\,ds",
          "p > 0, t >= 0", "docs/theory.md sec. 6", "symbolic+numeric", "verified", _power_law_mixture, MODULE),
    Claim("approximation_rates.cauchy_determinant",
          r"\det\left[\frac{1}{w_i + v_j}\right] = \frac{\prod_{i<j}(w_j - w_i)(v_j - v_i)}{\prod_{i,j}(w_i + v_j)}",
          "w_i + v_j != 0", "docs/theory.md sec. 6 (Gram matrix)", "symbolic+numeric", "verified", _cauchy_determinant, MODULE),
    Claim("approximation_rates.plateau_kernel",
          r"\int_0^\infty e^{-wt} e^{-(t-T)^2} dt = \tfrac{\sqrt\pi}{2} e^{w^2/4 - wT}(1 + \mathrm{erf}(T - w/2))",
          "real w, T", "docs/theory.md sec. 6", "symbolic+numeric", "verified", _plateau_kernel, MODULE),
    Claim("approximation_rates.constrained_lower_bound",
          r"\mathrm{Re}\,\lambda_i \le -\mu,\ \sum|a_i| \le A \Rightarrow \sup_t |(1+t)^{-p} - \sum a_i e^{\lambda_i t}| "
          r"\ge \sup_t [(1+t)^{-p} - A e^{-\mu t}]",
          "p = 1.1, mu = 0.5, A = 2; real negative exponents; tightness by a minimax LP fit", "docs/theory.md sec. 6", "numeric", "verified",
          _constrained_lower_bound, MODULE),
]
