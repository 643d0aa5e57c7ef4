"""Tests for dynmem.reparam: derivatives, stability bounds, matrix forms, chain rules.

Tolerances: central differences with step h have truncation error ~ h^2 |f'''| / 6
and rounding ~ eps |f| / h; at h = 1e-5 both are below 1e-9 for the |w| <= 3
ranges drawn here, so derivatives are compared at rtol 1e-7.  Quadrature is
run at epsrel 1e-10 and compared at 1e-8.
"""

import math

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from dynmem.reparam import (
    REPARAMS,
    Reparam,
    diagonal_W,
    expm_hurwitz_margin,
    expm_W,
    get_reparam,
    grad_M_expm,
    grad_w_diagonal,
    grad_w_from_grad_W,
    grad_w_orthogonal,
    orthogonal_W,
    stability_functional,
    sup_stability_functional,
)
from dynmem.spectra import spectral_abscissa

ws = st.floats(-3.0, 3.0, allow_nan=False)
betas = st.floats(0.0, 1.0, allow_nan=False)
positive = st.floats(0.1, 5.0, allow_nan=False)


def _central(fn, w, h=1e-5):
    return (fn(w + h) - fn(w - h)) / (2 * h)


def _rng_orthogonal(m, rng):
    Q, R = np.linalg.qr(rng.standard_normal((m, m)))
    return Q * np.sign(np.diag(R))


# -- scalar maps ----------------------------------------------------------------


