"""The public hypothesis strategies build what they promise, without health-check failures."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from dynmem.models import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from dynmem.spectra import spectral_abscissa, spectral_radius
from dynmem.strategies import (
    MatrixWithEigenvalues,
    ctrnns,
    discrete_rnns,
    euler_rnns,
    input_sequences,
    linear_rnns,
    matrices_with_eigenvalues,
    memory_targets,
    nonnormal_stable_matrices,
    normal_stable_matrices,
    piecewise_inputs,
    reparameterisations,
    sequences,
    stable_matrices,
)
from dynmem.targets import ExponentialKernel, ExponentialSum, PowerLawKernel
from dynmem.testing import assert_hurwitz, assert_memory_decays, departure_from_normality

EPS = np.finfo(float).eps


def _max_matching_error(computed, prescribed):
    """Largest distance after pairing the two spectra optimally (robust to ordering)."""
    cost = np.abs(np.asarray(computed)[:, None] - np.asarray(prescribed)[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max())


# -- the original strategies keep working ----------------------------------


@given(stable_matrices(min_size=2, max_size=5, min_margin=0.1, max_margin=1.0))
def test_stable_matrices_hurwitz_with_margin(W):
    alpha = spectral_abscissa(W)
    assert -1.0 - 1e-9 <= alpha <= -0.1 + 1e-9


@given(ctrnns(max_hidden=4), linear_rnns(max_hidden=4), discrete_rnns(max_hidden=4))
def test_model_strategies_unchanged(c, lin, d):
    assert isinstance(c, CTRNN) and isinstance(lin, LinearRNN) and isinstance(d, DiscreteRNN)
    assert spectral_abscissa(c.W) < 0 and spectral_abscissa(lin.W) < 0
    assert spectral_radius(d.W) <= 0.95 + 1e-9


@given(piecewise_inputs(2), sequences(3, max_length=7))
def test_input_strategies_unchanged(x, X):
    assert x.dim == 2
    assert X.shape[2] == 3 and 1 <= X.shape[1] <= 7


# -- matrices -----------------------------------------------------------------


@given(normal_stable_matrices(max_size=6, min_margin=0.1, max_margin=1.0, max_spread=3.0))
def test_normal_stable_matrices(W):
    assert np.allclose(W @ W.T, W.T @ W, atol=1e-12 * max(1.0, np.linalg.norm(W) ** 2))
    assert departure_from_normality(W) <= 1e-6 * max(1.0, np.linalg.norm(W))
    alpha = assert_hurwitz(W, margin=0.1 - 1e-9)
    assert alpha >= -1.0 - 1e-9
    # normal: the flow's 2-norm equals e^{alpha t}
    from scipy.linalg import expm

    assert np.linalg.norm(expm(2.0 * W), 2) == pytest.approx(np.exp(2.0 * alpha), rel=1e-8)


@given(nonnormal_stable_matrices(min_size=2, max_size=6, min_margin=0.2, max_margin=1.0, min_departure=2.0,
                                 max_departure=4.0, min_gap=0.2))
def test_nonnormal_stable_matrices_departure_above_bound(W):
    dep = departure_from_normality(W)
    assert 2.0 * (1 - 1e-6) <= dep <= 4.0 * (1 + 1e-6)
    assert not np.allclose(W @ W.T, W.T @ W, atol=1e-3)
    # distinct eigenvalues (gap 0.2, departure <= 4): condition <= ~20^5, error <= ~1e-9
    alpha = assert_hurwitz(W, margin=0.2 - 1e-7)
    assert alpha >= -3.0 - 1e-7  # margin + default spread 2
    lam = np.sort(np.linalg.eigvals(W).real)
    assert np.all(np.diff(lam) >= 0.2 - 1e-6)


@given(nonnormal_stable_matrices(max_size=5, min_margin=0.2, max_margin=1.0, min_departure=1.0, max_departure=3.0))
def test_nonnormal_stable_matrices_may_be_defective(W):
    # repeated eigenvalues are allowed: a k-fold one is computed only to ~(eps |W|)^(1/k)
    m = W.shape[0]
    assert departure_from_normality(W) >= 1.0 - 1e-4
    tol = 10 * (EPS * (1 + np.linalg.norm(W))) ** (1.0 / m)
    assert_hurwitz(W, margin=max(0.2 - tol, 0.0))


def test_nonnormal_gap_must_fit():
    with pytest.raises(ValueError, match="min_gap"):
        nonnormal_stable_matrices(max_size=6, min_gap=1.0, max_spread=2.0)


def test_nonnormal_stable_matrices_rejects_size_one():
    with pytest.raises(ValueError, match="min_size"):
        nonnormal_stable_matrices(min_size=1)


@given(matrices_with_eigenvalues(max_size=6, max_condition=20.0))
def test_drawn_eigenvalues_recovered(draw):
    assert isinstance(draw, MatrixWithEigenvalues)
    W, lam, kappa = draw
    assert W.dtype == np.float64 and W.shape == (lam.size, lam.size)
    assert 1.0 <= kappa <= 20.0 * (1 + 1e-12)
    # Bauer-Fike: |delta lambda| <= kappa(S) |E|, |E| ~ m eps |W| <= m eps kappa |D|
    tol = 100 * lam.size * EPS * kappa**2 * (1.0 + np.max(np.abs(lam)))
    assert _max_matching_error(np.linalg.eigvals(W), lam) <= tol
    # conjugate-closed and Hurwitz with the default bounds
    assert np.allclose(np.sort_complex(lam), np.sort_complex(np.conj(lam)))
    assert np.all(lam.real <= -0.05)


@given(matrices_with_eigenvalues([-1.0, -0.5 + 2j, -0.5 - 2j, -3.0], max_condition=50.0))
def test_fixed_eigenvalues_recovered(draw):
    W, lam, kappa = draw
    tol = 100 * 4 * EPS * kappa**2 * 4.0
    assert _max_matching_error(np.linalg.eigvals(W), [-1.0, -0.5 + 2j, -0.5 - 2j, -3.0]) <= tol
    assert spectral_abscissa(W) == pytest.approx(-0.5, abs=tol)


@given(matrices_with_eigenvalues(st.sampled_from([np.array([0.5, -0.5]), np.array([1j, -1j, 2.0])]),
                                 max_condition=5.0))
def test_eigenvalues_from_a_strategy(draw):
    W, lam, kappa = draw
    assert _max_matching_error(np.linalg.eigvals(W), lam) <= 1e-10


def test_eigenvalues_must_be_conjugate_closed():
    with pytest.raises(ValueError, match="conjugate pairs"):
        matrices_with_eigenvalues([-1.0 + 1j, -2.0])
    with pytest.raises(ValueError, match="max_condition"):
        matrices_with_eigenvalues([-1.0], max_condition=0.5)


# -- models -----------------------------------------------------------------


@given(euler_rnns(max_hidden=5, max_dt=0.3))
def test_euler_rnns_stable_step_map(model):
    assert isinstance(model, EulerRNN)
    assert 0 < model.dt <= 0.3
    A = np.eye(model.hidden) + model.dt * model.W
    assert spectral_radius(A) < 1.0


@given(discrete_rnns(max_hidden=4, kinds=("discrete", "euler"), max_spectral_radius=0.8))
def test_discrete_rnns_both_kinds(model):
    if isinstance(model, DiscreteRNN):
        assert spectral_radius(model.W) <= 0.8 + 1e-9
    else:
        assert isinstance(model, EulerRNN)
        assert spectral_radius(np.eye(model.hidden) + model.dt * model.W) < 1.0


def test_discrete_rnns_can_draw_both_kinds():
    seen = set()

    @settings(max_examples=30, derandomize=True)
    @given(discrete_rnns(max_hidden=2, kinds=("discrete", "euler")))
    def collect(model):
        seen.add(type(model))

    collect()
    assert seen == {DiscreteRNN, EulerRNN}


def test_discrete_rnns_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kinds"):
        discrete_rnns(kinds=("lstm",))


# -- inputs -----------------------------------------------------------------


@given(input_sequences(min_dim=2, max_dim=4, max_batch=3, max_length=9, distribution=None))
def test_input_sequences_shapes(X):
    B, T, d = X.shape
    assert 1 <= B <= 3 and 1 <= T <= 9 and 2 <= d <= 4
    assert np.all(np.isfinite(X))


@given(input_sequences(2, distribution="sign", scale=0.5), input_sequences(1, distribution="uniform"))
def test_input_sequences_distributions(S, U):
    assert S.shape[2] == 2 and set(np.unique(S)) <= {-0.5, 0.5}
    assert np.all(np.abs(U) <= 1.0)


# -- targets ----------------------------------------------------------------


@given(memory_targets(min_rate=0.1, max_rate=1.0, min_exponent=0.8, max_exponent=2.0, max_terms=4))
def test_memory_targets_decay_classes(target):
    kind, value = target.decay
    if isinstance(target, ExponentialSum):
        assert kind == "exponential" and value == pytest.approx(float(np.min(target.rates)))
        assert 2 <= target.rates.size <= 4
    elif isinstance(target, ExponentialKernel):
        assert kind == "exponential" and value == target.rate
    else:
        assert isinstance(target, PowerLawKernel)
        assert kind == "polynomial" and value == target.p
    if kind == "exponential":
        assert 0.1 <= value <= 1.0
    else:
        assert 0.8 <= value <= 2.0


@pytest.mark.parametrize("kind, cls", [("exponential", ExponentialKernel), ("power_law", PowerLawKernel),
                                       ("polynomial", PowerLawKernel), ("exponential_sum", ExponentialSum)])
def test_memory_targets_kind(kind, cls):
    @settings(max_examples=30)
    @given(memory_targets(kind))
    def check(target):
        assert type(target) is cls

    check()


@settings(max_examples=30)
@given(memory_targets(min_rate=0.2, max_rate=1.0, min_exponent=1.0, max_exponent=2.0))
def test_memory_targets_decay_is_what_the_fit_measures(target):
    kind, value = target.decay
    if kind == "exponential":
        # On a finite window, faster terms of a sum bias the fitted rate upwards, never downwards: measured
        # over 300 draws, ExponentialSum within [-2.5e-14, +0.95%] of its slowest rate, a single exponential
        # within 8.9e-16; tolerances 3% (3x the worst) and 1e-10 (exact fits).
        tol = 0.03 if isinstance(target, ExponentialSum) else 1e-10
        fit = assert_memory_decays(target, kind="exponential", rate=value, rate_tol=tol)
        assert fit.rate >= value * (1 - 1e-10)
    else:
        # measured within 2.2e-16 over 300 draws
        assert_memory_decays(target, kind="polynomial", exponent=value, rate_tol=1e-10)


def test_memory_targets_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        memory_targets("gaussian")
    with pytest.raises(ValueError, match="min_rate"):
        memory_targets(min_rate=2.0, max_rate=1.0)


# -- reparameterisations (dynmem/reparam.py) -------------------------------------

@given(reparameterisations(min_a=0.5, max_a=2.0, min_b=0.25, max_b=4.0),
       st.floats(min_value=-5.0, max_value=5.0))
def test_reparameterisations_are_stable(r, w):
    assert r.name in ("exp", "softplus", "best", "best_discrete")
    assert r.rate(w) < 0
    assert np.isfinite(r.gradient_scale(w))
    if r.name.startswith("best"):
        assert 0.5 <= r.params["a"] <= 2.0 and 0.25 <= r.params["b"] <= 4.0
    if r.name.startswith("best"):  # f(w) = (1 if discrete else 0) - 1 / (a w^2 + b)
        q = r.params["a"] * w * w + r.params["b"]
        assert r.f(w) == pytest.approx((1.0 if r.discrete else 0.0) - 1.0 / q, rel=1e-12, abs=1e-15)


def test_reparameterisations_names():
    seen = set()

    @settings(max_examples=20, derandomize=True)
    @given(reparameterisations(["direct", "exp"]))
    def collect(r):
        seen.add(r.name)

    collect()
    assert seen == {"direct", "exp"}
    with pytest.raises(ValueError, match="names"):
        reparameterisations(["lstm"])


# --------------------------------------------------------------------------
# stacks

from dynmem.strategies import stacks  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(stacks(max_depth=3, max_hidden=3))
def test_stacks_are_valid_runnable_stacks(stack):
    from dynmem.models import DiscreteModel, SequenceLayer

    assert isinstance(stack, DiscreteModel) and isinstance(stack, SequenceLayer)
    assert 1 <= stack.depth <= 3 and stack.nonlinearity in ("identity", "tanh")
    for below, above in zip(stack.layers, stack.layers[1:]):
        assert above.inputs == below.feature_size
    X = np.random.default_rng(0).standard_normal((2, 5, stack.inputs))
    y = stack.outputs(X, None)
    assert y.shape == (2, 5) and np.all(np.isfinite(y))


def test_stacks_strategy_validates_its_arguments():
    with pytest.raises(ValueError, match="`kinds`"):
        stacks(kinds=("transformer",))
    with pytest.raises(ValueError, match="`min_depth` must be <= `max_depth`"):
        stacks(min_depth=3, max_depth=2)
    with pytest.raises(ValueError, match="`activations`"):
        stacks(nonlinearities=("softsign",))
