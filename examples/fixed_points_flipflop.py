"""A GRU trained on the 3-bit flip-flop task ([SB]) through dynmem, and its fixed points on the leading PCs.

The GRU (16 units) is trained with Adam on the cell's layer passes (``sequence_forward`` /
``sequence_backward``: the compiled BPTT with a 3-output read-out ``Y = H C``); its fixed points at zero
input are found from states of test trajectories (:func:`dynmem.find_fixed_points`) and drawn on the two
leading principal components of those trajectories (:func:`dynmem.plotting.plot_fixed_points`).  A trained
network holds 8 attractors, one per stored bit pattern, with saddles between them.  About 15 s.

Usage: python examples/fixed_points_flipflop.py [--out fixed_points_flipflop.png]
"""

import argparse

import numpy as np

import dynmem as dm
from dynmem.plotting import plot_fixed_points


def flipflop(rng, B, T, p=0.1):
    """+-1 pulses on 3 channels (one at step 0 on each); the targets hold each channel's last pulse."""
    X = np.zeros((B, T, 3))
    pulses = rng.random((B, T, 3)) < p
    pulses[:, 0, :] = True
    X[pulses] = rng.choice([-1.0, 1.0], size=int(pulses.sum()))
    Y = np.maximum.accumulate(np.where(X != 0, np.arange(T)[None, :, None], -1), axis=1)  # index of last pulse
    return X, np.take_along_axis(X, Y, axis=1)


def train(m=16, iterations=1200, seed=0):
    rng = np.random.default_rng(seed)
    cell = dm.GRUCell.random(m, 3, rng=rng)
    C = rng.standard_normal((m, 3)) / np.sqrt(m)
    theta = np.concatenate([cell.flatten(), C.ravel()])
    n1 = cell.n_params
    mom, var = np.zeros_like(theta), np.zeros_like(theta)
    for it in range(1, iterations + 1):
        X, Y = flipflop(rng, 32, 40)
        cell, C = cell.unflatten(theta[:n1]), theta[n1:].reshape(m, 3)
        passed = cell.sequence_forward(X)
        r = passed.features @ C - Y
        dY = 2 * r / r.size
        grad = np.concatenate([cell.sequence_backward(passed, dY @ C.T).flat,
                               np.einsum("btm,btj->mj", passed.features, dY).ravel()])
        mom = 0.9 * mom + 0.1 * grad
        var = 0.999 * var + 0.001 * grad ** 2
        theta -= 1e-2 * (mom / (1 - 0.9 ** it)) / (np.sqrt(var / (1 - 0.999 ** it)) + 1e-8)
        if it % 300 == 0:
            print(f"  step {it}: mse {np.mean(r * r):.2e}")
    return cell.unflatten(theta[:n1]), theta[n1:].reshape(m, 3)


def main(out="fixed_points_flipflop.png"):
    cell, C = train()
    X, _ = flipflop(np.random.default_rng(1), 32, 80)
    traj = cell.sequence_forward(X).features                          # (32, 80, 16)
    states = traj.reshape(-1, cell.hidden)
    pick = np.random.default_rng(2).choice(len(states), (2, 96), replace=False)
    # visited states, and midpoints of pairs of them: the saddles sit between the attractors
    starts = np.concatenate([states[pick[0]], 0.5 * (states[pick[0]] + states[pick[1]])])
    fp = dm.find_fixed_points(cell, starts=starts, noise=0.02, rng=3)
    print(fp.message, {k: fp.kinds.count(k) for k in set(fp.kinds)})
    print("read-out signs of the stable points:\n", np.sign(fp.stable @ C).astype(int))
    if out:
        ax = plot_fixed_points(fp, traj, title="GRU on the 3-bit flip-flop: fixed points")
        ax.figure.tight_layout()
        ax.figure.savefig(out, dpi=110)
        print(f"figure written to {out}")
    return fp


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="fixed_points_flipflop.png")
    main(parser.parse_args().out)
