"""BPTT of the diagonal SSM (dynmem.ssm.ssm_value_and_grad) against Richardson-extrapolated central differences."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynmem.ssm import DiagonalSSM, DiscreteDiagonalSSM, ssm_value_and_grad


def _loss(model, X, Y, h0, loss, **kw):
    return ssm_value_and_grad(model, X, Y, h0=h0, loss=loss, **kw).loss


def _directional_fd(f, theta, v, h):
    """Central differences at h and h/2, Richardson-combined: error O(h^4) (the loss is smooth in theta)."""
    d1 = (f(theta + h * v) - f(theta - h * v)) / (2 * h)
    d2 = (f(theta + h / 2 * v) - f(theta - h / 2 * v)) / h
    return (4 * d2 - d1) / 3


def _case(seed, m, d, nb, T, shared_h0):
    rng = np.random.default_rng(seed)
    cont = DiagonalSSM.random(m, d, feedthrough=True, rng=rng)
    X = rng.standard_normal((nb, T, d))
    Y = rng.standard_normal((nb, T))
    if shared_h0 is None:
        h0 = None
    else:
        shape = (m,) if shared_h0 else (nb, m)
        h0 = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return rng, cont, X, Y, h0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), d=st.integers(1, 3), nb=st.integers(1, 3),
       T=st.integers(1, 12), shared=st.sampled_from([None, True, False]), loss=st.sampled_from(["mse", "sse"]),
       method=st.sampled_from(["zoh", "bilinear"]), dt=st.floats(0.05, 2.0))
def test_discrete_gradient_matches_central_differences(seed, m, d, nb, T, shared, loss, method, dt):
    rng, cont, X, Y, h0 = _case(seed, m, d, nb, T, shared)
    model = cont.discretize(dt, method=method)
    res = ssm_value_and_grad(model, X, Y, h0=h0, loss=loss)
    theta = model.flatten()
    np.testing.assert_array_equal(model.unflatten(theta).flatten(), theta)
    g = res.flat
    assert g.shape == theta.shape
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        fd = _directional_fd(lambda th: _loss(model.unflatten(th), X, Y, h0, loss), theta, v, 1e-3)
        assert abs(g @ v - fd) <= 1e-8 * (np.linalg.norm(g) * np.linalg.norm(v) + abs(res.loss))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), d=st.integers(1, 3), nb=st.integers(1, 3),
       T=st.integers(1, 12), loss=st.sampled_from(["mse", "sse"]), method=st.sampled_from(["zoh", "bilinear"]),
       dt=st.floats(0.05, 2.0))
def test_continuous_gradient_through_the_discretisation(seed, m, d, nb, T, loss, method, dt):
    rng, cont, X, Y, _ = _case(seed, m, d, nb, T, None)
    res = cont.value_and_grad(X, Y, dt=dt, method=method, loss=loss)
    assert res.loss == pytest.approx(_loss(cont.discretize(dt, method=method), X, Y, None, loss), rel=1e-14)
    theta = cont.flatten()
    g = res.flat
    # small steps keep Re Lambda < 0 (the constructor refuses unstable models)
    scale = 0.1 * np.min(-cont.Lambda.real)
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        v /= np.linalg.norm(v)
        fd = _directional_fd(lambda th: _loss(cont.unflatten(th), X, Y, None, loss, dt=dt, method=method), theta, v,
                             min(1e-3, scale))
        assert abs(g @ v - fd) <= 1e-8 * (np.linalg.norm(g) + abs(res.loss))


def test_every_component_against_central_differences_and_the_dh0_cotangent():
    rng, cont, X, Y, h0 = _case(7, 3, 2, 2, 9, False)
    model = cont.discretize(0.5, method="zoh")
    res = model.value_and_grad(X, Y, h0=h0, loss="sse")
    theta = model.flatten()
    E = np.eye(theta.size)
    fd = np.array([_directional_fd(lambda th: _loss(model.unflatten(th), X, Y, h0, "sse"), theta, E[i], 1e-3)
                   for i in range(theta.size)])
    np.testing.assert_allclose(res.flat, fd, rtol=1e-8, atol=1e-9 * np.max(np.abs(fd)))
    # the named gradients hold dL/dRe + i dL/dIm in the flat layout
    m, d = 3, 2
    np.testing.assert_allclose(res.grad["Lambda_bar"], fd[:m] + 1j * fd[m:2 * m], rtol=1e-8, atol=1e-10)
    assert res.grad["B_bar"].shape == (m, d) and res.grad["D"].shape == (d,)
    # dL/dh_0 by differences in Re and Im of each entry
    for bi in range(2):
        for i in range(m):
            for unit in (1.0, 1j):
                def f(s):
                    h = h0.copy()
                    h[bi, i] += s * unit
                    return _loss(model, X, Y, h, "sse")

                ref = _directional_fd(lambda s: f(s[0]), np.zeros(1), np.ones(1), 1e-3)
                got = res.dh0[bi, i].real if unit == 1.0 else res.dh0[bi, i].imag
                assert got == pytest.approx(ref, rel=1e-8, abs=1e-10)


def test_forward_of_the_gradient_equals_run():
    rng, cont, X, Y, _ = _case(3, 4, 1, 3, 20, None)
    model = cont.discretize(1.0, method="bilinear")
    y, _ = model.run(X)
    res = model.value_and_grad(X, Y, loss="mse")
    assert res.loss == pytest.approx(np.mean((y - Y) ** 2), rel=1e-14)


def test_validation():
    cont = DiagonalSSM.random(2, 1, rng=0)
    disc = cont.discretize(1.0)
    X, Y = np.zeros((1, 4, 1)), np.zeros((1, 4))
    with pytest.raises(TypeError, match="`model` must be a DiagonalSSM"):
        ssm_value_and_grad(object(), X, Y)
    with pytest.raises(ValueError, match="`dt` and `method` apply to a DiagonalSSM only"):
        ssm_value_and_grad(disc, X, Y, dt=0.5)
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 1\)"):
        disc.value_and_grad(np.zeros((4, 1)), Y)
    with pytest.raises(ValueError, match="`loss`"):
        disc.value_and_grad(X, Y, loss="l1")
    with pytest.raises(ValueError, match="`h0` must have shape"):
        disc.value_and_grad(X, Y, h0=np.zeros(3))
    with pytest.raises(ValueError, match="`theta` must have length"):
        cont.unflatten(np.zeros(3))
    with pytest.raises(ValueError, match="Re\\(Lambda\\) < 0"):
        cont.unflatten(np.zeros(cont.n_params))
    big = DiscreteDiagonalSSM(np.array([3.0 + 0j]), np.ones((1, 1)), np.ones(1), np.zeros(1))
    with pytest.raises(FloatingPointError, match="diverged"):
        big.value_and_grad(np.ones((1, 800, 1)), np.zeros((1, 800)))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 4), reparam=st.sampled_from(["exp", "softplus", "best"]),
       method=st.sampled_from(["zoh", "bilinear"]))
def test_reparameterised_gradient_matches_central_differences(seed, m, reparam, method):
    from dynmem.ssm import ssm_reparam_value_and_grad

    rng = np.random.default_rng(seed)
    d, nb, T = 2, 2, 8
    w = rng.uniform(-2.0, 2.0, m)
    freq = rng.uniform(-3.0, 3.0, m)
    B = rng.standard_normal((m, d)) + 1j * rng.standard_normal((m, d))
    C = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    D = rng.standard_normal(d)
    X = rng.standard_normal((nb, T, d))
    Y = rng.standard_normal((nb, T))

    def unpack(th):
        i = 0
        out = []
        for size in (m, m):
            out.append(th[i:i + size])
            i += size
        Bm = th[i:i + m * d].reshape(m, d) + 1j * th[i + m * d:i + 2 * m * d].reshape(m, d)
        i += 2 * m * d
        Cm = th[i:i + m] + 1j * th[i + m:i + 2 * m]
        i += 2 * m
        return out[0], out[1], Bm, Cm, th[i:]

    def f(th):
        ww, fr, Bm, Cm, Dm = unpack(th)
        return ssm_reparam_value_and_grad(ww, fr, Bm, Cm, X, Y, Dm, reparam=reparam, dt=0.5, method=method).loss

    theta = np.concatenate([w, freq, B.real.ravel(), B.imag.ravel(), C.real, C.imag, D])
    res = ssm_reparam_value_and_grad(w, freq, B, C, X, Y, D, reparam=reparam, dt=0.5, method=method)
    assert set(res.grad) == {"w", "frequency", "B", "C", "D"} and res.flat.shape == theta.shape
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        v /= np.linalg.norm(v)
        fd = _directional_fd(f, theta, v, 1e-3)
        assert abs(res.flat @ v - fd) <= 1e-8 * (np.linalg.norm(res.flat) + abs(res.loss))
