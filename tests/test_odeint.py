"""The compiled Dormand-Prince 5(4) solver of dynmem.odeint.

Oracles: scipy's RK45 tableau and solve_ivp (through simulate's scipy path,
and a plain solve_ivp of a numpy right-hand side), the closed form of a
linear CTRNN under constant input via scipy.linalg.expm, and convergence
in rtol on random models.
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import dynmem as dm
from dynmem import CTRNN, PiecewiseConstant, PiecewiseLinear
from dynmem.inputs import FunctionPath
from dynmem.odeint import DOPRI5_TABLEAU, STATUS_MESSAGES, solve_ctrnn
from dynmem.simulate import SimulationError


def _relerr(h, ref):
    return float(np.max(np.abs(h - ref)) / np.max(np.abs(ref)))


def _problem(seed, m=6, d=2, kind="constant", activation="tanh", leak=0.0):
    rng = np.random.default_rng(seed)
    model = CTRNN.random(m, d, spectral_abscissa=-0.3, bias_scale=0.3, activation=activation, rng=rng)
    if leak:
        model = model.replace(leak=leak)
    knots = np.sort(np.concatenate([[0.0, 6.0], rng.uniform(0.2, 5.8, size=7)]))
    if kind == "constant":
        x = PiecewiseConstant(knots, rng.standard_normal((knots.size - 1, d)))
    else:
        x = PiecewiseLinear(knots, rng.standard_normal((knots.size, d)))
    return model, x, rng


def _scipy_reference(model, x, t_eval, h0, t0, rtol=1e-13, atol=1e-15):
    """solve_ivp DOP853 of a numpy right-hand side, restarted at every knot (independent of dynmem's kernels)."""
    W, U, b = np.array(model.W), np.array(model.U), np.array(model.b)
    act = {"tanh": np.tanh, "identity": lambda z: z}[model.activation]
    t1 = t_eval[-1]
    bounds = np.concatenate([[t0], x.knots[(x.knots > t0) & (x.knots < t1)], [t1]])
    out = np.full((t_eval.size, model.hidden), np.nan)
    h = np.array(h0, dtype=float)
    for a, c in zip(bounds[:-1], bounds[1:]):
        # x is affine on [a, c]: evaluate it exactly via the piece that contains the midpoint
        k = int(x.piece_index(0.5 * (a + c)))
        off, slope, kn = x.offsets[k], x.slopes[k], x.knots[k]

        def fun(t, y, off=off, slope=slope, kn=kn):
            return act(W @ y + U @ (off + (t - kn) * slope) + b) - model.leak * y

        sel = (t_eval >= a) & (t_eval <= c)
        sol = scipy.integrate.solve_ivp(fun, (a, c), h, method="DOP853", rtol=rtol, atol=atol, dense_output=True)
        assert sol.status == 0
        if sel.any():
            out[sel] = sol.sol(t_eval[sel]).T
        h = sol.y[:, -1]
    return out


def test_tableau_is_scipys_rk45():
    for name, arr in DOPRI5_TABLEAU.items():
        ours = np.asarray(arr)
        theirs = np.asarray(getattr(scipy.integrate.RK45, name))
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=1e-16, err_msg=name)
    # consistency of the pair: B and B - E are both weights of order >= 1, C = row sums of A
    B, E, A, C = (np.asarray(DOPRI5_TABLEAU[k]) for k in "BEAC")
    assert abs(B.sum() - 1.0) < 1e-15 and abs(E.sum()) < 1e-15
    np.testing.assert_allclose(A.sum(axis=1), C, atol=1e-15)


@pytest.mark.parametrize("kind", ["constant", "linear"])
@pytest.mark.parametrize("activation,leak", [("tanh", 0.0), ("tanh", 0.7), ("identity", 0.2)])
def test_matches_solve_ivp(kind, activation, leak):
    model, x, rng = _problem(1, kind=kind, activation=activation, leak=leak)
    t0 = 0.3
    h0 = 0.5 * rng.standard_normal(model.hidden)
    # observation times: t0 itself, a knot, and interior points
    t_eval = np.unique(np.concatenate([[t0, x.knots[3]], rng.uniform(t0, 5.9, size=9)]))
    ref = _scipy_reference(model, x, t_eval, h0, t0)
    for rtol in (1e-7, 1e-10):
        res = solve_ctrnn(model, x, t_eval, h0=h0, t0=t0, rtol=rtol, atol=rtol * 1e-2)
        assert res.success and res.status[0] == 0, res.message
        np.testing.assert_array_equal(res.h[0, 0], h0)
        assert _relerr(res.h[0], ref) < 10 * rtol
        # simulate's scipy RK45 path at the same tolerances lands in the same error band
        sim = dm.simulate(model, x, t_eval, h0=h0, t0=t0, rtol=rtol, atol=rtol * 1e-2)
        assert _relerr(res.h[0], sim.h) < 20 * rtol


def test_expm_closed_form():
    # identity activation, constant input: dh/dt = A h + v with A = W - leak I, v = U u + b
    rng = np.random.default_rng(3)
    m, d = 5, 2
    model = CTRNN.random(m, d, spectral_abscissa=-0.2, bias_scale=0.5, activation="identity", rng=rng).replace(leak=0.3)
    u = rng.standard_normal(d)
    x = PiecewiseConstant([0.0, np.inf], u[None, :])
    h0 = rng.standard_normal(m)
    t_eval = np.array([0.0, 0.4, 1.0, 2.5, 7.0])
    A = np.array(model.W) - model.leak * np.eye(m)
    v = np.array(model.U) @ u + np.array(model.b)
    aug = np.zeros((m + 1, m + 1))
    aug[:m, :m], aug[:m, m] = A, v
    ref = np.array([(scipy.linalg.expm(aug * t) @ np.append(h0, 1.0))[:m] for t in t_eval])
    for rtol in (1e-6, 1e-9, 1e-12):
        res = solve_ctrnn(model, x, t_eval, h0=h0, rtol=rtol, atol=rtol * 1e-2)
        assert res.success
        assert _relerr(res.h[0], ref) < 10 * rtol


