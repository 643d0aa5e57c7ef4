"""The forward kernel's two matrix-product paths (loops below ``_SMALL_WIDTH``, BLAS above) and its
vectorised tanh agree with a literal numpy loop, for every activation, both recurrences and batch sizes."""

import numpy as np
import pytest

from dynmem import recurrences as rc
from dynmem.models import CTRNN, DiscreteRNN


def _numpy_loop(model, X):
    from dynmem.activations import get_activation
    from dynmem.models import recurrence_coefficients

    act = get_activation(model.activation)
    gamma, eta = recurrence_coefficients(model)
    B, T, _ = X.shape
    h = np.zeros((B, model.hidden))
    H, Y = [h], []
    for k in range(T):
        h = gamma * h + eta * act.fn(h @ model.W.T + X[:, k] @ model.U.T + model.b)
        H.append(h)
        Y.append(h @ model.c)
    return np.stack(H, axis=1), np.stack(Y, axis=1)


@pytest.mark.parametrize("activation", ["tanh", "relu", "hardtanh", "identity"])
@pytest.mark.parametrize("kind", ["discrete", "euler"])
@pytest.mark.parametrize("m", [5, 40])  # below and above the kernel's small-width loop threshold
@pytest.mark.parametrize("batch", [1, 16])
def test_forward_kernel_matches_numpy_loop(activation, kind, m, batch):
    assert (m < rc._SMALL_WIDTH) == (m == 5)
    if kind == "discrete":
        model = DiscreteRNN.random(m, 3, activation=activation, bias_scale=0.3, rng=1)
    else:
        model = CTRNN.random(m, 3, activation=activation, rng=2).replace(leak=0.2).discretize(0.1)
    X = 2.0 * np.random.default_rng(0).standard_normal((batch, 25, 3))
    traj = rc.forward(model, X)
    H, Y = _numpy_loop(model, X)
    # The kernel's tanh is within 4 ulp of numpy's, its sums are ordered differently:
    # a few ulp per step, not amplified by a contracting recurrence.
    np.testing.assert_allclose(traj.h, H, rtol=0, atol=1e-13)
    np.testing.assert_allclose(traj.y, Y, rtol=0, atol=1e-13 * max(1.0, np.abs(Y).max()))
    s_ref = {"tanh": lambda z: 1 - np.tanh(z) ** 2, "relu": lambda z: (z > 0) * 1.0,
             "hardtanh": lambda z: (np.abs(z) < 1) * 1.0, "identity": lambda z: np.ones_like(z)}[activation]
    Z = np.einsum("bkm,im->kbi", H[:, :-1], model.W) + np.einsum("bkd,id->kbi", X, model.U) + model.b
    ok = np.abs(np.abs(Z) - 1.0) > 1e-9 if activation == "hardtanh" else np.abs(Z) > 1e-9 if activation == "relu" else True
    np.testing.assert_allclose(np.where(ok, traj._S, 0.0), np.where(ok, s_ref(Z), 0.0), rtol=0, atol=1e-13)
