"""System norms (dynmem.norms) against independent references: quadrature, impulse sums, dense sweeps."""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.optimize

import dynmem as dm
from dynmem.norms import frequency_response, gramians, h2_norm, hankel_singular_values, hinf_norm, state_space


def _sweep_max(system, hi, discrete=None, n=20001):
    """Dense frequency sweep, then a bounded scalar refinement around the best grid point."""
    w = np.linspace(0.0, hi, n)
    sv = np.linalg.svd(frequency_response(system, w, discrete=discrete), compute_uv=False)[:, 0]
    i = int(np.argmax(sv))
    lo_, hi_ = w[max(i - 1, 0)], w[min(i + 1, n - 1)]
    f = lambda x: -np.linalg.svd(frequency_response(system, [x], discrete=discrete)[0], compute_uv=False)[0]
    r = scipy.optimize.minimize_scalar(f, bounds=(lo_, hi_), method="bounded", options={"xatol": 1e-12})
    return max(sv[i], -r.fun)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h2_equals_quadrature_of_kernel(seed):
    m = dm.LinearRNN.random(6, 2, spectral_abscissa=-0.3, rng=seed)
    f = lambda t: np.sum((m.c @ scipy.linalg.expm(m.W * t) @ m.U) ** 2)
    v, _ = scipy.integrate.quad(f, 0, np.inf, limit=500, epsabs=1e-15, epsrel=1e-12)
    assert h2_norm(m) == pytest.approx(np.sqrt(v), rel=1e-9)


def test_h2_of_diagonal_ssm_closed_form():
    s = dm.DiagonalSSM.random(7, 1, rng=3)
    a = s.C * s.B[:, 0]
    lam = s.Lambda
    # int_0^inf (Re sum a_j e^{lam_j t})^2 dt, with Re z = (z + conj z)/2
    tot = 0.0
    for aj, lj in zip(a, lam):
        for ak, lk in zip(a, lam):
            tot += (aj * ak / -(lj + lk) + aj * np.conj(ak) / -(lj + np.conj(lk))).real / 2
    assert h2_norm(s) == pytest.approx(np.sqrt(tot), rel=1e-11)
    assert h2_norm(dm.DiagonalSSM(s.Lambda, s.B, s.C, np.ones(1))) == np.inf


def test_discrete_h2_equals_impulse_sum_and_simulation_convention():
    s = dm.DiagonalSSM.random(5, 1, rng=4, feedthrough=True).discretize(0.5)
    A, B, C, D = s.linear_system()
    # the state-space convention reproduces the model's own outputs
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 40, 1))
    h, ys = np.zeros(A.shape[0]), []
    for k in range(40):
        ys.append((C @ h + D @ x[0, k])[0])
        h = A @ h + B @ x[0, k]
    np.testing.assert_allclose(ys, s.outputs(x, np.zeros((1, A.shape[0])))[0], atol=1e-13)
    g2 = np.sum(D ** 2) + sum(np.sum((C @ np.linalg.matrix_power(A, k) @ B) ** 2) for k in range(3000))
    assert h2_norm(s) == pytest.approx(np.sqrt(g2), rel=1e-12)


def test_identity_discrete_rnn_linear_system_matches_forward():
    r = dm.DiscreteRNN.random(4, 2, spectral_radius=0.8, activation="identity", rng=5)
    e = dm.LinearRNN.random(4, 2, rng=5).as_ctrnn().replace(activation="identity").discretize(0.1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 30, 2))
    for model in (r, e):
        A, B, C, D = model.linear_system()
        h, ys = np.zeros(4), []
        for k in range(30):
            ys.append((C @ h + D @ x[0, k])[0])
            h = A @ h + B @ x[0, k]
        np.testing.assert_allclose(ys, model.outputs(x, np.zeros((1, 4)))[0], atol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        dm.DiscreteRNN.random(3, rng=0).linear_system()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hinf_against_dense_sweep_continuous(seed):
    m = dm.LinearRNN.random(8, 2, spectral_abscissa=-0.2, rng=seed)
    ss = state_space(m)
    ss = (ss.A, ss.B, np.vstack([ss.C, np.ones((1, 8))]), np.array([[0.3, 0.0], [0.0, 0.1]]))  # MIMO with D
    r = hinf_norm(ss, discrete=False)
    assert r.success
    hi = 3 * np.abs(np.linalg.eigvals(ss[0])).max()
    ref = _sweep_max(ss, hi, discrete=False)
    assert r.norm == pytest.approx(ref, rel=1e-9)
    # attained at the reported frequency
    s_at = np.linalg.svd(frequency_response(ss, [r.frequency], discrete=False)[0], compute_uv=False)[0]
    assert s_at == pytest.approx(r.norm, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hinf_against_dense_sweep_discrete(seed):
    s = dm.DiagonalSSM.random(6, 1, rng=seed, feedthrough=True, decay=(0.05, 0.5)).discretize(0.3)
    r = hinf_norm(s)
    assert r.success
    assert r.norm == pytest.approx(_sweep_max(s, np.pi), rel=1e-9)
    assert 0.0 <= r.frequency <= np.pi


def test_hinf_of_first_order_lag():
    # G(s) = 1/(s + a): |G|_inf = 1/a at omega = 0; discrete 1/(z - q) has 1/(1 - q) at theta = 0
    r = hinf_norm((np.array([[-0.5]]), np.array([[1.0]]), np.array([[1.0]])), discrete=False)
    assert r.norm == pytest.approx(2.0, rel=1e-12)
    r = hinf_norm((np.array([[0.9]]), np.array([[1.0]]), np.array([[1.0]])), discrete=True)
    assert r.norm == pytest.approx(10.0, rel=1e-10)


@pytest.mark.parametrize("discrete", [False, True])
def test_hankel_singular_values_against_eig_of_PQ(discrete):
    rng = np.random.default_rng(7)
    if discrete:
        model = dm.DiscreteRNN.random(7, 2, spectral_radius=0.85, activation="identity", rng=rng)
    else:
        model = dm.LinearRNN.random(7, 2, spectral_abscissa=-0.4, rng=rng)
    g = gramians(model)
    assert g.residual < 1e-12
    ref = np.sqrt(np.sort(np.linalg.eigvals(g.P @ g.Q).real)[::-1])
    hsv = hankel_singular_values(model)
    np.testing.assert_allclose(hsv, ref, rtol=1e-8, atol=1e-14 * ref[0])
    # the largest Hankel singular value bounds the H-infinity norm from below, twice their sum from above
    hinf = hinf_norm(model).norm
    D = state_space(model).D
    assert hsv[0] <= hinf * (1 + 1e-10)
    assert hinf <= 2 * hsv.sum() + np.linalg.norm(D, 2) + 1e-12


def test_validation_messages():
    A = np.array([[0.1]])
    with pytest.raises(ValueError, match="`discrete` must be given"):
        h2_norm((A, [[1.0]], [[1.0]]))
    with pytest.raises(ValueError, match="Hurwitz"):
        h2_norm((A, [[1.0]], [[1.0]]), discrete=False)
    with pytest.raises(ValueError, match="Schur"):
        hinf_norm((np.array([[1.5]]), [[1.0]], [[1.0]]), discrete=True)
    with pytest.raises(ValueError, match="`B` must have shape"):
        gramians((np.eye(2) * -1, np.ones((3, 1)), np.ones((1, 2))), discrete=False)
    with pytest.raises(TypeError, match="linear_system"):
        h2_norm(dm.CTRNN.random(3, rng=0))
    with pytest.raises(ValueError, match="`discrete` must match"):
        h2_norm(dm.LinearRNN.random(3, rng=0), discrete=True)
