"""Stacked models (dynmem.stack): composition, BPTT, torch multi-layer modules, memory, validation.

References, each independent of the code under test:

* composition - every layer run on its own through its family's public forward pass (``forward``,
  ``gated_forward``, the SSM's one-step map), the stack's features and outputs must equal it;
* gradients - complex-step derivatives (step 1e-30, no cancellation) through a numpy transcription of
  the layers' equations written in this file (the stack's compiled numba kernels cannot carry complex
  numbers, so the complex step runs through this reference; the reference itself is checked against the
  compiled forward pass to 1e-13 first);
* torch - tests/fixtures/torch_stacks.npz, written by tests/fixtures/make_torch_stack_fixtures.py with
  torch 2.13.0 (float64, 2- and 3-layer nn.RNN/GRU/LSTM): outputs, loss and autograd gradients to 1e-12;
* memory - a linear stack's memory is the absolute value of its composed impulse response, the
  discrete convolution of the layers' kernels ``c^T ... K_l * K_{l-1} * ...`` with ``K_l(j) = A_l^j B_l``.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynmem.gated import GRUCell, LSTMCell, gated_forward
from dynmem.interop import from_state_dict
from dynmem.memory import memory_function
from dynmem.models import DiscreteModel, DiscreteRNN, EulerRNN, SequenceLayer, Trainable
from dynmem.recurrences import forward
from dynmem.ssm import DiagonalSSM, DiscreteDiagonalSSM
from dynmem.stack import Stack, StackGradient

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "torch_stacks.npz")
KINDS = ("rnn", "euler", "gru", "lstm", "ssm")


def make_layer(kind, m, d, rng):
    if kind == "rnn":
        return DiscreteRNN.random(m, d, spectral_radius=0.8, bias_scale=0.3, rng=rng)
    if kind == "euler":
        return EulerRNN(0.5 * rng.standard_normal((m, m)), rng.standard_normal((m, d)), 0.3 * rng.standard_normal(m),
                        rng.standard_normal(m), dt=1.0, leak=0.5)
    if kind == "gru":
        return GRUCell.random(m, d, scale=0.8, rng=rng)
    if kind == "lstm":
        return LSTMCell.random(m, d, scale=0.8, rng=rng)
    return DiagonalSSM.random(m, d, rng=rng).discretize(1.0)


def make_stack(kinds, widths, d, rng, nonlinearity="identity", dt_euler=False):
    layers, width_in = [], d
    for kind, m in zip(kinds, widths):
        layer = make_layer(kind, m, width_in, rng)
        layers.append(layer)
        width_in = layer.feature_size
    return Stack(layers, nonlinearity=nonlinearity)


# ---------------------------------------------------------------------------
# a numpy transcription of the layers (complex-safe), for complex-step derivatives


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _act(name, v):
    return {"identity": v, "tanh": np.tanh(v)}[name]


def _unpack(layer, theta):
    out, i = {}, 0
    for name, shape in layer.param_shapes.items():
        size = int(np.prod(shape))
        out[name] = theta[i:i + size].reshape(shape)
        i += size
    return out


def ref_layer(layer, theta, U, s0):
    """Features (B, T, p) and outputs (B, T) of one layer from flat parameters theta (complex allowed)."""
    B, T, _ = U.shape
    if isinstance(layer, (DiscreteRNN, EulerRNN)):
        p = _unpack(layer, theta)
        gamma, eta = (0.0, 1.0) if isinstance(layer, DiscreteRNN) else (1.0 - layer.dt * layer.leak, layer.dt)
        h, F = s0, []
        for k in range(T):
            h = gamma * h + eta * _act(layer.activation, h @ p["W"].T + U[:, k] @ p["U"].T + p["b"])
            F.append(h)
        F = np.stack(F, axis=1)
        return F, F @ p["c"]
    if isinstance(layer, (GRUCell, LSTMCell)):
        p = _unpack(layer, theta)
        m = layer.hidden
        h, F = s0[:, :m], []
        s = s0[:, m:]
        for k in range(T):
            gi = U[:, k] @ p["weight_ih"].T + p["bias_ih"]
            gh = h @ p["weight_hh"].T + p["bias_hh"]
            if isinstance(layer, GRUCell):
                r = _sig(gi[:, :m] + gh[:, :m])
                z = _sig(gi[:, m:2 * m] + gh[:, m:2 * m])
                n = np.tanh(gi[:, 2 * m:] + r * gh[:, 2 * m:])
                h = (1 - z) * n + z * h
            else:
                a = gi + gh
                i_, f_, g_, o_ = _sig(a[:, :m]), _sig(a[:, m:2 * m]), np.tanh(a[:, 2 * m:3 * m]), _sig(a[:, 3 * m:])
                s = f_ * s + i_ * g_
                h = o_ * np.tanh(s)
            F.append(h)
        F = np.stack(F, axis=1)
        return F, F @ p["c"]
    # DiscreteDiagonalSSM in its real form on the flat state (Re h, Im h)
    m, d = layer.hidden, layer.inputs
    lr, li = theta[:m], theta[m:2 * m]
    Br, Bi = theta[2 * m:2 * m + m * d].reshape(m, d), theta[2 * m + m * d:2 * m + 2 * m * d].reshape(m, d)
    j = 2 * m + 2 * m * d
    Cr, Ci, D = theta[j:j + m], theta[j + m:j + 2 * m], theta[j + 2 * m:]
    A = np.block([[np.diag(lr), -np.diag(li)], [np.diag(li), np.diag(lr)]])
    Bm = np.vstack([Br, Bi])
    cr = np.concatenate([Cr, -Ci])
    s, F = s0, []
    for k in range(T):
        s = s @ A.T + U[:, k] @ Bm.T
        F.append(s)
    F = np.stack(F, axis=1)
    return F, F @ cr + U @ D


def ref_stack(stack, theta, X, S0):
    u, i = X, 0
    for l, (layer, sl) in enumerate(zip(stack.layers, stack.state_slices)):
        F, y = ref_layer(layer, theta[i:i + layer.n_params], u, S0[:, sl])
        i += layer.n_params
        u = _act(stack.nonlinearity, F)
    return y


def ref_loss(stack, theta, X, S0, Y):
    r = ref_stack(stack, theta, X, S0) - Y
    return np.mean(r * r)


def complex_step(f, x, v, h=1e-30):
    return np.imag(f(x + 1j * h * v)) / h


# ---------------------------------------------------------------------------
# composition


def _layer_alone(layer, U, s0):
    """Features of one layer from its family's own public forward pass (independent of the stack)."""
    if isinstance(layer, (DiscreteRNN, EulerRNN)):
        return forward(layer, U, h0=s0).h[:, 1:]
    if isinstance(layer, (GRUCell, LSTMCell)):
        m = layer.hidden
        kw = {"s0": s0[:, m:]} if isinstance(layer, LSTMCell) else {}
        return gated_forward(layer, U, h0=s0[:, :m], **kw).h[:, 1:]
    s, F = s0, []
    for k in range(U.shape[1]):  # the SSM's one-step map (DiscreteMap)
        s = layer.step(s, U[:, k])
        F.append(s)
    return np.stack(F, axis=1)


