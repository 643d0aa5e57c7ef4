"""dynmem.margins against hand computation, brute force and independent solvers."""

import math

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmem import margins as mg


def _rotation(a, b):
    return np.array([[a, -b], [b, a]])


# -- W + beta I ---------------------------------------------------------------


def _euler_rho(W, beta, dt):
    return np.abs(np.linalg.eigvals(np.eye(W.shape[0]) + dt * (W + beta * np.eye(W.shape[0])))).max()


@pytest.mark.parametrize("W", [np.diag([-0.3, -0.05, -1.2]), np.array([[-1.0, 20.0], [0.0, -1.0]]),
                               np.array([[-0.2, 5.0, 0.0], [0.0, -0.4, 3.0], [0.0, 0.0, -0.7]])])
def test_continuous_shift_threshold_is_where_the_flow_starts_to_grow(W):
    # independent of eigenvalues: the log of |e^{(W + beta I) t}| over a long t changes sign at beta*
    from scipy.linalg import expm

    b = mg.shift_threshold(W)
    t = 4000

    def growth(beta):  # (1/t) log |e^{(W + beta I) t}|_2, through expm and powers (no eigenvalues)
        return np.log(np.linalg.norm(np.linalg.matrix_power(expm(W + beta * np.eye(W.shape[0])), t), 2)) / t

    assert growth(b - 0.01) < 0 < growth(b + 0.01)
    # non-normal W: the threshold is -alpha(W) although the log-norm is positive
    assert b == pytest.approx(-np.linalg.eigvals(W).real.max(), rel=1e-12)


@pytest.mark.parametrize("a,b,dt", [(-0.1, 0.3, 1.0), (-0.5, 0.6, 1.0), (-0.05, 0.0, 1.0), (-3.0, 1.0, 0.1)])
def test_euler_shift_threshold_by_hand_and_by_root_finding(a, b, dt):
    W = _rotation(a, b)
    hand = (math.sqrt(1 - (dt * b) ** 2) - 1) / dt - a
    got = mg.shift_threshold(W, dt=dt)
    assert got == pytest.approx(hand, abs=1e-14)
    # independent route: the root of rho(I + dt (W + beta I)) - 1 by brentq
    root = scipy.optimize.brentq(lambda beta: _euler_rho(W, beta, dt) - 1.0, hand - 0.5 * abs(hand) - 1e-3, hand + 1.0,
                                 xtol=1e-14)
    assert got == pytest.approx(root, abs=1e-10)


def test_euler_shift_threshold_of_a_non_normal_block_and_the_real_case():
    W = np.array([[-0.3, 4.0], [0.0, -0.3]])
    assert mg.shift_threshold(W, dt=1.0) == pytest.approx(0.3, abs=1e-12)
    assert mg.discrete_margin(W) == pytest.approx(0.3, abs=1e-12)  # real dominant eigenvalue: the two agree


def test_euler_shift_threshold_is_minus_inf_when_no_shift_stabilises():
    assert mg.shift_threshold(_rotation(-0.1, 1.5), dt=1.0) == -math.inf


def test_discrete_margin_of_an_euler_model_with_a_complex_pair():
    # eigenvalues of I + W: 0.9 +- 0.8i, modulus sqrt(0.81 + 0.64) = 1.2042: Euler-unstable with -alpha(W) = 0.1 > 0
    W = _rotation(-0.1, 0.8)
    assert mg.discrete_margin(W) == pytest.approx(1 - math.sqrt(1.45), abs=1e-14)
    assert -np.linalg.eigvals(W).real.max() == pytest.approx(0.1)
    # a slow complex pair: 1 - |0.95 + 0.1 i|
    assert mg.discrete_margin(_rotation(-0.05, 0.1)) == pytest.approx(1 - math.hypot(0.95, 0.1), abs=1e-14)
    # dt: margin / dt -> -alpha(W) as dt -> 0
    assert mg.discrete_margin(_rotation(-0.05, 0.1), dt=1e-6) / 1e-6 == pytest.approx(0.05, rel=1e-4)


# -- discrete stability radius -----------------------------------------------


