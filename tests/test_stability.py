"""Tests of dynmem.stability: perturbation curves and stability-boundary estimators."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from dynmem.models import CTRNN, DiscreteRNN, LinearRNN
from dynmem.recurrences import forward
from dynmem.stability import (
    PerturbationCurve,
    StabilityBoundary,
    _expm_batch,
    perturbation_curve,
    sample_perturbations,
    stability_boundary,
)
from dynmem.targets import ExponentialKernel, wll_targets

pytestmark = pytest.mark.filterwarnings("error")

MU09 = -math.log(0.9)  # 0.10536...: the exact m = 1 fit of 0.9^t has W = -MU09


def _diag_model(mu, a=None):
    mu = np.asarray(mu, float)
    a = np.full(mu.size, 1.0 / mu.size) if a is None else np.asarray(a, float)
    return LinearRNN(-np.diag(mu), np.sqrt(a)[:, None], np.sqrt(a))


# -- perturbations ----------------------------------------------------------


@pytest.mark.parametrize("model", [LinearRNN.random(4, 2, rng=0), CTRNN.random(3, rng=1)])
@pytest.mark.parametrize("radius", ["sphere", "ball"])
def test_block_spectral_samples_lie_in_the_ball(model, radius):
    beta = 0.37
    P = sample_perturbations(model, beta, 50, radius=radius, rng=2)
    assert set(P) == set(model.param_names)
    for name, arr in P.items():
        assert arr.shape == (50, *model.param_shapes[name])
        norms = np.array([np.linalg.norm(a, 2) for a in arr])
        assert np.all(norms <= beta * (1 + 1e-12))
        if radius == "sphere":
            np.testing.assert_allclose(norms, beta, rtol=1e-12)
        else:
            assert norms.min() < 0.99 * beta


def test_entrywise_max_samples_lie_in_the_box():
    model = LinearRNN.random(5, 2, rng=0)
    P = sample_perturbations(model, 0.2, 200, norm="entrywise-max", rng=3)
    for arr in P.values():
        assert np.all(np.abs(arr) <= 0.2)
        assert np.abs(arr).max() > 0.19  # uses the whole box


def test_batched_expm_matches_scipy():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 6, 6)) * rng.uniform(0.01, 10, 30)[:, None, None]
    A[0] = 0.0
    A[1] = np.diag([-1.0] * 6) + np.diag([20.0] * 5, 1)  # strongly non-normal
    E = _expm_batch(A)
    for a, e in zip(A, E):
        ref = scipy.linalg.expm(a)
        np.testing.assert_allclose(e, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())


# -- perturbation_curve ----------------------------------------------------------


def test_shift_diverges_exactly_at_the_smallest_rate():
    mu = np.array([0.3, 0.55, 1.2])
    model = _diag_model(mu)
    betas = np.array([0.05, 0.1, 0.2, 0.29, 0.2999, 0.3, 0.31, 0.5])
    c = perturbation_curve(model, ExponentialKernel(0.5), betas, n_samples=8, rng=0, ascent_steps=1)
    stable = betas < mu.min()
    assert np.all(np.isfinite(c.shift_error[stable]))
    assert np.all(np.isinf(c.shift_error[~stable]))
    assert np.all(np.isinf(c.max_error[~stable]))
    assert np.all(np.isfinite(c.max_error[stable]))
    assert c.argmax_kind[int(np.argmax(~stable))] in ("shift", "random", "ascent")
    # The +beta I error equals the closed form sup_t |sum_i a_i e^{-(mu_i - beta) t} - e^{-t/2}|.
    t = np.arange(1.0, 101.0)
    for beta, e in zip(betas[stable], c.shift_error[stable]):
        direct = np.abs((np.exp(-(mu - beta)[None] * t[:, None]) / 3).sum(1) - np.exp(-0.5 * t)).max()
        assert e == pytest.approx(direct, rel=1e-10)


def test_error0_equals_direct_kernel_error():
    model = LinearRNN.random(3, rng=4)
    target = wll_targets()["pow_1.1"]
    t = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 9.0, 30.0])
    c = perturbation_curve(model, target, [0.01], n_samples=3, t_grid=t, adversarial=False, rng=0)
    ref = np.stack([model.c @ scipy.linalg.expm(model.W * ti) @ model.U for ti in t])
    direct = np.abs(target.kernel(t) - ref).sum(axis=1).max()
    assert c.error0 == pytest.approx(direct, rel=1e-10)
    assert c.success and c.settings["error"] == "sup"


def test_error0_test_error_linear_and_discrete():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 30, 1))
    target = ExponentialKernel(0.3)
    lin = LinearRNN.random(2, rng=6)
    c = perturbation_curve(lin, target, [0.01], n_samples=2, error="test", X_test=X, dt=0.5, adversarial=False)
    rho = np.stack([lin.c @ scipy.linalg.expm(lin.W * ti) @ lin.U for ti in 0.5 * np.arange(30)])
    y = 0.5 * scipy.signal.fftconvolve(X, rho[None], axes=1)[:, :30].sum(axis=2)
    assert c.error0 == pytest.approx(np.mean((y - target.output_sequence(X, 0.5)) ** 2), rel=1e-10)

    disc = DiscreteRNN.random(3, rng=7)
    c = perturbation_curve(disc, target, [0.01, 0.1], n_samples=4, error="test", X_test=X, adversarial=False)
    direct = np.mean((forward(disc, X).y - target.output_sequence(X, 1.0)) ** 2)
    assert c.error0 == pytest.approx(direct, rel=1e-12)
    assert np.all(np.isfinite(c.sample_errors))


def test_ctrnn_uses_euler_substeps():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3, 20, 1))
    model = CTRNN.random(3, rng=9)
    target = ExponentialKernel(0.5)
    c = perturbation_curve(model, target, [0.05], n_samples=3, X_test=X, dt=0.5, substeps=5, adversarial=False)
    y = forward(model.discretize(0.1), np.repeat(X, 5, axis=1)).y[:, 4::5]
    assert c.error0 == pytest.approx(np.abs(y - target.output_sequence(X, 0.5)).max(), rel=1e-12)


def test_common_random_numbers_and_monotone_ball_sup():
    model = LinearRNN.random(3, rng=10)
    target = wll_targets()["exp_0.9"]
    betas = np.array([0.002, 0.01, 0.05, 0.2])
    full = perturbation_curve(model, target, betas, n_samples=20, adversarial=False, rng=11)
    # The same unit directions are scaled by every beta: a curve on a sub-grid
    # with the same seed reproduces the per-sample errors exactly.
    sub = perturbation_curve(model, target, betas[[2]], n_samples=20, adversarial=False, rng=11)
    np.testing.assert_array_equal(sub.sample_errors[0], full.sample_errors[2])
    assert np.all(np.diff(full.max_error) >= 0)
    assert np.all(full.max_error >= full.shell_max_error)
    np.testing.assert_array_equal(full.shell_max_error, full.sample_errors.max(axis=1))


def test_hill_climb_never_worse_than_its_starts():
    model = LinearRNN.random(3, rng=12)
    betas = np.array([0.01, 0.03])
    c = perturbation_curve(model, wll_targets()["pow_1.1"], betas, n_samples=10, rng=13)
    best_start = np.maximum(c.sample_errors.max(axis=1), c.shift_error)
    assert np.all(c.ascent_error >= best_start)
    assert c.settings["n_evaluated"] == 2 * (10 + 1 + 4 * 2 * 8)


def test_divergence_is_reported_not_hidden():
    model = _diag_model([0.2])
    c = perturbation_curve(model, ExponentialKernel(0.2), [0.1, 0.5, 1.0], n_samples=30, rng=0, adversarial=False)
    assert c.n_diverged[0] == 0
    assert c.n_diverged[2] > 0  # about half the W perturbations of size 1 are >= 0.2
    assert np.isinf(c.mean_error[2]) and np.isinf(c.max_error[2])
    assert np.isfinite(c.median_error[0])


def test_progress_goes_to_stderr(capsys):
    perturbation_curve(_diag_model([0.5]), ExponentialKernel(0.5), [0.01, 0.02], n_samples=2, rng=0, progress=True)
    out = capsys.readouterr()
    assert out.out == ""
    assert "beta 2/2" in out.err and "ETA" in out.err


@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        ({"betas": [0.0, 0.1]}, ValueError, "`betas` must be positive"),
        ({"betas": [0.2, 0.1]}, ValueError, "`betas` must be strictly increasing"),
        ({"norm": "frobenius"}, ValueError, "`norm` must be one of"),
        ({"error": "l2"}, ValueError, "`error` must be one of"),
        ({"n_samples": 0}, ValueError, "`n_samples` must be >= 1"),
        ({"adversarial": 1}, TypeError, "`adversarial` must be True or False"),
    ],
)
def test_perturbation_curve_validation(kwargs, exc, text):
    args = {"betas": [0.1]}
    args.update(kwargs)
    betas = args.pop("betas")
    with pytest.raises(exc, match=text.replace("(", r"\(")):
        perturbation_curve(_diag_model([0.5]), ExponentialKernel(0.5), betas, **args)


def test_model_and_target_types_checked():
    with pytest.raises(TypeError, match="`model` must be"):
        perturbation_curve(object(), ExponentialKernel(0.5), [0.1])
    with pytest.raises(TypeError, match="`target` must be"):
        perturbation_curve(_diag_model([0.5]), np.exp, [0.1])


# -- stability_boundary ------------------------------------------------------------


BETAS = 1e-3 * 2.0 ** np.arange(12)


def test_crossings_and_blowup_exact_for_log_linear_curves():
    # E_1 = 0.1 (b / 0.01)^1 and E_2 = 0.01 (b / 0.01)^3 cross where 10 = (b / 0.01)^2.
    e1 = 0.1 * (BETAS / 0.01) ** 1
    e2 = 0.01 * (BETAS / 0.01) ** 3
    K, e0 = 10.0, 0.02
    # E_4 = K e0 (b / b_true)^2 exceeds K e0 exactly beyond b_true.
    b_true = 0.0237
    e4 = K * e0 * (BETAS / b_true) ** 2
    curves = {
        1: PerturbationCurve.from_errors(BETAS, e1, 0.05, model=_diag_model([0.3])),
        2: PerturbationCurve.from_errors(BETAS, e2, 0.01, model=_diag_model([0.3, 0.3])),
        4: PerturbationCurve.from_errors(BETAS, e4, e0, model=_diag_model([0.3] * 4)),
    }
    sb = stability_boundary(curves, K=K)
    assert isinstance(sb, StabilityBoundary)
    assert sb.crossing[0] == pytest.approx(0.01 * math.sqrt(10.0), rel=1e-12)
    assert sb.blowup[2] == pytest.approx(b_true, rel=1e-12)
    # E_1 > K E_1(0) = 0.5 where (b / 0.01) > 5.
    assert sb.blowup[0] == pytest.approx(0.05, rel=1e-12)
    np.testing.assert_allclose(sb.margin, 0.3, rtol=1e-12)
    np.testing.assert_allclose(sb.radius, 0.3, rtol=1e-8)
    assert "E(0)" in sb.table()


def test_blowup_censoring_and_divergence():
    e = np.array([1.0, 1.0, 2.0, np.inf] + [np.inf] * 8)
    curves = {1: PerturbationCurve.from_errors(BETAS, e, 0.15), 2: PerturbationCurve.from_errors(BETAS, np.full(12, 0.1), 0.1)}
    sb = stability_boundary(curves, K=10.0)
    # 1.5 is first exceeded between BETAS[1] and BETAS[2] on the log-log interpolant.
    f = math.log(1.5) / math.log(2.0)
    assert sb.blowup[0] == pytest.approx(BETAS[1] * 2.0**f, rel=1e-12)
    assert sb.blowup[1] == np.inf  # never exceeded
    assert np.isnan(sb.margin[0])  # no model: no spectrum
    sb2 = stability_boundary(curves, K=1.0, level=5.0)
    assert sb2.blowup[0] == pytest.approx(math.sqrt(BETAS[2] * BETAS[3]))  # jump to inf: geometric midpoint


def _family(margins, e0s, blowups):
    curves = {}
    for m, mg, e0, bb in zip((2, 4, 8, 16), margins, e0s, blowups):
        err = 10 * e0 * (BETAS / bb) ** 2
        curves[m] = PerturbationCurve.from_errors(BETAS, err, e0, model=_diag_model([mg] * m))
    return curves


def test_verdict_unstable_when_margins_shrink_like_m_minus_2():
    ms = np.array([2, 4, 8, 16.0])
    sb = stability_boundary(_family(0.4 * (ms / 2) ** -2, 0.1 / ms, 0.2 * (ms / 2) ** -2))
    assert sb.verdict == "unstable (boundary shrinks with m)"
    assert sb.trends["margin"].slope == pytest.approx(-2.0, abs=1e-9)
    assert sb.trends["blowup"].slope == pytest.approx(-2.0, abs=1e-9)


def test_verdict_stable_when_margins_are_constant():
    ms = np.array([2, 4, 8, 16.0])
    sb = stability_boundary(_family(np.full(4, 0.1), 0.1 / ms, np.full(4, 0.05)))
    assert sb.verdict == "stable approximation"
    assert sb.trends["margin"].slope == pytest.approx(0.0, abs=1e-9)
    assert sb.trends["error0"].slope == pytest.approx(-1.0, abs=1e-9)


def test_verdict_undetermined_when_error_does_not_fall():
    sb = stability_boundary(_family(np.full(4, 0.1), np.full(4, 0.1), np.full(4, 0.05)))
    assert sb.verdict == "undetermined"


def test_stability_boundary_validation():
    c = PerturbationCurve.from_errors(BETAS, np.ones(12), 0.1)
    with pytest.raises(ValueError, match="at least two widths"):
        stability_boundary({1: c})
    other = PerturbationCurve.from_errors(BETAS[:5], np.ones(5), 0.1)
    with pytest.raises(ValueError, match="share one beta grid"):
        stability_boundary({1: c, 2: other})
    with pytest.raises(ValueError, match="`K` must be a positive"):
        stability_boundary({1: c, 2: c}, K=-1.0)


# -- end to end --------------------------------------------------------------


def test_exact_exponential_fit_end_to_end():
    target = wll_targets()["exp_0.9"]
    m1 = _diag_model([MU09], [1.0])
    m2 = _diag_model([MU09, MU09], [0.5, 0.5])  # the same kernel, split in two
    betas = 5e-4 * 2.0 ** np.arange(11)  # up to 0.512
    c1 = perturbation_curve(m1, target, betas, n_samples=100, rng=0)
    c2 = perturbation_curve(m2, target, betas, n_samples=100, rng=0)
    for c in (c1, c2):
        assert c.error0 < 1e-12
        below = betas < MU09
        assert np.all(np.isfinite(c.max_error[below]))
        assert np.all(c.n_diverged[below] == 0)
        assert np.all(np.isinf(c.max_error[~below]))
    sb = stability_boundary({1: c1, 2: c2}, K=10.0, level=1.0)
    np.testing.assert_allclose(sb.margin, MU09, rtol=1e-12)
    np.testing.assert_allclose(sb.radius, MU09, rtol=1e-8)
    assert sb.margin[0] == pytest.approx(0.1054, abs=1e-4)
    assert sb.verdict == "stable approximation"


def test_perturbation_curve_returns_its_directions_and_takes_them_back():
    from dynmem.stability import unit_directions

    model = LinearRNN.random(3, 1, spectral_abscissa=-0.4, rng=2)
    target = ExponentialKernel(0.5)
    betas = [1e-3, 1e-2, 1e-1]
    c1 = perturbation_curve(model, target, betas, n_samples=5, adversarial=False, rng=7)
    # the draw order is the one documented: unit directions first from the generator
    again = unit_directions(model, 5, "block-spectral", np.random.default_rng(7))
    for k in again:
        np.testing.assert_array_equal(c1.directions[k], again[k])
    c2 = perturbation_curve(model, target, betas, n_samples=5, adversarial=False, rng=123,
                               directions=c1.directions)
    np.testing.assert_array_equal(c1.sample_errors, c2.sample_errors)
    # other directions give other errors (the argument is used)
    flipped = {k: -v for k, v in c1.directions.items()}
    c3 = perturbation_curve(model, target, betas, n_samples=5, adversarial=False, directions=flipped)
    assert not np.array_equal(c1.sample_errors, c3.sample_errors)
    with pytest.raises(ValueError, match="`directions"):
        perturbation_curve(model, target, betas, n_samples=4, directions=c1.directions)
    with pytest.raises(ValueError, match="`directions` must have exactly the blocks"):
        perturbation_curve(model, target, betas, n_samples=5, directions={"W": c1.directions["W"]})
