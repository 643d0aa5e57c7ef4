"""Tests of dynmem.targets: target functionals with known memory.

References are independent of the moment formulas in dynmem.targets:

* closed-form step responses (``int_0^t rho``) written out by hand, and
  mpmath at 30 digits where the closed form cancels in double precision;
* :func:`scipy.integrate.quad` of the convolution ``rho(t - u)^T x(u)`` on
  every knot interval (the kernel is only *evaluated*, never integrated by
  dynmem), with ``epsrel = 1e-12``;
* direct O(T^2) (and O(T^3) for the second-order term) numpy sums for the
  discrete convolutions;
* central differences of ``output`` on a step input at several step sizes,
  whose errors must fall like ``h^2`` (slope from ``scipy.stats.linregress``);
* :func:`dynmem.simulate.simulate` and :func:`dynmem.recurrences.forward` for
  teacher RNNs.

Tolerances: the moment formulas are accurate to rounding (observed ~1e-15
relative to ``sum |m_0| |x|``); quad references to ~1e-12.  We allow 1e-10
relative to the output scale, well above both and far below any modelling
mistake (a wrong sign, a missed piece, an off-by-one in the kernel).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import mpmath
import numpy as np
import pytest
import scipy.linalg
import scipy.special as sp
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import IntegrationWarning
from scipy.integrate import quad as _scipy_quad

import dynmem as dm
from dynmem import targets as T
from dynmem.inputs import FunctionPath, PiecewiseConstant, PiecewiseLinear, from_sequence, step
from dynmem.recurrences import forward
from dynmem.strategies import piecewise_inputs, sequences

REL = 1e-10


def quad(*args, **kwargs):
    """scipy quad for references.  QUADPACK warns "roundoff error detected" when it cannot
    certify epsrel = 1e-12 (e.g. integrals near zero); the comparisons below check the
    accuracy that matters, so that warning is silenced here and only here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        return _scipy_quad(*args, **kwargs)


# --------------------------------------------------------------------------
# references


def _rho(target, s: float) -> np.ndarray:
    return target.kernel(np.array([s]))[0]


def _quad_output(target, x, t):
    """``int_{t_start}^{t} rho(t - u)^T x(u) du`` by quad on each knot interval (affine paths)."""
    breaks = list(getattr(target, "_breaks", ()))
    out = np.zeros(t.size)
    for i, ti in enumerate(t):
        edges = np.concatenate([[x.t_start], x.knots[(x.knots > x.t_start) & (x.knots < ti)], [ti]])
        for k_lo, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            if b <= a:
                continue
            k = int(x.piece_index(np.array([a]))[0])
            pts = [ti - c for c in breaks if a < ti - c < b] or None
            for c in range(x.dim):
                def f(u, k=k, c=c, ti=ti):
                    return _rho(target, ti - u)[c] * (x.offsets[k, c] + (u - x.knots[k]) * x.slopes[k, c])

                out[i] += quad(f, a, b, points=pts, epsabs=1e-14, epsrel=1e-12, limit=400)[0]
    return out


def _kernel_integral_quad(target, t):
    breaks = list(getattr(target, "_breaks", ()))
    res = np.zeros((t.size, target.dim))
    for i, ti in enumerate(t):
        pts = [c for c in breaks if 0 < c < ti] or None
        for c in range(target.dim):
            res[i, c] = quad(lambda s: _rho(target, s)[c], 0, ti, points=pts, epsabs=1e-14, epsrel=1e-12,
                             limit=1000)[0]
    return res


def _direct_sequence(K, X, dt):
    """``y_k = sum_j dt K_j^T x_{k-j}`` by two loops."""
    B, Tn, _ = X.shape
    y = np.zeros((B, Tn))
    for k in range(Tn):
        for j in range(k + 1):
            y[:, k] += dt * X[:, k - j, :] @ K[j]
    return y


def _box_rho(s):
    return ((s > 1.0) & (s < 2.5)).astype(float) * 1.5


# A catalogue of linear targets of dimension 1 and 2, covering every kernel class.
LINEAR = {
    "exp": T.ExponentialKernel(0.7, [1.0, -2.0]),
    "exp_d1": T.ExponentialKernel(1.3),
    "wll_0.9": T.ExponentialKernel.discrete(0.9),
    "pow": T.PowerLawKernel(1.1, [0.5, 1.0], scale=0.3),
    "pow_p1": T.PowerLawKernel(1.0, 2.0),
    "pow_p2": T.PowerLawKernel(2.0, 1.0, scale=3.0),
    "expsum": T.ExponentialSum([0.1, 1.0, 3.0], [[1.0, 0.2], [-0.5, 1.0], [2.0, -1.0]]),
    "bump": T.ShiftedBump(3.0, 0.7, [1.0, 2.0]),
    "airy": T.AiryKernel([1.0, -1.0]),
    "airy_code": T.AiryKernel.public_code(),
    "twopart": T.TwoPartKernel(1.0, 1.5, 2.0, [1.0, 0.5]),
    "box": T.BoxKernel(1.0, 2.5, [1.0, -1.0]),
    "sine": T.SineKernel(2.0, [1.0, 3.0], 0.3),
    "sum": T.ExponentialKernel(1.0) + T.ShiftedBump(2.0, 1.0),
    "functional": T.LinearFunctional(lambda s: np.stack([np.cos(s) * np.exp(-s / 3), 1 / (1 + s) ** 2], 1), dim=2),
    "functional_breaks": T.LinearFunctional(_box_rho, breaks=(1.0, 2.5)),
    "functional_anti": T.LinearFunctional(lambda s: np.exp(-0.5 * s), lambda s: 2 * (1 - np.exp(-0.5 * s))),
}
LINEAR_IDS = list(LINEAR)


# --------------------------------------------------------------------------
# closed-form step responses


@given(rate=st.floats(0.01, 5.0), d=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_exponential_step_response_closed_form(rate, d, seed):
    rng = np.random.default_rng(seed)
    a, x = rng.standard_normal(d), rng.standard_normal(d)
    target = T.ExponentialKernel(rate, a)
    t = np.array([0.0, 1e-6, 0.1, 1.0, 7.0, 40.0])
    y = target.output(step(x), t)
    expected = (a @ x) / rate * (-np.expm1(-rate * t))
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-15 * abs(a @ x))


def test_discrete_constructor():
    assert T.ExponentialKernel.discrete(1.0).rate == 0.0
    assert T.ExponentialKernel.discrete(0.5, [1.0, 2.0]).rate == pytest.approx(math.log(2.0), rel=1e-15)
    np.testing.assert_allclose(T.ExponentialKernel.discrete(0.5).kernel([3.0])[0, 0], 0.125, rtol=1e-15)


