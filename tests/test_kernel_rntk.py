"""The Recurrent Neural Tangent Kernel ([RNTK]; THEORY.md section 7): closed forms, quadrature,
hand-written Jacobians, and the infinite-width limit of the empirical NTK."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from dynmem.activations import get_kernel_activation
from dynmem.kernel import recurrent_ntk as R
from dynmem.kernel.recurrent_ntk import RNTKParams, empirical_rntk, init_params, rnn_jacobian, rnn_output, rntk


def _covariances(rng, k):
    """``k`` random 2x2 covariances (variances in [0.3, 3], |correlation| <= 0.95)."""
    a = rng.uniform(0.3, 3.0, k)
    b = rng.uniform(0.3, 3.0, k)
    rho = rng.uniform(-0.95, 0.95, k)
    return a, b, rho * np.sqrt(a * b)


SIG = dict(sigma_w=1.0, sigma_u=1.0, sigma_b=0.5, sigma_v=1.0)


# ---------------------------------------------------------------- Gaussian expectations


def test_erf_closed_forms_equal_gauss_hermite_spectrally():
    a, b, c = _covariances(np.random.default_rng(0), 50)
    K0, D0 = R.closed_form_expectations("erf", a, b, c)
    errs = []
    for q in (32, 64, 96, 128):
        K, D = R.gauss_hermite_expectations("erf", a, b, c, q)
        errs.append(max(np.abs(K - K0).max(), np.abs(D - D0).max()))
    # erf is entire: Gauss-Hermite converges geometrically (measured: x 1/4000 per 32 more nodes
    # for variances <= 3, |rho| <= 0.95) down to rounding level at 128 nodes.
    for e0, e1 in zip(errs[:2], errs[1:3]):
        assert e1 < 1e-3 * e0
    assert errs[-1] < 1e-13


def test_relu_closed_forms_are_the_limit_of_gauss_hermite():
    """At a kink Gauss-Hermite converges only algebraically.

    Near u = 0 the q nodes are ~ pi / sqrt(2 q) apart, so the rule misplaces a kink
    of phi by O(h^2) = O(1/q) (arc-cosine kernel of degree 1) and a jump of phi' by
    O(h) = O(q^-1/2) (degree 0).  The closed forms are the limit: the errors fall at
    those orders over 32..256 nodes.  For the kink the error has a smooth expansion
    in 1/q, so one Richardson step removes most of what is left (the jump's error
    oscillates with the node positions, so there it does not).
    """
    a, b, c = _covariances(np.random.default_rng(1), 40)
    K0, D0 = R.closed_form_expectations("relu", a, b, c)
    qs = np.array([32, 64, 128, 256])
    res = [R.gauss_hermite_expectations("relu", a, b, c, int(q)) for q in qs]
    for which, ref, p, last_max in ((0, K0, 1.0, 1e-3), (1, D0, 0.5, 3e-2)):
        err = np.array([np.abs(r[which] - ref).max() for r in res])
        fit = scipy.stats.linregress(np.log(qs), np.log(err))
        assert abs(fit.slope + p) < 0.3, (which, err)
        assert err[-1] < last_max
        if which == 0:
            rich = 2 * res[-1][0] - res[-2][0]
            assert np.abs(rich - ref).max() < 0.25 * err[-1]


def test_identity_quadrature_is_exact():
    a, b, c = _covariances(np.random.default_rng(2), 20)
    K, D = R.gauss_hermite_expectations("identity", a, b, c, 8)
    np.testing.assert_allclose(K, c, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(D, 1.0, rtol=1e-14)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_expectations_match_monte_carlo(act):
    rng = np.random.default_rng(3)
    n = 200_000
    spec = get_kernel_activation(act)
    fn, deriv, closed = spec.fn, spec.deriv, spec.gaussian_closed_form
    for a, b, c in ((1.0, 1.0, 0.5), (2.5, 0.4, -0.7), (0.8, 1.7, 1.1)):
        L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
        z = rng.standard_normal((n, 2)) @ L.T
        if closed:
            K, D = R.closed_form_expectations(act, np.array(a), np.array(b), np.array(c))
        else:
            K, D = R.gauss_hermite_expectations(act, np.array([a]), np.array([b]), np.array([c]), 96)
        for value, samples in ((K, fn(z[:, 0]) * fn(z[:, 1])), (D, deriv(z[:, 0]) * deriv(z[:, 1]))):
            se = samples.std() / np.sqrt(n)
            assert abs(float(np.squeeze(value)) - samples.mean()) < 5 * se


# ---------------------------------------------------------------- the analytic kernel


def _seqs(seed, n=5, T=4, d=2):
    return np.random.default_rng(seed).standard_normal((n, T, d))


def test_rntk_erf_closed_form_equals_quadrature_through_the_recursion():
    X = _seqs(4)
    a = rntk(X, activation="erf", **SIG)
    b = rntk(X, activation="erf", method="quadrature", nodes=200, **SIG)
    assert a.method == "closed-form" and a.nodes is None and b.method == "quadrature" and b.nodes == 200
    # Gauss-Hermite converges geometrically for erf, but more slowly as the pre-activation
    # variances Sigma^(t,t) (up to ~6 here) grow: measured 3e-3, 1e-4, 3e-6, 1e-9 at 64, 96, 128, 200 nodes.
    for x, y in ((a.ntk, b.ntk), (a.nngp, b.nngp)):
        assert np.abs(x - y).max() < 1e-8 * np.abs(x).max()


def test_rntk_relu_closed_form_near_quadrature_through_the_recursion():
    X = _seqs(5)
    a = rntk(X, activation="relu", **SIG).ntk
    err = [np.abs(rntk(X, activation="relu", method="quadrature", nodes=q, **SIG).ntk - a).max() / np.abs(a).max()
           for q in (64, 256)]
    # O(1/q) per expectation (test above), accumulated over T = 4 steps.
    assert err[1] < 0.6 * err[0] and err[1] < 5e-3


def test_rntk_single_step_is_the_one_hidden_layer_ntk():
    X = _seqs(6, T=1, d=3)
    s = 1.0 / 3 * np.einsum("ad,bd->ab", X[:, 0], X[:, 0]) + 0.25
    q = np.diag(s)
    K, D = R.closed_form_expectations("relu", q[:, None], q[None, :], s)
    res = rntk(X, activation="relu", **SIG)
    np.testing.assert_allclose(res.ntk, K + D * s, rtol=1e-13)
    np.testing.assert_allclose(res.nngp, K, rtol=1e-13)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_rntk_is_symmetric_positive_semidefinite(act):
    X = _seqs(7, n=12, T=5)
    res = rntk(X, activation=act, nodes=128, **SIG)
    for M in (res.ntk, res.nngp):
        assert np.array_equal(M, M.T)
        assert np.linalg.eigvalsh(M).min() > -1e-12 * np.abs(M).max()
    # The cross-set path gives the same numbers: to rounding for the closed forms; for tanh up to
    # the quadrature's asymmetry in (z, z') (the symmetric path averages the two orders), which is
    # below its error at 128 nodes (~1e-4 for these variances, see the erf test).
    cross = rntk(X[:5], X[5:], activation=act, nodes=128, **SIG).ntk
    tol = 1e-13 if act != "tanh" else 1e-3
    assert np.abs(cross - res.ntk[:5, 5:]).max() < tol * np.abs(res.ntk).max()


def test_rntk_sequences_of_different_lengths_are_aligned_at_their_ends():
    rng = np.random.default_rng(8)
    seqs = [rng.standard_normal((T, 2)) for T in (2, 5, 3)]
    full = rntk(seqs, activation="erf", **SIG).ntk
    for i in range(3):
        for j in range(3):
            assert np.isclose(rntk(seqs[i], seqs[j], activation="erf", **SIG).ntk[0, 0], full[i, j], rtol=1e-13)
    # the recursion only sees the last min(T, T') steps jointly; a prefix of the longer one enters
    # through its own variance only, so changing it changes the kernel
    other = [s.copy() for s in seqs]
    other[1][0] += 1.0
    assert not np.isclose(rntk(other, activation="erf", **SIG).ntk[0, 1], full[0, 1])


# ---------------------------------------------------------------- the finite network


@given(n=st.integers(1, 6), d=st.integers(1, 3), T=st.integers(1, 5), n_seq=st.integers(1, 3),
       act=st.sampled_from(["tanh", "erf", "identity"]), seed=st.integers(0, 2**32 - 1))
def test_jacobian_matches_central_differences(n, d, T, n_seq, act, seed):
    rng = np.random.default_rng(seed)
    sig = dict(sigma_w=rng.uniform(0.3, 1.5), sigma_u=rng.uniform(0.3, 1.5), sigma_b=rng.uniform(0.1, 1.0),
               sigma_v=rng.uniform(0.5, 1.5))
    p = init_params(n, d, activation=act, rng=rng, **sig)
    X = rng.standard_normal((n_seq, T, d))
    J = rnn_jacobian(p, X)
    theta = p.flatten()
    h = 1e-5
    Jfd = np.empty_like(J)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        Jfd[:, i] = (rnn_output(p.unflatten(theta + e), X) - rnn_output(p.unflatten(theta - e), X)) / (2 * h)
    # central differences: truncation ~ h^2 |f'''| / 6, rounding ~ eps |f| / h (|f|, |f'''| = O(1) here)
    scale = max(1.0, np.abs(J).max())
    assert np.abs(J - Jfd).max() <= 50 * (h * h + 2.2e-16 / h) * scale


def test_gram_and_jacobian_routes_agree_with_ragged_and_cross_sets(monkeypatch):
    rng = np.random.default_rng(9)
    p = init_params(7, 2, activation="tanh", rng=rng, **SIG)
    A = [rng.standard_normal((T, 2)) for T in (3, 6, 1)]
    B = [rng.standard_normal((T, 2)) for T in (4, 2)]
    Kj = empirical_rntk(p, A, B, method="jacobian")
    Kg = empirical_rntk(p, A, B, method="gram")
    np.testing.assert_allclose(Kg, Kj, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(R, "_GRAM_BLOCK", 64)  # blocks of one sequence: the block loop's edges
    np.testing.assert_allclose(empirical_rntk(p, A, B, method="gram"), Kg, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(empirical_rntk(p, A + B, method="gram"), empirical_rntk(p, A + B, method="jacobian"),
                               rtol=1e-12, atol=1e-14)
    monkeypatch.undo()
    np.testing.assert_allclose(Kj, rnn_jacobian(p, A) @ rnn_jacobian(p, B).T, rtol=1e-14, atol=1e-15)
    Ks = empirical_rntk(p, A + B)
    np.testing.assert_allclose(Ks[:3, 3:], Kj, rtol=1e-12, atol=1e-14)
    assert np.array_equal(Ks, Ks.T) and np.linalg.eigvalsh(Ks).min() > -1e-12 * np.abs(Ks).max()
    # a ragged set: each row equals the sequence on its own (the state is reset per sequence)
    for i, x in enumerate(A):
        np.testing.assert_allclose(rnn_jacobian(p, x)[0], rnn_jacobian(p, A)[i], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("act", ["tanh", "erf", "relu", "hardtanh"])
def test_blocked_forward_agrees_with_the_numba_kernel(act):
    """A batch of 40 x width 64 takes the numpy forward pass; one sequence takes the numba kernel."""
    rng = np.random.default_rng(13)
    p = init_params(64, 2, activation=act, rng=rng, **SIG)
    seqs = [rng.standard_normal((int(T), 2)) for T in rng.integers(1, 9, 40)]
    assert len(seqs) * p.width >= R._BLOCKED_MIN_SIZE > p.width
    J = rnn_jacobian(p, seqs)
    for i in (0, 7, 39):
        np.testing.assert_allclose(J[i], rnn_jacobian(p, seqs[i])[0], rtol=1e-12, atol=1e-14)


def test_init_params_draws_standard_normals_reproducibly():
    p = init_params(300, 4, rng=0)
    q = init_params(300, 4, rng=np.random.default_rng(0))
    assert np.array_equal(p.W, q.W) and np.array_equal(p.v, q.v)
    assert abs(p.W.mean()) < 5 / 300 and abs(p.W.std() - 1) < 5 / 300 / np.sqrt(2)
    assert p.size == 300 * 300 + 300 * 4 + 600 == p.flatten().size
    assert not p.W.flags.writeable


def _mean_empirical(X, act, n, k):
    Ks = np.stack([empirical_rntk(init_params(n, X.shape[2], activation=act, rng=s, **SIG), X) for s in range(k)])
    return Ks.mean(axis=0), Ks.std(axis=0, ddof=1) / np.sqrt(k)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_empirical_ntk_converges_to_rntk_width_1024(act):
    """Averaged over 16 initialisations at width 1024 (0.1 s).

    The empirical NTK fluctuates around the limit by O(n^-1/2) (measured: relative
    Frobenius error ~6% for one network at n = 1024, ~3% at n = 4096) with an O(1/n)
    bias, so the mean of 16 is within ~1.5-2% (measured 1.7% relu, 2.2% erf, 2.0% tanh).
    Checked two ways: below 4%, and below three standard errors estimated from the 16
    kernels themselves.
    """
    X = _seqs(10, n=6, T=5)
    A = rntk(X, activation=act, nodes=128, **SIG).ntk  # tanh: quadrature error ~1e-4 at 128 nodes
    mean, se = _mean_empirical(X, act, 1024, 16)
    err = np.linalg.norm(mean - A) / np.linalg.norm(A)
    assert err < 0.04
    assert np.linalg.norm(mean - A) < 3 * np.linalg.norm(se) + 1e-3 * np.linalg.norm(A)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "erf"])
def test_empirical_ntk_converges_to_rntk_width_4096(act):
    """Within 2% at width 4096, averaged over 32 initialisations (~15 s: drawing W dominates).

    One relu network is off by ~5% at this width (erf ~3%; the readout alone
    contributes sqrt(2/n) = 2.2% through the sum of v_i^2), so the standard error
    of the mean of 32 is ~1% (relu) / 0.6% (erf); measured errors 1.35% / 0.37%.
    """
    X = _seqs(10, n=6, T=5)
    A = rntk(X, activation=act, **SIG).ntk
    mean, se = _mean_empirical(X, act, 4096, 32)
    assert np.linalg.norm(mean - A) / np.linalg.norm(A) < 0.02
    assert np.linalg.norm(mean - A) < 3 * np.linalg.norm(se)


def test_nngp_is_the_output_covariance_at_initialisation():
    X = _seqs(11, n=3, T=3)
    res = rntk(X, activation="erf", **SIG)
    F = np.stack([rnn_output(init_params(128, 2, activation="erf", rng=s, **SIG), X) for s in range(1500)])
    C = F.T @ F / len(F)  # E f = 0 (v is centred)
    # Monte Carlo over 1500 networks: |C - nngp| ~ sqrt(2/1500) nngp ~ 3.7%; width bias O(1/n).
    assert np.abs(C - res.nngp).max() < 0.1 * np.abs(res.nngp).max()


# ---------------------------------------------------------------- validation


def test_validation_messages():
    X = _seqs(12)
    with pytest.raises(ValueError, match=r"`activation` must be one of .*'erf'.*got 'softplus'"):
        rntk(X, activation="softplus")
    with pytest.raises(TypeError, match=r"`activation` must be a name"):
        rntk(X, activation=np.tanh)
    for name in ("sigma_w", "sigma_u", "sigma_b", "sigma_v"):
        with pytest.raises(ValueError, match=rf"`{name}` must be a positive finite number; got 0.0"):
            rntk(X, **{name: 0.0})
        with pytest.raises(ValueError, match=rf"`{name}` must be a positive finite number; got -1.0"):
            init_params(3, 2, **{name: -1.0})
    with pytest.raises(ValueError, match=r"`X` must be finite; got nan at index \(1, 2, 0\)"):
        bad = X.copy()
        bad[1, 2, 0] = np.nan
        rntk(bad)
    with pytest.raises(ValueError, match=r"`X` must have 2 or 3 dimension\(s\); got shape \(5,\)"):
        rntk(np.ones(5))
    with pytest.raises(ValueError, match=r"`X2` must have input dimension d = 2 .*got d = 3"):
        rntk(X, np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match=r"`X` must have sequences of length T >= 1; got length 0"):
        rntk(np.ones((2, 0, 2)))
    with pytest.raises(ValueError, match=r"`X` must hold sequences of one input dimension d; got dimensions \[1, 2\]"):
        rntk([np.ones((3, 1)), np.ones((3, 2))])
    with pytest.raises(ValueError, match=r"`X\[1\]` must be finite"):
        rntk([np.ones((3, 2)), np.full((2, 2), np.inf)])
    with pytest.raises(ValueError, match=r"`method` 'closed-form' needs activation .*got activation 'tanh'"):
        rntk(X, activation="tanh", method="closed-form")
    with pytest.raises(ValueError, match=r"`nodes` must be <= 256 .*; got 300"):
        rntk(X, activation="tanh", nodes=300)
    with pytest.raises(TypeError, match=r"`nodes` must be an integer; got 10.0"):
        rntk(X, activation="tanh", nodes=10.0)
    with pytest.raises(ValueError, match=r"`n` must be >= 1; got 0"):
        init_params(0, 2)
    p = init_params(4, 2, rng=0)
    with pytest.raises(TypeError, match=r"`params` must be an RNTKParams"):
        empirical_rntk({"W": p.W}, X)
    with pytest.raises(ValueError, match=r"`X` must have input dimension d = 2 .*got d = 1"):
        empirical_rntk(p, np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match=r"`method` must be one of 'auto', 'jacobian', 'gram'; got 'svd'"):
        empirical_rntk(p, X, method="svd")
    with pytest.raises(ValueError, match=r"`U` must have shape \(4, d\) with d >= 1 to match W; got shape \(3, 2\)"):
        RNTKParams(p.W, np.ones((3, 2)), p.b, p.v)
    with pytest.raises(ValueError, match=r"`W` must be square; got shape \(4, 3\)"):
        RNTKParams(np.ones((4, 3)), p.U, p.b, p.v)
    with pytest.raises(ValueError, match=r"`theta` must have shape \(" + str(p.size) + r",\); got shape \(3,\)"):
        p.unflatten(np.ones(3))


# --------------------------------------------------------------------------------------------
# The tanh default: the adaptive rule against an independent 2-D quadrature (scipy.integrate)


def _scipy_expectation(F, G, a, b, c):
    """E[F(z) G(z')] for (z, z') ~ N(0, [[a, c], [c, b]]) by scipy.integrate.dblquad on the density."""
    from scipy import integrate

    det = a * b - c * c
    lim_a, lim_b = 12.0 * np.sqrt(a), 12.0 * np.sqrt(b)
    if det <= 1e-12 * a * b:  # z' = z (a self variance): a 1-D integral
        val, _ = integrate.quad(lambda u: F(u) * G(u) * np.exp(-0.5 * u * u / a) / np.sqrt(2.0 * np.pi * a),
                                -lim_a, lim_a, epsabs=1e-14, epsrel=1e-12, limit=200)
        return val

    def f(v, u):
        q = (b * u * u - 2.0 * c * u * v + a * v * v) / det
        return F(u) * G(v) * np.exp(-0.5 * q) / (2.0 * np.pi * np.sqrt(det))

    val, err = integrate.dblquad(f, -lim_a, lim_a, -lim_b, lim_b, epsabs=1e-14, epsrel=1e-12)
    return val


def _dtanh(z):
    return 1.0 - np.tanh(z) ** 2


@pytest.mark.parametrize("a, b, c", [(1.0, 1.5, 0.3), (6.0, 5.0, 4.0), (20.0, 18.0, -15.0)])
def test_adaptive_tanh_expectations_match_scipy_dblquad(a, b, c):
    K, D, nodes = R.adaptive_expectations("tanh", np.array([a]), np.array([b]), np.array([c]))
    K0 = _scipy_expectation(np.tanh, np.tanh, a, b, c)
    D0 = _scipy_expectation(_dtanh, _dtanh, a, b, c)
    assert abs(K[0] - K0) <= 1e-9 * abs(K0)
    assert abs(D[0] - D0) <= 1e-9 * abs(D0)
    # the fixed Gauss-Hermite rule of the old default is far off at the larger variances
    if a >= 6.0:
        Kg, Dg = R.gauss_hermite_expectations("tanh", np.array([a]), np.array([b]), np.array([c]), 64)
        assert abs(Dg[0] - D0) > 1e-5 * abs(D0)


def _ntk_by_scipy(X, sw, su, sb, sv):
    """The [RNTK] recursion for two length-T, d = 1 sequences with every expectation from dblquad."""
    T = X.shape[1]
    q = {}
    for i in range(2):  # self variances Sigma^(t,t)(x_i, x_i)
        Kp, qs = 0.0, []
        for t in range(T):
            s = sw * sw * Kp + su * su * X[i, t, 0] ** 2 + sb * sb
            qs.append(s)
            Kp = _scipy_expectation(np.tanh, np.tanh, s, s, s)
        q[i] = qs
    ntk = np.zeros((2, 2))
    for i, j in ((0, 0), (0, 1), (1, 1)):
        K = KdTh = 0.0
        for t in range(T):
            sig = sw * sw * K + su * su * X[i, t, 0] * X[j, t, 0] + sb * sb
            if i == j:
                sig = q[i][t]
            th = sig + sw * sw * KdTh
            K = _scipy_expectation(np.tanh, np.tanh, q[i][t], q[j][t], sig)
            Kd = _scipy_expectation(_dtanh, _dtanh, q[i][t], q[j][t], sig)
            KdTh = Kd * th
        ntk[i, j] = ntk[j, i] = sv * sv * (K + KdTh)
    return ntk


def test_tanh_rntk_default_is_accurate_to_1e6_against_scipy():
    X = np.array([[[1.2], [-0.7]], [[0.4], [1.5]]])
    sig = dict(sigma_w=1.5, sigma_u=1.5, sigma_b=0.5, sigma_v=1.0)  # variances up to ~6
    res = rntk(X, activation="tanh", **sig)
    ref = _ntk_by_scipy(X, 1.5, 1.5, 0.5, 1.0)
    rel = np.abs(res.ntk - ref).max() / np.abs(ref).max()
    assert rel <= 1e-6, rel
    assert res.method == "quadrature" and res.tol == R.DEFAULT_TOL and res.nodes >= 49


def test_tol_and_nodes_options_are_checked_and_reported():
    X = np.random.default_rng(0).standard_normal((3, 4, 1))
    with pytest.raises(ValueError, match=r"give `nodes` .* or `tol` .*not both; got nodes=64, tol=1e-06"):
        rntk(X, activation="tanh", nodes=64, tol=1e-6)
    with pytest.raises(ValueError, match=r"`tol` must be"):
        rntk(X, activation="tanh", tol=-1.0)
    fixed = rntk(X, activation="tanh", nodes=64)
    assert fixed.nodes == 64 and fixed.tol is None
    kink = rntk(X, activation="hardtanh")  # a kink: the fixed Gauss-Hermite rule stays the default
    assert kink.nodes == 64 and kink.tol is None
    loose = rntk(X, activation="tanh", tol=1e-3)
    tight = rntk(X, activation="tanh", tol=1e-12)
    assert loose.nodes <= tight.nodes and loose.tol == 1e-3
    assert np.abs(loose.ntk - tight.ntk).max() <= 1e-3 * np.abs(tight.ntk).max()


def test_adaptive_rule_warns_when_the_tolerance_is_out_of_reach():
    with pytest.warns(RuntimeWarning, match=r"did not reach tol = 1e-15 with 1025 trapezoid nodes"):
        K, D, nodes = R.adaptive_expectations("tanh", np.array([1e5]), np.array([1e5]), np.array([0.5e5]), tol=1e-15)
    assert nodes == 1025 and np.isfinite(K).all() and np.isfinite(D).all()


def test_the_retired_module_path_is_gone_and_the_function_keeps_its_name():
    # the callable-module shim dynmem.kernel.rntk was retired: the name is the function's alone
    import importlib

    import dynmem.kernel as k
    import dynmem.kernel.recurrent_ntk as new

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("dynmem.kernel.rntk")
    assert k.rntk is new.rntk and callable(k.rntk)
    X = np.ones((2, 3, 1))
    assert np.array_equal(k.rntk(X).ntk, new.rntk(X).ntk)


def test_rntk_params_old_vector_spellings_warn_and_agree():
    p = init_params(4, 2, rng=1)
    with pytest.warns(DeprecationWarning, match=r"flat\(\) is deprecated"):
        theta = p.flat()
    np.testing.assert_array_equal(theta, p.flatten())
    with pytest.warns(DeprecationWarning, match=r"with_flat\(theta\) is deprecated; use unflatten"):
        q = p.with_flat(0.5 * theta)
    np.testing.assert_array_equal(q.flatten(), p.unflatten(0.5 * theta).flatten())
