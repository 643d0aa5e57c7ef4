"""Tests for dynmem.symbolic: each closed form against its numeric twin.

Tolerances: the lambdified closed forms are exact up to float64 rounding
(relative ~1e-14 for well-conditioned inputs); the twins set the tolerance:
``linear_memory`` and ``scipy.linalg.expm`` ~1e-13 relative (we use 1e-10),
``simulate`` runs at rtol 1e-11 / atol 1e-13 and is compared at 1e-8, and
``scipy.integrate.quad`` at epsrel 1e-12 is compared at 1e-9.
"""

import math
import random

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmem import symbolic as S
from dynmem.inputs import step
from dynmem.memory import linear_memory
from dynmem.models import LinearRNN
from dynmem.reparam import get_reparam, stability_functional
from dynmem.simulate import simulate
from dynmem.spectra import lyapunov, spectral_abscissa
from dynmem.targets import ExponentialSum, PowerLawKernel

seeds = st.integers(0, 2**32 - 1)
T_GRID = np.linspace(0.0, 6.0, 13)

BUILDERS = [
    (S.memory_diagonal, (1,)),
    (S.memory_diagonal, (3,)),
    (S.memory_jordan, ()),
    (S.matrix_exp_2x2, ()),
    (S.memory_2x2, ()),
    (S.transfer_function_2x2, ()),
    (S.step_response_2x2, ()),
    (S.functional_norm_exp_sum, (3,)),
    (S.cauchy_determinant, (2,)),
    (S.cauchy_determinant, (3,)),
    (S.muntz_distance, (1,)),
    (S.muntz_distance, (2,)),
    (S.power_law_mixture, ()),
    (S.plateau_kernel, ()),
    (S.stability_functional_identity, ()),
    (S.stability_bound, ("exp",)),
    (S.stability_bound, ("softplus",)),
    (S.stability_bound, ("best",)),
    (S.best_reparam_derivation, ()),
    (S.lyapunov_2x2, ()),
    (S.lyapunov_normal, ()),
    (S.lyapunov_counterexample, ()),
]


@pytest.mark.parametrize("builder,args", BUILDERS, ids=lambda x: getattr(x, "__name__", repr(x)))
def test_identities_simplify_to_zero(builder, args):
    res = builder(*args)
    assert isinstance(res, S.SymbolicResult)
    assert res.identity_residual is not None
    assert S.check_identity(res.identity_residual)
    assert builder(*args) is res  # cached


def test_check_identity_rejects_non_identities_and_uses_numeric_fallback():
    x, y = sp.symbols("x y", positive=True)
    assert not S.check_identity(x - x**2)
    assert not S.check_identity(sp.Matrix([0, sp.sin(x) ** 2 - sp.cos(x) ** 2]))
    assert S.check_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)
    # the numeric fallback on its own (30 digits, 5 points)
    assert S._numeric_zero(sp.gamma(x + 1) - x * sp.gamma(x) + sp.log(x * y) - sp.log(x) - sp.log(y), random.Random(0))
    assert not S._numeric_zero(sp.gamma(x + 1) - sp.gamma(x) + 1e-12 * y, random.Random(0))


# -- linear memory ------------------------------------------------------------------


def _hurwitz_2x2(rng):
    W = rng.normal(size=(2, 2))
    return W - (spectral_abscissa(W) + rng.uniform(0.2, 1.0)) * np.eye(2)


@given(seed=seeds, n=st.integers(1, 3))
def test_memory_diagonal_matches_linear_memory(seed, n):
    rng = np.random.default_rng(seed)
    mu, u, c = rng.uniform(0.1, 2.0, n), rng.normal(size=n), rng.normal(size=n)
    res = S.memory_diagonal(n)
    sym = res.numeric(T_GRID, *mu, *u, *c)
    num = linear_memory(LinearRNN(-np.diag(mu), u[:, None], c), T_GRID).values
    assert np.allclose(sym, num, rtol=1e-10, atol=1e-13)


@given(seed=seeds)
def test_memory_jordan_matches_linear_memory(seed):
    rng = np.random.default_rng(seed)
    l, u, c = -rng.uniform(0.1, 2.0), rng.normal(size=2), rng.normal(size=2)  # noqa: E741
    res = S.memory_jordan()
    num = linear_memory(LinearRNN(np.array([[l, 1.0], [0.0, l]]), u[:, None], c), T_GRID).values
    assert np.allclose(res.numeric(T_GRID, l, *u, *c), num, rtol=1e-10, atol=1e-13)


