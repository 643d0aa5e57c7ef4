"""Diagonal SSM: closed forms against scipy (expm, solve_ivp, signal) and the discretised recurrences."""

import itertools

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.signal
from hypothesis import given, settings, strategies as st

from dynmem.ssm import DiagonalSSM, DiscreteDiagonalSSM


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 6), d=st.integers(1, 3))
def test_kernel_matches_expm_of_real_form(seed, m, d):
    ssm = DiagonalSSM.random(m, d, rng=seed)
    A, Br, Cr, _ = ssm.as_real()
    t = np.array([0.0, 0.3, 1.7, 6.0])
    ref = np.stack([Cr @ scipy.linalg.expm(A * ti) @ Br for ti in t])
    np.testing.assert_allclose(ssm.kernel(t), ref, rtol=1e-11, atol=1e-13)


def test_step_response_matches_solve_ivp_and_scipy_signal():
    ssm = DiagonalSSM.random(5, 2, feedthrough=True, rng=4)
    A, Br, Cr, D = ssm.as_real()
    t = np.linspace(0.0, 8.0, 41)
    closed = ssm.step_response(t)
    for j in range(2):
        sol = scipy.integrate.solve_ivp(lambda _, x: A @ x + Br[:, j], (0.0, 8.0), np.zeros(10), t_eval=t,
                                        method="DOP853", rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(closed[:, j], Cr @ sol.y + D[j], rtol=0, atol=1e-10)
        sys = scipy.signal.StateSpace(A, Br[:, [j]], Cr[None, :], np.array([[D[j]]]))
        _, yimp = scipy.signal.impulse(sys, T=t[1:])
        np.testing.assert_allclose(ssm.kernel(t[1:])[:, j], yimp, rtol=0, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dt=st.floats(0.01, 0.5))
def test_zoh_is_exact_at_grid_points(seed, dt):
    ssm = DiagonalSSM.random(4, 2, feedthrough=True, rng=seed)
    disc = ssm.discretize(dt, method="zoh")
    T = 60
    tk = dt * np.arange(1, T + 1)
    # Step input in channel j: y_k = (int_0^{(k+1)dt} K) e_j + D_j.
    for j in range(2):
        X = np.zeros((1, T, 2))
        X[0, :, j] = 1.0
        y, _ = disc.run(X)
        np.testing.assert_allclose(y[0], ssm.step_response(tk)[:, j], rtol=0, atol=1e-10)
    # Impulse: the state kicked to B e_j, no input: y_k = K((k+1) dt) e_j.
    y, _ = disc.run(np.zeros((2, T, 2)), h0=ssm.B.T)
    np.testing.assert_allclose(y.T, ssm.kernel(tk), rtol=0, atol=1e-10)


def test_bilinear_converges_at_second_order():
    ssm = DiagonalSSM.random(4, 1, rng=7)
    t_end = 4.0
    errs = []
    for n in (40, 80, 160, 320):
        dt = t_end / n
        X = np.ones((1, n, 1))
        y, _ = ssm.discretize(dt, method="bilinear").run(X)
        errs.append(abs(y[0, -1] - ssm.step_response([t_end])[0, 0]))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - 2.0) < 0.1), slopes
    assert np.all(np.abs(ssm.discretize(0.3, method="bilinear").Lambda_bar) < 1)


@pytest.mark.parametrize("input", ["heaviside", "impulse"])
def test_memory_is_attained_at_sign_vertices_of_simulated_responses(input):
    ssm = DiagonalSSM.random(5, 3, rng=2)
    dt, T = 0.05, 120
    disc = ssm.discretize(dt)
    tk = dt * np.arange(1, T + 1)
    verts = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    if input == "impulse":
        y, _ = disc.run(np.zeros((len(verts), T, 3)), h0=verts @ ssm.B.T)
        sim = np.abs(y).max(axis=0)
        t_m = tk
    else:
        # dy/dt of the exact (ZOH) step samples by 4th-order central differences.
        y, _ = disc.run(np.repeat(verts[:, None, :], T, axis=1))
        dy = (-y[:, 4:] + 8 * y[:, 3:-1] - 8 * y[:, 1:-3] + y[:, :-4]) / (12 * dt)
        sim = np.abs(dy).max(axis=0)
        t_m = tk[2:-2]
    closed = ssm.memory(t_m, input=input)
    tol = 1e-10 if input == "impulse" else 1e-5  # O(dt^4) difference error for the Heaviside derivative
    np.testing.assert_allclose(sim, closed, rtol=0, atol=tol * max(1.0, closed.max()))


