"""Tests for dynmem.training: exponential-sum fits (THEORY.md section 4) and gradient training."""

import numpy as np
import pytest

from dynmem.inputs import from_sequence
from dynmem.models import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from dynmem.recurrences import forward, value_and_grad
from dynmem.training import ExpSumFit, TrainResult, fit_exponential_sum, train, train_ctrnn

T_GRID = np.arange(1001.0)


# -- exponential-sum fits -------------------------------------------------------


def test_free_fit_recovers_two_term_sum_exactly():
    t = np.arange(201.0)
    rho = 0.7 * np.exp(-0.05 * t) + 0.3 * np.exp(-0.5 * t)
    fit = fit_exponential_sum(t, rho, 2)
    assert isinstance(fit, ExpSumFit) and fit.variant == "free" and fit.n_terms == 2
    np.testing.assert_allclose(fit.mu, [0.05, 0.5], rtol=1e-9)
    np.testing.assert_allclose(fit.a, [0.7, 0.3], rtol=1e-9)
    assert fit.sup_error < 1e-12 and fit.rmse <= fit.sup_error


def test_free_fit_of_geometric_kernel_at_m1():
    fit = fit_exponential_sum(T_GRID, 0.9**T_GRID, 1)
    assert fit.sup_error < 1e-10
    np.testing.assert_allclose(fit.mu, [-np.log(0.9)], rtol=1e-10)
    np.testing.assert_allclose(fit.a, [1.0], rtol=1e-10)
    assert fit.success


def test_free_fit_power_law_error_falls_with_m():
    rho = (T_GRID + 1.0) ** -1.1
    fits = [fit_exponential_sum(T_GRID, rho, m) for m in (2, 4, 6)]
    errs = [f.sup_error for f in fits]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < errs[0] / 20
    # The spectral margin (slowest rate) falls towards 1/T as m grows ([WLL] Thm 3.3 mechanism).
    margins = [f.mu.min() for f in fits]
    assert margins[0] > margins[1] > margins[2] >= 0.1 / T_GRID[-1]
    for f, m in zip(fits, (2, 4, 6)):
        assert f.mu.shape == f.a.shape == (m,) and np.all(f.a >= 0)


def test_linear_rnn_realisation_reproduces_fit():
    fit = fit_exponential_sum(T_GRID, (T_GRID + 1.0) ** -1.1, 4)
    rnn = fit.to_linear_rnn()
    assert isinstance(rnn, LinearRNN) and rnn.hidden == 4 and rnn.inputs == 1
    np.testing.assert_array_equal(rnn.W, -np.diag(fit.mu))
    t = np.array([0.0, 1.0, 7.5, 50.0, 400.0])
    np.testing.assert_allclose(rnn.kernel(t)[:, 0], fit(t), rtol=1e-10, atol=1e-14)


def test_padding_splits_largest_term_and_keeps_kernel():
    t = np.arange(201.0)
    rho = 0.7 * np.exp(-0.05 * t) + 0.3 * np.exp(-0.5 * t)
    fit = fit_exponential_sum(t, rho, 4)
    assert fit.m == 4 and fit.n_terms <= 4 and np.all(fit.a > 0)
    assert fit.sup_error < 1e-10
    np.testing.assert_allclose(fit(t), rho, atol=1e-10)


def test_grid_variant_is_paper_style():
    t = np.arange(101.0)
    fits = {m: fit_exponential_sum(t, 0.9**t, m, variant="grid") for m in (2, 14)}
    for m, f in fits.items():
        np.testing.assert_allclose(f.mu, 0.5 * np.arange(1, m + 1) / m)
        assert np.all(f.a >= 0) and f.a.max() < 10  # order-one weights (THEORY.md section 4)
    assert fits[14].sup_error < fits[2].sup_error / 100


