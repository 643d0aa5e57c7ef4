"""The public assertion helpers pass on true cases and fail with the measured numbers on false ones."""

import importlib
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dynmem.testing as dt
from dynmem.models import CTRNN, DiscreteRNN, LinearRNN
from dynmem.recurrences import value_and_grad
from dynmem.strategies import memory_targets, normal_stable_matrices, stable_matrices
from dynmem.targets import ExponentialKernel, PowerLawKernel
from dynmem.testing import (
    assert_gradients_match,
    assert_hurwitz,
    assert_memory_decays,
    default_memory_times,
    departure_from_normality,
)


def _number_after(label: str, message: str) -> float:
    m = re.search(re.escape(label) + r"\s*(-?[0-9.]+(?:e[-+]?[0-9]+)?)", message)
    assert m, f"{label!r} not in {message!r}"
    return float(m.group(1))


# -- assert_memory_decays -----------------------------------------------------


def test_exponential_target_passes_with_rate():
    fit = assert_memory_decays(ExponentialKernel(0.5, np.array([1.0, -0.5])), kind="exponential", rate=0.5,
                               rate_tol=1e-6)
    assert fit.kind == "exponential" and fit.rate == pytest.approx(0.5, rel=1e-9)


def test_power_law_target_passes_with_exponent():
    fit = assert_memory_decays(PowerLawKernel(1.5), kind="polynomial", exponent=1.5, rate_tol=1e-3)
    assert fit.exponent == pytest.approx(1.5, rel=1e-3)
    assert assert_memory_decays(PowerLawKernel(0.7), kind="decaying").kind == "polynomial"
    assert assert_memory_decays(ExponentialKernel(2.0), kind="decaying", rate=2.0).kind == "exponential"


def test_power_law_asserted_exponential_fails_with_numbers():
    with pytest.raises(AssertionError) as info:
        assert_memory_decays(PowerLawKernel(1.5), kind="exponential")
    msg = str(info.value)
    assert "expected exponential memory decay" in msg
    assert "kind='polynomial'" in msg
    assert _number_after("exponent=", msg) == pytest.approx(1.5, rel=1e-3)
    assert "window=(0," in msg and "note:" in msg and "decades=" in msg


def test_wrong_rate_fails_with_fitted_rate():
    with pytest.raises(AssertionError) as info:
        assert_memory_decays(ExponentialKernel(0.5), rate=0.6, rate_tol=0.05)
    msg = str(info.value)
    assert "with rate 0.6 (relative tolerance 0.05)" in msg
    assert _number_after("the fitted rate", msg) == pytest.approx(0.5, rel=1e-6)
    assert _number_after("is off by", msg) == pytest.approx(1 / 6, rel=1e-2)


def test_wrong_exponent_and_wrong_class_for_decaying():
    with pytest.raises(AssertionError, match=r"fitted exponent 2 is off by 0\.333"):
        assert_memory_decays(PowerLawKernel(2.0), kind="polynomial", exponent=3.0)
    with pytest.raises(AssertionError, match="kind='polynomial'"):
        assert_memory_decays(PowerLawKernel(2.0), kind="decaying", rate=1.0)


def test_non_decaying_target():
    fit = assert_memory_decays(ExponentialKernel(0.0), kind="non-decaying", t=np.linspace(0, 50, 200))
    assert fit.kind == "non-decaying"
    with pytest.raises(AssertionError, match="kind='non-decaying'"):
        assert_memory_decays(ExponentialKernel(0.0), kind="decaying", t=np.linspace(0, 50, 200))


def test_linear_rnn_rate_is_minus_the_abscissa():
    W = np.diag([-0.4, -1.0, -2.5])
    model = LinearRNN(W, np.ones((3, 2)), np.ones(3))
    t = default_memory_times(model)
    assert t[-1] == pytest.approx(30 / 0.4)
    fit = assert_memory_decays(model, rate=0.4, rate_tol=0.01)
    assert fit.rate == pytest.approx(0.4, rel=0.01)


def test_discrete_rnn_rate_is_minus_log_radius():
    W = np.diag([0.8, -0.5, 0.3])
    model = DiscreteRNN(W, np.ones((3, 1)), np.zeros(3), np.ones(3), activation="identity")
    t = default_memory_times(model)
    assert np.all(t == np.round(t)) and t[-1] == np.ceil(30 / -np.log(0.8))
    assert_memory_decays(model, rate=-np.log(0.8), rate_tol=0.01)


def test_tanh_ctrnn_memory_decays():
    model = CTRNN(-np.eye(2) + np.array([[0.0, 0.5], [-0.5, 0.0]]), np.eye(2), np.zeros(2), np.array([1.0, 0.5]))
    fit = assert_memory_decays(model, kind="exponential", rate=1.0, rate_tol=0.05, amplitudes=(0.1, 1.0))
    assert fit.window[1] > 10


