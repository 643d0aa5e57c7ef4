"""Lyapunov spectra (dynmem.lyapunov_exponents) against eigenvalues, Liouville's identity and Lorenz's known exponents."""

import numpy as np
import pytest

import dynmem as dm
from dynmem.lyapunov_exponents import has_compiled_flow, kaplan_yorke_dimension, lyapunov_spectrum


class Lorenz:
    """A user-written continuous model: only hidden, inputs, vector_field and jacobian (batched)."""

    hidden, inputs = 3, 1

    def __init__(self, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
        self.sigma, self.rho, self.beta = sigma, rho, beta

    def vector_field(self, H, X):
        x, y, z = H.T
        return np.stack([self.sigma * (y - x), x * (self.rho - z) - y, x * y - self.beta * z], axis=1)

    def jacobian(self, H, X):
        x, y, z = H.T
        J = np.zeros((H.shape[0], 3, 3))
        J[:, 0, 0], J[:, 0, 1] = -self.sigma, self.sigma
        J[:, 1, 0], J[:, 1, 1], J[:, 1, 2] = self.rho - z, -1.0, -x
        J[:, 2, 0], J[:, 2, 1], J[:, 2, 2] = y, x, -self.beta
        return J


def _nonnormal(eigs, cond_scale, seed):
    rng = np.random.default_rng(seed)
    n = len(eigs)
    S = np.linalg.qr(rng.standard_normal((n, n)))[0] @ np.diag(np.logspace(0, -cond_scale, n)) @ \
        np.linalg.qr(rng.standard_normal((n, n)))[0]
    return S @ np.diag(eigs) @ np.linalg.inv(S)


def test_linear_map_exponents_are_log_abs_eig():
    eigs = np.array([0.95, -0.8, 0.6, 0.4, -0.2, 0.1])
    W = _nonnormal(eigs, 2, 0)
    model = dm.DiscreteRNN(W, np.ones((6, 1)), np.zeros(6), np.ones(6), activation="identity")
    X = np.random.default_rng(1).standard_normal((1500, 1))
    res = lyapunov_spectrum(model, X=X, transient=500, rng=0)
    np.testing.assert_allclose(res.exponents, np.sort(np.log(np.abs(eigs)))[::-1], atol=1e-6)
    assert abs(res.exponents.sum() - np.log(abs(np.linalg.det(W)))) < 1e-10
    assert res.kaplan_yorke == 0.0


def test_complex_pair_normal_map_and_leading_k():
    th = 0.7
    R = 0.9 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    W = np.block([[R, np.zeros((2, 2))], [np.zeros((2, 2)), np.diag([0.5, -0.3])]])
    Q = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))[0]
    model = dm.DiscreteRNN(Q @ W @ Q.T, np.ones((4, 1)), np.zeros(4), np.ones(4), activation="identity")
    res = lyapunov_spectrum(model, X=np.zeros((800, 1)), transient=300, k=2, rng=0)
    np.testing.assert_allclose(res.exponents, [np.log(0.9)] * 2, atol=1e-6)


def test_nonlinear_map_sum_equals_mean_log_det():
    model = dm.DiscreteRNN.random(40, spectral_radius=3.0, rng=3)  # a chaotic tanh network
    X = 0.1 * np.random.default_rng(4).standard_normal((3000, 1))
    res = lyapunov_spectrum(model, X=X, transient=500, rng=0)
    assert res.success
    assert abs(res.exponents.sum() - res.volume_rate) < 1e-10
    # the running estimate settles: its last value is the estimate, its spread across blocks is the stderr
    np.testing.assert_allclose(res.running[-1], res.exponents, atol=1e-14)
    assert np.all(res.stderr > 0) and np.all(res.stderr < 0.05)
    assert res.exponents[0] > 0  # chaos at gain 3 ([ENG])


def test_linear_flow_exponents_are_real_parts_of_eig():
    eigs = np.array([-0.1, -0.35, -0.8, -1.5])
    W = _nonnormal(eigs, 1, 5)
    model = dm.LinearRNN(W, np.ones((4, 1)), np.ones(4))
    res = lyapunov_spectrum(model, s0=np.ones(4), t_end=200.0, transient=40.0, reorth=2.0, rtol=1e-11, atol=1e-14,
                            method="DOP853", rng=0)
    np.testing.assert_allclose(res.exponents, eigs, atol=1e-6)
    assert abs(res.exponents.sum() - np.trace(W)) < 1e-10
    assert abs(res.volume_rate - np.trace(W)) < 1e-12


