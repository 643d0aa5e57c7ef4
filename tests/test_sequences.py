"""The one door for every discrete model (dynmem.models.sequences): dm.forward, dm.value_and_grad, dm.outputs_many.

Each family through the door gives its own function's numbers bit for bit, in one result type per door
(Trajectory, GradientResult, a (y, finite) pair); a model without the capability is refused with a message
that names the argument, the rule and the value.
"""

from __future__ import annotations

import numpy as np
import pytest

import dynmem as dm
from dynmem import recurrences as rec
from dynmem.models import ResidualRNN, ssm_value_and_grad

B, T, D, M = 3, 7, 2, 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)), rng.standard_normal((B, T))


def _families():
    ssm = dm.DiagonalSSM.random(M, D, rng=3)
    return {
        "rnn": dm.DiscreteRNN.random(M, D, spectral_radius=0.8, bias_scale=0.3, rng=1),
        "euler": dm.CTRNN.random(M, D, bias_scale=0.3, rng=2).discretize(0.3),
        "gru": dm.GRUCell.random(M, D, rng=4),
        "lstm": dm.LSTMCell.random(M, D, rng=5),
        "ssm": ssm.discretize(0.5),
        "stack": dm.Stack((dm.GRUCell.random(M, D, rng=6), dm.DiagonalSSM.random(M, M, rng=7).discretize(1.0),
                           dm.DiscreteRNN.random(M, 2 * M, rng=8)), nonlinearity="tanh"),
    }


FAMILIES = tuple(_families())


def _own_forward(model, X):
    """The family's own forward run: (y, h)."""
    if isinstance(model, (dm.GRUCell, dm.LSTMCell)):
        tr = dm.gated_forward(model, X)
        return tr.y, tr.h
    if isinstance(model, dm.DiscreteDiagonalSSM):
        y, _ = model.run(X)
        return y, None
    if isinstance(model, dm.Stack):
        return model.forward(X).y, None
    tr = rec.forward(model, X)
    return tr.y, tr.h


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_through_the_door_is_the_family_function_bit_for_bit(name):
    model = _families()[name]
    X, _ = _data()
    tr = dm.forward(model, X)
    assert isinstance(tr, dm.Trajectory)
    assert tr.model is model
    y, h = _own_forward(model, X)
    np.testing.assert_array_equal(tr.y, y)
    if h is not None:
        np.testing.assert_array_equal(tr.h, h)
    if name == "ssm":  # the door keeps every state; the last is run()'s final state
        np.testing.assert_array_equal(tr.h[:, -1], model.run(X)[1])
    if name == "lstm":
        np.testing.assert_array_equal(tr.detail.s, dm.gated_forward(model, X).s)


def _own_grad(model, X, Y):
    """The family's own gradient: (loss, flat, dh0)."""
    if isinstance(model, (dm.GRUCell, dm.LSTMCell)):
        g = dm.gated_value_and_grad(model, X, Y)
        return g.loss, g.flat, g.dh0
    if isinstance(model, dm.DiscreteDiagonalSSM):
        g = ssm_value_and_grad(model, X, Y)
        return g.loss, g.flat, g.dh0
    if isinstance(model, dm.Stack):
        g = model.value_and_grad(X, Y)
        return g.loss, g.flat, g.dS0
    g = rec.value_and_grad(model, X, Y)
    return g.loss, g.flat, g.dh0


@pytest.mark.parametrize("name", FAMILIES)
def test_value_and_grad_through_the_door_is_the_family_function_bit_for_bit(name):
    model = _families()[name]
    X, Y = _data(1)
    g = dm.value_and_grad(model, X, Y)
    assert isinstance(g, dm.GradientResult)
    loss, flat, dh0 = _own_grad(model, X, Y)
    assert g.loss == loss
    np.testing.assert_array_equal(g.flat, flat)
    np.testing.assert_array_equal(g.dh0, dh0)
    assert g.flat.shape == (model.n_params,)


