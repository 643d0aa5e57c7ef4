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


@settings(max_examples=6, deadline=None)
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
