"""Fixed points of a Hopfield-type CTRNN storing three patterns: six attractors, saddles between them.

The starts are states visited on trajectories ([SB]); the figure shows the fixed points by kind on the two
leading principal components of those trajectories (``dynmem.plotting.plot_fixed_points``).

Usage: python examples/fixed_points_hopfield.py [--out fixed_points_hopfield.png]
"""

import argparse

import numpy as np
import scipy.linalg

import dynmem as dm
from dynmem.plotting import plot_fixed_points


def main(out="fixed_points_hopfield.png"):
    n = 16
    xi = scipy.linalg.hadamard(n).astype(float)[[1, 2, 3]]
    W = 2.0 * xi.T @ xi / n
    model = dm.CTRNN(W, np.zeros((n, 1)), np.zeros(n), np.ones(n), activation="tanh", leak=1.0)
    rng = np.random.default_rng(1)
    H, traj = rng.standard_normal((40, n)), []
    for _ in range(400):                                      # Euler steps of dh/dt = tanh(W h) - h
        H = H + 0.01 * (np.tanh(H @ W.T) - H)
        traj.append(H.copy())
    traj = np.stack(traj, axis=1)                             # (40, 400, n)
    fp = dm.find_fixed_points(model, starts=traj[:, ::40].reshape(-1, n), noise=0.05, rng=0)
    print(fp.message)
    for kind in ("stable", "saddle"):
        print(f"  {kind}: {sum(k == kind for k in fp.kinds)}")
    print("  overlaps of the stable points with the patterns:\n", np.round(fp.stable @ xi.T / n, 3))
    if out:
        ax = plot_fixed_points(fp, traj, title="Hopfield CTRNN, 3 patterns: fixed points by kind")
        ax.figure.tight_layout()
        ax.figure.savefig(out, dpi=110)
        print(f"figure written to {out}")
    return fp


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="fixed_points_hopfield.png")
    main(parser.parse_args().out)
