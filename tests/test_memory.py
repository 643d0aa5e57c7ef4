"""Memory functions and decay fits against closed forms and independent references."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import dynmem as dm
from dynmem.memory import MemoryResult, fit_decay, linear_memory, memory_function
from dynmem.strategies import ctrnns, linear_rnns


def closed_form(model, t):
    """|U^T e^{W^T t} c|_1 with one scipy expm per time (independent of linear_memory)."""
    return np.array([np.abs(model.U.T @ scipy.linalg.expm(model.W.T * ti) @ model.c).sum() for ti in t])


# ---------------------------------------------------------------------------
# linear models


@settings(max_examples=25)
@given(linear_rnns(max_hidden=6, max_inputs=3))
def test_linear_closed_form_matches_expm(model):
    t = np.linspace(0, 10, 41)
    res = linear_memory(model, t)
    ref = closed_form(model, t)
    # Propagation by one expm(W^T dt) per step from anchors every 64 points:
    # rounding grows like (steps) * eps * |e^{W^T dt}|, far below 1e-10 here.
    np.testing.assert_allclose(res.values, ref, rtol=1e-10, atol=1e-14 * ref.max())
    rho = np.stack([model.U.T @ scipy.linalg.expm(model.W.T * ti) @ model.c for ti in t])
    big = np.abs(rho) > 1e-8 * np.abs(rho).max()
    assert np.all((res.argmax == np.sign(rho))[big])


def test_linear_closed_form_nonnormal_long_grid():
    W = np.array([[-1.0, 20.0], [0.0, -1.0]])
    model = dm.LinearRNN(W, np.array([[1.0, 0.5], [0.3, -1.0]]), np.array([1.0, -2.0]))
    t = np.linspace(0, 25, 1001)
    np.testing.assert_allclose(linear_memory(model, t).values, closed_form(model, t), rtol=1e-10)


@settings(max_examples=15)
@given(linear_rnns(max_hidden=5, max_inputs=2, min_margin=0.3, max_margin=1.5))
def test_generic_heaviside_path_equals_closed_form(model):
    # The generic path integrates the probes with the exact vector field
    # (identity activation), maximising over the 2^d vertices; for a linear
    # model the sup is attained at a vertex, so both must agree.  The flow is
    # solved at rtol 1e-12: the relative error of dy/dt = c^T (W h + U x) is
    # ~1e-12 |W||h| / M(t), below 1e-8 wherever M is above 1e-3 of its peak,
    # so the comparison uses those points (rho can pass through zero).
    margin = -dm.spectral_abscissa(model.W)
    t = np.linspace(0, 4.0 / margin, 30)
    ref = closed_form(model, t)
    res = memory_function(model, t, closed_form=False, rtol=1e-12, atol=1e-15)
    assert res.method == "exact-flow"
    ok = ref > 1e-3 * ref.max()
    np.testing.assert_allclose(res.values[ok], ref[ok], rtol=1e-8)


@pytest.mark.parametrize("variant", ["impulse", "reversed"])
def test_linear_variants_equal_heaviside(variant):
    model = dm.LinearRNN.random(4, 2, spectral_abscissa=-0.4, rng=3)
    t = np.linspace(0, 8, 25)
    ref = closed_form(model, t)
    res = memory_function(model, t, input=variant, closed_form=False, rtol=1e-12, atol=1e-15)
    ok = ref > 1e-3 * ref.max()
    np.testing.assert_allclose(res.values[ok], ref[ok], rtol=1e-8)


def test_linear_normalisation_plus_one_with_explicit_amplitudes():
    model = dm.LinearRNN.random(3, 1, rng=0)
    t = np.linspace(0, 5, 11)
    amps = np.array([0.5, 4.0])
    res = memory_function(model, t, normalize="x+1", amplitudes=amps)
    # |rho . a v| / (a + 1) is largest at the largest amplitude: |rho|_1 * 4 / 5.
    np.testing.assert_allclose(res.values, closed_form(model, t) * 4.0 / 5.0, rtol=1e-10)
    assert np.all(np.abs(res.argmax) == 4.0)


# ---------------------------------------------------------------------------
# CTRNN exact flow


@settings(max_examples=10)
@given(ctrnns(max_hidden=4, max_inputs=2, bias_scale=0.0))
def test_ctrnn_exact_flow_matches_finite_differences_of_simulate(model):
    t = np.array([0.0, 0.5, 1.5, 3.0])
    res = memory_function(model, t, amplitudes=[0.3, 2.0], rtol=1e-11, atol=1e-13)
    h = 1e-4
    for j in (1, 2, 3):
        x = res.argmax[j]
        sim = dm.simulate(model, dm.step(x), [t[j] - h, t[j] + h], rtol=1e-12, atol=1e-14)
        fd = abs(sim.y[1] - sim.y[0]) / (2 * h) / np.abs(x).max()
        # central difference error ~ h^2 |y'''| / 6 plus solver noise 1e-12 / h
        assert abs(fd - res.values[j]) <= 1e-6 * max(1.0, res.values[j])


def test_ctrnn_leak_and_bias_equilibrium():
    rng = np.random.default_rng(0)
    model = dm.CTRNN.random(3, 1, spectral_abscissa=-0.5, bias_scale=0.4, rng=rng).replace(leak=0.3)
    t = np.array([0.0, 1.0, 2.0])
    res = memory_function(model, t, amplitudes=[1.0], directions=[[1.0]], rtol=1e-11, atol=1e-13)
    # Independent reference: settle the zero-input system by simulation, then step.
    settle = dm.simulate(model, dm.step([0.0]), [200.0], rtol=1e-12, atol=1e-14)
    h_star = settle.h[-1]
    h = 1e-4
    for j in (1, 2):
        sim = dm.simulate(model, dm.step([1.0]), [t[j] - h, t[j] + h], h0=h_star, rtol=1e-12, atol=1e-14)
        fd = abs(sim.y[1] - sim.y[0]) / (2 * h)
        assert abs(fd - res.values[j]) <= 1e-6 * max(1.0, res.values[j])


def test_multistable_tanh_system_does_not_forget():
    # docs/theory.md section 2: Hurwitz W (double eigenvalue -1) but multistable for large inputs.
    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    assert np.allclose(np.linalg.eigvals(W), -1.0, atol=1e-6)
    model = dm.CTRNN(W, np.eye(2), np.zeros(2), np.array([1.0, 0.0]), activation="tanh")
    t = np.linspace(0, 60, 600)
    big = memory_function(model, t, amplitudes=[5.0])
    fit = fit_decay(t, big.values)
    assert fit.kind == "non-decaying", fit.note
    assert big.values[-1] > 0.1
    # Small inputs stay in the basin of 0, where the linearisation (double eigenvalue -1) forgets.
    small = memory_function(model, t, amplitudes=[1e-3])
    assert small.values[-1] < 1e-8 * small.values.max()  # at the solver floor (atol 1e-12 on h ~ 1e-3)
    assert fit_decay(t, small.values).kind != "non-decaying"


def test_probe_batch_reports_what_was_searched():
    model = dm.CTRNN.random(3, 2, rng=1)
    res = memory_function(model, np.linspace(0, 3, 7), amplitudes=[0.5, 1.0, 2.0])
    assert isinstance(res, MemoryResult)
    assert res.directions.shape == (4, 2) and res.amplitudes.tolist() == [0.5, 1.0, 2.0]
    assert res.probe_values.shape == (12, 7)
    np.testing.assert_array_equal(res.values, res.probe_values.max(axis=0))
    plus1 = memory_function(model, np.linspace(0, 3, 7), amplitudes=[0.5, 1.0, 2.0], normalize="x+1")
    # the same raw derivatives, divided by a + 1 instead of a
    scale = np.tile(np.array([0.5, 1.0, 2.0]) / np.array([1.5, 2.0, 3.0]), 4)
    np.testing.assert_allclose(plus1.probe_values, res.probe_values * scale[:, None], rtol=1e-9)


def test_many_inputs_sample_random_vertices():
    model = dm.CTRNN.random(3, 12, rng=2)
    res = memory_function(model, [0.0, 1.0], amplitudes=[1.0], n_directions=16, rng=0)
    assert res.directions.shape == (16, 12)
    assert set(np.unique(res.directions)) <= {-1.0, 1.0}


# ---------------------------------------------------------------------------
# discrete models


def test_linear_discrete_memory_closed_form():
    rng = np.random.default_rng(4)
    model = dm.DiscreteRNN.random(4, 2, spectral_radius=0.8, activation="identity", rng=rng)
    k = np.arange(0, 30)
    res = memory_function(model, k)
    ref = np.array([np.abs(model.U.T @ np.linalg.matrix_power(model.W.T, int(j)) @ model.c).sum() for j in k])
    np.testing.assert_allclose(res.values, ref, rtol=1e-10, atol=1e-14)
    imp = memory_function(model, k, input="impulse")
    np.testing.assert_allclose(imp.values, ref, rtol=1e-10, atol=1e-14)
    rev = memory_function(model, k, input="reversed")
    np.testing.assert_allclose(rev.values, ref, rtol=1e-8, atol=1e-12)


def test_euler_memory_approaches_ctrnn_memory():
    model = dm.CTRNN.random(3, 1, spectral_abscissa=-0.5, rng=5)
    t = np.array([0.5, 1.0, 2.0])
    cont = memory_function(model, t, amplitudes=[1.0], rtol=1e-11, atol=1e-13).values
    errs = []
    for dt in (0.02, 0.01, 0.005):
        steps = np.round(t / dt).astype(int)
        disc = memory_function(model.discretize(dt), steps, amplitudes=[1.0]).values
        errs.append(np.max(np.abs(disc - cont)))
    # forward differences of an Euler solution: O(dt) error, so halving dt halves it
    assert errs[0] > errs[1] > errs[2]
    assert 1.6 < errs[0] / errs[1] < 2.4 and 1.6 < errs[1] / errs[2] < 2.4


def test_discrete_times_must_be_steps():
    model = dm.DiscreteRNN.random(2, 1, rng=0)
    with pytest.raises(ValueError, match=r"`t` must hold whole step numbers for a discrete model; got 0.5"):
        memory_function(model, [0.0, 0.5])


# ---------------------------------------------------------------------------
# user callables


def test_user_callable_by_central_differences():
    model = dm.LinearRNN.random(3, 1, spectral_abscissa=-0.5, rng=6)

    def H(x, t):
        return dm.simulate(model, x, t, rtol=1e-12, atol=1e-14).y

    t = np.array([0.0, 1.0, 2.5])
    res = memory_function(H, t, directions=[[1.0], [-1.0]], amplitudes=[1.0], fd_step=1e-4)
    assert res.method == "finite-differences"
    # O(h^2) truncation (h = 1e-4) plus 1e-12 / h solver noise
    np.testing.assert_allclose(res.values, closed_form(model, t), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(input="step"), r"`input` must be one of 'heaviside', 'impulse', 'reversed'; got 'step'"),
        (dict(normalize="l2"), r"`normalize` must be one of 'x', 'x\+1'; got 'l2'"),
        (dict(amplitudes=[1.0, -2.0]), r"`amplitudes` must be positive numbers"),
        (dict(directions=[[1.0]]), r"`directions` must have shape \(k, 2\); got shape \(1, 1\)"),
        (dict(directions=[[0.0, 0.0]]), r"`directions` must be non-zero"),
    ],
)
def test_memory_validation(kwargs, pattern):
    model = dm.CTRNN.random(2, 2, rng=0)
    with pytest.raises(ValueError, match=pattern):
        memory_function(model, [0.0, 1.0], **kwargs)


def test_memory_rejects_negative_times_and_unknown_objects():
    with pytest.raises(ValueError, match=r"`t` must be non-negative"):
        memory_function(dm.LinearRNN.random(2, 1, rng=0), [-1.0, 0.0])
    with pytest.raises(TypeError, match=r"`H` must be a LinearRNN, CTRNN"):
        memory_function(42, [0.0, 1.0])


# ---------------------------------------------------------------------------
# decay fits


@settings(max_examples=40)
@given(st.floats(min_value=0.01, max_value=5.0), st.floats(min_value=0.1, max_value=10.0))
def test_fit_decay_recovers_exponential_rate(beta, C):
    t = np.linspace(0, 30.0 / beta, 300)
    fit = fit_decay(t, C * np.exp(-beta * t))
    assert fit.kind == "exponential", fit.note
    # an exact exponential: measured worst rel. error 8.9e-16 over 300 draws; 1e-10 is the house level for exact fits
    assert abs(fit.rate / beta - 1) < 1e-10


@settings(max_examples=40)
@given(st.floats(min_value=0.5, max_value=4.0), st.sampled_from([1.0, 0.1, 3.0]))
def test_fit_decay_recovers_power_exponent(p, s):
    t = np.geomspace(1e-2, 1e5, 300)
    fit = fit_decay(t, (1 + s * t) ** (-p))
    assert fit.kind == "polynomial", fit.note
    # an exact power law: measured worst rel. error 2.2e-16 over 300 draws; 1e-10 as for every exact fit
    assert abs(fit.exponent / p - 1) < 1e-10


@pytest.mark.parametrize(
    "t, M",
    [
        (np.linspace(0, 2, 40), np.exp(-np.linspace(0, 2, 40))),  # under a decade of decay
        (np.linspace(0, 5, 40), (1 + np.linspace(0, 5, 40)) ** -1.0),
        (np.linspace(0, 50, 40), np.exp(-0.02 * np.linspace(0, 50, 40))),
    ],
)
def test_fit_decay_short_windows_are_undetermined(t, M):
    fit = fit_decay(t, M)
    assert fit.kind == "undetermined"
    assert "too short" in fit.note


def test_fit_decay_skips_transient_growth_and_noise_floor():
    W = np.array([[-1.0, 20.0], [0.0, -1.0]])
    model = dm.LinearRNN(W, np.array([[0.0], [1.0]]), np.array([1.0, 0.0]))
    t = np.linspace(0, 40, 400)
    M = linear_memory(model, t).values  # = 20 t e^{-t}: grows, then decays
    rng = np.random.default_rng(0)
    noisy = M + 1e-10 * np.abs(rng.standard_normal(t.size))
    fit = fit_decay(t, noisy)
    assert fit.kind == "exponential", fit.note
    assert fit.window[0] > 0.5  # started at the peak (t = 1), not at 0
    assert abs(fit.rate - 1.0) < 0.05


@pytest.mark.parametrize("M", [lambda t: np.exp(0.1 * t), lambda t: 1 + t ** 2, lambda t: np.exp(0.01 * t)])
def test_fit_decay_growing_curve_is_growing(M):
    t = np.linspace(0, 50, 200)
    fit = fit_decay(t, M(t))
    assert fit.kind == "growing", fit.note
    assert fit.fits["growth"]["rate"] > 0 and "rises" in fit.note


def test_fit_decay_growth_then_saturation_is_non_decaying_not_growing():
    t = np.linspace(0, 100, 300)
    assert fit_decay(t, 1 - np.exp(-t) + 1e-3).kind == "non-decaying"


def test_growing_memory_passes_as_non_decaying():
    from dynmem.testing import assert_memory_decays

    model = dm.LinearRNN(np.array([[0.05]]), np.array([[1.0]]), np.array([1.0]))  # unstable: e^{0.05 t}
    fit = assert_memory_decays(model, kind="non-decaying", t=np.linspace(0, 60, 200))
    assert fit.kind == "growing"


def test_fit_decay_plateau_is_non_decaying():
    t = np.linspace(0, 100, 300)
    fit = fit_decay(t, 0.3 + np.exp(-t))
    assert fit.kind == "non-decaying"
    assert abs(fit.constant - 0.3) < 1e-6


def test_fit_decay_validation():
    with pytest.raises(ValueError, match=r"`t` must hold at least 4 points"):
        fit_decay([0.0, 1.0, 2.0], [1.0, 0.5, 0.2])
    with pytest.raises(ValueError, match=r"`M` must be non-negative"):
        fit_decay(np.arange(5.0), [1.0, -0.5, 0.2, 0.1, 0.0])
    with pytest.raises(ValueError, match=r"`t` must be strictly increasing"):
        fit_decay([0.0, 2.0, 1.0, 3.0], [1.0, 0.5, 0.2, 0.1])


# ---------------------------------------------------------------------------
# targets, head skipping, the example


def test_memory_of_targets_uses_their_closed_forms_and_step_derivatives():
    from dynmem.targets import ExponentialKernel, PointwiseNonlinear, PowerLawKernel, TeacherRNN

    t = np.linspace(0, 20, 41)
    exp_res = memory_function(ExponentialKernel.discrete(0.9), t)
    np.testing.assert_allclose(exp_res.values, 0.9 ** t, rtol=1e-12)
    pw = memory_function(PowerLawKernel(1.5), t)
    np.testing.assert_allclose(pw.values, (1 + t) ** -1.5, rtol=1e-12)
    # Through the probe path (exact step derivative) the linear target gives the same sup.
    pw_probe = memory_function(PowerLawKernel(1.5), t, closed_form=False, amplitudes=[1.0])
    assert pw_probe.method == "target-exact"
    np.testing.assert_allclose(pw_probe.values, (1 + t) ** -1.5, rtol=1e-12)
    # Nonlinear target: f = tanh of the linear functional; its step derivative
    # at amplitude a is tanh'(a R(t)) rho(t) a, so the sup over a small
    # amplitude approaches |rho| and a large one suppresses it.
    nl = PointwiseNonlinear.tanh(ExponentialKernel(0.5))
    res = memory_function(nl, t, amplitudes=[1e-4, 3.0])
    np.testing.assert_allclose(res.values, np.exp(-0.5 * t), rtol=1e-6)
    # A teacher is measured through its model.
    model = dm.CTRNN.random(3, 1, rng=2)
    np.testing.assert_allclose(memory_function(TeacherRNN(model), t, amplitudes=[1.0]).values,
                               memory_function(model, t, amplitudes=[1.0]).values)


def test_fit_decay_finds_slowest_rate_of_exponential_sums():
    t = np.linspace(0, 80, 800)
    M = np.exp(-3.0 * t) + 1e-3 * np.exp(-0.2 * t)  # fast mode dies first
    fit = fit_decay(t, M)
    assert fit.kind == "exponential", fit.note
    # measured rel. error 1.3e-15
    assert fit.rate == pytest.approx(0.2, rel=1e-10) and "two modes" in fit.note
    # Four modes: the two-mode family fits the tail, where only the two slowest modes are left; the slow rate
    # comes out exact (measured rel. error 0.0)
    M4 = np.exp(-8 * t) + 0.3 * np.exp(-3 * t) + 1e-2 * np.exp(-1.2 * t) + 1e-4 * np.exp(-0.2 * t)
    fit4 = fit_decay(t, M4)
    assert fit4.kind == "exponential" and fit4.rate == pytest.approx(0.2, rel=1e-10), fit4.note


@settings(max_examples=25)
@given(slow=st.floats(0.1, 1.0), ratio=st.floats(1.5, 6.0), weight=st.floats(1e-4, 1e-1))
def test_fit_decay_mixture_of_two_modes_gives_the_slow_rate(slow, ratio, weight):
    # A fast mode that dominates most of the window and a light slow mode that
    # only takes over later: the two-mode family identifies the slow rate,
    # where a single exponential on the tail is biased towards the fast one.
    # The slow mode must be visible: it overtakes the fast one at
    # t_c = ln(1/weight) / ((ratio - 1) slow) and drops below the fit's floor
    # (1e-11 of the peak) at t_f = ln(weight / 1e-11) / slow; the ratio is
    # raised so that t_c <= t_f / 2 (otherwise no method could see the slow mode).
    lw = np.log(weight)
    ratio = max(ratio, 1.0 + 2.0 * (-lw) / (lw + np.log(1e11)) + 0.05)
    t = np.linspace(0.0, 25.0 / slow, 300)
    M = np.exp(-ratio * slow * t) + weight * np.exp(-slow * t)
    fit = fit_decay(t, M)
    assert fit.kind == "exponential", fit.note
    # measured worst rel. error 3.3e-13 over 300 draws; 1e-10 is 300x that
    assert fit.rate == pytest.approx(slow, rel=1e-10), fit.note


def test_fit_decay_two_modes_note_and_fits():
    t = np.linspace(0.0, 25.0, 300)
    fit = fit_decay(t, np.exp(-2.0 * t) + 1e-4 * np.exp(-t))
    assert fit.rate == pytest.approx(1.0, rel=1e-6)
    assert "two modes" in fit.note
    mix = fit.fits["exponential_mixture"]
    assert mix["fast_rate"] == pytest.approx(2.0, rel=1e-6)
    assert mix["fast_constant"] / mix["constant"] == pytest.approx(1e4, rel=1e-4)


def test_fit_decay_rate_after_a_saturation_plateau_comes_from_the_tail():
    # tanh saturates first at amplitude 5 (z falls linearly, M stays near its
    # peak), then decays at the linear rate -alpha(W) = 1.  Over the whole
    # window the (1 + t)^q e^{-beta t} family absorbs the plateau (beta ~ 1.24);
    # the rate is re-estimated on the last half of the decades.
    model = dm.CTRNN(np.array([[-1.0]]), np.array([[2.04]]), np.zeros(1), np.array([-2.56]))
    t = np.linspace(0.0, 30.0, 300)
    M = memory_function(model, t, amplitudes=[5.0], rtol=1e-11, atol=1e-14).values
    fit = fit_decay(t, M)
    assert fit.kind == "exponential"
    assert fit.rate == pytest.approx(1.0, rel=0.01), fit.note
    assert "whole_window" in fit.fits and fit.window[0] > 5.0


def test_fit_decay_jordan_block_rate():
    model = dm.LinearRNN(np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, -1.0]]),
                         np.array([[0.0], [0.0], [1.0]]), np.array([1.0, 0.0, 0.0]))
    t = np.linspace(0.0, 40.0, 400)
    fit = fit_decay(t, memory_function(model, t).values)  # rho(t) = t^2 / 2 e^{-t}
    assert fit.kind == "exponential" and fit.rate == pytest.approx(1.0, rel=0.005), fit.note
    assert fit.power == pytest.approx(2.0, rel=0.1)


def test_memory_comparison_example_runs(tmp_path):
    import os
    import runpy

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "memory_comparison.py")
    mod = runpy.run_path(path, run_name="example")
    out = tmp_path / "m.png"
    fits = mod["main"](str(out))
    assert out.exists() and out.stat().st_size > 1000
    assert fits["target 0.9^t"].kind == "exponential" and abs(fits["target 0.9^t"].rate + np.log(0.9)) < 1e-6
    assert fits["target (1+t)^-1.5"].kind == "polynomial" and abs(fits["target (1+t)^-1.5"].exponent - 1.5) < 0.03