@pytest.mark.parametrize("nonlinearity", ["identity", "tanh"])
def test_stack_equals_layer_by_layer_evaluation(nonlinearity):
    rng = np.random.default_rng(1)
    stack = make_stack(["gru", "ssm", "lstm", "rnn"], [3, 2, 4, 3], 2, rng, nonlinearity)
    X = rng.standard_normal((2, 9, 2))
    S0 = 0.3 * rng.standard_normal((2, stack.state_size))
    tr = stack.forward(X, S0)
    u = X
    for l, (layer, sl) in enumerate(zip(stack.layers, stack.state_slices)):
        F = _layer_alone(layer, u, S0[:, sl])
        np.testing.assert_allclose(tr.features[l], F, rtol=0, atol=1e-14)
        top_y = layer.outputs(u, S0[:, sl])
        u = np.tanh(F) if nonlinearity == "tanh" else F
    np.testing.assert_allclose(tr.y, top_y, rtol=0, atol=1e-14)
    np.testing.assert_allclose(stack.outputs(X, S0), tr.y, rtol=0, atol=0)


def test_reference_transcription_matches_the_compiled_forward():
    rng = np.random.default_rng(2)
    for kinds in (["rnn", "gru"], ["lstm", "ssm", "euler"]):
        stack = make_stack(kinds, [3, 2, 2], 2, rng, "tanh")
        X = rng.standard_normal((2, 6, 2))
        S0 = 0.2 * rng.standard_normal((2, stack.state_size))
        np.testing.assert_allclose(ref_stack(stack, stack.flatten(), X, S0), stack.outputs(X, S0), rtol=0, atol=1e-13)


