"""Identities of the dynamical-systems analyses (docs/theory.md section 9; [BEN], [JAE], [BGO]).

Each check takes the formula under test as a parameter (default: the true one), so that a planted wrong
formula is refuted (tests/test_theory.py): log singular values for Lyapunov exponents, the state dimension
for the memory capacity, the squared norm for H2.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg

from ._claim import Claim, Outcome, decide, property_check

MODULE = "dynamical_systems"


def _spaced_map(seed: int, n: int):
    """A non-normal linear map with real eigenvalues of distinct moduli in [0.1, 0.95] and a random sign."""
    rng = np.random.default_rng(seed)
    mods = np.sort(rng.choice(np.arange(2, 20), size=n, replace=False) * 0.05)[::-1]
    eigs = mods * rng.choice([-1.0, 1.0], size=n)
    S = np.eye(n) + 0.4 * rng.standard_normal((n, n))  # kappa(S) moderate: non-normal, well conditioned
    return S @ np.diag(eigs) @ np.linalg.inv(S), eigs


def linear_lyapunov_check(predicted=None, *, tol: float = 1e-6, max_examples: int = 6) -> Outcome:
    """Lyapunov exponents of linear maps ``s -> W s`` against ``predicted(W)`` (default ``log |eig W|``, descending).

    The QR (Benettin) estimate of :func:`dynmem.lyapunov_exponents.lyapunov_spectrum` along 1500 steps of
    random input (after 500 steps aligning the frame) must agree to ``tol``.
    """
    import dynmem as dm

    if predicted is None:
        def predicted(W):
            return np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]

    # A seeded loop, not hypothesis: each example costs a QR run, and shrinking a refutation would repeat it
    # hundreds of times.
    worst, bad = 0.0, None
    for i in range(max_examples):
        n = 2 + i % 5
        W, _ = _spaced_map(1000 + i, n)
        model = dm.DiscreteRNN(W, np.ones((n, 1)), np.zeros(n), np.ones(n), activation="identity")
        X = np.random.default_rng(2000 + i).standard_normal((2000, 1))
        res = dm.lyapunov_spectrum(model, X=X, transient=500, rng=0)
        err = float(np.max(np.abs(res.exponents - np.asarray(predicted(W), dtype=float))))
        worst = max(worst, err)
        if err > tol and bad is None:
            bad = (1000 + i, n)
    return decide(bad is None, dict(maps=max_examples, max_abs_error=worst),
                  f"the QR estimate of the spectrum of {max_examples} random non-normal linear maps equals "
                  f"log|eig W| to {tol:g}",
                  f"counterexample (seed, n) = {bad!r}: max error {worst:.3g}")


def _deficient_pair(seed: int, n: int, r: int):
    """``(A, b)`` with n distinct real stable modes of which b reaches exactly r (controllability rank r)."""
    rng = np.random.default_rng(seed)
    lam = np.sort(rng.choice(np.arange(1, 19), size=n, replace=False) * 0.05) * rng.choice([-1.0, 1.0], size=n)
    S = np.linalg.qr(rng.standard_normal((n, n)))[0] @ np.diag(rng.uniform(0.5, 2.0, n))
    w = np.zeros(n)
    w[:r] = rng.uniform(0.5, 1.5, r) * rng.choice([-1.0, 1.0], r)
    return S @ np.diag(lam) @ np.linalg.inv(S), S @ w


def capacity_rank_check(rank=None, *, max_examples: int = 12) -> Outcome:
    """Exact linear memory capacity against ``rank(A, b)`` (default: the rank of ``[b, A b, ..., A^{n-1} b]``).

    The pairs have a known controllability rank r < n (b reaches r of n modes), so a formula that
    ignores the input (the state dimension n) or the dynamics (rank b = 1) is refuted.
    """
    import dynmem as dm
    from hypothesis import strategies as st

    if rank is None:
        def rank(A, b):
            K = np.column_stack([np.linalg.matrix_power(A, k) @ b for k in range(A.shape[0])])
            return int(np.linalg.matrix_rank(K))

    def pred(args):
        seed, n, r = args
        r = min(r, n)
        A, b = _deficient_pair(seed, n, r)
        total = dm.linear_memory_capacity((A, b)).total
        want = rank(A, b)
        return total == want == r, abs(total - want)

    ok, n, bad, worst = property_check(st.tuples(st.integers(0, 2**31), st.integers(2, 7), st.integers(1, 6)), pred,
                                       max_examples=max_examples)
    return decide(ok, dict(pairs=n, max_rank_difference=worst),
                  f"the exact memory capacity equals the Kalman controllability rank on {n} pairs of known rank",
                  f"counterexample (seed, n, r) = {bad!r}")


def h2_quadrature_check(h2=None, *, rtol: float = 1e-8, max_examples: int = 6) -> Outcome:
    """``h2(model)`` (default :func:`dynmem.norms.h2_norm`) against ``sqrt(int_0^inf |c^T e^{W t} U|^2 dt)``.

    The integral is taken by :func:`scipy.integrate.quad` on ``[0, 60 / margin]`` (the tail beyond is
    below ``e^{-120}`` of the integrand's scale) with ``scipy.linalg.expm`` at each node.
    """
    import dynmem as dm
    from dynmem.strategies import linear_rnns

    if h2 is None:
        h2 = dm.h2_norm

    def pred(model):
        W, U, c = np.asarray(model.W), np.asarray(model.U), np.asarray(model.c)
        margin = -dm.spectral_abscissa(W)

        def f(t):
            rho = c @ scipy.linalg.expm(W * t) @ U
            return float(rho @ rho)

        val, _ = scipy.integrate.quad(f, 0.0, 60.0 / margin, limit=400, epsabs=0.0, epsrel=1e-12)
        got = float(h2(model))
        err = abs(got - np.sqrt(val)) / np.sqrt(val)
        return err <= rtol, err

    ok, n, bad, worst = property_check(linear_rnns(max_hidden=4, max_inputs=2, min_margin=0.3), pred,
                                       max_examples=max_examples)
    return decide(ok, dict(models=n, max_rel_error=worst),
                  f"the Gramian H2 norm equals the quadrature of |rho|^2 on {n} random linear RNNs (rel. {rtol:g})",
                  f"counterexample: {bad!r} (rel. error {worst:.3g})")


CLAIMS = [
    Claim("dynamical_systems.linear_lyapunov_exponents",
          r"\lambda_i = \log |\mu_i(W)| \quad (s_{k+1} = W s_k + U x_k)",
          "linear map, distinct |eigenvalues|, any input sequence", "[BEN]; docs/theory.md sec. 9", "numeric",
          "verified", linear_lyapunov_check, MODULE),
    Claim("dynamical_systems.capacity_equals_controllability_rank",
          r"MC = \sum_k MC_k = \operatorname{rank}[b, Ab, \dots, A^{n-1} b]",
          "linear recurrence, Schur-stable A, scalar i.i.d. input", "[JAE]; [BGO]; docs/theory.md sec. 9", "numeric",
          "verified", capacity_rank_check, MODULE),
    Claim("dynamical_systems.h2_is_integral_of_rho_squared",
          r"\|G\|_{H_2}^2 = c^\top P c = \int_0^\infty \|c^\top e^{Wt} U\|^2 dt",
          "linear RNN, Hurwitz W", "docs/theory.md sec. 9", "numeric", "verified", h2_quadrature_check, MODULE),
]
