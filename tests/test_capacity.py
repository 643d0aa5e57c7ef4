"""Memory capacity (dynmem.capacity): the exact linear total equals the controllability rank; regression falls short."""

import numpy as np
import pytest

import dynmem as dm
from dynmem.capacity import krylov_basis, linear_memory_capacity, memory_capacity, run_states


def _orth(m, rng):
    return np.linalg.qr(rng.standard_normal((m, m)))[0]


@pytest.mark.parametrize("m", [16, 64, 256])
def test_full_rank_random_W_has_capacity_m(m):
    rng = np.random.default_rng(m)
    A = rng.standard_normal((m, m)) / np.sqrt(m)
    A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()
    b = rng.standard_normal(m)
    for method in ("modal", "arnoldi"):
        assert linear_memory_capacity((A, b), method=method).total == m


@pytest.mark.parametrize("r", [1, 37, 100])
def test_rank_deficient_pairs_width_256(r):
    # b confined to an r-dimensional invariant subspace of a symmetric W (distinct eigenvalues): rank r exactly
    m, rng = 256, np.random.default_rng(r)
    Q = _orth(m, rng)
    lam = np.linspace(-0.9, 0.9, m)[rng.permutation(m)]
    v = np.zeros(m)
    v[:r] = rng.choice([-1.0, 1.0], r) * rng.uniform(0.1, 1.0, r)
    res = linear_memory_capacity((Q @ np.diag(lam) @ Q.T, Q @ v))
    assert res.total == r and res.method == "modal" and res.margin > 1e6
    # the same with an ill-conditioned eigenvector basis (cond 1e3): still exact
    S = Q @ np.diag(np.logspace(0, -3, m)) @ _orth(m, rng)
    res = linear_memory_capacity((S @ np.diag(lam) @ np.linalg.inv(S), S @ v))
    assert res.total == r and res.margin > 1e3


def test_jordan_chains_and_repeated_eigenvalues():
    m = 256
    A = 0.3 * np.eye(m) + 0.9 * np.diag(np.ones(m - 1), -1)  # one Jordan block: eigenvector condition infinite
    assert linear_memory_capacity((A, np.eye(m)[0])).total == m
    res = linear_memory_capacity((A, np.eye(m)[150]))  # reaches e_150 .. e_255 only
    assert res.total == 106 and res.method == "arnoldi"
    # a scalar input excites one direction of a repeated eigenvalue's eigenspace
    assert linear_memory_capacity((np.diag([0.5, 0.5, 0.3, 0.3, -0.2]), np.ones(5))).total == 3


def test_ill_conditioned_W_naive_estimates_fall_short():
    # normal W, eigenvalues spread on (-0.95, 0.95): the Krylov basis and the Gramian are ill-conditioned
    m, rng = 64, np.random.default_rng(3)
    Q = _orth(m, rng)
    W = Q @ np.diag(np.linspace(-0.95, 0.95, m)) @ Q.T
    u = Q @ np.ones(m) / np.sqrt(m)
    model = dm.DiscreteRNN(W, u[:, None], np.zeros(m), np.ones(m), activation="identity")
    exact = linear_memory_capacity(model)
    assert exact.total == m
    assert exact.gramian_condition > 1e15
    reg = memory_capacity(model, n_samples=20000, max_delay=200, rng=1)
    assert reg.total < 0.75 * m  # measured 37.4 of 64: the shortfall [BGO] describe
    kalman = np.column_stack([np.linalg.matrix_power(W, k) @ u for k in range(m)])
    assert np.linalg.matrix_rank(kalman) < m  # the SVD rank of the monomial Krylov matrix falls short too


def test_regression_matches_exact_profile_when_well_conditioned():
    model = dm.DiscreteRNN.random(5, spectral_radius=0.5, activation="identity", rng=2)
    reg = memory_capacity(model, n_samples=50000, max_delay=40, rng=1)
    ex = linear_memory_capacity(model, max_delay=40)
    assert ex.total == 5
    assert ex.mc.sum() == pytest.approx(5.0, abs=1e-9)
    # in-sample R^2: the regression total exceeds the truth by about the stated bias, plus sampling noise
    assert abs(reg.total - 5.0) < 0.05
    assert reg.total_bias == pytest.approx(41 * 6 / 50000)
    np.testing.assert_allclose(reg.mc, ex.mc, atol=0.02)


def test_exact_profile_of_scalar_recurrence():
    # h_{t+1} = a h_t + x_t: MC_k = a^{2k} (1 - a^2), summing to 1 = rank
    a = 0.8
    ex = linear_memory_capacity((np.array([[a]]), np.array([1.0])), max_delay=30)
    np.testing.assert_allclose(ex.mc, a ** (2 * np.arange(31)) * (1 - a * a), rtol=1e-12)
    assert ex.total == 1
    res = linear_memory_capacity(dm.DiagonalSSM(np.array([-0.5 + 1j]), np.ones((1, 1)), np.ones(1), np.zeros(1)).discretize(1.0))
    assert res.total == 2  # a complex mode is two real states reached by one real input


def test_nonlinear_regression_and_states():
    model = dm.DiscreteRNN.random(10, spectral_radius=0.9, rng=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 20, 1))
    S = run_states(model, X)
    # run_states agrees with the model's own outputs through the read-out
    np.testing.assert_allclose(S @ model.c, model.outputs(X, np.zeros((2, 10))), atol=1e-12)
    res = memory_capacity(model, n_samples=5000, rng=0)
    assert 0 < res.total <= 10 + res.total_bias + 0.5
    assert res.n_samples == 5000


def test_krylov_basis_is_orthonormal_and_validation():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 30)) / 6
    V, H, d = krylov_basis(A, rng.standard_normal(30))
    np.testing.assert_allclose(V.T @ V, np.eye(30), atol=1e-13)
    np.testing.assert_allclose(A @ V, V @ H[:30], atol=1e-12)  # the Arnoldi relation (full space: no remainder)
    with pytest.raises(ValueError, match="Schur stable"):
        linear_memory_capacity((np.eye(2), np.ones(2)))
    with pytest.raises(ValueError, match="scalar input"):
        linear_memory_capacity((0.5 * np.eye(2), np.ones((2, 2))))
    with pytest.raises(TypeError, match="step"):
        memory_capacity(dm.LinearRNN.random(3, rng=0))
    with pytest.raises(ValueError, match="`n_samples` must exceed"):
        memory_capacity(dm.DiscreteRNN.random(3, rng=0), n_samples=3)