def test_stack_is_on_the_model_contract():
    stack = make_stack(["gru", "rnn"], [3, 2], 1, np.random.default_rng(0))
    assert isinstance(stack, DiscreteModel) and isinstance(stack, Trainable) and isinstance(stack, SequenceLayer)
    assert stack.state_size == 5 and stack.depth == 2 and stack.inputs == 1 and stack.dt == 1.0
    np.testing.assert_array_equal(stack.unflatten(stack.flatten()).flatten(), stack.flatten())
    assert len(stack.param_names) == 9 and stack.param_names[0] == "layers[0].weight_ih"
    assert "Stack([GRUCell(hidden=3, inputs=1)" in repr(stack)


# ---------------------------------------------------------------------------
# BPTT against complex step (hypothesis)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
       widths=st.lists(st.integers(1, 4), min_size=3, max_size=3), d=st.integers(1, 3), B=st.integers(1, 3),
       T=st.integers(1, 6), nonlinearity=st.sampled_from(["identity", "tanh"]), loss=st.sampled_from(["mse", "sse"]))
def test_stack_bptt_matches_complex_step(seed, kinds, widths, d, B, T, nonlinearity, loss):
    rng = np.random.default_rng(seed)
    stack = make_stack(kinds, widths, d, rng, nonlinearity)
    X = rng.standard_normal((B, T, d))
    Y = rng.standard_normal((B, T))
    S0 = 0.3 * rng.standard_normal((B, stack.state_size))
    res = stack.value_and_grad(X, Y, S0=S0, loss=loss)
    assert isinstance(res, StackGradient)
    theta = stack.flatten()

    def L(th, x, s):
        r = ref_stack(stack, th, x, s) - Y
        return 0.5 * np.sum(r * r) if loss == "sse" else np.mean(r * r)

    assert res.loss == pytest.approx(float(np.real(L(theta, X, S0))), rel=1e-12)
    for _ in range(2):
        v = rng.standard_normal(theta.size)
        want = complex_step(lambda th: L(th, X, S0), theta, v)
        assert res.flat @ v == pytest.approx(want, rel=1e-9, abs=1e-12)
    vx = rng.standard_normal(X.shape)
    assert np.sum(res.dX * vx) == pytest.approx(complex_step(lambda x: L(theta, x, S0), X, vx), rel=1e-9, abs=1e-12)
    vs = rng.standard_normal(S0.shape)
    assert np.sum(res.dS0 * vs) == pytest.approx(complex_step(lambda s: L(theta, X, s), S0, vs), rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(np.concatenate(res.layers), res.flat)


def test_every_parameter_gradient_entry_against_complex_step():
    # Entry by entry (not only along random directions) on one mixed stack.
    rng = np.random.default_rng(7)
    stack = make_stack(["lstm", "ssm", "gru", "euler"], [2, 2, 3, 2], 2, rng, "tanh")
    X, Y = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 5))
    S0 = 0.3 * rng.standard_normal((2, stack.state_size))
    res = stack.value_and_grad(X, Y, S0=S0)
    theta = stack.flatten()
    cs = np.array([complex_step(lambda th: ref_loss(stack, th, X, S0, Y), theta, e) for e in np.eye(theta.size)])
    np.testing.assert_allclose(res.flat, cs, rtol=1e-9, atol=1e-13)
    # the lower layers' read-outs are not used: their gradients are exactly zero
    i = 0
    for layer, g in zip(stack.layers[:-1], res.layers[:-1]):
        names = list(layer.param_shapes)
        sizes = [int(np.prod(s)) for s in layer.param_shapes.values()]
        offsets = np.cumsum([0] + sizes)
        for name in ("c", "C.real", "C.imag"):
            if name in names:
                k = names.index(name)
                assert np.all(g[offsets[k]:offsets[k + 1]] == 0)