def test_fit_rng_jitter_is_reproducible():
    rho = (T_GRID + 1.0) ** -1.1
    f1 = fit_exponential_sum(T_GRID, rho, 3, rng=5)
    f2 = fit_exponential_sum(T_GRID, rho, 3, rng=5)
    np.testing.assert_array_equal(f1.mu, f2.mu)
    np.testing.assert_array_equal(f1.a, f2.a)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(m=0), ValueError, r"`m` must be >= 1; got 0"),
        (dict(m=2.0), TypeError, r"`m` must be an integer"),
        (dict(variant="poly"), ValueError, r"`variant` must be one of 'free', 'grid'; got 'poly'"),
        (dict(rho=np.ones(3)), ValueError, r"`rho` must have shape \(11,\); got shape \(3,\)"),
        (dict(t=np.arange(11.0)[::-1]), ValueError, r"`t` must be strictly increasing"),
        (dict(n_starts=0), ValueError, r"`n_starts` must be >= 1; got 0"),
    ],
)
def test_fit_validation_messages(kwargs, exc, pattern):
    args = dict(t=np.arange(11.0), rho=0.9 ** np.arange(11.0), m=2)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        fit_exponential_sum(args.pop("t"), args.pop("rho"), args.pop("m"), **args)


# -- gradient training ----------------------------------------------------------


@pytest.fixture(scope="module")
def problem():
    """Teacher-student: a DiscreteRNN student fits a DiscreteRNN teacher's outputs."""
    rng = np.random.default_rng(0)
    teacher = DiscreteRNN.random(4, 1, spectral_radius=0.8, rng=1)
    X = rng.standard_normal((32, 30, 1))
    Y = forward(teacher, X).y
    student = DiscreteRNN.random(4, 1, spectral_radius=0.5, rng=2)
    return student, X, Y


@pytest.mark.parametrize("kwargs", [dict(optimizer="adam", steps=400, lr=0.02),
                                    dict(optimizer="adam", steps=400, lr=0.02, batch_size=8, rng=3),
                                    dict(optimizer="lbfgs", steps=200)])
def test_training_reduces_teacher_student_loss(problem, kwargs):
    student, X, Y = problem
    initial = value_and_grad(student, X, Y).loss
    res = train(student, X, Y, **kwargs)
    assert isinstance(res, TrainResult) and res.success
    assert isinstance(res.model, DiscreteRNN) and res.model.activation == student.activation
    assert res.loss < initial / 300
    assert res.loss == pytest.approx(value_and_grad(res.model, X, Y).loss, rel=1e-12)
    assert res.history.ndim == 1 and res.n_steps >= 1 and res.time > 0
    if kwargs["optimizer"] == "lbfgs":
        assert res.history[0] == pytest.approx(initial, rel=1e-14)
        assert np.all(np.diff(res.history) <= 0)  # accepted L-BFGS iterates never increase f
        assert res.history.size == res.n_steps + 1


def test_adam_first_step_uses_value_and_grad(problem):
    # With m_1 = (1 - b1) g and v_1 = (1 - b2) g^2, the bias-corrected first step is
    # -lr g / (|g| + eps) exactly ([KB] Algorithm 1), so it exposes the gradient used.
    student, X, Y = problem
    g = value_and_grad(student, X, Y).flat
    lr, eps = 1e-3, 1e-8
    res = train(student, X, Y, steps=1, lr=lr, eps=eps)
    np.testing.assert_allclose(res.theta - student.flatten(), -lr * g / (np.abs(g) + eps), rtol=1e-12, atol=1e-18)
    assert res.history[0] == value_and_grad(student, X, Y).loss


def test_sse_loss_is_passed_through(problem):
    student, X, Y = problem
    res = train(student, X, Y, loss="sse", optimizer="lbfgs", steps=1)
    assert res.history[0] == pytest.approx(value_and_grad(student, X, Y, loss="sse").loss, rel=1e-14)


def test_reproducible_with_same_rng(problem):
    student, X, Y = problem
    kw = dict(steps=30, lr=0.01, batch_size=5, validation_split=0.25)
    a = train(student, X, Y, rng=11, **kw)
    b = train(student, X, Y, rng=11, **kw)
    c = train(student, X, Y, rng=12, **kw)
    np.testing.assert_array_equal(a.history, b.history)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.history, c.history)


def test_early_stopping_on_plateau(problem):
    student, X, Y = problem
    res = train(student, X, Y, steps=5000, lr=0.02, early_stopping=10, tol=1e-2)
    assert res.stopped_early and res.n_steps < 5000 and "early stopping" in res.message
    assert res.history.size == res.n_steps