def test_exponential_rate_zero_is_a_constant_kernel():
    target = T.ExponentialKernel(0.0, [2.0])
    t = np.array([0.0, 0.5, 3.0])
    np.testing.assert_allclose(target.output(step(1.5), t), 3.0 * t, rtol=1e-15)
    assert target.decay == ("non-decaying", None)


@given(p=st.one_of(st.sampled_from([1.0, 2.0]), st.floats(0.2, 4.0)), scale=st.floats(0.05, 5.0))
@settings(max_examples=25)
def test_power_law_step_response_against_mpmath(p, scale):
    # The textbook closed form ((1 + ct)^{1-p} - 1) / (c (1-p)) loses digits at small t and
    # near p = 1; mpmath at 30 digits is the reference.
    mpmath.mp.dps = 30
    target = T.PowerLawKernel(p, scale=scale)
    t = np.array([1e-9, 1e-4, 0.3, 5.0, 200.0, 1e4])
    y = target.output(step(1.0), t)
    P, C = mpmath.mpf(p), mpmath.mpf(scale)
    ref = []
    for ti in t:
        w = 1 + C * mpmath.mpf(ti)
        ref.append(float(mpmath.log(w) / C if p == 1.0 else (w ** (1 - P) - 1) / (C * (1 - P))))
    np.testing.assert_allclose(y, ref, rtol=1e-13)


def test_two_part_kernel_is_continuous_with_continuous_slope_at_T0():
    target = T.TwoPartKernel(0.8, 1.7, 3.0, 2.0)
    eps = 1e-7
    left, mid, right = target.kernel(np.array([3.0 - eps, 3.0, 3.0 + eps]))[:, 0]
    assert abs(left - right) < 1e-6
    np.testing.assert_allclose(mid, 2.0 * np.exp(-0.8 * 3.0), rtol=1e-15)
    slope_l = (mid - left) / eps
    slope_r = (right - mid) / eps
    np.testing.assert_allclose([slope_l, slope_r], -0.8 * mid, rtol=1e-5)
    # the tail is a power law with exponent p
    big = target.kernel(np.array([1e6, 2e6]))[:, 0]
    np.testing.assert_allclose(np.log(big[0] / big[1]) / np.log(2.0), 1.7, rtol=1e-4)


@pytest.mark.parametrize("name", LINEAR_IDS)
def test_step_output_is_kernel_integral_and_matches_quad(name):
    target = LINEAR[name]
    t = np.array([0.0, 0.3, 1.7, 4.0, 9.5])
    R = target.integral(t)
    np.testing.assert_allclose(R, _kernel_integral_quad(target, t), rtol=REL, atol=REL * np.abs(R).max())
    x = np.linspace(1.0, -0.5, target.dim)
    np.testing.assert_allclose(target.output(step(x), t), R @ x, rtol=1e-13, atol=1e-14 * np.abs(R).max())


def test_airy_long_horizon_integral():
    # int_0^inf Ai(-z) dz = 2/3 and int_0^inf Ai(z) dz = 1/3; at z = 1000 the oscillating tail is
    # ~ pi^{-1/2} z^{-3/4} cos(...) in size, so compare with quad on [0, 1000] instead.
    target = T.AiryKernel()
    ref = quad(lambda u: sp.airy(-u)[0], 0, 300, limit=20000, epsabs=1e-13)[0]
    np.testing.assert_allclose(target.integral(np.array([300.0]))[0, 0], ref, atol=1e-11)
    np.testing.assert_allclose(T.AiryKernel(scale=1.0).integral(np.array([40.0]))[0, 0], 1 / 3, rtol=1e-13)


def test_airy_results_do_not_depend_on_cache_state():
    # The cumulative table is cached and grows on demand; a fresh kernel and a warmed one agree.
    t = np.array([5.0, 80.0])
    warm = T.AiryKernel(2.0, scale=-0.7, shift=0.4)
    warm.integral(np.array([500.0]))
    cold = T.AiryKernel(2.0, scale=-0.7, shift=0.4000000001)
    np.testing.assert_allclose(warm.integral(t), cold.integral(t), rtol=1e-8)  # shift differs by 1e-10
    again = T.AiryKernel(2.0, scale=-0.7, shift=0.4)
    np.testing.assert_allclose(again.integral(t), warm.integral(t), rtol=1e-13)


# --------------------------------------------------------------------------
# outputs on piecewise paths against quad


@pytest.mark.parametrize("name", LINEAR_IDS)
@given(data=st.data())
@settings(max_examples=10)
def test_output_on_piecewise_paths_matches_quad(name, data):
    target = LINEAR[name]
    x = data.draw(piecewise_inputs(target.dim, t_end=6.0, max_pieces=6))
    t = np.sort(np.unique(np.concatenate([[0.0, 6.0], data.draw(st.lists(st.floats(0.0, 6.0), max_size=3))])))
    y = target.output(x, t)
    ref = _quad_output(target, x, t)
    scale = max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(y, ref, rtol=0, atol=REL * scale)