def test_batch_matches_single_solves():
    model, x1, rng = _problem(4)
    x2 = PiecewiseLinear(np.linspace(0.0, 6.0, 5), rng.standard_normal((5, 2)))
    x3 = PiecewiseConstant([0.0, 2.0, 6.5], rng.standard_normal((2, 2)))
    H0 = rng.standard_normal((3, model.hidden))
    t_eval = np.linspace(0.0, 6.0, 13)
    rtol = 1e-10
    batch = solve_ctrnn(model, [x1, x2, x3], t_eval, h0=H0, rtol=rtol, atol=1e-12)
    assert batch.success and batch.h.shape == (3, t_eval.size, model.hidden)
    for s, xs in enumerate([x1, x2, x3]):
        ref = _scipy_reference(model, xs, t_eval, H0[s], 0.0)
        assert _relerr(batch.h[s], ref) < 10 * rtol
    # identical sequences in a batch give bit-identical results to the single solve
    same = solve_ctrnn(model, [x1, x1], t_eval, h0=H0[0], rtol=rtol, atol=1e-12)
    single = solve_ctrnn(model, x1, t_eval, h0=H0[0], rtol=rtol, atol=1e-12)
    np.testing.assert_array_equal(same.h[0], single.h[0])
    np.testing.assert_array_equal(same.h[1], single.h[0])
    assert int(single.nfev[0]) == 6 * int(single.naccept[0] + single.nreject[0]) + 2 + (x1.knots.size - 2)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 12), kind=st.sampled_from(["constant", "linear"]))
def test_error_shrinks_with_rtol(seed, m, kind):
    model, x, rng = _problem(seed, m=m, kind=kind)
    t_eval = np.sort(rng.uniform(0.0, 6.0, size=6))
    ref = _scipy_reference(model, x, t_eval, np.zeros(m), 0.0)
    errs = []
    for rtol in (1e-5, 1e-7, 1e-9):
        res = solve_ctrnn(model, x, t_eval, rtol=rtol, atol=rtol * 1e-2)
        assert res.success
        errs.append(max(_relerr(res.h[0], ref), 1e-15))
        assert errs[-1] < 30 * rtol  # error proportional to rtol (30x is the allowed constant)
    # four decades of rtol buy at least two decades of error
    assert errs[2] < errs[0] / 100


