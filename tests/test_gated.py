"""GRU and LSTM cells: forward against an independent numpy transcription and
against torch.nn.GRU / torch.nn.LSTM, BPTT against complex-step differences."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynmem.gated import GRUCell, LSTMCell, gated_forward, gated_value_and_grad


# -- an independent transcription of the cell equations, generic in dtype (complex step) --

def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ref_outputs(cls, theta_model, X, h0, s0):
    """Outputs y (batch, T) by a plain per-step loop that works in complex arithmetic."""
    Wih, Whh, bih, bhh, c = (theta_model[n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "c"))
    m = Whh.shape[1]
    h = h0.astype(Wih.dtype)
    s = s0.astype(Wih.dtype)
    ys = []
    for k in range(X.shape[1]):
        gi = X[:, k] @ Wih.T + bih
        gh = h @ Whh.T + bhh
        if cls is GRUCell:
            r = _sig(gi[:, :m] + gh[:, :m])
            z = _sig(gi[:, m:2 * m] + gh[:, m:2 * m])
            n = np.tanh(gi[:, 2 * m:] + r * gh[:, 2 * m:])
            h = (1 - z) * n + z * h
        else:
            a = gi + gh
            i, f, g, o = _sig(a[:, :m]), _sig(a[:, m:2 * m]), np.tanh(a[:, 2 * m:3 * m]), _sig(a[:, 3 * m:])
            s = f * s + i * g
            h = o * np.tanh(s)
        ys.append(h @ c)
    return np.stack(ys, axis=1)


def _ref_loss(model, theta, X, Y, h0, s0):
    p, i = {}, 0
    for n in model.param_names:
        shape = getattr(model, n).shape
        size = int(np.prod(shape))
        p[n] = theta[i:i + size].reshape(shape)
        i += size
    r = _ref_outputs(type(model), p, X, h0, s0) - Y
    return np.mean(r * r)


def _complex_step_grad(model, X, Y, h0, s0, step=1e-30):
    theta = model.flatten().astype(complex)
    g = np.empty(theta.size)
    for j in range(theta.size):
        t = theta.copy()
        t[j] += 1j * step
        g[j] = _ref_loss(model, t, X, Y, h0, s0).imag / step
    return g


def _case(cls, seed, m, d, B, T, scale):
    rng = np.random.default_rng(seed)
    model = cls.random(m, d, scale=scale, rng=rng)
    X = rng.standard_normal((B, T, d))
    Y = rng.standard_normal((B, T))
    h0 = 0.5 * rng.standard_normal((B, m))
    s0 = 0.5 * rng.standard_normal((B, m))
    return model, X, Y, h0, s0


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), d=st.integers(1, 3), B=st.integers(1, 3),
       T=st.integers(1, 7), scale=st.floats(0.3, 1.5))
def test_bptt_matches_complex_step(cls, seed, m, d, B, T, scale):
    model, X, Y, h0, s0 = _case(cls, seed, m, d, B, T, scale)
    kw = {"s0": s0} if cls is LSTMCell else {}
    res = gated_value_and_grad(model, X, Y, h0=h0, **kw)
    ref = _complex_step_grad(model, X, Y, h0, s0 if cls is LSTMCell else np.zeros_like(h0))
    assert res.loss == pytest.approx(_ref_loss(model, model.flatten(), X, Y, h0, s0 if cls is LSTMCell else 0 * h0).real,
                                     rel=1e-13)
    err = np.linalg.norm(res.flat - ref) / np.linalg.norm(ref)
    # measured worst 7.7e-16 (complex step is exact to rounding); 1e-12 as in the other complex-step checks
    assert err <= 1e-12, err
    assert res.flat.shape == model.flatten().shape


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_initial_state_gradients_complex_step(cls):
    model, X, Y, h0, s0 = _case(cls, 3, 4, 2, 2, 5, 1.0)
    if cls is GRUCell:
        s0 = np.zeros_like(h0)
    res = gated_value_and_grad(model, X, Y, h0=h0, **({"s0": s0} if cls is LSTMCell else {}))
    step = 1e-30
    theta = model.flatten().astype(complex)
    for name, base, got in (("h0", h0, res.dh0), ("s0", s0, res.ds0)):
        if got is None:
            assert cls is GRUCell
            continue
        ref = np.empty(base.size)
        for j in range(base.size):
            v = base.astype(complex).ravel()
            v[j] += 1j * step
            v = v.reshape(base.shape)
            args = (v, s0) if name == "h0" else (h0, v)
            ref[j] = _ref_loss(model, theta, X, Y, *args).imag / step
        assert got.shape == base.shape
        np.testing.assert_allclose(got.ravel(), ref, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_forward_matches_numpy_transcription_and_shared_h0(cls):
    model, X, Y, h0, s0 = _case(cls, 11, 30, 3, 4, 20, 1.0)  # a wider cell than the hypothesis cases
    tr = gated_forward(model, X)
    ref = _ref_outputs(cls, model.params(), X, np.zeros((4, 30)), np.zeros((4, 30)))
    np.testing.assert_allclose(tr.y, ref, rtol=1e-13, atol=1e-14)
    assert tr.h.shape == (4, 21, 30)
    np.testing.assert_allclose(tr.h[:, 1:] @ model.c, tr.y, rtol=1e-13, atol=1e-14)
    # A shared (m,) initial state gives the summed dh0 of the per-sequence one.
    v = h0[0]
    shared = gated_value_and_grad(model, X, Y, h0=v)
    full = gated_value_and_grad(model, X, Y, h0=np.tile(v, (4, 1)))
    np.testing.assert_allclose(shared.dh0, full.dh0.sum(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(shared.flat, full.flat, rtol=1e-12, atol=1e-15)


def test_sse_loss_is_half_sum_and_gradient_scales():
    model, X, Y, _, _ = _case(GRUCell, 5, 3, 2, 2, 4, 1.0)
    mse = gated_value_and_grad(model, X, Y, loss="mse")
    sse = gated_value_and_grad(model, X, Y, loss="sse")
    n = Y.size
    assert sse.loss == pytest.approx(0.5 * n * mse.loss, rel=1e-14)
    np.testing.assert_allclose(sse.flat, 0.5 * n * mse.flat, rtol=1e-12)


def test_flatten_roundtrip_and_layout():
    g = GRUCell.random(4, 3, rng=0)
    assert g.weight_ih.shape == (12, 3) and g.weight_hh.shape == (12, 4) and g.bias_hh.shape == (12,)
    assert np.array_equal(g.unflatten(g.flatten()).flatten(), g.flatten())
    lstm = LSTMCell.random(4, 3, rng=0)
    assert lstm.weight_hh.shape == (16, 4) and lstm.n_params == 16 * 3 + 16 * 4 + 32 + 4
    assert np.all(np.abs(lstm.weight_hh) <= 0.5)  # torch's default U(-1/sqrt(m), 1/sqrt(m))
    with pytest.raises(ValueError, match="read-only"):
        g.c[0] = 1.0


def test_validation_messages():
    with pytest.raises(ValueError, match=r"`weight_hh` of a GRUCell must have shape \(3m, m\)"):
        GRUCell(np.zeros((6, 1)), np.zeros((6, 3)), np.zeros(6), np.zeros(6), np.zeros(2))
    with pytest.raises(ValueError, match=r"`weight_ih` of a LSTMCell must have shape \(8, d\)"):
        LSTMCell(np.zeros((6, 1)), np.zeros((8, 2)), np.zeros(8), np.zeros(8), np.zeros(2))
    with pytest.raises(ValueError, match="`c` must have shape"):
        GRUCell(np.zeros((6, 1)), np.zeros((6, 2)), np.zeros(6), np.zeros(6), np.zeros(3))
    g = GRUCell.random(2, 1, rng=0)
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 1\)"):
        gated_forward(g, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="`s0` is the LSTM cell state"):
        gated_forward(g, np.zeros((1, 3, 1)), s0=np.zeros(2))
    with pytest.raises(ValueError, match=r"`h0` must have shape \(2,\) or \(1, 2\)"):
        gated_forward(g, np.zeros((1, 3, 1)), h0=np.zeros(3))
    with pytest.raises(TypeError, match="`model` must be a GRUCell or an LSTMCell"):
        gated_forward("gru", np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match="`loss` must be"):
        gated_value_and_grad(g, np.zeros((1, 3, 1)), np.zeros((1, 3)), loss="l1")


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_forward_and_gradient_match_torch(cls):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m, d, B, T = 7, 3, 4, 25
    net = (torch.nn.GRU if cls is GRUCell else torch.nn.LSTM)(d, m, batch_first=True).double()
    rng = np.random.default_rng(1)
    c = rng.standard_normal(m)
    model = cls(**{n: getattr(net, n + "_l0").detach().numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
                c=c)
    X = rng.standard_normal((B, T, d))
    Y = rng.standard_normal((B, T))
    h0 = rng.standard_normal((B, m))
    s0 = rng.standard_normal((B, m))
    Xt = torch.tensor(X)
    h0t = torch.tensor(h0[None], requires_grad=True)
    s0t = torch.tensor(s0[None], requires_grad=True)
    ct = torch.tensor(c, requires_grad=True)
    out, _ = net(Xt, h0t) if cls is GRUCell else net(Xt, (h0t, s0t))
    yt = out @ ct
    loss = torch.mean((yt - torch.tensor(Y)) ** 2)
    loss.backward()
    kw = {"s0": s0} if cls is LSTMCell else {}
    tr = gated_forward(model, X, h0=h0, **kw)
    np.testing.assert_allclose(tr.y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.h[:, 1:], out.detach().numpy(), rtol=0, atol=1e-12)
    res = gated_value_and_grad(model, X, Y, h0=h0, **kw)
    assert res.loss == pytest.approx(loss.item(), rel=1e-12)
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_allclose(getattr(res.grad, n), getattr(net, n + "_l0").grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.grad.c, ct.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.dh0, h0t.grad.numpy()[0], rtol=1e-10, atol=1e-14)
    if cls is LSTMCell:
        np.testing.assert_allclose(res.ds0, s0t.grad.numpy()[0], rtol=1e-10, atol=1e-14)


def test_exported_from_package():
    import dynmem as dm

    for name in ("GRUCell", "LSTMCell", "gated_forward", "gated_value_and_grad", "DiagonalSSM", "DiscreteDiagonalSSM"):
        assert name in dm.__all__ and getattr(dm, name) is not None
    assert dm.GRUCell is GRUCell


# -- the contract: memory of the discrete cells, the continuous-time GRU ---------------------------

from dynmem.gated import CTGRU  # noqa: E402
from dynmem.memory import memory_function  # noqa: E402
from dynmem.models import ContinuousModel, DiscreteModel  # noqa: E402


def _ref_field(p, h, x):
    """Independent transcription of the CT-GRU field (1 - z)(n - h), generic in dtype (complex step)."""
    Wih, Whh, bih, bhh = (p[n] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    m = Whh.shape[1]
    gi, gh = Wih @ x + bih, Whh @ h + bhh
    r = _sig(gi[:m] + gh[:m])
    z = _sig(gi[m:2 * m] + gh[m:2 * m])
    n = np.tanh(gi[2 * m:] + r * gh[2 * m:])
    return (1 - z) * (n - h)


@pytest.mark.parametrize("cls", [GRUCell, LSTMCell])
def test_cells_are_discrete_models_and_heaviside_equals_impulse_memory_at_small_amplitude(cls):
    cell = cls.random(5, 2, rng=3)
    assert isinstance(cell, DiscreteModel) and not isinstance(cell, ContinuousModel)
    x = np.array([[0.4, -0.2]])
    s = cell.equilibrium(x)
    np.testing.assert_allclose(cell.final_state(x[:, None, :], s), s, atol=1e-13)  # a fixed point
    k = np.arange(0, 40)
    # Linear limit: the step response differences of the linearised cell are its impulse response.
    # Amplitude 1e-5: nonlinearity O(1e-5) relative; differences of O(1) outputs lose eps / 1e-5 ~ 1e-10 absolute.
    heav = memory_function(cell, k, amplitudes=[1e-5])
    imp = memory_function(cell, k, input="impulse", amplitudes=[1e-5])
    assert heav.method == imp.method == "step-differences"
    np.testing.assert_allclose(heav.values, imp.values, rtol=1e-4, atol=1e-9)
    # ... and the impulse memory is the transcription's response to a kick at step 0 (max over the vertices).
    S0 = np.tile(cell.equilibrium(np.zeros((1, 2))), (4, 1))
    verts = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float) * 0.5
    X = np.zeros((4, 41, 2))
    X[:, 0] = verts
    m = cell.hidden
    y = _ref_outputs(cls, cell.params(), X, S0[:, :m], S0[:, m:] if cls is LSTMCell else 0 * S0)
    y_star = cell.readout(S0[:1])[0]
    ref = np.max(np.abs(y[:, k] - y_star), axis=0) / 0.5
    got = memory_function(cell, k, input="impulse", amplitudes=[0.5])
    np.testing.assert_allclose(got.values, ref, rtol=1e-12, atol=1e-15)


def test_ctgru_field_is_the_gru_update_and_its_jacobians_match_complex_step():
    g = CTGRU.random(4, 3, rng=8)
    assert isinstance(g, ContinuousModel)
    rng = np.random.default_rng(0)
    H, X = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    # Forward Euler with dt = 1 is the (torch-verified) GRU cell: f(h, x) = h_1 - h_0.
    step = g.euler_cell().final_state(X[:, None, :], H)
    np.testing.assert_allclose(g.vector_field(H, X), step - H, rtol=1e-13, atol=1e-15)
    p = {k: v.astype(complex) for k, v in g.params().items()}
    J, Jx = g.jacobian(H, X), g.input_jacobian(H, X)
    for i in range(5):
        cs = np.array([_ref_field(p, H[i] + 1e-30j * e, X[i]).imag / 1e-30 for e in np.eye(4)]).T
        np.testing.assert_allclose(J[i], cs, rtol=1e-12, atol=1e-15)
        cs = np.array([_ref_field(p, H[i].astype(complex), X[i] + 1e-30j * e).imag / 1e-30 for e in np.eye(3)]).T
        np.testing.assert_allclose(Jx[i], cs, rtol=1e-12, atol=1e-15)
    h = g.equilibrium(X[:2])
    np.testing.assert_allclose(g.vector_field(h, X[:2]), 0.0, atol=1e-13)


def test_ctgru_simulate_matches_solve_ivp_on_the_transcription():
    import scipy.integrate

    import dynmem as dm

    g = CTGRU.random(4, 2, rng=2)
    x = dm.inputs.step(np.array([0.7, -0.3]), t_end=6.0)
    t = np.linspace(0.0, 6.0, 25)
    h0 = np.array([0.2, -0.1, 0.0, 0.3])
    res = dm.simulate(g, x, t, h0=h0, method="DOP853", rtol=1e-12, atol=1e-14)
    p = g.params()
    sol = scipy.integrate.solve_ivp(lambda _, h: _ref_field(p, h, np.array([0.7, -0.3])), (0, 6.0), h0, t_eval=t,
                                    method="Radau", rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.h, sol.y.T, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.y, sol.y.T @ g.c, rtol=0, atol=1e-9)
    stiff = dm.simulate(g, x, t, h0=h0, method="Radau", rtol=1e-10, atol=1e-12)  # analytic Jacobian
    np.testing.assert_allclose(stiff.h, sol.y.T, rtol=0, atol=1e-8)


def test_ctgru_small_amplitude_memory_is_the_memory_of_its_linearisation():
    g = CTGRU.random(5, 2, rng=4)
    t = np.linspace(0.0, 8.0, 17)
    lin = g.linearize()
    closed = memory_function(lin, t).values
    for input in ("heaviside", "impulse"):
        small = memory_function(g, t, input=input, amplitudes=[1e-5], method="DOP853", rtol=1e-12, atol=1e-16)
        assert small.method == "exact-flow"
        np.testing.assert_allclose(small.values, closed, rtol=1e-4, atol=1e-12)  # O(amplitude) nonlinearity


def test_adjoint_refuses_contract_models_it_has_no_equations_for():
    import dynmem as dm

    with pytest.raises(TypeError, match=r"`model` must be a CTRNN or a LinearRNN \(the adjoint is written for .*got CTGRU\("):
        dm.adjoint_gradient(dm.CTGRU.random(3, 1, rng=0), dm.step(1), [1.0], [0.0])
