"""The README quickstart: simulate a CTRNN and compute gradients two ways.

``sim.h`` is the state, shape (n, m); ``sim.y`` the read-out c^T h (solve_ivp's ``sol.y`` is the state).
``dynmem quickstart`` makes the same calls on a larger model, with timings and a figure.
"""

import numpy as np
import dynmem as dm

model = dm.CTRNN.random(8, 2, spectral_abscissa=-0.5, rng=0)      # alpha(W) = -0.5
x = dm.PiecewiseConstant([0, 1, 3, 6], [[1, 0], [0, -1], [0.5, 0.5]])
sim = dm.simulate(model, x, np.linspace(0, 6, 61))                 # compiled dopri5, knot to knot
g = dm.adjoint_gradient(model, x, [2.0, 4.0, 6.0], [0.1, -0.2, 0.0])
X = np.random.default_rng(0).standard_normal((4, 100, 2))          # (batch, T, d)
b = dm.value_and_grad(model.discretize(0.1), X, np.zeros((4, 100)))
print(sim.y[-1], g.loss, g.grad.W.shape, b.loss, b.dh0.shape)
