"""dynmem.kernel.chains: stationary laws, mixing, histories, targets, validation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmem.kernel import AR1Chain, HistoryTarget, MarkovChain


@st.composite
def positive_chains(draw, max_states=4):
    m = draw(st.integers(2, max_states))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.05, 1.0, (m, m))
    return P / P.sum(axis=1, keepdims=True)


@settings(max_examples=8)
@given(positive_chains(), st.integers(0, 2**31 - 1))
def test_stationary_law_matches_long_simulation_within_clt(P, seed):
    chain = MarkovChain(P)
    pi = chain.stationary()
    np.testing.assert_allclose(pi @ chain.P, pi, atol=1e-14)
    assert abs(pi.sum() - 1) < 1e-14
    n = 200_000
    idx = chain.sample_indices(n, rng=seed)
    freq = np.bincount(idx, minlength=chain.n_states) / n
    for j in range(chain.n_states):
        # CLT for the ergodic average of 1{X = j}: sd = sqrt(sigma^2(f) / n); 5 sd is a ~1e-6 false alarm.
        sd = math.sqrt(chain.asymptotic_variance(np.eye(chain.n_states)[j]) / n)
        assert abs(freq[j] - pi[j]) <= 5 * sd + 1e-12, (j, freq[j], pi[j], sd)


def test_two_state_closed_forms():
    a, b = 0.3, 0.4
    chain = MarkovChain([[1 - a, a], [b, 1 - b]], [-1.0, 1.0])
    np.testing.assert_allclose(chain.stationary(), [b / (a + b), a / (a + b)], rtol=1e-14)
    lam = 1 - a - b
    assert chain.slem() == pytest.approx(abs(lam), rel=1e-12)
    assert chain.relaxation_time() == pytest.approx(1 / (1 - abs(lam)))
    p0, p1 = chain.stationary()
    # sigma^2 of the indicator of a state: pi0 pi1 (1 + lambda) / (1 - lambda)
    assert chain.asymptotic_variance([0.0, 1.0]) == pytest.approx(p0 * p1 * (1 + lam) / (1 - lam), rel=1e-12)
    tv = chain.tv_to_stationarity(10)
    assert tv[0] == pytest.approx(max(p0, p1))
    np.testing.assert_allclose(tv[1:] / tv[:-1], abs(lam), rtol=1e-9)  # two states: d(k) = d(0) |lambda|^k
    assert chain.mixing_time(0.01) == int(np.argmax(tv <= 0.01))
    assert chain.is_reversible()  # every two-state chain is
    assert chain.mixing_time(0.01) <= chain.spectral_mixing_bound(0.01)


@settings(max_examples=10)
@given(positive_chains(max_states=5))
def test_spectral_bound_dominates_the_exact_mixing_time_for_reversible_chains(P):
    # symmetrise into a reversible chain: P_rev = (F + F^T) / 2 row-normalised, F = diag(pi) P
    pi = MarkovChain(P).stationary()
    F = pi[:, None] * P
    S = 0.5 * (F + F.T)
    chain = MarkovChain(S / S.sum(axis=1, keepdims=True))
    assert chain.is_reversible(tol=1e-12)
    for eps in (0.25, 0.01):
        assert chain.mixing_time(eps) <= chain.spectral_mixing_bound(eps)


def test_histories_are_exact_and_match_sampled_frequencies():
    chain = MarkovChain([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.6, 0.0, 0.4]], [[0.0, 1.0], [1.0, 0.0], [-1.0, -1.0]])
    g = chain.histories(4)
    assert g.exact and g.values.shape == (g.n, 4, 2) and g.index.shape == (g.n, 4)
    assert np.all(g.weights > 0) and g.weights.sum() == pytest.approx(1.0, abs=1e-14)
    # impossible transitions (P = 0) are left out: the feasible paths are counted by the adjacency matrix
    adj = (chain.P > 0).astype(int)
    assert g.n == int(np.ones(3) @ np.linalg.matrix_power(adj, 3) @ np.ones(3)) < 3**4
    pi = chain.stationary()
    for row, w in zip(g.index, g.weights):
        assert w == pytest.approx(pi[row[0]] * np.prod(chain.P[row[:-1], row[1:]]), rel=1e-12)
    np.testing.assert_array_equal(g.values, chain.states[g.index])
    n = 100_000
    s = chain.history_sample(4, n, rng=3)
    keys = {tuple(r): i for i, r in enumerate(g.index)}
    counts = np.zeros(g.n)
    for r in s.index:
        counts[keys[tuple(r)]] += 1  # every sampled history is a feasible one
    sd = np.sqrt(g.weights * (1 - g.weights) / n)  # independent samples: binomial
    assert np.all(np.abs(counts / n - g.weights) <= 5 * sd)


def test_stream_is_a_path_of_the_chain():
    chain = MarkovChain([[0.9, 0.1], [0.0 + 0.5, 0.5]], [2.0, 3.0])
    x = chain.sample(1000, rng=1)
    assert x.shape == (1000, 1) and set(np.unique(x)) <= {2.0, 3.0}
    np.testing.assert_array_equal(chain.sample(50, rng=7), chain.sample(50, rng=7))
    assert chain.sample_indices(5, start=1, rng=0)[0] == 1


@pytest.mark.parametrize("P, match", [
    ([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], "square"),
    ([[1.2, -0.2], [0.5, 0.5]], "non-negative.*P\\[0, 1\\] = -0.2"),
    ([[0.5, 0.6], [0.5, 0.5]], "rows summing to 1.*row 0 summing to 1.1"),
    ([[1.0, 0.0], [0.5, 0.5]], "irreducible.*2 strongly connected"),
    ([[0.0, 1.0], [1.0, 0.0]], "aperiodic.*period 2"),
    ([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], "aperiodic.*period 3"),
])
def test_chain_validation_names_rule_and_value(P, match):
    with pytest.raises(ValueError, match=match):
        MarkovChain(P)


def test_other_validation_messages():
    with pytest.raises(ValueError, match="`states` must have one value per state"):
        MarkovChain([[0.5, 0.5], [0.5, 0.5]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"`phi` must satisfy \|phi\| < 1.*got 1.0"):
        AR1Chain(1.0)
    with pytest.raises(ValueError, match="`sigma` must be a positive"):
        AR1Chain(0.5, -1.0)
    with pytest.raises(ValueError, match="`eps` must be in \\(0, 1\\)"):
        MarkovChain([[0.5, 0.5], [0.5, 0.5]]).mixing_time(1.5)
    with pytest.raises(ValueError, match="`L` must be >= 1"):
        MarkovChain([[0.5, 0.5], [0.5, 0.5]]).histories(0)
    bad = HistoryTarget.from_callable(lambda H: H[:, 0, :], 2)
    with pytest.raises(ValueError, match="`fn` must return shape"):
        bad(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="length >= 3"):
        HistoryTarget.lag(2)(np.zeros((3, 2, 1)))


def test_ar1_stationary_law_and_histories():
    phi, sigma = 0.6, 0.5
    chain = AR1Chain(phi, sigma)
    n = 200_000
    x = chain.sample(n, rng=0)[:, 0]
    var = sigma**2 / (1 - phi**2)
    # CLT for the mean of an AR(1): asymptotic variance var (1 + phi) / (1 - phi)
    assert abs(x.mean()) <= 5 * math.sqrt(var * (1 + phi) / (1 - phi) / n)
    assert x.var() == pytest.approx(var, rel=0.03)
    h = chain.history_sample(3, 50_000, rng=1)
    assert h.values.shape == (50_000, 3, 1) and not h.exact
    c = np.corrcoef(h.values[:, 0, 0], h.values[:, 2, 0])[0, 1]
    assert c == pytest.approx(phi**2, abs=5 / math.sqrt(50_000))


def test_targets_read_the_recent_past_oldest_first():
    H = np.array([[[1.0], [2.0], [3.0]], [[-1.0], [0.5], [4.0]]])  # oldest first: H[:, -1] is X_k
    np.testing.assert_array_equal(HistoryTarget.lag(0)(H), [3.0, 4.0])
    np.testing.assert_array_equal(HistoryTarget.lag(2)(H), [1.0, -1.0])
    np.testing.assert_allclose(HistoryTarget.linear([1.0, 10.0])(H), [23.0, 9.0])
    np.testing.assert_allclose(HistoryTarget.product([0, 2])(H), [3.0, -4.0])
    np.testing.assert_allclose(HistoryTarget.tanh_linear([0.1])(H), np.tanh([0.3, 0.4]))
    X = np.arange(6.0)[:, None]
    y = HistoryTarget.linear([1.0, -1.0]).stream(X)
    assert np.isnan(y[0]) and np.all(y[1:] == 1.0)
    noisy = HistoryTarget.lag(0, noise_std=0.1).stream(np.zeros((20_000, 1)), rng=0)
    assert noisy.std() == pytest.approx(0.1, rel=0.05)