def test_memory_argument_checks():
    with pytest.raises(ValueError, match="kind"):
        assert_memory_decays(ExponentialKernel(1.0), kind="fast")
    with pytest.raises(ValueError, match="rate"):
        assert_memory_decays(ExponentialKernel(1.0), kind="polynomial", rate=1.0)
    with pytest.raises(ValueError, match="exponent"):
        assert_memory_decays(ExponentialKernel(1.0), kind="exponential", exponent=1.0)
    with pytest.raises(TypeError, match="pass `t`"):
        default_memory_times(lambda x, t: t)


@settings(max_examples=10)
@given(memory_targets(kind="exponential", min_rate=0.1, max_rate=2.0))
def test_exponential_targets_property(target):
    assert_memory_decays(target, rate=target.decay.value, rate_tol=0.01)


@settings(max_examples=10)
@given(memory_targets(kind="power_law", min_exponent=0.6, max_exponent=3.0))
def test_power_law_targets_never_pass_as_exponential(target):
    with pytest.raises(AssertionError, match="kind='polynomial'"):
        assert_memory_decays(target, kind="exponential")


# -- assert_hurwitz -------------------------------------------------------------


def test_hurwitz_passes_and_returns_alpha():
    assert assert_hurwitz([[-1.0, 10.0], [0.0, -0.5]], margin=0.4) == pytest.approx(-0.5)


def test_non_hurwitz_message_has_alpha_and_margin():
    with pytest.raises(AssertionError) as info:
        assert_hurwitz([[0.25, 1.0], [0.0, -1.0]])
    msg = str(info.value)
    assert "alpha(W) = max Re lambda(W) = 0.25" in msg and "margin 0" in msg and "< 0 is required" in msg
    with pytest.raises(AssertionError) as info:
        assert_hurwitz(-0.05 * np.eye(3), margin=0.1)
    msg = str(info.value)
    assert "margin 0.1" in msg and "= -0.05" in msg and "< -0.1 is required" in msg
    assert _number_after("short by", msg) == pytest.approx(0.05)


def test_hurwitz_argument_checks():
    with pytest.raises(ValueError, match="square"):
        assert_hurwitz(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="margin"):
        assert_hurwitz(-np.eye(2), margin=-1.0)


@given(stable_matrices(max_size=5, min_margin=0.1), st.floats(min_value=1e-3, max_value=1.0))
def test_hurwitz_property(W, extra):
    alpha = assert_hurwitz(W, margin=0.1 * (1 - 1e-9))
    shifted = W + (-alpha + extra) * np.eye(W.shape[0])  # abscissa moved to +extra
    with pytest.raises(AssertionError) as info:
        assert_hurwitz(shifted)
    assert _number_after("max Re lambda(W) =", str(info.value)) == pytest.approx(extra, rel=1e-4, abs=1e-8)


# -- departure from normality ---------------------------------------------------


@given(normal_stable_matrices(max_size=5))
def test_departure_of_normal_matrices_is_zero(W):
    assert departure_from_normality(W) <= 1e-6 * max(1.0, np.linalg.norm(W))


def test_departure_of_jordan_block():
    assert departure_from_normality([[-1.0, 3.0], [0.0, -1.0]]) == pytest.approx(3.0)


# -- assert_gradients_match -------------------------------------------------------


def _f(v):
    return np.sum(np.sin(v) * v[0]) + np.exp(0.3 * v[-1])


def _grad(v):
    g = np.cos(v) * v[0]
    g[0] += np.sum(np.sin(v))
    g[-1] += 0.3 * np.exp(0.3 * v[-1])
    return g


@pytest.mark.parametrize("method, rtol", [("central", 1e-7), ("richardson", 1e-11), ("complex", 1e-14)])
def test_gradients_match_all_methods(method, rtol):
    x = np.array([0.3, -1.2, 2.0, 0.7])
    num = assert_gradients_match(_f, x, _grad(x), method=method, rtol=rtol)
    assert num.shape == x.shape
    assert np.max(np.abs(num - _grad(x))) <= 10 * rtol * np.max(np.abs(_grad(x)))


def test_gradient_sign_error_reports_worst_entry():
    x = np.array([0.3, -1.2, 2.0, 0.7])
    bad = _grad(x)
    bad[2] = -bad[2]
    with pytest.raises(AssertionError) as info:
        assert_gradients_match(_f, x, bad)
    msg = str(info.value)
    assert "1 of 4 entries fail" in msg and "worst at index (2,)" in msg
    assert _number_after("analytic", msg) == pytest.approx(bad[2], rel=1e-8)
    assert _number_after("numerical", msg) == pytest.approx(-bad[2], rel=1e-8)
    assert _number_after("relative error", msg) == pytest.approx(2.0, rel=1e-6)


def test_gradient_matrix_shape_and_scalar():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    X = np.array([[0.5, -0.2], [0.1, 0.3]])
    assert_gradients_match(lambda M: np.sum(A * M**2), X, 2 * A * X, rtol=1e-10)
    wrong = 2 * A * X
    wrong[1, 0] *= 1.01
    with pytest.raises(AssertionError, match=r"index \(1, 0\)"):
        assert_gradients_match(lambda M: np.sum(A * M**2), X, wrong, rtol=1e-6)
    assert_gradients_match(lambda s: np.exp(2 * s), 0.4, 2 * np.exp(0.8), method="complex", rtol=1e-14)