def test_discrete_radius_of_a_normal_matrix_is_one_minus_rho():
    A = np.diag([0.9, -0.5, 0.3])
    assert mg.discrete_stability_radius(A) == pytest.approx(0.1, abs=1e-12)
    R = _rotation(0.6, 0.7)  # normal, |lambda| = sqrt(0.85)
    assert mg.discrete_stability_radius(R) == pytest.approx(1 - math.sqrt(0.85), abs=1e-10)


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**32 - 1))
def test_discrete_radius_against_a_dense_grid_and_a_certificate(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 5))
    A = rng.standard_normal((m, m))
    A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()
    r = mg.discrete_stability_radius(A)
    th = np.linspace(0, math.pi, 20001)
    M = A[None].astype(complex) - np.exp(1j * th)[:, None, None] * np.eye(m)[None]
    dense = np.linalg.svd(M, compute_uv=False)[:, -1].min()
    assert r <= dense + 1e-12 and r >= dense - 1e-6 * max(1.0, dense)
    # certificate: a perturbation of norm r puts an eigenvalue on the unit circle
    k = np.argmin(np.linalg.svd(M, compute_uv=False)[:, -1])
    Uu, s, Vh = np.linalg.svd(M[k])
    E = -s[-1] * np.outer(Uu[:, -1], Vh[-1])  # Vh[-1] is v^H: (A + E) v = e^{i theta} v
    assert np.abs(np.linalg.eigvals(A + E)).max() == pytest.approx(1.0, abs=1e-9)
    assert np.linalg.norm(E, 2) == pytest.approx(dense, rel=1e-12)


def test_discrete_radius_of_an_unstable_matrix_is_zero():
    assert mg.discrete_stability_radius(np.diag([1.01, 0.2])) == 0.0


# -- modes and the effective margin --------------------------------------------


def test_effective_margin_ignores_an_unused_slow_mode():
    W = np.diag([-0.5, -0.01])
    U = np.array([1.0, 1.0])
    c = np.array([1.0, 1e-6])
    dec = mg.modal_decomposition(W, U, c, dt=1.0)
    eff = mg.effective_margin(dec, 256, share=1e-3)
    assert eff.spectral == pytest.approx(0.01, abs=1e-14)
    assert eff.value == pytest.approx(0.5, abs=1e-14)
    # the slow mode's share by hand: 1e-6 * (1 - 0.99^256) / 0.01 against 1 * (1 - 0.5^256) / 0.5
    slow = 1e-6 * (1 - 0.99 ** 256) / 0.01
    assert eff.shares[np.argmax(np.abs(dec.poles))] == pytest.approx(slow / (slow + 2.0), rel=1e-12)
    # a larger read-out weight makes it count
    eff2 = mg.effective_margin(mg.modal_decomposition(W, U, np.array([1.0, 1e-2]), dt=1.0), 256)
    assert eff2.value == pytest.approx(0.01, abs=1e-14)


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_modal_kernel_equals_the_iterated_recurrence(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 6))
    W = -0.3 * np.eye(m) + 0.2 * rng.standard_normal((m, m))
    U, c = rng.standard_normal((m, 2)), rng.standard_normal(m)
    dt = float(rng.uniform(0.1, 1.0))
    dec = mg.modal_decomposition(W, U, c, dt=dt)
    A, B = np.eye(m) + dt * W, dt * U
    direct = np.array([c @ np.linalg.matrix_power(A, j) @ B for j in range(30)])
    scale = max(1.0, np.abs(direct).max())
    assert np.abs(dec.kernel(30) - direct).max() <= 1e-10 * scale * max(1.0, dec.condition)


def test_continuous_decomposition_masses_by_hand():
    dec = mg.modal_decomposition(np.diag([-1.0, -0.1]), np.array([2.0, 1.0]), np.array([1.0, 3.0]))
    mass = dec.mass(10.0)
    assert mass == pytest.approx([2 * (1 - math.exp(-10)), 3 * (1 - math.exp(-1)) / 0.1], rel=1e-12)
    assert not dec.discrete


