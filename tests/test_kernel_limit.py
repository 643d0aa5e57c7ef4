"""dynmem.kernel.ntk / limit / convergence: limit ODE, kernels, a small convergence run."""

import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from dynmem.kernel import (HistoryTarget, LSSNetwork, MarkovChain, ParamLaw, empirical_ntk, kernel_convergence,
                           kernel_error, limit_kernel, solve_limit_ode, solve_limit_ode_ivp)
from dynmem.plotting import plot_error_vs_width, plot_trajectories
from dynmem.kernel.convergence import _convergence_task

CHAIN = MarkovChain([[0.7, 0.3], [0.4, 0.6]], [-1.0, 1.0])


@st.composite
def psd_problems(draw):
    n = draw(st.integers(1, 12))
    rank = draw(st.integers(1, n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    F = rng.standard_normal((n, rank))
    w = rng.uniform(0.1, 1.0, n)
    return F @ F.T, w / w.sum(), rng.standard_normal(n), rng.standard_normal(n), draw(st.sampled_from([0.5, 1.0, 3.0]))


@given(psd_problems())
def test_eigen_solution_matches_solve_ivp(problem):
    A, w, y, h0, alpha = problem
    t = np.linspace(0.0, 5.0, 11)
    sol = solve_limit_ode(A, w, y, alpha=alpha, h0=h0)
    ref = solve_limit_ode_ivp(A, w, y, t, alpha=alpha, h0=h0, rtol=1e-11, atol=1e-13)
    scale = 1.0 + np.max(np.abs(y)) + np.max(np.abs(h0))
    # exact reference: h_t = y - expm(-alpha t A D)(y - h0)
    exact = np.array([y - scipy.linalg.expm(-alpha * ti * A * w[None, :]) @ (y - h0) for ti in t])
    np.testing.assert_allclose(sol(t), exact, atol=1e-10 * scale, rtol=0)
    # DOP853 controls the local error at rtol 1e-11; its global error over alpha t lambda_max ~ 100 time
    # constants has been measured up to ~5e-8 (slow modes accumulate it), hence 1e-6.
    np.testing.assert_allclose(sol(t), ref, atol=1e-6 * scale, rtol=0)
    np.testing.assert_allclose(sol(0.0), h0, atol=1e-12 * scale)
    # off-grid formula at grid points = the grid solution (with h0 on the grid)
    np.testing.assert_allclose(sol.evaluate(t, A, h0_cross=h0), sol(t), atol=1e-10 * scale * (1 + np.abs(A).max()))


def test_long_time_limit_is_the_conditional_mean_when_A_is_positive_definite():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((6, 6))
    A = F @ F.T + 0.5 * np.eye(6)
    w = np.full(6, 1 / 6)
    y = rng.standard_normal(6)
    sol = solve_limit_ode(A, w, y)
    np.testing.assert_allclose(sol.limit(), y, atol=1e-12)
    lam_min = sol.eigvals.min()
    t = 40.0 / lam_min
    np.testing.assert_allclose(sol(t), y, atol=1e-10)
    # rank-deficient A: h_inf is y minus its component on the kernel's null space
    A1 = np.outer(F[0], F[0])
    s1 = solve_limit_ode(A1, w, y)
    assert np.max(np.abs(s1.limit() - y)) > 1e-3
    np.testing.assert_allclose(s1(1e6), s1.limit(), atol=1e-8)


def test_limit_validation_messages():
    w = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="`A` must be symmetric"):
        solve_limit_ode([[1.0, 0.5], [0.0, 1.0]], w, [0.0, 1.0])
    with pytest.raises(ValueError, match="`A` must be positive semi-definite; got eigenvalue -0.5"):
        solve_limit_ode([[1.0, 0.0], [0.0, -1.0]], w, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"`weights` must be positive.*weights\[1\] = 0.0"):
        solve_limit_ode(np.eye(2), [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="`weights` must sum to 1"):
        solve_limit_ode(np.eye(2), [0.5, 0.6], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"`A_cross` must have shape \(m, 2\)"):
        solve_limit_ode(np.eye(2), w, [0.0, 1.0]).evaluate(1.0, np.ones((3, 3)))
    with pytest.raises(ValueError, match="`n_points` must be a power of 2"):
        limit_kernel(CHAIN.histories(2), n_points=100)


@pytest.mark.parametrize("rec", ["diagonal", "mean-field"])
def test_empirical_ntk_approaches_the_qmc_limit_kernel(rec):
    H = CHAIN.histories(4)
    A = limit_kernel(H, recurrence=rec, n_points=2048, n_scrambles=4, rng=0)
    assert A.max_stderr < 2e-3 * np.abs(A.K).max()
    np.testing.assert_allclose(A.K, A.K.T, atol=1e-14)
    assert np.linalg.eigvalsh(A.K).min() > -1e-10
    errs = {}
    for N in (32, 2048):
        errs[N] = np.mean([kernel_error(empirical_ntk(LSSNetwork.initialise(N, 1, recurrence=rec, rng=s), H), A.K,
                                        H.weights) for s in range(6)])
    # Monte Carlo over units: error ~ N^-1/2, so a 64x wider network is ~8x closer; ask for 4x.
    assert errs[2048] < errs[32] / 4, errs


def test_empirical_ntk_is_the_gram_of_unit_gradients_and_block_invariant():
    rng = np.random.default_rng(2)
    net = LSSNetwork.initialise(10, 2, paired=False, recurrence="mean-field", rng=rng)
    H1, H2 = rng.standard_normal((4, 3, 2)), rng.standard_normal((5, 2, 2))
    J1, J2 = net.unit_gradients(H1), net.unit_gradients(H2)
    ref = np.einsum("aip,bip->ab", J1, J2) / 10
    np.testing.assert_allclose(empirical_ntk(net, H1, H2), ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(empirical_ntk(net, H1, H2, block=3), ref, rtol=1e-12, atol=1e-14)
    K = empirical_ntk(net, H1)
    np.testing.assert_array_equal(K, K.T)


def test_limit_kernel_agrees_with_plain_monte_carlo_and_off_grid_evaluation():
    H = CHAIN.histories(3)
    law = ParamLaw(c_std=0.8, b_max=0.6)
    A = limit_kernel(H, law=law, n_points=1024, n_scrambles=4, rng=1)
    # plain Monte Carlo: a wide unpaired network's NTK (c ~ N(0, 0.64)); 5 MC standard errors ~ 5 / sqrt(N)
    mc = empirical_ntk(LSSNetwork.initialise(40_000, 1, law=law, paired=False, rng=3), H)
    assert kernel_error(mc, A.K, H.weights) < 5 / np.sqrt(40_000) * 3
    # off-grid: evaluate at histories of another length through the cross kernel
    y = HistoryTarget.lag(1)(H)
    sol = solve_limit_ode(A.K, H.weights, y)
    Z = CHAIN.histories(5).values[:7]
    Ac = limit_kernel(Z, H, law=law, n_points=1024, n_scrambles=4, rng=1).K
    h_off = sol.evaluate([0.5, 2.0], Ac)
    # the derivative of the off-grid formula is the ODE right-hand side
    eps = 1e-5
    dh = (sol.evaluate(2.0 + eps, Ac) - sol.evaluate(2.0 - eps, Ac)) / (2 * eps)
    np.testing.assert_allclose(dh, Ac @ (H.weights * (y - sol(2.0))), atol=1e-7)
    assert h_off.shape == (2, 7)


def _ols_slope_and_ci(x, y):
    """Independent OLS of log y on log x: the slope and its 95% Student-t interval (by hand, not linregress)."""
    import scipy.stats

    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    slope, intercept = np.polyfit(lx, ly, 1)
    n = lx.size
    se = np.sqrt(np.sum((ly - slope * lx - intercept) ** 2) / (n - 2) / np.sum((lx - lx.mean()) ** 2))
    half = scipy.stats.t.ppf(0.975, n - 2) * se
    return slope, slope - half, slope + half


SMALL = dict(L=3, t_final=1.0, n_times=5, qmc_points=256, qmc_scrambles=2, burn_in=10)


def test_small_convergence_run_is_deterministic_with_or_without_executor():
    serial = kernel_convergence([20, 80], seeds=(0, 1), rng=5, **SMALL)
    assert serial.success and serial.errors.shape == (2, 2) and np.all(np.isfinite(serial.errors))
    assert serial.h_network.shape == (2, 2, 5, 8)
    assert np.all(serial.h_network[:, :, 0] == 0.0)  # paired start: h^N_0 = 0 = h_0
    assert np.all(serial.drift > 0) and np.all(serial.ntk_errors > 0)
    # the slope and its interval recomputed from the errors (the interval containing its own centre is no check)
    ref = _ols_slope_and_ci(np.repeat([20.0, 80.0], 2), serial.errors.ravel())
    np.testing.assert_allclose([serial.slope.slope, serial.slope.ci_low, serial.slope.ci_high], ref, rtol=1e-10)
    with ThreadPoolExecutor(2) as ex:
        threaded = kernel_convergence([20, 80], seeds=(0, 1), rng=5, executor=ex, **SMALL)
    np.testing.assert_array_equal(serial.h_network, threaded.h_network)
    np.testing.assert_array_equal(serial.ntk_errors, threaded.ntk_errors)
    # a task depends on (root, seed, N) only, not on the other widths in the study
    alone = kernel_convergence([80], seeds=(1,), rng=5, **SMALL)
    np.testing.assert_array_equal(alone.h_network[0, 0], serial.h_network[1, 1])


def test_convergence_tasks_pickle_and_plots_return_axes():
    import matplotlib.pyplot as plt

    res = kernel_convergence([20, 40, 80], seeds=(0,), rng=1, **SMALL)
    task = dict(entropy=1, seed=0, N=20, d=1, law=ParamLaw(), beta=0.5, recurrence="diagonal", activation="tanh",
                H=res.histories.values, weights=res.histories.weights, A=res.limit.A, chain=CHAIN,
                target=HistoryTarget.product([0, 1]), alpha=1.0, t_final=0.5, times=np.array([0.0, 0.5]), burn_in=5)
    back = pickle.loads(pickle.dumps(task))
    a, b = _convergence_task(task), _convergence_task(back)
    np.testing.assert_array_equal(a["h"], b["h"])
    fig, (ax1, ax2) = plt.subplots(1, 2)
    assert plot_error_vs_width(res, ax=ax1) is ax1
    assert plot_trajectories(res, ax=ax2) is ax2
    plt.close(fig)


def test_convergence_validation_messages():
    with pytest.raises(ValueError, match="`N_values` must be even.*got 21"):
        kernel_convergence([20, 21])
    with pytest.raises(ValueError, match=r"`beta` must be in \[1/2, 1\)"):
        kernel_convergence([20], beta=1.2)
    with pytest.raises(ValueError, match="`L` must be >= the target's length 3"):
        kernel_convergence([20], target=HistoryTarget.lag(2), L=2)


def test_process_pool_gives_the_serial_result():
    serial = kernel_convergence([20, 40], seeds=(0,), rng=2, **SMALL)
    with ProcessPoolExecutor(2) as ex:
        pooled = kernel_convergence([20, 40], seeds=(0,), rng=2, executor=ex, **SMALL)
    np.testing.assert_array_equal(serial.h_network, pooled.h_network)


@pytest.mark.slow
def test_convergence_slope_is_near_minus_one_half():
    res = kernel_convergence([100, 400, 1600, 6400], seeds=(0, 1), rng=0)
    assert -0.75 < res.slope.slope < -0.3
    assert -0.75 < res.ntk_slope.slope < -0.3


def test_kernel_limit_reproduction_writes_complete_json_and_png(tmp_path, monkeypatch):
    import json
    import os

    from dynmem.experiments import kernel_limit as rk
    from dynmem import reproduce as rp
    from dynmem.io import read_json

    tiny = dict(rk.SETTINGS["quick"], N_values=(20, 40, 80), t_final=1.0, n_times=5, L=3, qmc_points=256,
                qmc_scrambles=2, burn_in=10, variants=({"recurrence": "mean-field", "beta": 0.75},),
                variant_N_values=(20, 40))
    monkeypatch.setitem(rk.SETTINGS, "quick", tiny)
    written = rp.reproduce(["kernel-limit"], out=str(tmp_path), quick=True, seeds=(0, 1))
    d = read_json(written["kernel-limit-dynmem"])
    assert d["reproduce"]["complete"] and d["experiment"] == "kernel-limit" and d["N_values"] == [20, 40, 80]
    json.dumps(d, allow_nan=False)
    assert len(d["per_width"]["40"]["errors"]) == 2 and len(d["per_width"]["40"]["error_curves"][0]) == 5
    f = d["findings"]
    for key in ("convergence_slope", "convergence_slope_ci95", "ntk_slope", "drift_slope", "all_runs_succeeded"):
        assert key in f
    N = [20, 40, 80]
    ref = _ols_slope_and_ci(np.repeat(N, 2), [e for n in N for e in d["per_width"][str(n)]["errors"]])
    np.testing.assert_allclose([d["slope"]["slope"], *d["slope"]["ci"]], ref, rtol=1e-10)
    (v,) = d["variants"]
    assert v["recurrence"] == "mean-field" and v["beta"] == 0.75 and v["N_values"] == [20, 40] and v["success"]
    assert os.path.getsize(os.path.join(tmp_path, "kernel-limit-dynmem.png")) > 10_000


def test_ar1_chain_uses_a_sampled_grid():
    from dynmem.kernel import AR1Chain

    res = kernel_convergence([20, 80], seeds=(0,), rng=3, chain=AR1Chain(0.5, 0.8), target=HistoryTarget.lag(1),
                             n_histories=40, **SMALL)
    assert res.success and not res.histories.exact and res.histories.n == 40
    np.testing.assert_allclose(res.histories.weights, 1 / 40)
    assert np.all(np.isfinite(res.errors)) and res.settings["grid"] == "stationary sample"