def test_simulate_dopri5_uses_the_compiled_solver():
    model, x, rng = _problem(5, kind="linear")
    t_eval = np.linspace(0.5, 6.0, 8)
    sim = dm.simulate(model, x, t_eval, method="dopri5", rtol=1e-9, atol=1e-11)
    res = solve_ctrnn(model, x, t_eval, rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(sim.h, res.h[0])
    np.testing.assert_allclose(sim.y, sim.h @ np.array(model.c), rtol=1e-15, atol=0)
    assert sim.success and sim.nfev == res.nfev[0] and sim.sol is None
    assert sim.n_segments == np.count_nonzero((x.knots > 0.0) & (x.knots < 6.0)) + 1
    ref = dm.simulate(model, x, t_eval, method="DOP853", rtol=1e-13, atol=1e-15)
    assert _relerr(sim.h, ref.h) < 1e-8
    with pytest.raises(ValueError, match=r"`dense_output` must be False for method='dopri5'"):
        dm.simulate(model, x, t_eval, method="dopri5", dense_output=True)
    fx = FunctionPath(lambda t: np.array([np.sin(t), 1.0]), [0.0, 6.0], 2)
    with pytest.raises(ValueError, match=r"`x` must be affine on each piece"):
        dm.simulate(model, fx, t_eval, method="dopri5")
    with pytest.raises(ValueError, match=r"`x\[0\]` must be affine on each piece"):
        solve_ctrnn(model, fx, t_eval)


def test_failures_are_reported():
    model, x, rng = _problem(6)
    t_eval = np.linspace(0.0, 6.0, 7)
    # too many steps
    res = solve_ctrnn(model, x, t_eval, max_steps=5)
    assert not res.success and res.status[0] == 3 and "max_steps" in res.message
    assert np.isnan(res.h[0, -1]).all() and np.isfinite(res.h[0, 0]).all()
    with pytest.raises(SimulationError, match=r"dopri5 used its budget of max_steps = 5 step attempts by t = "):
        dm.simulate(model, x, t_eval, method="dopri5", max_steps=5)
    rep = dm.simulate(model, x, t_eval, method="dopri5", max_steps=5, on_failure="report")
    assert not rep.success and np.isnan(rep.h[-1]).all() and np.isnan(rep.y[-1])
    # unreachable tolerance: the step size underflows
    res = solve_ctrnn(model, x, t_eval[1:], t0=1.0, rtol=1e-300, atol=1e-300)
    assert res.status[0] == 1 and STATUS_MESSAGES[1] in res.message and res.t_reached[0] == 1.0
    assert res.naccept[0] == 0 and np.isnan(res.h[0, 1:]).all()
    # divergence of an unstable linear CTRNN: h grows like e^{2t}
    lin = CTRNN(2.0 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="identity")
    xs = PiecewiseConstant([0.0, 20.0], [[1.0]])
    res = solve_ctrnn(lin, xs, np.linspace(0.0, 20.0, 41), divergence_threshold=1e6)
    assert res.status[0] == 4
    reached = res.t_reached[0]
    assert np.log(2e6) / 2 - 0.5 < reached < 20.0  # (e^{2t} - 1)/2 crosses 1e6 near t = 7.25
    ok = res.t <= reached - 1.0
    assert np.isfinite(res.h[0, ok]).all() and np.isnan(res.h[0, res.t > reached]).all()
    with pytest.raises(SimulationError, match=r"divergence_threshold"):
        dm.simulate(lin, xs, [1.0, 20.0], method="dopri5", divergence_threshold=1e6)
    # overflow in the right-hand side: non-finite state
    huge = CTRNN(1e308 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="identity")
    res = solve_ctrnn(huge, xs, [0.0, 1.0], h0=np.ones(2))
    assert res.status[0] == 2 and np.isnan(res.h[0, 1]).all()
    # one bad sequence in a batch does not hide the good one
    zero = PiecewiseConstant([0.0, 20.0], [[0.0]])  # h stays exactly 0 from h0 = 0
    res = solve_ctrnn(huge, [xs, zero], [0.0, 1.0], h0=np.array([[1.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(res.h[1], 0.0)
    assert list(res.status) == [2, 0] and "sequence 0" in res.message and "1 of 2" in res.message


def test_validation_messages():
    model, x, _ = _problem(7)
    with pytest.raises(ValueError, match=r"`h0` must have shape \(6,\) or \(1, 6\); got shape \(3,\)"):
        solve_ctrnn(model, x, [1.0], h0=np.zeros(3))
    with pytest.raises(ValueError, match=r"`t_eval` must lie in \[t0, t_end\]"):
        solve_ctrnn(model, x, [7.0])
    with pytest.raises(ValueError, match=r"`max_steps` must be >= 1; got 0"):
        solve_ctrnn(model, x, [1.0], max_steps=0)
    with pytest.raises(TypeError, match=r"`x` must be an InputPath or a non-empty list/tuple"):
        solve_ctrnn(model, [], [1.0])
    with pytest.raises(ValueError, match=r"`x\[1\]` must have dimension 2"):
        solve_ctrnn(model, [x, PiecewiseConstant([0.0, 6.0], [[1.0]])], [1.0])


def test_default_method_is_auto_and_resolves():
    # 'auto' is the default of simulate, adjoint_gradient and memory_function; it resolves to the
    # compiled dopri5 where that applies and to scipy's RK45 otherwise, and the result says which ran
    import inspect

    for fn in (dm.simulate, dm.adjoint_gradient, dm.memory_function):
        assert inspect.signature(fn).parameters["method"].default == "auto"
    model, x, _ = _problem(3)
    te = np.linspace(0.0, 6.0, 7)
    auto = dm.simulate(model, x, te)
    assert auto.method == "dopri5"
    np.testing.assert_array_equal(auto.h, dm.simulate(model, x, te, method="dopri5").h)
    assert dm.simulate(model, x, te, method="RK45").method == "RK45"
    assert dm.simulate(model, x, te, dense_output=True).method == "RK45"  # no compiled dense output
    fx = FunctionPath(lambda t: np.array([np.sin(t), np.cos(t)]), [0.0, 6.0], 2)
    assert dm.simulate(model, fx, te).method == "RK45"  # not affine on pieces
    lin = dm.LinearRNN(np.array(model.W) - 2 * np.eye(model.hidden), np.array(model.U), np.array(model.c))
    assert dm.simulate(lin, x, te).method == "dopri5"
    assert dm.simulate(dm.CTGRU.random(3, 2, rng=0), x, te).method == "RK45"  # not a CTRNN
    t_obs, y_obs = te[1:], np.ones(6)
    g = dm.adjoint_gradient(model, x, t_obs, y_obs)
    assert g.method == "dopri5"
    g45 = dm.adjoint_gradient(model, x, t_obs, y_obs, method="RK45")
    assert g45.method == "RK45"
    np.testing.assert_allclose(g.flat, g45.flat, rtol=0, atol=1e-5 * np.max(np.abs(g45.flat)))
    run = dm.adjoint_gradient(model, x, t_obs, y_obs, running_target=lambda t: np.zeros_like(t))
    assert run.method == "dopri5" and run.adjoint == "discrete"  # a running loss rides on the discrete adjoint
    kinked, _, _ = _problem(3, activation="relu")
    run = dm.adjoint_gradient(kinked, x, t_obs, y_obs, running_target=lambda t: np.zeros_like(t))
    assert run.method == "RK45"  # relu: the continuous adjoint, which only scipy's path gives a running loss
    from dynmem.solvers import resolve_method

    assert resolve_method("auto", model, x) == "dopri5" and resolve_method("Radau", model, x) == "Radau"


def test_auto_failure_carries_the_stiffness_hint():
    stiff = dm.CTRNN(-1e7 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2))
    with pytest.raises(SimulationError, match=r"max_steps.*stiff.*Radau"):
        dm.simulate(stiff, dm.step([1.0], t_end=5.0), np.linspace(0.0, 5.0, 6))


def test_constant_input_batch_matches_solve_ivp():
    from dynmem.odeint import solve_ctrnn_constant

    model, _, rng = _problem(21, m=5, d=2, leak=0.3)
    X = rng.standard_normal((4, 2))
    H0 = 0.5 * rng.standard_normal((4, 5))
    t = np.linspace(0.0, 8.0, 33)
    res = solve_ctrnn_constant(model, X, t, h0=H0, rtol=1e-11, atol=1e-13)
    res2, dy = solve_ctrnn_constant(model, X, t, h0=H0, rtol=1e-11, atol=1e-13, output_derivative=model.c)
    assert res.success and res2.success and res.h.shape == (4, 33, 5)
    W, U, b, c = (np.array(a) for a in (model.W, model.U, model.b, model.c))
    for s in range(4):
        def f(_t, h, s=s):
            return np.tanh(W @ h + U @ X[s] + b) - 0.3 * h

        ref = scipy.integrate.solve_ivp(f, (0.0, 8.0), H0[s], method="DOP853", t_eval=t, rtol=1e-13, atol=1e-15).y.T
        assert _relerr(res.h[s], ref) < 1e-9
        dref = np.array([c @ f(0.0, h) for h in ref])
        # c^T f(h) at the interpolated state: exact at t = 0, as accurate as the state in between
        assert dy[s, 0] == pytest.approx(dref[0], rel=1e-12, abs=1e-14)
        assert np.max(np.abs(dy[s] - dref)) < 1e-9 * np.max(np.abs(dref))
    with pytest.raises(ValueError, match=r"`X` must have shape \(B, 2\)"):
        solve_ctrnn_constant(model, np.ones((3, 1)), t)
    with pytest.raises(ValueError, match=r"`h0` must have shape"):
        solve_ctrnn_constant(model, X, t, h0=np.ones(3))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("input", ["heaviside", "impulse", "reversed"])
def test_memory_function_compiled_matches_scipy(activation, input):
    # the default (compiled, one call for every probe) against the batched scipy path at a tight tolerance
    model = CTRNN.random(8, 2, spectral_abscissa=-0.4, bias_scale=0.2, activation=activation, rng=5)
    t = np.linspace(0.0, 12.0, 61)
    amps = np.array([0.05, 0.5, 2.0])
    rtol = 1e-10
    fast = dm.memory_function(model, t, amplitudes=amps, input=input, rtol=rtol, atol=1e-12)
    ref = dm.memory_function(model, t, amplitudes=amps, input=input, method="DOP853", rtol=1e-13, atol=1e-15)
    assert fast.success
    scale = np.max(ref.probe_values, axis=1, keepdims=True)
    # smooth sigma: states and dy/dt = c^T f(h) (the field at the interpolated state) measured 0.6-0.9 rtol of
    # the probe's scale, bound 30 rtol; relu (kink at 0, no event location): measured up to 5.9e-7 = 5900 rtol
    # here (scipy's batched RK45 1.0e-7)
    bound = 30.0 * rtol if activation == "tanh" else 2e4 * rtol
    assert np.max(np.abs(fast.probe_values - ref.probe_values) / scale) < bound
    np.testing.assert_allclose(fast.values, ref.values, rtol=0, atol=bound * np.max(ref.values))


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "dop853"])
@pytest.mark.parametrize("input", ["heaviside", "impulse", "reversed"])
@pytest.mark.parametrize("activation,bias", [("tanh", 0.0), ("identity", 0.0), ("tanh", 0.2), ("relu", 0.0)])
def test_memory_mirrored_probes_equal_direct_solves(monkeypatch, input, activation, bias, method):
    # an odd field (odd sigma, b = 0) solves half the probes and mirrors the rest: bit for bit a direct solve
    import dynmem.memory as mem

    model = CTRNN.random(6, 2, spectral_abscissa=-0.4, bias_scale=bias, activation=activation, rng=7)
    if activation == "identity":
        model = dm.LinearRNN(np.array(model.W) - 0.2 * np.eye(6), np.array(model.U), np.array(model.c))
    t = np.linspace(0.0, 8.0, 41)
    V = np.array([(1, 1), (1, -1), (-1, 1), (-1, -1)], dtype=float)
    P = np.concatenate([a * V for a in (0.1, 1.0, 3.0)])  # the vertex probes come in +- pairs
    calls = []
    solve = mem._compiled_probe_states
    monkeypatch.setattr(mem, "_compiled_probe_states",
                        lambda model, Xd, *a, **k: calls.append(len(Xd)) or solve(model, Xd, *a, **k))
    mirrored = mem._flow_probe_memory(model, P, t, input, method, 1e-9, 1e-11)
    paired = activation in ("tanh", "identity") and bias == 0.0
    assert calls == [P.shape[0] // 2 if paired else P.shape[0]]
    monkeypatch.setattr(mem, "_mirror_pairs", lambda model, Xd, H0: (np.arange(len(Xd)),) * 2 + (np.ones(len(Xd)),))
    direct = mem._flow_probe_memory(model, P, t, input, method, 1e-9, 1e-11)
    assert calls[-1] == P.shape[0]
    np.testing.assert_array_equal(mirrored, direct)
    res = dm.memory_function(model, t, amplitudes=[0.1, 1.0, 3.0], input=input, rtol=1e-9, atol=1e-11, method=method)
    assert res.success and np.all(np.isfinite(res.values))


def test_one_compiled_signature():
    # read-only, list and broadcast inputs all reach the kernel with the same array types (CI starts cold)
    from dynmem.ode.loop import solve_one

    model, x, _ = _problem(8)
    te = np.linspace(0.0, 6.0, 4)
    te.flags.writeable = False
    solve_ctrnn(model, x, te)
    solve_ctrnn(model, [x, x], list(te), h0=np.zeros(model.hidden))
    solve_ctrnn(model.replace(activation="identity"), x, te, h0=np.ones((1, model.hidden)))
    from dynmem.odeint import solve_ctrnn_constant

    solve_ctrnn_constant(model, np.ones((2, model.inputs)), te)
    solve_ctrnn_constant(model, np.ones((2, model.inputs)), list(te), output_derivative=list(model.c))
    dm.simulate(model, x, te)  # simulate's one path calls the same specialisation
    # one signature without a readout and one with it (the readout's code is compiled only where it is used)
    import numba

    from dynmem.ode import pair_of

    sigs = [sig for sig in solve_one.signatures
            if sig[2:5] == tuple(numba.typeof(pair_of("dopri5").hooks())) and sig[12] == numba.types.none
            and sig[15] == numba.types.none]
    assert len(sigs) == 2 and len({sig[13] for sig in sigs}) == 2


# ---------------------------------------------------------------------------
# The compiled continuous adjoint
# ---------------------------------------------------------------------------

from dynmem.odeint import ctrnn_loss_gradient  # noqa: E402


def _obs_problem(seed, m=4, d=2, kind="constant", leak=0.0, activation="tanh"):
    model, x, rng = _problem(seed, m=m, d=d, kind=kind, leak=leak, activation=activation)
    t_obs = np.sort(rng.uniform(0.1, 6.0, size=5))
    y_obs = rng.standard_normal(t_obs.size)
    return model, x, t_obs, y_obs, rng


def test_a_full_step_store_is_replaced_and_the_solve_repeated():
    # the loop never grows the store: it stops when it is full and forward_store solves again with a larger one
    # (the same steps: a deterministic solve), from a store of one step or of plenty alike
    from dynmem.ode import adjoint as ode_adjoint, pair_of, solve as ode_solve
    from dynmem.ode.loop import empty_store

    model, x, t_obs, _, _ = _obs_problem(7, m=3)
    breaks, Xa, Xs = ode_solve.path_tables(x, 0.0, 6.0)
    U, bb = np.array(model.U), np.array(model.b)
    pair = pair_of("dopri5")
    runs = []
    for capacity in (1, 4096):
        H = np.full((t_obs.size, 3), np.nan)
        st, _, nfev, nacc, S = ode_adjoint.forward_store(
            ode_solve.kernel_field(model), pair.tables(), (1e-7, 1e-9, np.inf, np.int64(10 ** 6), 1e12),
            Xa @ U.T + bb, Xs @ U.T, breaks, t_obs, np.zeros(3), H, empty_store(capacity, pair.stages, 3),
            pair.hooks())
        assert st == 0 and S[0].shape[0] >= nacc > 20
        runs.append((H, nfev, nacc) + tuple(a[:nacc] for a in S))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def _flat(r):
    return np.concatenate([r.dW.ravel(), r.dU.ravel(), r.db, r.dc])


def _fd_loss(model, x, t_obs, y_obs, h0, w):
    res = solve_ctrnn(model, x, t_obs, h0=h0, rtol=1e-13, atol=1e-15)
    assert res.success
    return 0.5 * float(np.sum(w * (res.h[0] @ np.array(model.c) - y_obs) ** 2))


@pytest.mark.parametrize("adjoint", ["discrete", "continuous"])
@pytest.mark.parametrize("kind,leak,activation", [("constant", 0.0, "tanh"), ("linear", 0.4, "tanh"),
                                                  ("constant", 0.2, "identity")])
def test_adjoint_matches_central_differences(kind, leak, activation, adjoint):
    model, x, t_obs, y_obs, rng = _obs_problem(21, kind=kind, leak=leak, activation=activation)
    h0 = 0.3 * rng.standard_normal(model.hidden)
    w = rng.uniform(0.5, 2.0, size=t_obs.size)
    res = ctrnn_loss_gradient(model, x, t_obs, y_obs, h0=h0, weights=w, rtol=1e-12, atol=1e-14, adjoint=adjoint)
    assert res.adjoint == adjoint
    assert res.loss == pytest.approx(_fd_loss(model, x, t_obs, y_obs, h0, w), rel=1e-10)
    theta = model.flatten()
    eps = 1e-5
    fd = np.empty(theta.size)
    for k in range(theta.size):
        e = np.zeros(theta.size)
        e[k] = eps
        fd[k] = (_fd_loss(model.unflatten(theta + e), x, t_obs, y_obs, h0, w)
                 - _fd_loss(model.unflatten(theta - e), x, t_obs, y_obs, h0, w)) / (2 * eps)
    # central differences: truncation O(eps^2) ~ 1e-10, rounding of the rtol=1e-13 solves ~ 1e-13 / eps;
    # measured 5e-11 .. 1.1e-10 on these three cases, the bound is 1e-8
    assert np.linalg.norm(_flat(res) - fd) / np.linalg.norm(fd) < 1e-8
    fd0 = np.array([(_fd_loss(model, x, t_obs, y_obs, h0 + eps * e, w) - _fd_loss(model, x, t_obs, y_obs, h0 - eps * e, w))
                    / (2 * eps) for e in np.eye(model.hidden)])
    assert np.linalg.norm(res.dh0 - fd0) / np.linalg.norm(fd0) < 1e-6


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 8), kind=st.sampled_from(["constant", "linear"]),
       adjoint=st.sampled_from(["discrete", "continuous"]), leak=st.sampled_from([0.0, 0.4]))
def test_adjoint_matches_scipy_adjoint(seed, m, kind, adjoint, leak):
    model, x, t_obs, y_obs, rng = _obs_problem(seed, m=m, kind=kind, leak=leak)
    if rng.random() < 0.5:
        t_obs = np.concatenate([[0.0], t_obs])  # an observation at t0 too
        y_obs = np.concatenate([[0.3], y_obs])
    ref = dm.adjoint_gradient(model, x, t_obs, y_obs, rtol=1e-12, atol=1e-14)
    errs = []
    for rtol in (1e-6, 1e-9):
        res = ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=rtol, atol=rtol * 1e-2, adjoint=adjoint)
        assert res.loss == pytest.approx(ref.loss, rel=100 * rtol, abs=100 * rtol)
        np.testing.assert_allclose(res.y, ref.y, rtol=0, atol=100 * rtol * max(1.0, np.max(np.abs(ref.y))))
        errs.append(np.linalg.norm(_flat(res) - ref.flat) / max(np.linalg.norm(ref.flat), 1e-300))
        assert errs[-1] < 100 * rtol
        assert np.linalg.norm(res.dh0 - ref.dh0) <= 100 * rtol * max(np.linalg.norm(ref.dh0), 1e-3)
    assert errs[1] < max(errs[0] / 30, 1e-11)


