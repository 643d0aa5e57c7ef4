"""train, fit_decay, perturbation_curve, the strategies and dynmem.testing on the gated cells and the SSMs."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynmem.gated import CTGRU, GRUCell, LSTMCell
from dynmem.memory import fit_decay, memory_function
from dynmem.models import CTRNN, DiscreteModel, Trainable
from dynmem.ssm import DiagonalSSM, DiscreteDiagonalSSM
from dynmem.stability import flat_blocks, perturbation_blocks, perturbation_curve, sample_perturbations, stability_boundary
from dynmem.strategies import diagonal_ssms, gated_cells
from dynmem.targets import ExponentialKernel
from dynmem.testing import assert_gradients_match, assert_memory_decays, default_memory_times, step_map_radius
from dynmem.training import train


def _models():
    return {
        "gru": GRUCell.random(5, 1, rng=1),
        "lstm": LSTMCell.random(5, 1, rng=1),
        "ssm": DiagonalSSM.random(4, 1, rng=1).discretize(1.0),
    }


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 15, 1))
    target = ExponentialKernel(0.5)
    return X, target.output_sequence(X, 1.0), target


@pytest.mark.parametrize("kind", ["gru", "lstm", "ssm"])
def test_train_lowers_the_loss_with_the_models_own_gradient(kind, data):
    X, Y, _ = data
    model = _models()[kind]
    assert isinstance(model, Trainable) and isinstance(model, DiscreteModel)
    for opt in ("adam", "lbfgs"):
        res = train(model, X, Y, optimizer=opt, steps=40, lr=0.02)
        assert res.success and type(res.model) is type(model)
        assert res.loss < 0.2 * res.history[0]
        # the reported loss is the returned model's own loss
        r = res.model.outputs(X, np.zeros((X.shape[0], model.state_size))) - Y
        assert res.loss == pytest.approx(np.mean(r * r), rel=1e-12)
        np.testing.assert_array_equal(res.model.flatten(), res.theta)


def test_train_first_adam_step_is_the_gradient_step(data):
    # Adam's first update is -lr * sign(g) (up to eps): check it against the model's own gradient.
    X, Y, _ = data
    model = _models()["lstm"]
    g = model.value_and_grad(X, Y).flat
    res = train(model, X, Y, steps=1, lr=1e-3, eps=1e-30)
    np.testing.assert_allclose(res.theta - model.flatten(), -1e-3 * np.sign(g), rtol=1e-9, atol=1e-15)


def test_train_refusals(data):
    X, Y, _ = data
    with pytest.raises(TypeError, match=r"`model` must be a DiscreteRNN or an EulerRNN, or a discrete model"):
        train(CTRNN.random(2), X, Y)
    with pytest.raises(TypeError, match=r"`model` must be a DiscreteRNN or an EulerRNN"):
        train(CTGRU.random(3, 1, rng=0), X, Y)  # continuous-time: not a DiscreteModel
    with pytest.raises(ValueError, match=r"`reparam` .* applies to a DiscreteRNN or an EulerRNN only; got a GRUCell"):
        train(GRUCell.random(3, 1, rng=0), X, Y, reparam="exp")


def _step_map_rate(model, x, step=1e-6):
    """-log of the spectral radius of the one-step map's Jacobian at the rest state under the constant input x."""
    d = model.inputs
    s_star = np.asarray(model.equilibrium(np.full((1, d), x)), dtype=float)[0]
    n = s_star.size
    E = step * np.eye(n)
    F = np.asarray(model.final_state(np.full((2 * n, 1, d), x), np.concatenate([s_star + E, s_star - E])), dtype=float)
    return -np.log(np.max(np.abs(np.linalg.eigvals((F[:n] - F[n:]).T / (2 * step)))))


