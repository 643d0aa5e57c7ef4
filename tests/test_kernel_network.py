"""dynmem.kernel.network: RTRL vs finite differences, paired initialisation, training, validation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynmem.kernel import HistoryTarget, LSSNetwork, MarkovChain, ParamLaw, train_online
from dynmem.kernel.network import _State, _Mutable, _train_kernel

RECS = ("diagonal", "mean-field")


def _fd_gradient(net, X, h):
    """Central differences of the output on the history X w.r.t. every parameter (N, d + 3)."""
    theta = net.flatten()
    g = np.empty_like(theta)
    for idx in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[idx] += h
        tm[idx] -= h
        fp = net.unflatten(tp).output(X[None])[0]
        fm = net.unflatten(tm).output(X[None])[0]
        g[idx] = (fp - fm) / (2 * h)
    return g


@given(N=st.integers(2, 5), d=st.integers(1, 3), L=st.integers(1, 6), rec=st.sampled_from(RECS),
       beta=st.sampled_from([0.5, 0.75]), seed=st.integers(0, 2**31 - 1))
def test_rtrl_gradient_matches_central_differences(N, d, L, rec, beta, seed):
    rng = np.random.default_rng(seed)
    net = LSSNetwork.initialise(N, d, paired=False, beta=beta, recurrence=rec, law=ParamLaw(b_max=0.8), rng=rng)
    X = rng.standard_normal((L, d))
    f, g = net.rtrl(X)
    assert f == pytest.approx(net.output(X[None])[0], abs=1e-14)
    scale = 1.0 + np.max(np.abs(g))
    errs = {h: np.max(np.abs(_fd_gradient(net, X, h) - g)) for h in (1e-3, 1e-4, 1e-5)}
    # central differences: O(h^2) truncation (tanh''' is bounded) plus O(eps / h) rounding
    assert errs[1e-3] <= 1e-4 * scale, errs
    assert min(errs.values()) <= 1e-8 * scale, errs
    if errs[1e-3] > 1e-8 * scale:  # truncation-dominated: the error must fall like h^2
        assert errs[1e-4] <= errs[1e-3] / 20, errs


@pytest.mark.parametrize("rec", RECS)
def test_unit_gradients_are_the_rtrl_gradient_and_blocks_agree(rec):
    rng = np.random.default_rng(1)
    net = LSSNetwork.initialise(8, 2, paired=False, recurrence=rec, rng=rng)
    H = rng.standard_normal((5, 4, 2))
    J = net.unit_gradients(H)
    for j in range(5):
        f, g = net.rtrl(H[j])
        np.testing.assert_allclose(J[j] * net.scale, g, atol=1e-15, rtol=1e-12)
    np.testing.assert_allclose(net.unit_gradients(H, units=slice(3, 6)), J[:, 3:6], atol=0, rtol=0)


@pytest.mark.parametrize("rec", RECS)
def test_prefix_tree_output_equals_running_each_history(rec):
    chain = MarkovChain([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]], [-1.0, 0.5, 2.0])
    g = chain.histories(4)
    net = LSSNetwork.initialise(12, 1, paired=False, recurrence=rec, rng=2)
    out = net.output(g)
    np.testing.assert_allclose(out, [net.rtrl(x)[0] for x in g.values], atol=1e-14)


@pytest.mark.parametrize("rec", RECS)
def test_fixed_point_start_is_the_constant_infinite_past(rec):
    """A history (x0, ..., x0, x1) with many leading x0 equals (x0, x1): the state starts at the fixed point."""
    net = LSSNetwork.initialise(10, 1, paired=False, recurrence=rec, law=ParamLaw(b_max=0.9), rng=3)
    short = np.array([[[0.7], [-1.2]]])
    long = np.array([[[0.7]] * 300 + [[-1.2]]])
    assert net.output(short)[0] == pytest.approx(net.output(long)[0], abs=1e-13)


@pytest.mark.parametrize("rec", RECS)
def test_paired_initialisation_output_is_exactly_zero(rec):
    rng = np.random.default_rng(4)
    net = LSSNetwork.initialise(10, 2, paired=True, recurrence=rec, rng=rng)
    np.testing.assert_array_equal(net.c[:5], -net.c[5:])
    np.testing.assert_array_equal(net.W[:5], net.W[5:])
    assert np.all(net.output(rng.standard_normal((20, 5, 2))) == 0.0)
    chain = MarkovChain([[0.6, 0.4], [0.3, 0.7]], [[1.0, 0.0], [0.0, -1.0]])
    res = train_online(net, chain, HistoryTarget.lag(1), t_final=1.0, record_times=[0.0, 1.0],
                       histories=chain.histories(3), rng=0)
    assert res.success and np.all(res.h[0] == 0.0) and res.drift[0] == 0.0
    assert np.any(res.h[1] != 0.0) and res.drift[1] > 0


@pytest.mark.parametrize("rec", RECS)
def test_one_training_step_is_sgd_with_the_rtrl_gradient(rec):
    rng = np.random.default_rng(5)
    net = LSSNetwork.initialise(6, 2, paired=False, beta=0.6, recurrence=rec, rng=rng)
    X = rng.standard_normal((4, 2))
    y = 0.3
    f, g = net.rtrl(X)
    lr = net.learning_rate(0.7)
    st_ = _State.at_fixed_point(net, X[0])
    m = _Mutable(net)
    K = X.shape[0] - 1
    lrs = np.zeros(K)
    lrs[-1] = lr
    errs = np.empty(K)
    fail = _train_kernel(X[1:], np.full(K, y), lrs, m.c, m.W, m.b, m.u, st_.s, st_.D, st_.m, net._mode(), net._code(),
                         net.scale, errs, np.empty((6, 5)))
    assert fail == -1 and errs[-1] == pytest.approx(f - y, abs=1e-14)
    np.testing.assert_allclose(m.flatten(), net.flatten() - lr * (f - y) * g, atol=1e-14)
    assert lr == pytest.approx(0.7 / 6 ** (2 - 2 * 0.6))


def test_training_is_reproducible_and_records_what_was_asked():
    chain = MarkovChain([[0.7, 0.3], [0.4, 0.6]], [-1.0, 1.0])
    net = LSSNetwork.initialise(20, 1, rng=0)
    H = chain.histories(4)
    kw = dict(t_final=2.0, record_times=[0.0, 0.5, 2.0], histories=H, rng=9)
    a = train_online(net, chain, HistoryTarget.product([0, 1]), **kw)
    b = train_online(net, chain, HistoryTarget.product([0, 1]), **kw)
    np.testing.assert_array_equal(a.h, b.h)
    assert a.h.shape == (3, H.n) and list(a.steps) == [0, 10, 40]
    # drift = sup-norm of theta_t - theta_0: 0 at t = 0, recomputed from the trained network at the end
    assert a.drift[0] == 0.0 and a.drift[1] > 0
    assert a.drift[-1] == np.max(np.abs(a.network.flatten() - net.flatten()))
    assert np.isnan(a.loss[0]) and np.all(np.isfinite(a.loss[1:]))
    np.testing.assert_allclose(a.h[-1], a.network.output(H), atol=1e-14)


def test_divergence_is_reported_not_returned():
    chain = MarkovChain([[0.7, 0.3], [0.4, 0.6]], [-1.0, 1.0])
    net = LSSNetwork.initialise(4, 1, rng=0)
    res = train_online(net, chain, HistoryTarget.lag(0), alpha=1e6, t_final=50.0, histories=chain.histories(2), rng=0)
    assert not res.success and res.network is None
    assert "diverged" in res.message or "contraction" in res.message or "non-finite" in res.message


def test_network_validation_messages():
    with pytest.raises(ValueError, match=r"`beta` must be in \[1/2, 1\).*got 1.0"):
        LSSNetwork.initialise(4, beta=1.0)
    with pytest.raises(ValueError, match=r"`beta` must be in \[1/2, 1\).*got 0.4"):
        LSSNetwork.initialise(4, beta=0.4)
    with pytest.raises(ValueError, match=r"contraction sup\|b\| \* sup\|sigma'\| < 1; got sup\|b\| = 1.5"):
        LSSNetwork(np.ones(2), np.ones((2, 1)), np.array([0.1, -1.5]), np.zeros(2))
    with pytest.raises(ValueError, match="`N` must be even when paired=True.*got 5"):
        LSSNetwork.initialise(5)
    with pytest.raises(ValueError, match="`recurrence` must be one of 'diagonal', 'mean-field'"):
        LSSNetwork.initialise(4, recurrence="dense")
    with pytest.raises(ValueError, match=r"`W` must have shape \(3, d\)"):
        LSSNetwork(np.ones(3), np.ones((2, 1)), np.zeros(3), np.zeros(3))
    net = LSSNetwork.initialise(4, 2, rng=0)
    with pytest.raises(ValueError, match="dimension d = 2"):
        net.output(np.zeros((3, 4, 1)))
    with pytest.raises(ValueError, match="`record_times` must be non-empty and lie in"):
        train_online(net, MarkovChain([[0.5, 0.5], [0.5, 0.5]], [[0, 1], [1, 0]]), HistoryTarget.lag(0),
                     t_final=1.0, record_times=[0.0, 2.0])
    with pytest.raises(ValueError, match="`chain` must produce values of dimension 2"):
        train_online(net, MarkovChain([[0.5, 0.5], [0.5, 0.5]]), HistoryTarget.lag(0))


def test_old_parameter_vector_spellings_warn_and_agree():
    net = LSSNetwork.initialise(6, 2, rng=0)
    with pytest.warns(DeprecationWarning, match=r"flat\(\) is deprecated; use flatten\(\)"):
        theta = net.flat()
    np.testing.assert_array_equal(theta, net.flatten())
    with pytest.warns(DeprecationWarning, match=r"from_flat.* is deprecated; use network.unflatten"):
        old = LSSNetwork.from_flat(2 * theta * 0.1, beta=net.beta, recurrence=net.recurrence)
    new = net.unflatten(2 * theta * 0.1)
    np.testing.assert_array_equal(old.flatten(), new.flatten())
    assert (old.beta, old.recurrence, old.activation) == (new.beta, new.recurrence, new.activation)
