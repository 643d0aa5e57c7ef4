"""Lyapunov spectrum of Lorenz's system written as a user model, and of a chaotic tanh RNN along its input."""

import numpy as np
import dynmem as dm


class Lorenz:
    hidden, inputs = 3, 1

    def vector_field(self, H, X):
        x, y, z = H.T
        return np.stack([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z], axis=1)

    def jacobian(self, H, X):
        x, y, z = H.T
        J = np.zeros((H.shape[0], 3, 3))
        J[:, 0, :2] = -10, 10
        J[:, 1, 0], J[:, 1, 1], J[:, 1, 2] = 28 - z, -1, -x
        J[:, 2, 0], J[:, 2, 1], J[:, 2, 2] = y, x, -8 / 3
        return J


s0 = np.array([1.0, 1.0, 20.0]) + np.random.default_rng(0).standard_normal((40, 3))
res = dm.lyapunov_spectrum(Lorenz(), s0=s0, t_end=100.0, transient=20.0, reorth=0.5, rtol=1e-8, atol=1e-10, rng=0)
print("Lorenz:", np.array2string(res.exponents, precision=4), "+-", np.array2string(res.stderr, precision=4),
      f"Kaplan-Yorke {res.kaplan_yorke:.4f} (known 0.9056, 0, -14.572)")
net = dm.DiscreteRNN.random(64, spectral_radius=3.0, rng=1)
X = 0.1 * np.random.default_rng(2).standard_normal((2000, 1))
r = dm.lyapunov_spectrum(net, X=X, transient=500, k=5, rng=0)
print("tanh RNN (gain 3), leading 5:", np.array2string(r.exponents, precision=4))