def test_validation():
    with pytest.raises(ValueError, match=r"`Lambda` must have Re\(Lambda\) < 0"):
        DiagonalSSM([-1.0, 0.5j], np.ones((2, 1)), np.ones(2), np.zeros(1))
    with pytest.raises(ValueError, match=r"`B` must have shape \(2, d\)"):
        DiagonalSSM([-1.0, -1 + 0.5j], np.ones((3, 1)), np.ones(2), np.zeros(1))
    with pytest.raises(ValueError, match=r"`D` must have shape"):
        DiagonalSSM([-1.0], np.ones((1, 2)), np.ones(1), np.zeros(1))
    ssm = DiagonalSSM.random(2, 1, rng=0)
    with pytest.raises(ValueError, match="`method` must be"):
        ssm.discretize(0.1, method="euler")
    with pytest.raises(ValueError, match="`dt` must be"):
        ssm.discretize(-0.1)
    with pytest.raises(ValueError, match="`t` must be non-negative"):
        ssm.kernel([-1.0])
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 1\)"):
        ssm.discretize(0.1).run(np.zeros((3, 1)))
    unstable = DiscreteDiagonalSSM([1e200 + 0j], np.ones((1, 1)), np.ones(1), np.zeros(1))
    with pytest.raises(FloatingPointError, match="diverged"):
        unstable.run(np.ones((1, 5, 1)))


# -- the contract: memory_function on the SSM, its reparameterisation --------------------------

from dynmem.memory import memory_function  # noqa: E402
from dynmem.models import ClosedFormMemory, DiscreteModel  # noqa: E402
from dynmem.reparam import get_reparam  # noqa: E402


@pytest.mark.parametrize("input", ["heaviside", "impulse", "reversed"])
def test_memory_function_closed_form_equals_simulated_flow_of_the_real_form(input):
    ssm = DiagonalSSM.random(4, 2, rng=9)
    assert isinstance(ssm, ClosedFormMemory)
    t = np.linspace(0.0, 10.0, 21)
    closed = memory_function(ssm, t, input=input)
    assert closed.method == "closed-form"
    np.testing.assert_allclose(closed.values, ssm.memory(t), rtol=0, atol=0)
    # Independent: batched solve_ivp of the real 2m-dimensional system from the sign-vertex probes.
    sim = memory_function(ssm, t, input=input, closed_form=False, method="DOP853", rtol=1e-13, atol=1e-15)
    assert sim.method == "exact-flow"
    np.testing.assert_allclose(sim.values, closed.values, rtol=0, atol=1e-8 * closed.values.max())
    # and the linear-form closed form (expm of the real form) agrees to rounding
    lin = memory_function(ssm.as_linear(), t)
    np.testing.assert_allclose(lin.values, closed.values, rtol=1e-10, atol=1e-13)


def test_discrete_ssm_is_a_discrete_model_and_its_impulse_memory_samples_the_kernel():
    ssm = DiagonalSSM.random(3, 2, rng=1)
    dt = 0.1
    disc = ssm.discretize(dt)
    assert isinstance(disc, DiscreteModel) and disc.state_size == 6
    # An input x at step 0 only: Y_{k+1} = Re(C^T Lambda_bar^k B_bar x), maximised over the vertices.
    k = np.arange(0, 50)
    res = memory_function(disc, k, input="impulse")
    verts = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float)
    ref = np.max(np.abs(np.stack([((verts @ disc.B_bar.T) * disc.Lambda_bar ** j) @ disc.C for j in k], axis=1).real),
                 axis=0)
    np.testing.assert_allclose(res.values, ref, rtol=1e-12, atol=1e-15)
    s = disc.equilibrium(np.array([[0.5, -1.0]]))
    h = s[:, :3] + 1j * s[:, 3:]
    np.testing.assert_allclose(disc.Lambda_bar * h + np.array([0.5, -1.0]) @ disc.B_bar.T, h, atol=1e-14)


@pytest.mark.parametrize("name", ["exp", "softplus", "best"])
def test_from_reparam_is_stable_for_every_w(name):
    rng = np.random.default_rng(0)
    w = rng.normal(scale=5.0, size=6)
    om = rng.normal(size=6)
    ssm = DiagonalSSM.from_reparam(w, om, rng.standard_normal((6, 1)), rng.standard_normal(6), reparam=name)
    np.testing.assert_allclose(ssm.Lambda.real, get_reparam(name).f(w), rtol=0, atol=0)
    np.testing.assert_array_equal(ssm.Lambda.imag, om)
    assert np.all(ssm.Lambda.real < 0)


def test_from_reparam_validation():
    with pytest.raises(ValueError, match=r"`Lambda` must have Re\(Lambda\) < 0"):
        DiagonalSSM.from_reparam([0.5], [0.0], np.ones((1, 1)), np.ones(1), reparam="direct")
    with pytest.raises(ValueError, match="continuous-time"):
        DiagonalSSM.from_reparam([0.5], [0.0], np.ones((1, 1)), np.ones(1), reparam="best_discrete")
