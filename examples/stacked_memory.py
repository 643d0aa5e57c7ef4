"""Memory of stacked models: diagonal SSMs with a layer-wise tanh (Wang and Xue 2023) and a torch-style GRU stack.

A stack of linear SSMs with a nonlinearity between layers still forgets exponentially: the memory of the
whole input-output map is classified as exponential by ``fit_decay``, with a fitted rate (on 150 steps)
of the order of the slowest layer's ``-log max|Lambda_bar|``, which is the asymptotic rate of the linearised
stack.  The script measures the Heaviside memory of 1-, 2- and 4-layer stacks and prints both, then the
gradient of a 3-layer GRU stack (one call, BPTT through every layer).

Usage: python examples/stacked_memory.py [--out stacked_memory.png]
"""

import argparse

import numpy as np

import dynmem as dm


def ssm_stack(depth, width, rng):
    layers, d = [], 1
    for _ in range(depth):
        layers.append(dm.DiagonalSSM.random(width, d, decay=(0.1, 1.0), max_frequency=0.2, rng=rng).discretize(1.0))
        d = layers[-1].feature_size
    return dm.Stack(layers, nonlinearity="tanh")


def main(out="stacked_memory.png"):
    rng = np.random.default_rng(0)
    t = np.arange(150)
    curves = {}
    for depth in (1, 2, 4):
        stack = ssm_stack(depth, 4, rng)
        mem = dm.memory_function(stack, t, input="heaviside")
        fit = dm.fit_decay(mem.t, mem.values)
        slowest = min(-np.log(np.max(np.abs(layer.Lambda_bar))) for layer in stack.layers)
        print(f"{depth} layer(s): {fit.kind} decay, rate {fit.rate:.4f} per step; slowest layer's rate {slowest:.4f}")
        curves[f"{depth} layer{'s' if depth > 1 else ''}"] = mem
    gru = dm.Stack([dm.GRUCell.random(8, 2, rng=rng), dm.GRUCell.random(8, 8, rng=rng), dm.GRUCell.random(8, 8, rng=rng)])
    X, Y = rng.standard_normal((4, 50, 2)), rng.standard_normal((4, 50))
    res = gru.value_and_grad(X, Y)
    print(f"3-layer GRU stack: loss {res.loss:.4f}, |dL/dtheta| = {np.linalg.norm(res.flat):.4f} over {gru.n_params} "
          f"parameters, |dL/dX| = {np.linalg.norm(res.dX):.4f}")
    if out:
        from dynmem.plotting import plot_memory

        ax = plot_memory(curves, title="stacked SSMs, tanh between layers")
        ax.figure.tight_layout()
        ax.figure.savefig(out, dpi=110)
        print(f"figure written to {out}")
    return curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="stacked_memory.png")
    main(parser.parse_args().out)
