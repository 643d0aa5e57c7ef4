"""The model contract (dynmem.models): a model defined only here, with nothing but the
contract's methods, gets its memory taken by memory_function; the contract methods of
the built-in models are checked against independent computations."""

from dataclasses import dataclass

import numpy as np
import pytest

import dynmem as dm
from dynmem.memory import memory_function
from dynmem.models import ContinuousModel, DiscreteModel


@dataclass(frozen=True)
class SaturatedLeak:
    """dh/dt = -lam h + tanh(x) (m = d = 1), y = h: a nonlinear toy known in closed form.

    Heaviside input x from h = 0: h(t) = tanh(x) (1 - e^{-lam t}), dy/dt = tanh(x) e^{-lam t},
    so M(t) = sup_a tanh(a)/a e^{-lam t}, attained at the smallest amplitude searched.
    """

    lam: float = 0.7
    hidden: int = 1
    inputs: int = 1

    @property
    def c(self):
        return np.ones(1)

    def vector_field(self, H, X):
        return -self.lam * np.asarray(H) + np.tanh(np.asarray(X))

    def jacobian(self, H, X):
        return np.full((np.shape(H)[0], 1, 1), -self.lam)

    def equilibrium(self, X):
        return np.tanh(np.asarray(X)) / self.lam

    def impulse_kick(self, X):
        return np.asarray(X, dtype=float)  # area x moves h by x (the tanh is ~linear for a short pulse)

    def linearize(self, h_star=None):
        return dm.LinearRNN([[-self.lam]], [[1.0]], [1.0])


@dataclass(frozen=True)
class GeometricCounter:
    """s_{k+1} = a s_k + x_k, y_k = s_{k+1}: the step response differences are a^k x."""

    a: float = 0.8
    inputs: int = 1
    state_size: int = 1
    dt: float = 1.0

    def outputs(self, X, S0):
        X = np.asarray(X)
        s = np.asarray(S0, dtype=float)[:, 0].copy()
        out = np.empty(X.shape[:2])
        for k in range(X.shape[1]):
            s = self.a * s + X[:, k, 0]
            out[:, k] = s
        return out

    def readout(self, S):
        return np.asarray(S)[:, 0]

    def equilibrium(self, X):
        return np.asarray(X, dtype=float) / (1.0 - self.a)


def test_toy_models_satisfy_the_contract_and_nothing_else_is_needed():
    assert isinstance(SaturatedLeak(), ContinuousModel) and not isinstance(SaturatedLeak(), DiscreteModel)
    assert isinstance(GeometricCounter(), DiscreteModel) and not isinstance(GeometricCounter(), ContinuousModel)


@pytest.mark.parametrize("method", ["DOP853", "Radau"])
def test_memory_of_a_contract_only_continuous_model(method):
    toy = SaturatedLeak()
    t = np.linspace(0.0, 6.0, 13)
    res = memory_function(toy, t, method=method, rtol=1e-11, atol=1e-13)
    amps = np.array([0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0])
    expected = np.max(np.tanh(amps) / amps) * np.exp(-toy.lam * t)
    assert res.method == "exact-flow" and res.success
    tol = 1e-9 if method == "DOP853" else 1e-6  # Radau's error at rtol 1e-11 is larger
    np.testing.assert_allclose(res.values, expected, rtol=tol, atol=1e-14)
    # The reversed input: from rest tanh(x)/lam, switched off: y = tanh(x)/lam e^{-lam t}, |dy/dt| = tanh(x) e^{-lam t}.
    rev = memory_function(toy, t, input="reversed", method=method, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(rev.values, expected, rtol=tol, atol=1e-14)
    # The impulse input kicks the state by x: |y(t)| / |x| = e^{-lam t}.
    imp = memory_function(toy, t, input="impulse", method=method, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(imp.values, np.exp(-toy.lam * t), rtol=tol, atol=1e-14)


@pytest.mark.parametrize("input", ["heaviside", "impulse", "reversed"])
def test_memory_of_a_contract_only_discrete_model(input):
    toy = GeometricCounter()
    k = np.arange(0, 30)
    res = memory_function(toy, k, input=input, amplitudes=[1.0])
    assert res.method == "step-differences"
    np.testing.assert_allclose(res.values, toy.a ** k, rtol=1e-12)


def test_ctrnn_contract_methods_against_differences_and_the_simulator():
    model = dm.CTRNN.random(4, 2, bias_scale=0.3, rng=5).replace(leak=0.4)
    rng = np.random.default_rng(1)
    H, X = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    F = model.vector_field(H, X)
    ref = np.tanh(H @ model.W.T + X @ model.U.T + model.b) - 0.4 * H
    np.testing.assert_allclose(F, ref, rtol=1e-14)
    J = model.jacobian(H, X)
    for i in range(3):  # complex-step columns of df/dh
        cols = [np.imag(np.tanh((H[i] + 1e-30j * e) @ model.W.T + X[i] @ model.U.T + model.b) - 0.4 * (H[i] + 1e-30j * e))
                / 1e-30 for e in np.eye(4)]
        np.testing.assert_allclose(J[i], np.array(cols).T, rtol=1e-13, atol=1e-15)
    Hs = model.equilibrium(X)
    np.testing.assert_allclose(model.vector_field(Hs, X), 0.0, atol=1e-9)  # hybr stops at xtol 1.5e-8 (relative)
    # Linearisation at the zero-input rest state: its memory equals the small-amplitude memory of the model.
    lin = model.linearize()
    h_star = model.equilibrium(np.zeros((1, 2)))[0]
    np.testing.assert_allclose(lin.W, model.jacobian(h_star[None], np.zeros((1, 2)))[0], rtol=1e-14)
    t = np.linspace(0, 4, 9)
    small = memory_function(model, t, amplitudes=[1e-5], method="DOP853", rtol=1e-12, atol=1e-16).values
    np.testing.assert_allclose(small, memory_function(lin, t).values, rtol=1e-4)  # O(amplitude) nonlinearity


def test_discrete_contract_methods_agree_with_forward():
    model = dm.DiscreteRNN.random(3, 2, bias_scale=0.2, rng=2)
    X = np.random.default_rng(0).standard_normal((2, 5, 2))
    S0 = np.random.default_rng(1).standard_normal((2, 3))
    np.testing.assert_array_equal(model.outputs(X, S0), dm.recurrences.forward(model, X, h0=S0).y)
    x = np.array([[0.3, -0.1]])
    s = model.equilibrium(x)
    np.testing.assert_allclose(s, np.tanh(s @ model.W.T + x @ model.U.T + model.b), atol=1e-13)
    assert model.dt == 1.0 and model.state_size == 3
    e = dm.CTRNN.random(3, 1, rng=0).discretize(0.05)
    assert isinstance(e, DiscreteModel) and e.dt == 0.05