@given(shift=st.floats(-50.0, 50.0), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_outputs_are_time_homogeneous(shift, seed):
    # The path's t_start is the time origin: shifting path and times together changes nothing.
    rng = np.random.default_rng(seed)
    knots = np.array([0.0, 0.7, 2.0, 3.5])
    vals = rng.standard_normal((4, 2))
    target = LINEAR["pow"] + LINEAR["bump"]
    t = np.array([0.0, 1.0, 3.5])
    y0 = target.output(PiecewiseLinear(knots, vals), t)
    y1 = target.output(PiecewiseLinear(knots + shift, vals), t + shift)
    np.testing.assert_allclose(y1, y0, rtol=1e-9, atol=1e-12)


def test_output_before_any_input_is_zero_and_infinite_last_piece():
    target = LINEAR["exp"]
    x = step([1.0, 2.0], t_jump=2.0, t_start=0.0)  # zero on [0, 2), then a step lasting for ever
    y = target.output(x, np.array([0.0, 1.0, 2.0, 5.0]))
    assert y[0] == 0.0 and y[1] == 0.0 and y[2] == 0.0
    expected = (np.array([1.0, -2.0]) @ np.array([1.0, 2.0])) / 0.7 * (-np.expm1(-0.7 * 3.0))
    np.testing.assert_allclose(y[3], expected, rtol=1e-14)


def test_output_on_function_path_matches_fine_interpolation():
    fn = FunctionPath(lambda u: np.array([np.sin(u), np.cos(2 * u)]), [0.0, 1.3, 5.0], 2)
    target = LINEAR["exp"] + LINEAR["box"]
    t = np.array([0.5, 2.5, 5.0])
    y = target.output(fn, t)
    grid = np.linspace(0.0, 5.0, 40001)
    fine = PiecewiseLinear(grid, np.stack([np.sin(grid), np.cos(2 * grid)], 1))
    # piecewise-linear interpolation error: h^2/8 max|x''| * int |rho| ~ 1e-8
    np.testing.assert_allclose(y, target.output(fine, t), atol=3e-8)


@pytest.mark.parametrize("target", [T.ShiftedBump(5.0, 2.0), T.AiryKernel(scale=-1.0, shift=-4.0),
                                    T.LinearFunctional(lambda s: np.exp(-(((s - 5.0) / 2.0) ** 2)))],
                         ids=["bump", "airy", "functional"])
def test_tiny_outputs_keep_relative_accuracy(target):
    # On a ramp x(u) = u at t = 1e-3 the output ~ rho(0) t^2 / 2 is tiny, and the closed forms of
    # the first moment cancel (terms ~ t |center| against a result ~ t^2): short pieces use one
    # Gauss-Legendre rule instead, exact to rounding *relative to the output*.
    x = PiecewiseLinear([0.0, 1.0], [0.0, 1.0])
    for ti in (1e-3, 1e-2):
        ref = quad(lambda s: _rho(target, s)[0] * (ti - s), 0.0, ti, epsabs=0.0, epsrel=1e-13)[0]
        np.testing.assert_allclose(target.output(x, np.array([ti]))[0], ref, rtol=1e-13)


@pytest.mark.parametrize("name", LINEAR_IDS)
def test_kernel_moments_keep_relative_accuracy_on_short_far_pieces(name):
    # White-box check of the core: m0 = int_{sa}^{sa+L} rho and m1 = int_{sa}^{sa+L} (s - sa) rho on
    # pieces that are short and far in the past (where differences of antiderivatives cancel) keep
    # *relative* accuracy.  (Long pieces of table-based kernels are accurate to eps * |int_0^s rho|
    # in absolute terms; the output tests against quad cover them.)
    target = LINEAR[name]
    sa = np.array([0.0, 0.3, 7.9, 12.0, 40.0, 25.0])
    L = np.array([1e-3, 0.05, 1e-4, 0.01, 1e-3, 0.02])
    m0, m1 = target._moments(sa, L)
    for i in range(sa.size):
        pts = [c - sa[i] for c in target._breaks if 0 < c - sa[i] < L[i]] or None
        for c in range(target.dim):
            r0 = quad(lambda u: _rho(target, sa[i] + u)[c], 0, L[i], points=pts, epsabs=0, epsrel=1e-13)[0]
            r1 = quad(lambda u: u * _rho(target, sa[i] + u)[c], 0, L[i], points=pts, epsabs=0, epsrel=1e-13)[0]
            scale0 = quad(lambda u: abs(_rho(target, sa[i] + u)[c]), 0, L[i], points=pts, epsabs=0, epsrel=1e-13)[0]
            assert abs(m0[i, c] - r0) <= 1e-11 * scale0 + 1e-300, (i, c, m0[i, c], r0)
            assert abs(m1[i, c] - r1) <= 1e-11 * scale0 * L[i] + 1e-300, (i, c, m1[i, c], r1)


def test_long_sequence_path_output_agrees_with_direct_sum_of_pieces():
    # Far-past pieces (s_a up to 300) in many short pieces, the regime where moment
    # formulas can cancel: compare a piecewise-constant path against exact piece integrals.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 1))
    x = from_sequence(X, 1.0)
    t = np.array([300.0])
    for target in (LINEAR["pow_p1"], LINEAR["bump"].__class__(150.0, 3.0), T.AiryKernel(scale=-0.3),
                   T.LinearFunctional(lambda s: 1 / (1 + s))):
        R = target.integral(np.arange(301.0))[:, 0]
        pieces = np.diff(R)  # int_j^{j+1} rho
        ref = pieces @ X[::-1, 0]
        np.testing.assert_allclose(target.output(x, t)[0], ref, rtol=1e-12, atol=1e-12 * np.abs(pieces).sum())


# --------------------------------------------------------------------------
# sampled inputs


@pytest.mark.parametrize("name", ["exp", "pow", "expsum", "bump", "airy", "twopart", "box", "sine", "functional"])
@given(data=st.data(), dt=st.floats(0.05, 2.0))
@settings(max_examples=15)
def test_output_sequence_matches_direct_sum(name, data, dt):
    target = LINEAR[name]
    X = data.draw(sequences(target.dim, max_length=25))
    K = target.kernel(dt * np.arange(X.shape[1]))
    y = target.output_sequence(X, dt)
    assert y.shape == X.shape[:2]
    ref = _direct_sequence(K, X, dt)
    np.testing.assert_allclose(y, ref, atol=1e-12 * max(1.0, np.abs(ref).max()))


def test_wll_discrete_target_is_the_paper_sum():
    X = np.random.default_rng(0).standard_normal((2, 40, 1))
    y = T.wll_targets()["exp_0.9"].output_sequence(X, 1.0)
    ref = np.array([[sum(0.9**j * X[b, k - j, 0] for j in range(k + 1)) for k in range(40)] for b in range(2)])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-13)


def test_output_sequence_is_first_order_in_dt():
    # y_k is the left Riemann sum of H at (k + 1) dt on from_sequence(X, dt): error O(dt).
    target = T.PowerLawKernel(1.5, [1.0, -0.5])
    u = np.linspace(0.0, 4.0, 9)
    vals = np.stack([np.sin(u), np.cos(u)], 1)
    smooth = PiecewiseLinear(u, vals)
    errs, dts = [], [0.1, 0.05, 0.025, 0.0125]
    for dt in dts:
        n = int(round(4.0 / dt))
        X = PiecewiseConstant(dt * np.arange(n + 1), smooth(dt * np.arange(n)))
        ys = target.output_sequence(X.values[None], dt)[0]
        errs.append(abs(ys[-1] - target.output(X, np.array([4.0]))[0]))
    slope = scipy.stats.linregress(np.log(dts), np.log(errs)).slope
    assert 0.9 < slope < 1.1, (slope, errs)


