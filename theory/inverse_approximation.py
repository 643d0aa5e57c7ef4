"""Inverse approximation ([WLL] Thm 3.9 and its lemmas; docs/theory.md sections 2 and 3).

Includes the two refutations the project keeps on purpose: Lemma A.8's
Lyapunov bound for non-normal W, and "Hurwitz W implies decaying memory" for
the multistable tanh system.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._claim import Claim, Outcome, decide, property_check, with_symbolic

MODULE = "inverse_approximation"


def _lemma_a8_normal() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import stable_matrices

    def pred(W):
        beta = -dm.spectral_abscissa(W)
        P = dm.lyapunov(W)
        ratio = float(np.linalg.norm(P, 2) * 2 * beta)
        return ratio <= 1 + 1e-9, ratio

    ok, n, bad, worst = property_check(stable_matrices(max_size=6, normal=True), pred, max_examples=30)
    return with_symbolic(decide(ok, dict(matrices=n, max_ratio_normP_over_bound=worst),
                                "for symmetric Hurwitz W, |P|_2 * 2 beta <= 1 (equality: P = -(2W)^{-1} for symmetric W)",
                                f"counterexample W = {bad!r}"), "lyapunov_normal", "lyapunov_2x2")


def _lemma_a8_nonnormal() -> Outcome:
    import dynmem as dm

    W = np.array([[-1.0, 20.0], [0.0, -1.0]])
    beta = -dm.spectral_abscissa(W)
    P = dm.lyapunov(W)
    normP = float(np.linalg.norm(P, 2))
    bound = 1.0 / (2.0 * beta)
    residual = float(np.max(np.abs(W.T @ P + P @ W + np.eye(2))))
    holds = normP <= bound * (1 + 1e-9)
    from dynmem import symbolic as sym

    exact = sym.lyapunov_counterexample()
    ok_sym = bool(sym.check_identity(exact.identity_residual))
    normP_exact = float(exact.parts["norm2"].evalf())
    return Outcome("verified" if holds else "refuted",
                   dict(normP=normP, normP_sympy=normP_exact, bound=bound, lyapunov_residual=residual,
                        symbolic=f"sympy P solves the Lyapunov equation exactly: {ok_sym}"),
                   f"W = [[-1, 20], [0, -1]]: |P|_2 = {normP:.4g} > 1/(2 beta) = {bound:.3g} "
                   "(P solves W^T P + P W = -I); the bound needs W normal")


def _multistable_tanh() -> Outcome:
    import dynmem as dm

    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    alpha = dm.spectral_abscissa(W)
    model = dm.CTRNN(W, np.eye(2), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    t = np.linspace(0, 60, 600)
    big = dm.memory_function(model, t, amplitudes=[5.0])
    fit = dm.fit_decay(t, big.values)
    # Where do trajectories of dv/dt = (1 - v^2)(W v) from a grid end up?
    from dynmem.experiments.fig11 import basin_ends

    ends = basin_ends(W, np.linspace(-0.95, 0.95, 9))
    to_zero = int(np.sum(np.max(np.abs(ends), axis=1) < 1e-3))
    to_corner = int(np.sum(np.min(np.abs(ends), axis=1) > 0.999))
    decays = alpha < 0 and fit.kind not in ("non-decaying", "growing") and to_corner == 0
    return Outcome("verified" if decays else "refuted",
                   dict(alpha=alpha, fit=fit.kind, memory_at_t60=float(big.values[-1]), starts_to_zero=to_zero,
                        starts_to_corners=to_corner),
                   f"tanh, W = [[1, 1], [-4, -3]] is Hurwitz (alpha = {alpha:.3g}) but multistable: of 81 starts in "
                   f"(-0.95, 0.95)^2, {to_zero} go to 0 and {to_corner} to the corners; the memory at amplitude 5 is "
                   f"'{fit.kind}' (M(60) = {big.values[-1]:.3g})")


def _lyapunov_min_eig(M: np.ndarray) -> tuple[float, float]:
    """Smallest eigenvalue of the solution P of M^T P + P M = -I, and the equation's relative residual.

    Lyapunov's theorem: M is Hurwitz iff this P is positive definite; when M has an eigenvalue in the
    open right half-plane (and no two eigenvalues sum to 0) P exists and is indefinite.  A test of
    Hurwitz-ness that never reads the eigenvalues of M.
    """
    n = M.shape[0]
    P = scipy.linalg.solve_continuous_lyapunov(M.T, -np.eye(n))
    resid = float(np.max(np.abs(M.T @ P + P @ M + np.eye(n))) / (1 + 2 * np.linalg.norm(M, 2) * np.linalg.norm(P, 2)))
    return float(np.linalg.eigvalsh(0.5 * (P + P.T))[0]), resid


def spectral_margin_check(margin=None, *, rel: float = 1e-6, max_examples: int = 30) -> Outcome:
    """Check ``W + beta I`` Hurwitz exactly for ``beta < margin(W)`` (default ``-alpha(W)``) by Lyapunov's equation.

    At ``beta = margin (1 - rel)`` the Lyapunov solution must be positive definite, at ``margin (1 + rel)``
    indefinite.  ``margin`` is a parameter so that a planted wrong statement (the log-norm, a margin 1% off)
    can be shown to fail.
    """
    import dynmem as dm
    from dynmem.strategies import stable_matrices

    if margin is None:
        def margin(W):
            return -dm.spectral_abscissa(W)

    seen = {"resid": 0.0}

    def pred(W):
        b = float(margin(W))
        eye = np.eye(W.shape[0])
        below, r1 = _lyapunov_min_eig(W + b * (1 - rel) * eye)
        above, r2 = _lyapunov_min_eig(W + b * (1 + rel) * eye)
        seen["resid"] = max(seen["resid"], r1, r2)
        # residuals measured <= 1e-15 relative; 1e-10 flags a solve that cannot be trusted
        return below > 0 and above < 0 and max(r1, r2) < 1e-10, b

    ok, n, bad, _ = property_check(stable_matrices(max_size=6), pred, max_examples=max_examples)
    return decide(ok, dict(matrices=n, max_lyapunov_residual=seen["resid"]),
                  f"the Lyapunov solution of (W + beta I)^T P + P (W + beta I) = -I is positive definite at "
                  f"beta = -alpha(W) (1 - {rel:g}) and indefinite at -alpha(W) (1 + {rel:g}) on {n} random Hurwitz W",
                  f"counterexample W = {bad!r}")


def _shift_margin() -> Outcome:
    return spectral_margin_check()


def _transient_bounds() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import stable_matrices

    t = np.linspace(0, 10, 41)

    def pred(W):
        g = dm.transient_growth(W, t)
        mu = dm.log_norm(W)
        alpha = dm.spectral_abscissa(W)
        kappa = dm.eigenvector_condition(W)
        upper_mu = np.exp(mu * t)
        lower = np.exp(alpha * t)
        ok = np.all(g <= upper_mu * (1 + 1e-10)) and np.all(g >= lower * (1 - 1e-10))
        if np.isfinite(kappa):
            ok = ok and np.all(g <= kappa * lower * (1 + 1e-8))
        return bool(ok), float(np.max(g / upper_mu))

    ok, n, bad, worst = property_check(stable_matrices(max_size=5), pred, max_examples=30)
    return decide(ok, dict(matrices=n, max_ratio_to_lognorm_bound=worst),
                  "e^{alpha t} <= |e^{Wt}|_2 <= min(e^{mu_2 t}, kappa(V) e^{alpha t}) on random Hurwitz W",
                  f"counterexample W = {bad!r}")


def _normal_growth_equals_abscissa() -> Outcome:
    import dynmem as dm
    from dynmem.strategies import stable_matrices

    t = np.linspace(0, 10, 21)

    def pred(W):
        err = float(np.max(np.abs(dm.transient_growth(W, t) / np.exp(dm.spectral_abscissa(W) * t) - 1)))
        return err < 1e-9, err

    ok, n, bad, worst = property_check(stable_matrices(max_size=5, normal=True), pred, max_examples=20)
    return decide(ok, dict(matrices=n, max_rel_error=worst),
                  "|e^{Wt}|_2 = e^{alpha t} for symmetric W", f"counterexample W = {bad!r}")


CLAIMS = [
    Claim("inverse_approximation.spectral_margin",
          r"W + \beta I \text{ Hurwitz} \iff \beta < -\alpha(W)",
          "real square W", "[WLL] Thm 3.9 proof; docs/theory.md sec. 3", "numeric", "verified", _shift_margin, MODULE),
    Claim("inverse_approximation.lemma_A8_normal",
          r"W^\top P + P W = -I,\ \alpha(W) \le -\beta \Rightarrow \|P\|_2 \le \tfrac{1}{2\beta}",
          "W normal (here symmetric) and Hurwitz", "[WLL] Lemma A.8", "symbolic+numeric", "verified", _lemma_a8_normal, MODULE),
    Claim("inverse_approximation.lemma_A8_nonnormal",
          r"\|P\|_2 \le \tfrac{1}{2\beta} \text{ for every Hurwitz } W",
          "W = [[-1, 20], [0, -1]] (non-normal)", "[WLL] Lemma A.8 as stated; docs/theory.md sec. 3", "symbolic+numeric",
          "refuted", _lemma_a8_nonnormal, MODULE),
    Claim("inverse_approximation.hurwitz_implies_decaying_memory",
          r"\alpha(W) < 0 \Rightarrow M(H)(t) \to 0",
          "tanh CTRNN, W = [[1, 1], [-4, -3]], amplitude 5", "docs/theory.md sec. 2 counterexample; [WLL] Fig. 11",
          "numeric", "refuted", _multistable_tanh, MODULE),
    Claim("inverse_approximation.transient_growth_bounds",
          r"e^{\alpha t} \le \|e^{Wt}\|_2 \le \min(e^{\mu_2(W) t}, \kappa(V) e^{\alpha t})",
          "Hurwitz W, diagonalisable for the kappa bound", "docs/theory.md sec. 3", "numeric", "verified",
          _transient_bounds, MODULE),
    Claim("inverse_approximation.normal_growth",
          r"\|e^{Wt}\|_2 = e^{\alpha(W) t}", "W normal (symmetric)", "docs/theory.md sec. 3", "numeric", "verified",
          _normal_growth_equals_abscissa, MODULE),
]