def _fixed_step_loss(model, x, t_obs, y_obs, h0, S_t, S_h, S_seg, breaks, T, theta=None, tab=DOPRI5_TABLEAU):
    """The loss of the 5(4) steps (S_t, S_h) replayed in numpy: complex parameters allowed (complex step)."""
    A, B, C, P = (np.asarray(tab[k]) for k in "ABCP")
    W, U, b, c = (np.array(a, dtype=complex) for a in (model.W, model.U, model.b, model.c))
    if theta is not None:
        m, d = model.hidden, model.inputs
        W, U, b = theta[:m * m].reshape(m, m), theta[m * m:m * m + m * d].reshape(m, d), theta[m * m + m * d:]
    act = {"tanh": np.tanh, "identity": lambda z: z}[model.activation]

    def f(t, y, seg):
        k = int(x.piece_index(0.5 * (breaks[seg] + breaks[seg + 1])))  # the piece holding the segment
        xt = x.offsets[k] + (t - x.knots[k]) * x.slopes[k]
        return act(W @ y + U @ xt + b) - model.leak * y

    y = np.array(h0, dtype=complex)
    out = np.full(t_obs.size, np.nan, dtype=complex)
    out[t_obs <= S_t[0]] = c @ y
    for s in range(S_t.size):
        t, hs, seg = S_t[s], S_h[s], int(S_seg[s])
        t_new = S_t[s + 1] if s + 1 < S_t.size else T
        K = [f(t, y, seg)]
        for st_ in range(1, 6):
            K.append(f(t + C[st_] * hs, y + hs * sum(A[st_, l] * K[l] for l in range(st_)), seg))
        ynew = y + hs * sum(B[l] * K[l] for l in range(6))
        K.append(f(t_new, ynew, seg))
        for i in np.flatnonzero((t_obs > t) & (t_obs <= t_new)):
            if t_obs[i] == t_new:
                out[i] = c @ ynew
            else:
                xx = (t_obs[i] - t) / hs
                wts = P @ np.array([xx, xx ** 2, xx ** 3, xx ** 4])
                out[i] = c @ (y + hs * sum(wts[j] * K[j] for j in range(7)))
        y = ynew
    return 0.5 * np.sum((out - y_obs) ** 2)


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
@pytest.mark.parametrize("kind,leak,activation", [("constant", 0.0, "tanh"), ("linear", 0.4, "tanh"),
                                                  ("linear", 0.3, "identity")])