def test_output_sequence_is_riemann_sum_of_path_output():
    # The same discrete sum, written against the piecewise-constant path: the exact path
    # output at (k+1) dt minus the sequence output is sum_j (int_{j dt}^{(j+1) dt} rho - dt rho(j dt)) x.
    target = LINEAR["expsum"]
    dt = 0.4
    X = np.random.default_rng(1).standard_normal((1, 12, 2))
    exact = target.output(from_sequence(X[0], dt), dt * np.arange(1, 13))
    R = target.integral(dt * np.arange(13))
    pieces = np.diff(R, axis=0)  # (12, 2) exact piece integrals
    np.testing.assert_allclose(exact, _direct_sequence(pieces / dt, X, dt)[0], rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------
# step derivatives


def _nonlinear_targets():
    lin = T.ExponentialKernel(0.5, [1.0, -2.0])
    return {
        "tanh(exp)": T.PointwiseNonlinear.tanh(lin),
        "sin(pow)": T.PointwiseNonlinear(T.PowerLawKernel(1.5, [0.7, 0.3]), np.sin, np.cos, 1.0),
        "volterra": T.Volterra2(lin, T.ExponentialKernel(1.0), [[1.0, 0.5], [0.5, -1.0]]),
        "volterra_d1": T.Volterra2(T.PowerLawKernel(1.2, scale=0.5), T.ShiftedBump(1.0, 0.8), 0.7),
    }


DERIV_TARGETS = {**{k: LINEAR[k] for k in ("exp", "pow", "bump", "airy", "twopart", "sine", "functional")},
                 **_nonlinear_targets()}


@pytest.mark.parametrize("name", list(DERIV_TARGETS))
def test_step_derivative_matches_central_differences_at_second_order(name):
    target = DERIV_TARGETS[name]
    rng = np.random.default_rng(7)
    xs = rng.uniform(-1.5, 1.5, size=(2, target.dim))
    t = np.array([0.6, 1.3, 3.7])  # away from kinks (T0 = 2 of the two-part kernel)
    exact = target.step_derivative(xs, t)
    assert exact.shape == (2, 3)
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    errs = []
    for h in hs:
        fd = np.stack([(target.output(step(x), t + h) - target.output(step(x), t - h)) / (2 * h) for x in xs])
        errs.append(np.abs(fd - exact).max())
    errs = np.array(errs)
    assert errs[-1] < 1e-2 * max(1.0, np.abs(exact).max())
    slope = scipy.stats.linregress(np.log(hs), np.log(errs)).slope
    assert 1.85 < slope < 2.15, (slope, errs)


def test_linear_step_derivative_is_kernel_projection():
    target = LINEAR["expsum"]
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -3.0]])
    t = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(target.step_derivative(x, t), x @ target.kernel(t).T, rtol=1e-15)


def test_volterra_step_response_closed_form():
    # g = e^{-s}, G(t) = 1 - e^{-t}: H_t(u^x) = a x (1 - e^{-2t})/2 + q G(t)^2 x^2 for rho1 = a e^{-2s}.
    target = T.Volterra2(T.ExponentialKernel(2.0, 1.5), T.ExponentialKernel(1.0), 0.8)
    t = np.array([0.0, 0.4, 3.0])
    for x in (0.5, -2.0):
        G = -np.expm1(-t)
        ref = 1.5 * x * (-np.expm1(-2 * t)) / 2 + 0.8 * G**2 * x**2
        np.testing.assert_allclose(target.output(step(x), t), ref, rtol=1e-14, atol=1e-16)
        deriv = 1.5 * np.exp(-2 * t) * x + 2 * np.exp(-t) * G * 0.8 * x**2
        np.testing.assert_allclose(target.step_derivative(np.array([[x]]), t)[0], deriv, rtol=1e-14)


def test_volterra_output_sequence_matches_double_sum():
    target = _nonlinear_targets()["volterra"]
    dt = 0.3
    X = np.random.default_rng(4).standard_normal((2, 9, 2))
    Tn = X.shape[1]
    k1 = target.rho1.kernel(dt * np.arange(Tn))
    g = target.g.kernel(dt * np.arange(Tn))[:, 0]
    Q = target.weight
    ref = _direct_sequence(k1, X, dt)
    for b in range(2):
        for k in range(Tn):
            for j in range(k + 1):
                for m in range(k + 1):
                    ref[b, k] += dt**2 * g[j] * g[m] * X[b, k - j] @ Q @ X[b, k - m]
    np.testing.assert_allclose(target.output_sequence(X, dt), ref, rtol=1e-12, atol=1e-13)
    s = np.array([0.0, 0.3, 1.1])
    np.testing.assert_allclose(target.second_kernel(s, s[::-1]),
                               (np.exp(-s) * np.exp(-s[::-1]))[:, None, None] * Q[None], rtol=1e-15)