def test_shared_initial_state_gradient_is_the_batch_sum():
    rng = np.random.default_rng(3)
    stack = make_stack(["rnn", "lstm"], [3, 2], 1, rng)
    X, Y = rng.standard_normal((3, 4, 1)), rng.standard_normal((3, 4))
    s0 = 0.2 * rng.standard_normal(stack.state_size)
    shared = stack.value_and_grad(X, Y, S0=s0)
    full = stack.value_and_grad(X, Y, S0=np.tile(s0, (3, 1)))
    assert shared.dS0.shape == (stack.state_size,)
    np.testing.assert_allclose(shared.dS0, full.dS0.sum(axis=0), rtol=1e-14, atol=1e-16)


# ---------------------------------------------------------------------------
# torch multi-layer modules (stored numbers, no torch needed)


def _fixture(prefix):
    with np.load(FIXTURE) as f:
        return {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(prefix + "/")}


def test_fixture_is_torch_2_13_float64():
    with np.load(FIXTURE) as f:
        assert str(f["torch_version"]).startswith("2.13.0")
        assert all(f[k].dtype == np.float64 for k in f.files if k != "torch_version")


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("depth", [2, 3])
def test_multilayer_torch_modules_to_1e12(kind, depth):
    d = _fixture(f"{kind}{depth}")
    state = {k: v for k, v in d.items() if k.startswith(("weight_", "bias_"))}
    stack = from_state_dict(kind, state, readout=d["c"])
    assert isinstance(stack, Stack) and stack.depth == depth and stack.nonlinearity == "identity"
    parts = []
    for layer in range(depth):
        parts.append(d["h0"][layer])
        if kind == "lstm":
            parts.append(d["s0"][layer])
    S0 = np.concatenate(parts, axis=1)
    tr = stack.forward(d["X"], S0)
    np.testing.assert_allclose(tr.features[-1], d["H"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(tr.y, d["y"], rtol=0, atol=1e-13)
    res = stack.value_and_grad(d["X"], d["Y"], S0=S0)
    assert res.loss == pytest.approx(float(d["loss"]), rel=1e-12)

    def close(got, want, what):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * max(1.0, np.max(np.abs(want))), err_msg=what)

    for layer, (model, g) in enumerate(zip(stack.layers, res.layers)):
        grads = {}
        i = 0
        for name, shape in model.param_shapes.items():
            size = int(np.prod(shape))
            grads[name] = g[i:i + size].reshape(shape)
            i += size
        if kind == "rnn":
            close(grads["W"], d[f"grad_weight_hh_l{layer}"], f"W_l{layer}")
            close(grads["U"], d[f"grad_weight_ih_l{layer}"], f"U_l{layer}")
            close(grads["b"], d[f"grad_bias_ih_l{layer}"], f"b_l{layer}")
            close(grads["b"], d[f"grad_bias_hh_l{layer}"], f"b_l{layer}")
        else:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                close(grads[name], d[f"grad_{name}_l{layer}"], f"{name}_l{layer}")
        if layer == depth - 1:
            close(grads["c"], d["grad_c"], "c")
    close(res.dX, d["grad_X"], "X")
    for layer, sl in enumerate(stack.state_slices):
        m = stack.layers[layer].hidden
        close(res.dS0[:, sl][:, :m], d["grad_h0"][layer], f"h0_l{layer}")
        if kind == "lstm":
            close(res.dS0[:, sl][:, m:], d["grad_s0"][layer], f"s0_l{layer}")


def test_multilayer_state_dict_through_an_npz_file(tmp_path):
    d = _fixture("gru2")
    path = tmp_path / "gru2.npz"
    np.savez(path, c=d["c"], **{k: v for k, v in d.items() if k.startswith(("weight_", "bias_"))})
    stack = from_state_dict("gru", path)
    np.testing.assert_allclose(stack.outputs(d["X"], np.concatenate(list(d["h0"]), axis=1)), d["y"], atol=1e-13)
    assert np.all(stack.layers[0].c == 0)


def test_multilayer_state_dict_refusals():
    d = _fixture("lstm2")
    state = {k: v for k, v in d.items() if k.startswith(("weight_", "bias_"))}
    with pytest.raises(ValueError, match=r"`state` must hold weight_ih_l1 for layer 1 of 2"):
        from_state_dict("lstm", {k: v for k, v in state.items() if k != "weight_ih_l1"}, readout=d["c"])
    with pytest.raises(ValueError, match=r"unidirectional layers \(bidirectional=False\).*weight_ih_l0_reverse"):
        from_state_dict("lstm", {**state, "weight_ih_l0_reverse": d["weight_ih_l0"]}, readout=d["c"])
    with pytest.raises(ValueError, match=r"`readout` must be given"):
        from_state_dict("lstm", state)


# ---------------------------------------------------------------------------
# memory of stacks


def test_linear_stack_memory_is_the_composed_impulse_response():
    rng = np.random.default_rng(5)
    l1 = DiscreteRNN.random(3, 1, spectral_radius=0.8, activation="identity", rng=rng)
    l2 = DiagonalSSM.random(2, 3, rng=rng).discretize(1.0)
    l3 = DiscreteRNN.random(3, 4, spectral_radius=0.7, activation="identity", rng=rng)
    stack = Stack([l1, l2, l3])
    assert stack.is_linear
    n = 30
    # kernels K_l(j) = A_l^j B_l of the features f_k = s_{k+1} (feature = state for these layers)
    kernels = []
    for layer in (l1, l2, l3):
        A, Bm, _, _ = layer.linear_system()
        K, P = [], np.eye(A.shape[0])
        for _ in range(n):
            K.append(P @ Bm)
            P = A @ P
        kernels.append(K)
    total = kernels[0]
    for K in kernels[1:]:
        total = [sum(K[j] @ total[k - j] for j in range(k + 1)) for k in range(n)]
    resp = np.array([float(l3.c @ total[k][:, 0]) for k in range(n)])
    t = np.arange(n)
    for inp in ("heaviside", "impulse"):
        res = memory_function(stack, t, input=inp)
        np.testing.assert_allclose(res.values, np.abs(resp), rtol=1e-10, atol=1e-15)


def test_nonlinear_stack_memory_runs_on_the_contract_and_decays():
    rng = np.random.default_rng(6)
    stack = make_stack(["gru", "lstm"], [4, 4], 1, rng, "tanh")
    t = np.arange(40)
    H = memory_function(stack, t, input="heaviside")
    I = memory_function(stack, t, input="impulse")
    assert H.success and I.success and H.method == "step-differences"
    # the Heaviside memory at step k is sup_x |y_k - y_{k-1}| over the probes: recompute one probe directly
    x = np.array([[1.0]])
    s_star = stack.equilibrium(np.zeros((1, 1)))
    y = stack.outputs(np.repeat(x[:, None, :], 40, axis=1), s_star)[0]
    Y = np.concatenate([[stack.readout(s_star)[0]], y])
    assert np.all(H.values >= np.abs(np.diff(Y)) - 1e-15)
    assert H.values[-1] < 1e-2 * H.values.max()


def test_stack_equilibrium_is_a_fixed_point_of_the_stack():
    rng = np.random.default_rng(8)
    stack = make_stack(["gru", "rnn"], [3, 3], 2, rng, "tanh")
    x = np.array([[0.3, -0.2]])
    s = stack.equilibrium(x)
    out = stack.forward(np.repeat(x[:, None], 3, axis=1), s)
    for l, sl in enumerate(stack.state_slices):
        np.testing.assert_allclose(out.features[l][0, -1], stack.layers[l].features(s[:, sl])[0], atol=1e-12)


# ---------------------------------------------------------------------------
# validation


def test_validation_names_argument_rule_and_value():
    rng = np.random.default_rng(0)
    gru = GRUCell.random(3, 2, rng=rng)
    with pytest.raises(ValueError, match=r"`layers` must hold at least one model"):
        Stack([])
    with pytest.raises(TypeError, match=r"`layers` must be a sequence"):
        Stack(gru)
    with pytest.raises(ValueError, match=r"`layers\[1\]` must read inputs of width 3 \(the feature width of "
                                         r"layers\[0\]\); got inputs = 2"):
        Stack([gru, GRUCell.random(3, 2, rng=rng)])
    with pytest.raises(TypeError, match=r"`layers\[1\]` must be a discrete model.*discretize\(dt\)"):
        Stack([gru, DiagonalSSM.random(2, 3, rng=rng)])
    with pytest.raises(ValueError, match=r"`layers` must share one time step dt; got dt = \[1.0, 0.5\]"):
        Stack([gru, DiagonalSSM.random(2, 3, rng=rng).discretize(0.5)])
    with pytest.raises(ValueError, match=r"`nonlinearity`"):
        Stack([gru], nonlinearity="softsign")
    stack = Stack([gru, DiscreteRNN.random(2, 3, rng=rng)])
    with pytest.raises(ValueError, match=r"`X` must have shape \(batch, T, 2\).*got shape \(4, 2\).*X\[None\]"):
        stack.forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"`S0` must have shape \(5,\) or \(1, 5\).*got shape \(4,\)"):
        stack.forward(np.zeros((1, 3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"`theta` must have length"):
        stack.unflatten(np.zeros(3))
    with pytest.raises(ValueError, match=r"`Y` must have shape"):
        stack.value_and_grad(np.zeros((1, 3, 2)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"`loss`"):
        stack.value_and_grad(np.zeros((1, 3, 2)), np.zeros((1, 3)), loss="l1")
    other = stack.forward(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"`trajectory` must come from forward\(\) of this same stack"):
        stack.replace(nonlinearity="tanh").backward(other, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"`depth` is not a field of Stack"):
        stack.replace(depth=3)


def test_a_stack_of_stacks_is_the_flat_stack():
    rng = np.random.default_rng(9)
    flat = make_stack(["gru", "rnn", "lstm"], [3, 2, 2], 2, rng, "tanh")
    nested = Stack([Stack(flat.layers[:2], nonlinearity="tanh"), flat.layers[2]], nonlinearity="tanh")
    X, Y = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 5))
    S0 = 0.3 * rng.standard_normal((2, flat.state_size))
    a, b = flat.value_and_grad(X, Y, S0=S0), nested.value_and_grad(X, Y, S0=S0)
    assert a.loss == b.loss
    for x, y in ((a.flat, b.flat), (a.dX, b.dX), (a.dS0, b.dS0)):
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-16)