def test_discrete_adjoint_is_the_gradient_of_the_computed_steps(kind, leak, activation, method):
    # the transpose of the stored steps against complex-step differentiation of the same steps replayed in
    # numpy (an independent implementation of the step map): they must agree to rounding
    import dynmem.odeint as odeint

    model, x, t_obs, y_obs, rng = _obs_problem(31, m=3, kind=kind, leak=leak, activation=activation)
    t_obs = np.concatenate([[0.0], t_obs, [6.0]])  # at t0, inside steps and at the last step's end
    y_obs = rng.standard_normal(t_obs.size)
    h0 = 0.3 * rng.standard_normal(3)
    res = ctrnn_loss_gradient(model, x, t_obs, y_obs, h0=h0, rtol=1e-5, atol=1e-7, adjoint="discrete", method=method)
    tab = odeint.TSIT5_TABLEAU if method == "tsit5" else DOPRI5_TABLEAU
    from dynmem.ode import adjoint as ode_adjoint, pair_of, solve as ode_solve

    breaks, Xa, Xs = ode_solve.path_tables(x, 0.0, 6.0)
    U, bb = np.array(model.U), np.array(model.b)
    H = np.full((t_obs.size, 3), np.nan)
    st_, _, _, nacc, (S_t, S_h, _, _, _, S_seg) = ode_adjoint.forward_store(
        (np.array(model.W), np.int64(dm.activations.get_activation(activation).code), float(model.leak)),
        pair_of(method).tables(), (1e-5, 1e-7, np.inf, np.int64(10 ** 6), 1e12),
        Xa @ U.T + bb, Xs @ U.T, breaks, t_obs, h0, H, ode_adjoint.step_storage(3, pair_of(method).stages))
    assert st_ == 0 and 5 < nacc < 200
    steps = (S_t[:nacc], S_h[:nacc], S_seg[:nacc], breaks, 6.0)
    loss = _fixed_step_loss(model, x, t_obs, y_obs, h0, *steps, tab=tab)
    assert res.loss == pytest.approx(loss.real, rel=1e-12)
    theta = np.concatenate([np.ravel(model.W), np.ravel(model.U), np.ravel(model.b)]).astype(complex)
    cs = np.empty(theta.size)
    for k in range(theta.size):
        e = np.zeros(theta.size, dtype=complex)
        e[k] = 1e-30j
        cs[k] = _fixed_step_loss(model, x, t_obs, y_obs, h0, *steps, theta=theta + e, tab=tab).imag / 1e-30
    ours = np.concatenate([res.dW.ravel(), res.dU.ravel(), res.db])
    np.testing.assert_allclose(ours, cs, rtol=1e-11, atol=1e-13 * np.max(np.abs(cs)))
    cs0 = np.array([_fixed_step_loss(model, x, t_obs, y_obs, h0 + 1e-30j * e, *steps, tab=tab).imag / 1e-30
                    for e in np.eye(3)])
    np.testing.assert_allclose(res.dh0, cs0, rtol=1e-11, atol=1e-13 * np.max(np.abs(cs0)))