def test_pointwise_nonlinear_outputs_apply_f():
    lin = LINEAR["pow"]
    target = T.PointwiseNonlinear(lin, np.sin, np.cos, 1.0)
    x = PiecewiseLinear([0.0, 1.0, 4.0], [[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    t = np.array([0.5, 2.0, 4.0])
    np.testing.assert_allclose(target.output(x, t), np.sin(lin.output(x, t)), rtol=1e-15)
    X = np.random.default_rng(0).standard_normal((2, 7, 2))
    np.testing.assert_allclose(target.output_sequence(X, 0.5), np.sin(lin.output_sequence(X, 0.5)), rtol=1e-15)


# --------------------------------------------------------------------------
# exact memory


@pytest.mark.parametrize("name", LINEAR_IDS)
def test_linear_exact_memory_is_l1_norm_attained_at_sign_vertex(name):
    target = LINEAR[name]
    t = np.array([0.0, 0.45, 1.7, 3.2, 8.0])
    rho = target.kernel(t)
    M = target.exact_memory(t)
    np.testing.assert_allclose(M, np.abs(rho).sum(axis=1), rtol=1e-15)
    # attained at the vertex sign(rho), for every amplitude
    V = target.extremal_direction(t)
    for amp in (0.1, 1.0, 30.0):
        attained = np.array([target.step_derivative(amp * V[i:i + 1], t[i:i + 1])[0, 0] for i in range(t.size)])
        np.testing.assert_allclose(np.abs(attained) / amp, M, rtol=1e-13)
    # never exceeded inside the cube
    cube = np.random.default_rng(0).uniform(-1, 1, size=(200, target.dim))
    ratios = np.abs(target.step_derivative(cube, t)) / np.abs(cube).max(axis=1)[:, None]
    assert np.all(ratios <= M[None, :] * (1 + 1e-12) + 1e-300)


def test_linear_exact_memory_x_plus_one_and_radius():
    target = LINEAR["exp"]
    t = np.array([0.0, 1.0, 2.0])
    M = target.exact_memory(t)
    np.testing.assert_allclose(target.exact_memory(t, normalize="x+1"), M, rtol=1e-15)
    r = 3.0
    np.testing.assert_allclose(target.exact_memory(t, normalize="x+1", radius=r), M * r / (r + 1), rtol=1e-15)
    np.testing.assert_allclose(target.exact_memory(t, radius=r), M, rtol=1e-15)
    # the x+1 ratio approaches M from below as the amplitude grows, and equals M r/(r+1) at r sign(rho)
    V = target.extremal_direction(t)
    for amp in (1.0, 10.0, 1e4):
        ratio = np.abs(np.einsum("nd,nd->n", amp * V, target.kernel(t))) / (amp + 1)
        assert np.all(ratio < M) and np.allclose(ratio, M * amp / (amp + 1), rtol=1e-14)


def test_pointwise_tanh_memory_is_approached_at_small_amplitude():
    lin = T.ExponentialKernel(0.5, [1.0, -2.0])
    target = T.PointwiseNonlinear.tanh(lin)
    t = np.array([0.0, 0.7, 2.0, 5.0])
    M = target.exact_memory(t)
    np.testing.assert_allclose(M, lin.exact_memory(t), rtol=1e-15)  # sup |tanh'| = tanh'(0) = 1
    V = lin.extremal_direction(t)
    prev = None
    for amp in (1.0, 0.1, 1e-3, 1e-6):
        vals = np.array([abs(target.step_derivative(amp * V[i:i + 1], t[i:i + 1])[0, 0]) / amp for i in range(4)])
        assert np.all(vals <= M * (1 + 1e-14))
        if prev is not None:
            assert np.all(vals >= prev - 1e-15)
        prev = vals
    # 1 - tanh'(z) ~ z^2 with z = R^T x ~ 1e-6
    np.testing.assert_allclose(prev, M, rtol=1e-10)


def test_pointwise_sine_memory_sup_over_amplitudes():
    # f = sin: sup |cos| = 1 is reached wherever R(t)^T x hits a multiple of pi, so a fine amplitude
    # grid along sign(rho) gets within grid resolution of |rho|_1; at t = 0 (R = 0) M = |rho(0)|_1 |cos 0|.
    lin = T.PowerLawKernel(1.5, [0.7, -0.3])
    target = T.PointwiseNonlinear(lin, np.sin, np.cos, 1.0)
    t = np.array([0.0, 0.5, 2.0])
    M = target.exact_memory(t)
    amps = np.linspace(1e-3, 40.0, 20001)
    for i, ti in enumerate(t):
        v = lin.extremal_direction(np.array([ti]))
        probes = amps[:, None] * v
        vals = np.abs(target.step_derivative(probes, np.array([ti]))[:, 0]) / amps
        assert vals.max() <= M[i] * (1 + 1e-13)
        assert vals.max() >= M[i] * (1 - 1e-6)


def test_pointwise_memory_uses_fprime_at_zero_where_the_step_response_vanishes():
    # f(z) = z - sin z: f'(0) = 0 < sup |f'| = 2.  At t = 0, R(0) = 0 so the argument of f' is 0 for
    # every amplitude and M(0) = |rho(0)|_1 |f'(0)| = 0; for t > 0 the sup is 2 |rho(t)|_1.
    lin = T.ExponentialKernel(0.8, [1.0, -0.5])
    target = T.PointwiseNonlinear(lin, lambda z: z - np.sin(z), lambda z: 1 - np.cos(z), 2.0)
    t = np.array([0.0, 0.6, 2.0])
    M = target.exact_memory(t)
    assert M[0] == 0.0
    np.testing.assert_allclose(M[1:], 2 * lin.exact_memory(t[1:]), rtol=1e-15)
    amps = np.linspace(1e-3, 60.0, 30001)
    for i, ti in enumerate(t):
        probes = amps[:, None] * lin.extremal_direction(np.array([ti]))
        vals = np.abs(target.step_derivative(probes, np.array([ti]))[:, 0]) / amps
        assert vals.max() <= M[i] * (1 + 1e-13) + 1e-300
        assert vals.max() >= M[i] * (1 - 1e-6)


def test_pointwise_memory_not_implemented_cases():
    lin = LINEAR["exp"]
    with pytest.raises(NotImplementedError, match="fprime_sup"):
        T.PointwiseNonlinear(lin, np.sin, np.cos).exact_memory([1.0])
    with pytest.raises(NotImplementedError, match="normalize='x'"):
        T.PointwiseNonlinear.tanh(lin).exact_memory([1.0], normalize="x+1")
    assert T.PointwiseNonlinear(lin, np.sin, np.cos).decay == ("unknown", None)
    assert T.PointwiseNonlinear.tanh(lin).decay == lin.decay


def test_volterra_memory_over_bounded_radius_matches_brute_force():
    target = _nonlinear_targets()["volterra_d1"]
    t = np.array([0.0, 0.5, 1.5, 4.0])
    # all amplitudes: infinite where the quadratic term is active (t > 0), |rho1| at t = 0
    M_all = target.exact_memory(t)
    assert M_all[0] == pytest.approx(abs(target.rho1.kernel(t[:1])[0, 0]))
    assert np.all(np.isinf(M_all[1:]))
    assert target.decay == ("non-decaying", None)
    r = 2.5
    amps = np.concatenate([-np.linspace(r, 1e-4, 4000), np.linspace(1e-4, r, 4000)])
    raw = np.abs(target.step_derivative(amps[:, None], t))
    for normalize, denom in (("x", np.abs(amps)), ("x+1", np.abs(amps) + 1)):
        brute = (raw / denom[:, None]).max(axis=0)
        np.testing.assert_allclose(target.exact_memory(t, normalize=normalize, radius=r), brute, rtol=1e-12)


def test_volterra_memory_d_greater_than_one():
    target = _nonlinear_targets()["volterra"]
    with pytest.raises(NotImplementedError, match="bounded radius"):
        target.exact_memory([1.0], radius=1.0)
    # a vanishing (antisymmetric) weight leaves the linear part
    lin = LINEAR["exp"]
    anti = T.Volterra2(lin, T.ExponentialKernel(1.0), [[0.0, 1.0], [-1.0, 0.0]])
    t = np.array([0.5, 2.0])
    np.testing.assert_allclose(anti.exact_memory(t), lin.exact_memory(t))
    np.testing.assert_allclose(anti.exact_memory(t, radius=2.0, normalize="x+1"), lin.exact_memory(t) * 2 / 3)
    assert anti.decay == lin.decay


# --------------------------------------------------------------------------
# decay classes


@pytest.mark.parametrize("rate", [0.1, 0.9, 3.0])
def test_exponential_decay_class_matches_log_slope(rate):
    target = T.ExponentialSum([rate, rate + 1.0, 4 * rate], [[1.0], [-2.0], [0.5]])
    assert target.decay == ("exponential", rate)
    t0 = max(40 / rate, 30.0)  # the faster terms are down by e^{-t0} there
    t = np.linspace(t0, 2 * t0, 50)
    slope = scipy.stats.linregress(t, np.log(target.exact_memory(t))).slope
    assert slope == pytest.approx(-rate, rel=1e-6)


@pytest.mark.parametrize("target,p", [(T.PowerLawKernel(1.1, scale=0.1), 1.1), (T.PowerLawKernel(1.5), 1.5),
                                      (T.TwoPartKernel(1.0, 2.2, 3.0), 2.2),
                                      (T.ExponentialKernel(0.2) + T.PowerLawKernel(0.8, [0.01]), 0.8)])
def test_polynomial_decay_class_matches_log_log_slope(target, p):
    assert target.decay == ("polynomial", p)
    t = np.logspace(6, 8, 30)
    slope = scipy.stats.linregress(np.log(t), np.log(target.exact_memory(t))).slope
    assert slope == pytest.approx(-p, rel=1e-3)


def test_airy_decay_classes():
    slow = T.AiryKernel()
    assert slow.decay == ("polynomial", 0.25)
    # envelope: the maximum of |Ai(-t)| over a window of several oscillations ~ pi^{-1/2} t^{-1/4}
    centres = np.array([100.0, 1000.0, 10000.0])
    env = [slow.exact_memory(np.linspace(c, c + 3 * 2 * np.pi / np.sqrt(c), 4001)).max() for c in centres]
    np.testing.assert_allclose(env, centres**-0.25 / np.sqrt(np.pi), rtol=1e-3)
    assert T.AiryKernel.public_code().decay == ("exponential", math.inf)


def test_decay_classes_of_sums_and_registry():
    assert T.ExponentialSum([1.0, 1.0, 2.0], [1.0, -1.0, 3.0]).decay == ("exponential", 2.0)  # cancelling weights
    assert T.ExponentialSum([1.0], [0.0]).decay == ("exponential", math.inf)
    assert (T.SineKernel() + T.ExponentialKernel(1.0)).decay == ("non-decaying", None)
    assert (T.ShiftedBump(5.0, 1.0) + T.BoxKernel(1.0, 2.0)).decay == ("exponential", math.inf)
    assert T.LinearFunctional(np.exp).decay == ("unknown", None)
    assert T.LinearFunctional(np.exp, decay=("exponential", 1.0)).decay == T.Decay("exponential", 1.0)
    assert (T.PowerLawKernel(2.0) + T.LinearFunctional(np.exp)).decay == ("unknown", None)
    code = T.wll_code_targets()
    assert {k: v.decay.kind for k, v in code.items()} == {
        "exp": "exponential", "pol": "polynomial", "shift": "exponential", "twoparts": "exponential",
        "airy": "exponential", "sin": "non-decaying"}


# --------------------------------------------------------------------------
# registries


def test_wll_targets_kernels():
    tg = T.wll_targets()
    assert set(tg) == {"exp_0.9", "pow_1.1", "pow_1.5", "pow_1.1_code"}
    t = np.arange(0.0, 101.0)
    np.testing.assert_allclose(tg["exp_0.9"].kernel(t)[:, 0], 0.9**t, rtol=1e-13)
    np.testing.assert_allclose(tg["pow_1.1"].kernel(t)[:, 0], (t + 1) ** -1.1, rtol=1e-15)
    np.testing.assert_allclose(tg["pow_1.5"].kernel(t)[:, 0], (t + 1) ** -1.5, rtol=1e-15)
    np.testing.assert_allclose(tg["pow_1.1_code"].kernel(t)[:, 0], (1 + 0.1 * t) ** -1.1, rtol=1e-15)
    assert all(v.dim == 1 for v in tg.values())
    assert T.wll_targets() is not tg  # a fresh dict


def test_wll_code_targets_match_public_code_formulas():
    # The public code's rhos (src/data/components/lf/datagen.py), evaluated on the integer grid it samples.
    rhos = {
        "exp": lambda t: np.exp(-t),
        "pol": lambda t: 1 / (1 + 0.1 * t) ** 1.1,
        "shift": lambda t: 1 if (t > 9) and (t < 11) else 0,
        "twoparts": lambda t: np.exp(-t) + np.exp(-((t - 9.0) ** 2)),
        "airy": lambda t: sp.airy(t - 6.0)[0],
        "sin": lambda t: np.sin(t),
    }
    code = T.wll_code_targets()
    t = np.arange(0.0, 30.0)
    for name, fn in rhos.items():
        np.testing.assert_allclose(code[name].kernel(t)[:, 0], [fn(ti) for ti in t], rtol=1e-14, atol=1e-300,
                                   err_msg=name)


# --------------------------------------------------------------------------
# teacher RNNs


def test_teacher_output_is_simulate_and_sequences_are_euler_or_exact():
    model = dm.CTRNN.random(4, 2, rng=0)
    teacher = T.TeacherRNN(model)
    x = PiecewiseLinear([0.0, 1.0, 3.0], [[0.0, 1.0], [1.0, 0.0], [-1.0, 0.5]])
    t = np.array([0.0, 0.5, 2.0, 3.0])
    ref = dm.simulate(model, x, t, method="DOP853", rtol=1e-10, atol=1e-12).y
    np.testing.assert_allclose(teacher.output(x, t), ref, rtol=1e-13, atol=1e-15)
    X = np.random.default_rng(1).standard_normal((2, 15, 2))
    dt = 0.2
    np.testing.assert_allclose(teacher.output_sequence(X, dt), forward(model.discretize(dt), X).y, rtol=1e-13)
    exact = T.TeacherRNN(model, sequence_mode="simulate").output_sequence(X, dt)
    for b in range(2):
        ref_b = dm.simulate(model, from_sequence(X[b], dt), dt * np.arange(1, 16), method="DOP853",
                            rtol=1e-10, atol=1e-12).y
        np.testing.assert_allclose(exact[b], ref_b, rtol=1e-12, atol=1e-14)
    # Euler is first-order close to the exact sequence output
    assert np.abs(teacher.output_sequence(X, dt) - exact).max() < 0.2 * np.abs(exact).max()


def test_linear_teacher_agrees_with_its_kernel_as_a_linear_functional():
    lin = dm.LinearRNN.random(3, 2, spectral_abscissa=-0.4, rng=5)
    teacher = T.TeacherRNN(lin)
    kernel = T.LinearFunctional(lambda s: np.stack([lin.c @ scipy.linalg.expm(lin.W * si) @ lin.U for si in s]),
                                dim=2, panel=0.5)
    x = PiecewiseConstant([0.0, 0.5, 2.0, 4.0], [[1.0, 0.0], [-1.0, 2.0], [0.3, 0.3]])
    t = np.array([0.25, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(teacher.output(x, t), kernel.output(x, t), rtol=1e-8, atol=1e-10)


def test_teacher_delegates_memory_to_its_model():
    teacher = T.TeacherRNN(dm.CTRNN.random(3, 1, rng=0))
    with pytest.raises(NotImplementedError, match=r"memory_function handles teacher RNNs through their `\.model`"):
        teacher.step_derivative(np.ones((1, 1)), [0.5])
    with pytest.raises(NotImplementedError, match="memory_function"):
        teacher.exact_memory([0.5])
    assert teacher.decay == ("unknown", None)
    assert teacher.dim == 1 and teacher.model.hidden == 3


# --------------------------------------------------------------------------
# generic kernels


def test_linear_functional_reproduces_closed_form_kernels():
    ref = T.ShiftedBump(2.0, 0.6, [1.0])
    user = T.LinearFunctional(lambda s: np.exp(-(((s - 2.0) / 0.6) ** 2)), panel=0.3)
    x = PiecewiseLinear([0.0, 0.4, 2.2, 6.0], [1.0, -1.0, 0.5, 2.0])
    t = np.linspace(0.0, 6.0, 13)
    np.testing.assert_allclose(user.output(x, t), ref.output(x, t), rtol=1e-12, atol=1e-13)
    box = T.BoxKernel(1.0, 2.5, 1.5)
    brk = LINEAR["functional_breaks"]
    np.testing.assert_allclose(brk.output(x, t), box.output(x, t), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(brk.integral(np.array([2.0, 5.0]))[:, 0], [1.5, 2.25], rtol=1e-13)


def test_linear_functional_with_antiderivative():
    target = LINEAR["functional_anti"]
    np.testing.assert_allclose(target.output(step(2.0), np.array([1.0, 10.0])),
                               2.0 * 2.0 * -np.expm1(-0.5 * np.array([1.0, 10.0])), rtol=1e-15)


def test_one_channel_kernel_shapes():
    target = T.LinearFunctional(lambda s: 1.0 / (1.0 + s))
    assert target.kernel([0.0, 1.0]).shape == (2, 1)
    assert target.integral([0.0, 1.0]).shape == (2, 1)
    assert target.output(step(1.0), [0.0, 1.0]).shape == (2,)
    assert target.output(step(1.0), []).shape == (0,)
    assert target.step_derivative(np.ones((3, 1)), [0.0, 1.0]).shape == (3, 2)
    assert target.exact_memory([0.0, 1.0]).shape == (2,)


# --------------------------------------------------------------------------
# validation and immutability


VALIDATION_CASES = [
    (lambda: T.ExponentialKernel(-1.0), ValueError, r"`rate` must be a non-negative finite number; got -1\.0\."),
    (lambda: T.ExponentialKernel(1.0, [1.0, np.nan]), ValueError, r"`a` must be finite; got nan at index \(1,\)\."),
    (lambda: T.ExponentialKernel(1.0, []), ValueError, r"`a` must hold at least one weight"),
    (lambda: T.ExponentialKernel("fast"), TypeError, r"`rate` must be a non-negative number; got 'fast'\."),
    (lambda: T.ExponentialKernel.discrete(1.5), ValueError, r"`base` must lie in \(0, 1\] .*; got 1\.5\."),
    (lambda: T.PowerLawKernel(0.0), ValueError, r"`p` must be a positive finite number; got 0\.0\."),
    (lambda: T.PowerLawKernel(1.1, scale=-0.1), ValueError, r"`scale` must be a positive finite number; got -0\.1\."),
    (lambda: T.ExponentialSum([1.0, -2.0], [1.0, 1.0]), ValueError,
     r"`rates` must be non-negative; got rates\[1\] = -2\.0\."),
    (lambda: T.ExponentialSum([1.0, 2.0], [1.0, 1.0, 1.0]), ValueError,
     r"`weights` must have shape \(2,\) or \(2, d\) to match `rates`; got shape \(3, 1\)\."),
    (lambda: T.ShiftedBump(1.0, 0.0), ValueError, r"`width` must be a positive finite number; got 0\.0\."),
    (lambda: T.AiryKernel(scale=0.0), ValueError, r"`scale` must be non-zero; got 0\.0\."),
    (lambda: T.TwoPartKernel(1.0, 1.0, -1.0), ValueError, r"`T0` must be a non-negative finite number; got -1\.0\."),
    (lambda: T.BoxKernel(2.0, 1.0), ValueError, r"`stop` must be greater than start = 2\.0; got 1\.0\."),
    (lambda: T.SineKernel(0.0), ValueError, r"`freq` must be a positive finite number; got 0\.0\."),
    (lambda: T.LinearSum(()), ValueError, r"`terms` must hold at least one linear target"),
    (lambda: T.LinearSum((T.ExponentialKernel(1.0), T.ExponentialKernel(1.0, [1.0, 2.0]))), ValueError,
     r"`terms` must share one input dimension; terms\[0\] has 1, terms\[1\] has 2\."),
    (lambda: T.LinearSum((T.ExponentialKernel(1.0), "x")), TypeError,
     r"`terms\[1\]` must be a LinearTarget; got 'x'\."),
    (lambda: T.LinearFunctional(3.0), TypeError, r"`rho` must be callable .*; got 3\.0\."),
    (lambda: T.LinearFunctional(lambda s: np.ones((s.size, 2)), dim=1), ValueError,
     r"`rho` must return an array of shape \(2, 1\) for s of shape \(2,\); got shape \(2, 2\)\."),
    (lambda: T.LinearFunctional(np.exp, panel=0.0), ValueError,
     r"`panel` must be a positive finite number; got 0\.0\."),
    (lambda: T.LinearFunctional(np.exp, breaks=[-1.0]), ValueError, r"`breaks` must be non-negative times"),
    (lambda: T.LinearFunctional(np.exp, decay=("fast", 1.0)), ValueError, r"`decay\[0\]` must be one of"),
    (lambda: T.PointwiseNonlinear("lin", np.tanh, np.tanh), TypeError, r"`linear` must be a LinearTarget; got 'lin'\."),
    (lambda: T.PointwiseNonlinear(T.ExponentialKernel(1.0), np.tanh, 2.0), TypeError, r"`fprime` must be callable"),
    (lambda: T.PointwiseNonlinear(T.ExponentialKernel(1.0), lambda z: 1.0, np.cos), ValueError,
     r"`f` must be vectorised: for z of shape \(3,\) it returned shape \(\)\."),
    (lambda: T.PointwiseNonlinear(T.ExponentialKernel(1.0), np.sin, np.cos, -1.0), ValueError,
     r"`fprime_sup` must be a non-negative finite number; got -1\.0\."),
    (lambda: T.Volterra2(T.ExponentialKernel(1.0), T.ExponentialKernel(1.0, [1.0, 1.0])), ValueError,
     r"`g` must have a scalar kernel \(dim 1\), applied to every channel; got dim 2\."),
    (lambda: T.Volterra2(T.ExponentialKernel(1.0, [1.0, 1.0]), T.ExponentialKernel(1.0), np.eye(3)), ValueError,
     r"`weight` must have shape \(2, 2\) to match `rho1`; got shape \(3, 3\)\."),
    (lambda: T.Volterra2(T.ExponentialKernel(1.0, [1.0, 1.0]), T.ExponentialKernel(1.0), 2.0), ValueError,
     r"`weight` must have shape \(2, 2\) for input dimension 2; got a scalar\."),
    (lambda: T.TeacherRNN(dm.DiscreteRNN.random(2, 1, rng=0)), TypeError, r"`model` must be a CTRNN or a LinearRNN"),
    (lambda: T.TeacherRNN(dm.CTRNN.random(2, 1, rng=0), sequence_mode="rk4"), ValueError,
     r"`sequence_mode` must be one of 'euler', 'simulate'; got 'rk4'\."),
    (lambda: T.TeacherRNN(dm.CTRNN.random(2, 1, rng=0), method="Euler"), ValueError,
     r"`method` must be one of 'RK45', .*; got 'Euler'\."),
    (lambda: T.TeacherRNN(dm.CTRNN.random(2, 1, rng=0), rtol=0.0), ValueError,
     r"`rtol` must be a positive finite number; got 0\.0\."),
    (lambda: T.AiryKernel().integral([1e7]), ValueError,
     r"`t` reaches s = 1e\+07, where this kernel needs \d+ quadrature panels \(more than 20000000\)"),
    (lambda: T.LinearFunctional(np.exp, panel=1e-3).integral([1e5]), ValueError, r"quadrature panels"),
]


@pytest.mark.parametrize("fn,exc,pattern", VALIDATION_CASES, ids=[c[2][:40] for c in VALIDATION_CASES])
def test_constructor_validation_messages(fn, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        fn()
    assert type(info.value) is exc


def test_method_validation_messages():
    target = LINEAR["exp"]  # d = 2
    x = step([1.0, 1.0], t_end=5.0)
    with pytest.raises(TypeError, match=r"`x` must be an input path from dynmem\.inputs .*; got array"):
        target.output(np.ones(2), [1.0])
    with pytest.raises(ValueError, match=r"`x` must have dimension 2 to match the target; got dimension 1\."):
        target.output(step(1.0), [1.0])
    with pytest.raises(ValueError,
                       match=r"`t` must lie in the input's domain \[0\.0, 5\.0\]; got values in \[1\.0, 6\.0\]\."):
        target.output(x, [1.0, 6.0])
    with pytest.raises(ValueError,
                       match=r"`t` must be strictly increasing; got t\[0\] = 2\.0 followed by t\[1\] = 1\.0\."):
        target.output(x, [2.0, 1.0])
    with pytest.raises(ValueError, match=r"`t` must have 1 dimension\(s\); got shape \(1, 1\)\."):
        target.output(x, [[1.0]])
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 2\); got shape \(1, 4, 3\)\."):
        target.output_sequence(np.ones((1, 4, 3)))
    with pytest.raises(ValueError, match=r"`X` must have 3 dimension\(s\); got shape \(4, 2\)\."):
        target.output_sequence(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"`X` must hold at least one time step; got shape \(1, 0, 2\)\."):
        target.output_sequence(np.ones((1, 0, 2)))
    with pytest.raises(ValueError, match=r"`dt` must be a positive finite number; got 0\.0\."):
        target.output_sequence(np.ones((1, 3, 2)), dt=0.0)
    with pytest.raises(ValueError, match=r"`x` must have shape \(k, 2\) .*; got shape \(3, 1\)\."):
        target.step_derivative(np.ones((3, 1)), [1.0])
    with pytest.raises(ValueError, match=r"`x` must have 2 dimension\(s\); got shape \(2,\)\."):
        target.step_derivative(np.ones(2), [1.0])
    with pytest.raises(ValueError, match=r"`t` must be non-negative \(times since the step\); got min\(t\) = -0\.5\."):
        target.step_derivative(np.ones((1, 2)), [-0.5, 1.0])
    with pytest.raises(ValueError, match=r"`normalize` must be one of 'x', 'x\+1'; got 'l2'\."):
        target.exact_memory([1.0], normalize="l2")
    with pytest.raises(ValueError, match=r"`radius` must be a positive finite number; got -1\.0\."):
        target.exact_memory([1.0], radius=-1.0)
    with pytest.raises(ValueError, match=r"`t` must be finite; got inf"):
        target.kernel([np.inf])
    with pytest.raises(ValueError, match=r"`s1` and `s2` must have the same shape"):
        _nonlinear_targets()["volterra"].second_kernel([0.0], [0.0, 1.0])


def test_targets_are_immutable():
    target = T.ExponentialKernel(1.0, [1.0, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.rate = 2.0
    with pytest.raises(ValueError, match="read-only"):
        target.a[0] = 5.0
    a = np.array([1.0, 2.0])
    owned = T.PowerLawKernel(1.5, a)
    a[0] = 100.0
    assert owned.a[0] == 1.0  # the target owns a copy
    user = T.LinearFunctional(np.exp)
    with pytest.raises(AttributeError, match="immutable"):
        user.rho = np.sin
    with pytest.raises(dataclasses.FrozenInstanceError):
        T.PointwiseNonlinear.tanh(target).fprime_sup = 2.0
