"""Input paths: evaluation, knots, constructors and their conventions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad

import dynmem as dm
from dynmem.inputs import FunctionPath, InputPath, PiecewiseConstant, PiecewiseLinear
from dynmem.strategies import piecewise_inputs

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def knots_and_values(draw, *, n_extra: int):
    """Random strictly increasing knots (n + 1) and values (n + n_extra, d)."""
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    t0 = draw(st.floats(-10.0, 10.0))
    gaps = rng.uniform(0.05, 2.0, size=n)
    knots = t0 + np.concatenate([[0.0], np.cumsum(gaps)])
    values = rng.standard_normal((n + n_extra, d))
    return knots, values


def _piece_by_definition(knots, t):
    """The k with knots[k] <= t < knots[k+1] (t_end belongs to the last piece)."""
    inside = (knots[:-1] <= t) & (t < knots[1:])
    if t == knots[-1]:
        return knots.size - 2
    (k,) = np.flatnonzero(inside)
    return int(k)


# -- PiecewiseConstant --------------------------------------------------------------


@given(knots_and_values(n_extra=0), seeds)
def test_piecewise_constant_matches_definition(kv, seed):
    knots, values = kv
    path = PiecewiseConstant(knots, values)
    rng = np.random.default_rng(seed)
    t = np.concatenate([knots, rng.uniform(knots[0], knots[-1], size=20)])
    got = path(t)
    assert got.shape == (t.size, values.shape[1])
    for ti, gi in zip(t, got):
        np.testing.assert_array_equal(gi, values[_piece_by_definition(knots, ti)])


@given(knots_and_values(n_extra=0))
def test_piecewise_constant_right_continuous_at_knots_and_left_limit_at_end(kv):
    knots, values = kv
    path = PiecewiseConstant(knots, values)
    for k in range(knots.size - 1):
        # at a knot: the value of the piece that starts there
        np.testing.assert_array_equal(path(knots[k]), values[k])
        # just before an inner knot: the previous piece
        if k > 0:
            np.testing.assert_array_equal(path(np.nextafter(knots[k], -np.inf)), values[k - 1])
    # at t_end: the left limit, i.e. the last piece's value
    np.testing.assert_array_equal(path(knots[-1]), values[-1])


@given(knots_and_values(n_extra=0))
def test_piecewise_constant_attributes(kv):
    knots, values = kv
    path = PiecewiseConstant(knots, values)
    np.testing.assert_array_equal(path.knots, knots)
    np.testing.assert_array_equal(path.values, values)
    assert path.t_start == knots[0] and path.t_end == knots[-1]
    assert isinstance(path.t_start, float) and isinstance(path.t_end, float)
    assert path.dim == values.shape[1]
    assert path.affine
    assert isinstance(path, InputPath)
    np.testing.assert_array_equal(path.slopes, np.zeros_like(values))


def test_one_dimensional_values_become_a_column():
    path = PiecewiseConstant([0.0, 1.0, 2.0], [3.0, -4.0])
    assert path.dim == 1
    assert path.values.shape == (2, 1)
    np.testing.assert_array_equal(path(0.5), [3.0])
    np.testing.assert_array_equal(path(np.array([0.5, 1.5])), [[3.0], [-4.0]])


def test_scalar_time_gives_vector_and_array_time_gives_matrix():
    path = PiecewiseConstant([0.0, 1.0], [[1.0, 2.0]])
    assert path(0.5).shape == (2,)
    assert path([0.5]).shape == (1, 2)
    assert path(np.array([0.1, 0.2, 0.3])).shape == (3, 2)
    assert path(np.array([])).shape == (0, 2)


def test_infinite_last_knot():
    path = PiecewiseConstant([0.0, 1.0, np.inf], [[1.0], [2.0]])
    assert path.t_end == np.inf
    np.testing.assert_array_equal(path(np.array([0.0, 0.999, 1.0, 1e6, 1e300])), [[1.0], [1.0], [2.0], [2.0], [2.0]])
    # no inf * 0 = nan from a zero slope on the infinite piece
    assert np.all(np.isfinite(path(np.array([1e308]))))


def test_piecewise_paths_are_frozen():
    path = PiecewiseConstant([0.0, 1.0], [[1.0]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        path.knots = np.array([0.0, 2.0])
    lin = PiecewiseLinear([0.0, 1.0], [[1.0], [2.0]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        lin.slopes = np.zeros((1, 1))


@pytest.mark.parametrize("cls, n_values", [(PiecewiseConstant, 2), (PiecewiseLinear, 3)])
def test_paths_own_their_data(cls, n_values):
    # A frozen path must not change when the caller later mutates the arrays it
    # was built from (models copy their arrays for the same reason).
    knots = np.array([0.0, 1.0, 2.0])
    values = np.arange(1.0, n_values + 1.0)[:, None]
    path = cls(knots, values)
    probe = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    before = path(probe)
    values_before = path.values.copy()
    knots[1] = 1.5
    values[:] = -100.0
    np.testing.assert_array_equal(path(probe), before)
    np.testing.assert_array_equal(path.values, values_before)
    np.testing.assert_array_equal(path.knots, [0.0, 1.0, 2.0])


# -- PiecewiseLinear ----------------------------------------------------------------


@given(knots_and_values(n_extra=1), seeds)
def test_piecewise_linear_interpolates(kv, seed):
    knots, values = kv
    path = PiecewiseLinear(knots, values)
    rng = np.random.default_rng(seed)
    t = np.concatenate([knots, rng.uniform(knots[0], knots[-1], size=25)])
    got = path(t)
    expected = np.stack([np.interp(t, knots, values[:, j]) for j in range(values.shape[1])], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(knots_and_values(n_extra=1))
def test_piecewise_linear_nodes_midpoints_and_end(kv):
    knots, values = kv
    path = PiecewiseLinear(knots, values)
    np.testing.assert_allclose(path(knots), values, rtol=1e-12, atol=1e-12)
    mids = 0.5 * (knots[1:] + knots[:-1])
    np.testing.assert_allclose(path(mids), 0.5 * (values[1:] + values[:-1]), rtol=1e-12, atol=1e-12)
    # the left limit at t_end is the last node value
    np.testing.assert_allclose(path(knots[-1]), values[-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(path.values, values)
    assert path.dim == values.shape[1] and path.affine
    np.testing.assert_allclose(path.slopes, np.diff(values, axis=0) / np.diff(knots)[:, None], rtol=1e-14)


@given(piecewise_inputs(2))
def test_strategy_paths_are_valid(path):
    assert path.t_start == 0.0 and path.t_end == 5.0
    assert np.all(np.diff(path.knots) > 0)
    assert path(np.linspace(0.0, 5.0, 11)).shape == (11, 2)


# -- step and impulse -----------------------------------------------------------------


def test_step_without_t_start_is_constant():
    path = dm.step([1.0, -2.0], t_jump=0.5)
    assert path.t_start == 0.5 and path.t_end == np.inf
    np.testing.assert_array_equal(path.knots, [0.5, np.inf])
    np.testing.assert_array_equal(path(np.array([0.5, 3.0, 1e9])), [[1.0, -2.0]] * 3)
    assert path.dim == 2


def test_step_scalar_amplitude():
    path = dm.step(3.0)
    assert path.dim == 1 and path.t_start == 0.0
    np.testing.assert_array_equal(path(10.0), [3.0])


@given(st.floats(-5.0, 5.0), st.floats(0.01, 5.0), st.floats(0.01, 5.0), st.floats(-3.0, 3.0))
def test_step_with_t_start_is_heaviside(t_jump, before, after, amp):
    t_start, t_end = t_jump - before, t_jump + after
    path = dm.step(amp, t_jump=t_jump, t_start=t_start, t_end=t_end)
    assert path.t_start == t_start and path.t_end == t_end
    t = np.linspace(t_start, t_end, 41)
    expected = np.where(t >= t_jump, amp, 0.0)[:, None]
    np.testing.assert_array_equal(path(t), expected)
    assert path(t_jump)[0] == amp  # right-continuous at the jump
    assert path(np.nextafter(t_jump, -np.inf))[0] == 0.0


def test_step_t_start_equal_to_t_jump_has_no_zero_piece():
    path = dm.step(2.0, t_jump=1.0, t_start=1.0, t_end=4.0)
    np.testing.assert_array_equal(path.knots, [1.0, 4.0])


@given(
    x=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=3),
    width=st.floats(1e-3, 2.0),
    t0=st.floats(-5.0, 5.0),
    finite_end=st.booleans(),
)
def test_impulse_area_equals_amplitude(x, width, t0, finite_end):
    t_end = t0 + 3.0 * width if finite_end else np.inf
    path = dm.impulse(x, width=width, t0=t0, t_end=t_end)
    assert path.t_start == t0 and path.t_end == t_end and path.dim == len(x)
    upper = t0 + 3.0 * width
    for j, xj in enumerate(x):
        area, err = quad(lambda t: path(t)[j], t0, upper, points=[t0 + width], limit=200)
        assert area == pytest.approx(xj, rel=1e-10, abs=1e-10)
    # the pulse is x / width on [t0, t0 + width) and zero after
    np.testing.assert_allclose(path(t0), np.asarray(x) / width, rtol=1e-15)
    np.testing.assert_array_equal(path(t0 + width), np.zeros(len(x)))
    np.testing.assert_array_equal(path(upper), np.zeros(len(x)))


# -- white noise --------------------------------------------------------------------


def test_white_noise_statistics():
    # 20 000 iid N(0, scale^2/dt) samples.  The sample mean has sd sigma/sqrt(n) and
    # the sample variance has sd sigma^2 sqrt(2/(n-1)); allow 5 sd for each (a false
    # failure has probability < 1e-6 per check; the seed makes the test deterministic).
    scale, dt, d = 0.7, 0.01, 2
    path = dm.white_noise(d, 100.0, dt, scale=scale, rng=2024)
    v = path.values
    n = v.size
    assert v.shape == (10_000, d)
    sigma2 = scale**2 / dt
    assert abs(v.mean()) < 5 * np.sqrt(sigma2 / n)
    assert abs(v.var(ddof=1) - sigma2) < 5 * sigma2 * np.sqrt(2.0 / (n - 1))
    # the two coordinates are uncorrelated: |r| < 5 / sqrt(n_rows)
    r = np.corrcoef(v[:, 0], v[:, 1])[0, 1]
    assert abs(r) < 5 / np.sqrt(v.shape[0])
    # consecutive pieces are uncorrelated
    r1 = np.corrcoef(v[:-1, 0], v[1:, 0])[0, 1]
    assert abs(r1) < 5 / np.sqrt(v.shape[0])


def test_white_noise_integral_variance_is_scale_squared_dt():
    # Integral over one piece has variance scale^2 dt; over the whole of [0, T] it is scale^2 T.
    scale, dt = 1.5, 0.02
    path = dm.white_noise(1, 200.0, dt, scale=scale, rng=5)
    increments = path.values[:, 0] * np.diff(path.knots)
    n = increments.size
    assert abs(increments.var(ddof=1) - scale**2 * dt) < 5 * scale**2 * dt * np.sqrt(2.0 / (n - 1))


def test_white_noise_reproducible():
    a = dm.white_noise(2, 3.0, 0.1, rng=42)
    b = dm.white_noise(2, 3.0, 0.1, rng=42)
    c = dm.white_noise(2, 3.0, 0.1, rng=43)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.knots, b.knots)
    assert not np.array_equal(a.values, c.values)
    g = dm.white_noise(2, 3.0, 0.1, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a.values, g.values)


def test_white_noise_zero_scale_is_zero():
    path = dm.white_noise(3, 1.0, 0.1, scale=0.0, rng=0)
    np.testing.assert_array_equal(path.values, np.zeros((10, 3)))


@given(
    t_start=st.floats(-10.0, 10.0),
    length=st.floats(0.01, 20.0),
    dt=st.floats(1e-2, 1.0),
)
def test_white_noise_grid(t_start, length, dt):
    t_end = t_start + length
    path = dm.white_noise(1, t_end, dt, t_start=t_start, rng=0)
    k = path.knots
    assert k[0] == t_start and k[-1] == t_end  # the last piece ends exactly at t_end
    gaps = np.diff(k)
    assert np.all(gaps > 0)
    # every piece but the last is dt long; the last is at most dt (shortened)
    np.testing.assert_allclose(gaps[:-1], dt, rtol=1e-9)
    assert gaps[-1] <= dt * (1 + 1e-9)


@pytest.mark.parametrize(
    "t_start, t_end, dt",
    [(100.0, 100.001, 0.001), (1000.0, 1000.07, 0.01), (10000.0, 10003.1, 0.1)],
)
def test_white_noise_grid_far_from_origin(t_start, t_end, dt):
    # t_end - t_start is a whole number of steps up to rounding: the grid must
    # still be built (no duplicated last knot).
    path = dm.white_noise(1, t_end, dt, t_start=t_start, rng=0)
    assert path.knots[0] == t_start and path.knots[-1] == t_end
    assert np.all(np.diff(path.knots) > 0)
    assert path.knots.size - 1 == round((t_end - t_start) / dt)


# -- from_sequence ------------------------------------------------------------------


@given(st.integers(1, 20), st.integers(1, 3), st.floats(1e-3, 1.0), st.floats(-5.0, 5.0), seeds)
def test_from_sequence_constant_alignment(T, d, dt, t_start, seed):
    X = np.random.default_rng(seed).standard_normal((T, d))
    path = dm.from_sequence(X, dt, t_start=t_start)
    assert isinstance(path, PiecewiseConstant)
    assert path.t_start == t_start
    assert path.t_end == pytest.approx(t_start + T * dt, rel=1e-12, abs=1e-12)
    k = np.arange(T)
    # x_k holds on [t_start + k dt, t_start + (k+1) dt): sampled at the left end
    # and in the middle of each step
    np.testing.assert_array_equal(path(path.knots[:-1]), X)
    np.testing.assert_array_equal(path(t_start + (k + 0.5) * dt), X)
    np.testing.assert_array_equal(path(path.t_end), X[-1])


def test_from_sequence_constant_drives_the_euler_recurrence():
    # The discrete convention: step k of CTRNN.discretize(dt) reads x_k = x(k dt).
    model = dm.CTRNN.random(3, 2, bias_scale=0.3, rng=1).replace(leak=0.2)
    dt, T = 0.1, 6
    X = np.random.default_rng(3).standard_normal((T, 2))
    path = dm.from_sequence(X, dt)
    h = np.zeros(3)
    outs = []
    for k in range(T):
        xk = path(k * dt)
        h = h + dt * (np.tanh(model.W @ h + model.U @ xk + model.b) - model.leak * h)
        outs.append(model.c @ h)
    traj = dm.forward(model.discretize(dt), X[None])
    np.testing.assert_allclose(traj.y[0], outs, rtol=1e-12, atol=1e-14)


@given(st.integers(2, 20), st.integers(1, 3), st.floats(1e-3, 1.0), st.floats(-5.0, 5.0), seeds)
def test_from_sequence_linear_alignment(T, d, dt, t_start, seed):
    X = np.random.default_rng(seed).standard_normal((T, d))
    path = dm.from_sequence(X, dt, t_start=t_start, kind="linear")
    assert isinstance(path, PiecewiseLinear)
    assert path.t_start == t_start
    assert path.t_end == pytest.approx(t_start + (T - 1) * dt, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(path(path.knots), X, rtol=1e-12, atol=1e-12)
    mids = 0.5 * (path.knots[1:] + path.knots[:-1])
    np.testing.assert_allclose(path(mids), 0.5 * (X[1:] + X[:-1]), rtol=1e-9, atol=1e-12)


def test_from_sequence_one_dimensional_input():
    path = dm.from_sequence([1.0, 2.0, 3.0], 0.5)
    assert path.dim == 1
    np.testing.assert_array_equal(path(np.array([0.0, 0.5, 1.0, 1.4])), [[1.0], [2.0], [3.0], [3.0]])


# -- FunctionPath ------------------------------------------------------------------


def test_function_path_evaluation():
    fn = lambda t: np.array([np.sin(t), t**2])  # noqa: E731
    path = FunctionPath(fn, [0.0, 2.0], 2)
    t = np.array([0.0, 0.3, 1.7, 2.0])
    np.testing.assert_array_equal(path(t), np.stack([np.sin(t), t**2], axis=1))
    np.testing.assert_array_equal(path(0.3), [np.sin(0.3), 0.09])
    assert path.dim == 2 and not path.affine
    assert path.t_start == 0.0 and path.t_end == 2.0


def test_function_path_scalar_output_with_dim_one_and_infinite_end():
    path = FunctionPath(lambda t: np.exp(-t), [0.0, 1.0, np.inf], 1)
    assert path.t_end == np.inf
    np.testing.assert_allclose(path(np.array([0.0, 1.0, 5.0])), np.exp(-np.array([[0.0], [1.0], [5.0]])))


def test_function_path_checks_shape():
    with pytest.raises(ValueError, match=r"`fn` must return an array of shape \(1,\); got shape \(2,\) at t = 0\.0"):
        FunctionPath(lambda t: np.array([t, t]), [0.0, 1.0], 1)
    with pytest.raises(ValueError, match=r"`fn` must return an array of shape \(3,\); got shape \(1,\) at t = -1\.0"):
        FunctionPath(lambda t: t, [-1.0, 1.0], 3)


def test_function_path_checks_times():
    path = FunctionPath(lambda t: np.array([t]), [0.0, 1.0], 1)
    with pytest.raises(ValueError, match=r"`t` must lie in the input's domain \[0\.0, 1\.0\]; got values in \[0\.5, 1\.5\]"):
        path(np.array([0.5, 1.5]))