@pytest.mark.parametrize("kind", ["gru", "lstm", "ssm"])
def test_fit_decay_on_the_memory_is_exponential(kind):
    model = _models()[kind]
    if kind == "ssm":
        t = default_memory_times(model)
        M = memory_function(model, t)
        fit = fit_decay(t, M.values)
        assert fit.kind == "exponential"
        # a linear model: the memory's rate is the slowest mode's, -log max|Lambda_bar| per step
        # (measured rel. error 1.4e-3: fit_decay's window on a sum of modes; allowed 5x that)
        assert fit.rate == pytest.approx(-np.log(np.max(np.abs(model.Lambda_bar))), rel=7e-3)
        return
    # a nonlinear cell under a Heaviside input of amplitude x relaxes to the rest state of the constant input
    # x, so the memory's tail decays at the rate of the step map linearised *there*, for the probe that
    # attains the sup in the tail (the saturated amplitudes +-10 are the slow ones: rates down to 0.006 per
    # step, against 0.5 at x = 0); the grid runs long enough for the slowest mode to dominate
    t = np.arange(0.0, 3400.0)
    M = memory_function(model, t)
    fit = fit_decay(t, M.values)
    assert fit.kind == "exponential"
    x_star = float(M.argmax[np.searchsorted(t, 0.5 * (fit.window[0] + fit.window[1])), 0])
    # measured rel. error 3.6e-9 (GRU, x* = -10) and 1.3e-6 (LSTM, x* = 10); allowed 1e-5 (8x the worse)
    assert fit.rate == pytest.approx(_step_map_rate(model, x_star), rel=1e-5)
    # and it is not the small-amplitude rate at the origin, which is 6x-100x faster
    assert fit.rate < 0.5 * -np.log(step_map_radius(model))


def test_step_map_radius_matches_the_ssm_modulus():
    ssm = _models()["ssm"]

    class WithFinalState:  # the SSM seen through final_state only
        inputs, state_size, dt = ssm.inputs, ssm.state_size, ssm.dt

        def equilibrium(self, X):
            return ssm.equilibrium(X)

        def final_state(self, X, S0):
            _, h = ssm.run(X, h0=S0[:, :ssm.hidden] + 1j * S0[:, ssm.hidden:])
            return np.concatenate([h.real, h.imag], axis=1)

    assert step_map_radius(WithFinalState()) == pytest.approx(np.max(np.abs(ssm.Lambda_bar)), rel=1e-8)


@pytest.mark.parametrize("kind", ["gru", "lstm", "ssm"])
def test_perturbation_curve_on_the_flat_parameters(kind, data):
    X, _, target = data
    model = _models()[kind]
    shapes = perturbation_blocks(model)
    assert sum(int(np.prod(s)) for s in shapes.values()) == model.n_params
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in flat_blocks(model).values()]), model.flatten())
    betas = [1e-4, 1e-3, 1e-2]
    c = perturbation_curve(model, target, betas, n_samples=6, rng=0, X_test=X[:4], ascent_steps=1, error="test")
    y = model.outputs(X[:4], np.zeros((4, model.state_size)))
    assert c.error0 == pytest.approx(np.mean((y - target.output_sequence(X[:4], 1.0)) ** 2), rel=1e-12)
    assert np.all(np.diff(c.max_error) >= 0) and c.max_error[0] >= c.error0 * (1 - 1e-6)
    assert np.all(np.isnan(c.shift_error))  # no W: no W + beta I shift
    # an independent recomputation of every random perturbation's error at beta = 1e-2, compared with the
    # curve's own samples: the same seed draws the same unit directions (common random numbers)
    delta = sample_perturbations(model, 1e-2, 6, rng=0)
    target_seq = target.output_sequence(X[:4], 1.0)
    recomputed = np.empty(6)
    for j in range(6):
        for name, arr in delta.items():
            assert np.linalg.norm(arr[j], ord=2 if arr.ndim == 3 else None) == pytest.approx(1e-2, rel=1e-12)
        theta = model.flatten() + np.concatenate([delta[n][j].ravel() for n in shapes])
        yp = model.unflatten(theta).outputs(X[:4], np.zeros((4, model.state_size)))
        recomputed[j] = np.mean((yp - target_seq) ** 2)
    assert np.any(recomputed != c.error0)  # the perturbations change the error
    np.testing.assert_allclose(c.sample_errors[2], recomputed, rtol=1e-12)
    # first-order growth at small beta: E(beta) - E(0) scales at most like beta
    assert c.max_error[1] - c.error0 <= 30 * (c.max_error[0] - c.error0) + 1e-12