@given(seed=seeds)
def test_memory_2x2_and_expm_match_numeric(seed):
    rng = np.random.default_rng(seed)
    W, u, c = _hurwitz_2x2(rng), rng.normal(size=2), rng.normal(size=2)
    res = S.memory_2x2()
    num = linear_memory(LinearRNN(W, u[:, None], c), T_GRID).values
    assert np.allclose(res.numeric(T_GRID, *W.ravel(), *u, *c), num, rtol=1e-9, atol=1e-12)
    E = S.matrix_exp_2x2().numeric(1.3, *W.ravel())
    assert np.allclose(E, scipy.linalg.expm(1.3 * W), rtol=1e-10, atol=1e-13)


def test_matrix_exp_2x2_complex_eigenvalues():
    W = np.array([[-0.5, 2.0], [-3.0, -0.2]])  # delta^2 < 0: rotation
    E = S.matrix_exp_2x2().numeric(2.0, *W.ravel())
    assert np.allclose(E, scipy.linalg.expm(2.0 * W), rtol=1e-12, atol=1e-14)


# -- transfer function and step response ------------------------------------------------


@given(seed=seeds, s_shift=st.floats(0.1, 3.0))
@settings(max_examples=10)
def test_transfer_function_is_laplace_transform_of_kernel(seed, s_shift):
    rng = np.random.default_rng(seed)
    W, u, c = _hurwitz_2x2(rng), rng.normal(size=2), rng.normal(size=2)
    s = spectral_abscissa(W) + s_shift
    H = S.transfer_function_2x2().numeric(s, *W.ravel(), *u, *c)
    assert H == pytest.approx(c @ np.linalg.solve(s * np.eye(2) - W, u), rel=1e-10, abs=1e-13)
    rho = S.memory_2x2().parts["kernel"]
    # Laplace transform by quadrature of the numeric kernel c^T expm(W t) U
    # e^{-st} e^{Wt} = e^{(W - sI) t} (s may be negative: no overflow this way)
    A = W - s * np.eye(2)
    lap = scipy.integrate.quad(lambda t: float(c @ scipy.linalg.expm(A * t) @ u), 0, np.inf,
                               epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    assert H == pytest.approx(lap, rel=1e-8, abs=1e-10)
    assert rho.free_symbols <= set(S.memory_2x2().symbols)


@given(seed=seeds)
@settings(max_examples=8)
def test_step_response_matches_simulate(seed):
    rng = np.random.default_rng(seed)
    W, u, c, x = _hurwitz_2x2(rng), rng.normal(size=2), rng.normal(size=2), rng.normal()
    res = S.step_response_2x2()
    sym = res.numeric(T_GRID, *W.ravel(), *u, *c, x)
    sim = simulate(LinearRNN(W, u[:, None], c), step([x]), T_GRID, rtol=1e-11, atol=1e-13)
    assert sim.success
    assert np.allclose(sym, sim.y, rtol=1e-8, atol=1e-10)


# -- norms, Gram matrices, Muntz ----------------------------------------------------


@given(seed=seeds)
def test_functional_norm_matches_exponential_sum_integral(seed):
    rng = np.random.default_rng(seed)
    a, w = rng.uniform(0.1, 2.0, 3), rng.uniform(0.2, 2.0, 3)
    val = S.functional_norm_exp_sum(3).numeric(*a, *w)
    # integral up to T: the tail sum a_i e^{-w_i T} / w_i is < 1e-30 at T = 40 / min w
    T = 40.0 / w.min()
    assert val == pytest.approx(float(ExponentialSum(w, a).integral([T])[0, 0]), rel=1e-12)
    quad = scipy.integrate.quad(lambda t: abs(np.sum(a * np.exp(-w * t))), 0, np.inf, epsrel=1e-12)[0]
    assert val == pytest.approx(quad, rel=1e-9)


@pytest.mark.parametrize("n", [2, 3])
@given(seed=seeds)
def test_cauchy_determinant_matches_numpy(n, seed):
    rng = np.random.default_rng(seed)
    w, v = rng.uniform(0.2, 3.0, n), rng.uniform(0.2, 3.0, n)
    G = 1.0 / (w[:, None] + v[None, :])
    res = S.cauchy_determinant(n)
    # against the determinant in 50-digit arithmetic (mpmath), not numpy's LU, whose relative error ~ kappa(G) eps
    # let a 1e-3 error pass in 4% of draws: the closed form's products of differences are accurate to rounding
    # (measured worst 7.5e-16 over 600 draws); 1e-13 is ~100x that
    import mpmath

    with mpmath.workdps(50):
        exact = mpmath.det(mpmath.matrix([[1 / (mpmath.mpf(wi) + mpmath.mpf(vj)) for vj in v] for wi in w]))
        assert float(abs((mpmath.mpf(res.numeric(*w, *v)) - exact) / exact)) < 1e-13
    # numpy's LU determinant within its backward-error bound, 10 n kappa(G) eps
    assert abs(np.linalg.det(G) / float(exact) - 1) <= 10 * n * np.linalg.cond(G) * np.finfo(float).eps
    assert np.allclose(np.array(sp.lambdify(res.symbols, res.parts["G"])(*w, *v), dtype=float), G, rtol=1e-15)


def _muntz_numeric(v, w):
    # normal equations of min_a ||e^{-vt} - sum a_i e^{-w_i t}||^2 in L^2(0, inf), solved by least squares
    G = 1.0 / (w[:, None] + w[None, :])
    g = 1.0 / (w + v)
    a = scipy.linalg.lstsq(G, g)[0]
    return 1.0 / (2 * v) - 2 * a @ g + a @ G @ a, a


@pytest.mark.parametrize("n", [1, 2])
@given(seed=seeds)
def test_muntz_distance_matches_gram_least_squares(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.2, 3.0)
    w = np.sort(rng.uniform(0.2, 3.0, n))
    if n > 1 and np.min(np.diff(w)) < 0.1:  # nearly collinear exponentials: kappa(G) too large for 1e-9
        w[1] = w[0] + 0.1 + w[1]
    res = S.muntz_distance(n)
    num, a = _muntz_numeric(v, w)
    assert res.numeric(v, *w) == pytest.approx(num, rel=1e-7, abs=1e-12)
    a_sym = np.array(sp.lambdify((res.symbols,), res.parts["a"])(np.array([v, *w])), dtype=float).ravel()
    assert np.allclose(a_sym, a, rtol=1e-7, atol=1e-9)


def test_muntz_distance_direct_quadrature():
    v, w = 1.3, np.array([0.4, 2.2])
    _, a = _muntz_numeric(v, w)
    dist = scipy.integrate.quad(lambda t: (math.exp(-v * t) - a @ np.exp(-w * t)) ** 2, 0, np.inf, epsrel=1e-12)[0]
    assert S.muntz_distance(2).numeric(v, *w) == pytest.approx(dist, rel=1e-8)


# -- power law, plateau ------------------------------------------------------------


@given(p=st.floats(0.3, 4.0))
@settings(max_examples=10)  # 30-digit mpmath quadrature: ~0.1 s per example
def test_power_law_mixture_matches_target_kernel_and_mpmath(p):
    res = S.power_law_mixture()
    t = np.array([0.0, 0.5, 3.0, 20.0])
    assert np.allclose(res.numeric(t, p), PowerLawKernel(p).kernel(t)[:, 0], rtol=1e-13)
    # substituting s = x^{1/p} removes the s^{p-1} endpoint singularity:
    # Gamma(p)^{-1} int s^{p-1} e^{-s(1+t)} ds = Gamma(p+1)^{-1} int_0^inf e^{-(1+t) x^{1/p}} dx
    with mpmath.workdps(30):
        mix = [float(mpmath.quad(lambda x: mpmath.exp(-(1 + ti) * x ** (1 / mpmath.mpf(p))), [0, 1, mpmath.inf])
                     / mpmath.gamma(p + 1)) for ti in t]
    assert np.allclose(res.numeric(t, p), mix, rtol=1e-12)


@given(w=st.floats(0.0, 3.0), T=st.floats(-1.0, 6.0))
def test_plateau_kernel_matches_quad(w, T):
    res = S.plateau_kernel()
    f = lambda t: math.exp(-w * t - (t - T) ** 2)  # noqa: E731
    split = max(T, 0.0)
    quad = sum(scipy.integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12)[0] for lo, hi in ((0, split), (split, np.inf)) if hi > lo)
    assert res.numeric(w, T) == pytest.approx(quad, rel=1e-9)