def test_lorenz_quick():
    rng = np.random.default_rng(0)
    s0 = np.array([1.0, 1.0, 20.0]) + rng.standard_normal((40, 3))
    res = lyapunov_spectrum(Lorenz(), s0=s0, t_end=100.0, transient=20.0, reorth=0.5, rtol=1e-8, atol=1e-10, rng=0)
    assert abs(res.exponents[0] - 0.9056) < 4 * res.stderr[0] + 0.005
    assert abs(res.exponents[1]) < 4 * res.stderr[1] + 0.005
    assert abs(res.exponents[2] + 14.5723) < 4 * res.stderr[2] + 0.02
    assert abs(res.exponents.sum() - res.volume_rate) < 1e-7  # tr J = -(sigma + 1 + beta), through the integrator
    assert res.volume_rate == pytest.approx(-(10 + 1 + 8 / 3), rel=1e-12)
    assert 2.0 < res.kaplan_yorke < 2.1  # 2.06


@pytest.mark.slow
def test_lorenz_lambda1_to_5e_3():
    rng = np.random.default_rng(0)
    s0 = np.array([1.0, 1.0, 20.0]) + rng.standard_normal((1000, 3))
    res = lyapunov_spectrum(Lorenz(), s0=s0, t_end=100.0, transient=20.0, reorth=0.5, rtol=1e-8, atol=1e-10, rng=0)
    assert abs(res.exponents[0] - 0.9056) < 0.005  # measured 0.9054 +- 0.0022
    assert res.stderr[0] < 0.003
    assert abs(res.exponents[2] + 14.5723) < 0.01


def test_kaplan_yorke_and_validation():
    assert kaplan_yorke_dimension([0.9056, 0.0, -14.5723]) == pytest.approx(2 + 0.9056 / 14.5723)
    assert kaplan_yorke_dimension([-0.1, -1.0]) == 0.0
    assert kaplan_yorke_dimension([0.5, 0.1]) == 2.0
    with pytest.raises(ValueError, match="`t_end` must be given"):
        lyapunov_spectrum(Lorenz())
    with pytest.raises(ValueError, match="`X`"):
        lyapunov_spectrum(dm.DiscreteRNN.random(3, rng=0))
    with pytest.raises(TypeError, match="step"):
        lyapunov_spectrum(object())
    with pytest.raises(ValueError, match="`transient`"):
        lyapunov_spectrum(dm.DiscreteRNN.random(3, rng=0), X=np.zeros((10, 1)), transient=10)


# --- the compiled flow path (method "dop853", CTRNN-field models) against the solve_ivp path and closed forms


def _chaotic_ctrnn(n, g, seed, activation="tanh"):
    rng = np.random.default_rng(seed)
    W = g * rng.standard_normal((n, n)) / np.sqrt(n)  # [ENG]'s random network: chaotic for g > 1 (with leak 1)
    return dm.CTRNN(W, rng.standard_normal((n, 1)), np.zeros(n), np.ones(n), activation=activation, leak=1.0)


@pytest.mark.parametrize("n, g, k, chaotic", [(48, 3.0, 4, True), (16, 2.0, None, False)])
def test_compiled_flow_agrees_with_solve_ivp_on_random_ctrnn(n, g, k, chaotic):
    model = _chaotic_ctrnn(n, g, 0)
    s0 = np.random.default_rng(8).standard_normal((4, n))
    kw = dict(s0=s0, k=k, t_end=60.0, transient=20.0, reorth=1.0, rtol=1e-8, atol=1e-10, rng=0)
    fast = lyapunov_spectrum(model, method="dop853", **kw)
    ref = lyapunov_spectrum(model, method="DOP853", **kw)
    assert fast.success and ref.success
    if chaotic:  # measured lambda_1 = 0.042 +- 0.009: the comparison is between two noisy estimates
        assert fast.exponents[0] > 3 * fast.stderr[0]
    tol = 3 * np.hypot(fast.stderr, ref.stderr)
    assert np.all(np.abs(fast.exponents - ref.exponents) <= tol)
    # the same pair and controller: over this window the two agree far inside their statistical error
    np.testing.assert_allclose(fast.exponents, ref.exponents, atol=1e-2 * np.max(ref.stderr))
    if k is None:
        assert abs(fast.exponents.sum() - fast.volume_rate) < 1e-7


def test_compiled_liouville_sum_to_1e_10():
    model = _chaotic_ctrnn(8, 2.5, 3)
    res = lyapunov_spectrum(model, s0=np.full(8, 0.3), t_end=20.0, transient=5.0, reorth=0.5, rtol=1e-12,
                            atol=1e-14, method="dop853", rng=0)
    assert res.success
    assert abs(res.exponents.sum() - res.volume_rate) < 1e-10
    # the volume rate is the time average of tr J = sum_i sigma'(z_i) W_ii - m with sigma' in (0, 1]
    w = np.diag(model.W)
    assert np.minimum(w, 0).sum() - 8.0 <= res.volume_rate <= np.maximum(w, 0).sum() - 8.0