def test_diverging_perturbations_count_as_diverged_and_the_boundary_takes_contract_curves(data):
    X, _, target = data
    ssm = DiagonalSSM(np.array([-0.01 + 0j]), np.ones((1, 1)), np.ones(1), np.zeros(1)).discretize(1.0)
    c = perturbation_curve(ssm, target, [1e-3, 0.5], n_samples=8, rng=0, X_test=np.ones((1, 3000, 1)),
                           adversarial=False, divergence=1e6)
    assert c.n_diverged[-1] > 0 and np.isinf(c.max_error[-1])
    c2 = perturbation_curve(_models()["ssm"], target, [1e-3, 0.5], n_samples=4, rng=0, X_test=X[:2], adversarial=False)
    sb = stability_boundary({1: c, 4: c2}, level=1.0)
    assert np.all(np.isnan(sb.margin)) and sb.widths.tolist() == [1, 4]


@settings(max_examples=10, deadline=None)
@given(cell=gated_cells(kinds=("gru", "lstm", "ctgru"), max_hidden=4, max_inputs=2))
def test_gated_cells_strategy_draws_valid_cells_whose_gradient_checks(cell):
    assert isinstance(cell, (GRUCell, LSTMCell, CTGRU)) and 1 <= cell.hidden <= 4 and 1 <= cell.inputs <= 2
    assert np.max(np.abs(cell.weight_hh)) <= 1.0 / np.sqrt(cell.hidden)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 5, cell.inputs))
    Y = rng.standard_normal((2, 5))
    g = cell.value_and_grad(X, Y, loss="sse").flat
    assert_gradients_match(lambda th: cell.unflatten(th).value_and_grad(X, Y, loss="sse").loss, cell.flatten(), g,
                           method="richardson", rtol=1e-7)


@settings(max_examples=10, deadline=None)
@given(ssm=diagonal_ssms(max_hidden=4, discretize=("zoh", "bilinear")), cont=diagonal_ssms(max_hidden=4, min_decay=0.2))
def test_diagonal_ssms_strategy_draws_stable_models(ssm, cont):
    assert isinstance(ssm, DiscreteDiagonalSSM) and np.all(np.abs(ssm.Lambda_bar) < 1)
    assert isinstance(cont, DiagonalSSM) and np.all(cont.Lambda.real <= -0.2)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 6, ssm.inputs))
    Y = rng.standard_normal((2, 6))
    assert_gradients_match(lambda th: ssm.unflatten(th).value_and_grad(X, Y).loss, ssm.flatten(),
                           ssm.value_and_grad(X, Y).flat, method="richardson", rtol=1e-7)


def test_strategy_argument_checks():
    with pytest.raises(ValueError, match="`kinds`"):
        gated_cells(kinds=("rnn",))
    with pytest.raises(ValueError, match="`min_hidden` must be <= `max_hidden`"):
        gated_cells(min_hidden=5, max_hidden=2)
    with pytest.raises(ValueError, match="`discretize`"):
        diagonal_ssms(discretize="euler")
    with pytest.raises(ValueError, match="`min_decay` must be <= `max_decay`"):
        diagonal_ssms(min_decay=3.0, max_decay=1.0)


@pytest.mark.parametrize("kind", ["gru", "lstm", "ssm", "ssm-continuous", "ctgru"])
def test_assert_memory_decays_takes_the_new_models(kind):
    if kind == "ssm-continuous":
        # real modes (no oscillation): the memory decays at the slow rate 0.3
        model = DiagonalSSM(np.array([-0.3 + 0j, -2.0 + 0j]), np.array([[1.0], [0.5j]]), np.array([1.0, 1.0]),
                            np.zeros(1))
        fit = assert_memory_decays(model, rate=0.3, rate_tol=0.02)
    elif kind == "ctgru":
        cell = CTGRU.random(3, 1, rng=2)
        model = cell.replace(bias_ih=np.zeros(9), bias_hh=np.zeros(9))  # h* = 0 is a rest state
        fit = assert_memory_decays(model, kind="decaying")
    else:
        model = _models()[kind]
        fit = assert_memory_decays(model)
    assert fit.kind == "exponential" or kind == "ctgru"
    t = default_memory_times(model)
    assert t.size > 10 and t[0] == 0.0
    with pytest.raises(AssertionError, match="expected non-decaying memory decay"):
        assert_memory_decays(_models()["gru"], kind="non-decaying")