def test_adjoint_auto_picks_by_activation():
    from dynmem.odeint import resolve_adjoint

    for activation, want in (("tanh", "discrete"), ("identity", "discrete"), ("relu", "continuous"),
                             ("hardtanh", "continuous")):
        model, x, t_obs, y_obs, _ = _obs_problem(32, activation=activation)
        assert resolve_adjoint("auto", model) == want
        assert ctrnn_loss_gradient(model, x, t_obs, y_obs).adjoint == want
        assert dm.adjoint_gradient(model, x, t_obs, y_obs).adjoint == want
    assert dm.adjoint_gradient(model, x, t_obs, y_obs, method="RK45").adjoint == "continuous"
    with pytest.raises(ValueError, match=r"`adjoint` must be one of"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, adjoint="backsolve")
    with pytest.raises(ValueError, match=r"`adjoint` = 'discrete' needs a compiled method"):
        dm.adjoint_gradient(model, x, t_obs, y_obs, method="RK45", adjoint="discrete")


def test_adjoint_failure_and_validation():
    model, x, t_obs, y_obs, _ = _obs_problem(22)
    with pytest.raises(SimulationError, match=r"dopri5 forward solve failed .*max_steps"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, max_steps=3)
    with pytest.raises(ValueError, match=r"`weights` must be non-negative"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, weights=-np.ones(t_obs.size))
    with pytest.raises(ValueError, match=r"`y_obs` must have shape"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs[:-1])