def test_compiled_linear_flow_exponents_are_real_parts_of_eig():
    eigs = np.array([-0.1, -0.35, -0.8, -1.5])
    W = _nonnormal(eigs, 1, 5)
    model = dm.LinearRNN(W, np.ones((4, 1)), np.ones(4))
    assert has_compiled_flow(model)
    res = lyapunov_spectrum(model, s0=np.ones(4), t_end=200.0, transient=40.0, reorth=2.0, rtol=1e-11, atol=1e-14,
                            method="dop853", rng=0)
    np.testing.assert_allclose(res.exponents, eigs, atol=1e-6)
    assert abs(res.exponents.sum() - np.trace(W)) < 1e-10
    assert abs(res.volume_rate - np.trace(W)) < 1e-12


def test_compiled_linear_flow_complex_pair_leading_k_with_leak_and_input():
    # CTRNN(identity, leak) at a constant input: the field is affine, J = W - leak I everywhere
    th = 1.3
    R = np.array([[-0.2, -th], [th, -0.2]])
    A = np.block([[R, np.zeros((2, 2))], [np.zeros((2, 2)), np.diag([-0.9, -1.4])]])
    Qr = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))[0]
    model = dm.CTRNN(Qr @ A @ Qr.T + 0.5 * np.eye(4), np.ones((4, 1)), 0.1 * np.ones(4), np.ones(4),
                     activation="identity", leak=0.5)
    res = lyapunov_spectrum(model, x=[0.7], s0=np.zeros(4), k=2, t_end=150.0, transient=30.0, reorth=1.0,
                            rtol=1e-11, atol=1e-14, rng=1)
    np.testing.assert_allclose(res.exponents, [-0.2, -0.2], atol=1e-6)


def test_method_dispatch_and_validation():
    assert has_compiled_flow(dm.CTRNN.random(3, rng=0)) and has_compiled_flow(dm.LinearRNN.random(3, rng=0))
    assert not has_compiled_flow(Lorenz()) and not has_compiled_flow(dm.DiscreteRNN.random(3, rng=0))
    with pytest.raises(TypeError, match="`method` 'dop853'.*CTRNNField"):
        lyapunov_spectrum(Lorenz(), t_end=1.0, method="dop853")
    with pytest.raises(ValueError, match="`method`"):
        lyapunov_spectrum(Lorenz(), t_end=1.0, method="rk4")
    with pytest.raises(ValueError, match="`rtol`"):
        lyapunov_spectrum(dm.CTRNN.random(3, rng=0), t_end=1.0, rtol=0.0)
    # "auto" takes the compiled path for a CTRNN and scipy's for Lorenz; both agree with the explicit names
    model = _chaotic_ctrnn(5, 2.0, 1)
    kw = dict(s0=np.ones(5), t_end=5.0, reorth=1.0, rng=0)
    auto, compiled = lyapunov_spectrum(model, **kw), lyapunov_spectrum(model, method="dop853", **kw)
    np.testing.assert_array_equal(auto.running, compiled.running)


def test_compiled_path_reports_a_blow_up():
    # relu with W = 5 I: h grows like e^{5 t} until the step size collapses; reported, not returned as numbers
    model = dm.CTRNN(5.0 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="relu")
    res = lyapunov_spectrum(model, s0=np.ones(2), t_end=400.0, method="dop853", rng=0)
    assert not res.success and "integration failed at t =" in res.message and "trajectory 0" in res.message
    # before it failed, the running estimate had found both exponents: J = 5 I exactly where h > 0
    np.testing.assert_allclose(res.running[-1], [5.0, 5.0], atol=1e-6)


@pytest.mark.parametrize("activation", ["hardtanh", "relu"])
def test_compiled_flow_agrees_with_solve_ivp_for_kinked_activations_bias_and_input(activation):
    rng = np.random.default_rng(0)
    n = 16
    W = 2.0 * rng.standard_normal((n, n)) / np.sqrt(n) - (0.5 * np.eye(n) if activation == "relu" else 0.0)
    model = dm.CTRNN(W, rng.standard_normal((n, 1)), 0.1 * rng.standard_normal(n), np.ones(n), activation=activation,
                     leak=1.0)
    kw = dict(x=[0.3], s0=np.random.default_rng(8).standard_normal((3, n)), k=3, t_end=30.0, transient=10.0,
              rtol=1e-8, atol=1e-10, rng=0)
    fast, ref = lyapunov_spectrum(model, method="dop853", **kw), lyapunov_spectrum(model, method="DOP853", **kw)
    assert fast.success and ref.success
    # measured differences <= 5e-8 against block standard errors >= 9e-6
    assert np.all(np.abs(fast.exponents - ref.exponents) <= 3 * np.hypot(fast.stderr, ref.stderr))
    np.testing.assert_allclose(fast.exponents, ref.exponents, atol=1e-6)
