"""Approximation by exponential sums ([LHEL]; THEORY.md section 6)."""

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


def _constrained_lower_bound() -> Outcome:
    """Random exponential sums within the constraints never beat the bound."""
    rng = np.random.default_rng(2)
    t = np.concatenate([np.linspace(0, 10, 2001), np.geomspace(10, 1e4, 2000)])
    p, mu, A = 1.1, 0.5, 2.0
    bound = float(np.max((1 + t) ** -p - A * np.exp(-mu * t)))
    worst_gap = np.inf
    for _ in range(300):
        k = rng.integers(1, 8)
        lam = mu + rng.exponential(1.0, k)  # Re lambda_i <= -mu
        a = rng.uniform(-1, 1, k)
        a *= rng.uniform(0, A) / np.sum(np.abs(a))  # sum |a_i| <= A
        err = float(np.max(np.abs((1 + t) ** -p - np.exp(-np.outer(t, lam)) @ a)))
        worst_gap = min(worst_gap, err - bound)
    return decide(worst_gap >= -1e-12, dict(bound=bound, sums=300, smallest_error_minus_bound=worst_gap),
                  f"300 random constrained sums all have sup error >= sup_t[(1+t)^-p - A e^(-mu t)] = {bound:.4g}",
                  f"a sum beat the bound by {-worst_gap:.3g}")


CLAIMS = [
    Claim("approximation_rates.muntz_distance",
          r"\min_a \|e^{-vt} - \sum_i a_i e^{-w_i t}\|_2^2 = \frac{1}{2v}\prod_i \left(\frac{v - w_i}{v + w_i}\right)^2",
          "v, w_i > 0 distinct", "THEORY.md sec. 6 (Muntz)", "symbolic+numeric", "verified", _muntz_distance, MODULE),
    Claim("approximation_rates.power_law_mixture",
          r"(1+t)^{-p} = \frac{1}{\Gamma(p)}\int_0^\infty s^{p-1} e^{-s} e^{-st}\,ds",
          "p > 0, t >= 0", "THEORY.md sec. 6", "symbolic+numeric", "verified", _power_law_mixture, MODULE),
    Claim("approximation_rates.cauchy_determinant",
          r"\det\left[\frac{1}{w_i + v_j}\right] = \frac{\prod_{i<j}(w_j - w_i)(v_j - v_i)}{\prod_{i,j}(w_i + v_j)}",
          "w_i + v_j != 0", "THEORY.md sec. 6 (Gram matrix)", "symbolic+numeric", "verified", _cauchy_determinant, MODULE),
    Claim("approximation_rates.plateau_kernel",
          r"\int_0^\infty e^{-wt} e^{-(t-T)^2} dt = \tfrac{\sqrt\pi}{2} e^{w^2/4 - wT}(1 + \mathrm{erf}(T - w/2))",
          "real w, T", "THEORY.md sec. 6", "symbolic+numeric", "verified", _plateau_kernel, MODULE),
    Claim("approximation_rates.constrained_lower_bound",
          r"\mathrm{Re}\,\lambda_i \le -\mu,\ \sum|a_i| \le A \Rightarrow \sup_t |(1+t)^{-p} - \sum a_i e^{\lambda_i t}| "
          r"\ge \sup_t [(1+t)^{-p} - A e^{-\mu t}]",
          "p = 1.1, mu = 0.5, A = 2; real negative exponents", "THEORY.md sec. 6", "numeric", "verified",
          _constrained_lower_bound, MODULE),
]