def test_value_and_grad_passes_the_family_keywords_through():
    X, Y = _data(2)
    lstm = dm.LSTMCell.random(M, D, rng=8)
    h0, s0 = np.full(M, 0.1), np.full(M, -0.2)
    g = dm.value_and_grad(lstm, X, Y, h0=h0, s0=s0, loss="sse")
    own = dm.gated_value_and_grad(lstm, X, Y, h0=h0, s0=s0, loss="sse")
    assert g.loss == own.loss
    np.testing.assert_array_equal(g.detail.ds0, own.ds0)
    ssm = dm.DiagonalSSM.random(M, D, rng=9)  # continuous: trained through its discretisation
    g = dm.value_and_grad(ssm, X, Y, dt=0.3, method="bilinear")
    own = ssm_value_and_grad(ssm, X, Y, dt=0.3, method="bilinear")
    np.testing.assert_array_equal(g.flat, own.flat)
    assert g.grad.keys() == own.grad.keys()


def test_value_and_grad_of_the_residual_net():
    rng = np.random.default_rng(10)
    net = ResidualRNN(U=rng.standard_normal((M, 1)), b=np.zeros(M), c=rng.standard_normal(M) / 2,
                      M=-np.eye(M) + 0.1 * rng.standard_normal((M, M)), dt=0.5)
    X, Y = rng.standard_normal((2, T, 1)), rng.standard_normal((2, T))
    g = dm.value_and_grad(net, X, Y)
    own = net.value_and_grad(X, Y)
    assert g.loss == own.loss
    np.testing.assert_array_equal(g.flat, own.flat)
    assert g.dh0 is None


@pytest.mark.parametrize("name", FAMILIES)
def test_outputs_many_through_the_door(name):
    model = _families()[name]
    X, _ = _data(3)
    rng = np.random.default_rng(11)
    theta = model.flatten()[None] + 1e-2 * rng.standard_normal((3, model.n_params))
    if name in ("rnn", "euler"):  # the compiled kernel, stacked arrays
        params = {k: np.stack([model.unflatten(t).params()[k] for t in theta]) for k in ("W", "U", "b", "c")}
        y, finite = dm.outputs_many(model, params, X)
        y_own, f_own = rec.outputs_many(model, params, X)
        np.testing.assert_array_equal(y, y_own)
        np.testing.assert_array_equal(finite, f_own)
        return
    y, finite = dm.outputs_many(model, theta, X)
    assert y.shape == (3, B, T) and finite.all()
    for q in range(3):
        np.testing.assert_array_equal(y[q], _own_forward(model.unflatten(theta[q]), X)[0])


def test_outputs_many_takes_a_dict_over_param_names():
    gru = dm.GRUCell.random(M, D, rng=12)
    X, _ = _data(4)
    params = {k: np.stack([v, 2 * v]) for k, v in gru.params().items()}
    y, finite = dm.outputs_many(gru, params, X)
    np.testing.assert_array_equal(y[1], dm.gated_forward(gru.replace(**{k: 2 * v for k, v in gru.params().items()}), X).y)
    with pytest.raises(ValueError, match=r"`params` must be a dict with exactly the keys \['weight_ih'"):
        dm.outputs_many(gru, {"W": params["c"]}, X)


def test_outputs_many_marks_a_diverging_variant():
    gru = dm.GRUCell.random(M, D, rng=13)
    rnn = dm.Stack((dm.DiscreteRNN(5.0 * np.eye(M), np.ones((M, D)), np.zeros(M), np.ones(M), activation="identity"),))
    X = np.ones((1, 2000, D))
    y, finite = dm.outputs_many(rnn, rnn.flatten()[None], X)
    assert not finite[0] and np.all(np.isinf(y[0]))
    y, finite = dm.outputs_many(gru, gru.flatten()[None], X)
    assert finite[0]


@pytest.mark.parametrize("door, args, rule", [
    (dm.forward, (np.zeros((1, 2, 1)),), "a `forward` method"),
    (dm.value_and_grad, (np.zeros((1, 2, 1)), np.zeros((1, 2))), "its own gradient"),
    (dm.outputs_many, ({}, np.zeros((1, 2, 1))), "stacked outputs"),
])
def test_a_model_without_the_capability_is_refused_by_name(door, args, rule):
    ctrnn = dm.CTRNN.random(3, 1, rng=0)
    with pytest.raises(TypeError, match=rf"`model` must be a discrete model with {rule}.*; got CTRNN\(hidden=3"):
        door(ctrnn, *args)
    with pytest.raises(TypeError, match=r"`model` must be a discrete model .*; got 'm'\."):
        door("m", *args)