def test_train_trains_a_stack_through_the_trainable_contract():
    import dynmem as dm

    rng = np.random.default_rng(12)
    stack = make_stack(["gru", "ssm"], [4, 3], 1, rng, "tanh")
    X = rng.standard_normal((8, 20, 1))
    Y = np.cumsum(X[..., 0], axis=1) * 0.1  # a leaky-integrator target
    res = dm.train(stack, X, Y, steps=150, lr=1e-2, rng=0)
    first = float(np.mean((stack.outputs(X, None) - Y) ** 2))
    final = float(np.mean((res.model.outputs(X, None) - Y) ** 2))
    assert isinstance(res.model, Stack) and final < 0.5 * first


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm", "ssm"])
def test_layer_backward_refuses_a_pass_of_another_model(kind):
    rng = np.random.default_rng(13)
    a, b = make_layer(kind, 3, 2, rng), make_layer(kind, 3, 2, rng)
    passed = a.sequence_forward(rng.standard_normal((1, 4, 2)))
    with pytest.raises(ValueError, match=r"`passed` must be the LayerPass of .* with this same `model`"):
        b.sequence_backward(passed, dy=np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"`dF` must have shape|`dF`"):
        a.sequence_backward(passed, dF=np.zeros((1, 4, a.feature_size + 1)))