def test_gradient_argument_checks():
    with pytest.raises(ValueError, match="shape"):
        assert_gradients_match(np.sum, np.zeros(3), np.zeros(2))
    with pytest.raises(TypeError, match="scalar"):
        assert_gradients_match(lambda v: v, np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        assert_gradients_match(np.sum, np.zeros(3), np.ones(3), method="forward")
    with pytest.raises(AssertionError, match="nan"):
        assert_gradients_match(np.sum, np.zeros(2), np.array([1.0, np.nan]))


def test_bptt_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    model = DiscreteRNN.random(3, 2, spectral_radius=0.8, activation="tanh", bias_scale=0.3, rng=rng)
    X = rng.standard_normal((2, 6, 2))
    Y = rng.standard_normal((2, 6))
    grad = value_and_grad(model, X, Y).flat
    loss = lambda theta: value_and_grad(model.unflatten(theta), X, Y).loss  # noqa: E731
    assert_gradients_match(loss, model.flatten(), grad, rtol=1e-8)
    wrong = grad.copy()
    wrong[0] = -wrong[0]
    with pytest.raises(AssertionError, match=r"worst at index \(0,\)"):
        assert_gradients_match(loss, model.flatten(), wrong, rtol=1e-8)


# -- hypothesis profiles -------------------------------------------------------------


def test_profiles_registered_not_loaded():
    before = settings.get_current_profile_name()
    importlib.reload(dt)
    assert settings.get_current_profile_name() == before
    ci = settings.get_profile("dynmem-ci")
    assert ci.derandomize and ci.deadline is None and ci.max_examples == 100
    dev = settings.get_profile("dynmem-dev")
    assert dev.max_examples == 10 and dev.deadline is None


def test_load_profile_short_names():
    before = settings.get_current_profile_name()
    try:
        assert dt.load_profile("dev").max_examples == 10
        assert settings.get_current_profile_name() == "dynmem-dev"
        assert dt.load_profile("ci").derandomize
        assert settings.default.max_examples == 100
    finally:
        settings.load_profile(before)
    with pytest.raises(ValueError, match="name"):
        dt.load_profile("thorough-ish")


# --------------------------------------------------------------------------
# assert_fixed_point_stable


def test_assert_fixed_point_stable_on_maps_and_flows():
    import scipy.optimize

    import dynmem as dm
    from dynmem.testing import assert_fixed_point_stable

    n = 3
    # h -> tanh(W h): for W = 2 I the origin is a repelling fixed point and h* = tanh(2 h*) attracts on each axis
    W = 2.0 * np.eye(n)
    rnn = dm.DiscreteRNN(W, np.zeros((n, 1)), np.zeros(n), np.ones(n))
    hstar = scipy.optimize.brentq(lambda v: np.tanh(2 * v) - v, 0.5, 1.5)
    lead = assert_fixed_point_stable(rnn, np.full(n, hstar))
    assert lead == pytest.approx(2 * (1 - hstar ** 2), rel=1e-10)  # sigma'(2 h*) * 2, independent of the code
    with pytest.raises(AssertionError, match=r"not stable: spectral radius of dF/ds = 2, must be < 1"):
        assert_fixed_point_stable(rnn, np.zeros(n))
    with pytest.raises(AssertionError, match=r"not a fixed point: \|R\(h\)\|_2 = "):
        assert_fixed_point_stable(rnn, np.full(n, 0.5))
    with pytest.raises(AssertionError, match="must be < 0.9"):
        assert_fixed_point_stable(dm.DiscreteRNN(0.95 * np.eye(n), np.zeros((n, 1)), np.zeros(n), np.ones(n),
                                                 activation="identity"), np.zeros(n), margin=0.1)
    flow = dm.LinearRNN(np.array([[-1.0, 5.0, 0.0], [0.0, -0.5, 0.0], [0.0, 0.0, -2.0]]), np.ones((n, 1)), np.ones(n))
    assert assert_fixed_point_stable(flow, np.zeros(n)) == pytest.approx(-0.5)
    assert_fixed_point_stable(flow, -np.linalg.solve(flow.W, np.ones(n)), x=[1.0])  # the rest state under x = 1
    with pytest.raises(AssertionError, match="not stable: spectral abscissa of df/dh"):
        assert_fixed_point_stable(dm.LinearRNN(np.diag([0.1, -1.0, -1.0]), np.ones((n, 1)), np.ones(n)), np.zeros(n))
    with pytest.raises(TypeError, match="`model` must be a discrete model"):
        assert_fixed_point_stable(object(), np.zeros(n))
    with pytest.raises(ValueError, match="`h`"):
        assert_fixed_point_stable(rnn, np.zeros(n + 1))
