"""Fixed points of a Hopfield-type CTRNN storing three patterns: six attractors, saddles between them."""

import numpy as np
import scipy.linalg
import dynmem as dm

n = 16
xi = scipy.linalg.hadamard(n).astype(float)[[1, 2, 3]]
W = 2.0 * xi.T @ xi / n
model = dm.CTRNN(W, np.zeros((n, 1)), np.zeros(n), np.ones(n), activation="tanh", leak=1.0)
rng = np.random.default_rng(1)
H, starts = rng.standard_normal((40, n)), []
for k in range(400):                                          # states visited on trajectories ([SB])
    H = H + 0.01 * (np.tanh(H @ W.T) - H)
    if k % 40 == 0:
        starts.append(H.copy())
fp = dm.find_fixed_points(model, starts=np.concatenate(starts), noise=0.05, rng=0)
print(fp.message)
for kind in ("stable", "saddle"):
    print(f"  {kind}: {sum(k == kind for k in fp.kinds)}")
print("  overlaps of the stable points with the patterns:\n", np.round(fp.stable @ xi.T / n, 3))