# -- stability ---------------------------------------------------------------------


@given(lam=st.floats(-5.0, -0.05), mu=st.floats(-5.0, -0.05))
def test_stability_functional_identity_matches_quadrature(lam, mu):
    res = S.stability_functional_identity()
    # direct reparameterisation f(w) = w: the quadrature of dynmem.reparam at (lam, mu)
    assert res.numeric(lam, mu) == pytest.approx(stability_functional(lambda w: w, lam, mu), rel=1e-8, abs=1e-13)


@given(beta=st.floats(0.0, 2.0), a=st.floats(0.1, 5.0), b=st.floats(0.1, 5.0))
def test_stability_bounds_match_reparam(beta, a, b):
    for name in ("exp", "softplus"):
        assert S.stability_bound(name).numeric(beta) == pytest.approx(get_reparam(name).stability_bound(beta), rel=1e-13, abs=1e-300)
    assert S.stability_bound("best").numeric(beta, a, b) == pytest.approx(
        get_reparam("best", a=a, b=b).stability_bound(beta), rel=1e-13, abs=1e-300)


@given(w=st.floats(-3.0, 3.0), L=st.floats(0.1, 5.0), C1=st.floats(0.1, 5.0))
def test_best_derivation_matches_reparam(w, L, C1):
    res = S.best_reparam_derivation()
    assert res.parts["a"] == res.symbols[1] / 2 and res.parts["b"] == res.symbols[2] / 2
    r = get_reparam("best", a=L / 2, b=C1 / 2)
    assert res.numeric(w, L, C1) == pytest.approx(r.f(w), rel=1e-14)
    scale = sp.lambdify(res.symbols, res.parts["gradient_scale"])(w, L, C1)
    assert scale == pytest.approx(r.gradient_scale(w), rel=1e-13, abs=1e-300)
    assert scale == pytest.approx(L * abs(w), rel=1e-13, abs=1e-300)


