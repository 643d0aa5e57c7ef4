"""Memory capacity: the exact linear total (the controllability rank) against the regression estimate."""

import numpy as np
import dynmem as dm

rng = np.random.default_rng(3)
m = 64
Q = np.linalg.qr(rng.standard_normal((m, m)))[0]
W = Q @ np.diag(np.linspace(-0.95, 0.95, m)) @ Q.T          # normal, but an ill-conditioned Krylov basis
model = dm.DiscreteRNN(W, (Q @ np.ones(m) / np.sqrt(m))[:, None], np.zeros(m), np.ones(m), activation="identity")
exact = dm.linear_memory_capacity(model)
reg = dm.memory_capacity(model, n_samples=20000, max_delay=200, rng=1)
print(f"exact MC = {exact.total} (rank, {exact.method}); regression MC = {reg.total:.2f} "
      f"from N = {reg.n_samples} samples (in-sample bias about {reg.total_bias:.2f})")
tanh_net = dm.DiscreteRNN.random(32, spectral_radius=0.9, input_scale=0.2, rng=0)
print(f"tanh network: MC = {dm.memory_capacity(tanh_net, n_samples=10000, rng=0).total:.2f} of 32")
