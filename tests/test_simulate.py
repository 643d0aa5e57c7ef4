"""Numerical tests of dynmem.simulate (continuous-time CTRNN integration).

References used here are independent of dynmem's integrator:

* linear models (LinearRNN, or CTRNN with identity activation, b = 0, with or
  without leak) are propagated exactly from knot to knot with
  ``scipy.linalg.expm`` of an augmented matrix;
* nonlinear models are integrated by a plain-numpy vector field with
  ``scipy.integrate.solve_ivp`` (DOP853, rtol = 1e-12) that also stops at
  every knot;
* the forward-Euler recurrence is checked to converge to the CTRNN at rate 1.

Tolerance convention.  Every scipy solver controls the *local* error of each
step to about ``rtol * |h| + atol`` (component-wise).  For a stable system the
global error is the sum of the local errors, each damped by the flow; it is a
modest multiple of the per-step tolerance that depends on the method.  For
linear models the observed ratio ``err / (rtol * max|h| + atol)`` at rtol = 1e-8
was at most 5.5 (BDF; RK45 0.3, DOP853 1.1, RK23 2.2, LSODA 2.4, Radau 0.15)
over 100 random linear models per method, and at most 15 (LSODA; RK45 10,
BDF 9) over 30 random tanh models per method.  We allow
``GLOBAL_FACTOR = 50``: 3x headroom over the worst observation, while any O(1)
mistake (a missed knot, a wrong input on a piece, a wrong leak sign) is
still detected by many orders of magnitude.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import dynmem as dm
from dynmem.activations import get_activation
from dynmem.simulate import COMPILED_METHODS, METHODS, SimulationError
from dynmem.ode.field import ctrnn_jac as _ctrnn_jac, ctrnn_rhs as _ctrnn_rhs
from dynmem.strategies import ctrnns, linear_rnns, piecewise_inputs

GLOBAL_FACTOR = 50.0
RTOL, ATOL = 1e-8, 1e-10


def _tol(ref, rtol=RTOL, atol=ATOL, factor=GLOBAL_FACTOR):
    return factor * (rtol * np.max(np.abs(ref)) + atol)


# ---------------------------------------------------------------------------
# Exact propagation of linear systems
# ---------------------------------------------------------------------------

def _propagate_piece(W, U, x, k, h, t_from, t_to):
    """Exact state at t_to from h at t_from, both inside piece k of an affine path.

    Piecewise-constant piece (value v): the state (h, 1) obeys
    d/dt (h, 1) = [[W, U v], [0, 0]] (h, 1).
    Piecewise-linear piece x(t) = x(t_from) + (t - t_from) s: the state
    (h, 1, tau) with tau = t - t_from obeys
    d/dt (h, 1, tau) = [[W, U x(t_from), U s], [0, 0, 0], [0, 1, 0]] (h, 1, tau).
    """
    m = W.shape[0]
    xa = x.offsets[k] + (t_from - x.knots[k]) * x.slopes[k]  # knots[k] is finite (only the last knot may be inf)
    if isinstance(x, dm.PiecewiseConstant):
        M = np.zeros((m + 1, m + 1))
        M[:m, :m] = W
        M[:m, m] = U @ x.offsets[k]
        z0 = np.concatenate([h, [1.0]])
    else:
        M = np.zeros((m + 2, m + 2))
        M[:m, :m] = W
        M[:m, m] = U @ xa
        M[:m, m + 1] = U @ x.slopes[k]
        M[m + 1, m] = 1.0
        z0 = np.concatenate([h, [1.0, 0.0]])
    return (scipy.linalg.expm(M * (t_to - t_from)) @ z0)[:m]


def exact_linear(W, U, x, t_eval, h0=None, t0=None):
    """h(t_eval) for dh/dt = W h + U x(t), h(t0) = h0, propagated knot to knot with expm."""
    W = np.asarray(W, float)
    U = np.asarray(U, float)
    m = W.shape[0]
    t = x.t_start if t0 is None else float(t0)
    h = np.zeros(m) if h0 is None else np.array(h0, float)
    out = []
    for te in np.asarray(t_eval, float):
        while True:
            k = int(x.piece_index(t))
            end = x.knots[k + 1]
            if te <= end:
                h = _propagate_piece(W, U, x, k, h, t, te)
                t = te
                break
            h = _propagate_piece(W, U, x, k, h, t, end)
            t = end
        out.append(h.copy())
    return np.array(out)


@st.composite
def linear_cases(draw, normal=None, max_pieces=8):
    model = draw(linear_rnns(max_hidden=5, normal=normal))
    x = draw(piecewise_inputs(model.inputs, t_end=5.0, max_pieces=max_pieces))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    h0 = rng.standard_normal(model.hidden) if draw(st.booleans()) else None
    return model, x, h0


def _t_eval_with_knots(x, n=17):
    # Requested times include every knot (the states at the jumps) and points in between.
    return np.unique(np.concatenate([np.linspace(x.t_start, x.t_end, n), x.knots]))


@pytest.mark.parametrize("method", METHODS + COMPILED_METHODS)
@settings(max_examples=20)
@given(case=linear_cases())
def test_linear_matches_expm_closed_form(method, case):
    model, x, h0 = case
    t_eval = _t_eval_with_knots(x)
    ref = exact_linear(model.W, model.U, x, t_eval, h0=h0)
    res = dm.simulate(model, x, t_eval, h0=h0, method=method, rtol=RTOL, atol=ATOL)
    assert res.success
    assert res.n_segments == x.knots.size - 1
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref))
    np.testing.assert_allclose(res.y, ref @ model.c, rtol=0, atol=_tol(ref) * np.sum(np.abs(model.c)))


@pytest.mark.parametrize("method", METHODS + COMPILED_METHODS)
@pytest.mark.parametrize("kind", ["constant", "linear"])
def test_linear_nonnormal_matches_expm(method, kind):
    # W = [[-1, 20], [0, -1]]: a double eigenvalue -1 with a Jordan-like
    # coupling; |e^{Wt}| peaks at ~20/e ~ 7.4 (transient growth) before decaying.
    W = np.array([[-1.0, 20.0], [0.0, -1.0]])
    U = np.array([[0.3], [1.0]])
    c = np.array([1.0, -0.5])
    model = dm.LinearRNN(W, U, c)
    rng = np.random.default_rng(1)
    knots = np.array([0.0, 0.7, 1.3, 2.9, 4.0, 6.0])
    if kind == "constant":
        x = dm.PiecewiseConstant(knots, rng.standard_normal(5))
    else:
        x = dm.PiecewiseLinear(knots, rng.standard_normal(6))
    t_eval = _t_eval_with_knots(x, 41)
    h0 = np.array([0.5, -1.0])
    ref = exact_linear(W, U, x, t_eval, h0=h0)
    # The transient really is non-normal: the state grows well beyond its inputs.
    assert np.max(np.abs(ref[:, 0])) > 3.0 * np.max(np.abs(ref[:, 1]))
    res = dm.simulate(model, x, t_eval, h0=h0, method=method, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref))


@pytest.mark.parametrize("method", ["RK45", "DOP853", "Radau", "LSODA"])
@pytest.mark.parametrize("leak", [0.3, 2.0])
def test_leak_matches_closed_form(method, leak):
    # CTRNN with identity activation, b = 0 and leak a is dh/dt = (W - a I) h + U x.
    rng = np.random.default_rng(7)
    base = dm.LinearRNN.random(3, 2, spectral_abscissa=-0.1, rng=rng)
    model = dm.CTRNN(base.W, base.U, np.zeros(3), base.c, activation="identity", leak=leak)
    x = dm.PiecewiseLinear([0.0, 1.0, 2.5, 4.0], rng.standard_normal((4, 2)))
    t_eval = np.linspace(0.0, 4.0, 21)
    h0 = rng.standard_normal(3)
    ref = exact_linear(base.W - leak * np.eye(3), base.U, x, t_eval, h0=h0)
    res = dm.simulate(model, x, t_eval, h0=h0, method=method, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref))
    # The leak matters: the leak-free solution is far away.
    no_leak = exact_linear(base.W, base.U, x, t_eval, h0=h0)
    assert np.max(np.abs(no_leak - ref)) > 1e4 * _tol(ref)


def test_t0_inside_the_domain_and_h0():
    # Start in the middle of a piece with a given state; t_eval[0] == t0 returns h0.
    rng = np.random.default_rng(3)
    model = dm.LinearRNN.random(3, 1, spectral_abscissa=-0.3, rng=rng)
    x = dm.PiecewiseLinear([0.0, 1.0, 2.0, 3.0, 4.0], rng.standard_normal(5))
    h0 = rng.standard_normal(3)
    t0 = 1.37
    t_eval = np.array([t0, 1.5, 2.0, 2.2, 3.9])
    res = dm.simulate(model, x, t_eval, h0=h0, t0=t0, rtol=1e-10, atol=1e-12)
    ref = exact_linear(model.W, model.U, x, t_eval, h0=h0, t0=t0)
    np.testing.assert_array_equal(res.h[0], h0)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref, 1e-10, 1e-12))
    assert res.n_segments == 3  # pieces [1,2), [2,3), [3,4) are crossed


# ---------------------------------------------------------------------------
# Knot-to-knot integration
# ---------------------------------------------------------------------------

@settings(max_examples=30)
@given(x=piecewise_inputs(1, t_end=5.0, max_pieces=10), frac=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
       on_knot=st.booleans())
def test_n_segments_counts_pieces_crossed(x, frac, on_knot):
    model = dm.LinearRNN(np.array([[-1.0]]), np.array([[1.0]]), np.array([1.0]))
    lo, hi = sorted(x.t_start + np.array(frac) * (x.t_end - x.t_start))
    if on_knot and lo < x.t_end:  # end exactly on a knot: the piece that starts there is not crossed
        hi = float(x.knots[x.knots > lo][0])
    if hi <= lo:
        hi = min(lo + 1e-3, x.t_end)
        if hi <= lo:
            lo = hi - 1e-3
    # Pieces [k_j, k_{j+1}) whose interior meets (lo, hi), counted directly.
    expected = int(np.sum((x.knots[:-1] < hi) & (x.knots[1:] > lo)))
    res = dm.simulate(model, x, [lo, hi], t0=lo, rtol=1e-6, atol=1e-9, dense_output=True)
    assert res.n_segments == expected
    assert res.sol.breaks.size == expected + 1
    inner = x.knots[(x.knots > lo) & (x.knots < hi)]
    np.testing.assert_array_equal(res.sol.breaks, np.concatenate([[lo], inner, [hi]]))


@pytest.mark.parametrize("t_start", [None, -1.5])
def test_heaviside_step_with_infinite_end(t_start):
    # inputs.step: the last knot is +inf; the solve runs to the last requested
    # time and matches h(t) = W^{-1} (e^{W (t - t_jump)} - I) U x after the jump.
    rng = np.random.default_rng(12)
    model = dm.LinearRNN.random(3, 2, spectral_abscissa=-0.25, rng=rng)
    amp = rng.standard_normal(2)
    x = dm.step(amp, t_jump=0.0, t_start=t_start)
    lo = 0.0 if t_start is None else t_start
    t_eval = np.linspace(lo, 20.0, 15)
    res = dm.simulate(model, x, t_eval, rtol=1e-10, atol=1e-12)
    W, U = np.asarray(model.W), np.asarray(model.U)
    after = np.maximum(t_eval, 0.0)
    ref = np.array([np.linalg.solve(W, (scipy.linalg.expm(W * t) - np.eye(3)) @ U @ amp) for t in after])
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref, 1e-10, 1e-12))
    np.testing.assert_allclose(res.h, exact_linear(W, U, x, t_eval), rtol=0, atol=_tol(ref, 1e-10, 1e-12))
    assert res.n_segments == (1 if t_start is None else 2)


def test_narrow_pulse_is_not_stepped_over():
    # A pulse of height 1000 and width 1e-3 at t = 5 in an otherwise zero input.
    # A solver that ignores the knots starts from f = 0, grows its step by the
    # maximum factor and never samples the pulse: it returns h = 0 everywhere.
    # Stopping at the knots catches the pulse exactly.
    lam, t_on, width, height = -0.1, 5.0, 1e-3, 1e3
    x = dm.PiecewiseConstant([0.0, t_on, t_on + width, 10.0], [0.0, height, 0.0])
    model = dm.LinearRNN(np.array([[lam]]), np.array([[1.0]]), np.array([1.0]))
    t_eval = np.array([t_on, t_on + 0.5 * width, t_on + width, t_on + 2 * width, 7.0, 10.0])

    def exact(t):
        # h = height/|lam| (1 - e^{lam (t - t_on)}) during the pulse, then decays.
        during = height / -lam * (1.0 - np.exp(lam * (np.minimum(t, t_on + width) - t_on)))
        return np.where(t < t_on, 0.0, during * np.exp(lam * np.maximum(t - t_on - width, 0.0)))

    ref = exact(t_eval)
    res = dm.simulate(model, x, t_eval, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.h[:, 0], ref, rtol=1e-8, atol=1e-12)

    naive = solve_ivp(lambda t, h: lam * h + x(t), (0.0, 10.0), [0.0], t_eval=t_eval, rtol=1e-10, atol=1e-12)
    assert naive.status == 0
    naive_err = np.max(np.abs(naive.y[0] - ref)) / np.max(np.abs(ref))
    knot_err = np.max(np.abs(res.h[:, 0] - ref)) / np.max(np.abs(ref))
    assert naive_err > 0.5  # the pulse was stepped over
    assert knot_err < 1e-8


@pytest.mark.parametrize("method", METHODS + COMPILED_METHODS)
def test_state_right_after_a_jump_is_tight(method):
    # Step input switching sign at t = 1: the states just before and just after
    # the jump, and at the jump itself, match expm at tight tolerance.
    rng = np.random.default_rng(11)
    model = dm.LinearRNN.random(4, 1, spectral_abscissa=-0.2, rng=rng)
    x = dm.PiecewiseConstant([0.0, 1.0, 2.0], [5.0, -5.0])
    t_eval = np.array([1.0 - 1e-6, 1.0, 1.0 + 1e-9, 1.0 + 1e-6, 1.0 + 1e-3, 1.1, 2.0])
    rtol, atol = 1e-10, 1e-12
    res = dm.simulate(model, x, t_eval, method=method, rtol=rtol, atol=atol)
    ref = exact_linear(model.W, model.U, x, t_eval)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref, rtol, atol))
    # The derivative really does jump at t = 1 (so the test is meaningful):
    # dh/dt changes by U * (-10).
    slope_before = (ref[1] - ref[0]) / 1e-6
    slope_after = (ref[3] - ref[1]) / 1e-6
    np.testing.assert_allclose(slope_after - slope_before, -10.0 * model.U[:, 0], rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------
# Nonlinear CTRNN against an independent reference
# ---------------------------------------------------------------------------

def reference_ctrnn(model, x, t_eval, h0=None, t0=None):
    """Plain-numpy CTRNN vector field, solve_ivp DOP853 at rtol 1e-12, knot to knot."""
    W, U, b = np.asarray(model.W), np.asarray(model.U), np.asarray(model.b)
    act = get_activation(model.activation).fn
    leak = float(model.leak)
    t0 = x.t_start if t0 is None else t0
    h = np.zeros(model.hidden) if h0 is None else np.array(h0, float)
    t_eval = np.asarray(t_eval, float)
    cuts = np.concatenate([[t0], x.knots[(x.knots > t0) & (x.knots < t_eval[-1])], [t_eval[-1]]])
    out = np.full((t_eval.size, model.hidden), np.nan)
    out[t_eval == t0] = h
    for a, bnd in zip(cuts[:-1], cuts[1:]):
        k = int(x.piece_index(a))
        x0, s = x.offsets[k] + (a - x.knots[k]) * x.slopes[k], x.slopes[k]

        def f(t, hh):
            return act(W @ hh + U @ (x0 + (t - a) * s) + b) - leak * hh

        sel = (t_eval > a) & (t_eval <= bnd)
        te = np.append(t_eval[sel], bnd) if not sel.any() or t_eval[sel][-1] != bnd else t_eval[sel]
        sol = solve_ivp(f, (a, bnd), h, method="DOP853", rtol=1e-12, atol=1e-14, t_eval=te)
        assert sol.status == 0
        out[sel] = sol.y[:, : sel.sum()].T
        h = sol.y[:, -1]
    return out


@st.composite
def tanh_cases(draw):
    model = draw(ctrnns(max_hidden=5, activations=("tanh",), bias_scale=0.5))
    leak = draw(st.sampled_from([0.0, 0.0, 0.5]))
    model = model.replace(leak=leak)
    x = draw(piecewise_inputs(model.inputs, t_end=5.0, max_pieces=6, scale=2.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return model, x, rng.standard_normal(model.hidden)


@pytest.mark.parametrize("method", METHODS + COMPILED_METHODS)
@settings(max_examples=10)
@given(case=tanh_cases())
def test_tanh_ctrnn_matches_numpy_reference(method, case):
    model, x, h0 = case
    t_eval = np.linspace(0.0, 5.0, 26)
    ref = reference_ctrnn(model, x, t_eval, h0=h0)
    res = dm.simulate(model, x, t_eval, h0=h0, method=method, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref))


@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
def test_kinked_activation_matches_numpy_reference(activation):
    # Kinks in sigma make the vector field only Lipschitz; the solvers still
    # converge, with error control doing the work (loose factor-of-tolerance check).
    rng = np.random.default_rng(5)
    model = dm.CTRNN.random(4, 2, spectral_abscissa=-0.5, activation=activation, bias_scale=0.3, rng=rng)
    x = dm.PiecewiseLinear([0.0, 1.0, 2.0, 4.0], 2.0 * rng.standard_normal((4, 2)))
    t_eval = np.linspace(0.0, 4.0, 17)
    ref = reference_ctrnn(model, x, t_eval)
    res = dm.simulate(model, x, t_eval, method="DOP853", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref, 1e-10, 1e-12, factor=1e3))


# ---------------------------------------------------------------------------
# Forward Euler converges to the CTRNN at order 1
# ---------------------------------------------------------------------------

def test_euler_recurrence_converges_at_order_one():
    rng = np.random.default_rng(2)
    model = dm.CTRNN.random(4, 2, spectral_abscissa=-0.3, activation="tanh", bias_scale=0.3, rng=rng)
    dt0, n_coarse = 0.25, 16  # coarse piecewise-constant input on [0, 4]
    V = rng.standard_normal((n_coarse, 2))
    coarse = dm.from_sequence(V, dt0)
    t_common = dt0 * np.arange(1, n_coarse + 1)
    h0 = 0.5 * rng.standard_normal(4)
    ref = dm.simulate(model, coarse, t_common, h0=h0, method="DOP853", rtol=1e-12, atol=1e-14).h
    dts, errs = [], []
    for n in (4, 8, 16, 32, 64, 128):
        dt = dt0 / n
        X = np.repeat(V, n, axis=0)  # x_k = V[floor(k dt / dt0)]
        fine = dm.from_sequence(X, dt)
        # Same path: the fine sampling reproduces the coarse piecewise-constant input.
        probe = np.linspace(0.0, 4.0, 1001)
        np.testing.assert_array_equal(fine(probe), coarse(probe))
        traj = dm.forward(model.discretize(dt), X[None], h0=h0)
        # h[k] is the state at k dt; the common times are k = n, 2n, ...
        H = traj.h[0, n::n]
        assert H.shape == ref.shape
        dts.append(dt)
        errs.append(np.max(np.abs(H - ref)))
    fit = scipy.stats.linregress(np.log(dts), np.log(errs))
    # Forward Euler is first order: global error = C dt + O(dt^2).  Measured
    # slope 1.008 (errors 1.4e-2 -> 4.3e-4 for dt = 1/16 .. 1/512).
    assert 0.9 <= fit.slope <= 1.1, (fit.slope, errs)
    assert errs[-1] < 1e-2 * np.max(np.abs(ref))


# ---------------------------------------------------------------------------
# Dense output and the analytic Jacobian
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_dense_output_agrees_with_t_eval(method):
    rng = np.random.default_rng(4)
    model = dm.CTRNN.random(3, 2, spectral_abscissa=-0.4, bias_scale=0.3, rng=rng)
    knots = np.array([0.0, 0.8, 1.9, 3.0])
    x = dm.PiecewiseLinear(knots, rng.standard_normal((4, 2)))
    t_eval = np.sort(np.concatenate([rng.uniform(0.0, 3.0, 20), knots]))
    res = dm.simulate(model, x, t_eval, method=method, rtol=1e-9, atol=1e-11, dense_output=True)
    sol = res.sol
    assert isinstance(sol, dm.PiecewiseSolution)
    np.testing.assert_array_equal(sol.breaks, knots)
    # t_eval values are themselves read from the same interpolants (or are step
    # end points), so the two agree to rounding, far below the solver tolerance.
    np.testing.assert_allclose(sol(t_eval), res.h, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sol(float(t_eval[5])), res.h[5], rtol=1e-12, atol=1e-13)
    # Continuity across the knots: the left segment's end equals the right one's start.
    for k, b in enumerate(knots[1:-1], start=1):
        np.testing.assert_allclose(sol.segments[k - 1](b), sol.segments[k](b), rtol=1e-12, atol=1e-13)
    # Between requested times the dense output is accurate too.
    t_fine = np.linspace(0.0, 3.0, 301)
    ref = reference_ctrnn(model, x, t_fine)
    np.testing.assert_allclose(sol(t_fine), ref, rtol=0, atol=_tol(ref, 1e-9, 1e-11, factor=200))
    with pytest.raises(ValueError):
        sol(3.5)


@pytest.mark.parametrize("activation", ["tanh", "hardtanh", "relu", "identity"])
@pytest.mark.parametrize("leak", [0.0, 0.7])
def test_analytic_jacobian_matches_finite_differences(activation, leak):
    rng = np.random.default_rng([get_activation(activation).code, int(10 * leak)])
    code = get_activation(activation).code
    kinks = np.array(get_activation(activation).kinks)
    m = 5
    W = np.ascontiguousarray(rng.standard_normal((m, m)))
    p, q = rng.standard_normal(m), rng.standard_normal(m)
    a, t = 0.3, 0.9
    # Draw states until every pre-activation is 1e-2 away from a kink, so that
    # sigma is smooth in a neighbourhood larger than the FD stencil.
    for _ in range(1000):
        h = rng.standard_normal(m)
        z = W @ h + p + (t - a) * q
        if kinks.size == 0 or np.min(np.abs(z[:, None] - kinks[None, :])) > 1e-2:
            break
    else:  # pragma: no cover
        pytest.fail("could not draw a state away from the kinks")
    J = _ctrnn_jac(t, h, W, p, q, a, code, leak)
    eps = 1e-6
    J_fd = np.empty((m, m))
    for j in range(m):
        e = np.zeros(m)
        e[j] = eps
        J_fd[:, j] = (_ctrnn_rhs(t, h + e, W, p, q, a, code, leak) - _ctrnn_rhs(t, h - e, W, p, q, a, code, leak)) / (2 * eps)
    # Central differences: truncation eps^2 |sigma'''| |W|^3 ~ 1e-11, rounding ~1e-16/eps = 1e-10.
    np.testing.assert_allclose(J, J_fd, rtol=1e-7, atol=1e-8)
    # And the vector field itself is sigma(z) - leak h.
    act = get_activation(activation).fn
    np.testing.assert_allclose(_ctrnn_rhs(t, h, W, p, q, a, code, leak), act(z) - leak * h, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("method", ["Radau", "BDF", "LSODA"])
def test_stiff_methods_use_the_jacobian(method):
    # A stiff tanh model (eigenvalues down to -1e3): the implicit methods
    # evaluate the analytic Jacobian and still match the reference.
    rng = np.random.default_rng(8)
    W = np.diag([-1000.0, -1.0, -0.5]) + 0.3 * rng.standard_normal((3, 3))
    model = dm.CTRNN(W, rng.standard_normal((3, 1)), np.zeros(3), rng.standard_normal(3), activation="tanh")
    x = dm.PiecewiseConstant([0.0, 0.5, 2.0], [[1.5], [-0.5]])
    t_eval = np.linspace(0.0, 2.0, 9)
    res = dm.simulate(model, x, t_eval, method=method, rtol=1e-8, atol=1e-10)
    assert res.njev > 0
    ref = reference_ctrnn(model, x, t_eval)
    np.testing.assert_allclose(res.h, ref, rtol=0, atol=_tol(ref))


# ---------------------------------------------------------------------------
# Failure reporting
# ---------------------------------------------------------------------------

def _unstable(activation):
    # dh/dt = sigma(h + u) with u = 1e3 > 0: identity and relu both give
    # h(t) = 1e3 (e^t - 1) (relu stays on its linear branch), which reaches
    # the divergence threshold 1e12 at t* = log(1e9 + 1) ~ 20.72.
    return dm.CTRNN(np.array([[1.0]]), np.array([[1.0]]), np.zeros(1), np.array([1.0]), activation=activation)


T_STAR = float(np.log(1e9 + 1.0))


@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("method", ["RK45", "DOP853", "Radau", "LSODA"])
def test_divergence_raises(activation, method):
    x = dm.PiecewiseConstant([0.0, 10.0, 100.0], [1e3, 1e3])
    with pytest.raises(SimulationError, match="diverged"):
        dm.simulate(_unstable(activation), x, np.linspace(0.0, 100.0, 11), method=method)


@pytest.mark.parametrize("activation", ["identity", "relu"])
@pytest.mark.parametrize("method", ["RK45", "DOP853", "Radau", "LSODA"])
def test_divergence_reported(activation, method):
    x = dm.PiecewiseConstant([0.0, 10.0, 100.0], [1e3, 1e3])
    t_eval = np.linspace(0.0, 100.0, 101)
    res = dm.simulate(_unstable(activation), x, t_eval, method=method, on_failure="report")
    assert res.success is False
    assert "diverge" in res.message
    assert res.nfev > 0
    t_fail = float(re.search(r"at t = ([0-9.eE+-]+)", res.message).group(1))
    assert abs(t_fail - T_STAR) < 1e-3
    before, after = t_eval < T_STAR, t_eval > T_STAR
    assert np.all(np.isnan(res.h[after])) and np.all(np.isnan(res.y[after]))
    # States before the failure (across the knot at t = 10) are kept and correct.
    np.testing.assert_allclose(res.h[before, 0], 1e3 * np.expm1(t_eval[before]), rtol=1e-5)
    np.testing.assert_allclose(res.y[before], res.h[before, 0])


# ---------------------------------------------------------------------------
# The shared solver layer (dynmem.solvers)
# ---------------------------------------------------------------------------

def test_solver_layer_is_shared():
    import importlib

    solvers = importlib.import_module("dynmem.solvers")
    sim = importlib.import_module("dynmem.simulate")
    assert sim.SimulationError is solvers.SimulationError  # one class, re-exported
    assert sim.METHODS == solvers.METHODS and sim.COMPILED_METHODS == solvers.COMPILED_METHODS
    assert not hasattr(dm, "solvers") or "EvalBudget" not in dm.__all__


def test_no_private_scipy_class_outside_solvers():
    # scipy's private integrator modules are referred to in dynmem/solvers.py only
    from pathlib import Path

    root = Path(dm.__file__).resolve().parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "scipy.integrate._ivp" in p.read_text())
    assert users == ["ode/dop853.py", "solvers.py"]


def test_segments_and_budget():
    from dynmem.solvers import BudgetExceeded, EvalBudget, segments

    x = dm.PiecewiseConstant([0.0, 1.0, 2.5, 4.0], [[1.0], [2.0], [3.0]])
    assert segments(x, 0.5, 3.0) == [(0.5, 1.0, 0), (1.0, 2.5, 1), (2.5, 3.0, 2)]
    assert segments(x, 1.0, 2.5) == [(1.0, 2.5, 1)]
    budget = EvalBudget(3)
    f = budget.wrap(lambda t, h: h + t)
    assert [f(1.0, 1.0) for _ in range(3)] == [2.0, 2.0, 2.0]
    with pytest.raises(BudgetExceeded):
        f(0.0, 0.0)
    assert budget.used == 4


@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
@pytest.mark.parametrize("method", ["auto", "RK45"])
def test_kinked_activation_accuracy_bound(activation, method):
    # the documented bound of simulate's Notes: error <= 3e3 rtol (relative) against DOP853 at rtol 1e-13
    # (worst measured over 20 models: 1.2e-7 at rtol 1e-10, 3.2e-6 at rtol 1e-8)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        model = dm.CTRNN.random(6, 2, spectral_abscissa=-0.3, bias_scale=0.3, activation=activation, rng=rng)
        knots = np.sort(np.concatenate([[0.0, 10.0], rng.uniform(0.2, 9.8, size=5)]))
        x = dm.PiecewiseConstant(knots, 2 * rng.standard_normal((knots.size - 1, 2)))
        t = np.linspace(0.0, 10.0, 41)
        ref = dm.simulate(model, x, t, method="DOP853", rtol=1e-13, atol=1e-15).h
        for rtol in (1e-8, 1e-10):
            h = dm.simulate(model, x, t, method=method, rtol=rtol, atol=rtol * 1e-2).h
            assert np.max(np.abs(h - ref)) <= 3e3 * rtol * np.max(np.abs(ref)), (seed, rtol)
