"""Numerical tests of dynmem.adjoint.adjoint_gradient (continuous adjoint, THEORY.md section 8).

Loss (see the module docstring of dynmem.adjoint)::

    L = 1/2 sum_i w_i (y(t_i) - y_i)^2 + rho/2 int_{t0}^{t_n} (y - r)^2 dt

References:

* finite differences of the forward solve: ``dynmem.simulate`` with DOP853 at
  rtol = 1e-12, atol = 1e-14 (the running integral, when present, from an
  independent plain-numpy solve_ivp with the integrand appended to the
  state), differentiated with Richardson-extrapolated central differences
  ``(4 D(h/2) - D(h)) / 3``, h = 1e-3: truncation O(h^4) ~ 1e-12, and the
  solver noise ~1e-13 |L| is amplified by ~1/h to ~1e-10.  The adjoint at
  rtol = 1e-10 is O(rtol)-accurate.  Observed relative errors over 10 random
  problems per feature: median ~1e-11, worst 1.1e-9 (running loss); the
  required 1e-6 leaves >= 800x headroom and still exposes any missing term
  (a jump, a leak, a weight), which is O(1);
* the BPTT gradient of the forward-Euler recurrence, which converges to the
  continuous gradient at order 1 in dt;
* a tight adjoint solve (DOP853, rtol = 1e-13) for the rate of convergence in rtol.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import dynmem as dm
from dynmem.activations import get_activation
from dynmem.simulate import METHODS
from dynmem.strategies import ctrnns, piecewise_inputs

FD_STEP = 1e-3
ADJ_RTOL, ADJ_ATOL = 1e-10, 1e-12


# ---------------------------------------------------------------------------
# Reference loss and finite differences
# ---------------------------------------------------------------------------

def running_integral(model, x, t0, T, h0, r):
    """int_{t0}^{T} (c^T h - r(t))^2 dt from a plain-numpy solve of (h, q), knot to knot."""
    W, U, b, c = (np.asarray(a) for a in (model.W, model.U, model.b, model.c))
    act = get_activation(model.activation).fn
    leak = float(model.leak)
    m = model.hidden
    s = np.concatenate([np.asarray(h0, float), [0.0]])
    cuts = np.concatenate([[t0], x.knots[(x.knots > t0) & (x.knots < T)], [T]])
    for a, bnd in zip(cuts[:-1], cuts[1:]):
        k = int(x.piece_index(a))
        xa, sl = x.offsets[k] + (a - x.knots[k]) * x.slopes[k], x.slopes[k]

        def f(t, s):
            h = s[:m]
            dh = act(W @ h + U @ (xa + (t - a) * sl) + b) - leak * h
            return np.append(dh, (c @ h - r(np.array([t]))[0]) ** 2)

        sol = solve_ivp(f, (a, bnd), s, method="DOP853", rtol=1e-12, atol=1e-14)
        assert sol.status == 0
        s = sol.y[:, -1]
    return s[m]


class Case:
    """One adjoint problem: model, input, observations and options."""

    def __init__(self, model, x, t_obs, y_obs, h0, t0=None, weights=None, running_target=None, running_weight=1.0):
        self.model, self.x, self.t_obs, self.y_obs, self.h0 = model, x, t_obs, y_obs, h0
        self.t0 = x.t_start if t0 is None else t0
        self.weights, self.running_target, self.running_weight = weights, running_target, running_weight

    def adjoint(self, model=None, **kw):
        kw.setdefault("rtol", ADJ_RTOL)
        kw.setdefault("atol", ADJ_ATOL)
        return dm.adjoint_gradient(model or self.model, self.x, self.t_obs, self.y_obs, h0=self.h0, t0=self.t0,
                                   weights=self.weights, running_target=self.running_target,
                                   running_weight=self.running_weight, **kw)

    def loss(self, theta, h0):
        model = self.model.unflatten(theta)
        res = dm.simulate(model, self.x, self.t_obs, h0=h0, t0=self.t0, method="DOP853", rtol=1e-12, atol=1e-14)
        w = np.ones(self.t_obs.size) if self.weights is None else self.weights
        L = 0.5 * float(np.sum(w * (res.y - self.y_obs) ** 2))
        if self.running_target is not None:
            L += 0.5 * self.running_weight * running_integral(model, self.x, self.t0, float(self.t_obs[-1]), h0,
                                                              self.running_target)
        return L

    def fd_gradient(self, h=FD_STEP):
        """Richardson-extrapolated central differences of loss w.r.t. (theta, h0)."""
        theta = self.model.flatten()
        v0 = np.concatenate([theta, self.h0])
        n = theta.size

        def F(v):
            return self.loss(v[:n], v[n:])

        g = np.empty(v0.size)
        for i in range(v0.size):
            e = np.zeros(v0.size)
            e[i] = h
            D1 = (F(v0 + e) - F(v0 - e)) / (2 * h)
            D2 = (F(v0 + e / 2) - F(v0 - e / 2)) / h
            g[i] = (4 * D2 - D1) / 3
        return g


def joint(res):
    return np.concatenate([res.flat, res.dh0])


def rel(g, ref):
    return float(np.linalg.norm(g - ref) / np.linalg.norm(ref))


# ---------------------------------------------------------------------------
# Adjoint vs finite differences on random problems
# ---------------------------------------------------------------------------

FEATURES = ("constant", "linear", "leak", "obs_at_t0", "weights", "running", "t0_inside", "obs_on_knots")


@st.composite
def adjoint_cases(draw, feature):
    model = draw(ctrnns(min_hidden=2, max_hidden=3, max_inputs=2, activations=("tanh", "identity"), min_margin=0.1,
                        bias_scale=0.5))
    if feature == "leak":
        model = model.replace(leak=draw(st.floats(0.1, 1.5)))
    kind = feature if feature in ("constant", "linear") else None
    x = draw(piecewise_inputs(model.inputs, t_end=3.0, min_pieces=2, max_pieces=5, kind=kind))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t0 = float(rng.uniform(0.2, 0.8)) if feature == "t0_inside" else 0.0
    t_obs = rng.uniform(t0 + 0.1, 3.0, size=draw(st.integers(1, 4)))
    if feature == "obs_on_knots":  # observation times that are also input jumps
        t_obs = np.concatenate([t_obs, x.knots[1:]])
    if feature == "obs_at_t0":
        t_obs = np.concatenate([t_obs, [t0]])
    t_obs = np.unique(t_obs)
    y_obs = rng.standard_normal(t_obs.size)
    h0 = rng.standard_normal(model.hidden)
    weights = rng.uniform(0.0, 3.0, t_obs.size) if feature == "weights" else None
    running = None
    if feature == "running":
        f, ph = float(rng.uniform(0.5, 3.0)), float(rng.uniform(0, 2 * np.pi))

        def running(t, f=f, ph=ph):
            return np.sin(f * np.asarray(t) + ph)

    rho = float(rng.uniform(0.5, 2.0)) if feature == "running" else 1.0
    return Case(model, x, t_obs, y_obs, h0, t0=t0, weights=weights, running_target=running, running_weight=rho)


@pytest.mark.parametrize("feature", FEATURES)
@settings(max_examples=10)  # ~100 tight forward solves per example (0.4-1.3 s): 8 features x 10 draws ~ 55 s
@given(data=st.data())
def test_adjoint_matches_finite_differences(feature, data):
    case = data.draw(adjoint_cases(feature))
    res = case.adjoint()
    np.testing.assert_allclose(res.loss, case.loss(case.model.flatten(), case.h0), rtol=1e-8, atol=1e-12)
    assert res.dh0.shape == (case.model.hidden,)
    assert isinstance(res.grad, type(case.model))
    ref = case.fd_gradient()
    assert rel(joint(res), ref) <= 1e-6


def test_observation_at_t0_adds_a_jump_only_to_dh0():
    # An observation at t0 with weight w contributes w (y(t0) - y0) c to dL/dh0,
    # w (y(t0) - y0) h0 to dL/dc, and nothing to dL/dW, dL/dU, dL/db.
    rng = np.random.default_rng(0)
    model = dm.CTRNN.random(3, 1, spectral_abscissa=-0.3, bias_scale=0.2, rng=rng)
    x = dm.PiecewiseConstant([0.0, 1.0, 2.0], [[0.5], [-1.0]])
    h0 = rng.standard_normal(3)
    base = Case(model, x, np.array([1.5, 2.0]), np.array([0.3, -0.2]), h0)
    y0 = 0.7
    with_t0 = Case(model, x, np.array([0.0, 1.5, 2.0]), np.array([y0, 0.3, -0.2]), h0, weights=np.array([2.0, 1, 1]))
    a, b = base.adjoint(), with_t0.adjoint()
    r0 = 2.0 * (model.c @ h0 - y0)
    np.testing.assert_allclose(b.dh0, a.dh0 + r0 * model.c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad.c, a.grad.c + r0 * h0, rtol=1e-12, atol=1e-14)
    for name in ("W", "U", "b"):
        np.testing.assert_allclose(getattr(b.grad, name), getattr(a.grad, name), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.loss, a.loss + 0.5 * 2.0 * (model.c @ h0 - y0) ** 2, rtol=1e-12)


@pytest.mark.parametrize("running", [False, True])
def test_heaviside_step_input_with_infinite_end(running):
    # inputs.step has a last knot at +inf; observations end at t = 2.5.
    rng = np.random.default_rng(4)
    model = dm.CTRNN.random(3, 2, spectral_abscissa=-0.3, bias_scale=0.3, rng=rng)
    x = dm.step(rng.standard_normal(2), t_jump=1.0, t_start=0.0)
    target = (lambda t: 0.3 * np.cos(np.asarray(t))) if running else None
    case = Case(model, x, np.array([0.5, 1.0, 2.5]), rng.standard_normal(3), rng.standard_normal(3),
                running_target=target)
    assert rel(joint(case.adjoint()), case.fd_gradient()) <= 1e-6


def test_linear_rnn_gradient_keeps_its_structure():
    # For a LinearRNN the gradient is a LinearRNN (W, U, c: no b) lined up with
    # model.flatten(), equal to the W, U, c parts of the CTRNN-form gradient.
    rng = np.random.default_rng(1)
    lin = dm.LinearRNN.random(3, 2, spectral_abscissa=-0.2, rng=rng)
    x = dm.PiecewiseLinear([0.0, 1.0, 2.5], rng.standard_normal((3, 2)))
    case = Case(lin, x, np.array([0.5, 1.0, 2.5]), rng.standard_normal(3), rng.standard_normal(3))
    a = case.adjoint()
    b = case.adjoint(model=lin.as_ctrnn())
    assert isinstance(a.grad, dm.LinearRNN) and isinstance(b.grad, dm.CTRNN)
    for name in ("W", "U", "c"):
        np.testing.assert_allclose(getattr(a.grad, name), getattr(b.grad, name), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a.dh0, b.dh0, rtol=1e-13, atol=1e-15)
    assert a.flat.shape == lin.flatten().shape
    assert rel(joint(a), case.fd_gradient()) <= 1e-6


@pytest.mark.parametrize("method,running", [("RK45", False), ("RK45", True), ("DOP853", False), ("Radau", False),
                                            ("BDF", False), ("LSODA", False)])
def test_backward_field_never_sees_the_next_piece(monkeypatch, method, running):
    # Knot to knot in the backward direction means the adjoint vector field on
    # [lo, hi] is the one of the piece [lo, hi), *including at t = hi* where
    # the backward solve starts (the input is right-continuous, so x(hi) is
    # already the next piece's value).  On a segment the field is smooth in t,
    # so fun(hi) and fun(hi - 1e-9 (hi - lo)) must agree to ~1e-9 relative;
    # evaluating the input at the knot itself gives an O(1) jump.
    import dynmem.adjoint as adjoint_module

    real_solve_ivp = adjoint_module.solve_ivp
    jumps = []

    def spy(fun, t_span, y0, **kwargs):
        hi, lo = t_span
        f_end = fun(hi, y0)
        f_in = fun(hi - 1e-9 * (hi - lo), y0)
        if np.any(f_in != 0):
            jumps.append((hi, float(np.max(np.abs(f_end - f_in)) / np.max(np.abs(f_in)))))
        return real_solve_ivp(fun, t_span, y0, **kwargs)

    monkeypatch.setattr(adjoint_module, "solve_ivp", spy)
    rng = np.random.default_rng(9)
    model = dm.CTRNN.random(3, 1, spectral_abscissa=-0.3, bias_scale=0.2, rng=rng)
    x = dm.PiecewiseConstant([0.0, 1.0, 2.0, 3.0], [[2.0], [-2.0], [1.5]])  # jumps at t = 1, 2
    target = (lambda t: np.cos(np.asarray(t))) if running else None
    dm.adjoint_gradient(model, x, np.array([0.5, 1.5, 3.0]), np.array([0.1, -0.3, 0.2]), h0=rng.standard_normal(3),
                        running_target=target, method=method, rtol=1e-8, atol=1e-10)
    assert len(jumps) >= 3
    worst = max(jumps, key=lambda j: j[1])
    assert worst[1] < 1e-6, f"backward field jumps by {worst[1]:.3g} (relative) at its start t = {worst[0]}"


# ---------------------------------------------------------------------------
# Adjoint vs BPTT of the Euler recurrence as dt -> 0
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("leak", [0.0, 0.5])
def test_adjoint_is_the_limit_of_euler_bptt(leak):
    rng = np.random.default_rng(2)
    model = dm.CTRNN.random(3, 2, spectral_abscissa=-0.3, bias_scale=0.3, rng=rng).replace(leak=leak)
    dt0, n_coarse = 0.25, 12  # piecewise-constant input on a 0.25 grid over [0, 3]
    V = rng.standard_normal((n_coarse, 2))
    x = dm.from_sequence(V, dt0)
    t_obs = np.array([0.5, 1.25, 2.0, 2.5, 3.0])  # grid points
    y_obs = rng.standard_normal(t_obs.size)
    w = rng.uniform(0.5, 2.0, t_obs.size)
    h0 = rng.standard_normal(3)
    adj = dm.adjoint_gradient(model, x, t_obs, y_obs, h0=h0, weights=w, method="DOP853", rtol=1e-12, atol=1e-14)
    ref = joint(adj)
    dts, errs = [], []
    for n in (4, 8, 16, 32, 64, 128):
        dt = dt0 / n
        euler = model.discretize(dt)
        X = np.repeat(V, n, axis=0)[None]
        traj = dm.forward(euler, X, h0=h0)
        # y_k = c^T h_{k+1} is the output at time (k + 1) dt.
        k_obs = np.rint(t_obs / dt).astype(int) - 1
        np.testing.assert_allclose((k_obs + 1) * dt, t_obs, rtol=0, atol=1e-12)
        dy = np.zeros_like(traj.y)
        dy[0, k_obs] = w * (traj.y[0, k_obs] - y_obs)
        bptt = dm.backward(euler, traj, dy)
        dts.append(dt)
        errs.append(rel(joint(bptt), ref))
    fit = scipy.stats.linregress(np.log(dts), np.log(errs))
    # The Euler gradient is the exact gradient of an O(dt)-accurate model: its
    # distance to the continuous gradient is C dt + O(dt^2).  Measured slope
    # 1.007 (leak 0) and 1.008 (leak 0.5), relative differences 1.1e-2 -> 3.5e-4
    # (leak 0) over dt = 1/16 .. 1/512; the band [0.8, 1.2] allows for the
    # O(dt^2) term at the coarse end.
    assert 0.8 <= fit.slope <= 1.2, (fit.slope, errs)
    assert errs[-1] < 1e-2


# ---------------------------------------------------------------------------
# Error in proportion to rtol; every method agrees
# ---------------------------------------------------------------------------

def _rtol_problem(kind):
    rng = np.random.default_rng(3)
    model = dm.CTRNN.random(4, 2, spectral_abscissa=-0.3, bias_scale=0.3, rng=rng)
    knots = np.array([0.0, 0.7, 1.5, 2.2, 3.0, 4.0])
    if kind == "constant":
        x = dm.PiecewiseConstant(knots, rng.standard_normal((5, 2)))
    else:
        x = dm.PiecewiseLinear(knots, rng.standard_normal((6, 2)))
    t_obs = np.array([0.5, 1.5, 2.0, 3.0, 3.7, 4.0])
    return Case(model, x, t_obs, rng.standard_normal(6), rng.standard_normal(4))


_REFERENCE = {}


def _reference(kind):
    if kind not in _REFERENCE:
        case = _rtol_problem(kind)
        _REFERENCE[kind] = (case, joint(case.adjoint(method="DOP853", rtol=1e-13, atol=1e-15)))
    return _REFERENCE[kind]


@pytest.mark.parametrize("kind", ["constant", "linear"])
@pytest.mark.parametrize("method", METHODS)
def test_gradient_error_is_proportional_to_rtol(method, kind):
    case, ref = _reference(kind)
    rtols = np.array([1e-4, 1e-5, 1e-6, 1e-7, 1e-8])
    errs = [rel(joint(case.adjoint(method=method, rtol=r, atol=r * 1e-2)), ref) for r in rtols]
    fit = scipy.stats.linregress(np.log(rtols), np.log(errs))
    # Measured slopes on this problem (constant / linear input): RK45 1.00/1.12,
    # RK23 1.02/0.99, DOP853 0.98/0.94, Radau 0.86/1.02, BDF 1.00/0.84,
    # LSODA 0.99/0.94 (0.86-1.16 on two other problems).  Scipy's controllers bound the error per step (not per
    # unit time) and the step count grows like rtol^(-1/(p+1)), so the global
    # error is ~rtol^(p/(p+1)) to rtol^1 with some scatter from step-size
    # changes; [0.7, 1.3] is the band around 1 that these mechanisms allow,
    # and it rejects a gradient that stalls (slope 0) or an O(sqrt(rtol)) one.
    assert 0.7 <= fit.slope <= 1.3, (fit.slope, errs)
    # The error is of the order of rtol itself (observed at most 7.3 x rtol, BDF).
    assert np.all(np.array(errs) <= 1e3 * rtols), errs


@pytest.mark.parametrize("method", METHODS)
def test_all_methods_agree_at_tight_tolerance(method):
    case, ref = _reference("constant")
    res = case.adjoint(method=method, rtol=1e-10, atol=1e-12)
    # Observed relative errors at rtol = 1e-10: 8e-12 (Radau) .. 1.3e-9 (BDF);
    # 1e-8 = 100 rtol leaves 7x headroom over the worst method.
    assert rel(joint(res), ref) <= 1e-8
    # And the reference itself agrees with finite differences of the forward solve.
    if method == "RK45":
        assert rel(ref, case.fd_gradient()) <= 1e-6
