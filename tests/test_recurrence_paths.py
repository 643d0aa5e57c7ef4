"""The two forward implementations (numba kernel, blocked numpy) agree."""

import numpy as np
import pytest

from dynmem import recurrences as rc
from dynmem.models import CTRNN, DiscreteRNN


@pytest.mark.parametrize("activation", ["tanh", "relu", "hardtanh", "identity"])
@pytest.mark.parametrize("kind", ["discrete", "euler"])
@pytest.mark.parametrize("m", [5, 40])  # below and above the kernel's small-width loop threshold
def test_blocked_and_kernel_paths_agree(monkeypatch, activation, kind, m):
    assert (m < rc._SMALL_WIDTH) == (m == 5)
    if kind == "discrete":
        model = DiscreteRNN.random(m, 3, activation=activation, bias_scale=0.3, rng=1)
    else:
        model = CTRNN.random(m, 3, activation=activation, rng=2).replace(leak=0.2).discretize(0.1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 25, 3))
    Y = rng.standard_normal((8, 25))
    results = []
    for threshold in (1, 10**9):  # force the numpy path, then the numba kernel
        monkeypatch.setattr(rc, "_BLOCKED_MIN_SIZE", threshold)
        traj = rc.forward(model, X)
        grad = rc.value_and_grad(model, X, Y)
        results.append((traj.h, traj._S, grad.flat, grad.loss))
    (h1, s1, g1, l1), (h2, s2, g2, l2) = results
    # Both evaluate the same arithmetic; only tanh differs (numpy SIMD vs libm), by an ulp or so.
    np.testing.assert_allclose(h1, h2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    assert abs(l1 - l2) <= 1e-13 * max(1.0, abs(l1))