@pytest.mark.parametrize("adjoint", ["discrete", "continuous"])
def test_adjoint_storage_regrowth_is_exact(monkeypatch, adjoint):
    # a forward solve longer than the first storage grows it (doubling): the same numbers as with room for all
    import dynmem.ode.adjoint as ode_adjoint

    model, x, t_obs, y_obs, _ = _obs_problem(23)
    full = ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=1e-9, atol=1e-11, adjoint=adjoint)
    assert full.naccept_forward > 3
    monkeypatch.setattr(ode_adjoint, "_STORE_CAPACITY", 3)
    ode_adjoint._STORE.buf = None  # no storage kept from earlier calls: the 3-step one must grow
    small = ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=1e-9, atol=1e-11, adjoint=adjoint)
    for name in ("dW", "dU", "db", "dc", "dh0", "y"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name))


@pytest.mark.parametrize("linear", [False, True])
def test_adjoint_gradient_method_dopri5(linear):
    # adjoint_gradient(method="dopri5") routes to the compiled adjoint and returns the scipy path's result type
    model, x, t_obs, y_obs, rng = _obs_problem(24, m=5, kind="linear", leak=0.3,
                                               activation="identity" if linear else "tanh")
    if linear:
        model = dm.LinearRNN(np.array(model.W) - 0.3 * np.eye(model.hidden), np.array(model.U), np.array(model.c))
    w = rng.uniform(0.5, 2.0, size=t_obs.size)
    ref = dm.adjoint_gradient(model, x, t_obs, y_obs, weights=w, method="DOP853", rtol=1e-12, atol=1e-14)
    res = dm.adjoint_gradient(model, x, t_obs, y_obs, weights=w, method="dopri5", rtol=1e-10, atol=1e-12)
    assert type(res.grad) is type(ref.grad)
    assert res.flat.shape == ref.flat.shape
    assert np.linalg.norm(res.flat - ref.flat) / np.linalg.norm(ref.flat) < 1e-7
    assert res.loss == pytest.approx(ref.loss, rel=1e-8)
    np.testing.assert_allclose(res.dh0, ref.dh0, rtol=1e-7, atol=1e-10)
    assert res.nfev_backward > 0 and res.n_quadrature_nodes == res.nfev_backward
    with pytest.raises(ValueError, match=r"`running_target` with method='dopri5' needs adjoint='discrete'"):
        dm.adjoint_gradient(model, x, t_obs, y_obs, method="dopri5", adjoint="continuous",
                            running_target=lambda t: 0 * t)