def test_early_stopping_on_validation_returns_best(problem):
    student, X, Y = problem
    res = train(student, X, Y, steps=5000, lr=0.05, early_stopping=5, tol=1e-2, validation_split=0.25, rng=0)
    assert res.stopped_early and "validation" in res.message
    assert res.val_history.size == res.n_steps
    # The returned model is the iterate with the smallest validation loss.
    perm = np.random.default_rng(0).permutation(X.shape[0])
    val = value_and_grad(res.model, X[perm[:8]], Y[perm[:8]]).loss
    assert val == pytest.approx(res.val_history.min(), rel=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_callback_can_stop(problem, optimizer):
    student, X, Y = problem
    seen = []

    def cb(step, loss, model):
        seen.append((step, loss, type(model)))
        return step >= 3

    res = train(student, X, Y, optimizer=optimizer, steps=50, callback=cb)
    assert res.n_steps == 3 and res.stopped_early and "callback" in res.message
    assert [s for s, _, _ in seen] == [1, 2, 3] and seen[0][2] is DiscreteRNN


@pytest.mark.parametrize("name", ["exp", "softplus", "best"])
def test_diagonal_reparam_training(name):
    from dynmem.reparam import get_reparam, grad_w_diagonal

    rng = np.random.default_rng(4)
    X = rng.standard_normal((16, 40, 1))
    teacher = EulerRNN(-np.diag([0.2, 1.5, 3.0]), np.ones((3, 1)), np.zeros(3), np.array([1.0, 2.0, 0.5]) / 3, dt=0.1)
    student = EulerRNN(-np.diag([0.5, 1.0, 1.8]), np.ones((3, 1)), np.zeros(3), np.ones(3) / 3, dt=0.1)
    Y = forward(teacher, X).y
    res = train(student, X, Y, steps=300, lr=0.02, reparam=name)
    W = res.model.W
    assert np.count_nonzero(W - np.diag(np.diag(W))) == 0 and np.all(np.diag(W) < 0)
    assert res.loss < res.history[0] / 100
    # First step: the chain rule dL/dw = diag(dL/dW) f'(w) on value_and_grad's gradient.
    rp = get_reparam(name)
    w0 = rp.inverse(np.diag(student.W))
    gr = value_and_grad(student, X, Y)
    gw = grad_w_diagonal(rp, w0, gr.dW)
    one = train(student, X, Y, steps=1, lr=1e-3, reparam=name)
    m = student.hidden
    g = np.concatenate([gw, gr.flat[m * m:]])
    np.testing.assert_allclose(one.theta - np.concatenate([w0, student.flatten()[m * m:]]),
                               -1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-10, atol=1e-18)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(optimizer="sgd"), ValueError, r"`optimizer` must be one of 'adam', 'lbfgs'; got 'sgd'"),
        (dict(loss="mae"), ValueError, r"`loss` must be one of 'mse', 'sse'; got 'mae'"),
        (dict(steps=0), ValueError, r"`steps` must be >= 1; got 0"),
        (dict(lr=-1.0), ValueError, r"`lr` must be a positive finite number; got -1.0"),
        (dict(batch_size=100), ValueError, r"`batch_size` must be <= 32 \(training sequences\); got 100"),
        (dict(validation_split=1.0), ValueError, r"`validation_split` must lie in \[0, 1\); got 1.0"),
        (dict(early_stopping=0), ValueError, r"`early_stopping` must be >= 1; got 0"),
        (dict(reparam="tanh"), ValueError, r"`reparam` must be one of .*; got 'tanh'"),
        (dict(reparam="exp"), ValueError, r"`model.W` must be diagonal when `reparam` is given"),
        (dict(callback=3), TypeError, r"`callback` must be callable"),
    ],
)
def test_train_validation_messages(problem, kwargs, exc, pattern):
    student, X, Y = problem
    with pytest.raises(exc, match=pattern):
        train(student, X, Y, **kwargs)