# ---------------------------------------------------------------------------
# the stack as a map: step, Jacobian, fixed points


@pytest.mark.parametrize("nonlinearity", ["identity", "tanh"])
def test_stack_step_is_one_step_of_the_run_and_its_jacobian_matches_differences(nonlinearity):
    from dynmem.models import DiscreteMap

    rng = np.random.default_rng(14)
    stack = make_stack(["lstm", "ssm", "gru", "rnn", "euler"], [2, 2, 3, 2, 2], 2, rng, nonlinearity)
    assert isinstance(stack, DiscreteMap)
    S = 0.4 * rng.standard_normal((3, stack.state_size))
    X = rng.standard_normal((3, 2))
    new = stack.step(S, X)
    tr = stack.forward(X[:, None, :], S)
    for l, (layer, sl) in enumerate(zip(stack.layers, stack.state_slices)):
        np.testing.assert_allclose(layer.features(new[:, sl]), tr.features[l][:, 0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(stack.readout(new), tr.y[:, 0], rtol=0, atol=1e-14)
    J = stack.step_jacobian(S, X)

    def cd(h):
        return np.stack([(stack.step(S + h * e, X) - stack.step(S - h * e, X)) / (2 * h)
                         for e in np.eye(stack.state_size)], axis=2)

    np.testing.assert_allclose(J, (4 * cd(1e-4) - cd(2e-4)) / 3, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm", "ssm"])
def test_step_input_jacobians_match_differences(kind):
    rng = np.random.default_rng(15)
    layer = make_layer(kind, 3, 2, rng)
    S, X = 0.5 * rng.standard_normal((2, layer.state_size)), rng.standard_normal((2, 2))
    Jx = layer.step_input_jacobian(S, X)

    def cd(h):
        return np.stack([(layer.step(S, X + h * e) - layer.step(S, X - h * e)) / (2 * h) for e in np.eye(2)], axis=2)

    np.testing.assert_allclose(Jx, (4 * cd(1e-4) - cd(2e-4)) / 3, rtol=0, atol=1e-9)


def test_fixed_points_and_lyapunov_spectrum_of_a_stack():
    import dynmem as dm
    from dynmem.testing import assert_fixed_point_stable

    rng = np.random.default_rng(16)
    stack = make_stack(["gru", "lstm"], [3, 3], 1, rng, "tanh")
    s_star = stack.equilibrium(np.zeros((1, 1)))[0]
    assert_fixed_point_stable(stack, s_star, tol=1e-12)
    fp = dm.find_fixed_points(stack, starts=s_star[None] + 0.1 * rng.standard_normal((5, stack.state_size)), rng=0)
    assert fp.discrete and fp.stable.shape[0] >= 1
    assert np.min(np.linalg.norm(fp.stable - s_star, axis=1)) < 1e-10
    spec = dm.lyapunov_spectrum(stack, X=np.zeros((3000, 1)), s0=s_star, transient=1000, rng=0)
    # at a stable fixed point under zero input the exponents are the log-moduli of the Jacobian's eigenvalues
    eig = np.sort(np.log(np.abs(np.linalg.eigvals(stack.step_jacobian(s_star[None], np.zeros((1, 1)))[0]))))[::-1]
    np.testing.assert_allclose(spec.exponents[:3], eig[:3], atol=1e-3)  # QR converges as O(1/T) here
    assert abs(spec.exponents.sum() - spec.volume_rate) < 1e-10


def test_linear_stack_as_a_linear_system_norms_and_capacity():
    import dynmem as dm

    rng = np.random.default_rng(17)
    l1 = DiscreteRNN.random(3, 1, spectral_radius=0.8, activation="identity", rng=rng)
    l2 = DiagonalSSM.random(2, 3, rng=rng, feedthrough=True).discretize(1.0)
    l3 = DiscreteRNN.random(2, 4, spectral_radius=0.6, activation="identity", rng=rng)
    stack = Stack([l1, l2, l3])
    A, B, C, D = stack.linear_system()
    # the system reproduces the stack's outputs from any state (independent: the compiled run)
    S0, X = rng.standard_normal((2, stack.state_size)), rng.standard_normal((2, 12, 1))
    s, ys = S0.copy(), []
    for k in range(12):
        ys.append(s @ C.T + X[:, k] @ D.T)
        s = s @ A.T + X[:, k] @ B.T
    np.testing.assert_allclose(np.concatenate(ys, axis=1), stack.outputs(X, S0), rtol=1e-12, atol=1e-13)
    # H2 = sqrt(sum_k g_k^2) of the impulse response g_0 = D, g_k = C A^{k-1} B
    g = [D[0, 0]] + [(C @ np.linalg.matrix_power(A, k - 1) @ B)[0, 0] for k in range(1, 400)]
    assert dm.h2_norm(stack) == pytest.approx(np.sqrt(np.sum(np.square(g))), rel=1e-10)
    # capacity: the stack's state reached by a scalar input has the Kalman rank of (A, B)
    K = np.column_stack([np.linalg.matrix_power(A, k) @ B[:, 0] for k in range(A.shape[0])])
    assert dm.linear_memory_capacity(stack).total == np.linalg.matrix_rank(K)
    with pytest.raises(ValueError, match="the stack must be linear"):
        stack.replace(nonlinearity="tanh").linear_system()
