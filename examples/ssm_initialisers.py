"""LRU ring and S5 HiPPO-N initialisers, and the sensitivity law E|dh/dlambda|^2 = (1 + l^2)/(1 - l^2)^3."""

import numpy as np
import dynmem as dm

lru = dm.lru_ring(256, r_min=0.9, r_max=0.999, max_phase=np.pi / 10, rng=0)
print(f"LRU ring: |lambda| in [{np.abs(lru.Lambda_bar).min():.4f}, {np.abs(lru.Lambda_bar).max():.4f}]")
s5 = dm.hippo_n(64, rng=0)
print(f"HiPPO-N: Re Lambda in [{s5.Lambda.real.min():.4g}, {s5.Lambda.real.max():.4g}]")
res = dm.lambda_sensitivity(np.array([0.5, 0.9, 0.99]), n_sequences=5000, rng=0)
for lam, ms, se, law in zip(res.lam.real, res.mean_square, res.stderr, res.law):
    print(f"lambda = {lam}: Monte Carlo {ms:.4g} +- {se:.2g}, law {law:.4g}")