@pytest.mark.parametrize("kind,leak", [("constant", 0.0), ("linear", 0.3)])
def test_compiled_running_loss_matches_scipy_adjoint(kind, leak):
    # rho/2 int (y - r)^2 dt on the discrete adjoint: against scipy's continuous adjoint (DOP853, its own
    # Gauss-Legendre quadrature of the running loss) at tight tolerances, and against complex-step
    # differentiation of the replayed steps, whose loss now includes the same quadrature
    model, x, t_obs, y_obs, rng = _obs_problem(41, m=4, kind=kind, leak=leak)
    target = lambda t: 0.5 * np.sin(1.3 * t)  # noqa: E731
    ref = dm.adjoint_gradient(model, x, t_obs, y_obs, running_target=target, running_weight=0.7, method="DOP853",
                              rtol=1e-12, atol=1e-14)
    res = dm.adjoint_gradient(model, x, t_obs, y_obs, running_target=target, running_weight=0.7, rtol=1e-11,
                              atol=1e-13)
    assert res.method == "dopri5" and res.adjoint == "discrete"
    assert res.loss == pytest.approx(ref.loss, rel=1e-9)
    assert np.linalg.norm(res.flat - ref.flat) / np.linalg.norm(ref.flat) < 1e-8
    np.testing.assert_allclose(res.dh0, ref.dh0, rtol=1e-8, atol=1e-11)
    without = dm.adjoint_gradient(model, x, t_obs, y_obs, rtol=1e-11, atol=1e-13)
    assert np.linalg.norm(without.flat - ref.flat) > 1e3 * np.linalg.norm(res.flat - ref.flat)  # the term counts
    with pytest.raises(ValueError, match=r"`running_target` must return finite values"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, running_target=lambda t: np.full_like(t, np.nan))
    with pytest.raises(ValueError, match=r"`running_target` needs `adjoint` = 'discrete'"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, running_target=target, adjoint="continuous")
    with pytest.raises(TypeError, match=r"`running_target` must be callable"):
        ctrnn_loss_gradient(model, x, t_obs, y_obs, running_target=3.0)


# ---------------------------------------------------------------------------
# The fields with activations.tanh_block and the cached segment tables (issue 13, third round)
# ---------------------------------------------------------------------------

def test_compiled_tanh_field_matches_numpy_field():
    # the compiled field and adjoint field (tanh through activations.tanh_block) against numpy, to a few ulp
    from dynmem.ode.field import adjoint_rhs as _adj_rhs, field_from_z as _field_from_z, matvec as _matvec

    rng = np.random.default_rng(3)
    m = 32
    W = rng.standard_normal((m, m)) * 2.0
    p, q, h = rng.standard_normal(m), rng.standard_normal(m), rng.standard_normal(m)
    out, v = np.empty(m), np.empty(m)
    TS, D = np.empty((1, m)), np.empty(m)
    _matvec(W, h, out)
    out += p + 0.3 * q
    _field_from_z(np.int64(0), 0.7, TS, out, h, out, D, True)  # the forward's field from its pre-activation
    z = W @ h + p + 0.3 * q
    np.testing.assert_allclose(D, 1.0 - np.tanh(z) ** 2, rtol=0, atol=1e-14 * (1 + np.abs(W).sum(axis=1).max()))
    tol = 1e-14 * (1 + np.abs(W).sum(axis=1).max() * np.abs(h).max())  # a few ulp of the summands of z
    np.testing.assert_allclose(out, np.tanh(z) - 0.7 * h, rtol=0, atol=tol)
    a = rng.standard_normal(m)
    _adj_rhs(W, np.int64(0), 0.7, TS, p, q, 0.3, h, a, out, v)
    s = 1.0 - np.tanh(z) ** 2
    np.testing.assert_allclose(v, s * a, rtol=0, atol=tol * np.abs(a).max())
    np.testing.assert_allclose(out, 0.7 * a - W.T @ (s * a), rtol=0, atol=tol * np.abs(a).max() * np.abs(W).sum(axis=0).max())


def test_path_tables_cached_per_path_and_span():
    from dynmem.ode.solve import PATH_TABLES as _PATH_TABLES, path_tables as _path_tables

    model, x, _ = _problem(21)
    te = np.linspace(0.5, 5.5, 9)
    first = solve_ctrnn(model, x, te, rtol=1e-9, atol=1e-11)
    assert x in _PATH_TABLES
    again = solve_ctrnn(model, x, te, rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(again.h, first.h)
    # an identical but distinct path object (fresh tables) gives the same numbers
    twin = PiecewiseConstant(x.knots, x.values)
    np.testing.assert_array_equal(solve_ctrnn(model, twin, te, rtol=1e-9, atol=1e-11).h, first.h)
    # other spans of the same path: their own tables, checked against solve_ivp
    for t0, t1 in ((0.25, 4.0), (1.0, 6.0), (3.0, 3.0)):
        tt = np.linspace(t0, t1, 5) if t1 > t0 else np.array([t0])
        res = solve_ctrnn(model, x, tt, t0=t0, rtol=1e-10, atol=1e-12)
        ref = _scipy_reference(model, x, tt, np.zeros(model.hidden), t0)
        assert _relerr(res.h[0], ref) < 1e-7 if t1 > t0 else np.all(res.h[0] == 0.0)
        breaks, Xa, Xs = _path_tables(x, t0, t1)
        assert breaks[0] == t0 and breaks[-1] == t1
        if t1 > t0:
            inner = x.knots[(x.knots > t0) & (x.knots < t1)]
            np.testing.assert_array_equal(breaks[1:-1], inner)
            np.testing.assert_array_equal(Xa, x(breaks[:-1]))  # piecewise constant: the value on each piece
    # with observation times: the backward grid of the adjoint holds them too
    bb, _, _ = _path_tables(x, 0.0, 5.5, te)
    assert set(te[te > 0]).issubset(set(bb)) and np.all(np.diff(bb) > 0)