def test_margins_refuse_bad_arguments():
    with pytest.raises(ValueError, match="`W`"):
        mg.shift_threshold(np.ones((2, 3)))
    with pytest.raises(ValueError, match="`dt`"):
        mg.discrete_margin(np.eye(2), dt=0.0)
    with pytest.raises(ValueError, match="`U`"):
        mg.modal_decomposition(np.eye(2), np.ones((3, 1)), np.ones(2))
    dec = mg.modal_decomposition(-np.eye(2), np.ones(2), np.ones(2), dt=1.0)
    with pytest.raises(ValueError, match="`share`"):
        mg.effective_margin(dec, 10, share=2.0)
    with pytest.raises(ValueError, match="`margin`"):
        mg.frontier_error(np.ones(5), 1.5)
    with pytest.raises(TypeError, match="`decomposition`"):
        mg.effective_margin("x", 10)


# -- the linear frontier ---------------------------------------------------------


def test_window_weights_give_the_exact_output_mean_square():
    # n impulse sequences scaled by sqrt(n): their empirical input covariance is exactly I
    n = 12
    rng = np.random.default_rng(3)
    r = rng.standard_normal(n)
    X = math.sqrt(n) * np.eye(n)
    Y = np.array([np.convolve(x, r)[:n] for x in X])
    assert np.mean(Y * Y) == pytest.approx(np.sum(mg.window_weights(n) * r * r), rel=1e-13)


def _brute_force(rho, poles, bound):
    """The same constrained least squares by SLSQP on the split weights (an independent solver)."""
    n = rho.size
    w = np.sqrt(mg.window_weights(n))
    P = poles[None, :] ** np.arange(n)[:, None]
    M = w[:, None] * np.hstack([P, -P])
    y = w * rho
    k = M.shape[1]
    res = scipy.optimize.minimize(lambda x: np.sum((M @ x - y) ** 2), np.full(k, bound / (2 * k)),
                                  jac=lambda x: 2 * M.T @ (M @ x - y), method="SLSQP",
                                  bounds=[(0, None)] * k,
                                  constraints=[{"type": "ineq", "fun": lambda x: bound - x.sum(), "jac": lambda x: -np.ones(k)}],
                                  options={"ftol": 1e-16, "maxiter": 2000})
    return res.fun / np.sum(y * y)


@pytest.mark.parametrize("margin,bound", [(0.05, 0.8), (0.2, 1.5), (0.4, 0.5), (0.1, 50.0)])
def test_frontier_error_matches_an_independent_constrained_solver(margin, bound):
    rho = (1 + np.arange(24.0)) ** -1.5
    fit = mg.frontier_error(rho, margin, l1_bound=bound, n_poles=6)
    poles = mg.frontier_error(rho, margin, l1_bound=math.inf, n_poles=6)  # same grid
    assert fit.l1 <= bound * (1 + 1e-9)
    assert np.all(fit.poles <= 1 - margin + 1e-15)
    ref = _brute_force(rho, np.concatenate([np.exp(-np.geomspace(-math.log1p(-margin), 20.0, 6)), [0.0]]), bound)
    assert fit.error == pytest.approx(ref, rel=1e-5, abs=1e-12)
    assert poles.error <= fit.error + 1e-15  # the bound can only cost


def test_linear_frontier_is_the_largest_margin_reaching_each_error():
    rho = (1 + np.arange(64.0)) ** -1.5
    errors = [1e-2, 1e-3, 1e-4]
    mu = mg.linear_frontier(rho, errors, l1_bound=2.0, tol=1e-4)
    assert np.all(np.diff(mu) < 0)  # a smaller error needs a smaller margin (the curse of memory)
    for m, e in zip(mu, errors):
        assert mg.frontier_error(rho, m, l1_bound=2.0).error <= e
        assert mg.frontier_error(rho, m + 2e-4, l1_bound=2.0).error > e
    # an exponential target reaches any error at its own margin, not above it by more than the grid
    ex = np.exp(-0.2 * np.arange(64.0))
    need = 1 - math.exp(-0.2)
    assert mg.frontier_error(ex, need, l1_bound=1.0).error < 1e-20
    assert mg.frontier_error(ex, need + 0.02, l1_bound=1.0).error > 1e-6