@pytest.mark.parametrize("name", REPARAMS)
@given(w=ws)
def test_fprime_matches_central_differences(name, w):
    r = get_reparam(name)
    assert r.fprime(w) == pytest.approx(_central(r.f, w), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("name", ["exp", "best"])
def test_fprime_matches_complex_step(name):
    # complex step: Im f(w + i h) / h is exact to rounding for analytic f
    # (formulas restated here independently of the module).
    f = {"exp": lambda z: -np.exp(z), "best": lambda z: -1.0 / (z * z + 0.5)}[name]
    r = get_reparam(name)
    w = np.linspace(-2.5, 2.5, 11)
    assert np.allclose(r.fprime(w), np.imag(f(w + 1e-30j)) / 1e-30, rtol=1e-14, atol=0)
    assert np.allclose(r.f(w), f(w), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", ["exp", "softplus", "best", "best_discrete"])
def test_stable_reparams_are_stable(name):
    r = get_reparam(name)
    w = np.linspace(-30, 30, 601)
    if r.discrete:
        assert np.all(np.abs(r.f(w)) <= 1.0)  # b = 0.5: |f| <= 1 with equality only at w = 0
        assert np.all(r.rate(w) < 0)
    else:
        assert np.all(r.f(w) < 0)


@pytest.mark.parametrize("name", REPARAMS)
@given(w=st.floats(-3.0, 3.0))
def test_inverse_roundtrip(name, w):
    r = get_reparam(name)
    if name.startswith("best"):
        w = abs(w)  # the branch w >= 0
    assert r.inverse(r.f(w)) == pytest.approx(w, rel=1e-8, abs=1e-7)


def test_inverse_out_of_range_names_lam():
    with pytest.raises(ValueError, match=r"`lam` must lie in \(-inf, 0\).*got 0.5"):
        get_reparam("exp").inverse(0.5)
    with pytest.raises(ValueError, match=r"`lam` must lie in \[-1/b, 0\)"):
        get_reparam("best", b=0.5).inverse(-3.0)


@given(w=ws, a=positive, b=positive)
def test_best_gradient_scale_is_linear_in_w(w, a, b):
    # f = -1/(a w^2 + b): |f'| / f^2 = 2 a |w|, i.e. L = 2a.
    r = get_reparam("best", a=a, b=b)
    assert r.gradient_scale(w) == pytest.approx(2 * a * abs(w), rel=1e-12, abs=1e-15)
    rd = get_reparam("best_discrete", a=a, b=b)
    assert rd.gradient_scale(w) == pytest.approx(2 * a * abs(w), rel=1e-12, abs=1e-15)


def test_gradient_scales_closed_forms():
    w = np.linspace(-2, 2, 9)
    assert np.allclose(get_reparam("exp").gradient_scale(w), np.exp(-w), rtol=1e-14)
    sp = np.log1p(np.exp(w))
    assert np.allclose(get_reparam("softplus").gradient_scale(w), (1 / (1 + np.exp(-w))) / sp**2, rtol=1e-13)
    with np.errstate(divide="ignore"):
        assert np.array_equal(get_reparam("direct").gradient_scale(w), np.where(w == 0, np.inf, 1 / w**2))


# -- stability functional ---------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "softplus", "best", "best_discrete"])
@given(w=ws, dw=st.floats(-1.0, 1.0))
def test_stability_functional_quadrature_equals_closed_form(name, w, dw):
    r = get_reparam(name)
    closed = abs(r.rate(w) / r.rate(w + dw) - 1)
    assert stability_functional(r, w, w + dw) == pytest.approx(closed, rel=1e-8, abs=1e-12)


def test_stability_functional_callable_and_divergence():
    f = lambda w: -math.exp(w)  # noqa: E731
    assert stability_functional(f, 0.0, 1.0) == pytest.approx(1 - math.exp(-1), rel=1e-9)
    assert stability_functional(lambda w: w, -1.0, 0.5) == math.inf
    with pytest.raises(ValueError, match=r"`w` must give a decaying mode, f\(w\) < 0; got f\(1.0\) = 1.0"):
        stability_functional(lambda w: w, 1.0, 0.5)
    with pytest.raises(TypeError, match="`f` must be a Reparam or a callable"):
        stability_functional(3.0, 1.0, 0.5)


@pytest.mark.parametrize("name", ["exp", "softplus", "best", "best_discrete"])
@given(w=ws, beta=betas)
def test_sup_is_bounded_by_g(name, w, beta):
    r = get_reparam(name)
    res = sup_stability_functional(r, w, beta)
    assert res.value <= res.bound * (1 + 1e-12) + 1e-15
    assert abs(res.w_tilde - w) <= beta * (1 + 1e-12) + 4e-16 * (1 + abs(w))  # w +- beta rounds


@given(w=ws, beta=betas)
def test_sup_equals_g_for_exp(w, beta):
    # f(w)/f(w~) = e^{w - w~}: the sup e^beta - 1 is attained at w~ = w - beta for every w.
    res = sup_stability_functional(get_reparam("exp"), w, beta)
    assert res.value == pytest.approx(math.expm1(beta), rel=1e-10, abs=1e-15)


def test_sup_softplus_approaches_g_as_w_to_minus_inf():
    r = get_reparam("softplus")
    beta = 0.7
    vals = [sup_stability_functional(r, w, beta).value for w in (0.0, -5.0, -20.0)]
    assert vals[0] < vals[1] < vals[2] <= math.expm1(beta)
    assert vals[2] == pytest.approx(math.expm1(beta), rel=1e-7)


@given(a=positive, b=positive, beta=betas)
def test_sup_best_over_w_matches_g_up_to_its_two_terms(a, b, beta):
    # sup_w sup_w~ S <= g = beta sqrt(a/b) + a beta^2 / b; the linear term alone is
    # reached as beta -> 0 at |w| = sqrt(b/a), so sup_w S >= beta sqrt(a/b).
    r = get_reparam("best", a=a, b=b)
    w_star = math.sqrt(b / a)
    val = sup_stability_functional(r, w_star, beta).value
    # the closed form |r(w)/r(w~) - 1| loses ~eps/val relative digits to cancellation
    assert beta * math.sqrt(a / b) * (1 - 1e-12) - 1e-15 <= val <= r.stability_bound(beta) * (1 + 1e-12) + 1e-15


def test_sup_direct_unbounded():
    r = get_reparam("direct")
    assert r.stability_bound(0.3) == math.inf
    assert sup_stability_functional(r, -1.0, 1.5).value == math.inf
    finite = sup_stability_functional(r, -1.0, 0.5)
    assert finite.value == pytest.approx(1.0, rel=1e-9)  # |(-1)/(-0.5) - 1|


def test_stability_bound_vectorised_and_zero():
    r = get_reparam("best", a=2.0, b=0.5)
    beta = np.array([0.0, 0.1, 1.0])
    assert np.allclose(r.stability_bound(beta), beta * 2.0 + 4.0 * beta**2)
    assert sup_stability_functional(r, 0.3, 0.0).value == 0.0


# -- matrix forms -----------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5))
def test_orthogonal_form_is_symmetric_hurwitz_with_spectrum_f(seed, m):
    rng = np.random.default_rng(seed)
    r = get_reparam("softplus")
    w = rng.uniform(-3, 3, m)
    P = _rng_orthogonal(m, rng)
    W = orthogonal_W(r, w, P)
    assert np.allclose(W, W.T, atol=1e-14)
    assert np.allclose(np.sort(np.linalg.eigvalsh(W)), np.sort(r.f(w)), rtol=1e-10, atol=1e-12)
    assert spectral_abscissa(W) < 0
    assert np.array_equal(diagonal_W(r, w), np.diag(r.f(w)))


def test_orthogonal_W_refuses_non_orthogonal_P():
    with pytest.raises(ValueError, match=r"`P` must be orthogonal \(P\^T P = I\); got max \|P\^T P - I\| = 3"):
        orthogonal_W(get_reparam("exp"), [0.0, 1.0], [[2.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"`P` must have shape \(2, 2\)"):
        orthogonal_W(get_reparam("exp"), [0.0, 1.0], np.eye(3))


@given(seed=st.integers(0, 2**32 - 1))
def test_expm_W_hurwitz_condition_matches_spectrum(seed):
    rng = np.random.default_rng(seed)
    M = rng.normal(scale=1.5, size=(4, 4))
    hurwitz = spectral_abscissa(-scipy.linalg.expm(M)) < 0
    margin = expm_hurwitz_margin(M)
    if abs(margin) < 1e-8:  # too close to the boundary to compare the two sides
        return
    assert (margin > 0) == hurwitz
    if hurwitz:
        assert np.allclose(expm_W(M), -scipy.linalg.expm(M))
    else:
        with pytest.raises(ValueError, match=r"`M` must have every eigenvalue mu with cos\(Im mu\) > 0"):
            expm_W(M)


def test_expm_W_rotation_boundary():
    # M = theta [[0, -1], [1, 0]] has eigenvalues +-i theta: Hurwitz iff cos(theta) > 0.
    J = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert spectral_abscissa(expm_W(1.4 * J)) < 0
    assert spectral_abscissa(expm_W(2 * np.pi * J + 0.1 * J)) < 0  # periodic in 2 pi
    for theta in (1.7, np.pi, 4.0):
        with pytest.raises(ValueError, match="`M` must have every eigenvalue"):
            expm_W(theta * J)
    with pytest.raises(ValueError, match=r"`M` must be square; got shape \(2, 3\)"):
        expm_W(np.zeros((2, 3)))


# -- chain rules ------------------------------------------------------------------


def _loss(W, A, B):
    # A smooth scalar loss with a non-trivial, non-symmetric gradient.
    return float(np.sum(A * W) + 0.5 * np.sum((B @ W) ** 2))


def _loss_grad(W, A, B):
    return A + B.T @ (B @ W)


def _fd_grad(fn, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (fn(x + e) - fn(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", ["exp", "softplus", "best"])
@given(seed=st.integers(0, 2**32 - 1))
def test_chain_rules_match_finite_differences(name, seed):
    rng = np.random.default_rng(seed)
    m = 3
    r = get_reparam(name)
    w = rng.uniform(-1.5, 1.5, m)
    P = _rng_orthogonal(m, rng)
    A, B = rng.standard_normal((m, m)), rng.standard_normal((m, m))
    g_diag = grad_w_diagonal(r, w, _loss_grad(diagonal_W(r, w), A, B))
    fd = _fd_grad(lambda v: _loss(diagonal_W(r, v), A, B), w)
    assert np.allclose(g_diag, fd, rtol=1e-6, atol=1e-7)
    g_orth = grad_w_orthogonal(r, w, P, _loss_grad(orthogonal_W(r, w, P), A, B))
    fd = _fd_grad(lambda v: _loss(orthogonal_W(r, v, P), A, B), w)
    assert np.allclose(g_orth, fd, rtol=1e-6, atol=1e-7)
    assert np.allclose(grad_w_from_grad_W("orthogonal", _loss_grad(orthogonal_W(r, w, P), A, B), reparam=r, w=w, P=P),
                       g_orth)


@given(seed=st.integers(0, 2**32 - 1))
def test_expm_chain_rule_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    M = rng.normal(scale=0.5, size=(3, 3))
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    loss = lambda X: _loss(-scipy.linalg.expm(X), A, B)  # noqa: E731
    g = grad_M_expm(M, _loss_grad(-scipy.linalg.expm(M), A, B))
    assert np.allclose(g, _fd_grad(loss, M), rtol=1e-6, atol=1e-7)
    assert np.array_equal(grad_w_from_grad_W("expm", _loss_grad(-scipy.linalg.expm(M), A, B), M=M), g)


# -- validation -------------------------------------------------------------------


def test_get_reparam_validation():
    with pytest.raises(ValueError, match=r"`name` must be one of 'direct', 'exp'.*got 'tanh'"):
        get_reparam("tanh")
    with pytest.raises(ValueError, match=r"`a` must be a positive finite number; got -1.0"):
        get_reparam("best", a=-1.0)
    with pytest.raises(ValueError, match=r"`b` must be a positive finite number; got 0.0"):
        get_reparam("best_discrete", b=0.0)
    with pytest.raises(TypeError, match=r"`params` for 'exp' takes no parameters; got unexpected 'a'"):
        get_reparam("exp", a=1.0)
    with pytest.raises(TypeError, match=r"`params` for 'best' takes only `a` and `b`; got unexpected 'c'"):
        get_reparam("best", c=1.0)
    r = get_reparam("best", a=2.0, b=1.0)
    assert isinstance(r, Reparam) and repr(r) == "Reparam('best', a=2.0, b=1.0)"
    assert (r.f(0.0), r.gradient_scale(1.5)) == (-1.0, 6.0)


def test_argument_validation_messages():
    r = get_reparam("exp")
    with pytest.raises(ValueError, match=r"`w` must be finite; got nan"):
        r.f(np.nan)
    with pytest.raises(ValueError, match=r"`beta` must be non-negative; got -0.1"):
        r.stability_bound(-0.1)
    with pytest.raises(ValueError, match=r"`beta` must be a non-negative finite number; got -1.0"):
        sup_stability_functional(r, 0.0, -1.0)
    with pytest.raises(TypeError, match=r"`reparam` must be a Reparam"):
        sup_stability_functional("exp", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`w` must have 1 dimension\(s\); got shape \(2, 2\)"):
        diagonal_W(r, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"`dL_dW` must have shape \(2, 2\); got shape \(3, 3\)"):
        grad_w_diagonal(r, [0.0, 1.0], np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"`form` must be one of 'diagonal', 'orthogonal', 'expm'; got 'dense'"):
        grad_w_from_grad_W("dense", np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"`P` is required for form='orthogonal'; got None"):
        grad_w_from_grad_W("orthogonal", np.zeros((2, 2)), reparam=r, w=[0.0, 1.0])