# -- Lyapunov -----------------------------------------------------------------------


@given(seed=seeds)
def test_lyapunov_2x2_matches_spectra(seed):
    W = _hurwitz_2x2(np.random.default_rng(seed))
    P = np.array(S.lyapunov_2x2().numeric(*W.ravel()), dtype=float)
    assert np.allclose(P, lyapunov(W), rtol=1e-9, atol=1e-12)


@given(b=st.floats(0.05, 5.0), w=st.floats(-5.0, 5.0))
def test_lyapunov_normal_meets_lemma_a8_bound(b, w):
    res = S.lyapunov_normal()
    assert S.check_identity(res.parts["normality"])
    W = np.array([[-b, w], [-w, -b]])
    P = np.array(res.numeric(b, w), dtype=float)
    assert np.allclose(P, lyapunov(W), rtol=1e-9, atol=1e-12)
    assert np.linalg.norm(P, 2) == pytest.approx(1 / (2 * b), rel=1e-12)


def test_lyapunov_counterexample_breaks_lemma_a8():
    res = S.lyapunov_counterexample()
    P = np.array(res.numeric(), dtype=float)
    assert np.allclose(P, [[0.5, 5.0], [5.0, 100.5]], rtol=0, atol=0)
    assert np.allclose(P, lyapunov(np.array([[-1.0, 20.0], [0.0, -1.0]])), rtol=1e-12)
    assert S.check_identity(res.parts["norm2"] - res.parts["stated_norm2"])
    norm2 = float(res.parts["norm2"])
    assert norm2 == pytest.approx(np.linalg.norm(P, 2), rel=1e-14)
    assert norm2 == pytest.approx(100.7494, abs=1e-4) and norm2 > 200 * (1 / 2)


# -- validation ---------------------------------------------------------------------


def test_argument_validation():
    with pytest.raises(ValueError, match=r"`n` must be >= 1; got 0"):
        S.memory_diagonal(0)
    with pytest.raises(TypeError, match=r"`n` must be an integer; got 2.0"):
        S.functional_norm_exp_sum(2.0)
    with pytest.raises(ValueError, match=r"`n` must be <= 4 .*; got 5"):
        S.cauchy_determinant(5)
    with pytest.raises(ValueError, match=r"`n` must be <= 3 .*; got 4"):
        S.muntz_distance(4)
    with pytest.raises(ValueError, match=r"`name` must be one of 'exp', 'softplus', 'best'; got 'direct'"):
        S.stability_bound("direct")
