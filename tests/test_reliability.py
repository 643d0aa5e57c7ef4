"""Regression tests for the examples of issue 16 (numerical-failure policy, argument errors, no code from strings)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.special

import dynmem as dm
from dynmem.errors import DynmemOverflowWarning
from dynmem.kernel.convergence import loglog_slope


# -- spectra: scale-robust eigenvalues ------------------------------------------


def test_spectral_abscissa_of_wide_scale_diagonals_is_exact():
    assert dm.spectral_abscissa(np.diag([-1e140, 1.0])) == 1.0
    assert dm.spectral_abscissa(np.diag([1e200, -1.0])) == 1e200
    assert dm.spectral_radius(np.diag([1e-300, -3.0])) == 3.0
    # triangular input: the diagonal, exactly
    assert dm.spectral_abscissa(np.array([[-1e140, 5.0], [0.0, 1.0]])) == 1.0
    assert dm.spectral_abscissa(np.array([[-1e140, 0.0], [7.0, 1.0]])) == 1.0


def test_spectral_abscissa_of_a_permuted_triangular_matrix():
    # P T P^T has the eigenvalues of T; LAPACK's balancing (permutation) isolates them.
    T = np.array([[-1e140, 3.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, -2.0]])
    P = np.eye(3)[[2, 0, 1]]
    assert dm.spectral_abscissa(P @ T @ P.T) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e-5, 1.0, 1e5, 1e200])
def test_eigenvalues_scale_with_the_matrix(scale):
    # alpha(s W) = s alpha(W) for s > 0: the power-of-two scaling inside keeps every digit.
    W = np.random.default_rng(3).standard_normal((6, 6))
    ref = float(np.max(scipy.linalg.eigvals(W).real))
    assert dm.spectral_abscissa(W * scale) == pytest.approx(ref * scale, rel=1e-12)


# -- models --------------------------------------------------------------------


def test_random_ctrnn_refuses_an_abscissa_it_cannot_honour():
    with pytest.raises(ValueError, match=r"`spectral_abscissa` must satisfy \|spectral_abscissa\| <= 1e\+08.*1e\+300"):
        dm.CTRNN.random(3, spectral_abscissa=1e300)
    with pytest.raises(ValueError, match=r"`spectral_abscissa`"):
        dm.LinearRNN.random(3, spectral_abscissa=-1e300)
    m = dm.CTRNN.random(3, spectral_abscissa=1e7, rng=0)
    assert dm.spectral_abscissa(m.W) == pytest.approx(1e7, rel=1e-12)


@pytest.mark.parametrize("rng", ["abc", 1.5, -1, True, [1, "a"]])
def test_rng_errors_name_the_argument(rng):
    with pytest.raises((TypeError, ValueError), match=r"`rng` must be None, a non-negative int"):
        dm.CTRNN.random(3, rng=rng)
    with pytest.raises((TypeError, ValueError), match=r"`rng`"):
        dm.white_noise(1, 1.0, 0.1, rng=rng)


# -- recurrences -----------------------------------------------------------------


def test_forward_of_a_diverging_relu_recurrence_raises():
    m = dm.DiscreteRNN(2.0 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="relu")
    with pytest.raises(FloatingPointError, match=r"the hidden state h_\d+ became non-finite"):
        dm.forward(m, np.ones((1, 2000, 1)))


def test_a_state_that_overflows_and_comes_back_is_caught():
    # h_1 = relu(10 * 1e308) = inf; W = 0 so h_2 = relu(0 * inf) is 0 again: the last state is finite.
    m = dm.DiscreteRNN(np.zeros((2, 2)), np.full((2, 1), 10.0), np.zeros(2), np.ones(2), activation="relu")
    X = np.zeros((1, 3, 1))
    X[0, 0, 0] = 1e308
    with pytest.raises(FloatingPointError, match=r"h_1 became non-finite"):
        dm.forward(m, X)
    with pytest.raises(FloatingPointError):
        dm.value_and_grad(m, X, np.zeros((1, 3)))
    params = {"W": np.zeros((2, 2, 2)), "U": np.stack([np.full((2, 1), 10.0), np.full((2, 1), 1e-3)]),
              "b": np.zeros((2, 2)), "c": np.ones((2, 2))}
    y, finite = dm.outputs_many(m, params, X)
    assert finite.tolist() == [False, True]
    assert np.all(np.isinf(y[0])) and np.all(np.isfinite(y[1])) and not np.any(np.isnan(y))


def test_outputs_many_refuses_nan_weights():
    m = dm.DiscreteRNN.random(2, 1, rng=0)
    params = {"W": np.full((1, 2, 2), np.nan), "U": np.ones((1, 2, 1)), "b": np.zeros((1, 2)), "c": np.ones((1, 2))}
    with pytest.raises(ValueError, match=r"`params\['W'\]` must be finite; got nan"):
        dm.outputs_many(m, params, np.ones((1, 3, 1)))


def test_value_and_grad_on_huge_targets_raises_instead_of_returning_inf():
    m = dm.DiscreteRNN.random(3, 1, rng=0)
    with pytest.raises(FloatingPointError, match=r"the mse loss overflowed float64.*rescale the targets `Y`"):
        dm.value_and_grad(m, np.ones((2, 5, 1)), np.full((2, 5), 1e300))
    with pytest.raises(FloatingPointError, match=r"sse loss overflowed"):
        dm.value_and_grad(m, np.ones((2, 5, 1)), np.full((2, 5), 1e160), loss="sse")


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_train_on_huge_targets_stops_with_the_last_finite_model(optimizer):
    m = dm.DiscreteRNN.random(3, 1, rng=0)
    res = dm.train(m, np.ones((2, 5, 1)), np.full((2, 5), 1e300), steps=5, optimizer=optimizer)
    assert not res.success and "overflowed" in res.message and res.n_steps == 0
    np.testing.assert_array_equal(res.model.flatten(), m.flatten())  # the last finite iterate: the start
    assert len(res.history) == (0 if optimizer == "adam" else 1)


def _overflowing_run(monkeypatch):
    """A linear recurrence of 5000 steps, rho^5000 = 1e10, chasing targets 1e12: one Adam step of lr = 0.1 on
    rho multiplies the last output by about e^{450}, so the loss is finite at the start and overflows after
    the first step (the forward recurrence raises FloatingPointError).  Returns the run's inputs and the W
    of every evaluation that raised (a spy on the gradient routine)."""
    import importlib

    T = 5000
    m = dm.DiscreteRNN(np.array([[10 ** (10 / T)]]), np.ones((1, 1)), np.zeros(1), np.ones(1), activation="identity")
    X = np.zeros((1, T, 1))
    X[0, 0, 0] = 1.0
    train_module = importlib.import_module("dynmem.training")
    original, raised = train_module.value_and_grad, []

    def spy(model, X, Y, loss="mse"):
        try:
            return original(model, X, Y, loss=loss)
        except FloatingPointError:
            raised.append(float(model.W[0, 0]))
            raise

    monkeypatch.setattr(train_module, "value_and_grad", spy)
    return m, X, np.full((1, T), 1e12), raised


def test_adam_never_steps_from_an_infinite_loss_mid_run(monkeypatch):
    m, X, Y, raised = _overflowing_run(monkeypatch)
    res = dm.train(m, X, Y, steps=5, lr=0.1)
    # the path is exercised: the loss at step 1 is finite, the one at step 2 overflowed (once, then the run stopped)
    assert not res.success and "diverged at step 2" in res.message and res.n_steps == 1
    assert len(res.history) == 1 and np.isfinite(res.history[0]) and len(raised) == 1
    # no step was taken from the overflowing iterate: the model is the one at which the loss overflowed, one
    # Adam step (lr * g / |g| = 0.1 at step 1) from the start, and its loss is reported as inf
    assert res.model.W[0, 0] == raised[0] == pytest.approx(m.W[0, 0] + 0.1, abs=1e-9)
    assert res.loss == np.inf


def test_lbfgs_backtracks_from_an_infinite_loss_mid_run(monkeypatch):
    m, X, Y, raised = _overflowing_run(monkeypatch)
    res = dm.train(m, X, Y, steps=5, optimizer="lbfgs")
    # the line search tried a point whose loss overflowed, saw inf, and backtracked to a finite one
    assert len(raised) >= 1 and all(w > m.W[0, 0] + 0.5 for w in raised)
    assert np.all(np.isfinite(res.history)) and np.isfinite(res.loss) and res.model.W[0, 0] not in raised


# -- memory and kernels of a non-Hurwitz W ------------------------------------------


def _diag_model(lam, u, c):
    return dm.LinearRNN(np.diag(lam), np.asarray(u, float)[:, None], np.asarray(c, float))


def test_linear_memory_of_a_non_hurwitz_W_is_computed_in_log_space():
    lam, u, c = np.array([0.5, -1.0, 0.2]), np.array([1.0, 2.0, 0.5]), np.array([0.7, 1.0, 3.0])
    model = _diag_model(lam, u, c)
    t = np.linspace(0.0, 3000.0, 31)
    with pytest.warns(DynmemOverflowWarning, match=r"linear_memory: \d+ of 31 values exceed the float64 range"):
        M = dm.linear_memory(model, t)
    assert not np.any(np.isnan(M.values)) and M.success
    # independent: M(t) = sum_i c_i u_i e^{lam_i t} (all terms positive), as a log-sum-exp
    logM = scipy.special.logsumexp(lam[None, :] * t[:, None] + np.log(c * u)[None, :], axis=1)
    finite = np.isfinite(M.values)
    assert np.all(finite == (logM < np.log(np.finfo(float).max)))
    np.testing.assert_allclose(np.log(M.values[finite]), logM[finite], rtol=1e-12, atol=1e-12)
    assert np.all(M.values[~finite] == np.inf)
    with pytest.warns(DynmemOverflowWarning):
        M2 = dm.memory_function(model, t)
    np.testing.assert_array_equal(M2.values, M.values)
    with pytest.warns(DynmemOverflowWarning):
        M3 = dm.memory_function(model, t, directions=[[1.0]])
    np.testing.assert_allclose(M3.values[finite], M.values[finite], rtol=1e-12)
    assert np.all(M3.values[~finite] == np.inf) and M3.success


def test_linear_rnn_kernel_of_a_non_hurwitz_W_has_signs_and_no_nan():
    # c_0 = -1e-10: at t = 1440, e^{W t} overflows (e^720) but the kernel -1e-10 e^720 = -e^{697} does not.
    lam, u, c = np.array([0.5, -1.0]), np.array([1.0, 2.0]), np.array([-1e-10, 1.0])
    model = _diag_model(lam, u, c)
    t = np.array([0.0, 10.0, 1000.0, 1440.0, 5000.0])
    with pytest.warns(DynmemOverflowWarning, match=r"LinearRNN.kernel: 1 of 5"):
        K = model.kernel(t)[:, 0]
    ref = c[0] * u[0] * np.exp(lam[0] * t[:3]) + c[1] * u[1] * np.exp(lam[1] * t[:3])
    assert not np.any(np.isnan(K))
    np.testing.assert_allclose(K[:3], ref, rtol=1e-12)
    assert K[3] < 0 and np.isfinite(K[3])
    assert np.log(-K[3]) == pytest.approx(np.log(1e-10) + 720.0, rel=1e-13)
    assert K[4] == -np.inf


def test_the_overflow_warning_is_a_runtime_warning_and_can_be_made_an_error():
    assert issubclass(dm.DynmemOverflowWarning, RuntimeWarning)
    model = _diag_model(np.array([1.0]), [1.0], [1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DynmemOverflowWarning)
        with pytest.raises(DynmemOverflowWarning):
            dm.linear_memory(model, [0.0, 1000.0])


# -- reparameterisations ----------------------------------------------------------------


def test_reparam_values_beyond_float64_are_inf_with_a_warning_never_nan():
    r = dm.get_reparam("exp")
    with pytest.warns(DynmemOverflowWarning, match=r"exp f\(w\)"):
        assert r.f(800.0) == -np.inf
    assert r.f(700.0) == pytest.approx(-np.exp(700.0), rel=1e-14)
    with pytest.raises(FloatingPointError, match=r"both overflow"):
        r.gradient_scale(800.0)
    assert dm.get_reparam("direct").gradient_scale(0.0) == np.inf  # documented pole: no warning (errors filter)


# -- inputs and small helpers ----------------------------------------------------------------


def test_white_noise_with_too_many_pieces_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"`dt` must be at least \(t_end - t_start\) / 1e\+08.*1e-300"):
        dm.white_noise(1, 1e300, 1e-300)
    with pytest.raises(ValueError, match=r"`dt`"):
        dm.white_noise(1, 1e9, 1e-3)


def test_step_and_impulse_of_an_empty_amplitude():
    with pytest.raises(ValueError, match=r"`x` must hold at least one amplitude.*shape \(0,\)"):
        dm.step([])
    with pytest.raises(ValueError, match=r"`x` must hold at least one amplitude"):
        dm.impulse([], width=1.0)


@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), float("inf")])
def test_dask_executor_checks_timeout_when_called(timeout):
    with pytest.raises(ValueError, match=r"`timeout` must be a positive finite number"):
        dm.dask_executor("tcp://127.0.0.1:1", timeout=timeout)
    with pytest.raises(TypeError, match=r"`timeout` must be a positive number; got 'x'"):
        dm.dask_executor("tcp://127.0.0.1:1", timeout="x")


def test_loglog_slope_with_unequal_lengths():
    with pytest.raises(ValueError, match=r"`x` and `y` must have the same length.*got 3 and 2"):
        loglog_slope([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"`level` must lie in \(0, 1\)"):
        loglog_slope([1, 2, 3], [1, 2, 3], level=1.5)
    fit = loglog_slope([1, 2, 4, 8], [3, 12, 48, 192])
    assert fit.slope == pytest.approx(2.0, rel=1e-12)


# -- no code from strings ----------------------------------------------------------------------


def test_check_identity_refuses_a_malicious_string(tmp_path):
    from dynmem.symbolic import check_identity

    target = tmp_path / "pwned"
    attacks = [
        f"__import__('os').system('touch {target}')",
        f"open('{target}', 'w').write('x')",
        "x.__class__.__mro__",
        "(lambda: 1)()",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "Symbol('x')",  # a name outside the whitelist is refused, even a harmless sympy one
        "9**9**9",
    ]
    for text in attacks:
        with pytest.raises(ValueError, match=r"`expr`"):
            check_identity(text)
    assert not target.exists()
    # ordinary text still works, and parses to the same thing as the sympy objects
    assert check_identity("sin(x)**2 + cos(x)**2 - 1")
    assert check_identity("x*(y + 1) - x*y - x")
    assert not check_identity("x - y")
    with pytest.raises(TypeError, match=r"`expr` must be a sympy expression"):
        check_identity(object())


def test_parse_expression_matches_sympy_objects():
    import sympy as sp
    from dynmem.symbolic import parse_expression

    x, y = sp.symbols("x y")
    assert parse_expression("exp(-x/2) * y**3 - 1.5") == sp.exp(-x / 2) * y**3 - sp.Float("1.5")
    assert parse_expression("pi + E") == sp.pi + sp.E


def test_io_files_follow_the_umask(tmp_path):
    from dynmem import io as dio

    old = os.umask(0o022)
    try:
        dio.atomic_write_json(str(tmp_path / "a.json"), {"x": 1})
        dio.atomic_savez(str(tmp_path / "b.npz"), {"x": np.ones(2)})
        os.umask(0o077)
        dio.atomic_write_text(str(tmp_path / "c.txt"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- integrator budgets (simulate / adjoint)


def test_stiff_model_under_an_explicit_method_fails_fast_with_a_hint():
    stiff = dm.CTRNN(-1e7 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2))
    x = dm.step([1.0], t_end=6.0)
    res = dm.simulate(stiff, x, np.linspace(0, 6, 5), max_steps=2000, on_failure="report")
    assert not res.success and "max_steps" in res.message
    # fast as an evaluation count, not a wall time: the budget bounds the right-hand-side calls
    # (measured 12002: 6 new stages per step of the FSAL 5(4) pair, plus 2 for the initial-step probe)
    assert res.nfev <= 6 * 2000 + 2, res.nfev
    # fast because it stops at the step budget: the failure reports the 2000 steps, not a wall time
    with pytest.raises(dm.SimulationError, match=r"max_steps = 2000 .*stiff.*Radau"):
        dm.simulate(stiff, x, np.linspace(0, 6, 5), max_steps=2000)
    with pytest.raises(dm.SimulationError, match=r"max_steps = 2000 .*stiff.*Radau"):
        dm.simulate(stiff, x, np.linspace(0, 6, 5), max_steps=2000, method="RK45")
    ok = dm.simulate(stiff, x, np.linspace(0, 6, 5), method="Radau")
    # by t = 6 the stiff state sits at its equilibrium tanh(-1e7 h + 1) = 0, h = 1e-7 (solved independently)
    from scipy.optimize import brentq

    h_star = brentq(lambda h: np.tanh(-1e7 * h + 1.0), -1.0, 1.0)
    np.testing.assert_allclose(ok.h[-1], [h_star, h_star], rtol=1e-6)


def test_max_step_that_cannot_finish_is_refused_before_integrating():
    m = dm.CTRNN.random(3, 1, rng=0)
    x = dm.step([1.0], t_end=6.0)
    with pytest.raises(ValueError, match=r"`max_step` = 1e-300 needs at least 6e\+300 steps .* `max_steps` = 20000"):
        dm.simulate(m, x, [1.0, 6.0], max_step=1e-300)
    with pytest.raises(TypeError, match="`dense_output` must be True or False; got 'yes'"):
        dm.simulate(m, x, [1.0, 6.0], dense_output="yes")
    with pytest.raises(ValueError, match="max_steps"):
        dm.simulate(m, x, [1.0, 6.0], max_steps=0)


def test_failing_lsoda_and_diverging_adjoint_raise_simulation_error():
    big = dm.CTRNN(50.0 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="relu")
    x = dm.step([1.0], t_end=50.0)
    with pytest.raises(dm.SimulationError):
        dm.simulate(big, x, np.linspace(0, 50, 5), method="LSODA")
    with pytest.raises(dm.SimulationError, match="diverged"):
        dm.adjoint_gradient(big, x, [10.0, 50.0], [0.0, 0.0])


def test_adjoint_loss_overflow_raises_naming_y_obs():
    from dynmem.errors import FloatOverflowError

    m = dm.CTRNN.random(3, 1, rng=0)
    with pytest.raises(FloatOverflowError, match="y_obs"):
        dm.adjoint_gradient(m, dm.step([1.0], t_end=6.0), [1.0, 2.0], [1e300, 1e300])


def test_train_ctrnn_on_huge_targets_raises_at_the_initial_parameters():
    with pytest.raises(FloatingPointError, match="y_obs"):
        dm.train_ctrnn(dm.CTRNN.random(2, 1, rng=0), dm.step([1.0], t_end=3.0), [1.0, 2.0], [1e300, 1e300], steps=2)