def test_train_checks_model_and_data(problem):
    student, X, Y = problem
    with pytest.raises(TypeError, match=r"`model` must be a DiscreteRNN or an EulerRNN"):
        train(CTRNN.random(2), X, Y)
    with pytest.raises(ValueError, match=r"`Y` must have shape \(32, 30\); got shape \(32, 29\)"):
        train(student, X, Y[:, 1:])
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 1\)"):
        train(student, np.ones((2, 3, 2)), np.ones((2, 3)))
    diag = student.replace(W=np.diag([0.5, 0.2, -0.1, 0.3]))
    with pytest.raises(ValueError, match=r"outside the range of the 'exp' reparameterisation"):
        train(diag, X, Y, reparam="exp")


# -- continuous time -----------------------------------------------------------


def test_train_ctrnn_with_adjoint_gradients():
    rng = np.random.default_rng(7)
    x = from_sequence(rng.standard_normal((20, 1)), 0.25)
    t_obs = np.linspace(0.25, 5.0, 20)
    teacher = LinearRNN(-np.diag([0.3, 2.0]), np.ones((2, 1)), np.array([1.0, -0.5]))
    from dynmem.simulate import simulate

    y_obs = simulate(teacher, x, t_obs).y
    student = LinearRNN(-np.diag([0.8, 1.2]), np.array([[0.5], [0.8]]), np.array([0.6, 0.1]))
    res = train_ctrnn(student, x, t_obs, y_obs, steps=60, rtol=1e-7, atol=1e-9)
    assert isinstance(res.model, LinearRNN) and res.success
    assert res.loss < res.history[0] / 100
    assert np.all(np.diff(res.history) <= 0)
    with pytest.raises(TypeError, match=r"`model` must be a CTRNN or a LinearRNN"):
        train_ctrnn(DiscreteRNN.random(2), x, t_obs, y_obs)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_divergence_is_reported_not_returned_as_numbers(optimizer):
    # Forward Euler of dh/dt = 5 h with dt = 1 grows like 6^k: the state overflows.
    model = EulerRNN(np.diag([5.0, 0.3]), np.ones((2, 1)), np.zeros(2), np.ones(2), dt=1.0, activation="identity")
    X = np.random.default_rng(0).standard_normal((4, 1000, 1))
    res = train(model, X, np.zeros((4, 1000)), optimizer=optimizer, steps=5)
    assert not res.success and "diverged" in res.message
    assert res.loss == np.inf and res.n_steps == 0


def _overflowing_gradient_case():
    # A linear Euler net read at 1e80: the loss (~1e160) is finite, its gradient (~5e160) is finite,
    # but Adam's second moment g * g (~1e321) overflows; before, those entries then took no step, in silence.
    model = EulerRNN(np.zeros((1, 1)), np.ones((1, 1)), np.zeros(1), np.ones(1), dt=1.0, activation="identity")
    return model, np.full((1, 2, 1), 1e80), np.zeros((1, 2))


def test_adam_stops_when_the_second_moment_overflows():
    model, X, Y = _overflowing_gradient_case()
    res = train(model, X, Y, optimizer="adam", steps=5)
    assert not res.success and "second moment overflowed" in res.message
    assert res.n_steps == 0
    np.testing.assert_array_equal(res.model.U, model.U)  # the last finite iterate: the initial one


def test_train_epochs_stops_when_the_second_moment_overflows():
    from dynmem.training import TrainOptions, train_epochs

    model, X, Y = _overflowing_gradient_case()
    out = train_epochs(model, {"X": X, "Y": Y, "Xv": X, "Yv": Y}, TrainOptions(lr=1e-3, batch_size=1, max_epochs=3),
                       seed=0)
    assert out.stopped == "diverged" and out.steps == 0
    np.testing.assert_array_equal(out.model.U, model.U)


def test_lbfgs_reports_a_non_finite_trial_point_as_divergence():
    # After the overflowing gradient scipy's line search proposes NaN parameters; before, unflatten raised
    # "`theta` must be finite" from inside scipy.
    model, X, Y = _overflowing_gradient_case()
    res = train(model, X, Y, optimizer="lbfgs", steps=5)
    assert not res.success and res.message.startswith("diverged") and "non-finite parameters" in res.message
    assert res.n_steps == 0 and np.isfinite(res.loss)
    np.testing.assert_array_equal(res.model.c, model.c)
