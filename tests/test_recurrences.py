"""Numerical tests of dynmem.recurrences: numba forward pass and hand-written BPTT.

The reference is a plain-numpy forward pass written here, vectorised over a
leading "parameter set" axis so that every finite-difference stencil point of
every parameter is evaluated in one call.  Gradients are checked against

* the complex step ``Im L(theta + i h e_j) / h`` (h = 1e-30) for tanh, which
  has no subtractive cancellation and is exact to rounding.  Observed
  relative error vs BPTT: at most 1.7e-15 over 180 random draws; required
  <= 1e-12 (500x headroom, still ~1e4 below any O(dt) or indexing mistake);
* Richardson-extrapolated central differences
  ``(4 D(h/2) - D(h)) / 3`` with ``D(h) = (L(theta + h e) - L(theta - h e)) / 2h``
  (truncation O(h^4)) for every activation.  With h = 1e-3 the truncation is
  ~1e-12 relative and the rounding ~eps |L| / h ~ 1e-13 |L|; observed
  relative errors were at most 1.6e-10 (identity), 8e-11 (relu), 3e-11
  (hardtanh), 8e-12 (tanh) over 180 draws each; required <= 1e-8.  For relu and
  hardtanh the stencil must not cross a kink: the activation pattern (which
  linear piece every pre-activation is on) is compared at every stencil
  point with the unperturbed one, and h is divided by 10 for the directions
  where it changed (the loss is then a polynomial along the stencil, so the
  smaller step costs nothing in accuracy).

Relative errors are norm-wise, ``|g - g_ref|_2 / |g_ref|_2``, over the whole
vector (parameters and dL/dh0) so that near-zero components do not divide.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dynmem as dm
from dynmem.activations import get_activation
from dynmem.models import recurrence_coefficients
from dynmem.strategies import discrete_rnns, sequences

ACTIVATIONS = ("tanh", "hardtanh", "relu", "identity")
KINDS = ("discrete", "euler", "euler_leak")
H0_KINDS = ("none", "shared", "batched")


# ---------------------------------------------------------------------------
# Plain-numpy reference, vectorised over parameter sets
# ---------------------------------------------------------------------------

def stack_forward(W, U, b, c, X, h0, gamma, eta, act):
    """Forward pass for P parameter sets at once.

    W (P, m, m), U (P, m, d), b (P, m), c (P, m), X (B, T, d), h0 (P, B, m).
    Returns y (P, B, T) with y_k = c^T h_{k+1}, H (P, T+1, B, m) and the
    pre-activations Z (P, T, B, m).  Works for complex arrays (complex step).
    """
    P, m = b.shape
    B, T, _ = X.shape
    dtype = np.result_type(W, U, b, c, h0, X)
    H = np.empty((P, T + 1, B, m), dtype)
    Z = np.empty((P, T, B, m), dtype)
    H[:, 0] = h0
    UX = np.einsum("pid,btd->ptbi", U, X)
    for k in range(T):
        z = np.einsum("pij,pbj->pbi", W, H[:, k]) + UX[:, k] + b[:, None, :]
        Z[:, k] = z
        H[:, k + 1] = gamma * H[:, k] + eta * act(z)
    y = np.einsum("ptbi,pi->pbt", H[:, 1:], c)
    return y, H, Z


def numpy_loop_forward(model, X, h0):
    """The recurrence written as a literal loop over batch and time (no vectorisation tricks)."""
    gamma, eta = recurrence_coefficients(model)
    act = get_activation(model.activation).fn
    B, T, _ = X.shape
    m = model.hidden
    H = np.zeros((B, T + 1, m))
    y = np.zeros((B, T))
    for bi in range(B):
        h = np.zeros(m) if h0 is None else (h0 if h0.ndim == 1 else h0[bi]).copy()
        H[bi, 0] = h
        for k in range(T):
            h = gamma * h + eta * act(model.W @ h + model.U @ X[bi, k] + model.b)
            H[bi, k + 1] = h
            y[bi, k] = model.c @ h
    return y, H


class Problem:
    """A loss of (theta, h0) for one model and input batch, evaluated by the numpy reference."""

    def __init__(self, model, X, h0_kind, h0, loss):
        self.model, self.X, self.loss = model, X, loss
        self.gamma, self.eta = recurrence_coefficients(model)
        self.act_obj = get_activation(model.activation)
        self.m, self.d = model.hidden, model.inputs
        self.B = X.shape[0]
        self.h0_kind = h0_kind
        # h0=None is differentiated as a shared zero state (dynmem returns dL/dh0 of shape (m,)).
        self.h0_base = np.zeros(self.m) if h0 is None else np.asarray(h0, float)
        self.v0 = np.concatenate([model.flatten(), self.h0_base.ravel()])

    def split(self, V):
        m, d, B = self.m, self.d, self.B
        P = V.shape[0]
        i = 0
        W = V[:, i:i + m * m].reshape(P, m, m)
        i += m * m
        U = V[:, i:i + m * d].reshape(P, m, d)
        i += m * d
        b = V[:, i:i + m]
        i += m
        c = V[:, i:i + m]
        i += m
        h0 = V[:, i:]
        h0 = np.broadcast_to(h0[:, None, :], (P, B, m)) if h0.shape[1] == m and self.h0_kind != "batched" \
            else h0.reshape(P, B, m)
        return W, U, b, c, h0

    def evaluate(self, V, act=None):
        W, U, b, c, h0 = self.split(V)
        y, H, Z = stack_forward(W, U, b, c, self.X, h0, self.gamma, self.eta, act or self.act_obj.fn)
        return self.loss(y, H), Z

    def regions(self, Z):
        kinks = np.asarray(self.act_obj.kinks)
        return np.searchsorted(kinks, Z.real) if kinks.size else None


def complex_step_gradient(prob, h=1e-30):
    n = prob.v0.size
    V = prob.v0[None, :] + 1j * h * np.eye(n)
    L, _ = prob.evaluate(V, act=np.tanh)
    return L.imag / h


def richardson_gradient(prob, h=1e-3, min_h=1e-7):
    """4th-order central differences; shrinks h per direction until no kink is crossed."""
    n = prob.v0.size
    g = np.full(n, np.nan)
    todo = np.arange(n)
    _, Z0 = prob.evaluate(prob.v0[None, :])
    base_regions = prob.regions(Z0)
    while todo.size and h >= min_h:
        E = np.zeros((todo.size, n))
        E[np.arange(todo.size), todo] = 1.0
        steps = np.array([h, -h, h / 2, -h / 2])
        V = prob.v0[None, None, :] + steps[:, None, None] * E[None, :, :]  # (4, n_todo, n)
        L, Z = prob.evaluate(V.reshape(-1, n))
        L = L.reshape(4, todo.size)
        if base_regions is not None:
            R = prob.regions(Z).reshape((4, todo.size) + Z.shape[1:])
            same = np.all((R == base_regions[0]).reshape(4, todo.size, -1), axis=(0, 2))
        else:
            same = np.ones(todo.size, bool)
        D_h = (L[0] - L[1]) / (2 * h)
        D_h2 = (L[2] - L[3]) / h
        g[todo[same]] = ((4 * D_h2 - D_h) / 3)[same]
        todo = todo[~same]
        h /= 10
    return g, todo.size == 0


def assert_rel(g, ref, tol):
    """|g - ref|_2 <= tol |ref|_2 (written without a division: a dead relu network has ref = 0 exactly)."""
    err, scale = np.linalg.norm(g - ref), np.linalg.norm(ref)
    assert err <= tol * scale, f"relative error {err / scale if scale else err:.3g} > {tol:g} (|ref| = {scale:.3g})"


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

def _as_kind(model, kind, rng):
    if kind == "discrete":
        return model
    dt = float(rng.uniform(0.05, 0.5))
    leak = float(rng.uniform(0.2, 1.5)) if kind == "euler_leak" else 0.0
    return dm.EulerRNN(model.W, model.U, model.b, model.c, dt=dt, activation=model.activation, leak=leak)


def _h0(kind, m, B, rng):
    if kind == "none":
        return None
    if kind == "shared":
        return rng.standard_normal(m)
    return rng.standard_normal((B, m))


@st.composite
def cases(draw, activation, kind, h0_kind, max_hidden=6, max_length=20):
    model = draw(discrete_rnns(max_hidden=max_hidden, activations=(activation,)))
    X = draw(sequences(model.inputs, max_batch=3, max_length=max_length))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    model = _as_kind(model, kind, rng)
    h0 = _h0(h0_kind, model.hidden, X.shape[0], rng)
    return model, X, h0, rng


def _mse(Y):
    return lambda y, H: np.mean((y - Y) ** 2, axis=(1, 2))


def _sse(Y):
    return lambda y, H: 0.5 * np.sum((y - Y) ** 2, axis=(1, 2))


def _linear_functional(dy, dh_final):
    return lambda y, H: np.sum(y * dy, axis=(1, 2)) + np.sum(H[:, -1] * dh_final, axis=(1, 2))


def _joint(res):
    return np.concatenate([res.flat, np.ravel(res.dh0)])


# ---------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("h0_kind", H0_KINDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=10)
@given(data=st.data())
def test_forward_matches_numpy_loop(activation, kind, h0_kind, data):
    model, X, h0, _ = data.draw(cases(activation, kind, h0_kind, max_hidden=8, max_length=30))
    traj = dm.forward(model, X, h0=h0)
    y_ref, H_ref = numpy_loop_forward(model, X, h0)
    B, T, _ = X.shape
    assert traj.y.shape == (B, T) and traj.h.shape == (B, T + 1, model.hidden)
    # Same operations in a different summation order: rounding differences only.
    np.testing.assert_allclose(traj.h, H_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(traj.y, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(traj.h_final, H_ref[:, -1], rtol=1e-12, atol=1e-13)
    # Output convention: y_k = c^T h_{k+1} (the initial state is not read out).
    np.testing.assert_allclose(traj.y, traj.h[:, 1:] @ model.c, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_wide_model_uses_blas_path(activation):
    # m >= 24 switches the kernels to np.dot; check that branch against the loop too.
    rng = np.random.default_rng(0)
    model = dm.DiscreteRNN.random(30, 3, spectral_radius=0.9, activation=activation, bias_scale=0.3, rng=rng)
    X = rng.standard_normal((3, 25, 3))
    h0 = rng.standard_normal((3, 30))
    traj = dm.forward(model, X, h0=h0)
    y_ref, H_ref = numpy_loop_forward(model, X, h0)
    np.testing.assert_allclose(traj.h, H_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(traj.y, y_ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_large_batch(activation, kind):
    # A large batch through the kernel, against the literal loop.
    rng = np.random.default_rng(2)
    m, B = 8, 128
    model = _as_kind(dm.DiscreteRNN.random(m, 2, spectral_radius=0.9, activation=activation, bias_scale=0.5, rng=rng),
                     kind, rng)
    X = rng.standard_normal((B, 10, 2))
    h0 = rng.standard_normal((B, m))
    traj = dm.forward(model, X, h0=h0)
    y_ref, H_ref = numpy_loop_forward(model, X, h0)
    np.testing.assert_allclose(traj.h, H_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(traj.y, y_ref, rtol=1e-12, atol=1e-13)


def test_shared_h0_equals_broadcast_h0():
    rng = np.random.default_rng(1)
    model = dm.DiscreteRNN.random(4, 2, rng=rng)
    X = rng.standard_normal((3, 7, 2))
    h0 = rng.standard_normal(4)
    a = dm.forward(model, X, h0=h0)
    b = dm.forward(model, X, h0=np.tile(h0, (3, 1)))
    np.testing.assert_array_equal(a.h, b.h)
    zero = dm.forward(model, X)
    np.testing.assert_array_equal(zero.h[:, 0], 0.0)


# ---------------------------------------------------------------------------
# BPTT against complex step (tanh) and Richardson differences (all activations)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("h0_kind", H0_KINDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss", ["mse", "sse"])
@settings(max_examples=25)
@given(data=st.data())
def test_value_and_grad_tanh_matches_complex_step(loss, kind, h0_kind, data):
    model, X, h0, rng = data.draw(cases("tanh", kind, h0_kind))
    Y = rng.standard_normal(X.shape[:2])
    res = dm.value_and_grad(model, X, Y, h0=h0, loss=loss)
    prob = Problem(model, X, h0_kind, h0, _mse(Y) if loss == "mse" else _sse(Y))
    L_ref, _ = prob.evaluate(prob.v0[None, :])
    np.testing.assert_allclose(res.loss, L_ref[0], rtol=1e-12)
    ref = complex_step_gradient(prob)
    assert np.shape(res.dh0) == ((X.shape[0], model.hidden) if h0_kind == "batched" else (model.hidden,))
    # Complex step is exact to rounding; BPTT differs from it by rounding only.
    assert_rel(_joint(res), ref, 1e-12)


@pytest.mark.parametrize("h0_kind", H0_KINDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=20)
@given(data=st.data())
def test_value_and_grad_matches_richardson(activation, kind, h0_kind, data):
    model, X, h0, rng = data.draw(cases(activation, kind, h0_kind))
    Y = rng.standard_normal(X.shape[:2])
    res = dm.value_and_grad(model, X, Y, h0=h0, loss="mse")
    prob = Problem(model, X, h0_kind, h0, _mse(Y))
    ref, ok = richardson_gradient(prob)
    assume(ok)  # a pre-activation within ~1e-7 of a kink: no clean stencil exists (rare)
    assert_rel(_joint(res), ref, 1e-8)


@pytest.mark.parametrize("h0_kind", H0_KINDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(max_examples=20)
@given(data=st.data(), use_dh_final=st.booleans())
def test_backward_with_dy_and_dh_final(activation, kind, h0_kind, data, use_dh_final):
    # backward is the vector-Jacobian product: for L = <dy, y> + <dh_final, h_T>
    # its result is dL/dtheta and dL/dh0.
    model, X, h0, rng = data.draw(cases(activation, kind, h0_kind))
    B, T, _ = X.shape
    dy = rng.standard_normal((B, T))
    dh_final = rng.standard_normal((B, model.hidden)) if use_dh_final else None
    traj = dm.forward(model, X, h0=h0)
    res = dm.backward(model, traj, dy, dh_final=dh_final)
    assert res.loss is None
    prob = Problem(model, X, h0_kind, h0, _linear_functional(dy, np.zeros((B, model.hidden)) if dh_final is None
                                                             else dh_final))
    if activation == "tanh":
        ref = complex_step_gradient(prob)
        tol = 1e-12
    else:
        ref, ok = richardson_gradient(prob)
        assume(ok)
        tol = 1e-8
    assert_rel(_joint(res), ref, tol)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_wide_model(activation):
    # The BLAS branch of the backward kernel (m >= 24), with a batched h0 and dh_final.
    rng = np.random.default_rng(3)
    model = dm.DiscreteRNN.random(26, 2, spectral_radius=0.8, activation=activation, bias_scale=0.3, rng=rng)
    X = rng.standard_normal((2, 12, 2))
    h0 = rng.standard_normal((2, 26))
    dy, dh_final = rng.standard_normal((2, 12)), rng.standard_normal((2, 26))
    res = dm.backward(model, dm.forward(model, X, h0=h0), dy, dh_final=dh_final)
    prob = Problem(model, X, "batched", h0, _linear_functional(dy, dh_final))
    if activation == "tanh":
        ref, tol = complex_step_gradient(prob), 1e-12
    else:
        (ref, ok), tol = richardson_gradient(prob), 1e-8
        assert ok
    assert_rel(_joint(res), ref, tol)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_large_batch(activation):
    # BPTT after a large-batch forward pass, shared h0.
    rng = np.random.default_rng(6)
    m, B, T = 8, 128, 6
    model = dm.CTRNN.random(m, 2, spectral_abscissa=-0.3, activation=activation, bias_scale=0.3, rng=rng)
    model = model.replace(leak=0.4).discretize(0.3)
    X = rng.standard_normal((B, T, 2))
    Y = rng.standard_normal((B, T))
    h0 = rng.standard_normal(m)
    res = dm.value_and_grad(model, X, Y, h0=h0, loss="sse")
    prob = Problem(model, X, "shared", h0, _sse(Y))
    if activation == "tanh":
        ref, tol = complex_step_gradient(prob), 1e-12
    else:
        (ref, ok), tol = richardson_gradient(prob), 1e-8
        assert ok
    assert_rel(_joint(res), ref, tol)


def test_euler_leak_gradient_includes_the_leak():
    # The leak enters through gamma = 1 - dt * leak: the gradient with leak
    # differs from the leak-free one and matches the complex step.
    rng = np.random.default_rng(4)
    base = dm.CTRNN.random(4, 2, spectral_abscissa=-0.2, bias_scale=0.2, rng=rng)
    X = rng.standard_normal((2, 15, 2))
    Y = rng.standard_normal((2, 15))
    with_leak = base.replace(leak=0.8).discretize(0.2)
    no_leak = base.discretize(0.2)
    g1 = dm.value_and_grad(with_leak, X, Y, loss="sse")
    g0 = dm.value_and_grad(no_leak, X, Y, loss="sse")
    ref = complex_step_gradient(Problem(with_leak, X, "none", None, _sse(Y)))
    assert_rel(_joint(g1), ref, 1e-12)
    assert np.linalg.norm(_joint(g0) - ref) > 1e-3 * np.linalg.norm(ref)


# ---------------------------------------------------------------------------
# Loss conventions and failures
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mse_and_sse_conventions(activation):
    rng = np.random.default_rng(5)
    model = dm.DiscreteRNN.random(5, 2, activation=activation, bias_scale=0.3, rng=rng)
    X = rng.standard_normal((3, 9, 2))
    Y = rng.standard_normal((3, 9))
    y = dm.forward(model, X).y
    mse = dm.value_and_grad(model, X, Y, loss="mse")
    sse = dm.value_and_grad(model, X, Y, loss="sse")
    N = Y.size
    np.testing.assert_allclose(mse.loss, np.mean((y - Y) ** 2), rtol=1e-14)  # torch.nn.MSELoss
    np.testing.assert_allclose(sse.loss, 0.5 * np.sum((y - Y) ** 2), rtol=1e-14)
    # d mean(r^2) = (2 / N) d (0.5 sum r^2)
    np.testing.assert_allclose(mse.flat, (2.0 / N) * sse.flat, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(mse.dh0, (2.0 / N) * sse.dh0, rtol=1e-13, atol=1e-16)
    # value_and_grad is backward with dy = dl/dy.
    traj = dm.forward(model, X)
    np.testing.assert_allclose(dm.backward(model, traj, y - Y).flat, sse.flat, rtol=1e-14, atol=1e-16)
    with pytest.raises(ValueError):
        dm.value_and_grad(model, X, Y, loss="mae")


def test_diverging_forward_raises():
    # Identity activation with W = 3 I: |h_k| ~ 3^k overflows near k ~ 650.
    model = dm.DiscreteRNN(3.0 * np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="identity")
    X = np.ones((1, 1000, 1))
    with pytest.raises(FloatingPointError, match="diverged"):
        dm.forward(model, X)
    # The same model over a short horizon is fine (the failure is the overflow, not the model).
    assert np.all(np.isfinite(dm.forward(model, X[:, :50]).y))


def test_diverging_forward_raises_on_the_blocked_path():
    # Same contract for a large batch (blocked numpy path): a FloatingPointError,
    # with no numpy overflow warning on the way (warnings are errors here).
    m, B = 16, 64
    model = dm.DiscreteRNN(3.0 * np.eye(m), np.ones((m, 1)), np.zeros(m), np.ones(m), activation="identity")
    with pytest.raises(FloatingPointError, match="diverged"):
        dm.forward(model, np.ones((B, 1000, 1)))


def test_exploding_gradient_raises():
    # W = 1e200 I, two steps, h0 = 0: the forward states stay finite
    # (h_2 = 1e200 h_1 + U x_1) but dL/dh0 = W^T W^T (...) ~ 1e400 overflows.
    model = dm.DiscreteRNN(1e200 * np.eye(1), np.ones((1, 1)), np.zeros(1), np.ones(1), activation="identity")
    X = np.full((1, 2, 1), 1e-3)
    traj = dm.forward(model, X)
    assert np.all(np.isfinite(traj.h))
    with pytest.raises(FloatingPointError):
        dm.backward(model, traj, np.ones((1, 2)))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_outputs_many_equals_one_forward_per_variant(activation, kind):
    from dynmem.recurrences import outputs_many

    rng = np.random.default_rng(11)
    base = _as_kind(dm.DiscreteRNN.random(30, 2, spectral_radius=0.9, activation=activation, bias_scale=0.3, rng=rng),
                    kind, rng)
    K = 5
    params = {k: v[None] + 0.05 * rng.standard_normal((K, *v.shape)) for k, v in base.params().items()}
    X = rng.standard_normal((4, 12, 2))
    y, finite = outputs_many(base, params, X)
    assert y.shape == (K, 4, 12) and finite.all()
    for q in range(K):
        ref = dm.forward(base.replace(**{k: params[k][q] for k in params}), X).y
        np.testing.assert_allclose(y[q], ref, rtol=0, atol=1e-14 * max(1.0, np.abs(ref).max()))


def test_outputs_many_flags_diverged_variants():
    from dynmem.recurrences import outputs_many

    base = dm.CTRNN(np.zeros((2, 2)), np.ones((2, 1)), np.zeros(2), np.ones(2), activation="identity").discretize(1.0)
    W = np.stack([-0.5 * np.eye(2), 800.0 * np.eye(2)])  # the second grows by 801x per step: overflows in 200 steps
    params = {"W": W, "U": np.ones((2, 2, 1)), "b": np.zeros((2, 2)), "c": np.ones((2, 2))}
    y, finite = outputs_many(base, params, np.ones((1, 200, 1)))
    assert finite.tolist() == [True, False]
    assert np.all(np.isfinite(y[0]))
    with pytest.raises(ValueError, match=r"params\['U'\]"):
        outputs_many(base, dict(params, U=np.ones((2, 3, 1))), np.ones((1, 5, 1)))
    with pytest.raises(ValueError, match=r"params\['W'\]"):
        outputs_many(base, dict(params, W=np.ones((2, 2))), np.ones((1, 5, 1)))
    with pytest.raises(ValueError, match="exactly the keys 'W', 'U', 'b', 'c'.*got \\['W', 'b', 'c'\\]"):
        outputs_many(base, {k: v for k, v in params.items() if k != "U"}, np.ones((1, 5, 1)))
