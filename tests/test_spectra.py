"""Spectra: every quantity against an independent reference.

References used: closed forms (triangular and Jordan matrices, companion
matrices with chosen roots, normal matrices), the defining limit of the
logarithmic norm, per-time ``scipy.linalg.expm``, a Kronecker-product solve of
the Lyapunov equation, and brute-force frequency grids for the stability
radius (whose error is bounded by the grid spacing, since ``sigma_min`` is
1-Lipschitz in ``omega``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from dynmem import spectra as sp
from dynmem.strategies import stable_matrices

EPS = np.finfo(float).eps

# The non-normal example of THEORY.md section 3: Lemma A.8 fails for it.
J20 = np.array([[-1.0, 20.0], [0.0, -1.0]])
UNSTABLE = np.array([[0.5, 1.0], [0.0, -1.0]])


def _jordan(lam: float, k: float) -> np.ndarray:
    return np.array([[lam, k], [0.0, lam]])


def _jordan_expm_norm(lam, k, t):
    # e^{Wt} = e^{lam t} [[1, k t], [0, 1]]; sigma_max([[1, a], [0, 1]]) = (a + sqrt(a^2 + 4)) / 2.
    a = k * np.asarray(t)
    return np.exp(lam * np.asarray(t)) * (np.abs(a) + np.sqrt(a * a + 4)) / 2


def _random_orthogonal(m, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    return q * np.sign(np.diag(r))


def _normal_nonsymmetric(seed=0):
    """Q blockdiag([[a, b], [-b, a]], [[c, d], [-d, c]], e) Q^T: normal, complex spectrum."""
    B = scipy.linalg.block_diag([[-0.3, 2.0], [-2.0, -0.3]], [[-1.0, 0.5], [-0.5, -1.0]], [[-0.7]])
    Q = _random_orthogonal(5, seed)
    return Q @ B @ Q.T, -0.3


def _expm_norms(W, t):
    return np.array([np.linalg.norm(scipy.linalg.expm(W * ti), 2) for ti in np.atleast_1d(t)])


def _sigma_min_grid(W, omega):
    """sigma_min(W - i omega I) from the definition, one SVD per frequency."""
    m = W.shape[0]
    return np.array([np.linalg.svd(W - 1j * w * np.eye(m), compute_uv=False)[-1] for w in omega])


def _lyapunov_kron(W, Q):
    """Solve W^T P + P W = -Q as (I (x) W^T + W^T (x) I) vec(P) = -vec(Q) (column-major vec)."""
    m = W.shape[0]
    I = np.eye(m)
    L = np.kron(I, W.T) + np.kron(W.T, I)
    return np.linalg.solve(L, -Q.reshape(-1, order="F")).reshape((m, m), order="F")


# -- validation -------------------------------------------------------------

SQUARE_FUNCS = [
    sp.spectral_abscissa,
    sp.spectral_radius,
    sp.log_norm,
    sp.is_hurwitz,
    sp.check_hurwitz,
    sp.stability_radius,
    sp.lyapunov,
    sp.lyapunov_decay_bound,
    sp.lemma_a8_ratio,
    lambda W: sp.transient_growth(W, [0.0, 1.0]),
    sp.max_transient_growth,
    sp.eigenvector_condition,
    sp.spectral_summary,
]
HURWITZ_FUNCS = [sp.stability_radius, sp.lyapunov, sp.lyapunov_decay_bound, sp.lemma_a8_ratio, sp.max_transient_growth]


def _name(f):
    return getattr(f, "__name__", "transient_growth")


@pytest.mark.parametrize("func", SQUARE_FUNCS, ids=_name)
@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.zeros((3, 4)), ValueError, r"`W` must be square; got shape \(3, 4\)"),
        (np.zeros(3), ValueError, r"`W` must have 2 dimension\(s\); got shape \(3,\)"),
        (np.zeros((2, 2, 2)), ValueError, r"`W` must have 2 dimension\(s\)"),
        (np.zeros((0, 0)), ValueError, r"`W` must have at least one row; got shape \(0, 0\)"),
        (np.array([[-1.0, np.nan], [0.0, -1.0]]), ValueError, r"`W` must be finite; got nan at index \(0, 1\)"),
        (np.array([[-1.0, np.inf], [0.0, -1.0]]), ValueError, r"`W` must be finite; got inf"),
        (-np.eye(2) + 1j, TypeError, r"`W` must be real; got complex dtype complex128"),
        ("abc", TypeError, r"`W` must be an array of real numbers; got the string 'abc'"),
        ([[None, 1.0], [1.0, 1.0]], TypeError, r"`W` must be an array of real numbers"),
    ],
)
def test_matrix_argument_is_validated(func, bad, exc, match):
    with pytest.raises(exc, match=match):
        func(bad)


@pytest.mark.parametrize("func", HURWITZ_FUNCS, ids=_name)
def test_non_hurwitz_is_refused_with_the_abscissa(func):
    with pytest.raises(ValueError, match=r"`W` must be Hurwitz .* alpha\(W\) = max Re lambda\(W\) = 0\.5\b"):
        func(UNSTABLE)
    with pytest.raises(ValueError, match=r"alpha\(W\) = max Re lambda\(W\) = 0\b"):  # marginal: alpha = 0 exactly
        func(np.diag([0.0, -1.0]))


def test_check_hurwitz_margin_name_and_return():
    W = np.diag([-0.5, -2.0])
    assert sp.check_hurwitz(W) == pytest.approx(-0.5, abs=1e-15)
    assert sp.check_hurwitz(W, margin=0.4) == pytest.approx(-0.5, abs=1e-15)
    with pytest.raises(ValueError, match=r"`J` must be Hurwitz \(every eigenvalue with real part < -0\.6\); got "
                                         r"spectral abscissa alpha\(J\) = max Re lambda\(J\) = -0\.5\."):
        sp.check_hurwitz(W, margin=0.6, name="J")
    with pytest.raises(ValueError, match=r"`J` must be square"):
        sp.check_hurwitz(np.zeros((2, 3)), name="J")
    with pytest.raises(TypeError, match=r"`name` must be a string; got 3"):
        sp.check_hurwitz(W, name=3)
    with pytest.raises(ValueError, match=r"`margin` must be a non-negative finite number; got -0\.1"):
        sp.check_hurwitz(W, margin=-0.1)
    with pytest.raises(TypeError, match=r"`margin` must be a non-negative number; got 'a'"):
        sp.is_hurwitz(W, margin="a")


def test_is_hurwitz_is_strict():
    W = np.diag([-0.5, -2.0])
    assert sp.is_hurwitz(W) and sp.is_hurwitz(W, margin=0.4)
    assert not sp.is_hurwitz(W, margin=0.5)  # alpha < -margin is strict
    assert not sp.is_hurwitz(W, margin=0.6)
    assert not sp.is_hurwitz(np.diag([0.0, -1.0]))
    assert not sp.is_hurwitz(UNSTABLE)
    assert isinstance(sp.is_hurwitz(W), bool)


@pytest.mark.parametrize("ord_", ["fro", 3, 0, -np.inf, True, None, "inf"])
def test_log_norm_ord_is_validated(ord_):
    with pytest.raises(ValueError, match=r"`ord` must be one of 1, 2, numpy.inf; got "):
        sp.log_norm(-np.eye(2), ord=ord_)


def test_other_arguments_are_validated():
    W = -np.eye(2)
    with pytest.raises(ValueError, match=r"`Q` must have shape \(2, 2\); got shape \(3, 3\)"):
        sp.lyapunov(W, np.eye(3))
    with pytest.raises(ValueError, match=r"`Q` must be symmetric; got max \|Q - Q\^T\| = 1"):
        sp.lyapunov(W, np.array([[1.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`Q` must be positive semi-definite; got smallest eigenvalue -1"):
        sp.lyapunov(W, np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"`Q` must be positive definite; got smallest eigenvalue 0"):
        sp.lyapunov_decay_bound(W, np.diag([1.0, 0.0]))
    with pytest.raises(TypeError, match=r"`Q` must be real"):
        sp.lyapunov(W, np.eye(2) * 1j)
    with pytest.raises(ValueError, match=r"`Q` must be finite"):
        sp.lyapunov_decay_bound(W, np.diag([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"`t` must be non-negative; got min\(t\) = -1\.0"):
        sp.transient_growth(W, [0.0, -1.0])
    with pytest.raises(ValueError, match=r"`t` must have 0 or 1 dimension\(s\); got shape \(2, 2\)"):
        sp.transient_growth(W, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`t` must be finite"):
        sp.transient_growth(W, [np.inf])
    with pytest.raises(ValueError, match=r"`t_max` must be a positive finite number; got 0\.0"):
        sp.max_transient_growth(W, t_max=0.0)
    with pytest.raises(TypeError, match=r"`t_max` must be a positive number; got '1'"):
        sp.max_transient_growth(W, t_max="1")
    with pytest.raises(ValueError, match=r"`rtol` must be a positive finite number; got -1\.0"):
        sp.stability_radius(W, rtol=-1.0)
    with pytest.raises(ValueError, match=r"`maxiter` must be a positive integer; got 0"):
        sp.stability_radius(W, maxiter=0)
    with pytest.raises(ValueError, match=r"`rtol` must be a positive finite number; got 0\.0"):
        sp.eigenvector_condition(W, rtol=0.0)


def test_transient_growth_reports_overflow():
    with pytest.raises(OverflowError, match=r"overflows float64 at t = 1000\.0"):
        sp.transient_growth([[1.0]], [1.0, 1000.0])


# -- spectrum: abscissa, radius ----------------------------------------------


def test_abscissa_and_radius_of_a_companion_matrix_with_chosen_roots():
    roots = np.array([-0.5, 0.3 + 0.8j, 0.3 - 0.8j, -1.2, -0.1])
    coeffs = np.polynomial.polynomial.polyfromroots(roots).real
    C = np.polynomial.polynomial.polycompanion(coeffs)
    assert sp.spectral_abscissa(C) == pytest.approx(0.3, abs=1e-12)
    assert sp.spectral_radius(C) == pytest.approx(1.2, abs=1e-12)
    assert not sp.is_hurwitz(C)


def test_abscissa_and_radius_of_triangular_and_rotation_matrices():
    T = np.triu(np.random.default_rng(0).standard_normal((5, 5)), 1) + np.diag([-3.0, -0.2, -1.0, 0.1, -4.0])
    assert sp.spectral_abscissa(T) == 0.1
    assert sp.spectral_radius(T) == 4.0
    theta, c = 0.7, 0.9
    R = c * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert sp.spectral_radius(R) == pytest.approx(0.9, abs=1e-15)
    assert sp.spectral_abscissa(R) == pytest.approx(c * np.cos(theta), abs=1e-15)
    assert sp.spectral_abscissa([[-2.0]]) == -2.0 and sp.spectral_radius([[-2.0]]) == 2.0


@given(W=stable_matrices(max_size=6), shift=st.floats(-3.0, 3.0))
def test_abscissa_shifts_and_brackets_the_lyapunov_threshold(W, shift):
    m = W.shape[0]
    a = sp.spectral_abscissa(W)
    # alpha(W + s I) = alpha(W) + s; tolerance: eigenvalue perturbation ~ eps |W| kappa_eig.
    assert sp.spectral_abscissa(W + shift * np.eye(m)) == pytest.approx(a + shift, abs=1e-9 * (1 + abs(shift)))
    # independent of the eigenvalues: by Lyapunov's theorem W - s I is Hurwitz iff the solution P of
    # (W - s I)^T P + P (W - s I) = -I is positive definite; P is definite just above alpha, indefinite below
    eps = 1e-6 * (1 + abs(a))
    for s, definite in ((a + eps, True), (a - eps, False)):
        M = W - s * np.eye(m)
        P = scipy.linalg.solve_continuous_lyapunov(M.T, -np.eye(m))
        assert (np.linalg.eigvalsh(0.5 * (P + P.T))[0] > 0) == definite
    # rho >= max |Re lambda| >= |alpha| and rho <= |W|_2.
    rho = sp.spectral_radius(W)
    assert abs(a) <= rho * (1 + 1e-12) and rho <= np.linalg.norm(W, 2) * (1 + 1e-12)
    assert sp.is_hurwitz(W) and sp.check_hurwitz(W) == a


# -- logarithmic norm -------------------------------------------------------


def test_log_norm_closed_forms_by_hand():
    W = np.array([[-3.0, 1.0, -2.0], [0.5, -1.0, 0.0], [1.0, -4.0, -6.0]])
    # columns: -3 + 0.5 + 1, -1 + 1 + 4, -6 + 2 + 0; rows: -3 + 1 + 2, -1 + 0.5, -6 + 1 + 4.
    assert sp.log_norm(W, 1) == 4.0
    assert sp.log_norm(W, np.inf) == 0.0
    assert sp.log_norm(W, 1.0) == sp.log_norm(W, float("inf")) + 4.0
    S = 0.5 * (W + W.T)
    assert sp.log_norm(W) == pytest.approx(np.max(np.linalg.eigvalsh(S)), abs=1e-14)
    # Symmetric: mu_2 = alpha.  1x1: every mu is the entry.
    assert sp.log_norm(S) == pytest.approx(sp.spectral_abscissa(S), abs=1e-13)
    for o in (1, 2, np.inf):
        assert sp.log_norm([[-2.5]], ord=o) == -2.5


@given(W=stable_matrices(max_size=6))
def test_log_norm_matches_its_defining_limit(W):
    # mu(W) = lim_{h->0+} (|I + h W| - 1) / h.  For ord 1 / inf the quotient is
    # exact once 1 + h w_ii > 0 (error only eps / h); for ord 2 it is O(h |W|^2).
    h = 1e-6
    nW = np.linalg.norm(W, 2)
    I = np.eye(W.shape[0])
    alpha = sp.spectral_abscissa(W)
    for o in (1, 2, np.inf):
        fd = (np.linalg.norm(I + h * W, o) - 1) / h
        tol = 10 * EPS / h * (1 + h * nW) + (h * nW**2 if o == 2 else 0.0)
        mu = sp.log_norm(W, ord=o)
        assert mu == pytest.approx(fd, abs=tol)
        assert alpha <= mu + 1e-12 * (1 + nW)  # alpha <= mu for every induced norm


# -- eigenvector condition --------------------------------------------------


def test_eigenvector_condition_closed_forms():
    assert sp.eigenvector_condition(np.diag([-1.0, -2.0, 3.0])) == 1.0
    # [[a, b], [0, d]]: unit eigenvectors e1 and (b, d - a)/norm, so V = [[1, c], [0, s]]
    # with c = cos(angle) and kappa(V) = sqrt((1 + |c|) / (1 - |c|)).
    a, b, d = -1.0, 3.0, -2.0
    c = abs(b) / math.hypot(b, d - a)
    expect = math.sqrt((1 + c) / (1 - c))
    assert sp.eigenvector_condition([[a, b], [0.0, d]]) == pytest.approx(expect, rel=1e-12)
    # Invariant under scaling and transposition.
    assert sp.eigenvector_condition([[a * 7, b * 7], [0.0, d * 7]]) == pytest.approx(expect, rel=1e-12)
    assert sp.eigenvector_condition([[a, 0.0], [b, d]]) == pytest.approx(expect, rel=1e-12)
    W, _ = _normal_nonsymmetric()
    assert sp.eigenvector_condition(W) == pytest.approx(1.0, abs=1e-12)


def test_eigenvector_condition_of_defective_matrices():
    assert sp.eigenvector_condition(_jordan(-1.0, 1.0)) == math.inf
    assert sp.eigenvector_condition(J20) == math.inf
    assert sp.eigenvector_condition(np.zeros((3, 3)) + np.diag([1.0, 1.0], 1) - np.eye(3)) == math.inf
    # Rotated, the Jordan block's double eigenvalue is split by rounding: large
    # but finite (~1/sqrt(eps)) unless rtol says otherwise (documented caveat).
    Q = _random_orthogonal(2, 3)
    K = Q @ _jordan(-1.0, 1.0) @ Q.T
    kappa = sp.eigenvector_condition(K)
    assert kappa > 1e6
    assert sp.eigenvector_condition(K, rtol=1e-4) == math.inf


@given(W=stable_matrices(max_size=6, normal=True))
def test_eigenvector_condition_of_symmetric_is_one(W):
    assert sp.eigenvector_condition(W) == pytest.approx(1.0, abs=1e-8)


# -- transient growth -------------------------------------------------------


def test_transient_growth_of_jordan_block_closed_form():
    t = np.linspace(0, 12, 61)
    for lam, k in [(-1.0, 20.0), (-0.3, 1.0), (-2.0, -5.0)]:
        np.testing.assert_allclose(sp.transient_growth(_jordan(lam, k), t), _jordan_expm_norm(lam, k, t),
                                   rtol=1e-12, atol=0)


def test_transient_growth_shapes():
    W = J20
    out = sp.transient_growth(W, 1.0)
    assert isinstance(out, np.ndarray) and out.shape == ()
    assert float(out) == pytest.approx(_jordan_expm_norm(-1, 20, 1.0), rel=1e-12)
    assert sp.transient_growth(W, []).shape == (0,)
    assert sp.transient_growth(W, [0.0])[0] == 1.0


def test_transient_growth_many_times_in_batches(monkeypatch):
    # Force several batches and compare with per-time expm.
    monkeypatch.setattr(sp, "_EXPM_BATCH_ENTRIES", 5 * 9)
    W = np.random.default_rng(4).standard_normal((3, 3)) - 1.5 * np.eye(3)
    t = np.linspace(0, 5, 23)
    np.testing.assert_allclose(sp.transient_growth(W, t), _expm_norms(W, t), rtol=1e-13)


@given(W=stable_matrices(max_size=6))
def test_transient_growth_matches_expm_and_its_bounds(W):
    t = np.concatenate([[0.0], np.geomspace(1e-3, 40.0, 30)])
    G = sp.transient_growth(W, t)
    # Same algorithm per time as scipy.linalg.expm: agreement to rounding.
    np.testing.assert_allclose(G, _expm_norms(W, t), rtol=1e-12, atol=0)
    alpha, mu = sp.spectral_abscissa(W), sp.log_norm(W)
    kappa = sp.eigenvector_condition(W)
    rel = 1e-10
    assert np.all(G >= np.exp(alpha * t) * (1 - rel))  # |e^{Wt}| >= rho(e^{Wt}) = e^{alpha t}
    assert np.all(G <= np.exp(mu * t) * (1 + rel))  # log-norm bound
    if math.isfinite(kappa):  # diagonalisable: |e^{Wt}| <= kappa(V) e^{alpha t}
        assert np.all(G <= kappa * np.exp(alpha * t) * (1 + 1e-8))


@given(W=stable_matrices(max_size=6, normal=True))
def test_transient_growth_of_normal_matrix_is_spectral(W):
    t = np.linspace(0.0, 10.0, 11)
    np.testing.assert_allclose(sp.transient_growth(W, t), np.exp(sp.spectral_abscissa(W) * t), rtol=1e-10)


def test_transient_growth_of_normal_nonsymmetric_matrix():
    W, alpha = _normal_nonsymmetric()
    t = np.linspace(0.0, 10.0, 11)
    np.testing.assert_allclose(sp.transient_growth(W, t), np.exp(alpha * t), rtol=1e-10)


# -- max transient growth ---------------------------------------------------


def test_max_transient_growth_of_jordan_block():
    res = sp.max_transient_growth(J20)
    # Reference: the closed form on a fine grid (spacing 5e-6; the peak is smooth,
    # so the grid maximum is within ~f'' h^2 ~ 1e-9 relative of the true one).
    t = np.linspace(0.0, 5.0, 1_000_001)
    f = _jordan_expm_norm(-1.0, 20.0, t)
    k = int(np.argmax(f))
    assert res.success, res.message
    assert res.value == pytest.approx(f[k], rel=1e-9)
    assert res.value >= f[k] * (1 - 1e-13)
    assert res.t == pytest.approx(t[k], abs=1e-4)
    assert res.value <= res.upper_bound <= 1.01 * res.value
    assert res.value == pytest.approx(_jordan_expm_norm(-1.0, 20.0, res.t), rel=1e-13)


def test_max_transient_growth_without_growth():
    # mu_2 <= 0: exactly 1 at t = 0 (normal, and non-normal but contractive).
    for W in (_normal_nonsymmetric()[0], np.array([[-2.0, 1.0], [0.0, -2.0]]), np.array([[-0.1]])):
        assert sp.log_norm(W) <= 0
        res = sp.max_transient_growth(W)
        assert (res.value, res.t, res.upper_bound, res.success) == (1.0, 0.0, 1.0, True)


def test_max_transient_growth_on_a_window_for_unstable_matrix():
    # Not Hurwitz, so t_max is required; the norm increases, so the sup is at t_max.
    W = _jordan(0.1, 1.0)
    with pytest.raises(ValueError, match=r"`W` must be Hurwitz"):
        sp.max_transient_growth(W)
    res = sp.max_transient_growth(W, t_max=2.0)
    assert res.horizon == 2.0
    assert res.t == pytest.approx(2.0, abs=1e-8)
    assert res.value == pytest.approx(_jordan_expm_norm(0.1, 1.0, 2.0), rel=1e-9)
    # A window before the peak of a Hurwitz matrix: sup at the window's end.
    res = sp.max_transient_growth(J20, t_max=0.5)
    assert res.t == pytest.approx(0.5, abs=1e-8)
    assert res.value == pytest.approx(_jordan_expm_norm(-1.0, 20.0, 0.5), rel=1e-9)


@given(W=stable_matrices(max_size=5, max_margin=1.0))
def test_max_transient_growth_is_the_sup(W):
    res = sp.max_transient_growth(W)
    assert res.success, res.message
    assert res.value >= 1.0
    # Consistent with the definition at the reported time.
    assert res.value == pytest.approx(float(sp.transient_growth(W, res.t)), rel=1e-12)
    # Not exceeded by brute force on an independent grid (a finer grid can only
    # approach the sup from below), and below the certificate and the a-priori bounds.
    T = res.t * 4 + 1.0 if math.isfinite(res.horizon) else 10.0
    t = np.linspace(0.0, T, 400)
    assert np.max(_expm_norms(W, t)) <= res.value * (1 + 1e-12)
    assert res.value <= res.upper_bound * (1 + 1e-12) and res.upper_bound <= 1.01 * res.value * (1 + 1e-12)
    if sp.log_norm(W) > 0:
        bound = sp.lyapunov_decay_bound(W)
        assert res.value <= bound.constant * (1 + 1e-9)
        kappa = sp.eigenvector_condition(W)
        assert res.value <= kappa * (1 + 1e-8)


# -- stability radius -------------------------------------------------------


@pytest.mark.parametrize("k", [0.5, 1.0, 20.0, 300.0])
def test_stability_radius_of_jordan_block_closed_form(k):
    # sigma_min([[z, k], [0, z]]) = (sqrt(k^2 + 4|z|^2) - k) / 2 increases with |z|,
    # so with z = -1 - i omega the minimum is at omega = 0: r = (sqrt(k^2 + 4) - k) / 2 < 1 = -alpha.
    res = sp.stability_radius(_jordan(-1.0, k))
    expect = (math.sqrt(k * k + 4) - k) / 2
    assert res.success, res.message
    assert res.value == pytest.approx(expect, rel=1e-9)
    assert res.value < 1.0
    assert res.omega == pytest.approx(0.0, abs=1e-4)


def test_stability_radius_of_normal_matrices_is_the_distance_to_the_axis():
    W, alpha = _normal_nonsymmetric()
    res = sp.stability_radius(W)
    assert res.value == pytest.approx(-alpha, rel=1e-10)
    assert res.omega == pytest.approx(2.0, abs=1e-6)  # Im of the rightmost pair
    assert sp.stability_radius([[-2.5]]).value == pytest.approx(2.5, rel=1e-12)


@given(W=stable_matrices(max_size=6, normal=True))
def test_stability_radius_of_symmetric_is_minus_alpha(W):
    res = sp.stability_radius(W)
    assert res.value == pytest.approx(-sp.spectral_abscissa(W), rel=1e-9)


def test_stability_radius_against_a_fine_grid():
    # Non-normal matrices with complex spectra (several local minima in omega).
    rng = np.random.default_rng(11)
    for m in (3, 5):
        A = 2.0 * rng.standard_normal((m, m))
        W = A - (sp.spectral_abscissa(A) + 0.1) * np.eye(m)
        res = sp.stability_radius(W)
        R = 2 * np.linalg.norm(W, 2)  # every minimiser has |omega| <= 2 |W|_2
        omega = np.linspace(0.0, R, 200_001)
        A_w = np.broadcast_to(W.astype(complex), (omega.size, m, m)).copy()
        A_w[:, np.arange(m), np.arange(m)] -= 1j * omega[:, None]
        g = np.linalg.svd(A_w, compute_uv=False)[:, -1]
        h = omega[1] - omega[0]
        assert res.value <= g.min() * (1 + 1e-12)  # the min lies below every grid value
        assert g.min() - res.value <= h / 2  # sigma_min is 1-Lipschitz in omega
        assert res.value == pytest.approx(g.min(), rel=1e-6)  # smooth minimum: grid error ~ h^2


@given(W=stable_matrices(max_size=6))
def test_stability_radius_properties(W):
    res = sp.stability_radius(W)
    assert res.success, res.message
    # Definition at the reported frequency.
    assert res.value == pytest.approx(_sigma_min_grid(W, [res.omega])[0], rel=1e-12, abs=1e-15)
    # Brute force: r lies below a grid of the definition, and within the
    # Lipschitz bound h / 2 of its minimum.
    omega = np.linspace(0.0, 2 * np.linalg.norm(W, 2), 801)
    g = _sigma_min_grid(W, omega)
    assert res.value <= g.min() * (1 + 1e-12)
    assert g.min() - res.value <= (omega[1] - omega[0]) / 2
    # -mu_2 <= r <= -alpha.
    alpha, mu = sp.spectral_abscissa(W), sp.log_norm(W)
    assert res.value <= -alpha * (1 + 1e-10)
    assert res.value >= -mu - 1e-10 * abs(mu) - 1e-14
    if res.lower_bound > 0:  # 0 is the trivial bound left by a stagnated iteration
        assert res.lower_bound <= res.value <= res.lower_bound / (1 - 2.1e-10)


# -- Lyapunov ---------------------------------------------------------------


def test_lyapunov_of_jordan_block_and_lemma_a8_numbers():
    # P = int e^{W^T t} e^{W t} dt = [[1/2, k/4], [k/4, 1/2 + k^2/4]] for W = [[-1, k], [0, -1]].
    P = sp.lyapunov(J20)
    np.testing.assert_allclose(P, [[0.5, 5.0], [5.0, 100.5]], rtol=1e-13)
    norm_P = np.linalg.norm(P, 2)
    assert norm_P == pytest.approx((101 + math.sqrt(100**2 + 100)) / 2, rel=1e-13)
    assert norm_P == pytest.approx(100.7, abs=0.05)  # THEORY.md section 3
    beta = -sp.spectral_abscissa(J20)
    assert 1 / (2 * beta) == 0.5
    assert sp.lemma_a8_ratio(J20) == pytest.approx(2 * beta * norm_P, rel=1e-13)
    assert sp.lemma_a8_ratio(J20) > 200


def test_lyapunov_with_a_given_Q():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((4, 4)) - 2.5 * np.eye(4)
    c = rng.standard_normal(4)
    Q = np.outer(c, c)  # observability Gramian: P is only positive semi-definite
    P = sp.lyapunov(W, Q)
    np.testing.assert_allclose(P, _lyapunov_kron(W, Q), rtol=1e-10, atol=1e-13)
    assert np.min(np.linalg.eigvalsh(P)) > -1e-12
    # Integral definition by quadrature of the expm integrand (smooth and decaying).
    t = np.linspace(0.0, 30.0, 3001)
    E = np.array([scipy.linalg.expm(W * ti) for ti in t])
    integral = scipy.integrate.simpson(np.einsum("tji,jk,tkl->til", E, Q, E), x=t, axis=0)
    np.testing.assert_allclose(P, integral, rtol=1e-6, atol=1e-9)


@given(W=stable_matrices(max_size=6))
def test_lyapunov_residual_symmetry_and_kronecker_reference(W):
    m = W.shape[0]
    P = sp.lyapunov(W)
    I = np.eye(m)
    scale = 2 * np.linalg.norm(W) * np.linalg.norm(P) + np.sqrt(m)
    assert np.linalg.norm(W.T @ P + P @ W + I) <= 1e-12 * scale
    assert np.array_equal(P, P.T)
    assert np.min(np.linalg.eigvalsh(P)) > 0
    # An independent solver; both are backward stable, so they agree to
    # ~ cond(Lyapunov operator) * eps, and cond <~ |P| |W| here (margins >= 0.05).
    np.testing.assert_allclose(P, _lyapunov_kron(W, I), rtol=0, atol=1e-11 * np.linalg.norm(P) * (1 + np.linalg.norm(W)) ** 2)


@given(W=stable_matrices(max_size=6))
def test_lemma_a8_ratio_is_at_least_one(W):
    # v* P v = 1/(2 beta) for a unit eigenvector of the rightmost eigenvalue, so |P|_2 >= 1/(2 beta).
    assert sp.lemma_a8_ratio(W) >= 1 - 1e-9


@given(W=stable_matrices(max_size=6, normal=True))
def test_lemma_a8_ratio_of_normal_is_one(W):
    assert sp.lemma_a8_ratio(W) == pytest.approx(1.0, rel=1e-9)


def test_lemma_a8_ratio_of_normal_nonsymmetric_is_one():
    W, _ = _normal_nonsymmetric()
    assert sp.lemma_a8_ratio(W) == pytest.approx(1.0, rel=1e-10)


@given(W=stable_matrices(max_size=6), qseed=st.integers(0, 2**32 - 1), custom_q=st.booleans())
def test_lyapunov_decay_bound_holds(W, qseed, custom_q):
    m = W.shape[0]
    if custom_q:
        B = np.random.default_rng(qseed).standard_normal((m, m))
        Q = B @ B.T + 0.1 * np.eye(m)
    else:
        Q = np.eye(m)
    bound = sp.lyapunov_decay_bound(W, Q if custom_q else None)
    P = bound.P
    np.testing.assert_allclose(P, sp.lyapunov(W, Q), rtol=1e-14, atol=0)
    p = np.linalg.eigvalsh(P)
    assert bound.constant == pytest.approx(math.sqrt(p[-1] / p[0]), rel=1e-10)
    assert bound.rate == pytest.approx(np.min(np.linalg.eigvalsh(Q)) / (2 * p[-1]), rel=1e-10)
    # The bound cannot beat the asymptotic rate: |e^{Wt}| >= e^{alpha t}.
    assert bound.rate <= -sp.spectral_abscissa(W) * (1 + 1e-9)
    t = np.concatenate([np.linspace(0.0, 5.0, 26), np.geomspace(5.0, 200.0, 15)])
    assert np.all(_expm_norms(W, t) <= bound(t) * (1 + 1e-10))
    assert not P.flags.writeable


# -- summary ----------------------------------------------------------------


def test_spectral_summary_fields():
    s = sp.spectral_summary(J20)
    assert s.hurwitz is True
    assert s.alpha == -1.0 and s.spectral_radius == 1.0
    assert s.mu_2 == pytest.approx(9.0, abs=1e-13)  # eigenvalues of [[-1, 10], [10, -1]]
    assert s.stability_radius == pytest.approx((math.sqrt(404) - 20) / 2, rel=1e-9)
    assert s.kappa_V == math.inf
    assert s.norm_P == pytest.approx(100.7494, rel=1e-5)
    assert s.lemma_a8_ratio == pytest.approx(2 * s.norm_P, rel=1e-14)
    # W W^T - W^T W = [[400, -20], [-20, 0]] - [[0, -20], [-20, 400]] = diag(400, -400).
    assert s.nonnormality == pytest.approx(400 * math.sqrt(2), rel=1e-14)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha = 0.0


def test_spectral_summary_of_unstable_and_normal_matrices():
    s = sp.spectral_summary(UNSTABLE)
    assert s.hurwitz is False and s.alpha == 0.5
    # limiting values, never NaN (issue 16): already unstable, and the Lyapunov integral diverges
    assert s.stability_radius == 0.0 and s.norm_P == math.inf and s.lemma_a8_ratio == math.inf
    W, alpha = _normal_nonsymmetric()
    s = sp.spectral_summary(W)
    assert s.nonnormality == pytest.approx(0.0, abs=1e-13)
    assert s.kappa_V == pytest.approx(1.0, abs=1e-12)
    assert s.stability_radius == pytest.approx(-alpha, rel=1e-10)
    assert s.mu_2 == pytest.approx(alpha, abs=1e-13)
    assert s.lemma_a8_ratio == pytest.approx(1.0, rel=1e-10)


@given(W=stable_matrices(max_size=5))
def test_spectral_summary_agrees_with_the_functions(W):
    s = sp.spectral_summary(W)
    assert s.alpha == sp.spectral_abscissa(W)
    assert s.spectral_radius == sp.spectral_radius(W)
    assert s.mu_2 == sp.log_norm(W)
    assert s.stability_radius == sp.stability_radius(W).value
    assert s.kappa_V == sp.eigenvector_condition(W)
    assert s.norm_P == np.linalg.norm(sp.lyapunov(W), 2)
    assert s.lemma_a8_ratio == pytest.approx(sp.lemma_a8_ratio(W), rel=1e-14)
    assert s.nonnormality == pytest.approx(np.linalg.norm(W @ W.T - W.T @ W, "fro"), rel=1e-14, abs=1e-15)
